/* fp4_gemm_ref.c - CPU reference for NVFP4 and MXFP4 weights, and NVFP4 activation emulation.
 *
 * Both formats pack E2M1 values two per byte along k, column 2j in the low nibble of byte j and
 * 2j+1 in the high nibble; nibble = sign<<3 | code, code -> {0, .5, 1, 1.5, 2, 3, 4, 6}.
 *   NVFP4  scale E4M3 [n, k/16] and a float32 global scale G: w = fp4 * (scale / G)
 *   MXFP4  scale E8M0 [n, k/32]:                               w = fp4 * 2^(e - 127)
 * NVFP4 activations (W4A4) use the weight rule per row with a calibrated G: per 16 values
 * s = e4m3(amax * G / 6) (code 0 -> 0.125), q = e2m1(x / (s / G)).
 */
#include "qf_kernels_internal.h"
#include "qf_fmt.h"

void qf_ref_dequant_fp4_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out)
{
    const int64_t k = w->l.k;
    const int nv = w->l.fmt == QF_WFMT_NVFP4;
    const int64_t block = nv ? QF_NVFP4_BLOCK : QF_MXFP4_BLOCK, nb = k / block;
    const uint8_t *q = (const uint8_t *)w->weight, *sc = (const uint8_t *)w->scale;
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t b = 0; b < nb; b++) {
            uint8_t code = sc[r * nb + b];
            float step = nv ? qf_nvfp4_step(code, w->global_scale) : qf_mxfp4_step(code);
            for (int64_t c = b * block; c < (b + 1) * block; c++)
                out[(r - r0) * k + c] = qf_fp4_value(qf_fp4_nibble(q + r * (k / 2), c), step);
        }
    }
}

float qf_ref_nvfp4_global(float amax) { return qf_nvfp4_global(amax); }

/* Quantize one row of k values (k % 16 == 0) under G; packed[k/2], scale[k/16]. */
static void qf_nvfp4_row(const float *x, int64_t k, float G, uint8_t *packed, uint8_t *scale)
{
    for (int64_t b = 0; b < k / QF_NVFP4_BLOCK; b++) {
        const float *xb = x + b * QF_NVFP4_BLOCK;
        float amax = 0.0f;
        for (int j = 0; j < QF_NVFP4_BLOCK; j++) amax = qf_amax_update(amax, xb[j]);
        uint8_t sc = qf_nvfp4_scale_code(amax, G);
        float step = qf_nvfp4_step(sc, G);
        scale[b] = sc;
        for (int j = 0; j < QF_NVFP4_BLOCK; j += 2)
            packed[(b * QF_NVFP4_BLOCK + j) / 2] = qf_fp4x2_pack(qf_fp4_code(xb[j], step), qf_fp4_code(xb[j + 1], step));
    }
}

void qf_ref_quant_act_nvfp4(const float *x, int64_t m, int64_t k, float global_scale, uint8_t *packed,
                            uint8_t *scale)
{
#pragma omp parallel for schedule(static) if (m * k > (1 << 16))
    for (int64_t i = 0; i < m; i++)
        qf_nvfp4_row(x + i * k, k, global_scale, packed + i * (k / 2), scale + i * (k / QF_NVFP4_BLOCK));
}

void qf_ref_fakequant_act_nvfp4(const float *x, int64_t m, int64_t k, float global_scale, float *out)
{
#pragma omp parallel for schedule(static) if (m * k > (1 << 16))
    for (int64_t i = 0; i < m; i++) {
        for (int64_t b = 0; b < k / QF_NVFP4_BLOCK; b++) {
            uint8_t packed[QF_NVFP4_BLOCK / 2], sc;
            qf_nvfp4_row(x + i * k + b * QF_NVFP4_BLOCK, QF_NVFP4_BLOCK, global_scale, packed, &sc);
            float step = qf_nvfp4_step(sc, global_scale);
            for (int j = 0; j < QF_NVFP4_BLOCK; j++)
                out[i * k + b * QF_NVFP4_BLOCK + j] = qf_fp4_value(qf_fp4_nibble(packed, j), step);
        }
    }
}
