/*
 * test_signals_diff.c -- the incremental signals against a naive
 * recomputation from the whole event log.
 *
 * A six-week log for 300 users is generated from a fixed seed (mixed
 * sources, short and long plays, gaps around the session gap, plays at
 * 23:59:59.999 and 00:00:00.000, ties in time). sigtest.h's engine drives
 * active_days, session, discovery_habit and progressive_reward through it
 * in event-time order -- even users with a watermark that advances one
 * timer at a time, odd users with one that jumps to each event -- while
 * round-tripping every state through its record after every step. Then
 * every update is compared, field by field and in order, with what the
 * definitions give when applied to the full log by brute force below:
 * active days counted per day from the set of play days, sessions cut at
 * the gap, discoveries found by scanning all earlier plays, their engaged
 * days and finals, and the posterior of every prefix by direct Gaussian
 * conditioning. None of that code shares anything with signals/.
 * composite (ttl 5 days, all four components) is recomputed from the
 * component updates it was delivered, in delivery order, and the event
 * log: its sums, the user's cohort (the step's event's, else the latest
 * event's within ttl, else the component's) and the any-subject order at
 * one instant; the run counts the composites whose cohort differs from
 * their trigger's, where copying it (the old rule) was wrong.
 */
#include <unistd.h>

#include "sigtest.h"

enum {
        NUSERS = 300,
        NDAYS = 42,
        NARTISTS = 40,
        H = 7, /* discovery horizon */
        L = 5, /* lookback */
        QMS = 30000,
        GAP = 30 * 60000,
};
static const int windows[2] = {3, 7};

/* ---- the log -------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rng(void) { /* splitmix64 */
        uint64_t x = (rng_state += 0x9e3779b97f4a7c15ULL);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
}
static double unif(void) {
        return (double)(rng() >> 11) / 9007199254740992.0;
}
static int64_t randi(int64_t lo, int64_t hi) { /* [lo, hi] */
        return lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
}

typedef struct play_s {
        enc_event_t ev;
        char artist[8], rec[24];
} play_t;

typedef struct ulog_s {
        char id[16];
        play_t *p;
        int n, cap;
} ulog_t;

static const char *const cohorts[3] = {"A", "B", NULL};

static void add_play(ulog_t *u, int64_t t, int favourite, const char **cohort,
                     int *recs) {
        if (u->n == u->cap) {
                u->cap = u->cap ? 2 * u->cap : 64;
                u->p = realloc(u->p, (size_t)u->cap * sizeof(*u->p));
                assert_non_null(u->p);
        }
        play_t *p = &u->p[u->n++];
        memset(p, 0, sizeof(*p));
        int a = unif() < 0.7 ? (favourite + (int)randi(0, 4)) % NARTISTS
                             : (int)randi(0, NARTISTS - 1);
        snprintf(p->artist, sizeof(p->artist), "ar%02d", a);
        double s = unif();
        enc_source_t src = s < 0.35   ? ENC_SRC_RECOMMENDATION
                           : s < 0.5  ? ENC_SRC_SEARCH
                           : s < 0.7  ? ENC_SRC_LIBRARY
                           : s < 0.85 ? ENC_SRC_PLAYLIST
                           : s < 0.95 ? ENC_SRC_RADIO
                                      : ENC_SRC_OTHER;
        int64_t dur = unif() < 0.03 ? 0 : randi(120000, 300000);
        double m = unif();
        int64_t ms = m < 0.05   ? QMS - 1
                     : m < 0.1  ? QMS
                     : m < 0.35 ? randi(0, QMS - 1)
                                : randi(QMS, dur > QMS ? dur : QMS + 1000);
        if (unif() < 0.02)
                *cohort = cohorts[randi(0, 2)];
        if (src == ENC_SRC_RECOMMENDATION)
                snprintf(p->rec, sizeof(p->rec), "r-%s-%d", u->id, (*recs)++);
        p->ev.event_id = "e";
        p->ev.event_time = t; /* string fields: set by gen_user */
        p->ev.ms_played = ms;
        p->ev.track_duration_ms = dur;
        p->ev.reason_end = (enc_reason_end_t)randi(0, ENC_END__CNT - 1);
        p->ev.source = src;
        p->ev.surface = "home";
        p->ev.cohort = *cohort;
}

