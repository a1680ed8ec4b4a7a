/* calibrate.c - the layer-by-layer calibration pipeline (see qf_calibrate.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qf_calib_data.h"
#include "qf_calibrate.h"
#include "qf_fs.h"
#include "qf_model.h"
#include "qf_numfmt.h"
#include "qf_progress.h"
#include "qf_smooth.h"
#include "qf_st_writer.h"
#include "qf_stats.h"
#include "qf_tokenizer.h"

void qf_calib_opts_default(qf_calib_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = QF_CALIB_GPTQ;
    o->n_samples = 128;
    o->seqlen = 512;
    o->last_layer = -1;
    qf_gptq_opts_default(&o->gptq);
    qf_awq_opts_default(&o->awq);
}

static const char *const qf_method_names[] = {[QF_CALIB_RTN] = "rtn", [QF_CALIB_GPTQ] = "gptq",
                                              [QF_CALIB_AWQ] = "awq", [QF_CALIB_AWQ_GPTQ] = "awq-gptq"};

qf_calib_method qf_calib_method_from_name(const char *name)
{
    for (int m = QF_CALIB_RTN; m <= QF_CALIB_AWQ_GPTQ; m++)
        if (strcmp(name, qf_method_names[m]) == 0) return (qf_calib_method)m;
    return (qf_calib_method)0;
}

const char *qf_calib_method_name(qf_calib_method m)
{
    return m >= QF_CALIB_RTN && m <= QF_CALIB_AWQ_GPTQ ? qf_method_names[m] : "?";
}

/* ---- tensors written for one layer --------------------------------------------------------- */
typedef struct {
    char *name;
    qf_dtype dtype;
    int ndim;
    int64_t shape[2];
    void *data; /* owned */
    uint64_t nbytes;
} qf_cal_tensor;

typedef struct {
    qf_cal_tensor *t;
    int n, cap;
} qf_cal_out;

static void qf_out_add(qf_cal_out *o, const char *module, const char *suffix, qf_dtype dt, int ndim, int64_t d0,
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

static qf_status qf_out_write(qf_cal_out *o, const char *path, qf_error *err)
{
    qsort(o->t, (size_t)o->n, sizeof *o->t, qf_cal_tensor_cmp);
    qf_st_entry *e = calloc((size_t)o->n + 1, sizeof *e);
    for (int i = 0; i < o->n; i++) {
        e[i].name = o->t[i].name, e[i].dtype = o->t[i].dtype, e[i].ndim = o->t[i].ndim;
        e[i].shape[0] = o->t[i].shape[0], e[i].shape[1] = o->t[i].shape[1];
    }
    qf_st_writer *w;
    qf_status s = qf_st_writer_open(path, e, o->n, &w, err);
    for (int i = 0; s == QF_OK && i < o->n; i++) s = qf_st_writer_write(w, i, o->t[i].data, o->t[i].nbytes, err);
    if (s == QF_OK) s = qf_st_writer_close(w, NULL, NULL, NULL, err);
    else qf_st_writer_abort(w);
    free(e);
    return s;
}

static void qf_out_free(qf_cal_out *o)
{
    for (int i = 0; i < o->n; i++) free(o->t[i].name), free(o->t[i].data);
    free(o->t);
    memset(o, 0, sizeof *o);
}

/* ---- the state of one calibration run ----------------------------------------------------- */
typedef struct {
    const qf_calib_opts *o;
    qf_model *m;
    int64_t n_tok;   /* n_samples * seqlen */
    int seqlen;
    int n_samples;
    qf_cal_out out;  /* the current layer's tensors */
    json_t *lrep;    /* the current layer's report */
    float **owned;   /* float weights made for this layer (freed at its end) */
    int n_owned, cap_owned;
    int collect;     /* 1: phase 1 (statistics for AWQ / SmoothQuant, nothing quantized) */
} qf_cal;

static float *qf_cal_alloc(qf_cal *c, int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!p) return NULL;
    if (c->n_owned == c->cap_owned) {
        c->cap_owned = c->cap_owned ? 2 * c->cap_owned : 64;
        c->owned = realloc(c->owned, sizeof(float *) * (size_t)c->cap_owned);
    }
    c->owned[c->n_owned++] = p;
    return p;
}

