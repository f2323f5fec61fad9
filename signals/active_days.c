/*
 * active_days.c -- retention: on how many of the last N days did the user
 * listen?
 *
 * DESIGN
 * Definition (version 1). A qualified play has ms_played >= qualified.ms
 * (default 30000); its day is the UTC day of its event time (enc_day_of).
 * For each window N in `windows` (default 7 and 28), the value on day E is
 * the number of distinct days in [E-N+1, E] with a qualified play. Each
 * window is its own key: subject "<N>d" (e.g. "7d"), with its own sequence
 * and delta.
 *  - On the first qualified play of day D, every window gains a day; each
 *    emits value, delta = value - previous value of that window, window
 *    [enc_day_start(D-N+1), enc_day_start(D+1)), horizon_days =
 *    observed_days = N, event_time = the play's, cohort = the play's.
 *  - Decay: when the watermark reaches T = enc_day_start(E) (day E-1 has
 *    ended) the window becomes [E-N+1, E]. A window that lost an active
 *    day emits its new value with event_time = T, window [E-N+1, E+1)
 *    in day starts, cohort = the cohort of the user's latest play
 *    (qualified or not: the watermark caused it, so it carries the cohort
 *    the user has now);
 *    the update that takes a window to 0 has final = true.
 *  - Only changes are emitted. next_timer is the earliest day start at
 *    which an active day leaves a window whose value is > 0, so the timer
 *    fires exactly at the boundaries where something changes; a watermark
 *    that jumps many days is worked through boundary by boundary, each
 *    update stamped with its own boundary time.
 *  - When every window is 0 the state is freed. Sequence numbers count
 *    from 1 per window while the state lives and restart after expiry
 *    (update ids stay unique: they hash the event time too).
 *  Plays that do not qualify are not counted; while the state lives they
 *  only refresh the cohort (and never create a state: with no state there
 *  is nothing left to decay).
 *
 * State: one flat block (base/flat.h) whose bytes are the stored form:
 * the day the windows end on (`today`), a sequence per window, the active
 * days of the last max(N) days as a day bitmap based at today - max(N) + 1
 * (only the words max(N) needs) and the cohort. Window values are not
 * stored: they are counts over the bitmap, so a stored value can never
 * disagree with the days it counts. The block also holds the next timer
 * (derived from today and the days; decode checks it), so next_timer costs
 * no bitmap scan.
 *
 * Never: read a clock. A play older than the current day (the engine
 * promises event-time order, so only a buggy caller sends one) is counted
 * into the windows it falls in without moving them back.
 */
#include <stdio.h>

#include "daybits.h"
#include "flat.h"
#include "sigpriv.h"

#define AD_WINDOWS_MAX 8

/* ---- the state block --------------------------------------------------
 * v2 (little-endian, every field at its own alignment, d 8-aligned):
 *   0   ad_head_t (16): u8 2, u8 nwin, u8 cohort (0: none, else 1 + its
 *       length), u8 0, i32 today, i64 next (ad_next_change)
 *   16  u16 N[nwin], zero-padded to 8
 *   ..  i64 seq[nwin]
 *   ..  u64 days[nwords], nwords = ceil(max(N) / 64): bit i is day
 *       today - max(N) + 1 + i; no bit at or past max(N)
 *   ..  the cohort's bytes and a NUL, when there is one; nothing after.
 * The offsets are the instance's (ad_priv_t), fixed by its windows. With
 * the default windows (7, 28) that is 48 bytes and the cohort's: "control"
 * 56, room 64, 80 heap bytes, where v1's pooled struct took 176. */
#define AD_V2 2

typedef struct ad_head_s {
        uint8_t ver;
        uint8_t nwin;
        uint8_t cohort; /* 0: none, else 1 + its length */
        uint8_t zero;
        int32_t today; /* enc_sig_day_ok, so it fits */
        int64_t next;  /* ad_next_change() of today and days */
} ad_head_t;
_Static_assert(sizeof(ad_head_t) == 16, "ad_head_t is the stored header");

