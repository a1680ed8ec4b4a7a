/* qf_convert.h - the conversion pipeline behind `qforge convert` and `qforge merge` (public:
 * docs/library.md; an engine that links libqforge.a converts with qf_convert_run).
 *
 * Owns the story of one conversion: open the checkpoint and its config, decide which
 * tensors are quantized Linear weights (the rest pass through), plan the output shards,
 * quantize tensor by tensor straight from the memory-mapped input into the shard writers
 * (hashing while writing), copy the tokenizer and other side files, write config.json with
 * the compressed-tensors quantization_config and the sealed manifest, and finally rename the
 * temporary folder "<out>.qforge-tmp" into place.  On any failure or interruption the
 * temporary folder is removed and the destination is never created, except after an
 * interruption or an I/O error (disk full): then the temporary folder and its journal are
 * kept, and running the same command again resumes after the last completed shard, giving
 * byte-identical output.
 *
 * Partitioning: --layers A-B writes a part holding only those decoder layers; `qforge merge`
 * assembles parts into the artifact a single run would have written, byte for byte (the
 * plan is made on the whole checkpoint, so config.json and the ignore list do not depend on
 * the slice, and shard boundaries depend only on tensor names and sizes).
 */
#ifndef QF_CONVERT_H
#define QF_CONVERT_H

#include <stdint.h>

#include "qf_calibrate.h"
#include "qf_ctx.h"
#include "qf_error.h"
#include "qf_quant_source.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "qf_scheme.h"

#define QF_MAX_IGNORE 32
#define QF_DEFAULT_SHARD_BYTES 5000000000ull /* the Hugging Face default */

typedef enum qf_layout {
    QF_LAYOUT_COMPRESSED_TENSORS = 0, /* default: config.json quantization_config for vLLM / SGLang */
    QF_LAYOUT_MODELOPT = 1,           /* NVIDIA ModelOpt export (TensorRT-LLM, vLLM): qf_modelopt.h */
    QF_LAYOUT_GGUF = 2,               /* one model.gguf for llama.cpp: convert_output.h, qf_gguf.h */
    QF_LAYOUT_SAFETENSORS = 3,        /* --to safetensors: unquantized, convert_output.h */
} qf_layout;

typedef struct qf_convert_opts {
    const char *src;             /* hub folder */
    const char *out;             /* destination folder (must not exist unless force) */
    const qf_scheme *scheme;
    const char *method;          /* "rtn", "gptq", "awq", "awq-gptq" (with calibrated) */
    const char *ignore[QF_MAX_IGNORE]; /* extra POSIX extended regexes on module names */
    int n_ignore;
    uint64_t max_shard_bytes;    /* 0 = 5 GB (the Hugging Face default) */
    int force;                   /* replace an existing destination */
    const qf_ctx *ctx;           /* threads, device, memory budget, progress, cancellation (NULL: defaults) */
    int layer_first, layer_last; /* --layers A-B: only these decoder layers (and, with A = 0, the
                                    embeddings, final norm and lm_head); both -1 = all */
    const char *const *merge_parts; /* qforge merge: part folders written with --layers */
    int n_parts;
    qf_layout layout;            /* output layout (default compressed-tensors) */
    const char *gguf_type;       /* QF_LAYOUT_GGUF: "q8_0", "q4_0", "q4_k", "f16", "bf16" (scheme is NULL) */
    int rtn_clip_search;         /* method rtn without calibration: clip search steps per group
                                    (qf_quantize_rtn_clip); 0 = the full range, the textbook rule
                                    the fixtures' reference numbers use; -1 = the scheme's default
                                    (qf_rtn_clip_default; what qf_convert_opts_default sets) */
    float rtn_clip_min;          /* its smallest range ratio (qf_convert_opts_default: 0.75) */
    int calibrated;              /* run calibration (a method other than rtn, a static scheme, SmoothQuant,
                                  * a rotation) */
    qf_calib_opts calib;         /* its options (scheme, progress and layers are filled in by the pipeline) */
    float target_bits;           /* > 0: mixed precision (--target-bits): a format per Linear from a menu
                                  * (w4a16-asym, w4a16, nvfp4a16, w8a8, bf16) so that the quantized Linears
                                  * average at most this many bits per weight, scales and zero points
                                  * included, with the least estimated error; scheme must be the menu's
                                  * first entry (w4a16-asym), which rules out the Linears it cannot hold
                                  * (docs/cli.md) */
    uint64_t target_size;        /* > 0 instead of target_bits (--target-size): bytes of all the artifact's
                                  * tensors; the Linears get what the tensors kept as they are
                                  * (embeddings, lm_head, norms, ...) leave, as bits per weight */
    int sens_samples;            /* windows of calib.seqlen tokens its sensitivity is measured on (0: 4) */
    const struct qf_mixed *mixed; /* internal, set by qf_convert_run: the choice (NULL: one scheme) */
} qf_convert_opts;

typedef struct qf_convert_stats {
    uint64_t bytes_in;      /* bytes of input weights read */
    uint64_t bytes_out;     /* bytes of all artifact files written */
    int n_quantized;        /* Linear weights quantized */
    int n_kept;             /* tensors passed through */
    int n_shards;
    int n_resumed_shards;   /* shards reused from an interrupted run */
    double seconds;         /* wall time of the whole conversion */
    double seconds_weights; /* time spent reading, quantizing and writing weights */
    long peak_rss_kb;       /* getrusage maxrss at the end */
    qf_calib_memory calib_memory; /* how calibration used the budget (zero when not calibrated) */
    int n_dense_experts;    /* fused 3-D expert tensors the scheme would quantize but that stay in
                               full precision (GPT-OSS: no per-expert layout loads), also in the
                               manifest's "dense_experts" and the model card */
    char **dense_experts;   /* their names (owned: qf_convert_stats_free after a success;
                               a failed qf_convert_run leaves none) */
    qf_qsource source;      /* the source's own quantization, dequantized on read (kind NONE:
                               float weights; qf_quant_source.h) */
    double bits_per_weight; /* --layout gguf: 8 x tensor data bytes / elements, as llama.cpp's
                               loader reports it (0 for other layouts) */
    char *mixed_json;       /* target_bits: the choice as compact JSON text (the manifest's
                               "mixed_precision"), owned like dense_experts; NULL otherwise */
} qf_convert_stats;

/* Free what a qf_convert_stats owns (dense_experts); NULL ok. */
void qf_convert_stats_free(qf_convert_stats *st);

/* Convert o->src into o->out (or merge o->merge_parts into it): see the top of this file.
 * Prints nothing; progress goes to o->ctx->progress.  A cancelled run (o->ctx->cancel) stops
 * with QF_ERR_INTERRUPTED and keeps its temporary folder for a resume. */
qf_status qf_convert_run(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_CONVERT_H */
