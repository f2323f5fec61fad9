/*
 * readout.c -- `encore readout`: compare experiment cohorts on the reward
 * stream.
 *
 * DESIGN
 * The unit of analysis is a key: (user, subject) of one signal version --
 * a user for per-user signals, a recommendation's discovery for
 * discovery_habit and progressive_reward. Of each key's updates the latest
 * counts (greatest event_time, then sequence; a later read wins a tie, so
 * the repeats an at-least-once restart writes change nothing); with
 * --final-only the latest final. Keys are grouped by that update's cohort,
 * which by encore's cohort rule (README, "Cohorts") is the arm the reward
 * is credited to. Per cohort: units, distinct users, mean, sample standard
 * deviation, stderr = sd / sqrt(units), a 95% interval from Student's t
 * with units - 1 degrees of freedom, and against a control cohort the
 * difference, the lift (difference / control mean) and the two-sided
 * p-value of Welch's t-test. Keys of one user are not independent (a
 * user's discoveries share the user), so a per-item readout's stderr
 * treats them as if they were: the table shows users next to units so
 * the reader sees how many independent listeners stand behind a figure.
 *
 * For progressive_reward, whose value is the posterior mean of the final
 * discovery_habit value, the latest update of a discovery is the best
 * current estimate of its 60-day outcome: the readout is an early read,
 * and the mean posterior variance says how settled it is (0 once every
 * discovery is final).
 *
 * Statistics: Student's t CDF through the regularized incomplete beta
 * function, I_x(a, b) by its continued fraction (modified Lentz), the
 * quantile by bisection on the CDF. Tested against closed forms (df 1 and
 * 2) and independent high-precision values.
 *
 * The core (enc_readout_t) does no I/O; the command reads the topic with
 * tail.c's reader (assign only, no group, read_committed, ending on the
 * position: consumer/readend.c) and prints.
 *
 * Never: crash or loop on a record it cannot decode (it is counted and
 * reported), or hold more than one entry per key.
 */
#include "readout.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "plugin.h"
#include "replay.h"
#include "tail.h"

/* ---- statistics ----------------------------------------------------- */

#define ENC_BETACF_TINY 1e-300

/* One step of the modified Lentz method with coefficient @p aa: updates
 * @p c and @p d (kept off zero) and returns the factor for the product. */
static double enc_betacf_step(double aa, double *c, double *d) {
        *d = 1 + aa * *d;
        if (fabs(*d) < ENC_BETACF_TINY)
                *d = ENC_BETACF_TINY;
        *c = 1 + aa / *c;
        if (fabs(*c) < ENC_BETACF_TINY)
                *c = ENC_BETACF_TINY;
        *d = 1 / *d;
        return *d * *c;
}

/* The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified
 * Lentz); converges fast for x < (a + 1) / (a + b + 2). */
static double enc_betacf(double a, double b, double x) {
        const double eps = 1e-15, tiny = ENC_BETACF_TINY;
        double qab = a + b, qap = a + 1, qam = a - 1;
        double c = 1, d = 1 - qab * x / qap;
        if (fabs(d) < tiny)
                d = tiny;
        d = 1 / d;
        double h = d;
        for (int m = 1; m <= 1000; m++) {
                int m2 = 2 * m;
                double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
                h *= enc_betacf_step(aa, &c, &d);
                aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
                double del = enc_betacf_step(aa, &c, &d);
                h *= del;
                if (fabs(del - 1) < eps)
                        break;
        }
        return h;
}

double enc_stat_betai(double a, double b, double x) {
        if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1))
                return NAN;
        if (x == 0 || x == 1)
                return x;
        double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) +
                     b * log1p(-x);
        if (x < (a + 1) / (a + b + 2))
                return exp(lbt) * enc_betacf(a, b, x) / a;
        return 1 - exp(lbt) * enc_betacf(b, a, 1 - x) / b;
}

double enc_stat_t_cdf(double t, double df) {
        if (isnan(t) || !(df > 0))
                return NAN;
        if (isinf(t))
                return t > 0 ? 1 : 0;
        /* P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2) */
        double tail = 0.5 * enc_stat_betai(df / 2, 0.5, df / (df + t * t));
        return t >= 0 ? 1 - tail : tail;
}