/* Freed blocks, by room (enc_flat_pool_t, base/flat.h), for
 * the next states and for decoding: a user's states come and go (windows
 * empty, the cache evicts and loads users), and a malloc each time would
 * be an allocation per event the v1 pool did not make. At most
 * AD_POOL_BYTES are kept. */
#define AD_POOL_BYTES   ((size_t)ENC_POOL_MAX * 176)

typedef struct ad_priv_s {
        int nwin;
        int64_t n[AD_WINDOWS_MAX];
        char subject[AD_WINDOWS_MAX][16];
        int64_t maxn;
        int64_t qualified_ms;
        size_t off_seq, off_w, off_c; /* block offsets, see above */
        int nwords;
        enc_flat_pool_t pool;
} ad_priv_t;

static const enc_cfg_key_t ad_keys[] = {
        {.name = "windows",
         .type = ENC_CFG_INT_LIST,
         .def = "7,28",
         .desc = "Window lengths in days (up to 8, distinct); one subject "
                 "\"<N>d\" each",
         .min = 1,
         .max = 366},
        {.name = "qualified.ms",
         .type = ENC_CFG_INT,
         .def = "30000",
         .desc = "A play counts when ms_played is at least this",
         .min = 0,
         .max = 86400000},
        {NULL},
};

/* ---- instance ----------------------------------------------------------- */

static enc_err_t ad_init(const enc_sigconf_t *sc, void **privp, char *errstr,
                         size_t errstr_size) {
        int64_t n[AD_WINDOWS_MAX + 1];
        int cnt = enc_sigconf_int_list(sc, "windows", n, AD_WINDOWS_MAX + 1);
        if (cnt < 1 || cnt > AD_WINDOWS_MAX)
                return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                  "%swindows: expected 1 to %d "
                                  "comma-separated day counts in [1, 366]",
                                  sc->prefix, AD_WINDOWS_MAX);
        ad_priv_t *p = calloc(1, sizeof(*p));
        if (p)
                p->pool.max = AD_POOL_BYTES;
        if (!p)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", sc->prefix);
        p->nwin = cnt;
        for (int i = 0; i < cnt; i++) {
                if (n[i] < 1 || n[i] > 366) {
                        free(p);
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%swindows: %lld is out of range "
                                          "(expected day counts in [1, 366])",
                                          sc->prefix, (long long)n[i]);
                }
                for (int j = 0; j < i; j++)
                        if (n[j] == n[i]) {
                                free(p);
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "%swindows: %lld is listed twice "
                                        "(expected distinct day counts)",
                                        sc->prefix, (long long)n[i]);
                        }
                p->n[i] = n[i];
                snprintf(p->subject[i], sizeof(p->subject[i]), "%lldd",
                         (long long)n[i]);
                if (n[i] > p->maxn)
                        p->maxn = n[i];
        }
        p->qualified_ms = enc_sigconf_int(sc, "qualified.ms");
        p->nwords = (int)((p->maxn + 63) / 64);
        p->off_seq = sizeof(ad_head_t) + (((size_t)cnt * 2 + 7) & ~(size_t)7);
        p->off_w = p->off_seq + (size_t)cnt * 8;
        p->off_c = p->off_w + (size_t)p->nwords * 8;
        *privp = p;
        return ENC_OK;
}

static void ad_destroy(void *priv) {
        ad_priv_t *p = priv;
        enc_flat_pool_clear(&p->pool);
        free(p);
}

static void ad_state_free(void *priv, void *state) {
        ad_priv_t *p = priv;
        enc_flat_pool_put(p ? &p->pool : NULL, state);
}

static size_t ad_state_bytes(void *priv, const void *state) {
        (void)priv;
        return enc_flat_heap(state);
}

/* ---- the block's fields (d is 8-aligned, every offset is its field's) - */

static ad_head_t *ad_head(enc_flat_t *f) {
        return (ad_head_t *)(void *)f->d;
}

static uint16_t *ad_nlist(enc_flat_t *f) {
        return (uint16_t *)(void *)(f->d + sizeof(ad_head_t));
}

static int64_t *ad_seq(const ad_priv_t *p, enc_flat_t *f) {
        return (int64_t *)(void *)(f->d + p->off_seq);
}

static const char *ad_cohort(const ad_priv_t *p, enc_flat_t *f) {
        return ad_head(f)->cohort ? (const char *)f->d + p->off_c : NULL;
}

/* The bitmap of @p f as a day set (based at today - max(N) + 1). */
static void ad_days_load(const ad_priv_t *p, const enc_flat_t *f,
                         enc_daybits_t *b) {
        const ad_head_t *h = (const ad_head_t *)(const void *)f->d;
        enc_daybits_init(b, (int64_t)h->today - p->maxn + 1);
        memcpy(b->w, f->d + p->off_w, (size_t)p->nwords * 8);
}

static void ad_days_store(const ad_priv_t *p, enc_flat_t *f,
                          const enc_daybits_t *b) {
        memcpy(f->d + p->off_w, b->w, (size_t)p->nwords * 8);
}

/* True if @p day (<= today) is an active day of @p f: one word read,
 * without building the day set. */
static bool ad_has(const ad_priv_t *p, const enc_flat_t *f, int64_t day) {
        const ad_head_t *h = (const ad_head_t *)(const void *)f->d;
        int64_t i = day - ((int64_t)h->today - p->maxn + 1);
        if (i < 0)
                return false;
        const uint64_t *w = (const uint64_t *)(const void *)(f->d + p->off_w);
        return (w[i / 64] >> (i % 64)) & 1;
}

/* The value of window @p i on @p today. */
static int ad_value(const ad_priv_t *p, const enc_daybits_t *b, int64_t today,
                    int i) {
        return enc_daybits_count(b, today - p->n[i] + 1, today);
}

/* The earliest day start at which an active day leaves a non-empty window:
 * the first active day a of window i leaves it at day a + N_i. */
static int64_t ad_next_change(const ad_priv_t *p, const enc_daybits_t *b,
                              int64_t today) {
        int64_t t = ENC_NO_TIMER;
        for (int i = 0; i < p->nwin; i++) {
                int64_t a = enc_daybits_first(b, today - p->n[i] + 1, today);
                if (a != INT64_MAX && enc_day_start(a + p->n[i]) < t)
                        t = enc_day_start(a + p->n[i]);
        }
        return t;
}

static int64_t ad_next_timer(void *priv, const void *state) {
        (void)priv;
        const enc_flat_t *f = state;
        return f ? ((const ad_head_t *)(const void *)f->d)->next
                 : ENC_NO_TIMER;
}

/* Sets the cohort of *fp to @p c (NULL: none). The block may move. A
 * cohort over ENC_LABEL_MAX (validated events have none) is refused, as
 * the stored form could not hold it. */
static enc_err_t ad_set_cohort(const ad_priv_t *p, enc_flat_t **fp,
                               const char *c) {
        enc_flat_t *f = *fp;
        const char *cur = ad_cohort(p, f);
        /* The stored cohort is NUL-terminated and holds no other NUL. */
        if (cur && c ? !strcmp(cur, c) : cur == c)
                return ENC_OK; /* most events */
        size_t n = c ? strlen(c) : 0;
        if (n > ENC_LABEL_MAX)
                return ENC_ERR_INVALID_FIELD;
        if (!enc_flat_resize(fp, p->off_c + (c ? n + 1 : 0)))
                return ENC_ERR_NOMEM;
        f = *fp;
        ad_head(f)->cohort = c ? (uint8_t)(n + 1) : 0;
        if (c) {
                memcpy(f->d + p->off_c, c, n);
                f->d[p->off_c + n] = '\0';
        }
        return ENC_OK;
}

/* Moves the windows to end on @p day (>= today), keeping the bitmap based
 * at the start of the largest window. */
