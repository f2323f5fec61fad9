/*
 * event.c -- the in-memory records: enum names, owned copies, field
 * validation and deterministic update ids.
 *
 * DESIGN
 * The codec (codec.c) only checks that bytes form a well-shaped record; this
 * file decides whether the values in it make sense. Keeping the two apart
 * lets a future hand-written decoder be checked byte for byte against Avro C
 * while the rules about what a plausible play looks like live in one place.
 *
 * Invariants:
 * - The enum symbol names here are the .avsc symbols, in the same order;
 *   enc_codec_new() refuses to start if play_event.avsc disagrees.
 * - enc_update_make_id() is a pure function of its inputs (no clock, no
 *   randomness, no addresses): a replay must reproduce every id. Changing
 *   what it hashes changes every id ever emitted, so it never changes
 *   within a signal version.
 * - Validation reads at most cap + 1 bytes of any string, so a missing NUL
 *   in a corrupt event costs a bounded scan, never a walk off the heap.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "event.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Inclusive bounds on event_time: 2006-01-01T00:00:00Z (no streaming
 * service's logs reach further back) and 2100-01-01T00:00:00Z. */
#define ENC_EVENT_TIME_MIN INT64_C(1136073600000)
#define ENC_EVENT_TIME_MAX INT64_C(4102444800000)

static const char *const enc_reason_end_names[ENC_END__CNT] = {
        [ENC_END_TRACK_DONE] = "TRACK_DONE",
        [ENC_END_FORWARD] = "FORWARD",
        [ENC_END_BACK] = "BACK",
        [ENC_END_END_PLAY] = "END_PLAY",
        [ENC_END_LOGOUT] = "LOGOUT",
        [ENC_END_UNKNOWN] = "UNKNOWN",
};

static const char *const enc_source_names[ENC_SRC__CNT] = {
        [ENC_SRC_RECOMMENDATION] = "RECOMMENDATION",
        [ENC_SRC_SEARCH] = "SEARCH",
        [ENC_SRC_LIBRARY] = "LIBRARY",
        [ENC_SRC_PLAYLIST] = "PLAYLIST",
        [ENC_SRC_RADIO] = "RADIO",
        [ENC_SRC_OTHER] = "OTHER",
};

/* An out-of-range value gets "INVALID", not "UNKNOWN": UNKNOWN is a real
 * ReasonEnd symbol and must not be confused with garbage. Never NULL. */
const char *enc_reason_end_name(enc_reason_end_t r) {
        if ((int)r < 0 || r >= ENC_END__CNT)
                return "INVALID";
        return enc_reason_end_names[r];
}

const char *enc_source_name(enc_source_t s) {
        if ((int)s < 0 || s >= ENC_SRC__CNT)
                return "INVALID";
        return enc_source_names[s];
}

/* ---- dup ------------------------------------------------------------ */

static size_t str_size0(const char *s) {
        return s ? strlen(s) + 1 : 0;
}

/* Copies s (may be NULL) to *pos and advances it; returns the copy. */
static const char *put_str(char **pos, const char *s) {
        if (!s)
                return NULL;
        size_t n = strlen(s) + 1;
        char *d = *pos;
        memcpy(d, s, n);
        *pos += n;
        return d;
}

/* Layout: [enc_event_t][event_id\0][user_id\0]...; the strings follow the
 * struct in the same block so one free() releases everything. */
enc_event_t *enc_event_dup(const enc_event_t *ev) {
        if (!ev)
                return NULL;
        size_t need = sizeof(*ev) + str_size0(ev->event_id) +
                      str_size0(ev->user_id) + str_size0(ev->track_id) +
                      str_size0(ev->artist_id) + str_size0(ev->surface) +
                      str_size0(ev->recommendation_id) + str_size0(ev->cohort);
        enc_event_t *d = malloc(need);
        if (!d)
                return NULL;
        *d = *ev;
        char *pos = (char *)(d + 1);
        d->event_id = put_str(&pos, ev->event_id);
        d->user_id = put_str(&pos, ev->user_id);
        d->track_id = put_str(&pos, ev->track_id);
        d->artist_id = put_str(&pos, ev->artist_id);
        d->surface = put_str(&pos, ev->surface);
        d->recommendation_id = put_str(&pos, ev->recommendation_id);
        d->cohort = put_str(&pos, ev->cohort);
        return d;
}

/* ---- validate ------------------------------------------------------- */

/* One string field. @p required: NULL is an error (nullable fields pass
 * NULL through). @p nonempty: "" is an error. */
static enc_err_t check_str(const char *field, const char *s, size_t cap,
                           bool required, bool nonempty, char *errstr,
                           size_t errstr_size) {
        if (!s) {
                if (!required)
                        return ENC_OK;
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_FIELD,
                                  "field %s: missing", field);
        }
        size_t n = strnlen(s, cap + 1);
        if (n == 0 && nonempty)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_FIELD,
                                  "field %s: empty", field);
        if (n > cap)
                return enc_seterr(errstr, errstr_size, ENC_ERR_TOO_LARGE,
                                  "field %s: longer than %zu bytes", field,
                                  cap);
        if (!enc_utf8_valid(s, n))
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_FIELD,
                                  "field %s: not valid UTF-8", field);
        return ENC_OK;
}

