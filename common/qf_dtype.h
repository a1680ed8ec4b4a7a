/* qf_dtype.h - element types of tensors as checkpoints store them.
 *
 * Owns the one enum of tensor element types, their safetensors spellings and their sizes.
 * Values are pinned (they reach manifests and test vectors): append only.
 * F4 is the safetensors packed FP4 type: two elements per byte, shape counts elements.
 */
#ifndef QF_DTYPE_H
#define QF_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_dtype {
    QF_DTYPE_INVALID = 0,
    QF_DTYPE_BOOL    = 1,
    QF_DTYPE_U8      = 2,
    QF_DTYPE_I8      = 3,
    QF_DTYPE_F8_E5M2 = 4,
    QF_DTYPE_F8_E4M3 = 5,
    QF_DTYPE_I16     = 6,
    QF_DTYPE_U16     = 7,
    QF_DTYPE_F16     = 8,
    QF_DTYPE_BF16    = 9,
    QF_DTYPE_I32     = 10,
    QF_DTYPE_U32     = 11,
    QF_DTYPE_F32     = 12,
    QF_DTYPE_F64     = 13,
    QF_DTYPE_I64     = 14,
    QF_DTYPE_U64     = 15,
    QF_DTYPE_F8_E8M0 = 16,
    QF_DTYPE_F4      = 17, /* E2M1, two per byte, low nibble first */
    QF_DTYPE_COUNT
} qf_dtype;

/* safetensors spelling ("BF16"); "?" for an invalid value. */
const char *qf_dtype_name(qf_dtype t);
/* Parse a safetensors spelling; QF_DTYPE_INVALID when unknown. */
qf_dtype qf_dtype_from_name(const char *name);
/* Bits per element (4 for F4, 8 for U8, ...); 0 for invalid. */
int qf_dtype_bits(qf_dtype t);
/* True for types a model runner can read as floating point weights (F16, BF16, F32, F64). */
int qf_dtype_is_float(qf_dtype t);

#ifdef __cplusplus
}
#endif

#endif /* QF_DTYPE_H */
