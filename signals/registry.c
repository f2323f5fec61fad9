/*
 * registry.c -- the list of reward-signal plug-ins, and the glue between
 * them and the configuration.
 *
 * DESIGN
 * Adding a signal is one file and one line in enc_sig_plugins[] below;
 * nothing else in encore names a signal. The `signals` key lists instances
 * as "name:version" (":version" may be left out and means 1), in the order
 * they run; each instance's keys live under signal.<name>.<version>. and
 * are declared in its plug-in's table, which gives the type, the default
 * and the range. Configuration (base/config.c) stores signal.* keys
 * without knowing the plug-ins; this file checks every one of them with
 * the same enc_cfg_check the core keys use, so a typo in a signal key fails
 * start-up naming the full key exactly like a typo in a core key.
 *
 * Derived instances (progressive_reward, composite) read the updates of
 * earlier instances; updates only flow forward within a step, so a source
 * listed after its reader would silently never arrive. Their plug-ins say
 * what they read (the depends callback) and the check refuses such a list.
 * The check also initialises and destroys each instance, so a bad prior
 * file or a horizon mismatch is caught by `--check-config` too.
 *
 * Invariants: an instance's id is XXH32("name:version"), stable across
 * releases, because state records are keyed by it. enc_emit fills the
 * fields that make updates comparable across replays (update id, user,
 * version) so no signal can get them wrong.
 *
 * Never: keep state here. Every function is a pure function of the
 * configuration and the tables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sigpriv.h"

#define ENC_SIG_INSTANCES_MAX 32
#define ENC_SIG_LIST_FORM     "name:version[,name:version...]"

static const enc_signal_plugin_t *const enc_sig_plugins[] = {
        &enc_sig_active_days,     &enc_sig_session,
        &enc_sig_discovery_habit, &enc_sig_progressive_reward,
        &enc_sig_composite,       NULL,
};

const enc_signal_plugin_t *const *enc_signal_plugins(void) {
        return enc_sig_plugins;
}

const enc_signal_plugin_t *enc_signal_find(const char *name) {
        for (int i = 0; enc_sig_plugins[i]; i++)
                if (!strcmp(enc_sig_plugins[i]->name, name))
                        return enc_sig_plugins[i];
        return NULL;
}

/* "active_days|session|..." for error messages. */
static void enc_sig_names(char *buf, size_t size) {
        size_t off = 0;
        buf[0] = '\0';
        for (int i = 0; enc_sig_plugins[i] && off < size; i++)
                off += (size_t)snprintf(buf + off, size - off, "%s%s",
                                        i ? "|" : "", enc_sig_plugins[i]->name);
}

/* ---- emitting ------------------------------------------------------- */

enc_err_t enc_emit(enc_emitter_t *em, enc_update_t *up) {
        up->user_id = em->user_id;
        up->signal_version = em->signal_version;
        if (!up->signal)
                up->signal = em->signal_name;
        enc_update_make_id(up);
        return em->cb ? em->cb(em->opaque, up) : ENC_OK;
}

const char *enc_emitter_user(const enc_emitter_t *em) {
        return em->user_id;
}

const enc_event_t *enc_emitter_event(const enc_emitter_t *em) {
        return em->event;
}

/* ---- instance configuration ----------------------------------------- */

void enc_sigconf_init(enc_sigconf_t *sc, const enc_conf_t *conf,
                      const char *name, int version) {
        sc->conf = conf;
        sc->name = name;
        sc->version = version;
        snprintf(sc->prefix, sizeof(sc->prefix), "signal.%s.%d.", name,
                 version);
}

static const enc_cfg_key_t *enc_sig_key_find(const enc_signal_plugin_t *p,
                                             const char *key) {
        if (!p || !p->config_keys)
                return NULL;
        for (const enc_cfg_key_t *k = p->config_keys; k->name; k++)
                if (!strcmp(k->name, key))
                        return k;
        return NULL;
}

