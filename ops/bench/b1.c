/*
 * b1.c -- B1: encore's processing on one core, no broker, and the floor
 * under it (decoding alone, on the same bytes).
 *
 * DESIGN
 * A generated log (encore's own generator, 1M listeners by default) is
 * encoded into memory first, so the generator's cost is not measured. The
 * engine then takes every record exactly as the pipeline hands it over --
 * decode, validate, event-time buffering, RocksDB-backed state behind the
 * write-back cache, every default signal, encoding of each update -- and
 * checkpoints as the pipeline does (every commit.interval.ms of wall time,
 * or when the engine asks). Only the Kafka client is missing. The first
 * `warmup-days` of event time fill the state and are not timed; the cache
 * (64 MiB by default) is far smaller than the state, so the timed part
 * reads and writes RocksDB for real.
 *
 * "One core": the process pins itself to one CPU before RocksDB starts its
 * threads, so flushes and compactions are paid for inside the figure.
 *
 * Beside it, in the same run and on the same bytes: the rate of decoding
 * alone with the fast path and with Avro C's generic API, which no
 * pipeline that decodes every record can beat.
 *
 * --resolved 1 runs it again on the same events written with a producer's
 * own schema (b1_writer_schema: fields in another order, two extra fields,
 * an int duration, the cohort named experiment_group, enum symbols in
 * another order and one encore lacks), which the engine reads through
 * Avro schema resolution (schemas/resolve.c) as id 7: the cost of a
 * topic that is not encore's own. Its output digest must equal the
 * canonical run's (same updates, byte for byte).
 */
#define XXH_INLINE_ALL
#include <avro.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bench.h"
#include "codec.h"
#include "config.h"
#include "engine.h"
#include "store.h"

typedef struct b1_sink_s {
        uint64_t outputs;
        uint64_t bytes;
        uint64_t dead;
        XXH3_state_t *digest; /* over every output value, in order */
} b1_sink_t;

static enc_err_t b1_output(void *opaque, int32_t in_partition, const char *key,
                           size_t key_len, const void *val, size_t val_len,
                           const enc_update_t *up) {
        b1_sink_t *s = opaque;
        (void)in_partition;
        (void)key;
        (void)key_len;
        (void)up;
        s->outputs++;
        s->bytes += val_len;
        (void)XXH3_64bits_update(s->digest, val, val_len);
        return ENC_OK;
}

static enc_err_t b1_dead_letter(void *opaque, const enc_dead_letter_t *dl) {
        b1_sink_t *s = opaque;
        (void)dl;
        s->dead++;
        return ENC_OK;
}

/* A producer's own PlayEvent, as a team's existing topic would have it. */
static const char b1_writer_schema[] =
        "{\"type\":\"record\",\"name\":\"PlayEvent\",\"namespace\":"
        "\"com.acme\",\"fields\":["
        "{\"name\":\"user_id\",\"type\":\"string\"},"
        "{\"name\":\"event_time\",\"type\":\"long\"},"
        "{\"name\":\"client_os\",\"type\":\"string\"},"
        "{\"name\":\"track_id\",\"type\":\"string\"},"
        "{\"name\":\"artist_id\",\"type\":\"string\"},"
        "{\"name\":\"event_id\",\"type\":\"string\"},"
        "{\"name\":\"ms_played\",\"type\":\"long\"},"
        "{\"name\":\"track_duration_ms\",\"type\":\"int\"},"
        "{\"name\":\"reason_end\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"ReasonEnd\",\"symbols\":[\"TRACK_DONE\",\"FORWARD\",\"BACK\","
        "\"END_PLAY\",\"LOGOUT\",\"UNKNOWN\",\"PAUSED\"]}},"
        "{\"name\":\"source\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"Source\",\"symbols\":[\"OTHER\",\"RADIO\",\"PLAYLIST\","
        "\"LIBRARY\",\"SEARCH\",\"RECOMMENDATION\"]}},"
        "{\"name\":\"surface\",\"type\":\"string\"},"
        "{\"name\":\"offline\",\"type\":\"boolean\"},"
        "{\"name\":\"recommendation_id\",\"type\":[\"null\",\"string\"],"
        "\"default\":null},"
        "{\"name\":\"experiment_group\",\"type\":[\"string\",\"null\"]}]}";
