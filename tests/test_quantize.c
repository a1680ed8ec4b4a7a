/* test_quantize.c - RTN quantization (quant/quantize.c) and dequantization (quant/dequant.c)
 * against an independent re-implementation of the formulas, for every scheme row.
 *
 * For each scheme that RTN can produce (qf_scheme_all minus needs_calibration rows), random
 * matrices of awkward-but-legal shapes are quantized with qf_quantize_rtn and then:
 *   (a) dequantized twice - by qf_dequant_rows and by ref_decode_artifact(), a decoder of the
 *       compressed-tensors layout written here from the spec - and both compared for exact
 *       equality with ref_quantize(), a float re-implementation of the fixture README rules
 *       (tests/data/README / docs/formats.md); stored scales, zero points and global scale
 *       are compared exactly too;
 *   (b) checked against error bounds derived from each format (reasoning next to each bound);
 *   (c) checked for determinism: twice, and with 1, 2 and 3 OpenMP threads, byte-identical
 *       buffers (pre-filled with different garbage so an unwritten byte shows up);
 *   (d) the packed-tensor plan of a [4096, 14336] Linear is compared with the
 *       compressed-tensors layout written out below, and unfit shapes are refused.
 * The reference uses its own scheme table (EXP_SCHEMES, keyed by name), its own bf16 / E4M3 /
 * E2M1 rounding (bracketing in a value table, ties to the even code), and none of qforge's
 * number-format helpers.  Its float32 expressions follow the documented evaluation order
 * (e.g. nvfp4: s = e4m3(amax_b * G / 6), q = e2m1(x / (s / G))), because algebraically equal
 * orders can differ by one float ulp right at a rounding boundary: the order is part of the
 * bit-exact contract with the artifacts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <omp.h>

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

/* Shape rule, written from the layout: groups must tile the row, int4 packs 8 per word,
 * asymmetric zero points pack 8 rows per word, fp4 packs 2 per byte. */
static int exp_fits(const exp_scheme *e, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0) return 0;
    if (e->group && cols % e->group) return 0;
    if ((e->kind == K_INT4_SYM || e->kind == K_INT4_ASYM) && cols % 8) return 0;
    if (e->kind == K_INT4_ASYM && rows % 8) return 0;
    if ((e->kind == K_NVFP4 || e->kind == K_MXFP4) && cols % 2) return 0;
    return 1;
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
            case K_INT8: /* scale = absmax / 127 per channel, q = clamp(round(x / scale), -127, 127) */
                sc = amax / 127.0f;
                for (int64_t i = 0; i < gs; i++) {
                    double q = sc > 0 ? fmin(fmax(ref_rhe(xg[i] / sc), -127), 127) : 0;
                    dg[i] = (float)q * sc;
                }
                break;
            case K_FP8: /* scale = absmax / 448 per channel, q = e4m3(x / scale) RNE saturating */
                sc = amax / 448.0f;
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

