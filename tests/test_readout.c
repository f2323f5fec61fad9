/*
 * test_readout.c -- `encore readout` (consumer/readout.c).
 *
 * The statistics against closed forms (I_x(a, 1) = x^a, the t CDF with 1
 * and 2 degrees of freedom) and against values computed independently
 * with mpmath at 30 digits (betainc, and quad over the t density for
 * CDFs, quantiles and Welch's p). The core on a scripted set of updates
 * whose means, standard errors, intervals and Welch p-value are worked out
 * by hand below. Then the command on the mock cluster: the same updates
 * written to a topic, read back to its end, printed as JSON; and its
 * errors (unknown signal, empty topic, bad position, several versions).
 */
#include "kafka_harness.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>

#include "readout.h"

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

/* ---- statistics ----------------------------------------------------- */

static void test_betai_closed_forms_and_reference(void **st) {
        (void)st;
        NEAR(enc_stat_betai(1, 1, 0.37), 0.37, 1e-14);
        NEAR(enc_stat_betai(2.5, 1, 0.3), pow(0.3, 2.5), 1e-14);
        NEAR(enc_stat_betai(1, 3.5, 0.3), 1 - pow(0.7, 3.5), 1e-14);
        /* mpmath betainc(a, b, 0, x, regularized=True) */
        NEAR(enc_stat_betai(2.5, 0.5, 0.3), 0.0189271240719456516534522087,
             1e-14);
        NEAR(enc_stat_betai(30, 0.5, 0.9), 0.0122824484998527597752983323,
             1e-14);
        assert_true(enc_stat_betai(0.5, 0.5, 0) == 0);
        assert_true(enc_stat_betai(0.5, 0.5, 1) == 1);
        assert_true(isnan(enc_stat_betai(0, 1, 0.5)));
        assert_true(isnan(enc_stat_betai(1, 1, 1.5)));
}

static void test_t_cdf(void **st) {
        (void)st;
        const double ts[] = {-7.5, -1, -0.2, 0, 0.3, 1.7, 12.7};
        for (size_t i = 0; i < sizeof(ts) / sizeof(*ts); i++) {
                double t = ts[i];
                /* df 1 is Cauchy; df 2 has a closed form too */
                NEAR(enc_stat_t_cdf(t, 1), 0.5 + atan(t) / 3.14159265358979323846, 1e-14);
                NEAR(enc_stat_t_cdf(t, 2), 0.5 + t / (2 * sqrt(2 + t * t)),
                     1e-14);
        }
        NEAR(enc_stat_t_cdf(2, 10), 0.963305982614629817191068715, 1e-14);
        NEAR(enc_stat_t_cdf(-1.5, 3.7), 0.106799084601006767081699158,
             1e-14);
        assert_true(enc_stat_t_cdf(INFINITY, 3) == 1);
        assert_true(isnan(enc_stat_t_cdf(1, 0)));
}

static void test_t_quantile(void **st) {
        (void)st;
        /* mpmath: findroot of quad-integrated CDF = 0.975 */
        NEAR(enc_stat_t_quantile(0.975, 1), 12.7062047361747046460216800,
             1e-9);
        NEAR(enc_stat_t_quantile(0.975, 2), 4.30265272974946385232094389,
             1e-10);
        NEAR(enc_stat_t_quantile(0.975, 3), 3.18244630528370959272322543,
             1e-10);
        NEAR(enc_stat_t_quantile(0.975, 10), 2.22813885198627474839549066,
             1e-10);
        NEAR(enc_stat_t_quantile(0.975, 30), 2.04227245630123830995804223,
             1e-10);
        NEAR(enc_stat_t_quantile(0.025, 3), -3.18244630528370959272322543,
             1e-10);
        NEAR(enc_stat_t_quantile(0.5, 7), 0, 1e-12);
        assert_true(isnan(enc_stat_t_quantile(1, 3)));
}

/* Welch: means 4 and 2, variances 1 and 2/3, sizes 3 and 4:
 * se^2 = 1/3 + (2/3)/4 = 1/2, t = 2 / sqrt(1/2) = 2.8284..., df = (1/2)^2
 * / ((1/3)^2 / 2 + (1/6)^2 / 3) = 27/7; p (mpmath, 2 x quad of the t
 * density from t to infinity) = 0.04946055913662889194466492. */
static void test_welch(void **st) {
        (void)st;
        double df;
        double p = enc_stat_welch_p(4, 1, 3, 2, 2.0 / 3, 4, &df);
        NEAR(df, 27.0 / 7, 1e-13);
        NEAR(p, 0.0494605591366288919446649224, 1e-13);
        /* symmetric in the order of the samples */
        NEAR(enc_stat_welch_p(2, 2.0 / 3, 4, 4, 1, 3, NULL), p, 1e-15);
        /* a far tail: t = 50, df = 5 (equal sizes 2 and variances that
         * give df 5 are awkward; check through the CDF instead) */
        NEAR(2 * (1 - enc_stat_t_cdf(50, 5)), 6.04775762660122523e-8,
             1e-15);
        assert_true(isnan(enc_stat_welch_p(1, 1, 1, 2, 1, 5, &df)));
        assert_true(isnan(df));
        assert_true(enc_stat_welch_p(3, 0, 4, 3, 0, 5, NULL) == 1);
        assert_true(enc_stat_welch_p(3, 0, 4, 2, 0, 5, NULL) == 0);
}

/* ---- the scripted updates ------------------------------------------- */

typedef struct ro_upd_s {
        const char *user, *signal;
        int32_t version;
        const char *subject, *cohort;
        int64_t t, seq;
        double value;
        bool final;
        double var; /* < 0: no estimate */
} ro_upd_t;

/* discovery_habit v1, the latest update of each (user, subject):
 *  control:   u1/a 2 (after 1), u1/b 3, u2/a 1 (a stale repeat of 9
 *             comes later and loses: older event time), u3/x 2
 *             -> {2, 3, 1, 2}: mean 2, ss 2, var 2/3, sd 0.8165,
 *                stderr sd / 2 = 0.40825; users u1, u2, u3 = 3
 *  treatment: u4/a 3 (its first update said control), u5/a 4, u5/b 5
 *             -> {3, 4, 5}: mean 4, ss 2, var 1, stderr 1 / sqrt(3);
 *                users 2
 *  (none):    u6/a 7, one unit: no stderr
 *  diff 2, lift 2 / 2 = 1, Welch as in test_welch: p = 0.04946...
 *  95% interval of control: 2 -+ t(0.975, 3) x 0.40825
 *                         = 2 -+ 3.18245 x 0.40825 = [0.70076, 3.29924]
 * Not counted: a session update, a discovery_habit v2 update (it makes
 * two versions, so --version is needed). */
static const ro_upd_t ro_script[] = {
        {"u1", "discovery_habit", 1, "a", "control", 100, 1, 1, false, -1},
        {"u1", "discovery_habit", 1, "b", "control", 150, 1, 3, false, -1},
        {"u1", "discovery_habit", 1, "a", "control", 200, 2, 2, false, -1},
        {"u2", "discovery_habit", 1, "a", "control", 100, 1, 1, false, -1},
        {"u2", "discovery_habit", 1, "a", "control", 50, 1, 9, false, -1},
        {"u3", "discovery_habit", 1, "x", "control", 100, 1, 2, true, -1},
        {"u4", "discovery_habit", 1, "a", "control", 10, 1, 0, false, -1},
        {"u4", "discovery_habit", 1, "a", "treatment", 20, 2, 3, false, -1},
        {"u5", "discovery_habit", 1, "a", "treatment", 100, 1, 4, true, -1},
        {"u5", "discovery_habit", 1, "b", "treatment", 100, 1, 5, false, -1},
        {"u6", "discovery_habit", 1, "a", NULL, 100, 1, 7, false, -1},
        {"u1", "session", 1, NULL, "control", 100, 1, 0.5, true, -1},
        {"u7", "discovery_habit", 2, "a", "control", 100, 1, 40, false, -1},
};
#define RO_N (sizeof(ro_script) / sizeof(*ro_script))

