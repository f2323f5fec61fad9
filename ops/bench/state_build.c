/*
 * state_build.c -- millions of users of state on disk, in seconds, for the
 * benchmarks that need a big store (b3, mem) rather than the time it takes
 * encore to build one.
 *
 * DESIGN
 * Real user records come from the real engine: 1024 template users of the
 * synthetic population play once each, spread over the nine days before
 * t0; one more play per partition at t0 moves every watermark to t0 - grace,
 * so their sessions close and every timer due by then fires, as in a
 * process that has been running for days. Their records (every default
 * signal's state, encoded by encore) and wake times are read back from the
 * template store. Then user i of the target store gets template i mod 1024's
 * record under its own key (u<i>, partitioned as the feeder partitions it)
 * and a timer key at that record's wake. The wakes fall on day boundaries
 * after t0 (active_days decays and the like), so a live phase that starts
 * at t0 and stays within the day meets no timer storm.
 *
 * What this does not reproduce: the variety of real states (1024 shapes,
 * repeated) -- so SST blocks compress better than they would -- and the
 * partitions' stored positions (none are written: encore starts these
 * partitions from the group's offsets, i.e. the start of a fresh topic).
 * Key counts, key layout and record sizes are real, which is what memory
 * (index, filters, cache) and recovery (open, scan) depend on.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "codec.h"
#include "config.h"
#include "engine.h"
#include "plugin.h"
#include "store.h"
#include "users.h"

#define TEMPLATES 1024

typedef struct tmpl_s {
        uint8_t *rec;
        size_t len;
        int64_t wake;
} tmpl_t;

static enc_err_t null_output(void *opaque, int32_t in_partition,
                             const char *key, size_t key_len, const void *val,
                             size_t val_len, const enc_update_t *up) {
        (void)opaque;
        (void)in_partition;
        (void)key;
        (void)key_len;
        (void)val;
        (void)val_len;
        (void)up;
        return ENC_OK;
}

static enc_err_t null_dead_letter(void *opaque, const enc_dead_letter_t *dl) {
        (void)opaque;
        (void)dl;
        return ENC_OK;
}

/* Runs the template users through an engine in @p dir and reads their
 * records back into @p t; returns how many templates were kept. */
static int build_templates(const char *dir, int partitions, int64_t t0,
                           tmpl_t *t, char *errstr, size_t errstr_size) {
        enc_conf_t *conf = enc_conf_new();
        enc_store_t *st = enc_store_open(dir, NULL, errstr, errstr_size);
        enc_engine_sink_t sink = {.output = null_output,
                                  .dead_letter = null_dead_letter};
        enc_engine_t *e =
                st ? enc_engine_new(conf, st, &sink, errstr, errstr_size)
                   : NULL;
        enc_codec_t *codec = enc_codec_new(NULL, errstr, errstr_size);
        int64_t *next = calloc((size_t)partitions, sizeof(*next));
        enc_bench_synth_t syn;
        enc_buf_t b, rec;
        int kept = -1;
        enc_buf_init(&b, 1 << 20);
        enc_buf_init(&rec, 1 << 20);
        if (!e || !codec || !next)
                goto done;
        for (int p = 0; p < partitions; p++) {
                int64_t resume;
                if (enc_engine_assign(e, p, &resume, errstr, errstr_size))
                        goto done;
        }
        int64_t span = 9 * ENC_MS_PER_DAY;
        enc_bench_synth_init(&syn, TEMPLATES, t0 - 10 * ENC_MS_PER_DAY,
                             span / TEMPLATES);
        /* TEMPLATES plays, then one tick per partition at t0. */
        for (int i = 0; i < TEMPLATES + partitions; i++) {
                enc_event_t ev;
                int32_t p;
                if (i < TEMPLATES) {
                        enc_bench_synth_event(&syn, (uint64_t)i, true, &ev);
                        p = enc_bench_partition(ev.user_id, strlen(ev.user_id),
                                                partitions);
                } else {
                        enc_bench_synth_event(&syn, 0, true, &ev);
                        ev.user_id = "~tick";
                        ev.event_id = "~tick";
                        ev.event_time = t0;
                        p = i - TEMPLATES;
                }
                enc_buf_reset(&b);
                if (enc_codec_encode_event(codec, &ev, &b))
                        goto done;
                enc_record_t r = {.topic = "templates",
                                  .partition = p,
                                  .offset = next[p]++,
                                  .timestamp = -1,
                                  .key = ev.user_id,
                                  .key_len = strlen(ev.user_id),
                                  .value = b.data,
                                  .value_len = b.len};
                if (enc_engine_record(e, &r, errstr, errstr_size))
                        goto done;
        }
        if (enc_engine_checkpoint(e, errstr, errstr_size))
                goto done;
        kept = 0;
        for (int i = 0; i < TEMPLATES; i++) {
                char user[32];
                bool found = false;
                snprintf(user, sizeof(user), "u%d", i);
                int32_t p = enc_bench_partition(user, strlen(user), partitions);
                if (enc_store_get_user(st, p, user, strlen(user), &rec, &found,
                                       errstr, errstr_size)) {
                        kept = -1;
                        goto done;
                }
                if (!found) /* nothing left to emit: expired */
                        continue;
                tmpl_t *x = &t[kept];
                if (enc_user_record_wake(rec.data, rec.len, &x->wake) ||
                    !(x->rec = malloc(rec.len))) {
                        kept = -1;
                        goto done;
                }
                memcpy(x->rec, rec.data, rec.len);
                x->len = rec.len;
                kept++;
        }
done:
        enc_engine_destroy(e);
        enc_store_close(st);
        enc_codec_destroy(codec);
        enc_conf_destroy(conf);
        enc_buf_free(&b);
        enc_buf_free(&rec);
        free(next);
        return kept;
}

enc_err_t enc_bench_state_build(const char *dir, uint64_t users, int partitions,
                                int64_t t0, char *errstr, size_t errstr_size) {
        tmpl_t t[TEMPLATES];
        enc_err_t err = ENC_OK;
        memset(t, 0, sizeof(t));
        char *tdir = enc_bench_tmpdir("templates");
        if (!tdir)
                return ENC_ERR_IO;
        int n = build_templates(tdir, partitions, t0, t, errstr, errstr_size);
        enc_bench_rmtree(tdir);
        free(tdir);
        if (n <= 0)
                return enc_seterr(errstr, errstr_size, ENC_ERR_STATE,
                                  "no template users: %s", errstr);

        enc_store_t *st = enc_store_open(dir, NULL, errstr, errstr_size);
        if (!st) {
                err = ENC_ERR_STATE;
                goto done;
        }
        char user[32];
        for (uint64_t i = 0; i < users; i++) {
                const tmpl_t *x = &t[i % (uint64_t)n];
                int k = snprintf(user, sizeof(user), "u%" PRIu64, i);
                int32_t p = enc_bench_partition(user, (size_t)k, partitions);
                enc_store_put_user(st, p, user, (size_t)k, x->rec, x->len);
                if (x->wake != ENC_NO_TIMER)
                        enc_store_put_timer(st, p, x->wake, user, (size_t)k);
                if (i % 100000 == 99999 &&
                    (err = enc_store_commit(st, errstr, errstr_size)))
                        goto done;
        }
        if ((err = enc_store_commit(st, errstr, errstr_size)))
                goto done;
        enc_store_compact(st); /* a settled store, as after a long run */
done:
        enc_store_close(st);
        for (int i = 0; i < n; i++)
                free(t[i].rec);
        return err;
}
