/*
 * stray.h -- what the loop does with a record of a partition the engine
 * does not hold (see stray.c): process it, drop it, or drop it and seek
 * its partition back so it is fetched again.
 */
#ifndef ENC_STRAY_H
#define ENC_STRAY_H

#include <stdbool.h>
#include <stdint.h>

typedef enum enc_stray_action_e {
        ENC_STRAY_PROCESS = 0, /* the engine holds the partition */
        ENC_STRAY_DROP,        /* not this process's partition (revoked,
                                  never assigned): discard it, move
                                  nothing */
        ENC_STRAY_REFETCH,     /* this process's partition, held back (its
                                  restore runs): discard it and seek the
                                  partition to *seek_to, so the record is
                                  fetched again when it is resumed */
} enc_stray_action_t;

/**
 * Decides what to do with a polled record at @p offset of a partition:
 * @p engine_holds: the engine owns it (it takes records);
 * @p assigned: it is in this process's assignment;
 * @p rewound: the offset it was last sought back to by a REFETCH since
 * encore last positioned it, or -1.
 * For ENC_STRAY_REFETCH, *seek_to is the smaller of @p offset and
 * @p rewound (when >= 0): the earliest record of the partition that was
 * delivered and not processed. Pure: any thread.
 */
enc_stray_action_t enc_stray_decide(bool engine_holds, bool assigned,
                                    int64_t rewound, int64_t offset,
                                    int64_t *seek_to);

/** "process", "drop" or "refetch". */
const char *enc_stray_action_name(enc_stray_action_t a);

#endif /* ENC_STRAY_H */
