/*
 * test_config.c -- the declarative configuration: defaults, INI files,
 * --set overrides, errors that name the key and the expected form, signal
 * instance keys checked against the plug-in tables, secrets redacted.
 */
#include "harness.h"

#include "plugin.h"

static void test_defaults_and_overrides(void **st) {
        (void)st;
        char err[256];
        enc_conf_t *c = enc_conf_new();
        assert_int_equal(enc_conf_get_int(c, "commit.interval.ms"), 1000);
        assert_string_equal(enc_conf_get(c, "input.topic"), "plays");
        assert_false(enc_conf_get_bool(c, "state.sync"));
        assert_int_equal(enc_conf_set_kv(c, "commit.interval.ms=250", err,
                                         sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set_kv(c, "state.sync=yes", err,
                                         sizeof(err)),
                         0);
        assert_int_equal(enc_conf_get_int(c, "commit.interval.ms"), 250);
        assert_true(enc_conf_get_bool(c, "state.sync"));
        /* a later set wins */
        assert_int_equal(enc_conf_set(c, "commit.interval.ms", "300", err,
                                      sizeof(err)),
                         0);
        assert_int_equal(enc_conf_get_int(c, "commit.interval.ms"), 300);
        enc_conf_destroy(c);
}

static void test_bad_keys_and_values_name_the_key(void **st) {
        (void)st;
        char err[256];
        enc_conf_t *c = enc_conf_new();
        assert_int_equal(enc_conf_set(c, "commit.intervall.ms", "5", err,
                                      sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_string_equal(err, "commit.intervall.ms: unknown configuration "
                                 "key (see encore --help)");
        assert_int_equal(enc_conf_set(c, "commit.interval.ms", "soon", err,
                                      sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_string_equal(err, "commit.interval.ms: \"soon\" is not an "
                                 "integer (expected an integer in [1, "
                                 "3600000])");
        assert_int_equal(enc_conf_set(c, "commit.interval.ms", "0", err,
                                      sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_string_equal(err, "commit.interval.ms: 0 is out of range "
                                 "(expected an integer in [1, 3600000])");
        assert_int_equal(enc_conf_set(c, "serde.framing", "json", err,
                                      sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_string_equal(err, "serde.framing: \"json\" is not one of "
                                 "confluent|raw");
        assert_int_equal(enc_conf_set(c, "state.sync", "maybe", err,
                                      sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_int_equal(enc_conf_set_kv(c, "novalue", err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_string_equal(err, "\"novalue\": expected key=value");
        /* kafka.* passes through; an empty property name does not */
        assert_int_equal(enc_conf_set(c, "kafka.linger.ms", "7", err,
                                      sizeof(err)),
                         0);
        assert_int_equal(enc_conf_set(c, "kafka.", "7", err, sizeof(err)),
                         ENC_ERR_CONFIG);
        enc_conf_destroy(c);
}

static void test_ini_file_sections_join_with_dots(void **st) {
        (void)st;
        char err[512];
        char path[] = "/tmp/encore-test-conf-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        const char *ini = "input.topic = listens\n"
                          "[commit]\n"
                          "interval.ms = 750\n"
                          "[kafka]\n"
                          "bootstrap.servers = broker:9092\n"
                          "sasl.password = hunter2\n"
                          "[schema.registry]\n"
                          "basic.auth.user.info = enc:swordfish\n";
        assert_int_equal(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
        close(fd);
        enc_conf_t *c = enc_conf_new();
        assert_int_equal(enc_conf_load_file(c, path, err, sizeof(err)), 0);
        assert_string_equal(enc_conf_get(c, "input.topic"), "listens");
        assert_int_equal(enc_conf_get_int(c, "commit.interval.ms"), 750);
        assert_string_equal(enc_conf_get_raw(c, "kafka.bootstrap.servers"),
                            "broker:9092");
        /* the dump never shows the secret */
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        enc_conf_dump(c, mem);
        fclose(mem);
        assert_non_null(strstr(buf, "kafka.sasl.password = [redacted]"));
        assert_null(strstr(buf, "hunter2"));
        /* a core key marked secret, too (issue 16) */
        assert_non_null(strstr(buf, "schema.registry.basic.auth.user.info = "
                                    "[redacted]"));
        assert_null(strstr(buf, "swordfish"));
        free(buf);
        enc_conf_destroy(c);

        /* a bad key in a file names the file and the key */
        fd = open(path, O_WRONLY | O_TRUNC);
        const char *bad = "[commit]\nintervl.ms = 5\n";
        assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
        close(fd);
        c = enc_conf_new();
        assert_int_equal(enc_conf_load_file(c, path, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "commit.intervl.ms: unknown "
                                    "configuration key"));
        assert_non_null(strstr(err, path));
        enc_conf_destroy(c);
        unlink(path);
}

static void test_signal_keys_are_checked_against_the_plugin(void **st) {
        (void)st;
        char err[256];
        enc_conf_t *c = t_conf("signal.active_days.1.windows=7,30", NULL);
        assert_int_equal(enc_signals_check_conf(c, err, sizeof(err)), 0);
        enc_conf_destroy(c);
        c = t_conf("signal.active_days.1.window=7", NULL);
        assert_int_equal(enc_signals_check_conf(c, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "signal.active_days.1.window"));
        enc_conf_destroy(c);
        c = t_conf("signal.active_days.1.windows=0", NULL);
        assert_int_equal(enc_signals_check_conf(c, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "signal.active_days.1.windows"));
        enc_conf_destroy(c);
        c = t_conf("signals=active_days:1,nosuch:1", NULL);
        assert_int_equal(enc_signals_check_conf(c, err, sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "nosuch"));
        enc_conf_destroy(c);
}

/* input.partitions: all, or numbers and ranges; anything else names the
 * key. */
static void test_partition_sets_parse_exactly(void **st) {
        (void)st;
        int64_t lo[4], hi[4];
        assert_int_equal(enc_cfg_parse_partitions("all", lo, hi, 4), 0);
        assert_int_equal(enc_cfg_parse_partitions("0,2,4-7", lo, hi, 4), 3);
        assert_int_equal(lo[0], 0);
        assert_int_equal(hi[0], 0);
        assert_int_equal(lo[1], 2);
        assert_int_equal(hi[1], 2);
        assert_int_equal(lo[2], 4);
        assert_int_equal(hi[2], 7);
        assert_int_equal(enc_cfg_parse_partitions("12", lo, hi, 4), 1);
        assert_int_equal(lo[0], 12);
        assert_int_equal(hi[0], 12);
        const char *bad[] = {"", "x", "1,", ",1", "3-1", "-1", "1-",
                             "1--2", "1 ,2", "2147483648", "0-2147483648",
                             "+1", "1;2", NULL};
        for (int i = 0; bad[i]; i++)
                assert_int_equal(enc_cfg_parse_partitions(bad[i], lo, hi, 4),
                                 -1);

        char err[256];
        enc_conf_t *c = enc_conf_new();
        assert_int_equal(enc_conf_set(c, "input.partitions", "0-3,8", err,
                                      sizeof(err)),
                         ENC_OK);
        assert_int_equal(enc_conf_set(c, "input.partitions", "3-1", err,
                                      sizeof(err)),
                         ENC_ERR_CONFIG);
        assert_non_null(strstr(err, "input.partitions: \"3-1\" is not a "
                                    "set of partitions"));
        assert_int_equal(enc_conf_set(c, "input.partitions", "", err,
                                      sizeof(err)),
                         ENC_OK); /* empty: the group assigns */
        enc_conf_destroy(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_and_overrides),
                cmocka_unit_test(test_bad_keys_and_values_name_the_key),
                cmocka_unit_test(test_ini_file_sections_join_with_dots),
                cmocka_unit_test(test_partition_sets_parse_exactly),
                cmocka_unit_test(
                        test_signal_keys_are_checked_against_the_plugin),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