static int qbuf_same(const qbuf *a, const qbuf *b)
{
    if (a->plan.n != b->plan.n) return 0;
    for (int i = 0; i < a->plan.n; i++)
        if (a->plan.t[i].nbytes != b->plan.t[i].nbytes || memcmp(a->b.data[i], b->b.data[i], a->plan.t[i].nbytes))
            return 0;
    return 1;
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
        /* weight F8_E4M3 / I8 [rows, cols]; weight_scale F32 [rows, 1] */
        const uint8_t *wp = qbuf_tensor(q, "weight", e->kind == K_FP8 ? QF_DTYPE_F8_E4M3 : QF_DTYPE_I8);
        const float *sp = qbuf_tensor(q, "weight_scale", QF_DTYPE_F32);
        assert_non_null(wp);
        assert_non_null(sp);
        for (int64_t r = 0; r < rows; r++) {
            o->scale[r] = sp[r];
            for (int64_t c = 0; c < cols; c++) {
                uint8_t b = wp[r * cols + c];
                double v = e->kind == K_INT8 ? (double)(int8_t)b : (b & 0x7f) == 0x7f ? NAN
                                                                 : copysign(E4M3_VAL[b & 0x7f], (b & 0x80) ? -1 : 1);
                o->deq[r * cols + c] = (float)v * sp[r];
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

/* ==== tests ========================================================================== */
static void test_scheme_table_matches_expectations(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    assert_int_equal(n, N_EXP_SCHEMES);
    for (int i = 0; i < n; i++) {
        const exp_scheme *e = exp_for(&all[i]);
        assert_int_equal(all[i].group_size, e->group);
        assert_int_equal(all[i].needs_calibration, e->calib);
        assert_string_equal(all[i].ct_format, e->ct_format);
        assert_ptr_equal(qf_scheme_find(all[i].name), &all[i]);
        assert_ptr_equal(qf_scheme_by_id(all[i].id), &all[i]);
    }
    assert_null(qf_scheme_find("w4a17"));
}

static void test_metric_and_tolerance_helpers_hand_computed(void **state)
{
    (void)state;
    const float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 6};
    assert_true(qf_max_abs_diff(a, b, 4) == 2.0);
    assert_true(qf_rmse(a, b, 4) == 1.0);             /* sqrt(4 / 4) */
    assert_true(fabs(qf_nmse(a, b, 4) - 4.0 / 30.0) < 1e-15); /* 4 / (1 + 4 + 9 + 16) */
    const float z[2] = {0, 0}, one[2] = {0, 1};
    assert_true(qf_nmse(z, z, 2) == 0.0);
    assert_true(isinf(qf_nmse(z, one, 2)));
    const float u1[3] = {1.0f, -0.0f, 2.0f}, u2[3] = {0x1.000002p0f, 0.0f, 0x1.fffffep0f};
    assert_int_equal(qf_ulp_distance_f32(u1[0], u2[0]), 1);
    assert_int_equal(qf_ulp_distance_f32(u1[1], u2[1]), 0);
    assert_int_equal(qf_ulp_distance_f32(-0x1p-149f, 0x1p-149f), 2);
    assert_int_equal(qf_max_ulp(u1, u2, 3), 1);
    /* E4M3 spacing: 2^-3 on [1, 2), 2^5 on [256, 448], 2^-9 for subnormals */
    assert_true(qf_tol_fp_half_ulp(1.0, 3, -6) == 0x1p-4);
    assert_true(qf_tol_fp_half_ulp(1.99, 3, -6) == 0x1p-4);
    assert_true(qf_tol_fp_half_ulp(448.0, 3, -6) == 16.0);
    assert_true(qf_tol_fp_half_ulp(0.001, 3, -6) == 0x1p-10);
    assert_true(qf_tol_fp_half_ulp(0.0, 3, -6) == 0x1p-10);
    /* E2M1 spacing: 0.5 below 2, 1 on [2, 4), 2 on [4, 6] */
    assert_true(qf_tol_fp_half_ulp(0.3, 1, 0) == 0.25);
    assert_true(qf_tol_fp_half_ulp(1.2, 1, 0) == 0.25);
    assert_true(qf_tol_fp_half_ulp(3.0, 1, 0) == 0.5);
    assert_true(qf_tol_fp_half_ulp(5.0, 1, 0) == 1.0);
    assert_true(qf_tol_half_step(2.0, 0.0) == 1.0 + QF_TOL_F32_SLACK * 2.0);
    /* the RNG is what Python's tests/interop would reproduce: pin its first outputs */
    qf_test_rng r = qf_test_rng_init(0);
    assert_true(qf_test_rng_u64(&r) == 0xe220a8397b1dcdafull);
    assert_true(qf_test_rng_u64(&r) == 0x6e789e6aa1b965f4ull);
}

static void test_rtn_matches_reference_every_scheme_awkward_shapes(void **state)
{
    (void)state;
    const int64_t rows_list[] = {1, 3, 8, 13, 24, 40};
    const int64_t cols_list[] = {1, 7, 16, 32, 48, 96, 128, 160, 384, 640, 130};
    int n = 0, covered = 0, kinds_seen = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(42);
    for (int si = 0; si < n; si++) {
        const qf_scheme *s = &all[si];
        const exp_scheme *e = exp_for(s);
        if (e->calib) continue; /* static activation scales: RTN refuses (checked elsewhere) */
        kinds_seen |= 1 << e->kind;
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
            for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                int64_t rows = rows_list[ri], cols = cols_list[ci];
                assert_int_equal(qf_scheme_fits(s, rows, cols), exp_fits(e, rows, cols));
                if (!exp_fits(e, rows, cols)) continue;
                float *x = malloc(sizeof(float) * (size_t)(rows * cols));
                assert_non_null(x);
                for (int g = 0; g < GEN_COUNT; g++) {
                    gen_matrix(&r, (gen_kind)g, x, rows, cols);
                    check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, 0.0f);
                    covered++;
                }
                free(x);
            }
    }
    assert_int_equal(kinds_seen, (1 << K_FP8) | (1 << K_INT4_SYM) | (1 << K_INT4_ASYM) | (1 << K_NVFP4) |
                                     (1 << K_MXFP4) | (1 << K_INT8));
    assert_true(covered >= 6 * GEN_COUNT * 6);
}

