/*
 * bench.c -- encore-bench: the performance and soak benchmarks.
 *
 *   encore-bench b1      in-process pipeline (decode, state, every default
 *                        signal, encode) over a generated log, no broker,
 *                        beside the rate of decoding alone on the same bytes
 *   encore-bench decode  decoding alone: fast path and Avro C
 *   encore-bench b2      end to end over the embedded broker: encore beside
 *                        a raw librdkafka consume-and-produce passthrough
 *   encore-bench b3      recovery: SIGKILL (and SIGTERM) to processing again
 *   encore-bench mem     peak RSS of encore with 10M users of state on disk
 *   encore-bench soak    a rolling population for simulated weeks: user
 *                        keys and RocksDB size per week (bounded state)
 *   encore-bench reuse   b1's log without the engine: LRU reuse distances
 *                        of its users, what any user cache could hit
 *
 * DESIGN
 * Each figure is printed as one "RESULT name value unit" line on stdout;
 * everything else (progress, diagnostics) goes to stderr. ops/bench/run
 * collects the RESULT lines into ops/bench/RESULTS.md with the machine and
 * the command lines, so every number there can be reproduced by pasting
 * its command.
 *
 * The benchmarks drive encore only through its public module APIs (the
 * engine, the pipeline, the embedded broker) or as the `encore` binary in a
 * child process; they never reach into a module's internals, so what they
 * measure is what ships. Inputs are generated up front into memory where
 * the generator's own cost would otherwise be measured with encore's.
 *
 * Never: report a figure from a run whose counts do not add up (every
 * benchmark checks that what went in came out before printing a rate).
 */
#define XXH_INLINE_ALL
#include "bench.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "codec.h"

/* ---- clocks and process figures -------------------------------------- */

