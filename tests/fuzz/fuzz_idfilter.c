/*
 * fuzz_idfilter.c -- the duplicate check's id filter as read back from the
 * store at assignment (enc_idfilter_load, state/idfilter.c).
 *
 * A saved filter is trusted no more than the wire: whatever the meta
 * family hands back -- damaged, truncated, written by a buggy build -- must
 * be refused (the partition then starts as without one) or loaded into a
 * filter that is safe to query, never crash, leak, allocate without bound
 * or hang. A table with no free slot would make a lookup probe forever, so
 * "safe to query" is checked by querying. Each input checks:
 *   - load returns ENC_OK, ENC_ERR_NOT_FOUND, ENC_ERR_CORRUPT or
 *     ENC_ERR_TOO_LARGE with a reason, and on an error the partition is
 *     left inactive (every query "maybe", nothing held);
 *   - loaded with nothing dropped (cap large enough, no horizon, F not
 *     lowered): saving it again with the same tag writes exactly the header
 *     read and nothing else (the round trip is canonical, and what did not
 *     change is not written);
 *   - loaded: every entry of every table kept is found again ("maybe" for a
 *     key that lands on it, within its generation's times and at or after
 *     F; the tables are taken from a save forced to write them whole), a
 *     later add is found, and lookups of absent keys end.
 * Input: [u8 flags][u16be header length][header], then values, each
 * [u16be length][bytes], given in turn to the keys the header names: per
 * generation its base (if it has one), then its deltas; a key the input
 * runs out for is missing. flags: 1 = recompute the header's own checksum,
 * so the fuzzer gets past it to the field checks; 2 = a cap of 2 KiB;
 * 4 = horizon 1500; 8 = F lowered to 1500. The tag passed is the one the
 * header carries (another tag is a plain "not found"). Seeds
 * (tests/fuzz/corpus/idfilter/) are filters saved by enc_idfilter_save,
 * written by fuzz_seeds.
 */
#include <string.h>
#include <xxhash.h>

#include "fuzz.h"
#include "idfilter.h"

#define FZ_HOUR    3600000
#define FZ_KEYS    32
#define FZ_GEN_REC 39
#define FZ_KV_MAX  (1 + 8 * 65)
#define FZ_HDR_MAX 1024

typedef struct fz_kv_s {
        uint8_t key[13];
        size_t klen;
        const uint8_t *val; /* into the input or hdr */
        size_t vlen;
} fz_kv_t;

typedef struct fz_store_s {
        fz_kv_t kv[FZ_KV_MAX];
        int n;
        /* what saves stage */
        int puts, dels;
        uint8_t saved_hdr[FZ_HDR_MAX];
        size_t saved_hdr_len;
        int tables;      /* whole tables put */
        int deltas;      /* deltas put */
        uint8_t *tab[8]; /* whole tables put (copies), with their numbers */
        size_t tab_len[8];
        uint64_t tab_serial[8];
} fz_store_t;

static uint64_t fz_be64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static void fz_put_be64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static enc_err_t fz_get(void *o, int32_t part, const void *k, size_t klen,
                        enc_buf_t *out, bool *found) {
        fz_store_t *s = o;
        FUZZ_CHECK(part == 0);
        enc_buf_reset(out);
        *found = false;
        for (int i = 0; i < s->n; i++)
                if (s->kv[i].klen == klen && !memcmp(s->kv[i].key, k, klen)) {
                        *found = true;
                        return enc_buf_append(out, s->kv[i].val, s->kv[i].vlen);
                }
        return ENC_OK;
}

static void fz_put(void *o, int32_t part, const void *k, size_t klen,
                   const void *v, size_t vlen) {
        fz_store_t *s = o;
        FUZZ_CHECK(part == 0);
        s->puts++;
        if (klen == 1) {
                FUZZ_CHECK(vlen <= sizeof(s->saved_hdr));
                memcpy(s->saved_hdr, v, vlen);
                s->saved_hdr_len = vlen;
        } else if (klen == 9) {
                FUZZ_CHECK(s->tables < 8);
                uint8_t *c = malloc(vlen);
                FUZZ_SETUP(c, "out of memory");
                memcpy(c, v, vlen);
                s->tab[s->tables] = c;
                s->tab_len[s->tables] = vlen;
                s->tab_serial[s->tables] = fz_be64((const uint8_t *)k + 1);
                s->tables++;
        } else {
                FUZZ_CHECK(klen == 13);
                s->deltas++;
        }
}

