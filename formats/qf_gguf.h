/* qf_gguf.h - GGUF files for llama.cpp: block codecs, a streaming writer, a checked reader,
 * and the llama-family mapping between Hugging Face tensors and GGUF tensors.
 *
 * File layout (version 3, little-endian; docs/formats.md section 5):
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv
 *   n_kv x (string key, i32 type, value)        string = u64 length + bytes; arrays = i32 type,
 *                                                u64 count, elements
 *   n_tensors x (string name, u32 n_dims, n_dims x i64 ne, i32 ggml type, u64 offset)
 *   zero padding to the alignment (general.alignment, default 32), then the tensor data, each
 *   tensor at its offset (relative to the data start; tensors in info order, each padded to
 *   the alignment).
 * ne[0] is the contiguous dimension: a row-major [rows, cols] matrix is ne = {cols, rows};
 * quantization blocks run along ne[0].
 *
 * Block types (QF_GGML_*), reference codecs (one row = ne[0] values, a multiple of the block);
 * "nibbles" below: byte j = code j (low) | code j+16 (high); "qh": a little-endian u32 whose
 * bit j is bit 4 of code j:
 *   Q8_0  32 values, 34 bytes: f16 d; i8 q[32].  d = amax / 127, q = roundf(x / d) (ties away)
 *   Q4_0  32 values, 18 bytes: f16 d; nibbles[16].  d = m / -8 with m the signed value of largest
 *         magnitude, code = min(15, (int)(x/d + 8.5)), value (code - 8) * d
 *   Q4_1  32 values, 20 bytes: f16 d, f16 m; nibbles[16].  d = (max - min) / 15, m = min,
 *         value d * code + m
 *   Q5_0  32 values, 22 bytes: f16 d; qh[4]; nibbles[16].  d = m / -16, value d * (code - 16)
 *   Q5_1  32 values, 24 bytes: f16 d, f16 m; qh[4]; nibbles[16].  d = (max - min) / 31
 *   Q4_K  256 values, 144 bytes: f16 d, f16 dmin, u8 scales[12] (eight 6-bit scale / min pairs),
 *         u8 qs[128]; 64-value chunk c: low nibbles = sub-block 2c, high = 2c+1; value
 *         d * sc_j * q - dmin * m_j; quantizer: per 32-value sub-block a weighted min/scale fit
 *         (weights sqrt(mean x^2) + |x|, 21 candidate steps), scales and mins to 6 bits
 *   Q5_K  256 values, 176 bytes: as Q4_K with u8 qh[32] before qs[128]: bit 2c of qh[i] is bit 4
 *         of sub-block 2c's code i, bit 2c+1 sub-block 2c+1's; codes 0..31 (16 fit steps)
 *   Q6_K  256 values, 210 bytes: u8 ql[128] low 4 bits, u8 qh[64] high 2 bits, i8 scales[16] (one
 *         per 16 values), f16 d; value d * sc * (code - 32); sub-block scales by ggml's
 *         make_qx_quants (x^2-weighted), stored as multiples of d = max_scale / -128
 *   F32, F16, BF16 plain.
 * With an importance per value (qf_ggml_quantize_row_imp: llama.cpp's imatrix idea, mean x^2
 * of the input column over calibration tokens) every scale / min is fitted to minimise the
 * importance-weighted squared error instead, and codes are rounded under the stored scales.
 *
 * Ownership: the writer copies what it is given; the reader borrows the image it parses (or
 * owns the mapping qf_gguf_open made); qf_gguf_free releases either.  Errors name the file,
 * the key or the tensor and the byte offset (QF_ERR_FORMAT), or the type (QF_ERR_UNSUPPORTED).
 */
#ifndef QF_GGUF_H
#define QF_GGUF_H

#include <jansson.h>
#include <stdint.h>

