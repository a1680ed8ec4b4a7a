/* matmul_ref.c - CPU reference dequant-matmul over every weight format (qf_kernels.h).
 *
 * y[m, n] = x[m, k] . dequant(W)^T: each output column j dequantizes row j of W once into a
 * thread-local float row, then takes its dot product with every row of x, accumulating in
 * float32 in order of increasing k.  Scalar on purpose: this is the ground truth for the CUDA
 * kernels and the CPU path of the product; the fast CPU Linear lives in calib/model/qf_matmul.h.
 */
#include <stdlib.h>

#include "qf_kernels_internal.h"
#include "qf_numfmt.h"

static void qf_dequant_rows_checked(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out)
{
    switch (w->l.fmt) {
    case QF_WFMT_INT4: qf_ref_dequant_int4_rows(w, r0, r1, out); break;
    case QF_WFMT_FP8: qf_ref_dequant_fp8_rows(w, r0, r1, out); break;
    case QF_WFMT_NVFP4:
    case QF_WFMT_MXFP4: qf_ref_dequant_fp4_rows(w, r0, r1, out); break;
    case QF_WFMT_INT8: qf_ref_dequant_int8_rows(w, r0, r1, out); break;
    }
}

static qf_status qf_weight_check(const qf_ct_weight *w, qf_error *err)
{
    if (!w) return qf_fail(err, QF_ERR_USAGE, "weight is NULL");
    QF_TRY(qf_ct_layout_check(&w->l, NULL, err));
    if (!w->weight || !w->scale)
        return qf_fail(err, QF_ERR_USAGE, "%s weight [%lld, %lld]: weight or scale pointer is NULL",
                       qf_wfmt_name(w->l.fmt), (long long)w->l.n, (long long)w->l.k);
    if (w->l.fmt == QF_WFMT_INT4 && w->l.asym && !w->zero_point)
        return qf_fail(err, QF_ERR_USAGE, "asymmetric int4 weight [%lld, %lld] has no zero_point",
                       (long long)w->l.n, (long long)w->l.k);
    return QF_OK;
}

qf_status qf_ref_dequant(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out, qf_error *err)
{
    QF_TRY(qf_weight_check(w, err));
    if (r0 < 0 || r1 < r0 || r1 > w->l.n)
        return qf_fail(err, QF_ERR_USAGE, "row range [%lld, %lld) outside a weight of %lld rows", (long long)r0,
                       (long long)r1, (long long)w->l.n);
    qf_dequant_rows_checked(w, r0, r1, out);
    return QF_OK;
}

qf_status qf_ref_matmul(const qf_ct_weight *w, const float *x, int64_t m, float *y, qf_error *err)
{
    QF_TRY(qf_weight_check(w, err));
    if (m < 0) return qf_fail(err, QF_ERR_USAGE, "matmul with m = %lld", (long long)m);
    const int64_t n = w->l.n, k = w->l.k;
    int nomem = 0;
#pragma omp parallel
    {
        float *row = malloc(sizeof(float) * (size_t)k);
        if (!row) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t j = 0; j < n; j++) {
            if (!row) continue;
            qf_dequant_rows_checked(w, j, j + 1, row);
            for (int64_t i = 0; i < m; i++) {
                const float *xi = x + i * k;
                float acc = 0.0f;
                for (int64_t c = 0; c < k; c++) acc += xi[c] * row[c];
                y[i * n + j] = acc;
            }
        }
        free(row);
    }
    if (nomem) return qf_fail(err, QF_ERR_NOMEM, "out of memory for a %lld-float row buffer", (long long)k);
    return QF_OK;
}

qf_status qf_ref_matmul_a8(const qf_ct_weight *w, const void *xq, const float *x_scale, int64_t m, float *y,
                           qf_error *err)
{
    QF_TRY(qf_weight_check(w, err));
    if (w->l.fmt != QF_WFMT_FP8 && w->l.fmt != QF_WFMT_INT8)
        return qf_fail(err, QF_ERR_USAGE, "W8A8 product needs an fp8 or int8 weight, not %s", qf_wfmt_name(w->l.fmt));
    if (m < 0) return qf_fail(err, QF_ERR_USAGE, "matmul with m = %lld", (long long)m);
    const int64_t n = w->l.n, k = w->l.k;
    const uint16_t *ws = (const uint16_t *)w->scale; /* bf16 */
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t j = 0; j < n; j++) {
        float sw = qf_bf16_to_f32(ws[w->l.per_tensor ? 0 : j]);
        for (int64_t i = 0; i < m; i++) {
            float dot;
            if (w->l.fmt == QF_WFMT_INT8) {
                const int8_t *a = (const int8_t *)xq + i * k, *b = (const int8_t *)w->weight + j * k;
                int64_t acc = 0;
                for (int64_t c = 0; c < k; c++) acc += (int32_t)a[c] * (int32_t)b[c];
                dot = (float)acc;
            } else {
                const uint8_t *a = (const uint8_t *)xq + i * k, *b = (const uint8_t *)w->weight + j * k;
                float acc = 0.0f;
                for (int64_t c = 0; c < k; c++) acc += qf_e4m3_to_f32(a[c]) * qf_e4m3_to_f32(b[c]);
                dot = acc;
            }
            y[i * n + j] = x_scale[i] * sw * dot;
        }
    }
    return QF_OK;
}
