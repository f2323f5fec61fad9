/*
 * reorder.h -- the per-partition event-time buffer.
 *
 * Events wait here until the watermark passes them, then leave in
 * (event time, user id, event id) order. That order depends only on the
 * events, not on the order they arrived in, so out-of-order input within the
 * grace period yields exactly the output in-order input would.
 *
 * It also tracks the smallest input offset still held: the position a
 * restart must resume from. Single-threaded.
 */
#ifndef ENC_REORDER_H
#define ENC_REORDER_H

#include "enc.h"
#include "event.h"

typedef struct enc_reorder_s enc_reorder_t;

/** New empty buffer; NULL on allocation failure. Only a buffer made with
 *  @p track_ids answers enc_reorder_contains (it keeps a set of the held
 *  events' ids for that). */
enc_reorder_t *enc_reorder_new(bool track_ids);
/** Frees the buffer and every event it holds. NULL is a no-op. */
void enc_reorder_destroy(enc_reorder_t *r);

/** Copies @p ev (borrowed for the call) into the buffer, remembering its
 *  input @p offset and the caller's @p mark for it. Offsets must be pushed
 *  in increasing order. */
enc_err_t enc_reorder_push(enc_reorder_t *r, const enc_event_t *ev,
                           int64_t offset, int64_t mark) ENC_WUR;

/** The first event in order, or NULL if empty. Borrowed until the next
 *  pop, push or clear (it is rebuilt from the buffer's compact copy, so
 *  the buffer is not const). */
const enc_event_t *enc_reorder_peek(enc_reorder_t *r);

/** Removes (and frees) the first event. */
void enc_reorder_pop(enc_reorder_t *r);

size_t enc_reorder_count(const enc_reorder_t *r);

/** Smallest input offset still held, or -1 if empty. */
int64_t enc_reorder_min_offset(const enc_reorder_t *r);

/** The mark pushed with the smallest offset still held, or @p none if
 *  empty. */
int64_t enc_reorder_min_mark(const enc_reorder_t *r, int64_t none);

/** True if an event of @p user with @p event_id and an event time at or
 *  after @p since is held (a 64-bit hash of the pair is compared). Always
 *  false for a buffer made without track_ids. */
bool enc_reorder_contains(const enc_reorder_t *r, const char *user,
                          const char *event_id, int64_t since);

/** Read-ahead in arrival order: the next held event, after those it
 *  returned before, if it arrived before every held event with a time at
 *  or after @p before and its own time is before it; else NULL (and the
 *  cursor waits there). The struct is borrowed until the next call, its
 *  strings until that event is popped. The engine
 *  uses it to read the users of the events about to leave in batches. */
const enc_event_t *enc_reorder_next_arrival(enc_reorder_t *r,
                                            int64_t before);

/** Drops every event. */
void enc_reorder_clear(enc_reorder_t *r);

#endif /* ENC_REORDER_H */
