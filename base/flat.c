/*
 * flat.c -- one-block states (flat.h).
 *
 * DESIGN
 * The room of a block is what malloc hands out anyway: glibc rounds a
 * request plus its 8-byte header up to 16, so with the 8-byte enc_flat_t
 * in front a room that is a multiple of 16 wastes nothing, and
 * enc_flat_heap() is the block's true cost. Growth adds an eighth (at
 * least 16 bytes) so a sequence of small inserts reallocates about once
 * per eighth of growth, not once per insert; shrinking gives the room back
 * only below half, so a state that grows and shrinks by an entry each
 * event does not reallocate back and forth.
 */
#include "flat.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(offsetof(enc_flat_t, d) == 8, "d must be 8-aligned");

static size_t enc_flat_round(size_t n) {
        return (n + 15) & ~(size_t)15;
}

static enc_flat_t *enc_flat_alloc(size_t cap) {
        return malloc(sizeof(enc_flat_t) + cap);
}

enc_flat_t *enc_flat_new(size_t len) {
        if (len > ENC_FLAT_MAX)
                return NULL;
        size_t cap = enc_flat_round(len);
        enc_flat_t *f = enc_flat_alloc(cap);
        if (!f)
                return NULL;
        f->len = (uint32_t)len;
        f->cap = (uint32_t)cap;
        memset(f->d, 0, cap);
        return f;
}

enc_flat_t *enc_flat_copy(const uint8_t *p, size_t len) {
        if (len > ENC_FLAT_MAX)
                return NULL;
        size_t cap = enc_flat_round(len);
        enc_flat_t *f = enc_flat_alloc(cap);
        if (!f)
                return NULL;
        f->len = (uint32_t)len;
        f->cap = (uint32_t)cap;
        if (len)
                memcpy(f->d, p, len);
        memset(f->d + len, 0, cap - len);
        return f;
}

void enc_flat_free(enc_flat_t *f) {
        free(f);
}

/* Moves *f to a block of room @p cap (>= len). */
static bool enc_flat_recap(enc_flat_t **f, size_t cap) {
        enc_flat_t *n = realloc(*f, sizeof(enc_flat_t) + cap);
        if (!n)
                return false;
        n->cap = (uint32_t)cap;
        *f = n;
        return true;
}

bool enc_flat_resize(enc_flat_t **f, size_t len) {
        enc_flat_t *b = *f;
        if (len > ENC_FLAT_MAX)
                return false;
        if (len > b->cap) {
                size_t grow = len / 8 < 16 ? 16 : len / 8;
                size_t cap = enc_flat_round(len + grow);
                if (cap > ENC_FLAT_MAX)
                        cap = enc_flat_round(len);
                if (!enc_flat_recap(f, cap))
                        return false;
                b = *f;
        }
        if (len > b->len)
                memset(b->d + b->len, 0, len - b->len);
        b->len = (uint32_t)len;
        if (len < b->cap / 2 && b->cap > 16)
                (void)enc_flat_recap(f, enc_flat_round(len)); /* a failed
                                                   shrink keeps the room */
        return true;
}

uint8_t *enc_flat_insert(enc_flat_t **f, size_t off, size_t n) {
        size_t old = (*f)->len;
        if (off > old || n > ENC_FLAT_MAX - old)
                return NULL;
        if (!enc_flat_resize(f, old + n))
                return NULL;
        uint8_t *d = (*f)->d;
        memmove(d + off + n, d + off, old - off);
        memset(d + off, 0, n);
        return d + off;
}

void enc_flat_cut(enc_flat_t **f, size_t off, size_t n) {
        enc_flat_t *b = *f;
        memmove(b->d + off, b->d + off + n, b->len - off - n);
        b->len -= (uint32_t)n;
        /* A failed shrink keeps the room: the bytes are right either way. */
        if (b->len < b->cap / 2 && b->cap > 16)
                (void)enc_flat_recap(f, enc_flat_round(b->len));
}
