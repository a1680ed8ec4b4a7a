/* test_numfmt.c - quant/qf_numfmt.h against independent references, exhaustively where the
 * domain is small.
 *
 * Every expected value here comes from the test itself, not from qforge:
 *   - decoders: ref_*_value() compute the value of a code from its bit fields in double, written
 *     from the format definitions (IEEE 754 binary16, bfloat16, OCP FP8 E4M3FN/E5M2, OCP FP4
 *     E2M1, OCP E8M0), as sign * 0.m * 2^(1-bias) or sign * 1.m * 2^(e-bias);
 *   - encoders: ref_nearest_even() brackets the input between two adjacent codes by binary
 *     search over the (independently decoded) positive codes and picks the nearer one, ties to
 *     the even code: the definition of round-to-nearest-even, without bit tricks;
 *   - midpoints between every pair of adjacent representable values are constructed directly
 *     and their expected codes follow from the parity of the pair.
 * `test_numfmt --dump-tables DIR` writes qforge's decode tables and some encodings as raw
 * little-endian files for the ml_dtypes cross-check in tests/interop/check_numfmt_tables.py.
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

#include "qf_numfmt.h"
#include "qf_test_util.h"

/* ==== independent reference decoders (positive magnitude codes and specials) ============ */

/* Finite magnitude of a code with `ebits` exponent and `mbits` mantissa bits and the given
 * bias: subnormal (e == 0) 0.m * 2^(1 - bias), normal 1.m * 2^(e - bias). */
static double ref_minifloat_mag(uint32_t mag, int mbits, int bias)
{
    uint32_t e = mag >> mbits, m = mag & ((1u << mbits) - 1u);
    double frac = (double)m / (double)(1u << mbits);
    if (e == 0) return frac * pow(2.0, 1 - bias);
    return (1.0 + frac) * pow(2.0, (double)e - bias);
}

static double ref_signed(uint32_t sign, double v) { return sign ? -v : v; }

static double ref_bf16_value(uint32_t c)
{
    uint32_t e = (c >> 7) & 0xff, m = c & 0x7f;
    if (e == 0xff) return m ? NAN : ref_signed(c & 0x8000, INFINITY);
    return ref_signed(c & 0x8000, ref_minifloat_mag(c & 0x7fff, 7, 127));
}
static double ref_f16_value(uint32_t c)
{
    uint32_t e = (c >> 10) & 0x1f, m = c & 0x3ff;
    if (e == 0x1f) return m ? NAN : ref_signed(c & 0x8000, INFINITY);
    return ref_signed(c & 0x8000, ref_minifloat_mag(c & 0x7fff, 10, 15));
}
/* E4M3FN: no infinities, only S.1111.111 is NaN; bias 7. */
static double ref_e4m3_value(uint32_t c)
{
    if ((c & 0x7f) == 0x7f) return NAN;
    return ref_signed(c & 0x80, ref_minifloat_mag(c & 0x7f, 3, 7));
}
/* E5M2: IEEE-like, exponent 31 is inf (m = 0) or NaN; bias 15. */
static double ref_e5m2_value(uint32_t c)
{
    uint32_t e = (c >> 2) & 0x1f, m = c & 3;
    if (e == 0x1f) return m ? NAN : ref_signed(c & 0x80, INFINITY);
    return ref_signed(c & 0x80, ref_minifloat_mag(c & 0x7f, 2, 15));
}
/* E2M1: bias 1, no specials; bit 3 is the sign. */
static double ref_e2m1_value(uint32_t c) { return ref_signed(c & 8, ref_minifloat_mag(c & 7, 1, 1)); }

/* ==== independent reference encoder: nearest, ties to even code ========================== */
typedef struct ref_fmt {
    double (*value)(uint32_t code); /* decoder for positive codes (values increase with code) */
    uint32_t maxcode;               /* largest finite positive code */
    int ieee_inf;                   /* 1: above max lies inf (code inf_code, IEEE rounding) */
    uint32_t inf_code;
    double beyond;                  /* IEEE: the value inf stands for when rounding, 2^(emax+1) */
    uint32_t sign_bit;
} ref_fmt;

static const ref_fmt REF_BF16 = {ref_bf16_value, 0x7f7f, 1, 0x7f80, 0x1p128, 0x8000};
static const ref_fmt REF_F16 = {ref_f16_value, 0x7bff, 1, 0x7c00, 65536.0, 0x8000};
/* FP8/FP4 encoders in qforge saturate (clamp to max finite) instead of producing inf/NaN. */
static const ref_fmt REF_E4M3 = {ref_e4m3_value, 0x7e, 0, 0, 0, 0x80};
static const ref_fmt REF_E5M2 = {ref_e5m2_value, 0x7b, 0, 0, 0, 0x80};
static const ref_fmt REF_E2M1 = {ref_e2m1_value, 0x7, 0, 0, 0, 0x8};

