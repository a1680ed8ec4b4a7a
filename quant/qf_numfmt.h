/* qf_numfmt.h - scalar number formats: bf16, fp16, FP8 (E4M3FN, E5M2), FP4 E2M1, E8M0.
 *
 * Owns the bit-exact conversions every quantizer, writer, kernel reference and test uses.
 * Rounding is round-to-nearest-even everywhere.  Encoders to FP8/FP4 saturate (clamp to the
 * largest finite value) as compressed-tensors and ModelOpt do before casting; NaN maps to the
 * format's NaN code; FP4 has no NaN code and qf_e8m0_from_amax takes a magnitude, so a NaN
 * input maps to code 0 in both (a finite stream; callers reject NaN weights earlier).
 * All functions are pure, thread-safe and header-inline so that CUDA code can include them
 * (QF_HD marks them __host__ __device__ under nvcc).  The quantization rules built on these
 * codecs (scale choice, rounding, packing, dequantization of each weight format) live one
 * format per file in quant/qf_fmt_*.h; quant/qf_fmt.h includes them all.
 *
 * Bit layouts:
 *   bf16      s eeeeeeee mmmmmmm           (top half of an fp32)
 *   fp16      s eeeee mmmmmmmmmm           bias 15
 *   E4M3FN    s eeee mmm   bias 7, max 448 (0x7E), NaN 0x7F/0xFF, no inf
 *   E5M2      s eeeee mm   bias 15, max 57344 (0x7B), inf 0x7C, NaN 0x7D..0x7F
 *   E2M1      s ee m       values 0 0.5 1 1.5 2 3 4 6 (code 0..7), bit 3 = sign
 *   E8M0      eeeeeeee     2^(e-127), 0xFF = NaN
 */
#ifndef QF_NUMFMT_H
#define QF_NUMFMT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__CUDACC__)
#define QF_HD __host__ __device__ __forceinline__
#else
#define QF_HD static inline
#endif

QF_HD uint32_t qf_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
QF_HD float qf_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---- bf16 ---------------------------------------------------------------------------- */
QF_HD float qf_bf16_to_f32(uint16_t h) { return qf_bits_f32((uint32_t)h << 16); }
QF_HD uint16_t qf_f32_to_bf16(float f)
{
    uint32_t u = qf_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                            /* RNE */
    return (uint16_t)(u >> 16);
}

