/*
 * session.c -- listening sessions and how they went.
 *
 * DESIGN
 * Definition (version 1). Every play counts (qualified or not). Plays
 * whose event times are less than gap.ms (default 30 min) apart form one
 * session. A session closes when the watermark reaches its last play time
 * + gap.ms; then one update is emitted and the state is freed:
 *   value           = completion_rate
 *   components, in this order:
 *     listened_minutes = sum(ms_played) / 60000
 *     plays            = number of plays
 *     skip_rate        = skips / plays; a skip ended with FORWARD or BACK
 *                        and ms_played < skip.ms (default 30000)
 *     completion_rate  = completed / plays; completed = ended TRACK_DONE,
 *                        or duration > 0 and ms_played >= complete.ratio *
 *                        duration (default 0.9; compared in double)
 *     duration_minutes = (last play time - first play time) / 60000
 *   window_start = first play time, window_end = last play time,
 *   event_time = close time (last + gap), final = true, subject NULL,
 *   sequence 1 and delta = value (each session is its own key instance),
 *   cohort = the last play's cohort, observed_days = horizon_days = 0.
 *
 * The engine closes a session (on_timer at last + gap) before it delivers
 * any event at or after that time, so on_event only ever extends the open
 * session or starts one. on_event still closes a session that is due, so
 * the definition holds even for a caller that skips timers.
 *
 * State: the counts of the open session, one flat block (base/flat.h)
 * whose bytes are the stored form.
 * Never: read a clock or keep a closed session.
 */
#include "flat.h"
#include "sigpriv.h"

/* ---- the state block --------------------------------------------------
 * v2 (little-endian, d 8-aligned): se_rec_t (56 bytes) -- u8 2, u8 cohort
 * (0: none, else 1 + its length), six zero bytes, i64 first, last (event
 * times of the first and last play), plays, skips, completed, ms_played
 * (sum) -- then the cohort's bytes and a NUL, when there is one; nothing
 * after. "control" makes 64 bytes: room 64, 80 heap bytes, where v1's
 * pooled struct took 96 (the counts stay 64-bit, as v1 read them, so the
 * block is no smaller; a cohort of 24 to 64 bytes no longer takes a second
 * heap block). */
#define SE_V2 2

typedef struct se_rec_s {
        uint8_t ver;
        uint8_t cohort; /* of the last play: 0 none, else 1 + its length */
        uint8_t zero[6];
        int64_t first, last; /* event times of the first and last play */
        int64_t plays, skips, completed;
        int64_t ms_played; /* sum */
} se_rec_t;
_Static_assert(sizeof(se_rec_t) == 56, "se_rec_t is the stored form");

/* Freed blocks, by room (enc_flat_pool_t, base/flat.h), for
 * the next sessions and for decoding: a user's session state is created
 * and freed every session, and a malloc each time would be an allocation
 * the v1 pool did not make. At most SE_POOL_BYTES are kept. */
#define SE_POOL_BYTES   ((size_t)ENC_POOL_MAX * 96)

typedef struct se_priv_s {
        int64_t gap_ms;
        int64_t skip_ms;
        double complete_ratio;
        enc_flat_pool_t pool;
} se_priv_t;

static const enc_cfg_key_t se_keys[] = {
        {.name = "gap.ms",
         .type = ENC_CFG_INT,
         .def = "1800000",
         .desc = "Plays less than this apart (ms) are one session",
         .min = 1,
         .max = 7 * 86400000LL},
        {.name = "skip.ms",
         .type = ENC_CFG_INT,
         .def = "30000",
         .desc = "A FORWARD or BACK end with ms_played below this is a skip",
         .min = 0,
         .max = 86400000},
        {.name = "complete.ratio",
         .type = ENC_CFG_DOUBLE,
         .def = "0.9",
         .desc = "A play of at least this share of its duration is completed",
         .dmin = 0.0,
         .dmax = 1.0},
        {NULL},
};

/* ---- instance ----------------------------------------------------------- */

static enc_err_t se_init(const enc_sigconf_t *sc, void **privp, char *errstr,
                         size_t errstr_size) {
        se_priv_t *p = calloc(1, sizeof(*p));
        if (p)
                p->pool.max = SE_POOL_BYTES;
        if (!p)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", sc->prefix);
        p->gap_ms = enc_sigconf_int(sc, "gap.ms");
        p->skip_ms = enc_sigconf_int(sc, "skip.ms");
        p->complete_ratio = enc_sigconf_double(sc, "complete.ratio");
        *privp = p;
        return ENC_OK;
}

static void se_destroy(void *priv) {
        se_priv_t *p = priv;
        enc_flat_pool_clear(&p->pool);
        free(p);
}

static void se_state_free(void *priv, void *state) {
        se_priv_t *p = priv;
        enc_flat_pool_put(p ? &p->pool : NULL, state);
}

static size_t se_state_bytes(void *priv, const void *state) {
        (void)priv;
        return enc_flat_heap(state);
}

static se_rec_t *se_rec(enc_flat_t *f) {
        return (se_rec_t *)(void *)f->d;
}

