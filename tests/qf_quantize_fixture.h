/* qf_quantize_fixture.h - internal to tests/test_quantize.c and tests/test_quantize_edges.c:
 * an independent reference for RTN quantization, written from the fixture README formulas
 * (tests/data/README / docs/formats.md) and none of qforge's number-format helpers:
 *   - the test's own scheme table (EXP_SCHEMES, keyed by name);
 *   - its own bf16 / E4M3 / E2M1 rounding (bracketing in a value table, ties to the even code);
 *     call init_e4m3_table() once before any test;
 *   - ref_quantize(), a float re-implementation of the rules, and ref_decode_artifact(), a
 *     decoder of the stored compressed-tensors layout;
 *   - qbuf_*: the qforge side (plan, buffers, qf_quantize_rtn, qf_dequant_rows);
 *   - check_scheme_matrix(): exact comparison of both with the reference plus per-format
 *     error bounds; gen_matrix(): seeded input generators.
 * Include after <cmocka.h>. */
#ifndef QF_QUANTIZE_FIXTURE_H
#define QF_QUANTIZE_FIXTURE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_dequant.h"
#include "qf_quantize.h"
#include "qf_scheme.h"
#include "qf_test_util.h"

/* ==== the test's own scheme table =================================================== */
typedef enum ref_kind { K_FP8, K_INT4_SYM, K_INT4_ASYM, K_NVFP4, K_MXFP4, K_INT8 } ref_kind;

typedef struct exp_scheme {
    const char *name;
    ref_kind kind;
    int group;     /* along the input dim; 0 = per output channel */
    int calib;     /* needs calibration: RTN refuses it */
    const char *ct_format;
} exp_scheme;

static const exp_scheme EXP_SCHEMES[] = {
    {"fp8-dynamic", K_FP8, 0, 0, "float-quantized"},
    {"w4a16", K_INT4_SYM, 128, 0, "pack-quantized"},
    {"w4a16-asym", K_INT4_ASYM, 128, 0, "pack-quantized"},
    {"nvfp4a16", K_NVFP4, 16, 0, "nvfp4-pack-quantized"},
    {"mxfp4a16", K_MXFP4, 32, 0, "mxfp4-pack-quantized"},
    {"w8a8", K_INT8, 0, 0, "int-quantized"},
    {"fp8", K_FP8, 0, 1, "float-quantized"},
    {"nvfp4", K_NVFP4, 16, 1, "nvfp4-pack-quantized"},
};
#define N_EXP_SCHEMES ((int)(sizeof EXP_SCHEMES / sizeof EXP_SCHEMES[0]))

static const exp_scheme *exp_for(const qf_scheme *s)
{
    for (int i = 0; i < N_EXP_SCHEMES; i++)
        if (strcmp(EXP_SCHEMES[i].name, s->name) == 0) return &EXP_SCHEMES[i];
    fail_msg("scheme row '%s' has no expectations in test_quantize.c: add it to EXP_SCHEMES", s->name);
    return NULL;
}

/* ==== independent number-format rounding =========================================== */
static double ref_rhe(double v) /* round half to even */
{
    double f = floor(v), d = v - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0 ? f : f + 1;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Nearest bf16 of a finite float, ties to even: bracket between the truncation toward zero
 * and the next bf16 away from zero, compare distances in double. */
static float ref_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t lo = u & 0xffff0000u;
    float flo = bits_f32(lo), fhi = bits_f32(lo + 0x10000u);
    double dl = fabs((double)x - flo), dh = fabs((double)fhi - x);
    if (dl < dh) return flo;
    if (dh < dl) return fhi;
    return ((lo >> 16) & 1u) ? fhi : flo;
}

/* Non-negative E4M3FN values by code 0..126, from the bit fields (bias 7). */
static double E4M3_VAL[127];
static void init_e4m3_table(void)
{
    for (int c = 0; c < 127; c++) {
        int e = c >> 3, m = c & 7;
        E4M3_VAL[c] = e == 0 ? m * pow(2, -9) : (1 + m / 8.0) * pow(2, e - 7);
    }
}
static const double E2M1_VAL[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

/* Nearest value of a sorted grid vals[0..n-1] (vals[0] = 0), ties to the even index,
 * saturating at vals[n-1]; sign of y kept (so -tiny gives -0). */
static double ref_grid_nearest(const double *vals, int n, double y)
{
    double a = fabs(y);
    int idx;
    if (a >= vals[n - 1]) {
        idx = n - 1;
    } else {
        int lo = 0, hi = n - 1;
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (vals[mid] <= a) lo = mid;
            else hi = mid;
        }
        double dl = a - vals[lo], dh = vals[hi] - a;
        idx = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
    }
    return copysign(vals[idx], y);
}
static double ref_e4m3(double y) { return ref_grid_nearest(E4M3_VAL, 127, y); }
static double ref_e2m1(double y) { return ref_grid_nearest(E2M1_VAL, 8, y); }

/* ==== reference quantizer (fixture README formulas) ================================= */
typedef struct ref_out {
    float *deq;     /* [rows, cols] */
    float *scale;   /* [rows, ngroups]: the stored scale's value (bf16 / f32 / e4m3 / 2^e) */
    float *zero;    /* [rows, ngroups]: asym zero point (0..15), else 0 */
    float global;   /* nvfp4 G, else 1 */
    uint8_t *replaced; /* [rows, ngroups]: nvfp4 block scale rounded to 0 and was replaced */
} ref_out;

static int64_t ngroups_of(const exp_scheme *e, int64_t cols) { return e->group ? cols / e->group : 1; }

static void ref_out_alloc(ref_out *o, const exp_scheme *e, int64_t rows, int64_t cols)
{
    o->deq = calloc((size_t)(rows * cols), sizeof(float));
    o->scale = calloc((size_t)(rows * ngroups_of(e, cols)), sizeof(float));
    o->zero = calloc((size_t)(rows * ngroups_of(e, cols)), sizeof(float));
    o->replaced = calloc((size_t)(rows * ngroups_of(e, cols)), 1);
    assert_non_null(o->replaced);
    assert_non_null(o->deq);
    assert_non_null(o->scale);
    assert_non_null(o->zero);
}
static void ref_out_free(ref_out *o)
{
    free(o->deq);
    free(o->scale);
    free(o->zero);
    free(o->replaced);
}