#define B1_WRITER_ID 7

static enc_err_t b1_lookup(void *opaque, int32_t id, const char **json,
                           size_t *len, char *errstr, size_t errstr_size) {
        (void)opaque;
        if (id != B1_WRITER_ID)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOT_FOUND,
                                  "no schema %d", (int)id);
        *json = b1_writer_schema;
        *len = sizeof(b1_writer_schema) - 1;
        return ENC_OK;
}

static int b1_set_opt_str(avro_value_t *u, const char *s, int str_branch) {
        avro_value_t b;
        if (!s)
                return avro_value_set_branch(u, 1 - str_branch, &b) ||
                       avro_value_set_null(&b);
        return avro_value_set_branch(u, str_branch, &b) ||
               avro_value_set_string(&b, s);
}

/* @p in's events written with b1_writer_schema by Avro C (not by the code
 * under test) into @p out: same keys, partitions and offsets. */
static int b1_transcode(const enc_bench_log_t *in, enc_bench_log_t *out) {
        char err[256];
        avro_schema_t ws = NULL;
        avro_value_iface_t *cls = NULL;
        avro_value_t rec, f[14];
        enc_codec_t *c = enc_codec_new(NULL, err, sizeof(err));
        int rc = -1;
        memset(out, 0, sizeof(*out));
        *out = *in;
        out->arena_cap = in->arena_len + in->n * 48;
        out->arena = malloc(out->arena_cap);
        out->recs = malloc(in->n * sizeof(*in->recs));
        out->next_offset = malloc((size_t)in->partitions * sizeof(int64_t));
        out->cap = in->n;
        out->arena_len = 0;
        if (!c || !out->arena || !out->recs || !out->next_offset ||
            avro_schema_from_json_length(b1_writer_schema,
                                         sizeof(b1_writer_schema) - 1, &ws) ||
            !(cls = avro_generic_class_from_schema(ws)) ||
            avro_generic_value_new(cls, &rec))
                goto done;
        memcpy(out->recs, in->recs, in->n * sizeof(*in->recs));
        memcpy(out->next_offset, in->next_offset,
               (size_t)in->partitions * sizeof(int64_t));
        for (size_t i = 0; i < 14; i++)
                if (avro_value_get_by_index(&rec, i, &f[i], NULL))
                        goto done;
        for (size_t i = 0; i < in->n; i++) {
                enc_event_t ev;
                const enc_bench_rec_t *r = &in->recs[i];
                if (enc_codec_decode_event(c, enc_bench_log_val(in, i),
                                           r->val_len, &ev, err, sizeof(err)))
                        goto done;
                size_t size;
                if (avro_value_set_string(&f[0], ev.user_id) ||
                    avro_value_set_long(&f[1], ev.event_time) ||
                    avro_value_set_string(&f[2], i % 3 ? "android" : "ios") ||
                    avro_value_set_string(&f[3], ev.track_id) ||
                    avro_value_set_string(&f[4], ev.artist_id) ||
                    avro_value_set_string(&f[5], ev.event_id) ||
                    avro_value_set_long(&f[6], ev.ms_played) ||
                    avro_value_set_int(&f[7], (int32_t)ev.track_duration_ms) ||
                    avro_value_set_enum(&f[8], (int)ev.reason_end) ||
                    avro_value_set_enum(&f[9],
                                        ENC_SRC__CNT - 1 - (int)ev.source) ||
                    avro_value_set_string(&f[10], ev.surface) ||
                    avro_value_set_boolean(&f[11], (int)(i & 1)) ||
                    b1_set_opt_str(&f[12], ev.recommendation_id, 1) ||
                    b1_set_opt_str(&f[13], ev.cohort, 0) ||
                    avro_value_sizeof(&rec, &size) ||
                    out->arena_len + 5 + size + r->key_len > out->arena_cap)
                        goto done;
                uint8_t *d = out->arena + out->arena_len;
                d[0] = 0;
                enc_put_u32be(d + 1, B1_WRITER_ID);
                avro_writer_t w = avro_writer_memory((char *)d + 5,
                                                     (int64_t)size);
                int werr = avro_value_write(w, &rec);
                avro_writer_free(w);
                if (werr)
                        goto done;
                memcpy(d + 5 + size, enc_bench_log_key(in, i), r->key_len);
                out->recs[i].at = out->arena_len;
                out->recs[i].val_len = (uint32_t)(5 + size);
                out->arena_len += 5 + size + r->key_len;
        }
        rc = 0;
done:
        if (cls) {
                avro_value_decref(&rec);
                avro_value_iface_decref(cls);
        }
        if (ws)
                avro_schema_decref(ws);
        enc_codec_destroy(c);
        return rc;
}

