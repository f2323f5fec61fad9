# Fault injection on the mock cluster (three brokers): broker down and up,
# request errors, coordinator and leader moves; see tests/test_faults.c.
enc_add_test(NAME test_faults SOURCES tests/test_faults.c
  LIBS enc_consumer LABELS integration TIMEOUT 900)
