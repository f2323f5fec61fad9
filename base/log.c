/*
 * log.c -- structured, line-at-a-time logging to stderr.
 *
 * DESIGN
 * One line per event, `ts=... level=... event=... k=v ...`, written with a
 * single write(2) so lines from the processing thread, the HTTP thread and
 * librdkafka's callbacks never interleave mid-line. Timestamps here are wall
 * clock: logs are for people, and nothing that decides output may read them.
 * The level is the one process-wide setting (an int read without locks:
 * a stale read only changes whether a line is printed).
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile int enc_log_level = ENC_LOG_INFO;

static const char *const enc_log_names[] = {"debug", "info", "warn",
                                            "error"};

int enc_log_level_parse(const char *s) {
        for (int i = 0; i < 4; i++)
                if (!strcmp(s, enc_log_names[i]))
                        return i;
        return -1;
}

void enc_log_set_level(enc_log_level_t level) {
        enc_log_level = (int)level;
}

bool enc_log_enabled(enc_log_level_t level) {
        return (int)level >= enc_log_level;
}

void enc_log(enc_log_level_t level, const char *event, const char *fmt, ...) {
        if (!enc_log_enabled(level))
                return;
        char line[2048];
        struct timeval tv;
        gettimeofday(&tv, NULL);
        char ts[32];
        enc_fmt_time((int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, ts,
                     sizeof(ts));
        int n = snprintf(line, sizeof(line), "ts=%s level=%s event=%s", ts,
                         enc_log_names[level], event);
        if (n < 0)
                return;
        if (fmt && *fmt && (size_t)n < sizeof(line) - 2) {
                line[n++] = ' ';
                va_list ap;
                va_start(ap, fmt);
                int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
                va_end(ap);
                if (m > 0)
                        n += m;
        }
        if ((size_t)n >= sizeof(line) - 1)
                n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
}
