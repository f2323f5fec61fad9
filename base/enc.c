/*
 * enc.c -- the shared vocabulary: error names, bounded buffers, the binary
 * primitives state records are built from, UTF-8 checking.
 *
 * DESIGN
 * Every reader here takes an explicit end pointer and returns false rather
 * than read past it; every writer grows a buffer only up to its hard cap and
 * then marks it failed. State records and wire records are untrusted input
 * (a corrupt RocksDB value, a fuzzer's bytes), so nothing in this file may
 * trust a length it has read.
 *
 * enc_malloc_tune: by default glibc gives every thread that allocates an
 * arena of its own (up to eight per core): RocksDB's flush and compaction
 * threads and librdkafka's threads each kept freed memory in theirs, and a
 * large buffer freed once moved the mmap threshold up to 32 MiB, so later
 * ones (write batches, memtable blocks) stayed in the heap after they were
 * freed. In `encore-bench mem` (10M users, cache.max.bytes 64 MiB) two
 * arenas alone took encore's peak RSS from 169 to 144 MiB; malloc_trim
 * after every commit was tried as well and changed nothing measurable.
 *
 * enc_malloc_bulk: the fixed threshold has a price in a changelog restore,
 * where every fetch buffer, memtable block, WriteBatch and table-file
 * buffer above 256 KiB was a fresh mapping faulted in page by page: about
 * a quarter of the restore's CPU, in the processing thread and in
 * librdkafka's fetchers alike (ops/bench/LIMITS.md, B3). While restores
 * run, the threshold is raised (big buffers are reused from the heap) and
 * set back after, with malloc_trim giving the freed heap back, so the
 * resident set of steady processing is what enc_malloc_tune makes it.
 */
#include "enc.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const enc_err_names[ENC_ERR__CNT] = {
    [ENC_OK] = "ok",
    [ENC_ERR_INVALID_ARG] = "invalid argument",
    [ENC_ERR_NOMEM] = "out of memory",
    [ENC_ERR_CONFIG] = "configuration error",
    [ENC_ERR_IO] = "I/O error",
    [ENC_ERR_STATE] = "state store error",
    [ENC_ERR_KAFKA] = "Kafka error",
    [ENC_ERR_FENCED] = "producer fenced",
    [ENC_ERR_DECODE] = "undecodable record",
    [ENC_ERR_BAD_MAGIC] = "bad magic byte",
    [ENC_ERR_UNKNOWN_SCHEMA] = "unknown schema id",
    [ENC_ERR_TRUNCATED] = "truncated record",
    [ENC_ERR_TOO_LARGE] = "too large",
    [ENC_ERR_INVALID_FIELD] = "invalid field",
    [ENC_ERR_LATE] = "late event",
    [ENC_ERR_DUPLICATE] = "duplicate event",
    [ENC_ERR_CORRUPT] = "corrupt state",
    [ENC_ERR_NOT_FOUND] = "not found",
    [ENC_ERR_TIMED_OUT] = "timed out",
    [ENC_ERR_ABORTED] = "aborted",
};

const char *enc_err2str(enc_err_t err) {
        if ((int)err < 0 || err >= ENC_ERR__CNT || !enc_err_names[err])
                return "unknown error";
        return enc_err_names[err];
}

enc_err_t enc_seterr(char *errstr, size_t errstr_size, enc_err_t err,
                     const char *fmt, ...) {
        if (errstr && errstr_size > 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(errstr, errstr_size, fmt, ap);
                va_end(ap);
        }
        return err;
}

void enc_fmt_time(int64_t ms, char *buf, size_t size) {
        time_t secs = (time_t)enc_day_of(ms) * 86400 +
                      (time_t)((ms - enc_day_start(enc_day_of(ms))) / 1000);
        int64_t frac = ms - (int64_t)secs * 1000;
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)frac);
}

/* ---- bounded buffer ------------------------------------------------- */

/* enc_malloc_tune's threshold, and glibc's default trim threshold (which a
 * fixed mmap threshold leaves as it is). */
#define ENC_MALLOC_MMAP_THRESHOLD (256 * 1024)
#define ENC_MALLOC_TRIM_THRESHOLD (128 * 1024)
/* While a restore runs: glibc's largest mmap threshold (32 MiB on 64-bit
 * hosts), and a trim threshold above it so the heap's top is not given
 * back and faulted in again between one batch and the next. */
#define ENC_MALLOC_BULK_MMAP_THRESHOLD (4 * 1024 * 1024)
#define ENC_MALLOC_BULK_TRIM_THRESHOLD (8 * 1024 * 1024)

void enc_malloc_tune(void) {
#ifdef __GLIBC__
        /* Allocations of 256 KiB or more are mapped and unmapped on their
         * own, so freeing one returns it at once. */
        mallopt(M_ARENA_MAX, 2);
        mallopt(M_MMAP_THRESHOLD, ENC_MALLOC_MMAP_THRESHOLD);
#endif
}

void enc_malloc_bulk(bool on) {
#ifdef __GLIBC__
        if (on) {
                mallopt(M_MMAP_THRESHOLD, ENC_MALLOC_BULK_MMAP_THRESHOLD);
                mallopt(M_TRIM_THRESHOLD, ENC_MALLOC_BULK_TRIM_THRESHOLD);
                return;
        }
        mallopt(M_MMAP_THRESHOLD, ENC_MALLOC_MMAP_THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, ENC_MALLOC_TRIM_THRESHOLD);
        malloc_trim(0);
#else
        (void)on;
#endif
}

void enc_buf_init(enc_buf_t *b, size_t max) {
        memset(b, 0, sizeof(*b));
        b->max = max ? max : ENC_BUF_DEFAULT_MAX;
}

