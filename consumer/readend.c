/*
 * readend.c -- when a reader of one partition has reached its end.
 *
 * DESIGN
 * A reader that stops "at the end" must not wait for the record at
 * end - 1: that offset need not hold a record it will ever receive. On a
 * topic written in transactions the last offset is a commit (or abort)
 * marker, which no consumer receives; under read_committed aborted
 * records are skipped too; compaction removes records anywhere. The
 * offsets a reader sees therefore have gaps, and the one that ends a
 * partition is often absent. What the reader can rely on is its position:
 *   - after a record at offset o, the position is o + 1;
 *   - partition EOF reports the fetcher's position, which has moved past
 *     markers and skipped records;
 *   - rd_kafka_position() reports it too, when the reader is idle.
 * The reader is done when its position reaches the end (position >= end),
 * whichever of the three told it. A record at or past the end also means
 * the end has been passed (the gap before it held only markers or removed
 * records); that record is not the reader's.
 *
 * An EOF below the end does not end the read: records up to the end may
 * still become readable (under read_committed, an open transaction holds
 * the last stable offset back until it commits or aborts).
 *
 * Never: call Kafka, block, or decide anything from the wall clock. The
 * rules are tested on scripted sequences in tests/test_readend.c, since
 * the mock cluster writes no transaction markers.
 */
#include "readend.h"

static void enc_readend_move(enc_readend_t *e, int64_t pos) {
        if (pos > e->pos)
                e->pos = pos;
        if (e->pos >= e->end)
                e->done = true;
}

void enc_readend_init(enc_readend_t *e, int64_t start, int64_t end) {
        e->end = end;
        e->pos = start;
        e->done = start >= end;
}

bool enc_readend_record(enc_readend_t *e, int64_t offset) {
        bool mine = offset < e->end;
        enc_readend_move(e, offset + 1);
        return mine;
}

void enc_readend_eof(enc_readend_t *e, int64_t offset) {
        enc_readend_move(e, offset);
}

void enc_readend_position(enc_readend_t *e, int64_t pos) {
        if (pos >= 0)
                enc_readend_move(e, pos);
}
