/* calibrate_layer.c - one decoder layer over the calibration chunks (see calibrate_internal.h).
 *
 * A Linear group is quantized from statistics over all tokens before its output feeds the
 * next stage, so a layer is several passes over the chunks (whole samples each):
 *   A  xn = input_layernorm(h)                                -> stats -> quantize q, k, v
 *      (MLA: q_a or q_proj, kv_a_proj_with_mqa; then A' the q latent -> q_b_proj and A'' the
 *      kv latent -> kv_b_proj, each from the quantized Linear before it)
 *   B  xn again; q, k, v (quantized), qk-norm, RoPE, attention -> ATTN table, stats
 *                                                             -> quantize o
 *   C  h1 = h + o(att) -> HIDDEN table (over h); xn2 = post_attention_layernorm(h1) -> stats
 *                                    -> quantize gate, up (MoE: every expert's w1/w3, all tokens)
 *   D  dense: xn2 again; g = silu(gate(xn2)) * up(xn2) -> MLP table, stats -> quantize down
 *      MoE: per expert, xn2 again; its swiglu over all tokens -> stats -> quantize its down
 *      MoE with a shared expert: its gate/up on every token's xn2, then its down
 *   E  dense: h = h1 + down(g); MoE: h = h1 + moe(xn2), routed as served (tokens counted)
 * With the float target each pass also computes the float model's rows for the same tokens
 * (calibrate_float.c) and the statistics take them in pairs (qf_stats_add_pair).
 * Norms are recomputed instead of stored: a few flops per value against a table's worth of
 * memory or disk traffic.  Phase 1 of AWQ / SmoothQuant quantizes nothing, so its
 * statistics come from one fused pass that writes nothing back (MoE: A..C, then per expert
 * its down input when AWQ folds it, with h1 rebuilt from the ATTN table); every scale is
 * chosen from the float layer's statistics, then folded in the order q/k/v, o, gate/up,
 * down.
 *
 * Every forward computation is a layer step of the model (qf_layer_steps.h), the same code
 * validate runs: this file only decides which rows go where and which statistics take them.
 *
 * Why the artifact does not depend on the chunk size or on where the tables live:
 * statistics are added chunk after chunk in token order and qf_stats depends only on the
 * sequence of rows (not on how they are split into calls); every forward step computes a
 * token's row from that row alone (norms, products: one FMA chain per element whatever the
 * row count, attention and RoPE per sample, MoE routing per token), and a spilled table gives
 * back exactly the bits written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate_internal.h"
#include "qf_layer_steps.h"

/* ---- chunks and tables ------------------------------------------------------------------------ */
static int qf_cal_n_chunks(const qf_cal *c) { return (c->n_samples + c->chunk - 1) / c->chunk; }

/* Rows [*r0, *r0 + *n) of chunk i. */
static void qf_cal_chunk_rows(const qf_cal *c, int i, int64_t *r0, int64_t *n)
{
    int s0 = i * c->chunk, s1 = s0 + c->chunk < c->n_samples ? s0 + c->chunk : c->n_samples;
    *r0 = (int64_t)s0 * c->seqlen;
    *n = (int64_t)(s1 - s0) * c->seqlen;
}

qf_status qf_cal_load(qf_cal *c, int table, int64_t r0, int64_t n, float **rows, qf_error *err)
{
    return qf_act_store_load(c->store[table], r0, n, c->w.buf[table], rows, err);
}

static float *qf_cal_slot(qf_cal *c, int table, int64_t r0)
{
    return qf_act_store_slot(c->store[table], r0, c->w.buf[table]);
}

qf_status qf_cal_save(qf_cal *c, int table, int64_t r0, int64_t n, const float *rows, qf_error *err)
{
    return qf_act_store_save(c->store[table], r0, n, rows, err);
}

