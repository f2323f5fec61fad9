# Observability checks (tests/test_observability.sh). Each exits 77 -- a
# skip, with the Debian package to install -- when its tool is missing:
# promtool and prometheus (prometheus), jq, curl, docker-compose,
# systemd-analyze (systemd). `ops/deps --extra` installs them.
foreach(mode rules dashboard compose systemd)
  add_test(NAME observability_${mode}
    COMMAND ${CMAKE_SOURCE_DIR}/tests/test_observability.sh ${mode})
  set_tests_properties(observability_${mode} PROPERTIES LABELS unit
    TIMEOUT 60 SKIP_RETURN_CODE 77
    ENVIRONMENT "ENCORE_SOURCE_DIR=${CMAKE_SOURCE_DIR};ENCORE_BINARY_DIR=${CMAKE_BINARY_DIR}")
endforeach()

# encore + encore-gen on the embedded broker, scraped by a real Prometheus on
# loopback; needs both binaries built first.
add_test(NAME observability_live
  COMMAND ${CMAKE_SOURCE_DIR}/tests/test_observability.sh live)
set_tests_properties(observability_live PROPERTIES LABELS integration
  TIMEOUT 120 SKIP_RETURN_CODE 77
  ENVIRONMENT "ENCORE_SOURCE_DIR=${CMAKE_SOURCE_DIR};ENCORE_BINARY_DIR=${CMAKE_BINARY_DIR}")
