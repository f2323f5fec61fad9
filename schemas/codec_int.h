/*
 * codec_int.h -- what codec.c and resolve.c share inside schemas/: the
 * PlayEvent field table and the bounded scan primitives. Not installed,
 * not included outside schemas/.
 *
 * The primitives are static inline so the hot scan in codec.c compiles as
 * before (one translation unit's worth of inlining), and the resolving
 * scan in resolve.c reads writer bytes with exactly the same checks: a
 * string is refused the same way whichever schema wrote it.
 */
#ifndef ENC_CODEC_INT_H
#define ENC_CODEC_INT_H

#include <avro.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "enc.h"
#include "event.h"

typedef enum fkind_e {
        FK_STRING,     /* "string" */
        FK_OPT_STRING, /* ["null","string"] */
        FK_LONG,       /* "long" (possibly timestamp-millis) */
        FK_INT,        /* "int" */
        FK_DOUBLE,     /* "double" */
        FK_OPT_DOUBLE, /* ["null","double"] */
        FK_BOOL,       /* "boolean" */
        FK_ENUM,       /* enum; symbols from sym() */
        FK_MAP_DOUBLE, /* {"type":"map","values":"double"} */
} fkind_t;

typedef struct fdesc_s {
        const char *name;
        fkind_t kind;
        size_t cap;                /* strings and map keys: max bytes */
        int nsym;                  /* FK_ENUM: symbol count */
        const char *(*sym)(int i); /* FK_ENUM: i-th symbol */
} fdesc_t;

enum {
        EV_EVENT_ID,
        EV_USER_ID,
        EV_TRACK_ID,
        EV_ARTIST_ID,
        EV_EVENT_TIME,
        EV_MS_PLAYED,
        EV_TRACK_DURATION_MS,
        EV_REASON_END,
        EV_SOURCE,
        EV_SURFACE,
        EV_RECOMMENDATION_ID,
        EV_COHORT,
        EV__CNT
};

/* encore's PlayEvent, field by field, in its schema's order (codec.c). */
extern const fdesc_t enc_codec_ev_fields[EV__CNT];

typedef struct scan_s {
        const uint8_t *p;
        const uint8_t *end;
        const char *what;  /* record name */
        const char *field; /* field being read, for errors */
        char *errstr;
        size_t errstr_size;
} scan_t;

/*
 * What the scan saw of one field, so the fast path can take the values
 * without a second walk: a string's bytes (inside the input, not
 * NUL-terminated), an integer (long, int, enum index, boolean byte), a
 * double as the address of its 8 bytes in str, a map as its byte range.
 * present is false for the null branch of a union.
 */
typedef struct scan_val_s {
        const uint8_t *str;
        size_t len;
        int64_t i;
        bool present;
} scan_val_t;

enc_err_t enc_scan_fail(scan_t *s, enc_err_t err, const char *fmt, ...)
        ENC_PRINTF(3, 4);

/* Avro long: zig-zag varint of at most 10 bytes (as Avro C reads it). Most
 * values on the wire (lengths, enum and union indexes) fit one byte. */
static inline enc_err_t scan_long(scan_t *s, int64_t *v) {
        uint64_t u = 0;
        *v = 0;
        if (s->p < s->end && !(*s->p & 0x80)) {
                u = *s->p++;
                *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
                return ENC_OK;
        }
        for (int i = 0; i < 10; i++) {
                if (s->p >= s->end)
                        return enc_scan_fail(s, ENC_ERR_TRUNCATED,
                                             "record ends inside a varint");
                uint8_t b = *s->p++;
                u |= (uint64_t)(b & 0x7f) << (7 * i);
                if (!(b & 0x80)) {
                        *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
                        return ENC_OK;
                }
        }
        return enc_scan_fail(s, ENC_ERR_DECODE, "varint longer than 10 bytes");
}

