/*
 * timers.h -- a bounded in-memory window of the store's timer index, per
 * partition, so the watermark's advance finds due timers of users not
 * cached without a RocksDB iterator per step. See timers.c.
 *
 * Keys are the store's: (time, user id), ids compared bytewise, a prefix
 * first. Processing thread only; no locks.
 */
#ifndef ENC_TIMERS_H
#define ENC_TIMERS_H

#include "enc.h"

typedef struct enc_timers_s enc_timers_t;

/** Windows of at most about @p max_entries keys each (at least 1) read
 *  ahead of the watermark. NULL when out of memory. Free with
 *  enc_timers_destroy (NULL is a no-op). */
enc_timers_t *enc_timers_new(size_t max_entries);
void enc_timers_destroy(enc_timers_t *t);

/** Forgets @p partition's window (and what was noted for it): the next
 *  enc_timers_covers is false, so the caller reads the store again. */
void enc_timers_drop(enc_timers_t *t, int32_t partition);
/** Forgets every window (the staged batch they mirror was discarded). */
void enc_timers_drop_all(enc_timers_t *t);

/**
 * True if @p partition's window holds every key of the store's timers
 * family with @p from_excl < time <= @p upto (and it starts at
 * @p from_excl): then enc_timers_pop yields them all, in key order.
 */
bool enc_timers_covers(enc_timers_t *t, int32_t partition, int64_t from_excl,
                       int64_t upto);

/**
 * Takes the first key of a covering window if its time is <= @p upto:
 * sets *time, *id (borrowed until the next call on @p t) and *ulen and
 * returns true; false when none is left. Once false, the window starts at
 * @p upto.
 */
bool enc_timers_pop(enc_timers_t *t, int32_t partition, int64_t upto,
                    int64_t *time, const char **id, size_t *ulen);

/**
 * Refilling from a store scan: enc_timers_refill_begin empties the window,
 * which will start at @p from_excl; enc_timers_refill_add takes the
 * scanned keys with time > from_excl, in key order, and returns true when
 * the window is full (stop the scan); enc_timers_refill_end makes it valid,
 * complete to the partition's end if @p at_end (the scan saw every key),
 * else up to the last key added. Out of memory leaves it invalid.
 */
void enc_timers_refill_begin(enc_timers_t *t, int32_t partition,
                             int64_t from_excl);
bool enc_timers_refill_add(enc_timers_t *t, int32_t partition, int64_t time,
                           const char *id, size_t ulen);
void enc_timers_refill_end(enc_timers_t *t, int32_t partition, bool at_end);

/**
 * A timer key put (@p put) or deleted in the store's batch: the windows
 * follow it (applied at the next enc_timers_covers). Any order; the
 * windows then mirror the batch, so a discarded batch must be followed by
 * enc_timers_drop_all. Never fails: out of memory drops the window.
 */
void enc_timers_note(enc_timers_t *t, int32_t partition, bool put, int64_t time,
                     const char *id, size_t ulen);

/** Bytes held (the engine charges them to the cache budget). */
size_t enc_timers_bytes(const enc_timers_t *t);

#endif /* ENC_TIMERS_H */
