/* qf_shard_index.h - the index file of a sharded hub checkpoint.
 *
 * Owns the reading of model.safetensors.index.json and pytorch_model.bin.index.json:
 * {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>"}}.  Shard names must be plain
 * file names (no '/', not "." or ".."), so an index can never point outside its folder.
 */
#ifndef QF_SHARD_INDEX_H
#define QF_SHARD_INDEX_H

#include <jansson.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read index_path: *names = the sorted, unique shard file names (*n of them; malloc'd array of
 * malloc'd strings, the caller frees both), *weight_map = a new reference to the weight_map.
 * QF_ERR_FORMAT (naming the file and tensor) on invalid JSON, no weight_map, bad shard names. */
qf_status qf_shard_index_read(const char *index_path, char ***names, int *n, json_t **weight_map, qf_error *err);

/* The shards of folder dir named by its index file (index_name) or, without one, its single
 * weights file (single_name): as qf_shard_index_read, or *names = {single_name}, *n = 1 and
 * *weight_map = NULL.  Neither present: QF_OK with *n = 0 (the caller scans the folder). */
qf_status qf_shard_index_or_single(const char *dir, const char *index_name, const char *single_name, char ***names,
                                   int *n, json_t **weight_map, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif
