/* bench_check.cu - the kernel benchmark's output check (qf_bench_check.cuh). */
#include <math.h>

#include <cuda_runtime.h>

#include "qf_bench_check.cuh"
#include "qf_cuda_check.h"
#include "qf_numfmt.h"

qf_status qf_bench_ref_make(const qf_ct_weight *dev, qf_bench_ref *r, qf_error *err)
{
    qf_ct_sizes sz;
    QF_TRY(qf_ct_layout_check(&dev->l, &sz, err));
    std::vector<uint8_t> w(sz.weight), s(sz.scale), z(sz.zero_point);
    QF_CUDA_TRY(cudaMemcpy(w.data(), dev->weight, sz.weight, cudaMemcpyDeviceToHost));
    QF_CUDA_TRY(cudaMemcpy(s.data(), dev->scale, sz.scale, cudaMemcpyDeviceToHost));
    if (sz.zero_point) QF_CUDA_TRY(cudaMemcpy(z.data(), dev->zero_point, sz.zero_point, cudaMemcpyDeviceToHost));
    qf_ct_weight h = *dev;
    h.weight = w.data(), h.scale = s.data(), h.zero_point = sz.zero_point ? z.data() : NULL;
    r->n = dev->l.n, r->k = dev->l.k;
    /* spread over n, first and last included: the row blocks at both ends are the odd ones */
    const int64_t c = r->n < QF_BENCH_CHECK_COLS ? r->n : QF_BENCH_CHECK_COLS;
    r->cols.resize((size_t)c);
    r->w.resize((size_t)(c * r->k));
    for (int64_t i = 0; i < c; i++) {
        r->cols[(size_t)i] = c > 1 ? i * (r->n - 1) / (c - 1) : 0;
        float *w = &r->w[(size_t)(i * r->k)];
        QF_TRY(qf_ref_dequant(&h, r->cols[(size_t)i], r->cols[(size_t)i] + 1, w, err));
        if (dev->l.fmt == QF_WFMT_INT4)
            for (int64_t j = 0; j < r->k; j++) w[j] = qf_bf16_to_f32(qf_f32_to_bf16(w[j]));
    }
    return QF_OK;
}

qf_status qf_bench_check(const qf_bench_ref *r, const uint16_t *x, int64_t m, const uint16_t *y, int act_fp8,
                         int w_bf16, const char *what, qf_error *err)
{
    const int64_t k = r->k, n = r->n, nr = m < QF_BENCH_CHECK_ROWS ? m : QF_BENCH_CHECK_ROWS;
    std::vector<uint16_t> xb((size_t)k), yb((size_t)n);
    std::vector<float> xf((size_t)k);
    std::vector<uint8_t> xq((size_t)k);
    for (int64_t t = 0; t < nr; t++) {
        const int64_t i = nr > 1 ? t * (m - 1) / (nr - 1) : 0;
        QF_CUDA_TRY(cudaMemcpy(xb.data(), x + i * k, (size_t)k * 2, cudaMemcpyDeviceToHost));
        QF_CUDA_TRY(cudaMemcpy(yb.data(), y + i * n, (size_t)n * 2, cudaMemcpyDeviceToHost));
        for (int64_t j = 0; j < k; j++) xf[(size_t)j] = qf_bf16_to_f32(xb[(size_t)j]);
        if (act_fp8) { /* the activation the W8A8 kernel multiplies (bit-identical on the GPU) */
            float sc;
            qf_ref_quant_act_fp8(xf.data(), 1, k, xq.data(), &sc);
            for (int64_t j = 0; j < k; j++) xf[(size_t)j] = qf_e4m3_to_f32(xq[(size_t)j]) * sc;
        }
        for (size_t c = 0; c < r->cols.size(); c++) {
            const float *w = &r->w[c * (size_t)k];
            double want = 0, mag = 0;
            for (int64_t j = 0; j < k; j++) want += (double)xf[(size_t)j] * w[j], mag += fabs((double)xf[(size_t)j] * w[j]);
            const double got = qf_bf16_to_f32(yb[(size_t)r->cols[c]]);
            /* twice the worst case of: y stored as bf16 (2^-9 |y|), float32 sums in another order
             * (k 2^-24 sum|xw|), and where the path rounds W to bf16 and the reference does not,
             * 2^-9 of each product.  A wrong scale, code or tile moves whole values; with k = 4096
             * one group of 128 with a wrong scale is already several times the bound; NaN fails. */
            const double bound = 0x1p-8 * fabs(want) + ((double)k * 0x1p-23 + (w_bf16 ? 0x1p-8 : 0.0)) * mag + 1e-30;
            if (!(fabs(got - want) <= bound))
                return qf_fail(err, QF_ERR_CUDA,
                               "kernel benchmark: %s n %lld k %lld m %lld: y[%lld, %lld] = %.6g, CPU reference %.6g "
                               "(bound %.3g); not timing a kernel that computes the wrong thing",
                               what, (long long)n, (long long)k, (long long)m, (long long)i, (long long)r->cols[c], got,
                               want, bound);
        }
    }
    return QF_OK;
}