static enc_update_t ro_update(const ro_upd_t *s) {
        enc_update_t u;
        memset(&u, 0, sizeof(u));
        u.user_id = s->user;
        u.signal = s->signal;
        u.signal_version = s->version;
        u.subject = s->subject;
        u.cohort = s->cohort;
        u.event_time = s->t;
        u.window_start = 0;
        u.window_end = s->t;
        u.sequence = s->seq;
        u.value = s->value;
        u.delta = s->value;
        u.final = s->final;
        u.has_estimate = s->var >= 0;
        u.estimate_mean = s->value;
        u.estimate_variance = s->var >= 0 ? s->var : 0;
        u.horizon_days = 60;
        enc_update_make_id(&u);
        return u;
}

/* Adds every update of ro_script to @p r, each accepted. */
static void ro_add_script(enc_readout_t *r) {
        for (size_t i = 0; i < RO_N; i++) {
                enc_update_t u = ro_update(&ro_script[i]);
                assert_int_equal(enc_readout_add(r, &u), ENC_OK);
        }
}

static const enc_readout_row_t *ro_find(const enc_readout_row_t *rows, int n,
                                        const char *cohort) {
        for (int i = 0; i < n; i++)
                if (cohort ? rows[i].cohort && !strcmp(rows[i].cohort, cohort)
                           : !rows[i].cohort)
                        return &rows[i];
        fail_msg("no row for cohort %s", cohort ? cohort : "(none)");
        return NULL;
}

static void test_core_hand_computed(void **st) {
        (void)st;
        char err[256];
        const enc_readout_row_t *rows;
        int n;
        int32_t v;
        enc_readout_t *r = enc_readout_new(&(enc_readout_opts_t){
                .signal = "discovery_habit", .control = "control"});
        ro_add_script(r);
        assert_int_equal(enc_readout_seen(r), 12);
        /* two versions and none chosen */
        assert_int_equal(enc_readout_compute(r, &rows, &n, &v, err,
                                             sizeof(err)),
                         ENC_ERR_INVALID_ARG);
        assert_non_null(strstr(err, "--version"));
        assert_non_null(strstr(err, "1, 2"));
        enc_readout_destroy(r);

        r = enc_readout_new(&(enc_readout_opts_t){.signal = "discovery_habit",
                                                  .version = 1,
                                                  .control = "control"});
        ro_add_script(r);
        assert_int_equal(enc_readout_compute(r, &rows, &n, &v, err,
                                             sizeof(err)),
                         ENC_OK);
        assert_int_equal(v, 1);
        assert_int_equal(n, 3);
        /* order: control, other cohorts by name, none last */
        assert_string_equal(rows[0].cohort, "control");
        assert_true(rows[0].control);
        assert_string_equal(rows[1].cohort, "treatment");
        assert_null(rows[2].cohort);

        const enc_readout_row_t *c = &rows[0], *t = &rows[1], *z = &rows[2];
        assert_int_equal(c->units, 4);
        assert_int_equal(c->users, 3);
        NEAR(c->mean, 2, 1e-15);
        NEAR(c->sd, sqrt(2.0 / 3), 1e-15);
        NEAR(c->stderr_, sqrt(2.0 / 3) / 2, 1e-15);
        NEAR(c->lo, 2 - 3.18244630528370959 * sqrt(2.0 / 3) / 2, 1e-10);
        NEAR(c->hi, 2 + 3.18244630528370959 * sqrt(2.0 / 3) / 2, 1e-10);
        assert_true(isnan(c->diff) && isnan(c->p_value));
        assert_false(c->has_variance);

        assert_int_equal(t->units, 3);
        assert_int_equal(t->users, 2);
        NEAR(t->mean, 4, 1e-15);
        NEAR(t->stderr_, 1 / sqrt(3), 1e-15);
        NEAR(t->diff, 2, 1e-15);
        NEAR(t->lift, 1, 1e-15);
        NEAR(t->df, 27.0 / 7, 1e-12);
        NEAR(t->p_value, 0.0494605591366288919, 1e-13);

        assert_int_equal(z->units, 1);
        assert_int_equal(z->users, 1);
        NEAR(z->mean, 7, 1e-15);
        assert_true(isnan(z->stderr_) && isnan(z->lo) && isnan(z->p_value));
        NEAR(z->diff, 5, 1e-15);
        NEAR(z->lift, 2.5, 1e-15);
        enc_readout_destroy(r);
}

