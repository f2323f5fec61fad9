/*
 * test_seek.c -- seeks never stop the process on a timeout
 * (consumer/seek.c). The verdict is judged with the timeout injected
 * (librdkafka 2.0.2 reports one for seeks that worked; its fix is in
 * 2.1.0, so the mock cannot be made to produce it on demand), and the
 * asynchronous seek encore uses instead is checked on the mock cluster:
 * the next record polled is the one at the new offset, for a paused
 * partition resumed after the seek (the restore's hand-over), for one
 * already fetching (the exactly-once rewind) and for one paused and
 * sought back to a record it delivered (a stray record's refetch).
 */
#include "kafka_harness.h"

#include "seek.h"

static void test_timeout_is_never_a_failure(void **st) {
        (void)st;
        int bad = 7;
        /* the call timed out, every partition still in progress: what
         * 2.0.2 returns for a slow seek that then works */
        rd_kafka_resp_err_t inprog[2] = {RD_KAFKA_RESP_ERR__IN_PROGRESS,
                                         RD_KAFKA_RESP_ERR__IN_PROGRESS};
        assert_int_equal(
                enc_seek_judge(RD_KAFKA_RESP_ERR__TIMED_OUT, inprog, 2, &bad),
                ENC_SEEK_STARTED);
        assert_int_equal(bad, -1);
        /* a partition reported timed out */
        rd_kafka_resp_err_t to[2] = {RD_KAFKA_RESP_ERR_NO_ERROR,
                                     RD_KAFKA_RESP_ERR__TIMED_OUT};
        assert_int_equal(enc_seek_judge(0, to, 2, &bad), ENC_SEEK_STARTED);
        /* the asynchronous call: no error, all in progress */
        assert_int_equal(enc_seek_judge(0, inprog, 2, &bad), ENC_SEEK_STARTED);
        assert_int_equal(enc_seek_judge(0, NULL, 0, &bad), ENC_SEEK_STARTED);
}

static void test_partition_not_assigned_is_a_failure(void **st) {
        (void)st;
        int bad = 7;
        rd_kafka_resp_err_t pe[3] = {RD_KAFKA_RESP_ERR__IN_PROGRESS,
                                     RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
                                     RD_KAFKA_RESP_ERR__TIMED_OUT};
        assert_int_equal(
                enc_seek_judge(RD_KAFKA_RESP_ERR__TIMED_OUT, pe, 3, &bad),
                ENC_SEEK_FAILED);
        assert_int_equal(bad, 1);
        assert_int_equal(
                enc_seek_judge(RD_KAFKA_RESP_ERR__STATE, NULL, 0, &bad),
                ENC_SEEK_FAILED);
        assert_int_equal(bad, -1);
}

