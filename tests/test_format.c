/*
 * test_format.c -- the store's on-disk format marker, the open that
 * recognises a store of the previous release, the refusal of formats this
 * encore does not read, and a restore meeting a user record of an unknown
 * version. Real RocksDB in temporary directories; stores of "another
 * release" are made by changing the marker or a record with RocksDB's own
 * C API, behind encore's back.
 */
#include "harness.h"

#include <rocksdb/c.h>

#include "restore.h"

/* The marker as written by hand: key "encore.store.format" in the default
 * family, value "ENCSTORE" then the format as a u32be. */
#define T_KEY "encore.store.format"
static const char t_marker1[12] = {'E', 'N', 'C', 'S', 'T', 'O',
                                   'R', 'E', 0,   0,   0,   1};

/* The refusal's tail, in full: the rebuild steps (README, "Recovery and
 * scale-out": a partition with no local state is restored in full). */
#define T_REBUILD                                                              \
        "this encore reads format 1; to rebuild it, stop encore, delete "      \
        "the state directory and start encore again: each partition is "       \
        "restored from the changelog topic on assignment "                     \
        "(changelog.enable=true, the default)"

/* A user record of format 1: version 2, wake 100 (zigzag 200), no
 * sections. */
static const uint8_t t_rec[] = {2, 0xc8, 0x01, 0};

/* RocksDB opened directly, as another release of encore would. */
typedef struct t_raw_s {
        rocksdb_t *db;
        rocksdb_options_t *opts;
        rocksdb_column_family_handle_t *cf[4]; /* default users timers meta */
} t_raw_t;

static void t_raw_open(t_raw_t *r, const char *dir) {
        static const char *const names[4] = {"default", "users", "timers",
                                             "meta"};
        const rocksdb_options_t *cfo[4];
        char *rerr = NULL;
        r->opts = rocksdb_options_create();
        for (int i = 0; i < 4; i++)
                cfo[i] = r->opts;
        r->db = rocksdb_open_column_families(r->opts, dir, 4, names, cfo, r->cf,
                                             &rerr);
        if (rerr)
                fprintf(stderr, "raw open: %s\n", rerr);
        assert_null(rerr);
}

static void t_raw_close(t_raw_t *r) {
        for (int i = 0; i < 4; i++)
                rocksdb_column_family_handle_destroy(r->cf[i]);
        rocksdb_close(r->db);
        rocksdb_options_destroy(r->opts);
}

static void t_raw_put(t_raw_t *r, int cf, const char *k, size_t klen,
                      const void *v, size_t vlen) {
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        char *rerr = NULL;
        rocksdb_put_cf(r->db, wo, r->cf[cf], k, klen, v, vlen, &rerr);
        rocksdb_writeoptions_destroy(wo);
        assert_null(rerr);
}

static void t_raw_del(t_raw_t *r, int cf, const char *k, size_t klen) {
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        char *rerr = NULL;
        rocksdb_delete_cf(r->db, wo, r->cf[cf], k, klen, &rerr);
        rocksdb_writeoptions_destroy(wo);
        assert_null(rerr);
}

/* The marker's value (caller frees with rocksdb_free), NULL if none. */
static char *t_raw_marker(t_raw_t *r, size_t *len) {
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        char *rerr = NULL;
        char *v = rocksdb_get_cf(r->db, ro, r->cf[0], T_KEY, sizeof(T_KEY) - 1,
                                 len, &rerr);
        rocksdb_readoptions_destroy(ro);
        assert_null(rerr);
        return v;
}

static void t_assert_marker1(const char *dir) {
        t_raw_t r;
        t_raw_open(&r, dir);
        size_t len = 0;
        char *v = t_raw_marker(&r, &len);
        assert_non_null(v);
        assert_int_equal(len, 12);
        assert_memory_equal(v, t_marker1, 12);
        rocksdb_free(v);
        t_raw_close(&r);
}

static enc_store_t *t_open(const char *dir, char *err, size_t errlen) {
        enc_store_conf_t sc = {0};
        return enc_store_open(dir, &sc, err, errlen);
}