typedef struct b1_run_s {
        enc_engine_t *engine;
        double commit_s;
        double last_commit;
        uint64_t checkpoints;
        char errstr[512];
} b1_run_t;

/* Feeds records [from, to) like the pipeline: record, then a checkpoint
 * when the engine asks or the commit interval has passed. */
static int b1_feed(b1_run_t *r, const enc_bench_log_t *log, size_t from,
                   size_t to) {
        for (size_t i = from; i < to; i++) {
                const enc_bench_rec_t *rc = &log->recs[i];
                enc_record_t rec = {
                        .topic = "plays",
                        .partition = rc->partition,
                        .offset = rc->offset,
                        .timestamp = -1,
                        .key = enc_bench_log_key(log, i),
                        .key_len = rc->key_len,
                        .value = enc_bench_log_val(log, i),
                        .value_len = rc->val_len,
                };
                if (enc_engine_record(r->engine, &rec, r->errstr,
                                      sizeof(r->errstr))) {
                        enc_bench_log("record %zu: %s", i, r->errstr);
                        return -1;
                }
                /* The clock is read every 1024 records, as a poll loop
                 * would notice the interval between batches. */
                bool due = enc_engine_commit_due(r->engine);
                if (!due && (i & 1023) == 0 &&
                    enc_bench_now() - r->last_commit >= r->commit_s)
                        due = true;
                if (due) {
                        if (enc_engine_checkpoint(r->engine, r->errstr,
                                                  sizeof(r->errstr))) {
                                enc_bench_log("checkpoint: %s", r->errstr);
                                return -1;
                        }
                        r->checkpoints++;
                        r->last_commit = enc_bench_now();
                }
        }
        return 0;
}

/* The timed part, a function of its own so profiles can select it
 * (perf script stacks, callgrind --toggle-collect=b1_timed). */
__attribute__((noinline)) static int
b1_timed(b1_run_t *r, const enc_bench_log_t *log, size_t from, size_t to) {
        char errstr[512];
        if (b1_feed(r, log, from, to))
                return -1;
        if (enc_engine_checkpoint(r->engine, errstr, sizeof(errstr))) {
                enc_bench_log("final checkpoint: %s", errstr);
                return -1;
        }
        return 0;
}

/* Decodes records [from, to) of @p log with a codec of the given path;
 * returns records per second (0 on a decode error). */
static double b1_decode_rate(const enc_bench_log_t *log, size_t from, size_t to,
                             bool avro_c, bool validate, bool resolved) {
        enc_codec_conf_t cc;
        char err[256];
        enc_codec_conf_defaults(&cc);
        cc.use_avro_c = avro_c;
        enc_codec_t *c = enc_codec_new(&cc, err, sizeof(err));
        if (!c)
                return 0;
        if (resolved) {
                enc_codec_set_schema_lookup(c, b1_lookup, NULL);
                if (enc_codec_set_field_name(c, "cohort", "experiment_group",
                                             err, sizeof(err))) {
                        enc_codec_destroy(c);
                        return 0;
                }
        }
        uint64_t sum = 0;
        double t0 = enc_bench_now();
        for (size_t i = from; i < to; i++) {
                enc_event_t ev;
                if (enc_codec_decode_event(c, enc_bench_log_val(log, i),
                                           log->recs[i].val_len, &ev, err,
                                           sizeof(err)) ||
                    (validate && enc_event_validate(&ev, err, sizeof(err)))) {
                        enc_bench_log("decode %zu: %s", i, err);
                        enc_codec_destroy(c);
                        return 0;
                }
                sum += (uint64_t)ev.event_time + ev.user_id[0];
        }
        double dt = enc_bench_now() - t0;
        enc_codec_destroy(c);
        if (sum == 42) /* keeps the loop's results alive */
                fputc(' ', stderr);
        return (double)(to - from) / dt;
}

