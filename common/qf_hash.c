/* qf_hash.c - XXH3-128 digests in canonical form (see qf_hash.h). */
#include "qf_hash.h"

#include <string.h>

/* The library's implementation, inlined here and private to this file (see qf_hash.h). */
#define XXH_INLINE_ALL
#include <xxhash.h>

struct qf_hash_ctx {
    XXH3_state_t st;
};

static qf_hash128 qf_hash_canonical(XXH128_hash_t h)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    qf_hash128 out;
    memcpy(out.b, c.digest, 16);
    return out;
}

qf_hash128 qf_hash_bytes(const void *data, size_t n) { return qf_hash_canonical(XXH3_128bits(data, n)); }

qf_hash_ctx *qf_hash_new(void)
{
    qf_hash_ctx *c = XXH_alignedMalloc(sizeof *c, 64); /* XXH3_state_t wants 64-byte alignment */
    if (c) qf_hash_reset(c);
    return c;
}

void qf_hash_reset(qf_hash_ctx *c) { XXH3_128bits_reset(&c->st); }
void qf_hash_update(qf_hash_ctx *c, const void *data, size_t n) { XXH3_128bits_update(&c->st, data, n); }
qf_hash128 qf_hash_digest(const qf_hash_ctx *c) { return qf_hash_canonical(XXH3_128bits_digest(&c->st)); }
void qf_hash_free(qf_hash_ctx *c) { XXH_alignedFree(c); }

void qf_hash_hex(qf_hash128 h, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = digits[h.b[i] >> 4];
        hex[2 * i + 1] = digits[h.b[i] & 15];
    }
    hex[QF_HASH_HEX_LEN] = 0;
}

static int qf_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int qf_hash_parse_hex(const char *hex, qf_hash128 *out)
{
    if (!hex || strlen(hex) != QF_HASH_HEX_LEN) return -1;
    for (int i = 0; i < 16; i++) {
        int hi = qf_hexval(hex[2 * i]), lo = qf_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int qf_hash_equal(qf_hash128 a, qf_hash128 b) { return memcmp(a.b, b.b, 16) == 0; }