double enc_stat_t_quantile(double p, double df) {
        if (!(p > 0) || !(p < 1) || !(df > 0))
                return NAN;
        if (p < 0.5)
                return -enc_stat_t_quantile(1 - p, df);
        double lo = 0, hi = 1;
        while (enc_stat_t_cdf(hi, df) < p && hi < 1e300)
                hi *= 2;
        for (int i = 0; i < 2000 && hi - lo > 1e-13 * hi; i++) {
                double mid = 0.5 * (lo + hi);
                if (enc_stat_t_cdf(mid, df) < p)
                        lo = mid;
                else
                        hi = mid;
        }
        return 0.5 * (lo + hi);
}

double enc_stat_welch_p(double mean1, double var1, int64_t n1, double mean2,
                        double var2, int64_t n2, double *df_out) {
        if (df_out)
                *df_out = NAN;
        if (n1 < 2 || n2 < 2)
                return NAN;
        double a = var1 / (double)n1, b = var2 / (double)n2, se2 = a + b;
        if (!(se2 > 0))
                return mean1 == mean2 ? 1 : 0;
        double df = se2 * se2 / (a * a / (double)(n1 - 1) +
                                 b * b / (double)(n2 - 1));
        double t = (mean1 - mean2) / sqrt(se2);
        if (df_out)
                *df_out = df;
        return enc_stat_betai(df / 2, 0.5, df / (df + t * t));
}

/* ---- the aggregation core ------------------------------------------- */

/* One key's latest update. The id is "user\0" then 'n' (no subject) or
 * 's' and the subject: user ids cannot hold NUL, so no two keys share
 * an id. */
typedef struct ro_key_s {
        char *id; /* owned; NULL: empty slot */
        size_t idlen;
        uint64_t hash;
        int32_t version;
        int cohort; /* index into r->cohorts, -1: none */
        int64_t event_time, seq;
        double value, variance;
        bool has_estimate;
} ro_key_t;

#define RO_VERSIONS_MAX 64

struct enc_readout_s {
        char *signal, *control;
        int32_t version;
        bool final_only;
        ro_key_t *keys;
        size_t cap, used;
        char **cohorts;
        int ncohorts, ccap, last_cohort;
        int32_t versions[RO_VERSIONS_MAX];
        int nversions;
        bool versions_overflow;
        int64_t seen;
        enc_readout_row_t *rows;
};

enc_readout_t *enc_readout_new(const enc_readout_opts_t *o) {
        enc_readout_t *r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        r->signal = strdup(o->signal ? o->signal : "");
        r->control = o->control ? strdup(o->control) : NULL;
        r->version = o->version;
        r->final_only = o->final_only;
        r->last_cohort = -1;
        if (!r->signal || (o->control && !r->control)) {
                enc_readout_destroy(r);
                return NULL;
        }
        return r;
}

void enc_readout_destroy(enc_readout_t *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->cap; i++)
                free(r->keys[i].id);
        free(r->keys);
        for (int i = 0; i < r->ncohorts; i++)
                free(r->cohorts[i]);
        free(r->cohorts);
        free(r->rows);
        free(r->signal);
        free(r->control);
        free(r);
}

int64_t enc_readout_seen(const enc_readout_t *r) {
        return r->seen;
}

static uint64_t ro_hash(const char *s, size_t n, int32_t version) {
        uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uint32_t)version;
        for (size_t i = 0; i < n; i++) {
                h ^= (uint8_t)s[i];
                h *= 1099511628211ULL;
        }
        return h ^ (h >> 29);
}

static bool ro_grow(enc_readout_t *r) {
        size_t ncap = r->cap ? r->cap * 2 : 1024;
        ro_key_t *nk = calloc(ncap, sizeof(*nk));
        if (!nk)
                return false;
        for (size_t i = 0; i < r->cap; i++) {
                if (!r->keys[i].id)
                        continue;
                size_t j = r->keys[i].hash & (ncap - 1);
                while (nk[j].id)
                        j = (j + 1) & (ncap - 1);
                nk[j] = r->keys[i];
        }
        free(r->keys);
        r->keys = nk;
        r->cap = ncap;
        return true;
}