static void ad_move(const ad_priv_t *p, enc_flat_t *f, enc_daybits_t *b,
                    int64_t day) {
        ad_head(f)->today = (int32_t)day;
        enc_daybits_rebase(b, day - p->maxn + 1);
        ad_days_store(p, f, b);
        ad_head(f)->next = ad_next_change(p, b, day);
}

/* Emits every window whose value differs from @p old. */
static enc_err_t ad_emit_changes(const ad_priv_t *p, enc_flat_t *f,
                                 const enc_daybits_t *b, const int *old,
                                 int64_t event_time, enc_emitter_t *em) {
        int64_t today = ad_head(f)->today;
        int64_t *seq = ad_seq(p, f);
        for (int i = 0; i < p->nwin; i++) {
                int v = ad_value(p, b, today, i);
                if (v == old[i])
                        continue;
                enc_update_t up;
                memset(&up, 0, sizeof(up));
                up.subject = p->subject[i];
                up.window_start = enc_day_start(today - p->n[i] + 1);
                up.window_end = enc_day_start(today + 1);
                up.value = v;
                up.delta = v - old[i];
                up.observed_days = (int32_t)p->n[i];
                up.horizon_days = (int32_t)p->n[i];
                up.final = v == 0;
                up.event_time = event_time;
                up.sequence = ++seq[i];
                up.cohort = ad_cohort(p, f);
                enc_err_t err = enc_emit(em, &up);
                if (err)
                        return err;
        }
        return ENC_OK;
}

/* Works through every boundary due at or before @p now, in time order, and
 * frees the state once every window is empty. */
static enc_err_t ad_advance(ad_priv_t *p, void **state, int64_t now,
                            enc_emitter_t *em) {
        enc_flat_t *f = *state;
        enc_daybits_t b;
        int64_t t;
        /* Most calls: nothing is due. A live state is never empty (a new
         * one gets its day at once, decode refuses an empty one, and the
         * loop below frees one that empties), so there is nothing to free
         * either. */
        if (ad_head(f)->next > now)
                return ENC_OK;
        ad_days_load(p, f, &b);
        while ((t = ad_head(f)->next) <= now) {
                int old[AD_WINDOWS_MAX];
                for (int i = 0; i < p->nwin; i++)
                        old[i] = ad_value(p, &b, ad_head(f)->today, i);
                ad_move(p, f, &b, enc_day_of(t));
                enc_err_t err = ad_emit_changes(p, f, &b, old, t, em);
                if (err)
                        return err;
        }
        if (enc_daybits_empty(&b)) {
                ad_state_free(p, f);
                *state = NULL;
        }
        return ENC_OK;
}

static enc_err_t ad_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        if (!*state)
                return ENC_OK;
        return ad_advance(priv, state, now, em);
}

static enc_err_t ad_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        ad_priv_t *p = priv;
        enc_flat_t *f;
        enc_daybits_t b;
        int64_t day = enc_day_of(ev->event_time);
        int old[AD_WINDOWS_MAX];
        enc_err_t err;

        if (ev->ms_played < p->qualified_ms) {
                /* Not counted, but it is the user's latest event: the
                 * cohort decays carry. */
                if (!*state)
                        return ENC_OK;
                err = ad_advance(p, state, ev->event_time, em);
                if (err || !(f = *state))
                        return err;
                err = ad_set_cohort(p, &f, ev->cohort);
                *state = f;
                return err;
        }
        if (*state) {
                /* The engine has delivered every timer due before this
                 * event; doing it again here is a no-op then, and keeps the
                 * definition whole for any caller that has not. */
                err = ad_advance(p, state, ev->event_time, em);
                if (err)
                        return err;
        }
        if (!(f = *state)) {
                /* Sized for the cohort set below, so that setting it does
                 * not reallocate. */
                size_t clen = ev->cohort ? strlen(ev->cohort) + 1 : 0;
                if (clen > ENC_LABEL_MAX + 1)
                        return ENC_ERR_INVALID_FIELD;
                f = enc_flat_pool_get(&p->pool, NULL, p->off_c + clen);
                if (!f)
                        return ENC_ERR_NOMEM;
                ad_head_t *h = ad_head(f);
                h->ver = AD_V2;
                h->nwin = (uint8_t)p->nwin;
                h->cohort = (uint8_t)clen;
                if (clen)
                        memcpy(f->d + p->off_c, ev->cohort, clen);
                h->today = (int32_t)day;
                h->next = ENC_NO_TIMER;
                for (int i = 0; i < p->nwin; i++)
                        ad_nlist(f)[i] = (uint16_t)p->n[i];
                *state = f;
        }
        err = ad_set_cohort(p, &f, ev->cohort);
        *state = f;
        if (err)
                return err;
        int64_t today = ad_head(f)->today;
        if (day <= today && ad_has(p, f, day))
                return ENC_OK; /* already active: most plays */
        ad_days_load(p, f, &b);
        for (int i = 0; i < p->nwin; i++)
                old[i] = ad_value(p, &b, today, i);
        /* Nothing left a window between today and day (the advance above
         * saw to that), so the values on `day` before this play are the
         * old ones. */
        if (day > today)
                ad_move(p, f, &b, day);
        if (!enc_daybits_add(&b, day))
                return ENC_OK; /* older than any window */
        ad_days_store(p, f, &b);
        ad_head(f)->next = ad_next_change(p, &b, ad_head(f)->today);
        return ad_emit_changes(p, f, &b, old, ev->event_time, em);
}