static void ref_quantize(const exp_scheme *e, const float *x, int64_t rows, int64_t cols, float tensor_amax,
                         ref_out *o)
{
    int64_t gs = e->group ? e->group : cols, ng = cols / gs;
    float G = 1.0f;
    if (e->kind == K_NVFP4) { /* G = 448 * 6 / amax of the tensor (or of its fused siblings) */
        float at = tensor_amax;
        if (!(at > 0)) {
            at = 0;
            for (int64_t i = 0; i < rows * cols; i++) at = fabsf(x[i]) > at ? fabsf(x[i]) : at;
        }
        G = (at > 0 && isfinite(at)) ? 2688.0f / at : 1.0f;
    }
    o->global = G;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < ng; g++) {
            const float *xg = x + r * cols + g * gs;
            float *dg = o->deq + r * cols + g * gs;
            float amax = 0, lo = 0, hi = 0; /* the range always includes 0 */
            for (int64_t i = 0; i < gs; i++) {
                amax = fabsf(xg[i]) > amax ? fabsf(xg[i]) : amax;
                lo = xg[i] < lo ? xg[i] : lo;
                hi = xg[i] > hi ? xg[i] : hi;
            }
            float sc = 0, zero = 0;
            switch (e->kind) {
            case K_INT4_SYM: /* scale = bf16(absmax / 7), q = clamp(round(x / scale), -8, 7) */
                sc = ref_bf16_round(amax / 7.0f);
                for (int64_t i = 0; i < gs; i++) {
                    double q = sc > 0 ? fmin(fmax(ref_rhe(xg[i] / sc), -8), 7) : 0;
                    dg[i] = (float)q * sc;
                }
                break;
            case K_INT4_ASYM: /* scale = bf16((max - min) / 15), zero = round(-min / scale) */
                sc = ref_bf16_round((hi - lo) / 15.0f);
                zero = sc > 0 ? (float)fmin(fmax(ref_rhe(-lo / sc), 0), 15) : 0;
                for (int64_t i = 0; i < gs; i++) {
                    double q = sc > 0 ? fmin(fmax(ref_rhe(xg[i] / sc) + zero, 0), 15) : zero;
                    dg[i] = (float)(q - zero) * sc;
                }
                break;
            case K_INT8: /* scale = bf16(absmax / 127) per channel, q = clamp(round(x / scale), -127, 127) */
                sc = ref_bf16_round(amax / 127.0f);
                for (int64_t i = 0; i < gs; i++) {
                    double q = sc > 0 ? fmin(fmax(ref_rhe(xg[i] / sc), -127), 127) : 0;
                    dg[i] = (float)q * sc;
                }
                break;
            case K_FP8: /* scale = bf16(absmax / 448) per channel, q = e4m3(x / scale) RNE saturating */
                sc = ref_bf16_round(amax / 448.0f);
                for (int64_t i = 0; i < gs; i++) dg[i] = (float)ref_e4m3(sc > 0 ? xg[i] / sc : 0.0f) * sc;
                break;
            case K_NVFP4: { /* s = e4m3(amax_b * G / 6), 0 -> 0.125 (CT: finfo(e4m3).eps); q = e2m1(x/(s/G)) */
                sc = (float)ref_e4m3(amax * G / 6.0f);
                if (sc == 0) {
                    sc = 0.125f;
                    o->replaced[r * ng + g] = 1;
                }
                float eff = sc / G;
                for (int64_t i = 0; i < gs; i++) dg[i] = (float)ref_e2m1(eff > 0 ? xg[i] / eff : 0.0f) * eff;
                break;
            }
            case K_MXFP4: { /* OCP: scale = 2^(floor(log2 amax_b) - 2), clamped to E8M0's range */
                int ex = -127;
                if (amax > 0) {
                    int k;
                    frexp(amax, &k);
                    ex = k - 1 - 2;
                    ex = ex < -127 ? -127 : ex > 127 ? 127 : ex;
                }
                sc = (float)ldexp(1.0, ex);
                for (int64_t i = 0; i < gs; i++) dg[i] = (float)ref_e2m1(xg[i] / sc) * sc;
                break;
            }
            }
            o->scale[r * ng + g] = sc;
            o->zero[r * ng + g] = zero;
        }
    }
}

/* ==== qforge side: plan, buffers, run =============================================== */
typedef struct qbuf {
    qf_quant_plan plan;
    qf_quant_buffers b;
} qbuf;

static void qbuf_alloc(qbuf *q, const qf_scheme *s, int64_t rows, int64_t cols, uint8_t fill)
{
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(s, rows, cols, &q->plan, &err), QF_OK);
    memset(&q->b, 0, sizeof q->b);
    for (int i = 0; i < q->plan.n; i++) {
        q->b.data[i] = malloc(q->plan.t[i].nbytes ? q->plan.t[i].nbytes : 1);
        assert_non_null(q->b.data[i]);
        memset(q->b.data[i], fill, q->plan.t[i].nbytes); /* garbage: every byte must be written */
    }
}
static void qbuf_free(qbuf *q)
{
    for (int i = 0; i < q->plan.n; i++) free(q->b.data[i]);
}

