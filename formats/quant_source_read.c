/* quant_source_read.c - a quantized source's tensors dequantized to bf16 (see qf_quant_source.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fmt_fp8.h"
#include "qf_fmt_mxfp4.h"
#include "qf_fs.h"
#include "quant_source_pair.h"

/* A dequantized tensor's recipe, owned by the table (ck->owned): copies of its quantized tensor
 * and scales (their names in names[]), read from the mapped shards when the tensor is acquired. */
typedef struct qf_qs_decode {
    qf_tensor_decode base; /* first: the table's tensor points here */
    qf_qsource_kind kind;
    qf_tensor q, scale;
    const qf_mapped_file *qfile, *sfile;
    int64_t lead, rows, cols, bn, bk;
    char names[];
} qf_qs_decode;

/* Scale i of s as float (F8_E8M0 / U8: an exponent, 0xFF refused when the table is built). */
static float qf_qs_scale(const qf_tensor *s, uint64_t i)
{
    uint16_t h;
    float v;
    switch (s->dtype) {
    case QF_DTYPE_F32: memcpy(&v, s->data + 4 * i, 4); return v;
    case QF_DTYPE_BF16: memcpy(&h, s->data + 2 * i, 2); return qf_bf16_to_f32(h);
    case QF_DTYPE_F16: memcpy(&h, s->data + 2 * i, 2); return qf_f16_to_f32(h);
    default: return qf_e8m0_to_f32(s->data[i]);
    }
}

/* w[r][c] = e4m3(q[r][c]) * scale[r / bn][c / bk], the product in float32 rounded once to bf16.
 * Rows in parallel; the 256 code values are qf_fmt_fp8.h's, tabulated once per tensor. */
static qf_status qf_qs_fp8(const qf_qs_decode *d, uint16_t *out, qf_error *err)
{
    const int64_t gr = (d->rows + d->bn - 1) / d->bn, gc = (d->cols + d->bk - 1) / d->bk;
    float value[256];
    for (int c = 0; c < 256; c++) value[c] = qf_fp8_value((uint8_t)c, 1.0f);
    int nomem = 0;
#pragma omp parallel reduction(| : nomem)
    {
        float *srow = malloc(sizeof(float) * (size_t)gc);
        nomem = !srow;
#pragma omp for schedule(static)
        for (int64_t lr = 0; lr < d->lead * d->rows; lr++) {
            if (!srow) continue;
            const int64_t l = lr / d->rows, r = lr % d->rows;
            for (int64_t j = 0; j < gc; j++) srow[j] = qf_qs_scale(&d->scale, (uint64_t)((l * gr + r / d->bn) * gc + j));
            const uint8_t *qr = d->q.data + (size_t)lr * (size_t)d->cols;
            uint16_t *o = out + (size_t)lr * (size_t)d->cols;
            for (int64_t c = 0; c < d->cols; c++) o[c] = qf_f32_to_bf16(value[qr[c]] * srow[c / d->bk]);
        }
        free(srow);
    }
    return nomem ? qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory", d->qfile->path, d->q.name) : QF_OK;
}

/* blocks [E, N, G, 16], scales [E, N, G] -> out [E, 32G, N]: value k of row n is the low nibble
 * (k even) or the high nibble (k odd) of byte k / 2, times 2^(scale - 127), written transposed.
 * In tiles of 32 rows x one group of 32 values, so the transposed writes are 64-byte runs. */
