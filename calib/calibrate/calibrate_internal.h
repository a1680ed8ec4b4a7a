/* calibrate_internal.h - internal to calib/calibrate*.c: the state of one calibration run.
 *
 * The pipeline is split by job:
 *   calibrate.c         options, the run: load, plan, embed, layer after layer, report
 *   calibrate_memory.c  the memory plan: what stays in RAM, what spills, the chunk size
 *   calibrate_layer.c   the passes over the calibration chunks for one decoder layer
 *   calibrate_float.c   the float model's path beside them (the float target)
 *   calibrate_quant.c   one layer's float weights, quantizing a group of Linears, folding
 *                       AWQ / SmoothQuant scales, the layer's output tensors
 *   calibrate_rotate.c  a rotation (qf_rotate_model.h): the rotated tensors outside the
 *                       layers, each layer's fold, what the rotation makes a layer write
 * Tokens are processed a chunk of whole samples at a time; what a later pass needs for every
 * token lives in qf_act_store tables (qf_act_store.h), each in RAM or in a file.
 */
#ifndef QF_CALIBRATE_INTERNAL_H
#define QF_CALIBRATE_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "qf_act_store.h"
#include "qf_calibrate.h"
#include "qf_model.h"
#include "qf_rotate_model.h"
#include "qf_stats.h"

/* The tables of activations that outlive a pass (rows = every calibration token). */
enum {
    QF_CAL_HIDDEN = 0, /* (n_tok, hidden): the residual stream h, overwritten by h1, then by the layer's output */
    QF_CAL_ATTN = 1,   /* (n_tok, heads * head_dim): attention output, o_proj's input */
    QF_CAL_MLP = 2,    /* (n_tok, intermediate): silu(gate) * up, down_proj's input (dense layers only) */
    QF_CAL_FLOAT = 3,  /* (n_tok, hidden): the float model's residual stream h_f, then h1_f (float target only) */
    QF_CAL_NSTORES = 4
};

/* ---- the memory plan (calibrate_memory.c) --------------------------------------------------- */
typedef struct qf_cal_plan {
    uint64_t budget;          /* host bytes the run may hold; UINT64_MAX when unknown */
    int budget_given;         /* 1: --max-memory, 0: the automatic budget */
    uint64_t base;            /* resident before the first layer (binary, libraries, model tables) + slack */
    uint64_t layer;           /* largest layer: float weights, packed output */
    uint64_t quant;           /* largest statistics + quantizer working set */
    uint64_t attention;       /* attention's work buffers for one sample */
    int64_t width[QF_CAL_NSTORES];  /* floats per token of each table */
    uint64_t store[QF_CAL_NSTORES]; /* bytes of each table (0: not needed) */
    int in_ram[QF_CAL_NSTORES];
    uint64_t per_token;       /* chunk work buffers per token, with the read buffers of spilled tables */
    int chunk;                /* samples per chunk */
    uint64_t minimum;         /* everything spilled, one-sample chunks */
    uint64_t planned;         /* the plan's estimate of the peak */
} qf_cal_plan;

/* Decide the plan for calibrating layers 0..last of m under o->max_memory (0: the automatic
 * budget); base = bytes resident now.  spill_dir is checked for room when something spills.
 * Errors: the budget is below the minimum (QF_ERR_USAGE for --max-memory, QF_ERR_NOMEM for
 * the automatic one), not enough free disk (QF_ERR_IO); each message says what is needed. */
qf_status qf_cal_plan_make(const qf_model *m, const qf_calib_opts *o, int last, uint64_t base, const char *spill_dir,
                           qf_cal_plan *p, qf_error *err);

/* ---- tensors written for one layer (calibrate_quant.c) ------------------------------------- */
typedef qf_calib_tensor qf_cal_tensor; /* data owned until handed to the sink */

typedef struct {
    qf_cal_tensor *t;
    int n, cap;
} qf_cal_out;

