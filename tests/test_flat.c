/*
 * test_flat.c -- one-block states (base/flat.c): the bytes a block holds
 * through inserts, cuts and resizes, against a plain array edited the
 * same way, and the room it takes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "flat.h"

static void test_flat_new_copy_and_room(void **st) {
        (void)st;
        enc_flat_t *f = enc_flat_new(5);
        assert_non_null(f);
        assert_int_equal(f->len, 5);
        assert_int_equal(f->cap, 16);
        for (int i = 0; i < 5; i++)
                assert_int_equal(f->d[i], 0);
        /* 8 bytes of header + 16 of room + malloc's 8 = 32. */
        assert_int_equal(enc_flat_heap(f), 32);
        assert_true(((uintptr_t)f->d & 7) == 0);
        enc_flat_free(f);

        const uint8_t src[17] = "0123456789abcdef";
        f = enc_flat_copy(src, 17);
        assert_non_null(f);
        assert_int_equal(f->len, 17);
        assert_int_equal(f->cap, 32);
        assert_memory_equal(f->d, src, 17);
        assert_int_equal(enc_flat_heap(f), 48);
        enc_buf_t b;
        enc_buf_init(&b, 1024);
        assert_int_equal(enc_flat_encode(f, &b), ENC_OK);
        assert_int_equal(b.len, 17);
        assert_memory_equal(b.data, src, 17);
        enc_buf_free(&b);
        enc_flat_free(f);

        f = enc_flat_new(0);
        assert_non_null(f);
        assert_int_equal(f->len, 0);
        assert_int_equal(f->cap, 0);
        assert_int_equal(enc_flat_heap(f), 32);
        enc_flat_free(f);
        assert_null(enc_flat_new(ENC_FLAT_MAX + 1));
        assert_int_equal(enc_flat_heap(NULL), 0);
}

/* Growth: len 100 from 0 gets an eighth more (12, at least 16): room
 * round16(116) = 128. Shrinking to 64 keeps it (not below half); to 63
 * gives it back: round16(63) = 64. */
static void test_flat_resize_room(void **st) {
        (void)st;
        enc_flat_t *f = enc_flat_new(0);
        assert_true(enc_flat_resize(&f, 100));
        assert_int_equal(f->len, 100);
        assert_int_equal(f->cap, 128);
        memset(f->d, 0xab, 100);
        assert_true(enc_flat_resize(&f, 64));
        assert_int_equal(f->cap, 128);
        assert_true(enc_flat_resize(&f, 63));
        assert_int_equal(f->cap, 64);
        for (int i = 0; i < 63; i++)
                assert_int_equal(f->d[i], 0xab);
        /* Growing again zeroes what it adds, stale bytes or not. */
        assert_true(enc_flat_resize(&f, 64));
        assert_int_equal(f->d[63], 0);
        assert_false(enc_flat_resize(&f, ENC_FLAT_MAX + 1));
        assert_int_equal(f->len, 64);
        enc_flat_free(f);
}

/* 2000 random inserts and cuts, each mirrored on a plain array. */
static void test_flat_edits_match_an_array(void **st) {
        (void)st;
        enum { MAXN = 4096 };
        uint8_t *ref = calloc(1, MAXN);
        size_t n = 0;
        enc_flat_t *f = enc_flat_new(0);
        srand(7);
        for (int step = 0; step < 2000; step++) {
                bool ins = n < 64 || (n < MAXN - 64 && rand() % 3 != 0);
                if (ins) {
                        size_t k = 1 + (size_t)rand() % 40;
                        size_t off = (size_t)rand() % (n + 1);
                        uint8_t *g = enc_flat_insert(&f, off, k);
                        assert_non_null(g);
                        for (size_t i = 0; i < k; i++)
                                assert_int_equal(g[i], 0);
                        memmove(ref + off + k, ref + off, n - off);
                        memset(ref + off, 0, k);
                        uint8_t v = (uint8_t)(1 + rand() % 255);
                        memset(g, v, k);
                        memset(ref + off, v, k);
                        n += k;
                } else {
                        size_t k = 1 + (size_t)rand() % 40;
                        if (k > n)
                                k = n;
                        size_t off = (size_t)rand() % (n - k + 1);
                        enc_flat_cut(&f, off, k);
                        memmove(ref + off, ref + off + k, n - off - k);
                        n -= k;
                }
                assert_int_equal(f->len, n);
                assert_true(f->cap >= f->len && f->cap % 16 == 0);
                assert_true(f->len >= f->cap / 2 || f->cap <= 16 ||
                            f->cap == 16 * ((f->len + 15) / 16));
                assert_memory_equal(f->d, ref, n);
        }
        assert_null(enc_flat_insert(&f, f->len + 1, 1));
        enc_flat_free(f);
        free(ref);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_flat_new_copy_and_room),
                cmocka_unit_test(test_flat_resize_room),
                cmocka_unit_test(test_flat_edits_match_an_array),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