#include "qf_config.h"
#include "qf_error.h"
#include "qf_fs.h"
#include "qf_hash.h"
#include "qf_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml tensor types (ggml.h values; pinned by the file format). */
typedef enum qf_ggml_type {
    QF_GGML_F32 = 0,
    QF_GGML_F16 = 1,
    QF_GGML_Q4_0 = 2,
    QF_GGML_Q4_1 = 3,
    QF_GGML_Q5_0 = 6,
    QF_GGML_Q5_1 = 7,
    QF_GGML_Q8_0 = 8,
    QF_GGML_Q8_1 = 9,
    QF_GGML_Q2_K = 10,
    QF_GGML_Q3_K = 11,
    QF_GGML_Q4_K = 12,
    QF_GGML_Q5_K = 13,
    QF_GGML_Q6_K = 14,
    QF_GGML_Q8_K = 15,
    QF_GGML_I8 = 24,
    QF_GGML_I16 = 25,
    QF_GGML_I32 = 26,
    QF_GGML_I64 = 27,
    QF_GGML_F64 = 28,
    QF_GGML_BF16 = 30,
} qf_ggml_type;

/* GGUF metadata value types. */
enum {
    QF_GGUF_U8 = 0, QF_GGUF_I8 = 1, QF_GGUF_U16 = 2, QF_GGUF_I16 = 3, QF_GGUF_U32 = 4, QF_GGUF_I32 = 5,
    QF_GGUF_F32 = 6, QF_GGUF_BOOL = 7, QF_GGUF_STRING = 8, QF_GGUF_ARRAY = 9, QF_GGUF_U64 = 10,
    QF_GGUF_I64 = 11, QF_GGUF_F64 = 12,
};

#define QF_GGUF_DEFAULT_ALIGNMENT 32
#define QF_GGUF_MAX_DIMS 4
#define QF_GGUF_MAX_NAME 63
#define QF_GGUF_MAX_HEADS 65536 /* attention heads accepted when mapping GGUF back (real models: <= 256) */

/* "Q4_0", "F16", ... ("?" when unknown). */
const char *qf_ggml_type_name(int type);
/* Parse a name case-insensitively ("q4_k", "BF16"); -1 when unknown. */
int qf_ggml_type_from_name(const char *name);
/* Values per block and bytes per block; 0 for types qforge does not know. */
int qf_ggml_block_size(int type);
int qf_ggml_type_size(int type);
/* Bytes of a row of ne0 values (ne0 a multiple of the block size). */
uint64_t qf_ggml_row_bytes(int type, int64_t ne0);
/* 1 when qforge can write and decode the type (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K
 * Q6_K), 2 when it can only decode it (none now), 0 otherwise. */
int qf_ggml_type_support(int type);

/* One row: n values (a multiple of the block size) <-> the type's bytes. */
void qf_ggml_quantize_row(int type, const float *x, int64_t n, void *out);
void qf_ggml_dequantize_row(int type, const void *in, int64_t n, float *out);
/* The same with imp[n] >= 0, each value's importance (NULL: qf_ggml_quantize_row).  Q8_0 keeps
 * its reference rule (8 bits: the fit gains nothing measurable). */
void qf_ggml_quantize_row_imp(int type, const float *x, int64_t n, const float *imp, void *out);
/* The block blk of a block type as an affine code grid: value i ~ a[i] * q + b[i] for codes q in
 * [0, *qmax] (the decoder's own float rounding aside); 0 for a type that is not a block type.
 * Q8_0's code is the stored int8 + 128.  a, b: qf_ggml_block_size(type) floats. */
int qf_ggml_block_affine(int type, const void *blk, float *a, float *b, int *qmax);
/* Replace the codes of blk (header kept) by q[block] (each in [0, qmax] of the affine view). */
void qf_ggml_block_set_codes(int type, void *blk, const uint8_t *q);

/* ---- writer ------------------------------------------------------------------------------- */
typedef struct qf_gguf_writer qf_gguf_writer;

qf_gguf_writer *qf_gguf_writer_new(void); /* NULL when out of memory */
void qf_gguf_writer_free(qf_gguf_writer *w); /* NULL ok; deletes a partial file */
/* Metadata, in the order added (keys must be unique; strings copied). */
void qf_gguf_kv_u32(qf_gguf_writer *w, const char *key, uint32_t v);
void qf_gguf_kv_i32(qf_gguf_writer *w, const char *key, int32_t v);
void qf_gguf_kv_f32(qf_gguf_writer *w, const char *key, float v);
void qf_gguf_kv_bool(qf_gguf_writer *w, const char *key, int v);
void qf_gguf_kv_str(qf_gguf_writer *w, const char *key, const char *v);
void qf_gguf_kv_str_array(qf_gguf_writer *w, const char *key, const char *const *v, int64_t n);
void qf_gguf_kv_i32_array(qf_gguf_writer *w, const char *key, const int32_t *v, int64_t n);
/* Declare a tensor: row-major shape (ndim <= 4; shape[ndim-1] is contiguous and must be a
 * multiple of the type's block).  Returns its index or -1 (QF_ERR_USAGE in err). */
