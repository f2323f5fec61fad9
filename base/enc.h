/*
 * enc.h -- the vocabulary every encore module shares: the one error enum,
 * time helpers, bounded string helpers and the growable byte buffer.
 *
 * This header has no dependencies beyond libc, so pure modules (signals/,
 * schemas/) can include it without pulling in Kafka or RocksDB.
 */
#ifndef ENC_H
#define ENC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENC_WUR __attribute__((warn_unused_result))
#define ENC_PRINTF(a, b) __attribute__((format(printf, a, b)))

/*
 * The one error enum. 0 is success; every module converts the errors of the
 * libraries it wraps (RocksDB errptr, rd_kafka_resp_err_t, avro_strerror)
 * to one of these at its edge and puts the detail into an errstr.
 */
typedef enum enc_err_e {
        ENC_OK = 0,
        ENC_ERR_INVALID_ARG,   /* caller passed something malformed */
        ENC_ERR_NOMEM,         /* allocation failed */
        ENC_ERR_CONFIG,        /* bad configuration key or value */
        ENC_ERR_IO,            /* file or socket error */
        ENC_ERR_STATE,         /* RocksDB error */
        ENC_ERR_KAFKA,         /* librdkafka error */
        ENC_ERR_FENCED,        /* transactional producer fenced */
        ENC_ERR_DECODE,        /* record could not be decoded */
        ENC_ERR_BAD_MAGIC,     /* Confluent framing: first byte not 0 */
        ENC_ERR_UNKNOWN_SCHEMA, /* Confluent framing: schema id not ours */
        ENC_ERR_TRUNCATED,     /* record ends before its fields do */
        ENC_ERR_TOO_LARGE,     /* a length or size is over its cap */
        ENC_ERR_INVALID_FIELD, /* decoded, but a field value is invalid */
        ENC_ERR_LATE,          /* event is behind the watermark */
        ENC_ERR_DUPLICATE,     /* event id seen before */
        ENC_ERR_CORRUPT,       /* stored state cannot be parsed */
        ENC_ERR_NOT_FOUND,     /* key or item not present */
        ENC_ERR_TIMED_OUT,     /* an operation did not finish in time */
        ENC_ERR_ABORTED,       /* stopped on request */
        ENC_ERR__CNT
} enc_err_t;

/** Returns a static, human-readable name for @p err. Never NULL. */
const char *enc_err2str(enc_err_t err);

/** Formats into errstr (may be NULL or zero-sized) and returns @p err. */
enc_err_t enc_seterr(char *errstr, size_t errstr_size, enc_err_t err,
                     const char *fmt, ...) ENC_PRINTF(4, 5);

/* ---- time ----------------------------------------------------------- */

#define ENC_MS_PER_MIN ((int64_t)60 * 1000)
#define ENC_MS_PER_DAY ((int64_t)24 * 60 * 60 * 1000)

/** UTC day number (days since 1970-01-01) of @p ms, floor division. */
static inline int64_t enc_day_of(int64_t ms) {
        return ms >= 0 ? ms / ENC_MS_PER_DAY
                       : -((-ms + ENC_MS_PER_DAY - 1) / ENC_MS_PER_DAY);
}

/** First millisecond of UTC day @p day. */
static inline int64_t enc_day_start(int64_t day) {
        return day * ENC_MS_PER_DAY;
}

/** Formats @p ms as ISO-8601 UTC ("2026-11-21T10:00:00.000Z"). */
void enc_fmt_time(int64_t ms, char *buf, size_t size);

/* ---- bounded buffer ------------------------------------------------- */

/*
 * A growable byte buffer with a hard cap (curl's dynbuf): appends past the
 * cap fail with ENC_ERR_TOO_LARGE instead of growing without end.
 * Owns its storage; release with enc_buf_free().
 */
typedef struct enc_buf_s {
        uint8_t *data;
        size_t len;
        size_t cap;     /* allocated */
        size_t max;     /* hard limit; 0 means ENC_BUF_DEFAULT_MAX */
        bool failed;    /* sticky: an append failed, contents are partial */
} enc_buf_t;

#define ENC_BUF_DEFAULT_MAX ((size_t)16 * 1024 * 1024)

void enc_buf_init(enc_buf_t *b, size_t max);
void enc_buf_free(enc_buf_t *b);
static inline void enc_buf_reset(enc_buf_t *b) {
        b->len = 0;
        b->failed = false;
}
enc_err_t enc_buf_reserve(enc_buf_t *b, size_t extra) ENC_WUR;
enc_err_t enc_buf_append(enc_buf_t *b, const void *p, size_t n) ENC_WUR;

/* Fixed-width big-endian and varint helpers for state records. The put_*
 * functions record failure in b->failed (check once at the end); the get_*
 * functions advance *p and return false past @p end, never reading beyond. */
