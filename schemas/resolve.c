/*
 * resolve.c -- reading PlayEvents written with another schema: Avro's
 * schema resolution (writer schema -> encore's reader schema), compiled
 * once per writer schema into a small program the scan runs per record.
 *
 * DESIGN
 * Producers of an existing topic have their own PlayEvent: fields in
 * another order, extra fields, an int where encore has a long, a nullable
 * field where encore has a plain one, other names. Avro's rules
 * (specification, "Schema Resolution") say how such bytes are read with
 * encore's schema, and this file applies them:
 *
 *   - records match by unqualified name (PlayEvent); fields by name, after
 *     the renames configured as serde.play_event.field.<encore> = <writer>;
 *   - writer fields encore does not have are skipped, whatever their type
 *     (records, arrays, maps, unions, fixed, recursion through named types);
 *   - encore fields the writer lacks take their default: only the nullable
 *     ones (recommendation_id, cohort) have one (null); any other missing
 *     field fails the compilation, naming it;
 *   - int is promoted to long, bytes to string;
 *   - enums match by unqualified name and symbols by name: a writer symbol
 *     encore does not know fails the record that carries it (never the
 *     schema), ENC_ERR_INVALID_FIELD naming the symbol;
 *   - a writer union is read branch by branch; a non-union writer type
 *     read into encore's ["null", string] takes the matching branch; a
 *     writer branch encore cannot read (null into a required string) fails
 *     the record that carries it, and a union none of whose branches can be
 *     read fails the compilation.
 *
 * Compilation (enc_wprog_new) happens once per writer schema id and does
 * all the name work; the per-record scan (enc_wprog_scan) walks the writer
 * fields in their order with the same bounded primitives as the canonical
 * scan (codec_int.h), so the caps, the NUL rule and the error kinds are the
 * same whichever schema wrote the bytes. It fills the same scan_val_t array
 * the fast decoder takes values from, so the only per-record cost over the
 * canonical path is the skipping of extra fields and the enum mapping.
 * A writer schema whose layout is exactly encore's (enc_wprog_is_canonical)
 * is not run through this at all: the codec uses the canonical scan.
 *
 * Checked against Apache Avro C's resolver (avro_resolved_writer_new) in
 * tests/test_codec.c, byte for byte, for what Avro C 1.11.1 implements
 * (field order, skipped fields, promotions, renames as a renamed reader
 * schema); Avro C neither fills defaults nor maps enum symbols by name
 * (it passes the writer's index through), so those cases are pinned by
 * hand-worked expectations instead.
 *
 * Never: allocate or recurse without a bound on a record's bytes (skips
 * of nested values stop at ENC_WPROG_DEPTH levels and ENC_WPROG_ITEMS
 * items per record), or let a writer schema change what encore accepts in
 * a field it reads.
 */
#include <stdlib.h>

#include "codec.h"
#include "codec_int.h"

/* Nesting of skipped values (records in arrays in maps ...), and items in
 * skipped arrays and maps per record: an array of a million nulls is zero
 * bytes long, so bytes alone do not bound the work. */
#define ENC_WPROG_DEPTH 32
#define ENC_WPROG_ITEMS (1 << 20)

typedef enum ract_kind_e {
        RA_SKIP,   /* writer field encore does not read */
        RA_STRING, /* string or bytes -> string */
        RA_LONG,   /* long -> long */
        RA_INT,    /* int -> long */
        RA_ENUM,   /* enum -> enum, symbols mapped by name */
        RA_NULL,   /* null -> the null branch of ["null", string] */
        RA_UNION,  /* writer union: index, then the branch's action */
        RA_FAIL,   /* a union branch encore cannot read */
} ract_kind_t;

typedef struct ract_s {
        ract_kind_t kind;
        avro_schema_t wtype; /* RA_SKIP, RA_ENUM: borrowed from the prog */
        int nsym;            /* RA_ENUM: writer symbols */
        int16_t *symmap;     /* RA_ENUM: writer index -> encore's, or -1 */
        int nbr;             /* RA_UNION */
        struct ract_s *br;   /* RA_UNION: one per writer branch */
        char *fail;          /* RA_FAIL: why, for the error */
} ract_t;

typedef struct rfield_s {
        int dst;           /* encore field, or -1: skipped */
        const char *wname; /* writer field name (borrowed from wschema) */
        ract_t act;
} rfield_t;

struct enc_wprog_s {
        avro_schema_t wschema; /* owned */
        int nf;
        rfield_t *f;
        bool canonical;
};

/* ---- skipping any value ---------------------------------------------- */

typedef struct skip_s {
        scan_t *s;
        int64_t items; /* budget left */
} skip_t;

