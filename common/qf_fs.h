/* qf_fs.h - files and folders: read-only mappings, whole-file reads, paths, atomic output.
 *
 * Owns the small filesystem layer every stage shares.  A qf_mapped_file is a read-only
 * private mapping of a whole input file (inputs are never modified); its owner unmaps it with
 * qf_file_unmap.  Output folders are built as "<dest>.qforge-tmp-<pid>" beside the
 * destination and renamed into place at the end, so a failed run never leaves something
 * that looks complete.
 */
#ifndef QF_FS_H
#define QF_FS_H

#include <stddef.h>
#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_mapped_file {
    char *path;          /* owned copy of the path */
    const uint8_t *data; /* (size) bytes, read-only; NULL when size == 0 */
    uint64_t size;
} qf_mapped_file;

/* Map path read-only.  On failure f is zeroed and err names the path. */
qf_status qf_file_map(const char *path, qf_mapped_file *f, qf_error *err);
void qf_file_unmap(qf_mapped_file *f); /* zeroed / NULL-safe */
/* Drop the resident pages of [off, off+len) of a mapping (they are re-read on next touch):
 * keeps resident memory bounded while streaming through files larger than RAM. */
void qf_file_release(const qf_mapped_file *f, uint64_t off, uint64_t len);

/* Read a whole file (regular, or a pipe / device streamed to its end) into a malloc'd,
 * NUL-terminated buffer of at most max_size bytes (larger: QF_ERR_FORMAT); caller frees. */
qf_status qf_file_read_all(const char *path, size_t max_size, char **out, size_t *len, qf_error *err);
/* write(2) all of buf to fd, retrying on EINTR and short writes; a failure (disk full) is
 * QF_ERR_IO naming path. */
qf_status qf_write_all(int fd, const void *buf, size_t len, const char *path, qf_error *err);
/* Write buf to path via path.tmp + rename. */
qf_status qf_file_write_atomic(const char *path, const void *buf, size_t len, qf_error *err);
/* Copy a file (for tokenizer files etc.). */
qf_status qf_file_copy(const char *src, const char *dst, qf_error *err);

int qf_path_exists(const char *path);
int qf_path_is_dir(const char *path);
/* malloc'd "a/b"; caller frees. */
char *qf_path_join(const char *a, const char *b);
/* Pointer to the last component of path (inside path). */
const char *qf_path_base(const char *path);

/* Absolute form of path, which need not exist yet: its deepest existing ancestor resolved by
 * realpath(3) (symlinks, "..", trailing slashes), the rest appended.  malloc'd; NULL when no
 * ancestor resolves or out of memory.  Used to compare an output path with the input's. */
char *qf_path_canonical(const char *path);
/* 1 when canonical path inner is outer or lies below it. */
int qf_path_within(const char *inner, const char *outer);
/* A file of a model folder may be read into an artifact: its path, with symbolic links and
 * ".." resolved, must lie inside model_dir (or, for the Hugging Face hub cache layout
 * models--ORG--NAME/snapshots/REV, inside models--ORG--NAME, where its blobs live).  Anything
 * else is QF_ERR_SECURITY naming the path and its target, so converting an untrusted
 * download cannot publish /etc/shadow. */
qf_status qf_model_file_check(const char *model_dir, const char *path, qf_error *err);

/* mkdir -p */
qf_status qf_mkdirs(const char *path, qf_error *err);
/* rm -rf (for temporary output folders only). */
void qf_remove_tree(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* QF_FS_H */
