/*
 * seek.c -- seeks that never stop the process on a timeout.
 *
 * DESIGN
 * librdkafka 2.0.2's rd_kafka_seek_partitions() waits for the seeks with
 * its timeout in the wrong unit (fixed in 2.1.0), so a synchronous seek
 * can report __TIMED_OUT for a seek that worked or is still under way. A
 * group member once exited 1 right after a changelog restore on exactly
 * that. So encore seeks asynchronously (timeout 0): the call queues one
 * seek per partition and returns. That is enough for correctness, because
 * librdkafka bumps each partition's version barrier inside the call: a
 * record fetched before the seek is discarded when polled, and the seek
 * op is queued on the partition's op queue ahead of anything asked after
 * it (a resume, a pause), so the next record polled from that partition
 * is the one at the new offset (tests/test_seek.c checks this on the mock
 * cluster, for a paused partition and for one already fetching).
 *
 * What is left to judge is what the call reports at once, in
 * enc_seek_judge: a partition this client does not have is a real error;
 * in progress is success; a timeout, should one be reported anyway, is
 * success too (the seek is queued and applies in order).
 *
 * Never: treat a timeout as a failure, or wait on a seek.
 */
#include "seek.h"

#include <stdlib.h>

static bool enc_seek_ok(rd_kafka_resp_err_t e) {
        return e == RD_KAFKA_RESP_ERR_NO_ERROR ||
               e == RD_KAFKA_RESP_ERR__IN_PROGRESS ||
               e == RD_KAFKA_RESP_ERR__TIMED_OUT;
}

enc_seek_verdict_t enc_seek_judge(rd_kafka_resp_err_t call_err,
                                  const rd_kafka_resp_err_t *part_err, int n,
                                  int *bad) {
        if (bad)
                *bad = -1;
        if (!enc_seek_ok(call_err))
                return ENC_SEEK_FAILED;
        for (int i = 0; i < n; i++)
                if (!enc_seek_ok(part_err[i])) {
                        if (bad)
                                *bad = i;
                        return ENC_SEEK_FAILED;
                }
        return ENC_SEEK_STARTED;
}

enc_err_t enc_seek(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                   char *errstr, size_t errstr_size) {
        for (int i = 0; i < l->cnt; i++)
                l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, l, 0);
        rd_kafka_resp_err_t call_err = e ? rd_kafka_error_code(e) : 0;
        rd_kafka_resp_err_t small[16] = {0};
        rd_kafka_resp_err_t *pe =
                l->cnt <= 16 ? small : malloc((size_t)l->cnt * sizeof(*pe));
        enc_err_t ret = ENC_OK;
        if (!pe) {
                ret = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        for (int i = 0; i < l->cnt; i++)
                pe[i] = l->elems[i].err;
        int bad;
        if (enc_seek_judge(call_err, pe, l->cnt, &bad) == ENC_SEEK_FAILED) {
                if (bad < 0)
                        ret = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                         "seek: %s", rd_kafka_error_string(e));
                else
                        ret = enc_seterr(errstr, errstr_size, ENC_ERR_KAFKA,
                                         "seek %s [%d] to %lld: %s",
                                         l->elems[bad].topic,
                                         l->elems[bad].partition,
                                         (long long)l->elems[bad].offset,
                                         rd_kafka_err2str(l->elems[bad].err));
        }
done:
        if (pe != small)
                free(pe);
        if (e)
                rd_kafka_error_destroy(e);
        return ret;
}