/* A store with one user (partition 1, "ann", t_rec) and a position,
 * written by this encore, then closed. */
static char *t_store_with_ann(void) {
        char err[512];
        char *dir = t_tmpdir("format");
        enc_store_t *s = t_open(dir, err, sizeof(err));
        assert_non_null(s);
        enc_store_put_user(s, 1, "ann", 3, t_rec, sizeof(t_rec));
        enc_store_meta_t m = {10, 12, 5000, 4000, 7, 4500};
        enc_store_put_meta(s, 1, &m);
        assert_int_equal(enc_store_commit(s, err, sizeof(err)), 0);
        enc_store_close(s);
        return dir;
}

/* A new store is marked at open: format 1, bytes as written by hand. */
static void test_new_store_gets_the_format_1_marker(void **st) {
        (void)st;
        char err[512];
        assert_int_equal(ENC_STORE_FORMAT, 1);
        char *dir = t_tmpdir("format");
        enc_store_t *s = t_open(dir, err, sizeof(err));
        assert_non_null(s);
        enc_store_close(s);
        t_assert_marker1(dir);
        /* and it opens again as it is */
        s = t_open(dir, err, sizeof(err));
        assert_non_null(s);
        enc_store_close(s);
        t_assert_marker1(dir);
        t_rmtree(dir);
        free(dir);
}

/* A store of the previous release (no marker, format 1's layout and
 * records) opens, keeps its state, and gets the marker. */