static void qbuf_quantize(qbuf *q, const qf_scheme *s, qf_dtype dt, const void *src, int64_t rows, int64_t cols,
                          float tensor_amax)
{
    qf_error err = {0};
    qf_status st = qf_quantize_rtn(s, dt, src, rows, cols, tensor_amax, &q->plan, &q->b, &err);
    if (st != QF_OK) fail_msg("qf_quantize_rtn(%s, [%lld, %lld]) failed: %d %s", s->name, (long long)rows,
                              (long long)cols, st, err.msg);
}

/* The plan entry with this tensor name suffix, as a reader of the file would find it. */
static const void *qbuf_tensor(const qbuf *q, const char *suffix, qf_dtype want_dtype)
{
    for (int i = 0; i < q->plan.n; i++)
        if (strcmp(q->plan.t[i].suffix, suffix) == 0) {
            assert_int_equal(q->plan.t[i].dtype, want_dtype);
            return q->b.data[i];
        }
    return NULL;
}

static void qf_dequant_all(const qf_scheme *s, const qbuf *q, int64_t rows, int64_t cols, float *out)
{
    int iw = qf_quant_plan_find(&q->plan, QF_ROLE_WEIGHT), is = qf_quant_plan_find(&q->plan, QF_ROLE_SCALE);
    int iz = qf_quant_plan_find(&q->plan, QF_ROLE_ZERO), ig = qf_quant_plan_find(&q->plan, QF_ROLE_GLOBAL);
    assert_true(iw >= 0 && is >= 0);
    qf_packed_weight w = {0};
    w.scheme = s;
    w.rows = rows;
    w.cols = cols;
    w.weight = q->b.data[iw];
    w.scale = q->b.data[is];
    w.scale_dtype = q->plan.t[is].dtype;
    w.zero = iz >= 0 ? q->b.data[iz] : NULL;
    w.global_scale = ig >= 0 ? *(const float *)q->b.data[ig] : 1.0f;
    /* two calls over a split row range: the row offset arithmetic is exercised too */
    int64_t mid = rows / 2;
    qf_dequant_rows(&w, 0, mid, out);
    qf_dequant_rows(&w, mid, rows, out + mid * cols);
}