static inline enc_err_t scan_string(scan_t *s, size_t cap, const uint8_t **str,
                                    size_t *len) {
        int64_t n;
        enc_err_t err = scan_long(s, &n);
        if (err)
                return err;
        if (n < 0)
                return enc_scan_fail(s, ENC_ERR_DECODE,
                                     "negative string length %" PRId64, n);
        if ((uint64_t)n > cap)
                return enc_scan_fail(s, ENC_ERR_TOO_LARGE,
                                     "string of %" PRId64
                                     " bytes is over the cap of %zu",
                                     n, cap);
        if ((uint64_t)n > (uint64_t)(s->end - s->p))
                return enc_scan_fail(s, ENC_ERR_TRUNCATED,
                                     "string of %" PRId64
                                     " bytes but only %zu left",
                                     n, (size_t)(s->end - s->p));
        /* A C string cannot carry a NUL; refusing it keeps the decoded
         * value and its bytes in one-to-one correspondence. */
        if (memchr(s->p, 0, (size_t)n))
                return enc_scan_fail(s, ENC_ERR_DECODE,
                                     "string holds a NUL byte");
        *str = s->p;
        *len = (size_t)n;
        s->p += n;
        return ENC_OK;
}

static inline enc_err_t scan_fixed(scan_t *s, size_t n, const char *what) {
        if ((size_t)(s->end - s->p) < n)
                return enc_scan_fail(s, ENC_ERR_TRUNCATED,
                                     "record ends inside a %s", what);
        s->p += n;
        return ENC_OK;
}

/* Union ["null", X]: returns 0 (null) or 1 (X) in *branch. */
static inline enc_err_t scan_opt(scan_t *s, int *branch) {
        int64_t d;
        enc_err_t err = scan_long(s, &d);
        if (err)
                return err;
        if (d != 0 && d != 1)
                return enc_scan_fail(s, ENC_ERR_DECODE,
                                     "union index %" PRId64 " not 0 or 1", d);
        *branch = (int)d;
        return ENC_OK;
}

/* Count of an array or map block (Avro spec): a negative count is
 * followed by the block's size in bytes, which neither scan needs; *cnt
 * is the count made positive, 0 for the closing block. @p bad is the
 * message for a count of INT64_MIN, which has no positive form. */
static inline enc_err_t scan_block_count(scan_t *s, int64_t *cnt,
                                         const char *bad) {
        int64_t bytes;
        enc_err_t err = scan_long(s, cnt);
        if (err)
                return err;
        if (*cnt < 0) {
                if (*cnt == INT64_MIN)
                        return enc_scan_fail(s, ENC_ERR_DECODE, "%s", bad);
                *cnt = -*cnt;
                if ((err = scan_long(s, &bytes)))
                        return err;
        }
        return ENC_OK;
}

/* ---- writer schemas (resolve.c) ------------------------------------ */

/* A PlayEvent writer schema compiled against encore's reader schema by
 * Avro's resolution rules. Immutable once built; owned by the codec. */
typedef struct enc_wprog_s enc_wprog_t;

/**
 * Compiles writer schema @p json (@p len bytes; borrowed for the call)
 * against encore's PlayEvent. @p names[k] is the writer field read as
 * encore field k (NULL: the same name). Returns NULL and fills errstr
 * (naming the fields involved) if the schemas do not resolve. Caller
 * destroys with enc_wprog_destroy().
 */
enc_wprog_t *enc_wprog_new(const char *json, size_t len,
                           const char *const names[EV__CNT], char *errstr,
                           size_t errstr_size);
void enc_wprog_destroy(enc_wprog_t *w);

/** True if the writer's bytes are laid out exactly as encore's schema's
 *  (same fields in the same order with the same types and symbols), so
 *  the canonical scan reads them. */
bool enc_wprog_is_canonical(const enc_wprog_t *w);

/**
 * Scans one record written with @p w's schema, filling vals[k] for every
 * encore field k (defaults for fields the writer lacks). Same caps and
 * errors as the canonical scan; an enum symbol encore does not know, or a
 * union branch encore cannot read, is ENC_ERR_INVALID_FIELD naming it.
 * Allocates nothing.
 */
enc_err_t enc_wprog_scan(const enc_wprog_t *w, const uint8_t *body, size_t len,
                         scan_val_t vals[EV__CNT], char *errstr,
                         size_t errstr_size);

#endif /* ENC_CODEC_INT_H */
