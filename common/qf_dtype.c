/* qf_dtype.c - dtype names and sizes (see qf_dtype.h). */
#include "qf_dtype.h"

#include <string.h>

static const struct {
    const char *name;
    int bits;
} qf_dtype_info[QF_DTYPE_COUNT] = {
    [QF_DTYPE_INVALID] = {"?", 0},        [QF_DTYPE_BOOL] = {"BOOL", 8},
    [QF_DTYPE_U8] = {"U8", 8},            [QF_DTYPE_I8] = {"I8", 8},
    [QF_DTYPE_F8_E5M2] = {"F8_E5M2", 8},  [QF_DTYPE_F8_E4M3] = {"F8_E4M3", 8},
    [QF_DTYPE_I16] = {"I16", 16},         [QF_DTYPE_U16] = {"U16", 16},
    [QF_DTYPE_F16] = {"F16", 16},         [QF_DTYPE_BF16] = {"BF16", 16},
    [QF_DTYPE_I32] = {"I32", 32},         [QF_DTYPE_U32] = {"U32", 32},
    [QF_DTYPE_F32] = {"F32", 32},         [QF_DTYPE_F64] = {"F64", 64},
    [QF_DTYPE_I64] = {"I64", 64},         [QF_DTYPE_U64] = {"U64", 64},
    [QF_DTYPE_F8_E8M0] = {"F8_E8M0", 8},  [QF_DTYPE_F4] = {"F4", 4},
};

const char *qf_dtype_name(qf_dtype t)
{
    return (t > 0 && t < QF_DTYPE_COUNT) ? qf_dtype_info[t].name : "?";
}

qf_dtype qf_dtype_from_name(const char *name)
{
    for (int t = 1; t < QF_DTYPE_COUNT; t++)
        if (strcmp(name, qf_dtype_info[t].name) == 0) return (qf_dtype)t;
    return QF_DTYPE_INVALID;
}

int qf_dtype_bits(qf_dtype t) { return (t > 0 && t < QF_DTYPE_COUNT) ? qf_dtype_info[t].bits : 0; }

int qf_dtype_is_float(qf_dtype t)
{
    return t == QF_DTYPE_F16 || t == QF_DTYPE_BF16 || t == QF_DTYPE_F32 || t == QF_DTYPE_F64;
}
