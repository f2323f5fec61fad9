/*
 * daybits.h -- a fixed-size set of UTC day numbers: one bit per day over a
 * span of 384 days starting at a movable base day.
 *
 * active_days keeps the active days of the last max(window) days in one;
 * discovery_habit and progressive_reward keep a discovery's engaged days
 * (bit i = day D0 + i) in one. 384 covers the largest window and horizon
 * (366). No allocation, so a state holding one is trivially bounded.
 */
#ifndef ENC_DAYBITS_H
#define ENC_DAYBITS_H

#include "enc.h"

#define ENC_DAYBITS_WORDS 6
#define ENC_DAYBITS_SPAN  (64 * ENC_DAYBITS_WORDS) /* days */

typedef struct enc_daybits_s {
        int64_t base; /* day of bit 0 */
        uint64_t w[ENC_DAYBITS_WORDS];
} enc_daybits_t;

/** Empties @p b and sets its base day. */
void enc_daybits_init(enc_daybits_t *b, int64_t base);

/** True if @p day is in the set (false outside the span). */
bool enc_daybits_has(const enc_daybits_t *b, int64_t day);

/** Adds @p day; false (and no change) if it is outside the span. */
bool enc_daybits_add(enc_daybits_t *b, int64_t day);

/** Number of set days in [lo, hi] (inclusive; clipped to the span). */
int enc_daybits_count(const enc_daybits_t *b, int64_t lo, int64_t hi);

/** The smallest set day in [lo, hi], or INT64_MAX if none. */
int64_t enc_daybits_first(const enc_daybits_t *b, int64_t lo, int64_t hi);

/** The largest set day, or INT64_MIN if the set is empty. */
int64_t enc_daybits_last(const enc_daybits_t *b);

bool enc_daybits_empty(const enc_daybits_t *b);

/** Moves the base to @p base; days that fall outside the new span are
 *  dropped. */
void enc_daybits_rebase(enc_daybits_t *b, int64_t base);

/** Appends the bits (not the base, which the caller stores or derives) as
 *  varint byte count + bytes, trailing zero bytes trimmed. */
void enc_daybits_put(const enc_daybits_t *b, enc_buf_t *out);

/** Reads what enc_daybits_put wrote into @p b, whose base the caller has
 *  set. False on truncation or a byte count over the span. */
bool enc_daybits_get(const uint8_t **p, const uint8_t *end, enc_daybits_t *b);

#endif /* ENC_DAYBITS_H */
