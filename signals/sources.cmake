# enc_signals: the reward signals. Pure: no I/O, no clock, no globals; the
# one exception is progressive_reward reading its prior file at init.
#
# Adding a signal: signals/<name>.c, one line in signals/registry.c, one
# line below, and tests/test_signal_<name>.c registered at the bottom.

# The default prior is embedded at build time, so the binary works without
# the file next to it.
set(ENC_SIGNALS_GENERATED ${CMAKE_BINARY_DIR}/signals)
add_custom_command(
  OUTPUT ${ENC_SIGNALS_GENERATED}/default_prior_data.c
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/signals/default_prior.json
          -DOUT=${ENC_SIGNALS_GENERATED}/default_prior_data.c
          -DSYM=enc_prior_default -P ${CMAKE_SOURCE_DIR}/signals/embed.cmake
  DEPENDS ${CMAKE_SOURCE_DIR}/signals/default_prior.json
          ${CMAKE_SOURCE_DIR}/signals/embed.cmake
  COMMENT "Embedding signals/default_prior.json"
  VERBATIM)

add_library(enc_signals STATIC
  signals/registry.c
  signals/daybits.c
  signals/prior.c
  signals/active_days.c
  signals/session.c
  signals/discovery_habit.c
  signals/progressive_reward.c
  signals/composite.c
  ${ENC_SIGNALS_GENERATED}/default_prior_data.c)
target_include_directories(enc_signals PUBLIC ${CMAKE_SOURCE_DIR}/signals)
target_link_libraries(enc_signals
  PUBLIC enc_base enc_schemas
  PRIVATE PkgConfig::JANSSON ${XXHASH_LIB} ${MATH_LIB})

foreach(t signal_active_days signal_session signal_discovery_habit
          signal_progressive_reward signal_composite signals_registry
          signals_diff)
  enc_add_test(NAME test_${t} SOURCES tests/test_${t}.c
               LIBS enc_signals ${MATH_LIB} LABELS unit)
endforeach()
