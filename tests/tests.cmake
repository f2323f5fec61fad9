# Tests of the consumer module and end-to-end runs on the mock cluster.
# Unit tests of the other modules are registered in their sources.cmake.
enc_add_test(NAME test_config SOURCES tests/test_config.c
  LIBS enc_state LABELS unit)
# The end test of every reader that stops at an offset (consumer/readend.c).
enc_add_test(NAME test_readend SOURCES tests/test_readend.c
  LIBS enc_consumer LABELS unit)
# encore readout: statistics and the aggregation core against
# hand-computed and independent values, the command on the mock cluster.
enc_add_test(NAME test_readout SOURCES tests/test_readout.c
  LIBS enc_consumer LABELS integration)
# Records of partitions the engine does not hold (consumer/stray.c), on
# scripted orderings of assignment, restore and revocation.
enc_add_test(NAME test_stray SOURCES tests/test_stray.c
  LIBS enc_consumer LABELS unit)
# Reward metrics by cohort (consumer/rewardstats.c): buckets, the cohort
# bound, the exposition lines.
enc_add_test(NAME test_rewardstats SOURCES tests/test_rewardstats.c
  LIBS enc_consumer LABELS unit)
# Seeks that never stop on a timeout (consumer/seek.c), on the mock.
enc_add_test(NAME test_seek SOURCES tests/test_seek.c
  LIBS enc_consumer LABELS integration)
# About 2.5 minutes plain; under ASan/UBSan, sharing two cores with
# test_faults, it took more than 15 (ops/sanitize), hence the margin.
# Changelog writing on the mock cluster: held position records (a commit's
# positions wait for its outputs' delivery).
enc_add_test(NAME test_changelog SOURCES tests/test_changelog.c
  LIBS enc_consumer LABELS integration)
enc_add_test(NAME test_pipeline SOURCES tests/test_pipeline.c
  LIBS enc_consumer LABELS integration TIMEOUT 2400)
# The state store failing for real (file size limit, a full tmpfs, a failed
# flush): see tests/test_diskfull.c. The full-tmpfs case needs user
# namespaces; where it cannot run it is skipped (cmocka), saying why.
enc_add_test(NAME test_diskfull SOURCES tests/test_diskfull.c
  LIBS enc_consumer LABELS integration TIMEOUT 600)

# The Schema Registry client against an HTTP server inside the test that
# gives the registry's documented REST answers (none can be installed
# here), and a topic with its own schema end to end on the mock cluster.
enc_add_test(NAME test_schema_registry SOURCES tests/test_schema_registry.c
  LIBS enc_consumer PkgConfig::AVRO PkgConfig::MHD PkgConfig::JANSSON
  LABELS integration TIMEOUT 600)

add_test(NAME readme_config_table
  COMMAND ${CMAKE_SOURCE_DIR}/tests/check_readme_config.sh
          $<TARGET_FILE:encore> ${CMAKE_SOURCE_DIR}/README.md)
set_tests_properties(readme_config_table PROPERTIES LABELS unit)
add_test(NAME cli_help
  COMMAND ${CMAKE_SOURCE_DIR}/tests/test_cli_help.sh $<TARGET_FILE:encore>)
set_tests_properties(cli_help PROPERTIES LABELS unit)
include(tests/fuzz/fuzz.cmake OPTIONAL)
include(tests/observability.cmake OPTIONAL)
include(tests/faults.cmake OPTIONAL)

# Against a real Kafka named by ENCORE_TEST_BOOTSTRAP; skipped (exit 77,
# with the reason printed) otherwise.
enc_add_test(NAME test_realbroker SOURCES tests/test_realbroker.c
  LIBS enc_consumer LABELS integration TIMEOUT 900)
set_tests_properties(test_realbroker PROPERTIES SKIP_RETURN_CODE 77
  ENVIRONMENT "ENCORE_BINARY_DIR=${CMAKE_BINARY_DIR}")
