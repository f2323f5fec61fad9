/*
 * embedded.h -- an in-process Kafka cluster for the demo and the tests:
 * librdkafka's mock cluster, a real Kafka-protocol server on loopback.
 *
 * Known limits (librdkafka 2.0.2): no read_committed filtering of aborted
 * transactions, offsets sent to a transaction are not stored, ListOffsets by
 * timestamp answers -1, about 5 MiB of log per partition, no compaction.
 */
#ifndef ENC_EMBEDDED_H
#define ENC_EMBEDDED_H

#include "enc.h"

typedef struct enc_embedded_s enc_embedded_t;

/** Starts a cluster of @p brokers brokers on loopback. NULL + errstr on
 *  failure. Destroy with enc_embedded_destroy (clients must be gone). */
enc_embedded_t *enc_embedded_new(int brokers, char *errstr,
                                 size_t errstr_size);
void enc_embedded_destroy(enc_embedded_t *emb);

/** "127.0.0.1:port,..." for bootstrap.servers; borrowed. */
const char *enc_embedded_bootstraps(const enc_embedded_t *emb);

/** Creates @p topic with @p partitions partitions (replication 1). */
enc_err_t enc_embedded_create_topic(enc_embedded_t *emb, const char *topic,
                                    int partitions, char *errstr,
                                    size_t errstr_size) ENC_WUR;

/** The underlying rd_kafka_mock_cluster_t, for fault injection in tests. */
void *enc_embedded_mock(enc_embedded_t *emb);

#endif /* ENC_EMBEDDED_H */