/* ---- fp16 ---------------------------------------------------------------------------- */
QF_HD float qf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return qf_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return qf_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}
QF_HD uint16_t qf_f32_to_f16(float f)
{
    uint32_t u = qf_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);       /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);      /* overflow (RNE) -> inf */
    if (a < 0x38800000u) {                                        /* subnormal or zero */
        float v = qf_bits_f32(a) * 16777216.0f;                   /* value / 2^-24 */
        uint32_t m = (uint32_t)v; float r = v - (float)m;         /* exact: v < 1024 */
        if (r > 0.5f || (r == 0.5f && (m & 1u))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t e = (a >> 23) - 112, m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13), rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

/* 2^k as a float, for k in [-126, 127] (exact; avoids ldexpf's library call). */
QF_HD float qf_pow2f(int k) { return qf_bits_f32((uint32_t)(k + 127) << 23); }

/* ---- generic small float decode/encode (RNE, saturating, normal+subnormal) ----------- */
/* Encodes |x| (finite, >= 0) into a format with ebits exponent bits, mbits mantissa bits,
 * bias, and largest finite magnitude code maxcode (exponent|mantissa bits, no sign).
 * Returns the unsigned code. */
QF_HD uint32_t qf_small_float_encode_abs(float ax, int mbits, int bias, uint32_t maxcode)
{
    /* min normal exponent is 1-bias; subnormal step = 2^(1-bias-mbits) */
    uint32_t u = qf_f32_bits(ax);
    int e = (int)((u >> 23) & 0xff) - 127;
    if (ax == 0.0f) return 0;
    if (e < 1 - bias) e = 1 - bias;                  /* subnormal range shares the min step */
    /* quantum at this exponent: 2^(e - mbits); scaled = ax / quantum (exact power-of-2 mult) */
    float scaled = ax * qf_pow2f(mbits - e);
    float fl = floorf(scaled), r = scaled - fl;      /* exact: scaled < 2^(mbits+1) */
    uint32_t q = (uint32_t)fl;
    if (r > 0.5f || (r == 0.5f && (q & 1u))) q++;
    /* value = q * 2^(e-mbits); q may be 2^(mbits+1) after rounding up: renormalise */
    int ebiased;
    uint32_t man;
    if (q >= (2u << mbits)) { q >>= 1; e++; }
    if (q < (1u << mbits)) { ebiased = 0; man = q; }                /* subnormal */
    else { ebiased = e + bias; man = q - (1u << mbits); }
    uint32_t code = ((uint32_t)ebiased << mbits) | man;
    return code > maxcode ? maxcode : code;
}
QF_HD float qf_small_float_decode_abs(uint32_t code, int mbits, int bias)
{
    uint32_t e = code >> mbits, m = code & ((1u << mbits) - 1u);
    if (e == 0) return (float)m * qf_pow2f(1 - bias - mbits);
    return (float)((1u << mbits) | m) * qf_pow2f((int)e - bias - mbits);
}

/* ---- FP8 E4M3FN ---------------------------------------------------------------------- */
#define QF_E4M3_MAX 448.0f
QF_HD float qf_e4m3_to_f32(uint8_t c)
{
    if ((c & 0x7f) == 0x7f) return qf_bits_f32(0x7fc00000u);
    float v = qf_small_float_decode_abs(c & 0x7fu, 3, 7);
    return (c & 0x80) ? -v : v;
}
/* Saturating RNE encode for an FP8 format with mbits mantissa bits and exponent bias, by
 * rounding the fp32 bit pattern (normals) or an exact scaled integer (subnormals). */
QF_HD uint8_t qf_f32_to_fp8(float x, int mbits, int bias, uint32_t maxcode, float maxval)
{
    uint32_t u = qf_f32_bits(x), a = u & 0x7fffffffu;
    uint8_t s = (uint8_t)((u >> 24) & 0x80);
    if (a > 0x7f800000u) return s | 0x7f;                       /* NaN */
    if (qf_bits_f32(a) >= maxval) return s | (uint8_t)maxcode;  /* saturate (inf too) */
    int min_normal_exp = 1 - bias;                              /* 2^(1-bias) */
    if (a < (uint32_t)(min_normal_exp + 127) << 23) {           /* subnormal: step 2^(1-bias-mbits) */
        float q = rintf(qf_bits_f32(a) * qf_pow2f(bias - 1 + mbits));
        return s | (uint8_t)q;                                  /* q == 2^mbits is the min normal code */
    }
    int drop = 23 - mbits;
    uint32_t r = a + ((1u << (drop - 1)) - 1u) + ((a >> drop) & 1u);
    uint32_t code = (r >> drop) - ((uint32_t)(127 - bias) << mbits);
    return s | (uint8_t)(code > maxcode ? maxcode : code);
}
QF_HD uint8_t qf_f32_to_e4m3(float x) { return qf_f32_to_fp8(x, 3, 7, 0x7e, QF_E4M3_MAX); }

/* ---- FP8 E5M2 ------------------------------------------------------------------------ */
#define QF_E5M2_MAX 57344.0f
QF_HD float qf_e5m2_to_f32(uint8_t c)
{
    uint32_t a = c & 0x7fu;
    float v;
    if (a == 0x7c) v = INFINITY;
    else if (a > 0x7c) return qf_bits_f32(0x7fc00000u);
    else v = qf_small_float_decode_abs(a, 2, 15);
    return (c & 0x80) ? -v : v;
}
QF_HD uint8_t qf_f32_to_e5m2(float x) /* saturating RNE (inf saturates too) */
{
    return qf_f32_to_fp8(x, 2, 15, 0x7b, QF_E5M2_MAX);
}

/* ---- FP4 E2M1 ------------------------------------------------------------------------ */
#define QF_E2M1_MAX 6.0f
QF_HD float qf_e2m1_to_f32(uint8_t c)
{
    /* code 0..7 -> 0 0.5 1 1.5 2 3 4 6 */
    uint32_t a = c & 7u;
    float v = a < 2 ? 0.5f * (float)a : (float)(2u | (a & 1u)) * qf_pow2f((int)(a >> 1) - 2);
    return (c & 8) ? -v : v;
}

/* ---- E8M0 ---------------------------------------------------------------------------- */
QF_HD float qf_e8m0_to_f32(uint8_t c)
{
    if (c == 0xff) return qf_bits_f32(0x7fc00000u);
    if (c == 0) return qf_bits_f32(0x00400000u); /* 2^-127 is an fp32 subnormal */
    return qf_bits_f32((uint32_t)c << 23);
}
/* The OCP MX shared exponent for a block of absolute maximum amax and element emax:
 * e = floor(log2(amax)) - emax, clamped to [-127, 127]; amax == 0 gives 2^-127 (code 0). */
QF_HD uint8_t qf_e8m0_from_amax(float amax, int elem_emax)
{
    if (!(amax > 0.0f)) return 0;
    int e = (int)((qf_f32_bits(amax) >> 23) & 0xff) - 127; /* floor(log2) for normals */
    if (e == -127) e = -127;                                /* fp32 subnormal: smallest */
    e -= elem_emax;
    if (e < -127) e = -127;
    if (e > 127) e = 127;
    return (uint8_t)(e + 127);
}

/* ---- round trips without the generic encoder ----------------------------------------- */
/* e4m3(v) decoded back to float, saturating RNE: the same value as
 * qf_e4m3_to_f32(qf_f32_to_e4m3(v)) for every finite v (tests/test_model.c checks) by cheaper
 * operations.  Normals: round the fp32 mantissa to 3 bits (RNE on the bit pattern);
 * subnormals (|v| < 2^-6): multiples of 2^-9.  NaN stays NaN. */
QF_HD float qf_e4m3_round(float v)
{
    float a = fabsf(v), r;
    if (!(a == a)) return v;
    if (a >= QF_E4M3_MAX) r = QF_E4M3_MAX;
    else if (a < 0.015625f) r = rintf(a * 512.0f) * (1.0f / 512.0f);
    else {
        uint32_t u = qf_f32_bits(a);
        u = (u + 0x7ffffu + ((u >> 20) & 1u)) & 0xfff00000u;
        r = qf_bits_f32(u);
        r = r > QF_E4M3_MAX ? QF_E4M3_MAX : r;
    }
    return copysignf(r, v);
}
/* e2m1(v) decoded back to float (RNE, ties to the even code, saturating at 6): equals
 * qf_e2m1_to_f32(qf_f32_to_e2m1(v)) for finite v (NaN gives 0, as the encoder does). */
QF_HD float qf_e2m1_round(float v)
{
    /* The value is the sum of the steps passed: independent selects, no chain of branches, so
     * loops over blocks vectorize.  Ties go to the even code: 0.25 -> 0, 0.75 -> 1, 1.25 -> 1,
     * 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4 (> at ties below an even code, >= above one). */
    const float a = fabsf(v);
    const float r = (a > 0.25f ? 0.5f : 0.0f) + (a >= 0.75f ? 0.5f : 0.0f) + (a > 1.25f ? 0.5f : 0.0f)
                  + (a >= 1.75f ? 0.5f : 0.0f) + (a > 2.5f ? 1.0f : 0.0f) + (a >= 3.5f ? 1.0f : 0.0f)
                  + (a > 5.0f ? 2.0f : 0.0f);
    const uint32_t sign = qf_f32_bits(v) & 0x80000000u & (0u - (uint32_t)(a == a)); /* NaN: +0 */
    return qf_bits_f32(qf_f32_bits(r) | sign);
}

/* RNE with saturation: the same rounding as FP8 with 1 mantissa bit and bias 1, which gives
 * the thresholds 0.25 0.75 1.25 1.75 2.5 3.5 5 with ties to the even code.  The magnitude code
 * is the number of thresholds |x| passes (those of qf_e2m1_round, one code per step), the sign
 * bit 3 (a negative value that rounds to 0 keeps it, as FP8 does).  NaN has no code: it maps
 * to 0 so a packed stream stays finite.  Compares only, so loops over blocks vectorize
 * (test_numfmt checks every code and threshold against an independent decoder). */
QF_HD uint8_t qf_f32_to_e2m1(float x)
{
    const float a = fabsf(x);
    const uint32_t m = (uint32_t)(a > 0.25f) + (uint32_t)(a >= 0.75f) + (uint32_t)(a > 1.25f) +
                       (uint32_t)(a >= 1.75f) + (uint32_t)(a > 2.5f) + (uint32_t)(a >= 3.5f) + (uint32_t)(a > 5.0f);
    const uint32_t not_nan = 0u - (uint32_t)(a == a); /* a mask, not a branch */
    return (uint8_t)((m | ((qf_f32_bits(x) >> 28) & 8u)) & not_nan);
}

/* ---- helpers the per-format rules share (quant/qf_fmt_*.h) --------------------------- */
/* x rounded to the nearest bf16 value (RNE), as a float: a scale as it will be stored. */
QF_HD float qf_bf16_rounded(float x) { return qf_bf16_to_f32(qf_f32_to_bf16(x)); }
/* clamp(x, lo, hi) with plain compares (inlines and vectorizes, unlike fminf / fmaxf); a NaN x
 * gives lo, as fminf(fmaxf(x, lo), hi) does. */
QF_HD float qf_clampf(float x, float lo, float hi) { return !(x >= lo) ? lo : x > hi ? hi : x; }
/* fminf / fmaxf as compares that inline (libm's are calls, far slower in a loop), with the same
 * results: a NaN operand loses to the other, and a tie of zeros gives the second operand,
 * as glibc's (fminf(+0, -0) = -0). */
QF_HD float qf_fminf(float a, float b) { return (a < b || b != b) ? a : b; }
QF_HD float qf_fmaxf(float a, float b) { return (a > b || b != b) ? a : b; }
/* A running absolute maximum where NaN never wins (fmaxf ignores a NaN operand). */
QF_HD float qf_amax_update(float m, float x) { return qf_fmaxf(m, fabsf(x)); }

/* ---- FP4 E2M1 under a step (NVFP4, MXFP4) -------------------------------------------- */
/* The E2M1 code of x under an effective step (block scale, / G for NVFP4); a step that is
 * not > 0 (a zero block) gives code 0.  And the value a code stands for under that step.
 * Packing: two codes per byte along k, column 2j in the low nibble of byte j. */
QF_HD uint8_t qf_fp4_code(float x, float step) { return qf_f32_to_e2m1(step > 0.0f ? x / step : 0.0f); }
/* The code under a step known to be > 0 (no branch: loops over a block vectorize). */
QF_HD uint8_t qf_fp4_code_pos(float x, float step) { return qf_f32_to_e2m1(x / step); }
QF_HD float qf_fp4_value(uint8_t code, float step) { return qf_e2m1_to_f32(code) * step; }
QF_HD uint8_t qf_fp4x2_pack(uint32_t lo, uint32_t hi) { return (uint8_t)((lo & 0xfu) | (hi & 0xfu) << 4); }
QF_HD uint8_t qf_fp4_nibble(const uint8_t *row, int64_t c) { return (c & 1) ? row[c / 2] >> 4 : row[c / 2] & 0xfu; }

#ifdef __cplusplus
}
#endif

#endif /* QF_NUMFMT_H */

/* int4 nibbles (qf_int4x8_pack, qf_int4_unpack) are int4's packing rule: they live in its
 * format file, reached from here for the callers that include only this header. */
#include "qf_fmt_int4.h"
