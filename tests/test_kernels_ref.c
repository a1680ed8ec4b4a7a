/* test_kernels_ref.c - the CPU references of kernels/ (qf_kernels.h), CPU only, run in CI.
 *
 * What is checked, and against what:
 *   (a) qf_ref_dequant against decode(), a decoder of the compressed-tensors layouts written
 *       here from the spec (nibble / byte order, zero-point packing along rows, scale formats),
 *       bit-exactly, on random codes and scales of awkward shapes (n not a multiple of 8 or 16,
 *       INT4 k not a multiple of 8 or of the group);
 *   (b) qf_ref_matmul against decode() followed by a double-precision naive product, within the
 *       float32 summation bound |y - y_exact| <= k * 2^-24 * sum_k |x_k w_k| (gamma_k for
 *       recursive summation of exact-to-half-ulp products; the reference sums in order of k);
 *   (c) qf_ref_quantize byte-identical to the project's RTN, qf_quantize_rtn (quant/), for
 *       every scheme it shares, and its round trip within per-format error bounds (derived
 *       next to each bound below);
 *   (d) the activation quantizers (FP8 and int8 per token, NVFP4 per 16 with a global scale):
 *       exact scales, saturation of the row maximum, per-element bounds, zero rows;
 *   (e) qf_ref_matmul_a8 against a double product of the decoded codes;
 *   (f) argument checks, and the CUDA entry points when no device is present.
 * Random inputs come from a seeded SplitMix64, so every failure reproduces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "qf_kernels.h"
#include "qf_numfmt.h"
#include "qf_rng.h"
#include "qf_quantize.h"
#include "qf_scheme.h"

/* ---- deterministic random inputs ------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;
static uint64_t rng_u64(rng *r)
{
    return qf_splitmix64(&r->s);
}
static double rng_unit(rng *r) { return (double)(rng_u64(r) >> 11) * 0x1p-53; }
static float rng_normal(rng *r)
{
    double u1 = 1.0 - rng_unit(r), u2 = rng_unit(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A weight-like matrix: normal values of scale 0.02 with rare outliers, one row of tiny values
 * (scales near the bottom of the formats), one row of large values. */
static float *random_matrix(rng *r, int64_t n, int64_t k)
{
    float *w = malloc(sizeof(float) * (size_t)(n * k));
    assert_non_null(w);
    for (int64_t i = 0; i < n * k; i++) {
        float v = 0.02f * rng_normal(r);
        if (rng_unit(r) < 0.002) v *= 40.0f;
        w[i] = v;
    }
    if (n > 2)
        for (int64_t c = 0; c < k; c++) w[1 * k + c] *= 1e-6f, w[2 * k + c] *= 300.0f;
    return w;
}

/* ---- an independent decoder of the compressed-tensors layouts (from qf_kernels.h's comment) --- */

