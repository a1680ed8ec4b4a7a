/* qf_gguf_kquants.c - ggml's 256-value "K" block types Q4_K, Q5_K, Q6_K (layouts in
 * qf_gguf.h).
 *
 * Without an importance the quantizers follow llama.cpp's quantize_row_q{4,5,6}_K_ref: each
 * 32-value (Q6_K: 16-value) sub-block gets its own scale (and min) from a weighted fit, those
 * are stored as 6-bit (Q6_K: 8-bit) multiples of the block's f16 scale, and the codes are
 * rounded again under the scales as stored.  With an importance per value the sub-block fits
 * weight each value's squared error by it instead (llama.cpp's reference weights are
 * sqrt(mean x^2) + |x| for Q4_K / Q5_K and x^2 for Q6_K). */
#include <math.h>
#include <string.h>

#include "qf_gguf.h"
#include "qf_gguf_blocks.h"
#include "qf_numfmt.h"

static int qf_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Q4_K / Q5_K: the 6-bit scale and min of sub-block j in scales[12] */
static void qf_k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63, *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Fit the eight 32-value sub-blocks of a Q4_K / Q5_K block (nmax 15 / 31), write d, dmin and
 * the packed 6-bit scales / mins to b[0..15] and the codes under them to L[256]. */
static void qf_k_header(const float *x, const float *imp, int nmax, uint8_t *b, uint8_t *L)
{
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float m;
        if (imp) {
            scales[j] = qf_gguf_fit_affine(xs, imp + 32 * j, 32, nmax, -1.0f, 0.05f, 40, QF_FIT_CLAMP_MIN, L + 32 * j, &m);
        } else {
            float s2 = 0;
            for (int i = 0; i < 32; i++) s2 += xs[i] * xs[i];
            float av = sqrtf(s2 / 32.0f);
            for (int i = 0; i < 32; i++) w[i] = av + fabsf(xs[i]);
            scales[j] = nmax == 15 ? qf_gguf_fit_affine(xs, w, 32, 15, -1.0f, 0.1f, 20, QF_FIT_CLAMP_MIN, L + 32 * j, &m)
                                   : qf_gguf_fit_affine(xs, w, 32, 31, -0.5f, 0.1f, 15, QF_FIT_CLAMP_MIN | QF_FIT_GGML_ORDER,
                                                        L + 32 * j, &m);
        }
        mins[j] = -m;
        max_scale = qf_fmaxf(max_scale, scales[j]);
        max_min = qf_fmaxf(max_min, mins[j]);
    }
    float is = max_scale > 0 ? 63.0f / max_scale : 0.0f, im = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t *sc = b + 4;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = qf_gguf_nearest(is * scales[j]), lm = qf_gguf_nearest(im * mins[j]);
        ls = ls > 63 ? 63 : ls, lm = lm > 63 ? 63 : lm;
        if (j < 4) {
            sc[j] = (uint8_t)ls, sc[j + 4] = (uint8_t)lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    qf_gguf_put_f16(b, max_scale / 63.0f);
    qf_gguf_put_f16(b + 2, max_min / 63.0f);
    float d = qf_gguf_get_f16(b), dmin = qf_gguf_get_f16(b + 2);
    for (int j = 0; j < 8; j++) { /* codes again, against the scales as stored */
        int s, m;
        qf_k_scale_min(sc, j, &s, &m);
        float ds = d * (float)s, dm = dmin * (float)m;
        if (ds == 0.0f) continue;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)qf_clampi(qf_gguf_nearest((x[32 * j + i] + dm) / ds), 0, nmax);
    }
}

/* Q4_K codes: 64-value chunk c, low nibbles = sub-block 2c, high = 2c + 1 */
static void qf_q4_k_codes(uint8_t *b, const uint8_t *L)
{
    uint8_t *q = b + 16;
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) q[32 * c + i] = (uint8_t)((L[64 * c + i] & 15) | (L[64 * c + 32 + i] & 15) << 4);
}

/* Q5_K codes: low nibbles as Q4_K's in qs (b + 48), fifth bits in qh[32] (b + 16): chunk c
 * puts sub-block 2c's bit in bit 2c of qh[i], 2c + 1's in bit 2c + 1 */
static void qf_q5_k_codes(uint8_t *b, const uint8_t *L)
{
    uint8_t *qh = b + 16, *qs = b + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) {
            int l1 = L[64 * c + i], l2 = L[64 * c + 32 + i];
            qs[32 * c + i] = (uint8_t)((l1 & 15) | (l2 & 15) << 4);
            qh[i] |= (uint8_t)(((l1 >> 4) & 1) << (2 * c) | ((l2 >> 4) & 1) << (2 * c + 1));
        }
}

void qf_gguf_q4_k_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[256];
    qf_k_header(x, imp, 15, b, L);
    qf_q4_k_codes(b, L);
}

void qf_gguf_q5_k_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[256];
    qf_k_header(x, imp, 31, b, L);
    qf_q5_k_codes(b, L);
}

