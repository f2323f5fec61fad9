/*
 * allocs.c -- counts the heap allocations encore's own code makes, for
 * B1's "allocations per event" figure.
 *
 * DESIGN
 * encore-bench is linked with -Wl,--wrap for malloc, calloc, realloc and
 * strdup: every call to them from code linked into the executable (all of
 * encore's modules) comes here first, is counted and is passed on. Calls
 * made inside shared libraries (RocksDB, librdkafka, Avro C, libc itself)
 * are not wrapped and not counted: the figure is what encore's code asks
 * for, which is what its design controls. The counter is a relaxed atomic
 * so the other threads of b2/b3 (librdkafka callbacks into encore) may
 * count too without a race; B1 reads it around its timed phase, where the
 * processing thread is the only one running encore's code.
 *
 * Never: allocate here, or do anything but count and forward.
 */
#include "bench.h"

#include <stdatomic.h>
#include <stddef.h>

static _Atomic uint64_t enc_bench_allocs_n;

uint64_t enc_bench_allocs(void) {
        return atomic_load_explicit(&enc_bench_allocs_n, memory_order_relaxed);
}

static void enc_bench_allocs_count(void) {
        atomic_fetch_add_explicit(&enc_bench_allocs_n, 1,
                                  memory_order_relaxed);
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n) {
        enc_bench_allocs_count();
        return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
        enc_bench_allocs_count();
        return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
        enc_bench_allocs_count();
        return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
        enc_bench_allocs_count();
        return __real_strdup(s);
}
