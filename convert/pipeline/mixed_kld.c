/* mixed_kld.c - --target-bits' sensitivity: the KL divergence each item adds alone, per format
 * (see mixed.h).
 *
 * The float model runs on a few calibration windows once; the residual stream entering every
 * decoder layer and the log-probabilities are kept.  Then, for each item (fused siblings in
 * layer l, or every MoE expert) and each format of the menu, the item's Linears are rounded
 * by RTN exactly as the converter writes them and swapped into the model as packed Linears,
 * so the runner dequantizes them and quantizes their input activations as the serving kernel
 * does (w8a8's int8 per token); the windows are run from layer l's stored input (an item
 * spanning layers, the MoE experts, from its first layer's) to the logits, and the mean
 * KL(float || this) over every position is the item's cost in that format.  Memory: windows x
 * seqlen x (vocab + n_layers x hidden) floats besides the model; time: items x formats
 * partial forward passes of every window (the runner's big products go to the GPU when
 * --device allows, as calibration's do).  RTN stands in for the method the conversion then runs (GPTQ
 * lowers every format's drift; the ranking is what the choice needs).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert_plan.h"
#include "mixed.h"
#include "qf_calib_data.h"
#include "qf_eval.h"
#include "qf_fs.h"
#include "qf_gpu_calib.h"
#include "qf_model.h"
#include "qf_quantize.h"
#include "qf_tokenizer.h"

typedef struct qf_kld_run {
    qf_model *m;
    int n_win, T;
    int32_t *ids;   /* (n_win, T) */
    float *h_in;    /* (n_layers, n_win, T, hidden): the float residual stream entering each layer */
    float *base_lp; /* (n_win, T, vocab): the float model's log-probabilities */
    float *h, *logits; /* work: (T, hidden), (T, vocab) */
} qf_kld_run;

static qf_status qf_kld_base(qf_kld_run *r, qf_error *err)
{
    const qf_model *m = r->m;
    const int64_t H = m->cfg.hidden_size, V = m->vocab_out, T = r->T;
    for (int w = 0; w < r->n_win; w++) {
        QF_TRY(qf_model_embed(m, r->ids + (size_t)w * T, T, r->h, err));
        for (int l = 0; l < m->cfg.n_layers; l++) {
            memcpy(r->h_in + (((size_t)l * r->n_win + w) * T) * H, r->h, sizeof(float) * (size_t)(T * H));
            QF_TRY(qf_model_layer_forward(m, l, r->h, T, err));
        }
        float *lp = r->base_lp + (size_t)w * T * V;
        QF_TRY(qf_model_logits(m, r->h, T, lp, err));
        for (int64_t t = 0; t < T; t++) qf_log_softmax(lp + t * V, V);
    }
    return QF_OK;
}

/* Mean KL(float || model as it is now) over every position, the model changed from layer l on. */
static qf_status qf_kld_from(qf_kld_run *r, int l, double *kld, qf_error *err)
{
    const qf_model *m = r->m;
    const int64_t H = m->cfg.hidden_size, V = m->vocab_out, T = r->T;
    double sum = 0;
    for (int w = 0; w < r->n_win; w++) {
        memcpy(r->h, r->h_in + (((size_t)l * r->n_win + w) * T) * H, sizeof(float) * (size_t)(T * H));
        for (int k = l; k < m->cfg.n_layers; k++) QF_TRY(qf_model_layer_forward(m, k, r->h, T, err));
        QF_TRY(qf_model_logits(m, r->h, T, r->logits, err));
        const float *lp = r->base_lp + (size_t)w * T * V;
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (int64_t t = 0; t < T; t++) {
            qf_log_softmax(r->logits + t * V, V);
            s += qf_kld_row(lp + t * V, r->logits + t * V, V);
        }
        sum += s;
    }
    *kld = sum / ((double)r->n_win * (double)T);
    return QF_OK;
}

/* Make lin the packed Linear that RTN into scheme s gives (buffers in buf, owned by the caller),
 * as the artifact loader would (calib/model/linear_load.c): weight-only or dynamic activations. */
