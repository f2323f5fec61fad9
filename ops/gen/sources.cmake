# encore_gen: the synthetic listener population (ops/gen/gen.c) and the
# encore-gen CLI that writes its events to Kafka or to an Avro file.
add_library(encore_gen STATIC ops/gen/gen.c)
target_include_directories(encore_gen PUBLIC ${CMAKE_SOURCE_DIR}/ops/gen)
target_link_libraries(encore_gen PUBLIC enc_schemas PkgConfig::RDKAFKA
                      ${MATH_LIB})

add_executable(encore-gen ops/gen/encore_gen.c)
target_link_libraries(encore-gen PRIVATE encore_gen PkgConfig::AVRO)

# test_gen also runs the built encore-gen (against a file and the mock
# cluster), so it depends on it.
enc_add_test(NAME test_gen SOURCES tests/test_gen.c
             LIBS encore_gen PkgConfig::AVRO LABELS unit)
add_dependencies(test_gen encore-gen)