/* Positive code nearest to a >= 0 (a not NaN). */
static uint32_t ref_nearest_even_mag(const ref_fmt *f, double a)
{
    uint32_t lo, hi;
    double lov, hiv;
    double maxv = f->value(f->maxcode);
    if (a >= maxv) {
        if (!f->ieee_inf) return f->maxcode; /* saturate */
        if (a >= f->beyond) return f->inf_code;
        lo = f->maxcode, hi = f->inf_code, lov = maxv, hiv = f->beyond;
    } else {
        lo = 0, hi = f->maxcode; /* invariant: value(lo) <= a < value(hi) */
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (f->value(mid) <= a) lo = mid;
            else hi = mid;
        }
        lov = f->value(lo), hiv = f->value(hi);
    }
    double dl = a - lov, dh = hiv - a; /* exact in double: both ends are close to a */
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1u) ? hi : lo;
}

static uint32_t ref_encode(const ref_fmt *f, float x)
{
    uint32_t s = signbit(x) ? f->sign_bit : 0;
    return s | ref_nearest_even_mag(f, fabs((double)x));
}

/* ==== helpers ========================================================================= */
static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A float of random sign whose magnitude is log-uniform in [2^elo, 2^ehi). */
static float rand_logmag(qf_test_rng *r, double elo, double ehi)
{
    double e = elo + (ehi - elo) * qf_test_rng_unit(r);
    float v = (float)pow(2.0, e);
    return (qf_test_rng_u32(r) & 1) ? -v : v;
}

/* The standing edge cases of float32 for every encoder. */
static const uint32_t EDGE_BITS[] = {
    0x00000000u, 0x80000000u,             /* +0, -0 */
    0x00000001u, 0x80000001u, 0x007fffffu, /* smallest / largest fp32 subnormal */
    0x00800000u, 0x3f800000u, 0xbf800000u, /* FLT_MIN, 1, -1 */
    0x7f7fffffu, 0xff7fffffu,             /* +-FLT_MAX */
    0x7f800000u, 0xff800000u,             /* +-inf */
};

/* Compare an encoder against the reference on one input; NaN inputs must give a NaN code of
 * the same sign.  Returns 1 when it matched (failures are reported by the caller). */
typedef uint32_t (*enc_fn)(float);

static uint32_t enc_bf16(float x) { return qf_f32_to_bf16(x); }
static uint32_t enc_f16(float x) { return qf_f32_to_f16(x); }
static uint32_t enc_e4m3(float x) { return qf_f32_to_e4m3(x); }
static uint32_t enc_e5m2(float x) { return qf_f32_to_e5m2(x); }
static uint32_t enc_e2m1(float x) { return qf_f32_to_e2m1(x); }

static void check_encode_one(const ref_fmt *f, enc_fn enc, float x, const char *what)
{
    uint32_t got = enc(x);
    if (isnan(x)) {
        double v = f->value(got & ~f->sign_bit);
        if (!isnan(v) || ((got & f->sign_bit) != 0) != (signbit(x) != 0)) {
            uint32_t u;
            memcpy(&u, &x, 4);
            fail_msg("%s: NaN 0x%08x encoded to 0x%x, not a NaN of the same sign", what, u, got);
        }
        return;
    }
    uint32_t want = ref_encode(f, x);
    if (got != want) {
        uint32_t u;
        memcpy(&u, &x, 4);
        fail_msg("%s(%.9g = 0x%08x): got 0x%x, expected 0x%x (nearest, ties to even)", what, (double)x, u, got, want);
    }
}

/* For every pair of adjacent positive codes (c, c + 1), c + 1 <= top: the midpoint maps to the
 * even code of the two, the next float above it to c + 1, the next float below to c; the same
 * mirrored for negative values.  `top_value` stands for value(top) (inf's rounding value for
 * IEEE formats).  Returns the number of midpoints checked. */
static int check_all_midpoints(const ref_fmt *f, enc_fn enc, uint32_t top, double top_value, const char *what)
{
    int n = 0;
    for (uint32_t c = 0; c < top; c++) {
        double lo = f->value(c), hi = (c + 1 == top) ? top_value : f->value(c + 1);
        float mid = (float)((lo + hi) / 2);
        assert_true((double)mid == (lo + hi) / 2); /* the midpoint must be exact in fp32 */
        uint32_t even = (c & 1u) ? c + 1 : c;
        float above = nextafterf(mid, INFINITY), below = nextafterf(mid, 0.0f);
        struct { float x; uint32_t want; const char *where; } cases[] = {
            {mid, even, "midpoint"}, {above, c + 1, "above midpoint"}, {below, c, "below midpoint"},
            {-mid, f->sign_bit | even, "-midpoint"}, {-above, f->sign_bit | (c + 1), "-above midpoint"},
            {-below, f->sign_bit | c, "-below midpoint"},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            uint32_t got = enc(cases[k].x);
            if (got != cases[k].want)
                fail_msg("%s %s between codes 0x%x and 0x%x (x = %.9g): got 0x%x, expected 0x%x", what,
                         cases[k].where, c, c + 1, (double)cases[k].x, got, cases[k].want);
        }
        n++;
    }
    return n;
}

/* Decoder check: every code's decoded float equals the reference value exactly (sign of
 * zero included); NaN codes decode to NaN. */
typedef float (*dec_fn)(uint32_t);
static float dec_bf16(uint32_t c) { return qf_bf16_to_f32((uint16_t)c); }
static float dec_f16(uint32_t c) { return qf_f16_to_f32((uint16_t)c); }
static float dec_e4m3(uint32_t c) { return qf_e4m3_to_f32((uint8_t)c); }
static float dec_e5m2(uint32_t c) { return qf_e5m2_to_f32((uint8_t)c); }
static float dec_e2m1(uint32_t c) { return qf_e2m1_to_f32((uint8_t)c); }
static float dec_e8m0(uint32_t c) { return qf_e8m0_to_f32((uint8_t)c); }