/* Turn lin into a float32 Linear over an owned copy of its weights (scales are folded and
 * GPTQ updates in place on this copy; the original storage is restored at the layer's end). */
static qf_status qf_cal_floatify(qf_cal *c, qf_linear *lin, qf_error *err)
{
    if (lin->kind == QF_LINEAR_FLOAT && lin->wdtype == QF_DTYPE_F32) return QF_OK;
    float *w = qf_cal_alloc(c, lin->rows * lin->cols);
    if (!w) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for its float weights", lin->name);
    qf_linear_weight_rows(lin, 0, lin->rows, w);
    lin->kind = QF_LINEAR_FLOAT;
    lin->weight = w;
    lin->wdtype = QF_DTYPE_F32;
    lin->act = QF_ACT_NONE;
    return QF_OK;
}

static int qf_cal_wanted(const qf_cal *c, const qf_linear *lin)
{
    return !c->o->quantize_module || c->o->quantize_module(c->o->ctx, lin->name);
}

static qf_status qf_cal_stats(qf_stats *st, const float *x, int64_t n, int64_t cols, qf_error *err)
{
    QF_TRY(qf_stats_init(st, cols, QF_STATS_XTX, err));
    qf_status s = qf_stats_add(st, x, n, err);
    if (s == QF_OK) s = qf_stats_finish(st, err);
    if (s) qf_stats_free(st);
    return s;
}

/* Relative output error of the quantization: sum_r dw H dw^T / sum_r w H w^T over up to 32
 * evenly spaced rows (dw = Q - W0). */
static double qf_cal_rel_error(const float *W0, const float *Q, int64_t rows, int64_t cols, const double *H)
{
    int64_t step = rows > 32 ? rows / 32 : 1;
    double num = 0, den = 0;
#pragma omp parallel for reduction(+ : num, den) schedule(static)
    for (int64_t r = 0; r < rows; r += step) {
        const float *w = W0 + r * cols, *q = Q + r * cols;
        for (int64_t i = 0; i < cols; i++) {
            double di = (double)q[i] - w[i], wi = w[i], hd = 0, hw = 0;
            const double *Hi = H + i * cols;
            for (int64_t j = 0; j < cols; j++) {
                hd += Hi[j] * ((double)q[j] - w[j]);
                hw += Hi[j] * w[j];
            }
            num += di * hd;
            den += wi * hw;
        }
    }
    return den > 0 ? num / den : 0;
}