/* Real checkpoints are bf16: quantize from BF16 bits (the reference sees their float values). */
static void test_rtn_from_bf16_source_matches_reference(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(7);
    const int64_t rows = 24, cols = 384;
    float *x = malloc(sizeof(float) * rows * cols);
    uint16_t *h = malloc(sizeof(uint16_t) * rows * cols);
    assert_non_null(x);
    assert_non_null(h);
    for (int si = 0; si < n; si++) {
        if (all[si].needs_calibration) continue;
        gen_matrix(&r, GEN_NORMAL_ROWSCALED, x, rows, cols);
        for (int64_t i = 0; i < rows * cols; i++) {
            float b = ref_bf16_round(x[i]);
            uint32_t u;
            memcpy(&u, &b, 4);
            h[i] = (uint16_t)(u >> 16);
            x[i] = b;
        }
        check_scheme_matrix(&all[si], QF_DTYPE_BF16, h, x, rows, cols, 0.0f);
    }
    free(x);
    free(h);
}

static int saved_threads;
static int threads_setup(void **state)
{
    (void)state;
    saved_threads = omp_get_max_threads();
    return 0;
}
static int threads_teardown(void **state)
{
    (void)state;
    omp_set_num_threads(saved_threads);
    return 0;
}

/* (c) byte-identical output twice and for 1, 2 and 3 threads (uneven splits of the row
 * blocks); buffers start as different garbage so an unwritten byte would differ. */