int qf_gguf_writer_add_tensor(qf_gguf_writer *w, const char *name, int type, int ndim, const int64_t *shape,
                              qf_error *err);
uint64_t qf_gguf_tensor_bytes(const qf_gguf_writer *w, int i);
/* Create path and write everything before the tensor data. */
qf_status qf_gguf_writer_open(qf_gguf_writer *w, const char *path, qf_error *err);
/* Bytes of tensor i, in declaration order, in as many pieces as wanted (padding is added). */
qf_status qf_gguf_writer_write(qf_gguf_writer *w, int i, const void *data, uint64_t n, qf_error *err);
/* Flush, fsync, close; XXH3-128 of the file and of each tensor's data span (NULL ok). */
qf_status qf_gguf_writer_close(qf_gguf_writer *w, uint64_t *file_size, qf_hash128 *file_hash, qf_hash128 *tensor_hashes,
                               qf_error *err);

/* ---- reader ------------------------------------------------------------------------------- */
typedef struct qf_gguf_tensor {
    char *name;            /* owned */
    int type;              /* qf_ggml_type */
    int ndim;
    int64_t ne[QF_GGUF_MAX_DIMS]; /* ne[0] contiguous */
    uint64_t offset;       /* absolute offset in the file */
    uint64_t nbytes;
    const uint8_t *data;   /* borrowed from the image */
} qf_gguf_tensor;

typedef struct qf_gguf {
    char *label;           /* owned: the path in messages */
    qf_mapped_file map;    /* owned when opened by qf_gguf_open, else unset */
    const uint8_t *data;   /* the image (borrowed when parsed from a buffer) */
    uint64_t size;
    uint32_t version;
    uint64_t alignment, data_offset;
    json_t *kv;            /* key -> value (numbers, strings, booleans, arrays), owned */
    json_t *kv_types;      /* key -> GGUF value type (arrays: element type + 100), owned */
    int n_tensors;
    qf_gguf_tensor *tensors; /* in file order */
} qf_gguf;

/* Parse an image (borrowed; must outlive *out).  Checks: magic, version 2 or 3, counts and
 * every string / array length against the bytes left, nested arrays at most 4 deep, names of
 * at most 63 bytes and unique, n_dims <= 4, ne >= 0 and products without overflow, known
 * types, ne[0] a multiple of the block, offsets aligned, tensors inside the file and not
 * overlapping.  On failure *out is NULL. */
qf_status qf_gguf_parse(const char *label, const uint8_t *data, uint64_t size, qf_gguf **out, qf_error *err);
qf_status qf_gguf_open(const char *path, qf_gguf **out, qf_error *err);
void qf_gguf_free(qf_gguf *g); /* NULL ok */
int qf_gguf_find(const qf_gguf *g, const char *name); /* tensor index or -1 */
/* Metadata helpers: 0 and *v set when key holds a number / string. */
int qf_gguf_get_int(const qf_gguf *g, const char *key, int64_t *v);
int qf_gguf_get_float(const qf_gguf *g, const char *key, double *v);
const char *qf_gguf_get_str(const qf_gguf *g, const char *key);

/* The tensors of an image as qf_tensor entries (name, data span, bytes; dtype is the matching
 * qf_dtype for F32 / F16 / BF16 / I8.. and QF_DTYPE_INVALID for block types): what
 * `qforge verify` hashes.  Same ownership as qf_safetensors_parse. */
qf_status qf_gguf_parse_tensors(const char *label, const uint8_t *data, uint64_t size, qf_tensor **tensors, int *n,
                                qf_error *err);

/* Tensor i as float32 into out[numel] (every type qf_ggml_type_support accepts). */
qf_status qf_gguf_dequant_tensor(const qf_gguf *g, int i, float *out, qf_error *err);

