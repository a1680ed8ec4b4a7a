/* calibrate.c - the layer-by-layer calibration pipeline (see qf_calibrate.h): options, the
 * run from the calibration text to one file per layer, and its report.  The passes over a
 * layer are in calibrate_layer.c, the quantization steps in calibrate_quant.c, the memory
 * plan in calibrate_memory.c (calibrate_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate_internal.h"
#include "qf_gpu_calib.h"
#include "qf_calib_data.h"
#include "qf_fs.h"
#include "qf_progress.h"
#include "qf_sysmem.h"
#include "qf_numfmt.h"
#include "qf_tokenizer.h"

void qf_calib_opts_default(qf_calib_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = QF_CALIB_GPTQ;
    o->n_samples = 128;
    o->seqlen = 512;
    o->last_layer = -1;
    o->moe_floor = 0.001f; /* measured on tiny-moe: 1e-2 and 1e-4 are worse, all tokens worse still */
    qf_gptq_opts_default(&o->gptq);
    o->gptq.clip_search = 20; /* measured: w4a16-asym KLD -10 %, w4a16 -24 % on tiny-llama (docs/bench.md) */
    o->float_target = 1;      /* measured: w4a16-asym KLD -8 % on tiny-llama, -13 % on tiny-moe (docs/bench.md) */
    qf_awq_opts_default(&o->awq);
}

static const char *const qf_method_names[] = {[QF_CALIB_RTN] = "rtn", [QF_CALIB_GPTQ] = "gptq",
                                              [QF_CALIB_AWQ] = "awq", [QF_CALIB_AWQ_GPTQ] = "awq-gptq"};

qf_calib_method qf_calib_method_from_name(const char *name)
{
    for (int m = QF_CALIB_RTN; m <= QF_CALIB_AWQ_GPTQ; m++)
        if (strcmp(name, qf_method_names[m]) == 0) return (qf_calib_method)m;
    return (qf_calib_method)0;
}

int qf_calib_float_path(const qf_calib_opts *o)
{
    return o->float_target && o->method != QF_CALIB_RTN;
}

const char *qf_calib_method_name(qf_calib_method m)
{
    return m >= QF_CALIB_RTN && m <= QF_CALIB_AWQ_GPTQ ? qf_method_names[m] : "?";
}

/* The norm / router tensors SmoothQuant or AWQ changed, as bf16 overrides. */
static void qf_cal_emit_overrides(qf_cal *c, int l, qf_layer *L)
{
    const int64_t C = c->m->cfg.hidden_size;
    char mod[160];
    const float *norms[2] = {L->attn_norm, L->ffn_norm};
    const char *names[2] = {"input_layernorm", "post_attention_layernorm"};
    for (int i = 0; i < 2; i++) {
        uint16_t *b = malloc(sizeof(uint16_t) * (size_t)C);
        for (int64_t j = 0; j < C; j++) b[j] = qf_f32_to_bf16(norms[i][j]);
        snprintf(mod, sizeof mod, "model.layers.%d.%s", l, names[i]);
        qf_cal_out_add(&c->out, mod, "weight", QF_DTYPE_BF16, 1, C, 0, b, sizeof(uint16_t) * (uint64_t)C);
    }
    if (L->is_moe) {
        const qf_linear *r = &L->router;
        uint16_t *b = malloc(sizeof(uint16_t) * (size_t)(r->rows * r->cols));
        const float *wf = r->weight;
        for (int64_t j = 0; j < r->rows * r->cols; j++) b[j] = qf_f32_to_bf16(wf[j]);
        qf_cal_out_add(&c->out, r->name, "weight", QF_DTYPE_BF16, 2, r->rows, r->cols, b,
                       sizeof(uint16_t) * (uint64_t)(r->rows * r->cols));
    }
}

/* ---- the tables and the chunk work buffers ----------------------------------------------- */
static const char *const qf_table_what[QF_CAL_NSTORES] = {"hidden states", "attention outputs", "MLP activations",
                                                          "float-model hidden states"};