static void gen_user(ulog_t *u, int idx) {
        const char *cohort = cohorts[idx % 3];
        int recs = 0, favourite = (int)randi(0, NARTISTS - 1);
        double active = 0.1 + 0.7 * unif();
        int64_t cursor = DAY(0);
        snprintf(u->id, sizeof(u->id), "u%03d", idx);
        for (int d = 0; d < NDAYS; d++) {
                if (unif() >= active)
                        continue;
                if (unif() < 0.08 && cursor < DAY(d + 1) - 1) {
                        /* The last and the first millisecond of a day. */
                        add_play(u, DAY(d + 1) - 1, favourite, &cohort, &recs);
                        add_play(u, DAY(d + 1), favourite, &cohort, &recs);
                        cursor = DAY(d + 1);
                        continue;
                }
                int64_t t = DAY(d) + randi(0, 20 * HOUR);
                if (t < cursor)
                        t = cursor;
                for (int s = (int)randi(1, 3); s > 0; s--) {
                        for (int k = (int)randi(1, 8); k > 0; k--) {
                                add_play(u, t, favourite, &cohort, &recs);
                                double g = unif();
                                t += g < 0.05   ? 0 /* same instant */
                                     : g < 0.35 ? randi(1, 5 * MIN)
                                     : g < 0.85 ? randi(2 * MIN, 25 * MIN)
                                                : randi(GAP - 2, GAP + 2);
                        }
                        t += randi(1 * HOUR, 6 * HOUR);
                }
                cursor = t;
        }
        /* u->p moved while it grew: point the strings at their final
         * place only now. */
        for (int i = 0; i < u->n; i++) {
                play_t *p = &u->p[i];
                p->ev.user_id = u->id;
                p->ev.track_id = p->artist;
                p->ev.artist_id = p->artist;
                p->ev.recommendation_id = p->rec[0] ? p->rec : NULL;
        }
}

/* ---- expected updates ----------------------------------------------- */

typedef struct exp_s {
        const char *signal;
        char subject[16], rec[24];
        const char *cohort;
        int64_t ws, we, t;
        double value, delta;
        int32_t obs, hor;
        bool final;
        int64_t seq;
        bool has_est;
        double mean, var;
        int ncomp;
        double comp[5];
        /* emission order: time, then timers before events, then key */
        int phase;
        int64_t order;
} exp_t;

typedef struct exps_s {
        exp_t *v;
        int n, cap;
} exps_t;

static exp_t *exp_add(exps_t *x) {
        if (x->n == x->cap) {
                x->cap = x->cap ? 2 * x->cap : 256;
                x->v = realloc(x->v, (size_t)x->cap * sizeof(*x->v));
                assert_non_null(x->v);
        }
        exp_t *e = &x->v[x->n++];
        memset(e, 0, sizeof(*e));
        return e;
}

static int exp_cmp(const void *a, const void *b) {
        const exp_t *x = a, *y = b;
        if (x->t != y->t)
                return x->t < y->t ? -1 : 1;
        if (x->phase != y->phase)
                return x->phase - y->phase;
        int c = strcmp(x->subject, y->subject);
        if (x->phase == 0 && c)
                return c;
        return x->order < y->order ? -1 : x->order > y->order;
}

static bool qualified(const play_t *p) {
        return p->ev.ms_played >= QMS;
}
static int64_t day_of(const play_t *p) {
        return enc_day_of(p->ev.event_time);
}

/* active_days: from the set Q of days with a qualified play. A window of
 * N days ending on day E holds the days of Q in [E-N+1, E]. The value goes
 * up on the first qualified play of a day; at the start of day E (before
 * any play of E) a window loses day E-N if it is in Q. */
