/* quantize_ref.c - CPU reference round-to-nearest quantization into compressed-tensors layouts.
 *
 * The rules are the project's RTN (quant/qf_quantize.h), applied through the per-format functions
 * of quant/qf_fmt_*.h that quant/quantize.c and the CUDA quantizers (quantize.cu) call too, so all
 * produce the same bytes.  Groups run along k; INT4 allows a partial last group and k not a
 * multiple of 8 (the unused nibbles of the last word are 0); asymmetric zero points are packed
 * along n, unused nibbles 0.  Parallel over rows (OpenMP); every output byte is written by exactly one thread.
 */
#include <string.h>

#include "qf_kernels_internal.h"
#include "qf_fmt.h"

/* Row r: codes into q, scales into sc, and (asymmetric) zero points OR-ed into nibble r % 8 of
 * zp_words[group] (the caller owns the 8-row block, so the words are not shared). */
static void qf_quant_int4_row(const qf_ct_layout *l, const float *x, int64_t r, uint32_t *q, uint16_t *sc,
                              uint32_t *zp_words)
{
    const int64_t k = l->k, g = l->group_size, ng = qf_ct_int4_groups(l), words = (k + 7) / 8;
    uint32_t *qr = q + r * words;
    memset(qr, 0, sizeof(uint32_t) * (size_t)words);
    for (int64_t gi = 0; gi < ng; gi++) {
        int64_t c0 = gi * g, c1 = c0 + g < k ? c0 + g : k;
        float s, zero = 0.0f;
        if (l->asym) {
            float lo = 0.0f, hi = 0.0f;
            for (int64_t c = c0; c < c1; c++) {
                lo = qf_fminf(lo, x[c]);
                hi = qf_fmaxf(hi, x[c]);
            }
            s = qf_int4_asym_scale(lo, hi);
            zero = qf_int4_asym_zero(lo, s);
            zp_words[gi] = qf_int4_zero_set(zp_words[gi], r, (uint32_t)(int)zero);
        } else {
            float amax = 0.0f;
            for (int64_t c = c0; c < c1; c++) amax = qf_amax_update(amax, x[c]);
            s = qf_int4_sym_scale(amax);
        }
        sc[r * ng + gi] = qf_f32_to_bf16(s);
        for (int64_t c = c0; c < c1; c++) {
            qf_int4_put(qr, c, l->asym ? qf_int4_asym_code(x[c], s, zero) : qf_int4_sym_code(x[c], s));
        }
    }
}

qf_status qf_ref_quantize(const qf_ct_layout *l, const float *w, float tensor_amax, void *weight, void *scale,
                          void *zero_point, float *global_scale, qf_error *err)
{
    qf_ct_sizes sz;
    QF_TRY(qf_ct_layout_check(l, &sz, err));
    if (!w || !weight || !scale || (l->asym && !zero_point))
        return qf_fail(err, QF_ERR_USAGE, "quantize %s [%lld, %lld]: a required buffer is NULL", qf_wfmt_name(l->fmt),
                       (long long)l->n, (long long)l->k);
    const int64_t n = l->n, k = l->k;
    float G = 1.0f, tensor_scale = 0.0f;
    if (l->fmt == QF_WFMT_NVFP4 || ((l->fmt == QF_WFMT_FP8 || l->fmt == QF_WFMT_INT8) && l->per_tensor)) {
        float amax = tensor_amax;
        if (!(amax > 0.0f) || l->fmt != QF_WFMT_NVFP4) {
            amax = 0.0f;
#pragma omp parallel for reduction(max : amax) schedule(static)
            for (int64_t i = 0; i < n * k; i++) amax = qf_amax_update(amax, w[i]);
        }
        if (l->fmt == QF_WFMT_NVFP4) G = qf_nvfp4_global(amax);
        else tensor_scale = l->fmt == QF_WFMT_FP8 ? qf_fp8_wscale(amax) : qf_int8_wscale(amax);
    }
    if (global_scale) *global_scale = G;
    const int64_t ng = l->fmt == QF_WFMT_INT4 ? qf_ct_int4_groups(l) : 0;
    if (l->asym) memset(zero_point, 0, sz.zero_point);
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t rb = 0; rb < (n + 7) / 8; rb++) { /* blocks of 8 rows: one thread owns a zero-point word */
        for (int64_t r = rb * 8; r < n && r < rb * 8 + 8; r++) {
            const float *x = w + r * k;
            switch (l->fmt) {
            case QF_WFMT_INT4: {
                uint32_t *zp = l->asym ? (uint32_t *)zero_point + (r / 8) * ng : NULL;
                qf_quant_int4_row(l, x, r, (uint32_t *)weight, (uint16_t *)scale, zp);
                break;
            }
            case QF_WFMT_FP8:
            case QF_WFMT_INT8: {
                float s = tensor_scale, amax = 0.0f;
                if (!l->per_tensor) {
                    for (int64_t c = 0; c < k; c++) amax = qf_amax_update(amax, x[c]);
                    s = l->fmt == QF_WFMT_FP8 ? qf_fp8_wscale(amax) : qf_int8_wscale(amax);
                    ((uint16_t *)scale)[r] = qf_f32_to_bf16(s); /* exact: s is a bf16 value */
                } else if (r == 0) {
                    ((uint16_t *)scale)[0] = qf_f32_to_bf16(s);
                }
                uint8_t *qr = (uint8_t *)weight + r * k;
                for (int64_t c = 0; c < k; c++)
                    qr[c] = l->fmt == QF_WFMT_FP8 ? qf_fp8_code(x[c], s) : qf_int8_code(x[c], s);
                break;
            }
            case QF_WFMT_NVFP4:
            case QF_WFMT_MXFP4: {
                const int nv = l->fmt == QF_WFMT_NVFP4;
                const int64_t block = nv ? QF_NVFP4_BLOCK : QF_MXFP4_BLOCK, nb = k / block;
                uint8_t *qr = (uint8_t *)weight + r * (k / 2), *sr = (uint8_t *)scale + r * nb;
                for (int64_t b = 0; b < nb; b++) {
                    const float *xb = x + b * block;
                    float amax = 0.0f;
                    for (int64_t j = 0; j < block; j++) amax = qf_amax_update(amax, xb[j]);
                    uint8_t code = nv ? qf_nvfp4_scale_code(amax, G) : qf_mxfp4_scale_code(amax);
                    float step = nv ? qf_nvfp4_step(code, G) : qf_mxfp4_step(code);
                    sr[b] = code;
                    for (int64_t j = 0; j < block; j += 2)
                        qr[(b * block + j) / 2] = qf_fp4x2_pack(qf_fp4_code(xb[j], step), qf_fp4_code(xb[j + 1], step));
                }
                break;
            }
            }
        }
    }
    return QF_OK;
}
