/*
 * flat.h -- a state held as one heap block whose bytes are its stored form.
 *
 * A cached user used to be a tree of small allocations (arrays of entries,
 * each pointing at a block of strings), and loading one meant parsing a
 * record into that tree, writing it back meant encoding the tree again.
 * A flat state is one block: fixed-width entries and the bytes they refer
 * to by offset, no pointer inside, so
 *  - its stored form is the block's bytes (encode is a copy, decode is a
 *    check of the bytes and a copy),
 *  - a cached user costs about its stored size, not several times it, and
 *  - changing it moves bytes inside the block (enc_flat_insert/cut), with
 *    no allocation per item.
 * The layout is the plug-in's: fixed-width little-endian fields at 8-byte
 * aligned offsets (d is 8-aligned), read and written through the
 * plug-in's own structs. The stored form must be canonical: the same
 * logical state gives the same bytes whatever its history (no holes, no
 * stale bytes, padding zeroed: enc_flat_insert zeroes what it opens).
 * Bytes read from the store are untrusted: a plug-in checks every count,
 * offset and string of them before using the block (its state_decode).
 *
 * Capacity: a block read from the store is sized to its bytes (rounded to
 * what malloc gives anyway); one that grows gets an eighth more room, so
 * a user touched by many events does not reallocate per event, while a
 * cached user that is only read costs no slack. A block that shrank below
 * half its room gives the room back.
 */
#ifndef ENC_FLAT_H
#define ENC_FLAT_H

#include <stddef.h>
#include <stdint.h>

#include "enc.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flat states are stored in the machine's byte order: little-endian only"
#endif

typedef struct enc_flat_s {
        uint32_t len; /* bytes in use: the stored form */
        uint32_t cap; /* bytes d holds, a multiple of 16 */
        uint8_t d[];  /* 8-aligned (malloc's 16, plus 8) */
} enc_flat_t;

/* Largest flat state: a record's section is far below it (records are
 * capped by the store), and 32-bit offsets stay valid. */
#define ENC_FLAT_MAX ((size_t)1 << 30)

/** A block of @p len zeroed bytes; NULL when out of memory or @p len >
 *  ENC_FLAT_MAX. Free with enc_flat_free. */
enc_flat_t *enc_flat_new(size_t len);

/** A block holding a copy of @p p[0..len) (an untrusted stored form: the
 *  caller checks it); NULL when out of memory or too long. */
enc_flat_t *enc_flat_copy(const uint8_t *p, size_t len);

/** Frees @p f (NULL allowed). */
void enc_flat_free(enc_flat_t *f);

/** Sets (*f)->len to @p len: bytes added at the end are zeroed, bytes cut
 *  are dropped. May move the block (pointers into d become stale; keep
 *  offsets). False, with *f unchanged, when out of memory. */
bool enc_flat_resize(enc_flat_t **f, size_t len) ENC_WUR;

/** Opens @p n zeroed bytes at offset @p off (<= len), moving what follows
 *  up. Returns the gap (in the possibly moved block), NULL, with *f
 *  unchanged, when out of memory. */
uint8_t *enc_flat_insert(enc_flat_t **f, size_t off, size_t n);

/** Removes @p n bytes at @p off (off + n <= len), moving what follows
 *  down. Never fails; may give room back (the block may move). */
void enc_flat_cut(enc_flat_t **f, size_t off, size_t n);

/** The heap bytes @p f takes (for a plug-in's state_bytes). */
static inline size_t enc_flat_heap(const enc_flat_t *f) {
        return f ? enc_heap_bytes(sizeof(*f) + f->cap) : 0;
}

/** Appends the stored form of @p f to @p out. */
static inline enc_err_t enc_flat_encode(const enc_flat_t *f, enc_buf_t *out) {
        return enc_buf_append(out, f->d, f->len);
}

/* ---- a pool of freed blocks ----------------------------------------- */

/* Blocks kept by room, 16-byte classes up to 16 * ENC_FLAT_POOL_CLASSES:
 * a plug-in whose states come and go (a session closes, a window empties,
 * the cache evicts and loads users) takes the next block from here, so
 * that is no allocation per event. Single-threaded, one owner. */
#define ENC_FLAT_POOL_CLASSES 16
typedef struct enc_flat_pool_s {
        enc_flat_t *head[ENC_FLAT_POOL_CLASSES]; /* linked through d */
        size_t bytes; /* heap bytes kept */
        size_t max;   /* keep at most this many; 0 keeps none */
} enc_flat_pool_t;

/** A block of @p len bytes, a copy of @p src (zeroed when NULL): a kept
 *  block of the room enc_flat_new/copy would give, else a new one. NULL
 *  when out of memory. */
enc_flat_t *enc_flat_pool_get(enc_flat_pool_t *pl, const uint8_t *src,
                              size_t len);
/** Keeps @p f (NULL allowed) for the next get, or frees it (@p pl NULL,
 *  full, or a room past the classes). */
void enc_flat_pool_put(enc_flat_pool_t *pl, enc_flat_t *f);
/** Frees every kept block. */
void enc_flat_pool_clear(enc_flat_pool_t *pl);

#endif /* ENC_FLAT_H */