static avro_schema_t deref(avro_schema_t t) {
        for (int i = 0; t && avro_typeof(t) == AVRO_LINK && i < 64; i++)
                t = avro_schema_link_target(t);
        return t;
}

static enc_err_t skip_value(skip_t *k, avro_schema_t t, int depth);

/* Array items or map entries: blocks of count (negative: then a byte
 * size), ended by a zero count. */
static enc_err_t skip_blocks(skip_t *k, avro_schema_t item, bool is_map,
                             int depth) {
        scan_t *s = k->s;
        enc_err_t err;
        for (;;) {
                int64_t cnt;
                if ((err = scan_block_count(s, &cnt, "bad block count")))
                        return err;
                if (cnt == 0)
                        return ENC_OK;
                if (cnt > k->items)
                        return enc_scan_fail(s, ENC_ERR_TOO_LARGE,
                                             "more than %d items in "
                                             "skipped arrays and maps",
                                             ENC_WPROG_ITEMS);
                k->items -= cnt;
                for (int64_t i = 0; i < cnt; i++) {
                        if (is_map) {
                                int64_t n;
                                if ((err = scan_long(s, &n)))
                                        return err;
                                if (n < 0 || n > s->end - s->p)
                                        return enc_scan_fail(
                                                s, ENC_ERR_TRUNCATED,
                                                "map key of %" PRId64 " bytes",
                                                n);
                                s->p += n;
                        }
                        if ((err = skip_value(k, item, depth + 1)))
                                return err;
                }
        }
}

/* Steps over one value of writer type @p t without looking at it beyond
 * what its framing needs. */
static enc_err_t skip_value(skip_t *k, avro_schema_t t, int depth) {
        scan_t *s = k->s;
        int64_t n;
        enc_err_t err;
        if (depth > ENC_WPROG_DEPTH)
                return enc_scan_fail(s, ENC_ERR_TOO_LARGE,
                                     "values nested deeper than %d",
                                     ENC_WPROG_DEPTH);
        t = deref(t);
        switch (avro_typeof(t)) {
        case AVRO_NULL:
                return ENC_OK;
        case AVRO_BOOLEAN:
                if ((err = scan_fixed(s, 1, "boolean")))
                        return err;
                if (s->p[-1] > 1)
                        return enc_scan_fail(s, ENC_ERR_DECODE,
                                             "boolean byte 0x%02x", s->p[-1]);
                return ENC_OK;
        case AVRO_INT32:
        case AVRO_INT64:
                return scan_long(s, &n);
        case AVRO_FLOAT:
                return scan_fixed(s, 4, "float");
        case AVRO_DOUBLE:
                return scan_fixed(s, 8, "double");
        case AVRO_STRING:
        case AVRO_BYTES:
                if ((err = scan_long(s, &n)))
                        return err;
                if (n < 0)
                        return enc_scan_fail(s, ENC_ERR_DECODE,
                                             "negative length %" PRId64, n);
                if (n > s->end - s->p)
                        return enc_scan_fail(s, ENC_ERR_TRUNCATED,
                                             "%" PRId64
                                             " bytes but only %zu left",
                                             n, (size_t)(s->end - s->p));
                s->p += n;
                return ENC_OK;
        case AVRO_FIXED:
                return scan_fixed(s, (size_t)avro_schema_fixed_size(t),
                                  "fixed");
        case AVRO_ENUM:
                if ((err = scan_long(s, &n)))
                        return err;
                if (n < 0 || n >= avro_schema_enum_number_of_symbols(t))
                        return enc_scan_fail(
                                s, ENC_ERR_DECODE,
                                "enum index %" PRId64 " out of range", n);
                return ENC_OK;
        case AVRO_UNION:
                if ((err = scan_long(s, &n)))
                        return err;
                if (n < 0 || (uint64_t)n >= avro_schema_union_size(t))
                        return enc_scan_fail(
                                s, ENC_ERR_DECODE,
                                "union index %" PRId64 " out of range", n);
                return skip_value(k, avro_schema_union_branch(t, (int)n),
                                  depth + 1);
        case AVRO_RECORD: {
                size_t nf = avro_schema_record_size(t);
                for (size_t i = 0; i < nf; i++)
                        if ((err = skip_value(
                                     k,
                                     avro_schema_record_field_get_by_index(
                                             t, (int)i),
                                     depth + 1)))
                                return err;
                return ENC_OK;
        }
        case AVRO_ARRAY:
                return skip_blocks(k, avro_schema_array_items(t), false, depth);
        case AVRO_MAP:
                return skip_blocks(k, avro_schema_map_values(t), true, depth);
        default:
                return enc_scan_fail(s, ENC_ERR_DECODE, "unknown type");
        }
}