/* The set value, else the plug-in's default. Asking for a key the plug-in
 * does not declare is a programming error, as in enc_conf_get. */
const char *enc_sigconf_get(const enc_sigconf_t *sc, const char *key) {
        char full[256];
        snprintf(full, sizeof(full), "%s%s", sc->prefix, key);
        const char *v = sc->conf ? enc_conf_get_raw(sc->conf, full) : NULL;
        if (v)
                return v;
        const enc_cfg_key_t *k =
                enc_sig_key_find(enc_signal_find(sc->name), key);
        if (!k) {
                fprintf(stderr, "BUG: undeclared signal key %s\n", full);
                abort();
        }
        return k->def ? k->def : "";
}

int64_t enc_sigconf_int(const enc_sigconf_t *sc, const char *key) {
        return enc_cfg_parse_int(enc_sigconf_get(sc, key));
}

bool enc_sigconf_bool(const enc_sigconf_t *sc, const char *key) {
        return enc_cfg_parse_bool(enc_sigconf_get(sc, key));
}

double enc_sigconf_double(const enc_sigconf_t *sc, const char *key) {
        return enc_cfg_parse_double(enc_sigconf_get(sc, key));
}

int enc_sigconf_int_list(const enc_sigconf_t *sc, const char *key, int64_t *out,
                         int max) {
        return enc_cfg_parse_int_list(enc_sigconf_get(sc, key), out, max);
}

/* ---- the instance list ---------------------------------------------- */

typedef struct enc_sig_entry_s {
        const enc_signal_plugin_t *plugin;
        int32_t version;
} enc_sig_entry_t;

/* Parses a decimal version in [1, INT32_MAX] from s[0..len). */
static bool enc_sig_parse_version(const char *s, size_t len, int32_t *out) {
        int64_t v = 0;
        if (len == 0 || len > 10)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        if (v < 1 || v > INT32_MAX)
                return false;
        *out = (int32_t)v;
        return true;
}

/* Parses the `signals` list into @p ents (at most ENC_SIG_INSTANCES_MAX). */
static enc_err_t enc_sig_parse_list(const char *list, enc_sig_entry_t *ents,
                                    int *cntp, char *errstr,
                                    size_t errstr_size) {
        char names[160];
        int cnt = 0;
        const char *p = list;

        enc_sig_names(names, sizeof(names));
        while (*p == ' ')
                p++;
        if (!*p) { /* an empty list runs no signals */
                *cntp = 0;
                return ENC_OK;
        }
        for (;;) {
                size_t len = strcspn(p, ",");
                const char *tok = p;
                size_t tl = len;
                while (tl && *tok == ' ')
                        tok++, tl--;
                while (tl && tok[tl - 1] == ' ')
                        tl--;
                const char *colon = memchr(tok, ':', tl);
                size_t nl = colon ? (size_t)(colon - tok) : tl;
                char name[ENC_SIGNAL_NAME_MAX];
                int32_t version = 1;

                if (nl == 0 || nl >= sizeof(name))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "signals: empty or overlong entry "
                                          "%d (expected " ENC_SIG_LIST_FORM ")",
                                          cnt + 1);
                memcpy(name, tok, nl);
                name[nl] = '\0';
                const enc_signal_plugin_t *pl = enc_signal_find(name);
                if (!pl)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "signals: unknown signal \"%s\" "
                                          "(expected " ENC_SIG_LIST_FORM
                                          " with name one of %s)",
                                          name, names);
                if (colon &&
                    !enc_sig_parse_version(colon + 1, tl - nl - 1, &version))
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "signals: bad version in \"%.*s\" "
                                          "(expected " ENC_SIG_LIST_FORM
                                          ", version an integer >= 1)",
                                          (int)tl, tok);
                for (int i = 0; i < cnt; i++)
                        if (ents[i].plugin == pl && ents[i].version == version)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "signals: %s:%d is listed twice", name,
                                        (int)version);
                if (cnt == ENC_SIG_INSTANCES_MAX)
                        return enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                                          "signals: more than %d instances",
                                          ENC_SIG_INSTANCES_MAX);
                ents[cnt].plugin = pl;
                ents[cnt].version = version;
                cnt++;
                p += len;
                if (!*p)
                        break;
                p++; /* ',' */
        }
        *cntp = cnt;
        return ENC_OK;
}

