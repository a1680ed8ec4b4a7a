/* qf_verify_folder.h - checking a model folder that carries no qforge manifest.
 *
 * Owns what can be proven about a downloaded hub folder without qforge's manifest: every
 * *.safetensors file is well formed (the reader's validation: header bounds, dtypes, sizes,
 * spans contiguous from 0 to the end of the file), the index's weight_map names existing
 * shards that hold exactly the tensors it maps, and, given a listing of expected SHA-256
 * digests, every listed file is present with that digest and nothing unlisted is there.
 * Listings: `sha256sum` output ("HEX  NAME", "HEX *NAME"), or the JSON a model hub's API
 * returns for a revision - a list (or {"siblings": [...]}) of objects naming the file by
 * "path" or "rfilename" with "lfs": {"sha256"} or {"oid"} (and "size" when known); entries
 * without an LFS digest (small files kept in git) are checked by size only.
 * Issues go to a qf_verify_report (qf_manifest.h), kinds missing / extra / size / modified /
 * structure; the status is QF_ERR_VERIFY when any was found, err naming the first file.
 */
#ifndef QF_VERIFY_FOLDER_H
#define QF_VERIFY_FOLDER_H

#include "qf_manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* listing: path of a digest listing, or NULL (structure only). */
qf_status qf_verify_folder(const char *dir, const char *listing, qf_verify_report *rep, qf_progress *prog,
                           qf_error *err);

/* Whether dir was written by qforge (its model card README.md names the manifest) - so a
 * missing manifest is a failure of the artifact rather than a folder to check as any other. */
int qf_folder_is_artifact(const char *dir);

#ifdef __cplusplus
}
#endif

#endif /* QF_VERIFY_FOLDER_H */
