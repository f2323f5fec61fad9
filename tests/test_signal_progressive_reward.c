/*
 * test_signal_progressive_reward.c -- the Gaussian filter and the
 * progressive_reward signal, against posteriors worked out by hand and
 * against a separate, straightforward conditioning written below.
 */
#include <unistd.h>

#include "prior.h"
#include "sigtest.h"

/* Writes @p json to a fresh temporary file; caller unlinks and frees. */
static char *pr_tmpfile(const char *json) {
        char *path = strdup("/tmp/encore-prior-XXXXXX");
        assert_non_null(path);
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        size_t len = strlen(json);
        assert_int_equal(write(fd, json, len), (ssize_t)len);
        close(fd);
        return path;
}

static enc_prior_t *pr_prior(int h, const double *mu, const double *cov) {
        enc_prior_t *p = enc_prior_new(h);
        assert_non_null(p);
        memcpy(p->mu, mu, sizeof(double) * (size_t)h);
        memcpy(p->cov, cov, sizeof(double) * (size_t)h * (size_t)h);
        return p;
}

/* ---- the filter by hand --------------------------------------------- */

/* H = 3, every day with positive variance:
 *   mu = (0.9, 0.5, 0.4)
 *   C  = | 0.09 0.03 0.02 |
 *        | 0.03 0.25 0.10 |
 *        | 0.02 0.10 0.24 |
 * (leading minors 0.09, 0.0216, 0.004304: positive definite).
 *
 * k = 0: mean = 0.9 + 0.5 + 0.4 = 1.8; var = sum of C = 0.88.
 * k = 1, z0 = 1: C_or 1 = 0.03 + 0.02 = 0.05, w = 0.05 / 0.09 = 5/9;
 *   mean = 1 + (0.5 + 0.4) + 5/9 (1 - 0.9) = 1.9 + 1/18
 *   var  = (0.25 + 0.24 + 2 * 0.10) - 0.05^2 / 0.09 = 0.69 - 1/36.
 * k = 2, z = (1, 1): C_oo = |0.09 0.03; 0.03 0.25|, det = 0.0216,
 *   C_oo^-1 = |0.25 -0.03; -0.03 0.09| / 0.0216, C_or = (0.02, 0.10),
 *   w = (0.25*0.02 - 0.03*0.10, -0.03*0.02 + 0.09*0.10) / 0.0216
 *     = (0.002, 0.0084) / 0.0216 = (5/54, 7/18);
 *   mean = 2 + 0.4 + 5/54 (1 - 0.9) + 7/18 (1 - 0.5) = 2.4 + 11/54
 *   var  = 0.24 - (0.02 * 5/54 + 0.10 * 7/18) = 0.24 - 11/270.
 * k = 2, z = (0, 0):
 *   mean = 0 + 0.4 + 5/54 (-0.9) + 7/18 (-0.5) = 0.4 - 1/12 - 7/36
 *        = 0.4 - 5/18; var as above.
 * k = 3, z = (1, 0, 1): the sum, 2, with variance 0. */
static void test_filter_h3_by_hand(void **unused) {
        const double mu[3] = {0.9, 0.5, 0.4};
        const double cov[9] = {0.09, 0.03, 0.02, 0.03, 0.25,
                               0.10, 0.02, 0.10, 0.24};
        enc_prior_t *p = pr_prior(3, mu, cov);
        enc_gfilter_t *f;
        char errstr[256];
        double m, v;

        assert_int_equal(enc_gfilter_new(p, &f, errstr, sizeof(errstr)),
                         ENC_OK);
        enc_gfilter_posterior(f, 0, NULL, &m, &v);
        assert_true(fabs(m - 1.8) < 1e-12 && fabs(v - 0.88) < 1e-12);
        enc_gfilter_posterior(f, 1, (double[]){1}, &m, &v);
        assert_true(fabs(m - (1.9 + 1.0 / 18)) < 1e-12);
        assert_true(fabs(v - (0.69 - 1.0 / 36)) < 1e-12);
        enc_gfilter_posterior(f, 2, (double[]){1, 1}, &m, &v);
        assert_true(fabs(m - (2.4 + 11.0 / 54)) < 1e-12);
        assert_true(fabs(v - (0.24 - 11.0 / 270)) < 1e-12);
        enc_gfilter_posterior(f, 2, (double[]){0, 0}, &m, &v);
        assert_true(fabs(m - (0.4 - 5.0 / 18)) < 1e-12);
        enc_gfilter_posterior(f, 3, (double[]){1, 0, 1}, &m, &v);
        assert_true(m == 2 && v == 0);
        enc_gfilter_destroy(f);
        enc_prior_destroy(p);
}

/* ---- the filter against plain conditioning -------------------------- */

/* x = A^-1 b by Gauss-Jordan elimination with partial pivoting on a copy:
 * a different method from the filter's Cholesky, written for clarity. */
static void pr_solve(int n, const double *a_in, const double *b_in, double *x) {
        double a[32 * 32], b[32];
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

/* The posterior of 1'z given z_0..z_{k-1}, conditioning the full Gaussian
 * directly: o = observed days with positive variance, r = days >= k,
 *   mean = sum z_obs + 1'mu_r + (C_ro C_oo^-1 (z_o - mu_o)) summed
 *   var  = 1'C_rr 1 - 1'C_ro C_oo^-1 C_or 1.
 * Here the solve is against each residual vector, not against C_or 1. */
static void pr_naive(int h, const double *mu, const double *c, int k,
                     const double *z, double *mean, double *var) {
        int o[32], no = 0;
        double coo[32 * 32], d[32], y[32];
        for (int j = 0; j < k; j++)
                if (c[j * h + j] > ENC_PRIOR_VAR_EPS)
                        o[no++] = j;
        for (int a = 0; a < no; a++) {
                for (int b = 0; b < no; b++)
                        coo[a * no + b] = c[o[a] * h + o[b]];
                d[a] = z[o[a]] - mu[o[a]];
        }
        if (no)
                pr_solve(no, coo, d, y); /* y = C_oo^-1 (z_o - mu_o) */
        double m = 0, v = 0;
        for (int j = 0; j < k; j++)
                m += z[j];
        for (int r = k; r < h; r++) {
                m += mu[r];
                for (int a = 0; a < no; a++)
                        m += c[r * h + o[a]] * y[a];
                for (int s = k; s < h; s++)
                        v += c[r * h + s];
        }
        /* 1'C_ro C_oo^-1 C_or 1, one column of C_or at a time. */
        for (int s = k; s < h; s++) {
                double col[32], q[32];
                for (int a = 0; a < no; a++)
                        col[a] = c[o[a] * h + s];
                if (!no)
                        break;
                pr_solve(no, coo, col, q);
                for (int r = k; r < h; r++)
                        for (int a = 0; a < no; a++)
                                v -= c[r * h + o[a]] * q[a];
        }
        *mean = m;
        *var = v;
}

static uint64_t pr_rng = 0x9e3779b97f4a7c15ULL;
static double pr_unif(void) { /* splitmix64, fixed seed */
        uint64_t x = (pr_rng += 0x9e3779b97f4a7c15ULL);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        x ^= x >> 31;
        return (double)(x >> 11) / 9007199254740992.0;
}

/* H = 10, C = A A' / 10 + 0.05 I with A uniform in [-1, 1] from a fixed
 * seed; when @p day0_known, day 0 has variance 0 and no covariance (the
 * shape of a real prior). Every k and 20 random traces (0/1 and real
 * valued) agree with pr_naive to 1e-9. */
static void pr_compare(bool day0_known) {
        enum { H = 10 };
        double a[H * H], c[H * H], mu[H];
        enc_gfilter_t *f;
        char errstr[256];
        for (int i = 0; i < H * H; i++)
                a[i] = 2 * pr_unif() - 1;
        for (int i = 0; i < H; i++) {
                mu[i] = pr_unif();
                for (int j = 0; j < H; j++) {
                        double s = 0;
                        for (int k = 0; k < H; k++)
                                s += a[i * H + k] * a[j * H + k];
                        c[i * H + j] = s / H + (i == j ? 0.05 : 0);
                }
        }
        if (day0_known) {
                mu[0] = 1;
                for (int j = 0; j < H; j++)
                        c[j] = c[j * H] = 0;
        }
        enc_prior_t *p = pr_prior(H, mu, c);
        assert_int_equal(enc_gfilter_new(p, &f, errstr, sizeof(errstr)),
                         ENC_OK);
        for (int trial = 0; trial < 20; trial++) {
                double z[H];
                for (int j = 0; j < H; j++)
                        z[j] = trial % 2 ? (pr_unif() < 0.4)
                                         : 3 * pr_unif() - 1;
                if (day0_known)
                        z[0] = 1;
                for (int k = 0; k <= H; k++) {
                        double m1, v1, m2, v2;
                        enc_gfilter_posterior(f, k, z, &m1, &v1);
                        pr_naive(H, mu, c, k, z, &m2, &v2);
                        if (fabs(m1 - m2) > 1e-9 || fabs(v1 - v2) > 1e-9) {
                                print_error("k=%d mean %.17g vs %.17g, var "
                                            "%.17g vs %.17g\n",
                                            k, m1, m2, v1, v2);
                                fail();
                        }
                }
        }
        enc_gfilter_destroy(f);
        enc_prior_destroy(p);
}

static void test_filter_h10_matches_full_conditioning(void **unused) {
        pr_compare(false);
}

static void test_filter_h10_day0_known_matches(void **unused) {
        pr_compare(true);
}

/* ---- prior files ---------------------------------------------------- */

/* The built-in default is the model documented in
 * ops/prior/make_default_prior.py: H 60, day 0 known, and for k >= 1
 * mu_k = 0.25 g_k, C_kk = mu_k - mu_k^2, C_jk = 0.0375 g_j g_k with
 * g_k = 0.3 + 0.7 exp(-(k - 1) / 10). Printed with 12 significant
 * digits, hence 1e-11. */
static void test_default_prior_is_the_documented_model(void **unused) {
        enc_prior_t *p;
        enc_gfilter_t *f;
        char errstr[256];
        double g2 = 0.3 + 0.7 * exp(-0.1);
        assert_int_equal(enc_prior_load("", &p, errstr, sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(p->horizon, 60);
        assert_true(p->mu[0] == 1 && p->cov[0] == 0);
        assert_true(fabs(p->mu[1] - 0.25) < 1e-11);
        assert_true(fabs(p->cov[1 * 60 + 1] - 0.1875) < 1e-11);
        assert_true(fabs(p->mu[2] - 0.25 * g2) < 1e-11);
        assert_true(fabs(p->cov[1 * 60 + 2] - 0.0375 * g2) < 1e-11);
        assert_true(fabs(p->cov[2 * 60 + 2] - (0.25 * g2 - 0.0625 * g2 * g2)) <
                    1e-11);
        assert_non_null(p->source);
        assert_int_equal(enc_gfilter_new(p, &f, errstr, sizeof(errstr)),
                         ENC_OK);
        enc_gfilter_destroy(f);
        enc_prior_destroy(p);
}

/* Bad prior files are refused at init with the key and the reason. */
static void test_bad_priors_name_key_and_reason(void **unused) {
        static const struct {
                const char *json, *reason;
        } cases[] = {
                {"{\"horizon_days\":3", "not JSON"},
                {"{\"horizon_days\":0,\"mu\":[],\"cov\":[]}", "horizon_days"},
                {"{\"horizon_days\":3,\"mu\":[1,0.5],\"cov\":[[0,0,0],[0,1,0],"
                 "[0,0,1]]}",
                 "\"mu\" an array of 3"},
                {"{\"horizon_days\":3,\"mu\":[1,0.5,\"x\"],\"cov\":[[0,0,0],[0,"
                 "1,"
                 "0],[0,0,1]]}",
                 "mu[2]"},
                {"{\"horizon_days\":3,\"mu\":[1,0.5,0.5],\"cov\":[[0,0,0],[0,1,"
                 "0.5],[0,0.4,1]]}",
                 "not symmetric"},
                {"{\"horizon_days\":3,\"mu\":[1,0.5,0.5],\"cov\":[[0,0,0],[0,-"
                 "1,"
                 "0],[0,0,1]]}",
                 "negative"},
                {"{\"horizon_days\":3,\"mu\":[1,0.5,0.5],\"cov\":[[0,0.1,0],[0."
                 "1,"
                 "1,0],[0,0,1]]}",
                 "variance 0"},
                {"{\"horizon_days\":3,\"mu\":[1,0.5,0.5],\"cov\":[[0,0,0],[0,1,"
                 "1],[0,1,1]]}",
                 "not positive definite"},
                {"{\"horizon_days\":4,\"mu\":[1,0.5,0.5,0.5],\"cov\":[[0,0,0,0]"
                 ","
                 "[0,1,0,0],[0,0,1,0],[0,0,0,1]]}",
                 "signal.discovery_habit.1.horizon.days = 3"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *path = pr_tmpfile(cases[i].json);
                char kv[128], errstr[512];
                enc_sig_instance_t *insts;
                int n;
                snprintf(kv, sizeof(kv),
                         "signal.progressive_reward.1.prior.file=%s", path);
                enc_conf_t *conf = st_conf(
                        "signals=discovery_habit:1,progressive_reward:1",
                        "signal.discovery_habit.1.horizon.days=3", kv, NULL);
                assert_int_equal(enc_signals_instantiate(conf, &insts, &n,
                                                         errstr,
                                                         sizeof(errstr)),
                                 ENC_ERR_CONFIG);
                if (!strstr(errstr, "signal.progressive_reward.1.prior.file") ||
                    !strstr(errstr, cases[i].reason)) {
                        print_error("case %zu: %s\n", i, errstr);
                        fail();
                }
                unlink(path);
                free(path);
                enc_conf_destroy(conf);
        }
        /* The default prior (H 60) against horizon 3, and a missing file. */
        const char *const kvs[] = {"signal.progressive_reward.1.prior.file=",
                                   "signal.progressive_reward.1.prior.file=/"
                                   "nonexistent/prior.json"};
        for (int i = 0; i < 2; i++) {
                char errstr[512];
                enc_sig_instance_t *insts;
                int n;
                enc_conf_t *conf = st_conf(
                        "signals=discovery_habit:1,progressive_reward:1",
                        "signal.discovery_habit.1.horizon.days=3", kvs[i],
                        NULL);
                assert_int_equal(enc_signals_instantiate(conf, &insts, &n,
                                                         errstr,
                                                         sizeof(errstr)),
                                 ENC_ERR_CONFIG);
                assert_non_null(strstr(
                        errstr, "signal.progressive_reward.1.prior.file"));
                enc_conf_destroy(conf);
        }
}

/* ---- the signal ----------------------------------------------------- */

/* H = 3 with day 0 known (the shape of a real prior):
 *   mu = (1, 0.5, 0.4), C = |0 0 0; 0 0.25 0.10; 0 0.10 0.24|.
 * Day 0 carries no information, so:
 *   k = 1: mean = 1 + 0.5 + 0.4 = 1.9, var = 0.25 + 0.24 + 0.2 = 0.69
 *   k = 2: w = C_21 / C_11 = 0.4, var = 0.24 - 0.1^2 / 0.25 = 0.2,
 *          z1 = 1: mean = 2 + 0.4 + 0.4 * 0.5 = 2.6
 *          z1 = 0: mean = 1 + 0.4 + 0.4 * (-0.5) = 1.2
 *   k = 3: the actual sum, variance 0.
 * Discovery x (rec r1, cohort A) on day 0, played again on day 1; x's
 * trace is (1, 1, 0). Discovery w (rec r2, cohort B) on day 1 (10:00),
 * never again: (1, 0, 0). Updates, as the watermark passes each day end:
 *   DAY(1) x k=1  mean 1.9  var 0.69  delta 1.9
 *   DAY(2) w k=1  mean 1.9  var 0.69  delta 1.9
 *   DAY(2) x k=2  mean 2.6  var 0.2   delta 0.7
 *   DAY(3) w k=2  mean 1.2  var 0.2   delta -0.7
 *   DAY(3) x k=3  mean 2    var 0     delta -0.6  final
 *   DAY(4) w k=3  mean 1    var 0     delta -0.2  final
 * (same-time updates in key order: w before x; x's window [DAY(0),
 * DAY(3)), w's [DAY(1), DAY(4)); sequence = k.) */
static void pr_signal_scenario(bool tight) {
        char *path = pr_tmpfile("{\"horizon_days\":3,\"mu\":[1,0.5,0.4],"
                                "\"cov\":[[0,0,0],[0,0.25,0.1],[0,0.1,0.24]],"
                                "\"source\":\"hand\"}");
        char kv[128];
        snprintf(kv, sizeof(kv), "signal.progressive_reward.1.prior.file=%s",
                 path);
        enc_conf_t *conf =
                st_conf("signals=discovery_habit:1,progressive_reward:1",
                        "signal.discovery_habit.1.horizon.days=3", kv, NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t u = {.id = "u1"};
        const enc_update_t *up[16];
        enc_event_t ev;
        eng->truncate = true;

        ev = st_play(AT(0, 10, 0), 40000);
        ev.artist_id = "x";
        ev.source = ENC_SRC_RECOMMENDATION;
        ev.recommendation_id = "r1";
        st_event(eng, &u, &ev, tight);
        ev.source = ENC_SRC_LIBRARY;
        ev.recommendation_id = NULL;
        ev.event_time = AT(1, 9, 0);
        st_event(eng, &u, &ev, tight);
        ev.artist_id = "w";
        ev.source = ENC_SRC_RECOMMENDATION;
        ev.recommendation_id = "r2";
        ev.cohort = "B";
        ev.event_time = AT(1, 10, 0);
        st_event(eng, &u, &ev, tight);
        st_timers_upto(eng, &u, DAY(30), tight);
        assert_null(u.state[1]);

        int n = st_filter(&eng->out, "progressive_reward", up, 16);
        assert_int_equal(n, 6);
#define PR_X(i, k, m, v, d)                                                    \
        st_check(up[i], (st_exp_t){.subject = "x",                             \
                                   .rec = "r1",                                \
                                   .cohort = "A",                              \
                                   .ws = DAY(0),                               \
                                   .we = DAY(3),                               \
                                   .t = DAY(k),                                \
                                   .value = m,                                 \
                                   .delta = d,                                 \
                                   .obs = k,                                   \
                                   .hor = 3,                                   \
                                   .final = k == 3,                            \
                                   .seq = k,                                   \
                                   .has_est = true,                            \
                                   .mean = m,                                  \
                                   .var = v})
#define PR_W(i, k, m, v, d)                                                    \
        st_check(up[i], (st_exp_t){.subject = "w",                             \
                                   .rec = "r2",                                \
                                   .cohort = "B",                              \
                                   .ws = DAY(1),                               \
                                   .we = DAY(4),                               \
                                   .t = DAY(1 + k),                            \
                                   .value = m,                                 \
                                   .delta = d,                                 \
                                   .obs = k,                                   \
                                   .hor = 3,                                   \
                                   .final = k == 3,                            \
                                   .seq = k,                                   \
                                   .has_est = true,                            \
                                   .mean = m,                                  \
                                   .var = v})
        PR_X(0, 1, 1.9, 0.69, 1.9);
        PR_W(1, 1, 1.9, 0.69, 1.9);
        PR_X(2, 2, 2.6, 0.2, 0.7);
        PR_W(3, 2, 1.2, 0.2, -0.7);
        PR_X(4, 3, 2.0, 0.0, -0.6);
        PR_W(5, 3, 1.0, 0.0, -0.2);
#undef PR_X
#undef PR_W
        st_user_free(eng, &u); /* discovery_habit still remembers x, w */
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
        unlink(path);
        free(path);
}

static void test_signal_posteriors_day_by_day(void **unused) {
        pr_signal_scenario(true);
}

/* One timer far ahead emits the same six, in time order. */
static void test_signal_posteriors_one_jump(void **unused) {
        pr_signal_scenario(false);
}


/* ---- stored state ----------------------------------------------------- */

/* The H = 3 prior of the scenario above. Caller unlinks and frees. */
static char *pr_h3_prior(void) {
        return pr_tmpfile("{\"horizon_days\":3,\"mu\":[1,0.5,0.4],"
                          "\"cov\":[[0,0,0],[0,0.25,0.1],[0,0.1,0.24]],"
                          "\"source\":\"hand\"}");
}

/* discovery_habit:1 (horizon @p h) and progressive_reward:1 with the prior
 * at @p path; @p extra: one more key or NULL. */
static st_engine_t *pr_engine(const char *path, int h, const char *extra,
                              enc_conf_t **confp) {
        char kv[128], hz[64];
        snprintf(kv, sizeof(kv), "signal.progressive_reward.1.prior.file=%s",
                 path);
        snprintf(hz, sizeof(hz), "signal.discovery_habit.1.horizon.days=%d",
                 h);
        *confp = st_conf("signals=discovery_habit:1,progressive_reward:1", hz,
                         kv, extra, NULL);
        return st_engine_new(*confp);
}

/* A non-final discovery_habit update of (@p item, day @p d0) at @p t. */
static enc_update_t pr_dh(const char *item, const char *rec,
                          const char *cohort, int d0, int64_t t, int h) {
        enc_update_t u;
        memset(&u, 0, sizeof(u));
        u.signal = "discovery_habit";
        u.signal_version = 1;
        u.subject = item;
        u.recommendation_id = rec;
        u.cohort = cohort;
        u.window_start = DAY(d0);
        u.window_end = DAY(d0 + h);
        u.event_time = t;
        u.horizon_days = h;
        return u;
}

/* Delivers @p up to progressive_reward (instance 1) as the engine would:
 * timers due at or before its time first, then the states checked. */
static void pr_feed(st_engine_t *eng, st_user_t *u, enc_update_t up) {
        st_timers_upto(eng, u, up.event_time, true);
        st_emit_ctx_t ctx = {eng, u, 1, NULL};
        enc_emitter_t em;
        st_emitter(&ctx, &em);
        assert_int_equal(eng->insts[1].plugin->on_update(eng->insts[1].priv,
                                                         &u->state[1], &up,
                                                         &em),
                         ENC_OK);
        st_check_states(eng, u);
}

/* The record of progressive_reward's state in @p u (instance 1). */
static void pr_encode(st_engine_t *eng, st_user_t *u, enc_buf_t *b) {
        enc_buf_init(b, 0);
        assert_non_null(u->state[1]);
        assert_int_equal(eng->insts[1].plugin->state_encode(
                                 eng->insts[1].priv, u->state[1], b),
                         ENC_OK);
}

static enc_err_t pr_decode(st_engine_t *eng, const uint8_t *p, size_t len,
                           void **st) {
        /* A copy of exactly len bytes, so ASan sees a read past the end. */
        uint8_t *cp = malloc(len ? len : 1);
        assert_non_null(cp);
        memcpy(cp, p, len);
        enc_err_t err = eng->insts[1].plugin->state_decode(eng->insts[1].priv,
                                                           cp, len, st);
        free(cp);
        return err;
}

/* A logical discovery, and version 2 records written from them here, byte
 * by byte, from the layout progressive_reward.c documents (not through its
 * structs): header u8 version 2, u8 words, u16 0, u32 n, u32 string bytes,
 * u32 0, i64 next; each entry i64 d0, u32 k_next, u32 string offset,
 * u16 x 3 lengths (0xffff absent), u16 0, u64 x words; then each entry's
 * present strings with their NUL. All little-endian. */
typedef struct pr_lent_s {
        const char *item, *rec, *cohort;
        int d0; /* test day */
        int k;
        uint64_t z[2];
} pr_lent_t;

static void pr_le(uint8_t *p, uint64_t v, int bytes) {
        for (int i = 0; i < bytes; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static size_t pr_v2(uint8_t *out, int words, const pr_lent_t *e, int n) {
        size_t esize = 24 + 8 * (size_t)words, soff = 0;
        size_t sa = 24 + (size_t)n * esize;
        int64_t next = INT64_MAX;
        memset(out, 0, sa);
        for (int i = 0; i < n; i++) {
                uint8_t *q = out + 24 + (size_t)i * esize;
                const char *v[3] = {e[i].item, e[i].rec, e[i].cohort};
                pr_le(q, (uint64_t)(int64_t)(ST_EPOCH_DAY + e[i].d0), 8);
                pr_le(q + 8, (uint64_t)e[i].k, 4);
                pr_le(q + 12, soff, 4);
                for (int k = 0; k < 3; k++) {
                        pr_le(q + 16 + 2 * k, v[k] ? strlen(v[k]) : 0xffff, 2);
                        if (!v[k])
                                continue;
                        memcpy(out + sa + soff, v[k], strlen(v[k]) + 1);
                        soff += strlen(v[k]) + 1;
                }
                for (int j = 0; j < words; j++)
                        pr_le(q + 24 + 8 * j, e[i].z[j], 8);
                if (DAY(e[i].d0 + e[i].k) < next)
                        next = DAY(e[i].d0 + e[i].k);
        }
        out[0] = 2;
        out[1] = (uint8_t)words;
        pr_le(out + 4, (uint64_t)n, 4);
        pr_le(out + 8, soff, 4);
        pr_le(out + 16, (uint64_t)next, 8);
        return sa + soff;
}

/* The scenario's state after DAY(1) 10:00 (x: day 0 opened, played day 1,
 * k = 1 emitted; w: opened day 1), in (item, d0) order: w, x. */
static const pr_lent_t pr_wx[2] = {
        {"w", "r2", "B", 1, 1, {0x1}},
        {"x", "r1", "A", 0, 2, {0x3}},
};

/* The same state as a version 1 record: u8 1, varint n, per discovery
 * str item, str rec, str cohort, svarint d0, varint k_next, daybits
 * (varint byte count, bytes). */
static void pr_wx_v1(enc_buf_t *b) {
        enc_buf_init(b, 0);
        enc_buf_put_u8(b, 1);
        enc_buf_put_varint(b, 2);
        for (int i = 0; i < 2; i++) {
                enc_buf_put_str(b, pr_wx[i].item);
                enc_buf_put_str(b, pr_wx[i].rec);
                enc_buf_put_str(b, pr_wx[i].cohort);
                enc_buf_put_svarint(b, ST_EPOCH_DAY + pr_wx[i].d0);
                enc_buf_put_varint(b, (uint64_t)pr_wx[i].k);
                enc_buf_put_varint(b, 1);
                enc_buf_put_u8(b, (uint8_t)pr_wx[i].z[0]);
        }
        assert_false(b->failed);
}

/* What the scenario emits after that point, worked out above it. */
static void pr_check_rest(st_engine_t *eng, int from) {
        const enc_update_t *up[16];
        int n = st_filter(&eng->out, "progressive_reward", up, 16);
        assert_int_equal(n - from, 5);
        static const struct {
                const char *s;
                int k;
                double m, v, d;
        } want[5] = {{"w", 1, 1.9, 0.69, 1.9},
                     {"x", 2, 2.6, 0.2, 0.7},
                     {"w", 2, 1.2, 0.2, -0.7},
                     {"x", 3, 2.0, 0.0, -0.6},
                     {"w", 3, 1.0, 0.0, -0.2}};
        for (int i = 0; i < 5; i++) {
                bool w = !strcmp(want[i].s, "w");
                int d0 = w ? 1 : 0, k = want[i].k;
                st_check(up[from + i],
                         (st_exp_t){.subject = want[i].s,
                                    .rec = w ? "r2" : "r1",
                                    .cohort = w ? "B" : "A",
                                    .ws = DAY(d0),
                                    .we = DAY(d0 + 3),
                                    .t = DAY(d0 + k),
                                    .value = want[i].m,
                                    .delta = want[i].d,
                                    .obs = k,
                                    .hor = 3,
                                    .final = k == 3,
                                    .seq = k,
                                    .has_est = true,
                                    .mean = want[i].m,
                                    .var = want[i].v});
        }
}

/* A version 1 record (what stores hold) decodes into the version 2
 * block, byte for byte the record written by hand from the layout, and the
 * migrated state goes on to emit exactly the scenario's remaining five
 * updates, as the version 2 record does. */
static void test_v1_record_migrates_to_v2(void **unused) {
        char *path = pr_h3_prior();
        enc_conf_t *conf;
        uint8_t v2[256];
        size_t v2len = pr_v2(v2, 1, pr_wx, 2);
        enc_buf_t v1, b;

        assert_int_equal(v2len, 24 + 2 * 32 + 14);
        pr_wx_v1(&v1);
        for (int from_v1 = 0; from_v1 < 2; from_v1++) {
                st_engine_t *eng = pr_engine(path, 3, NULL, &conf);
                st_user_t u = {.id = "u1"};
                eng->truncate = true;
                eng->mutate = 200;
                assert_int_equal(from_v1 ? pr_decode(eng, v1.data, v1.len,
                                                     &u.state[1])
                                         : pr_decode(eng, v2, v2len,
                                                     &u.state[1]),
                                 ENC_OK);
                pr_encode(eng, &u, &b);
                assert_int_equal(b.len, v2len);
                assert_memory_equal(b.data, v2, v2len);
                enc_buf_free(&b);
                assert_int_equal(
                        eng->insts[1].plugin->next_timer(eng->insts[1].priv,
                                                         u.state[1]),
                        DAY(2));
                st_check_states(eng, &u);
                st_timers_upto(eng, &u, DAY(30), true);
                assert_null(u.state[1]);
                pr_check_rest(eng, 0);
                st_engine_destroy(eng);
                enc_conf_destroy(conf);
        }
        /* Version 1 records are still checked as before: unsorted. */
        {
                st_engine_t *eng = pr_engine(path, 3, NULL, &conf);
                void *st = (void *)1;
                enc_buf_t bad;
                enc_buf_init(&bad, 0);
                enc_buf_put_u8(&bad, 1);
                enc_buf_put_varint(&bad, 2);
                for (int i = 1; i >= 0; i--) {
                        enc_buf_put_str(&bad, pr_wx[i].item);
                        enc_buf_put_str(&bad, pr_wx[i].rec);
                        enc_buf_put_str(&bad, pr_wx[i].cohort);
                        enc_buf_put_svarint(&bad, ST_EPOCH_DAY + pr_wx[i].d0);
                        enc_buf_put_varint(&bad, (uint64_t)pr_wx[i].k);
                        enc_buf_put_varint(&bad, 1);
                        enc_buf_put_u8(&bad, (uint8_t)pr_wx[i].z[0]);
                }
                assert_int_equal(pr_decode(eng, bad.data, bad.len, &st),
                                 ENC_ERR_CORRUPT);
                assert_null(st);
                enc_buf_free(&bad);
                st_engine_destroy(eng);
                enc_conf_destroy(conf);
        }
        enc_buf_free(&v1);
        unlink(path);
        free(path);
}

/* Each check of the version 2 reader refuses a record that fails it
 * alone (every other field as in a sound record). */
static void test_v2_decode_refuses_corrupt_bytes(void **unused) {
        char *path = pr_h3_prior();
        enc_conf_t *conf, *conf1;
        st_engine_t *eng = pr_engine(path, 3, NULL, &conf);
        st_engine_t *eng1 =
                pr_engine(path, 3, "signal.discovery_habit.1.max.items=1",
                          &conf1);
        uint8_t good[512], r[512];
        size_t n = pr_v2(good, 1, pr_wx, 2);
        void *st = NULL;
        const size_t x = 24 + 32, sa = 24 + 64; /* entry x, strings */

        assert_int_equal(pr_decode(eng, good, n, &st), ENC_OK);
        eng->insts[1].plugin->state_free(eng->insts[1].priv, st);
        /* max.items = 1: two open discoveries are more than the cap. */
        st = (void *)1;
        assert_int_equal(pr_decode(eng1, good, n, &st), ENC_ERR_CORRUPT);
        assert_null(st);

        const struct {
                const char *what;
                size_t off;
                int bytes;
                uint64_t v;
        } pokes[] = {
                {"version 3", 0, 1, 3},
                {"version 0", 0, 1, 0},
                {"words 0", 1, 1, 0},
                {"words 7, past the largest horizon", 1, 1, 7},
                {"words 2: entries past the record", 1, 1, 2},
                {"header padding", 2, 2, 1},
                {"no discoveries", 4, 4, 0},
                {"more discoveries than bytes", 4, 4, 3},
                {"string bytes short", 8, 4, 13},
                {"string bytes long", 8, 4, 15},
                {"header padding 2", 12, 4, 0x100},
                {"next not the smallest due", 16, 8, (uint64_t)DAY(3)},
                {"d0 past the sane days", x, 8, 1000001},
                {"d0 before the sane days", x, 8, (uint64_t)-1000001},
                {"k_next 0", x + 8, 4, 0},
                {"k_next past the horizon", x + 8, 4, 4},
                {"string offset short", x + 12, 4, 6},
                {"string offset long", x + 12, 4, 8},
                {"item absent", x + 16, 2, 0xffff},
                {"item empty", 24 + 16, 2, 0},
                {"cohort past the area", x + 20, 2, 2},
                {"entry padding", x + 22, 2, 1},
                {"day 0 not engaged", x + 24, 8, 0x2},
                {"a day past the prefix", x + 24, 8, 0x7},
                {"a NUL inside a string", sa + 2, 1, 0},
                {"a string without its NUL", sa + 1, 1, 'q'},
                {"a string not UTF-8", sa + 9, 1, 0xff},
        };
        for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
                memcpy(r, good, n);
                pr_le(r + pokes[i].off, pokes[i].v, pokes[i].bytes);
                st = (void *)1;
                if (pr_decode(eng, r, n, &st) != ENC_ERR_CORRUPT) {
                        print_error("%s: accepted\n", pokes[i].what);
                        fail();
                }
                assert_null(st);
        }
        /* A record written under a horizon of two bitmap words (65 to 128
         * days) is read into the instance's one-word entries, as version 1
         * records were read across a change of horizon. */
        static uint8_t wide[512];
        size_t wn = pr_v2(wide, 2, pr_wx, 2);
        assert_int_equal(wn, n + 2 * 8);
        assert_int_equal(pr_decode(eng, wide, wn, &st), ENC_OK);
        {
                enc_buf_t b;
                enc_buf_init(&b, 0);
                assert_int_equal(eng->insts[1].plugin->state_encode(
                                         eng->insts[1].priv, st, &b),
                                 ENC_OK);
                assert_int_equal(b.len, n);
                assert_memory_equal(b.data, good, n);
                enc_buf_free(&b);
                eng->insts[1].plugin->state_free(eng->insts[1].priv, st);
        }
        /* A byte after the area; a hole (one more byte counted in it). */
        memcpy(r, good, n);
        r[n] = 0;
        st = (void *)1;
        assert_int_equal(pr_decode(eng, r, n + 1, &st), ENC_ERR_CORRUPT);
        pr_le(r + 8, 15, 4);
        assert_int_equal(pr_decode(eng, r, n + 1, &st), ENC_ERR_CORRUPT);
        assert_null(st);

        /* Records built whole: order, string caps, and a control that the
         * builder's sound records pass. */
        char id256[257], id257[258], lab64[65], lab65[66];
        memset(id256, 'i', 256);
        id256[256] = '\0';
        memset(id257, 'i', 257);
        id257[257] = '\0';
        memset(lab64, 'c', 64);
        lab64[64] = '\0';
        memset(lab65, 'c', 65);
        lab65[65] = '\0';
        static char buf[4096];
        const struct {
                const char *what;
                pr_lent_t e[2];
                int n;
                bool ok;
        } recs[] = {
                {"sorted by item", {{"a", 0, 0, 0, 1, {1}}, {"b", 0, 0, 0, 1, {1}}}, 2, true},
                {"by d0 within an item", {{"a", 0, 0, 0, 1, {1}}, {"a", 0, 0, 1, 1, {1}}}, 2, true},
                {"items descending", {{"b", 0, 0, 0, 1, {1}}, {"a", 0, 0, 0, 1, {1}}}, 2, false},
                {"d0 descending", {{"a", 0, 0, 1, 1, {1}}, {"a", 0, 0, 0, 1, {1}}}, 2, false},
                {"a key twice", {{"a", "r", 0, 0, 1, {1}}, {"a", "s", 0, 0, 1, {1}}}, 2, false},
                {"a prefix sorts first", {{"ab", 0, 0, 0, 1, {1}}, {"a", 0, 0, 0, 1, {1}}}, 2, false},
                {"empty rec and cohort", {{"a", "", "", 0, 1, {1}}}, 1, true},
                {"ids of 256, a cohort of 64", {{id256, id256, lab64, 0, 1, {1}}}, 1, true},
                {"an item of 257", {{id257, 0, 0, 0, 1, {1}}}, 1, false},
                {"a rec of 257", {{"a", id257, 0, 0, 1, {1}}}, 1, false},
                {"a cohort of 65", {{"a", 0, lab65, 0, 1, {1}}}, 1, false},
                {"an item not UTF-8", {{"\xc3(", 0, 0, 0, 1, {1}}}, 1, false},
                {"a rec not UTF-8", {{"a", "\xff", 0, 0, 1, {1}}}, 1, false},
        };
        for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
                size_t len = pr_v2((uint8_t *)buf, 1, recs[i].e, recs[i].n);
                st = (void *)1;
                enc_err_t err = pr_decode(eng, (uint8_t *)buf, len, &st);
                if (err != (recs[i].ok ? ENC_OK : ENC_ERR_CORRUPT)) {
                        print_error("%s: %s\n", recs[i].what, enc_err2str(err));
                        fail();
                }
                if (!recs[i].ok) {
                        assert_null(st);
                        continue;
                }
                enc_buf_t b;
                enc_buf_init(&b, 0);
                assert_int_equal(eng->insts[1].plugin->state_encode(
                                         eng->insts[1].priv, st, &b),
                                 ENC_OK);
                assert_int_equal(b.len, len);
                assert_memory_equal(b.data, buf, len);
                enc_buf_free(&b);
                eng->insts[1].plugin->state_free(eng->insts[1].priv, st);
        }
        st_engine_destroy(eng);
        st_engine_destroy(eng1);
        enc_conf_destroy(conf);
        enc_conf_destroy(conf1);
        unlink(path);
        free(path);
}

/* The same logical state gives the same bytes whatever led to it: here
 * (a: rec absent, cohort ""; x: rec "r1", cohort absent; both opened on
 * day 9, x played on day 10, k = 1 emitted for both) reached
 *  1. opening a then x,
 *  2. opening m (day 7, long strings) and b (day 7), then x before a, so
 *     the block grows, m and b end at DAY(10) and leave it, shrinking it.
 * Both then match the record written by hand from the layout. */
static void test_same_state_same_bytes(void **unused) {
        char *path = pr_h3_prior();
        enc_buf_t b[2];
        for (int h = 0; h < 2; h++) {
                enc_conf_t *conf;
                st_engine_t *eng = pr_engine(path, 3, NULL, &conf);
                st_user_t u = {.id = "u1"};
                eng->truncate = true;
                if (h == 0) {
                        pr_feed(eng, &u, pr_dh("a", NULL, "", 9, AT(9, 8, 0), 3));
                        pr_feed(eng, &u, pr_dh("x", "r1", NULL, 9, AT(9, 9, 0), 3));
                } else {
                        pr_feed(eng, &u,
                                pr_dh("m", "a-long-recommendation-id-0001",
                                      "cohort-with-a-long-name", 7,
                                      AT(7, 8, 0), 3));
                        pr_feed(eng, &u, pr_dh("b", "rb", "B", 7, AT(7, 9, 0), 3));
                        pr_feed(eng, &u, pr_dh("x", "r1", NULL, 9, AT(9, 8, 0), 3));
                        pr_feed(eng, &u, pr_dh("a", NULL, "", 9, AT(9, 9, 0), 3));
                }
                st_timers_upto(eng, &u, DAY(10), true);
                pr_feed(eng, &u, pr_dh("x", "r1", NULL, 9, AT(10, 9, 0), 3));
                pr_encode(eng, &u, &b[h]);
                st_user_free(eng, &u);
                st_engine_destroy(eng);
                enc_conf_destroy(conf);
        }
        const pr_lent_t want[2] = {{"a", NULL, "", 9, 2, {0x1}},
                                   {"x", "r1", NULL, 9, 2, {0x3}}};
        uint8_t v2[256];
        size_t n = pr_v2(v2, 1, want, 2);
        for (int h = 0; h < 2; h++) {
                assert_int_equal(b[h].len, n);
                assert_memory_equal(b[h].data, v2, n);
                enc_buf_free(&b[h]);
        }
        unlink(path);
        free(path);
}

/* H = 70 takes two bitmap words an entry. With a diagonal prior (day 0
 * known, days 1..69 mean 0.5, variance 0.25, independent) the posterior
 * after k days is (engaged days among the first k) + 0.5 (70 - k) with
 * variance 0.25 (70 - k). Engaged days 0, 1, 63, 64, 69: every update
 * agrees, the last says 5 exactly, and each state on the way (bits on
 * both sides of the word boundary) survives its record, every prefix of
 * which is refused; a record with a day past the prefix in the second
 * word is refused; a one-word record is widened. */
static void test_two_word_bitmap(void **unused) {
        enum { H = 70 };
        static char json[64 * 1024];
        size_t o = (size_t)snprintf(json, sizeof(json),
                                    "{\"horizon_days\":%d,\"mu\":[1", H);
        for (int i = 1; i < H; i++)
                o += (size_t)snprintf(json + o, sizeof(json) - o, ",0.5");
        o += (size_t)snprintf(json + o, sizeof(json) - o, "],\"cov\":[");
        for (int i = 0; i < H; i++) {
                o += (size_t)snprintf(json + o, sizeof(json) - o, "%s[",
                                      i ? "," : "");
                for (int j = 0; j < H; j++)
                        o += (size_t)snprintf(json + o, sizeof(json) - o,
                                              "%s%s", j ? "," : "",
                                              i == j && i ? "0.25" : "0");
                o += (size_t)snprintf(json + o, sizeof(json) - o, "]");
        }
        snprintf(json + o, sizeof(json) - o, "]}");
        char *path = pr_tmpfile(json);
        enc_conf_t *conf;
        st_engine_t *eng = pr_engine(path, H, NULL, &conf);
        st_user_t u = {.id = "u1"};
        static const int days[] = {0, 1, 63, 64, 69};
        eng->truncate = true;
        for (int i = 0; i < 5; i++)
                pr_feed(eng, &u,
                        pr_dh("x", "r", "c", 0, AT(days[i], 12, 0), H));
        st_timers_upto(eng, &u, DAY(100), true);
        assert_null(u.state[1]);
        const enc_update_t *up[H];
        assert_int_equal(st_filter(&eng->out, "progressive_reward", up, H), H);
        double prev = 0;
        for (int k = 1; k <= H; k++) {
                int c = 0;
                for (int i = 0; i < 5; i++)
                        c += days[i] < k;
                double m = c + 0.5 * (H - k);
                st_check(up[k - 1], (st_exp_t){.subject = "x",
                                               .rec = "r",
                                               .cohort = "c",
                                               .ws = DAY(0),
                                               .we = DAY(H),
                                               .t = DAY(k),
                                               .value = m,
                                               .delta = m - prev,
                                               .obs = k,
                                               .hor = H,
                                               .final = k == H,
                                               .seq = k,
                                               .has_est = true,
                                               .mean = m,
                                               .var = 0.25 * (H - k)});
                prev = m;
        }
        assert_true(up[H - 1]->value == 5);
        /* k_next 66: days up to 65 may be set, day 66 may not. */
        uint8_t r[256];
        void *st = NULL;
        pr_lent_t e = {"x", "r", "c", 0, 66, {0x3, 0x3}}; /* 0, 1, 64, 65 */
        size_t n = pr_v2(r, 2, &e, 1);
        assert_int_equal(pr_decode(eng, r, n, &st), ENC_OK);
        eng->insts[1].plugin->state_free(eng->insts[1].priv, st);
        e.z[1] = 0x7; /* day 66 */
        n = pr_v2(r, 2, &e, 1);
        st = (void *)1;
        assert_int_equal(pr_decode(eng, r, n, &st), ENC_ERR_CORRUPT);
        assert_null(st);
        /* A one-word record (written under a horizon up to 64 days) is
         * read into two-word entries, its second word zero. */
        n = pr_v2(r, 1, &e, 1);
        assert_int_equal(pr_decode(eng, r, n, &st), ENC_OK);
        enc_buf_t b;
        enc_buf_init(&b, 0);
        assert_int_equal(eng->insts[1].plugin->state_encode(eng->insts[1].priv,
                                                            st, &b),
                         ENC_OK);
        eng->insts[1].plugin->state_free(eng->insts[1].priv, st);
        e.z[1] = 0;
        uint8_t r2[256];
        n = pr_v2(r2, 2, &e, 1);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.data, r2, n);
        enc_buf_free(&b);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
        unlink(path);
        free(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_filter_h3_by_hand),
                cmocka_unit_test(test_filter_h10_matches_full_conditioning),
                cmocka_unit_test(test_filter_h10_day0_known_matches),
                cmocka_unit_test(test_default_prior_is_the_documented_model),
                cmocka_unit_test(test_bad_priors_name_key_and_reason),
                cmocka_unit_test(test_signal_posteriors_day_by_day),
                cmocka_unit_test(test_signal_posteriors_one_jump),
                cmocka_unit_test(test_v1_record_migrates_to_v2),
                cmocka_unit_test(test_v2_decode_refuses_corrupt_bytes),
                cmocka_unit_test(test_same_state_same_bytes),
                cmocka_unit_test(test_two_word_bitmap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