static int check_decode_all(double (*ref)(uint32_t), dec_fn dec, uint32_t ncodes, const char *what)
{
    int nans = 0;
    for (uint32_t c = 0; c < ncodes; c++) {
        double want = ref(c);
        float got = dec(c);
        if (isnan(want)) {
            if (!isnan(got)) fail_msg("%s decode 0x%x: got %.9g, expected NaN", what, c, (double)got);
            nans++;
            continue;
        }
        if ((double)got != want || !signbit(got) != !signbit(want))
            fail_msg("%s decode 0x%x: got %.9g, expected %.9g", what, c, (double)got, want);
    }
    return nans;
}

/* Round trip: encode(decode(c)) == c for every non-NaN code (skip_inf: the saturating FP8
 * encoders map inf to max, checked separately). */
static void check_roundtrip_all(dec_fn dec, enc_fn enc, uint32_t ncodes, int skip_inf, const char *what)
{
    for (uint32_t c = 0; c < ncodes; c++) {
        float v = dec(c);
        if (isnan(v) || (skip_inf && isinf(v))) continue;
        uint32_t back = enc(v);
        if (back != c) fail_msg("%s round trip 0x%x -> %.9g -> 0x%x", what, c, (double)v, back);
    }
}

/* ==== bf16 ============================================================================= */
static void test_bf16_decode_all_65536(void **state)
{
    (void)state;
    int nans = check_decode_all(ref_bf16_value, dec_bf16, 65536, "bf16");
    assert_int_equal(nans, 2 * 127); /* exponent 0xff, mantissa 1..127, both signs */
    /* spot pins so a broken reference cannot pass silently */
    assert_true(qf_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(qf_bf16_to_f32(0xc040) == -3.0f);
    assert_true(qf_bf16_to_f32(0x0001) == 0x1p-133f);
    assert_true(qf_bf16_to_f32(0x7f7f) == 0x1.fep127f);
}

static void test_bf16_roundtrip_all_65536_nan_stays_nan(void **state)
{
    (void)state;
    check_roundtrip_all(dec_bf16, enc_bf16, 65536, 0, "bf16");
    for (uint32_t c = 0; c < 65536; c++) {
        float v = qf_bf16_to_f32((uint16_t)c);
        if (!isnan(v)) continue;
        uint16_t back = qf_f32_to_bf16(v);
        assert_true(isnan(qf_bf16_to_f32(back)));
        assert_int_equal(back & 0x8000, c & 0x8000);
    }
}

static void test_bf16_encode_every_midpoint_ties_to_even(void **state)
{
    (void)state;
    /* pairs of adjacent finite codes, plus (max, inf) where inf rounds like 2^128 */
    int n = check_all_midpoints(&REF_BF16, enc_bf16, 0x7f80, 0x1p128, "bf16");
    assert_int_equal(n, 0x7f80);
    assert_int_equal(qf_f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80); /* 1 + 2^-8: tie to even 1.0 */
    assert_int_equal(qf_f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82); /* 1 + 3*2^-8: tie up to even */
    assert_int_equal(qf_f32_to_bf16(f32_from_bits(0x3f808001u)), 0x3f81); /* just above the tie */
    assert_int_equal(qf_f32_to_bf16(f32_from_bits(0x7f7f8000u)), 0x7f80); /* max + half ulp -> inf */
    assert_int_equal(qf_f32_to_bf16(f32_from_bits(0x7f7f7fffu)), 0x7f7f);
}

static void test_bf16_encode_random_and_edges_vs_reference(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0xbf16);
    for (size_t i = 0; i < sizeof EDGE_BITS / sizeof EDGE_BITS[0]; i++)
        check_encode_one(&REF_BF16, enc_bf16, f32_from_bits(EDGE_BITS[i]), "bf16");
    const uint32_t nan_bits[] = {0x7f800001u, 0x7fc00000u, 0xffc00000u, 0x7fffffffu, 0xff800001u, 0x7f80ffffu};
    for (size_t i = 0; i < sizeof nan_bits / sizeof nan_bits[0]; i++)
        check_encode_one(&REF_BF16, enc_bf16, f32_from_bits(nan_bits[i]), "bf16");
    for (int i = 0; i < 1000000; i++) check_encode_one(&REF_BF16, enc_bf16, qf_test_rng_any_f32(&r), "bf16");
    /* inputs whose low 16 bits sit on or next to the rounding boundary */
    for (int i = 0; i < 200000; i++) {
        uint32_t u = qf_test_rng_u32(&r) & 0xffff0000u;
        uint32_t low[] = {0x8000u, 0x7fffu, 0x8001u, 0xffffu, 0x0001u};
        check_encode_one(&REF_BF16, enc_bf16, f32_from_bits(u | low[i % 5]), "bf16");
    }
}

