/* qf_scheme.h - the scheme table: every quantization scheme qforge writes, as one row each.
 *
 * Owns the descriptor that the quantizers, writers, kernels and the validator all look up:
 * value format and bits, group size, scale format, zero points, activation handling, the
 * names compressed-tensors and ModelOpt use, and which packed tensors an artifact stores per
 * Linear.  Adding a scheme is adding a row (plus its quantize/dequantize cases).  Ids are
 * pinned (they reach manifests): append only.
 *
 * Packed tensors per quantized Linear "<module>" (compressed-tensors layout, W is [out, in]):
 *   fp8-dynamic, fp8  <module>.weight F8_E4M3 [out,in], .weight_scale BF16 [out,1] (fp8: [1]),
 *                     fp8 static adds .input_scale BF16 [1]
 *   w8a8              .weight I8 [out,in], .weight_scale BF16 [out,1]
 *   (fp8 / int8 weight scales are BF16 as llm-compressor writes them for bf16 models, and the
 *   codes are rounded with that stored scale, so the artifact decodes to what was measured;
 *   input scales stay F32, as llm-compressor writes them.)
 *   w4a16(-asym)      .weight_packed I32 [out,in/8], .weight_scale BF16 [out,in/128],
 *                     .weight_shape I64 [2], asym adds .weight_zero_point I32 [out/8,in/128]
 *   nvfp4a16, nvfp4   .weight_packed U8 [out,in/2], .weight_scale F8_E4M3 [out,in/16],
 *                     .weight_global_scale F32 [1]; nvfp4 adds .input_global_scale F32 [1]
 *   mxfp4a16          .weight_packed U8 [out,in/2], .weight_scale U8 (E8M0) [out,in/32]
 */
#ifndef QF_SCHEME_H
#define QF_SCHEME_H

#include "qf_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_scheme_id {
    QF_SCHEME_FP8_DYNAMIC = 1,
    QF_SCHEME_W4A16 = 2,
    QF_SCHEME_W4A16_ASYM = 3,
    QF_SCHEME_NVFP4A16 = 4,
    QF_SCHEME_MXFP4A16 = 5,
    QF_SCHEME_W8A8 = 6,
    QF_SCHEME_FP8 = 7,   /* static per-tensor activation scale: needs calibration */
    QF_SCHEME_NVFP4 = 8, /* W4A4 with calibrated activation global scale */
} qf_scheme_id;

typedef enum qf_value_format {
    QF_VALUE_INT4 = 1,
    QF_VALUE_INT8 = 2,
    QF_VALUE_FP8_E4M3 = 3,
    QF_VALUE_FP4_E2M1 = 4,
} qf_value_format;

typedef enum qf_act_quant {
    QF_ACT_NONE = 0,        /* weight-only: activations stay bf16 */
    QF_ACT_FP8_TOKEN = 1,   /* dynamic per-token E4M3, scale = row absmax / 448 */
    QF_ACT_INT8_TOKEN = 2,  /* dynamic per-token int8, scale = row absmax / 127 */
    QF_ACT_FP8_STATIC = 3,  /* static per-tensor E4M3, calibrated input_scale */
    QF_ACT_NVFP4 = 4,       /* per-16 E2M1 with E4M3 block scales under a calibrated global scale */
} qf_act_quant;

typedef struct qf_scheme {
    qf_scheme_id id;
    const char *name;          /* CLI / preset name, lower case: "w4a16" */
    const char *ct_format;     /* compressed-tensors format: "pack-quantized" */
    qf_value_format value;
    int bits;                  /* 4 or 8 */
    int group_size;            /* along the input dim; 0 = one scale per output channel */
    int symmetric;             /* 0: zero points stored (w4a16-asym) */
    qf_dtype weight_dtype;     /* dtype of the stored weight tensor */
    qf_dtype scale_dtype;      /* dtype of weight_scale */
    int has_global_scale;      /* nvfp4: weight_global_scale */
    qf_act_quant act;
    int needs_calibration;     /* static activation scales: refuse with rtn alone */
    const char *modelopt_algo; /* hf_quant_config quant_algo, NULL if none */
} qf_scheme;

/* Row by name ("w4a16"); NULL when unknown. */
const qf_scheme *qf_scheme_find(const char *name);
const qf_scheme *qf_scheme_by_id(qf_scheme_id id);
/* All rows, for loops in tests and help text. */
const qf_scheme *qf_scheme_all(int *count);
/* Comma-separated names of all schemes, for messages. */
const char *qf_scheme_names(void);
/* Whether a Linear of shape [rows, cols] can be stored in this scheme (divisibility). */
int qf_scheme_fits(const qf_scheme *s, int64_t rows, int64_t cols);

#ifdef __cplusplus
}
#endif

#endif /* QF_SCHEME_H */