static void test_rtn_deterministic_across_runs_and_threads(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(99);
    const int64_t rows = 200, cols = 640;
    float *x = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    gen_matrix(&r, GEN_HEAVY_TAIL, x, rows, cols);
    for (int si = 0; si < n; si++) {
        const qf_scheme *s = &all[si];
        if (s->needs_calibration) continue;
        qbuf ref, other;
        omp_set_num_threads(1);
        qbuf_alloc(&ref, s, rows, cols, 0x00);
        qbuf_quantize(&ref, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
        const int threads[] = {1, 2, 3, 2};
        for (int t = 0; t < 4; t++) {
            omp_set_num_threads(threads[t]);
            qbuf_alloc(&other, s, rows, cols, (uint8_t)(0x11 * (t + 1) + 0x40));
            qbuf_quantize(&other, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
            if (!qbuf_same(&ref, &other))
                fail_msg("%s: output with %d thread(s) differs from 1 thread", s->name, threads[t]);
            qbuf_free(&other);
        }
        qbuf_free(&ref);
    }
    free(x);
}

/* (d) plans for a [4096, 14336] Linear (Llama-3-8B's up_proj transposed: down_proj). */
typedef struct exp_tensor {
    const char *suffix;
    qf_dtype dtype;
    int ndim;
    int64_t d0, d1;
    int elem_bytes;
} exp_tensor;

static void check_plan(const char *name, const exp_tensor *want, int nwant, int64_t rows, int64_t cols)
{
    const qf_scheme *s = qf_scheme_find(name);
    assert_non_null(s);
    qf_quant_plan plan;
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(s, rows, cols, &plan, &err), QF_OK);
    if (plan.n != nwant) fail_msg("%s: plan has %d tensors, expected %d", name, plan.n, nwant);
    for (int i = 0; i < nwant; i++) {
        int found = 0;
        for (int j = 0; j < plan.n; j++) {
            const qf_packed_tensor *t = &plan.t[j];
            if (strcmp(t->suffix, want[i].suffix)) continue;
            found = 1;
            uint64_t numel = (uint64_t)want[i].d0 * (uint64_t)(want[i].ndim > 1 ? want[i].d1 : 1);
            if (t->dtype != want[i].dtype || t->ndim != want[i].ndim || t->shape[0] != want[i].d0 ||
                (want[i].ndim > 1 && t->shape[1] != want[i].d1) || t->nbytes != numel * (uint64_t)want[i].elem_bytes)
                fail_msg("%s.%s: got %s ndim %d [%lld, %lld] %llu bytes, expected %s ndim %d [%lld, %lld] %llu bytes",
                         name, want[i].suffix, qf_dtype_name(t->dtype), t->ndim, (long long)t->shape[0],
                         (long long)t->shape[1], (unsigned long long)t->nbytes, qf_dtype_name(want[i].dtype),
                         want[i].ndim, (long long)want[i].d0, (long long)want[i].d1,
                         (unsigned long long)(numel * (uint64_t)want[i].elem_bytes));
        }
        if (!found) fail_msg("%s: plan lacks %s", name, want[i].suffix);
    }
}

static void test_plans_4096x14336_match_compressed_tensors_layout(void **state)
{
    (void)state;
    const int64_t O = 4096, I = 14336;
    const exp_tensor fp8d[] = {{"weight", QF_DTYPE_F8_E4M3, 2, O, I, 1}, {"weight_scale", QF_DTYPE_F32, 2, O, 1, 4}};
    const exp_tensor w4[] = {{"weight_packed", QF_DTYPE_I32, 2, O, I / 8, 4},
                             {"weight_scale", QF_DTYPE_BF16, 2, O, I / 128, 2},
                             {"weight_shape", QF_DTYPE_I64, 1, 2, 0, 8}};
    const exp_tensor w4a[] = {{"weight_packed", QF_DTYPE_I32, 2, O, I / 8, 4},
                              {"weight_scale", QF_DTYPE_BF16, 2, O, I / 128, 2},
                              {"weight_zero_point", QF_DTYPE_I32, 2, O / 8, I / 128, 4},
                              {"weight_shape", QF_DTYPE_I64, 1, 2, 0, 8}};
    const exp_tensor nv[] = {{"weight_packed", QF_DTYPE_U8, 2, O, I / 2, 1},
                             {"weight_scale", QF_DTYPE_F8_E4M3, 2, O, I / 16, 1},
                             {"weight_global_scale", QF_DTYPE_F32, 1, 1, 0, 4}};
    const exp_tensor mx[] = {{"weight_packed", QF_DTYPE_U8, 2, O, I / 2, 1},
                             {"weight_scale", QF_DTYPE_U8, 2, O, I / 32, 1}};
    const exp_tensor w8[] = {{"weight", QF_DTYPE_I8, 2, O, I, 1}, {"weight_scale", QF_DTYPE_F32, 2, O, 1, 4}};
    const exp_tensor fp8s[] = {{"weight", QF_DTYPE_F8_E4M3, 2, O, I, 1},
                               {"weight_scale", QF_DTYPE_F32, 1, 1, 0, 4},
                               {"input_scale", QF_DTYPE_F32, 1, 1, 0, 4}};
    const exp_tensor nv44[] = {{"weight_packed", QF_DTYPE_U8, 2, O, I / 2, 1},
                               {"weight_scale", QF_DTYPE_F8_E4M3, 2, O, I / 16, 1},
                               {"weight_global_scale", QF_DTYPE_F32, 1, 1, 0, 4},
                               {"input_global_scale", QF_DTYPE_F32, 1, 1, 0, 4}};
    check_plan("fp8-dynamic", fp8d, 2, O, I);
    check_plan("w4a16", w4, 3, O, I);
    check_plan("w4a16-asym", w4a, 4, O, I);
    check_plan("nvfp4a16", nv, 3, O, I);
    check_plan("mxfp4a16", mx, 2, O, I);
    check_plan("w8a8", w8, 2, O, I);
    check_plan("fp8", fp8s, 3, O, I);
    check_plan("nvfp4", nv44, 4, O, I);
    /* byte sizes spelled out once as numbers: int4 is 4096*14336/2 bytes of weights */
    qf_quant_plan p;
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(qf_scheme_find("w4a16"), O, I, &p, &err), QF_OK);
    assert_int_equal(p.t[qf_quant_plan_find(&p, QF_ROLE_WEIGHT)].nbytes, 29360128u);
    assert_int_equal(p.t[qf_quant_plan_find(&p, QF_ROLE_SCALE)].nbytes, 917504u);
    assert_int_equal(qf_quant_plan_find(&p, QF_ROLE_ZERO), -1);
    /* a small asymmetric plan: one zero-point word covers 8 rows of one group */
    check_plan("w4a16-asym", (const exp_tensor[]){{"weight_packed", QF_DTYPE_I32, 2, 8, 16, 4},
                                                  {"weight_scale", QF_DTYPE_BF16, 2, 8, 1, 2},
                                                  {"weight_zero_point", QF_DTYPE_I32, 2, 1, 1, 4},
                                                  {"weight_shape", QF_DTYPE_I64, 1, 2, 0, 8}},
               4, 8, 128);
}