/* The engine's configuration: the defaults, the cache and commit sizes,
 * then @p extra ("key=value;key=value", from --set) for experiments. */
static enc_conf_t *b1_conf(long cache_bytes, long commit_records,
                           const char *extra) {
        enc_conf_t *conf = enc_conf_new();
        char err[256], v[64];
        snprintf(v, sizeof(v), "%ld", cache_bytes);
        if (enc_conf_set(conf, "cache.max.bytes", v, err, sizeof(err)))
                goto fail;
        snprintf(v, sizeof(v), "%ld", commit_records);
        if (enc_conf_set(conf, "commit.records", v, err, sizeof(err)))
                goto fail;
        if (enc_conf_set(conf, "metrics.address", "", err, sizeof(err)))
                goto fail;
        if (!enc_bench_conf_extra(conf, extra, err, sizeof(err)))
                goto fail;
        return conf;
fail:
        enc_bench_log("configuration: %s", err);
        enc_conf_destroy(conf);
        return NULL;
}

static int b1_engine_run(const enc_bench_log_t *log, size_t warm,
                         const enc_bench_opt_t *o, const char *tag,
                         bool resolved, double *rate_out,
                         uint64_t *digest_out);

enc_err_t enc_bench_b1_log(enc_bench_log_t *log, size_t *warm, uint64_t users,
                           int days, int warm_days, int partitions,
                           uint64_t seed, char *errstr, size_t errstr_size) {
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.users = (uint32_t)users;
        gc.days = (uint32_t)days;
        gc.seed = seed;
        enc_err_t err = enc_bench_log_generate(log, &gc, 0, partitions, errstr,
                                               errstr_size);
        if (err) {
                enc_bench_log_free(log);
                return err;
        }
        size_t w = 0;
        int64_t warm_end = gc.start_time + (int64_t)warm_days * ENC_MS_PER_DAY;
        while (w < log->n && log->recs[w].time < warm_end)
                w++; /* the log is in event-time order */
        *warm = w;
        return ENC_OK;
}

