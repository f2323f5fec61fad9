/*
 * daybits.c -- a set of day numbers as a 384-bit map.
 *
 * DESIGN
 * Signals count days, and the days that matter are always within a year
 * of each other (the largest window and horizon are 366 days), so a fixed
 * bitmap beats a sorted list on both size and simplicity: no allocation,
 * O(span) worst case for every operation, and an encoding of at most 48
 * bytes that shrinks to a few bytes for recent activity. Operations walk
 * days one by one rather than shuffling words: clear beats clever at this
 * size, and every caller does at most a handful per event.
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

int enc_daybits_count(const enc_daybits_t *b, int64_t lo, int64_t hi) {
        int n = 0;
        if (lo < b->base)
                lo = b->base;
        if (hi > b->base + ENC_DAYBITS_SPAN - 1)
                hi = b->base + ENC_DAYBITS_SPAN - 1;
        for (int64_t d = lo; d <= hi; d++)
                n += enc_daybits_has(b, d);
        return n;
}

int64_t enc_daybits_first(const enc_daybits_t *b, int64_t lo, int64_t hi) {
        if (lo < b->base)
                lo = b->base;
        if (hi > b->base + ENC_DAYBITS_SPAN - 1)
                hi = b->base + ENC_DAYBITS_SPAN - 1;
        for (int64_t d = lo; d <= hi; d++)
                if (enc_daybits_has(b, d))
                        return d;
        return INT64_MAX;
}

int64_t enc_daybits_last(const enc_daybits_t *b) {
        for (int i = ENC_DAYBITS_SPAN - 1; i >= 0; i--)
                if ((b->w[i / 64] >> (i % 64)) & 1)
                        return b->base + i;
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
        for (int i = 0; i < ENC_DAYBITS_SPAN; i++)
                if ((b->w[i / 64] >> (i % 64)) & 1)
                        (void)enc_daybits_add(&n, b->base + i);
        *b = n;
}

void enc_daybits_put(const enc_daybits_t *b, enc_buf_t *out) {
        uint8_t bytes[ENC_DAYBITS_SPAN / 8];
        size_t n = 0;
        for (size_t i = 0; i < sizeof(bytes); i++) {
                bytes[i] = (uint8_t)(b->w[i / 8] >> (8 * (i % 8)));
                if (bytes[i])
                        n = i + 1;
        }
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