/* ---- architectures (qf_gguf_arch.c) ------------------------------------------------------- */
enum { QF_GGUF_BIAS_NONE, QF_GGUF_BIAS_QKV, QF_GGUF_BIAS_ANY }; /* which layer biases llama.cpp loads */
/* Hugging Face naming of the experts an architecture stacks (none: dense only; Mixtral's
 * block_sparse_moe.experts.E.w1 / w3 / w2 and block_sparse_moe.gate; Qwen's mlp.experts.E.
 * {gate,up,down}_proj and mlp.gate, with or without qwen2_moe's shared expert) */
enum { QF_GGUF_EXPERTS_NONE, QF_GGUF_EXPERTS_MIXTRAL, QF_GGUF_EXPERTS_QWEN, QF_GGUF_EXPERTS_QWEN_SHARED };
/* One mapped architecture: config.json's model_type, llama.cpp's architecture (general.architecture
 * and the prefix of its keys), whether q/k rows are interleaved for llama.cpp's pairwise RoPE
 * (llama: yes; qwen2 / qwen3 rotate halves like Hugging Face: no), whether layers carry q/k norms
 * (attn_q_norm / attn_k_norm), and which biases llama.cpp reads. */
typedef struct qf_gguf_arch {
    const char *model_type, *name;
    int permute_qk, qk_norm, biases;
    int yarn; /* YaRN written as {arch}.rope.scaling.* (when llama.cpp computes it alike) */
    int experts; /* QF_GGUF_EXPERTS_*: how the Hugging Face experts are named */
    int fused;   /* phi3: qkv_proj / gate_up_proj kept fused (attn_qkv, ffn_up), partial rotary mapped */
} qf_gguf_arch;
const qf_gguf_arch *qf_gguf_arch_for(const char *model_type); /* NULL when not mapped */
const qf_gguf_arch *qf_gguf_arch_named(const char *arch);     /* by general.architecture */
/* The mapped model types ("llama, mistral, qwen2, qwen3"), or with names set the architectures
 * ("llama, qwen2, qwen3"), for messages. */
void qf_gguf_arch_list(char *buf, size_t len, int names);
/* The architecture of cfg (read from path, named in messages), or QF_ERR_UNSUPPORTED naming path,
 * the model_type or feature and what is mapped: unmapped model types, experts, q/k norms or
 * biases the architecture lacks, partial rotary RoPE, yarn where the architecture has no yarn keys
 * or with an attention factor / betas / truncation llama.cpp does not compute. */
qf_status qf_gguf_arch_of(const char *path, const qf_model_config *cfg, const qf_gguf_arch **out, qf_error *err);
/* GGUF name of a Hugging Face tensor ("model.layers.3.self_attn.q_proj.weight" ->
 * "blk.3.attn_q.weight"); 0 when it has none (rotary inv_freq: dropped), -1 when a has no
 * counterpart (unknown, or a q/k norm / bias a's llama.cpp graph does not read). */
int qf_gguf_name(const qf_gguf_arch *a, const char *hf, char *out, size_t len);
/* The same, where one expert's projection is slice *expert (>= 0) of a stacked tensor
 * ("model.layers.1.block_sparse_moe.experts.3.w2.weight" -> "blk.1.ffn_down_exps.weight", 3);
 * *expert = -1 for every other tensor (qf_gguf_name: -1 for a slice). */
int qf_gguf_name_expert(const qf_gguf_arch *a, const char *hf, char *out, size_t len, int *expert);
/* The inverse (buf gets the Hugging Face name); -1 when unknown. */
int qf_gguf_hf_name(const qf_gguf_arch *a, const char *gguf, char *out, size_t len);
/* The inverse for slice expert of a stacked tensor (expert -1: as qf_gguf_hf_name). */
int qf_gguf_hf_name_expert(const qf_gguf_arch *a, const char *gguf, int expert, char *out, size_t len);
/* llama.cpp's Q/K row order: rows [n_head][2][half] of HF (rotate-half) become
 * [n_head][half][2] (interleaved pairs).  src and dst are [rows, row_bytes] byte matrices. */
void qf_gguf_permute_rows(const void *src, void *dst, int64_t rows, uint64_t row_bytes, int n_head, int inverse);