static qf_status qf_kld_pack(qf_linear *lin, const qf_scheme *s, float amax, qf_quant_buffers *buf, qf_error *err)
{
    qf_quant_plan plan;
    QF_TRY(qf_quant_plan_linear(s, lin->rows, lin->cols, &plan, err));
    for (int k = 0; k < plan.n; k++)
        if (!(buf->data[k] = calloc(1, plan.t[k].nbytes ? plan.t[k].nbytes : 1)))
            return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", lin->name);
    QF_TRY(qf_quantize_rtn_clip(s, lin->wdtype, lin->weight, lin->rows, lin->cols, amax, qf_rtn_clip_default(s), 0.75f,
                                &plan, buf, err));
    const int iw = qf_quant_plan_find(&plan, QF_ROLE_WEIGHT), is = qf_quant_plan_find(&plan, QF_ROLE_SCALE);
    const int iz = qf_quant_plan_find(&plan, QF_ROLE_ZERO), ig = qf_quant_plan_find(&plan, QF_ROLE_GLOBAL);
    memset(&lin->packed, 0, sizeof lin->packed);
    lin->kind = QF_LINEAR_PACKED;
    lin->scheme = *s;
    lin->packed.rows = lin->rows, lin->packed.cols = lin->cols;
    lin->packed.weight = buf->data[iw];
    lin->packed.scale = buf->data[is];
    lin->packed.scale_dtype = plan.t[is].dtype;
    lin->packed.zero = iz >= 0 ? buf->data[iz] : NULL;
    lin->packed.global_scale = 1.0f;
    if (ig >= 0) memcpy(&lin->packed.global_scale, buf->data[ig], sizeof(float));
    lin->act = s->act == QF_ACT_FP8_TOKEN || s->act == QF_ACT_INT8_TOKEN ? s->act : QF_ACT_NONE;
    lin->act_enabled = lin->act != QF_ACT_NONE;
    return QF_OK;
}

static float qf_kld_absmax(const qf_linear *lin)
{
    return qf_tensor_absmax(lin->wdtype, lin->weight, (uint64_t)lin->rows * (uint64_t)lin->cols);
}

/* The cost of item `it` in every available format (kld[n_menu]; bf16 = 0, unavailable = -1). */
static qf_status qf_kld_item(qf_kld_run *r, const qf_mixed *mx, int it, qf_linear **all, int n_all, double *kld,
                             qf_error *err)
{
    qf_linear **lin = malloc(sizeof *lin * (size_t)mx->n), *saved = malloc(sizeof *saved * (size_t)mx->n);
    qf_quant_buffers *buf = calloc((size_t)mx->n, sizeof *buf);
    float *amax = calloc((size_t)mx->n, sizeof(float));
    int n = 0, layer = -1;
    qf_status s = lin && saved && buf && amax ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; s == QF_OK && i < mx->n; i++) {
        if (mx->item[i] != it) continue;
        qf_linear *found = NULL;
        for (int k = 0; k < n_all && !found; k++)
            if (strcmp(all[k]->name, mx->module[i]) == 0) found = all[k];
        if (!found || found->kind != QF_LINEAR_FLOAT || found->layer < 0)
            s = qf_fail(err, QF_ERR_UNSUPPORTED, "--target-bits: Linear %s is not a float Linear of a decoder layer "
                        "in the model runner", mx->module[i]);
        else /* the run starts at the item's first layer (MoE experts: every layer's) */
            lin[n] = found, saved[n++] = *found, layer = layer < 0 || found->layer < layer ? found->layer : layer;
    }
    /* nvfp4: fused siblings share one global scale, as the plan writes them */
    for (int a = 0; s == QF_OK && a < n; a++) {
        char ka[512], kb[512];
        qf_plan_sibling_key(lin[a]->name, ka, sizeof ka);
        for (int b = 0; b < n; b++) {
            qf_plan_sibling_key(lin[b]->name, kb, sizeof kb);
            if (strcmp(ka, kb) == 0) {
                const float v = qf_kld_absmax(lin[b]);
                amax[a] = v > amax[a] ? v : amax[a];
            }
        }
    }
    for (int k = 0; s == QF_OK && k < mx->n_menu; k++) {
        kld[k] = mx->item_cost[(size_t)it * mx->n_menu + k] < 0 ? -1 : 0;
        if (!mx->menu[k] || kld[k] < 0) continue;
        for (int a = 0; s == QF_OK && a < n; a++) s = qf_kld_pack(lin[a], mx->menu[k], amax[a], &buf[a], err);
        if (s == QF_OK) s = qf_kld_from(r, layer, &kld[k], err);
        for (int a = 0; a < n; a++) {
            *lin[a] = saved[a];
            for (int p = 0; p < QF_PLAN_MAX; p++) free(buf[a].data[p]), buf[a].data[p] = NULL;
        }
    }
    free(lin), free(saved), free(buf), free(amax);
    return s;
}