qf_status qf_cal_embed(qf_cal *c, const int32_t *ids, qf_error *err)
{
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *h = qf_cal_slot(c, QF_CAL_HIDDEN, r0);
        QF_TRY(qf_model_embed(c->m, ids + r0, n, h, err));
        QF_TRY(qf_cal_save(c, QF_CAL_HIDDEN, r0, n, h, err));
        if (c->store[QF_CAL_FLOAT]) QF_TRY(qf_cal_save(c, QF_CAL_FLOAT, r0, n, h, err)); /* the float path starts equal */
    }
    return QF_OK;
}

/* The group's statistics of rows x; xf: the float path's rows for the same tokens (the float
 * target; NULL otherwise). */
static qf_status qf_cal_stats_add(qf_stats *st, const float *x, const float *xf, int64_t n, qf_error *err)
{
    return xf ? qf_stats_add_pair(st, x, xf, n, err) : qf_stats_add(st, x, n, err);
}

/* ---- the passes of phase 2 (one group's statistics each; arg: the expert for D) --------------- */
typedef qf_status (*qf_cal_pass)(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err);

/* A: q/k/v's input. */
static qf_status qf_pass_attn_in(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    (void)arg;
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *xf = NULL;
        QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h, err));
        qf_step_attn_norm(c->m, L, h, n, c->w.xn);
        if (c->float_path) QF_TRY(qf_cal_float_attn_in(c, r0, n, &xf, err));
        QF_TRY(qf_cal_stats_add(st, c->w.xn, xf, n, err));
    }
    return QF_OK;
}

/* B: attention with the quantized q/k/v -> ATTN table; o's input. */
static qf_status qf_pass_attention(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    (void)arg;
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *att = qf_cal_slot(c, QF_CAL_ATTN, r0);
        QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h, err));
        qf_step_attn_norm(c->m, L, h, n, c->w.xn);
        QF_TRY(qf_step_attn_core(c->m, L, c->w.xn, n, c->seqlen, c->w.q, c->w.k, c->w.v, att, err));
        float *attf = NULL;
        if (c->float_path) QF_TRY(qf_cal_float_attention(c, r0, n, &attf, err));
        QF_TRY(qf_cal_stats_add(st, att, attf, n, err));
        QF_TRY(qf_cal_save(c, QF_CAL_ATTN, r0, n, att, err));
    }
    return QF_OK;
}

/* MLA, after A: q_b_proj's input (arg 0: q_a_layernorm(q_a(xn)), q_lora_rank wide) or
 * kv_b_proj's (arg 1: kv_a_layernorm of kv_a_proj_with_mqa(xn)'s latent), with q_a / kv_a
 * already quantized. */
static qf_status qf_pass_mla_latent(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    const int64_t w = arg == 0 ? c->m->cfg.q_lora_rank : c->m->cfg.kv_lora_rank;
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *x = malloc(sizeof(float) * (size_t)(n * w)), *xf = c->float_path ? malloc(sizeof(float) * (size_t)(n * w)) : NULL;
        qf_status r = !x || (c->float_path && !xf) ? qf_fail(err, QF_ERR_NOMEM, "out of memory for the MLA latents")
                                                   : qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h, err);
        if (r == QF_OK) {
            qf_step_attn_norm(c->m, L, h, n, c->w.xn);
            r = qf_step_mla_latents(c->m, L, c->w.xn, n, arg == 0 ? x : NULL, arg == 1 ? x : NULL, NULL, err);
        }
        if (r == QF_OK && xf) r = qf_cal_float_mla_latent(c, r0, n, arg, xf, err);
        if (r == QF_OK) r = qf_cal_stats_add(st, x, xf, n, err);
        free(x), free(xf);
        QF_TRY(r);
    }
    return QF_OK;
}

/* h1 = h + o(att) for the chunk's rows r0..r0+n, from the HIDDEN and ATTN tables: over the
 * loaded h when in_place (the caller saves it), else into the tmp workspace. */