int enc_bench_b1(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "listeners alive on day 0", 1000000, NULL},
                {"days", "days of event time in the log", 2, NULL},
                {"warmup-days", "leading days not timed (fill the state)", 1,
                 NULL},
                {"partitions", "input partitions", 4, NULL},
                {"cache-mb", "cache.max.bytes in MiB", 64, NULL},
                {"commit-ms", "checkpoint interval (wall ms)", 1000, NULL},
                {"commit-records", "commit.records", 100000, NULL},
                {"cpu", "pin the process to this CPU (-1: no pinning)", 0,
                 NULL},
                {"seed", "generator seed", 1, NULL},
                {"keep-state", "keep the state directory (1) for a look", 0,
                 NULL},
                {"set", "extra configuration, \"key=value;key=value\"", 0, ""},
                {"resolved",
                 "0: encore's schema; 1: a producer's own schema, read by "
                 "schema resolution; 2: both, compared",
                 0, NULL},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o,
                             "encore-bench b1: in-process pipeline, no broker"))
                return 2;
        uint64_t users = (uint64_t)o[0].num;
        int days = (int)o[1].num, warm_days = (int)o[2].num;
        int parts = (int)o[3].num, cpu = (int)o[7].num;
        char errstr[512];
        int rc = 1;

        if (enc_bench_pin_cpu(cpu)) {
                enc_bench_log("cannot pin to cpu %d", cpu);
                return 1;
        }
        enc_bench_log("generating %d days of %" PRIu64 " listeners", days,
                      users);
        double t = enc_bench_now();
        enc_bench_log_t log;
        size_t warm;
        if (enc_bench_b1_log(&log, &warm, users, days, warm_days, parts,
                             (uint64_t)o[8].num, errstr, sizeof(errstr))) {
                enc_bench_log("generate: %s", errstr);
                return 1;
        }
        enc_bench_log("log: %zu records, %.0f MB, %.1f s to generate; "
                      "warm-up %zu, timed %zu",
                      log.n, (double)log.arena_len / 1e6, enc_bench_now() - t,
                      warm, log.n - warm);
        enc_bench_result("b1.log_records", (double)log.n, "records");
        enc_bench_result("b1.timed_records", (double)(log.n - warm), "records");
        enc_bench_result("b1.avg_record_bytes",
                         (double)(log.arena_len) / (double)log.n, "bytes");

        double rate = 0, rrate = 0;
        uint64_t digest = 0, rdigest = 0;
        int resolved = (int)o[11].num;
        if (resolved != 1 &&
            b1_engine_run(&log, warm, o, "b1", false, &rate, &digest))
                goto out;
        if (resolved) {
                enc_bench_log_t wlog;
                t = enc_bench_now();
                if (b1_transcode(&log, &wlog)) {
                        enc_bench_log("transcoding to the writer schema "
                                      "failed");
                        enc_bench_log_free(&wlog);
                        goto out;
                }
                enc_bench_log("writer schema log: %.0f MB, %.1f s to write "
                              "with Avro C",
                              (double)wlog.arena_len / 1e6,
                              enc_bench_now() - t);
                enc_bench_result("b1.resolved.avg_record_bytes",
                                 (double)wlog.arena_len / (double)wlog.n,
                                 "bytes");
                int r = b1_engine_run(&wlog, warm, o, "b1.resolved", true,
                                      &rrate, &rdigest);
                enc_bench_log_free(&wlog);
                if (r)
                        goto out;
                if (resolved == 2) {
                        enc_bench_result("b1.resolved.rate_vs_canonical",
                                         rrate / rate, "ratio");
                        if (rdigest != digest) {
                                enc_bench_log("resolved run's outputs differ "
                                              "from the canonical run's");
                                goto out;
                        }
                        enc_bench_log("resolved: %.0f events/s, canonical "
                                      "%.0f (%.1f%%), same output digest",
                                      rrate, rate, 100.0 * rrate / rate);
                }
        }
        rc = 0;
out:
        enc_bench_log_free(&log);
        return rc;
}

/* One engine run over @p log (records [warm, n) timed), results named
 * "<tag>.<name>"; @p resolved: the log is in b1_writer_schema. */
