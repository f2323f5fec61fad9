/*
 * test_base.c -- the ground floor (base/): one-block states (flat.c), the
 * bytes a block holds through inserts, cuts and resizes against a plain
 * array edited the same way and the room it takes; enc_utf8_valid against
 * glibc's own UTF-8 decoder (mbrtowc in C.UTF-8).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

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

/* The pool: a block put back is the next one of its room taken, zeroed
 * or copied; max bounds what is kept; rooms past the classes are freed. */
static void test_flat_pool_reuses_by_room(void **st) {
        (void)st;
        enc_flat_pool_t pl = {.max = 2 * 48};
        enc_flat_t *a = enc_flat_pool_get(&pl, NULL, 20); /* room 32 */
        assert_int_equal(a->cap, 32);
        memset(a->d, 7, 20);
        enc_flat_pool_put(&pl, a);
        assert_int_equal(pl.bytes, 48); /* 8 + 32 + malloc's 8 */
        enc_flat_t *b = enc_flat_pool_get(&pl, NULL, 17); /* room 32 too */
        assert_ptr_equal(b, a);
        assert_int_equal(b->len, 17);
        for (int i = 0; i < 17; i++)
                assert_int_equal(b->d[i], 0);
        assert_int_equal(pl.bytes, 0);
        enc_flat_t *c = enc_flat_pool_get(&pl, (const uint8_t *)"abc", 3);
        assert_int_equal(c->cap, 16);
        enc_flat_pool_put(&pl, b);
        enc_flat_pool_put(&pl, c);      /* 48 + 32: kept */
        assert_int_equal(pl.bytes, 80);
        enc_flat_t *d = enc_flat_new(30);
        enc_flat_pool_put(&pl, d);      /* 80 + 48 > 96: freed */
        assert_int_equal(pl.bytes, 80);
        enc_flat_t *e = enc_flat_pool_get(&pl, (const uint8_t *)"xy", 2);
        assert_ptr_equal(e, c);
        assert_memory_equal(e->d, "xy", 2);
        enc_flat_pool_put(&pl, enc_flat_new(300)); /* room 304: no class */
        assert_int_equal(pl.bytes, 48);
        enc_flat_pool_put(&pl, e);
        enc_flat_pool_clear(&pl);
        assert_int_equal(pl.bytes, 0);
        assert_null(pl.head[0]);
        assert_null(pl.head[1]);
}

/* The reference: glibc's decoder, which refuses overlongs, surrogates and
 * code points past U+10FFFF as RFC 3629 does. */
static bool ref_utf8_valid(const char *s, size_t len) {
        mbstate_t ps;
        memset(&ps, 0, sizeof(ps));
        size_t i = 0;
        while (i < len) {
                wchar_t wc;
                size_t n = mbrtowc(&wc, s + i, len - i, &ps);
                if (n == (size_t)-1 || n == (size_t)-2)
                        return false;
                if (n == 0) /* a NUL: one byte, valid UTF-8 */
                        n = 1;
                i += n;
        }
        return true;
}

/* Mostly ASCII strings of 0..40 bytes (the word-at-a-time path and its
 * tail) with a few bytes from the edges of the multi-byte forms dropped in
 * at random places, so every offset modulo 8 is hit. */
static void test_utf8_valid_matches_glibc(void **st) {
        (void)st;
        if (!setlocale(LC_CTYPE, "C.UTF-8")) {
                print_message("skipped: no C.UTF-8 locale for the reference "
                              "decoder\n");
                skip();
        }
        static const unsigned char edge[] = {
                0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed,
                0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90};
        int valid = 0, invalid = 0;
        srand(11);
        for (int t = 0; t < 200000; t++) {
                char s[48];
                size_t len = (size_t)rand() % 41;
                for (size_t i = 0; i < len; i++)
                        s[i] = (char)('a' + rand() % 26);
                int k = rand() % 4;
                for (int j = 0; j < k && len; j++)
                        s[rand() % len] = (char)edge[rand() % sizeof(edge)];
                bool want = ref_utf8_valid(s, len);
                assert_int_equal(enc_utf8_valid(s, len), want);
                want ? valid++ : invalid++;
        }
        /* Both answers are well represented. */
        assert_true(valid > 50000 && invalid > 50000);
        /* By hand: U+00E9, U+20AC, U+1F600 valid after 8 and 9 ASCII bytes;
         * an overlong, a surrogate, U+110000 and a cut sequence not. */
        assert_true(enc_utf8_valid("abcdefgh\xc3\xa9", 10));
        assert_true(enc_utf8_valid("abcdefghi\xe2\x82\xac", 12));
        assert_true(enc_utf8_valid("abcdefgh\xf0\x9f\x98\x80z", 13));
        assert_false(enc_utf8_valid("abcdefgh\xc0\xaf", 10));
        assert_false(enc_utf8_valid("abcdefgh\xed\xa0\x80", 11));
        assert_false(enc_utf8_valid("abcdefgh\xf4\x90\x80\x80", 12));
        assert_false(enc_utf8_valid("abcdefgh\xe2\x82", 10));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_flat_new_copy_and_room),
                cmocka_unit_test(test_flat_resize_room),
                cmocka_unit_test(test_flat_edits_match_an_array),
                cmocka_unit_test(test_utf8_valid_matches_glibc),
                cmocka_unit_test(test_flat_pool_reuses_by_room),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