static const char *const qf_table_file[QF_CAL_NSTORES] = {"act-hidden.f32", "act-attention.f32", "act-mlp.f32",
                                                          "act-float.f32"};

static qf_status qf_cal_open_tables(qf_cal *c, const qf_cal_plan *p, const char *out_dir, qf_error *err)
{
    const qf_model_config *cf = &c->m->cfg;
    const int64_t *width = p->width;
    for (int i = 0; i < QF_CAL_NSTORES; i++) {
        if (!p->store[i]) continue;
        char *path = p->in_ram[i] ? NULL : qf_path_join(out_dir, qf_table_file[i]);
        qf_status s = qf_act_store_open(&c->store[i], qf_table_what[i], c->n_tok, width[i], path, err);
        free(path);
        QF_TRY(s);
    }
    /* chunk buffers, each 64-byte aligned: xn tmp q k v g u, a read buffer per spilled table,
     * the float path's xf attf gf uf */
    const int64_t t = (int64_t)p->chunk * c->seqlen, C = cf->hidden_size, qd = c->m->mixer_width,
                  kvd = (int64_t)cf->n_kv_heads * cf->head_dim, F = c->m->ffn_max, fp = p->store[QF_CAL_FLOAT] != 0;
    enum { NB = 14 };
    int64_t w[NB] = {C, C, qd, kvd, kvd, F, F, p->in_ram[QF_CAL_HIDDEN] ? 0 : C, p->in_ram[QF_CAL_ATTN] ? 0 : qd,
                     fp && !p->in_ram[QF_CAL_FLOAT] ? C : 0, fp ? C : 0, fp ? qd : 0, fp ? F : 0, fp ? F : 0};
    int64_t total = 0;
    for (int i = 0; i < NB; i++) total += (t * w[i] + 15) / 16 * 16;
    float *base = aligned_alloc(64, sizeof(float) * (size_t)(total ? total : 16));
    if (!base)
        return qf_fail(err, QF_ERR_NOMEM, "calibration: out of memory for a chunk of %lld tokens (%.0f MB)", (long long)t,
                       total * 4 / 1e6);
    float **slot[NB] = {&c->w.xn, &c->w.tmp, &c->w.q, &c->w.k, &c->w.v, &c->w.g, &c->w.u, &c->w.buf[QF_CAL_HIDDEN],
                        &c->w.buf[QF_CAL_ATTN], &c->w.buf[QF_CAL_FLOAT], &c->w.xf, &c->w.attf, &c->w.gf, &c->w.uf};
    float *at = base;
    for (int i = 0; i < NB; i++) {
        *slot[i] = w[i] ? at : NULL;
        at += (t * w[i] + 15) / 16 * 16;
    }
    c->w.buf[QF_CAL_MLP] = c->w.g; /* the MLP table is read where pass D builds it */
    return QF_OK;
}

static void qf_cal_close_tables(qf_cal *c)
{
    for (int i = 0; i < QF_CAL_NSTORES; i++) qf_act_store_close(c->store[i]), c->store[i] = NULL;
    free(c->w.xn); /* the base of the chunk buffers */
    memset(&c->w, 0, sizeof c->w);
}

static void qf_cal_print_plan(const qf_ctx *ctx, const qf_cal_plan *p)
{
    char budget[32], planned[32], ram[32], disk[32];
    uint64_t in_ram = 0, spilled = 0;
    for (int i = 0; i < QF_CAL_NSTORES; i++) *(p->in_ram[i] ? &in_ram : &spilled) += p->store[i];
    if (p->budget == UINT64_MAX) snprintf(budget, sizeof budget, "unknown");
    else qf_mem_format(p->budget, budget, sizeof budget);
    qf_ctx_log(ctx, "calibrate",
               "calibrate: memory budget %s%s: activations %s in RAM, %s spilled to disk; chunks of %d sample(s); "
               "planned peak %s",
            budget, p->budget_given ? "" : " (automatic)", qf_mem_format(in_ram, ram, sizeof ram),
            qf_mem_format(spilled, disk, sizeof disk), p->chunk, qf_mem_format(p->planned, planned, sizeof planned));
}

