/*
 * fuzz_config.c -- the configuration parsers: an INI file through
 * enc_conf_load_file (base/config.c, libinih), then the signal keys
 * through enc_signals_check_conf (signals/registry.c and every plug-in's
 * init); and the same text, line by line, through enc_conf_set_kv (the
 * `--set key=value` path).
 *
 * The input is written to a memfd and loaded by its /proc/self/fd path, so
 * the real file path is exercised without touching the disk. Whatever the
 * text, loading must either succeed or fail with ENC_ERR_CONFIG; a
 * configuration that loads must answer every typed getter of the core
 * table, dump, and pass or fail the signal check without crashing.
 *
 * A configuration that passes the check must also run: its instances are
 * built as `encore run` builds them and given a short listening history of
 * one user (a recommended discovery, plays on later days, a skip, then
 * every timer for 400 days), as the engine would (fuzz_engine.h). Every
 * update must be encodable by the codec: the engine treats an encode
 * failure as fatal, so a configuration that passes --check-config but
 * makes an update the codec refuses would stop encore at its first output.
 *
 * One key is held back: signal.progressive_reward.<v>.prior.file names a
 * file the plug-in reads at init, and a fuzzer must not be steered into
 * reading /dev/stdin or a 2 GB file; such values are reset to "" (the
 * built-in prior) before the check. Seeds (tests/fuzz/corpus/config/) are
 * the shipped INI files, the README's example and `encore config` dumps.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "fuzz.h"
#include "fuzz_engine.h"
#include "plugin.h"

FUZZ_LSAN_FOR_AVRO()

#define FZ_INST_MAX     32
#define FZ_TIMER_ROUNDS 1000
/* 2026-01-05T00:00:00Z */
#define FZ_T0  ((int64_t)1767571200000)
#define FZ_DAY ((int64_t)86400000)

static enc_codec_t *codec;
static enc_buf_t out;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char err[256];
        (void)argc;
        (void)argv;
        codec = enc_codec_new(NULL, err, sizeof(err));
        FUZZ_SETUP(codec, err);
        enc_buf_init(&out, 0);
        return 0;
}

static enc_err_t fz_emitted(void *opaque, const enc_update_t *up) {
        (void)opaque;
        enc_buf_reset(&out);
        enc_err_t err = enc_codec_encode_update(codec, up, &out);
        if (err)
                fprintf(stderr, "update of %s:%d cannot be encoded: %s\n",
                        up->signal, (int)up->signal_version, enc_err2str(err));
        FUZZ_CHECK(err == ENC_OK);
        return ENC_OK;
}

/* One user's plays: a recommended discovery of a1, a1 again on days 1, 2
 * and 5 from the library, a skip of another artist. Then every timer. */
static void fz_run(const enc_sig_instance_t *insts, int cnt) {
        static const struct {
                int day, min;
                const char *artist;
                int64_t played;
                enc_reason_end_t end;
                enc_source_t src;
        } plays[] = {
                {0, 600, "a1", 200000, ENC_END_TRACK_DONE,
                 ENC_SRC_RECOMMENDATION},
                {0, 610, "a2", 5000, ENC_END_FORWARD, ENC_SRC_SEARCH},
                {1, 600, "a1", 40000, ENC_END_END_PLAY, ENC_SRC_LIBRARY},
                {2, 700, "a1", 190000, ENC_END_TRACK_DONE, ENC_SRC_LIBRARY},
                {5, 60, "a1", 31000, ENC_END_LOGOUT, ENC_SRC_RADIO},
        };
        void *states[FZ_INST_MAX] = {0};
        fz_eng_t eng = {insts, cnt, states, "u1", fz_emitted, NULL};
        char id[16];
        FUZZ_CHECK(cnt <= FZ_INST_MAX);
        for (size_t i = 0; i < sizeof(plays) / sizeof(plays[0]); i++) {
                snprintf(id, sizeof(id), "e%zu", i);
                enc_event_t ev = {
                        .event_id = id,
                        .user_id = "u1",
                        .track_id = "t1",
                        .artist_id = plays[i].artist,
                        .event_time = FZ_T0 + plays[i].day * FZ_DAY +
                                      plays[i].min * (int64_t)60000,
                        .ms_played = plays[i].played,
                        .track_duration_ms = 200000,
                        .reason_end = plays[i].end,
                        .source = plays[i].src,
                        .surface = "home",
                        .recommendation_id =
                                plays[i].src == ENC_SRC_RECOMMENDATION ? "rec-1"
                                                                       : NULL,
                        .cohort = "control",
                };
                enc_err_t err = fz_eng_timers(&eng, ev.event_time,
                                              FZ_TIMER_ROUNDS, NULL);
                FUZZ_CHECK(err == ENC_OK);
                FUZZ_CHECK(fz_eng_event(&eng, &ev) == ENC_OK);
        }
        FUZZ_CHECK(fz_eng_timers(&eng, FZ_T0 + 400 * FZ_DAY, FZ_TIMER_ROUNDS,
                                 NULL) == ENC_OK);
        fz_eng_free(&eng);
}

