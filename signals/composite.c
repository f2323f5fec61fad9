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
 * The state is one flat block (base/flat.h) whose bytes are its stored
 * form, record v3: a header (co_hdr_t: version, flags, last_time, seq,
 * event_time, where the cohort is), one fixed-width slot per configured
 * entry (x_i and the time it was taken at; an any-subject entry also
 * where its subject is: a fixed-subject entry stores no subject), then
 * the strings, each with its NUL, the cohort first and the subjects in
 * entry order, with no gap. Encoding is a copy; decoding checks every
 * byte and copies. The order of the strings is fixed and a cleared part
 * is all zero (t never), so the same logical state has the same bytes
 * whatever its history (canonical), and the decoder refuses any other
 * arrangement. A subject or cohort that changes length is edited in
 * place (enc_flat_insert/cut, which keep room for growth): an update
 * allocates nothing in steady state. Records v1 and v2 (varints, one
 * string after another) are still read: parsed and built into a v3
 * block, which is how a store migrates as its users are loaded.
 *
 * Never: read a clock, or use components that run after this instance
 * (the registry refuses such a list; see depends).
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "flat.h"
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

/* ---- the block (record v3) ---------------------------------------------
 * Fixed-width fields in the machine's (little-endian, flat.h) order at
 * 8-aligned offsets: d is 8-aligned and every slot is a multiple of 8. */

/* Where a string is: bytes d[off..off+len), its NUL at d[off+len].
 * off 0 (inside the header, never a string's place) means absent; len is
 * 0 then. */
typedef struct co_sref_s {
        uint32_t off;
        uint32_t len;
} co_sref_t;

#define CO_LIVE      1 /* components seen within ttl */
#define CO_HAS_EVENT 2 /* an event applied within ttl */

typedef struct co_hdr_s {
        uint8_t ver;        /* CO_STATE_V3, first as in every record */
        uint8_t flags;      /* CO_LIVE | CO_HAS_EVENT; 0 only while built */
        uint8_t n;          /* configured entries */
        uint8_t pad0;       /* 0 */
        uint16_t any;       /* bit i: entry i takes any subject */
        uint16_t pad1;      /* 0 */
        int64_t last_time;  /* last matching update; 0 unless live */
        int64_t seq;        /* last sequence emitted; 0 unless live */
        int64_t event_time; /* the user's latest event; 0 without one */
        co_sref_t cohort;   /* its cohort (may be absent); absent without
                               one */
} co_hdr_t;

/* One entry's input. An any-subject entry's slot is this and the
 * co_sref_t of the subject of the update taken; a fixed-subject one is
 * this alone. Cleared (not live): x +0, t CO_NEVER, no subject. */
typedef struct co_xt_s {
        double x;
        int64_t t; /* event time it was taken at; CO_NEVER if not yet */
} co_xt_t;

_Static_assert(sizeof(co_sref_t) == 8 && sizeof(co_xt_t) == 16 &&
                       sizeof(co_hdr_t) == 40,
               "record v3 fields are fixed-width, 8-aligned, no padding");
_Static_assert(ENC_COMPONENTS_MAX <= 16 && ENC_COMPONENTS_MAX <= UINT8_MAX,
               "co_hdr_t.any and .n hold the entries");

#define CO_STATE_V2 2 /* read only */
#define CO_STATE_V3 3 /* the block */
#define CO_NEVER    INT64_MIN
#define CO_STRS  (1 + ENC_COMPONENTS_MAX) /* cohort + subjects at most */

typedef struct co_priv_s {
        int n;
        co_comp_t comp[ENC_COMPONENTS_MAX];
        int64_t ttl_ms;
        /* The block's layout, fixed by the entries (co_layout). Strings
         * are numbered k: 0 the cohort, then one per any-subject entry in
         * entry order, which is their order in the string area. */
        uint16_t any;                      /* as co_hdr_t.any */
        int nstr;                          /* strings */
        uint32_t slot[ENC_COMPONENTS_MAX]; /* offset of entry i's co_xt_t */
        int8_t str_of[ENC_COMPONENTS_MAX]; /* entry i's string k, or -1 */
        uint32_t ref[CO_STRS];             /* offset of string k's co_sref_t */
        uint32_t str_off;                  /* start of the string area */
} co_priv_t;

