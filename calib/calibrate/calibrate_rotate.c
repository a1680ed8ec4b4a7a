/* calibrate_rotate.c - a calibration run under a rotation (qf_calib_opts.rotate): the
 * tensors outside the layers at the start, each layer's fold before its statistics, and the
 * tensors the rotation makes each layer write (see calibrate_internal.h, qf_rotate_model.h).
 *
 * Calibration then runs unchanged on the rotated model: the statistics, GPTQ's Hessians and
 * the static activation scales are those of the rotated inputs, which is the point.  What the
 * artifact stores without quantization (embedding, norms, routers, biases, lm_head, Linears
 * kept in full precision) is rounded to its stored dtype before calibration uses it, so the
 * quantized Linears are fitted to the model as it will be served. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate_internal.h"

int qf_calib_outside_tensor(const qf_calib_opts *o, const char *name)
{
    return o->rotate != QF_ROTATE_NONE && (strcmp(name, "model.embed_tokens.weight") == 0 ||
                                           strcmp(name, "model.norm.weight") == 0 || strcmp(name, "lm_head.weight") == 0);
}

/* The dtype the artifact stores `tensor` in: the checkpoint's (bf16 when it has none). */
static qf_dtype qf_cal_stored_dtype(const qf_cal *c, const char *tensor)
{
    const qf_tensor *t = qf_checkpoint_find(c->m->ck, tensor);
    return t && (t->dtype == QF_DTYPE_F32 || t->dtype == QF_DTYPE_F16) ? t->dtype : QF_DTYPE_BF16;
}

/* Hand n floats (d0 x d1, or d0 when d1 is 0) to the layer's output as module.suffix in its stored dtype. */
static void qf_cal_out_float(qf_cal *c, const char *module, const char *suffix, const float *x, int64_t d0, int64_t d1)
{
    char name[QF_LINEAR_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    const qf_dtype dt = qf_cal_stored_dtype(c, name);
    const int64_t n = d0 * (d1 ? d1 : 1);
    const uint64_t bytes = (uint64_t)n * (dt == QF_DTYPE_F32 ? 4 : 2);
    void *b = malloc(bytes ? bytes : 1);
    qf_rotate_encode(x, n, dt, b);
    qf_cal_out_add(&c->out, module, suffix, dt, d1 ? 2 : 1, d0, d1, b, bytes);
}

qf_status qf_cal_rotate_begin(qf_cal *c, qf_error *err)
{
    qf_model *m = c->m;
    const int64_t H = m->cfg.hidden_size;
    QF_TRY(qf_rotation_init(&c->rot, m, c->o->rotate, c->o->rotate_seed, c->o->rotate_block, err));
    c->rotating = 1;
    const qf_dtype edt = m->embed_dtype;
    const uint64_t ebytes = (uint64_t)(m->vocab_in * H) * (edt == QF_DTYPE_F32 ? 4 : 2);
    void *emb = malloc(ebytes);
    if (!emb) return qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory for the rotated embedding (%.0f MB)", ebytes / 1e6);
    qf_status s = qf_rotate_embedding(&c->rot, m, edt, emb, err);
    if (s) {
        free(emb);
        return s;
    }
    /* the tokens are embedded from the rotated table (qf_cal_rotate_embedded switches back) */
    qf_cal_out_add(&c->out, "model.embed_tokens", "weight", edt, 2, m->vocab_in, H, emb, ebytes);
    c->embed_src = m->embed;
    m->embed = emb;
    if (m->lm_head.weight != c->embed_src) { /* untied: lm_head diag(final norm) R1; tied: E R1 serves both */
        const qf_dtype dt = qf_cal_stored_dtype(c, "lm_head.weight");
        const uint64_t bytes = (uint64_t)(m->vocab_out * H) * (dt == QF_DTYPE_F32 ? 4 : 2);
        void *lm = malloc(bytes);
        if (!lm) return qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory for the rotated lm_head (%.0f MB)", bytes / 1e6);
        if ((s = qf_rotate_lm_head(&c->rot, m, dt, lm, err)) != QF_OK) {
            free(lm);
            return s;
        }
        qf_cal_out_add(&c->out, "lm_head", "weight", dt, 2, m->vocab_out, H, lm, bytes);
    }
    float *ones = malloc(sizeof(float) * (size_t)H);
    if (!ones) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < H; j++) ones[j] = 1.0f;
    qf_cal_out_float(c, "model", "norm.weight", ones, H, 0);
    free(ones);
    return QF_OK;
}