static void test_unfit_shapes_and_bad_inputs_refused(void **state)
{
    (void)state;
    const struct { const char *name; int64_t rows, cols; } bad[] = {
        {"w4a16", 4096, 14336 + 64}, {"w4a16", 4096, 100}, {"w4a16", 0, 128}, {"w4a16-asym", 4097, 14336},
        {"w4a16-asym", 12, 128},     {"nvfp4a16", 16, 24}, {"nvfp4a16", 16, 8}, {"mxfp4a16", 16, 48},
        {"mxfp4a16", 16, 16},        {"fp8-dynamic", 0, 16}, {"w8a8", 16, 0}, {"w8a8", -1, 16},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qf_quant_plan p;
        qf_error err = {0};
        const qf_scheme *s = qf_scheme_find(bad[i].name);
        assert_non_null(s);
        qf_status st = qf_quant_plan_linear(s, bad[i].rows, bad[i].cols, &p, &err);
        if (st != QF_ERR_UNSUPPORTED)
            fail_msg("%s [%lld, %lld]: expected QF_ERR_UNSUPPORTED, got %d", bad[i].name, (long long)bad[i].rows,
                     (long long)bad[i].cols, st);
        assert_true(strlen(err.msg) > 0);
        assert_non_null(strstr(err.msg, bad[i].name)); /* the message names the scheme */
    }
    /* RTN refuses calibrated schemes and non-float sources */
    float x[16 * 16] = {0};
    qbuf q;
    qf_error err = {0};
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    for (int i = 0; i < n; i++) {
        if (!all[i].needs_calibration) continue;
        qbuf_alloc(&q, &all[i], 16, 16, 0);
        assert_int_equal(qf_quantize_rtn(&all[i], QF_DTYPE_F32, x, 16, 16, 0, &q.plan, &q.b, &err), QF_ERR_USAGE);
        qbuf_free(&q);
    }
    qbuf_alloc(&q, qf_scheme_find("fp8-dynamic"), 16, 16, 0);
    assert_int_equal(qf_quantize_rtn(qf_scheme_find("fp8-dynamic"), QF_DTYPE_I32, x, 16, 16, 0, &q.plan, &q.b, &err),
                     QF_ERR_UNSUPPORTED);
    qbuf_free(&q);
}

/* All-zero matrix, all-zero rows, and all-zero groups next to nonzero ones: no NaN or inf
 * anywhere, zeros dequantize to exactly 0, everything else still matches the reference. */
