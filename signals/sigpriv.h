/*
 * sigpriv.h -- what the signal files share and nothing outside signals/
 * sees: the plug-in tables registry.c lists, day-range sanity bounds for
 * stored state and a few small string helpers.
 */
#ifndef ENC_SIGPRIV_H
#define ENC_SIGPRIV_H

#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* The plug-ins (one file each); registry.c lists them. */
extern const enc_signal_plugin_t enc_sig_active_days;
extern const enc_signal_plugin_t enc_sig_session;
extern const enc_signal_plugin_t enc_sig_discovery_habit;
extern const enc_signal_plugin_t enc_sig_progressive_reward;
extern const enc_signal_plugin_t enc_sig_composite;

/* Day numbers accepted from stored state: about year 4700 BC to 4700 AD.
 * Anything outside is a corrupt record; inside, enc_day_start() and
 * day + 3650 can never overflow. */
#define ENC_SIG_DAY_MIN ((int64_t)-1000000)
#define ENC_SIG_DAY_MAX ((int64_t)1000000)

/* The first byte of every state record; bump it when the layout changes
 * and keep decoding the old layout. */
#define ENC_SIG_STATE_V1 1

static inline bool enc_sig_streq(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return !strcmp(a, b);
}

/** True if the @p n stored bytes at @p q may be a string of an update:
 *  valid UTF-8 and no NUL (the stored form never holds one). */
static inline bool enc_sig_str_ok(const uint8_t *q, size_t n) {
        return !memchr(q, '\0', n) && enc_utf8_valid((const char *)q, n);
}

/** Reads a stored string (enc_buf_put_str's form) in place: *s points into
 *  the buffer, borrowed from it (NULL for an absent string), *len is its
 *  length (the bytes are not NUL-terminated). Refuses what
 *  enc_sig_str_ok() refuses. */
static inline bool enc_sig_strref_get(const uint8_t **q, const uint8_t *end,
                                      size_t maxlen, const char **s,
                                      size_t *len) {
        uint64_t n;
        *s = NULL;
        *len = 0;
        if (!enc_get_varint(q, end, &n))
                return false;
        if (n == 0)
                return true;
        n--;
        if (n > maxlen || n > (uint64_t)(end - *q) ||
            !enc_sig_str_ok(*q, (size_t)n))
                return false;
        *s = (const char *)*q;
        *len = (size_t)n;
        *q += n;
        return true;
}

/* A block of three strings up to ENC_SIG_STRS3_BLOCK bytes comes from,
 * and goes back to, the plug-in's pool for its size class: 24, 40, 56, ...
 * bytes, the sizes malloc rounds a request to (enc_heap_bytes), so a
 * recycled block costs what an exact one did. Rounding every block up to
 * the largest cost a cached user about three times its discoveries' bytes
 * and the cache held fewer users: B1 read more. */
#define ENC_SIG_STRS3_CLASSES 8
#define ENC_SIG_STRS3_SIZE(k) ((size_t)24 + (size_t)16 * (size_t)(k))
#define ENC_SIG_STRS3_BLOCK   ENC_SIG_STRS3_SIZE(ENC_SIG_STRS3_CLASSES - 1)

/** The pools of enc_sig_strs3 blocks, one per size class. Zeroed = empty. */
typedef struct enc_sig_strs3_pools_s {
        enc_pool_t c[ENC_SIG_STRS3_CLASSES];
} enc_sig_strs3_pools_t;

/* The class of a block of @p bytes (<= ENC_SIG_STRS3_BLOCK). */
static inline int enc_sig_strs3_class(size_t bytes) {
        return bytes <= 24 ? 0 : (int)((bytes - 24 + 15) / 16);
}

/** Frees every kept block of @p p. */
static inline void enc_sig_strs3_clear(enc_sig_strs3_pools_t *p) {
        for (int i = 0; i < ENC_SIG_STRS3_CLASSES; i++)
                enc_pool_clear(&p->c[i]);
}

/** Copies three strings (@p v[i] of length @p len[i]; v[1] and v[2] may be
 *  NULL, v[0] may not) into one block, NUL-terminated, and points *a, *b,
 *  *c at them (*b, *c NULL for NULL); *bytes is what they take. *a owns
 *  the block: enc_sig_strs3_free(@p pools, *a, *bytes) frees all three.
 *  A block of up to ENC_SIG_STRS3_BLOCK bytes is a recycled one of its
 *  size class from @p pools (a discovery's item, recommendation id and
 *  cohort usually fit): no allocation per discovery in steady state.
 *  False, with nothing allocated, when out of memory. */
static inline bool enc_sig_strs3(enc_sig_strs3_pools_t *pools, char **a,
                                 char **b, char **c, const char *const v[3],
                                 const size_t len[3], uint32_t *bytes) {
        size_t total = 0;
        for (int i = 0; i < 3; i++)
                total += v[i] ? len[i] + 1 : 0;
        int k = enc_sig_strs3_class(total);
        char *w = total <= ENC_SIG_STRS3_BLOCK
                          ? enc_pool_get(&pools->c[k], ENC_SIG_STRS3_SIZE(k))
                          : malloc(total);
        if (!w)
                return false;
        *bytes = (uint32_t)total; /* ids are capped far below 4 GiB */
        char **dst[3] = {a, b, c};
        for (int i = 0; i < 3; i++) {
                *dst[i] = NULL;
                if (!v[i])
                        continue;
                memcpy(w, v[i], len[i]);
                w[len[i]] = '\0';
                *dst[i] = w;
                w += len[i] + 1;
        }
        return true;
}

