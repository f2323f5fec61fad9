/*
 * composite.c -- one multi-objective reward per user: a weighted sum of
 * normalised component signals, weights from the configuration.
 *
 * DESIGN
 * Definition (version 1). A derived signal. `components` lists entries
 * "signal[:version][/subject]=weight" (version defaults to 1; no subject
 * means the latest update of any subject). An update from an earlier
 * instance that matches an entry sets that entry's normalised value x_i:
 *   active_days        value / horizon_days        (a share of the window)
 *   session            value                       (already a rate)
 *   discovery_habit    value / horizon_days
 *   progressive_reward estimate_mean / horizon_days
 * (0 if horizon_days is 0). Entries never seen count 0. A component with
 * a subject takes every update of that key. A component of any subject
 * takes the latest update of any subject: by event time, and among
 * updates at the same instant the one whose subject is last in byte order
 * (NULL first), whatever order they arrive in -- as if the updates of one
 * instant applied in subject byte order, so two discoveries that close at
 * the same watermark, or a final and a play at the same millisecond, give
 * the same x_i in every run. When sum_i w_i x_i (in config order) changes,
 * one update is emitted: value = the sum, delta = new sum - old sum,
 * components = each entry's x_i under the entry's name as written before
 * '=' (in config order), event_time of the triggering update,
 * window_start = window_end = event_time, subject NULL, sequence from 1
 * while the components live. ttl.days after the last matching update the
 * components are dropped without an update (the user has gone quiet;
 * everything restarts at 0, the sequence too).
 *
 * Cohort: a composite describes the user now, never a discovery, so it
 * carries the user's cohort: the cohort of the event that caused the
 * step (enc_emitter_event), or, when the watermark caused it, of the
 * user's latest applied event, which on_event remembers for ttl.days.
 * It never copies the component update's cohort, which for
 * discovery_habit and progressive_reward is the discovering play's. Only
 * when the user has had no event for ttl.days (a discovery's final
 * arriving long after the last play) is there nothing remembered; then
 * the component's cohort is the best left and is used.
 *
 * State: the components part (x_i with the time and subject each was
 * taken at, the time of the last matching update, the sequence) while
 * live, and the latest event's time and cohort while remembered; freed
 * when both have expired. The last emitted sum is not stored: it is
 * sum w_i x_i, recomputed.
 *
 * Never: read a clock, or use components that run after this instance
 * (the registry refuses such a list; see depends).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "sigpriv.h"

typedef enum co_kind_e {
        CO_ACTIVE_DAYS = 0,
        CO_SESSION,
        CO_DISCOVERY_HABIT,
        CO_PROGRESSIVE_REWARD,
} co_kind_t;

static const char *const co_kind_names[] = {
        "active_days", "session", "discovery_habit", "progressive_reward"};

typedef struct co_comp_s {
        char label[96]; /* as written, e.g. "active_days/28d" */
        char name[ENC_SIGNAL_NAME_MAX];
        int32_t version;
        bool any_subject;
        char subject[64];
        double weight;
        co_kind_t kind;
} co_comp_t;

typedef struct co_priv_s {
        int n;
        co_comp_t comp[ENC_COMPONENTS_MAX];
        int64_t ttl_ms;
        enc_pool_t pool; /* freed states (all of one size), for reuse */
} co_priv_t;

/* One component's current input. */
typedef struct co_slot_s {
        double x;
        int64_t t;     /* event time it was taken at; CO_NEVER if not yet */
        enc_sig_str_t subject; /* of the update taken (any-subject entries
                                  only) */
} co_slot_t;

#define CO_NEVER INT64_MIN

typedef struct co_state_s {
        bool live;         /* components seen within ttl: slots, last_time
                              and seq mean something; else all zero */
        int64_t last_time; /* last matching update */
        int64_t seq;
        bool has_event;     /* an event applied within ttl */
        int64_t event_time; /* the user's latest applied event */
        enc_sig_str_t cohort; /* its cohort (absent allowed) */
        co_slot_t s[];      /* one per configured component (priv->n):
                               every cached user carries one, so not
                               ENC_COMPONENTS_MAX */
} co_state_t;

static void co_clear_components(const co_priv_t *p, co_state_t *st) {
        for (int i = 0; i < p->n; i++) {
                enc_sig_str_free(&st->s[i].subject);
                st->s[i].x = 0;
                st->s[i].t = CO_NEVER;
        }
        st->live = false;
        st->last_time = 0;
        st->seq = 0;
}

