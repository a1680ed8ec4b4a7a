/* qf_gguf_checkpoint.c - a GGUF file as a dequantized checkpoint table in Hugging Face names, and
 * llama.cpp's Q/K row order for the architectures that interleave RoPE pairs (see qf_gguf.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"

void qf_gguf_permute_rows(const void *src, void *dst, int64_t rows, uint64_t row_bytes, int n_head, int inverse)
{
    const uint8_t *s = src;
    uint8_t *d = dst;
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++) {
                int64_t hf_row = h * hd + j * half + i, gg_row = h * hd + i * 2 + j; /* rotate-half vs interleaved */
                int64_t from = inverse ? gg_row : hf_row, to = inverse ? hf_row : gg_row;
                memcpy(d + (uint64_t)to * row_bytes, s + (uint64_t)from * row_bytes, row_bytes);
            }
}

/* ---- a GGUF file as a checkpoint -------------------------------------------------------------- */

static int qf_has_suffix(const char *s, const char *suf)
{
    size_t l = strlen(s), k = strlen(suf);
    return l >= k && strcmp(s + l - k, suf) == 0;
}

char *qf_gguf_checkpoint_path(const char *path)
{
    if (!qf_path_is_dir(path)) return qf_has_suffix(path, ".gguf") && qf_path_exists(path) ? strdup(path) : NULL;
    DIR *d = opendir(path);
    if (!d) return NULL;
    int n_gguf = 0, n_other = 0;
    char *found = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (qf_has_suffix(de->d_name, ".gguf")) {
            if (!n_gguf++) found = strdup(de->d_name);
        } else if (qf_has_suffix(de->d_name, ".safetensors") || qf_has_suffix(de->d_name, ".bin") ||
                   qf_has_suffix(de->d_name, ".pt") || qf_has_suffix(de->d_name, ".pth"))
            n_other++;
    }
    closedir(d);
    char *p = n_gguf == 1 && !n_other && found ? qf_path_join(path, found) : NULL;
    free(found);
    return p;
}

/* A 3-D tensor that may be stacked experts: with rows and columns, so that its expert count is
 * bounded by its data, which the parser has bounded by the file */
static int qf_may_stack(const qf_gguf_tensor *t) { return t->ndim == 3 && t->ne[0] > 0 && t->ne[1] > 0; }

static int qf_tensor_name_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_tensor *)a)->name, ((const qf_tensor *)b)->name);
}