static int b1_engine_run(const enc_bench_log_t *log, size_t warm,
                         const enc_bench_opt_t *o, const char *tag,
                         bool resolved, double *rate_out,
                         uint64_t *digest_out) {
        char errstr[512], name[96];
        int rc = 1;
        int parts = (int)o[3].num;
        long cache_bytes = (long)(o[4].num * 1024 * 1024);
        double t;
#define B1_NAME(n) (snprintf(name, sizeof(name), "%s.%s", tag, n), name)
        char *dir = enc_bench_tmpdir("b1");
        enc_conf_t *conf = b1_conf(cache_bytes, (long)o[6].num, o[10].str);
        /* Before the first goto done: done frees them. */
        enc_store_t *st = NULL;
        b1_sink_t sink = {0, 0, 0, XXH3_createState()};
        b1_run_t run = {.commit_s = o[5].num / 1000.0};
        if (conf && resolved &&
            enc_conf_set(conf, "serde.play_event.field.cohort",
                         "experiment_group", errstr, sizeof(errstr)))
                goto done;
        if (!dir || !conf)
                goto done;
        (void)XXH3_64bits_reset(sink.digest);
        enc_store_conf_t stc;
        enc_store_conf_from(conf, &stc); /* sized as encore sizes it */
        st = enc_store_open(dir, &stc, errstr, sizeof(errstr));
        if (!st) {
                enc_bench_log("store: %s", errstr);
                goto done;
        }
        enc_engine_sink_t es = {.output = b1_output,
                                .dead_letter = b1_dead_letter,
                                .schema_lookup = resolved ? b1_lookup : NULL,
                                .opaque = &sink};
        run.engine = enc_engine_new(conf, st, &es, errstr, sizeof(errstr));
        if (!run.engine) {
                enc_bench_log("engine: %s", errstr);
                goto done;
        }
        for (int p = 0; p < parts; p++) {
                int64_t resume;
                if (enc_engine_assign(run.engine, p, &resume, errstr,
                                      sizeof(errstr))) {
                        enc_bench_log("assign: %s", errstr);
                        goto done;
                }
        }

        run.last_commit = enc_bench_now();
        t = enc_bench_now();
        if (b1_feed(&run, log, 0, warm))
                goto done;
        enc_bench_log("warm-up: %zu records in %.1f s", warm,
                      enc_bench_now() - t);

        enc_engine_stats_t s0, s1;
        enc_engine_stats(run.engine, &s0);
        uint64_t out0 = sink.outputs, ck0 = run.checkpoints;
        double cpu_p0 = enc_bench_cpu_process(),
               cpu_t0 = enc_bench_cpu_thread();
        uint64_t allocs0 = enc_bench_allocs();
        t = enc_bench_now();
        if (b1_timed(&run, log, warm, log->n))
                goto done;
        uint64_t allocs = enc_bench_allocs() - allocs0;
        double dt = enc_bench_now() - t;
        double cpu_p = enc_bench_cpu_process() - cpu_p0;
        double cpu_t = enc_bench_cpu_thread() - cpu_t0;
        enc_engine_stats(run.engine, &s1);

        uint64_t dlq = 0;
        for (int i = 0; i < ENC_DLQ__CNT; i++)
                dlq += s1.dead_lettered[i];
        if (s1.consumed != log->n || s1.accepted + dlq != s1.consumed ||
            s1.applied + s1.buffered != s1.accepted) {
                enc_bench_log("counts do not add up: consumed %" PRIu64
                              " of %zu, accepted %" PRIu64
                              ", dead-lettered %" PRIu64 ", applied %" PRIu64
                              ", buffered %" PRIu64,
                              s1.consumed, log->n, s1.accepted, dlq, s1.applied,
                              s1.buffered);
                goto done;
        }
        enc_store_stats_t ss;
        enc_store_stats(st, &ss);
        double rate = (double)(log->n - warm) / dt;
        enc_bench_log("timed: %zu records in %.2f s: %.0f events/s; "
                      "process CPU %.2f s, processing thread %.2f s",
                      log->n - warm, dt, rate, cpu_p, cpu_t);
        enc_bench_result(B1_NAME("events_per_s"), rate, "events/s");
        /* The same work per CPU-second of the whole process (every thread):
         * what one core does when nothing else competes for it. */
        enc_bench_result(B1_NAME("events_per_cpu_s"), (double)(log->n - warm) / cpu_p,
                         "events/CPU-s");
        enc_bench_result(B1_NAME("ns_per_event"), 1e9 * dt / (double)(log->n - warm),
                         "ns");
        enc_bench_result(B1_NAME("process_cpu_share_of_thread"),
                         cpu_t > 0 ? cpu_p / cpu_t : 0, "ratio");
        enc_bench_result(B1_NAME("updates_per_event"),
                         (double)(sink.outputs - out0) / (double)(log->n - warm),
                         "updates");
        enc_bench_result(B1_NAME("checkpoints"), (double)(run.checkpoints - ck0),
                         "checkpoints");
        enc_bench_result(B1_NAME("dead_letters"), (double)dlq, "records");
        uint64_t hits = s1.cache_hits - s0.cache_hits;
        uint64_t misses = s1.cache_misses - s0.cache_misses;
        enc_bench_result(B1_NAME("cache_hit_ratio"),
                         (double)hits / (double)(hits + misses), "ratio");
        enc_bench_result(B1_NAME("cache_misses"), (double)misses, "lookups");
        /* malloc/calloc/realloc/strdup calls by encore's code in the timed
         * phase (ops/bench/allocs.c), checkpoints included, per event. */
        enc_bench_result(B1_NAME("allocs_per_event"),
                         (double)allocs / (double)(log->n - warm), "allocs");
        /* Duplicate checks the id filter answered without loading the user
         * (state/idfilter.c), of those the reorder buffer did not. */
        uint64_t dchecks = s1.dedup_checks - s0.dedup_checks;
        enc_bench_result(B1_NAME("dedup_filter_no_share"),
                         dchecks ? (double)(s1.dedup_filter_no -
                                            s0.dedup_filter_no) /
                                           (double)dchecks
                                 : 0,
                         "ratio");
        /* Bytes each checkpoint wrote (the RocksDB batch), and the id
         * filter's part of them: it is saved with every checkpoint, only
         * the tables that changed (state/idfilter.c). */
        uint64_t cks = run.checkpoints - ck0;
        uint64_t ckb = s1.checkpoint_bytes - s0.checkpoint_bytes;
        uint64_t idfb = s1.idfilter_saved_bytes - s0.idfilter_saved_bytes;
        enc_bench_result(B1_NAME("checkpoint_bytes"),
                         cks ? (double)ckb / (double)cks : 0,
                         "bytes/checkpoint");
        enc_bench_result(B1_NAME("idfilter_saved_bytes"),
                         cks ? (double)idfb / (double)cks : 0,
                         "bytes/checkpoint");
        enc_bench_result(B1_NAME("idfilter_saved_share"),
                         ckb ? (double)idfb / (double)ckb : 0, "ratio");
        /* Users read ahead in batched MultiGets while their events wait
         * for the watermark: a lookup they serve counts as a hit above. */
        enc_bench_result(B1_NAME("cache_prefetched"),
                         (double)(s1.cache_prefetched - s0.cache_prefetched),
                         "users");
        /* ... of which evicted before any lookup used them: read twice. */
        enc_bench_result(B1_NAME("cache_prefetch_wasted"),
                         (double)(s1.cache_prefetch_wasted -
                                  s0.cache_prefetch_wasted),
                         "users");
        /* What each event costs in state work beyond its own update: the
         * timers it leads to (a session closing, a day leaving a window,
         * remembered ids expiring), each a user loaded if not cached and
         * written back. */
        enc_bench_result(B1_NAME("timers_fired_per_event"),
                         (double)(s1.timers_fired - s0.timers_fired) /
                                 (double)(log->n - warm),
                         "timers");
        /* Seeks of a RocksDB iterator over the stored timers (of users
         * not cached) that the watermark's advance needed. */
        enc_bench_result(B1_NAME("timer_scans_per_event"),
                         (double)(s1.timer_scans - s0.timer_scans) /
                                 (double)(log->n - warm),
                         "scans");
        enc_bench_result(B1_NAME("cache_evictions"),
                         (double)(s1.cache_evictions - s0.cache_evictions),
                         "users");
        /* Users cached after the final checkpoint and what each is charged
         * against the budget on average (state/users.c: entry, id and the
         * signals' state_bytes): what a cached user costs today. */
        enc_bench_result(B1_NAME("cache_entries"), (double)s1.cache_entries,
                         "users");
        enc_bench_result(B1_NAME("cache_bytes_per_user"),
                         s1.cache_entries ? (double)s1.cache_bytes /
                                                    (double)s1.cache_entries
                                          : 0,
                         "bytes");
        enc_bench_result(B1_NAME("cache_max_mib"), o[4].num, "MiB");
        enc_bench_result(B1_NAME("state_user_keys"), (double)ss.user_keys,
                         "keys (estimate)");
        enc_bench_result(B1_NAME("state_sst_mib"), (double)ss.sst_bytes / 1048576.0,
                         "MiB");
        enc_bench_result(B1_NAME("state_dir_mib"),
                         (double)enc_bench_du(dir) / 1048576.0, "MiB");
        /* What point lookups need resident, against the block cache that
         * holds it (state/store.c, "Point lookups"). */
        enc_bench_result(B1_NAME("user_index_mib"),
                         (double)ss.user_index_bytes / 1048576.0, "MiB");
        enc_bench_result(B1_NAME("user_filter_mib"),
                         (double)ss.user_filter_bytes / 1048576.0, "MiB");
        enc_bench_result(B1_NAME("block_cache_used_mib"),
                         (double)ss.block_cache_bytes / 1048576.0, "MiB");
        enc_bench_result(B1_NAME("block_cache_pinned_mib"),
                         (double)ss.block_cache_pinned / 1048576.0, "MiB");
        char hex[17];
        *digest_out = (uint64_t)XXH3_64bits_digest(sink.digest);
        *rate_out = rate;
        snprintf(hex, sizeof(hex), "%016" PRIx64, *digest_out);
        enc_bench_result_str(B1_NAME("output_digest"), hex);

        /* The floor, on the same bytes as the timed part. */
        double fast = b1_decode_rate(log, warm, log->n, false, false,
                                     resolved);
        double fastv = b1_decode_rate(log, warm, log->n, false, true,
                                      resolved);
        /* Avro C's generic path reads encore's own schema only */
        double avro = resolved ? 0
                               : b1_decode_rate(log, warm, log->n, true,
                                                false, false);
        enc_bench_log("decoding alone: fast %.0f/s (with validation %.0f/s), "
                      "Avro C %.0f/s",
                      fast, fastv, avro);
        enc_bench_result(B1_NAME("decode_fast_per_s"), fast, "records/s");
        enc_bench_result(B1_NAME("decode_fast_validate_per_s"), fastv, "records/s");
        if (!resolved)
                enc_bench_result(B1_NAME("decode_avro_c_per_s"), avro,
                                 "records/s");
        rc = 0;
done:
        enc_engine_destroy(run.engine);
        enc_store_close(st);
        enc_conf_destroy(conf);
        XXH3_freeState(sink.digest);
        if (dir) {
                if (o[9].num)
                        enc_bench_log("state kept in %s", dir);
                else
                        enc_bench_rmtree(dir);
        }
        free(dir);
        return rc;
#undef B1_NAME
}

