/*
 * fuzz_seeds.c -- writes the seed corpora of the fuzz harnesses from real
 * records, so fuzzing starts from what encore actually reads:
 *
 *   fuzz_seeds FUZZ_DIR SOURCE_DIR    (ops/fuzz --seeds runs it as
 *                                      fuzz_seeds tests/fuzz .)
 *
 *   DIR = FUZZ_DIR/corpus
 *   DIR/event/   PlayEvents from the generator (schemas/gen.c), encoded by the
 *                codec in Confluent framing and as raw Avro, and the
 *                RewardUpdates the signals emitted from them, both ways;
 *   DIR/state/   user records (enc_user_record_encode) and each signal's
 *                own state (state_encode), snapshotted from the generated
 *                listening history at three points in time;
 *   DIR/config/  the configurations encore ships and documents (the
 *                default dump, every signal key, the README example, the
 *                compose file's encore.ini) in INI and key=value form;
 *   DIR/prior/   the built-in default prior, one as enc_prior_to_json
 *                writes it, and small hand-checked ones;
 *   DIR/idfilter/ id filters as enc_idfilter_save writes them (whole
 *                tables, a base and a delta, deltas only, none), in the
 *                input form of fuzz_idfilter.c;
 *   FUZZ_DIR/config.dict  a libFuzzer dictionary of every configuration
 *                key, signal name and enumerated value, from the same
 *                tables the configuration is checked against;
 *   FUZZ_DIR/prior.dict   the prior file's keys and JSON tokens.
 *
 * Signals are driven per user as state/engine.c drives them
 * (fuzz_engine.h): timers due at or before an event fire first, each at
 * its own time, and updates flow to later instances' on_update. Everything is a
 * function of fixed seeds, so running it again gives the same files.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "config.h"
#include "fuzz_engine.h"
#include "gen.h"
#include "idfilter.h"
#include "plugin.h"
#include "prior.h"
#include "users.h"

#define SEED_USERS_MAX 4096
#define SEED_INST_MAX  32

static const char *outdir;
static enc_codec_t *cf, *raw;
static enc_sig_instance_t *insts;
static int inst_cnt;
static int nfiles;

static void die(const char *what, const char *detail) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", what, detail);
        exit(1);
}

static void write_file(const char *sub, const char *name, const void *data,
                       size_t len) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", outdir, sub);
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
                die(path, strerror(errno));
        snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
        FILE *fp = fopen(path, "wb");
        if (!fp || fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
                die(path, strerror(errno));
        nfiles++;
}

/* ---- events and updates --------------------------------------------- */

static void seed_event(const enc_event_t *ev, int n) {
        enc_buf_t b;
        char name[64];
        enc_buf_init(&b, 0);
        if (enc_codec_encode_event(cf, ev, &b))
                die("encode event", ev->event_id);
        snprintf(name, sizeof(name), "event-confluent-%02d", n);
        write_file("event", name, b.data, b.len);
        enc_buf_reset(&b);
        if (enc_codec_encode_event(raw, ev, &b))
                die("encode event", ev->event_id);
        snprintf(name, sizeof(name), "event-raw-%02d", n);
        write_file("event", name, b.data, b.len);
        enc_buf_free(&b);
}

/* Keeps the first two updates of each signal and the first with an
 * estimate, a subject or a recommendation id. */
static void seed_update(const enc_update_t *up) {
        static int per_signal[SEED_INST_MAX];
        static bool estimate, subject, rec;
        int k = -1;
        for (int i = 0; i < inst_cnt; i++)
                if (!strcmp(insts[i].plugin->name, up->signal))
                        k = i;
        bool keep = k >= 0 && per_signal[k] < 2;
        if (up->has_estimate && !estimate)
                keep = estimate = true;
        if (up->subject && !subject)
                keep = subject = true;
        if (up->recommendation_id && !rec)
                keep = rec = true;
        if (!keep)
                return;
        int n = k >= 0 ? per_signal[k]++ : 0;
        enc_buf_t b;
        char name[96];
        enc_buf_init(&b, 0);
        if (enc_codec_encode_update(cf, up, &b))
                die("encode update", up->signal);
        snprintf(name, sizeof(name), "update-confluent-%s-%d%s%s%s", up->signal,
                 n, up->has_estimate ? "-estimate" : "",
                 up->subject ? "-subject" : "",
                 up->recommendation_id ? "-rec" : "");
        write_file("event", name, b.data, b.len);
        enc_buf_reset(&b);
        if (enc_codec_encode_update(raw, up, &b))
                die("encode update", up->signal);
        snprintf(name, sizeof(name), "update-raw-%s-%d", up->signal, n);
        write_file("event", name, b.data, b.len);
        enc_buf_free(&b);
}

