/* calibrate_quant.c - the quantization steps of the calibration pipeline: a layer's float
 * weights, quantizing a group of Linears from its input statistics, choosing and folding
 * AWQ / SmoothQuant scales, and the tensors the layer writes (see calibrate_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate_internal.h"
#include "qf_float_target.h"
#include "qf_linalg.h"
#include "qf_numfmt.h"
#include "qf_smooth.h"

/* ---- tensors written for one layer --------------------------------------------------------- */
void qf_cal_out_add(qf_cal_out *o, const char *module, const char *suffix, qf_dtype dt, int ndim, int64_t d0,
                    int64_t d1, void *data, uint64_t nbytes)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->t = realloc(o->t, sizeof *o->t * (size_t)o->cap);
    }
    qf_cal_tensor *t = &o->t[o->n++];
    size_t l = strlen(module) + strlen(suffix) + 2;
    t->name = malloc(l);
    snprintf(t->name, l, "%s.%s", module, suffix);
    t->dtype = dt, t->ndim = ndim, t->shape[0] = d0, t->shape[1] = d1, t->data = data, t->nbytes = nbytes;
}

static int qf_cal_tensor_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_cal_tensor *)a)->name, ((const qf_cal_tensor *)b)->name);
}

qf_status qf_cal_out_emit(qf_cal_out *out, const qf_calib_opts *o, int layer, qf_error *err)
{
    /* out->t is NULL when a quantize hook took every tensor (GGUF), and qsort's pointer must
     * not be NULL even for 0 elements (UBSan, make sanitize's gguf.sh) */
    if (out->n > 1) qsort(out->t, (size_t)out->n, sizeof *out->t, qf_cal_tensor_cmp);
    return o->sink ? o->sink(o->sink_user, layer, out->t, out->n, err) : QF_OK;
}

void qf_cal_out_free(qf_cal_out *o)
{
    for (int i = 0; i < o->n; i++) free(o->t[i].name), free(o->t[i].data);
    free(o->t);
    memset(o, 0, sizeof *o);
}

/* ---- a layer's float weights ---------------------------------------------------------------- */
float *qf_cal_alloc(qf_cal *c, int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!p) return NULL;
    if (c->n_owned == c->cap_owned) {
        int cap = c->cap_owned ? 2 * c->cap_owned : 64;
        float **o = realloc(c->owned, sizeof(float *) * (size_t)cap);
        if (!o) {
            free(p);
            return NULL;
        }
        c->owned = o, c->cap_owned = cap;
    }
    c->owned[c->n_owned++] = p;
    return p;
}

/* Turn lin into a float32 Linear over an owned copy of its weights: scales are folded and
 * GPTQ updates in place on this copy (the checkpoint's mapping is read-only, float32 ones
 * too).  The source pages are dropped once copied: each layer's weights are read once, so
 * the resident memory stays one layer's float copy instead of growing with the model. */
