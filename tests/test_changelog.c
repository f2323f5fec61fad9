/*
 * test_changelog.c -- writing the changelog (consumer/changelog.c) on the
 * mock cluster: a commit's records held back while its outputs are in
 * flight reach the changelog only when released, in the order they were
 * written, and never when dropped. (That the pipeline releases them only
 * after every output is acknowledged is pinned end to end by
 * tests/test_faults.c: a failed delivery and a SIGKILL with an output
 * leader down must lose nothing after a restart.)
 *
 * What reached the broker is read from the producer's delivery reports:
 * rd_kafka_flush returns once every message produced so far is
 * acknowledged, so a record missing from the reports after a flush was
 * never produced. Offsets are worked out by hand: each changelog partition
 * starts empty, so its n-th record is at offset n - 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "changelog.h"
#include "embedded.h"
#include "harness.h"

typedef struct {
        int32_t partition;
        char key; /* first byte: 'B', 'U' or 'M' */
        int64_t offset;
        char val[16];
        size_t vlen;
        int err;
} t_dr_t;

static t_dr_t drs[64];
static int ndr;

static void t_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *op) {
        (void)rk;
        (void)op;
        if (ndr >= 64)
                return;
        t_dr_t *d = &drs[ndr++];
        d->partition = m->partition;
        d->key = m->key_len ? *(const char *)m->key : 0;
        d->offset = m->offset;
        d->vlen = m->len < sizeof(d->val) ? m->len : sizeof(d->val);
        memcpy(d->val, m->payload ? m->payload : "", d->vlen);
        d->err = m->err;
}

typedef struct {
        enc_embedded_t *emb;
        enc_conf_t *conf;
        rd_kafka_t *producer;
        enc_changelog_t *cl;
} t_env_t;

/* A mock cluster with a two-partition input and its changelog topic,
 * a producer reporting deliveries to drs[], and the changelog on it. */
static void t_env(t_env_t *t, const char *group) {
        char err[256], bs[300], gid[128], cl_topic[160];
        ndr = 0;
        t->emb = enc_embedded_new(1, err, sizeof(err));
        assert_non_null(t->emb);
        assert_int_equal(
                enc_embedded_create_topic(t->emb, "cl-in", 2, err, sizeof(err)),
                0);
        snprintf(cl_topic, sizeof(cl_topic), "%s-changelog", group);
        assert_int_equal(enc_embedded_create_topic(t->emb, cl_topic, 2, err,
                                                   sizeof(err)),
                         0);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s",
                 enc_embedded_bootstraps(t->emb));
        snprintf(gid, sizeof(gid), "group.id=%s", group);
        t->conf = t_conf(bs, gid, "input.topic=cl-in", NULL);
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers",
                                           enc_embedded_bootstraps(t->emb), err,
                                           sizeof(err)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_set_dr_msg_cb(kc, t_dr_cb);
        t->producer = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        assert_non_null(t->producer);
        enc_changelog_env_t env = {.conf = t->conf, .producer = t->producer};
        t->cl = enc_changelog_new(&env, true, err, sizeof(err));
        if (!t->cl)
                fprintf(stderr, "changelog: %s\n", err);
        assert_non_null(t->cl);
        assert_true(enc_changelog_enabled(t->cl));
}

static void t_env_free(t_env_t *t) {
        enc_changelog_destroy(t->cl);
        rd_kafka_destroy(t->producer);
        enc_conf_destroy(t->conf);
        enc_embedded_destroy(t->emb);
}

static void t_write(t_env_t *t, int32_t p, const char *key, const char *val,
                    bool meta) {
        assert_int_equal(enc_changelog_write(t->cl, p, key, strlen(key), val,
                                             strlen(val), meta),
                         ENC_OK);
}

static void t_flush(t_env_t *t) {
        assert_int_equal(rd_kafka_flush(t->producer, 30000), 0);
}