double enc_bench_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t enc_bench_wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double ts_seconds(const struct timespec *ts) {
        return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

double enc_bench_cpu_process(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts_seconds(&ts);
}

double enc_bench_cpu_thread(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts_seconds(&ts);
}

static long status_kib(pid_t pid, const char *field) {
        char path[64], line[256];
        size_t flen = strlen(field);
        long v = -1;
        if (pid)
                snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        else
                snprintf(path, sizeof(path), "/proc/self/status");
        FILE *f = fopen(path, "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (!strncmp(line, field, flen) && line[flen] == ':') {
                        v = strtol(line + flen + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

long enc_bench_rss_peak_kib(pid_t pid) {
        return status_kib(pid, "VmHWM");
}

long enc_bench_rss_kib(pid_t pid) {
        return status_kib(pid, "VmRSS");
}

int enc_bench_pin_cpu(int cpu) {
        if (cpu < 0)
                return 0;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return sched_setaffinity(0, sizeof(set), &set);
}

static uint64_t du_total;

static int du_cb(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw) {
        (void)path;
        (void)flag;
        (void)ftw;
        du_total += (uint64_t)sb->st_blocks * 512;
        return 0;
}

uint64_t enc_bench_du(const char *dir) {
        du_total = 0;
        nftw(dir, du_cb, 16, FTW_PHYS);
        return du_total;
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw) {
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(path);
}

void enc_bench_rmtree(const char *dir) {
        if (dir)
                nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *enc_bench_tmpdir(const char *tag) {
        const char *base = getenv("ENCORE_BENCH_DIR");
        char *d = malloc(512);
        if (!d)
                return NULL;
        snprintf(d, 512, "%s/encore-bench-%s-XXXXXX", base ? base : "/tmp",
                 tag);
        if (!mkdtemp(d)) {
                fprintf(stderr, "mkdtemp %s: %s\n", d, strerror(errno));
                free(d);
                return NULL;
        }
        return d;
}

/* ---- results --------------------------------------------------------- */

static double t_start;

void enc_bench_result(const char *name, double value, const char *unit) {
        /* Whole numbers for anything of 100 or more (rates, sizes), four
         * significant digits for ratios and small figures. */
        if (value >= 100 || value <= -100)
                printf("RESULT %s %.0f %s\n", name, value, unit);
        else
                printf("RESULT %s %.4g %s\n", name, value, unit);
        fflush(stdout);
}

void enc_bench_result_str(const char *name, const char *value) {
        printf("RESULT %s %s -\n", name, value);
        fflush(stdout);
}

void enc_bench_log(const char *fmt, ...) {
        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        fprintf(stderr, "[%7.1fs] %s\n", enc_bench_now() - t_start, line);
}

/* ---- the log ---------------------------------------------------------- */

int32_t enc_bench_partition(const char *key, size_t klen, int partitions) {
        return (int32_t)(XXH3_64bits(key, klen) % (uint64_t)partitions);
}

static enc_err_t log_reserve(enc_bench_log_t *log, size_t bytes) {
        if (log->n == log->cap) {
                size_t nc = log->cap ? log->cap * 2 : 1 << 16;
                enc_bench_rec_t *nr = realloc(log->recs, nc * sizeof(*nr));
                if (!nr)
                        return ENC_ERR_NOMEM;
                log->recs = nr;
                log->cap = nc;
        }
        if (log->arena_len + bytes > log->arena_cap) {
                size_t nc = log->arena_cap ? log->arena_cap * 2 : 1 << 24;
                while (nc < log->arena_len + bytes)
                        nc *= 2;
                uint8_t *na = realloc(log->arena, nc);
                if (!na)
                        return ENC_ERR_NOMEM;
                log->arena = na;
                log->arena_cap = nc;
        }
        return ENC_OK;
}

enc_err_t enc_bench_log_generate(enc_bench_log_t *log, const enc_gen_conf_t *gc,
                                 uint64_t count, int partitions, char *errstr,
                                 size_t errstr_size) {
        memset(log, 0, sizeof(*log));
        log->partitions = partitions;
        log->next_offset = calloc((size_t)partitions, sizeof(int64_t));
        enc_gen_t *g = enc_gen_new(gc, errstr, errstr_size);
        enc_codec_t *codec = enc_codec_new(NULL, errstr, errstr_size);
        enc_buf_t b;
        enc_err_t err = ENC_OK;
        enc_buf_init(&b, 1 << 20);
        if (!g || !codec || !log->next_offset) {
                err = ENC_ERR_NOMEM;
                goto done;
        }
        log->first_time = INT64_MAX;
        log->last_time = INT64_MIN;
        enc_event_t ev;
        while ((!count || log->n < count) && enc_gen_next(g, &ev) == ENC_OK) {
                enc_buf_reset(&b);
                if ((err = enc_codec_encode_event(codec, &ev, &b))) {
                        enc_seterr(errstr, errstr_size, err, "encode: %s",
                                   enc_err2str(err));
                        goto done;
                }
                size_t klen = strlen(ev.user_id);
                if ((err = log_reserve(log, b.len + klen))) {
                        enc_seterr(errstr, errstr_size, err,
                                   "out of memory after %zu records", log->n);
                        goto done;
                }
                enc_bench_rec_t *r = &log->recs[log->n++];
                r->at = log->arena_len;
                r->val_len = (uint32_t)b.len;
                r->key_len = (uint16_t)klen;
                r->partition =
                        enc_bench_partition(ev.user_id, klen, partitions);
                r->offset = log->next_offset[r->partition]++;
                r->time = ev.event_time;
                memcpy(log->arena + log->arena_len, b.data, b.len);
                memcpy(log->arena + log->arena_len + b.len, ev.user_id, klen);
                log->arena_len += b.len + klen;
                if (ev.event_time < log->first_time)
                        log->first_time = ev.event_time;
                if (ev.event_time > log->last_time)
                        log->last_time = ev.event_time;
        }
done:
        enc_buf_free(&b);
        enc_codec_destroy(codec);
        enc_gen_destroy(g);
        return err;
}

void enc_bench_log_free(enc_bench_log_t *log) {
        free(log->arena);
        free(log->recs);
        free(log->next_offset);
        memset(log, 0, sizeof(*log));
}

/* ---- the synthetic population ----------------------------------------- */

void enc_bench_synth_init(enc_bench_synth_t *s, uint64_t users, int64_t t0,
                          int64_t step_ms) {
        memset(s, 0, sizeof(*s));
        s->users = users;
        s->t0 = t0;
        s->step_ms = step_ms;
}

static uint64_t mix64(uint64_t z) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

void enc_bench_synth_event(enc_bench_synth_t *s, uint64_t i, bool seed,
                           enc_event_t *ev) {
        static const char *const surfaces[] = {"home", "discover_weekly",
                                               "search", "library"};
        static const enc_source_t others[] = {ENC_SRC_LIBRARY, ENC_SRC_PLAYLIST,
                                              ENC_SRC_SEARCH};
        uint64_t h = mix64(i + 0x9e3779b97f4a7c15ULL);
        uint64_t user = seed ? i % s->users : mix64(h) % s->users;
        uint64_t uh = mix64(user ^ 0x5bd1e995);
        /* a skewed artist: squares bunch the draws towards a0 */
        uint64_t a = ((h >> 8) % 2000) * ((h >> 8) % 2000) / 400;
        snprintf(s->ids[0], sizeof(s->ids[0]), "%c%" PRIu64, seed ? 's' : 'l',
                 i);
        snprintf(s->ids[1], sizeof(s->ids[1]), "u%" PRIu64, user);
        snprintf(s->ids[2], sizeof(s->ids[2]), "t%" PRIu64 "-%u", a,
                 (unsigned)((h >> 24) % 12));
        snprintf(s->ids[3], sizeof(s->ids[3]), "a%" PRIu64, a);
        bool skip = !seed && (h >> 40) % 5 == 0;
        bool rec = (h >> 44) % 3 == 0;
        ev->event_id = s->ids[0];
        ev->user_id = s->ids[1];
        ev->track_id = s->ids[2];
        ev->artist_id = s->ids[3];
        ev->event_time = s->t0 + (int64_t)i * s->step_ms;
        ev->ms_played = skip ? (int64_t)((h >> 16) % 25000)
                             : 30000 + (int64_t)((h >> 16) % 170000);
        ev->track_duration_ms = 200000;
        ev->reason_end = skip ? ENC_END_FORWARD : ENC_END_TRACK_DONE;
        ev->source = rec ? ENC_SRC_RECOMMENDATION : others[(h >> 48) % 3];
        ev->surface = surfaces[(h >> 52) % 4];
        if (rec) {
                snprintf(s->ids[4], sizeof(s->ids[4]), "rec-%016" PRIx64,
                         mix64(h));
                ev->recommendation_id = s->ids[4];
        } else {
                ev->recommendation_id = NULL;
        }
        ev->cohort = uh % 10 == 9 ? NULL : uh % 2 ? "treatment" : "control";
}

/* ---- options ---------------------------------------------------------- */

static void usage(const enc_bench_opt_t *opts, const char *text) {
        fprintf(stderr, "%s\noptions:\n", text);
        for (const enc_bench_opt_t *o = opts; o->name; o++) {
                if (o->str)
                        fprintf(stderr, "  --%-18s %s [%s]\n", o->name, o->help,
                                o->str);
                else
                        fprintf(stderr, "  --%-18s %s [%g]\n", o->name, o->help,
                                o->num);
        }
}

bool enc_bench_conf_extra(enc_conf_t *conf, const char *extra, char *err,
                          size_t err_size) {
        char kv[512];
        for (const char *p = extra; p && *p;) {
                size_t n = strcspn(p, ";");
                snprintf(kv, sizeof(kv), "%.*s", (int)n, p);
                if (enc_conf_set_kv(conf, kv, err, err_size))
                        return false;
                p += n + (p[n] == ';');
        }
        return true;
}

bool enc_bench_parse(int argc, char **argv, enc_bench_opt_t *opts,
                     const char *text) {
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                enc_bench_opt_t *o = NULL;
                if (!strncmp(a, "--", 2))
                        for (o = opts; o->name && strcmp(o->name, a + 2); o++)
                                ;
                if (!o || !o->name || i + 1 >= argc) {
                        if (strcmp(a, "--help"))
                                fprintf(stderr,
                                        "unknown or incomplete "
                                        "option %s\n",
                                        a);
                        usage(opts, text);
                        return false;
                }
                const char *v = argv[++i];
                if (o->str) {
                        o->str = v;
                        continue;
                }
                char *end;
                o->num = strtod(v, &end);
                if (*end || end == v) {
                        fprintf(stderr, "--%s: \"%s\" is not a number\n",
                                o->name, v);
                        return false;
                }
        }
        return true;
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(int, char **);
        } cmds[] = {{"b1", enc_bench_b1},      {"decode", enc_bench_decode},
                    {"b2", enc_bench_b2},      {"b3", enc_bench_b3},
                    {"mem", enc_bench_mem},    {"soak", enc_bench_soak},
                    {"reuse", enc_bench_reuse}};
        t_start = enc_bench_now();
        if (argc >= 2)
                for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                        if (!strcmp(argv[1], cmds[i].name))
                                return cmds[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "usage: encore-bench b1|decode|b2|b3|mem|soak|reuse "
                        "[--help] "
                        "[options]\n");
        return 2;
}
