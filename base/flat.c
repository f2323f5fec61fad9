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

/* ---- the pool ---------------------------------------------------------- */

static int enc_flat_pool_class(size_t cap) {
        return cap >= 16 && cap <= 16 * ENC_FLAT_POOL_CLASSES
                       ? (int)(cap / 16) - 1
                       : -1;
}

enc_flat_t *enc_flat_pool_get(enc_flat_pool_t *pl, const uint8_t *src,
                              size_t len) {
        int c = enc_flat_pool_class(enc_flat_round(len));
        enc_flat_t *f = c >= 0 ? pl->head[c] : NULL;
        if (!f)
                return src ? enc_flat_copy(src, len) : enc_flat_new(len);
        memcpy(&pl->head[c], f->d, sizeof(f));
        pl->bytes -= enc_flat_heap(f);
        /* len is within the room and more than half of it: no realloc */
        f->len = 0;
        if (!enc_flat_resize(&f, len)) { /* cannot fail; keep it honest */
                enc_flat_free(f);
                return NULL;
        }
        if (src)
                memcpy(f->d, src, len);
        return f;
}

void enc_flat_pool_put(enc_flat_pool_t *pl, enc_flat_t *f) {
        int c = f ? enc_flat_pool_class(f->cap) : -1;
        if (!f || !pl || c < 0 || pl->bytes + enc_flat_heap(f) > pl->max) {
                enc_flat_free(f);
                return;
        }
        memcpy(f->d, &pl->head[c], sizeof(f));
        pl->head[c] = f;
        pl->bytes += enc_flat_heap(f);
}

void enc_flat_pool_clear(enc_flat_pool_t *pl) {
        for (int c = 0; c < ENC_FLAT_POOL_CLASSES; c++)
                while (pl->head[c]) {
                        enc_flat_t *f = pl->head[c];
                        memcpy(&pl->head[c], f->d, sizeof(f));
                        enc_flat_free(f);
                }
        pl->bytes = 0;
}