/* The index of @p cohort (NULL: -1), interned on first sight. */
static enc_err_t ro_cohort(enc_readout_t *r, const char *cohort, int *idx) {
        if (!cohort) {
                *idx = -1;
                return ENC_OK;
        }
        if (r->last_cohort >= 0 && !strcmp(r->cohorts[r->last_cohort], cohort)) {
                *idx = r->last_cohort;
                return ENC_OK;
        }
        for (int i = 0; i < r->ncohorts; i++)
                if (!strcmp(r->cohorts[i], cohort)) {
                        *idx = r->last_cohort = i;
                        return ENC_OK;
                }
        if (r->ncohorts == ENC_READOUT_COHORTS_MAX)
                return ENC_ERR_TOO_LARGE;
        if (r->ncohorts == r->ccap) {
                int ncap = r->ccap ? r->ccap * 2 : 8;
                char **nc = realloc(r->cohorts, (size_t)ncap * sizeof(*nc));
                if (!nc)
                        return ENC_ERR_NOMEM;
                r->cohorts = nc;
                r->ccap = ncap;
        }
        if (!(r->cohorts[r->ncohorts] = strdup(cohort)))
                return ENC_ERR_NOMEM;
        *idx = r->last_cohort = r->ncohorts++;
        return ENC_OK;
}

static void ro_note_version(enc_readout_t *r, int32_t v) {
        for (int i = 0; i < r->nversions; i++)
                if (r->versions[i] == v)
                        return;
        if (r->nversions == RO_VERSIONS_MAX)
                r->versions_overflow = true;
        else
                r->versions[r->nversions++] = v;
}

enc_err_t enc_readout_add(enc_readout_t *r, const enc_update_t *up) {
        if (!up->signal || strcmp(up->signal, r->signal) || !up->user_id)
                return ENC_OK;
        r->seen++;
        ro_note_version(r, up->signal_version);
        if ((r->version && up->signal_version != r->version) ||
            (r->final_only && !up->final))
                return ENC_OK;
        size_t ul = strlen(up->user_id);
        size_t sl = up->subject ? strlen(up->subject) : 0;
        size_t idlen = ul + 2 + sl;
        char stackid[256], *id = idlen <= sizeof(stackid) ? stackid
                                                         : malloc(idlen);
        if (!id)
                return ENC_ERR_NOMEM;
        memcpy(id, up->user_id, ul);
        id[ul] = '\0';
        id[ul + 1] = up->subject ? 's' : 'n';
        if (sl)
                memcpy(id + ul + 2, up->subject, sl);
        uint64_t h = ro_hash(id, idlen, up->signal_version);
        enc_err_t err = ENC_OK;

        if ((r->used + 1) * 10 > r->cap * 7 && !ro_grow(r)) {
                err = ENC_ERR_NOMEM;
                goto done;
        }
        size_t j = h & (r->cap - 1);
        ro_key_t *k;
        for (;; j = (j + 1) & (r->cap - 1)) {
                k = &r->keys[j];
                if (!k->id || (k->hash == h && k->idlen == idlen &&
                               k->version == up->signal_version &&
                               !memcmp(k->id, id, idlen)))
                        break;
        }
        if (k->id && (up->event_time < k->event_time ||
                      (up->event_time == k->event_time &&
                       up->sequence < k->seq)))
                goto done; /* older than what the key has */
        int cohort;
        if ((err = ro_cohort(r, up->cohort, &cohort)))
                goto done;
        if (!k->id) {
                if (!(k->id = malloc(idlen))) {
                        err = ENC_ERR_NOMEM;
                        goto done;
                }
                memcpy(k->id, id, idlen);
                k->idlen = idlen;
                k->hash = h;
                k->version = up->signal_version;
                r->used++;
        }
        k->cohort = cohort;
        k->event_time = up->event_time;
        k->seq = up->sequence;
        k->value = up->value;
        k->has_estimate = up->has_estimate;
        k->variance = up->has_estimate ? up->estimate_variance : 0;
done:
        if (id != stackid)
                free(id);
        return err;
}

/* Per-cohort sums while computing. */
typedef struct ro_acc_s {
        int64_t n, nvar;
        double sum, ss, varsum;
} ro_acc_t;

