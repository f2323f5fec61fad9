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
 * State: the day the windows end on (`today`), the active days of the
 * last max(N) days as a day bitmap based at today - max(N) + 1, a sequence
 * per window and the cohort. Window values are not stored: they are
 * counts over the bitmap, so a stored value can never disagree with the
 * days it counts.
 *
 * Never: read a clock. A play older than the current day (the engine
 * promises event-time order, so only a buggy caller sends one) is counted
 * into the windows it falls in without moving them back.
 */
#include <stdio.h>

#include "daybits.h"
#include "sigpriv.h"

#define AD_WINDOWS_MAX 8

typedef struct ad_priv_s {
        int nwin;
        int64_t n[AD_WINDOWS_MAX];
        char subject[AD_WINDOWS_MAX][16];
        int64_t maxn;
        int64_t qualified_ms;
        enc_pool_t pool; /* freed states, for the next ones */
} ad_priv_t;

typedef struct ad_state_s {
        int64_t today;
        enc_daybits_t days; /* base = today - maxn + 1 */
        int64_t seq[AD_WINDOWS_MAX];
        enc_sig_str_t cohort;
        int64_t next; /* ad_next_change() of today and days, kept so the
                         timer costs no bitmap scan per event */
} ad_state_t;

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
        *privp = p;
        return ENC_OK;
}

static void ad_destroy(void *priv) {
        ad_priv_t *p = priv;
        enc_pool_clear(&p->pool);
        free(p);
}

static void ad_state_free(void *priv, void *state) {
        ad_priv_t *p = priv;
        ad_state_t *st = state;
        if (!st)
                return;
        enc_sig_str_free(&st->cohort);
        enc_pool_put(p ? &p->pool : NULL, st);
}

static size_t ad_state_bytes(void *priv, const void *state) {
        const ad_state_t *st = state;
        return enc_heap_bytes(sizeof(*st)) + enc_sig_str_heap(&st->cohort);
}

/* The value of window @p i on st->today. */
static int ad_value(const ad_priv_t *p, const ad_state_t *st, int i) {
        return enc_daybits_count(&st->days, st->today - p->n[i] + 1, st->today);
}

/* The earliest day start at which an active day leaves a non-empty window:
 * the first active day a of window i leaves it at day a + N_i. */
static int64_t ad_next_change(const ad_priv_t *p, const ad_state_t *st) {
        int64_t t = ENC_NO_TIMER;
        for (int i = 0; i < p->nwin; i++) {
                int64_t a = enc_daybits_first(
                        &st->days, st->today - p->n[i] + 1, st->today);
                if (a != INT64_MAX && enc_day_start(a + p->n[i]) < t)
                        t = enc_day_start(a + p->n[i]);
        }
        return t;
}

static int64_t ad_next_timer(void *priv, const void *state) {
        return state ? ((const ad_state_t *)state)->next : ENC_NO_TIMER;
}

/* Moves the windows to end on @p day (>= today), keeping the bitmap based
 * at the start of the largest window. */
static void ad_move(const ad_priv_t *p, ad_state_t *st, int64_t day) {
        st->today = day;
        enc_daybits_rebase(&st->days, day - p->maxn + 1);
        st->next = ad_next_change(p, st);
}

/* Emits every window whose value differs from @p old. */
static enc_err_t ad_emit_changes(const ad_priv_t *p, ad_state_t *st,
                                 const int *old, int64_t event_time,
                                 enc_emitter_t *em) {
        for (int i = 0; i < p->nwin; i++) {
                int v = ad_value(p, st, i);
                if (v == old[i])
                        continue;
                enc_update_t up;
                memset(&up, 0, sizeof(up));
                up.subject = p->subject[i];
                up.window_start = enc_day_start(st->today - p->n[i] + 1);
                up.window_end = enc_day_start(st->today + 1);
                up.value = v;
                up.delta = v - old[i];
                up.observed_days = (int32_t)p->n[i];
                up.horizon_days = (int32_t)p->n[i];
                up.final = v == 0;
                up.event_time = event_time;
                up.sequence = ++st->seq[i];
                up.cohort = enc_sig_str(&st->cohort);
                enc_err_t err = enc_emit(em, &up);
                if (err)
                        return err;
        }
        return ENC_OK;
}

/* Works through every boundary due at or before @p now, in time order, and
 * frees the state once every window is empty. */
static enc_err_t ad_advance(ad_priv_t *p, ad_state_t **stp, int64_t now,
                            enc_emitter_t *em) {
        ad_state_t *st = *stp;
        int64_t t;
        while ((t = st->next) <= now) {
                int old[AD_WINDOWS_MAX];
                for (int i = 0; i < p->nwin; i++)
                        old[i] = ad_value(p, st, i);
                ad_move(p, st, enc_day_of(t));
                enc_err_t err = ad_emit_changes(p, st, old, t, em);
                if (err)
                        return err;
        }
        if (enc_daybits_empty(&st->days)) {
                ad_state_free(p, st);
                *stp = NULL;
        }
        return ENC_OK;
}

