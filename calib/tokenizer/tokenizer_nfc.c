/* tokenizer_nfc.c - Unicode NFC (canonical decomposition, canonical ordering, canonical
 * composition; UAX #15) for the NFC normalizer that Qwen2-style tokenizers use.
 *
 * Tables: tokenizer_nfc_data.c (generated).  Hangul syllables are decomposed and composed
 * arithmetically.  Text below U+0300 is always in NFC, so such text is copied unchanged
 * without decoding.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

enum { QF_SBASE = 0xAC00, QF_LBASE = 0x1100, QF_VBASE = 0x1161, QF_TBASE = 0x11A7 };
enum { QF_LCOUNT = 19, QF_VCOUNT = 21, QF_TCOUNT = 28, QF_NCOUNT = QF_VCOUNT * QF_TCOUNT, QF_SCOUNT = 11172 };

static unsigned qf_tk_ccc(uint32_t cp)
{
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = qf_tk_nfc_n_ccc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t c = qf_tk_nfc_ccc[mid] >> 8;
        if (c == cp) return qf_tk_nfc_ccc[mid] & 0xFF;
        if (c < cp) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* Index of cp in decomp_cp, or -1. */
static long qf_tk_decomp_index(uint32_t cp)
{
    if (cp < 0xC0) return -1;
    size_t lo = 0, hi = qf_tk_nfc_n_decomp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (qf_tk_nfc_decomp_cp[mid] == cp) return (long)mid;
        if (qf_tk_nfc_decomp_cp[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Primary composite of (a, b), or 0. */
static uint32_t qf_tk_compose(uint32_t a, uint32_t b)
{
    if (a >= QF_LBASE && a < QF_LBASE + QF_LCOUNT && b >= QF_VBASE && b < QF_VBASE + QF_VCOUNT)
        return QF_SBASE + ((a - QF_LBASE) * QF_VCOUNT + (b - QF_VBASE)) * QF_TCOUNT;
    if (a >= QF_SBASE && a < QF_SBASE + QF_SCOUNT && (a - QF_SBASE) % QF_TCOUNT == 0 && b > QF_TBASE &&
        b < QF_TBASE + QF_TCOUNT)
        return a + (b - QF_TBASE);
    size_t lo = 0, hi = qf_tk_nfc_n_comp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const qf_tk_nfc_pair *p = &qf_tk_nfc_comp[mid];
        if (p->first == a && p->second == b) return p->composite;
        if (p->first < a || (p->first == a && p->second < b)) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

qf_status qf_tk_nfc(const char *in, size_t len, char **out, size_t *out_len, qf_error *err)
{
    size_t i = 0;
    while (i < len && (unsigned char)in[i] < 0xCC) i++; /* lead bytes >= 0xCC start U+0300 and up */
    if (i == len) {
        if (!(*out = malloc(len + 1))) return qf_fail(err, QF_ERR_NOMEM, "out of memory in NFC normalization");
        memcpy(*out, in, len);
        *out_len = len;
        return QF_OK;
    }
    /* Bounds (checked over all of Unicode 14 when the tables were made): decomposition gives
     * at most 1.5 code points per input byte, and NFC at most 3 output bytes per input byte. */
    size_t cap = 4 * len + 4, n = 0;
    uint32_t *cp = malloc(cap * sizeof *cp);
    char *o = malloc(4 * len + 1);
    if (!cp || !o) {
        free(cp);
        free(o);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory in NFC normalization");
    }

    /* 1. full canonical decomposition */
    for (i = 0; i < len;) {
        size_t k;
        uint32_t c = qf_tk_utf8_decode(in + i, &k);
        i += k;
        long d;
        if (c >= QF_SBASE && c < QF_SBASE + QF_SCOUNT) {
            uint32_t s = c - QF_SBASE;
            cp[n++] = QF_LBASE + s / QF_NCOUNT;
            cp[n++] = QF_VBASE + (s % QF_NCOUNT) / QF_TCOUNT;
            if (s % QF_TCOUNT) cp[n++] = QF_TBASE + s % QF_TCOUNT;
        } else if ((d = qf_tk_decomp_index(c)) >= 0) {
            for (unsigned j = qf_tk_nfc_decomp_off[d]; j < qf_tk_nfc_decomp_off[d + 1] && n < cap; j++)
                cp[n++] = qf_tk_nfc_decomp_seq[j];
        } else {
            cp[n++] = c;
        }
    }

    /* 2. canonical ordering: stable sort each run of non-starters by combining class */
    for (size_t a = 1; a < n; a++) {
        unsigned ca = qf_tk_ccc(cp[a]);
        if (!ca) continue;
        size_t b = a;
        while (b > 0 && qf_tk_ccc(cp[b - 1]) > ca) {
            uint32_t t = cp[b];
            cp[b] = cp[b - 1];
            cp[b - 1] = t;
            b--;
        }
    }

    /* 3. canonical composition: a character joins the last starter unless something between
     * them blocks it (the char just before has class 0 or >= its own class) */
    size_t m = 0;
    long starter = -1;
    unsigned last_cc = 0;
    for (size_t a = 0; a < n; a++) {
        uint32_t c = cp[a];
        unsigned cc = qf_tk_ccc(c);
        if (starter >= 0) {
            int adjacent = (size_t)starter == m - 1;
            uint32_t comp = adjacent || (last_cc != 0 && last_cc < cc) ? qf_tk_compose(cp[starter], c) : 0;
            if (comp) {
                cp[starter] = comp;
                continue;
            }
        }
        if (cc == 0) starter = (long)m;
        last_cc = cc;
        cp[m++] = c;
    }

    size_t ol = 0;
    for (size_t a = 0; a < m; a++) ol += qf_tk_utf8_encode(cp[a], o + ol);
    free(cp);
    *out = o;
    *out_len = ol;
    return QF_OK;
}
