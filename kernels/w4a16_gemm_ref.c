/* w4a16_gemm_ref.c - CPU reference for INT4 ("pack-quantized") weights: dequantization of rows.
 *
 * Layout (qf_kernels.h): weight int32 [n, ceil(k/8)], column c in nibble c%8 of word c/8,
 * stored unsigned q_u = q + 8; scale bf16 [n, ceil(k/g)]; zero_point (asymmetric only) int32
 * [ceil(n/8), ceil(k/g)], row r in nibble r%8 of word (r/8, group).  w = (q_u - zp_u) * scale
 * with zp_u = 8 when symmetric, one float multiply per value (exact integer difference first).
 * The CUDA kernel (w4a16_gemm.cu) rounds the same product to bf16.
 */
#include "qf_kernels_internal.h"
#include "qf_fmt.h"

void qf_ref_dequant_int4_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out)
{
    const int64_t k = w->l.k, g = w->l.group_size, ng = qf_ct_int4_groups(&w->l), words = (k + 7) / 8;
    const uint32_t *q = (const uint32_t *)w->weight;
    const uint16_t *sc = (const uint16_t *)w->scale;
    const uint32_t *zp = (const uint32_t *)w->zero_point;
    for (int64_t r = r0; r < r1; r++) {
        float *o = out + (r - r0) * k;
        for (int64_t gi = 0; gi < ng; gi++) {
            float s = qf_bf16_to_f32(sc[r * ng + gi]);
            uint32_t z = zp ? qf_int4_zero_get(zp, ng, r, gi) : QF_INT4_SYM_ZERO;
            int64_t c1 = (gi + 1) * g < k ? (gi + 1) * g : k;
            for (int64_t c = gi * g; c < c1; c++) o[c] = qf_int4_value(qf_int4_get(q + r * words, c), z, s);
        }
    }
}
