/* tokenizer_table.c - the tokenizer's hash tables, UTF-8 helpers, GPT-2 byte symbols and
 * regex compilation (see tokenizer_internal.h). */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tokenizer_internal.h"

/* ---- string map ----------------------------------------------------------------------- */

uint64_t qf_tk_hash(const char *s, size_t len)
{
    uint64_t h = XXH3_64bits(s, len);
    return h ? h : 1; /* 0 marks empty slots */
}

const qf_tk_slot *qf_tk_strmap_find(const qf_tk_strmap *m, const char *s, size_t len, uint64_t h)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const qf_tk_slot *e = &m->slots[i];
        if (!e->hash) return NULL;
        if (e->hash == h && e->len == len && memcmp(m->blob + e->off, s, len) == 0) return e;
    }
}

static qf_status qf_tk_strmap_grow(qf_tk_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    qf_tk_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return QF_ERR_NOMEM;
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->slots[j].hash) continue;
        size_t i = m->slots[j].hash & (cap - 1);
        while (slots[i].hash) i = (i + 1) & (cap - 1);
        slots[i] = m->slots[j];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return QF_OK;
}

qf_status qf_tk_strmap_put(qf_tk_strmap *m, const char *s, size_t len, uint64_t h, qf_tk_slot **slot,
                           int *is_new)
{
    qf_tk_slot *found = (qf_tk_slot *)qf_tk_strmap_find(m, s, len, h);
    if (found) {
        *slot = found;
        *is_new = 0;
        return QF_OK;
    }
    if ((m->count + 1) * 2 > m->cap && qf_tk_strmap_grow(m) != QF_OK) return QF_ERR_NOMEM;
    if (len > UINT32_MAX - 1 || m->blob_len + len + 1 > UINT32_MAX) return QF_ERR_NOMEM;
    if (m->blob_len + len + 1 > m->blob_cap) {
        size_t cap = m->blob_cap ? m->blob_cap : 4096;
        while (cap < m->blob_len + len + 1) cap *= 2;
        char *blob = realloc(m->blob, cap);
        if (!blob) return QF_ERR_NOMEM;
        m->blob = blob;
        m->blob_cap = cap;
    }
    memcpy(m->blob + m->blob_len, s, len);
    m->blob[m->blob_len + len] = 0;
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].hash) i = (i + 1) & mask;
    m->slots[i] = (qf_tk_slot){.hash = h, .off = (uint32_t)m->blob_len, .len = (uint32_t)len};
    m->blob_len += len + 1;
    m->count++;
    *slot = &m->slots[i];
    *is_new = 1;
    return QF_OK;
}

void qf_tk_strmap_free(qf_tk_strmap *m)
{
    free(m->slots);
    free(m->blob);
    memset(m, 0, sizeof *m);
}

/* ---- pair map ------------------------------------------------------------------------- */

static inline uint64_t qf_tk_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

qf_status qf_tk_pairmap_init(qf_tk_pairmap *m, size_t expected)
{
    size_t cap = 64;
    while (cap < expected * 2 + 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return QF_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) m->slots[i].rank = -1;
    m->cap = cap;
    m->count = 0;
    return QF_OK;
}

void qf_tk_pairmap_put(qf_tk_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = m->cap - 1;
    for (size_t i = qf_tk_mix64(key) & mask;; i = (i + 1) & mask) {
        qf_tk_pair_slot *e = &m->slots[i];
        if (e->rank < 0) {
            *e = (qf_tk_pair_slot){.key = key, .rank = rank, .merged = merged};
            m->count++;
            return;
        }
        if (e->key == key) {
            e->rank = rank;
            e->merged = merged;
            return;
        }
    }
}

const qf_tk_pair_slot *qf_tk_pairmap_find(const qf_tk_pairmap *m, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = m->cap - 1;
    for (size_t i = qf_tk_mix64(key) & mask;; i = (i + 1) & mask) {
        const qf_tk_pair_slot *e = &m->slots[i];
        if (e->rank < 0) return NULL;
        if (e->key == key) return e;
    }
}

void qf_tk_pairmap_free(qf_tk_pairmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

size_t qf_tk_utf8_valid_prefix(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, min = 0x10000;
        else return i;
        if (i + n > len) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n;
    }
    return len;
}

uint32_t qf_tk_utf8_decode(const char *str, size_t *n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t k = qf_tk_utf8_len(s[0]);
    uint32_t cp = k == 1 ? s[0] : k == 2 ? s[0] & 0x1Fu : k == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < k; i++) cp = cp << 6 | (s[i] & 0x3Fu);
    *n = k;
    return cp;
}

uint32_t qf_tk_utf8_decode_last(const char *s, size_t end, size_t *start)
{
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    size_t n;
    *start = i;
    return qf_tk_utf8_decode(s + i, &n);
}

size_t qf_tk_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int qf_tk_is_white_space(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---- GPT-2 bytes_to_unicode ------------------------------------------------------------ */

/* Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the other 68
 * bytes map, in increasing order, to U+0100, U+0101, ...  Built once; the table is
 * constant afterwards, so concurrent first calls only race to write identical values. */
static qf_tk_byte_char qf_tk_byte_table[256];
static int qf_tk_byte_table_ready;

const qf_tk_byte_char *qf_tk_byte_chars(void)
{
    if (__atomic_load_n(&qf_tk_byte_table_ready, __ATOMIC_ACQUIRE)) return qf_tk_byte_table;
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : next++;
        char buf[4];
        size_t n = qf_tk_utf8_encode(cp, buf);
        memcpy(qf_tk_byte_table[b].s, buf, n);
        qf_tk_byte_table[b].len = (uint8_t)n;
    }
    __atomic_store_n(&qf_tk_byte_table_ready, 1, __ATOMIC_RELEASE);
    return qf_tk_byte_table;
}

/* ---- regex ---------------------------------------------------------------------------- */

qf_status qf_tk_regex_compile(const char *pattern, size_t len, int literal, const char *name,
                              const char *what, pcre2_code **out, qf_error *err)
{
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP); /* LITERAL refuses UCP */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: %s regex cannot be compiled at offset %zu: %s", name,
                       what, (size_t)off, (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* interpreted matching when JIT is absent */
    *out = re;
    return QF_OK;
}