/* (cohort, user) pairs, to count distinct users per cohort. */
typedef struct ro_pair_s {
        int cohort;
        const char *user; /* NUL-terminated: the key id's prefix */
} ro_pair_t;

static int ro_pair_cmp(const void *a, const void *b) {
        const ro_pair_t *x = a, *y = b;
        if (x->cohort != y->cohort)
                return x->cohort < y->cohort ? -1 : 1;
        return strcmp(x->user, y->user);
}

/* Row order: the control, then cohorts in byte order, none last. */
static int ro_row_cmp(const void *a, const void *b) {
        const enc_readout_row_t *x = a, *y = b;
        if (x->control != y->control)
                return x->control ? -1 : 1;
        if (!x->cohort || !y->cohort)
                return (x->cohort == NULL) - (y->cohort == NULL);
        return strcmp(x->cohort, y->cohort);
}

static void ro_list_cohorts(const enc_readout_t *r, const ro_acc_t *acc,
                            char *buf, size_t size) {
        size_t off = 0;
        buf[0] = '\0';
        for (int c = 0; c <= r->ncohorts && off < size; c++) {
                if (!acc[c].n)
                        continue;
                off += (size_t)snprintf(buf + off, size - off, "%s%s",
                                        off ? ", " : "",
                                        c < r->ncohorts ? r->cohorts[c]
                                                        : "(none)");
        }
}