/* ==== fp16 ============================================================================= */
static void test_f16_decode_all_65536(void **state)
{
    (void)state;
    int nans = check_decode_all(ref_f16_value, dec_f16, 65536, "f16");
    assert_int_equal(nans, 2 * 1023);
    assert_true(qf_f16_to_f32(0x3c00) == 1.0f);
    assert_true(qf_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(qf_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(qf_f16_to_f32(0x03ff) == 0x3ffp-24f);
    assert_true(isinf(qf_f16_to_f32(0xfc00)) && qf_f16_to_f32(0xfc00) < 0);
}

static void test_f16_roundtrip_all_65536_nan_stays_nan(void **state)
{
    (void)state;
    check_roundtrip_all(dec_f16, enc_f16, 65536, 0, "f16");
    for (uint32_t c = 0; c < 65536; c++) {
        float v = qf_f16_to_f32((uint16_t)c);
        if (!isnan(v)) continue;
        uint16_t back = qf_f32_to_f16(v);
        assert_true(isnan(qf_f16_to_f32(back)));
        assert_int_equal(back & 0x8000, c & 0x8000);
    }
}

static void test_f16_encode_every_midpoint_overflow_and_subnormals(void **state)
{
    (void)state;
    int n = check_all_midpoints(&REF_F16, enc_f16, 0x7c00, 65536.0, "f16");
    assert_int_equal(n, 0x7c00);
    assert_int_equal(qf_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(qf_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(qf_f32_to_f16(65520.0f), 0x7c00); /* halfway to 2^16: ties to even = inf */
    assert_int_equal(qf_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(qf_f32_to_f16(-1e6f), 0xfc00);
    assert_int_equal(qf_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(qf_f32_to_f16(0x1p-25f), 0x0000);   /* half the smallest subnormal: tie to 0 */
    assert_int_equal(qf_f32_to_f16(0x3p-25f), 0x0002);   /* 1.5 * 2^-24: tie to even code 2 */
    assert_int_equal(qf_f32_to_f16(0x1.000002p-25f), 0x0001);
    assert_int_equal(qf_f32_to_f16(0x7ffp-25f), 0x0400); /* top subnormal + half step: tie to even min normal */
    assert_int_equal(qf_f32_to_f16(-0.0f), 0x8000);
}

static void test_f16_encode_random_and_edges_vs_reference(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0xf16);
    for (size_t i = 0; i < sizeof EDGE_BITS / sizeof EDGE_BITS[0]; i++)
        check_encode_one(&REF_F16, enc_f16, f32_from_bits(EDGE_BITS[i]), "f16");
    check_encode_one(&REF_F16, enc_f16, f32_from_bits(0x7fc00000u), "f16");
    check_encode_one(&REF_F16, enc_f16, f32_from_bits(0xff800001u), "f16");
    for (int i = 0; i < 500000; i++) check_encode_one(&REF_F16, enc_f16, qf_test_rng_any_f32(&r), "f16");
    /* most random bit patterns are far outside fp16's range: cover the range itself too */
    for (int i = 0; i < 1000000; i++) check_encode_one(&REF_F16, enc_f16, rand_logmag(&r, -27, 17), "f16");
    /* low 13 bits near the rounding boundary for normal results */
    for (int i = 0; i < 200000; i++) {
        float base = rand_logmag(&r, -14, 16);
        uint32_t u;
        memcpy(&u, &base, 4);
        uint32_t low[] = {0x1000u, 0x0fffu, 0x1001u};
        check_encode_one(&REF_F16, enc_f16, f32_from_bits((u & ~0x1fffu) | low[i % 3]), "f16");
    }
}

/* ==== FP8 E4M3FN ======================================================================= */
static void test_e4m3_decode_all_256(void **state)
{
    (void)state;
    int nans = check_decode_all(ref_e4m3_value, dec_e4m3, 256, "e4m3");
    assert_int_equal(nans, 2); /* 0x7f and 0xff only: E4M3FN has no inf */
    assert_true(isnan(qf_e4m3_to_f32(0x7f)) && isnan(qf_e4m3_to_f32(0xff)));
    assert_true(qf_e4m3_to_f32(0x7e) == 448.0f);
    assert_true(qf_e4m3_to_f32(0xfe) == -448.0f);
    assert_true(qf_e4m3_to_f32(0x01) == 0x1p-9f);  /* min subnormal */
    assert_true(qf_e4m3_to_f32(0x07) == 0x7p-9f);  /* max subnormal */
    assert_true(qf_e4m3_to_f32(0x08) == 0x1p-6f);  /* min normal */
    assert_true(qf_e4m3_to_f32(0x38) == 1.0f);
    assert_true(qf_e4m3_to_f32(0x20) == 0.125f);   /* finfo(float8_e4m3fn).eps: CT's zero-scale replacement */
    assert_true(qf_e4m3_to_f32(0x28) == 0.25f);
    assert_true(qf_e4m3_to_f32(0x80) == 0.0f && signbit(qf_e4m3_to_f32(0x80)));
}

static void test_e4m3_encode_midpoints_saturation_nan_negzero(void **state)
{
    (void)state;
    int n = check_all_midpoints(&REF_E4M3, enc_e4m3, 0x7e, 448.0, "e4m3");
    assert_int_equal(n, 0x7e);
    check_roundtrip_all(dec_e4m3, enc_e4m3, 256, 0, "e4m3");
    /* saturation: no inf in E4M3FN; qforge clamps like compressed-tensors/ModelOpt do */
    const float sat[] = {448.0f, 448.0001f, 449.0f, 463.99f, 464.0f, 464.01f, 479.0f, 480.0f,
                         1e6f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof sat / sizeof sat[0]; i++) {
        assert_int_equal(qf_f32_to_e4m3(sat[i]), 0x7e);
        assert_int_equal(qf_f32_to_e4m3(-sat[i]), 0xfe);
    }
    assert_int_equal(qf_f32_to_e4m3(432.0f), 0x7e); /* tie between 416 (0x7d) and 448 (0x7e): even */
    assert_int_equal(qf_f32_to_e4m3(431.99f), 0x7d);
    assert_int_equal(qf_f32_to_e4m3(NAN) & 0x7f, 0x7f);
    assert_int_equal(qf_f32_to_e4m3(f32_from_bits(0x7fc00000u)), 0x7f);
    assert_int_equal(qf_f32_to_e4m3(f32_from_bits(0xffc00000u)), 0xff);
    assert_int_equal(qf_f32_to_e4m3(f32_from_bits(0x7f800001u)), 0x7f); /* signalling NaN too */
    assert_int_equal(qf_f32_to_e4m3(0.0f), 0x00);
    assert_int_equal(qf_f32_to_e4m3(-0.0f), 0x80);
    assert_int_equal(qf_f32_to_e4m3(0x1p-10f), 0x00);             /* half min subnormal: tie to 0 */
    assert_int_equal(qf_f32_to_e4m3(0x1.000002p-10f), 0x01);
    assert_int_equal(qf_f32_to_e4m3(-0x1p-10f), 0x80);
    assert_int_equal(qf_f32_to_e4m3(0x3p-10f), 0x02);             /* 1.5 * 2^-9: tie to even code 2 */
    assert_int_equal(qf_f32_to_e4m3(f32_from_bits(0x00000001u)), 0x00); /* fp32 subnormal */
    assert_int_equal(qf_f32_to_e4m3(0x0.fp-6f), 0x08);            /* 15/16 * 2^-6 ties up to min normal */
}

static void test_e4m3_encode_random_vs_reference(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0xe4e3);
    for (size_t i = 0; i < sizeof EDGE_BITS / sizeof EDGE_BITS[0]; i++)
        check_encode_one(&REF_E4M3, enc_e4m3, f32_from_bits(EDGE_BITS[i]), "e4m3");
    for (int i = 0; i < 300000; i++) check_encode_one(&REF_E4M3, enc_e4m3, qf_test_rng_any_f32(&r), "e4m3");
    for (int i = 0; i < 1000000; i++) check_encode_one(&REF_E4M3, enc_e4m3, rand_logmag(&r, -12, 10), "e4m3");
}

/* ==== FP8 E5M2 ========================================================================= */
static void test_e5m2_decode_all_256(void **state)
{
    (void)state;
    int nans = check_decode_all(ref_e5m2_value, dec_e5m2, 256, "e5m2");
    assert_int_equal(nans, 6); /* 0x7d..0x7f and 0xfd..0xff */
    assert_true(isinf(qf_e5m2_to_f32(0x7c)) && qf_e5m2_to_f32(0x7c) > 0);
    assert_true(isinf(qf_e5m2_to_f32(0xfc)) && qf_e5m2_to_f32(0xfc) < 0);
    assert_true(qf_e5m2_to_f32(0x7b) == 57344.0f);
    assert_true(qf_e5m2_to_f32(0x01) == 0x1p-16f);
    assert_true(qf_e5m2_to_f32(0x04) == 0x1p-14f);
    assert_true(qf_e5m2_to_f32(0x3c) == 1.0f);
}

/* qforge's E5M2 encoder saturates to +-57344 for |x| beyond the largest finite value,
 * including +-inf, where a PyTorch cast would give inf.  This is deliberate (docs/formats.md):
 * qforge only stores E5M2 as a scale-like payload, where an inf would poison a whole block;
 * it mirrors the saturating E4M3 path (__NV_SATFINITE semantics). */
static void test_e5m2_encode_midpoints_saturation_nan_negzero(void **state)
{
    (void)state;
    int n = check_all_midpoints(&REF_E5M2, enc_e5m2, 0x7b, 57344.0, "e5m2");
    assert_int_equal(n, 0x7b);
    check_roundtrip_all(dec_e5m2, enc_e5m2, 256, 1, "e5m2");
    const float sat[] = {57344.0f, 57345.0f, 61439.0f, 61440.0f, 65536.0f, 1e6f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof sat / sizeof sat[0]; i++) {
        assert_int_equal(qf_f32_to_e5m2(sat[i]), 0x7b);
        assert_int_equal(qf_f32_to_e5m2(-sat[i]), 0xfb);
    }
    assert_int_equal(qf_f32_to_e5m2(NAN) & 0x7f, 0x7f);
    assert_int_equal(qf_f32_to_e5m2(f32_from_bits(0xffc00000u)), 0xff);
    assert_int_equal(qf_f32_to_e5m2(0.0f), 0x00);
    assert_int_equal(qf_f32_to_e5m2(-0.0f), 0x80);
    assert_int_equal(qf_f32_to_e5m2(0x1p-17f), 0x00);  /* half min subnormal: tie to 0 */
    assert_int_equal(qf_f32_to_e5m2(0x3p-17f), 0x02);  /* tie between codes 1 and 2 */
    assert_int_equal(qf_f32_to_e5m2(1.125f), 0x3c);    /* tie between 1 (0x3c) and 1.25 (0x3d) */
    assert_int_equal(qf_f32_to_e5m2(1.375f), 0x3e);    /* tie between 1.25 and 1.5: even 0x3e */
}

static void test_e5m2_encode_random_vs_reference(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0xe5e2);
    for (size_t i = 0; i < sizeof EDGE_BITS / sizeof EDGE_BITS[0]; i++)
        check_encode_one(&REF_E5M2, enc_e5m2, f32_from_bits(EDGE_BITS[i]), "e5m2");
    for (int i = 0; i < 300000; i++) check_encode_one(&REF_E5M2, enc_e5m2, qf_test_rng_any_f32(&r), "e5m2");
    for (int i = 0; i < 1000000; i++) check_encode_one(&REF_E5M2, enc_e5m2, rand_logmag(&r, -19, 17), "e5m2");
}

/* ==== FP4 E2M1 ========================================================================= */
static void test_e2m1_decode_all_16(void **state)
{
    (void)state;
    assert_int_equal(check_decode_all(ref_e2m1_value, dec_e2m1, 16, "e2m1"), 0);
    const float table[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (int c = 0; c < 8; c++) {
        assert_true(qf_e2m1_to_f32((uint8_t)c) == table[c]);
        assert_true(qf_e2m1_to_f32((uint8_t)(c | 8)) == -table[c]);
    }
    assert_true(signbit(qf_e2m1_to_f32(8)));
}

static void test_e2m1_encode_thresholds_ties_saturation(void **state)
{
    (void)state;
    int n = check_all_midpoints(&REF_E2M1, enc_e2m1, 7, 6.0, "e2m1");
    assert_int_equal(n, 7);
    check_roundtrip_all(dec_e2m1, enc_e2m1, 16, 0, "e2m1");
    /* The midpoints and where they go (nearest value, ties to the even code; derived from
     * the table: the neighbours of each midpoint and which of their codes is even). */
    const struct { float x; uint8_t code; } ties[] = {
        {0.25f, 0}, /* 0 (code 0) | 0.5 (code 1) -> code 0: 0   */
        {0.75f, 2}, /* 0.5 (1)    | 1 (2)        -> code 2: 1.0 */
        {1.25f, 2}, /* 1 (2)      | 1.5 (3)      -> code 2: 1.0 */
        {1.75f, 4}, /* 1.5 (3)    | 2 (4)        -> code 4: 2.0 */
        {2.5f, 4},  /* 2 (4)      | 3 (5)        -> code 4: 2.0 */
        {3.5f, 6},  /* 3 (5)      | 4 (6)        -> code 6: 4.0 */
        {5.0f, 6},  /* 4 (6)      | 6 (7)        -> code 6: 4.0 */
    };
    for (size_t i = 0; i < sizeof ties / sizeof ties[0]; i++) {
        assert_int_equal(qf_f32_to_e2m1(ties[i].x), ties[i].code);
        assert_int_equal(qf_f32_to_e2m1(-ties[i].x), ties[i].code | 8);
        assert_int_equal(ref_encode(&REF_E2M1, ties[i].x), ties[i].code); /* the reference agrees */
    }
    const float sat[] = {6.0f, 6.0001f, 7.0f, 100.0f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof sat / sizeof sat[0]; i++) {
        assert_int_equal(qf_f32_to_e2m1(sat[i]), 7);
        assert_int_equal(qf_f32_to_e2m1(-sat[i]), 15);
    }
    assert_int_equal(qf_f32_to_e2m1(0.0f), 0);
    assert_int_equal(qf_f32_to_e2m1(-0.0f), 8);
    assert_int_equal(qf_f32_to_e2m1(-0.1f), 8); /* rounds to zero, keeps the sign bit */
    /* NaN has no E2M1 code: qforge documents it maps to 0 (keeps the stream finite) */
    assert_int_equal(qf_f32_to_e2m1(NAN), 0);
}

static void test_e2m1_encode_random_vs_reference(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0xe2e1);
    for (size_t i = 0; i < sizeof EDGE_BITS / sizeof EDGE_BITS[0]; i++)
        check_encode_one(&REF_E2M1, enc_e2m1, f32_from_bits(EDGE_BITS[i]), "e2m1");
    for (int i = 0; i < 1000000; i++)
        check_encode_one(&REF_E2M1, enc_e2m1, qf_test_rng_uniform(&r, -8.0f, 8.0f), "e2m1");
    for (int i = 0; i < 200000; i++) {
        float x = qf_test_rng_any_f32(&r);
        if (!isnan(x)) check_encode_one(&REF_E2M1, enc_e2m1, x, "e2m1");
    }
}

/* ==== E8M0 ============================================================================= */
static void test_e8m0_decode_all_256(void **state)
{
    (void)state;
    for (uint32_t c = 0; c < 255; c++) {
        float got = qf_e8m0_to_f32((uint8_t)c);
        double want = ldexp(1.0, (int)c - 127); /* 2^(c - 127); c = 0 is the fp32 subnormal 2^-127 */
        if ((double)got != want) fail_msg("e8m0 decode 0x%x: got %.9g, expected 2^%d", c, (double)got, (int)c - 127);
    }
    assert_true(isnan(qf_e8m0_to_f32(0xff)));
    assert_true(qf_e8m0_to_f32(127) == 1.0f);
    (void)dec_e8m0;
}

/* OCP MX: shared exponent = floor(log2(amax)) - emax_elem (2 for E2M1), clamped to the
 * E8M0 range [-127, 127]; the reference gets floor(log2) from frexp in double. */
static uint8_t ref_e8m0_from_amax(double amax, int emax_elem)
{
    if (!(amax > 0)) return 0;
    int k;
    frexp(amax, &k); /* amax = f * 2^k, f in [0.5, 1) */
    int e = (k - 1) - emax_elem;
    if (e < -127) e = -127;
    if (e > 127) e = 127;
    return (uint8_t)(e + 127);
}

static void test_e8m0_from_amax_powers_and_between(void **state)
{
    (void)state;
    int checked = 0;
    for (int k = -149; k <= 127; k++) {
        float p = ldexpf(1.0f, k);
        float cases[4] = {p, p * 1.5f, nextafterf(p, INFINITY), k < 127 ? nextafterf(ldexpf(1.0f, k + 1), 0.0f) : FLT_MAX};
        for (int i = 0; i < 4; i++) {
            uint8_t got = qf_e8m0_from_amax(cases[i], 2), want = ref_e8m0_from_amax(cases[i], 2);
            if (got != want) fail_msg("e8m0_from_amax(%.9g): got %u, expected %u", (double)cases[i], got, want);
            checked++;
        }
    }
    assert_int_equal(checked, 4 * 277);
    /* pinned values */
    assert_int_equal(qf_e8m0_from_amax(1.0f, 2), 125);     /* 2^(0-2) */
    assert_int_equal(qf_e8m0_from_amax(6.0f, 2), 127);     /* floor(log2 6) = 2 -> 2^0: 6 fits exactly */
    assert_int_equal(qf_e8m0_from_amax(7.99f, 2), 127);    /* 7.99 / 1 > 6: E2M1 saturates (OCP rule) */
    assert_int_equal(qf_e8m0_from_amax(8.0f, 2), 128);
    assert_int_equal(qf_e8m0_from_amax(FLT_MAX, 2), 252);  /* 127 - 2 + 127 */
    assert_int_equal(qf_e8m0_from_amax(0.0f, 2), 0);       /* documented: zero block -> 2^-127 */
    assert_int_equal(qf_e8m0_from_amax(0x1p-126f, 2), 0);  /* -128 clamps to -127 */
    assert_int_equal(qf_e8m0_from_amax(0x1p-124f, 2), 1);
    qf_test_rng r = qf_test_rng_init(0xe8);
    for (int i = 0; i < 200000; i++) {
        float a = fabsf(rand_logmag(&r, -140, 128));
        assert_int_equal(qf_e8m0_from_amax(a, 2), ref_e8m0_from_amax(a, 2));
    }
    /* the decoded scale puts the block maximum into [4, 8) element units (OCP) */
    for (int i = 0; i < 100000; i++) {
        float a = fabsf(rand_logmag(&r, -100, 100));
        double y = (double)a / (double)qf_e8m0_to_f32(qf_e8m0_from_amax(a, 2));
        assert_true(y >= 4.0 && y < 8.0);
    }
}

/* ==== int4 nibbles ===================================================================== */
static void test_int4_pack_unpack_every_value_every_position(void **state)
{
    (void)state;
    /* background: other nibbles hold a distinct pattern that must survive */
    const int8_t bg[8] = {-8, 7, -1, 0, 3, -5, 6, -2};
    for (int k = 0; k < 8; k++) {
        for (int v = -8; v <= 7; v++) {
            int8_t q[8];
            memcpy(q, bg, 8);
            q[k] = (int8_t)v;
            uint32_t w = qf_int4x8_pack(q);
            /* independent expectation: sum over positions of (q + 8) * 16^position */
            uint64_t want = 0, place = 1;
            for (int j = 0; j < 8; j++, place *= 16) want += (uint64_t)(q[j] + 8) * place;
            assert_int_equal(w, (uint32_t)want);
            assert_int_equal((w >> (4 * k)) & 0xf, v + 8); /* element k at bits 4k..4k+3 */
            for (int j = 0; j < 8; j++) assert_int_equal(qf_int4_unpack(w, j), q[j]);
        }
    }
    const int8_t first[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(qf_int4x8_pack(first), 0x88888889u); /* first element in the lowest nibble */
    const int8_t minus8[8] = {-8, -8, -8, -8, -8, -8, -8, -8};
    assert_int_equal(qf_int4x8_pack(minus8), 0u);
    /* random words: unpack then pack is the identity on all 2^32 patterns' representatives */
    qf_test_rng r = qf_test_rng_init(0x1234);
    for (int i = 0; i < 100000; i++) {
        uint32_t w = qf_test_rng_u32(&r);
        int8_t q[8];
        for (int j = 0; j < 8; j++) q[j] = (int8_t)qf_int4_unpack(w, j);
        assert_int_equal(qf_int4x8_pack(q), w);
    }
}

/* ==== table dump for the ml_dtypes cross-check ======================================== */
static int dump_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test_numfmt: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

/* Files (little-endian, raw): decode_{bf16,f16}.f32 [65536], decode_{e4m3,e5m2,e8m0}.f32 [256],
 * decode_e2m1.f32 [16], encode_inputs.f32 [N], encode_{bf16,f16}.u16 [N],
 * encode_{e4m3,e5m2,e2m1}.u8 [N]. */
static int dump_tables(const char *dir)
{
    enum { N = 1 << 16 };
    static float d16[65536], in[N];
    static uint16_t e16[N];
    static uint8_t e8[N];
    float d8[256];
    int bad = 0;
    for (uint32_t c = 0; c < 65536; c++) d16[c] = qf_bf16_to_f32((uint16_t)c);
    bad |= dump_file(dir, "decode_bf16.f32", d16, sizeof d16);
    for (uint32_t c = 0; c < 65536; c++) d16[c] = qf_f16_to_f32((uint16_t)c);
    bad |= dump_file(dir, "decode_f16.f32", d16, sizeof d16);
    for (uint32_t c = 0; c < 256; c++) d8[c] = qf_e4m3_to_f32((uint8_t)c);
    bad |= dump_file(dir, "decode_e4m3.f32", d8, sizeof d8);
    for (uint32_t c = 0; c < 256; c++) d8[c] = qf_e5m2_to_f32((uint8_t)c);
    bad |= dump_file(dir, "decode_e5m2.f32", d8, sizeof d8);
    for (uint32_t c = 0; c < 256; c++) d8[c] = qf_e8m0_to_f32((uint8_t)c);
    bad |= dump_file(dir, "decode_e8m0.f32", d8, sizeof d8);
    for (uint32_t c = 0; c < 16; c++) d8[c] = qf_e2m1_to_f32((uint8_t)c);
    bad |= dump_file(dir, "decode_e2m1.f32", d8, 16 * sizeof(float));
    qf_test_rng r = qf_test_rng_init(0xd0);
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: in[i] = rand_logmag(&r, -30, 20); break;
        case 1: in[i] = qf_test_rng_uniform(&r, -8.0f, 8.0f); break;
        case 2: in[i] = rand_logmag(&r, -12, 9); break;
        default: { /* exact midpoints of the bf16 grid */
            uint32_t u = (qf_test_rng_u32(&r) & 0x3fff0000u) | 0x8000u | (qf_test_rng_u32(&r) & 0x80000000u);
            in[i] = f32_from_bits(u + 0x20000000u);
        }
        }
    }
    bad |= dump_file(dir, "encode_inputs.f32", in, sizeof in);
    for (int i = 0; i < N; i++) e16[i] = qf_f32_to_bf16(in[i]);
    bad |= dump_file(dir, "encode_bf16.u16", e16, sizeof e16);
    for (int i = 0; i < N; i++) e16[i] = qf_f32_to_f16(in[i]);
    bad |= dump_file(dir, "encode_f16.u16", e16, sizeof e16);
    for (int i = 0; i < N; i++) e8[i] = qf_f32_to_e4m3(in[i]);
    bad |= dump_file(dir, "encode_e4m3.u8", e8, sizeof e8);
    for (int i = 0; i < N; i++) e8[i] = qf_f32_to_e5m2(in[i]);
    bad |= dump_file(dir, "encode_e5m2.u8", e8, sizeof e8);
    for (int i = 0; i < N; i++) e8[i] = qf_f32_to_e2m1(in[i]);
    bad |= dump_file(dir, "encode_e2m1.u8", e8, sizeof e8);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump-tables") == 0) return dump_tables(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_decode_all_65536),
        cmocka_unit_test(test_bf16_roundtrip_all_65536_nan_stays_nan),
        cmocka_unit_test(test_bf16_encode_every_midpoint_ties_to_even),
        cmocka_unit_test(test_bf16_encode_random_and_edges_vs_reference),
        cmocka_unit_test(test_f16_decode_all_65536),
        cmocka_unit_test(test_f16_roundtrip_all_65536_nan_stays_nan),
        cmocka_unit_test(test_f16_encode_every_midpoint_overflow_and_subnormals),
        cmocka_unit_test(test_f16_encode_random_and_edges_vs_reference),
        cmocka_unit_test(test_e4m3_decode_all_256),
        cmocka_unit_test(test_e4m3_encode_midpoints_saturation_nan_negzero),
        cmocka_unit_test(test_e4m3_encode_random_vs_reference),
        cmocka_unit_test(test_e5m2_decode_all_256),
        cmocka_unit_test(test_e5m2_encode_midpoints_saturation_nan_negzero),
        cmocka_unit_test(test_e5m2_encode_random_vs_reference),
        cmocka_unit_test(test_e2m1_decode_all_16),
        cmocka_unit_test(test_e2m1_encode_thresholds_ties_saturation),
        cmocka_unit_test(test_e2m1_encode_random_vs_reference),
        cmocka_unit_test(test_e8m0_decode_all_256),
        cmocka_unit_test(test_e8m0_from_amax_powers_and_between),
        cmocka_unit_test(test_int4_pack_unpack_every_value_every_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
