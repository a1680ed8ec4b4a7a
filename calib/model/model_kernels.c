/* model_kernels.c - the runner's elementwise and attention kernels (see model_internal.h).
 *
 * The math the layer steps (model_steps.c, model_moe.c) are built from: exp with a shift and
 * a sum, row-wise RMSNorm, SwiGLU, the residual add and causal (sliding-window) attention of
 * one sequence.  Each computes an element with one fixed operation order whatever the row
 * count or thread count.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qf_matmul.h"

/* ---- elementwise helpers ------------------------------------------------------------------ */
double qf_exp_shift_sum(float *x, int64_t n, float shift)
{
    double total = 0.0;
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 sh = _mm256_set1_ps(shift);
    for (int64_t b = 0; b + 8 <= n; b += 256) { /* float lanes, flushed to double every 256 */
        __m256 acc = _mm256_setzero_ps();
        for (i = b; i + 8 <= n && i < b + 256; i += 8) {
            __m256 e = qf_fast_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
            _mm256_storeu_ps(x + i, e);
            acc = _mm256_add_ps(acc, e);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, acc);
        for (int j = 0; j < 8; j++) total += lanes[j];
    }
#endif
    for (; i < n; i++) {
        x[i] = qf_fast_expf(x[i] - shift);
        total += x[i];
    }
    return total;
}

void qf_rmsnorm_rows(const float *x, const float *w, int64_t rows, int64_t d, float eps, float *out)
{
#pragma omp parallel for schedule(static) if (rows * d >= QF_PAR_MIN)
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * d;
        float *o = out + i * d;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
#pragma omp simd
        for (int64_t j = 0; j < d; j++) o[j] = w[j] * (xr[j] * r);
    }
}

void qf_swiglu(float *g, const float *u, int64_t n)
{
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static) if (n >= QF_PAR_MIN / 4)
    for (int64_t b = 0; b < n; b += chunk) {
        int64_t e = b + chunk < n ? b + chunk : n, i = b;
#if defined(__AVX2__) && defined(__FMA__)
        const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
        for (; i + 8 <= e; i += 8) {
            __m256 x = _mm256_loadu_ps(g + i);
            __m256 den = _mm256_add_ps(one, qf_fast_exp8(_mm256_sub_ps(zero, x)));
            _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, den), _mm256_loadu_ps(u + i)));
        }
#endif
        for (; i < e; i++) g[i] = g[i] / (1.0f + qf_fast_expf(-g[i])) * u[i];
    }
}

/* GeGLU with PyTorch's tanh GeLU (gelu(approximate="tanh"), transformers' gelu_pytorch_tanh):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in float32. */
static void qf_geglu_tanh(float *g, const float *u, int64_t n)
{
    const float beta = 0.7978845608028654f, kappa = 0.044715f;
#pragma omp parallel for schedule(static) if (n >= QF_PAR_MIN / 4)
    for (int64_t i = 0; i < n; i++) {
        float x = g[i], inner = beta * (x + kappa * x * x * x);
        g[i] = 0.5f * x * (1.0f + tanhf(inner)) * u[i];
    }
}

void qf_glu(qf_ffn_act act, float *g, const float *u, int64_t n)
{
    if (act == QF_FFN_ACT_GELU_TANH) qf_geglu_tanh(g, u, n);
    else qf_swiglu(g, u, n);
}

void qf_softcap(float *x, int64_t n, float cap)
{
#pragma omp parallel for schedule(static) if (n >= QF_PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i] / cap) * cap;
}

void qf_add_rows(float *out, const float *a, const float *b, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= QF_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ---- attention ---------------------------------------------------------------------------- */
#define QF_ATT_BM 48 /* query rows per work item */

qf_status qf_attention(const qf_model *m, const qf_layer *L, const float *q, const float *k, const float *v, int64_t n,
                       float *out, qf_error *err)
{
    const int64_t window = L->attn_window, chunk = L->attn_chunk;
    const float *sinks = L->sinks;
    const int H = m->cfg.n_heads, KV = m->cfg.n_kv_heads, D = m->cfg.head_dim, group = H / KV;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KV * D;
    const float scale = m->attn_scale;
    /* Per kv head g, packed once and shared by its query heads and every query block:
     * kp_g = K_g (n keys, D) and vp_g = V_gᵀ (D, n keys), as matmul panels. */
    const int64_t ksz = qf_pack_floats(n, D), vsz = qf_pack_floats(D, n);
    float *pk = malloc((size_t)(KV * (ksz + vsz)) * sizeof(float));
    if (!pk) return qf_fail(err, QF_ERR_NOMEM, "attention: out of memory (n = %lld)", (long long)n);
    float *pv = pk + KV * ksz;
    const int64_t nb = (n + QF_ATT_BM - 1) / QF_ATT_BM, items = nb * H;
    int failed = 0;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int g = 0; g < 2 * KV; g++) {
            if (g < KV) qf_pack_nt(k + (int64_t)g * D, ldk, 1, n, D, pk + g * ksz);
            else qf_pack_nt(v + (int64_t)(g - KV) * D, 1, ldk, D, n, pv + (g - KV) * vsz);
        }
        float *s = qf_mm_tls_buffer(2, (size_t)(QF_ATT_BM * n));
        if (!s) {
#pragma omp atomic write
            failed = 1;
        }
        /* items ordered longest first (the last query block sees every key) */
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            if (!s) continue;
            int h = (int)(it % H), g = h / group;
            int64_t b = nb - 1 - it / H, i0 = b * QF_ATT_BM;
            int64_t i1 = i0 + QF_ATT_BM < n ? i0 + QF_ATT_BM : n, mb = i1 - i0, keys = i1;
            /* s (mb, keys) = q_h[i0:i1] · K_g[0:keys]ᵀ */
            qf_gemm_prepacked(mb, keys, D, q + i0 * ldq + (int64_t)h * D, ldq, pk + g * ksz, D, s, keys, 0);
            for (int64_t r = 0; r < mb; r++) {
                float *row = s + r * keys;
                /* causal: keys lo..i; a sliding window of W keeps the last W of them (i - W < j) */
                int64_t valid = i0 + r + 1, lo = window > 0 && valid > window ? valid - window : 0;
                if (chunk > 0) lo = (valid - 1) / chunk * chunk; /* Llama 4: its own chunk's keys */
                float mx = -INFINITY;
                for (int64_t j = lo; j < valid; j++) {
                    row[j] *= scale;
                    mx = row[j] > mx ? row[j] : mx;
                }
                if (sinks) mx = sinks[h] > mx ? sinks[h] : mx; /* the sink joins the max and the sum */
                double sum = qf_exp_shift_sum(row + lo, valid - lo, mx);
                if (sinks) sum += qf_fast_expf(sinks[h] - mx);
                float inv = (float)(1.0 / sum);
#pragma omp simd
                for (int64_t j = lo; j < valid; j++) row[j] *= inv;
                for (int64_t j = 0; j < lo; j++) row[j] = 0.0f;
                for (int64_t j = valid; j < keys; j++) row[j] = 0.0f;
            }
            /* out_h[i0:i1] (mb, D) = p (mb, keys) · V_g[0:keys] */
            qf_gemm_prepacked(mb, D, keys, s, keys, pv + g * vsz, n, out + i0 * ldq + (int64_t)h * D, ldq, 0);
        }
    }
    free(pk);
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "attention: out of memory for work buffers");
    return QF_OK;
}