/* ---- the users ------------------------------------------------------ */

typedef struct seed_user_s {
        char id[64];
        void *states[SEED_INST_MAX];
} seed_user_t;

static seed_user_t users[SEED_USERS_MAX];
static int nusers;

static seed_user_t *seed_user(const char *id) {
        for (int i = 0; i < nusers; i++)
                if (!strcmp(users[i].id, id))
                        return &users[i];
        if (nusers == SEED_USERS_MAX)
                die("users", "too many");
        seed_user_t *u = &users[nusers++];
        snprintf(u->id, sizeof(u->id), "%s", id);
        return u;
}

static enc_err_t seed_emitted(void *opaque, const enc_update_t *up) {
        (void)opaque;
        seed_update(up);
        return ENC_OK;
}

/* Timers due up to the event first (each at its own time), then the
 * event, as the engine orders them. */
static void seed_apply(const enc_event_t *ev) {
        seed_user_t *u = seed_user(ev->user_id);
        fz_eng_t eng = {insts, inst_cnt, u->states, u->id, seed_emitted, NULL};
        if (fz_eng_timers(&eng, ev->event_time, INT_MAX, NULL) ||
            fz_eng_event(&eng, ev))
                die("signals", ev->event_id);
}

/* Writes the record and the states of the users with the most state. */
static void seed_snapshot(int day) {
        int written = 0;
        for (int want = inst_cnt; want > 0 && written < 4; want--) {
                for (int k = 0; k < nusers && written < 4; k++) {
                        seed_user_t *u = &users[k];
                        int have = 0;
                        for (int i = 0; i < inst_cnt; i++)
                                have += u->states[i] != NULL;
                        if (have != want)
                                continue;
                        enc_buf_t b;
                        char name[128];
                        enc_buf_init(&b, 0);
                        if (enc_user_record_encode(insts, inst_cnt, u->states,
                                                   &b))
                                die("encode record", u->id);
                        snprintf(name, sizeof(name), "record-day%d-%.60s", day,
                                 u->id);
                        write_file("state", name, b.data, b.len);
                        for (int i = 0; i < inst_cnt; i++) {
                                if (!u->states[i])
                                        continue;
                                enc_buf_reset(&b);
                                if (insts[i].plugin->state_encode(
                                            insts[i].priv, u->states[i], &b))
                                        die("encode state", u->id);
                                snprintf(name, sizeof(name),
                                         "%.40s-day%d-%.60s",
                                         insts[i].plugin->name, day, u->id);
                                write_file("state", name, b.data, b.len);
                        }
                        enc_buf_free(&b);
                        written++;
                }
        }
}

static void seed_history(void) {
        char err[256];
        enc_gen_conf_t gc;
        enc_gen_conf_defaults(&gc);
        gc.seed = 7;
        gc.users = 40;
        gc.days = 75; /* past the 60-day horizon of discovery_habit */
        gc.artists = 300;
        gc.rec_share = 0.5;
        gc.adopt_prob = 0.3;
        enc_gen_t *g = enc_gen_new(&gc, err, sizeof(err));
        if (!g)
                die("generator", err);
        enc_event_t ev;
        int nev = 0, seen_reason = 0, seen_source = 0, kept = 0;
        bool rec = false, norec = false, nocohort = false;
        int64_t t0 = gc.start_time, day = 86400000;
        const int64_t snaps[3] = {t0 + 3 * day, t0 + 30 * day, t0 + 75 * day};
        int snap = 0;
        while (enc_gen_next(g, &ev) == ENC_OK) {
                while (snap < 3 && ev.event_time >= snaps[snap]) {
                        seed_snapshot((int)((snaps[snap] - t0) / day));
                        snap++;
                }
                /* Events that add something new: a reason, a source, with
                 * and without a recommendation or a cohort. */
                bool keep = !(seen_reason & (1 << ev.reason_end)) ||
                            !(seen_source & (1 << ev.source)) ||
                            (ev.recommendation_id && !rec) ||
                            (!ev.recommendation_id && !norec) ||
                            (!ev.cohort && !nocohort);
                if (keep && kept < 16) {
                        seen_reason |= 1 << ev.reason_end;
                        seen_source |= 1 << ev.source;
                        rec |= ev.recommendation_id != NULL;
                        norec |= ev.recommendation_id == NULL;
                        nocohort |= ev.cohort == NULL;
                        seed_event(&ev, kept++);
                }
                seed_apply(&ev);
                nev++;
        }
        while (snap < 3) {
                seed_snapshot((int)((snaps[snap] - t0) / day));
                snap++;
        }
        enc_gen_destroy(g);
        fprintf(stderr, "fuzz_seeds: %d events of %d users\n", nev, nusers);
}