static double e2m1_value(unsigned nib)
{
    static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    return (nib & 8 ? -1 : 1) * mag[nib & 7];
}
static double e4m3_value(unsigned c)
{
    unsigned e = (c >> 3) & 15, m = c & 7;
    if ((c & 0x7f) == 0x7f) return NAN;
    double v = e ? ldexp(1.0 + m / 8.0, (int)e - 7) : ldexp(m / 8.0, -6);
    return c & 0x80 ? -v : v;
}
static double bf16_value(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The float32 value of element (r, c) as the spec defines it (one float multiply; NVFP4 scale/G
 * in float first). */
static float decode(const qf_ct_weight *w, int64_t r, int64_t c)
{
    const int64_t k = w->l.k;
    switch (w->l.fmt) {
    case QF_WFMT_INT4: {
        const int64_t g = w->l.group_size, ng = (k + g - 1) / g, words = (k + 7) / 8;
        const uint32_t word = ((const uint32_t *)w->weight)[r * words + c / 8];
        int q = (int)((word >> (4 * (c % 8))) & 15);
        int zp = 8;
        if (w->zero_point) zp = (int)((((const uint32_t *)w->zero_point)[(r / 8) * ng + c / g] >> (4 * (r % 8))) & 15);
        return (float)(q - zp) * (float)bf16_value(((const uint16_t *)w->scale)[r * ng + c / g]);
    }
    case QF_WFMT_FP8:
        return (float)e4m3_value(((const uint8_t *)w->weight)[r * k + c]) *
               (float)bf16_value(((const uint16_t *)w->scale)[w->l.per_tensor ? 0 : r]);
    case QF_WFMT_INT8:
        return (float)((const int8_t *)w->weight)[r * k + c] * (float)bf16_value(((const uint16_t *)w->scale)[w->l.per_tensor ? 0 : r]);
    case QF_WFMT_NVFP4:
    case QF_WFMT_MXFP4: {
        const uint8_t byte = ((const uint8_t *)w->weight)[r * (k / 2) + c / 2];
        const unsigned nib = c % 2 ? byte >> 4 : byte & 15;
        float step;
        if (w->l.fmt == QF_WFMT_NVFP4)
            step = (float)e4m3_value(((const uint8_t *)w->scale)[r * (k / 16) + c / 16]) / w->global_scale;
        else step = (float)ldexp(1.0, (int)((const uint8_t *)w->scale)[r * (k / 32) + c / 32] - 127);
        return (float)e2m1_value(nib) * step;
    }
    }
    return NAN;
}

/* ---- owned buffers for one weight ----------------------------------------------------------- */

typedef struct owned {
    qf_ct_weight w;
    void *weight, *scale, *zero;
} owned;

static void owned_alloc(owned *o, qf_ct_layout l)
{
    qf_ct_sizes sz;
    qf_error err = {0};
    assert_int_equal(qf_ct_layout_check(&l, &sz, &err), QF_OK);
    o->weight = calloc(1, sz.weight + 1);
    o->scale = calloc(1, sz.scale + 1);
    o->zero = sz.zero_point ? calloc(1, sz.zero_point) : NULL;
    assert_true(o->weight && o->scale && (!sz.zero_point || o->zero));
    o->w.l = l;
    o->w.weight = o->weight, o->w.scale = o->scale, o->w.zero_point = o->zero;
    o->w.global_scale = 1.0f;
}
static void owned_free(owned *o)
{
    free(o->weight), free(o->scale), free(o->zero);
}

/* Random codes and valid scales for a layout (for decoding tests, not from quantization). */
static void owned_random(owned *o, rng *r)
{
    qf_ct_sizes sz;
    assert_int_equal(qf_ct_layout_check(&o->w.l, &sz, NULL), QF_OK);
    for (size_t i = 0; i < sz.weight; i++) ((uint8_t *)o->weight)[i] = (uint8_t)rng_u64(r);
    if (o->zero)
        for (size_t i = 0; i < sz.zero_point; i++) ((uint8_t *)o->zero)[i] = (uint8_t)rng_u64(r);
    switch (o->w.l.fmt) {
    case QF_WFMT_INT4:
        for (size_t i = 0; i < sz.scale / 2; i++)
            ((uint16_t *)o->scale)[i] = qf_f32_to_bf16(0.001f + 0.01f * (float)rng_unit(r));
        break;
    case QF_WFMT_FP8:
    case QF_WFMT_INT8:
        for (size_t i = 0; i < sz.scale / 2; i++) /* bf16 */
            ((uint16_t *)o->scale)[i] = qf_f32_to_bf16(1e-3f * (1.0f + (float)rng_unit(r)));
        if (o->w.l.fmt == QF_WFMT_FP8) /* no NaN codes in the weight */
            for (size_t i = 0; i < sz.weight; i++)
                if ((((uint8_t *)o->weight)[i] & 0x7f) == 0x7f) ((uint8_t *)o->weight)[i] ^= 1;
        break;
    case QF_WFMT_NVFP4:
        for (size_t i = 0; i < sz.scale; i++)
            ((uint8_t *)o->scale)[i] = (uint8_t)(rng_u64(r) % 0x7f); /* incl. subnormals, 0 */
        o->w.global_scale = 1000.0f + 3000.0f * (float)rng_unit(r);
        break;
    case QF_WFMT_MXFP4:
        for (size_t i = 0; i < sz.scale; i++) ((uint8_t *)o->scale)[i] = (uint8_t)(100 + rng_u64(r) % 40);
        break;
    }
}

static const qf_ct_layout awkward_layouts[] = {
    {QF_WFMT_INT4, 21, 200, 64, 0, 0},   /* k % 8 == 0, last group partial (200 = 3*64 + 8) */
    {QF_WFMT_INT4, 21, 203, 64, 1, 0},   /* k % 8 != 0, asymmetric, n % 8 != 0 */
    {QF_WFMT_INT4, 37, 384, 128, 1, 0},  /* the w4a16-asym group */
    {QF_WFMT_INT4, 9, 100, 100, 0, 0},   /* one group per row (channel-wise) */
    {QF_WFMT_FP8, 37, 100, 0, 0, 0},     /* per channel */
    {QF_WFMT_FP8, 5, 33, 0, 0, 1},       /* per tensor */
    {QF_WFMT_NVFP4, 37, 208, 0, 0, 0},
    {QF_WFMT_MXFP4, 37, 224, 0, 0, 0},
    {QF_WFMT_INT8, 19, 100, 0, 0, 0},
    {QF_WFMT_INT8, 3, 70, 0, 0, 1},
};
#define N_AWKWARD (sizeof awkward_layouts / sizeof awkward_layouts[0])

static const char *layout_str(const qf_ct_layout *l)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s [%lld, %lld] g%lld%s%s", qf_wfmt_name(l->fmt), (long long)l->n, (long long)l->k,
             (long long)l->group_size, l->asym ? " asym" : "", l->per_tensor ? " per-tensor" : "");
    return buf;
}