/* ---- checking signal.* keys ----------------------------------------- */

typedef struct enc_sig_check_s {
        const enc_sig_entry_t *ents;
        int cnt;
        enc_err_t err;
        char *errstr;
        size_t errstr_size;
} enc_sig_check_t;

#define ENC_SIG_KEY_FORM "signal.<name>.<version>.<key>"

static void enc_sig_check_key(const char *key, const char *value,
                              void *opaque) {
        enc_sig_check_t *c = opaque;
        char name[ENC_SIGNAL_NAME_MAX];
        int32_t version;

        if (c->err)
                return; /* report the first error only */
        const char *p = key + strlen("signal.");
        const char *dot = strchr(p, '.');
        if (!dot || dot == p || (size_t)(dot - p) >= sizeof(name)) {
                c->err = enc_seterr(c->errstr, c->errstr_size, ENC_ERR_CONFIG,
                                    "%s: expected " ENC_SIG_KEY_FORM, key);
                return;
        }
        memcpy(name, p, (size_t)(dot - p));
        name[dot - p] = '\0';
        const enc_signal_plugin_t *pl = enc_signal_find(name);
        if (!pl) {
                char names[160];
                enc_sig_names(names, sizeof(names));
                c->err = enc_seterr(
                        c->errstr, c->errstr_size, ENC_ERR_CONFIG,
                        "%s: unknown signal \"%s\" (expected " ENC_SIG_KEY_FORM
                        " with name one of %s)",
                        key, name, names);
                return;
        }
        const char *vs = dot + 1;
        const char *dot2 = strchr(vs, '.');
        if (!dot2 ||
            !enc_sig_parse_version(vs, (size_t)(dot2 - vs), &version) ||
            !dot2[1]) {
                c->err = enc_seterr(c->errstr, c->errstr_size, ENC_ERR_CONFIG,
                                    "%s: expected " ENC_SIG_KEY_FORM
                                    " with version an integer >= 1",
                                    key);
                return;
        }
        bool listed = false;
        for (int i = 0; i < c->cnt; i++)
                if (c->ents[i].plugin == pl && c->ents[i].version == version)
                        listed = true;
        if (!listed) {
                c->err =
                        enc_seterr(c->errstr, c->errstr_size, ENC_ERR_CONFIG,
                                   "%s: instance %s:%d is not in the "
                                   "signals list (add \"%s:%d\" to signals "
                                   "or remove the key)",
                                   key, name, (int)version, name, (int)version);
                return;
        }
        const enc_cfg_key_t *k = enc_sig_key_find(pl, dot2 + 1);
        if (!k) {
                char known[256];
                size_t off = 0;
                known[0] = '\0';
                for (const enc_cfg_key_t *kk = pl->config_keys;
                     kk && kk->name && off < sizeof(known); kk++)
                        off += (size_t)snprintf(known + off,
                                                sizeof(known) - off, "%s%s",
                                                off ? ", " : "", kk->name);
                c->err = enc_seterr(c->errstr, c->errstr_size, ENC_ERR_CONFIG,
                                    "%s: unknown key \"%s\" for signal %s "
                                    "(expected one of: %s)",
                                    key, dot2 + 1, name, known);
                return;
        }
        c->err = enc_cfg_check(k, key, value, c->errstr, c->errstr_size);
}

/* Checks the list, every signal.* key, and that each derived instance's
 * sources run before it. */
