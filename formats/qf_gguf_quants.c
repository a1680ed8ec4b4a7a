/* qf_gguf_quants.c - ggml block types: names, sizes, reference quantizers and decoders
 * (see qf_gguf.h for the layouts). */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "qf_gguf.h"
#include "qf_numfmt.h"

static const struct {
    int type;
    const char *name;
    int block, bytes, support; /* support: 1 write + decode, 2 decode only, 0 size only */
} qf_ggml_types[] = {
    {QF_GGML_F32, "F32", 1, 4, 1},      {QF_GGML_F16, "F16", 1, 2, 1},      {QF_GGML_Q4_0, "Q4_0", 32, 18, 1},
    {QF_GGML_Q4_1, "Q4_1", 32, 20, 0},  {QF_GGML_Q5_0, "Q5_0", 32, 22, 0},  {QF_GGML_Q5_1, "Q5_1", 32, 24, 0},
    {QF_GGML_Q8_0, "Q8_0", 32, 34, 1},  {QF_GGML_Q8_1, "Q8_1", 32, 36, 0},  {QF_GGML_Q2_K, "Q2_K", 256, 84, 0},
    {QF_GGML_Q3_K, "Q3_K", 256, 110, 0}, {QF_GGML_Q4_K, "Q4_K", 256, 144, 1}, {QF_GGML_Q5_K, "Q5_K", 256, 176, 0},
    {QF_GGML_Q6_K, "Q6_K", 256, 210, 2}, {QF_GGML_Q8_K, "Q8_K", 256, 292, 0}, {QF_GGML_I8, "I8", 1, 1, 0},
    {QF_GGML_I16, "I16", 1, 2, 0},      {QF_GGML_I32, "I32", 1, 4, 0},      {QF_GGML_I64, "I64", 1, 8, 0},
    {QF_GGML_F64, "F64", 1, 8, 0},      {QF_GGML_BF16, "BF16", 1, 2, 1},
};
#define QF_N_GGML ((int)(sizeof qf_ggml_types / sizeof *qf_ggml_types))

static int qf_ggml_row(int type)
{
    for (int i = 0; i < QF_N_GGML; i++)
        if (qf_ggml_types[i].type == type) return i;
    return -1;
}

const char *qf_ggml_type_name(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? "?" : qf_ggml_types[i].name;
}

int qf_ggml_type_from_name(const char *name)
{
    for (int i = 0; i < QF_N_GGML; i++)
        if (strcasecmp(name, qf_ggml_types[i].name) == 0) return qf_ggml_types[i].type;
    return -1;
}

int qf_ggml_block_size(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? 0 : qf_ggml_types[i].block;
}

int qf_ggml_type_size(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? 0 : qf_ggml_types[i].bytes;
}

int qf_ggml_type_support(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? 0 : qf_ggml_types[i].support;
}

uint64_t qf_ggml_row_bytes(int type, int64_t ne0)
{
    int b = qf_ggml_block_size(type);
    return b ? (uint64_t)(ne0 / b) * (uint64_t)qf_ggml_type_size(type) : 0;
}