/* --final-only: u3/x and u5/a are the only finals: control {2}, treatment
 * {4}; one unit each, so no stderr and no p-value, diff 2, lift 1. An
 * absent control cohort is an error that lists the cohorts. */
static void test_core_final_only_and_missing_control(void **st) {
        (void)st;
        char err[256];
        const enc_readout_row_t *rows;
        int n;
        int32_t v;
        enc_readout_t *r = enc_readout_new(&(enc_readout_opts_t){
                .signal = "discovery_habit",
                .version = 1,
                .final_only = true,
                .control = "control"});
        ro_add_script(r);
        assert_int_equal(enc_readout_compute(r, &rows, &n, &v, err,
                                             sizeof(err)),
                         ENC_OK);
        assert_int_equal(n, 2);
        NEAR(ro_find(rows, n, "control")->mean, 2, 0);
        const enc_readout_row_t *t = ro_find(rows, n, "treatment");
        NEAR(t->mean, 4, 0);
        NEAR(t->diff, 2, 0);
        NEAR(t->lift, 1, 0);
        assert_true(isnan(t->p_value));
        enc_readout_destroy(r);

        r = enc_readout_new(&(enc_readout_opts_t){
                .signal = "discovery_habit", .version = 1, .control = "B"});
        ro_add_script(r);
        assert_int_equal(enc_readout_compute(r, &rows, &n, &v, err,
                                             sizeof(err)),
                         ENC_ERR_INVALID_ARG);
        assert_non_null(strstr(err, "control cohort \"B\""));
        assert_non_null(strstr(err, "control, treatment, (none)"));
        enc_readout_destroy(r);

        r = enc_readout_new(&(enc_readout_opts_t){.signal = "composite"});
        enc_update_t u = ro_update(&ro_script[0]);
        assert_int_equal(enc_readout_add(r, &u), ENC_OK);
        assert_int_equal(enc_readout_compute(r, &rows, &n, &v, err,
                                             sizeof(err)),
                         ENC_ERR_INVALID_ARG);
        assert_string_equal(err, "no composite update was read");
        enc_readout_destroy(r);
}

/* progressive_reward: the mean posterior variance of the latest update of
 * each discovery. A: u1/a 0.5 then 0.25 (latest), u2/a 0.75 -> mean var
 * 0.5, mean value (2 + 3) / 2 = 2.5. B: u3/a final, variance 0. */
static void test_core_mean_posterior_variance(void **st) {
        (void)st;
        static const ro_upd_t s[] = {
                {"u1", "progressive_reward", 1, "a", "A", 1, 1, 1.5, false,
                 0.5},
                {"u1", "progressive_reward", 1, "a", "A", 2, 2, 2, false, 0.25},
                {"u2", "progressive_reward", 1, "a", "A", 1, 1, 3, false, 0.75},
                {"u3", "progressive_reward", 1, "a", "B", 1, 1, 4, true, 0},
        };
        char err[256];
        const enc_readout_row_t *rows;
        int n;
        int32_t v;
        enc_readout_t *r = enc_readout_new(
                &(enc_readout_opts_t){.signal = "progressive_reward"});
        for (size_t i = 0; i < 4; i++) {
                enc_update_t u = ro_update(&s[i]);
                assert_int_equal(enc_readout_add(r, &u), ENC_OK);
        }
        assert_int_equal(enc_readout_compute(r, &rows, &n, &v, err,
                                             sizeof(err)),
                         ENC_OK);
        assert_int_equal(n, 2);
        assert_true(rows[0].has_variance);
        NEAR(rows[0].mean_variance, 0.5, 1e-15);
        NEAR(rows[0].mean, 2.5, 1e-15);
        NEAR(rows[1].mean_variance, 0, 0);
        enc_readout_destroy(r);
}