static qf_status qf_cal_h1(qf_cal *c, const qf_layer *L, int64_t r0, int64_t n, int in_place, float **h1,
                           qf_error *err)
{
    float *h, *att;
    QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h, err));
    if (L->mixer == QF_MIXER_MLP || L->mixer == QF_MIXER_MOE) { /* a hybrid layer without attention: h1 = h */
        *h1 = in_place ? h : memcpy(c->w.tmp, h, sizeof(float) * (size_t)(n * c->m->cfg.hidden_size));
        return QF_OK;
    }
    QF_TRY(qf_cal_load(c, QF_CAL_ATTN, r0, n, &att, err));
    *h1 = in_place ? h : c->w.tmp;
    return qf_step_attn_out(c->m, L, att, n, h, *h1, c->w.tmp, err);
}

/* C: h1 = h + o(att) over h in the HIDDEN table; gate/up's input. */
static qf_status qf_pass_residual(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    (void)arg;
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h;
        qf_cal_chunk_rows(c, i, &r0, &n);
        QF_TRY(qf_cal_h1(c, L, r0, n, 1, &h, err));
        QF_TRY(qf_cal_save(c, QF_CAL_HIDDEN, r0, n, h, err));
        if (!st) continue; /* h1 only */
        qf_step_ffn_norm(c->m, L, h, n, c->w.xn);
        float *xf = NULL;
        if (c->float_path) QF_TRY(qf_cal_float_ffn_in(c, r0, n, NULL, &xf, err));
        QF_TRY(qf_cal_stats_add(st, c->w.xn, xf, n, err));
    }
    return QF_OK;
}

/* MoE: expert e's row factor for each of n tokens (xn: their post-attention-norm rows):
 * sqrt(r^2 + moe_floor), r the weight the served forward gives e's output for the token (0
 * when not routed to e).  An expert's output error reaches the layer output scaled by r, so
 * its Hessian is sum_t r_t^2 x_t x_t^T; the floor keeps every token in with a small weight,
 * so a rarely routed expert still has a well-conditioned Hessian. */
static qf_status qf_cal_expert_rows(qf_cal *c, const qf_layer *L, const float *xn, int64_t n, int e, float *rw,
                                    qf_error *err)
{
    const int E = c->m->cfg.n_experts, K = c->m->cfg.n_experts_per_tok;
    float *logits = malloc(sizeof(float) * (size_t)(n * E)), *wsel = malloc(sizeof(float) * (size_t)(n * K));
    int *sel = malloc(sizeof(int) * (size_t)(n * K));
    qf_status r = logits && wsel && sel ? qf_moe_route(c->m, L, xn, n, logits, NULL, sel, wsel, err)
                                        : qf_fail(err, QF_ERR_NOMEM, "out of memory for the routing of %lld tokens", (long long)n);
    const float floor2 = c->o->moe_floor;
    for (int64_t t = 0; r == QF_OK && t < n; t++) {
        float w = 0;
        for (int j = 0; j < K; j++)
            if (sel[t * K + j] == e) w = wsel[t * K + j];
        rw[t] = sqrtf(w * w + floor2);
    }
    free(logits), free(wsel), free(sel);
    return r;
}

void qf_cal_scale_rows(float *x, int64_t n, int64_t cols, const float *rw)
{
    if (!rw) return;
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < cols; j++) x[t * cols + j] *= rw[t];
}

/* D: down's input; dense (arg QF_FFN_DENSE) -> MLP table, the shared expert (QF_FFN_SHARED) or
 * expert arg: all tokens through its gate/up. */
static qf_status qf_pass_swiglu(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    const int64_t width = arg < 0 ? L->gate.rows : L->experts[3 * arg + 2].cols; /* down's input (ungated: no gate) */
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h1;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *g = arg == QF_FFN_DENSE ? qf_cal_slot(c, QF_CAL_MLP, r0) : c->w.g;
        QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h1, err));
        qf_step_ffn_norm(c->m, L, h1, n, c->w.xn);
        QF_TRY(qf_step_ffn_act(c->m, L, arg, c->w.xn, n, g, c->w.u, err));
        float *rw = NULL, *gf = NULL;
        qf_status r = QF_OK;
        if (arg >= 0 && c->o->moe_floor >= 0) { /* an expert's down: rows weighted by routing */
            rw = malloc(sizeof(float) * (size_t)n);
            r = rw ? qf_cal_expert_rows(c, L, c->w.xn, n, arg, rw, err) : qf_fail(err, QF_ERR_NOMEM, "out of memory");
            if (r == QF_OK) qf_cal_scale_rows(g, n, width, rw);
        }
        if (r == QF_OK && c->float_path) r = qf_cal_float_down_in(c, arg, r0, n, rw, &gf, err);
        free(rw);
        QF_TRY(r);
        QF_TRY(qf_cal_stats_add(st, g, gf, n, err));
        if (arg == QF_FFN_DENSE) QF_TRY(qf_cal_save(c, QF_CAL_MLP, r0, n, g, err));
    }
    return QF_OK;
}

/* MoE: the shared expert's gate/up input, every token unweighted (h1 of pass C in HIDDEN). */
static qf_status qf_pass_shared_in(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    (void)arg;
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h1, *xf = NULL;
        qf_cal_chunk_rows(c, i, &r0, &n);
        QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h1, err));
        qf_step_ffn_norm(c->m, L, h1, n, c->w.xn);
        if (c->float_path) QF_TRY(qf_cal_float_ffn_in(c, r0, n, NULL, &xf, err));
        QF_TRY(qf_cal_stats_add(st, c->w.xn, xf, n, err));
    }
    return QF_OK;
}

/* MoE, weighted: expert arg's w1/w3 input (the h1 of pass C), rows weighted by routing. */
static qf_status qf_pass_expert_in(qf_cal *c, qf_layer *L, int arg, qf_stats *st, qf_error *err)
{
    const int64_t C = c->m->cfg.hidden_size;
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h1;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *rw = malloc(sizeof(float) * (size_t)n), *xf = NULL;
        if (!rw) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
        qf_status r = qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h1, err);
        if (r == QF_OK) {
            qf_step_ffn_norm(c->m, L, h1, n, c->w.xn);
            r = qf_cal_expert_rows(c, L, c->w.xn, n, arg, rw, err);
        }
        if (r == QF_OK && c->float_path) r = qf_cal_float_ffn_in(c, r0, n, rw, &xf, err);
        if (r == QF_OK) {
            qf_cal_scale_rows(c->w.xn, n, C, rw);
            r = qf_cal_stats_add(st, c->w.xn, xf, n, err);
        }
        free(rw);
        QF_TRY(r);
    }
    return QF_OK;
}

/* One group: statistics over every chunk, then quantize it. */
static qf_status qf_cal_stage(qf_cal *c, qf_layer *L, qf_cal_pass pass, int arg, int64_t cols, qf_linear **lin, int n,
                              float amax, qf_error *err)
{
    qf_stats st;
    if (n == 0) return pass(c, L, arg, NULL, err); /* the pass for its side effects only */
    QF_TRY(qf_stats_init(&st, cols, QF_STATS_XTX | (c->float_path ? QF_STATS_CROSS : 0), err));
    qf_status r = pass(c, L, arg, &st, err);
    if (r == QF_OK) r = qf_stats_finish(&st, err);
    if (r == QF_OK) r = qf_cal_quantize_group(c, lin, n, &st, amax, err);
    qf_stats_free(&st);
    return r;
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
    for (int e = 0; e < rc->n_experts; e++) /* an ungated expert (nemotron_h) is counted at its up */
        if (lin == &rc->L->experts[3 * e] || (!rc->L->experts[3 * e].kind && lin == &rc->L->experts[3 * e + 1]))
            rc->count[e] += m;
    return QF_OK;
}

/* E: h = h1 + mlp(xn2) with the quantized weights: the next layer's input.  count: tokens
 * routed per expert (MoE). */