static void test_zero_rows_and_groups(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(5);
    const int64_t rows = 16, cols = 256; /* fits every scheme: 256 = 2 * 128 = 8 * 32 = 16 * 16 */
    float *x = calloc(rows * cols, sizeof(float));
    float *deq = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    assert_non_null(deq);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* row 0 zero, row 1 zero in its first 128 columns, others random */
            gen_matrix(&r, GEN_NORMAL_ROWSCALED, x, rows, cols);
            memset(x, 0, sizeof(float) * cols);
            memset(x + cols, 0, sizeof(float) * 128);
            for (int64_t c = 128; c < cols; c += 32) memset(x + 5 * cols + c, 0, sizeof(float) * 16);
        }
        for (int si = 0; si < n; si++) {
            const qf_scheme *s = &all[si];
            if (s->needs_calibration) continue;
            check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, 0.0f);
            qbuf q;
            qbuf_alloc(&q, s, rows, cols, 0xA5);
            qbuf_quantize(&q, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
            qf_dequant_all(s, &q, rows, cols, deq);
            for (int64_t i = 0; i < rows * cols; i++) {
                if (!isfinite(deq[i])) fail_msg("%s pass %d: element %lld dequantizes to %g", s->name, pass,
                                                (long long)i, (double)deq[i]);
                if (x[i] == 0 && deq[i] != 0) fail_msg("%s pass %d: zero input %lld -> %g", s->name, pass,
                                                       (long long)i, (double)deq[i]);
            }
            int ig = qf_quant_plan_find(&q.plan, QF_ROLE_GLOBAL);
            if (ig >= 0) assert_true(isfinite(*(float *)q.b.data[ig]) && *(float *)q.b.data[ig] > 0);
            qbuf_free(&q);
        }
    }
    free(x);
    free(deq);
}

/* compressed-tensors replaces a zero E4M3 block scale by finfo(float8_e4m3fn).eps = 0.125
 * (code 0x20); qf_quantize.h documents the same ("code 0 -> 0.125 as compressed-tensors
 * does").  An all-zero nvfp4 block must therefore store weight_scale byte 0x20. */
static void test_nvfp4_zero_block_scale_is_ct_eps_0x20(void **state)
{
    (void)state;
    const qf_scheme *s = qf_scheme_find("nvfp4a16");
    float x[2 * 32] = {0};
    for (int i = 16; i < 32; i++) x[i] = (float)(i - 20); /* row 0: block 0 zero, block 1 nonzero */
    qbuf q;
    qbuf_alloc(&q, s, 2, 32, 0xA5);
    qbuf_quantize(&q, s, QF_DTYPE_F32, x, 2, 32, 0.0f);
    const uint8_t *scp = qbuf_tensor(&q, "weight_scale", QF_DTYPE_F8_E4M3);
    uint8_t sc[4];
    memcpy(sc, scp, 4); /* [2 rows, 2 blocks] */
    qbuf_free(&q);
    assert_int_equal(sc[1], 0x7e); /* the nonzero block holds the tensor amax 11: 11 * G / 6 = 448 */
    /* This once wrote 0x28 (E4M3 0.25): values were still right (all codes 0) but the bytes
     * differed from what compressed-tensors writes for the same weights. */
    if (sc[0] != 0x20 || sc[2] != 0x20 || sc[3] != 0x20)
        fail_msg("zero nvfp4 block scale stored as 0x%02x 0x%02x 0x%02x "
                 "(E4M3 %g), expected 0x20 (0.125)", sc[0], sc[2], sc[3], E4M3_VAL[sc[0] & 0x7f]);
}

/* One huge outlier per group: no overflow, the other values collapse towards 0 within the
 * bound of the (now large) step, and the outlier itself is represented within its bound. */
static void test_group_with_huge_outlier(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(11);
    const int64_t rows = 8, cols = 256;
    float *x = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    const float outliers[] = {1e4f, -65504.0f, 3e30f};
    for (size_t oi = 0; oi < sizeof outliers / sizeof outliers[0]; oi++) {
        for (int64_t i = 0; i < rows * cols; i++) x[i] = qf_test_rng_normal(&r) * 0.01f;
        for (int64_t row = 0; row < rows; row++) x[row * cols + (row * 37) % cols] = outliers[oi] * (row % 2 ? -1 : 1);
        for (int si = 0; si < n; si++)
            if (!all[si].needs_calibration) check_scheme_matrix(&all[si], QF_DTYPE_F32, x, x, rows, cols, 0.0f);
    }
    free(x);
}