static void naive_active_days(const ulog_t *u, exps_t *out) {
        /* Sessions of the last day can run two days past it. */
        enum { DMAX = NDAYS + 8 };
        int64_t first[DMAX];
        const char *cohort_of_first[DMAX];
        bool q[DMAX] = {false};
        int64_t seq[2] = {0, 0};
        for (int d = 0; d < DMAX; d++)
                first[d] = -1;
        for (int i = 0; i < u->n; i++) {
                int64_t d = day_of(&u->p[i]) - ST_EPOCH_DAY;
                assert_true(d >= 0 && d < DMAX);
                if (qualified(&u->p[i]) && first[d] < 0) {
                        first[d] = u->p[i].ev.event_time;
                        cohort_of_first[d] = u->p[i].ev.cohort;
                        q[d] = true;
                }
        }
#define Q(d) ((d) >= 0 && (d) < DMAX && q[d])
        for (int e = 0; e < DMAX + 8; e++) {
                /* Timer at the start of day e: the watermark caused it, so
                 * it carries the cohort of the user's latest play before
                 * it, qualified or not. */
                const char *cohort = NULL;
                int64_t tb = DAY(e);
                for (int i = 0; i < u->n && u->p[i].ev.event_time < tb; i++)
                        cohort = u->p[i].ev.cohort;
                for (int w = 0; w < 2; w++) {
                        int n = windows[w];
                        if (!Q(e - n))
                                continue;
                        int v = 0;
                        for (int d = e - n + 1; d <= e - 1; d++)
                                v += Q(d);
                        exp_t *x = exp_add(out);
                        x->signal = "active_days";
                        snprintf(x->subject, sizeof(x->subject), "%dd", n);
                        x->cohort = cohort;
                        x->ws = DAY(e - n + 1);
                        x->we = DAY(e + 1);
                        x->t = tb;
                        x->value = v;
                        x->delta = -1;
                        x->obs = x->hor = n;
                        x->final = v == 0;
                        x->seq = ++seq[w];
                        x->phase = 0;
                        x->order = w;
                }
                int live = 0;
                for (int d = e - windows[1] + 1; d <= e - 1; d++)
                        live += Q(d);
                if (!live)
                        seq[0] = seq[1] = 0; /* state freed */
                /* The first qualified play of day e. */
                if (e < DMAX && first[e] >= 0) {
                        for (int w = 0; w < 2; w++) {
                                int n = windows[w], v = 0;
                                for (int d = e - n + 1; d <= e; d++)
                                        v += Q(d);
                                exp_t *x = exp_add(out);
                                x->signal = "active_days";
                                snprintf(x->subject, sizeof(x->subject), "%dd",
                                         n);
                                x->cohort = cohort_of_first[e];
                                x->ws = DAY(e - n + 1);
                                x->we = DAY(e + 1);
                                x->t = first[e];
                                x->value = v;
                                x->delta = 1;
                                x->obs = x->hor = n;
                                x->seq = ++seq[w];
                                x->phase = 1;
                                x->order = w;
                        }
                }
        }
#undef Q
}

/* session: cut the plays where the gap to the previous is >= GAP. */
static void naive_session(const ulog_t *u, exps_t *out) {
        for (int i = 0, j; i < u->n; i = j) {
                int64_t plays = 0, skips = 0, done = 0, ms = 0;
                for (j = i; j < u->n; j++) {
                        const enc_event_t *e = &u->p[j].ev;
                        if (j > i &&
                            e->event_time - u->p[j - 1].ev.event_time >= GAP)
                                break;
                        plays++;
                        ms += e->ms_played;
                        skips += (e->reason_end == ENC_END_FORWARD ||
                                  e->reason_end == ENC_END_BACK) &&
                                 e->ms_played < 30000;
                        done += e->reason_end == ENC_END_TRACK_DONE ||
                                (e->track_duration_ms > 0 &&
                                 (double)e->ms_played >=
                                         0.9 * (double)e->track_duration_ms);
                }
                int64_t t0 = u->p[i].ev.event_time,
                        t1 = u->p[j - 1].ev.event_time;
                exp_t *x = exp_add(out);
                x->signal = "session";
                x->cohort = u->p[j - 1].ev.cohort;
                x->ws = t0;
                x->we = t1;
                x->t = t1 + GAP;
                x->value = x->delta = (double)done / plays;
                x->final = true;
                x->seq = 1;
                x->ncomp = 5;
                x->comp[0] = ms / 60000.0;
                x->comp[1] = plays;
                x->comp[2] = (double)skips / plays;
                x->comp[3] = (double)done / plays;
                x->comp[4] = (t1 - t0) / 60000.0;
        }
}

/* A discovery found by brute force. */
typedef struct disc_s {
        const play_t *p; /* the discovering play */
        int idx;
        int64_t d0;
        uint8_t z[H];
} disc_t;

