/*
 * readend.h -- has a reader of one partition reached the end it set out
 * to reach? The one rule every reader that stops at an offset follows
 * (`encore tail`, bounded replays, the changelog restore; see readend.c).
 * Pure: no Kafka calls, any thread.
 */
#ifndef ENC_READEND_H
#define ENC_READEND_H

#include <stdbool.h>
#include <stdint.h>

/** One partition's progress towards @c end. Plain data, owned by the
 *  caller (no destroy). */
typedef struct enc_readend_s {
        int64_t end; /* offset to reach: exclusive */
        int64_t pos; /* the reader's position: next offset it can get */
        bool done;
} enc_readend_t;

/** Starts at @p start towards @p end: the end offset the broker gave for
 *  the reader's isolation level (the high watermark; under read_committed
 *  the last stable offset), or a chosen bound. Done at once if
 *  start >= end. */
void enc_readend_init(enc_readend_t *e, int64_t start, int64_t end);

/** A record at @p offset was received. Returns true if it lies before the
 *  end (the reader handles it), false if it is past the end (the reader
 *  drops it). Either way the position moves past it. */
bool enc_readend_record(enc_readend_t *e, int64_t offset);

/** Partition EOF at @p offset: the fetcher's position, past any control
 *  record (transaction markers) and, under read_committed, past aborted
 *  records. Done if that reaches the end. */
void enc_readend_eof(enc_readend_t *e, int64_t offset);

/** The consumer's position as librdkafka reports it (rd_kafka_position;
 *  negative: not known yet, ignored). */
void enc_readend_position(enc_readend_t *e, int64_t pos);

#endif /* ENC_READEND_H */
