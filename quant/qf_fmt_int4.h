/* qf_fmt_int4.h - symmetric int4 weights ("pack-quantized", w4a16): the one home of its rules.
 *
 * Owns the scale choice, rounding, nibble packing and dequantization of symmetric int4, as
 * header-inline QF_HD functions that gcc (quant/ RTN, GPTQ, AWQ, the validator's dequantizer,
 * the kernels' CPU references) and nvcc (the .cu kernels) compile from this one text:
 *   scale  s = bf16(amax / 7)                    (amax of the group; stored bf16)
 *   level  q = clamp(rint(x / s), -8, 7)          (round half to even; s > 0)
 *   code   q + 8, a nibble 0..15 (s not > 0: 8, the zero)
 *   value  (code - zp) * s with zp = 8           (one float multiply of an exact integer)
 * Packing (compressed-tensors): int32 words [n, ceil(k/8)], column c in nibble c % 8 of word
 * c / 8.  No expression has the a * b + c shape, so nvcc's FMA contraction changes nothing.
 * The asymmetric variant (zero points) is quant/qf_fmt_int4_asym.h.
 */
#ifndef QF_FMT_INT4_H
#define QF_FMT_INT4_H

#include "qf_numfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_INT4_SYM_ZERO 8u /* the stored code of 0 and the implied zero point */

QF_HD float qf_int4_sym_scale(float amax) { return qf_bf16_rounded(amax / 7.0f); }
/* The signed level of x under s > 0. */
QF_HD float qf_int4_sym_level(float x, float s) { return qf_clampf(rintf(x / s), -8.0f, 7.0f); }
/* The code of x under s > 0, qf_int4_sym_level(x, s) + 8: the shift is applied before the clamp
 * (the same number: rint() is an integer, exact in float up to 2^24 and clamped beyond) so that
 * gcc keeps the loop over a group branch-free and vectorizes it. */
QF_HD uint32_t qf_int4_sym_code_pos(float x, float s)
{
    return (uint32_t)(int)qf_clampf(rintf(x / s) + 8.0f, 0.0f, 15.0f);
}
QF_HD uint32_t qf_int4_sym_code(float x, float s) { return s > 0.0f ? qf_int4_sym_code_pos(x, s) : QF_INT4_SYM_ZERO; }
/* The dequantized value of x (its code's value) under s > 0. */
QF_HD float qf_int4_sym_qdq(float x, float s) { return qf_int4_sym_level(x, s) * s; }

/* The value of a stored nibble q_u under zero point zp_u (8 when symmetric) and scale s. */
QF_HD float qf_int4_value(uint32_t q_u, uint32_t zp_u, float s) { return (float)((int)q_u - (int)zp_u) * s; }

/* Nibble c of a packed row (words of 8 columns). */
QF_HD uint32_t qf_int4_get(const uint32_t *row_words, int64_t c) { return (row_words[c / 8] >> (4 * (c % 8))) & 0xfu; }
/* OR code into nibble c of a packed row whose words start at 0. */
QF_HD void qf_int4_put(uint32_t *row_words, int64_t c, uint32_t code)
{
    row_words[c / 8] |= (code & 0xfu) << (4 * (c % 8));
}
/* One word of 8 codes (code k in nibble k), as qf_int4_put of each into a zeroed word. */
QF_HD uint32_t qf_int4x8_pack_codes(const uint32_t code[8])
{
    uint32_t w = 0;
    for (int k = 0; k < 8; k++) w |= (code[k] & 0xfu) << (4 * k);
    return w;
}
/* One word of 8 signed levels in [-8, 7] (element k in nibble k) and level k of a word. */
QF_HD uint32_t qf_int4x8_pack(const int8_t q[8])
{
    uint32_t w = 0;
    for (int k = 0; k < 8; k++) qf_int4_put(&w, k, (uint32_t)(q[k] + 8));
    return w;
}
QF_HD int qf_int4_unpack(uint32_t word, int k) { return (int)qf_int4_get(&word, k) - (int)QF_INT4_SYM_ZERO; }

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_INT4_H */
