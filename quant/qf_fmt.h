/* qf_fmt.h - every weight number format's rules, one include.
 *
 * One file per format owns that format's scale choice, rounding (value -> code), packing and
 * dequantization (code -> value) as QF_HD inline functions compiled by gcc and nvcc alike:
 *   qf_fmt_int4.h       int4 symmetric          qf_fmt_int4_asym.h  int4 with zero points
 *   qf_fmt_int8.h       int8                    qf_fmt_fp8.h        FP8 E4M3 (channel, tensor)
 *   qf_fmt_nvfp4.h      NVFP4                   qf_fmt_mxfp4.h      MXFP4
 * quant/quantize.c (RTN and the group rules GPTQ / AWQ use), quant/dequant.c (the validator's
 * dequantizer), the kernels' CPU references (kernels/..._ref.c) and the CUDA kernels call these,
 * so every path rounds with the same text.  A new format is one more file here.  The scalar
 * codecs they build on (bf16, E4M3, E2M1, E8M0) are qf_numfmt.h's.
 */
#ifndef QF_FMT_H
#define QF_FMT_H

#include "qf_fmt_fp8.h"
#include "qf_fmt_int4.h"
#include "qf_fmt_int4_asym.h"
#include "qf_fmt_int8.h"
#include "qf_fmt_mxfp4.h"
#include "qf_fmt_nvfp4.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* QF_FMT_H */