/* ---- compiling ------------------------------------------------------- */

static void act_done(ract_t *a) {
        if (a->kind == RA_UNION)
                for (int i = 0; i < a->nbr; i++)
                        act_done(&a->br[i]);
        free(a->br);
        free(a->symmap);
        free(a->fail);
        memset(a, 0, sizeof(*a));
}

static const char *type_name(avro_schema_t t) {
        const char *n = avro_schema_type_name(t);
        return n ? n : "?";
}

static const char *kind_name(fkind_t k) {
        switch (k) {
        case FK_STRING:
                return "string";
        case FK_OPT_STRING:
                return "[\"null\", \"string\"]";
        case FK_LONG:
                return "long";
        case FK_ENUM:
                return "enum";
        default:
                return "?";
        }
}

/*
 * Resolves one non-union writer type @p wt against encore field @p fd
 * (reader type @p rt). Returns 0 and fills @p a, or -1 with @p why.
 */
static int compile_plain(ract_t *a, avro_schema_t wt, const fdesc_t *fd,
                         avro_schema_t rt, char *why, size_t why_size) {
        avro_type_t w = avro_typeof(wt);
        memset(a, 0, sizeof(*a));
        switch (fd->kind) {
        case FK_OPT_STRING:
                if (w == AVRO_NULL) {
                        a->kind = RA_NULL;
                        return 0;
                }
                /* fall through: the string branch */
                __attribute__((fallthrough));
        case FK_STRING:
                if (w == AVRO_STRING || w == AVRO_BYTES) {
                        a->kind = RA_STRING;
                        return 0;
                }
                break;
        case FK_LONG:
                if (w == AVRO_INT64 || w == AVRO_INT32) {
                        a->kind = w == AVRO_INT64 ? RA_LONG : RA_INT;
                        return 0;
                }
                break;
        case FK_ENUM: {
                if (w != AVRO_ENUM)
                        break;
                const char *wn = avro_schema_name(wt),
                           *rn = avro_schema_name(rt);
                if (!wn || !rn || strcmp(wn, rn)) {
                        snprintf(why, why_size,
                                 "writer enum %s is not encore's %s (Avro "
                                 "matches enums by unqualified name)",
                                 wn ? wn : "?", rn ? rn : "?");
                        return -1;
                }
                int n = avro_schema_enum_number_of_symbols(wt);
                a->kind = RA_ENUM;
                a->wtype = wt;
                a->nsym = n;
                a->symmap = calloc((size_t)(n > 0 ? n : 1), sizeof(*a->symmap));
                if (!a->symmap) {
                        snprintf(why, why_size, "out of memory");
                        return -1;
                }
                for (int i = 0; i < n; i++) {
                        const char *sym = avro_schema_enum_get(wt, i);
                        a->symmap[i] = -1;
                        for (int r = 0; sym && r < fd->nsym; r++)
                                if (!strcmp(sym, fd->sym(r)))
                                        a->symmap[i] = (int16_t)r;
                }
                return 0;
        }
        default:
                break;
        }
        snprintf(why, why_size, "writer type %s cannot be read as %s",
                 type_name(wt), kind_name(fd->kind));
        return -1;
}

/* Resolves writer type @p wt (union or not) against encore field @p fd. */
static int compile_act(ract_t *a, avro_schema_t wt, const fdesc_t *fd,
                       avro_schema_t rt, char *why, size_t why_size) {
        wt = deref(wt);
        if (avro_typeof(wt) != AVRO_UNION)
                return compile_plain(a, wt, fd, rt, why, why_size);
        memset(a, 0, sizeof(*a));
        size_t n = avro_schema_union_size(wt);
        a->kind = RA_UNION;
        a->nbr = (int)n;
        a->br = calloc(n ? n : 1, sizeof(*a->br));
        if (!a->br) {
                snprintf(why, why_size, "out of memory");
                return -1;
        }
        int ok = 0;
        for (size_t i = 0; i < n; i++) {
                char bwhy[200];
                avro_schema_t bt = deref(avro_schema_union_branch(wt, (int)i));
                if (compile_plain(&a->br[i], bt, fd, rt, bwhy, sizeof(bwhy)) ==
                    0) {
                        ok++;
                        continue;
                }
                act_done(&a->br[i]);
                a->br[i].kind = RA_FAIL;
                a->br[i].fail = strdup(bwhy);
                if (!a->br[i].fail) {
                        snprintf(why, why_size, "out of memory");
                        return -1;
                }
        }
        if (!ok) {
                snprintf(why, why_size,
                         "no branch of the writer's union can be read as %s",
                         kind_name(fd->kind));
                return -1;
        }
        return 0;
}

