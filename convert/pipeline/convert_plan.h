/* convert_plan.h - internal to convert/: which tensors become which output tensors.
 *
 * Owns the decisions made before any byte is written: a tensor is a quantizable Linear
 * weight when its name ends in ".weight", it is 2-D floating point, its module is not on
 * the default ignore list (lm_head, embeddings, norms, MoE routers) or a user --ignore
 * regex, and its shape fits the scheme.  Everything else passes through unchanged.  The
 * plan lists every output tensor (sorted by name, so a module's packed tensors are
 * adjacent), its shard, and for nvfp4 the shared amax of fused siblings (q/k/v, gate/up,
 * experts' w1/w3), which vLLM requires to share one global scale.
 *
 * Fused 3-D expert tensors (qf_fused_experts.h) are decided by the family, from config.json's
 * model_type:
 * - Llama 4 (llama4, llama4_text): unfused.  Each expert's gate, up and down become modules
 *   of their own, "<prefix>.experts.<e>.{gate,up,down}_proj", the per-expert Linears that
 *   transformers (SequentialLlama4TextExperts under compressed-tensors) and vLLM's Llama 4
 *   loader read and llm-compressor writes.  Such a module is a slice of its source tensor
 *   (qf_module_plan.slice); the writer reads one slice, transposed, only when it quantizes
 *   it and frees it right after, so memory stays one expert matrix however large the model.
 * - GPT-OSS (gpt_oss): kept as they are, and said so.  transformers 5.23 loads GPT-OSS
 *   experts only as the fused GptOssExperts parameters (no per-expert module under
 *   compressed-tensors) and vLLM's GPT-OSS loader reads them fused and dense, so a per-expert
 *   artifact would not load; the layer's "<prefix>.experts" goes into the ignore list (vLLM
 *   then builds an unquantized MoE for it) and every such tensor into dense_experts, which
 *   the summary, --json and the model card list.
 * - any other model_type with such tensors: refused, naming the tensor (its gate/up order is
 *   unknown, and leaving it dense unannounced is what this rule exists to prevent).
 * Unfused experts are quantized by RTN only: calibrated methods and --layout modelopt refuse
 * them, naming the tensor.
 */
#ifndef QF_CONVERT_PLAN_H
#define QF_CONVERT_PLAN_H

#include "qf_convert.h"
#include "qf_fused_experts.h"
#include "qf_quantize.h"
#include "qf_safetensors.h"
#include "qf_st_writer.h"

typedef struct qf_out_tensor {
    char *name;              /* owned */
    qf_dtype dtype;
    int ndim;
    int64_t shape[QF_MAX_DIMS];
    uint64_t nbytes;
    int src;                 /* index of the source tensor in the checkpoint */
    int mod;                 /* index into qf_convert_plan.mods; -1: passthrough */
    int plan_index;          /* -1: passthrough; else index into the module's qf_quant_plan */
    int shard;
    void *cal_data;          /* calibrated bytes to write instead (handed over in memory by calibration,
                              * owned until the writer takes them), or NULL */
    int cal_ready;           /* calibration handed this tensor over (cal_data, until written) */
    int consumed;            /* the writer is past this tensor: 1 written, 2 in a resumed shard */
} qf_out_tensor;

typedef struct qf_module_plan { /* one Linear-like module */
    int quantized;           /* 1 when the module is quantized */
    const qf_scheme *scheme; /* its scheme when quantized: opts.scheme, or mixed precision's choice */
    char *module;            /* "model.layers.0.self_attn.q_proj" (owned) */
    int src;                 /* its source tensor */
    int sliced;              /* 1: one expert's Linear out of the fused 3-D tensor src */
    qf_expert_slice slice;   /* when sliced: which expert and projection, and its [rows, cols] */
    qf_quant_plan plan;
    qf_quant_plan out_plan;  /* the tensors written: plan itself (compressed-tensors) or its
                              * ModelOpt re-layout (qf_modelopt.h), by --layout */
    float group_amax;        /* nvfp4: max |w| over the fused siblings; 0 otherwise */
} qf_module_plan;

typedef struct qf_convert_plan {
    int n_out;
    qf_out_tensor *out;      /* sorted by name */
    int n_mods;
    qf_module_plan *mods;    /* Linear-like modules: 2-D weights and fused experts' slices */
    int *src_mod;            /* [n_tensors of the checkpoint]: the module a 2-D weight is, or -1 */
    int n_shards;
    char **ignored_modules;  /* Linear-like modules kept in full precision (for "ignore") */
    int n_ignored;
    char **dense_experts;    /* fused expert tensors kept in full precision (GPT-OSS), by name */
    int n_dense_experts;
} qf_convert_plan;

/* model_type: config.json's, which decides what fused 3-D experts become (above). */
qf_status qf_plan_build(const qf_convert_opts *o, const qf_checkpoint *ck, const char *model_type, qf_convert_plan *p,
                        qf_error *err);
void qf_plan_free(qf_convert_plan *p);
/* The output tensor named name, or NULL. */
qf_out_tensor *qf_plan_find(const qf_convert_plan *p, const char *name);
/* Whether the plan quantizes module: the calibration's quantize_module callback, with a
 * qf_plan_ctx as its context. */
typedef struct qf_plan_ctx {
    const qf_convert_plan *plan;
    const qf_checkpoint *ck;
} qf_plan_ctx;
int qf_plan_quantizes(void *plan_ctx, const char *module);

/* The scheme calibration quantizes module to (qf_calib_opts.module_scheme), with a qf_plan_ctx. */
const qf_scheme *qf_plan_module_scheme(void *plan_ctx, const char *module);
/* Key that fused siblings share (q/k/v -> "...qkv", gate/up -> "...gate_up", w1/w3 -> "...w13";
 * any other module: its own name). */
void qf_plan_sibling_key(const char *module, char *key, size_t len);

/* Decoder layer index in a tensor name, -1 when the tensor is not in a layer. */
int qf_tensor_layer(const char *name);
/* Shard file name ("model.safetensors" or "model-00001-of-00003.safetensors"); static buffer per call. */
void qf_shard_name(int shard, int n_shards, char *buf, size_t len);

#endif /* QF_CONVERT_PLAN_H */