static qf_status qf_pass_output(qf_cal *c, qf_layer *L, int64_t *count, qf_error *err)
{
    qf_model *m = c->m;
    qf_route_count rc = {L, count, m->cfg.n_experts};
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h1, *g;
        qf_cal_chunk_rows(c, i, &r0, &n);
        QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h1, err));
        if (!L->is_moe) {
            QF_TRY(qf_cal_load(c, QF_CAL_MLP, r0, n, &g, err));
            QF_TRY(qf_step_ffn_out(m, L, QF_FFN_DENSE, g, n, h1, h1, c->w.tmp, err));
        } else {
            qf_step_ffn_norm(m, L, h1, n, c->w.xn);
            qf_linear_observer saved = m->observer;
            m->observer = (qf_linear_observer){qf_count_routed, &rc};
            qf_status r = qf_step_moe(m, L, c->w.xn, n, h1, h1, c->w.tmp, c->w.g, c->w.u, err);
            m->observer = saved;
            QF_TRY(r);
        }
        QF_TRY(qf_cal_save(c, QF_CAL_HIDDEN, r0, n, h1, err));
        if (c->float_path && L->is_moe) QF_TRY(qf_cal_float_moe_output(c, r0, n, err)); /* dense: done in D */
    }
    return QF_OK;
}

/* The q/k/v group: q, k, v, or phi3's fused qkv_proj alone (held in q; k and v empty), a
 * DeltaNet's input projections (Qwen3.5: in_proj_a in in_a too), or MLA's Linears on xn:
 * q_a_proj (q_proj without a q LoRA) and kv_a_proj_with_mqa. */
static int qf_cal_qkv(qf_layer *L, qf_linear *qkv[5])
{
    int n = 0;
    if (L->kv_a.kind) {
        qkv[n++] = L->q_a.kind ? &L->q_a : &L->q;
        qkv[n++] = &L->kv_a;
        if (L->idx_wk.kind) qkv[n++] = &L->idx_wk, qkv[n++] = &L->idx_wproj; /* deepseek_v32: also on xn */
        return n;
    }
    qf_linear *all[4] = {&L->q, &L->k, &L->v, &L->in_a};
    for (int i = 0; i < 4; i++)
        if (all[i]->kind) qkv[n++] = all[i];
    return n;
}

/* The gate/up group: dense gate and up (phi3: the fused gate_up_proj alone, held in gate), or
 * every expert's w1 and w3 (*gu is malloc'd). */
static int qf_cal_gate_up(const qf_cal *c, qf_layer *L, qf_linear ***gu)
{
    const int E = L->is_moe ? c->m->cfg.n_experts : 0;
    int n = 0;
    *gu = calloc((size_t)(2 * E + 2), sizeof **gu);
    if (!L->is_moe) {
        if (L->gate.kind) (*gu)[n++] = &L->gate; /* nemotron_h's MLP: up alone */
        if (L->up.kind) (*gu)[n++] = &L->up;
    }
    for (int e = 0; e < E; e++) {
        if (L->experts[3 * e].kind) (*gu)[n++] = &L->experts[3 * e]; /* nemotron_h's experts: up alone */
        (*gu)[n++] = &L->experts[3 * e + 1];
    }
    return n;
}