/* ---- the run --------------------------------------------------------------------------------- */
/* Chunk work buffers, (chunk tokens, width) float32 each; buf[i] reads rows of a spilled
 * table (NULL when that table is in RAM; the MLP table reads into g).  The float path's
 * (xf, attf, gf, uf) exist with the float target only. */
typedef struct {
    float *xn, *tmp;  /* (t, hidden) */
    float *q;         /* (t, heads * head_dim) */
    float *k, *v;     /* (t, kv_heads * head_dim) */
    float *g, *u;     /* (t, widest FFN) */
    float *xf;        /* (t, hidden): a float-path input */
    float *attf;      /* (t, heads * head_dim): the float path's attention output */
    float *gf, *uf;   /* (t, widest FFN): the float path's swiglu */
    float *buf[QF_CAL_NSTORES];
} qf_cal_ws;

typedef struct qf_cal {
    const qf_calib_opts *o;
    qf_model *m;
    int64_t n_tok;   /* n_samples * seqlen */
    int seqlen;
    int n_samples;
    int chunk;       /* samples per chunk */
    qf_act_store *store[QF_CAL_NSTORES];
    qf_cal_ws w;
    qf_cal_out out;  /* the current layer's tensors */
    json_t *lrep;    /* the current layer's report */
    float **owned;   /* float weights made for this layer (freed at its end) */
    int n_owned, cap_owned;
    int collect;     /* 1: phase 1 (statistics for AWQ / SmoothQuant, nothing quantized) */
    int float_path;  /* 1: the float target: the FLOAT table and the twin fl are kept */
    qf_layer fl;     /* the current layer's float twin (float_path): its weights are owned
                      * copies made before anything is quantized; fl.experts is malloc'd */
    int rotating;    /* 1: o->rotate is applied (rot holds the matrices) */
    qf_rotation rot;
    const void *embed_src; /* the checkpoint's embedding while m->embed is the rotated one */
} qf_cal;

/* calibrate_layer.c: a chunk's table rows, shared with calibrate_float.c.  The forward math
 * of both paths is the model's layer steps (qf_layer_steps.h), run on the layer or its twin. */
qf_status qf_cal_load(qf_cal *c, int table, int64_t r0, int64_t n, float **rows, qf_error *err);
qf_status qf_cal_save(qf_cal *c, int table, int64_t r0, int64_t n, const float *rows, qf_error *err);
/* Rows t of x (n, cols) *= rw[t]: MoE routing weights of an expert's statistics (rw NULL:
 * unchanged); calibration policy, not forward math. */
void qf_cal_scale_rows(float *x, int64_t n, int64_t cols, const float *rw);

/* calibrate_float.c: the float path of the chunk rows [r0, r0 + n), in the float work
 * buffers (valid until the next call).  begin makes the twin of layer L (after any scale
 * folding, before anything is quantized); end drops it. */
qf_status qf_cal_float_begin(qf_cal *c, qf_layer *L, qf_error *err);
void qf_cal_float_end(qf_cal *c);
/* A: q/k/v's float input. */
qf_status qf_cal_float_attn_in(qf_cal *c, int64_t r0, int64_t n, float **xf, qf_error *err);
/* B: the float attention output (o's float input); the FLOAT rows advance to h1_f. */
qf_status qf_cal_float_attention(qf_cal *c, int64_t r0, int64_t n, float **att, qf_error *err);
/* C: gate/up's float input, rows weighted by rw (NULL: not). */
qf_status qf_cal_float_ffn_in(qf_cal *c, int64_t r0, int64_t n, const float *rw, float **xf, qf_error *err);
/* D: down's float input, rows weighted by rw (NULL: not).  expert < 0: the dense MLP, and
 * the FLOAT rows advance to the layer's float output (h1_f is not read after D). */
qf_status qf_cal_float_down_in(qf_cal *c, int expert, int64_t r0, int64_t n, const float *rw, float **gf, qf_error *err);
/* E, MoE: the FLOAT rows advance to the layer's float output. */
qf_status qf_cal_float_moe_output(qf_cal *c, int64_t r0, int64_t n, qf_error *err);
/* MLA, between A and B: the float q latent (which 0: q_b_proj's input, n × q_lora_rank) or kv
 * latent (1: kv_b_proj's, n × kv_lora_rank) into xf. */
