/* qf_calibrate.h - calibrated quantization: run the model on calibration text, layer by
 * layer, and quantize each Linear from the statistics of its real inputs.
 *
 * Owns the sequential pipeline of issue 5.  The calibration windows are embedded once; then
 * for each decoder layer, in order ("true sequential", as GPTQ's reference offers it):
 *   A. xn = input_layernorm(h)           -> stats -> [SmoothQuant/AWQ scales folded into the
 *                                            norm] -> quantize q, k, v
 *   B. attention with the *quantized* q/k/v -> stats of o_proj's input -> quantize o
 *   C. h1 = h + o(att); xn2 = post_attention_layernorm(h1) -> stats -> quantize gate, up
 *      (MoE: every expert's w1/w3 sees *all* tokens, so rarely routed experts get full
 *      statistics; the router stays in full precision)
 *   D. swiglu(gate(xn2), up(xn2)) -> stats -> quantize down (MoE: per expert, all tokens)
 *   E. h = h1 + mlp(xn2) with the quantized weights: the next layer's input
 * so each Linear is calibrated on inputs that already carry the quantization error of
 * everything before it.  With the float target (default for gptq, awq and awq-gptq; rtn,
 * the static-activation schemes' weights, keeps its plain rounding) the float model runs
 * beside on the same tokens and each Linear is rounded towards the float model's output
 * rather than towards its float weights applied to those inputs, so it also corrects the
 * drift it receives (qf_float_target.h; calibrate_float.c).  Methods (qf_calib_method):
 * GPTQ, AWQ (scale search folded into the
 * previous op + clip search + RTN), AWQ then GPTQ (clip ratios feed GPTQ), and RTN (for the
 * static-activation schemes, which only need the activation ranges).  SmoothQuant is an
 * optional pre-pass, and so is a rotation (o->rotate: QuaRot / SpinQuant's residual and
 * value/output rotations folded into the weights, qf_rotate_model.h; calibrate_rotate.c), so
 * that every statistic is of the rotated inputs.  Static activation scales (fp8: amax/448 per tensor; nvfp4 W4A4:
 * input_global_scale = 448*6/amax) come from the same statistics.
 *
 * Memory (issue 7): one decoder layer is resident (its float32 weights, one input's
 * statistics, the quantizer's working set); tokens go through each step a chunk of whole
 * samples at a time, and what a later step needs for every token (the residual stream, the
 * attention output, the MLP activations) is kept in tables that spill to files in spill_dir
 * when the host-memory budget (max_memory) cannot hold them.  The chunk size and where the
 * tables live never change the result.  A budget below one layer plus one sample's
 * activations is refused before any work (calibrate_memory.c has the formula).
 *
 * Output, in memory: after each decoder layer, o->sink receives every packed tensor of that
 * layer's quantized Linears, under their final artifact names, plus the norm (and MoE router)
 * weights AWQ/SmoothQuant changed (a rotation: every norm, router, bias and unquantized Linear
 * of the layer, and with layer 0 the rotated embedding, final norm and lm_head); the converter's writer streams them into the artifact's
 * shards as they come (no files between calibration and conversion).  A JSON report gives the calibration facts and, per
 * Linear, its reconstruction error.
 */
#ifndef QF_CALIBRATE_H
#define QF_CALIBRATE_H

#include <jansson.h>
#include <stdint.h>

#include "qf_awq.h"
#include "qf_dtype.h"
#include "qf_ctx.h"
#include "qf_error.h"
#include "qf_gptq.h"
#include "qf_rotate.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_calib_method {
    QF_CALIB_RTN = 1,      /* weights by RTN; statistics only for static activation scales */
    QF_CALIB_GPTQ = 2,
    QF_CALIB_AWQ = 3,      /* AWQ scales + clip search, then RTN */
    QF_CALIB_AWQ_GPTQ = 4, /* AWQ scales + clip search, then GPTQ with those clips */
} qf_calib_method;

/* One tensor calibration hands over (qf_calib_opts.sink). */
typedef struct qf_calib_tensor {
    char *name;     /* final artifact name ("model.layers.3.mlp.down_proj.weight_packed") */
    qf_dtype dtype;
    int ndim;
    int64_t shape[2];
    void *data;     /* malloc'd; the sink takes it by setting it to NULL (else it is freed) */
    uint64_t nbytes;
} qf_calib_tensor;

/* Called after each decoder layer with that layer's n tensors, sorted by name.  A non-QF_OK
 * return (with err set) stops the calibration with that status. */
typedef qf_status (*qf_calib_sink_fn)(void *user, int layer, qf_calib_tensor *t, int n, qf_error *err);