/* Phase 2: quantize group after group; the layer's output replaces h in the HIDDEN table. */
static qf_status qf_cal_layer_passes(qf_cal *c, qf_layer *L, qf_error *err)
{
    const int64_t C = c->m->cfg.hidden_size;
    const int E = L->is_moe ? c->m->cfg.n_experts : 0;
    qf_linear *qkv[5], *o1[1] = {&L->o}, **gu;
    int nqkv = qf_cal_qkv(L, qkv), ngu = qf_cal_gate_up(c, L, &gu);
    qf_status r = QF_OK;
    /* the attention block, or a Mamba mixer: in_proj (held in q), out_proj (held in o) */
    if (L->mixer != QF_MIXER_MLP && L->mixer != QF_MIXER_MOE) {
        r = qf_cal_stage(c, L, qf_pass_attn_in, 0, C, qkv, nqkv, -1, err);
        qf_linear *qb[2] = {&L->q, &L->idx_wq_b}, *kvb[1] = {&L->kv_b}; /* MLA: the Linears on the latents */
        if (r == QF_OK && L->q_a.kind) /* q_b_proj (and deepseek_v32's indexer wq_b: the same q latent) */
            r = qf_cal_stage(c, L, qf_pass_mla_latent, 0, L->q.cols, qb, L->idx_wq_b.kind ? 2 : 1, -1, err);
        if (r == QF_OK && L->kv_b.kind) r = qf_cal_stage(c, L, qf_pass_mla_latent, 1, L->kv_b.cols, kvb, 1, -1, err);
        if (r == QF_OK) r = qf_cal_stage(c, L, qf_pass_attention, 0, L->o.cols, o1, 1, -1, err);
    }
    if (L->mixer == QF_MIXER_MAMBA || L->mixer == QF_MIXER_ATTN) { /* a hybrid layer that is its sequence mixer */
        if (r == QF_OK) r = qf_cal_stage(c, L, qf_pass_residual, 0, C, gu, 0, -1, err); /* h1: the layer's output */
        free(gu);
        return r;
    }
    if (r == QF_OK && L->is_moe && c->o->moe_floor >= 0) { /* per expert, rows weighted by routing */
        r = qf_cal_stage(c, L, qf_pass_residual, 0, C, gu, 0, -1, err); /* h1 only */
        for (int e = 0, at = 0; r == QF_OK && e < E; e++) { /* nvfp4: w1/w3 of one expert share a global scale */
            const int ne = L->experts[3 * e].kind ? 2 : 1; /* nemotron_h: up alone */
            r = qf_cal_stage(c, L, qf_pass_expert_in, e, C, gu + at, ne, -1, err);
            at += ne;
        }
    } else if (r == QF_OK)
        r = qf_cal_stage(c, L, qf_pass_residual, 0, C, gu, ngu, -1, err);
    free(gu);
    if (!L->is_moe) {
        qf_linear *d1[1] = {&L->down};
        if (r == QF_OK) r = qf_cal_stage(c, L, qf_pass_swiglu, -1, L->down.cols, d1, 1, -1, err);
        if (r == QF_OK) r = qf_pass_output(c, L, NULL, err);
        return r;
    }
    for (int e = 0; r == QF_OK && e < E; e++) {
        qf_linear *d1[1] = {&L->experts[3 * e + 2]};
        r = qf_cal_stage(c, L, qf_pass_swiglu, e, d1[0]->cols, d1, 1, -1, err);
    }
    if (L->has_shared) { /* the shared expert sees every token: gate/up, then down */
        qf_linear *sgu[2] = {&L->sh_gate, &L->sh_up}, *sd[1] = {&L->sh_down};
        const int g0 = L->sh_gate.kind ? 0 : 1; /* nemotron_h's shared experts: up alone */
        if (r == QF_OK) r = qf_cal_stage(c, L, qf_pass_shared_in, 0, C, sgu + g0, 2 - g0, -1, err);
        if (r == QF_OK) r = qf_cal_stage(c, L, qf_pass_swiglu, QF_FFN_SHARED, L->sh_down.cols, sd, 1, -1, err);
    }
    int64_t *count = calloc((size_t)E, sizeof(int64_t));
    if (r == QF_OK) r = qf_pass_output(c, L, count, err);
    if (r == QF_OK) {
        json_t *tokens = json_array();
        for (int e = 0; e < E; e++) json_array_append_new(tokens, json_integer(count[e]));
        json_object_set_new(c->lrep, "routed_tokens_per_expert", tokens);
    }
    free(count);
    return r;
}

static qf_status qf_cal_layer_quantize(qf_cal *c, qf_layer *L, qf_error *err)
{
    if (!c->float_path) return qf_cal_layer_passes(c, L, err);
    qf_status r = qf_cal_float_begin(c, L, err);
    if (r == QF_OK) r = qf_cal_layer_passes(c, L, err);
    qf_cal_float_end(c);
    return r;
}