void qf_cal_rotate_embedded(qf_cal *c)
{
    if (c->rotating) c->m->embed = c->embed_src;
}

void qf_cal_rotate_end(qf_cal *c)
{
    qf_rotation_free(&c->rot);
    c->rotating = 0;
}

/* Every Linear of L, with the number of them. */
static int qf_cal_layer_linears(const qf_cal *c, qf_layer *L, qf_linear **all)
{
    int n = 0;
    all[n++] = &L->q, all[n++] = &L->k, all[n++] = &L->v, all[n++] = &L->o;
    if (!L->is_moe) {
        all[n++] = &L->gate, all[n++] = &L->up, all[n++] = &L->down;
    } else {
        all[n++] = &L->router;
        for (int e = 0; e < 3 * c->m->cfg.n_experts; e++) all[n++] = &L->experts[e];
    }
    return n;
}

static int qf_cal_quantized(const qf_cal *c, const qf_linear *lin, const qf_layer *L)
{
    return lin != &L->router && (!c->o->quantize_module || c->o->quantize_module(c->o->ctx, lin->name));
}

qf_status qf_cal_rotate_layer(qf_cal *c, qf_layer *L, qf_error *err)
{
    QF_TRY(qf_rotate_layer(&c->rot, c->m, L, err));
    qf_linear **all = malloc(sizeof *all * (size_t)(8 + 3 * c->m->cfg.n_experts));
    if (!all) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    const int n = qf_cal_layer_linears(c, L, all);
    char name[QF_LINEAR_NAME_MAX + 8];
    for (int i = 0; i < n; i++) { /* what is stored unquantized, as it will be stored */
        if (all[i]->bias) {
            snprintf(name, sizeof name, "%s.bias", all[i]->name);
            qf_rotate_round(all[i]->bias, all[i]->rows, qf_cal_stored_dtype(c, name));
        }
        if (qf_cal_quantized(c, all[i], L)) continue;
        snprintf(name, sizeof name, "%s.weight", all[i]->name);
        qf_rotate_round((float *)all[i]->weight, all[i]->rows * all[i]->cols, qf_cal_stored_dtype(c, name));
    }
    free(all);
    return QF_OK;
}

void qf_cal_rotate_emit(qf_cal *c, int l, qf_layer *L)
{
    const int64_t H = c->m->cfg.hidden_size;
    char mod[160];
    snprintf(mod, sizeof mod, "model.layers.%d", l);
    /* the norms hold 1 or, after SmoothQuant / AWQ folded into them, 1 / s */
    qf_cal_out_float(c, mod, "input_layernorm.weight", L->attn_norm, H, 0);
    qf_cal_out_float(c, mod, "post_attention_layernorm.weight", L->ffn_norm, H, 0);
    qf_linear **all = malloc(sizeof *all * (size_t)(8 + 3 * c->m->cfg.n_experts));
    if (!all) return; /* the writer then reports the missing tensor by name */
    const int n = qf_cal_layer_linears(c, L, all);
    for (int i = 0; i < n; i++) {
        if (all[i]->bias) qf_cal_out_float(c, all[i]->name, "bias", all[i]->bias, all[i]->rows, 0);
        if (!qf_cal_quantized(c, all[i], L))
            qf_cal_out_float(c, all[i]->name, "weight", all[i]->weight, all[i]->rows, all[i]->cols);
    }
    free(all);
}
