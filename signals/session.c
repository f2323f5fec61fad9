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
 * State: the counts of the open session; a few varints on disk.
 * Never: read a clock or keep a closed session.
 */
#include "sigpriv.h"

typedef struct se_priv_s {
        int64_t gap_ms;
        int64_t skip_ms;
        double complete_ratio;
        enc_pool_t pool; /* freed states, for the next sessions */
} se_priv_t;

typedef struct se_state_s {
        int64_t first, last; /* event times of the first and last play */
        int64_t plays, skips, completed;
        int64_t ms_played; /* sum */
        enc_sig_str_t cohort; /* of the last play */
} se_state_t;

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

static enc_err_t se_init(const enc_sigconf_t *sc, void **privp, char *errstr,
                         size_t errstr_size) {
        se_priv_t *p = calloc(1, sizeof(*p));
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
        enc_pool_clear(&p->pool);
        free(p);
}

static void se_state_free(void *priv, void *state) {
        se_priv_t *p = priv;
        se_state_t *st = state;
        if (!st)
                return;
        enc_sig_str_free(&st->cohort);
        enc_pool_put(p ? &p->pool : NULL, st);
}

static size_t se_state_bytes(void *priv, const void *state) {
        const se_state_t *st = state;
        return enc_heap_bytes(sizeof(*st)) + enc_sig_str_heap(&st->cohort);
}

static int64_t se_next_timer(void *priv, const void *state) {
        const se_priv_t *p = priv;
        const se_state_t *st = state;
        return st ? st->last + p->gap_ms : ENC_NO_TIMER;
}

/* Emits the closing update and frees the state. */
static enc_err_t se_close(se_priv_t *p, void **state, enc_emitter_t *em) {
        se_state_t *st = *state;
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
        up.cohort = enc_sig_str(&st->cohort);
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
        se_state_free(p, st);
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
        se_state_t *st;
        enc_err_t err = se_on_timer(priv, state, ev->event_time, em);
        if (err)
                return err;
        if (!(st = *state)) {
                if (!(st = enc_pool_get(&p->pool, sizeof(*st))))
                        return ENC_ERR_NOMEM;
                st->first = st->last = ev->event_time;
                *state = st;
        }
        if (!enc_sig_str_set(&st->cohort, ev->cohort))
                return ENC_ERR_NOMEM;
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
 * v1: u8 1, svarint first, varint (last - first), varint plays, varint
 *     skips, varint completed, varint ms_played, str cohort. */

static enc_err_t se_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        const se_state_t *st = state;
        enc_buf_put_u8(out, ENC_SIG_STATE_V1);
        enc_buf_put_svarint(out, st->first);
        enc_buf_put_varint(out, (uint64_t)(st->last - st->first));
        enc_buf_put_varint(out, (uint64_t)st->plays);
        enc_buf_put_varint(out, (uint64_t)st->skips);
        enc_buf_put_varint(out, (uint64_t)st->completed);
        enc_buf_put_varint(out, (uint64_t)st->ms_played);
        enc_buf_put_str(out, enc_sig_str(&st->cohort));
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

/* Bounds that keep every sum and ratio finite and every time in range. */
#define SE_TIME_MAX  ((int64_t)1 << 50)
#define SE_COUNT_MAX ((uint64_t)1 << 40)

static enc_err_t se_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver;
        uint64_t span, plays, skips, completed, ms;
        se_priv_t *p = priv;
        se_state_t *st = enc_pool_get(&p->pool, sizeof(*st));

        *statep = NULL;
        if (!st)
                return ENC_ERR_NOMEM;
        if (!enc_get_u8(&q, end, &ver) || ver != ENC_SIG_STATE_V1 ||
            !enc_get_svarint(&q, end, &st->first) || st->first < -SE_TIME_MAX ||
            st->first > SE_TIME_MAX || !enc_get_varint(&q, end, &span) ||
            span > (uint64_t)SE_TIME_MAX || !enc_get_varint(&q, end, &plays) ||
            plays < 1 || plays > SE_COUNT_MAX ||
            !enc_get_varint(&q, end, &skips) || skips > plays ||
            !enc_get_varint(&q, end, &completed) || completed > plays ||
            !enc_get_varint(&q, end, &ms) || ms > (uint64_t)SE_TIME_MAX ||
            !enc_sig_str_read(&q, end, ENC_LABEL_MAX, &st->cohort) ||
            q != end) {
                se_state_free(p, st);
                return ENC_ERR_CORRUPT;
        }
        st->last = st->first + (int64_t)span;
        st->plays = (int64_t)plays;
        st->skips = (int64_t)skips;
        st->completed = (int64_t)completed;
        st->ms_played = (int64_t)ms;
        *statep = st;
        return ENC_OK;
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