/* 20 records 0..19 in partition 0 of "seek-t". */
static void t_seek_topic(void) {
        static bool made;
        if (made)
                return;
        rd_kafka_t *p = t_producer();
        for (int i = 0; i < 20; i++) {
                char v[8];
                snprintf(v, sizeof(v), "%d", i);
                rd_kafka_resp_err_t e = rd_kafka_producev(
                        p, RD_KAFKA_V_TOPIC("seek-t"), RD_KAFKA_V_PARTITION(0),
                        RD_KAFKA_V_VALUE(v, strlen(v)),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                assert_int_equal(e, 0);
        }
        assert_int_equal(rd_kafka_flush(p, 10000), 0);
        rd_kafka_destroy(p);
        made = true;
}

static rd_kafka_t *t_seek_consumer(void) {
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", "seek-test", err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "3", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        return rk;
}

static int64_t t_next_offset(rd_kafka_t *rk) {
        int64_t deadline = t_now_ms() + 10000;
        while (t_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                int64_t o = m->err ? -1 : m->offset;
                rd_kafka_message_destroy(m);
                if (o >= 0)
                        return o;
        }
        return -1;
}

/* The restore's hand-over: assigned with no offset and paused, then
 * sought and resumed. The first record is the one sought to. */
static void test_async_seek_then_resume_starts_at_the_offset(void **st) {
        (void)st;
        t_seek_topic();
        rd_kafka_t *rk = t_seek_consumer();
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, "seek-t", 0)->offset =
                RD_KAFKA_OFFSET_INVALID;
        assert_int_equal(rd_kafka_assign(rk, l), 0);
        assert_int_equal(rd_kafka_pause_partitions(rk, l), 0);
        rd_kafka_consumer_poll(rk, 200); /* let the assignment settle */
        l->elems[0].offset = 13;
        char err[256];
        assert_int_equal(enc_seek(rk, l, err, sizeof(err)), ENC_OK);
        assert_int_equal(rd_kafka_resume_partitions(rk, l), 0);
        assert_int_equal(t_next_offset(rk), 13);
        assert_int_equal(t_next_offset(rk), 14);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* The rewind: a partition fetching from 0 (records prefetched) is sought
 * back and forth; no record fetched before a seek is delivered after it. */
static void test_async_seek_discards_what_was_fetched_before(void **st) {
        (void)st;
        t_seek_topic();
        rd_kafka_t *rk = t_seek_consumer();
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, "seek-t", 0)->offset = 0;
        assert_int_equal(rd_kafka_assign(rk, l), 0);
        assert_int_equal(t_next_offset(rk), 0);
        assert_int_equal(t_next_offset(rk), 1);
        char err[256];
        l->elems[0].offset = 9;
        assert_int_equal(enc_seek(rk, l, err, sizeof(err)), ENC_OK);
        assert_int_equal(t_next_offset(rk), 9);
        l->elems[0].offset = 3;
        assert_int_equal(enc_seek(rk, l, err, sizeof(err)), ENC_OK);
        assert_int_equal(t_next_offset(rk), 3);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* The stray record's refetch (consumer/stray.c): a record delivered from
 * a partition that should have been held is given back by pausing the
 * partition and seeking it to that record. Nothing is delivered while it
 * is paused (the seek does not restart it), and the resume starts at the
 * record sought to, not after the one delivered. */
static void test_pause_then_seek_back_refetches_a_delivered_record(
        void **st) {
        (void)st;
        t_seek_topic();
        rd_kafka_t *rk = t_seek_consumer();
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, "seek-t", 0)->offset = 4;
        assert_int_equal(rd_kafka_assign(rk, l), 0);
        assert_int_equal(t_next_offset(rk), 4); /* delivered: position 5 */
        assert_int_equal(rd_kafka_pause_partitions(rk, l), 0);
        l->elems[0].offset = 4;
        char err[256];
        assert_int_equal(enc_seek(rk, l, err, sizeof(err)), ENC_OK);
        /* paused: records 5..19 are there, none comes */
        int64_t deadline = t_now_ms() + 700;
        while (t_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (m) {
                        bool rec = !m->err;
                        rd_kafka_message_destroy(m);
                        assert_false(rec);
                }
        }
        assert_int_equal(rd_kafka_resume_partitions(rk, l), 0);
        assert_int_equal(t_next_offset(rk), 4);
        assert_int_equal(t_next_offset(rk), 5);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

/* A partition this client was never given: a real error, named. */
static void test_seek_of_an_unassigned_partition_fails(void **st) {
        (void)st;
        t_seek_topic();
        rd_kafka_t *rk = t_seek_consumer();
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, "seek-none", 0)->offset = 5;
        char err[256];
        assert_int_equal(enc_seek(rk, l, err, sizeof(err)), ENC_ERR_KAFKA);
        assert_non_null(strstr(err, "seek seek-none [0] to 5: "));
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_timeout_is_never_a_failure),
                cmocka_unit_test(test_partition_not_assigned_is_a_failure),
                cmocka_unit_test(
                        test_async_seek_then_resume_starts_at_the_offset),
                cmocka_unit_test(
                        test_pause_then_seek_back_refetches_a_delivered_record),
                cmocka_unit_test(
                        test_async_seek_discards_what_was_fetched_before),
                cmocka_unit_test(test_seek_of_an_unassigned_partition_fails),
        };
        return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