/* Asymmetric int4 on groups that are entirely negative (zero point 15, min at code 0) and
 * entirely positive (zero point 0). */
static void test_asym_negative_only_and_positive_only_groups(void **state)
{
    (void)state;
    const qf_scheme *s = qf_scheme_find("w4a16-asym");
    qf_test_rng r = qf_test_rng_init(13);
    const int64_t rows = 16, cols = 256;
    float *x = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    for (int64_t i = 0; i < rows * cols; i++) {
        float m = qf_test_rng_uniform(&r, 0.1f, 2.0f);
        x[i] = (i % cols) < 128 ? -m : m; /* group 0 negative-only, group 1 positive-only */
    }
    check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, 0.0f);
    qbuf q;
    qbuf_alloc(&q, s, rows, cols, 0xA5);
    qbuf_quantize(&q, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
    const uint32_t *zp = qbuf_tensor(&q, "weight_zero_point", QF_DTYPE_I32);
    const uint32_t *wp = qbuf_tensor(&q, "weight_packed", QF_DTYPE_I32);
    for (int64_t row = 0; row < rows; row++) {
        assert_int_equal((zp[(row / 8) * 2 + 0] >> (4 * (row % 8))) & 15u, 15); /* all-negative group */
        assert_int_equal((zp[(row / 8) * 2 + 1] >> (4 * (row % 8))) & 15u, 0);  /* all-positive group */
        /* the group minimum lands on code 0, the maximum on code 15 */
        int64_t argmin = 0, argmax = 128;
        for (int64_t c = 0; c < 128; c++) argmin = x[row * cols + c] < x[row * cols + argmin] ? c : argmin;
        for (int64_t c = 128; c < 256; c++) argmax = x[row * cols + c] > x[row * cols + argmax] ? c : argmax;
        assert_int_equal((wp[row * 32 + argmin / 8] >> (4 * (argmin % 8))) & 15u, 0);
        assert_int_equal((wp[row * 32 + argmax / 8] >> (4 * (argmax % 8))) & 15u, 15);
    }
    qbuf_free(&q);
    free(x);
}

/* Exact f16 bits of a value representable in fp16 (normal or zero), written from the layout. */
static uint16_t exact_f16(float v)
{
    if (v == 0) return signbit(v) ? 0x8000 : 0;
    int k;
    double f = frexp(fabs((double)v), &k); /* |v| = f 2^k, f in [0.5, 1) -> 1.m 2^(k-1) */
    uint32_t e = (uint32_t)(k - 1 + 15), m = (uint32_t)((f * 2 - 1) * 1024);
    return (uint16_t)((v < 0 ? 0x8000u : 0) | e << 10 | m);
}

static double ref_f16_decode(uint16_t h) /* IEEE binary16, finite codes */
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