/* ---- phase 1 (AWQ / SmoothQuant): float statistics, scales chosen and folded ------------------- */
/* One pass: st[0] q/k/v's input, st[1] o's, st[2] gate/up's, and for a dense layer st[3]
 * down's.  h is left as it is; keep_att: att goes to the ATTN table (MoE expert passes). */
static qf_status qf_pass_collect(qf_cal *c, qf_layer *L, int keep_att, qf_stats st[4], qf_error *err)
{
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h;
        qf_cal_chunk_rows(c, i, &r0, &n);
        float *att = qf_cal_slot(c, QF_CAL_ATTN, r0);
        QF_TRY(qf_cal_load(c, QF_CAL_HIDDEN, r0, n, &h, err));
        qf_step_attn_norm(c->m, L, h, n, c->w.xn);
        QF_TRY(qf_stats_add(&st[0], c->w.xn, n, err));
        QF_TRY(qf_step_attn_core(c->m, L, c->w.xn, n, c->seqlen, c->w.q, c->w.k, c->w.v, att, err));
        QF_TRY(qf_stats_add(&st[1], att, n, err));
        if (keep_att) QF_TRY(qf_cal_save(c, QF_CAL_ATTN, r0, n, att, err));
        QF_TRY(qf_step_attn_out(c->m, L, att, n, h, c->w.tmp, c->w.tmp, err)); /* h1, not written back */
        qf_step_ffn_norm(c->m, L, c->w.tmp, n, c->w.xn);
        QF_TRY(qf_stats_add(&st[2], c->w.xn, n, err));
        if (L->is_moe) continue;
        QF_TRY(qf_step_ffn_act(c->m, L, QF_FFN_DENSE, c->w.xn, n, c->w.g, c->w.u, err));
        QF_TRY(qf_stats_add(&st[3], c->w.g, n, err));
    }
    return QF_OK;
}

/* MoE, AWQ: expert e's down input over all tokens, from the float layer (h1 rebuilt from h
 * and the ATTN table). */
static qf_status qf_pass_collect_expert(qf_cal *c, qf_layer *L, int e, qf_stats *st, qf_error *err)
{
    for (int i = 0; i < qf_cal_n_chunks(c); i++) {
        int64_t r0, n;
        float *h1;
        qf_cal_chunk_rows(c, i, &r0, &n);
        QF_TRY(qf_cal_h1(c, L, r0, n, 0, &h1, err));
        qf_step_ffn_norm(c->m, L, h1, n, c->w.xn);
        QF_TRY(qf_step_ffn_act(c->m, L, e, c->w.xn, n, c->w.g, c->w.u, err));
        QF_TRY(qf_stats_add(st, c->w.g, n, err));
    }
    return QF_OK;
}

/* Scales of the MoE experts' down projections: chosen before any fold, applied after the
 * experts' w1/w3 fold (the order every layer folds in). */
typedef struct {
    float *s;      /* (E, cols) */
    json_t **rep;  /* (E) */
} qf_expert_scales;

static qf_status qf_cal_expert_scales(qf_cal *c, qf_layer *L, qf_expert_scales *xs, qf_error *err)
{
    const int E = c->m->cfg.n_experts;
    const int64_t cols = L->experts[2].cols;
    xs->s = malloc(sizeof(float) * (size_t)(E * cols));
    xs->rep = calloc((size_t)E, sizeof *xs->rep);
    if (!xs->s || !xs->rep) return qf_fail(err, QF_ERR_NOMEM, "out of memory for the experts' scales");
    for (int e = 0; e < E; e++) {
        qf_stats st;
        qf_linear *d1[1] = {&L->experts[3 * e + 2]};
        char what[32];
        snprintf(what, sizeof what, "expert%d_down", e);
        QF_TRY(qf_stats_init(&st, cols, QF_STATS_XTX, err));
        qf_status r = qf_pass_collect_expert(c, L, e, &st, err);
        if (r == QF_OK) r = qf_stats_finish(&st, err);
        if (r == QF_OK) r = qf_cal_scales(c, what, d1, 1, &st, xs->s + e * cols, &xs->rep[e], err);
        qf_stats_free(&st);
        QF_TRY(r);
    }
    return QF_OK;
}

