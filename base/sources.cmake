# enc_base: the shared vocabulary (errors, buffers), configuration, logging.
add_library(enc_base STATIC
  base/enc.c
  base/config.c
  base/log.c
  base/flat.c)
target_include_directories(enc_base PUBLIC ${CMAKE_SOURCE_DIR}/base)
target_link_libraries(enc_base PUBLIC PkgConfig::INIH ${MATH_LIB})
target_compile_definitions(enc_base PUBLIC ENCORE_VERSION="${PROJECT_VERSION}")

# base/: one-block states against a plain array; UTF-8 checking against
# glibc's decoder.
enc_add_test(NAME test_base SOURCES tests/test_base.c LIBS enc_base
  LABELS unit)