static void qf_put_f16(uint8_t *p, float v)
{
    uint16_t h = qf_f32_to_f16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

static float qf_get_f16(const uint8_t *p) { return qf_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* ---- Q8_0 ----------------------------------------------------------------------------------- */
static void qf_q8_0_block(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = qf_fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    qf_put_f16(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* ---- Q4_0 ----------------------------------------------------------------------------------- */
static void qf_q4_0_block(const float *x, uint8_t *b)
{
    float amax = 0, m = 0; /* m: the signed value of largest magnitude (first one wins) */
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), m = x[j];
    float d = m / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    qf_put_f16(b, d);
    for (int j = 0; j < 16; j++) {
        int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + 16] * id + 8.5f);
        lo = lo > 15 ? 15 : lo, hi = hi > 15 ? 15 : hi;
        b[2 + j] = (uint8_t)(lo | hi << 4);
    }
}

/* ---- Q4_K ----------------------------------------------------------------------------------- */
static int qf_near(float v) { return (int)lrintf(v); } /* round half to even, as ggml's nearest_int */

/* Fit x[32] ~ scale * L + min (L in 0..15, min <= 0) minimising the w-weighted squared error:
 * start from the plain min/max grid, then try 21 stretched grids and keep the weighted least-
 * squares (scale, min) of the best.  Returns scale; *neg_min = -min (>= 0). */
static float qf_q4k_fit(const float *x, const float *w, uint8_t *L, float *neg_min)
{
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < 32; i++) {
        lo = qf_fminf(lo, x[i]), hi = qf_fmaxf(hi, x[i]);
        sw += w[i], swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, 32);
        *neg_min = -lo;
        return 0.0f;
    }
    float inv = 15.0f / (hi - lo), scale = 1.0f / inv, best = 0;
    for (int i = 0; i < 32; i++) {
        int l = qf_near(inv * (x[i] - lo));
        L[i] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
        float e = scale * L[i] + lo - x[i];
        best += w[i] * e * e;
    }
    uint8_t trial[32];
    for (int step = 0; step <= 20; step++) {
        float ti = (-1.0f + 0.1f * (float)step + 15.0f) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < 32; i++) {
            int l = qf_near(ti * (x[i] - lo));
            l = l < 0 ? 0 : l > 15 ? 15 : l;
            trial[i] = (uint8_t)l;
            sl += w[i] * (float)l, sl2 += w[i] * (float)(l * l), sxl += w[i] * (float)l * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (det <= 0) continue;
        float s = (sw * sxl - swx * sl) / det, m = (sl2 * swx - sl * sxl) / det;
        if (m > 0) m = 0, s = sxl / sl2;
        float err = 0;
        for (int i = 0; i < 32; i++) {
            float e = s * trial[i] + m - x[i];
            err += w[i] * e * e;
        }
        if (err < best) {
            memcpy(L, trial, 32);
            best = err, scale = s, lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

static void qf_q4k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63, *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void qf_q4_k_block(const float *x, uint8_t *b)
{
    uint8_t L[256];
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float s2 = 0;
        for (int i = 0; i < 32; i++) s2 += xs[i] * xs[i];
        float av = sqrtf(s2 / 32.0f);
        for (int i = 0; i < 32; i++) w[i] = av + fabsf(xs[i]);
        scales[j] = qf_q4k_fit(xs, w, L + 32 * j, &mins[j]);
        max_scale = qf_fmaxf(max_scale, scales[j]);
        max_min = qf_fmaxf(max_min, mins[j]);
    }
    float is = max_scale > 0 ? 63.0f / max_scale : 0.0f, im = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t *sc = b + 4;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = qf_near(is * scales[j]), lm = qf_near(im * mins[j]);
        ls = ls > 63 ? 63 : ls, lm = lm > 63 ? 63 : lm;
        if (j < 4) {
            sc[j] = (uint8_t)ls, sc[j + 4] = (uint8_t)lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    qf_put_f16(b, max_scale / 63.0f);
    qf_put_f16(b + 2, max_min / 63.0f);
    float d = qf_get_f16(b), dmin = qf_get_f16(b + 2);
    /* codes again, against the scales as stored */
    for (int j = 0; j < 8; j++) {
        int s, m;
        qf_q4k_scale_min(sc, j, &s, &m);
        float ds = d * (float)s, dm = dmin * (float)m;
        if (ds == 0.0f) continue;
        for (int i = 0; i < 32; i++) {
            int l = qf_near((x[32 * j + i] + dm) / ds);
            L[32 * j + i] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
        }
    }
    uint8_t *q = b + 16;
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) q[32 * c + i] = (uint8_t)(L[64 * c + i] | L[64 * c + 32 + i] << 4);
}

void qf_ggml_quantize_row(int type, const float *x, int64_t n, void *out)
{
    uint8_t *o = out;
    switch (type) {
    case QF_GGML_F32: memcpy(o, x, sizeof(float) * (size_t)n); break;
    case QF_GGML_F16:
        for (int64_t i = 0; i < n; i++) qf_put_f16(o + 2 * i, x[i]);
        break;
    case QF_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = qf_f32_to_bf16(x[i]);
            o[2 * i] = (uint8_t)h, o[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case QF_GGML_Q8_0:
        for (int64_t i = 0; i < n / 32; i++) qf_q8_0_block(x + 32 * i, o + 34 * i);
        break;
    case QF_GGML_Q4_0:
        for (int64_t i = 0; i < n / 32; i++) qf_q4_0_block(x + 32 * i, o + 18 * i);
        break;
    case QF_GGML_Q4_K:
        for (int64_t i = 0; i < n / 256; i++) qf_q4_k_block(x + 256 * i, o + 144 * i);
        break;
    default: break;
    }
}

void qf_ggml_dequantize_row(int type, const void *in, int64_t n, float *y)
{
    const uint8_t *b = in;
    switch (type) {
    case QF_GGML_F32: memcpy(y, b, sizeof(float) * (size_t)n); break;
    case QF_GGML_F16:
        for (int64_t i = 0; i < n; i++) y[i] = qf_get_f16(b + 2 * i);
        break;
    case QF_GGML_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = qf_bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
        break;
    case QF_GGML_Q8_0:
        for (int64_t k = 0; k < n / 32; k++, b += 34) {
            float d = qf_get_f16(b);
            for (int j = 0; j < 32; j++) y[32 * k + j] = (float)(int8_t)b[2 + j] * d;
        }
        break;
    case QF_GGML_Q4_0:
        for (int64_t k = 0; k < n / 32; k++, b += 18) {
            float d = qf_get_f16(b);
            for (int j = 0; j < 16; j++) {
                y[32 * k + j] = (float)((b[2 + j] & 15) - 8) * d;
                y[32 * k + j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    case QF_GGML_Q4_K:
        for (int64_t k = 0; k < n / 256; k++, b += 144) {
            float d = qf_get_f16(b), dmin = qf_get_f16(b + 2);
            const uint8_t *q = b + 16;
            float *o = y + 256 * k;
            for (int c = 0; c < 4; c++) {
                int s0, m0, s1, m1;
                qf_q4k_scale_min(b + 4, 2 * c, &s0, &m0);
                qf_q4k_scale_min(b + 4, 2 * c + 1, &s1, &m1);
                float d0 = d * (float)s0, m0f = dmin * (float)m0, d1 = d * (float)s1, m1f = dmin * (float)m1;
                for (int i = 0; i < 32; i++) {
                    o[64 * c + i] = d0 * (float)(q[32 * c + i] & 15) - m0f;
                    o[64 * c + 32 + i] = d1 * (float)(q[32 * c + i] >> 4) - m1f;
                }
            }
        }
        break;
    case QF_GGML_Q6_K:
        /* ql[128] low 4 bits, qh[64] high 2 bits, i8 scales[16] (one per 16 values), f16 d;
         * each 128-value half: four 32-value runs taking nibble / bit-pair k of ql / qh */
        for (int64_t k = 0; k < n / 256; k++, b += 210) {
            const uint8_t *ql = b, *qh = b + 128;
            const int8_t *sc = (const int8_t *)(b + 192);
            float d = qf_get_f16(b + 208);
            float *o = y + 256 * k;
            for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, o += 128)
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                    int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                    int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                    int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                    o[l] = d * (float)sc[is] * (float)q1;
                    o[l + 32] = d * (float)sc[is + 2] * (float)q2;
                    o[l + 64] = d * (float)sc[is + 4] * (float)q3;
                    o[l + 96] = d * (float)sc[is + 6] * (float)q4;
                }
        }
        break;
    default:
        memset(y, 0, sizeof(float) * (size_t)n);
    }
}