static void co_layout(co_priv_t *p) {
        uint32_t off = sizeof(co_hdr_t);
        p->any = 0;
        p->nstr = 1;
        p->ref[0] = offsetof(co_hdr_t, cohort);
        for (int i = 0; i < p->n; i++) {
                p->slot[i] = off;
                off += sizeof(co_xt_t);
                p->str_of[i] = -1;
                if (p->comp[i].any_subject) {
                        p->any |= (uint16_t)(1u << i);
                        p->str_of[i] = (int8_t)p->nstr;
                        p->ref[p->nstr++] = off;
                        off += sizeof(co_sref_t);
                }
        }
        p->str_off = off;
}

static co_hdr_t *co_hdr(enc_flat_t *f) {
        return (co_hdr_t *)(void *)f->d;
}

static const co_hdr_t *co_chdr(const enc_flat_t *f) {
        return (const co_hdr_t *)(const void *)f->d;
}

static co_xt_t *co_xt(enc_flat_t *f, const co_priv_t *p, int i) {
        return (co_xt_t *)(void *)(f->d + p->slot[i]);
}

static const co_xt_t *co_cxt(const enc_flat_t *f, const co_priv_t *p, int i) {
        return (const co_xt_t *)(const void *)(f->d + p->slot[i]);
}

static co_sref_t *co_ref(enc_flat_t *f, const co_priv_t *p, int k) {
        return (co_sref_t *)(void *)(f->d + p->ref[k]);
}

static const co_sref_t *co_cref(const enc_flat_t *f, const co_priv_t *p,
                                int k) {
        return (const co_sref_t *)(const void *)(f->d + p->ref[k]);
}

/* String @p k, borrowed from the block (valid until it is edited); NULL
 * when absent. */
static const char *co_str(const enc_flat_t *f, const co_priv_t *p, int k) {
        const co_sref_t *r = co_cref(f, p, k);
        return r->off ? (const char *)f->d + r->off : NULL;
}

/* Where string @p k goes: after the last present string before it. */
static size_t co_str_at(const enc_flat_t *f, const co_priv_t *p, int k) {
        for (int j = k - 1; j >= 0; j--) {
                const co_sref_t *r = co_cref(f, p, j);
                if (r->off)
                        return (size_t)r->off + r->len + 1;
        }
        return p->str_off;
}

/* Sets string @p k of *@p fp to a copy of @p v (NULL: absent), moving the
 * strings after it (the block may move). @p v must not point into the
 * block (it is an event's or an earlier instance's). False, with the
 * block unchanged, when out of memory; never fails to remove or shorten. */
static bool co_set_str(const co_priv_t *p, enc_flat_t **fp, int k,
                       const char *v) {
        const char *cur = co_str(*fp, p, k);
        if (cur == v || (cur && v && !strcmp(cur, v)))
                return true;
        co_sref_t r = *co_cref(*fp, p, k);
        size_t vl = v ? strlen(v) : 0;
        size_t had = r.off ? (size_t)r.len + 1 : 0, need = v ? vl + 1 : 0;
        size_t at = r.off ? r.off : co_str_at(*fp, p, k);
        if (vl > UINT32_MAX - 1)
                return false;
        if (need > had) {
                if (!enc_flat_insert(fp, at + had, need - had))
                        return false;
        } else if (need < had) {
                enc_flat_cut(fp, at + need, had - need);
        }
        enc_flat_t *f = *fp;
        if (v)
                memcpy(f->d + at, v, need); /* with its NUL */
        co_sref_t *w = co_ref(f, p, k);
        w->off = v ? (uint32_t)at : 0;
        w->len = (uint32_t)vl;
        for (int j = k + 1; j < p->nstr; j++) {
                co_sref_t *o = co_ref(f, p, j);
                if (o->off)
                        o->off = (uint32_t)(o->off + need - had);
        }
        return true;
}

