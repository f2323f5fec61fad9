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

/** Replaces *dst (owned, may be NULL) with a copy of @p s (NULL allowed).
 *  Returns false on allocation failure, leaving *dst unchanged. */
static inline bool enc_sig_setstr(char **dst, const char *s) {
        if (enc_sig_streq(*dst, s))
                return true;
        char *n = NULL;
        if (s && !(n = strdup(s)))
                return false;
        free(*dst);
        *dst = n;
        return true;
}

/** enc_get_str for stored state, which also refuses a string that is not
 *  valid UTF-8. Every string a signal stores ends up in an update, and the
 *  codec will not encode invalid UTF-8; the engine treats that failure as
 *  fatal, so a damaged record accepted here would stop the process on every
 *  restart. Refused, the record is corrupt and the user starts over. */
static inline bool enc_sig_get_str(const uint8_t **p, const uint8_t *end,
                                   size_t maxlen, char **s) {
        if (!enc_get_str(p, end, maxlen, s))
                return false;
        if (*s && !enc_utf8_valid(*s, strlen(*s))) {
                free(*s);
                *s = NULL;
                return false;
        }
        return true;
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

/** Copies three strings (@p v[i] of length @p len[i]; v[1] and v[2] may be
 *  NULL, v[0] may not) into one allocation, NUL-terminated, and points
 *  *a, *b, *c at them (*b, *c NULL for NULL); *bytes is the block's size.
 *  *a owns the block: free(*a) frees all three. False, with nothing
 *  allocated, when out of memory. A discovery's item, recommendation id and
 *  cohort are kept this way. */
static inline bool enc_sig_strs3(char **a, char **b, char **c,
                                 const char *const v[3], const size_t len[3],
                                 uint32_t *bytes) {
        size_t total = 0;
        for (int i = 0; i < 3; i++)
                total += v[i] ? len[i] + 1 : 0;
        char *w = malloc(total);
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

/** True if @p day (read from stored state) is within the sane range. */
static inline bool enc_sig_day_ok(int64_t day) {
        return day >= ENC_SIG_DAY_MIN && day <= ENC_SIG_DAY_MAX;
}

#endif /* ENC_SIGPRIV_H */