/* ---- configurations ------------------------------------------------- */

static const char readme_ini[] =
        "input.topic = plays\n"
        "output.topic = rewards\n"
        "group.id = encore\n"
        "state.dir = /var/lib/encore\n"
        "\n"
        "[kafka]\n"
        "bootstrap.servers = kafka-1:9092,kafka-2:9092\n"
        "\n"
        "[signal.active_days.1]\n"
        "windows = 7,28\n";

static const char versions_ini[] =
        "; two versions side by side, a composite over both\n"
        "signals = active_days:1, session, discovery_habit:1, "
        "discovery_habit:2, progressive_reward:1, composite:1\n"
        "serde.framing = raw\n"
        "log.level = debug\n"
        "state.sync = yes\n"
        "[signal.discovery_habit.2]\n"
        "horizon.days = 60\n"
        "item = track\n"
        "max.items = 16\n"
        "[signal.composite.1]\n"
        "components = active_days/7d=0.2,discovery_habit:2=0.5,"
        "session=0.3\n"
        "ttl.days = 10\n"
        "[kafka.consumer]\n"
        "fetch.max.bytes = 1048576\n"
        "[kafka.producer]\n"
        "sasl.password = hunter2\n";

/* Every key of every plug-in at its default, as INI sections. */
static void seed_signal_keys(void) {
        enc_buf_t ini, kv;
        char line[512];
        enc_buf_init(&ini, 0);
        enc_buf_init(&kv, 0);
        for (const enc_signal_plugin_t *const *pp = enc_signal_plugins(); *pp;
             pp++) {
                snprintf(line, sizeof(line), "[signal.%s.1]\n", (*pp)->name);
                if (enc_buf_append(&ini, line, strlen(line)))
                        die("buffer", "full");
                for (const enc_cfg_key_t *k = (*pp)->config_keys; k && k->name;
                     k++) {
                        snprintf(line, sizeof(line), "%s = %s\n", k->name,
                                 k->def ? k->def : "");
                        if (enc_buf_append(&ini, line, strlen(line)))
                                die("buffer", "full");
                        snprintf(line, sizeof(line), "signal.%s.1.%s=%s\n",
                                 (*pp)->name, k->name, k->def ? k->def : "");
                        if (enc_buf_append(&kv, line, strlen(line)))
                                die("buffer", "full");
                }
        }
        write_file("config", "signal-keys.ini", ini.data, ini.len);
        write_file("config", "signal-keys.kv", kv.data, kv.len);
        enc_buf_free(&ini);
        enc_buf_free(&kv);
}

static void seed_configs(const char *srcdir) {
        /* The effective default configuration, as `encore config` dumps
         * it. */
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        enc_conf_t *conf = enc_conf_new();
        if (!mem || !conf)
                die("config", "out of memory");
        enc_conf_dump(conf, mem);
        fclose(mem);
        write_file("config", "default-dump.ini", text, len);
        free(text);
        enc_conf_destroy(conf);

        write_file("config", "readme-example.ini", readme_ini,
                   sizeof(readme_ini) - 1);
        write_file("config", "versions.ini", versions_ini,
                   sizeof(versions_ini) - 1);
        seed_signal_keys();

        char path[512];
        snprintf(path, sizeof(path), "%s/ops/docker/encore.ini", srcdir);
        FILE *fp = fopen(path, "rb");
        if (!fp)
                die(path, strerror(errno));
        char buf[8192];
        size_t n = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        write_file("config", "docker-encore.ini", buf, n);
}

/* ---- priors --------------------------------------------------------- */

