/* qf_hash.h - XXH3-128 digests as qforge stores them.
 *
 * Owns the digest type, its canonical byte order (big-endian, XXH128_canonicalFromHash, so
 * the hex string equals `xxh128sum`'s) and its 32-character lower-case hex spelling used in
 * manifests, and the streaming context writers hash with while they write.  The hash is the
 * Debian xxHash library's, compiled into qf_hash.c from its header (XXH_INLINE_ALL) so that it
 * uses the vector extensions this build targets (AVX2: about 3x the shared library's SSE2 rate,
 * and every output byte is hashed twice, per file and per tensor).
 */
#ifndef QF_HASH_H
#define QF_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_hash128 {
    uint8_t b[16]; /* canonical (big-endian) form */
} qf_hash128;

#define QF_HASH_HEX_LEN 32

/* One-shot digest of a buffer. */
qf_hash128 qf_hash_bytes(const void *data, size_t n);
/* Streaming: NULL on allocation failure; a new context is reset.  digest does not end the
 * context (reset starts the next input); free releases it (NULL ok). */
typedef struct qf_hash_ctx qf_hash_ctx;
qf_hash_ctx *qf_hash_new(void);
void qf_hash_reset(qf_hash_ctx *c);
void qf_hash_update(qf_hash_ctx *c, const void *data, size_t n);
qf_hash128 qf_hash_digest(const qf_hash_ctx *c);
void qf_hash_free(qf_hash_ctx *c);
/* hex must hold QF_HASH_HEX_LEN + 1 bytes. */
void qf_hash_hex(qf_hash128 h, char *hex);
/* Parse 32 hex digits; returns 0 on success, -1 when malformed. */
int qf_hash_parse_hex(const char *hex, qf_hash128 *out);
int qf_hash_equal(qf_hash128 a, qf_hash128 b);

#ifdef __cplusplus
}
#endif

#endif /* QF_HASH_H */