/* ---- (a) dequantization against the independent decoder -------------------------------------- */

static void test_dequant_matches_spec_decoder(void **state)
{
    (void)state;
    rng r = {1};
    for (size_t t = 0; t < N_AWKWARD; t++) {
        owned o;
        owned_alloc(&o, awkward_layouts[t]);
        owned_random(&o, &r);
        const int64_t n = o.w.l.n, k = o.w.l.k;
        float *out = malloc(sizeof(float) * (size_t)(n * k));
        qf_error err = {0};
        /* rows [1, n) only, so the row offset is exercised */
        assert_int_equal(qf_ref_dequant(&o.w, 1, n, out, &err), QF_OK);
        for (int64_t i = 1; i < n; i++)
            for (int64_t c = 0; c < k; c++) {
                float want = decode(&o.w, i, c), got = out[(i - 1) * k + c];
                if (memcmp(&want, &got, 4) != 0)
                    fail_msg("%s (%lld, %lld): qf_ref_dequant %.9g, spec decoder %.9g", layout_str(&o.w.l),
                             (long long)i, (long long)c, (double)got, (double)want);
            }
        free(out);
        owned_free(&o);
    }
}

/* ---- (b) matmul against decode + double naive product ------------------------------------------ */

static void check_matmul(const qf_ct_weight *w, int64_t m, rng *r)
{
    const int64_t n = w->l.n, k = w->l.k;
    float *x = malloc(sizeof(float) * (size_t)(m * k)), *y = malloc(sizeof(float) * (size_t)(m * n));
    float *wd = malloc(sizeof(float) * (size_t)(n * k));
    assert_true(x && y && wd);
    for (int64_t i = 0; i < m * k; i++) x[i] = rng_normal(r);
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < k; c++) wd[i * k + c] = decode(w, i, c);
    qf_error err = {0};
    assert_int_equal(qf_ref_matmul(w, x, m, y, &err), QF_OK);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double exact = 0, mag = 0;
            for (int64_t c = 0; c < k; c++) {
                exact += (double)x[i * k + c] * wd[j * k + c];
                mag += fabs((double)x[i * k + c] * wd[j * k + c]);
            }
            /* float32 products round to half an ulp and the k-term sum adds (k - 1) roundings:
             * gamma_k = k u / (1 - k u) with u = 2^-24, applied to sum |x w| */
            double bound = (double)k * 0x1p-24 / (1.0 - (double)k * 0x1p-24) * mag + 1e-37;
            if (!(fabs(y[i * n + j] - exact) <= bound))
                fail_msg("%s m=%lld (%lld, %lld): y %.9g, exact %.9g, |err| %.3g > bound %.3g", layout_str(&w->l),
                         (long long)m, (long long)i, (long long)j, (double)y[i * n + j], exact,
                         fabs(y[i * n + j] - exact), bound);
        }
    free(x), free(y), free(wd);
}

static void test_matmul_matches_naive_product(void **state)
{
    (void)state;
    rng r = {2};
    for (size_t t = 0; t < N_AWKWARD; t++) {
        owned o;
        owned_alloc(&o, awkward_layouts[t]);
        owned_random(&o, &r);
        check_matmul(&o.w, 1, &r);
        check_matmul(&o.w, 5, &r);
        owned_free(&o);
    }
    /* m = 0 is a no-op */
    owned o;
    owned_alloc(&o, awkward_layouts[0]);
    qf_error err = {0};
    assert_int_equal(qf_ref_matmul(&o.w, NULL, 0, NULL, &err), QF_OK);
    owned_free(&o);
}

/* ---- (c) quantization: identical to qf_quantize_rtn, and within the format's error -------------- */

