/* qf_test_util.h - internal to tests/: helpers shared by the cmocka test programs.
 *
 * Owns three things, all header-inline and free of global state:
 *   1. qf_test_rng: a deterministic, seedable generator (SplitMix64), so that every random
 *      test input is reproducible from its seed on every platform and thread count;
 *   2. metrics whose names are their formulas (qf_max_abs_diff, qf_rmse, qf_nmse, qf_max_ulp),
 *      each unit-tested on a hand-computed case in tests/test_quantize.c;
 *   3. tolerances derived from a number format (half a step of an integer grid, half an ulp
 *      of a small float grid), so a bound in a test says which format property it relies on;
 *   4. QF_TEST_OK(expr): a qforge call must return QF_OK, else the test fails with its message.
 * Nothing here allocates.  Include after <cmocka.h> or on its own.
 */
#ifndef QF_TEST_UTIL_H
#define QF_TEST_UTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "qf_rng.h"

/* ---- qforge calls ----------------------------------------------------------------------- */
/* The call gets `&err_` as its qf_error argument: write QF_TEST_OK(f(..., &err_)).  Needs
 * <cmocka.h> (fail_msg) and qf_error.h at the point of use. */
#define QF_TEST_OK(expr)                                                                                  \
    do {                                                                                                  \
        qf_error err_ = {0};                                                                              \
        qf_status s_ = (expr);                                                                            \
        if (s_ != QF_OK) fail_msg("%s -> %s: %s (%s:%d)", #expr, qf_status_name(s_), err_.msg, __FILE__, __LINE__); \
    } while (0)

/* ---- deterministic RNG ---------------------------------------------------------------- */
/* SplitMix64 (Steele, Lea, Flood 2014): full-period 64-bit generator, good enough for test
 * inputs, trivially portable to Python (tests/interop) when a vector must be reproduced. */
typedef struct qf_test_rng {
    uint64_t state;
} qf_test_rng;

static inline qf_test_rng qf_test_rng_init(uint64_t seed)
{
    qf_test_rng r = {seed};
    return r;
}

static inline uint64_t qf_test_rng_u64(qf_test_rng *r)
{
    return qf_splitmix64(&r->state);
}

static inline uint32_t qf_test_rng_u32(qf_test_rng *r) { return (uint32_t)(qf_test_rng_u64(r) >> 32); }

/* Uniform integer in [0, n), n > 0 (modulo bias below 2^-32 for the n used in tests). */
static inline uint64_t qf_test_rng_below(qf_test_rng *r, uint64_t n) { return qf_test_rng_u64(r) % n; }

/* Uniform double in [0, 1) with 53 random bits. */
static inline double qf_test_rng_unit(qf_test_rng *r) { return (double)(qf_test_rng_u64(r) >> 11) * 0x1p-53; }

/* Uniform float in [lo, hi). */
static inline float qf_test_rng_uniform(qf_test_rng *r, float lo, float hi)
{
    return (float)(lo + (hi - lo) * qf_test_rng_unit(r));
}

/* Standard normal by Box-Muller (one of the pair; the other is discarded for simplicity). */
static inline float qf_test_rng_normal(qf_test_rng *r)
{
    double u1 = 1.0 - qf_test_rng_unit(r); /* (0, 1]: log() stays finite */
    double u2 = qf_test_rng_unit(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A float with uniformly random bits (every sign, exponent, NaN and inf pattern occurs). */
static inline float qf_test_rng_any_f32(qf_test_rng *r)
{
    uint32_t u = qf_test_rng_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- metrics (a = reference, b = candidate) ------------------------------------------- */
/* max_i |a_i - b_i| */
static inline double qf_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

/* sqrt( sum_i (a_i - b_i)^2 / n ): the root of the mean squared error (not divided by n twice). */
static inline double qf_rmse(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return n ? sqrt(s / (double)n) : 0.0;
}

/* mse(a, b) / mse(a, 0) = sum (a_i - b_i)^2 / sum a_i^2  (ggml test-backend-ops' nmse);
 * 0 when both are all zero, inf when only a is. */
static inline double qf_nmse(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)a[i] * (double)a[i];
    }
    if (den == 0) return num == 0 ? 0.0 : INFINITY;
    return num / den;
}

/* Distance in units in the last place between two finite floats: the number of floats
 * strictly after min(a, b) up to and including max(a, b) (+0 and -0 are 0 apart). */
static inline uint64_t qf_ulp_distance_f32(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    /* map sign-magnitude to a monotonic two's-complement line: -0 and +0 both land on 0 */
    int64_t la = ia < 0 ? -(int64_t)(ia & 0x7fffffff) : (int64_t)ia;
    int64_t lb = ib < 0 ? -(int64_t)(ib & 0x7fffffff) : (int64_t)ib;
    return (uint64_t)(la > lb ? la - lb : lb - la);
}

/* max_i ulp_distance(a_i, b_i) */
static inline uint64_t qf_max_ulp(const float *a, const float *b, size_t n)
{
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = qf_ulp_distance_f32(a[i], b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* ---- tolerances derived from number formats ------------------------------------------- */
/* Relative slack for a few float32 roundings on the way (x / scale, q * scale, x - deq):
 * each is at most 2^-24 relative; 2^-21 covers up to eight of them. */
#define QF_TOL_F32_SLACK 0x1p-21

/* Rounding to an integer grid of step `step` (int4/int8 RTN, value inside the clamp range):
 * the nearest grid point is at most half a step away, plus float32 slack on |x| and step.
 * Bound = step/2 + QF_TOL_F32_SLACK * (|x| + step). */
static inline double qf_tol_half_step(double step, double x)
{
    return step / 2 + QF_TOL_F32_SLACK * (fabs(x) + step);
}

/* Half the spacing of a binary float grid with `mbits` explicit mantissa bits and minimum
 * normal exponent `emin` at magnitude |y| (y inside the grid's finite range):
 * spacing = 2^(max(floor(log2|y|), emin) - mbits), result = spacing / 2.
 * E4M3: mbits 3, emin -6; E5M2: 2, -14; E2M1: 1, 0; bf16: 7, -126; fp16: 10, -14. */
static inline double qf_tol_fp_half_ulp(double y, int mbits, int emin)
{
    int e = emin;
    if (y != 0) {
        int k;
        frexp(fabs(y), &k); /* |y| = f * 2^k, f in [0.5, 1): floor(log2|y|) = k - 1 */
        if (k - 1 > emin) e = k - 1;
    }
    return ldexp(1.0, e - mbits) / 2;
}

#endif /* QF_TEST_UTIL_H */
