/* qf_fmt_int8.h - int8 ("int-quantized", w8a8 int8): the one home of its rules.
 *
 * Owns the scale choice, rounding and dequantization of int8 weights and of the dynamic
 * per-token int8 activations the W8A8 kernels compute (QF_HD: gcc and nvcc):
 *   scale   s = amax / 127 (activations, float32); weights store s = bf16(amax / 127) per
 *           output channel (or per tensor) and round with the stored value
 *   level   q = clamp(rint(x / s), -127, 127)         (round half to even; s not > 0: 0)
 *   code    q as an int8 (stored as its byte)
 *   value   q * s
 * Layout: int8 [n, k] row-major, one byte per value.
 */
#ifndef QF_FMT_INT8_H
#define QF_FMT_INT8_H

#include "qf_numfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

QF_HD float qf_int8_scale(float amax) { return amax / 127.0f; }
QF_HD float qf_int8_wscale(float amax) { return qf_bf16_rounded(qf_int8_scale(amax)); }
/* The level of x under s > 0. */
QF_HD float qf_int8_level(float x, float s) { return qf_clampf(rintf(x / s), -127.0f, 127.0f); }
QF_HD uint8_t qf_int8_code(float x, float s) { return (uint8_t)(int8_t)(int)(s > 0.0f ? qf_int8_level(x, s) : 0.0f); }
QF_HD float qf_int8_value(int8_t q, float s) { return (float)q * s; }
/* The dequantized value of x under s > 0. */
QF_HD float qf_int8_qdq(float x, float s) { return qf_int8_level(x, s) * s; }

/* ---- activations as vLLM's int8 kernels round them (the model runner's emulation) ---------
 * s = amax / 127 per token; x' = clamp(rint(x * inv_s), -127, 127) * s with inv_s = 1 / s
 * (0 when s is 0: a zero row stays 0); a NaN x stays NaN. */
QF_HD float qf_int8_act_qdq(float x, float inv_s, float s)
{
    const float q = rintf(x * inv_s);
    return (q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q) * s;
}

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_INT8_H */