/* Clears the components part: slots, their subjects, last_time, seq. */
static void co_clear_components(const co_priv_t *p, enc_flat_t **fp) {
        /* The subjects are the string area after the cohort. */
        size_t from = co_str_at(*fp, p, 1);
        if ((*fp)->len > from)
                enc_flat_cut(fp, from, (*fp)->len - from);
        enc_flat_t *f = *fp;
        memset(f->d + sizeof(co_hdr_t), 0, p->str_off - sizeof(co_hdr_t));
        for (int i = 0; i < p->n; i++)
                co_xt(f, p, i)->t = CO_NEVER;
        co_hdr_t *h = co_hdr(f);
        h->flags &= (uint8_t)~CO_LIVE;
        h->last_time = 0;
        h->seq = 0;
}

/* A state with nothing in it (flags 0: the caller sets one). */
static enc_flat_t *co_state_new(const co_priv_t *p) {
        enc_flat_t *f = enc_flat_new(p->str_off);
        if (!f)
                return NULL;
        co_hdr_t *h = co_hdr(f);
        h->ver = CO_STATE_V3;
        h->n = (uint8_t)p->n;
        h->any = p->any;
        for (int i = 0; i < p->n; i++)
                co_xt(f, p, i)->t = CO_NEVER;
        return f;
}

static void co_state_free(void *priv, void *state) {
        enc_flat_free(state);
}

static size_t co_state_bytes(void *priv, const void *state) {
        return enc_flat_heap(state);
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
        co_layout(p);
        *privp = p;
        return ENC_OK;
}

static void co_destroy(void *priv) {
        free(priv);
}

static int64_t co_next_timer(void *priv, const void *state) {
        const co_priv_t *p = priv;
        int64_t t = ENC_NO_TIMER;
        if (!state)
                return t;
        const co_hdr_t *h = co_chdr(state);
        if (h->flags & CO_LIVE)
                t = h->last_time + p->ttl_ms;
        if ((h->flags & CO_HAS_EVENT) && h->event_time + p->ttl_ms < t)
                t = h->event_time + p->ttl_ms;
        return t;
}

/* Expires what is due at @p now; frees the state once nothing is left. */
static enc_err_t co_on_timer(void *priv, void **state, int64_t now,
                             enc_emitter_t *em) {
        const co_priv_t *p = priv;
        enc_flat_t *f = *state;
        if (!f)
                return ENC_OK;
        if ((co_hdr(f)->flags & CO_LIVE) &&
            now >= co_hdr(f)->last_time + p->ttl_ms)
                co_clear_components(p, &f);
        if ((co_hdr(f)->flags & CO_HAS_EVENT) &&
            now >= co_hdr(f)->event_time + p->ttl_ms) {
                (void)co_set_str(p, &f, 0, NULL); /* removing never fails */
                co_hdr(f)->flags &= (uint8_t)~CO_HAS_EVENT;
                co_hdr(f)->event_time = 0;
        }
        if (!co_hdr(f)->flags) {
                enc_flat_free(f);
                f = NULL;
        }
        *state = f;
        return ENC_OK;
}

/* Remembers the user's latest event: its cohort is the cohort of the
 * composite updates the watermark causes later. */
