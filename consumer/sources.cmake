# enc_consumer: Kafka in and out, the processing loop, the embedded broker,
# the demo and the topic reader. main.c is the encore executable.
add_library(enc_consumer STATIC
  consumer/pipeline.c
  consumer/changelog.c
  consumer/replay.c
  consumer/embedded.c
  consumer/tail.c
  consumer/readout.c
  consumer/readend.c
  consumer/seek.c
  consumer/stray.c
  consumer/metrics.c
  consumer/rewardstats.c
  consumer/observe.c
  consumer/demo.c
  consumer/schema_registry.c)
target_include_directories(enc_consumer PUBLIC ${CMAKE_SOURCE_DIR}/consumer)
target_link_libraries(enc_consumer PUBLIC enc_state encore_gen
  PkgConfig::RDKAFKA PkgConfig::MHD PkgConfig::JANSSON PkgConfig::CURL
  Threads::Threads)

add_executable(encore consumer/main.c)
target_link_libraries(encore PRIVATE enc_consumer)