/* ---- state records ----------------------------------------------------
 * v2: the block (above). state_encode copies it; state_decode checks every
 *     byte of it against this instance and copies it.
 * v1 (still read, so a store written before v2 loads; written as v2
 *     from then on): u8 1, svarint today, varint nwin, nwin x (varint N,
 *     varint seq), daybits (enc_daybits_put; base today - max(N) + 1),
 *     str cohort. */

static enc_err_t ad_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        (void)priv;
        return enc_flat_encode(state, out) ? ENC_ERR_TOO_LARGE : ENC_OK;
}

/* True if @p b (based at today - max(N) + 1) may be a live state's days on
 * @p today: not empty (such a state can never emit, so it is not kept), no
 * day after today, nothing outside the words max(N) needs. */
static bool ad_days_ok(const ad_priv_t *p, const enc_daybits_t *b,
                       int64_t today) {
        for (int k = p->nwords; k < ENC_DAYBITS_WORDS; k++)
                if (b->w[k])
                        return false;
        return !enc_daybits_empty(b) && enc_daybits_last(b) <= today;
}

/* True if the cohort bytes @p c of length @p n may be stored. */
static bool ad_cohort_ok(const uint8_t *c, size_t n) {
        return n <= ENC_LABEL_MAX && enc_sig_str_ok(c, n);
}

static enc_err_t ad_decode_v2(ad_priv_t *p, const uint8_t *buf, size_t len,
                              void **statep) {
        ad_head_t h;
        enc_daybits_t b;
        if (len < p->off_c)
                return ENC_ERR_CORRUPT;
        memcpy(&h, buf, sizeof(h)); /* buf has no alignment promise */
        size_t clen = h.cohort ? (size_t)h.cohort - 1 : 0;
        if (h.ver != AD_V2 || h.nwin != p->nwin || h.zero ||
            !enc_sig_day_ok(h.today) ||
            len != p->off_c + (h.cohort ? clen + 1 : 0))
                return ENC_ERR_CORRUPT;
        /* A record written under other windows cannot be read as this
         * instance's: refuse rather than guess. */
        for (size_t o = sizeof(h); o < p->off_seq; o += 2) {
                uint16_t n;
                memcpy(&n, buf + o, 2);
                size_t i = (o - sizeof(h)) / 2;
                if (n != (i < (size_t)p->nwin ? (uint64_t)p->n[i] : 0))
                        return ENC_ERR_CORRUPT;
        }
        for (int i = 0; i < p->nwin; i++) {
                int64_t seq;
                memcpy(&seq, buf + p->off_seq + (size_t)i * 8, 8);
                if (seq < 0 || seq > INT64_MAX / 2)
                        return ENC_ERR_CORRUPT;
        }
        enc_daybits_init(&b, (int64_t)h.today - p->maxn + 1);
        memcpy(b.w, buf + p->off_w, (size_t)p->nwords * 8);
        if (!ad_days_ok(p, &b, h.today) ||
            h.next != ad_next_change(p, &b, h.today))
                return ENC_ERR_CORRUPT;
        if (h.cohort && (!ad_cohort_ok(buf + p->off_c, clen) ||
                         buf[p->off_c + clen] != '\0'))
                return ENC_ERR_CORRUPT;
        enc_flat_t *f = enc_flat_pool_get(&p->pool, buf, len);
        if (!f)
                return ENC_ERR_NOMEM;
        *statep = f;
        return ENC_OK;
}