/* ==== independent decoder of the stored compressed-tensors layout ==================== */
static void ref_decode_artifact(const exp_scheme *e, const qbuf *q, int64_t rows, int64_t cols, ref_out *o)
{
    int64_t gs = e->group ? e->group : cols, ng = cols / gs;
    o->global = 1.0f;
    switch (e->kind) {
    case K_INT4_SYM:
    case K_INT4_ASYM: {
        /* weight_packed I32 [rows, cols/8]: column 8j+k in bits 4k..4k+3 of word j, value q+8;
         * weight_scale BF16 [rows, cols/128]; weight_zero_point I32 [rows/8, cols/128]: row 8i+k
         * in bits 4k..4k+3 of word (i, g); weight_shape I64 [2] = {rows, cols}. */
        const uint32_t *wp = qbuf_tensor(q, "weight_packed", QF_DTYPE_I32);
        const uint16_t *sp = qbuf_tensor(q, "weight_scale", QF_DTYPE_BF16);
        const uint32_t *zp = qbuf_tensor(q, "weight_zero_point", QF_DTYPE_I32);
        const int64_t *shape = qbuf_tensor(q, "weight_shape", QF_DTYPE_I64);
        assert_non_null(wp);
        assert_non_null(sp);
        assert_non_null(shape);
        assert_int_equal(shape[0], rows);
        assert_int_equal(shape[1], cols);
        if (e->kind == K_INT4_ASYM) assert_non_null(zp);
        else assert_null(zp);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t g = 0; g < ng; g++) {
                float sc = bits_f32((uint32_t)sp[r * ng + g] << 16);
                int z = zp ? (int)((zp[(r / 8) * ng + g] >> (4 * (r % 8))) & 15u) : 8;
                o->scale[r * ng + g] = sc;
                o->zero[r * ng + g] = zp ? (float)z : 0.0f;
                for (int64_t c = g * gs; c < (g + 1) * gs; c++) {
                    int u = (int)((wp[r * (cols / 8) + c / 8] >> (4 * (c % 8))) & 15u);
                    o->deq[r * cols + c] = (float)(u - z) * sc;
                }
            }
        break;
    }
    case K_FP8:
    case K_INT8: {
        /* weight F8_E4M3 / I8 [rows, cols]; weight_scale BF16 [rows, 1] (llm-compressor's dtype) */
        const uint8_t *wp = qbuf_tensor(q, "weight", e->kind == K_FP8 ? QF_DTYPE_F8_E4M3 : QF_DTYPE_I8);
        const uint16_t *sb = qbuf_tensor(q, "weight_scale", QF_DTYPE_BF16);
        assert_non_null(wp);
        assert_non_null(sb);
        for (int64_t r = 0; r < rows; r++) {
            const float sr = bits_f32((uint32_t)sb[r] << 16);
            o->scale[r] = sr;
            for (int64_t c = 0; c < cols; c++) {
                uint8_t b = wp[r * cols + c];
                double v = e->kind == K_INT8 ? (double)(int8_t)b : (b & 0x7f) == 0x7f ? NAN
                                                                 : copysign(E4M3_VAL[b & 0x7f], (b & 0x80) ? -1 : 1);
                o->deq[r * cols + c] = (float)v * sr;
            }
        }
        break;
    }
    case K_NVFP4:
    case K_MXFP4: {
        /* weight_packed U8 [rows, cols/2]: element 2k in the low nibble of byte k, 2k+1 in the
         * high nibble, nibble = sign << 3 | index into {0, .5, 1, 1.5, 2, 3, 4, 6};
         * nvfp4: weight_scale F8_E4M3 [rows, cols/16], weight_global_scale F32 [1], value =
         * fp4 * scale / global; mxfp4: weight_scale U8 [rows, cols/32] = E8M0, value = fp4 * 2^(s-127). */
        const uint8_t *wp = qbuf_tensor(q, "weight_packed", QF_DTYPE_U8);
        const uint8_t *sp = qbuf_tensor(q, "weight_scale", e->kind == K_NVFP4 ? QF_DTYPE_F8_E4M3 : QF_DTYPE_U8);
        const float *gp = qbuf_tensor(q, "weight_global_scale", QF_DTYPE_F32);
        assert_non_null(wp);
        assert_non_null(sp);
        if (e->kind == K_NVFP4) assert_non_null(gp);
        else assert_null(gp);
        o->global = gp ? gp[0] : 1.0f;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t g = 0; g < ng; g++) {
                uint8_t sb = sp[r * ng + g];
                float sv;
                if (e->kind == K_NVFP4)
                    sv = (sb & 0x7f) == 0x7f ? NAN : (float)copysign(E4M3_VAL[sb & 0x7f], (sb & 0x80) ? -1 : 1);
                else
                    sv = sb == 0xff ? NAN : (float)ldexp(1.0, sb - 127);
                float eff = e->kind == K_NVFP4 ? sv / o->global : sv;
                o->scale[r * ng + g] = sv;
                for (int64_t c = g * gs; c < (g + 1) * gs; c++) {
                    uint8_t byte = wp[r * (cols / 2) + c / 2];
                    uint8_t nib = (c % 2 == 0) ? (byte & 15) : (byte >> 4);
                    double v = copysign(E2M1_VAL[nib & 7], (nib & 8) ? -1 : 1);
                    o->deq[r * cols + c] = (float)v * eff;
                }
            }
        break;
    }
    }
}

/* ==== comparisons ==================================================================== */
static void expect_same_values(const float *want, const float *got, int64_t n, const char *what, const char *scheme,
                               int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < n; i++)
        if (!(want[i] == got[i])) /* NaN anywhere fails too */
            fail_msg("%s [%lld, %lld] %s: element %lld expected %.9g, got %.9g", scheme, (long long)rows,
                     (long long)cols, what, (long long)i, (double)want[i], (double)got[i]);
}