static void seed_priors(void) {
        static const char *const small[] = {
                "{\"horizon_days\": 1, \"mu\": [1], \"cov\": [[0]]}\n",
                "{\"horizon_days\": 2, \"mu\": [1, 0.3],\n"
                " \"cov\": [[0, 0], [0, 0.21]], \"source\": \"hand\"}\n",
                "{\"horizon_days\": 3, \"mu\": [1, 0.4, 0.3],\n"
                " \"cov\": [[0, 0, 0], [0, 0.24, 0.1], [0, 0.1, 0.21]],\n"
                " \"source\": \"correlated days\", \"fitted_on\": 1200}\n",
                NULL};
        char name[32], err[256];
        size_t len;
        const char *def = enc_prior_default_json(&len);
        write_file("prior", "default.json", def, len);
        for (int i = 0; small[i]; i++) {
                snprintf(name, sizeof(name), "small-h%d.json", i + 1);
                write_file("prior", name, small[i], strlen(small[i]));
        }
        /* The form encore-fit-prior writes. */
        enc_prior_t *p;
        enc_buf_t b;
        if (enc_prior_parse(small[2], strlen(small[2]), "seed", &p, err,
                            sizeof(err)))
                die("prior", err);
        enc_buf_init(&b, 0);
        if (enc_prior_to_json(p, &b))
                die("prior", "to_json");
        write_file("prior", "written-h3.json", b.data, b.len);
        enc_buf_free(&b);
        enc_prior_destroy(p);
}

/* ---- id filters ----------------------------------------------------- */

/* What saves leave stored: keys and values (the seeds are small). */
typedef struct seed_kv_s {
        uint8_t key[13];
        size_t klen;
        uint8_t *val;
        size_t vlen;
} seed_kv_t;

static seed_kv_t idf_kv[64];
static int idf_n;

static seed_kv_t *idf_find(const void *k, size_t klen) {
        for (int i = 0; i < idf_n; i++)
                if (idf_kv[i].klen == klen && !memcmp(idf_kv[i].key, k, klen))
                        return &idf_kv[i];
        return NULL;
}

static void idf_put(void *o, int32_t part, const void *k, size_t klen,
                    const void *v, size_t vlen) {
        (void)o;
        (void)part;
        seed_kv_t *kv = idf_find(k, klen);
        if (!kv) {
                if (idf_n == 64 || klen > 13)
                        die("idfilter", "too many keys");
                kv = &idf_kv[idf_n++];
                memcpy(kv->key, k, klen);
                kv->klen = klen;
                kv->val = NULL;
        }
        free(kv->val);
        kv->val = malloc(vlen ? vlen : 1);
        if (!kv->val)
                die("idfilter", "out of memory");
        memcpy(kv->val, v, vlen);
        kv->vlen = vlen;
}

static void idf_drop(seed_kv_t *kv) {
        free(kv->val);
        *kv = idf_kv[--idf_n];
}

static void idf_del(void *o, int32_t part, const void *k, size_t klen) {
        (void)o;
        (void)part;
        seed_kv_t *kv = idf_find(k, klen);
        if (kv)
                idf_drop(kv);
}

static int idf_cmp(const void *a, size_t al, const void *b, size_t bl) {
        int c = memcmp(a, b, al < bl ? al : bl);
        return c ? c : (al > bl) - (al < bl);
}

static void idf_del_range(void *o, int32_t part, const void *lo, size_t ll,
                          const void *hi, size_t hl) {
        (void)o;
        (void)part;
        for (int i = 0; i < idf_n;) {
                if (idf_cmp(idf_kv[i].key, idf_kv[i].klen, lo, ll) >= 0 &&
                    idf_cmp(idf_kv[i].key, idf_kv[i].klen, hi, hl) < 0)
                        idf_drop(&idf_kv[i]);
                else
                        i++;
        }
}

static enc_err_t idf_get(void *o, int32_t part, const void *k, size_t klen,
                         enc_buf_t *out, bool *found) {
        (void)o;
        (void)part;
        enc_buf_reset(out);
        seed_kv_t *kv = idf_find(k, klen);
        *found = kv != NULL;
        return kv ? enc_buf_append(out, kv->val, kv->vlen) : ENC_OK;
}

static void idf_u16(enc_buf_t *b, size_t n) {
        enc_buf_put_u8(b, (uint8_t)(n >> 8));
        enc_buf_put_u8(b, (uint8_t)n);
}