static void test_unmarked_store_of_the_previous_release_is_marked(void **st) {
        (void)st;
        char err[512];
        char *dir = t_store_with_ann();
        t_raw_t r;
        t_raw_open(&r, dir);
        t_raw_del(&r, 0, T_KEY, sizeof(T_KEY) - 1);
        size_t len;
        assert_null(t_raw_marker(&r, &len));
        t_raw_close(&r);

        enc_store_t *s = t_open(dir, err, sizeof(err));
        if (!s)
                fprintf(stderr, "%s\n", err);
        assert_non_null(s);
        enc_buf_t v;
        bool found = false;
        enc_buf_init(&v, 4096);
        assert_int_equal(enc_store_get_user(s, 1, "ann", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(v.len, sizeof(t_rec));
        assert_memory_equal(v.data, t_rec, sizeof(t_rec));
        enc_store_meta_t m;
        assert_int_equal(enc_store_get_meta(s, 1, &m, &found, err, sizeof(err)),
                         0);
        assert_true(found);
        assert_int_equal(m.next_offset, 12);
        enc_buf_free(&v);
        enc_store_close(s);
        t_assert_marker1(dir);
        t_rmtree(dir);
        free(dir);
}

/* Opens @p dir expecting the refusal "state store DIR: FOUND, " T_REBUILD
 * with ENC_ERR_STATE's NULL. */
static void t_assert_refused(const char *dir, const char *found) {
        char err[512], want[512];
        snprintf(want, sizeof(want), "state store %s: %s, %s", dir, found,
                 T_REBUILD);
        err[0] = '\0';
        enc_store_t *s = t_open(dir, err, sizeof(err));
        assert_null(s);
        assert_string_equal(err, want);
}

/* A marker naming format 2 (a newer encore), 0, or bytes that are no
 * marker: refused, naming what was found and the rebuild steps, and the
 * store is left as it was. */
static void test_other_formats_are_refused_with_the_rebuild_steps(void **st) {
        (void)st;
        char *dir = t_store_with_ann();
        t_raw_t r;
        char m2[12];
        memcpy(m2, t_marker1, 12);
        m2[11] = 2;
        t_raw_open(&r, dir);
        t_raw_put(&r, 0, T_KEY, sizeof(T_KEY) - 1, m2, 12);
        t_raw_close(&r);
        t_assert_refused(dir, "format 2 found");
        /* untouched: the marker still says 2 */
        t_raw_open(&r, dir);
        size_t len = 0;
        char *v = t_raw_marker(&r, &len);
        assert_non_null(v);
        assert_int_equal(len, 12);
        assert_memory_equal(v, m2, 12);
        rocksdb_free(v);
        /* format 2^32 - 1 prints as unsigned */
        memset(m2 + 8, 0xff, 4);
        t_raw_put(&r, 0, T_KEY, sizeof(T_KEY) - 1, m2, 12);
        t_raw_close(&r);
        t_assert_refused(dir, "format 4294967295 found");

        t_raw_open(&r, dir);
        memset(m2 + 8, 0, 4);
        t_raw_put(&r, 0, T_KEY, sizeof(T_KEY) - 1, m2, 12);
        t_raw_close(&r);
        t_assert_refused(dir, "format 0 found");

        t_raw_open(&r, dir);
        t_raw_put(&r, 0, T_KEY, sizeof(T_KEY) - 1, "ENCSTORX\0\0\0\1", 12);
        t_raw_close(&r);
        t_assert_refused(dir, "an unreadable format marker (12 bytes) found");

        t_raw_open(&r, dir);
        t_raw_put(&r, 0, T_KEY, sizeof(T_KEY) - 1, "ENCSTORE\0\0\1", 11);
        t_raw_close(&r);
        t_assert_refused(dir, "an unreadable format marker (11 bytes) found");
        t_rmtree(dir);
        free(dir);
}

/* No marker and a users record of version 9 (or an empty one, or a key in
 * the default family): not the previous release's layout, refused; the
 * marker is not written, so a second open refuses again; with the store
 * put right it opens and is marked. A marked store is trusted: the same record
 * there opens (a record that does not decode is then the cache's business:
 * counted corrupt). */
static void
test_unmarked_store_with_unknown_user_records_is_refused(void **st) {
        (void)st;
        char err[512];
        char *dir = t_store_with_ann();
        static const uint8_t rec9[] = {9, 0xc8, 0x01, 0};
        uint8_t k[7] = {0, 0, 0, 1, 'a', 'n', 'n'};
        t_raw_t r;
        t_raw_open(&r, dir);
        t_raw_put(&r, 1, (const char *)k, sizeof(k), rec9, sizeof(rec9));
        t_raw_close(&r);
        /* marked: opens */
        enc_store_t *s = t_open(dir, err, sizeof(err));
        assert_non_null(s);
        enc_store_close(s);

        t_raw_open(&r, dir);
        t_raw_del(&r, 0, T_KEY, sizeof(T_KEY) - 1);
        t_raw_close(&r);
        const char *found = "no format marker and users records of version 9 "
                            "found (format 1 holds version 2)";
        t_assert_refused(dir, found);
        t_assert_refused(dir, found);
        t_raw_open(&r, dir);
        size_t len;
        assert_null(t_raw_marker(&r, &len));
        /* an empty record: refused too */
        t_raw_put(&r, 1, (const char *)k, sizeof(k), "", 0);
        t_raw_close(&r);
        t_assert_refused(dir, "no format marker and an empty users record "
                              "found");
        /* a good record again, and a key in the default family, where no
         * release wrote: not a store of the previous release either */
        t_raw_open(&r, dir);
        t_raw_put(&r, 1, (const char *)k, sizeof(k), t_rec, sizeof(t_rec));
        t_raw_put(&r, 0, "other", 5, "x", 1);
        t_raw_close(&r);
        t_assert_refused(dir, "no format marker and keys in the default "
                              "column family found");
        t_raw_open(&r, dir);
        t_raw_del(&r, 0, "other", 5);
        t_raw_close(&r);
        enc_store_t *s2 = t_open(dir, err, sizeof(err));
        assert_non_null(s2);
        enc_store_close(s2);
        t_assert_marker1(dir);
        t_rmtree(dir);
        free(dir);
}

/* The column families RocksDB lists for @p dir, joined by ',' into @p out.
 */
static void t_families(const char *dir, char *out, size_t outlen) {
        rocksdb_options_t *o = rocksdb_options_create();
        char *rerr = NULL;
        size_t n = 0;
        char **names = rocksdb_list_column_families(o, dir, &n, &rerr);
        assert_null(rerr);
        out[0] = '\0';
        for (size_t i = 0; i < n; i++)
                snprintf(out + strlen(out), outlen - strlen(out), "%s%s",
                         i ? "," : "", names[i]);
        rocksdb_list_column_families_destroy(names, n);
        rocksdb_options_destroy(o);
}

/* A store with a column family this encore does not know (a newer format
 * adding one) or without one of its own is refused by name, and the open
 * creates nothing in it. */
static void test_stores_with_other_column_families_are_refused(void **st) {
        (void)st;
        char fams[256];
        char *dir = t_store_with_ann();
        t_raw_t r;
        t_raw_open(&r, dir);
        char *rerr = NULL;
        rocksdb_column_family_handle_t *extra = rocksdb_create_column_family(
                r.db, r.opts, "users_by_signal", &rerr);
        assert_null(rerr);
        rocksdb_column_family_handle_destroy(extra);
        t_raw_close(&r);
        t_assert_refused(dir, "a store with a column family "
                              "\"users_by_signal\" found");
        t_families(dir, fams, sizeof(fams));
        assert_string_equal(fams, "default,users,timers,meta,users_by_signal");
        t_rmtree(dir);
        free(dir);

        dir = t_store_with_ann();
        t_raw_open(&r, dir);
        rocksdb_drop_column_family(r.db, r.cf[2], &rerr);
        assert_null(rerr);
        t_raw_close(&r);
        t_families(dir, fams, sizeof(fams));
        assert_string_equal(fams, "default,users,meta");
        t_assert_refused(dir, "a store without the column family \"timers\" "
                              "found");
        t_families(dir, fams, sizeof(fams));
        assert_string_equal(fams, "default,users,meta");
        t_rmtree(dir);
        free(dir);
}

/* A restore meeting a user record of version 3 stops with an error naming
 * it; nothing of that commit becomes durable (the version-2 record before
 * it in the same commit included). */
static void test_restore_stops_at_an_unknown_user_record_version(void **st) {
        (void)st;
        char err[512];
        char *dir = t_tmpdir("format");
        enc_store_t *s = t_open(dir, err, sizeof(err));
        assert_non_null(s);
        enc_restore_t *r = enc_restore_new(s, 0, true, err, sizeof(err));
        assert_non_null(r);
        static const uint8_t rec3[] = {3, 0xc8, 0x01, 0};
        assert_int_equal(
                enc_restore_record(r, "B", 1, NULL, 0, 0, err, sizeof(err)), 0);
        assert_int_equal(enc_restore_record(r, "Uann", 4, t_rec, sizeof(t_rec),
                                            1, err, sizeof(err)),
                         0);
        assert_int_equal(enc_restore_record(r, "Ubob", 4, rec3, sizeof(rec3), 2,
                                            err, sizeof(err)),
                         ENC_ERR_CORRUPT);
        assert_string_equal(err, "changelog partition 0 offset 2: user "
                                 "record of version 3, this encore reads "
                                 "version 2 (was the changelog written by a "
                                 "newer encore?)");
        enc_restore_stats_t rs;
        enc_restore_finish(r, &rs);
        enc_restore_destroy(r);
        assert_int_equal(rs.users, 0);
        assert_int_equal(rs.discarded, 1);
        enc_buf_t v;
        bool found = true;
        enc_buf_init(&v, 4096);
        assert_int_equal(enc_store_get_user(s, 0, "ann", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);
        assert_int_equal(enc_store_get_user(s, 0, "bob", 3, &v, &found, err,
                                            sizeof(err)),
                         0);
        assert_false(found);
        enc_buf_free(&v);
        enc_store_close(s);
        t_rmtree(dir);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_store_gets_the_format_1_marker),
                cmocka_unit_test(
                        test_unmarked_store_of_the_previous_release_is_marked),
                cmocka_unit_test(
                        test_other_formats_are_refused_with_the_rebuild_steps),
                cmocka_unit_test(
                        test_unmarked_store_with_unknown_user_records_is_refused),
                cmocka_unit_test(
                        test_stores_with_other_column_families_are_refused),
                cmocka_unit_test(
                        test_restore_stops_at_an_unknown_user_record_version),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
