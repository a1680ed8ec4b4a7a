/* qf_fmt_mxfp4.h - MXFP4 ("mxfp4-pack-quantized", OCP MX): the one home of its rules.
 *
 * Owns the shared-exponent choice, rounding and dequantization of MXFP4 (QF_HD: gcc and
 * nvcc); the E8M0 and E2M1 codecs and the two-per-byte packing are qf_numfmt.h's:
 *   scale   per 32 inputs: e = e8m0 shared exponent of amax_b for E2M1 (emax 2):
 *           floor(log2(amax_b)) - 2, clamped to [-127, 127]     (qf_e8m0_from_amax)
 *   step    2^(e - 127)
 *   code    e2m1(x / step); value = e2m1_value(code) * step
 * Layout: u8 [n, k/2] (column 2j low nibble of byte j), scale E8M0 u8 [n, k/32].
 */
#ifndef QF_FMT_MXFP4_H
#define QF_FMT_MXFP4_H

#include "qf_numfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_MXFP4_BLOCK 32
#define QF_MXFP4_ELEM_EMAX 2 /* E2M1's largest exponent: 6 = 1.5 * 2^2 */

QF_HD uint8_t qf_mxfp4_scale_code(float amax) { return qf_e8m0_from_amax(amax, QF_MXFP4_ELEM_EMAX); }
QF_HD float qf_mxfp4_step(uint8_t scale_code) { return qf_e8m0_to_f32(scale_code); }

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_MXFP4_H */