static enc_err_t check_range(const char *field, int64_t v, int64_t lo,
                             int64_t hi, char *errstr, size_t errstr_size) {
        if (v < lo || v > hi)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_FIELD,
                                  "field %s: %" PRId64 " outside [%" PRId64
                                  ", %" PRId64 "]",
                                  field, v, lo, hi);
        return ENC_OK;
}

/* Checks in schema field order, so the first bad field is the one named.
 * Thread-safe: reads only @p ev. */
enc_err_t enc_event_validate(const enc_event_t *ev, char *errstr,
                             size_t errstr_size) {
        enc_err_t err;
        if (!ev)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "no event");
#define CHECK(expr)                                                            \
        do {                                                                   \
                if ((err = (expr)) != ENC_OK)                                  \
                        return err;                                            \
        } while (0)
        CHECK(check_str("event_id", ev->event_id, ENC_ID_MAX, true, true,
                        errstr, errstr_size));
        CHECK(check_str("user_id", ev->user_id, ENC_ID_MAX, true, true, errstr,
                        errstr_size));
        CHECK(check_str("track_id", ev->track_id, ENC_ID_MAX, true, true,
                        errstr, errstr_size));
        CHECK(check_str("artist_id", ev->artist_id, ENC_ID_MAX, true, true,
                        errstr, errstr_size));
        CHECK(check_range("event_time", ev->event_time, ENC_EVENT_TIME_MIN,
                          ENC_EVENT_TIME_MAX, errstr, errstr_size));
        CHECK(check_range("ms_played", ev->ms_played, 0, ENC_MS_PER_DAY, errstr,
                          errstr_size));
        CHECK(check_range("track_duration_ms", ev->track_duration_ms, 0,
                          ENC_MS_PER_DAY, errstr, errstr_size));
        CHECK(check_range("reason_end", (int64_t)ev->reason_end, 0,
                          ENC_END__CNT - 1, errstr, errstr_size));
        CHECK(check_range("source", (int64_t)ev->source, 0, ENC_SRC__CNT - 1,
                          errstr, errstr_size));
        /* surface is a required Avro string, but "" is a legal value. */
        CHECK(check_str("surface", ev->surface, ENC_LABEL_MAX, true, false,
                        errstr, errstr_size));
        CHECK(check_str("recommendation_id", ev->recommendation_id, ENC_ID_MAX,
                        false, false, errstr, errstr_size));
        CHECK(check_str("cohort", ev->cohort, ENC_LABEL_MAX, false, false,
                        errstr, errstr_size));
#undef CHECK
        return ENC_OK;
}

/* ---- update id ------------------------------------------------------ */

/* The decimal digits of @p v at @p p (at most 20 bytes); returns how
 * many. printf's %lld without its cost: ids are made for every update. */
static size_t enc_put_dec(char *p, int64_t v) {
        char tmp[20];
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        size_t n = 0, k = 0;
        do {
                tmp[n++] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                p[k++] = '-';
        while (n)
                p[k++] = tmp[--n];
        return k;
}

/*
 * The id is XXH3-128 (seed 0) over
 *   user_id \0 signal \0 dec(signal_version) \0 subject-or-"" \0
 *   dec(sequence) \0 dec(event_time)
 * (no trailing NUL), printed as 32 lowercase hex chars, high 64 bits
 * first -- the same text `xxh128sum` prints for those bytes. The bytes are
 * laid out in a stack buffer and hashed in one call (the streaming API and
 * snprintf cost more than the hash for these short inputs). NULL strings
 * hash as "".
 */
void enc_update_make_id(enc_update_t *up) {
        static const char nul = '\0';
        char ver[24], seq[24], at[24];
        struct {
                const char *p;
                size_t n;
        } part[11] = {
                {up->user_id ? up->user_id : "", 0},
                {&nul, 1},
                {up->signal ? up->signal : "", 0},
                {&nul, 1},
                {ver, enc_put_dec(ver, up->signal_version)},
                {&nul, 1},
                {up->subject ? up->subject : "", 0},
                {&nul, 1},
                {seq, enc_put_dec(seq, up->sequence)},
                {&nul, 1},
                {at, enc_put_dec(at, up->event_time)},
        };
        size_t total = 0;
        for (int k = 0; k < 11; k++) {
                if (k == 0 || k == 2 || k == 6)
                        part[k].n = strlen(part[k].p);
                total += part[k].n;
        }
        /* One call over a stack copy; ids, names and subjects are capped
         * far below its size, and anything longer is streamed. */
        char buf[1024];
        XXH128_hash_t h;
        if (total <= sizeof(buf)) {
                char *pos = buf;
                for (int k = 0; k < 11; k++) {
                        memcpy(pos, part[k].p, part[k].n);
                        pos += part[k].n;
                }
                h = XXH3_128bits(buf, total);
        } else {
                XXH3_state_t st;
                (void)XXH3_128bits_reset(&st);
                for (int k = 0; k < 11; k++)
                        (void)XXH3_128bits_update(&st, part[k].p, part[k].n);
                h = XXH3_128bits_digest(&st);
        }

        static const char hex[] = "0123456789abcdef";
        for (int k = 0; k < 16; k++) {
                up->update_id[k] = hex[(h.high64 >> (60 - 4 * k)) & 15];
                up->update_id[16 + k] = hex[(h.low64 >> (60 - 4 * k)) & 15];
        }
        up->update_id[32] = '\0';
}