static bool act_is_canonical(const ract_t *a, const fdesc_t *fd) {
        switch (fd->kind) {
        case FK_STRING:
                return a->kind == RA_STRING;
        case FK_LONG:
                return a->kind == RA_LONG;
        case FK_ENUM:
                if (a->kind != RA_ENUM || a->nsym != fd->nsym)
                        return false;
                for (int i = 0; i < a->nsym; i++)
                        if (a->symmap[i] != i)
                                return false;
                return true;
        case FK_OPT_STRING:
                return a->kind == RA_UNION && a->nbr == 2 &&
                       a->br[0].kind == RA_NULL && a->br[1].kind == RA_STRING;
        default:
                return false;
        }
}

void enc_wprog_destroy(enc_wprog_t *w) {
        if (!w)
                return;
        for (int i = 0; w->f && i < w->nf; i++)
                act_done(&w->f[i].act);
        free(w->f);
        if (w->wschema)
                avro_schema_decref(w->wschema);
        free(w);
}

/** Any thread; reads only its arguments. */
enc_wprog_t *enc_wprog_new(const char *json, size_t len,
                           const char *const names[EV__CNT], char *errstr,
                           size_t errstr_size) {
        avro_schema_t rs = NULL;
        enc_wprog_t *w = calloc(1, sizeof(*w));
        const char *rjson = enc_codec_play_event_schema();
        bool matched[EV__CNT] = {false};
        if (!w) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
                return NULL;
        }
        if (avro_schema_from_json_length(rjson, strlen(rjson), &rs)) {
                enc_seterr(errstr, errstr_size, ENC_ERR_CONFIG,
                           "PlayEvent schema: %s", avro_strerror());
                goto fail;
        }
        if (!json || avro_schema_from_json_length(json, len, &w->wschema)) {
                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                           "writer schema does not parse: %s",
                           json ? avro_strerror() : "no text");
                w->wschema = NULL;
                goto fail;
        }
        avro_schema_t ws = deref(w->wschema);
        if (avro_typeof(ws) != AVRO_RECORD) {
                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                           "writer schema is a %s, not a record",
                           type_name(ws));
                goto fail;
        }
        const char *wn = avro_schema_name(ws);
        if (!wn || strcmp(wn, avro_schema_name(rs))) {
                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                           "writer record is %s, encore reads %s (Avro "
                           "matches records by unqualified name)",
                           wn ? wn : "?", avro_schema_name(rs));
                goto fail;
        }
        w->nf = (int)avro_schema_record_size(ws);
        w->f = calloc((size_t)(w->nf > 0 ? w->nf : 1), sizeof(*w->f));
        if (!w->f) {
                enc_seterr(errstr, errstr_size, ENC_ERR_NOMEM, "out of memory");
                goto fail;
        }
        for (int i = 0; i < w->nf; i++) {
                rfield_t *f = &w->f[i];
                avro_schema_t wt = avro_schema_record_field_get_by_index(ws, i);
                f->wname = avro_schema_record_field_name(ws, i);
                f->dst = -1;
                for (int k = 0; k < EV__CNT && f->wname; k++) {
                        const char *want =
                                names && names[k] ? names[k]
                                                  : enc_codec_ev_fields[k].name;
                        if (strcmp(want, f->wname))
                                continue;
                        if (matched[k]) {
                                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                           "writer has field %s twice",
                                           f->wname);
                                goto fail;
                        }
                        if (f->dst >= 0) {
                                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                           "encore fields %s and %s both "
                                           "read writer field %s",
                                           enc_codec_ev_fields[f->dst].name,
                                           enc_codec_ev_fields[k].name,
                                           f->wname);
                                goto fail;
                        }
                        f->dst = k;
                        matched[k] = true;
                }
                if (f->dst < 0) {
                        f->act.kind = RA_SKIP;
                        f->act.wtype = wt;
                        continue;
                }
                char why[200];
                const fdesc_t *fd = &enc_codec_ev_fields[f->dst];
                avro_schema_t rt =
                        avro_schema_record_field_get_by_index(rs, f->dst);
                if (compile_act(&f->act, wt, fd, deref(rt), why, sizeof(why))) {
                        if (names && names[f->dst])
                                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                           "serde.play_event.field.%s = %s: "
                                           "%s",
                                           fd->name, f->wname, why);
                        else
                                enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                           "writer field %s: %s", f->wname,
                                           why);
                        goto fail;
                }
        }
        for (int k = 0; k < EV__CNT; k++) {
                const fdesc_t *fd = &enc_codec_ev_fields[k];
                /* A configured name must be there, even for a nullable
                 * field: a typo would otherwise read null for ever. */
                if (matched[k] ||
                    (fd->kind == FK_OPT_STRING && !(names && names[k])))
                        continue; /* nullable: defaults to null */
                if (names && names[k])
                        enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                   "serde.play_event.field.%s = %s: the "
                                   "writer schema has no field %s",
                                   fd->name, names[k], names[k]);
                else
                        enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                   "the writer schema has no field %s, which "
                                   "encore needs (no default); if it has "
                                   "another name, set "
                                   "serde.play_event.field.%s = <its name>",
                                   fd->name, fd->name);
                goto fail;
        }
        w->canonical = w->nf == EV__CNT;
        for (int i = 0; w->canonical && i < w->nf; i++)
                w->canonical =
                        w->f[i].dst == i &&
                        act_is_canonical(&w->f[i].act, &enc_codec_ev_fields[i]);
        avro_schema_decref(rs);
        return w;
