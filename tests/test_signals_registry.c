/*
 * test_signals_registry.c -- the plug-in list, the `signals` list, the
 * checking of every signal.* key, instance getters and enc_emit.
 */
#include <xxhash.h>

#include "daybits.h"
#include "sigtest.h"

static void test_plugin_list(void **unused) {
        static const char *const names[] = {"active_days", "session",
                                            "discovery_habit",
                                            "progressive_reward", "composite"};
        const enc_signal_plugin_t *const *p = enc_signal_plugins();
        int n = 0;
        for (; p[n]; n++) {
                assert_true(n < 5);
                assert_string_equal(p[n]->name, names[n]);
                assert_ptr_equal(enc_signal_find(names[n]), p[n]);
                /* What every engine relies on. */
                assert_non_null(p[n]->init);
                assert_non_null(p[n]->on_event);
                assert_non_null(p[n]->on_timer);
                assert_non_null(p[n]->next_timer);
                assert_non_null(p[n]->state_encode);
                assert_non_null(p[n]->state_decode);
                assert_non_null(p[n]->state_free);
                assert_non_null(p[n]->description);
                for (const enc_cfg_key_t *k = p[n]->config_keys; k->name; k++)
                        assert_non_null(k->desc);
        }
        assert_int_equal(n, 5);
        assert_null(enc_signal_find("nope"));
}

/* Every default instance initialises, in order, with ids XXH32 of
 * "name:version". */
