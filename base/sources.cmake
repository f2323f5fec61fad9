# enc_base: the shared vocabulary (errors, buffers), configuration, logging.
add_library(enc_base STATIC
  base/enc.c
  base/config.c
  base/log.c
  base/flat.c)
target_include_directories(enc_base PUBLIC ${CMAKE_SOURCE_DIR}/base)
target_link_libraries(enc_base PUBLIC PkgConfig::INIH ${MATH_LIB})
target_compile_definitions(enc_base PUBLIC ENCORE_VERSION="${PROJECT_VERSION}")

# One-block states: bytes through inserts and cuts against a plain array.
enc_add_test(NAME test_flat SOURCES tests/test_flat.c LIBS enc_base
  LABELS unit)