enc_err_t enc_readout_compute(enc_readout_t *r, const enc_readout_row_t **rowsp,
                              int *np, int32_t *versionp, char *errstr,
                              size_t errstr_size) {
        int32_t version = r->version;
        if (!r->seen)
                return enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                  "no %s update was read", r->signal);
        if (!version) {
                if (r->nversions > 1 || r->versions_overflow) {
                        char list[256];
                        size_t off = 0;
                        list[0] = '\0';
                        for (int i = 0; i < r->nversions && off < sizeof(list);
                             i++)
                                off += (size_t)snprintf(
                                        list + off, sizeof(list) - off, "%s%d",
                                        i ? ", " : "", r->versions[i]);
                        return enc_seterr(errstr, errstr_size,
                                          ENC_ERR_INVALID_ARG,
                                          "%s has several versions (%s%s): "
                                          "choose one with --version",
                                          r->signal, list,
                                          r->versions_overflow ? ", ..." : "");
                }
                version = r->versions[0];
        }
        int nc = r->ncohorts + 1; /* the last: no cohort */
        ro_acc_t *acc = calloc((size_t)nc, sizeof(*acc));
        ro_pair_t *pairs = r->used ? calloc(r->used, sizeof(*pairs)) : NULL;
        enc_err_t err = ENC_OK;
        size_t np_ = 0;
        if (!acc || (r->used && !pairs)) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        for (size_t i = 0; i < r->cap; i++) {
                const ro_key_t *k = &r->keys[i];
                if (!k->id || k->version != version)
                        continue;
                int c = k->cohort < 0 ? nc - 1 : k->cohort;
                acc[c].n++;
                acc[c].sum += k->value;
                if (k->has_estimate) {
                        acc[c].nvar++;
                        acc[c].varsum += k->variance;
                }
                pairs[np_++] = (ro_pair_t){c, k->id};
        }
        if (!np_) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_INVALID_ARG,
                                 "no %s%s update of version %d was read",
                                 r->final_only ? "final " : "", r->signal,
                                 version);
                goto done;
        }
        /* Second pass: squared deviations from each cohort's mean. */
        for (size_t i = 0; i < r->cap; i++) {
                const ro_key_t *k = &r->keys[i];
                if (!k->id || k->version != version)
                        continue;
                int c = k->cohort < 0 ? nc - 1 : k->cohort;
                double dv = k->value - acc[c].sum / (double)acc[c].n;
                acc[c].ss += dv * dv;
        }
        int ctrl = -1;
        if (r->control) {
                for (int c = 0; c < r->ncohorts; c++)
                        if (!strcmp(r->cohorts[c], r->control) && acc[c].n)
                                ctrl = c;
                if (ctrl < 0) {
                        char list[512];
                        ro_list_cohorts(r, acc, list, sizeof(list));
                        err = enc_seterr(errstr, errstr_size,
                                         ENC_ERR_INVALID_ARG,
                                         "control cohort \"%s\" has no %s "
                                         "units (cohorts: %s)",
                                         r->control, r->signal, list);
                        goto done;
                }
        }
        qsort(pairs, np_, sizeof(*pairs), ro_pair_cmp);
        free(r->rows);
        r->rows = calloc((size_t)nc, sizeof(*r->rows));
        if (!r->rows) {
                err = enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                 "out of memory");
                goto done;
        }
        int n = 0;
        for (int c = 0; c < nc; c++) {
                const ro_acc_t *a = &acc[c];
                if (!a->n)
                        continue;
                enc_readout_row_t *row = &r->rows[n++];
                row->cohort = c < r->ncohorts ? r->cohorts[c] : NULL;
                row->control = c == ctrl;
                row->units = a->n;
                row->mean = a->sum / (double)a->n;
                row->sd = a->n > 1 ? sqrt(a->ss / (double)(a->n - 1)) : NAN;
                row->stderr_ = row->sd / sqrt((double)a->n);
                double q = a->n > 1 ? enc_stat_t_quantile(0.975,
                                                          (double)(a->n - 1))
                                    : NAN;
                row->lo = row->mean - q * row->stderr_;
                row->hi = row->mean + q * row->stderr_;
                row->has_variance = a->nvar > 0;
                row->mean_variance =
                        a->nvar ? a->varsum / (double)a->nvar : NAN;
                row->diff = row->lift = row->p_value = row->df = NAN;
                if (ctrl >= 0 && c != ctrl) {
                        const ro_acc_t *k = &acc[ctrl];
                        double mc = k->sum / (double)k->n;
                        double vc = k->n > 1 ? k->ss / (double)(k->n - 1)
                                             : NAN;
                        double v = a->n > 1 ? a->ss / (double)(a->n - 1) : NAN;
                        row->diff = row->mean - mc;
                        row->lift = mc != 0 ? row->diff / mc : NAN;
                        row->p_value = enc_stat_welch_p(row->mean, v, a->n, mc,
                                                        vc, k->n, &row->df);
                }
        }
        /* Distinct users: pairs are sorted by (cohort, user). */
        for (size_t i = 0; i < np_; i++) {
                if (i && pairs[i].cohort == pairs[i - 1].cohort &&
                    !strcmp(pairs[i].user, pairs[i - 1].user))
                        continue;
                const char *name = pairs[i].cohort < r->ncohorts
                                           ? r->cohorts[pairs[i].cohort]
                                           : NULL;
                for (int j = 0; j < n; j++)
                        if (r->rows[j].cohort == name) {
                                r->rows[j].users++;
                                break;
                        }
        }
        qsort(r->rows, (size_t)n, sizeof(*r->rows), ro_row_cmp);
        *rowsp = r->rows;
        *np = n;
        *versionp = version;
done:
        free(acc);
        free(pairs);
        return err;
}

/* ---- printing ------------------------------------------------------- */

static void ro_num(FILE *fp, int width, double v) {
        if (isnan(v))
                fprintf(fp, " %*s", width, "-");
        else
                fprintf(fp, " %*.4g", width, v);
}