/* ---- Q6_K ----------------------------------------------------------------------------------- */
/* llama.cpp's reference sub-block scale (make_qx_quants, rmse_type 1): codes under
 * -nmax / max, the x^2-weighted least-squares scale, then 18 other grids near it, keeping
 * the one whose least-squares fit explains most; L in [0, 2 nmax - 1]. */
static float qf_q6_ref_scale(const float *x, int n, int nmax, uint8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = qf_clampi(qf_gguf_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (uint8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = qf_clampi(qf_gguf_nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (uint8_t)(nmax + qf_clampi(qf_gguf_nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2, best = scale * sumlx;
        }
    }
    return scale;
}

static void qf_q6_k_codes(uint8_t *b, const uint8_t *L)
{
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const uint8_t *l = L + 128 * h;
        for (int i = 0; i < 32; i++) {
            ql[i] = (uint8_t)((l[i] & 15) | (l[i + 64] & 15) << 4);
            ql[i + 32] = (uint8_t)((l[i + 32] & 15) | (l[i + 96] & 15) << 4);
            qh[i] = (uint8_t)((l[i] >> 4) | (l[i + 32] >> 4) << 2 | (l[i + 64] >> 4) << 4 | (l[i + 96] >> 4) << 6);
        }
    }
}

void qf_gguf_q6_k_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[256];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = imp ? qf_gguf_fit_sym(x + 16 * j, imp + 16 * j, 16, 32, L + 16 * j)
                        : qf_q6_ref_scale(x + 16 * j, 16, 32, L + 16 * j);
        if (fabsf(scales[j]) > max_abs) max_abs = fabsf(scales[j]), max_scale = scales[j];
    }
    if (max_abs < 1e-15f) {
        memset(b, 0, 210);
        return;
    }
    float iscale = -128.0f / max_scale;
    qf_gguf_put_f16(b + 208, 1.0f / iscale);
    int8_t *sc = (int8_t *)(b + 192);
    for (int j = 0; j < 16; j++) {
        int s = qf_gguf_nearest(iscale * scales[j]);
        sc[j] = (int8_t)(s > 127 ? 127 : s);
    }
    float d = qf_gguf_get_f16(b + 208);
    for (int j = 0; j < 16; j++) {
        float ds = d * (float)sc[j];
        if (ds == 0.0f) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)(qf_clampi(qf_gguf_nearest(x[16 * j + i] / ds), -32, 31) + 32);
    }
    qf_q6_k_codes(b, L);
}

/* ---- decoding, affine view, codes ----------------------------------------------------------- */
void qf_gguf_kquant_decode(int type, const uint8_t *b, float *y)
{
    if (type == QF_GGML_Q6_K) {
        /* each 128-value half: four 32-value runs taking nibble / bit-pair k of ql / qh */
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = qf_gguf_get_f16(b + 208);
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        return;
    }
    float d = qf_gguf_get_f16(b), dmin = qf_gguf_get_f16(b + 2);
    const uint8_t *qs = b + (type == QF_GGML_Q5_K ? 48 : 16), *qh = b + 16;
    for (int c = 0; c < 4; c++) {
        int s0, m0, s1, m1;
        qf_k_scale_min(b + 4, 2 * c, &s0, &m0);
        qf_k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
        float d0 = d * (float)s0, m0f = dmin * (float)m0, d1 = d * (float)s1, m1f = dmin * (float)m1;
        for (int i = 0; i < 32; i++) {
            int l0 = qs[32 * c + i] & 15, l1 = qs[32 * c + i] >> 4;
            if (type == QF_GGML_Q5_K) l0 |= ((qh[i] >> (2 * c)) & 1) << 4, l1 |= ((qh[i] >> (2 * c + 1)) & 1) << 4;
            y[64 * c + i] = d0 * (float)l0 - m0f;
            y[64 * c + 32 + i] = d1 * (float)l1 - m1f;
        }
    }
}

int qf_gguf_kquant_affine(int type, const uint8_t *blk, float *a, float *b, int *qmax)
{
    if (type == QF_GGML_Q6_K) {
        const int8_t *sc = (const int8_t *)(blk + 192);
        float d = qf_gguf_get_f16(blk + 208);
        for (int j = 0; j < 256; j++) a[j] = d * (float)sc[j / 16], b[j] = -32.0f * a[j];
        *qmax = 63;
        return 1;
    }
    if (type != QF_GGML_Q4_K && type != QF_GGML_Q5_K) return 0;
    float d = qf_gguf_get_f16(blk), dmin = qf_gguf_get_f16(blk + 2);
    for (int j = 0; j < 8; j++) {
        int s, m;
        qf_k_scale_min(blk + 4, j, &s, &m);
        for (int i = 0; i < 32; i++) a[32 * j + i] = d * (float)s, b[32 * j + i] = -(dmin * (float)m);
    }
    *qmax = type == QF_GGML_Q4_K ? 15 : 31;
    return 1;
}

void qf_gguf_kquant_set_codes(int type, uint8_t *blk, const uint8_t *q)
{
    if (type == QF_GGML_Q4_K) qf_q4_k_codes(blk, q);
    else if (type == QF_GGML_Q5_K) qf_q5_k_codes(blk, q);
    else if (type == QF_GGML_Q6_K) qf_q6_k_codes(blk, q);
}