static enc_err_t enc_sig_check_all(const enc_conf_t *conf,
                                   enc_sig_entry_t *ents, int *cntp,
                                   char *errstr, size_t errstr_size) {
        enc_err_t err = enc_sig_parse_list(enc_conf_get(conf, "signals"), ents,
                                           cntp, errstr, errstr_size);
        if (err)
                return err;
        enc_sig_check_t c = {ents, *cntp, ENC_OK, errstr, errstr_size};
        enc_conf_foreach(conf, "signal.", enc_sig_check_key, &c);
        if (c.err)
                return c.err;

        for (int i = 0; i < *cntp; i++) {
                enc_sig_ref_t refs[ENC_COMPONENTS_MAX];
                enc_sigconf_t sc;
                if (!ents[i].plugin->depends)
                        continue;
                enc_sigconf_init(&sc, conf, ents[i].plugin->name,
                                 ents[i].version);
                int n = ents[i].plugin->depends(&sc, refs, ENC_COMPONENTS_MAX,
                                                errstr, errstr_size);
                if (n < 0)
                        return ENC_ERR_CONFIG;
                for (int r = 0; r < n && r < ENC_COMPONENTS_MAX; r++) {
                        bool before = false;
                        for (int j = 0; j < i; j++)
                                if (!strcmp(ents[j].plugin->name,
                                            refs[r].name) &&
                                    ents[j].version == refs[r].version)
                                        before = true;
                        if (!before)
                                return enc_seterr(
                                        errstr, errstr_size, ENC_ERR_CONFIG,
                                        "%s%s: reads the updates of %s:%d, "
                                        "which must be listed before %s:%d "
                                        "in signals",
                                        sc.prefix, refs[r].key, refs[r].name,
                                        (int)refs[r].version,
                                        ents[i].plugin->name,
                                        (int)ents[i].version);
                }
        }
        return ENC_OK;
}

/* ---- instances ------------------------------------------------------ */

void enc_signals_destroy(enc_sig_instance_t *insts, int cnt) {
        if (!insts)
                return;
        for (int i = cnt - 1; i >= 0; i--)
                if (insts[i].plugin && insts[i].plugin->destroy)
                        insts[i].plugin->destroy(insts[i].priv);
        free(insts);
}

enc_err_t enc_signals_instantiate(const enc_conf_t *conf,
                                  enc_sig_instance_t **instsp, int *cntp,
                                  char *errstr, size_t errstr_size) {
        enc_sig_entry_t ents[ENC_SIG_INSTANCES_MAX];
        enc_sig_instance_t *insts = NULL;
        int cnt = 0, done = 0;
        enc_err_t err;

        *instsp = NULL;
        *cntp = 0;
        err = enc_sig_check_all(conf, ents, &cnt, errstr, errstr_size);
        if (err)
                return err;
        insts = calloc(cnt ? (size_t)cnt : 1, sizeof(*insts));
        if (!insts)
                return enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM,
                                  "signals: out of memory");
        for (done = 0; done < cnt; done++) {
                enc_sigconf_t sc;
                char idtext[ENC_SIGNAL_NAME_MAX + 16];
                int n;

                enc_sigconf_init(&sc, conf, ents[done].plugin->name,
                                 ents[done].version);
                insts[done].plugin = ents[done].plugin;
                insts[done].version = ents[done].version;
                n = snprintf(idtext, sizeof(idtext), "%s:%d",
                             ents[done].plugin->name, (int)ents[done].version);
                insts[done].id = XXH32(idtext, (size_t)n, 0);
                err = ents[done].plugin->init(&sc, &insts[done].priv, errstr,
                                              errstr_size);
                if (err)
                        goto fail;
        }
        *instsp = insts;
        *cntp = cnt;
        return ENC_OK;

fail:
        enc_signals_destroy(insts, done); /* the ones initialised */
        return err;
}

enc_err_t enc_signals_check_conf(const enc_conf_t *conf, char *errstr,
                                 size_t errstr_size) {
        enc_sig_instance_t *insts;
        int cnt;
        enc_err_t err = enc_signals_instantiate(conf, &insts, &cnt, errstr,
                                                errstr_size);
        if (err)
                return err;
        enc_signals_destroy(insts, cnt);
        return ENC_OK;
}