/* (b) The error bound of one element, derived from the format (see each case). */
static double bound_for(const exp_scheme *e, float x, float step, float zero)
{
    switch (e->kind) {
    case K_INT4_SYM:
        /* scale = bf16(amax/7) >= (amax/7)(1 - 2^-8) (bf16 has 8 significant bits), so
         * |x| / scale <= 7 / (1 - 2^-8) < 7.03 < 7.5: every value is inside the clamp range
         * [-8, 7] and rounds to the nearest step: |x - deq| <= scale/2. */
        return qf_tol_half_step(step, x);
    case K_INT8:
        /* scale = amax/127 in float: |x|/scale <= 127 (1 + 2^-22): inside [-127, 127]. */
        return qf_tol_half_step(step, x);
    case K_INT4_ASYM: {
        /* Inside the representable range [-zero*s, (15-zero)*s] the nearest step is within s/2.
         * Past its ends (only the group's extremes can be): the range is 15 s wide while the
         * data spans hi - lo <= 15 s / (1 - 2^-8) (s = bf16((hi-lo)/15) rounds down by at most
         * 2^-8 relative), and rounding zero = round(-lo/s) shifts the range by at most s/2, so
         * an extreme lies at most s/2 + 15 s 2^-8 / (1 - 2^-8) past the range end, where it is
         * clamped to the end. */
        double lo_r = -(double)zero * step, hi_r = (15.0 - zero) * step;
        if (x >= lo_r && x <= hi_r) return qf_tol_half_step(step, x);
        return qf_tol_half_step(step, x) + 15.0 * step * 0x1p-8 / (1 - 0x1p-8);
    }
    case K_FP8: {
        /* y = x/scale with |y| <= 448 (1 + 2^-22); E4M3 (3 mantissa bits, min normal 2^-6)
         * rounds y to within half a grid spacing at |y|; deq = y_q * scale. */
        double y = fmin(fabs(x / step), 448.0);
        return step * qf_tol_fp_half_ulp(y, 3, -6) + QF_TOL_F32_SLACK * (fabs(x) + step);
    }
    case K_NVFP4:
    case K_MXFP4: {
        /* y = x/scale; inside [-6, 6] E2M1 (1 mantissa bit, min normal 2^0) is within half a
         * grid spacing; past 6 (the block scale was rounded down: nvfp4 e4m3 up to 6/(1-2^-4)
         * = 6.4 for normal scales, mxfp4 up to 8 by the OCP floor rule) it saturates to 6,
         * so the error is |y| - 6 there. */
        double y = fabs(x / step);
        double over = y > 6 ? y - 6 : 0;
        return step * (qf_tol_fp_half_ulp(fmin(y, 6.0), 1, 0) + over) + QF_TOL_F32_SLACK * (fabs(x) + step);
    }
    }
    return 0;
}

/* Effective step of a group: what multiplies the integer / small-float code. */
static float step_of(const exp_scheme *e, const ref_out *o, int64_t gi)
{
    return e->kind == K_NVFP4 ? o->scale[gi] / o->global : o->scale[gi];
}

