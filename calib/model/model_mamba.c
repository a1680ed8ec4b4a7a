/* model_mamba.c - the Mamba-2 mixer of nemotron_h (see model_internal.h, model_hybrid.c).
 *
 * transformers 5.23's torch path (NemotronHMamba2Mixer.forward without a cache, causal_conv1d_fn,
 * mamba2_chunk_scan, NemotronHRMSNormGated), per sample of T tokens, I = H x P (H heads of P),
 * G groups, N state, CD = I + 2 G N:
 *   [z (I) | xBC (CD) | dt (H)] = in_proj(xn)
 *   xBC = silu(conv1d(xBC)): causal depthwise, kernel K, zero left padding, + bias
 *   x, B, C = xBC split (I, G N, G N); head h uses group h / (H / G)
 *   dt = max(softplus(dt + dt_bias), time_step_min)          (softplus: x above 20 passes)
 *   state_h = exp(dt_h A_h) state_h + (x_h dt_h) B_g^T;  y_h = state_h C_g + D_h x_h
 *   out = RMSNorm_groups(y * silu(z)) * norm.weight          (G groups of I / G, eps)
 * The reference scans in chunks of chunk_size (closed-form segment sums inside a chunk, states
 * passed between chunks); this is the same recurrence token by token, equal up to float32
 * rounding (tests/test_model_families.c holds it to transformers over 4 chunks per window).
 * Rows of different samples never mix (a fresh state per sample), so calibration's chunking
 * does not change a token's output.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static inline float qf_silu1(float x) { return x / (1.0f + expf(-x)); }

/* torch.nn.functional.softplus, beta 1, threshold 20 */
static inline float qf_softplus1(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

qf_status qf_mamba_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen, float *out,
                        qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int64_t H = c->mamba_n_heads, P = c->mamba_head_dim, G = c->mamba_n_groups, N = c->ssm_state_size,
                  K = c->conv_kernel, I = H * P, CD = I + 2 * G * N, W = I + CD + H, hpg = H / G, gs = I / G;
    const float tmin = (float)c->time_step_min, eps = c->rms_norm_eps;
    float *zx = malloc(sizeof(float) * (size_t)(n * W)), *xbc = malloc(sizeof(float) * (size_t)(n * CD)),
          *dt = malloc(sizeof(float) * (size_t)(n * H)), *states = malloc(sizeof(float) * (size_t)(H * P * N));
    qf_status st = zx && xbc && dt && states ? qf_linear_forward(&L->q, xn, n, zx, &m->observer, err)
                                   : qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->q.name,
                                             (long long)n);
    for (int64_t off = 0; !st && off < n; off += seqlen) {
        /* causal depthwise convolution + silu, and dt, per token of the sample */
#pragma omp parallel for schedule(static) if (seqlen * CD >= QF_PAR_MIN)
        for (int64_t t = 0; t < seqlen; t++) {
            for (int64_t ch = 0; ch < CD; ch++) {
                float acc = L->conv_b ? L->conv_b[ch] : 0.0f;
                for (int64_t k = 0; k < K; k++) {
                    int64_t src = t - (K - 1) + k;
                    if (src >= 0) acc += L->conv_w[ch * K + k] * zx[(off + src) * W + I + ch];
                }
                xbc[(off + t) * CD + ch] = qf_silu1(acc);
            }
            for (int64_t h = 0; h < H; h++) {
                float d = qf_softplus1(zx[(off + t) * W + I + CD + h] + L->dt_bias[h]);
                dt[(off + t) * H + h] = d < tmin ? tmin : d;
            }
        }
        /* the scan: one state (P, N) per head, from zero, token after token */
        memset(states, 0, sizeof(float) * (size_t)(H * P * N));
#pragma omp parallel for schedule(static)
        for (int64_t h = 0; h < H; h++) {
            float *state = states + h * P * N;
            const int64_t g = h / hpg;
            for (int64_t t = off; t < off + seqlen; t++) {
                const float d = dt[t * H + h], da = expf(d * L->ssm_a[h]);
                const float *x = xbc + t * CD + h * P, *B = xbc + t * CD + I + g * N,
                            *C = xbc + t * CD + I + G * N + g * N;
                float *y = out + t * I + h * P;
                for (int64_t p = 0; p < P; p++) {
                    const float xd = x[p] * d;
                    float *s = state + p * N, acc = 0.0f;
                    for (int64_t j = 0; j < N; j++) {
                        s[j] = s[j] * da + xd * B[j];
                        acc += C[j] * s[j];
                    }
                    y[p] = acc + L->ssm_d[h] * x[p];
                }
            }
        }
    }
    /* gated RMSNorm: norm(y * silu(z)) over groups of I / G, times the weight */
    for (int64_t t = 0; !st && t < n; t++) {
        float *y = out + t * I;
        const float *z = zx + t * W;
        for (int64_t i = 0; i < I; i++) y[i] *= qf_silu1(z[i]);
        for (int64_t g0 = 0; g0 < I; g0 += gs) {
            double ss = 0; /* float64 sum: the mean's rounding is below float32's either way */
            for (int64_t i = g0; i < g0 + gs; i++) ss += (double)y[i] * y[i];
            const float r = 1.0f / sqrtf((float)(ss / (double)gs) + eps);
            for (int64_t i = g0; i < g0 + gs; i++) y[i] = L->gnorm[i] * (y[i] * r);
        }
    }
    free(zx), free(xbc), free(dt), free(states);
    return st;
}