static void qf_qs_mxfp4(const qf_qs_decode *d, uint16_t *out)
{
    const int64_t E = d->lead, N = d->rows, K = d->cols, G = K / 32, tiles = (N + 31) / 32;
    const uint8_t *blk = d->q.data, *sc = d->scale.data;
    float value[16]; /* qf_fmt_mxfp4.h's code values, tabulated once per tensor */
    for (int c = 0; c < 16; c++) value[c] = qf_fp4_value((uint8_t)c, 1.0f);
#pragma omp parallel for schedule(static)
    for (int64_t et = 0; et < E * tiles; et++) {
        const int64_t e = et / tiles, n0 = (et % tiles) * 32, nn = N - n0 < 32 ? N - n0 : 32;
        uint16_t tile[32][32]; /* [k within the group][row within the tile] */
        for (int64_t g = 0; g < G; g++) {
            for (int64_t i = 0; i < nn; i++) {
                const uint64_t si = (uint64_t)(((e * N + n0 + i) * G) + g);
                const float step = qf_mxfp4_step(sc[si]);
                const uint8_t *b = blk + si * 16;
                for (int j = 0; j < 16; j++) {
                    tile[2 * j][i] = qf_f32_to_bf16(value[b[j] & 15] * step);
                    tile[2 * j + 1][i] = qf_f32_to_bf16(value[b[j] >> 4] * step);
                }
            }
            for (int kk = 0; kk < 32; kk++)
                memcpy(out + (size_t)((e * K + g * 32 + kk) * N + n0), tile[kk], sizeof(uint16_t) * (size_t)nn);
        }
    }
}

static qf_status qf_qs_run(const qf_tensor_decode *base, void *out, qf_error *err)
{
    const qf_qs_decode *d = (const qf_qs_decode *)base;
    qf_status s = QF_OK;
    if (d->kind == QF_QSOURCE_MXFP4) qf_qs_mxfp4(d, out);
    else s = qf_qs_fp8(d, out, err);
    /* the quantized bytes are not needed again until the next acquire */
    qf_file_release(d->qfile, d->q.offset, d->q.nbytes);
    qf_file_release(d->sfile, d->scale.offset, d->scale.nbytes);
    return s;
}

/* E8M0 0xFF is NaN in the OCP format while transformers' ldexp makes it 2^128 = inf; no real
 * checkpoint holds it, so it is refused (when the table is built) rather than guessed. */
static qf_status qf_qs_check_exponents(const qf_checkpoint *ck, const qf_tensor *s, qf_error *err)
{
    if (s->dtype != QF_DTYPE_U8 && s->dtype != QF_DTYPE_F8_E8M0) return QF_OK;
    const uint8_t *p = memchr(s->data, 0xff, s->nbytes);
    qf_status st = p ? qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': scale %llu is E8M0 0xFF (NaN)", ck->dir, s->name,
                               (unsigned long long)(p - s->data))
                     : QF_OK;
    qf_checkpoint_release(ck, s);
    return st;
}

/* The recipe of pair p (names copied: the source tensors leave the table). */
static qf_qs_decode *qf_qs_decode_new(const qf_checkpoint *ck, const qf_qsource *q, const qf_qs_pair *p)
{
    const size_t lq = strlen(p->q->name) + 1, ls = strlen(p->scale->name) + 1;
    qf_qs_decode *d = calloc(1, sizeof *d + lq + ls);
    if (!d) return NULL;
    d->base.run = qf_qs_run;
    d->kind = q->kind;
    d->q = *p->q;
    d->scale = *p->scale;
    memcpy(d->names, p->q->name, lq);
    memcpy(d->names + lq, p->scale->name, ls);
    d->q.name = d->names;
    d->scale.name = d->names + lq;
    d->qfile = &ck->files[p->q->file];
    d->sfile = &ck->files[p->scale->file];
    d->lead = p->lead, d->rows = p->rows, d->cols = p->cols, d->bn = p->bn, d->bk = p->bk;
    return d;
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
    /* 2. the dequantized tensors: shape and dtype now, bytes when acquired (qf_checkpoint_acquire) */
    for (int i = 0; s == QF_OK && i < n; i++) {
        if (role[i] != QF_QS_PRIMARY) continue;
        qf_qs_pair *p = &pair[i];
        s = qf_qs_check_exponents(ck, p->scale, err);
        qf_qs_decode *d = s == QF_OK ? qf_qs_decode_new(ck, q, p) : NULL;
        if (s == QF_OK && !d) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
        if (s) break;
        ck->owned[ck->n_owned++] = d;
        qf_tensor *t = &nt[i];
        t->name = p->out_name, p->out_name = NULL;
        t->dtype = QF_DTYPE_BF16;
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof t->shape);
        t->nbytes = qf_tensor_numel(t) * 2;
        t->file = p->q->file;
        t->offset = p->q->offset;
        t->data = NULL;
        t->decode = &d->base;
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