static const char *se_cohort(enc_flat_t *f) {
        return se_rec(f)->cohort ? (const char *)f->d + sizeof(se_rec_t)
                                 : NULL;
}

static int64_t se_next_timer(void *priv, const void *state) {
        const se_priv_t *p = priv;
        const enc_flat_t *f = state;
        return f ? ((const se_rec_t *)(const void *)f->d)->last + p->gap_ms
                 : ENC_NO_TIMER;
}

/* Sets the cohort of *fp to @p c (NULL: none). The block may move. A
 * cohort over ENC_LABEL_MAX (validated events have none) is refused, as
 * the stored form could not hold it. */
static enc_err_t se_set_cohort(enc_flat_t **fp, const char *c) {
        enc_flat_t *f = *fp;
        const char *cur = se_cohort(f);
        /* The stored cohort is NUL-terminated and holds no other NUL. */
        if (cur && c ? !strcmp(cur, c) : cur == c)
                return ENC_OK; /* most events */
        size_t n = c ? strlen(c) : 0;
        if (n > ENC_LABEL_MAX)
                return ENC_ERR_INVALID_FIELD;
        if (!enc_flat_resize(fp, sizeof(se_rec_t) + (c ? n + 1 : 0)))
                return ENC_ERR_NOMEM;
        f = *fp;
        se_rec(f)->cohort = c ? (uint8_t)(n + 1) : 0;
        if (c) {
                memcpy(f->d + sizeof(se_rec_t), c, n);
                f->d[sizeof(se_rec_t) + n] = '\0';
        }
        return ENC_OK;
}

/* Emits the closing update and frees the state. */
static enc_err_t se_close(se_priv_t *p, void **state, enc_emitter_t *em) {
        enc_flat_t *f = *state;
        const se_rec_t *st = se_rec(f);
        enc_update_t up;
        double plays = (double)st->plays;

        memset(&up, 0, sizeof(up));
        up.window_start = st->first;
        up.window_end = st->last;
        up.value = (double)st->completed / plays;
        up.delta = up.value;
        up.final = true;
        up.event_time = st->last + p->gap_ms;
        up.sequence = 1;
        up.cohort = se_cohort(f);
        up.component_cnt = 5;
        up.components[0] = (enc_component_t){"listened_minutes",
                                             (double)st->ms_played / 60000.0};
        up.components[1] = (enc_component_t){"plays", plays};
        up.components[2] =
                (enc_component_t){"skip_rate", (double)st->skips / plays};
        up.components[3] = (enc_component_t){"completion_rate", up.value};
        up.components[4] = (enc_component_t){
                "duration_minutes", (double)(st->last - st->first) / 60000.0};
        enc_err_t err = enc_emit(em, &up);
        se_state_free(p, f);
        *state = NULL;
        return err;
}

static enc_err_t se_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        if (!*state || now < se_next_timer(priv, *state))
                return ENC_OK;
        return se_close(priv, state, em);
}

static enc_err_t se_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        se_priv_t *p = priv;
        enc_flat_t *f;
        enc_err_t err = se_on_timer(priv, state, ev->event_time, em);
        if (err)
                return err;
        if (!(f = *state)) {
                /* Sized for the cohort set below, so that setting it does
                 * not reallocate. */
                size_t clen = ev->cohort ? strlen(ev->cohort) + 1 : 0;
                if (clen > ENC_LABEL_MAX + 1)
                        return ENC_ERR_INVALID_FIELD;
                if (!(f = enc_flat_pool_get(&p->pool, NULL,
                                      sizeof(se_rec_t) + clen)))
                        return ENC_ERR_NOMEM;
                se_rec(f)->ver = SE_V2;
                se_rec(f)->cohort = (uint8_t)clen;
                if (clen)
                        memcpy(f->d + sizeof(se_rec_t), ev->cohort, clen);
                se_rec(f)->first = se_rec(f)->last = ev->event_time;
                *state = f;
        }
        err = se_set_cohort(&f, ev->cohort);
        *state = f;
        if (err)
                return err;
        se_rec_t *st = se_rec(f);
        /* An event before the session's last play (only a caller that
         * breaks event-time order sends one) joins it without moving it
         * back. */
        if (ev->event_time > st->last)
                st->last = ev->event_time;
        if (ev->event_time < st->first)
                st->first = ev->event_time;
        st->plays++;
        st->ms_played += ev->ms_played;
        if ((ev->reason_end == ENC_END_FORWARD ||
             ev->reason_end == ENC_END_BACK) &&
            ev->ms_played < p->skip_ms)
                st->skips++;
        if (ev->reason_end == ENC_END_TRACK_DONE ||
            (ev->track_duration_ms > 0 &&
             (double)ev->ms_played >=
                     p->complete_ratio * (double)ev->track_duration_ms))
                st->completed++;
        return ENC_OK;
}