/* Drop the resident pages of the embedding once the calibration tokens are embedded. */
static void qf_cal_release_embedding(const qf_model *m)
{
    const qf_checkpoint *ck = m->ck;
    for (int i = 0; i < ck->n_tensors; i++) {
        const qf_tensor *t = &ck->tensors[i];
        const qf_mapped_file *f = &ck->files[t->file];
        if (t->data == m->embed && f->data && t->data >= f->data && t->data + t->nbytes <= f->data + f->size)
            qf_checkpoint_release(ck, t);
    }
}

/* ---- one layer: float weights, the passes, the layer's file, its storage restored --------- */
static qf_status qf_cal_run_layer(qf_cal *c, int l, int last, qf_error *err)
{
    const qf_model_config *cf = &c->m->cfg;
    const int64_t C = cf->hidden_size;
    const qf_calib_opts *o = c->o;
    const int fold = o->method == QF_CALIB_AWQ || o->method == QF_CALIB_AWQ_GPTQ || o->smooth_alpha > 0;
    double tl = qf_now();
    qf_layer *L = &c->m->layers[l], saved = *L;
    qf_linear *saved_experts = NULL;
    if (L->is_moe) {
        saved_experts = malloc(sizeof(qf_linear) * (size_t)(3 * cf->n_experts));
        memcpy(saved_experts, L->experts, sizeof(qf_linear) * (size_t)(3 * cf->n_experts));
    }
    float *norm_copy = malloc(sizeof(float) * (size_t)(2 * C));
    if (L->attn_norm) memcpy(norm_copy, L->attn_norm, sizeof(float) * (size_t)C); /* a hybrid layer has one of them */
    if (L->ffn_norm) memcpy(norm_copy + C, L->ffn_norm, sizeof(float) * (size_t)C);
    c->lrep = json_object();
    json_object_set_new(c->lrep, "layer", json_integer(l));
    qf_status r = qf_cal_floatify_layer(c, L, err);
    if (r == QF_OK && c->rotating) r = qf_cal_rotate_layer(c, L, err); /* before any statistics */
    if (r == QF_OK && fold) { /* phase 1: float statistics, scales folded; h unchanged */
        c->collect = 1;
        r = qf_cal_layer(c, l, err);
        c->collect = 0;
    }
    if (r == QF_OK) r = qf_cal_layer(c, l, err);
    if (r == QF_OK && c->rotating) qf_cal_rotate_emit(c, l, L); /* the norms and router too */
    else if (r == QF_OK && fold) qf_cal_emit_overrides(c, l, L);
    if (r == QF_OK) r = qf_cal_out_emit(&c->out, o, l, err); /* in memory, to the writer */
    qf_cal_out_free(&c->out);
    /* restore the layer's original storage: it is not needed again */
    if (L->attn_norm) memcpy(L->attn_norm, norm_copy, sizeof(float) * (size_t)C);
    if (L->ffn_norm) memcpy(L->ffn_norm, norm_copy + C, sizeof(float) * (size_t)C);
    free(norm_copy);
    float *an = L->attn_norm, *fn = L->ffn_norm;
    qf_linear *ex = L->experts;
    *L = saved;
    L->attn_norm = an, L->ffn_norm = fn, L->experts = ex;
    if (saved_experts) memcpy(L->experts, saved_experts, sizeof(qf_linear) * (size_t)(3 * cf->n_experts));
    free(saved_experts);
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
    c->n_owned = 0;
    if (r == QF_OK && o->job && o->job->progress) {
        double worst = 0;
        const char *k;
        json_t *v;
        json_object_foreach(c->lrep, k, v)
        {
            json_t *e = json_object_get(v, "rel_output_error");
            if (json_is_real(e) && json_real_value(e) > worst) worst = json_real_value(e);
        }
        qf_ctx_log(o->job, "calibrate", "calibrate: layer %d/%d done in %.1f s (worst Linear relative output error %.4f)",
                   l + 1, last + 1, qf_now() - tl, worst);
    }
    return r;
}

