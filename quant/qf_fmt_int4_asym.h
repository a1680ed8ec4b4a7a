/* qf_fmt_int4_asym.h - asymmetric int4 weights (w4a16-asym): the one home of its rules.
 *
 * Owns the scale and zero-point choice, rounding and the zero-point packing of int4 with
 * zero points; the nibble packing of the values and their dequantization are symmetric
 * int4's (qf_fmt_int4.h), with the stored zero point in place of 8:
 *   range  lo = min(x, 0), hi = max(x, 0) over the group (the caller's reduction)
 *   scale  s = bf16((hi - lo) / 15)
 *   zero   zp = clamp(rint(-lo / s), 0, 15)              (s not > 0: 0)
 *   code   clamp(rint(x / s) + zp, 0, 15)                 (s not > 0: zp)
 *   value  (code - zp) * s
 * Zero points (compressed-tensors): int32 [ceil(n/8), groups], row r in nibble r % 8 of
 * word (r / 8, group).  QF_HD: compiled by gcc and nvcc alike.
 */
#ifndef QF_FMT_INT4_ASYM_H
#define QF_FMT_INT4_ASYM_H

#include "qf_fmt_int4.h"

#ifdef __cplusplus
extern "C" {
#endif

/* lo <= 0 <= hi */
QF_HD float qf_int4_asym_scale(float lo, float hi) { return qf_bf16_rounded((hi - lo) / 15.0f); }
QF_HD float qf_int4_asym_zero(float lo, float s) { return s > 0.0f ? qf_clampf(rintf(-lo / s), 0.0f, 15.0f) : 0.0f; }
/* The stored level (0..15) of x under s > 0 and zero point zero. */
QF_HD float qf_int4_asym_level(float x, float s, float zero) { return qf_clampf(rintf(x / s) + zero, 0.0f, 15.0f); }
QF_HD uint32_t qf_int4_asym_code(float x, float s, float zero)
{
    return s > 0.0f ? (uint32_t)(int)qf_int4_asym_level(x, s, zero) : (uint32_t)(int)zero;
}
/* The dequantized value of x under s > 0. */
QF_HD float qf_int4_asym_qdq(float x, float s, float zero) { return (qf_int4_asym_level(x, s, zero) - zero) * s; }

/* Zero point of row r, group g, from the packed words (ng groups per word row). */
QF_HD uint32_t qf_int4_zero_get(const uint32_t *zp, int64_t ng, int64_t r, int64_t g)
{
    return (zp[(r / 8) * ng + g] >> (4 * (r % 8))) & 0xfu;
}
/* Store zero point z of row r into its word (row block r / 8, the caller's group word). */
QF_HD uint32_t qf_int4_zero_set(uint32_t word, int64_t r, uint32_t z)
{
    const int k = (int)(r % 8);
    return (word & ~(0xfu << (4 * k))) | ((z & 0xfu) << (4 * k));
}

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_INT4_ASYM_H */
