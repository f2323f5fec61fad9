/*
 * reorder.c -- the per-partition event-time buffer.
 *
 * DESIGN
 * A binary min-heap of owned event copies ordered by (event time, user id,
 * event id, arrival sequence), plus a ring of the offsets of held events in
 * arrival order, so the smallest held offset is found in O(1): offsets arrive
 * in increasing order, so the oldest arrival still held has the smallest.
 * Popping marks a ring slot done; the ring's head advances past done slots.
 *
 * The order key is a function of the event alone (the arrival sequence only
 * separates byte-identical duplicates, which produce identical effects), so
 * the same set of events leaves in the same order however it arrived.
 */
#include "reorder.h"

#include <stdlib.h>
#include <string.h>

typedef struct enc_held_s {
        enc_event_t *ev; /* owned (enc_event_dup) */
        uint64_t seq;    /* arrival number */
} enc_held_t;

struct enc_reorder_s {
        enc_held_t *heap;
        size_t cnt;
        size_t cap;
        /* ring of arrivals: slot (seq & (rcap-1)) for seq in [head, tail) */
        int64_t *roff;
        uint8_t *rdone;
        size_t rcap; /* power of two */
        uint64_t head;
        uint64_t tail;
};

enc_reorder_t *enc_reorder_new(void) {
        return calloc(1, sizeof(enc_reorder_t));
}

void enc_reorder_destroy(enc_reorder_t *r) {
        if (!r)
                return;
        enc_reorder_clear(r);
        free(r->heap);
        free(r->roff);
        free(r->rdone);
        free(r);
}

static int enc_held_cmp(const enc_held_t *a, const enc_held_t *b) {
        if (a->ev->event_time != b->ev->event_time)
                return a->ev->event_time < b->ev->event_time ? -1 : 1;
        int c = strcmp(a->ev->user_id, b->ev->user_id);
        if (c)
                return c;
        c = strcmp(a->ev->event_id, b->ev->event_id);
        if (c)
                return c;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static enc_err_t enc_ring_push(enc_reorder_t *r, int64_t offset) {
        if (r->tail - r->head == r->rcap) {
                size_t ncap = r->rcap ? r->rcap * 2 : 1024;
                int64_t *no = malloc(ncap * sizeof(*no));
                uint8_t *nd = malloc(ncap);
                if (!no || !nd) {
                        free(no);
                        free(nd);
                        return ENC_ERR_NOMEM;
                }
                for (uint64_t s = r->head; s < r->tail; s++) {
                        no[s & (ncap - 1)] = r->roff[s & (r->rcap - 1)];
                        nd[s & (ncap - 1)] = r->rdone[s & (r->rcap - 1)];
                }
                free(r->roff);
                free(r->rdone);
                r->roff = no;
                r->rdone = nd;
                r->rcap = ncap;
        }
        r->roff[r->tail & (r->rcap - 1)] = offset;
        r->rdone[r->tail & (r->rcap - 1)] = 0;
        r->tail++;
        return ENC_OK;
}

enc_err_t enc_reorder_push(enc_reorder_t *r, const enc_event_t *ev,
                           int64_t offset) {
        if (r->cnt == r->cap) {
                size_t ncap = r->cap ? r->cap * 2 : 256;
                enc_held_t *nh = realloc(r->heap, ncap * sizeof(*nh));
                if (!nh)
                        return ENC_ERR_NOMEM;
                r->heap = nh;
                r->cap = ncap;
        }
        enc_event_t *copy = enc_event_dup(ev);
        if (!copy)
                return ENC_ERR_NOMEM;
        if (enc_ring_push(r, offset)) {
                free(copy);
                return ENC_ERR_NOMEM;
        }
        size_t i = r->cnt++;
        r->heap[i].ev = copy;
        r->heap[i].seq = r->tail - 1;
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (enc_held_cmp(&r->heap[i], &r->heap[p]) >= 0)
                        break;
                enc_held_t t = r->heap[i];
                r->heap[i] = r->heap[p];
                r->heap[p] = t;
                i = p;
        }
        return ENC_OK;
}

const enc_event_t *enc_reorder_peek(const enc_reorder_t *r) {
        return r->cnt ? r->heap[0].ev : NULL;
}

void enc_reorder_pop(enc_reorder_t *r) {
        if (!r->cnt)
                return;
        uint64_t seq = r->heap[0].seq;
        free(r->heap[0].ev);
        r->heap[0] = r->heap[--r->cnt];
        size_t i = 0;
        for (;;) {
                size_t l = 2 * i + 1, rr = l + 1, m = i;
                if (l < r->cnt && enc_held_cmp(&r->heap[l], &r->heap[m]) < 0)
                        m = l;
                if (rr < r->cnt &&
                    enc_held_cmp(&r->heap[rr], &r->heap[m]) < 0)
                        m = rr;
                if (m == i)
                        break;
                enc_held_t t = r->heap[i];
                r->heap[i] = r->heap[m];
                r->heap[m] = t;
                i = m;
        }
        r->rdone[seq & (r->rcap - 1)] = 1;
        while (r->head < r->tail && r->rdone[r->head & (r->rcap - 1)])
                r->head++;
}

size_t enc_reorder_count(const enc_reorder_t *r) {
        return r->cnt;
}

int64_t enc_reorder_min_offset(const enc_reorder_t *r) {
        return r->head < r->tail ? r->roff[r->head & (r->rcap - 1)] : -1;
}

void enc_reorder_clear(enc_reorder_t *r) {
        for (size_t i = 0; i < r->cnt; i++)
                free(r->heap[i].ev);
        r->cnt = 0;
        r->head = r->tail = 0;
}