/* (a) + (b) for one scheme, matrix and source dtype.  Returns nothing; fails on mismatch. */
static void check_scheme_matrix(const qf_scheme *s, qf_dtype dt, const void *src, const float *x, int64_t rows,
                                int64_t cols, float tensor_amax)
{
    const exp_scheme *e = exp_for(s);
    int64_t gs = e->group ? e->group : cols, ng = cols / gs;
    qbuf q;
    qbuf_alloc(&q, s, rows, cols, 0xA5);
    qbuf_quantize(&q, s, dt, src, rows, cols, tensor_amax);

    ref_out want, layout;
    ref_out_alloc(&want, e, rows, cols);
    ref_out_alloc(&layout, e, rows, cols);
    float *deq = malloc(sizeof(float) * (size_t)(rows * cols));
    assert_non_null(deq);
    ref_quantize(e, x, rows, cols, tensor_amax, &want);
    ref_decode_artifact(e, &q, rows, cols, &layout);
    qf_dequant_all(s, &q, rows, cols, deq);

    /* (a) exact equality: reference formulas == stored layout decoded here == qf_dequant_rows */
    /* nvfp4 blocks whose scale was replaced (rounded to E4M3 zero) are checked byte-wise in
     * test_nvfp4_zero_block_scale_is_ct_eps_0x20; their dequantized values (all 0) still are here */
    for (int64_t gi = 0; gi < rows * ng; gi++)
        if (want.replaced[gi]) layout.scale[gi] = want.scale[gi];
    expect_same_values(want.scale, layout.scale, rows * ng, "stored scale vs reference", s->name, rows, cols);
    expect_same_values(want.zero, layout.zero, rows * ng, "stored zero point vs reference", s->name, rows, cols);
    expect_same_values(&want.global, &layout.global, 1, "stored global scale vs reference", s->name, rows, cols);
    expect_same_values(want.deq, layout.deq, rows * cols, "decoded layout vs reference", s->name, rows, cols);
    expect_same_values(want.deq, deq, rows * cols, "qf_dequant_rows vs reference", s->name, rows, cols);

    /* (b) error bounds from the format */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            int64_t gi = r * ng + c / gs;
            float xv = x[r * cols + c], d = deq[r * cols + c];
            double b = bound_for(e, xv, step_of(e, &want, gi), want.zero[gi]);
            if (!(fabs((double)xv - d) <= b))
                fail_msg("%s [%lld, %lld] (%lld, %lld): x = %.9g, deq = %.9g, |err| = %.3g > bound %.3g", s->name,
                         (long long)rows, (long long)cols, (long long)r, (long long)c, (double)xv, (double)d,
                         fabs((double)xv - d), b);
        }
    /* format-level claims behind the fp4 bounds: how far past 6 a block maximum can land */
    if (e->kind == K_NVFP4 || e->kind == K_MXFP4)
        for (int64_t gi = 0; gi < rows * ng; gi++) {
            float amax = 0;
            for (int64_t i = 0; i < gs; i++) amax = fmaxf(amax, fabsf(x[(gi / ng) * cols + (gi % ng) * gs + i]));
            double y = amax / step_of(e, &want, gi);
            if (e->kind == K_MXFP4 && amax > 0x1p-120f) assert_true(y >= 4.0 && y < 8.0);
            if (e->kind == K_NVFP4 && want.scale[gi] >= 0x1p-6f) assert_true(y <= 6.0 / (1 - 0x1p-4) * (1 + 0x1p-20));
        }
    free(deq);
    ref_out_free(&want);
    ref_out_free(&layout);
    qbuf_free(&q);
}

/* ==== input generators =============================================================== */
typedef enum gen_kind { GEN_NORMAL_ROWSCALED, GEN_UNIFORM, GEN_HEAVY_TAIL, GEN_SMALL_INTS, GEN_COUNT } gen_kind;

static void gen_matrix(qf_test_rng *r, gen_kind k, float *x, int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < rows; i++) {
        float row_scale = (float)pow(10.0, -3.0 + 4.0 * qf_test_rng_unit(r)); /* 1e-3 .. 10 */
        for (int64_t j = 0; j < cols; j++) {
            float v;
            switch (k) {
            case GEN_NORMAL_ROWSCALED: v = qf_test_rng_normal(r) * row_scale; break;
            case GEN_UNIFORM: v = qf_test_rng_uniform(r, -1.0f, 1.0f); break;
            case GEN_HEAVY_TAIL: { float n = qf_test_rng_normal(r); v = n * n * n * 0.05f; break; }
            default: v = (float)((int)qf_test_rng_below(r, 33) - 16) * 0.25f; break; /* many exact ties */
            }
            x[i * cols + j] = v;
        }
    }
}

#endif /* QF_QUANTIZE_FIXTURE_H */
