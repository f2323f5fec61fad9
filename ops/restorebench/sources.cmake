# encore-restore-bench: restore rate from the changelog (see the file).
add_executable(encore-restore-bench ops/restorebench/restore_bench.c)
target_link_libraries(encore-restore-bench PRIVATE enc_consumer)
