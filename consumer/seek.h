/*
 * seek.h -- moving a consumer's partitions to new offsets without ever
 * stopping on a seek timeout (see seek.c). Used by the changelog restore
 * and the exactly-once rewind.
 */
#ifndef ENC_SEEK_H
#define ENC_SEEK_H

#include <librdkafka/rdkafka.h>

#include "enc.h"

/** What a seek came to, judged from what rd_kafka_seek_partitions()
 *  returned. */
typedef enum enc_seek_verdict_e {
        ENC_SEEK_STARTED = 0, /* applied, or under way: the next record of
                                 each partition comes from its new offset */
        ENC_SEEK_FAILED,      /* a partition cannot be moved (not assigned
                                 to this client): a real error */
} enc_seek_verdict_t;

/**
 * Judges a seek from @p call_err (the code of the error object
 * rd_kafka_seek_partitions returned, 0 for none) and the @p n per-partition
 * codes it left in @p part_err. A timeout, of the call or of a partition,
 * is never a failure: librdkafka 2.0.2 reports one for seeks that worked
 * or are still under way (its timeout is taken in the wrong unit). On
 * ENC_SEEK_FAILED, *bad (if not NULL) is the index of the first failed
 * partition, or -1 when the call itself failed. Pure: any thread.
 */
enc_seek_verdict_t enc_seek_judge(rd_kafka_resp_err_t call_err,
                                  const rd_kafka_resp_err_t *part_err, int n,
                                  int *bad);

/**
 * Moves each partition of @p l (offsets set) of consumer @p rk to its
 * offset, asynchronously: it returns once the seeks are queued, and no
 * record fetched before them is delivered afterwards. @p l is borrowed
 * (its err fields are overwritten). ENC_ERR_KAFKA with @p errstr naming
 * the partition only when enc_seek_judge says FAILED.
 * @locality the thread that polls @p rk.
 */
enc_err_t enc_seek(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                   char *errstr, size_t errstr_size) ENC_WUR;

#endif /* ENC_SEEK_H */
