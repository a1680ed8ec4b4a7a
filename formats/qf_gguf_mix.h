/* qf_gguf_mix.h - llama.cpp's file types ("mixes": Q4_K_M, Q4_0, ...) and the ggml type each
 * tensor of a llama-family model gets under one, as llama-quantize chooses it.
 *
 * Owns the port of llama.cpp's per-tensor rule (src/llama-quant.cpp: llama_tensor_get_type_impl
 * and tensor_type_fallback) for what qforge writes: dense llama / qwen2 / qwen3 decoders
 * without fused qkv.  The rule, by tensor (new = the mix's base type):
 *   output.weight (token_embd.weight when the embeddings are tied): Q8_0 when its rows do not
 *     fit the base type's block, else Q6_K unless the base is Q8_0;
 *   attn_v: Q4_K_M / Q5_K_M: Q6_K in the "use_more_bits" layers (i < n/8, i >= 7n/8, or
 *     (i - n/8) % 3 == 2); Q4_K_S: Q5_K in the first four;
 *   ffn_down: Q4_K_M / Q5_K_M: Q6_K in the use_more_bits layers; Q4_K_S: Q5_K in i < n/8;
 *     Q4_0 / Q5_0 with an importance matrix: Q4_1 / Q5_1 in i < n/8;
 *   then the fallback for rows that do not fit the type's block: Q4_K -> Q5_0, Q5_K -> Q5_1,
 *   Q6_K -> Q8_0, a 32-value type stays; and F16 when even that does not fit.
 * "pure" mixes (qforge's plain ggml types: q4_k, q8_0, f16 ...) skip the first part (llama-quantize
 * --pure): every 2-D weight gets the base type, with the fallback.  1-D tensors are F32 (the
 * caller's rule).  Layer counts come from the tensor names (llama.cpp counts attn_v / ffn_down
 * tensors in file order, which is layer order for these models). */
#ifndef QF_GGUF_MIX_H
#define QF_GGUF_MIX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_gguf_mix {
    const char *name; /* qforge's --scheme name: "q4_k_m" */
    int ftype;        /* llama.cpp's LLAMA_FTYPE (general.file_type) */
    int base;         /* qf_ggml_type every weight starts from */
    int pure;         /* 1: no per-tensor rule, the base type (with the fallback) everywhere */
} qf_gguf_mix;

/* The mix named name (case-insensitive), or NULL. */
const qf_gguf_mix *qf_gguf_mix_find(const char *name);
/* "q8_0, q4_0, ..." for messages. */
void qf_gguf_mix_list(char *buf, size_t len);

/* The facts the rule reads about one 2-D tensor. */
typedef struct qf_gguf_mix_tensor {
    const char *name;  /* GGUF name: "blk.3.attn_v.weight", "output.weight" */
    int64_t cols;      /* row length (ne[0]) */
    int n_layers;      /* decoder layers of the model */
    int tied;          /* the model has no output.weight (token_embd serves as output) */
    int imatrix;       /* quantized with an importance matrix / calibration */
} qf_gguf_mix_tensor;

/* The ggml type of the tensor under mix m. */
int qf_gguf_mix_type(const qf_gguf_mix *m, const qf_gguf_mix_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* QF_GGUF_MIX_H */
