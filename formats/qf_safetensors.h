/* qf_safetensors.h - reading safetensors checkpoints: one file, or a sharded hub folder.
 *
 * Owns the tensor table of a checkpoint: every tensor's name, dtype, shape and a borrowed
 * pointer into a read-only mapping of its shard.  Nothing is copied and the input files are
 * never modified; the table owns its names and mappings and qf_checkpoint_free releases them
 * (pointers into tensor data are valid until then).
 *
 * File layout: u64 little-endian header length N, then N bytes of JSON
 *   {"__metadata__": {"k": "v"}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...}
 * then the byte buffer that data_offsets index (relative to 8 + N).
 * Validation (each failure is QF_ERR_FORMAT naming the file and the tensor): N <= 100 MB and
 * inside the file; header is a JSON object; no duplicate names; dtype known; shape of at most
 * 8 non-negative dims; end - begin == numel * bits / 8 exactly (no overflow); spans sorted by
 * offset start at 0 and are contiguous (no hole, no overlap) and end exactly at end of file;
 * __metadata__ maps strings to strings.
 * A folder is read through model.safetensors.index.json when present (every shard it names
 * must exist and hold the tensors mapped to it; shard names may not contain '/'), otherwise
 * through model.safetensors, otherwise through its only *.safetensors file.
 */
#ifndef QF_SAFETENSORS_H
#define QF_SAFETENSORS_H

#include <stdint.h>

#include "qf_dtype.h"
#include "qf_error.h"
#include "qf_fs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_MAX_DIMS 8
#define QF_ST_MAX_HEADER 100000000ull

/* How a tensor that is not stored as it is read makes its bytes: a quantized source's weight
 * dequantized on read (qf_quant_source.h).  run writes the tensor's nbytes into out. */
typedef struct qf_tensor_decode qf_tensor_decode;
struct qf_tensor_decode {
    qf_status (*run)(const qf_tensor_decode *d, void *out, qf_error *err);
};

typedef struct qf_tensor {
    char *name;                   /* owned by the table */
    qf_dtype dtype;
    int ndim;
    int64_t shape[QF_MAX_DIMS];   /* elements per dim, row-major */
    uint64_t nbytes;              /* numel * bits / 8 */
    const uint8_t *data;          /* borrowed: inside files[file].data; NULL when nbytes == 0 */
    int file;                     /* index into qf_checkpoint.files */
    uint64_t offset;              /* absolute byte offset of data in that file */
    const qf_tensor_decode *decode; /* NULL: data is stored.  Else data is NULL until
                                     * qf_checkpoint_acquire decodes it into a buffer that
                                     * qf_checkpoint_release frees (owned by the table) */
} qf_tensor;

typedef struct qf_st_meta {
    char *key, *value; /* owned */
} qf_st_meta;

typedef struct qf_checkpoint {
    char *dir;               /* folder (or the file's folder) */
    int n_files;
    qf_mapped_file *files;   /* the shards, in index order (sorted names) */
    int n_tensors;
    qf_tensor *tensors;      /* sorted by name */
    int n_meta;
    qf_st_meta *meta;        /* __metadata__ of the first shard */
    int n_owned;
    void **owned;            /* buffers some tensors point into instead of a mapping (.bin views made
                              * contiguous or byte-swapped, inflated entries); freed by qf_checkpoint_free */
} qf_checkpoint;

/* Open a hub folder (index, model.safetensors or a lone *.safetensors) or one .safetensors
 * file; PyTorch .bin / .pt files and folders holding only those are read through
 * qf_zip_checkpoint.h into the same table, and a .gguf file (or a folder whose only weights it
 * is) through qf_gguf_load_checkpoint (dequantized to F32, Hugging Face names).  *out is set
 * only on success; on failure nothing stays mapped. */
qf_status qf_checkpoint_open(const char *path, qf_checkpoint **out, qf_error *err);
void qf_checkpoint_free(qf_checkpoint *ck); /* NULL ok */

/* Binary search by name; NULL when absent. */
const qf_tensor *qf_checkpoint_find(const qf_checkpoint *ck, const char *name);
/* Total bytes of all shard files. */
uint64_t qf_checkpoint_bytes(const qf_checkpoint *ck);
/* Drop the resident pages of one tensor (re-read from disk if touched again); a decoded tensor
 * of the table (t->decode, t one of ck->tensors) frees its bytes and is NULL again.  A view of
 * a tensor (qf_expert_block) drops pages only. */
void qf_checkpoint_release(const qf_checkpoint *ck, const qf_tensor *t);
/* Make t->data valid before reading it: a stored tensor already is (QF_OK); a decoded one is
 * decoded now (one tensor resident at a time when each use is followed by its release).  t must
 * be one of ck->tensors.  Not for two threads on the same tensor. */
qf_status qf_checkpoint_acquire(const qf_checkpoint *ck, const qf_tensor *t, qf_error *err);
/* Hand an acquired decoded tensor's buffer to the caller, who frees it (a write queue that counts
 * the bytes it holds); the table's entry is NULL again.  NULL for a stored tensor. */
void *qf_checkpoint_take(const qf_checkpoint *ck, const qf_tensor *t);

/* Take over parts[0..n) (they are freed and set to NULL, success or not) and return one
 * table over all their files; a tensor name present in two parts is QF_ERR_FORMAT. */
qf_status qf_checkpoint_union(qf_checkpoint **parts, int n, qf_checkpoint **out, qf_error *err);

/* Number of elements (product of shape; 1 for rank 0). */
uint64_t qf_tensor_numel(const qf_tensor *t);

/* Parse and validate one file image (the whole file, size bytes) named label in messages.
 * Appends its tensors to *tensors / *n_tensors (realloc'd; names owned by the array) with
 * file = file_index, and, if meta != NULL, returns its __metadata__ (caller frees with
 * qf_st_meta_free).  Used by qf_checkpoint_open and by the fuzz harness. */
qf_status qf_safetensors_parse(const char *label, const uint8_t *data, uint64_t size, int file_index,
                               qf_tensor **tensors, int *n_tensors, qf_st_meta **meta, int *n_meta,
                               qf_error *err);
void qf_st_meta_free(qf_st_meta *meta, int n);
void qf_tensors_free(qf_tensor *tensors, int n);

#ifdef __cplusplus
}
#endif

#endif /* QF_SAFETENSORS_H */
