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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_filter_h3_by_hand),
                cmocka_unit_test(test_filter_h10_matches_full_conditioning),
                cmocka_unit_test(test_filter_h10_day0_known_matches),
                cmocka_unit_test(test_default_prior_is_the_documented_model),
                cmocka_unit_test(test_bad_priors_name_key_and_reason),
                cmocka_unit_test(test_signal_posteriors_day_by_day),
                cmocka_unit_test(test_signal_posteriors_one_jump),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