void enc_readout_print_table(FILE *fp, const char *signal, int32_t version,
                             bool final_only, const enc_readout_row_t *rows,
                             int n) {
        bool cmp = false, var = false;
        for (int i = 0; i < n; i++) {
                cmp |= rows[i].control;
                var |= rows[i].has_variance;
        }
        fprintf(fp, "%s v%d, the latest %supdate of each key, by cohort\n",
                signal, version, final_only ? "final " : "");
        fprintf(fp, "%-14s %8s %8s %10s %10s %23s", "cohort", "units", "users",
                "mean", "stderr", "95% interval");
        if (cmp)
                fprintf(fp, " %10s %8s %10s", "diff", "lift", "p_value");
        if (var)
                fprintf(fp, " %10s", "mean_var");
        fputc('\n', fp);
        for (int i = 0; i < n; i++) {
                const enc_readout_row_t *r = &rows[i];
                char name[64];
                snprintf(name, sizeof(name), "%s%s",
                         r->cohort ? r->cohort : "(none)",
                         r->control ? " *" : "");
                fprintf(fp, "%-14s %8lld %8lld", name, (long long)r->units,
                        (long long)r->users);
                ro_num(fp, 10, r->mean);
                ro_num(fp, 10, r->stderr_);
                if (isnan(r->lo))
                        fprintf(fp, " %23s", "-");
                else {
                        char iv[64];
                        snprintf(iv, sizeof(iv), "[%.4g, %.4g]", r->lo, r->hi);
                        fprintf(fp, " %23s", iv);
                }
                if (cmp) {
                        ro_num(fp, 10, r->diff);
                        if (isnan(r->lift))
                                fprintf(fp, " %8s", "-");
                        else
                                fprintf(fp, " %+7.1f%%", 100 * r->lift);
                        ro_num(fp, 10, r->p_value);
                }
                if (var)
                        ro_num(fp, 10, r->mean_variance);
                fputc('\n', fp);
        }
        if (cmp)
                fprintf(fp, "* control; diff and lift against it, p_value "
                            "of Welch's two-sided t-test\n");
}

static void ro_json_str(FILE *fp, const char *s) {
        if (!s) {
                fputs("null", fp);
                return;
        }
        fputc('"', fp);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        fprintf(fp, "\\%c", c);
                else if (c < 0x20)
                        fprintf(fp, "\\u%04x", c);
                else
                        fputc(c, fp);
        }
        fputc('"', fp);
}

static void ro_json_num(FILE *fp, const char *key, double v) {
        fprintf(fp, ",\"%s\":", key);
        if (isfinite(v))
                fprintf(fp, "%.17g", v);
        else
                fputs("null", fp);
}

void enc_readout_print_json(FILE *fp, const char *signal, int32_t version,
                            const enc_readout_row_t *rows, int n) {
        bool cmp = false;
        for (int i = 0; i < n; i++)
                cmp |= rows[i].control;
        for (int i = 0; i < n; i++) {
                const enc_readout_row_t *r = &rows[i];
                fputs("{\"cohort\":", fp);
                ro_json_str(fp, r->cohort);
                fputs(",\"signal\":", fp);
                ro_json_str(fp, signal);
                fprintf(fp, ",\"version\":%d,\"units\":%lld,\"users\":%lld",
                        version, (long long)r->units, (long long)r->users);
                ro_json_num(fp, "mean", r->mean);
                ro_json_num(fp, "stderr", r->stderr_);
                ro_json_num(fp, "ci95_low", r->lo);
                ro_json_num(fp, "ci95_high", r->hi);
                if (cmp) {
                        fprintf(fp, ",\"control\":%s",
                                r->control ? "true" : "false");
                        ro_json_num(fp, "diff", r->diff);
                        ro_json_num(fp, "lift", r->lift);
                        ro_json_num(fp, "p_value", r->p_value);
                }
                if (r->has_variance)
                        ro_json_num(fp, "mean_variance", r->mean_variance);
                fputs("}\n", fp);
        }
}

/* ---- the command ---------------------------------------------------- */

#define RO_SIGNALS_SEEN_MAX 16

typedef struct ro_run_s {
        enc_readout_t *r;
        enc_codec_t *codec;
        FILE *err;
        uint64_t records, bad, total;
        enc_err_t fail;
        char fail_msg[256];
        double t0, last;
        char seen[RO_SIGNALS_SEEN_MAX][ENC_SIGNAL_NAME_MAX + 1];
        int nseen;
} ro_run_t;

