/* quant_source_read.c - a quantized source's tensors dequantized to bf16 (see qf_quant_source.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fmt_fp8.h"
#include "qf_fmt_mxfp4.h"
#include "qf_fs.h"
#include "quant_source_pair.h"

/* Scale i of s as float.  E8M0 code 0xFF is NaN in the OCP format while transformers' ldexp
 * makes it 2^128 = inf; no real checkpoint holds it, so it is refused rather than guessed. */
static qf_status qf_qs_scale(const qf_tensor *s, uint64_t i, float *v, qf_error *err)
{
    uint16_t h;
    switch (s->dtype) {
    case QF_DTYPE_F32: memcpy(v, s->data + 4 * i, 4); return QF_OK;
    case QF_DTYPE_BF16: memcpy(&h, s->data + 2 * i, 2); *v = qf_bf16_to_f32(h); return QF_OK;
    case QF_DTYPE_F16: memcpy(&h, s->data + 2 * i, 2); *v = qf_f16_to_f32(h); return QF_OK;
    default: /* F8_E8M0 / U8: an exponent */
        if (s->data[i] == 0xff)
            return qf_fail(err, QF_ERR_FORMAT, "tensor '%s': scale %llu is E8M0 0xFF (NaN)", s->name, (unsigned long long)i);
        *v = qf_e8m0_to_f32(s->data[i]);
        return QF_OK;
    }
}

/* w[r][c] = e4m3(q[r][c]) * scale[r / bn][c / bk], the product in float32 rounded once to bf16. */
static qf_status qf_qs_fp8(const qf_qs_pair *p, uint16_t *out, qf_error *err)
{
    const int64_t gr = (p->rows + p->bn - 1) / p->bn, gc = (p->cols + p->bk - 1) / p->bk;
    float *srow = malloc(sizeof(float) * (size_t)gc);
    if (!srow) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    const uint8_t *q = p->q->data;
    for (int64_t l = 0; l < p->lead; l++)
        for (int64_t r = 0; r < p->rows; r++) {
            if (r % p->bn == 0) /* a new row of blocks: its scales once */
                for (int64_t j = 0; j < gc; j++) {
                    qf_status s = qf_qs_scale(p->scale, (uint64_t)((l * gr + r / p->bn) * gc + j), &srow[j], err);
                    if (s) {
                        free(srow);
                        return s;
                    }
                }
            const uint8_t *qr = q + (size_t)(l * p->rows + r) * (size_t)p->cols;
            uint16_t *o = out + (size_t)(l * p->rows + r) * (size_t)p->cols;
            for (int64_t c = 0; c < p->cols; c++) o[c] = qf_f32_to_bf16(qf_fp8_value(qr[c], srow[c / p->bk]));
        }
    free(srow);
    return QF_OK;
}

/* blocks [E, N, G, 16], scales [E, N, G] -> out [E, 32G, N]: value k of row n is the low nibble
 * (k even) or the high nibble (k odd) of byte k / 2, times 2^(scale - 127), written transposed. */
static qf_status qf_qs_mxfp4(const qf_qs_pair *p, uint16_t *out, qf_error *err)
{
    const int64_t E = p->lead, N = p->rows, K = p->cols, G = K / 32;
    const uint8_t *blk = p->q->data, *sc = p->scale->data;
    for (int64_t e = 0; e < E; e++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++) {
                const uint64_t si = (uint64_t)((e * N + n) * G + g);
                if (sc[si] == 0xff)
                    return qf_fail(err, QF_ERR_FORMAT, "tensor '%s': scale %llu is E8M0 0xFF (NaN)", p->scale->name,
                                   (unsigned long long)si);
                const float step = qf_mxfp4_step(sc[si]);
                const uint8_t *b = blk + si * 16;
                for (int j = 0; j < 16; j++) {
                    const int64_t k = g * 32 + 2 * j;
                    out[(size_t)((e * K + k) * N + n)] = qf_f32_to_bf16(qf_fp4_value(b[j] & 15, step));
                    out[(size_t)((e * K + k + 1) * N + n)] = qf_f32_to_bf16(qf_fp4_value(b[j] >> 4, step));
                }
            }
    return QF_OK;
}

static int qf_qs_name_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_tensor *)a)->name, ((const qf_tensor *)b)->name);
}