static enc_err_t ad_decode_v1(ad_priv_t *p, const uint8_t *buf, size_t len,
                              void **statep) {
        const uint8_t *q = buf + 1, *end = buf + len;
        int64_t today, seq[AD_WINDOWS_MAX];
        uint64_t nwin;
        enc_daybits_t b;
        const char *c;
        size_t clen;

        if (!enc_get_svarint(&q, end, &today) || !enc_sig_day_ok(today) ||
            !enc_get_varint(&q, end, &nwin) || nwin != (uint64_t)p->nwin)
                return ENC_ERR_CORRUPT;
        for (int i = 0; i < p->nwin; i++) {
                uint64_t n, s;
                /* A record written under other windows cannot be read as
                 * this instance's: refuse rather than guess. */
                if (!enc_get_varint(&q, end, &n) || n != (uint64_t)p->n[i] ||
                    !enc_get_varint(&q, end, &s) || s > INT64_MAX / 2)
                        return ENC_ERR_CORRUPT;
                seq[i] = (int64_t)s;
        }
        b.base = today - p->maxn + 1;
        if (!enc_daybits_get(&q, end, &b) || !ad_days_ok(p, &b, today) ||
            !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &c, &clen) ||
            q != end)
                return ENC_ERR_CORRUPT;
        /* v1 kept bits up to 384 days past the base; a day past today was
         * refused above, so max(N) bits hold every day. */
        enc_flat_t *f = enc_flat_pool_get(&p->pool, NULL,
                                    p->off_c + (c ? clen + 1 : 0));
        if (!f)
                return ENC_ERR_NOMEM;
        ad_head_t *h = ad_head(f);
        h->ver = AD_V2;
        h->nwin = (uint8_t)p->nwin;
        h->cohort = c ? (uint8_t)(clen + 1) : 0;
        h->today = (int32_t)today;
        h->next = ad_next_change(p, &b, today);
        for (int i = 0; i < p->nwin; i++) {
                ad_nlist(f)[i] = (uint16_t)p->n[i];
                ad_seq(p, f)[i] = seq[i];
        }
        ad_days_store(p, f, &b);
        if (c) {
                memcpy(f->d + p->off_c, c, clen);
                f->d[p->off_c + clen] = '\0';
        }
        *statep = f;
        return ENC_OK;
}

static enc_err_t ad_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        *statep = NULL;
        if (!len)
                return ENC_ERR_CORRUPT;
        if (buf[0] == AD_V2)
                return ad_decode_v2(priv, buf, len, statep);
        if (buf[0] == ENC_SIG_STATE_V1)
                return ad_decode_v1(priv, buf, len, statep);
        return ENC_ERR_CORRUPT;
}

const enc_signal_plugin_t enc_sig_active_days = {
        .name = "active_days",
        .description = "Distinct days with a qualified play in the last N days",
        .config_keys = ad_keys,
        .init = ad_init,
        .destroy = ad_destroy,
        .on_event = ad_on_event,
        .on_timer = ad_on_timer,
        .next_timer = ad_next_timer,
        .state_encode = ad_state_encode,
        .state_decode = ad_state_decode,
        .state_free = ad_state_free,
        .state_bytes = ad_state_bytes,
};
