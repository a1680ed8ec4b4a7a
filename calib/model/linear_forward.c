/* linear_forward.c - y = x · Wᵀ (+ bias) on the CPU, with activation quantization emulated
 * as the serving kernels do it (see qf_linear.h).  The weight rows come from quant/'s
 * dequantizer (qf_dequant_rows); the rounding rules below are written once, in the format
 * files quant/qf_fmt_fp8.h, qf_fmt_int8.h and qf_fmt_nvfp4.h; this file only runs them per row.
 *
 * Activation rules (x is one token's row of cols values; "e4m3()" saturates, RNE):
 *   fp8 per token   s = max(absmax / 448, 1 / (448 * 512)); x' = e4m3(x · (1 / s)) · s   (vLLM)
 *   int8 per token  s = absmax / 127; x' = clamp(rint(x · (1 / s)), -127, 127) · s     (0 row: 0)
 *   fp8 static      s = input_scale;  x' = e4m3(x · (1 / s)) · s
 *   nvfp4 per 16    G = input_global_scale; sb = e4m3(amax_block · G / 6);
 *                   x' = e2m1(x · (1 / (sb · (1 / G)))) · sb / G                 (sb = 0: 0)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "qf_linear.h"
#include "qf_matmul.h"
#include "qf_fmt.h"

void qf_linear_weight_rows(const qf_linear *lin, int64_t r0, int64_t r1, float *out)
{
    int64_t n = (r1 - r0) * lin->cols;
    if (lin->kind == QF_LINEAR_PACKED) {
        qf_packed_weight pw = lin->packed;
        pw.scheme = &lin->scheme;
        qf_dequant_rows(&pw, r0, r1, out);
        return;
    }
    switch (lin->wdtype) {
    case QF_DTYPE_F32:
        memcpy(out, (const float *)lin->weight + r0 * lin->cols, (size_t)n * sizeof(float));
        break;
    case QF_DTYPE_BF16: {
        const uint16_t *w = (const uint16_t *)lin->weight + r0 * lin->cols;
        uint32_t *o = (uint32_t *)out;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = (uint32_t)w[i] << 16;
        break;
    }
    default: { /* F16 */
        const uint16_t *w = (const uint16_t *)lin->weight + r0 * lin->cols;
        int64_t i = 0;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))));
#endif
        for (; i < n; i++) out[i] = qf_f16_to_f32(w[i]);
        break;
    }
    }
}

static void qf_linear_rows_cb(const void *src, int64_t r0, int64_t r1, float *out)
{
    qf_linear_weight_rows((const qf_linear *)src, r0, r1, out);
}

/* ---- activation quantization ------------------------------------------------------------ */
static float qf_row_absmax(const float *x, int64_t n)
{
    float m = 0.0f;
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        m = a > m ? a : m; /* not fmaxf: its NaN rule blocks vectorization */
    }
    return m;
}

/* The fast round trips of quant/qf_numfmt.h, under the names this layer exports. */
float qf_e4m3_qdq(float v) { return qf_e4m3_round(v); }
float qf_e2m1_qdq(float v) { return qf_e2m1_round(v); }

static void qf_act_row(qf_act_quant act, float act_scale, float *x, int64_t cols)
{
    switch (act) {
    case QF_ACT_NONE: return;
    case QF_ACT_FP8_TOKEN:
    case QF_ACT_FP8_STATIC: {
        float s = act == QF_ACT_FP8_STATIC ? act_scale : qf_fp8_act_token_scale(qf_row_absmax(x, cols));
        float inv = 1.0f / s;
        for (int64_t i = 0; i < cols; i++) x[i] = qf_fp8_act_qdq(x[i], inv, s);
        return;
    }
    case QF_ACT_INT8_TOKEN: {
        float s = qf_int8_scale(qf_row_absmax(x, cols)), inv = s > 0 ? 1.0f / s : 0.0f;
#pragma omp simd
        for (int64_t i = 0; i < cols; i++) x[i] = qf_int8_act_qdq(x[i], inv, s);
        return;
    }
    case QF_ACT_NVFP4: {
        float g = act_scale, inv_g = 1.0f / g;
        for (int64_t b = 0; b + QF_NVFP4_BLOCK <= cols; b += QF_NVFP4_BLOCK) {
            float sb = qf_nvfp4_act_block_scale(qf_row_absmax(x + b, QF_NVFP4_BLOCK), g);
            float inv = sb > 0 ? 1.0f / (sb * inv_g) : 0.0f, deq = sb * inv_g;
            for (int i = 0; i < QF_NVFP4_BLOCK; i++) x[b + i] = qf_nvfp4_act_qdq(x[b + i], inv, deq);
        }
        return;
    }
    }
}

void qf_act_quant_rows(qf_act_quant act, float act_scale, float *x, int64_t m, int64_t cols)
{
    if (act == QF_ACT_NONE) return;
#pragma omp parallel for schedule(static) if (m * cols >= (1 << 18))
    for (int64_t i = 0; i < m; i++) qf_act_row(act, act_scale, x + i * cols, cols);
}

/* ---- forward ------------------------------------------------------------------------------ */
qf_status qf_linear_forward(const qf_linear *lin, const float *x, int64_t m, float *y, const qf_linear_observer *obs,
                            qf_error *err)
{
    if (obs && obs->fn) QF_TRY(obs->fn(obs->user, lin, x, m, err));
    if (lin->backend) return lin->backend->forward(lin->backend->ctx, lin, x, m, y, err);
    const float *xin = x;
    float *xq = NULL;
    if (lin->kind == QF_LINEAR_PACKED && lin->act_enabled && lin->act != QF_ACT_NONE) {
        xq = malloc((size_t)(m * lin->cols) * sizeof(float));
        if (!xq) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for quantized activations", lin->name);
        memcpy(xq, x, (size_t)(m * lin->cols) * sizeof(float));
        qf_act_quant_rows(lin->act, lin->act_scale, xq, m, lin->cols);
        xin = xq;
    }
    qf_status st = qf_matmul_rows(m, lin->rows, lin->cols, xin, lin->cols, qf_linear_rows_cb, lin, y, lin->rows, err);
    free(xq);
    if (st) {
        qf_error_prefix(err, "%s: ", lin->name);
        return st;
    }
    if (lin->bias) {
        const float *b = lin->bias;
        int64_t n = lin->rows;
#pragma omp parallel for schedule(static) if (m * n >= (1 << 20))
        for (int64_t i = 0; i < m; i++) {
            float *yr = y + i * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) yr[j] += b[j];
        }
    }
    return QF_OK;
}