qf_status qf_cal_float_mla_latent(qf_cal *c, int64_t r0, int64_t n, int which, float *xf, qf_error *err);

/* calibrate_layer.c: run layer l over every chunk.  collect = 1: phase 1 of AWQ /
 * SmoothQuant (float statistics of the four inputs, scales chosen and folded; the hidden
 * states are left as they are); collect = 0: quantize group after group and leave the
 * layer's output in the hidden-state table. */
qf_status qf_cal_layer(qf_cal *c, int l, qf_error *err);
/* The embeddings of ids (n_tok) into the hidden-state table. */
qf_status qf_cal_embed(qf_cal *c, const int32_t *ids, qf_error *err);

/* calibrate_quant.c */
/* n floats owned by the current layer (freed at its end); NULL when out of memory. */
float *qf_cal_alloc(qf_cal *c, int64_t n);
void qf_cal_out_add(qf_cal_out *o, const char *module, const char *suffix, qf_dtype dt, int ndim, int64_t d0,
                    int64_t d1, void *data, uint64_t nbytes);
/* Sort the layer's tensors by name and hand them to o->sink (calibrate.c's qf_cal_run_layer). */
qf_status qf_cal_out_emit(qf_cal_out *out, const qf_calib_opts *o, int layer, qf_error *err);
void qf_cal_out_free(qf_cal_out *o);
/* Give every Linear of layer L an owned float32 copy of its weights (folds and GPTQ update
 * them in place; the caller restores the layer's storage at its end) and drop the source
 * pages once copied. */
qf_status qf_cal_floatify_layer(qf_cal *c, qf_layer *L, qf_error *err);
/* Quantize the wanted Linears of a group sharing input statistics st (no-op when collecting);
 * amax: nvfp4's shared amax (< 0: over the group). */
qf_status qf_cal_quantize_group(qf_cal *c, qf_linear **lin, int n, const qf_stats *st, float amax, qf_error *err);
/* The largest |w| over the wanted Linears of lin[n] (nvfp4's shared global scale). */
float qf_cal_group_amax(const qf_cal *c, qf_linear **lin, int n);
/* AWQ / SmoothQuant input scales s (cols of lin[0]) for a group, from its statistics; *rep
 * is a new report object for the layer's "scales:<what>" entry. */
qf_status qf_cal_scales(qf_cal *c, const char *what, qf_linear **lin, int n, const qf_stats *st, float *s,
                        json_t **rep, qf_error *err);
/* Fold scales s: columns of the group's weights (and of extra, a reader of the same input
 * that is not quantized: the MoE router) *= s; the previous op /= s: norm weight `norm`, or
 * the rows of Linear `prev`.  Takes rep into the layer report. */
void qf_cal_fold_apply(qf_cal *c, const char *what, qf_linear **lin, int n, qf_linear *extra, const float *s,
                       json_t *rep, float *norm, qf_linear *prev);

/* calibrate_rotate.c (o->rotate): begin builds the rotation, the rotated embedding (m->embed
 * points at it until qf_cal_rotate_embedded, after the tokens are embedded), lm_head and final
 * norm, all queued in c->out for layer 0's hand-over; end frees the matrices. */
qf_status qf_cal_rotate_begin(qf_cal *c, qf_error *err);
void qf_cal_rotate_embedded(qf_cal *c);
void qf_cal_rotate_end(qf_cal *c);
/* Fold both rotations into layer L (float weights, after qf_cal_floatify_layer) and round
 * what is stored unquantized (biases, router, Linears not quantized) to its stored dtype. */
qf_status qf_cal_rotate_layer(qf_cal *c, qf_layer *L, qf_error *err);
/* Queue layer l's norms, router, biases and unquantized Linears (rotated) in c->out. */
void qf_cal_rotate_emit(qf_cal *c, int l, qf_layer *L);

#endif /* QF_CALIBRATE_INTERNAL_H */
