/* qf_dequant.h - a packed Linear weight as stored in an artifact, and its dequantization.
 *
 * Owns qf_packed_weight: borrowed pointers to the tensors of one quantized Linear
 * (compressed-tensors layout, see qf_scheme.h) plus the scheme row, and the scalar
 * reference that turns rows of it back into float.  This is what the CPU model runner's
 * quantized Linear layers call (dequantize a tile of rows, then a float matmul), and what the
 * quantizer tests compare against.  The value of each code is the format file's
 * (quant/qf_fmt_*.h), the same function the kernels' CPU references (kernels/matmul_ref.c,
 * qf_ref_dequant) and the CUDA dequantizers call; this walker differs from theirs only in the
 * descriptor it reads (a scheme row and any float scale dtype, where qf_ct_weight fixes
 * bf16 scales).  Nothing is allocated here.
 */
#ifndef QF_DEQUANT_H
#define QF_DEQUANT_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_packed_weight {
    const qf_scheme *scheme;
    int64_t rows, cols;    /* out_features, in_features (logical) */
    const void *weight;    /* weight_packed (I32 / U8) or weight (F8_E4M3 / I8) */
    const void *scale;     /* weight_scale, in scale_dtype */
    qf_dtype scale_dtype;  /* as stored (BF16, F16, F32, F8_E4M3, U8) */
    const void *zero;      /* weight_zero_point (I32, packed along rows) or NULL */
    float global_scale;    /* nvfp4: weight_global_scale (the divisor, CT convention); else 1 */
    float input_scale;     /* static activation scale (fp8 input_scale / nvfp4 1/input_global_scale); 0 = dynamic */
} qf_packed_weight;

/* Dequantize rows [r0, r1) into out[(r1 - r0) * cols], row-major float32. */
void qf_dequant_rows(const qf_packed_weight *w, int64_t r0, int64_t r1, float *out);

#ifdef __cplusplus
}
#endif

#endif /* QF_DEQUANT_H */