static co_state_t *co_state_new(co_priv_t *p) {
        co_state_t *st = enc_pool_get(
                &p->pool, sizeof(co_state_t) + (size_t)p->n * sizeof(co_slot_t));
        if (st)
                co_clear_components(p, st);
        return st;
}

static void co_state_free(void *priv, void *state) {
        co_priv_t *p = priv;
        co_state_t *st = state;
        if (!st)
                return;
        for (int i = 0; i < p->n; i++)
                enc_sig_str_free(&st->s[i].subject);
        enc_sig_str_free(&st->cohort);
        enc_pool_put(&p->pool, st);
}

static size_t co_state_bytes(void *priv, const void *state) {
        const co_priv_t *p = priv;
        const co_state_t *st = state;
        size_t n = enc_heap_bytes(sizeof(co_state_t) +
                                  (size_t)p->n * sizeof(co_slot_t)) +
                   enc_sig_str_heap(&st->cohort);
        for (int i = 0; i < p->n; i++)
                n += enc_sig_str_heap(&st->s[i].subject);
        return n;
}

#define CO_FORM "signal[:version][/subject]=weight[,...]"

static const enc_cfg_key_t co_keys[] = {
        {.name = "components",
         .type = ENC_CFG_LIST,
         .def = "active_days/28d=0.4,session=0.3,discovery_habit=0.3",
         .desc = "Weighted components, " CO_FORM "; signal one of active_days, "
                 "session, discovery_habit, progressive_reward"},
        {.name = "ttl.days",
         .type = ENC_CFG_INT,
         .def = "35",
         .desc = "State is dropped this many days after the last component "
                 "update",
         .min = 1,
         .max = 3650},
        {NULL},
};

static void co_trim(const char **s, size_t *len) {
        while (*len && **s == ' ')
                (*s)++, (*len)--;
        while (*len && (*s)[*len - 1] == ' ')
                (*len)--;
}

/* Parses one entry "signal[:version][/subject]=weight" (trimmed). */
static bool co_parse_one(const char *tok, size_t len, co_comp_t *c) {
        char buf[256];
        memset(c, 0, sizeof(*c));
        if (!len || len >= sizeof(buf))
                return false;
        memcpy(buf, tok, len);
        buf[len] = '\0';
        char *eq = strchr(buf, '=');
        if (!eq)
                return false;
        *eq = '\0';
        const char *lab = buf, *w = eq + 1;
        size_t ll = strlen(lab), wl = strlen(w);
        co_trim(&lab, &ll);
        co_trim(&w, &wl);
        /* The label is the component's name in every update: past the
         * codec's cap on component names, or not UTF-8, every update of
         * the instance would fail to encode, which stops the engine. */
        if (!ll || ll > ENC_SIGNAL_NAME_MAX || !enc_utf8_valid(lab, ll) || !wl)
                return false;
        memcpy(c->label, lab, ll);
        char wbuf[64];
        char *wend;
        if (wl >= sizeof(wbuf))
                return false;
        memcpy(wbuf, w, wl);
        wbuf[wl] = '\0';
        errno = 0;
        c->weight = strtod(wbuf, &wend);
        if (errno || *wend || !isfinite(c->weight))
                return false;

        size_t nl = strcspn(c->label, ":/");
        if (!nl || nl >= sizeof(c->name))
                return false;
        memcpy(c->name, c->label, nl);
        const char *r = c->label + nl;
        c->version = 1;
        if (*r == ':') {
                int64_t v = 0;
                int digits = 0;
                for (r++; *r >= '0' && *r <= '9' && digits < 10; r++, digits++)
                        v = v * 10 + (*r - '0');
                if (!digits || v < 1 || v > INT32_MAX)
                        return false;
                c->version = (int32_t)v;
        }
        c->any_subject = true;
        if (*r == '/') {
                r++;
                if (!*r || strlen(r) >= sizeof(c->subject))
                        return false;
                c->any_subject = false;
                snprintf(c->subject, sizeof(c->subject), "%s", r);
                return true;
        }
        return *r == '\0';
}

