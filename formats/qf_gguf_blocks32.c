/* qf_gguf_blocks32.c - ggml's 32-value block types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (layouts in
 * qf_gguf.h), and the scale fits the K types share (qf_gguf_blocks.h).
 *
 * Without an importance the quantizers are llama.cpp's quantize_row_*_ref rules (gguf-py's
 * quantize makes the same bytes: tests/interop/check_gguf.py); with one, the scale (and min)
 * of each block is fitted to minimise the importance-weighted squared error and the codes are
 * the nearest ones under the scale as stored (f16). */
#include <math.h>
#include <string.h>

#include "qf_gguf.h"
#include "qf_gguf_blocks.h"
#include "qf_numfmt.h"

void qf_gguf_put_f16(uint8_t *p, float v)
{
    uint16_t h = qf_f32_to_f16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

float qf_gguf_get_f16(const uint8_t *p) { return qf_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

int qf_gguf_nearest(float v) { return (int)lrintf(v); }

static int qf_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- fits ----------------------------------------------------------------------------------- */
static float qf_sym_err(const float *x, const float *w, int n, int nmax, float d, const uint8_t *L)
{
    float e = 0;
    for (int i = 0; i < n; i++) {
        float r = d * (float)(L[i] - nmax) - x[i];
        e += w[i] * r * r;
    }
    return e;
}

float qf_gguf_fit_sym(const float *x, const float *w, int n, int nmax, uint8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        memset(L, nmax, (size_t)n);
        return 0.0f;
    }
    /* the reference grid first (d = max / -nmax), so a fit never does worse than it */
    float best_d = max / (float)-nmax, id = 1.0f / best_d;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)(qf_clampi(qf_gguf_nearest(x[i] * id), -nmax, nmax - 1) + nmax);
    float best = qf_sym_err(x, w, n, nmax, best_d, L);
    uint8_t t[256];
    for (int is = -10; is <= 10; is++) {
        float iscale = -((float)nmax + 0.1f * (float)is) / max, d = 0;
        for (int it = 0; it < 3; it++) { /* round, least-squares scale, round again under it */
            float sxl = 0, sll = 0;
            for (int i = 0; i < n; i++) {
                int l = qf_clampi(qf_gguf_nearest(iscale * x[i]), -nmax, nmax - 1);
                t[i] = (uint8_t)(l + nmax);
                sxl += w[i] * x[i] * (float)l, sll += w[i] * (float)(l * l);
            }
            if (sll <= 0 || sxl == 0) break;
            d = sxl / sll, iscale = 1.0f / d;
            float e = qf_sym_err(x, w, n, nmax, d, t);
            if (e < best) best = e, best_d = d, memcpy(L, t, (size_t)n);
        }
    }
    return best_d;
}

float qf_gguf_fit_affine(const float *x, const float *w, int n, int nmax, float rmin, float rdelta, int nstep,
                         int flags, uint8_t *L, float *min)
{
    const int clamp_min = flags & QF_FIT_CLAMP_MIN, ggml = flags & QF_FIT_GGML_ORDER;
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = qf_fminf(lo, x[i]), hi = qf_fmaxf(hi, x[i]);
        sw += w[i], swx += w[i] * x[i];
    }
    if (clamp_min && lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *min = lo;
        return 0.0f;
    }
    float inv = (float)nmax / (hi - lo), scale = 1.0f / inv, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)qf_clampi(qf_gguf_nearest(inv * (x[i] - lo)), 0, nmax);
        float e = scale * L[i] + lo - x[i];
        best += ggml ? w[i] * (e * e) : w[i] * e * e;
    }
    uint8_t trial[256];
    for (int step = 0; step <= nstep; step++) {
        float ti = (rmin + rdelta * (float)step + (float)nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = qf_clampi(qf_gguf_nearest(ti * (x[i] - lo)), 0, nmax);
            trial[i] = (uint8_t)l;
            sl += w[i] * (float)l, sxl += w[i] * (float)l * x[i];
            sl2 += ggml ? w[i] * (float)l * (float)l : w[i] * (float)(l * l);
        }
        float det = sw * sl2 - sl * sl;
        if (det <= 0) continue;
        float s = (sw * sxl - swx * sl) / det, m = (sl2 * swx - sl * sxl) / det;
        if (clamp_min && m > 0) m = 0, s = sxl / sl2;
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * trial[i] + m - x[i];
            err += ggml ? w[i] * (e * e) : w[i] * e * e;
        }
        if (err < best) {
            memcpy(L, trial, (size_t)n);
            best = err, scale = s, lo = m;
        }
    }
    *min = lo;
    return scale;
}

/* ---- packing -------------------------------------------------------------------------------- */
/* 32 codes of 4 bits: byte j = code j (low) | code j + 16 (high) */
static void qf_pack_nibbles(uint8_t *qs, const uint8_t *L)
{
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((L[j] & 15) | (L[j + 16] & 15) << 4);
}