static void test_quantize_identical_to_project_rtn(void **state)
{
    (void)state;
    static const struct {
        const char *scheme;
        qf_ct_layout l;
    } cases[] = {
        {"w4a16", {QF_WFMT_INT4, 40, 384, 128, 0, 0}},  {"w4a16-asym", {QF_WFMT_INT4, 40, 384, 128, 1, 0}},
        {"nvfp4a16", {QF_WFMT_NVFP4, 40, 208, 0, 0, 0}}, {"mxfp4a16", {QF_WFMT_MXFP4, 40, 224, 0, 0, 0}},
        {"fp8-dynamic", {QF_WFMT_FP8, 40, 100, 0, 0, 0}}, {"w8a8", {QF_WFMT_INT8, 40, 100, 0, 0, 0}},
    };
    rng r = {3};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const qf_scheme *s = qf_scheme_find(cases[t].scheme);
        assert_non_null(s);
        const qf_ct_layout *l = &cases[t].l;
        float *w = random_matrix(&r, l->n, l->k);
        qf_error err = {0};
        qf_quant_plan plan;
        assert_int_equal(qf_quant_plan_linear(s, l->n, l->k, &plan, &err), QF_OK);
        qf_quant_buffers bufs;
        memset(&bufs, 0, sizeof bufs);
        for (int i = 0; i < plan.n; i++) assert_non_null(bufs.data[i] = calloc(1, plan.t[i].nbytes + 1));
        assert_int_equal(qf_quantize_rtn(s, QF_DTYPE_F32, w, l->n, l->k, 0.0f, &plan, &bufs, &err), QF_OK);
        owned o;
        owned_alloc(&o, *l);
        float G = 0;
        assert_int_equal(qf_ref_quantize(l, w, 0.0f, o.weight, o.scale, o.zero, &G, &err), QF_OK);
        qf_ct_sizes sz;
        assert_int_equal(qf_ct_layout_check(l, &sz, NULL), QF_OK);
        const struct {
            qf_packed_role role;
            const void *mine;
            size_t bytes;
        } cmp[] = {{QF_ROLE_WEIGHT, o.weight, sz.weight}, {QF_ROLE_SCALE, o.scale, sz.scale},
                   {QF_ROLE_ZERO, o.zero, sz.zero_point}, {QF_ROLE_GLOBAL, &G, 4}};
        for (size_t c = 0; c < 4; c++) {
            int i = qf_quant_plan_find(&plan, cmp[c].role);
            if (i < 0) continue;
            assert_int_equal(plan.t[i].nbytes, cmp[c].bytes);
            const uint8_t *a = bufs.data[i], *b = cmp[c].mine;
            for (size_t j = 0; j < cmp[c].bytes; j++) {
                if (a[j] != b[j])
                    fail_msg("%s: tensor %s byte %zu: qf_quantize_rtn 0x%02x, qf_ref_quantize 0x%02x", s->name,
                             plan.t[i].suffix, j, a[j], b[j]);
            }
        }
        for (int i = 0; i < plan.n; i++) free(bufs.data[i]);
        owned_free(&o);
        free(w);
    }
}

/* largest distance from v (>= 0) to its nearest E2M1 magnitude, for v within [0, 6]: half the
 * spacing of the grid around v (spacing 0.5 below 2, 1 below 4, 2 below 6) */
static double e2m1_half_step(double v) { return v <= 2 ? 0.25 : v <= 4 ? 0.5 : 1.0; }