void enc_buf_free(enc_buf_t *b) {
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

enc_err_t enc_buf_reserve(enc_buf_t *b, size_t extra) {
        size_t max = b->max ? b->max : ENC_BUF_DEFAULT_MAX;
        if (extra > max || b->len > max - extra) {
                b->failed = true;
                return ENC_ERR_TOO_LARGE;
        }
        size_t need = b->len + extra;
        if (need <= b->cap)
                return ENC_OK;
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < need)
                ncap = ncap > max / 2 ? max : ncap * 2;
        uint8_t *nd = realloc(b->data, ncap);
        if (!nd) {
                b->failed = true;
                return ENC_ERR_NOMEM;
        }
        b->data = nd;
        b->cap = ncap;
        return ENC_OK;
}

enc_err_t enc_buf_append(enc_buf_t *b, const void *p, size_t n) {
        enc_err_t err = enc_buf_reserve(b, n);
        if (err)
                return err;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        return ENC_OK;
}

/* The put_* writers: a failure is recorded in b->failed (sticky), which the
 * caller checks once after a whole record. */
static void enc_buf_add(enc_buf_t *b, const void *p, size_t n) {
        if (enc_buf_append(b, p, n) != ENC_OK)
                b->failed = true;
}

void enc_buf_put_u8(enc_buf_t *b, uint8_t v) {
        enc_buf_add(b, &v, 1);
}

void enc_buf_put_u32be(enc_buf_t *b, uint32_t v) {
        uint8_t tmp[4];
        enc_put_u32be(tmp, v);
        enc_buf_add(b, tmp, 4);
}

void enc_buf_put_u64be(enc_buf_t *b, uint64_t v) {
        uint8_t tmp[8];
        enc_put_u64be(tmp, v);
        enc_buf_add(b, tmp, 8);
}

void enc_buf_put_varint(enc_buf_t *b, uint64_t v) {
        uint8_t tmp[10];
        size_t n = 0;
        while (v >= 0x80) {
                tmp[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        tmp[n++] = (uint8_t)v;
        enc_buf_add(b, tmp, n);
}

void enc_buf_put_svarint(enc_buf_t *b, int64_t v) {
        enc_buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void enc_buf_put_double(enc_buf_t *b, double v) {
        uint64_t u;
        memcpy(&u, &v, sizeof(u));
        enc_buf_put_u64be(b, u);
}

/* A string is varint(len + 1) then the bytes; 0 encodes NULL. */
void enc_buf_put_str(enc_buf_t *b, const char *s) {
        if (!s) {
                enc_buf_put_varint(b, 0);
                return;
        }
        size_t n = strlen(s);
        enc_buf_put_varint(b, (uint64_t)n + 1);
        enc_buf_add(b, s, n);
}

bool enc_get_u8(const uint8_t **p, const uint8_t *end, uint8_t *v) {
        if (end - *p < 1)
                return false;
        *v = **p;
        (*p)++;
        return true;
}

bool enc_get_u32be(const uint8_t **p, const uint8_t *end, uint32_t *v) {
        if (end - *p < 4)
                return false;
        *v = enc_read_u32be(*p);
        *p += 4;
        return true;
}

bool enc_get_u64be(const uint8_t **p, const uint8_t *end, uint64_t *v) {
        if (end - *p < 8)
                return false;
        *v = enc_read_u64be(*p);
        *p += 8;
        return true;
}

bool enc_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
        uint64_t r = 0;
        for (int shift = 0; shift < 64; shift += 7) {
                if (*p >= end)
                        return false;
                uint8_t c = *(*p)++;
                r |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *v = r;
                        return true;
                }
        }
        return false; /* more than 10 bytes: malformed */
}

bool enc_get_svarint(const uint8_t **p, const uint8_t *end, int64_t *v) {
        uint64_t u;
        if (!enc_get_varint(p, end, &u))
                return false;
        *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        return true;
}

bool enc_get_double(const uint8_t **p, const uint8_t *end, double *v) {
        uint64_t u;
        if (!enc_get_u64be(p, end, &u))
                return false;
        memcpy(v, &u, sizeof(*v));
        return true;
}

bool enc_get_str(const uint8_t **p, const uint8_t *end, size_t maxlen,
                 char **s) {
        uint64_t n;
        *s = NULL;
        if (!enc_get_varint(p, end, &n))
                return false;
        if (n == 0)
                return true;
        n--;
        if (n > maxlen || (uint64_t)(end - *p) < n)
                return false;
        char *r = malloc((size_t)n + 1);
        if (!r)
                return false;
        memcpy(r, *p, (size_t)n);
        r[n] = '\0';
        *p += n;
        *s = r;
        return true;
}

char *enc_strdup0(const char *s) {
        return s ? strdup(s) : NULL;
}

bool enc_utf8_valid(const char *str, size_t len) {
        const unsigned char *s = (const unsigned char *)str;
        /* Ids and labels are ASCII nearly always, and short: OR the whole
         * string together a word at a time (the last word overlapping) and
         * look at the high bits once. Only a string with a byte >= 0x80
         * takes the loop below. */
        uint64_t acc = 0;
        if (len >= 8) {
                uint64_t w;
                for (size_t k = 0; k + 8 <= len; k += 8) {
                        memcpy(&w, s + k, 8);
                        acc |= w;
                }
                memcpy(&w, s + len - 8, 8);
                acc |= w;
        } else {
                for (size_t k = 0; k < len; k++)
                        acc |= s[k];
        }
        if (!(acc & 0x8080808080808080ULL))
                return true;
        size_t i = 0;
        while (i < len) {
                unsigned char c = s[i];
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t n;
                uint32_t cp;
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if (len - i <= n)
                        return false;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n + 1;
        }
        return true;
}
