/*
 * restore_bench.c -- how fast does a process with no local state restore a
 * changelog of a million users? (encore-restore-bench)
 *
 * DESIGN
 * An embedded broker gets an input topic and a changelog of P partitions.
 * The changelog is filled the way encore writes it: per partition a begin
 * record, N/P user records (key 'U' + id, value = a user record of the
 * real format with a wake time and one state section of --value-bytes),
 * and a position record. Then the real pipeline starts in this process on
 * an empty state directory: every partition needs a full restore before it
 * is processed. The figure is user records made durable in RocksDB per
 * second, from the first restore's start to the last one's end (the group
 * join before it is not counted). librdkafka's mock keeps about 5 MiB per
 * partition, hence many partitions for a million keys.
 *
 *   encore-restore-bench [--keys 1000000] [--partitions 40]
 *                        [--value-bytes 80]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "embedded.h"
#include "pipeline.h"
#include "store.h"
#include "users.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void produce(rd_kafka_t *rk, const char *topic, int32_t p,
                    const void *key, size_t klen, const void *val,
                    size_t vlen) {
        for (;;) {
                rd_kafka_resp_err_t e = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                        RD_KAFKA_V_KEY(key, klen),
                        RD_KAFKA_V_VALUE((void *)val, vlen),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                if (!e)
                        return;
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
                        exit(1);
                }
                rd_kafka_poll(rk, 10);
        }
}

int main(int argc, char **argv) {
        long keys = 1000000, parts = 40, vbytes = 80;
        for (int i = 1; i + 1 < argc; i += 2) {
                if (!strcmp(argv[i], "--keys"))
                        keys = atol(argv[i + 1]);
                else if (!strcmp(argv[i], "--partitions"))
                        parts = atol(argv[i + 1]);
                else if (!strcmp(argv[i], "--value-bytes"))
                        vbytes = atol(argv[i + 1]);
                else {
                        fprintf(stderr, "usage: encore-restore-bench "
                                        "[--keys N] [--partitions P] "
                                        "[--value-bytes B]\n");
                        return 2;
                }
        }
        if (keys <= 0 || parts <= 0 || parts > 1000 || vbytes < 1 ||
            vbytes > 4000) {
                fprintf(stderr, "encore-restore-bench: bad arguments\n");
                return 2;
        }
        char err[512];
        enc_embedded_t *emb = enc_embedded_new(1, err, sizeof(err));
        if (!emb || enc_embedded_create_topic(emb, "rb-in", (int)parts, err,
                                              sizeof(err)) ||
            enc_embedded_create_topic(emb, "rb-changelog", (int)parts, err,
                                      sizeof(err))) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        const char *bs = enc_embedded_bootstraps(emb);

        /* the changelog, as encore writes it */
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bs, err, sizeof(err));
        rd_kafka_conf_set(kc, "linger.ms", "20", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        enc_buf_t rec, meta;
        enc_buf_init(&rec, 1 << 16);
        enc_buf_init(&meta, 256);
        enc_store_meta_t m = {0, 0, INT64_MIN, INT64_MIN, -1, INT64_MIN};
        enc_store_meta_encode(&m, &meta);
        uint8_t *payload = malloc((size_t)vbytes);
        memset(payload, 0x5a, (size_t)vbytes);
        double t0 = now_s();
        for (long p = 0; p < parts; p++)
                produce(rk, "rb-changelog", (int32_t)p, "B", 1, "", 0);
        for (long k = 0; k < keys; k++) {
                char key[32];
                int kl = snprintf(key, sizeof(key), "Uu%ld", k);
                enc_buf_reset(&rec);
                enc_buf_put_u8(&rec, ENC_USER_RECORD_VERSION);
                enc_buf_put_svarint(&rec, 1767571200000 + k % 86400000);
                enc_buf_put_varint(&rec, 1);
                enc_buf_put_u32be(&rec, 1);
                enc_buf_put_varint(&rec, (uint64_t)vbytes);
                if (enc_buf_append(&rec, payload, (size_t)vbytes))
                        return 1;
                produce(rk, "rb-changelog", (int32_t)(k % parts), key,
                        (size_t)kl, rec.data, rec.len);
                if (k % 10000 == 0)
                        rd_kafka_poll(rk, 0);
        }
        for (long p = 0; p < parts; p++)
                produce(rk, "rb-changelog", (int32_t)p, "M", 1, meta.data,
                        meta.len);
        if (rd_kafka_flush(rk, 120000)) {
                fprintf(stderr, "flush failed\n");
                return 1;
        }
        rd_kafka_destroy(rk);
        fprintf(stderr, "changelog written: %ld user records over %ld "
                        "partitions in %.1f s\n",
                keys, parts, now_s() - t0);

        /* a process with no local state */
        char dir[] = "/tmp/encore-restore-bench-XXXXXX";
        if (!mkdtemp(dir))
                return 1;
        enc_conf_t *conf = enc_conf_new();
        char kv[600];
        const char *sets[] = {"input.topic=rb-in", "group.id=rb",
                              "metrics.address=127.0.0.1:0",
                              "log.level=warn", NULL};
        snprintf(kv, sizeof(kv), "kafka.bootstrap.servers=%s", bs);
        if (enc_conf_set_kv(conf, kv, err, sizeof(err)))
                return 1;
        snprintf(kv, sizeof(kv), "state.dir=%s", dir);
        if (enc_conf_set_kv(conf, kv, err, sizeof(err)))
                return 1;
        for (int i = 0; sets[i]; i++)
                if (enc_conf_set_kv(conf, sets[i], err, sizeof(err)))
                        return 1;
        enc_pipeline_t *pl = enc_pipeline_new(conf, err, sizeof(err));
        if (!pl) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        enc_pipeline_opts_t opts = {.exit_idle_ms = 500};
        if (enc_pipeline_run(pl, &opts, err, sizeof(err))) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        enc_pipeline_stats_t st;
        enc_pipeline_stats(pl, &st);
        enc_pipeline_destroy(pl);
        double secs = (double)(st.restore_last_ms - st.restore_first_ms) /
                      1000.0;
        printf("restore: %llu partitions, %llu changelog records, %llu user "
               "keys restored in %.2f s = %.0f keys/s (%.0f records/s)\n",
               (unsigned long long)st.restores,
               (unsigned long long)st.restore_records,
               (unsigned long long)st.restore_users, secs,
               secs > 0 ? (double)st.restore_users / secs : 0.0,
               secs > 0 ? (double)st.restore_records / secs : 0.0);
        int ok = st.restore_users == (uint64_t)keys;
        if (!ok)
                fprintf(stderr, "expected %ld keys restored\n", keys);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd))
                fprintf(stderr, "could not remove %s\n", dir);
        enc_conf_destroy(conf);
        enc_embedded_destroy(emb);
        enc_buf_free(&rec);
        enc_buf_free(&meta);
        free(payload);
        return ok ? 0 : 1;
}