qf_status qf_gguf_load_checkpoint(const char *path, qf_checkpoint **out, qf_error *err)
{
    *out = NULL;
    char *file = qf_gguf_checkpoint_path(path);
    if (!file) return qf_fail(err, QF_ERR_IO, "%s: no single .gguf file here", path);
    qf_gguf *g;
    qf_status s = qf_gguf_open(file, &g, err);
    free(file);
    if (s) return s;
    const char *arch = qf_gguf_get_str(g, "general.architecture");
    const qf_gguf_arch *a = qf_gguf_arch_named(arch);
    int64_t n_head = 0, n_head_kv = 0;
    char key[96], list[128];
    if (!a) {
        qf_gguf_arch_list(list, sizeof list, 1);
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: general.architecture '%s' is not mapped back to Hugging Face names "
                    "(mapped: %s)", g->label, arch ? arch : "(none)", list);
    } else if (snprintf(key, sizeof key, "%s.attention.head_count", a->name),
               qf_gguf_get_int(g, key, &n_head) || n_head <= 0) {
        s = qf_fail(err, QF_ERR_FORMAT, "%s: %s is missing", g->label, key);
    } else if (snprintf(key, sizeof key, "%s.attention.head_count_kv", a->name),
               qf_gguf_get_int(g, key, &n_head_kv) || n_head_kv <= 0) {
        n_head_kv = n_head;
    }
    /* Head counts size the q/k row permutation below: bound them before any arithmetic (2^31
     * heads overflowed an int into a division by zero; a count above the rows left rows unset). */
    if (!s && (n_head > QF_GGUF_MAX_HEADS || n_head_kv > n_head))
        s = qf_fail(err, QF_ERR_FORMAT, "%s: %s.attention.head_count %lld / head_count_kv %lld are not a valid pair "
                    "(at most %d heads, kv heads <= heads)", g->label, a->name, (long long)n_head, (long long)n_head_kv,
                    QF_GGUF_MAX_HEADS);
    if (s) {
        qf_gguf_free(g);
        return s;
    }
    qf_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) {
        qf_gguf_free(g);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    const char *b = qf_path_base(g->label);
    ck->dir = strndup(g->label, (size_t)(b - g->label));
    if (!*ck->dir) free(ck->dir), ck->dir = strdup(".");
    ck->files = calloc(1, sizeof *ck->files);
    /* a stacked expert tensor [n_expert, rows, cols] becomes n_expert Hugging Face tensors */
    uint64_t n_out = 1;
    for (int i = 0; i < g->n_tensors; i++) n_out += qf_may_stack(&g->tensors[i]) ? (uint64_t)g->tensors[i].ne[2] : 1;
    ck->tensors = n_out < (1u << 30) ? calloc((size_t)n_out, sizeof *ck->tensors) : NULL;
    ck->owned = calloc((size_t)g->n_tensors + 1, sizeof *ck->owned);
    if (!ck->files || !ck->tensors || !ck->owned) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; s == QF_OK && i < g->n_tensors; i++) {
        const qf_gguf_tensor *gt = &g->tensors[i];
        char hf[256];
        if (strcmp(gt->name, "rope_freqs.weight") == 0) continue; /* derived from config.json by HF */
        /* stacked experts: each slice under its expert's name (a 3-D tensor of no mapped name keeps its own) */
        int64_t n_slices = qf_may_stack(gt) && !qf_gguf_hf_name_expert(a, gt->name, 0, hf, sizeof hf) ? gt->ne[2] : 0;
        if (!n_slices && qf_gguf_hf_name(a, gt->name, hf, sizeof hf)) snprintf(hf, sizeof hf, "%s", gt->name);
        uint64_t numel = 1;
        for (int d = 0; d < gt->ndim; d++) numel *= (uint64_t)gt->ne[d];
        float *buf = malloc(numel ? sizeof(float) * numel : 1);
        if (!buf) {
            s = qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for %llu values", g->label, gt->name,
                        (unsigned long long)numel);
            break;
        }
        ck->owned[ck->n_owned++] = buf;
        s = qf_gguf_dequant_tensor(g, i, buf, err);
        if (s) break;
        int is_q = strstr(gt->name, ".attn_q.") != NULL, is_k = strstr(gt->name, ".attn_k.") != NULL;
        if (a->permute_qk && (is_q || is_k) && numel) { /* back to the rotate-half row order of Hugging Face */
            int64_t heads = is_q ? n_head : n_head_kv;
            int64_t rows = gt->ndim >= 2 ? gt->ne[1] : gt->ne[0];
            uint64_t rb = gt->ndim >= 2 ? sizeof(float) * (uint64_t)gt->ne[0] : sizeof(float);
            if (rows < 2 * heads || rows % (2 * heads)) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': %lld rows do not split into %lld heads of pairs",
                            g->label, gt->name, (long long)rows, (long long)heads);
                break;
            }
            float *tmp = malloc(sizeof(float) * numel);
            if (!tmp) {
                s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
                break;
            }
            qf_gguf_permute_rows(buf, tmp, rows, rb, (int)heads, 1);
            memcpy(buf, tmp, sizeof(float) * numel);
            free(tmp);
        }
        for (int64_t e = 0; e < n_slices; e++) {
            uint64_t slab = numel / (uint64_t)n_slices;
            qf_gguf_hf_name_expert(a, gt->name, (int)e, hf, sizeof hf);
            qf_tensor *t = &ck->tensors[ck->n_tensors++];
            t->name = strdup(hf);
            t->dtype = QF_DTYPE_F32;
            t->ndim = 2;
            t->shape[0] = gt->ne[1], t->shape[1] = gt->ne[0];
            t->nbytes = sizeof(float) * slab;
            t->data = slab ? (const uint8_t *)(buf + e * slab) : NULL;
            t->file = 0;
            t->offset = gt->offset;
        }
        if (n_slices) continue;
        qf_tensor *t = &ck->tensors[ck->n_tensors++];
        t->name = strdup(hf);
        t->dtype = QF_DTYPE_F32;
        t->ndim = gt->ndim;
        for (int d = 0; d < gt->ndim; d++) t->shape[d] = gt->ne[gt->ndim - 1 - d];
        t->nbytes = sizeof(float) * numel;
        t->data = numel ? (const uint8_t *)buf : NULL;
        t->file = 0;
        t->offset = gt->offset;
    }
    if (s == QF_OK) {
        qsort(ck->tensors, (size_t)ck->n_tensors, sizeof *ck->tensors, qf_tensor_name_cmp);
        for (int i = 1; i < ck->n_tensors && s == QF_OK; i++)
            if (strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) == 0)
                s = qf_fail(err, QF_ERR_FORMAT, "%s: two tensors map to '%s'", g->label, ck->tensors[i].name);
    }
    /* the mapping moves to the checkpoint (its files[0]); g no longer owns it */
    if (ck->files) {
        ck->files[0] = g->map;
        ck->n_files = 1;
        memset(&g->map, 0, sizeof g->map);
    }
    qf_gguf_free(g);
    if (s) {
        qf_checkpoint_free(ck);
        return s;
    }
    *out = ck;
    return QF_OK;
}