/* general.* and {a->name}.* metadata from a parsed config.json that qf_gguf_arch_of accepted
 * (rope default / linear / llama3 / yarn): general.name = name, general.file_type = file_type
 * (llama.cpp's LLAMA_FTYPE: 0 F32, 1 F16, 2 Q4_0, 7 Q8_0, 14 Q4_K_S, 32 BF16), general.type
 * "model", key_length / value_length when config.json names head_dim (as llama.cpp's converter)
 * or the heads do not tile the hidden size.  general.size_label needs the tensor list: the
 * caller writes it (qf_gguf_size_label). */
qf_status qf_gguf_metadata(qf_gguf_writer *w, const qf_gguf_arch *a, const qf_model_config *cfg, const char *name,
                           int file_type, qf_error *err);
/* tokenizer.ggml.* from dir/tokenizer.json (byte-level BPE: tokenizer.ggml.model "gpt2",
 * tokens padded to the model's vocab_size with [PADn] UNUSED tokens, token_type NORMAL /
 * CONTROL (special added tokens) / USER_DEFINED (other added tokens), merges "a b", pre from
 * qf_gguf_pre_name), bos / eos / pad ids from config.json, add_bos_token / add_eos_token from
 * qf_gguf_add_special (always written), chat_template from tokenizer_config.json.
 * QF_ERR_UNSUPPORTED for other tokenizer models, and for a pre-tokenizer llama.cpp does not
 * split alike (the message names the file and the regex): such a GGUF would load and then
 * tokenize differently from the Hugging Face tokenizer. */
qf_status qf_gguf_tokenizer(qf_gguf_writer *w, const char *dir, const qf_model_config *cfg, qf_error *err);
/* llama3 rope scaling as llama.cpp stores it (rope_freqs.weight, F32 [head_dim / 2]): fills
 * out[head_dim / 2] and returns the count, or 0 when the config has no llama3 scaling. */
/* llama.cpp's tokenizer.ggml.pre for tokenizer.json's pre_tokenizer, or NULL when unknown:
 * ByteLevel alone (GPT-2's built-in regex, no prefix space) "gpt-2"; Sequence [Split(R,
 * Isolated), ByteLevel without regex] "llama-bpe" / "qwen2" / "gpt-2" when R is, character for
 * character, Llama 3's / Qwen2's / GPT-2's regex.  *regex: the Split's regex, else NULL. */
const char *qf_gguf_pre_name(const json_t *pre_tokenizer, const char **regex);
/* add_bos_token / add_eos_token as llama.cpp's converter (gguf-py SpecialVocab) decides them:
 * tokenizer.json's post_processor (RobertaProcessing: both; TemplateProcessing: a leading
 * special token that is tokenizer_config.json's bos / cls token, a trailing special token),
 * then tokenizer_config.json's add_bos_token / add_eos_token when they are booleans; else 0
 * (the Hugging Face tokenizer adds nothing).  tc may be NULL (no tokenizer_config.json). */
void qf_gguf_add_special(const json_t *post_processor, const json_t *tc, int *add_bos, int *add_eos);
/* general.size_label as gguf-py writes it from the parameter count: "16M", "1.2B", "8.0B" (two
 * significant digits at least; K / M / B / T above 1e3 / 1e6 / 1e9 / 1e12). */
void qf_gguf_size_label(uint64_t n_params, char *buf, size_t len);
int qf_gguf_llama_rope_freqs(const qf_model_config *cfg, float *out, int cap);

/* A GGUF file of a mapped architecture (llama, qwen2, qwen3: qf_gguf_arch_named) as a checkpoint
 * table in Hugging Face names: every tensor dequantized to F32 (owned buffers), attn_q / attn_k
 * rows put back in Hugging Face order where the architecture permutes them (heads from
 * {arch}.attention.head_count[_kv]).  What the CPU runner and qforge validate load
 * for a GGUF artifact.  path: a .gguf file or a folder holding one. */
qf_status qf_gguf_load_checkpoint(const char *path, qf_checkpoint **out, qf_error *err);
/* The .gguf file qf_checkpoint_open should read for path (a .gguf file, or a folder without
 * safetensors / PyTorch weights whose only .gguf file it is): malloc'd path or NULL. */
char *qf_gguf_checkpoint_path(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* QF_GGUF_H */
