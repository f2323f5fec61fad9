# Fuzz harnesses: tests/fuzz/fuzz_<name>.c, one per parser of untrusted
# bytes (README in this folder says what each one checks).
#
# Every build (any compiler) gets, per harness:
#   fuzz_<name>_replay  the harness behind a plain main() (replay.c) that
#                       feeds it every file of tests/fuzz/corpus/<name>/ and
#                       tests/fuzz/regressions/<name>/; a ctest, label unit.
# and fuzz_seeds, the program that wrote the seed corpora.
#
# With -DENCORE_FUZZ=ON (clang, and ENCORE_SANITIZE=address,undefined) it
# also gets, per harness:
#   fuzz_<name>         the libFuzzer binary (ops/fuzz runs them).
# The module libraries are then compiled with -fsanitize=fuzzer-no-link so
# libFuzzer sees their coverage.

set(ENC_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)

# name -> module libraries the harness links (no more than it tests)
set(ENC_FUZZ_LIBS_event enc_schemas PkgConfig::JANSSON)
set(ENC_FUZZ_LIBS_state enc_state)
set(ENC_FUZZ_LIBS_config enc_signals)
set(ENC_FUZZ_LIBS_prior enc_signals)
set(ENC_FUZZ_LIBS_idfilter enc_state)
set(ENC_FUZZ_HARNESSES event state config prior idfilter)

if(ENCORE_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR
      "ENCORE_FUZZ=ON needs clang: libFuzzer (-fsanitize=fuzzer) is part of "
      "clang, and the C compiler here is ${CMAKE_C_COMPILER_ID} "
      "(${CMAKE_C_COMPILER}). Configure a fresh build directory with "
      "CC=clang (Debian packages clang and libclang-rt-14-dev), or just run "
      "ops/fuzz, which does.")
  endif()
  if(NOT ENCORE_SANITIZE MATCHES "address")
    message(FATAL_ERROR
      "ENCORE_FUZZ=ON needs -DENCORE_SANITIZE=address,undefined: the "
      "harnesses run under AddressSanitizer and UBSan, and every target "
      "that links the instrumented libraries must be built with them "
      "(ops/fuzz sets both).")
  endif()
  # Coverage for libFuzzer in the code under test: every module library
  # (all are defined before tests/tests.cmake is included).
  get_property(enc_fuzz_targets DIRECTORY ${CMAKE_SOURCE_DIR}
               PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t ${enc_fuzz_targets})
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "STATIC_LIBRARY")
      target_compile_options(${t} PRIVATE -fsanitize=fuzzer-no-link)
    endif()
  endforeach()
endif()

foreach(name ${ENC_FUZZ_HARNESSES})
  # The harness itself, compiled once for both executables.
  add_library(fuzz_${name}_obj OBJECT ${ENC_FUZZ_DIR}/fuzz_${name}.c)
  target_link_libraries(fuzz_${name}_obj PUBLIC ${ENC_FUZZ_LIBS_${name}})
  target_include_directories(fuzz_${name}_obj PUBLIC ${ENC_FUZZ_DIR})

  add_executable(fuzz_${name}_replay ${ENC_FUZZ_DIR}/replay.c)
  target_link_libraries(fuzz_${name}_replay PRIVATE fuzz_${name}_obj)
  add_test(NAME fuzz_${name}_replay
    COMMAND fuzz_${name}_replay ${ENC_FUZZ_DIR}/corpus/${name}
            ${ENC_FUZZ_DIR}/regressions/${name})
  set_tests_properties(fuzz_${name}_replay PROPERTIES LABELS unit TIMEOUT 300)

  if(ENCORE_FUZZ)
    target_compile_options(fuzz_${name}_obj PRIVATE -fsanitize=fuzzer-no-link)
    add_executable(fuzz_${name} $<TARGET_OBJECTS:fuzz_${name}_obj>)
    target_link_libraries(fuzz_${name} PRIVATE ${ENC_FUZZ_LIBS_${name}})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  endif()
endforeach()

add_executable(fuzz_seeds ${ENC_FUZZ_DIR}/fuzz_seeds.c)
target_link_libraries(fuzz_seeds PRIVATE enc_state encore_gen)