/* discovery_habit: play i is a discovery if it qualifies, came from a
 * recommendation, no discovery of its artist is still open at its time
 * (one found earlier with d0 + H > its day) and no earlier qualified play
 * of the artist (earlier in the log) falls on days d-L..d. */
static int naive_discoveries(const ulog_t *u, disc_t *ds, int max) {
        int n = 0;
        for (int i = 0; i < u->n; i++) {
                const play_t *p = &u->p[i];
                int64_t d = day_of(p);
                if (!qualified(p) || p->ev.source != ENC_SRC_RECOMMENDATION)
                        continue;
                bool blocked = false;
                for (int k = 0; k < n; k++)
                        if (!strcmp(ds[k].p->artist, p->artist) &&
                            d < ds[k].d0 + H)
                                blocked = true;
                for (int j = 0; j < i && !blocked; j++)
                        if (qualified(&u->p[j]) &&
                            !strcmp(u->p[j].artist, p->artist) &&
                            day_of(&u->p[j]) >= d - L)
                                blocked = true;
                if (blocked)
                        continue;
                assert_true(n < max);
                ds[n] = (disc_t){p, i, d, {0}};
                ds[n].z[0] = 1;
                for (int j = i + 1; j < u->n; j++)
                        if (qualified(&u->p[j]) &&
                            !strcmp(u->p[j].artist, p->artist) &&
                            day_of(&u->p[j]) > d && day_of(&u->p[j]) < d + H)
                                ds[n].z[day_of(&u->p[j]) - d] = 1;
                n++;
        }
        return n;
}

static void naive_discovery_habit(const ulog_t *u, const disc_t *ds, int n,
                                  exps_t *out) {
        for (int k = 0; k < n; k++) {
                const disc_t *dd = &ds[k];
                int value = 0, seq = 0;
                for (int day = 0; day < H; day++) {
                        if (!dd->z[day])
                                continue;
                        /* Emitted at the first qualified play of the artist
                         * that day (the discovering play for day 0). */
                        int at = dd->idx;
                        if (day > 0)
                                for (at = dd->idx + 1;; at++)
                                        if (qualified(&u->p[at]) &&
                                            !strcmp(u->p[at].artist,
                                                    dd->p->artist) &&
                                            day_of(&u->p[at]) == dd->d0 + day)
                                                break;
                        value++;
                        exp_t *x = exp_add(out);
                        x->signal = "discovery_habit";
                        snprintf(x->subject, sizeof(x->subject), "%s",
                                 dd->p->artist);
                        snprintf(x->rec, sizeof(x->rec), "%s", dd->p->rec);
                        x->cohort = dd->p->ev.cohort;
                        x->ws = enc_day_start(dd->d0);
                        x->we = enc_day_start(dd->d0 + H);
                        x->t = u->p[at].ev.event_time;
                        x->value = value;
                        x->delta = 1;
                        x->obs = day; /* days 0..day-1 have ended */
                        x->hor = H;
                        x->seq = ++seq;
                        x->phase = 1;
                        x->order = at;
                }
                exp_t *x = exp_add(out);
                *x = out->v[out->n - 2];
                x->t = enc_day_start(dd->d0 + H);
                x->delta = 0;
                x->obs = H;
                x->final = true;
                x->seq = ++seq;
                x->phase = 0;
                x->order = 0;
        }
}

/* ---- progressive_reward by direct conditioning ---------------------- */

static double prior_mu[H], prior_cov[H * H];

/* x = A^-1 b, Gauss-Jordan with partial pivoting. */
static void solve(int n, const double *a_in, const double *b_in, double *x) {
        double a[H * H], b[H];
        memcpy(a, a_in, sizeof(double) * (size_t)(n * n));
        memcpy(b, b_in, sizeof(double) * (size_t)n);
        for (int c = 0; c < n; c++) {
                int piv = c;
                for (int r = c + 1; r < n; r++)
                        if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
                                piv = r;
                for (int k = 0; k < n; k++) {
                        double t = a[c * n + k];
                        a[c * n + k] = a[piv * n + k];
                        a[piv * n + k] = t;
                }
                double t = b[c];
                b[c] = b[piv];
                b[piv] = t;
                for (int r = 0; r < n; r++) {
                        if (r == c)
                                continue;
                        double f = a[r * n + c] / a[c * n + c];
                        for (int k = 0; k < n; k++)
                                a[r * n + k] -= f * a[c * n + k];
                        b[r] -= f * b[c];
                }
        }
        for (int i = 0; i < n; i++)
                x[i] = b[i] / a[i * n + i];
}

