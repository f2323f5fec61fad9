/*
 * soak.c -- a rolling population through the engine, week by week.
 *
 * DESIGN
 * The brief's promise is that state stays bounded as listeners arrive and
 * churn: a user from whom nothing can be emitted any more is deleted. The
 * soak makes that observable. encore's generator supplies the population
 * (arrivals each day, churn after a geometric lifetime, some returns); the
 * engine takes every event as the pipeline would hand it over; and at
 * each week boundary of event time the run checkpoints, flushes and fully
 * compacts the store, then reads the exact number of user and timer keys
 * and the SST bytes. Under a stationary population those level off once
 * the longest-lived state of a churned user (discovery_habit's lookback,
 * 90 days by default) has had time to expire; unbounded growth would keep
 * adding roughly (churned users per week) keys every week.
 *
 * Everything is a function of the configuration: no wall clock decides
 * anything (checkpoints come every commit_records records), so a test can
 * assert on the weeks it sees.
 */
#define XXH_INLINE_ALL
#include "soak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "codec.h"
#include "engine.h"
#include "store.h"

static enc_err_t soak_output(void *opaque, int32_t in_partition,
                             const char *key, size_t key_len, const void *val,
                             size_t val_len, const enc_update_t *up) {
        (void)in_partition;
        (void)key;
        (void)key_len;
        (void)val;
        (void)val_len;
        (void)up;
        (*(uint64_t *)opaque)++;
        return ENC_OK;
}

static enc_err_t soak_dead_letter(void *opaque, const enc_dead_letter_t *dl) {
        (void)opaque;
        (void)dl;
        return ENC_OK;
}

static double soak_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Checkpoint, flush, compact, then count. */
static enc_err_t soak_measure(enc_engine_t *e, enc_store_t *st,
                              const enc_gen_t *g, enc_soak_week_t *w,
                              char *errstr, size_t errstr_size) {
        enc_err_t err = enc_engine_checkpoint(e, errstr, errstr_size);
        if (err)
                return err;
        enc_store_compact(st);
        enc_store_stats_t ss;
        enc_engine_stats_t es;
        enc_gen_stats_t gs;
        enc_store_stats(st, &ss);
        enc_engine_stats(e, &es);
        enc_gen_stats(g, &gs);
        w->user_keys = ss.user_keys;
        w->timer_keys = ss.timer_keys;
        w->sst_bytes = ss.sst_bytes;
        w->users_expired = es.users_expired;
        w->live_users = gs.live_users;
        w->users_total = gs.users_initial + gs.arrivals;
        w->churned = gs.churned;
        return ENC_OK;
}

enc_err_t enc_soak_run(const enc_soak_conf_t *sc, enc_soak_week_cb_t cb,
                       void *opaque, char *errstr, size_t errstr_size) {
        enc_conf_t *own_conf = NULL;
        const enc_conf_t *conf = sc->conf;
        enc_store_t *st = NULL;
        enc_engine_t *e = NULL;
        enc_gen_t *g = NULL;
        enc_codec_t *codec = NULL;
        int64_t *next_off = NULL;
        enc_buf_t b;
        uint64_t updates = 0;
        enc_err_t err = ENC_OK;
        enc_buf_init(&b, 1 << 20);

        if (!conf)
                conf = own_conf = enc_conf_new();
        next_off = calloc((size_t)sc->partitions, sizeof(*next_off));
        g = enc_gen_new(&sc->gen, errstr, errstr_size);
        codec = enc_codec_new(NULL, errstr, errstr_size);
        if (!conf || !next_off || !g || !codec) {
                err = ENC_ERR_NOMEM;
                goto done;
        }
        enc_store_conf_t stc;
        enc_store_conf_from(conf, &stc); /* sized as encore sizes it */
        st = enc_store_open(sc->state_dir, &stc, errstr, errstr_size);
        if (!st) {
                err = ENC_ERR_STATE;
                goto done;
        }
        enc_engine_sink_t sink = {.output = soak_output,
                                  .dead_letter = soak_dead_letter,
                                  .opaque = &updates};
        e = enc_engine_new(conf, st, &sink, errstr, errstr_size);
        if (!e) {
                err = ENC_ERR_CONFIG;
                goto done;
        }
        for (int p = 0; p < sc->partitions; p++) {
                int64_t resume;
                if ((err = enc_engine_assign(e, p, &resume, errstr,
                                             errstr_size)))
                        goto done;
        }

        double t0 = soak_now();
        uint64_t n = 0, since = 0;
        int week = 1;
        int64_t week_end = sc->gen.start_time + 7 * ENC_MS_PER_DAY;
        enc_event_t ev;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                if (ev.event_time >= week_end) {
                        enc_soak_week_t w = {
                                .week = week, .events = n, .updates = updates};
                        if ((err = soak_measure(e, st, g, &w, errstr,
                                                errstr_size)))
                                goto done;
                        w.seconds = soak_now() - t0;
                        if (cb && cb(opaque, &w))
                                goto done;
                        week++;
                        week_end += 7 * ENC_MS_PER_DAY;
                        since = 0;
                }
                enc_buf_reset(&b);
                if ((err = enc_codec_encode_event(codec, &ev, &b))) {
                        enc_seterr(errstr, errstr_size, err, "encode: %s",
                                   enc_err2str(err));
                        goto done;
                }
                size_t klen = strlen(ev.user_id);
                int32_t p = (int32_t)(XXH3_64bits(ev.user_id, klen) %
                                      (uint64_t)sc->partitions);
                enc_record_t rec = {.topic = "plays",
                                    .partition = p,
                                    .offset = next_off[p]++,
                                    .timestamp = -1,
                                    .key = ev.user_id,
                                    .key_len = klen,
                                    .value = b.data,
                                    .value_len = b.len};
                if ((err = enc_engine_record(e, &rec, errstr, errstr_size)))
                        goto done;
                n++;
                if (++since >= sc->commit_records || enc_engine_commit_due(e)) {
                        if ((err = enc_engine_checkpoint(e, errstr,
                                                         errstr_size)))
                                goto done;
                        since = 0;
                }
        }

        enc_engine_stats_t es;
        enc_engine_stats(e, &es);
        uint64_t dlq = 0;
        for (int i = 0; i < ENC_DLQ__CNT; i++)
                dlq += es.dead_lettered[i];
        if (es.consumed != n || es.accepted + dlq != n)
                err = enc_seterr(errstr, errstr_size, ENC_ERR_STATE,
                                 "counts do not add up: %llu records in, "
                                 "%llu consumed, %llu accepted, %llu "
                                 "dead-lettered",
                                 (unsigned long long)n,
                                 (unsigned long long)es.consumed,
                                 (unsigned long long)es.accepted,
                                 (unsigned long long)dlq);
done:
        enc_engine_destroy(e);
        enc_store_close(st);
        enc_codec_destroy(codec);
        enc_gen_destroy(g);
        enc_conf_destroy(own_conf);
        free(next_off);
        enc_buf_free(&b);
        return err;
}