qf_status qf_qsource_dequantize(qf_checkpoint *ck, qf_qsource *q, qf_error *err)
{
    if (q->kind == QF_QSOURCE_NONE) return QF_OK;
    const int n = ck->n_tensors;
    qf_qs_role *role = calloc((size_t)n + 1, sizeof *role);
    qf_qs_pair *pair = calloc((size_t)n + 1, sizeof *pair);
    qf_tensor *nt = calloc((size_t)n + 1, sizeof *nt);
    void **owned = realloc(ck->owned, sizeof *owned * (size_t)(ck->n_owned + n + 1));
    if (owned) ck->owned = owned;
    qf_status s = role && pair && nt && owned ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "out of memory");
    /* 1. every tensor's role, while the table is still the sorted one lookups need */
    for (int i = 0; s == QF_OK && i < n; i++) s = qf_qs_classify(ck->dir, ck, q, i, &role[i], &pair[i], err);
    /* 2. the dequantized tensors, one at a time; the source pages are dropped after each */
    for (int i = 0; s == QF_OK && i < n; i++) {
        if (role[i] != QF_QS_PRIMARY) continue;
        qf_qs_pair *p = &pair[i];
        qf_tensor *t = &nt[i];
        t->name = p->out_name, p->out_name = NULL;
        t->dtype = QF_DTYPE_BF16;
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof t->shape);
        t->nbytes = qf_tensor_numel(t) * 2;
        t->file = p->q->file;
        t->offset = p->q->offset;
        uint16_t *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf) {
            s = qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for its %llu dequantized bytes", ck->dir,
                        p->q->name, (unsigned long long)t->nbytes);
            break;
        }
        ck->owned[ck->n_owned++] = buf;
        t->data = (const uint8_t *)buf;
        s = q->kind == QF_QSOURCE_MXFP4 ? qf_qs_mxfp4(p, buf, err) : qf_qs_fp8(p, buf, err);
        if (s) qf_error_prefix(err, "%s: ", ck->dir);
        qf_checkpoint_release(ck, p->q);
        qf_checkpoint_release(ck, p->scale);
    }
    /* 3. the new table: plain tensors moved, companions gone, sorted again (mxfp4 renames) */
    qf_tensor *fin = s == QF_OK ? calloc((size_t)n + 1, sizeof *fin) : NULL;
    if (s == QF_OK && !fin) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    int m = 0;
    if (s == QF_OK) {
        q->n_quantized = q->n_dropped = 0;
        for (int i = 0; i < n; i++) {
            if (role[i] == QF_QS_PLAIN) fin[m++] = ck->tensors[i], ck->tensors[i].name = NULL;
            else if (role[i] == QF_QS_PRIMARY) fin[m++] = nt[i], nt[i].name = NULL, q->n_quantized++;
            else q->n_dropped++;
        }
        qsort(fin, (size_t)m, sizeof *fin, qf_qs_name_cmp);
        for (int i = 1; i < m && s == QF_OK; i++)
            if (strcmp(fin[i - 1].name, fin[i].name) == 0)
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is both in the checkpoint and the dequantization of its "
                            "quantized form", ck->dir, fin[i].name);
        if (s) { /* give the moved names back, so that each is freed once */
            for (int i = 0; i < m; i++) free(fin[i].name);
            free(fin);
            fin = NULL;
        }
    }
    if (s == QF_OK) {
        qf_tensors_free(ck->tensors, n); /* the names moved out are NULL */
        ck->tensors = fin;
        ck->n_tensors = m;
    }
    for (int i = 0; nt && i < n; i++) free(nt[i].name);
    for (int i = 0; pair && i < n; i++) free(pair[i].out_name);
    free(pair);
    free(role);
    free(nt);
    return s;
}

qf_status qf_checkpoint_open_source(const char *path, qf_checkpoint **out, qf_qsource *qout, qf_error *err)
{
    *out = NULL;
    qf_checkpoint *ck = NULL;
    QF_TRY(qf_checkpoint_open(path, &ck, err));
    qf_qsource q;
    qf_status s = qf_qsource_detect(qf_path_is_dir(path) ? path : ck->dir, ck, &q, err);
    if (s == QF_OK) s = qf_qsource_dequantize(ck, &q, err);
    if (s) {
        qf_checkpoint_free(ck);
        return s;
    }
    if (qout) *qout = q;
    *out = ck;
    return QF_OK;
}
