# enc_state: RocksDB store, write-back cache, event-time buffer, engine.
add_library(enc_state STATIC
  state/budget.c
  state/store.c
  state/users.c
  state/timers.c
  state/reorder.c
  state/restore.c
  state/dedup.c
  state/idfilter.c
  state/engine.c)
target_include_directories(enc_state PUBLIC ${CMAKE_SOURCE_DIR}/state)
target_link_libraries(enc_state PUBLIC enc_signals enc_schemas enc_base
  PkgConfig::ROCKSDB ${XXHASH_LIB})

enc_add_test(NAME test_state SOURCES tests/test_state.c
  LIBS enc_state LABELS unit)
enc_add_test(NAME test_format SOURCES tests/test_format.c
  LIBS enc_state LABELS unit)
enc_add_test(NAME test_idfilter SOURCES tests/test_idfilter.c
  LIBS enc_state LABELS unit)
enc_add_test(NAME test_engine SOURCES tests/test_engine.c
  LIBS enc_state encore_gen LABELS unit)
