/* model_moe.c - the MoE block step (qf_moe_route, qf_step_moe in qf_layer_steps.h): sparse
 * mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE, GLM-4.5).
 *
 * For each token: p = softmax(router(xn)) in float32; the top-k experts by p (ties: lower
 * index first, as torch.topk returns them); weights w = p_top / Σ p_top when norm_topk_prob
 * (Mixtral always), else p_top.  Then per expert e, the tokens routed to it are gathered
 * into one batch (ne, C), run through down(silu(gate(x)) * up(x)) and scattered back with
 * their weights, experts in index order.  Qwen2-MoE adds the shared expert scaled by
 * sigmoid(shared_expert_gate(xn)), GLM-4.5 its shared experts unscaled; GLM routes by sigmoid
 * scores with a correction bias over groups of experts (qf_route_sigmoid).  Each expert and the shared expert run through the dense
 * FFN steps (qf_step_ffn_act, qf_step_ffn_out).  The observer sees each expert's gathered
 * batch, so calibration counts tokens per expert.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_gptoss.h"
#include "model_internal.h"
#include "model_llama4.h"
#include "qf_layer_steps.h"

#define QF_MAX_TOPK 64

/* GLM-4.5 / DeepSeek-V3 routing of one token (Glm4MoeTopkRouter): p = sigmoid(logits); the
 * choice uses p + bias: each of n_group groups scores the sum of its two best, the topk_group
 * best groups stay, and the K best experts among them are taken (ties: lower index); their
 * weights are p (without the bias) / (Σ p + 1e-20) when norm_topk_prob, × routed_scaling_factor. */
static void qf_route_sigmoid(const qf_model_config *c, const float *bias, float *p, int *s, float *w)
{
    const int E = c->n_experts, K = c->n_experts_per_tok, G = c->n_group, per = E / G;
    float choice[1024];
    float gscore[64];
    int gkeep[64] = {0};
    for (int e = 0; e < E; e++) {
        p[e] = 1.0f / (1.0f + expf(-p[e]));
        choice[e] = p[e] + bias[e];
    }
    for (int g = 0; g < G; g++) { /* the group's top-2 sum (its only member when per == 1) */
        float a = -INFINITY, b = -INFINITY;
        for (int e = g * per; e < (g + 1) * per; e++) {
            if (choice[e] > a) b = a, a = choice[e];
            else if (choice[e] > b) b = choice[e];
        }
        gscore[g] = per > 1 ? a + b : a;
    }
    for (int j = 0; j < c->topk_group; j++) {
        int best = -1;
        for (int g = 0; g < G; g++)
            if (!gkeep[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
        gkeep[best] = 1;
    }
    float wsum = 0.0f;
    for (int j = 0; j < K; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = !gkeep[e / per];
            for (int i = 0; i < j; i++) taken |= s[i] == e;
            if (!taken && (best < 0 || choice[e] > choice[best])) best = e;
        }
        s[j] = best;
        w[j] = best >= 0 ? p[best] : 0.0f;
        wsum += w[j];
    }
    for (int j = 0; j < K; j++) {
        if (c->norm_topk_prob) w[j] /= wsum + 1e-20f;
        w[j] *= (float)c->routed_scaling_factor;
    }
}

qf_status qf_moe_route(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *logits,
                       const qf_linear_observer *obs, int *sel, float *wsel, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int E = c->n_experts, K = c->n_experts_per_tok;
    if (m->fam->sigmoid_routing && (E > 1024 || c->n_group > 64 || K > E / c->n_group * c->topk_group))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "MoE routing: %d experts in %d groups (top %d of %d groups, %d experts) "
                       "is beyond the runner's grouped routing", E, c->n_group, c->topk_group, c->n_group, K);
    QF_TRY(qf_linear_forward(&L->router, xn, n, logits, obs, err));
    for (int64_t t = 0; t < n; t++) {
        int *s = sel + t * K;
        float *w = wsel + t * K;
        if (m->opt.moe_force_expert >= 0) {
            s[0] = m->opt.moe_force_expert;
            w[0] = 1.0f;
            for (int j = 1; j < K; j++) s[j] = -1, w[j] = 0.0f;
            continue;
        }
        if (m->fam->sigmoid_routing) {
            qf_route_sigmoid(c, L->router_bias, logits + t * E, s, w);
            continue;
        }
        if (m->fam->sigmoid_input_routing) { /* llama4_text */
            qf_route_topk_sigmoid(logits + t * E, E, K, s, w);
            continue;
        }
        if (m->fam->topk_softmax) { /* gpt_oss */
            qf_route_topk_softmax(logits + t * E, E, K, s, w);
            continue;
        }
        float *p = logits + t * E, mx = -INFINITY, sum = 0.0f;
        for (int e = 0; e < E; e++) mx = p[e] > mx ? p[e] : mx;
        for (int e = 0; e < E; e++) sum += (p[e] = expf(p[e] - mx));
        for (int e = 0; e < E; e++) p[e] /= sum;
        float wsum = 0.0f;
        for (int j = 0; j < K; j++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int i = 0; i < j; i++) taken |= s[i] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = e;
            }
            s[j] = best;
            w[j] = p[best];
            wsum += w[j];
        }
        if (c->norm_topk_prob)
            for (int j = 0; j < K; j++) w[j] /= wsum;
    }
    return QF_OK;
}

