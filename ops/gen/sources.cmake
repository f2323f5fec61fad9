# The encore-gen CLI: writes the synthetic listener population's events
# (encore_gen, schemas/gen.c) to Kafka or to an Avro file.
add_executable(encore-gen ops/gen/encore_gen.c)
target_link_libraries(encore-gen PRIVATE encore_gen PkgConfig::RDKAFKA
                      PkgConfig::AVRO)

# test_gen also runs the built encore-gen (against a file and the mock
# cluster), so it depends on it.
enc_add_test(NAME test_gen SOURCES tests/test_gen.c
             LIBS encore_gen PkgConfig::RDKAFKA PkgConfig::AVRO LABELS unit)
add_dependencies(test_gen encore-gen)