static enc_err_t co_on_event(void *priv, void **state, const enc_event_t *ev,
                             enc_emitter_t *em) {
        const co_priv_t *p = priv;
        enc_flat_t *f;
        enc_err_t err = co_on_timer(priv, state, ev->event_time, em);
        if (err)
                return err;
        if (!(f = *state) && !(f = co_state_new(p)))
                return ENC_ERR_NOMEM;
        bool ok = co_set_str(p, &f, 0, ev->cohort);
        if (!ok && !co_hdr(f)->flags) {
                enc_flat_free(f); /* new and empty: no state, as before */
                f = NULL;
        }
        *state = f;
        if (!ok)
                return ENC_ERR_NOMEM;
        co_hdr_t *h = co_hdr(f);
        /* Never back: only a caller that breaks event-time order sends an
         * older event, and the timer must stay > now. */
        if (!(h->flags & CO_HAS_EVENT) || ev->event_time > h->event_time)
                h->event_time = ev->event_time;
        h->flags |= CO_HAS_EVENT;
        return ENC_OK;
}

static double co_sum(const co_priv_t *p, const enc_flat_t *f) {
        double s = 0;
        for (int i = 0; i < p->n; i++)
                s += p->comp[i].weight * co_cxt(f, p, i)->x;
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

/* Sets slot @p i of *@p fp from @p up if the entry takes it (see DESIGN).
 * The block may move. */
static enc_err_t co_take(const co_priv_t *p, enc_flat_t **fp, int i,
                         const enc_update_t *up) {
        int k = p->str_of[i]; /* >= 0: any subject */
        const co_xt_t *cur = co_cxt(*fp, p, i);
        if (k >= 0 && cur->t != CO_NEVER &&
            (up->event_time < cur->t ||
             (up->event_time == cur->t &&
              co_subject_cmp(up->subject, co_str(*fp, p, k)) < 0)))
                return ENC_OK; /* an earlier one in the instant's order */
        if (k >= 0 && !co_set_str(p, fp, k, up->subject))
                return ENC_ERR_NOMEM;
        co_xt_t *xt = co_xt(*fp, p, i);
        xt->x = co_normalise(p->comp[i].kind, up);
        xt->t = up->event_time;
        return ENC_OK;
}

static enc_err_t co_on_update(void *priv, void **state, const enc_update_t *up,
                              enc_emitter_t *em) {
        const co_priv_t *p = priv;
        enc_flat_t *f;
        bool match = false;

        for (int i = 0; i < p->n; i++)
                match |= co_matches(&p->comp[i], up);
        if (!match)
                return ENC_OK;
        /* An expiry due before this update comes first. */
        enc_err_t err = co_on_timer(priv, state, up->event_time, em);
        if (err)
                return err;
        if (!(f = *state)) {
                if (!(f = co_state_new(p)))
                        return ENC_ERR_NOMEM;
                *state = f;
        }
        if (!(co_hdr(f)->flags & CO_LIVE)) {
                co_hdr(f)->flags |= CO_LIVE;
                co_hdr(f)->last_time = up->event_time;
        }
        double old = co_sum(p, f);
        for (int i = 0; i < p->n; i++)
                if (co_matches(&p->comp[i], up)) {
                        err = co_take(p, &f, i, up);
                        *state = f; /* the block may have moved */
                        if (err)
                                return err;
                }
        co_hdr_t *h = co_hdr(f);
        if (up->event_time > h->last_time)
                h->last_time = up->event_time;
        double sum = co_sum(p, f);
        if (sum == old)
                return ENC_OK;

        enc_update_t out;
        memset(&out, 0, sizeof(out));
        out.value = sum;
        out.delta = sum - old;
        out.window_start = out.window_end = up->event_time;
        out.event_time = up->event_time;
        /* The user's cohort (DESIGN): the causing event's, else the
         * latest event's (borrowed from the block, which does not change
         * during the emit), else -- nothing remembered -- the
         * component's. */
        const enc_event_t *ev = enc_emitter_event(em);
        out.cohort = ev                          ? ev->cohort
                     : (h->flags & CO_HAS_EVENT) ? co_str(f, p, 0)
                                                 : up->cohort;
        out.sequence = ++h->seq;
        out.component_cnt = p->n;
        for (int i = 0; i < p->n; i++)
                out.components[i] =
                        (enc_component_t){p->comp[i].label, co_cxt(f, p, i)->x};
        return enc_emit(em, &out);
}

/* ---- state records ----------------------------------------------------
 * v1 (read only): u8 1, varint n, n x double x_i, svarint last_time,
 *     varint seq. Components live; no event remembered.
 * v2 (read only): u8 2, u8 flags (1 live, 2 has_event), varint n, n x
 *     (double x_i, svarint t or INT64_MIN for never, str subject),
 *     svarint last_time, varint seq, svarint event_time, str cohort.
 * v3: the block's bytes (co_hdr_t, the slots, the strings; see DESIGN and
 *     the structs above). v1 and v2 records are parsed and built into a
 *     v3 block. */

#define CO_TIME_MAX ((int64_t)1 << 50)
#define CO_SEQ_MAX  ((int64_t)1 << 50)

static bool co_time_ok(int64_t t) {
        return t >= -CO_TIME_MAX && t <= CO_TIME_MAX;
}

/* True if @p d[0..len) (untrusted, maybe unaligned: read by copying) is a
 * v3 block of this instance in its canonical form: every field in range,
 * padding zero, a cleared part all zero, strings in their order with no
 * gap, each valid (enc_sig_str_ok) with its NUL, nothing after them. */
static bool co_check(const co_priv_t *p, const uint8_t *d, size_t len) {
        co_hdr_t h;
        if (len < p->str_off)
                return false;
        memcpy(&h, d, sizeof(h));
        bool live = h.flags & CO_LIVE;
        if (h.ver != CO_STATE_V3 || !h.flags ||
            h.flags > (CO_LIVE | CO_HAS_EVENT) || h.n != p->n ||
            h.any != p->any || h.pad0 || h.pad1 || !co_time_ok(h.last_time) ||
            h.seq < 0 || h.seq > CO_SEQ_MAX || !co_time_ok(h.event_time) ||
            (!live && (h.last_time || h.seq)) ||
            (!(h.flags & CO_HAS_EVENT) &&
             (h.event_time || h.cohort.off || h.cohort.len)))
                return false;
        for (int i = 0; i < p->n; i++) {
                co_xt_t xt;
                memcpy(&xt, d + p->slot[i], sizeof(xt));
                if (!isfinite(xt.x) ||
                    (xt.t != CO_NEVER && !co_time_ok(xt.t)) ||
                    (!live && (xt.x != 0 || signbit(xt.x) ||
                               xt.t != CO_NEVER)))
                        return false;
        }
        size_t at = p->str_off;
        for (int k = 0; k < p->nstr; k++) {
                co_sref_t r;
                memcpy(&r, d + p->ref[k], sizeof(r));
                if (!r.off) {
                        if (r.len)
                                return false;
                        continue;
                }
                if ((k && !live) || r.off != at ||
                    r.len > (k ? ENC_ID_MAX : ENC_LABEL_MAX) ||
                    r.len >= len - at || d[at + r.len] ||
                    !enc_sig_str_ok(d + at, r.len))
                        return false;
                at += (size_t)r.len + 1;
        }
        return at == len;
}

static enc_err_t co_state_encode(void *priv, const void *state,
                                 enc_buf_t *out) {
        return enc_flat_encode(state, out);
}

/* Reads a v1 or v2 record into a new v3 block (the migration). */
static enc_err_t co_migrate(const co_priv_t *p, const uint8_t *buf,
                            size_t len, enc_flat_t **fp) {
        const uint8_t *q = buf, *end = buf + len;
        uint8_t ver, flags = CO_LIVE;
        uint64_t n, seq;
        int64_t last_time, event_time = 0;
        double x[ENC_COMPONENTS_MAX];
        int64_t t[ENC_COMPONENTS_MAX];
        const char *s[CO_STRS] = {NULL}; /* string k, borrowed from buf */
        size_t sl[CO_STRS] = {0};

        if (!enc_get_u8(&q, end, &ver) ||
            (ver != ENC_SIG_STATE_V1 && ver != CO_STATE_V2) ||
            (ver == CO_STATE_V2 &&
             (!enc_get_u8(&q, end, &flags) || flags > 3 || !flags)) ||
            !enc_get_varint(&q, end, &n) || n != (uint64_t)p->n)
                return ENC_ERR_CORRUPT;
        for (int i = 0; i < p->n; i++) {
                const char *v;
                size_t vl;
                if (!enc_get_double(&q, end, &x[i]) || !isfinite(x[i]))
                        return ENC_ERR_CORRUPT;
                /* v1 kept no order: any update may replace x_i. */
                t[i] = CO_NEVER;
                if (ver == ENC_SIG_STATE_V1)
                        continue;
                if (!enc_get_svarint(&q, end, &t[i]) ||
                    (t[i] != CO_NEVER && !co_time_ok(t[i])) ||
                    !enc_sig_strref_get(&q, end, ENC_ID_MAX, &v, &vl) ||
                    (v && !p->comp[i].any_subject))
                        return ENC_ERR_CORRUPT;
                if (v) {
                        s[p->str_of[i]] = v;
                        sl[p->str_of[i]] = vl;
                }
        }
        if (!enc_get_svarint(&q, end, &last_time) || !co_time_ok(last_time) ||
            !enc_get_varint(&q, end, &seq) || seq > (uint64_t)CO_SEQ_MAX)
                return ENC_ERR_CORRUPT;
        if (ver == CO_STATE_V2 &&
            (!enc_get_svarint(&q, end, &event_time) ||
             !co_time_ok(event_time) ||
             !enc_sig_strref_get(&q, end, ENC_LABEL_MAX, &s[0], &sl[0]) ||
             (!(flags & CO_HAS_EVENT) && (s[0] || event_time))))
                return ENC_ERR_CORRUPT;
        if (q != end)
                return ENC_ERR_CORRUPT;

        size_t total = p->str_off; /* at most str_off + len */
        for (int k = 0; k < p->nstr; k++)
                total += s[k] ? sl[k] + 1 : 0;
        enc_flat_t *f = enc_flat_new(total);
        if (!f)
                return ENC_ERR_NOMEM;
        co_hdr_t *h = co_hdr(f);
        h->ver = CO_STATE_V3;
        h->flags = flags;
        h->n = (uint8_t)p->n;
        h->any = p->any;
        h->last_time = last_time;
        h->seq = (int64_t)seq;
        h->event_time = event_time;
        for (int i = 0; i < p->n; i++)
                *co_xt(f, p, i) = (co_xt_t){x[i], t[i]};
        size_t at = p->str_off;
        for (int k = 0; k < p->nstr; k++) {
                if (!s[k])
                        continue;
                if (sl[k])
                        memcpy(f->d + at, s[k], sl[k]); /* NUL: zeroed */
                *co_ref(f, p, k) = (co_sref_t){(uint32_t)at, (uint32_t)sl[k]};
                at += sl[k] + 1;
        }
        /* What v3 adds to v2's checks (a part that is not live is all
         * zero) every v2 writer met; a record that breaks it was never
         * written, and is refused rather than stored non-canonical. */
        if (!co_check(p, f->d, f->len)) {
                enc_flat_free(f);
                return ENC_ERR_CORRUPT;
        }
        *fp = f;
        return ENC_OK;
}

static enc_err_t co_state_decode(void *priv, const uint8_t *buf, size_t len,
                                 void **statep) {
        const co_priv_t *p = priv;
        enc_flat_t *f = NULL;
        *statep = NULL;
        if (!len)
                return ENC_ERR_CORRUPT;
        if (buf[0] == ENC_SIG_STATE_V1 || buf[0] == CO_STATE_V2) {
                enc_err_t err = co_migrate(p, buf, len, &f);
                if (err)
                        return err;
        } else {
                if (!co_check(p, buf, len))
                        return ENC_ERR_CORRUPT;
                if (!(f = enc_flat_copy(buf, len)))
                        return ENC_ERR_NOMEM;
        }
        *statep = f;
        return ENC_OK;
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