static qf_status qf_cal_floatify(qf_cal *c, qf_linear *lin, qf_error *err)
{
    float *w = qf_cal_alloc(c, lin->rows * lin->cols);
    if (!w) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for its float weights", lin->name);
    qf_linear_weight_rows(lin, 0, lin->rows, w);
    char name[QF_LINEAR_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s.weight", lin->name);
    const qf_checkpoint *ck = c->m->ck;
    const qf_tensor *t = lin->kind == QF_LINEAR_FLOAT ? qf_checkpoint_find(ck, name) : NULL;
    if (t && t->data == lin->weight) {
        const qf_mapped_file *f = &ck->files[t->file];
        if (f->data && t->data >= f->data && t->data + t->nbytes <= f->data + f->size) qf_checkpoint_release(ck, t);
    }
    lin->kind = QF_LINEAR_FLOAT;
    lin->weight = w;
    lin->wdtype = QF_DTYPE_F32;
    lin->act = QF_ACT_NONE;
    return QF_OK;
}

qf_status qf_cal_floatify_layer(qf_cal *c, qf_layer *L, qf_error *err)
{
    qf_linear *all[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
    for (int i = 0; i < (L->is_moe ? 4 : 7); i++) /* phi3's fused layers leave k, v, up empty */
        if (all[i]->kind) QF_TRY(qf_cal_floatify(c, all[i], err));
    if (L->in_a.kind) QF_TRY(qf_cal_floatify(c, &L->in_a, err)); /* Qwen3.5's in_proj_a */
    qf_linear *mla[6] = {&L->q_a, &L->kv_a, &L->kv_b, &L->idx_wq_b, &L->idx_wk, &L->idx_wproj}; /* MLA (+ V3.2's indexer) */
    for (int i = 0; i < 6; i++)
        if (mla[i]->kind) QF_TRY(qf_cal_floatify(c, mla[i], err));
    if (L->has_shared) { /* quantized by GPTQ like the experts (qwen2_moe, glm4_moe); its gate stays float */
        if (L->sh_gate.kind) QF_TRY(qf_cal_floatify(c, &L->sh_gate, err)); /* nemotron_h: ungated */
        QF_TRY(qf_cal_floatify(c, &L->sh_up, err));
        QF_TRY(qf_cal_floatify(c, &L->sh_down, err));
    }
    if (L->is_moe) {
        QF_TRY(qf_cal_floatify(c, &L->router, err));
        for (int e = 0; e < 3 * c->m->cfg.n_experts; e++)
            if (L->experts[e].kind) QF_TRY(qf_cal_floatify(c, &L->experts[e], err));
    }
    return QF_OK;
}

/* ---- quantizing ----------------------------------------------------------------------------- */
static int qf_cal_wanted(const qf_cal *c, const qf_linear *lin)
{
    return !c->o->quantize_module || c->o->quantize_module(c->o->ctx, lin->name);
}

/* Relative output error of the quantization: sum_r dw H dw^T / sum_r w H w^T over up to 32
 * evenly spaced rows (dw = Q - W0).  One float64 product [dw; w] · H reads H (up to GBs)
 * once instead of once per row. */
static double qf_cal_rel_error(const float *W0, const float *Q, int64_t rows, int64_t cols, const double *H)
{
    const int64_t step = rows > 32 ? rows / 32 : 1, nr = (rows + step - 1) / step;
    /* calloc for A too: with two callers gcc cannot see that the loops below fill it */
    double *A = calloc((size_t)(2 * nr * cols), sizeof(double)), *T = calloc((size_t)(2 * nr * cols), sizeof(double));
    qf_error err;
    double num = 0, den = 0;
    if (A && T) {
        for (int64_t k = 0; k < nr; k++)
            for (int64_t j = 0; j < cols; j++) {
                const double w = W0[k * step * cols + j];
                A[k * cols + j] = (double)Q[k * step * cols + j] - w;
                A[(nr + k) * cols + j] = w;
            }
        if (qf_dgemm(0, 0, 2 * nr, cols, cols, 1.0, A, cols, H, cols, T, cols, 0, &err) == QF_OK) {
            for (int64_t k = 0; k < nr; k++)
                for (int64_t j = 0; j < cols; j++) {
                    num += A[k * cols + j] * T[k * cols + j];
                    den += A[(nr + k) * cols + j] * T[(nr + k) * cols + j];
                }
        } else {
            num = 0, den = 0; /* no workspace: no figure (reported as 0) */
        }
    }
    free(A);
    free(T);
    return den > 0 ? num / den : 0;
}

/* The caller's own quantizer (qf_calib_opts.quantize_linear) in place of the scheme's. */
static qf_status qf_cal_quantize_hook(qf_cal *c, qf_linear *lin, const qf_stats *st, qf_error *err)
{
    float *W = (float *)lin->weight;
    float *W0 = malloc(sizeof(float) * (size_t)(lin->rows * lin->cols));
    if (!W0) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", lin->name);
    memcpy(W0, W, sizeof(float) * (size_t)(lin->rows * lin->cols));
    double loss = -1;
    qf_status r = c->o->quantize_linear(c->o->quantize_user, lin->name, W, lin->rows, lin->cols, st->xtx, st->count,
                                        &loss, err);
    if (r == QF_OK) {
        json_t *rep = json_object();
        if (loss >= 0) json_object_set_new(rep, "gptq_loss", json_real(loss));
        json_object_set_new(rep, "rel_output_error", json_real(qf_cal_rel_error(W0, W, lin->rows, lin->cols, st->xtx)));
        json_object_set_new(rep, "tokens", json_integer(st->count));
        json_object_set_new(c->lrep, lin->name, rep);
    } else {
        qf_error_prefix(err, "%s: ", lin->name);
    }
    free(W0);
    return r;
}

/* Quantize one Linear (float32 weights in lin->weight, owned) from the statistics of its input. */
/* The scheme module lin is quantized to (mixed precision: the converter's per-module choice). */
static const qf_scheme *qf_cal_scheme(const qf_cal *c, const qf_linear *lin)
{
    const qf_scheme *s = c->o->module_scheme ? c->o->module_scheme(c->o->ctx, lin->name) : NULL;
    return s ? s : c->o->scheme;
}

static qf_status qf_cal_quantize(qf_cal *c, qf_linear *lin, const qf_stats *st, float tensor_amax, qf_error *err)
{
    if (c->o->quantize_linear) return qf_cal_quantize_hook(c, lin, st, err);
    const qf_scheme *s = qf_cal_scheme(c, lin);
    float *W = (float *)lin->weight;
    qf_quant_plan plan;
    qf_status r = qf_quant_plan_linear(s, lin->rows, lin->cols, &plan, err);
    if (r) {
        qf_error_prefix(err, "%s: ", lin->name);
        return r;
    }
    qf_quant_buffers buf = {{0}};
    for (int k = 0; k < plan.n; k++)
        if (!(buf.data[k] = calloc(1, plan.t[k].nbytes ? plan.t[k].nbytes : 1))) {
            for (int j = 0; j < k; j++) free(buf.data[j]);
            return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", lin->name);
        }
    float *W0 = malloc(sizeof(float) * (size_t)(lin->rows * lin->cols));
    if (!W0) {
        for (int k = 0; k < plan.n; k++) free(buf.data[k]);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", lin->name);
    }
    memcpy(W0, W, sizeof(float) * (size_t)(lin->rows * lin->cols));
    int64_t ng = s->group_size ? lin->cols / s->group_size : 1;
    float *ratios = NULL;
    json_t *rep = json_object();
    qf_calib_method m = c->o->method;
    if (m == QF_CALIB_AWQ || m == QF_CALIB_AWQ_GPTQ) {
        ratios = malloc(sizeof(float) * (size_t)(lin->rows * ng));
        qf_awq_clip_result cr;
        r = qf_awq_search_clip(s, W, lin->rows, lin->cols, st->xtx, NULL, tensor_amax, &c->o->awq, ratios, &cr, err);
        if (r == QF_OK) json_object_set_new(rep, "clip_gain", json_real(cr.loss_noclip > 0 ? 1 - cr.loss / cr.loss_noclip : 0));
    }
    if (r == QF_OK && (m == QF_CALIB_GPTQ || m == QF_CALIB_AWQ_GPTQ)) {
        qf_gptq_opts go = c->o->gptq;
        go.clip = ratios;
        if (lin->cols >= QF_STATS_GPU_MIN_COLS && qf_gpu_calib_enabled()) go.factor = qf_gpu_gptq_factor;
        qf_gptq_result gr;
        r = qf_gptq_quantize(s, W, lin->rows, lin->cols, st->xtx, st->count, tensor_amax, &go, &plan, &buf, &gr, err);
        if (r == QF_OK) {
            json_object_set_new(rep, "gptq_loss", json_real(gr.loss));
            if (go.refit > 0) json_object_set_new(rep, "refit_gain", json_real(gr.refit_gain));
            if (go.descent > 0) json_object_set_new(rep, "descent_gain", json_real(gr.descent_gain));
            if (gr.damp_retries) json_object_set_new(rep, "damp_retries", json_integer(gr.damp_retries));
            if (gr.dead_cols) json_object_set_new(rep, "dead_inputs", json_integer(gr.dead_cols));
        }
    } else if (r == QF_OK) {
        r = qf_awq_quantize(s, W, lin->rows, lin->cols, tensor_amax, ratios, &plan, &buf, err);
    }
    free(ratios);
    if (r == QF_OK) {
        int ii = qf_quant_plan_find(&plan, QF_ROLE_INPUT_SCALE);
        if (ii >= 0) {
            float v = qf_stats_input_scale(st, s);
            if (plan.t[ii].dtype == QF_DTYPE_BF16) { /* fp8 input_scale: stored, and so served, in bf16 */
                uint16_t h = qf_f32_to_bf16(v);
                memcpy(buf.data[ii], &h, sizeof h);
                v = qf_bf16_to_f32(h);
            } else {
                memcpy(buf.data[ii], &v, sizeof v);
            }
            json_object_set_new(rep, "input_scale", json_real(v));
        }
        double rel = qf_cal_rel_error(W0, W, lin->rows, lin->cols, st->xtx);
        json_object_set_new(rep, "rel_output_error", json_real(rel));
        json_object_set_new(rep, "tokens", json_integer(st->count));
        for (int k = 0; k < plan.n; k++) {
            qf_cal_out_add(&c->out, lin->name, plan.t[k].suffix, plan.t[k].dtype, plan.t[k].ndim, plan.t[k].shape[0],
                           plan.t[k].shape[1], buf.data[k], plan.t[k].nbytes);
            buf.data[k] = NULL;
        }
        json_object_set_new(c->lrep, lin->name, rep);
    } else {
        json_decref(rep);
        qf_error_prefix(err, "%s: ", lin->name);
    }
    for (int k = 0; k < QF_PLAN_MAX; k++) free(buf.data[k]);
    free(W0);
    return r;
}

/* nvfp4 siblings share one global scale (vLLM fuses them and needs one). */
float qf_cal_group_amax(const qf_cal *c, qf_linear **lin, int n)
{
    float amax = 0;
    for (int i = 0; i < n; i++) {
        if (!qf_cal_wanted(c, lin[i])) continue;
        const float *w = lin[i]->weight;
        for (int64_t k = 0; k < lin[i]->rows * lin[i]->cols; k++) amax = fabsf(w[k]) > amax ? fabsf(w[k]) : amax;
    }
    return amax;
}

/* Linears of one parent module (q/k/v of self_attn, gate/up of mlp, w1/w3 of one expert):
 * the siblings a serving engine fuses, as the RTN path's sibling key groups them. */
static int qf_cal_same_parent(const char *a, const char *b)
{
    const char *da = strrchr(a, '.'), *db = strrchr(b, '.');
    size_t la = da ? (size_t)(da - a) : 0, lb = db ? (size_t)(db - b) : 0;
    return la == lb && strncmp(a, b, la) == 0;
}

#define QF_FLOAT_TARGET_RIDGE 4.0f /* the ridge's sampling-noise term: this times inputs / tokens */

/* The float target (qf_float_target.h): the wanted Linears of the group, which share the
 * input statistics st (with the cross product), become the float weights that best map the
 * quantized inputs to the float model's output; *shift = ||change|| / ||W||.  Before the
 * nvfp4 global scale is measured, so the scale covers the weights GPTQ rounds. */
static qf_status qf_cal_float_target(qf_cal *c, qf_linear **lin, int n, const qf_stats *st, double *shift,
                                     qf_error *err)
{
    float **W = malloc(sizeof *W * (size_t)n);
    int64_t *rows = malloc(sizeof *rows * (size_t)n);
    int k = 0;
    if (!W || !rows) {
        free(W), free(rows);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        if (qf_cal_wanted(c, lin[i])) W[k] = (float *)lin[i]->weight, rows[k++] = lin[i]->rows;
    /* The ridge: GPTQ's dampening (with none GPTQ starts its retries at 1e-4) plus a term for
     * the sampling noise of the least-squares fit, which grows as inputs / tokens.  Measured on
     * tiny-llama w4a16-asym: with 8 x 256 tokens a ridge of 0.01 undoes most of GPTQ's gain
     * (KLD 0.0596 vs RTN 0.0601, textbook 0.0418) and 0.3-3 is best (0.039-0.040); with
     * 128 x 512 tokens 0.01 is better than 0.1.  QF_FLOAT_TARGET_RIDGE 4 serves both (docs/bench.md). */
    const float damp = (c->o->gptq.percdamp > 0 ? c->o->gptq.percdamp : 1e-4f) +
                       QF_FLOAT_TARGET_RIDGE * (float)st->cols / (float)(st->count > 0 ? st->count : 1);
    /* with a GPU: the factor as GPTQ's (cuSOLVER), the products by cuBLAS */
    const int gpu = st->cols >= QF_STATS_GPU_MIN_COLS && qf_gpu_calib_enabled();
    const qf_float_target_ops ops = {gpu ? qf_gpu_gptq_factor : NULL, gpu ? qf_gpu_sgemm_nt : NULL};
    qf_status r = k ? qf_float_target(W, rows, k, st->cols, st->xtx, st->cross, damp, &ops, shift, err) : QF_OK;
    if (r) qf_error_prefix(err, "%s: ", lin[0]->name);
    free(W), free(rows);
    return r;
}

qf_status qf_cal_quantize_group(qf_cal *c, qf_linear **lin, int n, const qf_stats *st, float amax, qf_error *err)
{
    if (c->collect) return QF_OK;
    double shift = -1;
    if (st->cross) QF_TRY(qf_cal_float_target(c, lin, n, st, &shift, err));
    /* amax < 0: each Linear's siblings in the group (same parent module) share one global
     * scale, measured before any of them is quantized (GPTQ updates the weights in place).
     * A group of every expert's w1/w3 (--moe-floor all) so gets one scale per expert. */
    float *g = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!g) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        g[i] = amax;
        if (amax >= 0) continue;
        qf_linear **sib = malloc(sizeof *sib * (size_t)n);
        int ns = 0;
        if (!sib) {
            free(g);
            return qf_fail(err, QF_ERR_NOMEM, "out of memory");
        }
        for (int j = 0; j < n; j++)
            if (qf_cal_same_parent(lin[i]->name, lin[j]->name)) sib[ns++] = lin[j];
        g[i] = qf_cal_group_amax(c, sib, ns);
        free(sib);
    }
    qf_status r = QF_OK;
    for (int i = 0; r == QF_OK && i < n; i++) {
        if (!qf_cal_wanted(c, lin[i])) continue;
        r = qf_cal_quantize(c, lin[i], st, g[i], err);
        json_t *rep = json_object_get(c->lrep, lin[i]->name);
        if (r == QF_OK && rep && shift >= 0) json_object_set_new(rep, "float_target_shift", json_real(shift));
    }
    free(g);
    return r;
}

/* ---- scale folding (AWQ / SmoothQuant), from phase-1 statistics ---------------------------- */
static void qf_bf16_round(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) v[i] = qf_bf16_to_f32(qf_f32_to_bf16(v[i]));
}

