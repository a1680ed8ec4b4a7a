/* calibrate_float.c - the float model's path through a layer, beside the quantized one.
 *
 * With the float target (qf_calib_opts.float_target, qf_float_target.h) every Linear is
 * rounded towards the float model's output, so calibration also runs the float model on the
 * same tokens: the FLOAT table holds its residual stream, and the layer's float weights are
 * kept as a twin (c->fl) while the quantized ones are made.  Per pass the quantized path's
 * rows are paired with the float path's rows for the same tokens:
 *   A  q/k/v  input_layernorm(h_f)  (MLA: q_a or q_proj, kv_a_proj_with_mqa; then q_b and kv_b
 *             on the float layer's latents of it)
 *   B  o      attention of the float layer on h_f; h_f becomes h1_f = h_f + o_f(att_f)
 *   C  gate/up (every expert's w1/w3)  post_attention_layernorm(h1_f), the expert's routing
 *             weights applied as on the quantized rows
 *   D  down   swiglu of the float gate/up on that input (per expert, weighted alike); a
 *             dense layer's float output h_f = h1_f + down_f(g_f) is made here too
 *   E  MoE: h_f = h1_f + moe_f(post_attention_layernorm(h1_f)), routed by the float router
 *             input (the next layer's float input)
 * The float path never sees a quantized weight, so it is the float model itself: the same
 * layer steps (qf_layer_steps.h) as the quantized path, run on the twin, per token, so
 * chunking does not change it either.
 */
#include <string.h>

#include "calibrate_internal.h"
#include "qf_layer_steps.h"

static qf_status qf_cal_twin(qf_cal *c, qf_linear *dst, const qf_linear *src, qf_error *err)
{
    *dst = *src;
    float *w = qf_cal_alloc(c, src->rows * src->cols);
    if (!w) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for the float path's copy", src->name);
    memcpy(w, src->weight, sizeof(float) * (size_t)(src->rows * src->cols));
    dst->weight = w;
    return QF_OK;
}