static void test_quantize_round_trip_error_bounds(void **state)
{
    (void)state;
    rng r = {4};
    for (size_t t = 0; t < N_AWKWARD; t++) {
        const qf_ct_layout *l = &awkward_layouts[t];
        const int64_t n = l->n, k = l->k;
        float *w = random_matrix(&r, n, k), *dq = malloc(sizeof(float) * (size_t)(n * k));
        owned o;
        owned_alloc(&o, *l);
        qf_error err = {0};
        assert_int_equal(qf_ref_quantize(l, w, 0.0f, o.weight, o.scale, o.zero, &o.w.global_scale, &err), QF_OK);
        assert_int_equal(qf_ref_dequant(&o.w, 0, n, dq, &err), QF_OK);
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < k; c++) {
                const double x = w[i * k + c], d = dq[i * k + c];
                double bound = 0, step;
                switch (l->fmt) {
                case QF_WFMT_INT4: {
                    const int64_t g = l->group_size, ng = (k + g - 1) / g;
                    step = bf16_value(((uint16_t *)o.scale)[i * ng + c / g]);
                    /* sym: s = bf16(amax / 7) is within 2^-9 relative of amax / 7, so |x| / s <= 7 (1 + 2^-8) < 7.5
                     * and rint never leaves [-8, 7] by more than rounding: half a step.  asym: the range
                     * (hi - lo) / s = 15 (1 +- 2^-8) plus the rounded zero point's offset of at most 1/2
                     * lets the top value land 15 * 2^-8 past the clamp: 0.5 + 15 * 2^-8 steps. */
                    bound = step * (l->asym ? 0.5 + 16 * 0x1p-8 : 0.5) * (1 + 1e-6);
                    break;
                }
                case QF_WFMT_INT8:
                    step = (float)bf16_value(((uint16_t *)o.scale)[l->per_tensor ? 0 : i]);
                    bound = step * 0.5 * (1 + 1e-6); /* amax / s = 127 exactly up to one rounding */
                    break;
                case QF_WFMT_FP8:
                    step = (float)bf16_value(((uint16_t *)o.scale)[l->per_tensor ? 0 : i]);
                    /* E4M3 keeps 3 mantissa bits: half an ulp is <= |v| 2^-4 for normals and 2^-10 below
                     * 2^-6 (subnormal spacing 2^-9); the row maximum maps to 448 +- one float rounding */
                    bound = step * fmax(fabs(x) / step * 0x1p-4, 0x1p-10) * (1 + 1e-6) + 1e-30;
                    break;
                case QF_WFMT_NVFP4: {
                    step = e4m3_value(((uint8_t *)o.scale)[i * (k / 16) + c / 16]) / o.w.global_scale;
                    /* E4M3 rounding of the block scale (2^-4 relative) lets the block maximum reach
                     * 6 / (1 - 2^-4) = 6.4 steps: clamped to 6, an error of 0.4 steps < 1 */
                    const double v = fabs(x) / step;
                    bound = step * e2m1_half_step(v) * (1 + 1e-6);
                    break;
                }
                case QF_WFMT_MXFP4: {
                    step = ldexp(1.0, ((uint8_t *)o.scale)[i * (k / 32) + c / 32] - 127);
                    /* e = floor(log2 amax) - 2 puts the block maximum in [4, 8) steps: values in (6, 8)
                     * saturate to 6 (the OCP MX rule), an error of up to 2 steps */
                    const double v = fabs(x) / step;
                    bound = step * (v <= 6 ? e2m1_half_step(v) : v - 6) * (1 + 1e-6);
                    break;
                }
                }
                if (!(fabs(x - d) <= bound))
                    fail_msg("%s (%lld, %lld): x %.9g -> %.9g, |err| %.3g > bound %.3g", layout_str(l), (long long)i,
                             (long long)c, x, d, fabs(x - d), bound);
            }
        owned_free(&o);
        free(w), free(dq);
    }
}

static void test_quantize_zero_and_edge_groups(void **state)
{
    (void)state;
    qf_error err = {0};
    /* NVFP4: an all-zero block gets compressed-tensors' replacement scale 0.125 = E4M3 0x20 */
    {
        qf_ct_layout l = {QF_WFMT_NVFP4, 1, 32, 0, 0, 0};
        float w[32] = {0};
        for (int i = 16; i < 32; i++) w[i] = (float)(i - 20);
        uint8_t q[16], sc[2];
        float G = 0;
        assert_int_equal(qf_ref_quantize(&l, w, 0.0f, q, sc, NULL, &G, &err), QF_OK);
        assert_int_equal(sc[0], 0x20);
        assert_true(e4m3_value(0x20) == 0.125);
        for (int i = 0; i < 8; i++) assert_int_equal(q[i], 0);
        assert_true(G == 448.0f * 6.0f / 11.0f);
    }
    /* INT4: an all-zero group has scale 0, codes 8 (sym) / zero point 0 (asym) */
    {
        qf_ct_layout l = {QF_WFMT_INT4, 8, 16, 8, 1, 0};
        float w[8 * 16] = {0};
        for (int c = 8; c < 16; c++) w[c] = (float)c; /* row 0 group 1 nonzero, all positive */
        uint32_t q[8 * 2], zp[2];
        uint16_t sc[8 * 2];
        assert_int_equal(qf_ref_quantize(&l, w, 0.0f, q, sc, zp, NULL, &err), QF_OK);
        assert_int_equal(sc[0], 0);
        assert_int_equal(zp[0], 0);
        /* group 1 of row 0: lo widened to 0, scale bf16(15 / 15) = 1, zero 0, codes = values */
        assert_int_equal(sc[1], qf_f32_to_bf16(1.0f));
        assert_int_equal(q[1], 0xFEDCBA98u);
    }
    /* FP8: the row maximum maps to +-448 (the bf16 scale is off by < 2^-9: 448 is still nearest) */
    {
        qf_ct_layout l = {QF_WFMT_FP8, 2, 4, 0, 0, 0};
        float w[8] = {0.1f, -3.0f, 0.2f, 1.0f, 0, 0, 0, 0};
        uint8_t q[8];
        uint16_t sc[2];
        assert_int_equal(qf_ref_quantize(&l, w, 0.0f, q, sc, NULL, NULL, &err), QF_OK);
        assert_int_equal(sc[0], qf_f32_to_bf16(3.0f / 448.0f));
        assert_int_equal(q[1], 0xfe);
        assert_int_equal(sc[1], 0);
        for (int i = 4; i < 8; i++) assert_int_equal(q[i], 0);
    }
    /* NVFP4 global scale: 1 for an all-zero tensor; the given tensor_amax wins when > 0 */
    assert_true(qf_ref_nvfp4_global(0.0f) == 1.0f);
    assert_true(qf_ref_nvfp4_global(INFINITY) == 1.0f);
    assert_true(qf_ref_nvfp4_global(NAN) == 1.0f);
    assert_true(qf_ref_nvfp4_global(2.0f) == 1344.0f);
}