static double ro_mono_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int ro_on_record(void *opaque, const rd_kafka_message_t *m) {
        ro_run_t *run = opaque;
        enc_update_t up;
        char e[256];
        run->records++;
        if (!m->payload ||
            enc_codec_decode_update(run->codec, m->payload, m->len, &up, e,
                                    sizeof(e))) {
                if (!run->bad++)
                        fprintf(run->err,
                                "encore readout: partition %d offset %lld: "
                                "not a RewardUpdate (%s); skipping such "
                                "records\n",
                                m->partition, (long long)m->offset,
                                m->payload ? e : "no value");
        } else {
                bool known = false;
                for (int i = 0; i < run->nseen && !known; i++)
                        known = !strcmp(run->seen[i], up.signal);
                if (!known && run->nseen < RO_SIGNALS_SEEN_MAX)
                        snprintf(run->seen[run->nseen++],
                                 sizeof(run->seen[0]), "%s", up.signal);
                enc_err_t err = enc_readout_add(run->r, &up);
                if (err) {
                        run->fail = err;
                        snprintf(run->fail_msg, sizeof(run->fail_msg), "%s",
                                 err == ENC_ERR_TOO_LARGE
                                         ? "more than 10000 cohorts"
                                         : enc_err2str(err));
                        return 1;
                }
        }
        double now = ro_mono_s();
        if (now - run->t0 >= 1 && now - run->last >= 1) {
                run->last = now;
                fprintf(run->err, "readout: %llu of %llu records (%.0f%%)\n",
                        (unsigned long long)run->records,
                        (unsigned long long)run->total,
                        run->total ? 100.0 * (double)run->records /
                                             (double)run->total
                                   : 100.0);
        }
        return 0;
}

static int ro_usage_error(FILE *err, void (*help)(FILE *, bool),
                          const char *msg, const char *arg) {
        fprintf(err, "encore readout: %s%s\n", msg, arg ? arg : "");
        if (help)
                help(err, false);
        return 2;
}

