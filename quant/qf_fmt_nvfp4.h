/* qf_fmt_nvfp4.h - NVFP4 ("nvfp4-pack-quantized"; nvfp4a16 and W4A4 nvfp4): the one home of
 * its rules.
 *
 * Owns the global scale, the block scale choice, rounding and dequantization of NVFP4, for
 * weights and for the W4A4 activations (which use the weight rule with a calibrated G);
 * QF_HD: gcc and nvcc.  E2M1 and E4M3 codecs and the two-per-byte packing are qf_numfmt.h's:
 *   global  G = 448 * 6 / amax(tensor), F32 "weight_global_scale" (1 when amax is 0, not finite,
 *           or so small that G overflows)
 *   block   per 16 inputs: sc = e4m3(amax_b * G / 6); code 0 becomes 0x20 (0.125), as
 *           compressed-tensors replaces a zero scale
 *   step    e4m3_value(sc) / G                  the effective step values are divided by
 *   code    e2m1(x / step); value = e2m1_value(code) * step
 * Layout: u8 [n, k/2] (column 2j low nibble of byte j), scale E4M3 [n, k/16].
 */
#ifndef QF_FMT_NVFP4_H
#define QF_FMT_NVFP4_H

#include "qf_numfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_NVFP4_BLOCK 16
/* E4M3 0.125 (0 0100 000): compressed-tensors replaces a zero NVFP4 block scale by eps 0.125 */
#define QF_E4M3_ZERO_SCALE_CODE 0x20

QF_HD float qf_nvfp4_global(float amax)
{
    if (!(amax > 0.0f) || !(amax <= 3.402823466e38f)) return 1.0f;
    const float g = QF_E4M3_MAX * QF_E2M1_MAX / amax;
    return g <= 3.402823466e38f ? g : 1.0f; /* amax below ~8e-36: every value rounds to 0 anyway */
}
QF_HD uint8_t qf_nvfp4_scale_code(float amax, float G)
{
    const uint8_t c = qf_f32_to_e4m3(amax * G / QF_E2M1_MAX);
    return (c & 0x7f) == 0 ? (uint8_t)QF_E4M3_ZERO_SCALE_CODE : c;
}
QF_HD float qf_nvfp4_step(uint8_t scale_code, float G) { return qf_e4m3_to_f32(scale_code) / G; }

/* ---- W4A4 activations as vLLM's NVFP4 kernels round them (the model runner's emulation) ---
 * G = input_global_scale, inv_g = 1 / G; per 16 inputs sb = e4m3(amax_b * G / 6) (no 0.125
 * replacement: sb = 0 gives 0); x' = e2m1(x * (1 / (sb * inv_g))) * (sb * inv_g). */
QF_HD float qf_nvfp4_act_block_scale(float amax, float G) { return qf_e4m3_round(amax * G / QF_E2M1_MAX); }
QF_HD float qf_nvfp4_act_qdq(float x, float inv_step, float step) { return qf_e2m1_round(x * inv_step) * step; }

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_NVFP4_H */
