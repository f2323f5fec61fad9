/*
 * stray.c -- records of partitions the engine does not hold.
 *
 * DESIGN
 * The engine takes records only of partitions it owns; a record of any
 * other partition used to stop the process ("record for partition 0,
 * which is not assigned"; seen in b2/b3-style runs with
 * kafka.consumer.queued.max.messages.kbytes=16384). The main consumer can
 * hand one over in two situations:
 *   - a partition this process has (it is in the assignment) but holds
 *     back: assigned for a changelog restore and paused until the restore
 *     is done, the engine taking it only at the hand-over. librdkafka
 *     2.0.2 pauses asynchronously (an op to the partition's broker
 *     thread, which it discards as outdated if an op of a newer version
 *     was served first) and the fetch the assignment starts can race it.
 *     Which race it was is not pinned down, but in one `encore-bench b3`
 *     lost-disk restore one partition of eight was fetched from its
 *     committed offset while "paused", its first record delivered every
 *     50 ms (64 times) until its restore ended. So the loop pauses such
 *     a partition again before seeking it back (a no-op if it was
 *     paused);
 *   - a partition given up (revoked, lost): records fetched before the
 *     revocation may still be queued, and librdkafka stops the fetcher
 *     asynchronously too.
 * Either way the record must not be applied, and must not be lost.
 * librdkafka moves a partition's position past every record it delivers
 * to the application, and a paused partition resumes from there, so a
 * held partition's record that is simply dropped is never fetched again.
 * Hence the two answers:
 *   - not assigned: drop it and move nothing. The partition is someone
 *     else's; whoever owns it next (this process included) starts from
 *     the stored or committed position, which is at or before it.
 *   - assigned but held: drop it, pause the partition again and seek it
 *     back to its offset (REFETCH). The seek bumps librdkafka's version
 *     barrier and clears the position a pause would resume from, so
 *     every record of the partition fetched before it is discarded, and
 *     the next one delivered is the one at that offset. A later stray of
 *     the same partition (the pause still not in effect) is sought back
 *     to the earliest offset already sought to, never forward: records
 *     arrive in offset order, so that is the first one not processed.
 *     The hand-over seeks to the restored position anyway; the REFETCH
 *     matters when it has none (it then resumes where librdkafka stands).
 * A partition the engine holds is processed whatever else is true.
 *
 * Never: apply a record of a partition the engine does not hold; seek a
 * partition this process does not have; seek a held partition forward.
 */
#include "stray.h"

enc_stray_action_t enc_stray_decide(bool engine_holds, bool assigned,
                                    int64_t rewound, int64_t offset,
                                    int64_t *seek_to) {
        if (engine_holds)
                return ENC_STRAY_PROCESS;
        if (!assigned)
                return ENC_STRAY_DROP;
        *seek_to = rewound >= 0 && rewound < offset ? rewound : offset;
        return ENC_STRAY_REFETCH;
}

const char *enc_stray_action_name(enc_stray_action_t a) {
        switch (a) {
        case ENC_STRAY_PROCESS:
                return "process";
        case ENC_STRAY_DROP:
                return "drop";
        case ENC_STRAY_REFETCH:
                return "refetch";
        }
        return "?";
}
