/*
 * tail.h -- read a topic from the beginning to its current end, without a
 * consumer group: `encore tail`, the demo's summary and the tests' view of
 * what encore produced.
 */
#ifndef ENC_TAIL_H
#define ENC_TAIL_H

#include "enc.h"

struct rd_kafka_message_s;

/** Called for each record in partition order (partitions one after the
 *  other is not promised: records of different partitions interleave). The
 *  message is borrowed for the call. Non-zero return stops the read. */
typedef int (*enc_tail_cb_t)(void *opaque,
                             const struct rd_kafka_message_s *m);

/**
 * Reads every partition of @p topic at @p bootstrap from its earliest offset
 * up to the high watermark seen at start (records produced later are not
 * waited for). @p timeout_ms bounds the whole read. *count is the number of
 * records passed to @p cb.
 */
enc_err_t enc_tail_read(const char *bootstrap, const char *topic,
                        int timeout_ms, enc_tail_cb_t cb, void *opaque,
                        uint64_t *count, char *errstr,
                        size_t errstr_size) ENC_WUR;

/** One partition's slice for enc_tail_read_range: [start, end). */
typedef struct enc_tail_range_s {
        int32_t partition;
        int64_t start; /* clamped up to the partition's earliest offset */
        int64_t end;   /* exclusive; clamped down to its end at start */
} enc_tail_range_t;

/**
 * enc_tail_read over slices: only the partitions in @p ranges (borrowed
 * for the call; NULL: every partition, earliest to end), each from its
 * start to its end. Same end rule (consumer/readend.c).
 */
enc_err_t enc_tail_read_range(const char *bootstrap, const char *topic,
                              const enc_tail_range_t *ranges, int nranges,
                              int timeout_ms, enc_tail_cb_t cb, void *opaque,
                              uint64_t *count, char *errstr,
                              size_t errstr_size) ENC_WUR;

#endif /* ENC_TAIL_H */
