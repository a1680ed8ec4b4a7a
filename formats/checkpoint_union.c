/* checkpoint_union.c - one tensor table over several checkpoints (see qf_safetensors.h).
 * Used by `qforge merge` to read the parts of a partitioned conversion as one model. */
#include <stdlib.h>
#include <string.h>

#include "qf_safetensors.h"

static int qf_union_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_tensor *)a)->name, ((const qf_tensor *)b)->name);
}

qf_status qf_checkpoint_union(qf_checkpoint **parts, int n, qf_checkpoint **out, qf_error *err)
{
    *out = NULL;
    qf_checkpoint *u = calloc(1, sizeof *u);
    int nf = 0, nt = 0, no = 0;
    for (int i = 0; i < n; i++) nf += parts[i]->n_files, nt += parts[i]->n_tensors, no += parts[i]->n_owned;
    if (u) {
        u->files = calloc((size_t)nf + 1, sizeof *u->files);
        u->tensors = calloc((size_t)nt + 1, sizeof *u->tensors);
        u->owned = calloc((size_t)no + 1, sizeof *u->owned);
    }
    if (!u || !u->files || !u->tensors || !u->owned) {
        qf_checkpoint_free(u);
        for (int i = 0; i < n; i++) qf_checkpoint_free(parts[i]), parts[i] = NULL;
        return qf_fail(err, QF_ERR_NOMEM, "out of memory merging %d parts", n);
    }
    u->dir = strdup(parts[0]->dir);
    for (int i = 0; i < n; i++) {
        qf_checkpoint *p = parts[i];
        for (int t = 0; t < p->n_tensors; t++) {
            u->tensors[u->n_tensors] = p->tensors[t];
            u->tensors[u->n_tensors++].file += u->n_files;
        }
        if (p->n_files) memcpy(u->files + u->n_files, p->files, sizeof *p->files * (size_t)p->n_files);
        u->n_files += p->n_files;
        /* buffers that tensors point into (.bin views made contiguous, GGUF decodes) */
        if (p->n_owned) /* owned is NULL when there are none: memcpy from NULL is UB even for 0 bytes */
            memcpy(u->owned + u->n_owned, p->owned, sizeof *p->owned * (size_t)p->n_owned);
        u->n_owned += p->n_owned;
        /* ownership moved to u */
        free(p->owned), p->owned = NULL, p->n_owned = 0;
        free(p->files), p->files = NULL, p->n_files = 0;
        free(p->tensors), p->tensors = NULL, p->n_tensors = 0;
        qf_checkpoint_free(p);
        parts[i] = NULL;
    }
    qsort(u->tensors, (size_t)u->n_tensors, sizeof *u->tensors, qf_union_cmp);
    for (int i = 1; i < u->n_tensors; i++)
        if (strcmp(u->tensors[i - 1].name, u->tensors[i].name) == 0) {
            qf_status s = qf_fail(err, QF_ERR_FORMAT, "tensor '%s' is in two parts (%s and %s): the --layers slices overlap",
                                  u->tensors[i].name, u->files[u->tensors[i - 1].file].path, u->files[u->tensors[i].file].path);
            qf_checkpoint_free(u);
            return s;
        }
    *out = u;
    return QF_OK;
}