/* ---- the command on the mock cluster -------------------------------- */

static void ro_produce_script(const char *topic) {
        char err[256];
        assert_int_equal(enc_embedded_create_topic(emb, topic, 1, err,
                                                   sizeof(err)),
                         0);
        enc_codec_t *codec = t_codec();
        rd_kafka_t *p = t_producer();
        enc_buf_t b;
        enc_buf_init(&b, 1 << 16);
        for (size_t i = 0; i < RO_N; i++) {
                enc_update_t u = ro_update(&ro_script[i]);
                enc_buf_reset(&b);
                assert_int_equal(enc_codec_encode_update(codec, &u, &b), 0);
                t_produce_raw(p, topic, u.user_id, b.data, b.len);
        }
        /* one record that is no RewardUpdate: skipped and reported */
        t_produce_raw(p, topic, "u9", "junk", 4);
        assert_int_equal(rd_kafka_flush(p, 10000), 0);
        rd_kafka_destroy(p);
        enc_buf_free(&b);
        enc_codec_destroy(codec);
}

/* Runs the command; *out and *err (caller frees) get what it printed. */
static int ro_run(char **out, char **errout, const char *a0, ...) {
        char *argv[32];
        int argc = 0;
        va_list ap;
        argv[argc++] = "readout";
        va_start(ap, a0);
        for (const char *a = a0; a && argc < 31; a = va_arg(ap, const char *))
                argv[argc++] = (char *)a;
        va_end(ap);
        argv[argc] = NULL;
        size_t ol = 0, el = 0;
        FILE *o = open_memstream(out, &ol), *e = open_memstream(errout, &el);
        assert_non_null(o);
        assert_non_null(e);
        int rc = enc_readout_main(argc, argv, o, e, NULL);
        fclose(o);
        fclose(e);
        return rc;
}

static double ro_jnum(json_t *o, const char *k) {
        json_t *x = json_object_get(o, k);
        assert_non_null(x);
        return json_is_null(x) ? NAN : json_number_value(x);
}