qf_status qf_cal_float_begin(qf_cal *c, qf_layer *L, qf_error *err)
{
    const int E = L->is_moe ? c->m->cfg.n_experts : 0;
    c->fl = *L;
    c->fl.experts = NULL;
    qf_linear *src[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
    qf_linear *dst[7] = {&c->fl.q, &c->fl.k, &c->fl.v, &c->fl.o, &c->fl.gate, &c->fl.up, &c->fl.down};
    for (int i = 0; i < (L->is_moe ? 4 : 7); i++) /* phi3's fused layers leave k, v, up empty */
        if (src[i]->kind) QF_TRY(qf_cal_twin(c, dst[i], src[i], err));
    if (L->in_a.kind) QF_TRY(qf_cal_twin(c, &c->fl.in_a, &L->in_a, err)); /* Qwen3.5's in_proj_a */
    if (L->has_shared) { /* the shared expert is quantized in place too: the float path keeps its own */
        if (L->sh_gate.kind) QF_TRY(qf_cal_twin(c, &c->fl.sh_gate, &L->sh_gate, err)); /* nemotron_h: ungated */
        QF_TRY(qf_cal_twin(c, &c->fl.sh_up, &L->sh_up, err));
        QF_TRY(qf_cal_twin(c, &c->fl.sh_down, &L->sh_down, err));
    }
    if (L->q_a.kind) QF_TRY(qf_cal_twin(c, &c->fl.q_a, &L->q_a, err)); /* MLA */
    if (L->kv_a.kind) QF_TRY(qf_cal_twin(c, &c->fl.kv_a, &L->kv_a, err));
    if (L->kv_b.kind) QF_TRY(qf_cal_twin(c, &c->fl.kv_b, &L->kv_b, err));
    if (!E) return QF_OK;
    if (!(c->fl.experts = calloc((size_t)(3 * E), sizeof(qf_linear))))
        return qf_fail(err, QF_ERR_NOMEM, "out of memory for the float path's experts");
    for (int e = 0; e < 3 * E; e++)
        if (L->experts[e].kind) QF_TRY(qf_cal_twin(c, &c->fl.experts[e], &L->experts[e], err));
    return QF_OK;
}

void qf_cal_float_end(qf_cal *c)
{
    free(c->fl.experts); /* the weights are the layer's owned copies, freed with them */
    memset(&c->fl, 0, sizeof c->fl);
}

qf_status qf_cal_float_attn_in(qf_cal *c, int64_t r0, int64_t n, float **xf, qf_error *err)
{
    float *h;
    QF_TRY(qf_cal_load(c, QF_CAL_FLOAT, r0, n, &h, err));
    qf_step_attn_norm(c->m, &c->fl, h, n, c->w.xf);
    *xf = c->w.xf;
    return QF_OK;
}

qf_status qf_cal_float_attention(qf_cal *c, int64_t r0, int64_t n, float **att, qf_error *err)
{
    float *h;
    QF_TRY(qf_cal_load(c, QF_CAL_FLOAT, r0, n, &h, err));
    qf_step_attn_norm(c->m, &c->fl, h, n, c->w.xf);
    QF_TRY(qf_step_attn_core(c->m, &c->fl, c->w.xf, n, c->seqlen, c->w.q, c->w.k, c->w.v, c->w.attf, err));
    QF_TRY(qf_step_attn_out(c->m, &c->fl, c->w.attf, n, h, h, c->w.tmp, err)); /* h_f -> h1_f */
    QF_TRY(qf_cal_save(c, QF_CAL_FLOAT, r0, n, h, err));
    *att = c->w.attf;
    return QF_OK;
}

qf_status qf_cal_float_mla_latent(qf_cal *c, int64_t r0, int64_t n, int which, float *xf, qf_error *err)
{
    float *h;
    QF_TRY(qf_cal_load(c, QF_CAL_FLOAT, r0, n, &h, err));
    qf_step_attn_norm(c->m, &c->fl, h, n, c->w.xf);
    return qf_step_mla_latents(c->m, &c->fl, c->w.xf, n, which == 0 ? xf : NULL, which == 1 ? xf : NULL, NULL, err);
}

qf_status qf_cal_float_ffn_in(qf_cal *c, int64_t r0, int64_t n, const float *rw, float **xf, qf_error *err)
{
    float *h1;
    QF_TRY(qf_cal_load(c, QF_CAL_FLOAT, r0, n, &h1, err));
    qf_step_ffn_norm(c->m, &c->fl, h1, n, c->w.xf);
    qf_cal_scale_rows(c->w.xf, n, c->m->cfg.hidden_size, rw);
    *xf = c->w.xf;
    return QF_OK;
}

qf_status qf_cal_float_down_in(qf_cal *c, int expert, int64_t r0, int64_t n, const float *rw, float **gf, qf_error *err)
{
    const qf_layer *F = &c->fl;
    const int ffn = expert == QF_FFN_SHARED ? QF_FFN_SHARED : expert < 0 ? QF_FFN_DENSE : expert;
    float *h1;
    QF_TRY(qf_cal_load(c, QF_CAL_FLOAT, r0, n, &h1, err));
    qf_step_ffn_norm(c->m, F, h1, n, c->w.xf);
    QF_TRY(qf_step_ffn_act(c->m, F, ffn, c->w.xf, n, c->w.gf, c->w.uf, err));
    if (ffn == QF_FFN_DENSE) { /* the dense layer's float output: h1_f is not needed after this pass */
        QF_TRY(qf_step_ffn_out(c->m, F, ffn, c->w.gf, n, h1, h1, c->w.tmp, err));
        QF_TRY(qf_cal_save(c, QF_CAL_FLOAT, r0, n, h1, err));
    }
    qf_cal_scale_rows(c->w.gf, n, expert < 0 ? F->gate.rows : F->experts[3 * expert + 2].cols, rw); /* down's input */
    *gf = c->w.gf;
    return QF_OK;
}

qf_status qf_cal_float_moe_output(qf_cal *c, int64_t r0, int64_t n, qf_error *err)
{
    const qf_layer *F = &c->fl;
    float *h1;
    QF_TRY(qf_cal_load(c, QF_CAL_FLOAT, r0, n, &h1, err));
    qf_step_ffn_norm(c->m, F, h1, n, c->w.xf);
    QF_TRY(qf_step_moe(c->m, F, c->w.xf, n, h1, h1, c->w.tmp, c->w.gf, c->w.uf, err));
    return qf_cal_save(c, QF_CAL_FLOAT, r0, n, h1, err);
}