fail:
        if (rs)
                avro_schema_decref(rs);
        enc_wprog_destroy(w);
        return NULL;
}

bool enc_wprog_is_canonical(const enc_wprog_t *w) {
        return w->canonical;
}

/* ---- the per-record scan --------------------------------------------- */

static enc_err_t run_act(skip_t *k, const ract_t *a, const fdesc_t *fd,
                         scan_val_t *v) {
        scan_t *s = k->s;
        enc_err_t err;
        int64_t i;
        switch (a->kind) {
        case RA_STRING:
                v->present = true;
                return scan_string(s, fd->cap, &v->str, &v->len);
        case RA_LONG:
                return scan_long(s, &v->i);
        case RA_INT:
                if ((err = scan_long(s, &v->i)))
                        return err;
                if (v->i < INT32_MIN || v->i > INT32_MAX)
                        return enc_scan_fail(s, ENC_ERR_DECODE,
                                             "%" PRId64 " out of range for int",
                                             v->i);
                return ENC_OK;
        case RA_ENUM:
                if ((err = scan_long(s, &i)))
                        return err;
                if (i < 0 || i >= a->nsym)
                        return enc_scan_fail(s, ENC_ERR_DECODE,
                                             "enum index %" PRId64
                                             " not in [0, %d)",
                                             i, a->nsym);
                if (a->symmap[i] < 0)
                        return enc_scan_fail(
                                s, ENC_ERR_INVALID_FIELD,
                                "symbol %s is not one of encore's %s symbols",
                                avro_schema_enum_get(a->wtype, (int)i),
                                fd->name);
                v->i = a->symmap[i];
                return ENC_OK;
        case RA_NULL:
                v->present = false;
                return ENC_OK;
        case RA_UNION:
                if ((err = scan_long(s, &i)))
                        return err;
                if (i < 0 || i >= a->nbr)
                        return enc_scan_fail(s, ENC_ERR_DECODE,
                                             "union index %" PRId64
                                             " not in [0, %d)",
                                             i, a->nbr);
                return run_act(k, &a->br[i], fd, v);
        case RA_FAIL:
                return enc_scan_fail(s, ENC_ERR_INVALID_FIELD, "%s", a->fail);
        case RA_SKIP:
                return skip_value(k, a->wtype, 0);
        }
        return ENC_ERR_DECODE;
}

/** Thread: the caller's; @p w is read only. Allocates nothing. */
enc_err_t enc_wprog_scan(const enc_wprog_t *w, const uint8_t *body, size_t len,
                         scan_val_t vals[EV__CNT], char *errstr,
                         size_t errstr_size) {
        scan_t s = {body, body + len, "PlayEvent", "", errstr, errstr_size};
        skip_t k = {&s, ENC_WPROG_ITEMS};
        enc_err_t err;
        for (int i = 0; i < EV__CNT; i++)
                vals[i] = (scan_val_t){NULL, 0, 0, false};
        for (int i = 0; i < w->nf; i++) {
                const rfield_t *f = &w->f[i];
                scan_val_t v = {NULL, 0, 0, true};
                s.field = f->wname;
                err = run_act(&k, &f->act,
                              f->dst >= 0 ? &enc_codec_ev_fields[f->dst] : NULL,
                              &v);
                if (err)
                        return err;
                if (f->dst >= 0)
                        vals[f->dst] = v;
        }
        if (s.p != s.end)
                return enc_seterr(errstr, errstr_size, ENC_ERR_DECODE,
                                  "PlayEvent: %zu trailing bytes after the "
                                  "record",
                                  (size_t)(s.end - s.p));
        return ENC_OK;
}
