/* qf_gguf_gptq.c - calibrated GGUF rows: importance-weighted rounding (the imatrix idea) and
 * GPTQ's error feedback under ggml's block rules (see qf_gguf_calib.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"
#include "qf_gguf_calib.h"
#include "qf_linalg.h"

void qf_gguf_importance(const double *H, int64_t cols, int64_t n, float *imp)
{
    for (int64_t c = 0; c < cols; c++) imp[c] = n > 0 ? (float)(H[c * cols + c] / (double)n) : 1.0f;
}

qf_status qf_gguf_quantize_imatrix(int type, float *W, int64_t rows, int64_t cols, const float *imp, uint8_t *out,
                                   qf_error *err)
{
    (void)err;
    const uint64_t rb = qf_ggml_row_bytes(type, cols);
#pragma omp parallel for schedule(dynamic, 16) if (rows * cols >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        qf_ggml_quantize_row_imp(type, W + r * cols, cols, imp, out + (uint64_t)r * rb);
        qf_ggml_dequantize_row(type, out + (uint64_t)r * rb, cols, W + r * cols);
    }
    return QF_OK;
}

/* One row's sweep: w (modified) -> the row's blocks in out. */
static void qf_gptq_row(int type, float *w, int64_t cols, const float *U, const float *imp, uint8_t *out, double *loss)
{
    const int bs = qf_ggml_block_size(type), nb = qf_ggml_type_size(type);
    float a[256], b[256];
    uint8_t q[256];
    double l = 0;
    for (int64_t c0 = 0; c0 < cols; c0 += bs) {
        uint8_t *blk = out + (c0 / bs) * nb;
        /* the block's scales from its weights as the sweep leaves them, then each column's
         * code under those scales, its error pushed onto every later column */
        qf_ggml_quantize_row_imp(type, w + c0, bs, imp + c0, blk);
        int qmax = 0;
        qf_ggml_block_affine(type, blk, a, b, &qmax);
        for (int j = 0; j < bs; j++) {
            const int64_t c = c0 + j;
            int code = 0;
            if (a[j] != 0.0f) {
                long v = lrintf((w[c] - b[j]) / a[j]);
                code = v < 0 ? 0 : v > qmax ? qmax : (int)v;
            }
            q[j] = (uint8_t)code;
            const float e = (w[c] - (a[j] * (float)code + b[j])) / U[c * cols + c];
            l += 0.5 * (double)e * (double)e;
            const float *u = U + c * cols;
            for (int64_t k = c + 1; k < cols; k++) w[k] -= e * u[k];
        }
        qf_ggml_block_set_codes(type, blk, q);
    }
    *loss = l;
}

qf_status qf_gguf_quantize_gptq(int type, float *W, int64_t rows, int64_t cols, const double *H, int64_t n,
                                float percdamp, uint8_t *out, double *loss, qf_error *err)
{
    if (qf_ggml_block_size(type) <= 1) return qf_gguf_quantize_imatrix(type, W, rows, cols, NULL, out, err);
    double *Hd = malloc(sizeof(double) * (size_t)(cols * cols));
    float *U = malloc(sizeof(float) * (size_t)(cols * cols)), *imp = malloc(sizeof(float) * (size_t)cols);
    if (!Hd || !U || !imp) {
        free(Hd), free(U), free(imp);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory for a %lld-column Hessian", (long long)cols);
    }
    qf_gguf_importance(H, cols, n, imp);
    /* GPTQ's steps 1-2 (qf_gptq.h): H * 2 / n, dead inputs, dampening (x10 on failure) */
    const double sc = 2.0 / (double)(n > 0 ? n : 1);
    double mean = 0;
    for (int64_t i = 0; i < cols; i++) mean += H[i * cols + i] * sc;
    mean /= (double)cols;
    double damp = (percdamp > 0 ? percdamp : 1e-4) * (mean > 0 ? mean : 1.0);
    qf_status st = QF_OK;
    for (int tries = 0; tries < 7; tries++, damp *= 10) {
        for (int64_t i = 0; i < cols * cols; i++) Hd[i] = H[i] * sc;
        for (int64_t i = 0; i < cols; i++) {
            if (H[i * cols + i] == 0) {
                Hd[i * cols + i] = 1;
                for (int64_t r = 0; r < rows; r++) W[r * cols + i] = 0;
            }
            Hd[i * cols + i] += damp;
        }
        st = QF_OK;
        if (qf_gptq_factor(Hd, cols, U, &st, err) == 0 && st == QF_OK) break;
        if (st == QF_ERR_NOMEM) break;
        st = QF_ERR_FORMAT;
    }
    free(Hd);
    if (st != QF_OK) {
        free(U), free(imp);
        return st == QF_ERR_NOMEM ? st : qf_fail(err, QF_ERR_FORMAT, "input statistics not positive definite after dampening");
    }
    const uint64_t rb = qf_ggml_row_bytes(type, cols);
    double total = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : total)
    for (int64_t r = 0; r < rows; r++) { /* the sweep works in the row itself, then decodes into it */
        double l = 0;
        qf_gptq_row(type, W + r * cols, cols, U, imp, out + (uint64_t)r * rb, &l);
        qf_ggml_dequantize_row(type, out + (uint64_t)r * rb, cols, W + r * cols);
        total += l;
    }
    if (loss) *loss = total;
    free(U), free(imp);
    return QF_OK;
}