/* E and Var of sum(z) given z_0..z_{k-1}; days with zero prior variance
 * are known and not conditioned on. */
static void posterior(int k, const uint8_t *z, double *mean, double *var) {
        const double *c = prior_cov;
        int o[H], no = 0;
        double coo[H * H], d[H], y[H];
        for (int j = 0; j < k; j++)
                if (c[j * H + j] > 1e-12)
                        o[no++] = j;
        for (int a = 0; a < no; a++) {
                for (int b = 0; b < no; b++)
                        coo[a * no + b] = c[o[a] * H + o[b]];
                d[a] = z[o[a]] - prior_mu[o[a]];
        }
        if (no)
                solve(no, coo, d, y);
        double m = 0, v = 0;
        for (int j = 0; j < k; j++)
                m += z[j];
        for (int r = k; r < H; r++) {
                m += prior_mu[r];
                for (int a = 0; a < no; a++)
                        m += c[r * H + o[a]] * y[a];
                for (int s = k; s < H; s++)
                        v += c[r * H + s];
        }
        for (int s = k; s < H && no; s++) {
                double col[H], q[H];
                for (int a = 0; a < no; a++)
                        col[a] = c[o[a] * H + s];
                solve(no, coo, col, q);
                for (int r = k; r < H; r++)
                        for (int a = 0; a < no; a++)
                                v -= c[r * H + o[a]] * q[a];
        }
        *mean = m;
        *var = v;
}

static void naive_progressive(const disc_t *ds, int n, exps_t *out) {
        for (int i = 0; i < n; i++) {
                double prev = 0;
                for (int k = 1; k <= H; k++) {
                        double m, v;
                        posterior(k, ds[i].z, &m, &v);
                        if (k == H)
                                v = 0;
                        exp_t *x = exp_add(out);
                        x->signal = "progressive_reward";
                        snprintf(x->subject, sizeof(x->subject), "%s",
                                 ds[i].p->artist);
                        snprintf(x->rec, sizeof(x->rec), "%s", ds[i].p->rec);
                        x->cohort = ds[i].p->ev.cohort;
                        x->ws = enc_day_start(ds[i].d0);
                        x->we = enc_day_start(ds[i].d0 + H);
                        x->t = enc_day_start(ds[i].d0 + k);
                        x->value = x->mean = m;
                        x->var = v;
                        x->has_est = true;
                        x->delta = m - prev;
                        x->obs = k;
                        x->hor = H;
                        x->final = k == H;
                        x->seq = k;
                        x->phase = 0;
                        x->order = ds[i].d0;
                        prev = m;
                }
        }
}

/* ---- composite from its inputs ------------------------------------- */

/* composite is recomputed from the component updates the engine emitted
 * (each checked above against its own brute force) and the event log:
 * its definition, the cohort rule and the same-instant order applied
 * step by step. The updates are taken in the order they reached
 * composite (sigtest.h's inlog), which is not the output's: a
 * discovery_habit final reaches composite after the progressive_reward
 * updates it caused. A step is the timers due before an event, or the
 * event; the test loop records where each starts in that log. */
enum { CO_N = 4, CO_TTL_DAYS = 5 };
static const char *const co_sig[CO_N] = {"active_days", "session",
                                         "discovery_habit",
                                         "progressive_reward"};
static const double co_w[CO_N] = {0.4, 0.3, 0.2, 0.1};

typedef struct step_s {
        int from;            /* first entry of the step in eng->inlog */
        const play_t *event; /* NULL: a timer step */
} step_t;

typedef struct naive_co_s {
        bool live, has_ev;
        int64_t last, ev_time, seq;
        const char *ev_cohort;
        double x[CO_N];
        int64_t slot_t[CO_N];
        const char *slot_subj[CO_N];
        bool slot_set[CO_N];
} naive_co_t;