/* Parses `components` into @p p (n, comp). Errors name the full key. */
static enc_err_t co_parse(const enc_sigconf_t *sc, co_priv_t *p, char *errstr,
                          size_t errstr_size) {
        const char *s = enc_sigconf_get(sc, "components");
        p->n = 0;
        for (;;) {
                size_t len = strcspn(s, ",");
                const char *tok = s;
                size_t tl = len;
                co_comp_t *c = &p->comp[p->n];
                co_trim(&tok, &tl);
                if (p->n == ENC_COMPONENTS_MAX)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%scomponents: more than %d "
                                          "entries (expected " CO_FORM ")",
                                          sc->prefix, ENC_COMPONENTS_MAX);
                if (!co_parse_one(tok, tl, c))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%scomponents: bad entry %d \"%.*s\" "
                                          "(expected " CO_FORM
                                          ", at most %d bytes of UTF-8 "
                                          "before '=', weight a finite "
                                          "number)",
                                          sc->prefix, p->n + 1, (int)tl, tok,
                                          ENC_SIGNAL_NAME_MAX);
                int kind = -1;
                for (int k = 0; k < 4; k++)
                        if (!strcmp(c->name, co_kind_names[k]))
                                kind = k;
                if (kind < 0)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "%scomponents: \"%s\" is not a "
                                          "signal composite can weigh "
                                          "(expected active_days, session, "
                                          "discovery_habit or "
                                          "progressive_reward)",
                                          sc->prefix, c->name);
                c->kind = (co_kind_t)kind;
                for (int j = 0; j < p->n; j++)
                        if (!strcmp(p->comp[j].label, c->label))
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "%scomponents: \"%s\" is listed twice",
                                        sc->prefix, c->label);
                p->n++;
                s += len;
                if (!*s)
                        return ENC_OK;
                s++; /* ',' */
        }
}

static int co_depends(const enc_sigconf_t *sc, enc_sig_ref_t *refs, int max,
                      char *errstr, size_t errstr_size) {
        co_priv_t p;
        int n = 0;
        if (co_parse(sc, &p, errstr, errstr_size))
                return -1;
        for (int i = 0; i < p.n && n < max; i++) {
                bool dup = false;
                for (int j = 0; j < n; j++)
                        if (!strcmp(refs[j].name, p.comp[i].name) &&
                            refs[j].version == p.comp[i].version)
                                dup = true;
                if (dup)
                        continue;
                snprintf(refs[n].name, sizeof(refs[n].name), "%s",
                         p.comp[i].name);
                refs[n].version = p.comp[i].version;
                refs[n].key = "components";
                n++;
        }
        return n;
}

static enc_err_t co_init(const enc_sigconf_t *sc, void **privp, char *errstr,
                         size_t errstr_size) {
        co_priv_t *p = calloc(1, sizeof(*p));
        if (!p)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "%s: out of memory", sc->prefix);
        enc_err_t err = co_parse(sc, p, errstr, errstr_size);
        if (err) {
                free(p);
                return err;
        }
        p->ttl_ms = enc_sigconf_int(sc, "ttl.days") * ENC_MS_PER_DAY;
        *privp = p;
        return ENC_OK;
}

static void co_destroy(void *priv) {
        co_priv_t *p = priv;
        enc_pool_clear(&p->pool);
        free(p);
}

static int64_t co_next_timer(void *priv, const void *state) {
        const co_priv_t *p = priv;
        const co_state_t *st = state;
        int64_t t = ENC_NO_TIMER;
        if (!st)
                return t;
        if (st->live)
                t = st->last_time + p->ttl_ms;
        if (st->has_event && st->event_time + p->ttl_ms < t)
                t = st->event_time + p->ttl_ms;
        return t;
}

/* Expires what is due at @p now; frees the state once nothing is left. */
static enc_err_t co_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        const co_priv_t *p = priv;
        co_state_t *st = *state;
        if (!st)
                return ENC_OK;
        if (st->live && now >= st->last_time + p->ttl_ms)
                co_clear_components(p, st);
        if (st->has_event && now >= st->event_time + p->ttl_ms) {
                st->has_event = false;
                st->event_time = 0;
                enc_sig_str_free(&st->cohort);
        }
        if (!st->live && !st->has_event) {
                co_state_free(priv, st);
                *state = NULL;
        }
        return ENC_OK;
}

/* Remembers the user's latest event: its cohort is the cohort of the
 * composite updates the watermark causes later. */
