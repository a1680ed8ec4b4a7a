/* ct_layout.c - validation and tensor sizes of compressed-tensors weight layouts (qf_kernels.h). */
#include "qf_kernels_internal.h"

const char *qf_wfmt_name(qf_wfmt f)
{
    switch (f) {
    case QF_WFMT_INT4: return "int4";
    case QF_WFMT_FP8: return "fp8";
    case QF_WFMT_NVFP4: return "nvfp4";
    case QF_WFMT_MXFP4: return "mxfp4";
    case QF_WFMT_INT8: return "int8";
    }
    return "?";
}

qf_status qf_ct_layout_check(const qf_ct_layout *l, qf_ct_sizes *sizes, qf_error *err)
{
    if (!l) return qf_fail(err, QF_ERR_USAGE, "weight layout is NULL");
    const char *name = qf_wfmt_name(l->fmt);
    if (name[0] == '?') return qf_fail(err, QF_ERR_USAGE, "unknown weight format %d", (int)l->fmt);
    if (l->n < 1 || l->k < 1)
        return qf_fail(err, QF_ERR_USAGE, "%s weight has shape [%lld, %lld]: both dimensions must be >= 1", name,
                       (long long)l->n, (long long)l->k);
    if (l->asym && l->fmt != QF_WFMT_INT4)
        return qf_fail(err, QF_ERR_USAGE, "%s weights have no zero points (asym is INT4 only)", name);
    size_t n = (size_t)l->n, k = (size_t)l->k;
    qf_ct_sizes s = {0, 0, 0};
    switch (l->fmt) {
    case QF_WFMT_INT4: {
        if (l->group_size < 1)
            return qf_fail(err, QF_ERR_USAGE, "int4 weight [%lld, %lld] has group size %lld (must be >= 1)",
                           (long long)l->n, (long long)l->k, (long long)l->group_size);
        size_t groups = (size_t)qf_ct_int4_groups(l);
        s.weight = n * ((k + 7) / 8) * 4;
        s.scale = n * groups * 2;
        if (l->asym) s.zero_point = ((n + 7) / 8) * groups * 4;
        break;
    }
    case QF_WFMT_FP8:
    case QF_WFMT_INT8:
        s.weight = n * k;
        s.scale = (l->per_tensor ? 1 : n) * 2; /* bf16 */
        break;
    case QF_WFMT_NVFP4:
    case QF_WFMT_MXFP4: {
        size_t block = l->fmt == QF_WFMT_NVFP4 ? 16 : 32;
        if (k % block)
            return qf_fail(err, QF_ERR_USAGE, "%s weight [%lld, %lld]: k must be a multiple of %zu", name,
                           (long long)l->n, (long long)l->k, block);
        s.weight = n * k / 2;
        s.scale = n * (k / block);
        break;
    }
    }
    if (sizes) *sizes = s;
    return QF_OK;
}