static void co_expire(naive_co_t *c, int64_t t) {
        const int64_t ttl = CO_TTL_DAYS * (int64_t)ENC_MS_PER_DAY;
        if (c->live && t >= c->last + ttl) {
                memset(c->x, 0, sizeof(c->x));
                memset(c->slot_set, 0, sizeof(c->slot_set));
                c->live = false;
                c->seq = 0;
        }
        if (c->has_ev && t >= c->ev_time + ttl)
                c->has_ev = false;
}

static double co_sum(const naive_co_t *c) {
        double s = 0;
        for (int i = 0; i < CO_N; i++)
                s += co_w[i] * c->x[i];
        return s;
}

static bool streq0(const char *a, const char *b);

/* *differs counts the composites whose cohort is not the triggering
 * component update's (where copying it, the old rule, was wrong). */
static void naive_composite(const st_list_t *out, const int *inlog, int nin,
                            const step_t *steps, int nsteps, exps_t *want,
                            int64_t *differs) {
        naive_co_t c;
        memset(&c, 0, sizeof(c));
        for (int k = 0; k < nsteps; k++) {
                int end = k + 1 < nsteps ? steps[k + 1].from : nin;
                const play_t *ev = steps[k].event;
                for (int j = steps[k].from; j < end; j++) {
                        const enc_update_t *u = &out->v[inlog[j]]->u;
                        int i;
                        for (i = 0; i < CO_N; i++)
                                if (!strcmp(u->signal, co_sig[i]))
                                        break;
                        if (i == CO_N || (i == 0 && strcmp(u->subject, "7d")))
                                continue; /* not a component */
                        co_expire(&c, u->event_time);
                        if (!c.live) {
                                c.live = true;
                                c.last = u->event_time;
                        }
                        double old = co_sum(&c);
                        /* any subject: the latest by (time, subject) */
                        bool take = i == 0 || !c.slot_set[i] ||
                                    u->event_time > c.slot_t[i] ||
                                    (u->event_time == c.slot_t[i] &&
                                     strcmp(u->subject ? u->subject : "",
                                            c.slot_subj[i]) >= 0);
                        if (take) {
                                c.x[i] = i == 1   ? u->value
                                         : i == 3 ? u->estimate_mean /
                                                            u->horizon_days
                                                  : u->value /
                                                            u->horizon_days;
                                c.slot_set[i] = true;
                                c.slot_t[i] = u->event_time;
                                c.slot_subj[i] = u->subject ? u->subject : "";
                        }
                        if (u->event_time > c.last)
                                c.last = u->event_time;
                        double sum = co_sum(&c);
                        if (sum == old)
                                continue;
                        exp_t *x = exp_add(want);
                        x->signal = "composite";
                        /* the user's cohort: the step's event's, else the
                         * latest event's, else the component's */
                        x->cohort = ev         ? ev->ev.cohort
                                    : c.has_ev ? c.ev_cohort
                                               : u->cohort;
                        *differs += !streq0(x->cohort, u->cohort);
                        x->ws = x->we = x->t = u->event_time;
                        x->value = sum;
                        x->delta = sum - old;
                        x->seq = ++c.seq;
                        x->ncomp = CO_N;
                        memcpy(x->comp, c.x, sizeof(c.x));
                }
                if (ev) {
                        co_expire(&c, ev->ev.event_time);
                        c.has_ev = true;
                        c.ev_time = ev->ev.event_time;
                        c.ev_cohort = ev->ev.cohort;
                }
        }
}

/* ---- comparison ----------------------------------------------------- */

static int mismatches;

static bool streq0(const char *a, const char *b) {
        return a && b ? !strcmp(a, b) : a == b;
}

static bool near(double a, double b, double tol) {
        return fabs(a - b) <= tol * (1 + fabs(b));
}