/* The stored filter as fuzz_idfilter.c reads its input: flags, the header,
 * then per generation its base and deltas. */
static void idf_write(const char *name, uint8_t flags) {
        seed_kv_t *h = idf_find("I", 1);
        if (!h)
                die("idfilter", "no header");
        enc_buf_t b;
        enc_buf_init(&b, 1 << 20);
        enc_buf_put_u8(&b, flags);
        idf_u16(&b, h->vlen);
        if (enc_buf_append(&b, h->val, h->vlen))
                die("idfilter", "too large");
        size_t hl = 2 + (size_t)h->val[1] + 17;
        int ngen = h->val[hl - 1];
        for (int i = 0; i < ngen; i++) {
                const uint8_t *r = h->val + hl + (size_t)i * 39;
                uint8_t k[13] = {'I'};
                memcpy(k + 1, r, 8);
                for (int j = r[9] ? -1 : 0; j < r[38]; j++) {
                        size_t kl = 9;
                        if (j >= 0) {
                                k[9] = k[10] = k[11] = 0;
                                k[12] = (uint8_t)j;
                                kl = 13;
                        }
                        seed_kv_t *kv = idf_find(k, kl);
                        if (!kv)
                                die("idfilter", "a key is missing");
                        idf_u16(&b, kv->vlen);
                        if (enc_buf_append(&b, kv->val, kv->vlen))
                                die("idfilter", "too large");
                }
        }
        write_file("idfilter", name, b.data, b.len);
        enc_buf_free(&b);
}

static enc_idfilter_t *idf_new(void) {
        enc_idfilter_t *f = enc_idfilter_new(3600000, 1 << 20);
        if (!f || enc_idfilter_assign(f, 0, INT64_MIN))
                die("idfilter", "out of memory");
        return f;
}

static void idf_fill(enc_idfilter_t *f) {
        for (uint64_t i = 0; i < 192; i++)
                enc_idfilter_add(f, 0, (i + 1) << 32 | i, 1000 + (int64_t)i,
                                 INT64_MIN);
        enc_idfilter_add(f, 0, 0xABCDEF0100000000ULL, 2000, INT64_MIN);
}

static void idf_save(enc_idfilter_t *f, const enc_idfilter_io_t *io) {
        (void)enc_idfilter_save(f, 0, "T1", 2, io);
        enc_idfilter_saved(f, true);
}

static void seed_idfilters(void) {
        enc_idfilter_io_t io = {idf_put, idf_del, idf_del_range, idf_get, NULL};
        /* the first save of a partition: every table whole */
        enc_idfilter_t *f = idf_new();
        idf_fill(f);
        idf_save(f, &io);
        idf_write("whole-tables", 0);
        idf_write("whole-tables-cap", 2);
        idf_write("whole-tables-horizon", 4);
        idf_write("whole-tables-lowered", 8);
        enc_idfilter_add(f, 0, 0x5555555500000001ULL, 2001, INT64_MIN);
        idf_save(f, &io);
        idf_write("base-and-delta", 0);
        enc_idfilter_destroy(f);
        while (idf_n)
                idf_drop(&idf_kv[0]);
        /* generations started after a save: deltas over empty tables */
        f = idf_new();
        idf_save(f, &io);
        idf_write("empty", 0);
        idf_fill(f);
        idf_save(f, &io);
        for (uint64_t n = 0; n < 20; n++)
                enc_idfilter_add(f, 0, (0x9000 + n) << 32 | n,
                                 5000 + (int64_t)n, INT64_MIN);
        idf_save(f, &io);
        idf_write("deltas-only", 0);
        enc_idfilter_destroy(f);
        while (idf_n)
                idf_drop(&idf_kv[0]);
}

/* ---- the configuration dictionary ----------------------------------- */

static void dict_word(FILE *fp, const char *w, size_t len) {
        fputc('"', fp);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)w[i];
                if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f)
                        fprintf(fp, "\\x%02x", c);
                else
                        fputc(c, fp);
        }
        fputs("\"\n", fp);
}

static void dict_str(FILE *fp, const char *w) {
        dict_word(fp, w, strlen(w));
}