qf_status qf_mixed_measure_kld(const qf_convert_opts *o, qf_mixed *mx, qf_error *err)
{
    qf_kld_run r = {0};
    if (o->ctx) qf_gpu_calib_set_mode((qf_device_mode)o->ctx->device); /* as calibration does */
    QF_TRY(qf_gpu_calib_require(err));
    qf_model_options mo;
    qf_model_options_default(&mo);
    mo.float_source = 1; /* sensitivity of the float model the converter reads */
    QF_TRY(qf_model_load(o->src, &mo, &r.m, err));
    char *tpath = qf_path_join(o->src, "tokenizer.json");
    qf_tokenizer *tok = NULL;
    qf_status s = qf_tokenizer_load(tpath, &tok, err);
    free(tpath);
    qf_calib_data data = {0};
    if (s == QF_OK) s = qf_calib_data_load(o->calib.calib_path, tok, mx->samples, mx->seqlen, o->calib.seed, &data, err);
    qf_tokenizer_free(tok);
    for (int64_t i = 0; s == QF_OK && i < (int64_t)data.n_samples * data.seqlen; i++)
        if (data.ids[i] < 0 || data.ids[i] >= r.m->vocab_in)
            s = qf_fail(err, QF_ERR_FORMAT, "calibration token id %d is outside the model's vocabulary", data.ids[i]);
    const qf_model_config *cf = &r.m->cfg;
    r.n_win = data.n_samples, r.T = data.seqlen, r.ids = data.ids;
    const size_t TH = (size_t)r.T * (size_t)cf->hidden_size, TV = (size_t)r.T * (size_t)r.m->vocab_out;
    if (s == QF_OK) {
        r.h_in = malloc(sizeof(float) * TH * (size_t)cf->n_layers * (size_t)r.n_win);
        r.base_lp = malloc(sizeof(float) * TV * (size_t)r.n_win);
        r.h = malloc(sizeof(float) * TH);
        r.logits = malloc(sizeof(float) * TV);
        if (!r.h_in || !r.base_lp || !r.h || !r.logits)
            s = qf_fail(err, QF_ERR_NOMEM, "--target-bits: out of memory for %d windows of %d tokens (use fewer "
                        "--target-samples)", r.n_win, r.T);
    }
    if (s == QF_OK) s = qf_kld_base(&r, err);
    const int n_all = qf_model_linears(r.m, NULL, 0);
    qf_linear **all = malloc(sizeof *all * (size_t)(n_all ? n_all : 1));
    if (s == QF_OK && !all) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (s == QF_OK) qf_model_linears(r.m, all, n_all);
    for (int it = 0; s == QF_OK && it < mx->n_items; it++) {
        if (qf_ctx_cancelled(o->ctx)) s = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted while measuring --target-bits");
        else s = qf_kld_item(&r, mx, it, all, n_all, mx->item_err + (size_t)it * mx->n_menu, err);
    }
    free(all);
    free(r.h_in), free(r.base_lp), free(r.h), free(r.logits);
    qf_calib_data_free(&data);
    qf_model_free(r.m);
    return s;
}
