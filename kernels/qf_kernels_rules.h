/* qf_kernels_rules.h - internal to kernels/: the per-group quantization and dequantization
 * rules, written once and compiled by both gcc (CPU references) and nvcc (CUDA kernels).
 *
 * These are the round-to-nearest rules of quant/qf_quantize.h (the project's RTN), expressed
 * on scalars so that a CPU reference and a CUDA kernel calling them perform the same float
 * operations in the same order and produce identical bytes.  No expression here has the
 * a * b + c shape, so nvcc's default FMA contraction cannot change a result.
 * Codes returned are the stored bit patterns: INT4 nibble 0..15 (q + 8 when symmetric), INT8
 * as a uint8 of the int8, E4M3 / E2M1 / E8M0 codes.
 */
#ifndef QF_KERNELS_RULES_H
#define QF_KERNELS_RULES_H

#include "qf_numfmt.h"

#define QF_NVFP4_BLOCK 16
#define QF_MXFP4_BLOCK 32
/* E4M3 0.125 (0 0100 000): compressed-tensors replaces a zero NVFP4 block scale by eps 0.125 */
#define QF_E4M3_ZERO_SCALE_CODE 0x20

/* ---- group statistics: NaN never wins (fminf / fmaxf ignore a NaN operand) --------------- */
QF_HD float qf_kr_amax_update(float m, float x) { return fmaxf(m, fabsf(x)); }

/* ---- INT4 ----------------------------------------------------------------------------------- */
QF_HD float qf_kr_int4_sym_scale(float amax) { return qf_bf16_to_f32(qf_f32_to_bf16(amax / 7.0f)); }
QF_HD uint32_t qf_kr_int4_sym_code(float x, float s)
{
    if (!(s > 0.0f)) return 8u;
    float q = fminf(fmaxf(rintf(x / s), -8.0f), 7.0f);
    return (uint32_t)(int)(q + 8.0f);
}
/* lo <= 0 <= hi (min and max of the group widened to include 0) */
QF_HD float qf_kr_int4_asym_scale(float lo, float hi) { return qf_bf16_to_f32(qf_f32_to_bf16((hi - lo) / 15.0f)); }
QF_HD float qf_kr_int4_asym_zero(float lo, float s)
{
    return s > 0.0f ? fminf(fmaxf(rintf(-lo / s), 0.0f), 15.0f) : 0.0f;
}
QF_HD uint32_t qf_kr_int4_asym_code(float x, float s, float zero)
{
    if (!(s > 0.0f)) return (uint32_t)(int)zero;
    float q = fminf(fmaxf(rintf(x / s) + zero, 0.0f), 15.0f);
    return (uint32_t)(int)q;
}
QF_HD float qf_kr_int4_value(uint32_t q_u, uint32_t zp_u, float s) { return (float)((int)q_u - (int)zp_u) * s; }

/* ---- INT8 ----------------------------------------------------------------------------------- */
QF_HD float qf_kr_int8_scale(float amax) { return amax / 127.0f; }
QF_HD uint8_t qf_kr_int8_code(float x, float s)
{
    float q = s > 0.0f ? fminf(fmaxf(rintf(x / s), -127.0f), 127.0f) : 0.0f;
    return (uint8_t)(int8_t)(int)q;
}

/* ---- FP8 E4M3 ------------------------------------------------------------------------------- */
QF_HD float qf_kr_fp8_scale(float amax) { return amax / QF_E4M3_MAX; }
QF_HD uint8_t qf_kr_fp8_code(float x, float s) { return qf_f32_to_e4m3(s > 0.0f ? x / s : 0.0f); }

/* ---- NVFP4 ---------------------------------------------------------------------------------- */
/* G = 448 * 6 / amax; 1 when amax is 0, negative or not finite. */
QF_HD float qf_kr_nvfp4_global(float amax)
{
    if (!(amax > 0.0f) || !(amax <= 3.402823466e38f)) return 1.0f;
    return QF_E4M3_MAX * QF_E2M1_MAX / amax;
}
QF_HD uint8_t qf_kr_nvfp4_scale_code(float amax, float G)
{
    uint8_t c = qf_f32_to_e4m3(amax * G / QF_E2M1_MAX);
    return (c & 0x7f) == 0 ? (uint8_t)QF_E4M3_ZERO_SCALE_CODE : c;
}
/* the effective step s / G that values are divided by and multiplied with */
QF_HD float qf_kr_nvfp4_step(uint8_t scale_code, float G) { return qf_e4m3_to_f32(scale_code) / G; }

/* ---- MXFP4 ---------------------------------------------------------------------------------- */
QF_HD uint8_t qf_kr_mxfp4_scale_code(float amax) { return qf_e8m0_from_amax(amax, 2); }

/* ---- FP8 / INT8 weight scales ---------------------------------------------------------------- */
/* Stored BF16, as llm-compressor writes them for a bf16 model, and the codes are rounded with the
 * stored value (so the artifact decodes to what was quantized).  Activation scales, computed per
 * token at run time, stay float32 (qf_kr_fp8_scale / qf_kr_int8_scale). */
QF_HD float qf_kr_fp8_wscale(float amax) { return qf_bf16_to_f32(qf_f32_to_bf16(qf_kr_fp8_scale(amax))); }
QF_HD float qf_kr_int8_wscale(float amax) { return qf_bf16_to_f32(qf_f32_to_bf16(qf_kr_int8_scale(amax))); }

/* ---- FP4 values ----------------------------------------------------------------------------- */
QF_HD uint8_t qf_kr_fp4_code(float x, float step) { return qf_f32_to_e2m1(step > 0.0f ? x / step : 0.0f); }
QF_HD float qf_kr_fp4_value(uint8_t code, float step) { return qf_e2m1_to_f32(code) * step; }

#endif /* QF_KERNELS_RULES_H */
