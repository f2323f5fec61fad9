# encore-fit-prior: fits progressive_reward's prior from past
# discovery_habit output. The arithmetic is a small library so the test
# can pin it; the tool is I/O around it.
add_library(encore_prior_fit STATIC ops/prior/fit.c)
target_include_directories(encore_prior_fit PUBLIC ${CMAKE_SOURCE_DIR}/ops/prior)
target_link_libraries(encore_prior_fit
  PUBLIC enc_signals
  PRIVATE PkgConfig::JANSSON ${MATH_LIB})

add_executable(encore-fit-prior ops/prior/fit_prior.c)
target_link_libraries(encore-fit-prior PRIVATE encore_prior_fit)

enc_add_test(NAME test_prior_fit SOURCES tests/test_prior_fit.c
             LIBS encore_prior_fit enc_schemas ${MATH_LIB} LABELS unit)
