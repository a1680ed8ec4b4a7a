/* int8_gemm_ref.c - CPU reference for INT8 ("int-quantized") weights and for the dynamic
 * per-token int8 activation quantization of W8A8 int8.  (No CUDA kernel: CPU path only.)
 *
 * Weight int8 [n, k], scale bf16 per channel ([n]) or per tensor ([1]); w = q * scale.
 * Activations: per row scale = absmax / 127, q = clamp(rint(x / scale), -127, 127).
 */
#include "qf_kernels_internal.h"
#include "qf_fmt.h"

void qf_ref_dequant_int8_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out)
{
    const int64_t k = w->l.k;
    const int8_t *q = (const int8_t *)w->weight;
    const uint16_t *sc = (const uint16_t *)w->scale; /* bf16 */
    for (int64_t r = r0; r < r1; r++) {
        float s = qf_bf16_to_f32(sc[w->l.per_tensor ? 0 : r]);
        for (int64_t c = 0; c < k; c++) out[(r - r0) * k + c] = qf_int8_value(q[r * k + c], s);
    }
}

void qf_ref_quant_act_int8(const float *x, int64_t m, int64_t k, int8_t *q, float *scale)
{
#pragma omp parallel for schedule(static) if (m * k > (1 << 16))
    for (int64_t i = 0; i < m; i++) {
        const float *xi = x + i * k;
        float amax = 0.0f;
        for (int64_t j = 0; j < k; j++) amax = qf_amax_update(amax, xi[j]);
        float s = qf_int8_scale(amax);
        scale[i] = s;
        for (int64_t j = 0; j < k; j++) q[i * k + j] = (int8_t)qf_int8_code(xi[j], s);
    }
}
