/*
 * test_readend.c -- the end test every reader that stops at an offset uses
 * (consumer/readend.c), on scripted sequences of what a consumer sees:
 * records, offset gaps (transaction markers, aborted records skipped under
 * read_committed, compaction) and partition EOF. The mock cluster writes no
 * markers, so these sequences are where the gaps a real broker leaves are
 * pinned. Each script's layout and expected outcome is worked out by hand
 * in its comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "readend.h"

typedef enum { REC, EOF_AT, POS } t_kind_t;
typedef struct {
        t_kind_t kind;
        int64_t at;
} t_step_t;

typedef struct {
        int64_t handled[32]; /* offsets the reader handed on */
        int nhandled;
        int done_at; /* index of the step after which it was done; -1 */
} t_result_t;

/* Feeds @p steps to a reader from @p start to @p end, as a reader loop
 * would: it stops at the first step after which the reader is done. */
static t_result_t t_run(int64_t start, int64_t end, const t_step_t *steps,
                        int n) {
        t_result_t r = {.nhandled = 0, .done_at = -1};
        enc_readend_t e;
        enc_readend_init(&e, start, end);
        if (e.done)
                return r;
        for (int i = 0; i < n; i++) {
                switch (steps[i].kind) {
                case REC:
                        if (enc_readend_record(&e, steps[i].at))
                                r.handled[r.nhandled++] = steps[i].at;
                        break;
                case EOF_AT:
                        enc_readend_eof(&e, steps[i].at);
                        break;
                case POS:
                        enc_readend_position(&e, steps[i].at);
                        break;
                }
                if (e.done) {
                        r.done_at = i;
                        break;
                }
        }
        return r;
}

#define RUN(start, end, ...)                                                   \
        t_run(start, end, (const t_step_t[]){__VA_ARGS__},                     \
              (int)(sizeof((t_step_t[]){__VA_ARGS__}) / sizeof(t_step_t)))

/* No gaps (at-least-once output, the mock): records 0 1 2, end 3. The
 * record at end - 1 ends it. */
static void test_plain_log_ends_on_the_record_at_end_minus_one(void **st) {
        (void)st;
        t_result_t r = RUN(0, 3, {REC, 0}, {REC, 1}, {REC, 2}, {EOF_AT, 3});
        assert_int_equal(r.done_at, 2);
        assert_int_equal(r.nhandled, 3);
        assert_int_equal(r.handled[2], 2);
}

/* One transaction: records 0 1, commit marker at 2, high watermark 3. No
 * record at 2 ever arrives; the EOF at 3 ends the read (before the fix the
 * reader waited for offset 2 and timed out). */
static void test_commit_marker_at_the_end_ends_on_eof(void **st) {
        (void)st;
        t_result_t r = RUN(0, 3, {REC, 0}, {REC, 1}, {EOF_AT, 3});
        assert_int_equal(r.done_at, 2);
        assert_int_equal(r.nhandled, 2);
        assert_int_equal(r.handled[0], 0);
        assert_int_equal(r.handled[1], 1);
}

/* The same log, the reader idle with no EOF enabled: the position
 * librdkafka reports (3, past the marker) ends it. An unknown position
 * (-1) and a stale one (1) change nothing. */
static void test_commit_marker_at_the_end_ends_on_position(void **st) {
        (void)st;
        t_result_t r =
                RUN(0, 3, {REC, 0}, {REC, 1}, {POS, -1}, {POS, 1}, {POS, 3});
        assert_int_equal(r.done_at, 4);
        assert_int_equal(r.nhandled, 2);
}

/* Two transactions: 0 1 C(2) 3 4 C(5), end 6. The marker inside is a gap
 * the reader steps over; after record 4 it is at 5, not done; EOF 6 ends
 * it. */
