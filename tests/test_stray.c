/*
 * test_stray.c -- what the loop does with a record of a partition the
 * engine does not hold (consumer/stray.c), on scripted sequences of what
 * the main consumer delivers around an assignment, a restore and a
 * revocation. The mock cluster cannot be made to deliver such a record
 * on demand (librdkafka's pause and fetcher stop race the fetch), so the
 * orderings are pinned here: a script plays the loop's bookkeeping (the
 * engine's partitions, the assignment, the offset a partition was sought
 * back to) and a model of librdkafka's position, and each expected
 * outcome is worked out by hand in its comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "stray.h"

/* ---- single decisions ------------------------------------------------ */

/* The engine holds the partition: processed, whatever the rest says. */
static void test_a_held_partition_is_processed(void **st) {
        (void)st;
        int64_t to = 77;
        assert_int_equal(enc_stray_decide(true, true, -1, 10, &to),
                         ENC_STRAY_PROCESS);
        assert_int_equal(enc_stray_decide(true, false, 5, 10, &to),
                         ENC_STRAY_PROCESS);
        assert_int_equal(to, 77); /* untouched */
}

/* Not in the assignment (revoked, lost, never assigned): dropped, and no
 * seek is asked for. */
static void test_a_partition_given_up_is_dropped_without_a_seek(void **st) {
        (void)st;
        int64_t to = 77;
        assert_int_equal(enc_stray_decide(false, false, -1, 10, &to),
                         ENC_STRAY_DROP);
        assert_int_equal(enc_stray_decide(false, false, 4, 10, &to),
                         ENC_STRAY_DROP);
        assert_int_equal(to, 77);
}

/* Assigned but not held by the engine (restoring): sought back to the
 * record itself the first time; afterwards to the smaller of the record
 * and the offset already sought to, never forward. */
static void test_a_restoring_partition_is_sought_back_never_forward(void **st) {
        (void)st;
        int64_t to = -1;
        assert_int_equal(enc_stray_decide(false, true, -1, 120, &to),
                         ENC_STRAY_REFETCH);
        assert_int_equal(to, 120);
        /* a later record after a seek back to 120: back to 120 again */
        assert_int_equal(enc_stray_decide(false, true, 120, 135, &to),
                         ENC_STRAY_REFETCH);
        assert_int_equal(to, 120);
        /* the record at 120 again (the pause still not in effect) */
        assert_int_equal(enc_stray_decide(false, true, 120, 120, &to),
                         ENC_STRAY_REFETCH);
        assert_int_equal(to, 120);
        /* an earlier one: to it */
        assert_int_equal(enc_stray_decide(false, true, 120, 90, &to),
                         ENC_STRAY_REFETCH);
        assert_int_equal(to, 90);
        /* offset 0 is an offset like any other */
        assert_int_equal(enc_stray_decide(false, true, -1, 0, &to),
                         ENC_STRAY_REFETCH);
        assert_int_equal(to, 0);
}

/* ---- scripts ---------------------------------------------------------- */

/* What happens in the consumer, in order. */
typedef enum {
        ASSIGN_HELD, /* assigned for a restore: paused, engine not holding */
        HAND_OVER,   /* restore done: engine takes it, encore seeks to
                        `at` (the restored position; -1: none) */
        REVOKE,      /* given up */
        DELIVER,     /* the consumer delivers the record at `at` */
        RESUME,      /* the paused partition is fetched again */
} t_kind_t;

typedef struct {
        t_kind_t kind;
        int64_t at;
} t_step_t;

/* One partition: the loop's view and a model of librdkafka's position
 * (where the next fetch starts: the offset after the last record
 * delivered, or where a seek put it). */
typedef struct {
        bool assigned, engine;
        int64_t rewound;  /* the loop's: offset sought back to, or -1 */
        int64_t position; /* librdkafka's next fetch offset */
        int64_t applied[32];
        int napplied;
        int dropped, refetched;
} t_part_t;

