/* qf_sha256.h - SHA-256 digests of files, as model hubs and signatures name them.
 *
 * Owns the SHA-256 digest type, its 64-character lower-case hex spelling (what `sha256sum`
 * prints and what Hugging Face shows as a large file's "oid"), and a streaming context so
 * writers hash while they write beside XXH3-128.  The digest itself is OpenSSL libcrypto's
 * (EVP, SHA-NI where the CPU has it): qforge never implements cryptography.
 */
#ifndef QF_SHA256_H
#define QF_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_sha256 {
    uint8_t b[32];
} qf_sha256;

#define QF_SHA256_HEX_LEN 64

typedef struct qf_sha256_ctx qf_sha256_ctx;

/* Streaming: NULL on allocation failure; final frees the context. */
qf_sha256_ctx *qf_sha256_new(void);
void qf_sha256_update(qf_sha256_ctx *c, const void *data, size_t n);
qf_sha256 qf_sha256_final(qf_sha256_ctx *c);
void qf_sha256_free(qf_sha256_ctx *c); /* without a digest (abort paths); NULL ok */

qf_sha256 qf_sha256_bytes(const void *data, size_t n);
/* Read a regular file to its end (mapped, in steps); size may be NULL. */
qf_status qf_sha256_file(const char *path, qf_sha256 *out, uint64_t *size, qf_error *err);
/* hex must hold QF_SHA256_HEX_LEN + 1 bytes. */
void qf_sha256_hex(qf_sha256 h, char *hex);
/* Parse 64 hex digits (either case); 0 on success, -1 when malformed. */
int qf_sha256_parse_hex(const char *hex, qf_sha256 *out);
int qf_sha256_equal(qf_sha256 a, qf_sha256 b);

#ifdef __cplusplus
}
#endif

#endif /* QF_SHA256_H */