/* 5-bit codes: low nibbles as above, fifth bits in a little-endian u32 (bit j = code j) */
static void qf_pack_5bit(uint8_t *qh, uint8_t *qs, const uint8_t *L)
{
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((L[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
    qf_pack_nibbles(qs, L);
}

static void qf_codes_under(const float *x, float d, float m, int nmax, uint8_t *L, int offset)
{
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) L[j] = (uint8_t)qf_clampi(qf_gguf_nearest((x[j] - m) * id) + offset, 0, nmax);
}

/* ---- Q8_0 ----------------------------------------------------------------------------------- */
void qf_gguf_q8_0_block(const float *x, const float *imp, uint8_t *b)
{
    (void)imp; /* 8 bits: the reference amax / 127 is kept with an importance too */
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = qf_fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    qf_gguf_put_f16(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* ---- Q4_0 / Q5_0: symmetric, d = m / -2^(bits-1) with m the value of largest magnitude ------- */
static void qf_sym_block(const float *x, const float *imp, uint8_t *b, int nmax, uint8_t *L)
{
    if (imp) {
        float d = qf_gguf_fit_sym(x, imp, 32, nmax, L);
        qf_gguf_put_f16(b, d);
        qf_codes_under(x, qf_gguf_get_f16(b), 0.0f, 2 * nmax - 1, L, nmax);
        return;
    }
    float amax = 0, m = 0; /* m: the signed value of largest magnitude (first one wins) */
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), m = x[j];
    float d = m / (float)-nmax, id = d != 0.0f ? 1.0f / d : 0.0f;
    qf_gguf_put_f16(b, d);
    for (int j = 0; j < 32; j++) {
        int l = (int)(x[j] * id + (float)nmax + 0.5f);
        L[j] = (uint8_t)(l > 2 * nmax - 1 ? 2 * nmax - 1 : l);
    }
}

void qf_gguf_q4_0_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[32];
    qf_sym_block(x, imp, b, 8, L);
    qf_pack_nibbles(b + 2, L);
}

void qf_gguf_q5_0_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[32];
    qf_sym_block(x, imp, b, 16, L);
    qf_pack_5bit(b + 2, b + 6, L);
}

/* ---- Q4_1 / Q5_1: affine, d = (max - min) / (2^bits - 1), m = min --------------------------- */
static void qf_affine_block(const float *x, const float *imp, uint8_t *b, int nmax, uint8_t *L)
{
    float d, m;
    if (imp) {
        d = qf_gguf_fit_affine(x, imp, 32, nmax, -1.0f, 0.1f, 20, 0, L, &m);
        qf_gguf_put_f16(b, d);
        qf_gguf_put_f16(b + 2, m);
        qf_codes_under(x, qf_gguf_get_f16(b), qf_gguf_get_f16(b + 2), nmax, L, 0);
        return;
    }
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) lo = x[j] < lo ? x[j] : lo, hi = x[j] > hi ? x[j] : hi;
    d = (hi - lo) / (float)nmax;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    qf_gguf_put_f16(b, d);
    qf_gguf_put_f16(b + 2, lo);
    for (int j = 0; j < 32; j++) {
        int l = (int)((x[j] - lo) * id + 0.5f);
        L[j] = (uint8_t)(l > nmax ? nmax : l);
    }
}

void qf_gguf_q4_1_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[32];
    qf_affine_block(x, imp, b, 15, L);
    qf_pack_nibbles(b + 4, L);
}

void qf_gguf_q5_1_block(const float *x, const float *imp, uint8_t *b)
{
    uint8_t L[32];
    qf_affine_block(x, imp, b, 31, L);
    qf_pack_5bit(b + 4, b + 8, L);
}

/* ---- decoding, affine view, codes ----------------------------------------------------------- */
static int qf_code5(const uint8_t *qh, const uint8_t *qs, int j)
{
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    int lo = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
    return lo | (int)((h >> j) & 1) << 4;
}

static int qf_code4(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }

void qf_gguf_block32_decode(int type, const uint8_t *b, float *y)
{
    float d = qf_gguf_get_f16(b);
    switch (type) {
    case QF_GGML_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
        break;
    case QF_GGML_Q4_0:
        for (int j = 0; j < 32; j++) y[j] = (float)(qf_code4(b + 2, j) - 8) * d;
        break;
    case QF_GGML_Q5_0:
        for (int j = 0; j < 32; j++) y[j] = d * (float)(qf_code5(b + 2, b + 6, j) - 16);
        break;
    case QF_GGML_Q4_1: {
        float m = qf_gguf_get_f16(b + 2);
        for (int j = 0; j < 32; j++) y[j] = d * (float)qf_code4(b + 4, j) + m;
        break;
    }
    case QF_GGML_Q5_1: {
        float m = qf_gguf_get_f16(b + 2);
        for (int j = 0; j < 32; j++) y[j] = d * (float)qf_code5(b + 4, b + 8, j) + m;
        break;
    }
    }
}

int qf_gguf_block32_affine(int type, const uint8_t *blk, float *a, float *b, int *qmax)
{
    float d = qf_gguf_get_f16(blk), m = 0;
    int off = 0;
    switch (type) {
    case QF_GGML_Q8_0: off = 128, *qmax = 255; break; /* code q - 128 as the stored int8 */
    case QF_GGML_Q4_0: off = 8, *qmax = 15; break;
    case QF_GGML_Q5_0: off = 16, *qmax = 31; break;
    case QF_GGML_Q4_1: m = qf_gguf_get_f16(blk + 2), *qmax = 15; break;
    case QF_GGML_Q5_1: m = qf_gguf_get_f16(blk + 2), *qmax = 31; break;
    default: return 0;
    }
    for (int j = 0; j < 32; j++) a[j] = d, b[j] = m - (float)off * d;
    return 1;
}

void qf_gguf_block32_set_codes(int type, uint8_t *blk, const uint8_t *q)
{
    switch (type) {
    case QF_GGML_Q8_0:
        for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)((int)q[j] - 128);
        break;
    case QF_GGML_Q4_0: qf_pack_nibbles(blk + 2, q); break;
    case QF_GGML_Q5_0: qf_pack_5bit(blk + 2, blk + 6, q); break;
    case QF_GGML_Q4_1: qf_pack_nibbles(blk + 4, q); break;
    case QF_GGML_Q5_1: qf_pack_5bit(blk + 4, blk + 8, q); break;
    }
}
