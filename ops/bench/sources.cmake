# ops/bench: encore-bench, the benchmarks (ops/bench/run runs them and
# writes ops/bench/RESULTS.md), and the bounded-state test built on the
# soak driver. Not part of CI's figures: benchmarks are run by hand.
add_library(enc_bench_soak STATIC ops/bench/soak.c)
target_include_directories(enc_bench_soak PUBLIC ${CMAKE_SOURCE_DIR}/ops/bench)
target_link_libraries(enc_bench_soak PUBLIC enc_state encore_gen
                      ${XXHASH_LIB})

# LRU reuse distances (pure computation), for `encore-bench reuse`.
add_library(enc_bench_reuse STATIC ops/bench/reuse.c)
target_include_directories(enc_bench_reuse PUBLIC ${CMAKE_SOURCE_DIR}/ops/bench)
target_link_libraries(enc_bench_reuse PUBLIC enc_base)

add_executable(encore-bench
  ops/bench/bench.c
  ops/bench/b1.c
  ops/bench/broker.c
  ops/bench/b2.c
  ops/bench/b3.c
  ops/bench/mem.c
  ops/bench/soak_cmd.c
  ops/bench/state_build.c
  ops/bench/allocs.c
  ops/bench/reuse_cmd.c)
target_link_libraries(encore-bench PRIVATE enc_bench_soak enc_bench_reuse
                      enc_consumer
                      PkgConfig::RDKAFKA PkgConfig::AVRO ${XXHASH_LIB}
                      Threads::Threads)
# Counts the allocations encore's own code makes (ops/bench/allocs.c).
target_link_options(encore-bench PRIVATE -Wl,--wrap=malloc -Wl,--wrap=calloc
                    -Wl,--wrap=realloc -Wl,--wrap=strdup)
# b3 and mem run the encore binary as a child process.
add_dependencies(encore-bench encore)

# Bounded state under a rolling population: 36 simulated weeks through the
# engine (~10-20 s in a RelWithDebInfo build; longer under sanitizers).
enc_add_test(NAME test_bounded_state SOURCES tests/test_bounded_state.c
             LIBS enc_bench_soak LABELS integration TIMEOUT 600)

# Reuse distances on hand-worked sequences (ops/bench/reuse.c).
enc_add_test(NAME test_reuse SOURCES tests/test_reuse.c
             LIBS enc_bench_reuse LABELS unit)
