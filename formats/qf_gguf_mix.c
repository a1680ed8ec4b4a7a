/* qf_gguf_mix.c - llama.cpp's file types and per-tensor type rule (see qf_gguf_mix.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qf_gguf.h"
#include "qf_gguf_mix.h"

/* LLAMA_FTYPE values: llama.h (pinned by general.file_type) */
static const qf_gguf_mix qf_mixes[] = {
    {"f32", 0, QF_GGML_F32, 1},     {"f16", 1, QF_GGML_F16, 1},       {"bf16", 32, QF_GGML_BF16, 1},
    {"q8_0", 7, QF_GGML_Q8_0, 0},   {"q4_0", 2, QF_GGML_Q4_0, 0},     {"q4_1", 3, QF_GGML_Q4_1, 0},
    {"q5_0", 8, QF_GGML_Q5_0, 0},   {"q5_1", 9, QF_GGML_Q5_1, 0},     {"q4_k", 14, QF_GGML_Q4_K, 1},
    {"q4_k_s", 14, QF_GGML_Q4_K, 0}, {"q4_k_m", 15, QF_GGML_Q4_K, 0}, {"q5_k_s", 16, QF_GGML_Q5_K, 0},
    {"q5_k_m", 17, QF_GGML_Q5_K, 0}, {"q6_k", 18, QF_GGML_Q6_K, 0},
};
#define QF_N_MIXES ((int)(sizeof qf_mixes / sizeof *qf_mixes))

const qf_gguf_mix *qf_gguf_mix_find(const char *name)
{
    for (int i = 0; name && i < QF_N_MIXES; i++)
        if (strcasecmp(name, qf_mixes[i].name) == 0) return &qf_mixes[i];
    return NULL;
}

void qf_gguf_mix_list(char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = 0;
    for (int i = 0; i < QF_N_MIXES && u < len; i++)
        u += (size_t)snprintf(buf + u, len - u, "%s%s", i ? ", " : "", qf_mixes[i].name);
}

/* llama.cpp's use_more_bits: the first and last eighth, and every third layer between */
static int qf_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int qf_is(const char *name, const char *part) { return strstr(name, part) != NULL; }

/* the rule's first part (llama_tensor_get_type_impl), for what qforge writes */
static int qf_mix_rule(const qf_gguf_mix *m, const qf_gguf_mix_tensor *t)
{
    int type = m->base, layer = -1;
    const int ft = m->ftype, n = t->n_layers;
    if (sscanf(t->name, "blk.%d.", &layer) != 1) layer = -1;
    int output = strcmp(t->name, "output.weight") == 0 || (t->tied && strcmp(t->name, "token_embd.weight") == 0);
    if (output) {
        if (t->cols % qf_ggml_block_size(type) != 0) return QF_GGML_Q8_0;
        return type != QF_GGML_Q8_0 ? QF_GGML_Q6_K : type;
    }
    if (layer < 0) return type; /* token_embd: the base type for these mixes */
    if (qf_is(t->name, ".attn_v.")) {
        if ((ft == 15 || ft == 17) && qf_more_bits(layer, n)) type = QF_GGML_Q6_K;
        else if (ft == 14 && layer < 4) type = QF_GGML_Q5_K;
    } else if (qf_is(t->name, ".ffn_down.")) {
        if (ft == 15) {
            if (qf_more_bits(layer, n)) type = QF_GGML_Q6_K;
        } else if (ft == 17 && qf_more_bits(layer, n)) {
            type = QF_GGML_Q6_K;
        } else if (ft == 14 && layer < n / 8) {
            type = QF_GGML_Q5_K;
        } else if ((ft == 2 || ft == 8) && t->imatrix && layer < n / 8) {
            type = ft == 2 ? QF_GGML_Q4_1 : QF_GGML_Q5_1;
        }
    }
    return type;
}

int qf_gguf_mix_type(const qf_gguf_mix *m, const qf_gguf_mix_tensor *t)
{
    int type = m->pure ? m->base : qf_mix_rule(m, t);
    if (qf_ggml_block_size(type) <= 1 || t->cols % qf_ggml_block_size(type) == 0) return type;
    switch (type) { /* tensor_type_fallback */
    case QF_GGML_Q4_K: type = QF_GGML_Q5_0; break;
    case QF_GGML_Q5_K: type = QF_GGML_Q5_1; break;
    case QF_GGML_Q6_K: type = QF_GGML_Q8_0; break;
    default: break; /* a 32-value type stays, and becomes F16 below */
    }
    return t->cols % qf_ggml_block_size(type) == 0 ? type : QF_GGML_F16;
}