/* out (n, C) = the block's output for xn (no residual). */
static qf_status qf_moe_forward(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *out, float *g,
                                float *u, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int E = c->n_experts, K = c->n_experts_per_tok;
    const int64_t C = c->hidden_size;
    if (K > QF_MAX_TOPK) return qf_fail(err, QF_ERR_UNSUPPORTED, "num_experts_per_tok %d > %d", K, QF_MAX_TOPK);
    /* route: sel (n, K) expert ids, wsel (n, K) weights */
    float *logits = malloc((size_t)(n * E) * sizeof(float));
    int *sel = malloc((size_t)(n * K) * sizeof(int));
    float *wsel = malloc((size_t)(n * K) * sizeof(float));
    int64_t *count = calloc((size_t)E + 1, sizeof(int64_t));
    int64_t *tok = malloc((size_t)(n * K) * sizeof(int64_t)); /* token of each (expert-sorted) slot */
    float *tokw = malloc((size_t)(n * K) * sizeof(float));
    float *xe = malloc((size_t)(n * C) * sizeof(float)), *ye = malloc((size_t)(n * C) * sizeof(float));
    qf_status st = QF_OK;
    if (!logits || !sel || !wsel || !count || !tok || !tokw || !xe || !ye) {
        st = qf_fail(err, QF_ERR_NOMEM, "layer %d MoE: out of memory for %lld tokens", L->router.layer, (long long)n);
        goto done;
    }
    st = qf_moe_route(m, L, xn, n, logits, &m->observer, sel, wsel, err);
    if (st) goto done;
    /* bucket the (token, weight) slots by expert: count[e + 1] = slots of e, then prefix sums */
    for (int64_t i = 0; i < n * K; i++)
        if (sel[i] >= 0) count[sel[i] + 1]++;
    for (int e = 0; e < E; e++) count[e + 1] += count[e];
    {
        int64_t *fill = calloc((size_t)E, sizeof(int64_t));
        if (!fill) {
            st = qf_fail(err, QF_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n * K; i++) {
            if (sel[i] < 0) continue;
            int64_t slot = count[sel[i]] + fill[sel[i]]++;
            tok[slot] = i / K;
            tokw[slot] = wsel[i];
        }
        free(fill);
    }
    memset(out, 0, (size_t)(n * C) * sizeof(float));
    for (int e = 0; e < E && !st; e++) {
        int64_t s0 = count[e], ne = count[e + 1] - s0;
        if (ne == 0) continue;
        /* Llama 4 weights the expert's input, and adds its output unweighted */
        const int weigh_input = m->fam->sigmoid_input_routing;
        for (int64_t r = 0; r < ne; r++) {
            const float *x = xn + tok[s0 + r] * C, w = tokw[s0 + r];
            float *xr = xe + r * C;
            if (weigh_input)
                for (int64_t j = 0; j < C; j++) xr[j] = x[j] * w;
            else
                memcpy(xr, x, (size_t)C * sizeof(float));
        }
        st = qf_step_ffn_act(m, L, e, xe, ne, g, u, err);
        if (!st) st = qf_step_ffn_out(m, L, e, g, ne, NULL, ye, NULL, err);
        if (st) break;
        for (int64_t r = 0; r < ne; r++) {
            float *o = out + tok[s0 + r] * C, w = weigh_input ? 1.0f : tokw[s0 + r];
            const float *y = ye + r * C;
#pragma omp simd
            for (int64_t j = 0; j < C; j++) o[j] += w * y[j];
        }
    }
    if (!st && L->has_shared) {
        /* ye = shared expert(xn); logits[:, 0] = shared_expert_gate(xn) */
        st = qf_step_ffn_act(m, L, QF_FFN_SHARED, xn, n, g, u, err);
        if (!st) st = qf_step_ffn_out(m, L, QF_FFN_SHARED, g, n, NULL, ye, NULL, err);
        if (!st && L->sh_router.kind) st = qf_linear_forward(&L->sh_router, xn, n, logits, &m->observer, err);
        for (int64_t t = 0; t < n && !st; t++) {
            float g = L->sh_router.kind ? 1.0f / (1.0f + expf(-logits[t])) : 1.0f; /* GLM: no gate */
            for (int64_t j = 0; j < C; j++) out[t * C + j] += g * ye[t * C + j];
        }
    }
done:
    free(logits);
    free(sel);
    free(wsel);
    free(count);
    free(tok);
    free(tokw);
    free(xe);
    free(ye);
    return st;
}

qf_status qf_step_moe(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, const float *h, float *out,
                      float *tmp, float *g, float *u, qf_error *err)
{
    QF_TRY(qf_moe_forward(m, L, xn, n, tmp, g, u, err));
    qf_add_rows(out, h, tmp, n * m->cfg.hidden_size);
    return QF_OK;
}
