/*
 * daybits.c -- a set of day numbers as a 384-bit map.
 *
 * DESIGN
 * Signals count days, and the days that matter are always within a year
 * of each other (the largest window and horizon are 366 days), so a fixed
 * bitmap beats a sorted list on both size and simplicity: no allocation,
 * O(span) worst case for every operation, and an encoding of at most 48
 * bytes that shrinks to a few bytes for recent activity. Counts and
 * searches work a 64-day word at a time (popcount, count-trailing and
 * count-leading zeros): they run on every user loaded and every timer,
 * and walking 384 days bit by bit was 5% of a cold B1 run.
 *
 * Never: read or write a bit outside the span; callers rely on add()
 * refusing rather than wrapping.
 */
#include "daybits.h"

#include <string.h>

void enc_daybits_init(enc_daybits_t *b, int64_t base) {
        memset(b, 0, sizeof(*b));
        b->base = base;
}

static bool enc_daybits_idx(const enc_daybits_t *b, int64_t day, int *idx) {
        if (day < b->base || day - b->base >= ENC_DAYBITS_SPAN)
                return false;
        *idx = (int)(day - b->base);
        return true;
}

bool enc_daybits_has(const enc_daybits_t *b, int64_t day) {
        int i;
        if (!enc_daybits_idx(b, day, &i))
                return false;
        return (b->w[i / 64] >> (i % 64)) & 1;
}

bool enc_daybits_add(enc_daybits_t *b, int64_t day) {
        int i;
        if (!enc_daybits_idx(b, day, &i))
                return false;
        b->w[i / 64] |= (uint64_t)1 << (i % 64);
        return true;
}

/* Clips [lo, hi] to the span as bit indexes; false if nothing is left. */
static bool enc_daybits_range(const enc_daybits_t *b, int64_t lo, int64_t hi,
                              int *ilo, int *ihi) {
        if (lo < b->base)
                lo = b->base;
        if (hi > b->base + ENC_DAYBITS_SPAN - 1)
                hi = b->base + ENC_DAYBITS_SPAN - 1;
        if (lo > hi)
                return false;
        *ilo = (int)(lo - b->base);
        *ihi = (int)(hi - b->base);
        return true;
}

/* Word @p k of @p b masked to the bits [ilo, ihi]. */
static uint64_t enc_daybits_word(const enc_daybits_t *b, int k, int ilo,
                                 int ihi) {
        uint64_t w = b->w[k];
        if (k == ilo / 64)
                w &= ~(uint64_t)0 << (ilo % 64);
        if (k == ihi / 64 && ihi % 64 != 63)
                w &= ((uint64_t)1 << (ihi % 64 + 1)) - 1;
        return w;
}

int enc_daybits_count(const enc_daybits_t *b, int64_t lo, int64_t hi) {
        int ilo, ihi, n = 0;
        if (!enc_daybits_range(b, lo, hi, &ilo, &ihi))
                return 0;
        for (int k = ilo / 64; k <= ihi / 64; k++)
                n += __builtin_popcountll(enc_daybits_word(b, k, ilo, ihi));
        return n;
}

int64_t enc_daybits_first(const enc_daybits_t *b, int64_t lo, int64_t hi) {
        int ilo, ihi;
        if (!enc_daybits_range(b, lo, hi, &ilo, &ihi))
                return INT64_MAX;
        for (int k = ilo / 64; k <= ihi / 64; k++) {
                uint64_t w = enc_daybits_word(b, k, ilo, ihi);
                if (w)
                        return b->base + k * 64 + __builtin_ctzll(w);
        }
        return INT64_MAX;
}

int64_t enc_daybits_last(const enc_daybits_t *b) {
        for (int k = ENC_DAYBITS_WORDS - 1; k >= 0; k--)
                if (b->w[k])
                        return b->base + k * 64 + 63 - __builtin_clzll(b->w[k]);
        return INT64_MIN;
}

bool enc_daybits_empty(const enc_daybits_t *b) {
        for (int i = 0; i < ENC_DAYBITS_WORDS; i++)
                if (b->w[i])
                        return false;
        return true;
}

void enc_daybits_rebase(enc_daybits_t *b, int64_t base) {
        enc_daybits_t n;
        if (base == b->base)
                return;
        enc_daybits_init(&n, base);
        for (int k = 0; k < ENC_DAYBITS_WORDS; k++)
                for (uint64_t w = b->w[k]; w; w &= w - 1)
                        (void)enc_daybits_add(&n, b->base + k * 64 +
                                                          __builtin_ctzll(w));
        *b = n;
}

void enc_daybits_put(const enc_daybits_t *b, enc_buf_t *out) {
        uint8_t bytes[ENC_DAYBITS_SPAN / 8];
        size_t n = 0;
        /* Up to the last non-zero byte, little-endian: found from the last
         * non-zero word, so a state of a few days copies a byte or two. */
        int k = ENC_DAYBITS_WORDS - 1;
        while (k >= 0 && !b->w[k])
                k--;
        if (k >= 0)
                n = (size_t)k * 8 + (size_t)(63 - __builtin_clzll(b->w[k])) / 8 +
                    1;
        for (size_t i = 0; i < n; i++)
                bytes[i] = (uint8_t)(b->w[i / 8] >> (8 * (i % 8)));
        enc_buf_put_varint(out, n);
        if (enc_buf_append(out, bytes, n))
                return; /* out->failed is set; the caller checks it */
}

bool enc_daybits_get(const uint8_t **p, const uint8_t *end, enc_daybits_t *b) {
        uint64_t n;
        memset(b->w, 0, sizeof(b->w));
        if (!enc_get_varint(p, end, &n) || n > ENC_DAYBITS_SPAN / 8 ||
            (uint64_t)(end - *p) < n)
                return false;
        for (size_t i = 0; i < n; i++)
                b->w[i / 8] |= (uint64_t)(*p)[i] << (8 * (i % 8));
        *p += n;
        return true;
}
