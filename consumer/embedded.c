/*
 * embedded.c -- librdkafka's mock cluster, wrapped.
 *
 * DESIGN
 * The mock cluster needs a librdkafka handle to live in; we give it a
 * producer handle of its own that never produces, so the cluster's lifetime
 * is independent of the clients that connect to it over loopback like they
 * would to any broker. Nothing here is a fake: clients speak the Kafka
 * protocol to it, with consumer groups, offset commits and idempotence.
 */
#include "embedded.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

struct enc_embedded_s {
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc;
        char *bootstraps;
};

enc_embedded_t *enc_embedded_new(int brokers, char *errstr,
                                 size_t errstr_size) {
        enc_embedded_t *emb = calloc(1, sizeof(*emb));
        char rerr[256];
        if (!emb) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                return NULL;
        }
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "log_level", "3", rerr, sizeof(rerr));
        rd_kafka_conf_set(kc, "client.id", "encore-embedded-broker", rerr,
                          sizeof(rerr));
        emb->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, rerr, sizeof(rerr));
        if (!emb->rk) {
                rd_kafka_conf_destroy(kc);
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "embedded broker handle: %s", rerr);
                goto fail;
        }
        emb->mc = rd_kafka_mock_cluster_new(emb->rk, brokers);
        if (!emb->mc) {
                enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                           "cannot start the mock cluster");
                goto fail;
        }
        emb->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(emb->mc));
        if (!emb->bootstraps) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                           "out of memory");
                goto fail;
        }
        return emb;
fail:
        enc_embedded_destroy(emb);
        return NULL;
}

void enc_embedded_destroy(enc_embedded_t *emb) {
        if (!emb)
                return;
        if (emb->mc)
                rd_kafka_mock_cluster_destroy(emb->mc);
        if (emb->rk)
                rd_kafka_destroy(emb->rk);
        free(emb->bootstraps);
        free(emb);
}

const char *enc_embedded_bootstraps(const enc_embedded_t *emb) {
        return emb->bootstraps;
}

enc_err_t enc_embedded_create_topic(enc_embedded_t *emb, const char *topic,
                                    int partitions, char *errstr,
                                    size_t errstr_size) {
        rd_kafka_resp_err_t err =
                rd_kafka_mock_topic_create(emb->mc, topic, partitions, 1);
        if (err)
                return enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                  "create topic %s: %s", topic,
                                  rd_kafka_err2str(err));
        return ENC_OK;
}

void *enc_embedded_mock(enc_embedded_t *emb) {
        return emb->mc;
}