static enc_err_t ad_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        if (!*state)
                return ENC_OK;
        return ad_advance(priv, (ad_state_t **)state, now, em);
}

static enc_err_t ad_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        ad_priv_t *p = priv;
        ad_state_t *st = *state;
        int64_t day = enc_day_of(ev->event_time);
        int old[AD_WINDOWS_MAX];
        enc_err_t err;

        if (ev->ms_played < p->qualified_ms) {
                /* Not counted, but it is the user's latest event: the
                 * cohort decays carry. */
                if (!st)
                        return ENC_OK;
                err = ad_advance(p, (ad_state_t **)state, ev->event_time, em);
                if (err || !(st = *state))
                        return err;
                return enc_sig_str_set(&st->cohort, ev->cohort)
                               ? ENC_OK
                               : ENC_ERR_NOMEM;
        }
        if (st) {
                /* The engine has delivered every timer due before this
                 * event; doing it again here is a no-op then, and keeps the
                 * definition whole for any caller that has not. */
                err = ad_advance(p, (ad_state_t **)state, ev->event_time, em);
                if (err)
                        return err;
                st = *state;
        }
        if (!st) {
                st = enc_pool_get(&p->pool, sizeof(*st));
                if (!st)
                        return ENC_ERR_NOMEM;
                st->today = day;
                enc_daybits_init(&st->days, day - p->maxn + 1);
                *state = st;
        }
        if (!enc_sig_str_set(&st->cohort, ev->cohort))
                return ENC_ERR_NOMEM;
        if (day <= st->today && enc_daybits_has(&st->days, day))
                return ENC_OK; /* already active: most plays */
        for (int i = 0; i < p->nwin; i++)
                old[i] = ad_value(p, st, i);
        /* Nothing left a window between today and day (the advance above
         * saw to that), so the values on `day` before this play are the
         * old ones. */
        if (day > st->today)
                ad_move(p, st, day);
        if (!enc_daybits_add(&st->days, day))
                return ENC_OK; /* older than any window */
        st->next = ad_next_change(p, st);
        return ad_emit_changes(p, st, old, ev->event_time, em);
}

/* ---- state records ----------------------------------------------------
 * v1: u8 1, svarint today, varint nwin, nwin x (varint N, varint seq),
 *     daybits (base today - max(N) + 1), str cohort. */

static enc_err_t ad_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        const ad_priv_t *p = priv;
        const ad_state_t *st = state;
        enc_buf_put_u8(out, ENC_SIG_STATE_V1);
        enc_buf_put_svarint(out, st->today);
        enc_buf_put_varint(out, (uint64_t)p->nwin);
        for (int i = 0; i < p->nwin; i++) {
                enc_buf_put_varint(out, (uint64_t)p->n[i]);
                enc_buf_put_varint(out, (uint64_t)st->seq[i]);
        }
        enc_daybits_put(&st->days, out);
        enc_buf_put_str(out, enc_sig_str(&st->cohort));
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

static enc_err_t ad_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        ad_priv_t *p = priv;
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver;
        uint64_t nwin;
        ad_state_t *st = enc_pool_get(&p->pool, sizeof(*st));

        *statep = NULL;
        if (!st)
                return ENC_ERR_NOMEM;
        if (!enc_get_u8(&q, end, &ver) || ver != ENC_SIG_STATE_V1 ||
            !enc_get_svarint(&q, end, &st->today) ||
            !enc_sig_day_ok(st->today) || !enc_get_varint(&q, end, &nwin) ||
            nwin != (uint64_t)p->nwin)
                goto corrupt;
        for (int i = 0; i < p->nwin; i++) {
                uint64_t n, seq;
                /* A record written under other windows cannot be read as
                 * this instance's: refuse rather than guess. */
                if (!enc_get_varint(&q, end, &n) || n != (uint64_t)p->n[i] ||
                    !enc_get_varint(&q, end, &seq) || seq > INT64_MAX / 2)
                        goto corrupt;
                st->seq[i] = (int64_t)seq;
        }
        st->days.base = st->today - p->maxn + 1;
        if (!enc_daybits_get(&q, end, &st->days) ||
            enc_daybits_empty(&st->days) ||
            enc_daybits_last(&st->days) > st->today ||
            !enc_sig_str_read(&q, end, ENC_LABEL_MAX, &st->cohort) ||
            q != end)
                goto corrupt;
        st->next = ad_next_change(p, st);
        *statep = st;
        return ENC_OK;

corrupt:
        ad_state_free(p, st);
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
