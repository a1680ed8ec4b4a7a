/* qf_sign.h - detached signatures in the OpenSSF model-signing format, and file digests.
 *
 * Owns model.sig: a Sigstore bundle (JSON, media type v0.3) holding a DSSE envelope over an
 * in-toto Statement v1 whose predicate ("https://model_signing/signature/v1.0") lists every
 * file of a folder with its SHA-256, as `model_signing sign key` (PyPI model-signing 1.1.1)
 * writes for the bring-your-own-key method, so `model_signing verify key` accepts what qforge
 * signs and the other way round.  Serialization "files", hash "sha256", no symlinks; the
 * subject's digest is the SHA-256 of every file digest in name order (model_signing's
 * "manifest" digest); the bundle names the key by the SHA-256 of its public PEM ("hint").
 * Keys: ECDSA on P-256 (SHA-256), P-384 (SHA-384), P-521 (SHA-512), PEM, unencrypted - what
 * that method accepts.  A private key file readable by group or others is refused
 * (QF_ERR_SECURITY); no key material is ever written.  All cryptography is libcrypto's.
 * Also owns listing a folder's files and their SHA-256 (`qforge hash`).
 */
#ifndef QF_SIGN_H
#define QF_SIGN_H

#include <jansson.h>
#include <stdint.h>

#include "qf_error.h"
#include "qf_manifest.h"
#include "qf_progress.h"
#include "qf_sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- files and digests ------------------------------------------------------------------ */
typedef struct qf_file_digest {
    char *name; /* relative to the folder, '/'-separated */
    uint64_t size;
    qf_sha256 sha256;
} qf_file_digest;

typedef struct qf_file_list {
    int n;
    qf_file_digest *f; /* sorted by name (byte order, as model_signing sorts) */
} qf_file_list;

/* What model_signing ignores by default (its signature file and git's files). */
extern const char *const qf_sign_default_ignore[];
extern const int qf_sign_n_default_ignore;

/* Every regular file under dir (recursively), except those equal to or under an ignore
 * path.  A symbolic link is QF_ERR_SECURITY (model_signing refuses them too). */
qf_status qf_dir_list_files(const char *dir, const char *const *ignore, int n_ignore, qf_file_list *out,
                            qf_error *err);
/* Read every listed file and fill its size and SHA-256 (OpenMP over files). */
qf_status qf_dir_hash_files(const char *dir, qf_file_list *l, qf_progress *prog, qf_error *err);
void qf_file_list_free(qf_file_list *l);

/* ---- statement -------------------------------------------------------------------------- */
/* The in-toto statement for these files (hashed), caller owns. */
json_t *qf_sign_statement(const char *model_name, const qf_file_list *l, const char *const *ignore, int n_ignore);
/* Parse a signed payload back: the files and digests it lists (sizes 0) and its ignore
 * paths (*ignore: a JSON array, caller owns).  QF_ERR_BAD_SIGNATURE when it is not a
 * model-signing v1.0 statement or its subject digest does not match its resources. */
qf_status qf_sign_statement_parse(const char *payload, size_t len, const char *sigpath, qf_file_list *out,
                                  json_t **ignore, qf_error *err);

/* ---- keys and the bundle ---------------------------------------------------------------- */
typedef struct qf_sign_key qf_sign_key;
/* Private key: refused when its file mode lets group or others read it (QF_ERR_SECURITY). */
qf_status qf_sign_key_load_private(const char *path, qf_sign_key **out, qf_error *err);
qf_status qf_sign_key_load_public(const char *path, qf_sign_key **out, qf_error *err);
void qf_sign_key_free(qf_sign_key *k);

/* DSSE pre-authentication encoding of an in-toto payload (malloc'd, *n bytes). */
unsigned char *qf_sign_pae(const char *payload, size_t len, size_t *n);
/* Sign payload and wrap it in a bundle (caller owns). */
qf_status qf_sign_bundle(qf_sign_key *key, const char *payload, size_t len, json_t **out, qf_error *err);
/* Check a bundle against a public key; on success *payload (malloc'd, *len bytes) is the
 * signed statement.  QF_ERR_WRONG_KEY when the bundle names another key, QF_ERR_BAD_SIGNATURE
 * when it is malformed or the signature does not verify.  sigpath names it in messages. */
qf_status qf_sign_bundle_open(json_t *bundle, qf_sign_key *pub, const char *sigpath, char **payload, size_t *len,
                              qf_error *err);

/* ---- folders ---------------------------------------------------------------------------- */
/* Sign every file of dir (read and hashed now) and write dir/model.sig atomically.
 * model_name: the subject's name (informative; NULL: dir's base name). */
qf_status qf_sign_dir(const char *dir, const char *key_path, const char *model_name, qf_progress *prog,
                      qf_error *err);
/* Check dir/model.sig with the public key, then every file's SHA-256 against it (issues go
 * to rep as for qf_verify_dir).  QF_ERR_NO_SIGNATURE, QF_ERR_WRONG_KEY, QF_ERR_BAD_SIGNATURE,
 * QF_ERR_FILESET (a signed file is missing or an unsigned one present), QF_ERR_VERIFY (a
 * file's content differs); err names the first file at fault. */
qf_status qf_sign_verify_dir(const char *dir, const char *pub_path, qf_verify_report *rep, qf_progress *prog,
                             qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_SIGN_H */