static void test_two_transactions_gap_inside_and_at_the_end(void **st) {
        (void)st;
        t_result_t r =
                RUN(0, 6, {REC, 0}, {REC, 1}, {REC, 3}, {REC, 4}, {EOF_AT, 6});
        assert_int_equal(r.done_at, 4);
        assert_int_equal(r.nhandled, 4);
        assert_int_equal(r.handled[2], 3);
        assert_int_equal(r.handled[3], 4);
}

/* read_committed after an aborted transaction: 0 C(1), aborted 2 3,
 * abort marker 4; the last stable offset is 5. Only record 0 is delivered;
 * EOF at 5 ends it. */
static void test_aborted_transaction_at_the_end_read_committed(void **st) {
        (void)st;
        t_result_t r = RUN(0, 5, {REC, 0}, {EOF_AT, 5});
        assert_int_equal(r.done_at, 1);
        assert_int_equal(r.nhandled, 1);
        assert_int_equal(r.handled[0], 0);
}

/* An EOF below the end is no end: the end (5) was taken from a view that
 * includes an open transaction at 2 3 (the last stable offset was 2). EOF
 * at 2, then the transaction commits (marker 4) and records 2 3 arrive;
 * EOF at 5 ends it with all four records handled. */
static void test_eof_below_the_end_waits_for_the_rest(void **st) {
        (void)st;
        t_result_t r = RUN(0, 5, {REC, 0}, {REC, 1}, {EOF_AT, 2}, {REC, 2},
                           {REC, 3}, {EOF_AT, 5});
        assert_int_equal(r.done_at, 5);
        assert_int_equal(r.nhandled, 4);
        assert_int_equal(r.handled[3], 3);
}

/* A bound inside the log (replay --to 20, from 10): offset 19 is a commit
 * marker and the next transaction starts at 20. Record 18 leaves the
 * reader at 19 < 20; record 20 is past the end: not handed on, and done. */
static void
test_bound_inside_the_log_ends_on_the_first_record_past_it(void **st) {
        (void)st;
        t_result_t r = RUN(10, 20, {REC, 10}, {REC, 18}, {REC, 20}, {REC, 21});
        assert_int_equal(r.done_at, 2);
        assert_int_equal(r.nhandled, 2);
        assert_int_equal(r.handled[0], 10);
        assert_int_equal(r.handled[1], 18);
}

/* Compaction removed records anywhere: 0 4 9 remain of [0, 10). */
static void test_compacted_log_ends_on_its_last_record(void **st) {
        (void)st;
        t_result_t r = RUN(0, 10, {REC, 0}, {REC, 4}, {REC, 9});
        assert_int_equal(r.done_at, 2);
        assert_int_equal(r.nhandled, 3);
}

/* Nothing to read: start at or past the end is done before any step. */
static void test_empty_range_is_done_at_once(void **st) {
        (void)st;
        enc_readend_t e;
        enc_readend_init(&e, 5, 5);
        assert_true(e.done);
        enc_readend_init(&e, 7, 5);
        assert_true(e.done);
        enc_readend_init(&e, 4, 5);
        assert_false(e.done);
        enc_readend_eof(&e, 4); /* EOF where it stands: not at the end */
        assert_false(e.done);
        assert_int_equal(e.pos, 4);
        enc_readend_eof(&e, 3); /* never moves back */
        assert_int_equal(e.pos, 4);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_plain_log_ends_on_the_record_at_end_minus_one),
                cmocka_unit_test(test_commit_marker_at_the_end_ends_on_eof),
                cmocka_unit_test(
                        test_commit_marker_at_the_end_ends_on_position),
                cmocka_unit_test(
                        test_two_transactions_gap_inside_and_at_the_end),
                cmocka_unit_test(
                        test_aborted_transaction_at_the_end_read_committed),
                cmocka_unit_test(test_eof_below_the_end_waits_for_the_rest),
                cmocka_unit_test(
                        test_bound_inside_the_log_ends_on_the_first_record_past_it),
                cmocka_unit_test(test_compacted_log_ends_on_its_last_record),
                cmocka_unit_test(test_empty_range_is_done_at_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