static qf_status qf_cal_layer_collect(qf_cal *c, qf_layer *L, qf_error *err)
{
    const int64_t C = c->m->cfg.hidden_size;
    const int awq = c->o->method == QF_CALIB_AWQ || c->o->method == QF_CALIB_AWQ_GPTQ;
    const int E = L->is_moe ? c->m->cfg.n_experts : 0;
    qf_stats st[4] = {{0}};
    int64_t cols[4] = {C, L->o.cols, C, L->is_moe ? 0 : L->down.cols};
    qf_status r = QF_OK;
    for (int i = 0; i < 4 && r == QF_OK; i++)
        if (cols[i]) r = qf_stats_init(&st[i], cols[i], QF_STATS_XTX, err);
    if (r == QF_OK) r = qf_pass_collect(c, L, L->is_moe && awq, st, err);
    for (int i = 0; i < 4 && r == QF_OK; i++)
        if (cols[i]) r = qf_stats_finish(&st[i], err);
    qf_expert_scales xs = {0};
    if (r == QF_OK && L->is_moe && awq) r = qf_cal_expert_scales(c, L, &xs, err);
    /* choose each group's scales and fold them, in the order q/k/v, o, gate/up, down */
    qf_linear *qkv[5], *o1[1] = {&L->o}, *d1[1] = {&L->down}, **gu;
    int nqkv = qf_cal_qkv(L, qkv), ngu = qf_cal_gate_up(c, L, &gu);
    struct {
        const char *what;
        qf_linear **lin;
        int n, on;
        qf_linear *extra;
        float *norm;
        qf_linear *prev;
    } fold[4] = {
        {"qkv", qkv, nqkv, 1, NULL, L->attn_norm, NULL},
        {"o", o1, 1, awq && L->v.rows == L->o.cols, NULL, NULL, &L->v},
        {L->is_moe ? "experts_w1_w3" : "gate_up", gu, ngu, 1, L->is_moe ? &L->router : NULL, L->ffn_norm, NULL},
        {"down", d1, 1, awq && !L->is_moe, NULL, NULL, &L->up},
    };
    for (int i = 0; i < 4 && r == QF_OK; i++) {
        if (!fold[i].on) continue;
        float *s = malloc(sizeof(float) * (size_t)fold[i].lin[0]->cols);
        json_t *rep = NULL;
        r = s ? qf_cal_scales(c, fold[i].what, fold[i].lin, fold[i].n, &st[i], s, &rep, err)
              : qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for its scales", fold[i].what);
        if (r == QF_OK)
            qf_cal_fold_apply(c, fold[i].what, fold[i].lin, fold[i].n, fold[i].extra, s, rep, fold[i].norm, fold[i].prev);
        free(s);
    }
    for (int e = 0; r == QF_OK && xs.s && e < E; e++) {
        qf_linear *de[1] = {&L->experts[3 * e + 2]};
        char what[32];
        snprintf(what, sizeof what, "expert%d_down", e);
        qf_cal_fold_apply(c, what, de, 1, NULL, xs.s + e * de[0]->cols, xs.rep[e], NULL, &L->experts[3 * e + 1]);
        xs.rep[e] = NULL;
    }
    for (int e = 0; xs.rep && e < E; e++) json_decref(xs.rep[e]);
    free(xs.s);
    free(xs.rep);
    free(gu);
    for (int i = 0; i < 4; i++) qf_stats_free(&st[i]);
    return r;
}

qf_status qf_cal_layer(qf_cal *c, int l, qf_error *err)
{
    qf_layer *L = &c->m->layers[l];
    return c->collect ? qf_cal_layer_collect(c, L, err) : qf_cal_layer_quantize(c, L, err);
}
