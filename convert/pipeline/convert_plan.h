/* convert_plan.h - internal to convert/: which tensors become which output tensors.
 *
 * Owns the decisions made before any byte is written: a tensor is a quantizable Linear
 * weight when its name ends in ".weight", it is 2-D floating point, its module is not on
 * the default ignore list (lm_head, embeddings, norms, MoE routers) or a user --ignore
 * regex, and its shape fits the scheme.  Everything else passes through unchanged.  The
 * plan lists every output tensor (sorted by name, so a module's packed tensors are
 * adjacent), its shard, and for nvfp4 the shared amax of fused siblings (q/k/v, gate/up,
 * experts' w1/w3), which vLLM requires to share one global scale.
 */
#ifndef QF_CONVERT_PLAN_H
#define QF_CONVERT_PLAN_H

#include "qf_convert.h"
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
    int plan_index;          /* -1: passthrough; else index into the module's qf_quant_plan */
    int shard;
    void *cal_data;          /* calibrated bytes to write instead (handed over in memory by calibration,
                              * owned until the writer takes them), or NULL */
    int cal_ready;           /* calibration handed this tensor over (cal_data, until written) */
    int consumed;            /* the writer is past this tensor: 1 written, 2 in a resumed shard */
} qf_out_tensor;

typedef struct qf_module_plan { /* one quantized Linear (by source tensor index) */
    int quantized;           /* 1 when src tensor is quantized */
    char *module;            /* "model.layers.0.self_attn.q_proj" (owned) */
    qf_quant_plan plan;
    qf_quant_plan out_plan;  /* the tensors written: plan itself (compressed-tensors) or its
                              * ModelOpt re-layout (qf_modelopt.h), by --layout */
    float group_amax;        /* nvfp4: max |w| over the fused siblings; 0 otherwise */
} qf_module_plan;

typedef struct qf_convert_plan {
    int n_out;
    qf_out_tensor *out;      /* sorted by name */
    qf_module_plan *mods;    /* [n_tensors of the checkpoint] */
    int n_shards;
    char **ignored_modules;  /* Linear-like modules kept in full precision (for "ignore") */
    int n_ignored;
} qf_convert_plan;

qf_status qf_plan_build(const qf_convert_opts *o, const qf_checkpoint *ck, qf_convert_plan *p, qf_error *err);
void qf_plan_free(qf_convert_plan *p, int n_src);
/* The output tensor named name, or NULL. */
qf_out_tensor *qf_plan_find(const qf_convert_plan *p, const char *name);
/* Whether the plan quantizes module: the calibration's quantize_module callback, with a
 * qf_plan_ctx as its context. */
typedef struct qf_plan_ctx {
    const qf_convert_plan *plan;
    const qf_checkpoint *ck;
} qf_plan_ctx;
int qf_plan_quantizes(void *plan_ctx, const char *module);

/* Decoder layer index in a tensor name, -1 when the tensor is not in a layer. */
int qf_tensor_layer(const char *name);
/* Shard file name ("model.safetensors" or "model-00001-of-00003.safetensors"); static buffer per call. */
void qf_shard_name(int shard, int n_shards, char *buf, size_t len);

#endif /* QF_CONVERT_PLAN_H */
