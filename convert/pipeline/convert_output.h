/* convert_output.h - internal to convert/: the artifact folder for the layouts that do not
 * run through qf_convert_run's shard pipeline: `--to safetensors` (plain, unquantized
 * safetensors from any checkpoint qforge reads, e.g. PyTorch .bin) and `--layout gguf`.
 *
 * Owns the steps every such layout shares, in the order a conversion takes them:
 *   qf_output_begin         check the destination, create "<out>.qforge-tmp"
 *   (the layout writes its weight files into tmp and lists them in the manifest)
 *   qf_output_side_files    config.json (as given, or the source's) + the source's other
 *                           non-weight files (tokenizer, generation config, licence), hashed
 *   qf_output_finish        source identity, README.md model card, sealed manifest, rename into
 *                           place; on failure the temporary folder is removed
 * A failed run leaves no destination (no resume for these layouts: they are one pass).
 */
#ifndef QF_CONVERT_OUTPUT_H
#define QF_CONVERT_OUTPUT_H

#include <jansson.h>

#include "qf_convert.h"
#include "qf_safetensors.h"

/* "compressed-tensors" (or "ct"), "modelopt", "gguf", "safetensors" -> *out; -1 when unknown. */
int qf_layout_parse(const char *name, qf_layout *out);
const char *qf_layout_name(qf_layout l);

/* Refuse a destination that would overwrite or delete the input: -o equal to a source, inside
 * it, or holding it (compared after resolving symlinks, "..", trailing slashes); an existing
 * destination without --force; with --force, one that is not a previous qforge output (no
 * manifest) or an empty folder.  QF_ERR_USAGE naming both paths; nothing is touched. */
qf_status qf_output_guard(const qf_convert_opts *o, qf_error *err);

/* *tmp (malloc'd) is "<o->out>.qforge-tmp", freshly created, after qf_output_guard. */
qf_status qf_output_begin(const qf_convert_opts *o, char **tmp, qf_error *err);

/* Write config (a JSON object; NULL: copy src/config.json unchanged when present) as
 * tmp/config.json, copy the other non-weight files of src, and add all of them to the
 * manifest's "files" with their sizes and hashes (name order).  bytes_out grows by their size. */
qf_status qf_output_side_files(const char *src, const char *tmp, const json_t *config, json_t *manifest,
                               uint64_t *bytes_out, qf_error *err);

/* Finish: when s is QF_OK, add the source identity of ck (file names, sizes, XXH3-128; the
 * config's hash), render README.md, seal the manifest and rename tmp to o->out (replacing it
 * with o->force).  Otherwise, or when any of that fails, remove tmp.  Frees tmp.  Returns the
 * final status (s when s was already a failure). */
qf_status qf_output_finish(const qf_convert_opts *o, const qf_checkpoint *ck, char *tmp, json_t *manifest, qf_status s,
                           uint64_t *bytes_out, qf_error *err);

/* The non-weight files of model folder src that an artifact copies (not qf_output_skip'd),
 * unsorted; sub-folders are ignored.  A symlink out of the folder is QF_ERR_SECURITY and a
 * FIFO/socket/device QF_ERR_FORMAT (qf_model_file_check).  *names_out (caller frees each and
 * the array) has room for `spare` more names. */
qf_status qf_output_list_side_files(const char *src, int spare, char ***names_out, int *n_out, qf_error *err);

/* Whether a source file is a weight, an index or a file qforge writes itself (config.json,
 * manifest, journal, hf_quant_config.json, dot files): such files are never copied. */
int qf_output_skip(const char *name);
/* Add dir/name with its size and XXH3-128 to the manifest's files; *bytes_out += its size. */
qf_status qf_output_hash_file(json_t *m, const char *dir, const char *name, uint64_t *bytes_out, qf_error *err);

/* `qforge convert SRC --to safetensors -o OUT`: every tensor of SRC unchanged, as safetensors
 * shards (name order, o->max_shard_bytes each, model.safetensors.index.json when several). */
qf_status qf_convert_passthrough(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err);

/* `qforge convert SRC --layout gguf --scheme TYPE -o OUT`: one model.gguf for llama.cpp
 * (o->gguf_type: q8_0, q4_0, q4_k, f16, bf16, f32; llama-family checkpoints, byte-level BPE
 * tokenizers) plus config.json, the tokenizer files, README.md and the manifest. */
qf_status qf_convert_gguf(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err);

#endif /* QF_CONVERT_OUTPUT_H */