static enc_err_t co_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        co_state_t *st;
        enc_err_t err = co_on_timer(priv, state, ev->event_time, em);
        if (err)
                return err;
        if (!(st = *state)) {
                if (!(st = co_state_new(priv)))
                        return ENC_ERR_NOMEM;
                *state = st;
        }
        if (!enc_sig_str_set(&st->cohort, ev->cohort))
                return ENC_ERR_NOMEM;
        /* Never back: only a caller that breaks event-time order sends an
         * older event, and the timer must stay > now. */
        if (!st->has_event || ev->event_time > st->event_time)
                st->event_time = ev->event_time;
        st->has_event = true;
        return ENC_OK;
}

static double co_sum(const co_priv_t *p, const co_state_t *st) {
        double s = 0;
        for (int i = 0; i < p->n; i++)
                s += p->comp[i].weight * st->s[i].x;
        return s;
}

static double co_normalise(co_kind_t kind, const enc_update_t *up) {
        switch (kind) {
        case CO_SESSION:
                return up->value;
        case CO_ACTIVE_DAYS:
        case CO_DISCOVERY_HABIT:
                return up->horizon_days > 0 ? up->value / up->horizon_days : 0;
        case CO_PROGRESSIVE_REWARD:
                return up->has_estimate && up->horizon_days > 0
                               ? up->estimate_mean / up->horizon_days
                               : 0;
        }
        return 0;
}

static bool co_matches(const co_comp_t *c, const enc_update_t *up) {
        return enc_sig_streq(up->signal, c->name) &&
               up->signal_version == c->version &&
               (c->any_subject || enc_sig_streq(up->subject, c->subject));
}

/* Byte order of subjects, NULL first. */
static int co_subject_cmp(const char *a, const char *b) {
        if (!a || !b)
                return (a != NULL) - (b != NULL);
        return strcmp(a, b);
}

/* Sets slot @p i from @p up if the entry takes it (see DESIGN). */
static enc_err_t co_take(const co_priv_t *p, co_state_t *st, int i,
                         const enc_update_t *up) {
        const co_comp_t *c = &p->comp[i];
        co_slot_t *sl = &st->s[i];
        if (c->any_subject && sl->t != CO_NEVER &&
            (up->event_time < sl->t ||
             (up->event_time == sl->t &&
              co_subject_cmp(up->subject, enc_sig_str(&sl->subject)) < 0)))
                return ENC_OK; /* an earlier one in the instant's order */
        if (c->any_subject && !enc_sig_str_set(&sl->subject, up->subject))
                return ENC_ERR_NOMEM;
        sl->x = co_normalise(c->kind, up);
        sl->t = up->event_time;
        return ENC_OK;
}

static enc_err_t co_on_update(void *priv, void **state, const enc_update_t *up,
                              enc_emitter_t *em) {
        co_priv_t *p = priv;
        co_state_t *st;
        bool match = false;

        for (int i = 0; i < p->n; i++)
                match |= co_matches(&p->comp[i], up);
        if (!match)
                return ENC_OK;
        /* An expiry due before this update comes first. */
        enc_err_t err = co_on_timer(priv, state, up->event_time, em);
        if (err)
                return err;
        if (!(st = *state)) {
                if (!(st = co_state_new(p)))
                        return ENC_ERR_NOMEM;
                *state = st;
        }
        if (!st->live) {
                st->live = true;
                st->last_time = up->event_time;
        }
        double old = co_sum(p, st);
        for (int i = 0; i < p->n; i++)
                if (co_matches(&p->comp[i], up) &&
                    (err = co_take(p, st, i, up)))
                        return err;
        if (up->event_time > st->last_time)
                st->last_time = up->event_time;
        double sum = co_sum(p, st);
        if (sum == old)
                return ENC_OK;

        enc_update_t out;
        memset(&out, 0, sizeof(out));
        out.value = sum;
        out.delta = sum - old;
        out.window_start = out.window_end = up->event_time;
        out.event_time = up->event_time;
        /* The user's cohort (DESIGN): the causing event's, else the
         * latest event's, else -- nothing remembered -- the component's. */
        const enc_event_t *ev = enc_emitter_event(em);
        out.cohort = ev                ? ev->cohort
                     : st->has_event ? enc_sig_str(&st->cohort)
                                     : up->cohort;
        out.sequence = ++st->seq;
        out.component_cnt = p->n;
        for (int i = 0; i < p->n; i++)
                out.components[i] =
                        (enc_component_t){p->comp[i].label, st->s[i].x};
        return enc_emit(em, &out);
}

/* ---- state records ----------------------------------------------------
 * v1 (read only): u8 1, varint n, n x double x_i, svarint last_time,
 *     varint seq. Components live; no event remembered.
 * v2: u8 2, u8 flags (1 live, 2 has_event), varint n, n x (double x_i,
 *     svarint t or INT64_MIN for never, str subject), svarint last_time,
 *     varint seq, svarint event_time, str cohort. */

#define CO_STATE_V2 2
#define CO_TIME_MAX ((int64_t)1 << 50)

static bool co_time_ok(int64_t t) {
        return t >= -CO_TIME_MAX && t <= CO_TIME_MAX;
}

static enc_err_t co_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        const co_priv_t *p = priv;
        const co_state_t *st = state;
        enc_buf_put_u8(out, CO_STATE_V2);
        enc_buf_put_u8(out, (uint8_t)((st->live ? 1 : 0) |
                                      (st->has_event ? 2 : 0)));
        enc_buf_put_varint(out, (uint64_t)p->n);
        for (int i = 0; i < p->n; i++) {
                enc_buf_put_double(out, st->s[i].x);
                enc_buf_put_svarint(out, st->s[i].t);
                enc_buf_put_str(out, enc_sig_str(&st->s[i].subject));
        }
        enc_buf_put_svarint(out, st->last_time);
        enc_buf_put_varint(out, (uint64_t)st->seq);
        enc_buf_put_svarint(out, st->event_time);
        enc_buf_put_str(out, enc_sig_str(&st->cohort));
        return out->failed ? ENC_ERR_TOO_LARGE : ENC_OK;
}

static enc_err_t co_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        co_priv_t *p = priv;
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver, flags = 1;
        uint64_t n, seq;
        co_state_t *st = co_state_new(p);

        *statep = NULL;
        if (!st)
                return ENC_ERR_NOMEM;
        if (!enc_get_u8(&q, end, &ver) ||
            (ver != ENC_SIG_STATE_V1 && ver != CO_STATE_V2) ||
            (ver == CO_STATE_V2 && (!enc_get_u8(&q, end, &flags) ||
                                    flags > 3 || !flags)) ||
            !enc_get_varint(&q, end, &n) || n != (uint64_t)p->n)
                goto corrupt;
        st->live = flags & 1;
        st->has_event = flags & 2;
        for (int i = 0; i < p->n; i++) {
                co_slot_t *sl = &st->s[i];
                if (!enc_get_double(&q, end, &sl->x) || !isfinite(sl->x))
                        goto corrupt;
                if (ver == ENC_SIG_STATE_V1) {
                        /* v1 kept no order: any update may replace x_i. */
                        sl->t = CO_NEVER;
                        continue;
                }
                if (!enc_get_svarint(&q, end, &sl->t) ||
                    (sl->t != CO_NEVER && !co_time_ok(sl->t)) ||
                    !enc_sig_str_read(&q, end, ENC_ID_MAX, &sl->subject) ||
                    (enc_sig_str(&sl->subject) && !p->comp[i].any_subject))
                        goto corrupt;
        }
        if (!enc_get_svarint(&q, end, &st->last_time) ||
            !co_time_ok(st->last_time) || !enc_get_varint(&q, end, &seq) ||
            seq > ((uint64_t)1 << 50))
                goto corrupt;
        st->seq = (int64_t)seq;
        if (ver == CO_STATE_V2 &&
            (!enc_get_svarint(&q, end, &st->event_time) ||
             !co_time_ok(st->event_time) ||
             !enc_sig_str_read(&q, end, ENC_LABEL_MAX, &st->cohort) ||
             (!st->has_event &&
              (enc_sig_str(&st->cohort) || st->event_time))))
                goto corrupt;
        if (q != end)
                goto corrupt;
        *statep = st;
        return ENC_OK;
corrupt:
        co_state_free(priv, st);
        return ENC_ERR_CORRUPT;
}

const enc_signal_plugin_t enc_sig_composite = {
        .name = "composite",
        .description = "Weighted sum of normalised component signals",
        .config_keys = co_keys,
        .init = co_init,
        .destroy = co_destroy,
        .on_event = co_on_event,
        .on_update = co_on_update,
        .on_timer = co_on_timer,
        .next_timer = co_next_timer,
        .state_encode = co_state_encode,
        .state_decode = co_state_decode,
        .state_free = co_state_free,
        .state_bytes = co_state_bytes,
        .depends = co_depends,
};