/* The delivery report of @p p's record at @p offset, or fails. */
static const t_dr_t *t_dr_at(int32_t p, int64_t offset) {
        for (int i = 0; i < ndr; i++)
                if (drs[i].partition == p && drs[i].offset == offset)
                        return &drs[i];
        fail_msg("no delivery of partition %d offset %lld", p,
                 (long long)offset);
        return NULL;
}

/* One checkpoint of two partitions, as enc_engine_checkpoint_stage writes
 * it: partition 0 gets B, U, M; partition 1 gets B and M. While held, a
 * flush delivers none of them; the release delivers all five, in the
 * order given on each partition: B, U, M at offsets 0, 1, 2 of partition 0
 * and B, M at 0, 1 of partition 1, with their bytes. */
static void
test_held_records_reach_the_changelog_only_when_released(void **st) {
        (void)st;
        t_env_t t;
        t_env(&t, "g-hold");
        enc_changelog_hold(t.cl);
        assert_true(enc_changelog_holding(t.cl));
        t_write(&t, 0, "B", "", false);
        t_write(&t, 1, "B", "", false);
        t_write(&t, 0, "Ualice", "state-a", false);
        t_write(&t, 0, "M", "pos-0", true);
        t_write(&t, 1, "M", "pos-1", true);
        /* keys 1+1+6+1+1, values 0+0+7+5+5 */
        assert_int_equal(enc_changelog_held_bytes(t.cl), 10 + 17);
        t_flush(&t);
        assert_int_equal(ndr, 0);
        assert_int_equal(enc_changelog_release(t.cl), ENC_OK);
        assert_false(enc_changelog_holding(t.cl));
        assert_int_equal(enc_changelog_held_bytes(t.cl), 0);
        t_flush(&t);
        assert_int_equal(ndr, 5);
        for (int i = 0; i < ndr; i++)
                assert_int_equal(drs[i].err, 0);
        assert_int_equal(t_dr_at(0, 0)->key, 'B');
        assert_int_equal(t_dr_at(0, 1)->key, 'U');
        assert_int_equal(t_dr_at(0, 1)->vlen, 7);
        assert_memory_equal(t_dr_at(0, 1)->val, "state-a", 7);
        assert_int_equal(t_dr_at(0, 2)->key, 'M');
        assert_int_equal(t_dr_at(0, 2)->vlen, 5);
        assert_memory_equal(t_dr_at(0, 2)->val, "pos-0", 5);
        assert_int_equal(t_dr_at(1, 0)->key, 'B');
        assert_int_equal(t_dr_at(1, 1)->key, 'M');
        assert_memory_equal(t_dr_at(1, 1)->val, "pos-1", 5);
        /* holding ended with the release: a record now goes out at once
         * (offset 3 of partition 0) */
        t_write(&t, 0, "M", "pos-0b", true);
        t_flush(&t);
        assert_int_equal(ndr, 6);
        assert_int_equal(t_dr_at(0, 3)->key, 'M');
        assert_memory_equal(t_dr_at(0, 3)->val, "pos-0b", 6);
        t_env_free(&t);
}

/* A commit that fails after staging drops what it held: none of it is
 * ever produced, not even by a later release; the next record written
 * without a hold is the partition's first (offset 0). */
static void test_dropped_records_are_never_written(void **st) {
        (void)st;
        t_env_t t;
        t_env(&t, "g-drop");
        enc_changelog_hold(t.cl);
        t_write(&t, 0, "B", "", false);
        t_write(&t, 0, "Ubob", "state-b", false);
        t_write(&t, 0, "M", "pos-0", true);
        enc_changelog_drop(t.cl);
        assert_false(enc_changelog_holding(t.cl));
        assert_int_equal(enc_changelog_release(t.cl), ENC_OK);
        t_flush(&t);
        assert_int_equal(ndr, 0);
        t_write(&t, 0, "B", "", false);
        t_flush(&t);
        assert_int_equal(ndr, 1);
        assert_int_equal(t_dr_at(0, 0)->key, 'B');
        t_env_free(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_held_records_reach_the_changelog_only_when_released),
                cmocka_unit_test(test_dropped_records_are_never_written),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