/** Frees (or keeps in @p pools, which may be NULL) the block of
 *  enc_sig_strs3 that @p a starts, of @p bytes. */
static inline void enc_sig_strs3_free(enc_sig_strs3_pools_t *pools, char *a,
                                      uint32_t bytes) {
        if (a && bytes <= ENC_SIG_STRS3_BLOCK)
                enc_pool_put(pools ? &pools->c[enc_sig_strs3_class(bytes)]
                                   : NULL,
                             a);
        else
                free(a);
}

/** Heap bytes of an enc_sig_strs3 block of @p bytes (for state_bytes). */
static inline size_t enc_sig_strs3_heap(uint32_t bytes) {
        if (bytes > ENC_SIG_STRS3_BLOCK)
                return enc_heap_bytes(bytes);
        return enc_heap_bytes(ENC_SIG_STRS3_SIZE(enc_sig_strs3_class(bytes)));
}

/* ---- no allocation per event ------------------------------------------
 * A user's states come and go many times a day (a session closes, the last
 * play leaves a window) and each used to cost a calloc, a strdup per kept
 * string and the frees: most of the processing thread's heap calls in a
 * hot run (ops/bench/LIMITS.md). So short strings live inside the state
 * (enc_sig_str_t) and a plug-in keeps the blocks of its freed states for
 * the next ones (enc_pool_t, base/enc.h): in steady state an event
 * allocates nothing. Neither changes the stored form. */

/* Longest string kept inline, 32 bytes a string in all: cohorts
 * (ENC_LABEL_MAX 64, in practice a word or two) and 22-character catalogue
 * ids fit. Larger would cost every cached user the room, and a cache of
 * fewer users reads more. */
#define ENC_SIG_STR_INL 23

/** A string a state owns: inline up to ENC_SIG_STR_INL bytes, else one
 *  heap copy. It holds no pointer into itself, so a state may move
 *  (realloc of an array of them). Zeroed = absent (NULL). */
typedef struct enc_sig_str_s {
        char *heap; /* owned, when longer than the inline room */
        char inl[ENC_SIG_STR_INL + 1];
} enc_sig_str_t;

/** The string, borrowed from @p s; NULL when absent. */
static inline const char *enc_sig_str(const enc_sig_str_t *s) {
        return s->heap ? s->heap : s->inl[0] ? s->inl : NULL;
}

/* The empty string is kept on the heap so that inl[0] == 0 means absent. */
static inline bool enc_sig_str_setn(enc_sig_str_t *s, const char *v,
                                    size_t n) {
        if (!v) {
                free(s->heap);
                s->heap = NULL;
                s->inl[0] = '\0';
                return true;
        }
        if (n && n <= ENC_SIG_STR_INL) {
                free(s->heap);
                s->heap = NULL;
                memcpy(s->inl, v, n);
                s->inl[n] = '\0';
                return true;
        }
        char *h = malloc(n + 1);
        if (!h)
                return false;
        memcpy(h, v, n);
        h[n] = '\0';
        free(s->heap);
        s->heap = h;
        s->inl[0] = '\0';
        return true;
}

/** Sets @p s to a copy of @p v (NULL: absent). Allocates only for a
 *  string longer than the inline room that differs from the one held.
 *  False on allocation failure, leaving @p s unchanged. */
static inline bool enc_sig_str_set(enc_sig_str_t *s, const char *v) {
        const char *cur = enc_sig_str(s);
        if (cur == v || (cur && v && !strcmp(cur, v)))
                return true;
        return enc_sig_str_setn(s, v, v ? strlen(v) : 0);
}

/** Frees what @p s holds; it is absent after. */
static inline void enc_sig_str_free(enc_sig_str_t *s) {
        free(s->heap);
        s->heap = NULL;
        s->inl[0] = '\0';
}

/** Heap bytes @p s holds beyond itself (for state_bytes). */
static inline size_t enc_sig_str_heap(const enc_sig_str_t *s) {
        return enc_heap_str(s->heap);
}

/** Reads a stored string (enc_buf_put_str's form, checked as
 *  enc_sig_strref_get checks it) into @p s, which must be absent. */
static inline bool enc_sig_str_read(const uint8_t **q, const uint8_t *end,
                                    size_t maxlen, enc_sig_str_t *s) {
        const char *v;
        size_t n;
        return enc_sig_strref_get(q, end, maxlen, &v, &n) &&
               enc_sig_str_setn(s, v, n);
}

/** True if @p day (read from stored state) is within the sane range. */
static inline bool enc_sig_day_ok(int64_t day) {
        return day >= ENC_SIG_DAY_MIN && day <= ENC_SIG_DAY_MAX;
}

#endif /* ENC_SIGPRIV_H */
