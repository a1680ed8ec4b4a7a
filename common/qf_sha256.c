/* qf_sha256.c - SHA-256 through OpenSSL's EVP interface (see qf_sha256.h). */
#include "qf_sha256.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"

struct qf_sha256_ctx {
    EVP_MD_CTX *md;
};

qf_sha256_ctx *qf_sha256_new(void)
{
    qf_sha256_ctx *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        free(c);
        return NULL;
    }
    return c;
}

void qf_sha256_update(qf_sha256_ctx *c, const void *data, size_t n)
{
    if (n) EVP_DigestUpdate(c->md, data, n);
}

qf_sha256 qf_sha256_final(qf_sha256_ctx *c)
{
    qf_sha256 h;
    unsigned int len = 0;
    EVP_DigestFinal_ex(c->md, h.b, &len);
    qf_sha256_free(c);
    return h;
}

void qf_sha256_free(qf_sha256_ctx *c)
{
    if (!c) return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

qf_sha256 qf_sha256_bytes(const void *data, size_t n)
{
    qf_sha256 h;
    unsigned int len = 0;
    EVP_Digest(n ? data : "", n, h.b, &len, EVP_sha256(), NULL);
    return h;
}

qf_status qf_sha256_file(const char *path, qf_sha256 *out, uint64_t *size, qf_error *err)
{
    qf_mapped_file f;
    QF_TRY(qf_file_map(path, &f, err));
    qf_sha256_ctx *c = qf_sha256_new();
    if (!c) {
        qf_file_unmap(&f);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", path);
    }
    /* 64 MiB steps, dropping each step's pages: a 5 GB shard never sits in memory whole */
    const uint64_t step = 64ull << 20;
    for (uint64_t off = 0; off < f.size; off += step) {
        uint64_t k = f.size - off < step ? f.size - off : step;
        qf_sha256_update(c, f.data + off, (size_t)k);
        qf_file_release(&f, off, k);
    }
    *out = qf_sha256_final(c);
    if (size) *size = f.size;
    qf_file_unmap(&f);
    return QF_OK;
}

void qf_sha256_hex(qf_sha256 h, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[h.b[i] >> 4];
        hex[2 * i + 1] = digits[h.b[i] & 15];
    }
    hex[QF_SHA256_HEX_LEN] = 0;
}

static int qf_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int qf_sha256_parse_hex(const char *hex, qf_sha256 *out)
{
    if (!hex || strlen(hex) != QF_SHA256_HEX_LEN) return -1;
    for (int i = 0; i < 32; i++) {
        int hi = qf_hexval(hex[2 * i]), lo = qf_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int qf_sha256_equal(qf_sha256 a, qf_sha256 b) { return memcmp(a.b, b.b, 32) == 0; }
