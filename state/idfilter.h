/*
 * idfilter.h -- per-partition filter of recent event ids in front of the
 * exact duplicate check: it answers "no copy can exist" without loading the
 * user, or "maybe" (then the exact check runs as before). See idfilter.c.
 */
#ifndef ENC_IDFILTER_H
#define ENC_IDFILTER_H

#include "enc.h"

typedef struct enc_idfilter_s enc_idfilter_t;

/* Nothing is known to be complete: every query falls back. */
#define ENC_IDFILTER_UNKNOWN INT64_MAX

/** The filter's key for (user id, the id's enc_dedup_hash): two events of
 *  one user whose event ids have the same dedup hash have the same key, so
 *  the filter never separates what the exact check treats as one id. */
uint64_t enc_idfilter_key(const char *user_id, size_t ulen,
                          uint64_t dedup_hash);

/** A filter for @p window ms (dedup.window.ms, > 0) holding at most about
 *  @p max_bytes of tables over all partitions. NULL when out of memory.
 *  Free with enc_idfilter_destroy (NULL is a no-op). */
enc_idfilter_t *enc_idfilter_new(int64_t window, size_t max_bytes);
void enc_idfilter_destroy(enc_idfilter_t *f);

/**
 * Starts (or keeps) a partition's filter. If the partition is already
 * active nothing changes: what it holds is still true. Otherwise it starts
 * empty, complete from @p complete_from: every accepted event with a time
 * at or after it will be added (INT64_MIN: all of them, for a partition
 * with no state; ENC_IDFILTER_UNKNOWN: never complete).
 * Processing thread only. ENC_ERR_NOMEM if the partition array cannot grow.
 */
enc_err_t enc_idfilter_assign(enc_idfilter_t *f, int32_t partition,
                              int64_t complete_from) ENC_WUR;

/** Forgets a partition's filter and frees its table. */
void enc_idfilter_revoke(enc_idfilter_t *f, int32_t partition);

/**
 * Records an accepted event: @p key (enc_idfilter_key) at event time
 * @p time. @p horizon is the smallest since-time any later query of the
 * partition can ask about (watermark - window; INT64_MIN if none yet):
 * entries entirely before it may be dropped. Never fails: when memory is
 * short it forgets the oldest entries and moves the partition's
 * completeness point up instead (queries before it fall back).
 */
void enc_idfilter_add(enc_idfilter_t *f, int32_t partition, uint64_t key,
                      int64_t time, int64_t horizon);

/**
 * False only if no event with @p key and a time >= @p since was added to
 * the partition since the completeness point and @p since is at or after
 * that point: then no copy can exist. True ("maybe") otherwise, including
 * for a partition never assigned.
 */
bool enc_idfilter_maybe(const enc_idfilter_t *f, int32_t partition,
                        uint64_t key, int64_t since);

typedef struct enc_idfilter_stats_s {
        uint64_t entries;     /* live entries, all partitions */
        uint64_t bytes;       /* table bytes, all partitions */
        uint64_t generations; /* generations started */
        uint64_t evictions;   /* generations forgotten before they expired
                                 (memory cap): the span covered shrank */
} enc_idfilter_stats_t;

void enc_idfilter_stats(const enc_idfilter_t *f, enc_idfilter_stats_t *st);

/** Bytes of all partitions' tables now (O(1)). */
size_t enc_idfilter_bytes(const enc_idfilter_t *f);

/** The partition's completeness point (ENC_IDFILTER_UNKNOWN if not
 *  active). */
int64_t enc_idfilter_complete_from(const enc_idfilter_t *f, int32_t partition);

/* ---- persistence (written with checkpoints) ---------------------------
 * A partition's filter is stored as keys under the partition in the store's
 * meta family: ENC_IDFILTER_KEY alone, the header (a tag, F, and each
 * generation's number, size, count, time range, table checksum and count
 * of deltas); ENC_IDFILTER_KEY + u64be generation number, that
 * generation's base table; and that + u32be n, its delta n (idfilter.c). */
#define ENC_IDFILTER_KEY 'I'

/* Where the filter is kept; keys are relative to the partition. */
typedef struct enc_idfilter_io_s {
        /* stage a put, a delete, a delete of [lo, hi) (bytes copied) */
        void (*put)(void *opaque, int32_t partition, const void *key,
                    size_t klen, const void *val, size_t vlen);
        void (*del)(void *opaque, int32_t partition, const void *key,
                    size_t klen);
        void (*del_range)(void *opaque, int32_t partition, const void *lo,
                          size_t lolen, const void *hi, size_t hilen);
        /* read a committed value into @p out (reset first; its max bounds
         * what is read: over it is an error) */
        enc_err_t (*get)(void *opaque, int32_t partition, const void *key,
                         size_t klen, enc_buf_t *out, bool *found);
        void *opaque;
} enc_idfilter_io_t;

/**
 * Stages the partition's filter through @p io, tagged with @p tag (at most
 * 256 bytes, copied; the engine's: the position it is written with).
 * Writes the header and, for every generation that changed since it was
 * last saved durably, a delta of the entries added since (or its whole
 * table, when its deltas grow too many or too large); deletes the keys of
 * generations dropped since. Nothing
 * if the partition is not active. Returns the bytes staged (keys and
 * values). Call enc_idfilter_saved once the batch is written or dropped,
 * before anything else touches the filter. Processing thread only.
 */
size_t enc_idfilter_save(enc_idfilter_t *f, int32_t partition, const void *tag,
                         size_t tlen, const enc_idfilter_io_t *io);

/** The batch holding the saves since the last call was written (@p ok) or
 *  dropped (then the next save writes every table again). */
void enc_idfilter_saved(enc_idfilter_t *f, bool ok);

/**
 * Starts a partition not active from its saved filter, if one was saved
 * with exactly @p tag. Generations that do not fit the partition's share of
 * the cap go (oldest first), then those before @p horizon, and F moves past
 * each; then F is lowered to @p complete_max if it is above it: the caller
 * promises that every accepted event at or after @p complete_max will be
 * added again (the engine's stored watermark: those events are re-read or
 * new). Everything read is checked (lengths, sizes, counts, checksums).
 * ENC_OK: loaded (or already active). ENC_ERR_NOT_FOUND: none saved, or
 * saved with another tag; ENC_ERR_CORRUPT: what is stored does not parse;
 * ENC_ERR_NOMEM; or @p io's read error. On any error the partition is left
 * as it was (not active) and @p why says what (a log line's reason).
 */
enc_err_t enc_idfilter_load(enc_idfilter_t *f, int32_t partition,
                            const void *tag, size_t tlen, int64_t complete_max,
                            int64_t horizon, const enc_idfilter_io_t *io,
                            char *why, size_t why_size) ENC_WUR;

#endif /* ENC_IDFILTER_H */
