# test_faults runs in CI (about 5 minutes, 70 s of it the broker-down case:
# requests in flight to the downed broker are answered only by the
# clients' timeouts). `ctest -L faults` runs it alone.
# Fault injection on the mock cluster (three brokers): broker down and up,
# request errors, coordinator and leader moves; see tests/test_faults.c.
enc_add_test(NAME test_faults SOURCES tests/test_faults.c
  LIBS enc_consumer LABELS faults integration TIMEOUT 1800)
