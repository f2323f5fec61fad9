/*
 * fuzz.h -- what the fuzz harnesses share.
 *
 * Each harness (tests/fuzz/fuzz_<name>.c) defines the two libFuzzer entry
 * points below and nothing else with external linkage. The same object is
 * linked two ways (tests/fuzz/fuzz.cmake):
 *   - with -fsanitize=fuzzer (clang, ENCORE_FUZZ=ON): libFuzzer's main
 *     mutates inputs (ops/fuzz);
 *   - with tests/fuzz/replay.c (any compiler, every build): a plain main()
 *     that feeds every file of the seed corpus and of the regression inputs
 *     through the same entry point, so they run in every ctest.
 *
 * A harness states a property with FUZZ_CHECK; a violated property aborts
 * with the file, line and condition, which libFuzzer records as a crash and
 * the replay reports as a failed test. Harnesses keep no state between
 * inputs except what LLVMFuzzerInitialize builds once (codecs, signal
 * instances), so every crash reproduces from its input file alone.
 */
#ifndef ENC_FUZZ_H
#define ENC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/** Called once before the first input. @p argc / @p argv may be NULL. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/** One input; returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n",      \
                                __FILE__, __LINE__, #cond);                    \
                        abort();                                               \
                }                                                              \
        } while (0)

/* Setup failures (a codec that cannot be built) are not findings: they
 * stop the run before any input. */
#define FUZZ_SETUP(cond, what)                                                 \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "fuzz setup failed: %s\n", what);      \
                        exit(2);                                               \
                }                                                              \
        } while (0)

/*
 * For harnesses that keep an Avro C codec alive across inputs. Avro C's
 * generic values lay their fields out back to back without alignment
 * (a record's string field can start at offset 4 of the record), so the
 * pointers to its string buffers sit at unaligned addresses. LeakSanitizer
 * scans only aligned words by default and then reports those live buffers
 * as leaks, both in libFuzzer's per-input check and at exit. use_unaligned
 * makes it scan every byte offset: slower, and no true leak goes unseen.
 * (The test suite never hits this: it destroys its codecs before exit.)
 */
#define FUZZ_LSAN_FOR_AVRO()                                                   \
        const char *__lsan_default_options(void);                              \
        const char *__lsan_default_options(void) {                             \
                return "use_unaligned=1";                                      \
        }

#endif /* ENC_FUZZ_H */