static void compare(const char *user, const char *signal, exps_t *want,
                    const st_list_t *got, int from) {
        const double tol = strcmp(signal, "progressive_reward") ? 1e-12 : 1e-9;
        int n = 0;
        /* composite's expectations are built in emission order already */
        if (strcmp(signal, "composite"))
                qsort(want->v, (size_t)want->n, sizeof(exp_t), exp_cmp);
        for (int i = from; i < got->n; i++) {
                const enc_update_t *g = &got->v[i]->u;
                if (strcmp(g->signal, signal))
                        continue;
                if (n >= want->n) {
                        print_error("%s %s: extra update %d at %lld\n", user,
                                    signal, n, (long long)g->event_time);
                        mismatches++;
                        return;
                }
                const exp_t *w = &want->v[n++];
                bool ok =
                        !strcmp(g->user_id, user) &&
                        streq0(g->subject, w->subject[0] ? w->subject : NULL) &&
                        streq0(g->recommendation_id,
                               w->rec[0] ? w->rec : NULL) &&
                        streq0(g->cohort, w->cohort) &&
                        g->window_start == w->ws && g->window_end == w->we &&
                        g->event_time == w->t &&
                        near(g->value, w->value, tol) &&
                        near(g->delta, w->delta, tol) &&
                        g->observed_days == w->obs &&
                        g->horizon_days == w->hor && g->final == w->final &&
                        g->sequence == w->seq &&
                        g->has_estimate == w->has_est &&
                        g->component_cnt == w->ncomp;
                if (ok && w->has_est)
                        ok = near(g->estimate_mean, w->mean, tol) &&
                             near(g->estimate_variance, w->var, tol);
                for (int c = 0; ok && c < w->ncomp; c++)
                        ok = near(g->components[c].value, w->comp[c], tol);
                if (!ok) {
                        print_error("%s %s #%d: got subject %s t %lld value "
                                    "%.17g delta %.17g seq %lld obs %d final "
                                    "%d cohort %s; want subject %s t %lld "
                                    "value %.17g delta %.17g seq %lld obs %d "
                                    "final %d cohort %s\n",
                                    user, signal, n - 1,
                                    g->subject ? g->subject : "-",
                                    (long long)g->event_time, g->value,
                                    g->delta, (long long)g->sequence,
                                    g->observed_days, g->final,
                                    g->cohort ? g->cohort : "-",
                                    w->subject[0] ? w->subject : "-",
                                    (long long)w->t, w->value, w->delta,
                                    (long long)w->seq, w->obs, w->final,
                                    w->cohort ? w->cohort : "-");
                        if (++mismatches > 10)
                                fail();
                }
        }
        if (n != want->n) {
                print_error("%s %s: %d updates, want %d\n", user, signal, n,
                            want->n);
                mismatches++;
        }
}

/* ---- the test ------------------------------------------------------- */

static int id_cmp(const void *a, const void *b) {
        return memcmp(a, b, 33);
}

