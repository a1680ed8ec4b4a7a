/* qf_fmt_fp8.h - FP8 E4M3 ("float-quantized": fp8, fp8-dynamic, static fp8): the one home of
 * its rules, per output channel and per tensor.
 *
 * Owns the scale choice, rounding and dequantization of E4M3 weights and of the dynamic
 * per-token FP8 activations of W8A8 (QF_HD: gcc and nvcc); the E4M3 codec itself (saturating
 * RNE) is qf_numfmt.h's:
 *   scale   s = amax / 448 (activations, float32); weights store s = bf16(amax / 448), amax of
 *           the output channel (per-channel, weight_scale [n]) or of the whole tensor
 *           (per-tensor, [1], static fp8) and round with the stored value
 *   code    e4m3(x / s)                                (s not > 0: code 0)
 *   value   e4m3_value(code) * s
 * Layout: E4M3 [n, k] row-major, one byte per value.
 */
#ifndef QF_FMT_FP8_H
#define QF_FMT_FP8_H

#include "qf_numfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

QF_HD float qf_fp8_scale(float amax) { return amax / QF_E4M3_MAX; }
QF_HD float qf_fp8_wscale(float amax) { return qf_bf16_rounded(qf_fp8_scale(amax)); }
QF_HD uint8_t qf_fp8_code(float x, float s) { return qf_f32_to_e4m3(s > 0.0f ? x / s : 0.0f); }
QF_HD float qf_fp8_value(uint8_t code, float s) { return qf_e4m3_to_f32(code) * s; }
/* The dequantized value of x under s > 0. */
QF_HD float qf_fp8_qdq(float x, float s) { return qf_e4m3_to_f32(qf_f32_to_e4m3(x / s)) * s; }

/* ---- activations as vLLM's FP8 kernels round them (the model runner's emulation) ----------
 * per token  s = max(amax / 448, 1 / (448 * 512)); static: s = input_scale (calibrated);
 * x' = e4m3(x * (1 / s)) * s, a multiply by the reciprocal as the serving kernel does. */
#define QF_FP8_ACT_MIN_SCALE (1.0f / (QF_E4M3_MAX * 512.0f))
/* The calibrated per-tensor input_scale of static fp8: amax / 448 of the calibration
 * activations; FLT_EPSILON (1.1920929e-7) when amax is 0, as a zero scale cannot dequantize. */
QF_HD float qf_fp8_act_static_scale(float amax) { return amax > 0 ? qf_fp8_scale(amax) : 1.1920928955078125e-7f; }
QF_HD float qf_fp8_act_token_scale(float amax)
{
    const float s = amax / QF_E4M3_MAX;
    return s < QF_FP8_ACT_MIN_SCALE ? QF_FP8_ACT_MIN_SCALE : s;
}
QF_HD float qf_fp8_act_qdq(float x, float inv_s, float s) { return qf_e4m3_round(x * inv_s) * s; }

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_FP8_H */
