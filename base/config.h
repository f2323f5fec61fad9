/*
 * config.h -- declarative configuration (Fluent Bit's config_map).
 *
 * Every key is declared once in a table with its type, default and a one-line
 * description; `encore --help`, the README table and validation all come from
 * those tables. Values come from an INI file (`--config FILE`, parsed with
 * libinih; `[section]` + `key` becomes `section.key`) and from `--set k=v`,
 * later sources winning. Unknown or mistyped keys fail start-up naming the
 * key. Keys under `kafka.` pass through to librdkafka unchecked here (the
 * client checks them when the handle is built).
 *
 * Signal instances are declared by the `signals` key ("name:version, ...");
 * each instance's own keys live under `signal.<name>.<version>.`. This module
 * does not know the plug-ins: it stores `signal.*` keys as given, and
 * signals/registry.c (enc_signals_check_conf) validates them against each
 * plug-in's table, so configuration never depends on the signals.
 */
#ifndef ENC_CONFIG_H
#define ENC_CONFIG_H

#include "enc.h"

typedef enum enc_cfg_type_e {
        ENC_CFG_STR = 0,
        ENC_CFG_INT,      /* int64 in [min, max] */
        ENC_CFG_BOOL,     /* true/false/yes/no/on/off/1/0 */
        ENC_CFG_DOUBLE,   /* finite double in [dmin, dmax] */
        ENC_CFG_ENUM,     /* one of choices ("a|b|c") */
        ENC_CFG_INT_LIST, /* comma-separated ints, each in [min, max] */
        ENC_CFG_LIST,     /* comma-separated strings (free form) */
        ENC_CFG_PARTITIONS, /* empty, all, or partitions and ranges 0,4-7 */
} enc_cfg_type_t;

typedef struct enc_cfg_key_s {
        const char *name; /* "commit.interval.ms"; NULL ends a table */
        enc_cfg_type_t type;
        const char *def;  /* default, as text; NULL = unset */
        const char *desc; /* one line, shown in --help and the README */
        int64_t min, max; /* ENC_CFG_INT, ENC_CFG_INT_LIST */
        double dmin, dmax; /* ENC_CFG_DOUBLE */
        const char *choices; /* ENC_CFG_ENUM */
        bool secret;      /* redact in logs and dumps */
} enc_cfg_key_t;

typedef struct enc_conf_s enc_conf_t;

/** Empty configuration (all defaults). Caller frees with enc_conf_destroy. */
enc_conf_t *enc_conf_new(void);
void enc_conf_destroy(enc_conf_t *conf);

/** Sets @p key to @p value after checking both against the tables.
 *  Signal instance keys (signal.*) are stored unchecked here and checked by
 *  enc_signals_check_conf(). Errors name the key and the expected form. */
enc_err_t enc_conf_set(enc_conf_t *conf, const char *key, const char *value,
                       char *errstr, size_t errstr_size) ENC_WUR;

/** Parses "key=value" (from --set). */
enc_err_t enc_conf_set_kv(enc_conf_t *conf, const char *kv, char *errstr,
                          size_t errstr_size) ENC_WUR;

/** Loads an INI file; each entry goes through enc_conf_set(). */
enc_err_t enc_conf_load_file(enc_conf_t *conf, const char *path,
                             char *errstr, size_t errstr_size) ENC_WUR;

/** The value set for any key (core, kafka.*, signal.*), or NULL if it was
 *  not set. Borrowed like the getters below. */
const char *enc_conf_get_raw(const enc_conf_t *conf, const char *key);

/** Calls @p cb for each set key starting with @p prefix, in the order set,
 *  with the full key. */
void enc_conf_foreach(const enc_conf_t *conf, const char *prefix,
                      void (*cb)(const char *key, const char *value,
                                 void *opaque),
                      void *opaque);

/* Checking and parsing one value against its declaration; shared with the
 * signal registry so every key in encore is checked by the same code.
 * enc_cfg_check names @p fullkey and the expected form in errstr. */
/** Parses a set of partitions: "all" (returns 0) or numbers and ranges
 * such as "0,2,4-7" into @p lo[i]..@p hi[i] (the first @p max kept).
 * Returns how many ranges there are, or -1 if @p v is malformed. */
int enc_cfg_parse_partitions(const char *v, int64_t *lo, int64_t *hi,
                             int max);

enc_err_t enc_cfg_check(const enc_cfg_key_t *k, const char *fullkey,
                        const char *value, char *errstr,
                        size_t errstr_size) ENC_WUR;
int64_t enc_cfg_parse_int(const char *value);
bool enc_cfg_parse_bool(const char *value);
double enc_cfg_parse_double(const char *value);
int enc_cfg_parse_int_list(const char *value, int64_t *out, int max);

/* Getters return the set value or the declared default. The key must be
 * declared (a programming error otherwise: the getter aborts). The string
 * returned is borrowed until the key is set again or conf is destroyed. */
const char *enc_conf_get(const enc_conf_t *conf, const char *key);
int64_t enc_conf_get_int(const enc_conf_t *conf, const char *key);
bool enc_conf_get_bool(const enc_conf_t *conf, const char *key);
double enc_conf_get_double(const enc_conf_t *conf, const char *key);
/** Fills up to @p max ints; returns the count in the list. */
int enc_conf_get_int_list(const enc_conf_t *conf, const char *key,
                          int64_t *out, int max);

/** The core key table (NULL-terminated), for --help and the README. */
const enc_cfg_key_t *enc_conf_core_keys(void);

/** Writes the effective configuration, secrets redacted, as INI. */
void enc_conf_dump(const enc_conf_t *conf, void *fp /* FILE * */);

/** Prints the keys of @p table, each prefixed with @p prefix, as Markdown
 *  table rows (markdown=true) or as --help lines. */
void enc_conf_print_keys(const enc_cfg_key_t *table, const char *prefix,
                         bool markdown, void *fp /* FILE * */);

#endif /* ENC_CONFIG_H */