typedef struct fz_prior_keys_s {
        char **key;
        size_t n;
} fz_prior_keys_t;

static void fz_find_prior(const char *key, const char *value, void *opaque) {
        fz_prior_keys_t *pk = opaque;
        size_t kl = strlen(key), sl = strlen(".prior.file");
        if (kl < sl || strcmp(key + kl - sl, ".prior.file") || !*value)
                return;
        char **nk = realloc(pk->key, (pk->n + 1) * sizeof(*nk));
        FUZZ_SETUP(nk, "out of memory");
        pk->key = nk;
        pk->key[pk->n] = strdup(key);
        FUZZ_SETUP(pk->key[pk->n], "out of memory");
        pk->n++;
}

static void fz_exercise(enc_conf_t *conf) {
        char err[512];
        fz_prior_keys_t pk = {NULL, 0};

        for (const enc_cfg_key_t *k = enc_conf_core_keys(); k->name; k++) {
                FUZZ_CHECK(enc_conf_get(conf, k->name) != NULL);
                switch (k->type) {
                case ENC_CFG_INT: {
                        int64_t v = enc_conf_get_int(conf, k->name);
                        /* set values were checked against the range */
                        FUZZ_CHECK(v >= k->min && v <= k->max);
                        break;
                }
                case ENC_CFG_BOOL:
                        (void)enc_conf_get_bool(conf, k->name);
                        break;
                case ENC_CFG_DOUBLE:
                        (void)enc_conf_get_double(conf, k->name);
                        break;
                default:
                        break;
                }
        }
        FILE *devnull = fopen("/dev/null", "w");
        FUZZ_SETUP(devnull, "cannot open /dev/null");
        enc_conf_dump(conf, devnull);
        fclose(devnull);

        enc_conf_foreach(conf, "signal.", fz_find_prior, &pk);
        for (size_t i = 0; i < pk.n; i++) {
                FUZZ_CHECK(enc_conf_set(conf, pk.key[i], "", err,
                                        sizeof(err)) == ENC_OK);
                free(pk.key[i]);
        }
        free(pk.key);

        enc_err_t e = enc_signals_check_conf(conf, err, sizeof(err));
        FUZZ_CHECK(e == ENC_OK || e == ENC_ERR_CONFIG);
        if (e == ENC_OK) {
                enc_sig_instance_t *insts;
                int cnt;
                FUZZ_CHECK(enc_signals_instantiate(conf, &insts, &cnt, err,
                                                   sizeof(err)) == ENC_OK);
                fz_run(insts, cnt);
                enc_signals_destroy(insts, cnt);
        }
}

static void fz_load_file(const uint8_t *data, size_t size) {
        char path[64], err[512];
        int fd = memfd_create("encore-fuzz.ini", MFD_CLOEXEC);
        FUZZ_SETUP(fd >= 0, "memfd_create");
        for (size_t off = 0; off < size;) {
                ssize_t n = write(fd, data + off, size - off);
                FUZZ_SETUP(n > 0, "write to memfd");
                off += (size_t)n;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        enc_conf_t *conf = enc_conf_new();
        FUZZ_SETUP(conf, "out of memory");
        enc_err_t e = enc_conf_load_file(conf, path, err, sizeof(err));
        FUZZ_CHECK(e == ENC_OK || e == ENC_ERR_CONFIG);
        if (e == ENC_OK)
                fz_exercise(conf);
        enc_conf_destroy(conf);
        close(fd);
}

/* Each line as a --set argument; the first failure stops, as the CLI
 * does. */
static void fz_set_lines(const uint8_t *data, size_t size) {
        char err[512];
        enc_conf_t *conf = enc_conf_new();
        FUZZ_SETUP(conf, "out of memory");
        enc_err_t e = ENC_OK;
        for (size_t off = 0; off < size && e == ENC_OK;) {
                const uint8_t *nl = memchr(data + off, '\n', size - off);
                size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
                char *line = malloc(len + 1);
                FUZZ_SETUP(line, "out of memory");
                memcpy(line, data + off, len);
                line[len] = '\0';
                e = enc_conf_set_kv(conf, line, err, sizeof(err));
                FUZZ_CHECK(e == ENC_OK || e == ENC_ERR_CONFIG);
                free(line);
                off += len + 1;
        }
        if (e == ENC_OK)
                fz_exercise(conf);
        enc_conf_destroy(conf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fz_load_file(data, size);
        fz_set_lines(data, size);
        return 0;
}