static void test_command_reads_the_topic(void **st) {
        (void)st;
        ro_produce_script("ro-rewards");
        char *out, *err;
        int rc = ro_run(&out, &err, "--bootstrap", bootstrap, "--topic",
                        "ro-rewards", "--signal", "discovery_habit",
                        "--version", "1", "--control", "control", "--json",
                        NULL);
        if (rc)
                print_error("stderr: %s\n", err);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(err, "1 of 14 records were not RewardUpdates"));
        /* three lines: control, treatment, none */
        char *line = out, *next;
        int lines = 0;
        for (; (next = strchr(line, '\n')); line = next + 1, lines++) {
                *next = '\0';
                json_error_t je;
                json_t *o = json_loads(line, 0, &je);
                assert_non_null(o);
                json_t *c = json_object_get(o, "cohort");
                assert_int_equal((int)json_integer_value(
                                         json_object_get(o, "version")),
                                 1);
                if (lines == 0) {
                        assert_string_equal(json_string_value(c), "control");
                        assert_int_equal(json_integer_value(json_object_get(
                                                 o, "units")),
                                         4);
                        assert_int_equal(json_integer_value(json_object_get(
                                                 o, "users")),
                                         3);
                        NEAR(ro_jnum(o, "mean"), 2, 1e-15);
                        NEAR(ro_jnum(o, "stderr"), sqrt(2.0 / 3) / 2, 1e-15);
                        NEAR(ro_jnum(o, "ci95_low"),
                             2 - 3.18244630528370959 * sqrt(2.0 / 3) / 2,
                             1e-10);
                        assert_true(json_is_true(json_object_get(o,
                                                                 "control")));
                        assert_true(isnan(ro_jnum(o, "p_value")));
                } else if (lines == 1) {
                        assert_string_equal(json_string_value(c), "treatment");
                        NEAR(ro_jnum(o, "mean"), 4, 1e-15);
                        NEAR(ro_jnum(o, "stderr"), 1 / sqrt(3), 1e-15);
                        NEAR(ro_jnum(o, "diff"), 2, 1e-15);
                        NEAR(ro_jnum(o, "lift"), 1, 1e-15);
                        NEAR(ro_jnum(o, "p_value"), 0.0494605591366288919,
                             1e-13);
                } else {
                        assert_true(json_is_null(c));
                        NEAR(ro_jnum(o, "mean"), 7, 1e-15);
                        assert_true(isnan(ro_jnum(o, "stderr")));
                }
                assert_null(json_object_get(o, "mean_variance"));
                json_decref(o);
        }
        assert_int_equal(lines, 3);
        free(out);
        free(err);

        /* the table: a header, three rows, the footnote */
        rc = ro_run(&out, &err, "--bootstrap", bootstrap, "--topic",
                    "ro-rewards", "--signal", "discovery_habit", "--version",
                    "1", "--control", "control", NULL);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "control *"));
        assert_non_null(strstr(out, "+100.0%"));
        assert_non_null(strstr(out, "0.04946"));
        free(out);
        free(err);

        /* --to offsets:0=3: the first three records only (u1/a 1, u1/b 3,
         * u1/a 2): control {2, 3}, one user */
        rc = ro_run(&out, &err, "--bootstrap", bootstrap, "--topic",
                    "ro-rewards", "--signal", "discovery_habit", "--to",
                    "offsets:0=3", "--json", NULL);
        assert_int_equal(rc, 0);
        json_error_t je;
        json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "units")), 2);
        assert_int_equal(json_integer_value(json_object_get(o, "users")), 1);
        NEAR(ro_jnum(o, "mean"), 2.5, 1e-15);
        json_decref(o);
        free(out);
        free(err);

        /* several versions and none chosen */
        rc = ro_run(&out, &err, "--bootstrap", bootstrap, "--topic",
                    "ro-rewards", "--signal", "discovery_habit", NULL);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, "choose one with --version"));
        free(out);
        free(err);

        /* a known signal with no update on the topic */
        rc = ro_run(&out, &err, "--bootstrap", bootstrap, "--topic",
                    "ro-rewards", "--signal", "composite", NULL);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, "no composite update was read"));
        assert_non_null(strstr(err, "signals there: discovery_habit, "
                                    "session"));
        free(out);
        free(err);
}

static void test_command_errors(void **st) {
        (void)st;
        char e[256];
        char *out, *err;
        assert_int_equal(ro_run(&out, &err, "--bootstrap", bootstrap,
                                "--signal", "retention", NULL),
                         2);
        assert_non_null(strstr(err, "unknown signal \"retention\""));
        assert_non_null(strstr(err, "active_days"));
        free(out);
        free(err);

        assert_int_equal(ro_run(&out, &err, "--bootstrap", bootstrap,
                                "--signal", "session", "--from", "yesterday",
                                NULL),
                         2);
        assert_non_null(strstr(err, "--from"));
        free(out);
        free(err);

        assert_int_equal(ro_run(&out, &err, "--signal", "session", NULL), 2);
        assert_non_null(strstr(err, "--bootstrap and --signal are required"));
        free(out);
        free(err);

        assert_int_equal(ro_run(&out, &err, "--bootstrap", bootstrap,
                                "--signal", "session", "--version", "0", NULL),
                         2);
        free(out);
        free(err);

        assert_int_equal(enc_embedded_create_topic(emb, "ro-empty", 2, e,
                                                   sizeof(e)),
                         0);
        assert_int_equal(ro_run(&out, &err, "--bootstrap", bootstrap,
                                "--topic", "ro-empty", "--signal", "session",
                                NULL),
                         1);
        assert_non_null(strstr(err, "topic ro-empty has no records"));
        free(out);
        free(err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_betai_closed_forms_and_reference),
                cmocka_unit_test(test_t_cdf),
                cmocka_unit_test(test_t_quantile),
                cmocka_unit_test(test_welch),
                cmocka_unit_test(test_core_hand_computed),
                cmocka_unit_test(test_core_final_only_and_missing_control),
                cmocka_unit_test(test_core_mean_posterior_variance),
                cmocka_unit_test(test_command_reads_the_topic),
                cmocka_unit_test(test_command_errors),
        };
        return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
