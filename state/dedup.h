/*
 * dedup.h -- the engine's own plug-in remembering each user's recent event
 * ids, so a repeated event id within dedup.window.ms is dead-lettered
 * (reason `duplicate`) instead of counted twice. See dedup.c.
 */
#ifndef ENC_DEDUP_H
#define ENC_DEDUP_H

#include "enc.h"
#include "plugin.h"

/* Instance id of the dedup section in user records (signal instance ids
 * are XXH32 of "name:version"; this one is reserved). */
#define ENC_DEDUP_INSTANCE_ID 0x00000000u

/** The hash that stands for an event id. */
uint64_t enc_dedup_hash(const char *event_id);

/** Fills @p inst with the dedup plug-in for @p window ms. Free with
 *  enc_dedup_instance_free. */
enc_err_t enc_dedup_instance(int64_t window, enc_sig_instance_t *inst) ENC_WUR;
void enc_dedup_instance_free(enc_sig_instance_t *inst);

/** True if @p state (the user's dedup state, may be NULL) holds @p hash
 *  with an event time >= @p since. */
bool enc_dedup_seen(const enc_sig_instance_t *inst, const void *state,
                    uint64_t hash, int64_t since);

#endif /* ENC_DEDUP_H */