qf_status qf_cal_scales(qf_cal *c, const char *what, qf_linear **lin, int n, const qf_stats *st, float *s,
                        json_t **rep, qf_error *err)
{
    const int64_t cols = lin[0]->cols;
    qf_weight_ref *ref = calloc((size_t)n + 1, sizeof *ref);
    for (int i = 0; i < n; i++) ref[i] = (qf_weight_ref){lin[i]->weight, lin[i]->rows};
    qf_status r;
    *rep = json_object();
    if (c->o->smooth_alpha > 0) {
        r = qf_smooth_scales(st->absmax, cols, ref, n, c->o->smooth_alpha, s, err);
        json_object_set_new(*rep, "smoothquant_alpha", json_real(c->o->smooth_alpha));
    } else {
        float *xm = malloc(sizeof(float) * (size_t)cols);
        qf_stats_mean_abs(st, xm);
        qf_awq_result ar;
        r = qf_awq_search_scales(qf_cal_scheme(c, lin[0]), ref, n, cols, xm, st->xtx, &c->o->awq, s, &ar, err);
        free(xm);
        if (r == QF_OK) {
            json_object_set_new(*rep, "awq_alpha", json_real(ar.alpha));
            json_object_set_new(*rep, "awq_gain", json_real(ar.loss_rtn > 0 ? 1 - ar.loss / ar.loss_rtn : 0));
        }
    }
    free(ref);
    if (r) {
        json_decref(*rep);
        *rep = NULL;
        qf_error_prefix(err, "%s: ", what);
    }
    return r;
}

void qf_cal_fold_apply(qf_cal *c, const char *what, qf_linear **lin, int n, qf_linear *extra, const float *s,
                       json_t *rep, float *norm, qf_linear *prev)
{
    const int64_t cols = lin[0]->cols;
    for (int i = 0; i < n; i++) qf_smooth_scale_columns((float *)lin[i]->weight, lin[i]->rows, cols, s);
    if (extra) qf_smooth_scale_columns((float *)extra->weight, extra->rows, cols, s);
    if (norm) {
        qf_smooth_div_rows(norm, cols, 1, s);
        qf_bf16_round(norm, cols); /* what the artifact will store */
    }
    if (prev) {
        qf_smooth_div_rows((float *)prev->weight, prev->rows, prev->cols, s);
        if (prev->bias) qf_smooth_div_rows(prev->bias, prev->rows, 1, s);
    }
    char key[64];
    snprintf(key, sizeof key, "scales:%s", what);
    json_object_set_new(c->lrep, key, rep);
}
