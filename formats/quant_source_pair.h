/* quant_source_pair.h - internal to formats/: which tensors of a quantized source go together.
 *
 * Shared by quant_source_detect.c (which checks and counts the pairs) and quant_source_read.c
 * (which dequantizes them), so both see the same pairing: a quantized tensor, its scale
 * companion, and the block grid that maps each element to its scale.
 */
#ifndef QF_QUANT_SOURCE_PAIR_H
#define QF_QUANT_SOURCE_PAIR_H

#include "qf_quant_source.h"

typedef enum qf_qs_role {
    QF_QS_PLAIN = 0,     /* kept as it is */
    QF_QS_PRIMARY = 1,   /* dequantized (pair filled) */
    QF_QS_COMPANION = 2, /* a scale or activation scale: dropped */
} qf_qs_role;

typedef struct qf_qs_pair {
    const qf_tensor *q;      /* the quantized tensor */
    const qf_tensor *scale;  /* its scales */
    int64_t lead;            /* product of the leading dims (experts); 1 for a 2-D weight */
    int64_t rows, cols;      /* fp8: the weight's last two dims; mxfp4: N rows of 32G values */
    int64_t bn, bk;          /* fp8: rows and columns one scale covers (edge blocks may be partial) */
    char *out_name;          /* the dequantized tensor's name (owned) */
    int ndim;                /* of the dequantized tensor */
    int64_t shape[QF_MAX_DIMS];
} qf_qs_pair;

/* The role of ck->tensors[i] in a source of quantization q; a primary fills *pair (the caller
 * frees pair->out_name).  A tensor that is quantized but cannot be read (no scale, a scale of
 * the wrong shape or dtype, a quantized tensor in a source that declares none) is an error
 * naming dir and the tensor. */
qf_status qf_qs_classify(const char *dir, const qf_checkpoint *ck, const qf_qsource *q, int i, qf_qs_role *role,
                         qf_qs_pair *pair, qf_error *err);

#endif /* QF_QUANT_SOURCE_PAIR_H */
