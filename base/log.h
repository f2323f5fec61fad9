/*
 * log.h -- structured logs: one line per event, key=value pairs, to stderr.
 *
 *   ts=2026-11-21T10:00:00.000Z level=info event=commit partition=3 offset=42
 *
 * The level is set once at start-up (log.level); the logger keeps it in the
 * process context rather than a mutable global where it can, but the level
 * itself is the one process-wide setting (like syslog's mask) because signal
 * handlers and librdkafka's log callback thread must read it too.
 */
#ifndef ENC_LOG_H
#define ENC_LOG_H

#include "enc.h"

typedef enum enc_log_level_e {
        ENC_LOG_DEBUG = 0,
        ENC_LOG_INFO,
        ENC_LOG_WARN,
        ENC_LOG_ERROR,
} enc_log_level_t;

/** Parses "debug|info|warn|error"; returns -1 if unknown. */
int enc_log_level_parse(const char *s);
void enc_log_set_level(enc_log_level_t level);
bool enc_log_enabled(enc_log_level_t level);

/**
 * Logs one line: `event` is a short snake_case name, @p fmt the rest of the
 * key=value pairs (values with spaces must be quoted by the caller, or use
 * enc_log_quote). Thread-safe: one write(2) per line.
 */
void enc_log(enc_log_level_t level, const char *event, const char *fmt, ...)
        ENC_PRINTF(3, 4);

#define enc_log_debug(ev, ...)                                                 \
        do {                                                                   \
                if (enc_log_enabled(ENC_LOG_DEBUG))                            \
                        enc_log(ENC_LOG_DEBUG, ev, __VA_ARGS__);               \
        } while (0)
#define enc_log_info(ev, ...) enc_log(ENC_LOG_INFO, ev, __VA_ARGS__)
#define enc_log_warn(ev, ...) enc_log(ENC_LOG_WARN, ev, __VA_ARGS__)
#define enc_log_error(ev, ...) enc_log(ENC_LOG_ERROR, ev, __VA_ARGS__)

#endif /* ENC_LOG_H */