/* ---- state records ----------------------------------------------------
 * v2: the block (above). state_encode copies it; state_decode checks every
 *     byte of it and copies it.
 * v1 (still read, so a store written before v2 loads; written as v2 from
 *     then on): u8 1, svarint first, varint (last - first), varint plays,
 *     varint skips, varint completed, varint ms_played, str cohort. */

static enc_err_t se_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        (void)priv;
        return enc_flat_encode(state, out) ? ENC_ERR_TOO_LARGE : ENC_OK;
}

/* Bounds that keep every sum and ratio finite and every time in range. */
#define SE_TIME_MAX  ((int64_t)1 << 50)
#define SE_COUNT_MAX ((uint64_t)1 << 40)

/* True if the counts may be an open session's (both versions). */
static bool se_counts_ok(int64_t first, uint64_t span, uint64_t plays,
                         uint64_t skips, uint64_t completed, uint64_t ms) {
        return first >= -SE_TIME_MAX && first <= SE_TIME_MAX &&
               span <= (uint64_t)SE_TIME_MAX && plays >= 1 &&
               plays <= SE_COUNT_MAX && skips <= plays && completed <= plays &&
               ms <= (uint64_t)SE_TIME_MAX;
}

static enc_err_t se_decode_v2(se_priv_t *p, const uint8_t *buf, size_t len,
                              void **statep) {
        se_rec_t r;
        static const uint8_t zero[sizeof(r.zero)];
        if (len < sizeof(r))
                return ENC_ERR_CORRUPT;
        memcpy(&r, buf, sizeof(r)); /* buf has no alignment promise */
        size_t clen = r.cohort ? (size_t)r.cohort - 1 : 0;
        if (r.ver != SE_V2 || memcmp(r.zero, zero, sizeof(zero)) ||
            len != sizeof(r) + (r.cohort ? clen + 1 : 0) ||
            r.last < r.first || r.plays < 0 || r.skips < 0 ||
            r.completed < 0 || r.ms_played < 0 ||
            !se_counts_ok(r.first, (uint64_t)r.last - (uint64_t)r.first,
                          (uint64_t)r.plays, (uint64_t)r.skips,
                          (uint64_t)r.completed, (uint64_t)r.ms_played))
                return ENC_ERR_CORRUPT;
        if (r.cohort && (clen > ENC_LABEL_MAX ||
                         !enc_sig_str_ok(buf + sizeof(r), clen) ||
                         buf[sizeof(r) + clen] != '\0'))
                return ENC_ERR_CORRUPT;
        enc_flat_t *f = enc_flat_pool_get(&p->pool, buf, len);
        if (!f)
                return ENC_ERR_NOMEM;
        *statep = f;
        return ENC_OK;
}

static enc_err_t se_decode_v1(se_priv_t *p, const uint8_t *buf, size_t len,
                              void **statep) {
        const uint8_t *q = buf + 1, *end = buf + len;
        int64_t first;
        uint64_t span, plays, skips, completed, ms;
        const char *c;
        size_t clen;

        if (!enc_get_svarint(&q, end, &first) ||
            !enc_get_varint(&q, end, &span) ||
            !enc_get_varint(&q, end, &plays) ||
            !enc_get_varint(&q, end, &skips) ||
            !enc_get_varint(&q, end, &completed) ||
            !enc_get_varint(&q, end, &ms) ||
            !se_counts_ok(first, span, plays, skips, completed, ms) ||
            !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &c, &clen) ||
            q != end)
                return ENC_ERR_CORRUPT;
        enc_flat_t *f =
                enc_flat_pool_get(&p->pool, NULL, sizeof(se_rec_t) + (c ? clen + 1 : 0));
        if (!f)
                return ENC_ERR_NOMEM;
        se_rec_t *st = se_rec(f);
        st->ver = SE_V2;
        st->cohort = c ? (uint8_t)(clen + 1) : 0;
        st->first = first;
        st->last = first + (int64_t)span;
        st->plays = (int64_t)plays;
        st->skips = (int64_t)skips;
        st->completed = (int64_t)completed;
        st->ms_played = (int64_t)ms;
        if (c) {
                memcpy(f->d + sizeof(se_rec_t), c, clen);
                f->d[sizeof(se_rec_t) + clen] = '\0';
        }
        *statep = f;
        return ENC_OK;
}

static enc_err_t se_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        *statep = NULL;
        if (!len)
                return ENC_ERR_CORRUPT;
        if (buf[0] == SE_V2)
                return se_decode_v2(priv, buf, len, statep);
        if (buf[0] == ENC_SIG_STATE_V1)
                return se_decode_v1(priv, buf, len, statep);
        return ENC_ERR_CORRUPT;
}

const enc_signal_plugin_t enc_sig_session = {
        .name = "session",
        .description =
                "Per-session listened minutes, skip and completion rates",
        .config_keys = se_keys,
        .init = se_init,
        .destroy = se_destroy,
        .on_event = se_on_event,
        .on_timer = se_on_timer,
        .next_timer = se_next_timer,
        .state_encode = se_state_encode,
        .state_decode = se_state_decode,
        .state_free = se_state_free,
        .state_bytes = se_state_bytes,
};
