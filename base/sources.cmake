# enc_base: the shared vocabulary (errors, buffers), configuration, logging.
add_library(enc_base STATIC
  base/enc.c
  base/config.c
  base/log.c)
target_include_directories(enc_base PUBLIC ${CMAKE_SOURCE_DIR}/base)
target_link_libraries(enc_base PUBLIC PkgConfig::INIH ${MATH_LIB})
target_compile_definitions(enc_base PUBLIC ENCORE_VERSION="${PROJECT_VERSION}")