/* Each key, and each choice of an enumerated key. */
static void dict_table(FILE *fp, const enc_cfg_key_t *table) {
        for (const enc_cfg_key_t *k = table; k && k->name; k++) {
                dict_str(fp, k->name);
                for (const char *c = k->choices; c && *c;) {
                        size_t len = strcspn(c, "|");
                        dict_word(fp, c, len);
                        c += len + (c[len] == '|');
                }
        }
}

static void write_dict(const char *path) {
        static const char *const extra[] = {"[",
                                            "]",
                                            " = ",
                                            "=",
                                            ";",
                                            "#",
                                            ",",
                                            ":",
                                            "/",
                                            "\n",
                                            "kafka.",
                                            "kafka.consumer.",
                                            "kafka.producer.",
                                            "signal.",
                                            "bootstrap.servers",
                                            "sasl.password",
                                            "true",
                                            "false",
                                            "-1",
                                            "9223372036854775807",
                                            "1e308",
                                            "nan",
                                            NULL};
        FILE *fp = fopen(path, "w");
        if (!fp)
                die(path, strerror(errno));
        fputs("# libFuzzer dictionary for fuzz_config, written by fuzz_seeds\n"
              "# from the configuration tables. Do not edit.\n",
              fp);
        for (int i = 0; extra[i]; i++)
                dict_str(fp, extra[i]);
        dict_table(fp, enc_conf_core_keys());
        for (const enc_signal_plugin_t *const *pp = enc_signal_plugins(); *pp;
             pp++) {
                dict_str(fp, (*pp)->name);
                dict_table(fp, (*pp)->config_keys);
        }
        if (fclose(fp) != 0)
                die(path, strerror(errno));
}

static void write_prior_dict(const char *path) {
        static const char *const words[] = {"\"horizon_days\"",
                                            "\"mu\"",
                                            "\"cov\"",
                                            "\"source\"",
                                            "{",
                                            "}",
                                            "[",
                                            "]",
                                            ",",
                                            ":",
                                            "-0",
                                            "0.5",
                                            "1e308",
                                            "1e-320",
                                            "366",
                                            "367",
                                            "null",
                                            "true",
                                            "\"\\u0000\"",
                                            NULL};
        FILE *fp = fopen(path, "w");
        if (!fp)
                die(path, strerror(errno));
        fputs("# libFuzzer dictionary for fuzz_prior, written by fuzz_seeds.\n"
              "# Do not edit.\n",
              fp);
        for (int i = 0; words[i]; i++)
                dict_str(fp, words[i]);
        if (fclose(fp) != 0)
                die(path, strerror(errno));
}

int main(int argc, char **argv) {
        char err[512], path[512];
        if (argc != 3) {
                fprintf(stderr, "usage: %s FUZZ_DIR SOURCE_DIR\n", argv[0]);
                return 2;
        }
        snprintf(path, sizeof(path), "%s/corpus", argv[1]);
        outdir = path;
        if (mkdir(outdir, 0777) != 0 && errno != EEXIST)
                die(outdir, strerror(errno));

        enc_codec_conf_t cc;
        enc_codec_conf_defaults(&cc);
        cf = enc_codec_new(&cc, err, sizeof(err));
        cc.framing = ENC_FRAMING_RAW;
        raw = enc_codec_new(&cc, err, sizeof(err));
        if (!cf || !raw)
                die("codec", err);
        enc_conf_t *conf = enc_conf_new();
        if (!conf ||
            enc_signals_instantiate(conf, &insts, &inst_cnt, err, sizeof(err)))
                die("signals", err);
        if (inst_cnt > SEED_INST_MAX)
                die("signals", "too many instances");

        seed_history();
        seed_configs(argv[2]);
        seed_priors();
        seed_idfilters();
        char dict[512];
        snprintf(dict, sizeof(dict), "%s/config.dict", argv[1]);
        write_dict(dict);
        snprintf(dict, sizeof(dict), "%s/prior.dict", argv[1]);
        write_prior_dict(dict);

        for (int k = 0; k < nusers; k++)
                for (int i = 0; i < inst_cnt; i++)
                        if (users[k].states[i])
                                insts[i].plugin->state_free(insts[i].priv,
                                                            users[k].states[i]);
        enc_signals_destroy(insts, inst_cnt);
        enc_conf_destroy(conf);
        enc_codec_destroy(cf);
        enc_codec_destroy(raw);
        fprintf(stderr, "fuzz_seeds: wrote %d files under %s\n", nfiles,
                outdir);
        return 0;
}
