/* qf_scheme.c - the rows of the scheme table (see qf_scheme.h). */
#include "qf_scheme.h"

#include <string.h>

static const qf_scheme qf_schemes[] = {
    {QF_SCHEME_FP8_DYNAMIC, "fp8-dynamic", "float-quantized", QF_VALUE_FP8_E4M3, 8, 0, 1, QF_DTYPE_F8_E4M3,
     QF_DTYPE_BF16, 0, QF_ACT_FP8_TOKEN, 0, "FP8_PER_CHANNEL_PER_TOKEN"},
    {QF_SCHEME_W4A16, "w4a16", "pack-quantized", QF_VALUE_INT4, 4, 128, 1, QF_DTYPE_I32, QF_DTYPE_BF16, 0,
     QF_ACT_NONE, 0, "W4A16_AWQ"},
    {QF_SCHEME_W4A16_ASYM, "w4a16-asym", "pack-quantized", QF_VALUE_INT4, 4, 128, 0, QF_DTYPE_I32,
     QF_DTYPE_BF16, 0, QF_ACT_NONE, 0, NULL},
    {QF_SCHEME_NVFP4A16, "nvfp4a16", "nvfp4-pack-quantized", QF_VALUE_FP4_E2M1, 4, 16, 1, QF_DTYPE_U8,
     QF_DTYPE_F8_E4M3, 1, QF_ACT_NONE, 0, "NVFP4"},
    {QF_SCHEME_MXFP4A16, "mxfp4a16", "mxfp4-pack-quantized", QF_VALUE_FP4_E2M1, 4, 32, 1, QF_DTYPE_U8,
     QF_DTYPE_U8, 0, QF_ACT_NONE, 0, NULL},
    {QF_SCHEME_W8A8, "w8a8", "int-quantized", QF_VALUE_INT8, 8, 0, 1, QF_DTYPE_I8, QF_DTYPE_BF16, 0,
     QF_ACT_INT8_TOKEN, 0, "W8A8_SQ_PER_CHANNEL"},
    {QF_SCHEME_FP8, "fp8", "float-quantized", QF_VALUE_FP8_E4M3, 8, 0, 1, QF_DTYPE_F8_E4M3, QF_DTYPE_BF16, 0,
     QF_ACT_FP8_STATIC, 1, "FP8"},
    {QF_SCHEME_NVFP4, "nvfp4", "nvfp4-pack-quantized", QF_VALUE_FP4_E2M1, 4, 16, 1, QF_DTYPE_U8,
     QF_DTYPE_F8_E4M3, 1, QF_ACT_NVFP4, 1, "NVFP4"},
};

#define QF_N_SCHEMES ((int)(sizeof qf_schemes / sizeof qf_schemes[0]))

const qf_scheme *qf_scheme_find(const char *name)
{
    for (int i = 0; i < QF_N_SCHEMES; i++)
        if (strcmp(qf_schemes[i].name, name) == 0) return &qf_schemes[i];
    return NULL;
}

const qf_scheme *qf_scheme_by_id(qf_scheme_id id)
{
    for (int i = 0; i < QF_N_SCHEMES; i++)
        if (qf_schemes[i].id == id) return &qf_schemes[i];
    return NULL;
}

const qf_scheme *qf_scheme_all(int *count)
{
    *count = QF_N_SCHEMES;
    return qf_schemes;
}

const char *qf_scheme_names(void)
{
    return "fp8-dynamic, w4a16, w4a16-asym, nvfp4a16, mxfp4a16, w8a8 (fp8, nvfp4 need calibration)";
}

int qf_scheme_fits(const qf_scheme *s, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0) return 0;
    if (s->group_size && cols % s->group_size) return 0;
    if (s->value == QF_VALUE_INT4 && cols % 8) return 0;
    if (s->value == QF_VALUE_INT4 && !s->symmetric && rows % 8) return 0;
    if (s->value == QF_VALUE_FP4_E2M1 && cols % 2) return 0;
    return 1;
}