int enc_readout_main(int argc, char **argv, FILE *out, FILE *err,
                     void (*help)(FILE *fp, bool full)) {
        const char *bootstrap = NULL, *topic = "rewards", *signal = NULL;
        const char *control = NULL, *from_s = NULL, *to_s = NULL;
        int32_t version = 0;
        bool final_only = false, json = false;
        char errstr[512];

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                bool has = i + 1 < argc;
                if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
                        if (help)
                                help(out, true);
                        return 0;
                } else if (!strcmp(a, "--bootstrap") && has)
                        bootstrap = argv[++i];
                else if (!strcmp(a, "--topic") && has)
                        topic = argv[++i];
                else if (!strcmp(a, "--signal") && has)
                        signal = argv[++i];
                else if (!strcmp(a, "--version") && has) {
                        char *end;
                        errno = 0;
                        long v = strtol(argv[++i], &end, 10);
                        if (errno || *end || v < 1 || v > INT32_MAX)
                                return ro_usage_error(
                                        err, help,
                                        "--version wants a version >= 1, "
                                        "not ",
                                        argv[i]);
                        version = (int32_t)v;
                } else if (!strcmp(a, "--final-only"))
                        final_only = true;
                else if (!strcmp(a, "--control") && has)
                        control = argv[++i];
                else if (!strcmp(a, "--from") && has)
                        from_s = argv[++i];
                else if (!strcmp(a, "--to") && has)
                        to_s = argv[++i];
                else if (!strcmp(a, "--json"))
                        json = true;
                else
                        return ro_usage_error(
                                err, help, "unknown or incomplete option ", a);
        }
        if (!bootstrap || !signal)
                return ro_usage_error(err, help,
                                      "--bootstrap and --signal are required",
                                      NULL);
        if (!enc_signal_find(signal)) {
                char names[256];
                size_t off = 0;
                names[0] = '\0';
                for (const enc_signal_plugin_t *const *p =
                             enc_signal_plugins();
                     *p && off < sizeof(names); p++)
                        off += (size_t)snprintf(names + off,
                                                sizeof(names) - off, "%s%s",
                                                off ? ", " : "", (*p)->name);
                fprintf(err,
                        "encore readout: unknown signal \"%s\" (one of %s)\n",
                        signal, names);
                return 2;
        }
        enc_position_t from = {.kind = ENC_POS_EARLIEST},
                       to = {.kind = ENC_POS_END};
        if ((from_s && enc_position_parse(from_s, "--from", &from, errstr,
                                          sizeof(errstr))) ||
            (to_s &&
             enc_position_parse(to_s, "--to", &to, errstr, sizeof(errstr)))) {
                fprintf(err, "encore readout: %s\n", errstr);
                return 2;
        }

        /* Resolve the range (the same positions as replay), then read. */
        int rc = 1;
        enc_conf_t *conf = enc_conf_new();
        enc_range_t *ranges = NULL;
        enc_tail_range_t *tr = NULL;
        int nr = 0;
        ro_run_t run = {.err = err};
        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        cc.any_update_schema_id = true; /* a registry may have framed them */
        if (!conf ||
            enc_conf_set(conf, "input.topic", topic, errstr, sizeof(errstr)) ||
            enc_conf_set(conf, "kafka.bootstrap.servers", bootstrap, errstr,
                         sizeof(errstr))) {
                fprintf(err, "encore readout: %s\n",
                        conf ? errstr : "out of memory");
                rc = 2;
                goto done;
        }
        if (enc_positions_resolve(conf, &from, &to, &ranges, &nr, errstr,
                                  sizeof(errstr))) {
                fprintf(err, "encore readout: topic %s: %s\n", topic, errstr);
                goto done;
        }
        if (!(tr = calloc((size_t)nr + 1, sizeof(*tr))))
                goto done;
        for (int i = 0; i < nr; i++) {
                tr[i] = (enc_tail_range_t){ranges[i].partition,
                                           ranges[i].start, ranges[i].end};
                run.total += (uint64_t)(ranges[i].end - ranges[i].start);
        }
        if (!run.total) {
                fprintf(err, "encore readout: topic %s has no records%s\n",
                        topic, from_s || to_s ? " in that range" : "");
                goto done;
        }
        run.r = enc_readout_new(&(enc_readout_opts_t){
                .signal = signal,
                .version = version,
                .final_only = final_only,
                .control = control});
        run.codec = enc_codec_new(&cc, errstr, sizeof(errstr));
        if (!run.r || !run.codec) {
                fprintf(err, "encore readout: %s\n",
                        run.codec ? "out of memory" : errstr);
                goto done;
        }
        run.t0 = run.last = ro_mono_s();
        uint64_t count = 0;
        /* The reader's deadline bounds the whole read: a minute, plus a
         * second per 10 000 records (the mock cluster alone gives 170 000
         * records/s), so a slow broker fails the read rather than hangs. */
        uint64_t tmo = 60000 + run.total / 10;
        enc_err_t kerr = enc_tail_read_range(
                bootstrap, topic, tr, nr, tmo > INT32_MAX ? INT32_MAX : (int)tmo,
                ro_on_record, &run, &count, errstr, sizeof(errstr));
        if (run.fail) {
                fprintf(err, "encore readout: %s\n", run.fail_msg);
                goto done;
        }
        if (kerr) {
                fprintf(err, "encore readout: reading %s: %s\n", topic,
                        errstr);
                goto done;
        }
        if (run.t0 + 1 <= ro_mono_s())
                fprintf(err, "readout: %llu records read\n",
                        (unsigned long long)run.records);
        if (run.bad)
                fprintf(err,
                        "encore readout: %llu of %llu records were not "
                        "RewardUpdates and were skipped\n",
                        (unsigned long long)run.bad,
                        (unsigned long long)run.records);
        const enc_readout_row_t *rows;
        int n;
        int32_t v;
        if (enc_readout_compute(run.r, &rows, &n, &v, errstr,
                                sizeof(errstr))) {
                char seen[RO_SIGNALS_SEEN_MAX * (ENC_SIGNAL_NAME_MAX + 2)];
                size_t off = 0;
                seen[0] = '\0';
                for (int i = 0; i < run.nseen; i++)
                        off += (size_t)snprintf(seen + off, sizeof(seen) - off,
                                                "%s%s", i ? ", " : "",
                                                run.seen[i]);
                fprintf(err,
                        "encore readout: %s in %llu records of %s (signals "
                        "there: %s)\n",
                        errstr, (unsigned long long)run.records, topic,
                        run.nseen ? seen : "none");
                goto done;
        }
        if (json)
                enc_readout_print_json(out, signal, v, rows, n);
        else
                enc_readout_print_table(out, signal, v, final_only, rows, n);
        rc = 0;
done:
        enc_readout_destroy(run.r);
        enc_codec_destroy(run.codec);
        free(tr);
        free(ranges);
        enc_conf_destroy(conf);
        return rc;
}