typedef struct qf_calib_opts {
    const qf_scheme *scheme;
    qf_calib_method method;
    float smooth_alpha;      /* > 0: SmoothQuant pre-pass with this alpha (w8a8, fp8) */
    qf_rotate_kind rotate;   /* not NONE: the residual-stream and value/output rotations folded
                              * into the weights first (qf_rotate_model.h); the embedding, the
                              * final norm, lm_head, every norm and every Linear not quantized
                              * are then handed to the sink rotated too */
    uint64_t rotate_seed;    /* the rotations' seed (default 0) */
    int rotate_block;        /* 0: R1 over the whole hidden size; N: block-diagonal, order-N
                              * rotations (N divides hidden; qf_rotation_init) */
    const char *calib_path;  /* NULL: the bundled text */
    int n_samples, seqlen;   /* default 128 x 512 */
    uint64_t seed;           /* default 0 */
    qf_gptq_opts gptq;
    qf_awq_opts awq;
    int last_layer;          /* calibrate layers 0..last_layer (-1: all) */
    int float_target;        /* 1 (default): gptq, awq and awq-gptq aim each Linear at the float
                              * model's output (qf_float_target.h); 0: at its float weights applied
                              * to the quantized model's inputs (textbook GPTQ / AWQ) */
    float moe_floor;         /* MoE experts' GPTQ statistics: token rows weighted by
                              * sqrt(r^2 + moe_floor), r the routing weight the token gives the
                              * expert (0 if not routed); < 0: every token with weight 1 */
    uint64_t max_memory;     /* host-memory budget in bytes; 0: 3/4 of the host's (qf_sysmem.h) */
    const qf_ctx *job;       /* information lines (memory plan, per layer) to ctx->progress; cancellation
                              * (ctx->cancel) between layers; NULL: silent */
    /* which modules to quantize (the converter's plan decides; NULL: every Linear) */
    int (*quantize_module)(void *ctx, const char *module);
    /* the scheme of a quantized module when it is not `scheme` (mixed precision, --target-bits:
     * the converter's choice per module; NULL or a NULL answer: `scheme`) */
    const qf_scheme *(*module_scheme)(void *ctx, const char *module);
    void *ctx;
    qf_calib_sink_fn sink;   /* where each layer's tensors go (NULL: they are dropped) */
    void *sink_user;
    /* optional: quantize each wanted Linear with this instead of the scheme's rules (GGUF
     * blocks, convert_gguf.c).  W [rows, cols]: the float weights after the float target and
     * any scale folding; H [cols, cols], n: its input statistics (sum over n tokens of x x^T).
     * On return W must hold what the stored form decodes to (the next steps run with it); the
     * hook keeps its bytes and the sink gets no tensor for that Linear.  *loss (may be left
     * alone) goes to the report as "gptq_loss". */
    qf_status (*quantize_linear)(void *user, const char *module, float *W, int64_t rows, int64_t cols,
                                 const double *H, int64_t n, double *loss, qf_error *err);
    void *quantize_user;
} qf_calib_opts;

/* 1 when a run with o hands the tensor `name` (outside the decoder layers) to the sink, with
 * layer 0's tensors: under a rotation, the embedding, the final norm and lm_head. */
int qf_calib_outside_tensor(const qf_calib_opts *o, const char *name);

/* Defaults: method GPTQ, no SmoothQuant, bundled text, 128 x 512, seed 0, GPTQ defaults
 * with clip_search 20 (qf_gptq.h; the library's default is the textbook 0), the float
 * target, AWQ defaults, moe_floor 0.001, all layers. */
void qf_calib_opts_default(qf_calib_opts *o);
/* 1 when a run with o keeps the float model's path (float_target with a method other than rtn). */
int qf_calib_float_path(const qf_calib_opts *o);
/* "gptq", "awq", "awq-gptq", "rtn" -> method; 0 when unknown. */
qf_calib_method qf_calib_method_from_name(const char *name);
const char *qf_calib_method_name(qf_calib_method m);

/* How a run used its memory budget (not part of the report: the artifact does not depend on it). */
typedef struct qf_calib_memory {
    uint64_t budget;        /* bytes the run could hold (UINT64_MAX: the host's memory is unknown) */
    uint64_t minimum;       /* one layer + one sample's activations: below this the run is refused */
    uint64_t planned;       /* the plan's estimate of the peak */
    int chunk_samples;      /* samples per chunk */
    int n_chunks;
    uint64_t spilled_bytes; /* activations kept in files (0: all in RAM) */
} qf_calib_memory;

/* Calibrate the float checkpoint model_dir, handing each layer's tensors to o->sink; spill_dir
 * (created if missing) holds spilled activations while the run lasts, and they are removed.  *report is a new JSON
 * object (calibration facts, per-layer per-Linear errors, tokens per expert); mem (may be
 * NULL) says how the memory budget was used.  Errors name the layer / module; a budget
 * below the minimum is QF_ERR_USAGE (given) or QF_ERR_NOMEM (automatic), with the figures. */
qf_status qf_calibrate(const char *model_dir, const qf_calib_opts *o, const char *spill_dir, json_t **report,
                       qf_calib_memory *mem, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_CALIBRATE_H */
