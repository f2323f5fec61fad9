/*
 * fit_prior.c -- encore-fit-prior: fit progressive_reward's prior from past
 * discovery_habit updates.
 *
 *   encore-fit-prior [--version V] [--horizon H] [--shrink L] [-o OUT]
 *                    [FILE...]
 *
 * Reads RewardUpdate JSON lines (as `encore tail` prints them; other
 * signals are skipped) from the files or stdin, rebuilds the daily traces
 * of discoveries that reached their final update and writes the prior
 * JSON (signals/prior.h) to OUT or stdout. Point
 * signal.progressive_reward.<v>.prior.file at it.
 *
 * DESIGN
 * All the arithmetic lives in fit.c (tested); this file is argument
 * parsing and I/O only. A summary goes to stderr so a run that used few
 * traces, or dropped many, says so. Exit status: 0 ok, 1 bad input or
 * too little data, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit.h"

static void usage(FILE *fp) {
        fprintf(fp, "usage: encore-fit-prior [--version V] [--horizon H] "
                    "[--shrink L] [-o OUT] [FILE...]\n"
                    "  --version V  discovery_habit signal_version to use "
                    "(default 1; 0 = any)\n"
                    "  --horizon H  keep only discoveries of horizon H "
                    "(default: all, which must agree)\n"
                    "  --shrink L   covariance shrinkage in [0, 1] "
                    "(default 20 / (n + 20))\n"
                    "  -o OUT       write the prior here (default stdout)\n");
}

static int feed(enc_fit_t *fit, FILE *fp, const char *name) {
        char *line = malloc(ENC_FIT_LINE_MAX + 1);
        char errstr[256];
        size_t lineno = 0;
        if (!line) {
                fprintf(stderr, "encore-fit-prior: out of memory\n");
                return -1;
        }
        while (fgets(line, (int)ENC_FIT_LINE_MAX + 1, fp)) {
                size_t len = strlen(line);
                lineno++;
                if (len == ENC_FIT_LINE_MAX && line[len - 1] != '\n') {
                        fprintf(stderr,
                                "encore-fit-prior: %s:%zu: line longer than "
                                "%zu bytes\n",
                                name, lineno, ENC_FIT_LINE_MAX);
                        free(line);
                        return -1;
                }
                if (enc_fit_add_line(fit, line, len, errstr, sizeof(errstr))) {
                        fprintf(stderr, "encore-fit-prior: %s:%zu: %s\n", name,
                                lineno, errstr);
                        free(line);
                        return -1;
                }
        }
        free(line);
        if (ferror(fp)) {
                fprintf(stderr, "encore-fit-prior: %s: read error\n", name);
                return -1;
        }
        return 0;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                {"version", required_argument, NULL, 'v'},
                {"horizon", required_argument, NULL, 'H'},
                {"shrink", required_argument, NULL, 's'},
                {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        long version = 1, horizon = 0;
        double shrink = -1;
        const char *outpath = NULL;
        char *end, errstr[512], source[512];
        int c;

        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'v':
                        version = strtol(optarg, &end, 10);
                        if (*end || version < 0 || version > INT32_MAX)
                                goto bad_usage;
                        break;
                case 'H':
                        horizon = strtol(optarg, &end, 10);
                        if (*end || horizon < 1 || horizon > ENC_PRIOR_H_MAX)
                                goto bad_usage;
                        break;
                case 's':
                        shrink = strtod(optarg, &end);
                        if (*end || !(shrink >= 0 && shrink <= 1))
                                goto bad_usage;
                        break;
                case 'o':
                        outpath = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        goto bad_usage;
                }
        }

        enc_fit_t *fit = enc_fit_new((int32_t)version);
        if (!fit) {
                fprintf(stderr, "encore-fit-prior: out of memory\n");
                return 1;
        }
        int rc = 0;
        if (optind == argc)
                rc = feed(fit, stdin, "<stdin>");
        for (int i = optind; i < argc && rc == 0; i++) {
                FILE *fp = fopen(argv[i], "r");
                if (!fp) {
                        fprintf(stderr, "encore-fit-prior: %s: %s\n", argv[i],
                                strerror(errno));
                        rc = -1;
                        break;
                }
                rc = feed(fit, fp, argv[i]);
                fclose(fp);
        }
        if (rc) {
                enc_fit_destroy(fit);
                return 1;
        }

        uint8_t *traces;
        int n, h;
        enc_fit_stats_t st;
        enc_err_t err = enc_fit_traces(fit, (int)horizon, &traces, &n, &h, &st,
                                       errstr, sizeof(errstr));
        enc_fit_destroy(fit);
        if (err) {
                fprintf(stderr, "encore-fit-prior: %s\n", errstr);
                return 1;
        }
        fprintf(stderr,
                "encore-fit-prior: %zu lines, %zu discovery_habit updates, "
                "%zu discoveries: %zu complete, %zu still open, %zu broken "
                "(lines missing), %zu of another horizon\n",
                st.lines, st.used, st.discoveries, st.complete, st.open,
                st.broken, st.other_h);
        double lambda = shrink >= 0 ? shrink : 20.0 / (n + 20.0);
        snprintf(source, sizeof(source),
                 "encore-fit-prior: %d complete traces of discovery_habit "
                 "version %ld; mu = mean, cov = (1 - %.6g) S + %.6g "
                 "diag(p(1-p)), p = (s + 0.5) / (n + 1)",
                 n, version, lambda, lambda);
        enc_prior_t *prior;
        err = enc_prior_fit(traces, n, h, lambda, source, &prior, errstr,
                            sizeof(errstr));
        free(traces);
        if (err) {
                fprintf(stderr, "encore-fit-prior: %s\n", errstr);
                return 1;
        }
        enc_buf_t buf;
        enc_buf_init(&buf, ENC_PRIOR_FILE_MAX);
        err = enc_prior_to_json(prior, &buf);
        enc_prior_destroy(prior);
        if (err) {
                fprintf(stderr, "encore-fit-prior: %s\n", enc_err2str(err));
                enc_buf_free(&buf);
                return 1;
        }
        FILE *out = outpath ? fopen(outpath, "w") : stdout;
        if (!out || fwrite(buf.data, 1, buf.len, out) != buf.len ||
            (outpath && fclose(out) != 0)) {
                fprintf(stderr, "encore-fit-prior: %s: %s\n",
                        outpath ? outpath : "<stdout>", strerror(errno));
                enc_buf_free(&buf);
                return 1;
        }
        enc_buf_free(&buf);
        fprintf(stderr,
                "encore-fit-prior: wrote a prior of horizon %d from %d "
                "traces (shrinkage %.6g)\n",
                h, n, lambda);
        return 0;

bad_usage:
        usage(stderr);
        return 2;
}