static void fz_del(void *o, int32_t part, const void *k, size_t klen) {
        (void)part;
        (void)k;
        (void)klen;
        ((fz_store_t *)o)->dels++;
}

static void fz_del_range(void *o, int32_t part, const void *lo, size_t lolen,
                         const void *hi, size_t hilen) {
        (void)part;
        (void)lo;
        (void)lolen;
        (void)hi;
        (void)hilen;
        ((fz_store_t *)o)->dels++;
}

static void fz_reset_saves(fz_store_t *s) {
        for (int i = 0; i < s->tables; i++)
                free(s->tab[i]);
        s->tables = s->deltas = s->puts = s->dels = 0;
        s->saved_hdr_len = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        return 0;
}

/* The generation record (in the header) numbered @p serial, or NULL. */
static const uint8_t *fz_rec(const uint8_t *hdr, size_t hl, int ngen,
                             uint64_t serial) {
        for (int g = 0; g < ngen; g++) {
                const uint8_t *r = hdr + hl + (size_t)g * FZ_GEN_REC;
                if (fz_be64(r) == serial)
                        return r;
        }
        return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 3)
                return 0;
        uint8_t flags = data[0];
        size_t hlen = (size_t)data[1] << 8 | data[2];
        if (hlen > size - 3 || hlen > FZ_HDR_MAX)
                return 0;
        static uint8_t hdr[FZ_HDR_MAX];
        memcpy(hdr, data + 3, hlen);
        const uint8_t *rest = data + 3 + hlen, *end = data + size;

        static fz_store_t s;
        memset(&s, 0, sizeof(s));
        s.kv[0].key[0] = 'I';
        s.kv[0].klen = 1;
        s.kv[0].val = hdr;
        s.kv[0].vlen = hlen;
        s.n = 1;
        const uint8_t *tag = (const uint8_t *)"T1";
        size_t tlen = 2;
        size_t hl = hlen >= 2 ? 2 + (size_t)hdr[1] + 17 : SIZE_MAX;
        int ngen = 0;
        if (hl <= hlen) {
                tag = hdr + 2;
                tlen = hdr[1];
                ngen = hdr[hl - 1];
        }
        /* the keys the header names, given the input's values in turn */
        uint64_t total = 0;
        bool first_empty = false;
        int listed = 0;
        for (int i = 0; i < ngen && i < 8; i++) {
                const uint8_t *r = hdr + hl + (size_t)i * FZ_GEN_REC;
                if (r + FZ_GEN_REC > hdr + hlen)
                        break;
                listed++;
                if (r[8] <= 28)
                        total += (uint64_t)4 << r[8];
                if (i == 0)
                        first_empty = !(r[10] | r[11] | r[12] | r[13]);
                int nkeys = (r[9] ? 1 : 0) + r[38];
                for (int j = 0; j < nkeys && end - rest >= 2; j++) {
                        size_t n = (size_t)rest[0] << 8 | rest[1];
                        rest += 2;
                        if (n > (size_t)(end - rest))
                                n = (size_t)(end - rest);
                        if (s.n == FZ_KV_MAX)
                                break;
                        fz_kv_t *kv = &s.kv[s.n++];
                        kv->key[0] = 'I';
                        memcpy(kv->key + 1, r, 8);
                        kv->klen = 9;
                        int d = r[9] ? j - 1 : j;
                        if (d >= 0) {
                                kv->key[9] = (uint8_t)(d >> 24);
                                kv->key[10] = (uint8_t)(d >> 16);
                                kv->key[11] = (uint8_t)(d >> 8);
                                kv->key[12] = (uint8_t)d;
                                kv->klen = 13;
                        }
                        kv->val = rest;
                        kv->vlen = n;
                        rest += n;
                }
        }
        if ((flags & 1) && hlen >= 8)
                fz_put_be64(hdr + hlen - 8, XXH3_64bits(hdr, hlen - 8));

        size_t cap = flags & 2 ? 2048 : 1 << 20;
        int64_t horizon = flags & 4 ? 1500 : INT64_MIN;
        int64_t cmax = flags & 8 ? 1500 : INT64_MAX;
        enc_idfilter_t *f = enc_idfilter_new(FZ_HOUR, cap);
        FUZZ_SETUP(f, "out of memory");
        enc_idfilter_io_t io = {fz_put, fz_del, fz_del_range, fz_get, &s};
        char why[160];
        enc_err_t err = enc_idfilter_load(f, 0, tag, tlen, cmax, horizon, &io,
                                          why, sizeof(why));
        FUZZ_CHECK(err == ENC_OK || err == ENC_ERR_NOT_FOUND ||
                   err == ENC_ERR_CORRUPT || err == ENC_ERR_TOO_LARGE);
        if (err) {
                FUZZ_CHECK(why[0] != '\0');
                FUZZ_CHECK(enc_idfilter_complete_from(f, 0) ==
                           ENC_IDFILTER_UNKNOWN);
                FUZZ_CHECK(enc_idfilter_bytes(f) == 0);
                enc_idfilter_destroy(f);
                return 0;
        }
        /* a load that succeeded read a header of exactly ngen records */
        FUZZ_CHECK(listed == ngen);
        int64_t from = enc_idfilter_complete_from(f, 0);
        FUZZ_CHECK(from <= cmax);
        FUZZ_CHECK(enc_idfilter_bytes(f) <= cap);

        /* nothing dropped: saved again, exactly the header */
        size_t staged = enc_idfilter_save(f, 0, tag, tlen, &io);
        if (!(flags & 0xE) && total <= cap && (!ngen || !first_empty)) {
                FUZZ_CHECK(s.dels == 0 && s.tables == 0 && s.deltas == 0);
                FUZZ_CHECK(s.saved_hdr_len == hlen);
                FUZZ_CHECK(!memcmp(s.saved_hdr, hdr, hlen));
                FUZZ_CHECK(staged == 1 + hlen);
        }
        /* the tables as loaded: a dropped batch makes the next save write
         * each whole */
        enc_idfilter_saved(f, false);
        fz_reset_saves(&s);
        (void)enc_idfilter_save(f, 0, tag, tlen, &io);
        enc_idfilter_stats_t st;
        enc_idfilter_stats(f, &st);
        uint64_t seen = 0;
        for (int i = 0; i < s.tables; i++) {
                const uint8_t *r = fz_rec(hdr, hl, ngen, s.tab_serial[i]);
                FUZZ_CHECK(r != NULL);
                FUZZ_CHECK(s.tab_len[i] == (size_t)4 << r[8]);
                int64_t tmin = (int64_t)fz_be64(r + 14);
                int64_t tmax = (int64_t)fz_be64(r + 22);
                int64_t since = tmin > from ? tmin : from;
                for (size_t j = 0; j + 4 <= s.tab_len[i]; j += 4) {
                        const uint8_t *x = s.tab[i] + j;
                        uint32_t fp = (uint32_t)x[0] | (uint32_t)x[1] << 8 |
                                      (uint32_t)x[2] << 16 |
                                      (uint32_t)x[3] << 24;
                        if (!fp)
                                continue;
                        seen++;
                        if (since > tmax)
                                continue;
                        uint64_t key = (uint64_t)fp << 32 | (j / 4 / 16);
                        FUZZ_CHECK(enc_idfilter_maybe(f, 0, key, since));
                }
        }
        FUZZ_CHECK(seen == st.entries);
        fz_reset_saves(&s);
        /* lookups of keys never added end; an added one is found */
        for (uint64_t k = 0; k < FZ_KEYS; k++)
                (void)enc_idfilter_maybe(f, 0, k * 0x9E3779B97F4A7C15ULL, from);
        int64_t t = from < 4000000 ? 4000000 : from;
        enc_idfilter_add(f, 0, 0xABCDEF0100000005ULL, t, INT64_MIN);
        if (enc_idfilter_complete_from(f, 0) <= t)
                FUZZ_CHECK(enc_idfilter_maybe(f, 0, 0xABCDEF0100000005ULL, t));
        enc_idfilter_destroy(f);
        return 0;
}
