/* qf_manifest.h - qforge.manifest.json: what an artifact is, and proof that it is intact.
 *
 * Owns the manifest's schema, its seal and the integrity check `qforge verify` runs.
 * A manifest (JSON object) holds:
 *   "format": "qforge.manifest", "version": 1, "tool": {"name", "version"},
 *   "recipe":  the full recipe (scheme, method, ignore list, options; calibration facts),
 *   "source":  {"path": basename, "files": [{"name", "size", "xxh3_128"}]},
 *   "files":   every file of the artifact except the manifest (and a signature, model.sig):
 *              [{"name", "size", "xxh3_128", "sha256"}] ("sha256" since 0.x: older manifests
 *              lack it and verify by XXH3-128 alone),
 *   "tensors": every tensor: [{"name", "file", "dtype", "shape", "xxh3_128"}],
 *   optional "validation" (qforge validate --record),
 *   "seal":    XXH3-128 of the canonical text of the manifest without "seal".
 * Canonical text = json_dumps(JSON_INDENT(1) | JSON_SORT_KEYS) plus a newline; the file must
 * be exactly the canonical text of its own content, so any edit of the manifest is detected.
 * Hashes are the canonical big-endian hex of XXH3-128 (qf_hash.h), as `xxh128sum` prints.
 */
#ifndef QF_MANIFEST_H
#define QF_MANIFEST_H

#include <jansson.h>
#include <stdint.h>

#include "qf_dtype.h"
#include "qf_error.h"
#include "qf_hash.h"
#include "qf_progress.h"
#include "qf_sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_MANIFEST_NAME "qforge.manifest.json"
/* The detached signature beside it (OpenSSF model-signing's default name; qf_sign.h). */
#define QF_SIGNATURE_NAME "model.sig"

/* New manifest with format, version and tool filled; caller owns (json_decref). */
json_t *qf_manifest_new(void);
/* Append to "files" / "tensors" (created on first use).  sha: the file's SHA-256, or NULL
 * (then the entry has no "sha256": manifests before it had none, and still verify). */
void qf_manifest_add_file(json_t *m, const char *name, uint64_t size, qf_hash128 h, const qf_sha256 *sha);
void qf_manifest_add_tensor(json_t *m, const char *file, const char *name, qf_dtype dtype, int ndim,
                            const int64_t *shape, qf_hash128 h);
/* Seal and write dir/qforge.manifest.json atomically. m is not consumed. */
qf_status qf_manifest_write(const char *dir, json_t *m, qf_error *err);
/* Read and check the seal: QF_ERR_VERIFY when the manifest was modified, QF_ERR_FORMAT when
 * it is not a manifest, QF_ERR_IO when missing.  *out owned by the caller. */
qf_status qf_manifest_load(const char *dir, json_t **out, qf_error *err);
/* Load (seal checked), set key to value (stolen reference), re-seal, write. */
qf_status qf_manifest_update(const char *dir, const char *key, json_t *value, qf_error *err);

/* ---- verify ----------------------------------------------------------------------------- */
typedef enum qf_verify_kind {
    QF_VERIFY_MISSING = 1,   /* listed file absent */
    QF_VERIFY_EXTRA = 2,     /* file present but not listed */
    QF_VERIFY_SIZE = 3,      /* size differs (truncated or grown) */
    QF_VERIFY_MODIFIED = 4,  /* same size, different hash */
    QF_VERIFY_TENSOR = 5,    /* a tensor's bytes differ (or the tensor is gone) */
    QF_VERIFY_MANIFEST = 6,  /* the manifest itself is missing, unreadable or its seal fails */
    QF_VERIFY_STRUCTURE = 7, /* a safetensors file or the shard index is malformed (qf_verify_folder.h) */
} qf_verify_kind;

typedef struct qf_verify_issue {
    qf_verify_kind kind;
    char file[256];
    char tensor[256];
    char detail[256];
} qf_verify_issue;

typedef struct qf_verify_report {
    int files_checked, files_ok;
    int tensors_checked, tensors_ok;
    uint64_t bytes_hashed;
    double seconds;
    int n_issues;
    qf_verify_issue *issues; /* malloc'd; free with qf_verify_report_free */
} qf_verify_report;

/* Recompute every file and tensor hash of dir (OpenMP over files and tensors).  Returns
 * QF_OK when everything matches, QF_ERR_VERIFY when any issue was found (err names the
 * first); other codes when the check itself could not run. */
qf_status qf_verify_dir(const char *dir, qf_verify_report *rep, qf_progress *prog, qf_error *err);
void qf_verify_report_free(qf_verify_report *rep);
/* Append one issue (strings cut to the report's field sizes; safe from OpenMP threads); an
 * allocation failure drops the issue, the caller's status still reports the failure. */
void qf_verify_report_add(qf_verify_report *rep, qf_verify_kind kind, const char *file, const char *tensor,
                          const char *detail);
const char *qf_verify_kind_name(qf_verify_kind k);

#ifdef __cplusplus
}
#endif

#endif /* QF_MANIFEST_H */
