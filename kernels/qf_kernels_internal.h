/* qf_kernels_internal.h - internal to kernels/: what the CPU reference files share.
 *
 * One dequantize-rows function per weight format (each in the *_ref.c file beside its kernel),
 * called by matmul_ref.c after the layout has been validated, and the small helpers they use.
 */
#ifndef QF_KERNELS_INTERNAL_H
#define QF_KERNELS_INTERNAL_H

#include "qf_kernels.h"

/* Rows [r0, r1) of a validated weight into out[(r1 - r0) * k] float32. */
void qf_ref_dequant_int4_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out);
void qf_ref_dequant_fp8_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out);
void qf_ref_dequant_fp4_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out);
void qf_ref_dequant_int8_rows(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out);

/* Scale count along k of an INT4 layout: ceil(k / group). */
static inline int64_t qf_ct_int4_groups(const qf_ct_layout *l) { return (l->k + l->group_size - 1) / l->group_size; }

#endif /* QF_KERNELS_INTERNAL_H */
