/* fp8_gemm_ref.c - CPU reference for FP8 E4M3 ("float-quantized") weights and for the dynamic
 * per-token FP8 activation quantization of W8A8.
 *
 * Weight E4M3 [n, k], scale bf16 per output channel ([n]) or per tensor ([1]);
 * w = e4m3 * scale.  Activations: per row, scale = absmax / 448, q = e4m3(x / scale), saturating
 * round-to-nearest-even (qf_numfmt.h); a zero row has scale 0 and zero codes.  The CUDA
 * quantizer (fp8_gemm.cu) applies the same rule and must match it bit for bit.
 */
#include "qf_kernels_internal.h"
#include "qf_fmt.h"

void qf_ref_dequant_fp8_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out)
{
    const int64_t k = w->l.k;
    const uint8_t *q = (const uint8_t *)w->weight;
    const uint16_t *sc = (const uint16_t *)w->scale; /* bf16 */
    for (int64_t r = r0; r < r1; r++) {
        float s = qf_bf16_to_f32(sc[w->l.per_tensor ? 0 : r]);
        for (int64_t c = 0; c < k; c++) out[(r - r0) * k + c] = qf_fp8_value(q[r * k + c], s);
    }
}

void qf_ref_quant_act_fp8(const float *x, int64_t m, int64_t k, uint8_t *q, float *scale)
{
#pragma omp parallel for schedule(static) if (m * k > (1 << 16))
    for (int64_t i = 0; i < m; i++) {
        const float *xi = x + i * k;
        float amax = 0.0f;
        for (int64_t j = 0; j < k; j++) amax = qf_amax_update(amax, xi[j]);
        float s = qf_fp8_scale(amax);
        scale[i] = s;
        for (int64_t j = 0; j < k; j++) q[i * k + j] = qf_fp8_code(xi[j], s);
    }
}