static void test_incremental_equals_naive(void **unused) {
        /* The prior: day 0 known, then the default prior's model. */
        char json[16384];
        size_t off = 0;
        for (int k = 0; k < H; k++) {
                double g = 0.3 + 0.7 * exp(-(k - 1) / 10.0);
                prior_mu[k] = k ? 0.25 * g : 1;
                for (int j = 0; j < H; j++) {
                        double gj = 0.3 + 0.7 * exp(-(j - 1) / 10.0);
                        prior_cov[k * H + j] =
                                !k || !j ? 0
                                : k == j ? 0.25 * g - 0.0625 * g * g
                                         : 0.0375 * g * gj;
                }
        }
        off += (size_t)snprintf(json + off, sizeof(json) - off,
                                "{\"horizon_days\":%d,\"mu\":[", H);
        for (int k = 0; k < H; k++)
                off += (size_t)snprintf(json + off, sizeof(json) - off,
                                        "%s%.17g", k ? "," : "", prior_mu[k]);
        off += (size_t)snprintf(json + off, sizeof(json) - off, "],\"cov\":[");
        for (int k = 0; k < H; k++) {
                off += (size_t)snprintf(json + off, sizeof(json) - off, "%s[",
                                        k ? "," : "");
                for (int j = 0; j < H; j++)
                        off += (size_t)snprintf(json + off, sizeof(json) - off,
                                                "%s%.17g", j ? "," : "",
                                                prior_cov[k * H + j]);
                off += (size_t)snprintf(json + off, sizeof(json) - off, "]");
        }
        snprintf(json + off, sizeof(json) - off, "]}");
        char path[] = "/tmp/encore-diff-prior-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
        close(fd);

        char kv[128];
        snprintf(kv, sizeof(kv), "signal.progressive_reward.1.prior.file=%s",
                 path);
        enc_conf_t *conf =
                st_conf("signals=active_days:1,session:1,discovery_habit:1,"
                        "progressive_reward:1,composite:1",
                        "signal.composite.1.components=active_days/7d=0.4,"
                        "session=0.3,discovery_habit=0.2,"
                        "progressive_reward=0.1",
                        "signal.composite.1.ttl.days=5",
                        "signal.active_days.1.windows=3,7",
                        "signal.discovery_habit.1.horizon.days=7",
                        "signal.discovery_habit.1.lookback.days=5", kv, NULL);
        st_engine_t *eng = st_engine_new(conf);
        eng->mutate = 2; /* every state record, two corruptions each */
        eng->watch = eng->n - 1; /* what reaches composite, in order */
        unlink(path);

        char(*ids)[33] = NULL;
        size_t nids = 0, capids = 0;
        int64_t events = 0, discoveries = 0, engaged = 0, composites = 0,
                cohort_moves = 0;
        rng_state = 20240101;
        for (int ui = 0; ui < NUSERS; ui++) {
                ulog_t log = {0};
                gen_user(&log, ui);
                st_user_t u;
                memset(&u, 0, sizeof(u));
                snprintf(u.id, sizeof(u.id), "%s", log.id);
                bool tight = ui % 2 == 0;
                step_t *steps = calloc(2 * (size_t)log.n + 1, sizeof(*steps));
                int nsteps = 0;
                assert_non_null(steps);
                for (int i = 0; i < log.n; i++) {
                        steps[nsteps++] = (step_t){eng->nin, NULL};
                        st_timers_upto(eng, &u, log.p[i].ev.event_time, tight);
                        steps[nsteps++] = (step_t){eng->nin, &log.p[i]};
                        st_event(eng, &u, &log.p[i].ev, tight);
                }
                steps[nsteps++] = (step_t){eng->nin, NULL};
                st_timers_upto(eng, &u, DAY(NDAYS + 30), tight);
                for (int i = 0; i < eng->n; i++)
                        assert_null(u.state[i]); /* everything expired */
                events += log.n;

                exps_t ad = {0}, se = {0}, dh = {0}, pr = {0}, co = {0};
                disc_t ds[512];
                int nd = naive_discoveries(&log, ds, 512);
                naive_active_days(&log, &ad);
                naive_session(&log, &se);
                naive_discovery_habit(&log, ds, nd, &dh);
                naive_progressive(ds, nd, &pr);
                compare(log.id, "active_days", &ad, &eng->out, 0);
                compare(log.id, "session", &se, &eng->out, 0);
                compare(log.id, "discovery_habit", &dh, &eng->out, 0);
                compare(log.id, "progressive_reward", &pr, &eng->out, 0);
                naive_composite(&eng->out, eng->inlog, eng->nin, steps, nsteps,
                                &co, &cohort_moves);
                compare(log.id, "composite", &co, &eng->out, 0);
                composites += co.n;
                free(steps);
                free(co.v);
                discoveries += nd;
                for (int k = 0; k < dh.n; k++)
                        engaged += !dh.v[k].final && dh.v[k].obs > 1;

                for (int i = 0; i < eng->out.n; i++) {
                        if (nids == capids) {
                                capids = capids ? 2 * capids : 4096;
                                ids = realloc(ids, capids * sizeof(*ids));
                                assert_non_null(ids);
                        }
                        memcpy(ids[nids++], eng->out.v[i]->u.update_id, 33);
                }
                st_list_clear(&eng->out);
                eng->nin = 0;
                free(ad.v);
                free(se.v);
                free(dh.v);
                free(pr.v);
                free(log.p);
        }
        assert_int_equal(mismatches, 0);
        /* The log exercised what it should. */
        assert_true(events > 20000);
        assert_true(discoveries > 1000);
        assert_true(engaged > 500);
        assert_true(composites > 20000);
        assert_true(cohort_moves > 100);
        /* Update ids are unique across every user, signal and key. */
        qsort(ids, nids, sizeof(*ids), id_cmp);
        for (size_t i = 1; i < nids; i++)
                assert_memory_not_equal(ids[i - 1], ids[i], 33);
        print_message("%lld events, %zu updates, %lld discoveries, %lld "
                      "engaged days, %lld composites (%lld with another "
                      "cohort than their trigger's), %lld steps\n",
                      (long long)events, nids, (long long)discoveries,
                      (long long)engaged, (long long)composites,
                      (long long)cohort_moves, (long long)eng->steps);
        free(ids);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_incremental_equals_naive),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