/* Decoding alone over a generated log (no state): `encore-bench decode`. */
int enc_bench_decode(int argc, char **argv) {
        enc_bench_opt_t o[] = {
                {"users", "listeners alive on day 0", 100000, NULL},
                {"count", "records", 2000000, NULL},
                {"cpu", "pin to this CPU (-1: no pinning)", 0, NULL},
                {NULL, NULL, 0, NULL}};
        if (!enc_bench_parse(argc, argv, o, "encore-bench decode"))
                return 2;
        char errstr[256];
        if (enc_bench_pin_cpu((int)o[2].num))
                return 1;
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.users = (uint32_t)o[0].num;
        gc.days = 365;
        enc_bench_log_t log;
        if (enc_bench_log_generate(&log, &gc, (uint64_t)o[1].num, 1, errstr,
                                   sizeof(errstr))) {
                enc_bench_log("generate: %s", errstr);
                return 1;
        }
        double fast = b1_decode_rate(&log, 0, log.n, false, false, false);
        double avro = b1_decode_rate(&log, 0, log.n, true, false, false);
        enc_bench_result("decode.avg_record_bytes",
                         (double)log.arena_len / (double)log.n, "bytes");
        enc_bench_result("decode.fast_per_s", fast, "records/s");
        enc_bench_result("decode.avro_c_per_s", avro, "records/s");
        enc_bench_result("decode.speedup", avro > 0 ? fast / avro : 0, "x");
        enc_bench_log_free(&log);
        return fast > 0 && avro > 0 ? 0 : 1;
}