static void test_defaults_instantiate(void **unused) {
        enc_conf_t *conf = enc_conf_new();
        enc_sig_instance_t *insts;
        char errstr[256];
        int n;
        assert_int_equal(enc_signals_check_conf(conf, errstr, sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(enc_signals_instantiate(conf, &insts, &n, errstr,
                                                 sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(n, 5);
        assert_string_equal(insts[2].plugin->name, "discovery_habit");
        assert_int_equal(insts[2].version, 1);
        assert_int_equal(insts[2].id, XXH32("discovery_habit:1", 17, 0));
        enc_signals_destroy(insts, n);
        enc_signals_destroy(NULL, 0);
        enc_conf_destroy(conf);
}

/* Spaces are trimmed and ":version" may be left out (version 1). */
static void test_list_forms(void **unused) {
        enc_conf_t *conf = st_conf("signals= session:2 , active_days ", NULL);
        enc_sig_instance_t *insts;
        char errstr[256];
        int n;
        assert_int_equal(enc_signals_instantiate(conf, &insts, &n, errstr,
                                                 sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(n, 2);
        assert_string_equal(insts[0].plugin->name, "session");
        assert_int_equal(insts[0].version, 2);
        assert_int_equal(insts[1].version, 1);
        enc_signals_destroy(insts, n);
        enc_conf_destroy(conf);

        conf = st_conf("signals=", NULL); /* no signals at all */
        assert_int_equal(enc_signals_instantiate(conf, &insts, &n, errstr,
                                                 sizeof(errstr)),
                         ENC_OK);
        assert_int_equal(n, 0);
        enc_signals_destroy(insts, n);
        enc_conf_destroy(conf);
}

/* Each bad configuration fails with ENC_ERR_CONFIG and an errstr that
 * contains the full key and the expected form. */
static void test_bad_configurations(void **unused) {
        static const struct {
                const char *kv[3];
                const char *want[2];
        } cases[] = {
                {{"signals=active_days:1,foo:1"},
                 {"signals: unknown signal \"foo\"", "name:version"}},
                {{"signals=active_days:x"},
                 {"signals: bad version", "name:version"}},
                {{"signals=active_days:0"}, {"signals: bad version", ">= 1"}},
                {{"signals=session:1,session:1"},
                 {"session:1 is listed twice"}},
                {{"signals=active_days:1,,session:1"}, {"signals: empty"}},
                {{"signals=session:1", "signal.foo.1.x=1"},
                 {"signal.foo.1.x: unknown signal \"foo\"",
                  "signal.<name>.<version>.<key>"}},
                {{"signals=session:1", "signal.session.2.gap.ms=5"},
                 {"signal.session.2.gap.ms: instance session:2 is not in the "
                  "signals list"}},
                {{"signals=session:1", "signal.session.1.gapms=5"},
                 {"signal.session.1.gapms: unknown key \"gapms\"", "gap.ms"}},
                {{"signals=session:1", "signal.session.1.gap.ms=abc"},
                 {"signal.session.1.gap.ms: \"abc\" is not an integer",
                  "[1, 604800000]"}},
                {{"signals=session:1", "signal.session.1.gap.ms=0"},
                 {"signal.session.1.gap.ms: 0 is out of range"}},
                {{"signals=session:1", "signal.session.1.complete.ratio=1.5"},
                 {"signal.session.1.complete.ratio", "[0, 1]"}},
                {{"signals=session:1", "signal.session"},
                 {"signal.session", "signal.<name>.<version>.<key>"}},
                {{"signals=session:1", "signal.session.x.gap.ms=1"},
                 {"signal.session.x.gap.ms", "version an integer"}},
                {{"signals=discovery_habit:1",
                  "signal.discovery_habit.1.item=album"},
                 {"signal.discovery_habit.1.item: \"album\" is not one of "
                  "artist|track"}},
                {{"signals=active_days:1", "signal.active_days.1.windows=7,0"},
                 {"signal.active_days.1.windows: 0 is out of range"}},
                {{"signals=progressive_reward:1,discovery_habit:1"},
                 {"signal.progressive_reward.1.source.version: reads the "
                  "updates "
                  "of discovery_habit:1, which must be listed before "
                  "progressive_reward:1"}},
                {{"signals=discovery_habit:1,progressive_reward:1",
                  "signal.progressive_reward.1.source.version=2"},
                 {"signal.progressive_reward.1.source.version",
                  "discovery_habit:2"}},
                {{"signals=active_days:1,composite:1"},
                 {"signal.composite.1.components: reads the updates of "
                  "session:1"}},
                {{"signals=session:1,composite:1",
                  "signal.composite.1.components=session=abc"},
                 {"signal.composite.1.components: bad entry 1 \"session=abc\"",
                  "signal[:version][/subject]=weight"}},
                {{"signals=session:1,composite:1",
                  "signal.composite.1.components=session=1,"},
                 {"signal.composite.1.components: bad entry 2"}},
                {{"signals=session:1,composite:1",
                  "signal.composite.1.components=composite=1"},
                 {"signal.composite.1.components: \"composite\" is not a "
                  "signal "
                  "composite can weigh"}},
                {{"signals=session:1,composite:1",
                  "signal.composite.1.components=session=1,session=2"},
                 {"\"session\" is listed twice"}},
                {{"signals=discovery_habit:1,progressive_reward:1",
                  "signal.discovery_habit.1.horizon.days=30"},
                 {"signal.progressive_reward.1.prior.file: the prior's "
                  "horizon_days 60 differs from "
                  "signal.discovery_habit.1.horizon.days = 30"}},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char errstr[512] = "";
                enc_conf_t *conf = enc_conf_new();
                for (int k = 0; k < 3 && cases[i].kv[k]; k++) {
                        const char *kv = cases[i].kv[k];
                        const char *eq = strchr(kv, '=');
                        char key[128];
                        if (!eq) { /* a key with an empty value */
                                assert_int_equal(enc_conf_set(conf, kv, "",
                                                              errstr,
                                                              sizeof(errstr)),
                                                 ENC_OK);
                                continue;
                        }
                        snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
                        assert_int_equal(enc_conf_set(conf, key, eq + 1, errstr,
                                                      sizeof(errstr)),
                                         ENC_OK);
                }
                enc_err_t err =
                        enc_signals_check_conf(conf, errstr, sizeof(errstr));
                for (int w = 0; w < 2; w++)
                        if (cases[i].want[w] &&
                            !strstr(errstr, cases[i].want[w])) {
                                print_error("case %zu: \"%s\" not in \"%s\"\n",
                                            i, cases[i].want[w], errstr);
                                fail();
                        }
                assert_int_equal(err, ENC_ERR_CONFIG);
                enc_conf_destroy(conf);
        }
}

/* Getters: the set value, else the plug-in table's default. */
static void test_sigconf_getters(void **unused) {
        enc_conf_t *conf =
                st_conf("signals=active_days:3,session:1",
                        "signal.active_days.3.windows=1,366",
                        "signal.session.1.complete.ratio=0.25", NULL);
        enc_sigconf_t sc;
        int64_t w[4];
        enc_sigconf_init(&sc, conf, "active_days", 3);
        assert_string_equal(sc.prefix, "signal.active_days.3.");
        assert_int_equal(enc_sigconf_int_list(&sc, "windows", w, 4), 2);
        assert_int_equal(w[0], 1);
        assert_int_equal(w[1], 366);
        assert_int_equal(enc_sigconf_int(&sc, "qualified.ms"), 30000);
        enc_sigconf_init(&sc, conf, "session", 1);
        assert_true(enc_sigconf_double(&sc, "complete.ratio") == 0.25);
        assert_int_equal(enc_sigconf_int(&sc, "gap.ms"), 1800000);
        enc_sigconf_init(&sc, conf, "active_days", 1); /* unset instance */
        assert_string_equal(enc_sigconf_get(&sc, "windows"), "7,28");
        char errstr[256];
        assert_int_equal(enc_signals_check_conf(conf, errstr, sizeof(errstr)),
                         ENC_OK);
        enc_conf_destroy(conf);
}

static int reg_calls;
static enc_err_t reg_cb(void *opaque, const enc_update_t *up) {
        reg_calls++;
        *(enc_update_t *)opaque = *up;
        return (enc_err_t)(up->value == 99 ? ENC_ERR_KAFKA : ENC_OK);
}

/* enc_emit fills user, version, the default signal name and the id (the
 * id of those fields per enc_update_make_id), and passes the callback's
 * error back. */
static void test_emit_fills_fields(void **unused) {
        enc_update_t got, up, want;
        enc_emitter_t em = {"user-7", "session", 3, reg_cb, &got};
        memset(&up, 0, sizeof(up));
        up.sequence = 4;
        up.event_time = 1700000000000;
        up.subject = "s";
        assert_int_equal(enc_emit(&em, &up), ENC_OK);
        assert_int_equal(reg_calls, 1);
        assert_string_equal(got.user_id, "user-7");
        assert_string_equal(got.signal, "session");
        assert_int_equal(got.signal_version, 3);
        assert_string_equal(enc_emitter_user(&em), "user-7");
        want = got;
        memset(want.update_id, 0, sizeof(want.update_id));
        enc_update_make_id(&want);
        assert_string_equal(got.update_id, want.update_id);
        /* An explicit signal name is kept. */
        memset(&up, 0, sizeof(up));
        up.signal = "other";
        up.value = 99;
        assert_int_equal(enc_emit(&em, &up), ENC_ERR_KAFKA);
        assert_string_equal(got.signal, "other");
}


/* daybits works a word at a time; the reference here walks day by day, as
 * the definition reads. 2000 random sets (a fixed LCG, every density from
 * empty to full), every query range among a set of edge cases. */
static bool ref_has(const enc_daybits_t *b, int64_t d) {
        if (d < b->base || d - b->base >= ENC_DAYBITS_SPAN)
                return false;
        int i = (int)(d - b->base);
        return (b->w[i / 64] >> (i % 64)) & 1;
}

static void test_daybits_word_ops_match_day_by_day(void **st) {
        (void)st;
        uint64_t x = 12345;
        const int64_t edges[] = {-5, 0, 1, 62, 63, 64, 65, 127, 128, 200,
                                 255, 256, 320, 383, 384, 400};
        const int ne = (int)(sizeof(edges) / sizeof(edges[0]));
        for (int round = 0; round < 2000; round++) {
                enc_daybits_t b;
                int64_t base = 19000 + round % 7;
                enc_daybits_init(&b, base);
                int density = round % 9; /* 0: empty ... 8: full */
                for (int i = 0; i < ENC_DAYBITS_SPAN; i++) {
                        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                        if ((int)(x >> 61) < density)
                                assert_true(enc_daybits_add(&b, base + i));
                }
                int64_t last = INT64_MIN;
                for (int i = 0; i < ENC_DAYBITS_SPAN; i++)
                        if (ref_has(&b, base + i))
                                last = base + i;
                assert_int_equal(enc_daybits_last(&b), last);
                assert_int_equal(enc_daybits_empty(&b), last == INT64_MIN);
                /* The stored form, day by day: a varint byte count (up to
                 * the last byte with a day in it; n < 128, so one byte),
                 * then day i is bit i % 8 of byte i / 8. */
                uint8_t want[1 + ENC_DAYBITS_SPAN / 8] = {0};
                size_t wn = 0;
                for (int i = 0; i < ENC_DAYBITS_SPAN; i++)
                        if (ref_has(&b, base + i)) {
                                want[1 + i / 8] |= (uint8_t)(1u << (i % 8));
                                wn = (size_t)i / 8 + 1;
                        }
                want[0] = (uint8_t)wn;
                enc_buf_t put;
                enc_buf_init(&put, 0);
                enc_daybits_put(&b, &put);
                assert_false(put.failed);
                assert_int_equal(put.len, 1 + wn);
                assert_memory_equal(put.data, want, 1 + wn);
                enc_daybits_t back;
                const uint8_t *q = put.data;
                back.base = base;
                assert_true(enc_daybits_get(&q, q + put.len, &back));
                assert_memory_equal(back.w, b.w, sizeof(b.w));
                enc_buf_free(&put);
                for (int a = 0; a < ne; a++)
                        for (int c = 0; c < ne; c++) {
                                int64_t lo = base + edges[a],
                                        hi = base + edges[c];
                                int n = 0;
                                int64_t first = INT64_MAX;
                                for (int64_t d = lo; d <= hi; d++)
                                        if (ref_has(&b, d)) {
                                                n++;
                                                if (first == INT64_MAX)
                                                        first = d;
                                        }
                                assert_int_equal(
                                        enc_daybits_count(&b, lo, hi), n);
                                assert_int_equal(
                                        enc_daybits_first(&b, lo, hi), first);
                        }
                /* rebase keeps exactly the days inside the new span */
                int64_t nb = base + (round % 3 == 0 ? -70 : 70);
                enc_daybits_t r = b;
                enc_daybits_rebase(&r, nb);
                assert_int_equal(r.base, nb);
                for (int64_t d = base - 80; d < base + ENC_DAYBITS_SPAN + 80;
                     d++)
                        assert_int_equal(ref_has(&r, d),
                                         ref_has(&b, d) && d >= nb &&
                                                 d < nb + ENC_DAYBITS_SPAN);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plugin_list),
                cmocka_unit_test(test_defaults_instantiate),
                cmocka_unit_test(test_list_forms),
                cmocka_unit_test(test_bad_configurations),
                cmocka_unit_test(test_sigconf_getters),
                cmocka_unit_test(test_emit_fills_fields),
                cmocka_unit_test(test_daybits_word_ops_match_day_by_day),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
