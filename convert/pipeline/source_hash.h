/* source_hash.h - internal to convert/: XXH3-128 of every input file, in the background.
 *
 * The manifest records the identity of the source checkpoint.  A thread reads each shard
 * sequentially with pread into one 16 MiB buffer (so resident memory does not grow with
 * the model) while the converter works; its reads also warm the page cache just ahead of
 * the quantizer.
 */
#ifndef QF_SOURCE_HASH_H
#define QF_SOURCE_HASH_H

#include <jansson.h>

#include "qf_hash.h"
#include "qf_safetensors.h"

typedef struct qf_source_hasher qf_source_hasher;

qf_status qf_source_hash_start(const qf_checkpoint *ck, qf_source_hasher **out, qf_error *err);
/* Wait for the thread; hashes[ck->n_files] in file order.  Frees h. */
qf_status qf_source_hash_finish(qf_source_hasher *h, qf_hash128 *hashes, qf_error *err);

/* The manifest's source file list: [{name, size, xxh3_128}] for ck's files, hashes[i] each. */
json_t *qf_source_files_json(const qf_checkpoint *ck, const qf_hash128 *hashes);

#endif