/* ---- (d) activation quantizers ----------------------------------------------------------------- */

static void test_activation_quantizers(void **state)
{
    (void)state;
    rng r = {5};
    const int64_t m = 6, k = 112; /* k % 16 == 0 for NVFP4 */
    float *x = malloc(sizeof(float) * (size_t)(m * k)), *fq = malloc(sizeof(float) * (size_t)(m * k));
    uint8_t *q8 = malloc((size_t)(m * k)), *p4 = malloc((size_t)(m * k / 2)), *s4 = malloc((size_t)(m * k / 16));
    int8_t *qi = malloc((size_t)(m * k));
    float sx[6], si[6];
    for (int64_t i = 0; i < m * k; i++) x[i] = 3.0f * rng_normal(&r);
    for (int64_t c = 0; c < k; c++) x[2 * k + c] = 0.0f;      /* a zero row */
    for (int64_t c = 0; c < k; c++) x[3 * k + c] *= 1e-20f;   /* a tiny row */
    for (int64_t c = 0; c < k; c++) x[4 * k + c] *= 1e4f;     /* a large row */
    qf_ref_quant_act_fp8(x, m, k, q8, sx);
    qf_ref_quant_act_int8(x, m, k, qi, si);
    for (int64_t i = 0; i < m; i++) {
        float amax = 0;
        int64_t at = 0;
        for (int64_t c = 0; c < k; c++)
            if (fabsf(x[i * k + c]) > amax) amax = fabsf(x[i * k + c]), at = i * k + c;
        assert_true(sx[i] == amax / 448.0f);
        assert_true(si[i] == amax / 127.0f);
        if (amax > 0) {
            assert_int_equal(q8[at] & 0x7f, 0x7e); /* the row maximum saturates exactly to 448 */
            assert_int_equal(abs(qi[at]), 127);
        }
        for (int64_t c = 0; c < k; c++) {
            const double v = x[i * k + c];
            const double d8 = e4m3_value(q8[i * k + c]) * sx[i], di = (double)qi[i * k + c] * si[i];
            /* bounds as for FP8 / INT8 weights (test_quantize_round_trip_error_bounds) */
            const double b8 = amax > 0 ? sx[i] * fmax(fabs(v) / sx[i] * 0x1p-4, 0x1p-10) * (1 + 1e-6) : 0;
            const double bi = si[i] * 0.5 * (1 + 1e-6);
            if (!(fabs(v - d8) <= b8))
                fail_msg("fp8 act (%lld, %lld): %.9g -> %.9g", (long long)i, (long long)c, v, d8);
            if (!(fabs(v - di) <= bi))
                fail_msg("int8 act (%lld, %lld): %.9g -> %.9g", (long long)i, (long long)c, v, di);
        }
    }
    /* NVFP4 with a calibrated global scale from a smaller absmax: blocks above it saturate the
     * E4M3 block scale at 448 (values clamp), blocks below follow the weight bounds */
    float tmax = 0;
    for (int64_t i = 0; i < m * k; i++)
        if (i / k != 4) tmax = fmaxf(tmax, fabsf(x[i]));
    const float G = qf_ref_nvfp4_global(tmax);
    qf_ref_quant_act_nvfp4(x, m, k, G, p4, s4);
    qf_ref_fakequant_act_nvfp4(x, m, k, G, fq);
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < k; c++) {
            const uint8_t byte = p4[(i * k + c) / 2];
            const float step = (float)e4m3_value(s4[(i * k + c) / 16]) / G;
            const float want = (float)e2m1_value(c % 2 ? byte >> 4 : byte & 15) * step;
            if (memcmp(&want, &fq[i * k + c], 4) != 0)
                fail_msg("nvfp4 fake-quant (%lld, %lld) %.9g != dequant(quant) %.9g", (long long)i, (long long)c,
                         (double)fq[i * k + c], (double)want);
            if (i == 4) continue; /* the large row is outside the calibrated range */
            const double v = fabs(x[i * k + c]) / step;
            const double bound = step * e2m1_half_step(v) * (1 + 1e-6);
            if (!(fabs(x[i * k + c] - fq[i * k + c]) <= bound))
                fail_msg("nvfp4 act (%lld, %lld): %.9g -> %.9g", (long long)i, (long long)c, (double)x[i * k + c],
                         (double)fq[i * k + c]);
        }
    /* in place */
    memcpy(fq, x, sizeof(float) * (size_t)(m * k));
    qf_ref_fakequant_act_nvfp4(fq, m, k, G, fq);
    float *fq2 = malloc(sizeof(float) * (size_t)(m * k));
    qf_ref_fakequant_act_nvfp4(x, m, k, G, fq2);
    assert_memory_equal(fq, fq2, sizeof(float) * (size_t)(m * k));
    free(x), free(fq), free(fq2), free(q8), free(p4), free(s4), free(qi);
}

/* ---- (e) W8A8 product from quantized activations ------------------------------------------------ */

static void test_matmul_a8(void **state)
{
    (void)state;
    rng r = {6};
    for (int fmt = 0; fmt < 2; fmt++) {
        qf_ct_layout l = {fmt ? QF_WFMT_INT8 : QF_WFMT_FP8, 23, 96, 0, 0, 0};
        const int64_t m = 4, n = l.n, k = l.k;
        float *w = random_matrix(&r, n, k), *x = malloc(sizeof(float) * (size_t)(m * k));
        float *y = malloc(sizeof(float) * (size_t)(m * n)), sxs[4];
        uint8_t *xq = malloc((size_t)(m * k));
        for (int64_t i = 0; i < m * k; i++) x[i] = rng_normal(&r);
        owned o;
        owned_alloc(&o, l);
        qf_error err = {0};
        assert_int_equal(qf_ref_quantize(&l, w, 0, o.weight, o.scale, NULL, NULL, &err), QF_OK);
        if (fmt) qf_ref_quant_act_int8(x, m, k, (int8_t *)xq, sxs);
        else qf_ref_quant_act_fp8(x, m, k, xq, sxs);
        assert_int_equal(qf_ref_matmul_a8(&o.w, xq, sxs, m, y, &err), QF_OK);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double dot = 0, mag = 0;
                for (int64_t c = 0; c < k; c++) {
                    double a = fmt ? (double)((int8_t *)xq)[i * k + c] : e4m3_value(xq[i * k + c]);
                    double b =
                        fmt ? (double)((int8_t *)o.weight)[j * k + c] : e4m3_value(((uint8_t *)o.weight)[j * k + c]);
                    dot += a * b, mag += fabs(a * b);
                }
                const double s = (double)sxs[i] * bf16_value(((uint16_t *)o.scale)[j]);
                /* int8: exact integer sum; fp8: exact products, k float roundings; then two
                 * float multiplies by the scales (2 more roundings of the result) */
                const double bound = s * mag * ((fmt ? 0 : k) + 3) * 0x1p-24 + 1e-37;
                if (!(fabs(y[i * n + j] - s * dot) <= bound))
                    fail_msg("%s a8 (%lld, %lld): %.9g vs %.9g", qf_wfmt_name(l.fmt), (long long)i, (long long)j,
                             (double)y[i * n + j], s * dot);
            }
        /* other formats are refused */
        owned o4;
        owned_alloc(&o4, awkward_layouts[0]);
        assert_int_equal(qf_ref_matmul_a8(&o4.w, xq, sxs, m, y, &err), QF_ERR_USAGE);
        owned_free(&o4);
        owned_free(&o);
        free(w), free(x), free(y), free(xq);
    }
}

/* ---- (f) argument checks, CUDA entry points without a device ------------------------------------ */

static void test_layout_checks_and_bad_arguments(void **state)
{
    (void)state;
    qf_error err = {0};
    qf_ct_sizes sz;
    qf_ct_layout l = {QF_WFMT_INT4, 4096, 14336, 128, 1, 0};
    assert_int_equal(qf_ct_layout_check(&l, &sz, &err), QF_OK);
    assert_int_equal(sz.weight, (size_t)4096 * 14336 / 2);
    assert_int_equal(sz.scale, (size_t)4096 * 112 * 2);
    assert_int_equal(sz.zero_point, (size_t)512 * 112 * 4);
    qf_ct_layout nv = {QF_WFMT_NVFP4, 10, 40, 0, 0, 0};
    assert_int_equal(qf_ct_layout_check(&nv, &sz, &err), QF_ERR_USAGE); /* k % 16 */
    assert_non_null(strstr(err.msg, "multiple of 16"));
    qf_ct_layout mx = {QF_WFMT_MXFP4, 10, 48, 0, 0, 0};
    assert_int_equal(qf_ct_layout_check(&mx, &sz, &err), QF_ERR_USAGE); /* k % 32 */
    qf_ct_layout bad_asym = {QF_WFMT_FP8, 10, 48, 0, 1, 0};
    assert_int_equal(qf_ct_layout_check(&bad_asym, &sz, &err), QF_ERR_USAGE);
    qf_ct_layout bad_g = {QF_WFMT_INT4, 10, 48, 0, 0, 0};
    assert_int_equal(qf_ct_layout_check(&bad_g, &sz, &err), QF_ERR_USAGE);
    qf_ct_layout bad_fmt = {(qf_wfmt)42, 10, 48, 0, 0, 0};
    assert_int_equal(qf_ct_layout_check(&bad_fmt, &sz, &err), QF_ERR_USAGE);
    qf_ct_layout empty = {QF_WFMT_FP8, 0, 48, 0, 0, 0};
    assert_int_equal(qf_ct_layout_check(&empty, &sz, &err), QF_ERR_USAGE);
    assert_string_equal(qf_wfmt_name(QF_WFMT_NVFP4), "nvfp4");

    owned o;
    owned_alloc(&o, awkward_layouts[1]);
    float out[203];
    assert_int_equal(qf_ref_dequant(&o.w, 5, 3, out, &err), QF_ERR_USAGE);
    assert_int_equal(qf_ref_dequant(&o.w, 20, 22, out, &err), QF_ERR_USAGE);
    qf_ct_weight nozp = o.w;
    nozp.zero_point = NULL;
    assert_int_equal(qf_ref_dequant(&nozp, 0, 1, out, &err), QF_ERR_USAGE);
    assert_non_null(strstr(err.msg, "zero_point"));
    assert_int_equal(qf_ref_matmul(&o.w, out, -1, out, &err), QF_ERR_USAGE);
    assert_int_equal(qf_ref_quantize(&o.w.l, NULL, 0, o.weight, o.scale, o.zero, NULL, &err), QF_ERR_USAGE);
    owned_free(&o);
}

static void test_cuda_entry_points_without_device(void **state)
{
    (void)state;
    if (qf_cuda_device_count() > 0) skip(); /* gpu_test_kernels covers a present device */
    qf_error err = {0};
    qf_cuda_ctx *ctx = (qf_cuda_ctx *)&err; /* must be overwritten */
    qf_status st = qf_cuda_ctx_create(0, &ctx, &err);
    assert_int_not_equal(st, QF_OK);
    assert_null(ctx);
    assert_true(err.msg[0] != 0);
    qf_cuda_ctx_free(NULL);
    assert_int_not_equal(qf_bench_kernels(stdout, 0, &err), QF_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dequant_matches_spec_decoder),
        cmocka_unit_test(test_matmul_matches_naive_product),
        cmocka_unit_test(test_quantize_identical_to_project_rtn),
        cmocka_unit_test(test_quantize_round_trip_error_bounds),
        cmocka_unit_test(test_quantize_zero_and_edge_groups),
        cmocka_unit_test(test_activation_quantizers),
        cmocka_unit_test(test_matmul_a8),
        cmocka_unit_test(test_layout_checks_and_bad_arguments),
        cmocka_unit_test(test_cuda_entry_points_without_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
