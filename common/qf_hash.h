/* qf_hash.h - XXH3-128 digests as qforge stores them.
 *
 * Owns the digest type, its canonical byte order (big-endian, XXH128_canonicalFromHash, so
 * the hex string equals `xxh128sum`'s) and its 32-character lower-case hex spelling used in
 * manifests.  Hashing is done with the Debian xxHash library; a streaming state lets writers
 * hash while they write.
 */
#ifndef QF_HASH_H
#define QF_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_hash128 {
    uint8_t b[16]; /* canonical (big-endian) form */
} qf_hash128;

#define QF_HASH_HEX_LEN 32

/* One-shot digest of a buffer. */
qf_hash128 qf_hash_bytes(const void *data, size_t n);
/* Canonical digest of a finished streaming state. */
qf_hash128 qf_hash_digest(const XXH3_state_t *st);
/* hex must hold QF_HASH_HEX_LEN + 1 bytes. */
void qf_hash_hex(qf_hash128 h, char *hex);
/* Parse 32 hex digits; returns 0 on success, -1 when malformed. */
int qf_hash_parse_hex(const char *hex, qf_hash128 *out);
int qf_hash_equal(qf_hash128 a, qf_hash128 b);

#ifdef __cplusplus
}
#endif

#endif /* QF_HASH_H */
