/*
 * test_prior_fit.c -- encore-fit-prior's library: traces rebuilt from real
 * discovery_habit output, and the fitted mean and shrunk covariance
 * against values worked out by hand.
 */
#include "codec.h"
#include "fit.h"
#include "sigtest.h"

/* Traces (1,1,1), (1,1,0), (1,0,0), (1,0,0):
 *   mu = (1, 2/4, 1/4)
 *   deviations day 1: (.5, .5, -.5, -.5); day 2: (.75, -.25, -.25, -.25)
 *   S11 = 4 * .25 / 3 = 1/3, S22 = (.5625 + 3 * .0625) / 3 = 1/4,
 *   S12 = (.375 - .125 + .125 + .125) / 3 = 1/6
 *   p1 = (2 + .5) / 5 = .5 -> t1 = .25; p2 = (1 + .5) / 5 = .3 -> t2 = .21
 * lambda = 0.5:  C11 = 1/6 + 1/8 = 7/24, C22 = 1/8 + .105 = .23,
 *                C12 = 1/12
 * default lambda = 20 / 24 = 5/6:
 *                C11 = 1/18 + 5/24 = 19/72, C22 = 1/24 + .175 = 13/60,
 *                C12 = 1/36
 * Row and column 0 are 0 (day 0 is known). */
static void test_fit_by_hand(void **unused) {
        static const uint8_t tr[] = {1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0};
        static const double l_half[9] = {0,        0, 0,        0,   7.0 / 24,
                                         1.0 / 12, 0, 1.0 / 12, 0.23};
        static const double l_def[9] = {
                0, 0, 0, 0, 19.0 / 72, 1.0 / 36, 0, 1.0 / 36, 13.0 / 60};
        const double *want[2] = {l_half, l_def};
        const double lambda[2] = {0.5, -1};
        char errstr[256];
        for (int c = 0; c < 2; c++) {
                enc_prior_t *p;
                assert_int_equal(enc_prior_fit(tr, 4, 3, lambda[c], "t", &p,
                                               errstr, sizeof(errstr)),
                                 ENC_OK);
                assert_int_equal(p->horizon, 3);
                assert_true(p->mu[0] == 1 && p->mu[1] == 0.5 &&
                            p->mu[2] == 0.25);
                for (int i = 0; i < 9; i++)
                        st_dbl_eq("cov", p->cov[i], want[c][i]);
                assert_string_equal(p->source, "t");
                enc_prior_destroy(p);
        }
        enc_prior_t *p;
        assert_int_equal(
                enc_prior_fit(tr, 1, 3, 0.5, NULL, &p, errstr, sizeof(errstr)),
                ENC_ERR_INVALID_ARG); /* one trace is not a sample */
        /* lambda 0 on traces where day 2 never varies: singular, refused
         * by the same check a prior file goes through. */
        static const uint8_t flat[] = {1, 1, 0, 1, 0, 0};
        assert_int_equal(
                enc_prior_fit(flat, 2, 3, 0, NULL, &p, errstr, sizeof(errstr)),
                ENC_OK); /* day 2 has variance 0 and no cov */
        enc_prior_destroy(p);
        static const uint8_t coll[] = {1, 1, 1, 1, 0, 0};
        assert_int_equal(
                enc_prior_fit(coll, 2, 3, 0, NULL, &p, errstr, sizeof(errstr)),
                ENC_ERR_CONFIG); /* days 1 and 2 identical */
        assert_non_null(strstr(errstr, "not positive definite"));
}

/* Real output of discovery_habit (horizon 3), as JSON lines:
 *   ua: x on day 0, again day 1            -> (1, 1, 0)
 *   ub: y on day 0, again day 2            -> (1, 0, 1)
 *   ub: z on day 5, never again            -> (1, 0, 0)
 *   uc: w on day 20, watermark at day 21   -> still open: not used
 * plus session updates from the same run, which are skipped. In key
 * order: ua/x, ub/y, ub/z. */
