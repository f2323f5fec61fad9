/*
 * harness.h -- helpers shared by encore's tests: temporary directories,
 * building PlayEvents and records, and a sink that collects what the engine
 * emits. Header-only (static functions) so each test executable stays one
 * file plus this.
 */
#ifndef ENC_TEST_HARNESS_H
#define ENC_TEST_HARNESS_H

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "config.h"
#include "engine.h"
#include "store.h"

/* 2026-01-05T00:00:00Z: day number 20458. */
#define T_DAY0 ((int64_t)1767571200000)
#define T_DAY(d) (T_DAY0 + (int64_t)(d)*86400000)
#define T_AT(d, h, m) (T_DAY(d) + (int64_t)(h)*3600000 + (int64_t)(m)*60000)

static int t_rm_cb(const char *path, const struct stat *sb, int flag,
                   struct FTW *ftw) {
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(path);
}

/** Removes a directory tree. */
static inline void t_rmtree(const char *dir) {
        nftw(dir, t_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/** mkdtemp under /tmp; caller frees and t_rmtree()s. */
static inline char *t_tmpdir(const char *tag) {
        char *d = malloc(128);
        snprintf(d, 128, "/tmp/encore-test-%s-XXXXXX", tag);
        assert_non_null(mkdtemp(d));
        return d;
}

/** A qualified-by-default play event; fields can be changed after. */
static inline enc_event_t t_play(const char *event_id, const char *user,
                                 int64_t time, int64_t ms_played) {
        enc_event_t ev = {
                .event_id = event_id,
                .user_id = user,
                .track_id = "t1",
                .artist_id = "a1",
                .event_time = time,
                .ms_played = ms_played,
                .track_duration_ms = 200000,
                .reason_end = ENC_END_TRACK_DONE,
                .source = ENC_SRC_LIBRARY,
                .surface = "home",
                .recommendation_id = NULL,
                .cohort = NULL,
        };
        return ev;
}

/* ---- a sink that keeps everything ----------------------------------- */

typedef struct t_out_s {
        char key[64];
        uint8_t *val;
        size_t len;
        int32_t in_partition;
} t_out_t;

typedef struct t_sink_s {
        t_out_t *outs;
        size_t n, cap;
        uint64_t dlq[ENC_DLQ__CNT];
        uint64_t dlq_total;
        int64_t last_dlq_offset;
        enc_dlq_reason_t last_dlq_reason;
} t_sink_t;

static enc_err_t t_sink_output(void *opaque, int32_t in_partition,
                               const char *key, size_t key_len,
                               const void *val, size_t val_len,
                               const enc_update_t *up) {
        (void)up;
        t_sink_t *s = opaque;
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 256;
                s->outs = realloc(s->outs, s->cap * sizeof(*s->outs));
                assert_non_null(s->outs);
        }
        t_out_t *o = &s->outs[s->n++];
        snprintf(o->key, sizeof(o->key), "%.*s", (int)key_len, key);
        o->val = malloc(val_len);
        memcpy(o->val, val, val_len);
        o->len = val_len;
        o->in_partition = in_partition;
        return ENC_OK;
}

static enc_err_t t_sink_dlq(void *opaque, const enc_dead_letter_t *dl) {
        t_sink_t *s = opaque;
        s->dlq[dl->reason]++;
        s->dlq_total++;
        s->last_dlq_offset = dl->rec->offset;
        s->last_dlq_reason = dl->reason;
        return ENC_OK;
}

static inline enc_engine_sink_t t_sink_of(t_sink_t *s) {
        enc_engine_sink_t k = {.output = t_sink_output,
                               .dead_letter = t_sink_dlq,
                               .opaque = s};
        return k;
}

static inline void t_sink_free(t_sink_t *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->outs[i].val);
        free(s->outs);
        memset(s, 0, sizeof(*s));
}

/* ---- configuration -------------------------------------------------- */

/** New conf from "k=v" strings, NULL-terminated; fails the test on error. */
static inline enc_conf_t *t_conf(const char *kv, ...) {
        enc_conf_t *c = enc_conf_new();
        char err[256];
        va_list ap;
        va_start(ap, kv);
        for (const char *s = kv; s; s = va_arg(ap, const char *)) {
                if (enc_conf_set_kv(c, s, err, sizeof(err))) {
                        fprintf(stderr, "t_conf: %s\n", err);
                        fail();
                }
        }
        va_end(ap);
        return c;
}

#endif /* ENC_TEST_HARNESS_H */