static void t_play(t_part_t *p, const t_step_t *steps, int n) {
        for (int i = 0; i < n; i++) {
                const t_step_t *s = &steps[i];
                switch (s->kind) {
                case ASSIGN_HELD:
                        p->assigned = true;
                        p->engine = false;
                        p->rewound = -1;
                        break;
                case HAND_OVER: {
                        /* pipeline.c enc_pipeline_restored: the restored
                         * position, else where a stray sent it back */
                        int64_t to = s->at >= 0 ? s->at : p->rewound;
                        if (to >= 0)
                                p->position = to;
                        p->engine = true;
                        p->rewound = -1;
                        break;
                }
                case REVOKE:
                        p->assigned = p->engine = false;
                        p->rewound = -1;
                        break;
                case DELIVER: {
                        /* librdkafka moves past what it delivers */
                        p->position = s->at + 1;
                        int64_t to = -1;
                        switch (enc_stray_decide(p->engine, p->assigned,
                                                 p->rewound, s->at, &to)) {
                        case ENC_STRAY_PROCESS:
                                p->applied[p->napplied++] = s->at;
                                break;
                        case ENC_STRAY_DROP:
                                p->dropped++;
                                break;
                        case ENC_STRAY_REFETCH:
                                p->refetched++;
                                p->rewound = to;
                                p->position = to; /* the seek */
                                break;
                        }
                        break;
                }
                case RESUME:
                        break; /* fetches go on from p->position */
                }
        }
}

/* The race the fatal error came from: a partition assigned for a restore
 * (no restored position: the changelog held no position record for it)
 * delivers 40 and 41 before its pause takes effect. Both are discarded
 * and the partition sought back to 40 (then to 40 again); at the
 * hand-over with no position it resumes from 40, so 40, 41, 42 are
 * applied once each, in order. Dropping without the seek would have
 * resumed at 42 and lost two records. */
static void test_records_before_the_pause_are_fetched_again(void **st) {
        (void)st;
        t_part_t p = {.rewound = -1, .position = 40};
        const t_step_t s[] = {{ASSIGN_HELD, 0}, {DELIVER, 40}, {DELIVER, 41},
                              {HAND_OVER, -1},  {RESUME, 0},   {DELIVER, 40},
                              {DELIVER, 41},    {DELIVER, 42}};
        t_play(&p, s, 8);
        assert_int_equal(p.refetched, 2);
        assert_int_equal(p.dropped, 0);
        assert_int_equal(p.napplied, 3);
        assert_int_equal(p.applied[0], 40);
        assert_int_equal(p.applied[1], 41);
        assert_int_equal(p.applied[2], 42);
        assert_int_equal(p.position, 43);
}

/* With a restored position (resume at 35, before the strays at 40, 41)
 * the hand-over's seek wins: 35.. are applied, the strays changed
 * nothing. */
static void test_the_restored_position_wins_over_a_seek_back(void **st) {
        (void)st;
        t_part_t p = {.rewound = -1, .position = 40};
        const t_step_t s[] = {{ASSIGN_HELD, 0}, {DELIVER, 40}, {DELIVER, 41},
                              {HAND_OVER, 35},  {DELIVER, 35}, {DELIVER, 36}};
        t_play(&p, s, 6);
        assert_int_equal(p.refetched, 2);
        assert_int_equal(p.napplied, 2);
        assert_int_equal(p.applied[0], 35);
        assert_int_equal(p.applied[1], 36);
        assert_int_equal(p.position, 37);
}

/* Records still queued from before a revocation (500, 501) are dropped
 * with no seek (librdkafka's position of a partition it no longer has is
 * nobody's); the next assignment of it, held for a restore again, starts
 * afresh: its first stray (300) is sought back to 300, not to anything
 * remembered from before. */
static void test_records_after_a_revocation_are_dropped(void **st) {
        (void)st;
        t_part_t p = {.assigned = true,
                      .engine = true,
                      .rewound = -1,
                      .position = 499};
        const t_step_t s[] = {{DELIVER, 499},  {REVOKE, 0},      {DELIVER, 500},
                              {DELIVER, 501},  {ASSIGN_HELD, 0}, {DELIVER, 300},
                              {HAND_OVER, -1}, {DELIVER, 300}};
        t_play(&p, s, 8);
        assert_int_equal(p.dropped, 2);
        assert_int_equal(p.refetched, 1);
        assert_int_equal(p.napplied, 2);
        assert_int_equal(p.applied[0], 499);
        assert_int_equal(p.applied[1], 300);
        assert_int_equal(p.position, 301);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_a_held_partition_is_processed),
                cmocka_unit_test(
                        test_a_partition_given_up_is_dropped_without_a_seek),
                cmocka_unit_test(
                        test_a_restoring_partition_is_sought_back_never_forward),
                cmocka_unit_test(
                        test_records_before_the_pause_are_fetched_again),
                cmocka_unit_test(
                        test_the_restored_position_wins_over_a_seek_back),
                cmocka_unit_test(test_records_after_a_revocation_are_dropped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