static void test_traces_from_output(void **unused) {
        enc_conf_t *conf =
                st_conf("signals=session:1,discovery_habit:1",
                        "signal.discovery_habit.1.horizon.days=3", NULL);
        st_engine_t *eng = st_engine_new(conf);
        st_user_t ua = {.id = "ua"}, ub = {.id = "ub"}, uc = {.id = "uc"};
        const struct {
                st_user_t *u;
                int day;
                const char *artist;
                enc_source_t src;
        } plays[] = {
                {&ua, 0, "x", ENC_SRC_RECOMMENDATION},
                {&ua, 1, "x", ENC_SRC_SEARCH},
                {&ub, 0, "y", ENC_SRC_RECOMMENDATION},
                {&ub, 2, "y", ENC_SRC_RADIO},
                {&ub, 5, "z", ENC_SRC_RECOMMENDATION},
                {&uc, 20, "w", ENC_SRC_RECOMMENDATION},
        };
        for (size_t i = 0; i < sizeof(plays) / sizeof(plays[0]); i++) {
                enc_event_t ev = st_play(AT(plays[i].day, 12, 0), 60000);
                ev.artist_id = plays[i].artist;
                ev.source = plays[i].src;
                st_event(eng, plays[i].u, &ev, true);
        }
        st_timers_upto(eng, &ua, DAY(21), true);
        st_timers_upto(eng, &ub, DAY(21), true);
        st_timers_upto(eng, &uc, DAY(21), true);

        enc_fit_t *fit = enc_fit_new(1);
        char errstr[256];
        enc_buf_t b;
        enc_buf_init(&b, 0);
        for (int i = 0; i < eng->out.n; i++) {
                enc_buf_reset(&b);
                assert_int_equal(enc_update_to_json(&eng->out.v[i]->u, &b),
                                 ENC_OK);
                assert_int_equal(enc_fit_add_line(fit, (char *)b.data, b.len,
                                                  errstr, sizeof(errstr)),
                                 ENC_OK);
        }
        assert_int_equal(enc_fit_add_line(fit, "\n", 1, errstr, sizeof(errstr)),
                         ENC_OK);
        uint8_t *tr;
        int n, h;
        enc_fit_stats_t st;
        assert_int_equal(enc_fit_traces(fit, 0, &tr, &n, &h, &st, errstr,
                                        sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(n, 3);
        assert_int_equal(h, 3);
        static const uint8_t want[] = {1, 1, 0, 1, 0, 1, 1, 0, 0};
        assert_memory_equal(tr, want, sizeof(want));
        assert_int_equal(st.discoveries, 4);
        assert_int_equal(st.complete, 3);
        assert_int_equal(st.open, 1);
        assert_int_equal(st.broken, 0);
        /* discovery_habit updates: x 3, y 3, z 2, w 1 */
        assert_int_equal(st.used, 9);
        free(tr);
        enc_fit_destroy(fit);

        /* The same output without y's day-2 update: y's final says 2, its
         * days say 1, so y is dropped as broken. */
        fit = enc_fit_new(1);
        for (int i = 0; i < eng->out.n; i++) {
                const enc_update_t *u = &eng->out.v[i]->u;
                if (u->subject && !strcmp(u->subject, "y") &&
                    u->observed_days == 2 && !u->final)
                        continue;
                enc_buf_reset(&b);
                assert_int_equal(enc_update_to_json(u, &b), ENC_OK);
                assert_int_equal(enc_fit_add_line(fit, (char *)b.data, b.len,
                                                  errstr, sizeof(errstr)),
                                 ENC_OK);
        }
        assert_int_equal(enc_fit_traces(fit, 0, &tr, &n, &h, &st, errstr,
                                        sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(n, 2);
        assert_int_equal(st.broken, 1);
        free(tr);
        enc_fit_destroy(fit);
        enc_buf_free(&b);
        st_user_free(eng, &ua);
        st_user_free(eng, &ub);
        st_user_free(eng, &uc);
        st_engine_destroy(eng);
        enc_conf_destroy(conf);
}

static void test_bad_lines_and_mixed_horizons(void **unused) {
        enc_fit_t *fit = enc_fit_new(0);
        char errstr[256];
        const char *l1 = "{\"signal\":\"discovery_habit\",\"signal_version\":1,"
                         "\"user_id\":\"u\",\"window_start\":0,"
                         "\"observed_days\":1,\"horizon_days\":3,"
                         "\"final\":false,\"value\":1}";
        assert_int_equal(
                enc_fit_add_line(fit, "{nope", 5, errstr, sizeof(errstr)),
                ENC_ERR_DECODE);
        assert_int_equal(
                enc_fit_add_line(fit, l1, strlen(l1), errstr, sizeof(errstr)),
                ENC_ERR_DECODE);
        assert_non_null(strstr(errstr, "\"subject\""));
        /* Other signals are skipped without looking further. */
        assert_int_equal(enc_fit_add_line(fit, "{\"signal\":\"session\"}", 20,
                                          errstr, sizeof(errstr)),
                         ENC_OK);
        /* Two complete discoveries of horizons 1 and 2. */
        static const char *const lines[] = {
                "{\"signal\":\"discovery_habit\",\"signal_version\":1,\"user_"
                "id\":"
                "\"u\",\"subject\":\"a\",\"window_start\":0,\"observed_days\":"
                "1,\"event_time\":86400000,"
                "\"horizon_days\":1,\"final\":true,\"value\":1}",
                "{\"signal\":\"discovery_habit\",\"signal_version\":2,\"user_"
                "id\":"
                "\"u\",\"subject\":\"b\",\"window_start\":0,\"observed_days\":"
                "2,\"event_time\":172800000,"
                "\"horizon_days\":2,\"final\":true,\"value\":1}",
        };
        for (int i = 0; i < 2; i++)
                assert_int_equal(enc_fit_add_line(fit, lines[i],
                                                  strlen(lines[i]), errstr,
                                                  sizeof(errstr)),
                                 ENC_OK);
        uint8_t *tr;
        int n, h;
        enc_fit_stats_t st;
        assert_int_equal(enc_fit_traces(fit, 0, &tr, &n, &h, &st, errstr,
                                        sizeof(errstr)),
                         ENC_ERR_INVALID_ARG);
        assert_non_null(strstr(errstr, "--horizon"));
        assert_int_equal(enc_fit_traces(fit, 2, &tr, &n, &h, &st, errstr,
                                        sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(n, 1);
        assert_int_equal(st.other_h, 1);
        assert_true(tr[0] == 1 && tr[1] == 0);
        free(tr);
        enc_fit_destroy(fit);
}

/* What the tool writes, the loader reads back bit for bit. */
static void test_json_round_trip(void **unused) {
        static const uint8_t tr[] = {1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 1};
        enc_prior_t *p, *q;
        char errstr[256];
        enc_buf_t b;
        assert_int_equal(enc_prior_fit(tr, 4, 3, -1, "src \"q\"", &p, errstr,
                                       sizeof(errstr)),
                         ENC_OK);
        enc_buf_init(&b, 0);
        assert_int_equal(enc_prior_to_json(p, &b), ENC_OK);
        assert_int_equal(enc_prior_parse((char *)b.data, b.len, "t", &q, errstr,
                                         sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(q->horizon, 3);
        assert_memory_equal(p->mu, q->mu, 3 * sizeof(double));
        assert_memory_equal(p->cov, q->cov, 9 * sizeof(double));
        assert_string_equal(q->source, "src \"q\"");
        enc_prior_destroy(p);
        enc_prior_destroy(q);
        enc_buf_free(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fit_by_hand),
                cmocka_unit_test(test_traces_from_output),
                cmocka_unit_test(test_bad_lines_and_mixed_horizons),
                cmocka_unit_test(test_json_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