/* Quantize one Linear (float32 weights in lin->weight, owned) from the statistics of its input. */
static qf_status qf_cal_quantize(qf_cal *c, qf_linear *lin, const qf_stats *st, float tensor_amax, qf_error *err)
{
    const qf_scheme *s = c->o->scheme;
    float *W = (float *)lin->weight;
    qf_quant_plan plan;
    qf_status r = qf_quant_plan_linear(s, lin->rows, lin->cols, &plan, err);
    if (r) {
        qf_error_prefix(err, "%s: ", lin->name);
        return r;
    }
    qf_quant_buffers buf = {{0}};
    for (int k = 0; k < plan.n; k++)
        if (!(buf.data[k] = calloc(1, plan.t[k].nbytes ? plan.t[k].nbytes : 1)))
            return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", lin->name);
    float *W0 = malloc(sizeof(float) * (size_t)(lin->rows * lin->cols));
    if (!W0) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", lin->name);
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
        qf_gptq_result gr;
        r = qf_gptq_quantize(s, W, lin->rows, lin->cols, st->xtx, st->count, tensor_amax, &go, &plan, &buf, &gr, err);
        if (r == QF_OK) {
            json_object_set_new(rep, "gptq_loss", json_real(gr.loss));
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
            memcpy(buf.data[ii], &v, sizeof v);
            json_object_set_new(rep, "input_scale", json_real(v));
        }
        double rel = qf_cal_rel_error(W0, W, lin->rows, lin->cols, st->xtx);
        json_object_set_new(rep, "rel_output_error", json_real(rel));
        json_object_set_new(rep, "tokens", json_integer(st->count));
        for (int k = 0; k < plan.n; k++) {
            qf_out_add(&c->out, lin->name, plan.t[k].suffix, plan.t[k].dtype, plan.t[k].ndim, plan.t[k].shape[0],
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

/* Quantize the wanted Linears of a group sharing input statistics st; nvfp4 siblings share
 * one global scale (vLLM fuses them and needs one). */
static qf_status qf_cal_quantize_group(qf_cal *c, qf_linear **lin, int n, const qf_stats *st, qf_error *err)
{
    if (c->collect) return QF_OK;
    float amax = 0;
    for (int i = 0; i < n; i++) {
        if (!qf_cal_wanted(c, lin[i])) continue;
        const float *w = lin[i]->weight;
        for (int64_t k = 0; k < lin[i]->rows * lin[i]->cols; k++) amax = fabsf(w[k]) > amax ? fabsf(w[k]) : amax;
    }
    for (int i = 0; i < n; i++)
        if (qf_cal_wanted(c, lin[i])) QF_TRY(qf_cal_quantize(c, lin[i], st, amax, err));
    return QF_OK;
}

/* ---- scale folding (AWQ / SmoothQuant), from phase-1 statistics ---------------------------- */
static void qf_bf16_round(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) v[i] = qf_bf16_to_f32(qf_f32_to_bf16(v[i]));
}

/* Choose the input scales of a group and fold them: columns of the group's weights *= s;
 * the previous op /= s (norm weight `norm` (cols), or rows of `prev` Linear).  extra: Linears
 * reading the same input that are not quantized (the MoE router) get their columns scaled too. */
static qf_status qf_cal_fold(qf_cal *c, const char *what, qf_linear **lin, int n, qf_linear *extra, const qf_stats *st,
                             float *norm, qf_linear *prev, qf_error *err)
{
    const int64_t cols = lin[0]->cols;
    float *s = malloc(sizeof(float) * (size_t)cols);
    qf_weight_ref *ref = calloc((size_t)n + 1, sizeof *ref);
    for (int i = 0; i < n; i++) ref[i] = (qf_weight_ref){lin[i]->weight, lin[i]->rows};
    qf_status r;
    json_t *rep = json_object();
    if (c->o->smooth_alpha > 0) {
        r = qf_smooth_scales(st->absmax, cols, ref, n, c->o->smooth_alpha, s, err);
        json_object_set_new(rep, "smoothquant_alpha", json_real(c->o->smooth_alpha));
    } else {
        float *xm = malloc(sizeof(float) * (size_t)cols);
        qf_stats_mean_abs(st, xm);
        qf_awq_result ar;
        r = qf_awq_search_scales(c->o->scheme, ref, n, cols, xm, st->xtx, &c->o->awq, s, &ar, err);
        free(xm);
        if (r == QF_OK) {
            json_object_set_new(rep, "awq_alpha", json_real(ar.alpha));
            json_object_set_new(rep, "awq_gain", json_real(ar.loss_rtn > 0 ? 1 - ar.loss / ar.loss_rtn : 0));
        }
    }
    if (r == QF_OK) {
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
    } else {
        json_decref(rep);
        qf_error_prefix(err, "%s: ", what);
    }
    free(s);
    free(ref);
    return r;
}

/* ---- one decoder layer ---------------------------------------------------------------------- */
typedef struct {
    float *xn, *q, *k, *v, *att, *h1, *xn2, *g, *u, *tmp;
} qf_cal_ws;

static qf_status qf_cal_attention(qf_cal *c, qf_layer *L, const float *xn, qf_cal_ws *w, qf_error *err)
{
    const qf_model_config *cf = &c->m->cfg;
    const int64_t n = c->n_tok, qd = (int64_t)cf->n_heads * cf->head_dim, kvd = (int64_t)cf->n_kv_heads * cf->head_dim;
    QF_TRY(qf_linear_forward(&L->q, xn, n, w->q, NULL, err));
    QF_TRY(qf_linear_forward(&L->k, xn, n, w->k, NULL, err));
    QF_TRY(qf_linear_forward(&L->v, xn, n, w->v, NULL, err));
    if (L->q_norm) {
        qf_rmsnorm_rows(w->q, L->q_norm, n * cf->n_heads, cf->head_dim, cf->rms_norm_eps, w->q);
        qf_rmsnorm_rows(w->k, L->k_norm, n * cf->n_kv_heads, cf->head_dim, cf->rms_norm_eps, w->k);
    }
    for (int s = 0; s < c->n_samples; s++) {
        int64_t off = (int64_t)s * c->seqlen;
        qf_rope_apply(c->m, w->q + off * qd, c->seqlen, cf->n_heads);
        qf_rope_apply(c->m, w->k + off * kvd, c->seqlen, cf->n_kv_heads);
        QF_TRY(qf_attention(c->m, w->q + off * qd, w->k + off * kvd, w->v + off * kvd, c->seqlen, w->att + off * qd, err));
    }
    return QF_OK;
}

/* Dense MLP activations g = silu(gate(x)) * up(x) for all tokens. */
static qf_status qf_cal_swiglu(qf_cal *c, const qf_linear *gate, const qf_linear *up, const float *x, float *g, float *u,
                               qf_error *err)
{
    QF_TRY(qf_linear_forward(gate, x, c->n_tok, g, NULL, err));
    QF_TRY(qf_linear_forward(up, x, c->n_tok, u, NULL, err));
    qf_swiglu(g, u, c->n_tok * gate->rows);
    return QF_OK;
}

/* Tokens routed to each expert (observer on the experts' gate projections). */
typedef struct {
    const qf_layer *L;
    int64_t *count;
    int n_experts;
} qf_route_count;

static qf_status qf_count_routed(void *user, const qf_linear *lin, const float *x, int64_t m, qf_error *err)
{
    (void)x, (void)err;
    qf_route_count *rc = user;
    for (int e = 0; e < rc->n_experts; e++)
        if (lin == &rc->L->experts[3 * e]) rc->count[e] += m;
    return QF_OK;
}

/* Run (and, unless collecting, quantize) layer l; h (n_tok, hidden) becomes its output. */
static qf_status qf_cal_layer(qf_cal *c, int l, float *h, qf_cal_ws *w, qf_stats st[4], qf_error *err)
{
    qf_model *m = c->m;
    const qf_model_config *cf = &m->cfg;
    qf_layer *L = &m->layers[l];
    const int64_t n = c->n_tok, C = cf->hidden_size;
    const int awq = c->o->method == QF_CALIB_AWQ || c->o->method == QF_CALIB_AWQ_GPTQ;
    const int fold = c->collect && (awq || c->o->smooth_alpha > 0);
    /* A: attention input -> q, k, v */
    qf_rmsnorm_rows(h, L->attn_norm, n, C, cf->rms_norm_eps, w->xn);
    QF_TRY(qf_cal_stats(&st[0], w->xn, n, C, err));
    qf_linear *qkv[3] = {&L->q, &L->k, &L->v};
    QF_TRY(qf_cal_quantize_group(c, qkv, 3, &st[0], err));
    /* B: attention with the quantized q/k/v -> o */
    QF_TRY(qf_cal_attention(c, L, w->xn, w, err));
    QF_TRY(qf_cal_stats(&st[1], w->att, n, L->o.cols, err));
    qf_linear *o1[1] = {&L->o};
    QF_TRY(qf_cal_quantize_group(c, o1, 1, &st[1], err));
    /* C: h1 = h + o(att); xn2 = post-attention norm -> gate/up (experts' w1/w3 on all tokens) */
    QF_TRY(qf_linear_forward(&L->o, w->att, n, w->tmp, NULL, err));
    for (int64_t i = 0; i < n * C; i++) w->h1[i] = h[i] + w->tmp[i];
    qf_rmsnorm_rows(w->h1, L->ffn_norm, n, C, cf->rms_norm_eps, w->xn2);
    QF_TRY(qf_cal_stats(&st[2], w->xn2, n, C, err));
    const int E = L->is_moe ? cf->n_experts : 0;
    qf_linear **gu = calloc((size_t)(2 * E + 2), sizeof *gu);
    int ngu = 0;
    if (!L->is_moe) gu[ngu++] = &L->gate, gu[ngu++] = &L->up;
    for (int e = 0; e < E; e++) gu[ngu++] = &L->experts[3 * e], gu[ngu++] = &L->experts[3 * e + 1];
    qf_status r = qf_cal_quantize_group(c, gu, ngu, &st[2], err);
    /* D: the down projections' inputs (per expert, over all tokens), then E: the output */
    json_t *tokens = E ? json_array() : NULL;
    if (r == QF_OK && !L->is_moe) {
        r = qf_cal_swiglu(c, &L->gate, &L->up, w->xn2, w->g, w->u, err);
        if (r == QF_OK) r = qf_cal_stats(&st[3], w->g, n, L->down.cols, err);
        qf_linear *d1[1] = {&L->down};
        if (r == QF_OK) r = qf_cal_quantize_group(c, d1, 1, &st[3], err);
        if (r == QF_OK && fold) { /* phase 1: all four groups' statistics are in: fold the scales */
            r = qf_cal_fold(c, "qkv", qkv, 3, NULL, &st[0], L->attn_norm, NULL, err);
            if (r == QF_OK && awq && L->v.rows == L->o.cols) r = qf_cal_fold(c, "o", o1, 1, NULL, &st[1], NULL, &L->v, err);
            if (r == QF_OK) r = qf_cal_fold(c, "gate_up", gu, ngu, NULL, &st[2], L->ffn_norm, NULL, err);
            if (r == QF_OK && awq) r = qf_cal_fold(c, "down", d1, 1, NULL, &st[3], NULL, &L->up, err);
        }
        qf_stats_free(&st[3]);
        if (r == QF_OK && !c->collect) {
            r = qf_linear_forward(&L->down, w->g, n, w->tmp, NULL, err);
            for (int64_t i = 0; r == QF_OK && i < n * C; i++) h[i] = w->h1[i] + w->tmp[i];
        }
    } else if (r == QF_OK) {
        if (fold) r = qf_cal_fold(c, "qkv", qkv, 3, NULL, &st[0], L->attn_norm, NULL, err);
        if (r == QF_OK && fold && awq && L->v.rows == L->o.cols) r = qf_cal_fold(c, "o", o1, 1, NULL, &st[1], NULL, &L->v, err);
        if (r == QF_OK && fold) r = qf_cal_fold(c, "experts_w1_w3", gu, ngu, &L->router, &st[2], L->ffn_norm, NULL, err);
        for (int e = 0; r == QF_OK && e < E; e++) {
            qf_linear *g = &L->experts[3 * e], *u = &L->experts[3 * e + 1], *d = &L->experts[3 * e + 2];
            r = qf_cal_swiglu(c, g, u, w->xn2, w->g, w->u, err);
            if (r == QF_OK) r = qf_cal_stats(&st[3], w->g, n, d->cols, err);
            qf_linear *d1[1] = {d};
            if (r == QF_OK && fold && awq) {
                char what[32];
                snprintf(what, sizeof what, "expert%d_down", e);
                r = qf_cal_fold(c, what, d1, 1, NULL, &st[3], NULL, u, err);
            }
            if (r == QF_OK) r = qf_cal_quantize_group(c, d1, 1, &st[3], err);
            qf_stats_free(&st[3]);
        }
        if (r == QF_OK && !c->collect) {
            int64_t *count = calloc((size_t)E, sizeof(int64_t));
            qf_route_count rc = {L, count, E};
            qf_linear_observer saved = m->observer;
            m->observer = (qf_linear_observer){qf_count_routed, &rc};
            r = qf_moe_forward(m, L, w->xn2, n, w->tmp, w->g, w->u, err);
            m->observer = saved;
            for (int e = 0; e < E; e++) json_array_append_new(tokens, json_integer(count[e]));
            free(count);
            for (int64_t i = 0; r == QF_OK && i < n * C; i++) h[i] = w->h1[i] + w->tmp[i];
        }
    }
    if (tokens && !c->collect) json_object_set_new(c->lrep, "routed_tokens_per_expert", tokens);
    else json_decref(tokens);
    free(gu);
    for (int i = 0; i < 3; i++) qf_stats_free(&st[i]);
    return r;
}

static qf_status qf_cal_floatify_layer(qf_cal *c, qf_layer *L, qf_error *err)
{
    qf_linear *all[6] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up};
    for (int i = 0; i < 4; i++) QF_TRY(qf_cal_floatify(c, all[i], err));
    if (!L->is_moe) {
        QF_TRY(qf_cal_floatify(c, &L->gate, err));
        QF_TRY(qf_cal_floatify(c, &L->up, err));
        QF_TRY(qf_cal_floatify(c, &L->down, err));
    } else {
        QF_TRY(qf_cal_floatify(c, &L->router, err));
        for (int e = 0; e < 3 * c->m->cfg.n_experts; e++) QF_TRY(qf_cal_floatify(c, &L->experts[e], err));
    }
    return QF_OK;
}

/* The norm / router tensors SmoothQuant or AWQ changed, as bf16 overrides. */
static void qf_cal_emit_overrides(qf_cal *c, int l, qf_layer *L)
{
    const int64_t C = c->m->cfg.hidden_size;
    char mod[160];
    const float *norms[2] = {L->attn_norm, L->ffn_norm};
    const char *names[2] = {"input_layernorm", "post_attention_layernorm"};
    for (int i = 0; i < 2; i++) {
        uint16_t *b = malloc(sizeof(uint16_t) * (size_t)C);
        for (int64_t j = 0; j < C; j++) b[j] = qf_f32_to_bf16(norms[i][j]);
        snprintf(mod, sizeof mod, "model.layers.%d.%s", l, names[i]);
        qf_out_add(&c->out, mod, "weight", QF_DTYPE_BF16, 1, C, 0, b, sizeof(uint16_t) * (uint64_t)C);
    }
    if (L->is_moe) {
        const qf_linear *r = &L->router;
        uint16_t *b = malloc(sizeof(uint16_t) * (size_t)(r->rows * r->cols));
        const float *wf = r->weight;
        for (int64_t j = 0; j < r->rows * r->cols; j++) b[j] = qf_f32_to_bf16(wf[j]);
        qf_out_add(&c->out, r->name, "weight", QF_DTYPE_BF16, 2, r->rows, r->cols, b,
                   sizeof(uint16_t) * (uint64_t)(r->rows * r->cols));
    }
}

qf_status qf_calibrate(const char *model_dir, const qf_calib_opts *o, const char *out_dir, json_t **report, qf_error *err)
{
    *report = NULL;
    if (!o->scheme) return qf_fail(err, QF_ERR_USAGE, "calibration needs a scheme");
    qf_model *m = NULL;
    QF_TRY(qf_model_load(model_dir, NULL, &m, err));
    if (m->n_linear_packed) {
        qf_model_free(m);
        return qf_fail(err, QF_ERR_USAGE, "%s is already quantized: calibrate from the original checkpoint", model_dir);
    }
    char *tpath = qf_path_join(model_dir, "tokenizer.json");
    qf_tokenizer *tok = NULL;
    qf_status r = qf_tokenizer_load(tpath, &tok, err);
    free(tpath);
    qf_calib_data data = {0};
    if (r == QF_OK) r = qf_calib_data_load(o->calib_path, tok, o->n_samples, o->seqlen, o->seed, &data, err);
    qf_tokenizer_free(tok);
    for (int64_t i = 0; r == QF_OK && i < (int64_t)data.n_samples * data.seqlen; i++)
        if (data.ids[i] < 0 || data.ids[i] >= m->vocab_in)
            r = qf_fail(err, QF_ERR_FORMAT, "calibration token id %d is outside the model's vocabulary (%lld)",
                        data.ids[i], (long long)m->vocab_in);
    if (r == QF_OK) r = qf_mkdirs(out_dir, err);
    qf_cal c = {.o = o, .m = m, .n_tok = (int64_t)o->n_samples * o->seqlen, .seqlen = o->seqlen, .n_samples = o->n_samples};
    const qf_model_config *cf = &m->cfg;
    const int64_t C = cf->hidden_size, qd = (int64_t)cf->n_heads * cf->head_dim,
                  kvd = (int64_t)cf->n_kv_heads * cf->head_dim, F = m->ffn_max > qd ? m->ffn_max : qd;
    /* h, xn, q, k, v, att, h1, xn2, g, u, tmp */
    int64_t per_tok = C + C + qd + 2 * kvd + qd + C + C + 2 * F + C;
    float *arena = r == QF_OK ? malloc(sizeof(float) * (size_t)(c.n_tok * per_tok)) : NULL;
    if (r == QF_OK && !arena)
        r = qf_fail(err, QF_ERR_NOMEM, "calibration: out of memory for %lld tokens x %lld floats of activations",
                    (long long)c.n_tok, (long long)per_tok);
    json_t *layers = json_array();
    if (r == QF_OK) {
        float *h = arena;
        qf_cal_ws w;
        w.xn = h + c.n_tok * C;
        w.q = w.xn + c.n_tok * C;
        w.k = w.q + c.n_tok * qd;
        w.v = w.k + c.n_tok * kvd;
        w.att = w.v + c.n_tok * kvd;
        w.h1 = w.att + c.n_tok * qd;
        w.xn2 = w.h1 + c.n_tok * C;
        w.g = w.xn2 + c.n_tok * C;
        w.u = w.g + c.n_tok * F;
        w.tmp = w.u + c.n_tok * F;
        r = qf_model_embed(m, data.ids, c.n_tok, h, err);
        int last = o->last_layer >= 0 && o->last_layer < cf->n_layers ? o->last_layer : cf->n_layers - 1;
        const int fold = o->method == QF_CALIB_AWQ || o->method == QF_CALIB_AWQ_GPTQ || o->smooth_alpha > 0;
        for (int l = 0; r == QF_OK && l <= last; l++) {
            double tl = qf_now();
            qf_layer *L = &m->layers[l], saved = *L;
            qf_linear *saved_experts = NULL;
            if (L->is_moe) {
                saved_experts = malloc(sizeof(qf_linear) * (size_t)(3 * cf->n_experts));
                memcpy(saved_experts, L->experts, sizeof(qf_linear) * (size_t)(3 * cf->n_experts));
            }
            float *norm_copy = malloc(sizeof(float) * (size_t)(2 * C));
            memcpy(norm_copy, L->attn_norm, sizeof(float) * (size_t)C);
            memcpy(norm_copy + C, L->ffn_norm, sizeof(float) * (size_t)C);
            c.lrep = json_object();
            json_object_set_new(c.lrep, "layer", json_integer(l));
            qf_stats st[4] = {{0}};
            r = qf_cal_floatify_layer(&c, L, err);
            if (r == QF_OK && fold) { /* phase 1: float statistics, scales folded */
                c.collect = 1; /* this pass leaves h unchanged */
                r = qf_cal_layer(&c, l, h, &w, st, err);
                c.collect = 0;
            }
            if (r == QF_OK) r = qf_cal_layer(&c, l, h, &w, st, err);
            if (r == QF_OK && fold) qf_cal_emit_overrides(&c, l, L);
            if (r == QF_OK) {
                char fname[64];
                snprintf(fname, sizeof fname, "layer-%05d.safetensors", l);
                char *path = qf_path_join(out_dir, fname);
                r = qf_out_write(&c.out, path, err);
                free(path);
            }
            qf_out_free(&c.out);
            /* restore the layer's original storage: it is not needed again */
            memcpy(L->attn_norm, norm_copy, sizeof(float) * (size_t)C);
            memcpy(L->ffn_norm, norm_copy + C, sizeof(float) * (size_t)C);
            free(norm_copy);
            float *an = L->attn_norm, *fn = L->ffn_norm;
            qf_linear *ex = L->experts;
            *L = saved;
            L->attn_norm = an, L->ffn_norm = fn, L->experts = ex;
            if (saved_experts) memcpy(L->experts, saved_experts, sizeof(qf_linear) * (size_t)(3 * cf->n_experts));
            free(saved_experts);
            for (int i = 0; i < c.n_owned; i++) free(c.owned[i]);
            c.n_owned = 0;
            if (r == QF_OK && o->progress) {
                double worst = 0;
                const char *k;
                json_t *v;
                json_object_foreach(c.lrep, k, v)
                {
                    json_t *e = json_object_get(v, "rel_output_error");
                    if (json_is_real(e) && json_real_value(e) > worst) worst = json_real_value(e);
                }
                fprintf(stderr, "calibrate: layer %d/%d done in %.1f s (worst Linear relative output error %.4f)\n", l + 1,
                        last + 1, qf_now() - tl, worst);
            }
            json_array_append_new(layers, c.lrep);
            c.lrep = NULL;
        }
    }
    free(arena);
    free(c.owned);
    qf_model_free(m);
    if (r == QF_OK) {
        char hex[QF_HASH_HEX_LEN + 1];
        qf_hash_hex(data.text_hash, hex);
        json_t *g = json_pack("{s:f, s:i, s:b, s:b}", "dampening", o->gptq.percdamp, "block_size", o->gptq.block_size,
                              "act_order", o->gptq.act_order, "static_groups", o->gptq.static_groups);
        json_t *a = json_pack("{s:i, s:b, s:i, s:f}", "n_grid", o->awq.n_grid, "duo_scaling", o->awq.duo_scaling,
                              "clip_steps", o->awq.clip_steps, "clip_min", o->awq.clip_min);
        *report = json_pack("{s:s, s:s, s:{s:s, s:s, s:I, s:I, s:i, s:i, s:I}, s:o, s:o, s:f, s:o}", "method",
                            qf_calib_method_name(o->method), "scheme", o->scheme->name, "data", "source", data.source,
                            "xxh3_128", hex, "bytes", (json_int_t)data.text_bytes, "tokens", (json_int_t)data.text_tokens,
                            "samples", data.n_samples, "seqlen", data.seqlen, "seed", (json_int_t)data.seed, "gptq", g,
                            "awq", a, "smoothquant_alpha", o->smooth_alpha, "layers", layers);
    } else {
        json_decref(layers);
    }
    qf_calib_data_free(&data);
    return r;
}
