/* qf_gguf_quants.c - ggml block types: names, sizes, and the row-level quantize / dequantize
 * / affine-view entry points over the block codecs (qf_gguf_blocks.h; layouts in qf_gguf.h). */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "qf_gguf.h"
#include "qf_gguf_blocks.h"
#include "qf_numfmt.h"

static const struct {
    int type;
    const char *name;
    int block, bytes, support; /* support: 1 write + decode, 2 decode only, 0 size only */
} qf_ggml_types[] = {
    {QF_GGML_F32, "F32", 1, 4, 1},      {QF_GGML_F16, "F16", 1, 2, 1},      {QF_GGML_Q4_0, "Q4_0", 32, 18, 1},
    {QF_GGML_Q4_1, "Q4_1", 32, 20, 1},  {QF_GGML_Q5_0, "Q5_0", 32, 22, 1},  {QF_GGML_Q5_1, "Q5_1", 32, 24, 1},
    {QF_GGML_Q8_0, "Q8_0", 32, 34, 1},  {QF_GGML_Q8_1, "Q8_1", 32, 36, 0},  {QF_GGML_Q2_K, "Q2_K", 256, 84, 0},
    {QF_GGML_Q3_K, "Q3_K", 256, 110, 0}, {QF_GGML_Q4_K, "Q4_K", 256, 144, 1}, {QF_GGML_Q5_K, "Q5_K", 256, 176, 1},
    {QF_GGML_Q6_K, "Q6_K", 256, 210, 1}, {QF_GGML_Q8_K, "Q8_K", 256, 292, 0}, {QF_GGML_I8, "I8", 1, 1, 0},
    {QF_GGML_I16, "I16", 1, 2, 0},      {QF_GGML_I32, "I32", 1, 4, 0},      {QF_GGML_I64, "I64", 1, 8, 0},
    {QF_GGML_F64, "F64", 1, 8, 0},      {QF_GGML_BF16, "BF16", 1, 2, 1},
};
#define QF_N_GGML ((int)(sizeof qf_ggml_types / sizeof *qf_ggml_types))

static int qf_ggml_row(int type)
{
    for (int i = 0; i < QF_N_GGML; i++)
        if (qf_ggml_types[i].type == type) return i;
    return -1;
}

const char *qf_ggml_type_name(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? "?" : qf_ggml_types[i].name;
}

int qf_ggml_type_from_name(const char *name)
{
    for (int i = 0; i < QF_N_GGML; i++)
        if (strcasecmp(name, qf_ggml_types[i].name) == 0) return qf_ggml_types[i].type;
    return -1;
}

int qf_ggml_block_size(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? 0 : qf_ggml_types[i].block;
}

int qf_ggml_type_size(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? 0 : qf_ggml_types[i].bytes;
}

int qf_ggml_type_support(int type)
{
    int i = qf_ggml_row(type);
    return i < 0 ? 0 : qf_ggml_types[i].support;
}

uint64_t qf_ggml_row_bytes(int type, int64_t ne0)
{
    int b = qf_ggml_block_size(type);
    return b ? (uint64_t)(ne0 / b) * (uint64_t)qf_ggml_type_size(type) : 0;
}

typedef void (*qf_block_fn)(const float *x, const float *imp, uint8_t *b);

static qf_block_fn qf_block_quantizer(int type)
{
    switch (type) {
    case QF_GGML_Q8_0: return qf_gguf_q8_0_block;
    case QF_GGML_Q4_0: return qf_gguf_q4_0_block;
    case QF_GGML_Q4_1: return qf_gguf_q4_1_block;
    case QF_GGML_Q5_0: return qf_gguf_q5_0_block;
    case QF_GGML_Q5_1: return qf_gguf_q5_1_block;
    case QF_GGML_Q4_K: return qf_gguf_q4_k_block;
    case QF_GGML_Q5_K: return qf_gguf_q5_k_block;
    case QF_GGML_Q6_K: return qf_gguf_q6_k_block;
    }
    return NULL;
}

void qf_ggml_quantize_row_imp(int type, const float *x, int64_t n, const float *imp, void *out)
{
    uint8_t *o = out;
    qf_block_fn f = qf_block_quantizer(type);
    if (f) {
        const int bs = qf_ggml_block_size(type), nb = qf_ggml_type_size(type);
        for (int64_t i = 0; i < n / bs; i++) f(x + bs * i, imp ? imp + bs * i : NULL, o + nb * i);
        return;
    }
    switch (type) {
    case QF_GGML_F32: memcpy(o, x, sizeof(float) * (size_t)n); break;
    case QF_GGML_F16:
        for (int64_t i = 0; i < n; i++) qf_gguf_put_f16(o + 2 * i, x[i]);
        break;
    case QF_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = qf_f32_to_bf16(x[i]);
            o[2 * i] = (uint8_t)h, o[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    default: break;
    }
}

void qf_ggml_quantize_row(int type, const float *x, int64_t n, void *out) { qf_ggml_quantize_row_imp(type, x, n, NULL, out); }

void qf_ggml_dequantize_row(int type, const void *in, int64_t n, float *y)
{
    const uint8_t *b = in;
    const int bs = qf_ggml_block_size(type), nb = qf_ggml_type_size(type);
    switch (type) {
    case QF_GGML_F32: memcpy(y, b, sizeof(float) * (size_t)n); break;
    case QF_GGML_F16:
        for (int64_t i = 0; i < n; i++) y[i] = qf_gguf_get_f16(b + 2 * i);
        break;
    case QF_GGML_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = qf_bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
        break;
    case QF_GGML_Q8_0: case QF_GGML_Q4_0: case QF_GGML_Q4_1: case QF_GGML_Q5_0: case QF_GGML_Q5_1:
        for (int64_t k = 0; k < n / bs; k++) qf_gguf_block32_decode(type, b + nb * k, y + bs * k);
        break;
    case QF_GGML_Q4_K: case QF_GGML_Q5_K: case QF_GGML_Q6_K:
        for (int64_t k = 0; k < n / bs; k++) qf_gguf_kquant_decode(type, b + nb * k, y + bs * k);
        break;
    default:
        memset(y, 0, sizeof(float) * (size_t)n);
    }
}

int qf_ggml_block_affine(int type, const void *blk, float *a, float *b, int *qmax)
{
    return qf_gguf_block32_affine(type, blk, a, b, qmax) || qf_gguf_kquant_affine(type, blk, a, b, qmax);
}

void qf_ggml_block_set_codes(int type, void *blk, const uint8_t *q)
{
    if (qf_ggml_block_size(type) == 32) qf_gguf_block32_set_codes(type, blk, q);
    else qf_gguf_kquant_set_codes(type, blk, q);
}