qf_status qf_calibrate(const char *model_dir, const qf_calib_opts *o, const char *spill_dir, json_t **report,
                       qf_calib_memory *mem, qf_error *err)
{
    *report = NULL;
    if (mem) memset(mem, 0, sizeof *mem);
    if (!o->scheme) return qf_fail(err, QF_ERR_USAGE, "calibration needs a scheme");
    if (o->job) qf_gpu_calib_set_mode((qf_device_mode)o->job->device); /* ignored once the session runs */
    QF_TRY(qf_gpu_calib_require(err)); /* --device gpu without a usable GPU: before any work */
    const char *device = qf_gpu_calib_enabled() ? qf_gpu_calib_device_name() : "cpu";
    qf_model *m = NULL;
    qf_model_options mo;
    qf_model_options_default(&mo);
    mo.float_source = 1; /* an FP8 source is calibrated as the float model the converter reads */
    QF_TRY(qf_model_load(model_dir, &mo, &m, err));
    if (m->n_linear_packed) {
        qf_model_free(m);
        return qf_fail(err, QF_ERR_USAGE, "%s is already quantized: calibrate from the original checkpoint", model_dir);
    }
    /* AWQ and SmoothQuant fold scales into x·w norms and the previous Linear; a family whose
     * row says that fold is wrong or not written ((1 + w) norms, post-norms, fused gate_up) is
     * refused rather than given a model that computes something else */
    int shared = 0; /* the fold does not scale a shared expert's inputs either */
    for (int l = 0; l < m->cfg.n_layers; l++) shared |= m->layers[l].has_shared;
    if ((!m->fam->fold_norms || shared) &&
        (o->method == QF_CALIB_AWQ || o->method == QF_CALIB_AWQ_GPTQ || o->smooth_alpha > 0)) {
        qf_status st = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: --method %s%s does not fold into model_type '%s' "
                               "(its norms, fused projections or shared experts); use --method gptq or rtn", model_dir,
                               qf_calib_method_name(o->method), o->smooth_alpha > 0 ? " with SmoothQuant" : "",
                               m->cfg.model_type);
        qf_model_free(m);
        return st;
    }
    char *tpath = qf_path_join(model_dir, "tokenizer.json");
    qf_tokenizer *tok = NULL;
    qf_status r = qf_tokenizer_load(tpath, &tok, err);
    free(tpath);
    qf_calib_data data = {0};
    if (r == QF_OK) r = qf_calib_data_load(o->calib_path, tok, o->n_samples, o->seqlen, o->seed, &data, err);
    qf_tokenizer_free(tok);
    for (int64_t i = 0; r == QF_OK && i < (int64_t)data.n_samples * data.seqlen; i++)
        if (data.ids[i] < 0 || data.ids[i] >= m->vocab_in)
            r = qf_fail(err, QF_ERR_FORMAT, "calibration token id %d is outside the model's vocabulary (%lld)",
                        data.ids[i], (long long)m->vocab_in);
    if (r == QF_OK) r = qf_mkdirs(spill_dir, err);
    qf_cal c = {.o = o, .m = m, .n_tok = (int64_t)o->n_samples * o->seqlen, .seqlen = o->seqlen, .n_samples = o->n_samples,
                .float_path = qf_calib_float_path(o)};
    const qf_model_config *cf = &m->cfg;
    int last = o->last_layer >= 0 && o->last_layer < cf->n_layers ? o->last_layer : cf->n_layers - 1;
    /* a rotation is checked (and refused) before any work; its rotated embedding and lm_head
     * are held until layer 0 hands them over */
    if (r == QF_OK && o->rotate != QF_ROTATE_NONE) r = qf_cal_rotate_begin(&c, err);
    qf_cal_plan plan;
    if (r == QF_OK) r = qf_cal_plan_make(m, o, last, qf_mem_rss_now(), spill_dir, &plan, err);
    if (r == QF_OK) {
        c.chunk = plan.chunk;
        qf_cal_print_plan(o->job, &plan);
        qf_ctx_log(o->job, "calibrate", "calibrate: XᵀX sums, large Linear products and GPTQ factors on %s",
                   strcmp(device, "cpu") ? device : "the CPU (no GPU in use)");
        r = qf_cal_open_tables(&c, &plan, spill_dir, err);
    }
    if (r == QF_OK) r = qf_cal_embed(&c, data.ids, err);
    qf_cal_rotate_embedded(&c);
    if (r == QF_OK) qf_cal_release_embedding(m);
    json_t *layers = json_array();
    for (int l = 0; r == QF_OK && l <= last; l++) {
        if (qf_ctx_cancelled(o->job)) {
            r = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted during calibration, before layer %d", l);
            break;
        }
        r = qf_cal_run_layer(&c, l, last, err);
        json_array_append_new(layers, c.lrep);
        c.lrep = NULL;
    }
    qf_cal_close_tables(&c);
    qf_cal_out_free(&c.out); /* a failure before layer 0: the rotated tensors never handed over */
    qf_cal_rotate_end(&c);
    free(c.owned);
    qf_model_free(m);
    if (r == QF_OK && mem) {
        mem->budget = plan.budget;
        mem->minimum = plan.minimum;
        mem->planned = plan.planned;
        mem->chunk_samples = plan.chunk;
        mem->n_chunks = (o->n_samples + plan.chunk - 1) / plan.chunk;
        for (int i = 0; i < QF_CAL_NSTORES; i++) mem->spilled_bytes += plan.in_ram[i] ? 0 : plan.store[i];
    }
    if (r == QF_OK) {
        char hex[QF_HASH_HEX_LEN + 1];
        qf_hash_hex(data.text_hash, hex);
        json_t *g = json_pack("{s:f, s:i, s:b, s:b, s:i, s:f, s:i, s:i}", "dampening", o->gptq.percdamp, "block_size",
                              o->gptq.block_size, "act_order", o->gptq.act_order, "static_groups", o->gptq.static_groups,
                              "clip_search", o->gptq.clip_search, "clip_min", o->gptq.clip_min, "refit", o->gptq.refit, "descent", o->gptq.descent);
        json_t *a = json_pack("{s:i, s:b, s:i, s:f}", "n_grid", o->awq.n_grid, "duo_scaling", o->awq.duo_scaling,
                              "clip_steps", o->awq.clip_steps, "clip_min", o->awq.clip_min);
        *report = json_pack("{s:s, s:s, s:{s:s, s:s, s:I, s:I, s:i, s:i, s:I}, s:o, s:o, s:f, s:o}", "method",
                            qf_calib_method_name(o->method), "scheme", o->scheme->name, "data", "source", data.source,
                            "xxh3_128", hex, "bytes", (json_int_t)data.text_bytes, "tokens", (json_int_t)data.text_tokens,
                            "samples", data.n_samples, "seqlen", data.seqlen, "seed", (json_int_t)data.seed, "gptq", g,
                            "awq", a, "smoothquant_alpha", o->smooth_alpha, "layers", layers);
        if (*report) json_object_set_new(*report, "device", json_string(device));
        if (*report && o->method != QF_CALIB_RTN)
            json_object_set_new(*report, "target", json_string(qf_calib_float_path(o) ? "float" : "quantized"));
        if (*report && o->moe_floor >= 0) json_object_set_new(*report, "moe_floor", json_real(o->moe_floor));
        if (*report && o->rotate != QF_ROTATE_NONE)
            json_object_set_new(*report, "rotation",
                                json_pack("{s:s, s:I, s:I, s:I}", "kind", qf_rotate_kind_name(o->rotate), "seed",
                                          (json_int_t)o->rotate_seed, "residual_block", (json_int_t)c.rot.n1,
                                          "value_output_block", (json_int_t)c.rot.n2));
    } else {
        json_decref(layers);
    }
    qf_calib_data_free(&data);
    return r;
}