void enc_buf_put_u8(enc_buf_t *b, uint8_t v);
void enc_buf_put_u32be(enc_buf_t *b, uint32_t v);
void enc_buf_put_u64be(enc_buf_t *b, uint64_t v);
void enc_buf_put_varint(enc_buf_t *b, uint64_t v);
void enc_buf_put_svarint(enc_buf_t *b, int64_t v); /* zig-zag */
void enc_buf_put_double(enc_buf_t *b, double v);
void enc_buf_put_str(enc_buf_t *b, const char *s); /* varint len + bytes; NULL
                                                     is len 0 + flag */

bool enc_get_u8(const uint8_t **p, const uint8_t *end, uint8_t *v);
bool enc_get_u32be(const uint8_t **p, const uint8_t *end, uint32_t *v);
bool enc_get_u64be(const uint8_t **p, const uint8_t *end, uint64_t *v);
bool enc_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
bool enc_get_svarint(const uint8_t **p, const uint8_t *end, int64_t *v);
bool enc_get_double(const uint8_t **p, const uint8_t *end, double *v);
/** Reads a string written by enc_buf_put_str into a fresh malloc'd,
 *  NUL-terminated copy (caller frees; *s is NULL for a NULL string).
 *  Fails on lengths over @p maxlen. */
bool enc_get_str(const uint8_t **p, const uint8_t *end, size_t maxlen,
                 char **s);

static inline void enc_put_u32be(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}
static inline uint32_t enc_read_u32be(const uint8_t *p) {
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
               ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline void enc_put_u64be(uint8_t *p, uint64_t v) {
        enc_put_u32be(p, (uint32_t)(v >> 32));
        enc_put_u32be(p + 4, (uint32_t)v);
}
static inline uint64_t enc_read_u64be(const uint8_t *p) {
        return ((uint64_t)enc_read_u32be(p) << 32) | enc_read_u32be(p + 4);
}

/** Holds glibc's allocator to two arenas and a fixed 256 KiB mmap
 *  threshold (enc.c says why); no-op elsewhere. Call from the main thread
 *  before any other thread starts (encore's main, the benchmarks). */
void enc_malloc_tune(void);

/** @p on: raises glibc's mmap and trim thresholds for a bulk load (a
 *  changelog restore), so its large buffers are reused instead of mapped
 *  and faulted in anew each time; off: sets back enc_malloc_tune's
 *  thresholds and returns the free heap to the system (malloc_trim).
 *  Process-wide; any thread (glibc locks). No-op elsewhere. */
void enc_malloc_bulk(bool on);

/** strdup that returns NULL for NULL. Caller frees. */
char *enc_strdup0(const char *s);

/** What a malloc of @p n bytes takes from the heap (glibc: the request plus
 *  an 8-byte header, rounded up to 16, at least 32; 0 for 0, as nothing is
 *  allocated). For charging state against cache.max.bytes. */
static inline size_t enc_heap_bytes(size_t n) {
        if (!n)
                return 0;
        size_t c = (n + 8 + 15) & ~(size_t)15;
        return c < 32 ? 32 : c;
}

/** enc_heap_bytes of a copy of the string @p s (0 for NULL). */
static inline size_t enc_heap_str(const char *s) {
        return s ? enc_heap_bytes(strlen(s) + 1) : 0;
}

/* Blocks kept per pool at most: what a burst of ending states leaves for
 * the next ones, outside the cache budget (some hundred KiB in all). */
#define ENC_POOL_MAX 512

/** Freed blocks of one size, kept for reuse: the states of users come and
 *  go many times a day, and allocating each anew was most of the
 *  processing thread's heap calls. Zeroed = empty. Single-threaded: one
 *  owner (a plug-in instance) uses it. */
typedef struct enc_pool_s {
        void *head; /* free list, linked through each block's start */
        uint32_t n;
} enc_pool_t;

/** A zeroed block of @p size bytes (the pool's one size, at least a
 *  pointer): a kept one, else calloc'ed. NULL when out of memory. */
static inline void *enc_pool_get(enc_pool_t *p, size_t size) {
        void *b = p->head;
        if (!b)
                return calloc(1, size);
        p->head = *(void **)b;
        p->n--;
        memset(b, 0, size);
        return b;
}

/** Gives back @p b (NULL allowed; what it owns already freed): kept for
 *  the next enc_pool_get, or freed when the pool is full or @p p is NULL
 *  (a state freed without its instance). */
static inline void enc_pool_put(enc_pool_t *p, void *b) {
        if (!b)
                return;
        if (!p || p->n >= ENC_POOL_MAX) {
                free(b);
                return;
        }
        *(void **)b = p->head;
        p->head = b;
        p->n++;
}

/** Frees every kept block. */
static inline void enc_pool_clear(enc_pool_t *p) {
        while (p->head) {
                void *next = *(void **)p->head;
                free(p->head);
                p->head = next;
        }
        p->n = 0;
}

/** True if s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool enc_utf8_valid(const char *s, size_t len);

#endif /* ENC_H */