/* The same values given as F32, BF16 and F16 give byte-identical packed tensors. */
static void test_f32_bf16_f16_sources_identical(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(17);
    const int64_t rows = 16, cols = 384;
    float *x = malloc(sizeof(float) * rows * cols);
    uint16_t *hb = malloc(sizeof(uint16_t) * rows * cols), *hh = malloc(sizeof(uint16_t) * rows * cols);
    assert_non_null(x);
    assert_non_null(hb);
    assert_non_null(hh);
    /* k * 2^-e with |k| < 256 and e <= 12: 8 significant bits (bf16 exact), >= 2^-12 (fp16 normal) */
    for (int64_t i = 0; i < rows * cols; i++) {
        int k = (int)qf_test_rng_below(&r, 511) - 255;
        x[i] = (float)ldexp(k, -(int)qf_test_rng_below(&r, 13));
        uint32_t u;
        memcpy(&u, &x[i], 4);
        assert_int_equal(u & 0xffffu, 0);
        hb[i] = (uint16_t)(u >> 16);
        hh[i] = exact_f16(x[i]);
        assert_true(bits_f32((uint32_t)hb[i] << 16) == x[i]);
        assert_true(ref_f16_decode(hh[i]) == x[i]);
    }
    for (int si = 0; si < n; si++) {
        const qf_scheme *s = &all[si];
        if (s->needs_calibration) continue;
        qbuf a, b, c;
        qbuf_alloc(&a, s, rows, cols, 0x01);
        qbuf_alloc(&b, s, rows, cols, 0x02);
        qbuf_alloc(&c, s, rows, cols, 0x03);
        qbuf_quantize(&a, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
        qbuf_quantize(&b, s, QF_DTYPE_BF16, hb, rows, cols, 0.0f);
        qbuf_quantize(&c, s, QF_DTYPE_F16, hh, rows, cols, 0.0f);
        if (!qbuf_same(&a, &b)) fail_msg("%s: BF16 source differs from F32", s->name);
        if (!qbuf_same(&a, &c)) fail_msg("%s: F16 source differs from F32", s->name);
        qbuf_free(&a);
        qbuf_free(&b);
        qbuf_free(&c);
        check_scheme_matrix(s, QF_DTYPE_F16, hh, x, rows, cols, 0.0f);
    }
    free(x);
    free(hb);
    free(hh);
}

/* nvfp4: the tensor_amax argument (max over fused q/k/v or gate/up siblings) sets the global
 * scale G = 448 * 6 / tensor_amax; without it, G comes from the tensor's own absmax. */
static void test_nvfp4_global_scale_from_tensor_or_siblings(void **state)
{
    (void)state;
    const qf_scheme *s = qf_scheme_find("nvfp4a16");
    qf_test_rng r = qf_test_rng_init(23);
    const int64_t rows = 8, cols = 64;
    float x[8 * 64];
    gen_matrix(&r, GEN_UNIFORM, x, rows, cols);
    x[77] = -1.5f; /* uniform in [-1, 1): this is the absmax */
    const float given[] = {0.0f, 1.5f, 3.0f, 1234.5f};
    const float want_g[] = {2688.0f / 1.5f, 2688.0f / 1.5f, 2688.0f / 3.0f, 2688.0f / 1234.5f};
    for (int i = 0; i < 4; i++) {
        qbuf q;
        qbuf_alloc(&q, s, rows, cols, 0xA5);
        qbuf_quantize(&q, s, QF_DTYPE_F32, x, rows, cols, given[i]);
        const float *g = qbuf_tensor(&q, "weight_global_scale", QF_DTYPE_F32);
        assert_true(g[0] == want_g[i]);
        qbuf_free(&q);
        check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, given[i]);
    }
    assert_true(qf_nvfp4_global_scale(0.0f) == 1.0f);
    assert_true(qf_nvfp4_global_scale(INFINITY) == 1.0f);
    assert_true(qf_nvfp4_global_scale(NAN) == 1.0f);
    assert_true(qf_nvfp4_global_scale(448.0f) == 6.0f);
}

int main(void)
{
    init_e4m3_table();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheme_table_matches_expectations),
        cmocka_unit_test(test_metric_and_tolerance_helpers_hand_computed),
        cmocka_unit_test(test_rtn_matches_reference_every_scheme_awkward_shapes),
        cmocka_unit_test(test_rtn_from_bf16_source_matches_reference),
        cmocka_unit_test_setup_teardown(test_rtn_deterministic_across_runs_and_threads, threads_setup,
                                        threads_teardown),
        cmocka_unit_test(test_plans_4096x14336_match_compressed_tensors_layout),
        cmocka_unit_test(test_unfit_shapes_and_bad_inputs_refused),
        cmocka_unit_test(test_zero_rows_and_groups),
        cmocka_unit_test(test_nvfp4_zero_block_scale_is_ct_eps_0x20),
        cmocka_unit_test(test_group_with_huge_outlier),
        cmocka_unit_test(test_asym_negative_only_and_positive_only_groups),
        cmocka_unit_test(test_f32_bf16_f16_sources_identical),
        cmocka_unit_test(test_nvfp4_global_scale_from_tensor_or_siblings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
