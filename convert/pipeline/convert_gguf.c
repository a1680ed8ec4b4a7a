/* convert_gguf.c - `qforge convert SRC --layout gguf --scheme TYPE -o OUT`: one model.gguf for
 * llama.cpp (see convert_output.h, formats/qf_gguf.h).
 *
 * The story: open the checkpoint and config.json; name every tensor as llama.cpp does and pick
 * its ggml type (1-D tensors F32; 2-D weights as llama-quantize's rule for the named mix
 * decides, formats/qf_gguf_mix.h); declare metadata (general.*, {arch}.*, tokenizer.ggml.*) and tensors; then per
 * tensor: rows to float, q_proj / k_proj rows into llama.cpp's interleaved RoPE order where the
 * architecture rotates pairs (llama; not qwen2 / qwen3, which rotate halves), rows
 * quantized in parallel, written and hashed; finally the side files, the card and the sealed
 * manifest (whose tensor entries list GGUF names, ggml types and data-span hashes).
 * Calibrated (--method imatrix | gptq): before the file is written, calib/'s pass runs the
 * model on the calibration text layer by layer and hands each decoder Linear, with its input
 * statistics, to qf_gguf_cal_linear, which rounds it into its ggml type (formats/qf_gguf_calib.h)
 * and keeps the bytes until the writer reaches that tensor; the pass goes on with the decoded
 * weights, so later layers are calibrated on the quantized model's activations.  Embeddings
 * and output.weight are rounded as without calibration.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "convert_output.h"
#include "qf_config.h"
#include "qf_gguf.h"
#include "qf_quant_source.h"
#include "qf_gguf_calib.h"
#include "qf_gguf_mix.h"
#include "qf_calibrate.h"
#include "qf_manifest.h"
#include "qf_progress.h"
#include "qf_quantize.h"

typedef struct qf_gguf_item {
    int src;          /* checkpoint tensor, or -1 for rope_freqs; a stacked tensor: srcs[0] */
    char name[96];
    int type;
    int ndim;
    int64_t shape[3]; /* row-major: [rows, cols], [n], or stacked experts [n_expert, rows, cols] */
    int permute_heads; /* q_proj / k_proj: heads to interleave, else 0 */
    int expert;       /* while collecting: the slice this source is of a stacked tensor, else -1 */
    int *srcs;        /* stacked: shape[0] checkpoint tensors, expert by expert (owned), else NULL */
} qf_gguf_item;

/* llama.cpp's order: token_embd, rope_freqs, blk.0 ... blk.N (by name within a block), output_norm, output. */
static int qf_item_rank(const qf_gguf_item *it, int *layer)
{
    *layer = -1;
    if (strncmp(it->name, "token_embd", 10) == 0) return 0;
    if (strncmp(it->name, "rope_freqs", 10) == 0) return 1;
    if (sscanf(it->name, "blk.%d.", layer) == 1) return 2;
    if (strncmp(it->name, "output_norm", 11) == 0) return 3;
    return 4;
}

static int qf_item_cmp(const void *a, const void *b)
{
    const qf_gguf_item *x = a, *y = b;
    int lx, ly, rx = qf_item_rank(x, &lx), ry = qf_item_rank(y, &ly);
    if (rx != ry) return rx - ry;
    if (lx != ly) return lx - ly;
    int c = strcmp(x->name, y->name);
    return c ? c : x->expert - y->expert;
}

/* Slices of one stacked tensor sit together after sorting: fold each run into its first item
 * (ndim 3, srcs in expert order).  Every expert 0..n_expert-1 exactly once, all of one shape. */
static qf_status qf_items_stack(const qf_checkpoint *ck, qf_gguf_item *items, int *n, int n_expert, qf_error *err)
{
    int k = 0;
    for (int i = 0; i < *n;) {
        int j = i;
        while (j < *n && items[j].expert >= 0 && strcmp(items[j].name, items[i].name) == 0) j++;
        if (j == i) { /* not a slice */
            items[k++] = items[i++];
            continue;
        }
        qf_gguf_item it = items[i];
        for (int e = 0; e < j - i; e++)
            if (items[i + e].expert != e || items[i + e].shape[0] != it.shape[0] || items[i + e].shape[1] != it.shape[1])
                return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': experts of '%s' are not 0..%d once each, of one shape",
                               ck->dir, ck->tensors[items[i + e].src].name, it.name, n_expert - 1);
        if (j - i != n_expert)
            return qf_fail(err, QF_ERR_FORMAT, "%s: '%s' stacks %d experts; config.json names %d", ck->dir, it.name, j - i,
                           n_expert);
        it.srcs = malloc(sizeof(int) * (size_t)n_expert);
        if (!it.srcs) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
        for (int e = 0; e < n_expert; e++) it.srcs[e] = items[i + e].src;
        it.ndim = 3;
        it.shape[2] = it.shape[1], it.shape[1] = it.shape[0], it.shape[0] = n_expert;
        it.expert = -1;
        items[k++] = it;
        i = j;
    }
    *n = k;
    return QF_OK;
}

/* Calibration's quantizer (qf_calib_opts.quantize_linear): the item of module's weight, its bytes
 * kept in Hugging Face row order until written. */
typedef struct qf_gguf_cal {
    const qf_checkpoint *ck;
    const qf_gguf_item *items;
    int n, gptq;
    float percdamp;
    uint8_t **bytes; /* [n], owned */
} qf_gguf_cal;

static qf_status qf_gguf_cal_linear(void *user, const char *module, float *W, int64_t rows, int64_t cols, const double *H,
                                    int64_t n, double *loss, qf_error *err)
{
    qf_gguf_cal *g = user;
    char name[160];
    snprintf(name, sizeof name, "%s.weight", module);
    int i = 0;
    while (i < g->n && !(g->items[i].src >= 0 && strcmp(g->ck->tensors[g->items[i].src].name, name) == 0)) i++;
    if (i == g->n || g->items[i].ndim != 2 || g->items[i].shape[0] != rows || g->items[i].shape[1] != cols)
        return qf_fail(err, QF_ERR_FORMAT, "%s: no GGUF tensor of shape [%lld, %lld] for it", name, (long long)rows,
                       (long long)cols);
    const int type = g->items[i].type;
    uint8_t *b = malloc(qf_ggml_row_bytes(type, cols) * (uint64_t)rows + 1);
    float *imp = malloc(sizeof(float) * (size_t)cols);
    qf_status s = b && imp ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
    if (s == QF_OK && g->gptq) {
        s = qf_gguf_quantize_gptq(type, W, rows, cols, H, n, g->percdamp, b, loss, err);
    } else if (s == QF_OK) {
        qf_gguf_importance(H, cols, n, imp);
        s = qf_gguf_quantize_imatrix(type, W, rows, cols, imp, b, err);
    }
    free(imp);
    if (s != QF_OK) {
        free(b);
        return s;
    }
    free(g->bytes[i]);
    g->bytes[i] = b;
    return QF_OK;
}

/* Run calibration over the model with qf_gguf_cal_linear; *report: its JSON report. */
static qf_status qf_gguf_calibrate(const qf_convert_opts *o, const char *tmp, qf_gguf_cal *g, json_t **report,
                                   qf_convert_stats *st, qf_error *err)
{
    qf_calib_opts co = o->calib;
    co.scheme = qf_scheme_find("w4a16"); /* weight-only: the forward keeps float activations */
    co.quantize_module = NULL;
    co.job = o->ctx;
    co.last_layer = -1;
    co.max_memory = o->ctx ? o->ctx->max_memory : 0;
    co.sink = NULL;
    co.quantize_linear = qf_gguf_cal_linear;
    co.quantize_user = g;
    char *sdir = qf_path_join(tmp, "calib");
    qf_status s = qf_calibrate(o->src, &co, sdir, report, &st->calib_memory, err);
    qf_remove_tree(sdir);
    free(sdir);
    return s;
}

/* Source tensor src's rows (rows x cols) to float, permuted, quantized into out (OpenMP over rows). */
static qf_status qf_gguf_rows_of(const qf_checkpoint *ck, const qf_gguf_item *it, int src, int64_t rows, int64_t cols,
                                 uint8_t *out, qf_error *err)
{
    const qf_tensor *t = &ck->tensors[src];
    if (t->dtype != QF_DTYPE_F32 && t->dtype != QF_DTYPE_BF16 && t->dtype != QF_DTYPE_F16)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': GGUF export reads F32 / BF16 / F16 weights, not %s",
                       ck->dir, t->name, qf_dtype_name(t->dtype));
    QF_TRY(qf_checkpoint_acquire(ck, t, err)); /* a dequantized source tensor is decoded now */
    uint64_t rb = qf_ggml_row_bytes(it->type, cols);
    int failed = 0;
#pragma omp parallel if (rows * cols >= (1 << 16))
    {
        float *x = malloc(sizeof(float) * (size_t)cols);
        if (!x) failed = 1;
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < rows; r++) {
            if (!x) continue;
            int64_t src_row = r;
            if (it->permute_heads) { /* GGUF row r = head h, pair i, half j  <-  HF row h*hd + j*half + i */
                int64_t hd = rows / it->permute_heads, half = hd / 2, h = r / hd, i = (r % hd) / 2, j = r % 2;
                src_row = h * hd + j * half + i;
            }
            qf_load_row(t->dtype, t->data, src_row, cols, x);
            qf_ggml_quantize_row(it->type, x, cols, out + (uint64_t)r * rb);
        }
        free(x);
    }
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    return QF_OK;
}

/* One tensor's bytes; a stacked tensor expert by expert, each source released once written. */
static qf_status qf_gguf_tensor_bytes_of(const qf_checkpoint *ck, const qf_gguf_item *it, const float *rope, uint8_t *out,
                                         qf_progress *prog, qf_error *err)
{
    if (it->src < 0) { /* rope_freqs */
        qf_ggml_quantize_row(QF_GGML_F32, rope, it->shape[0], out);
        return QF_OK;
    }
    if (!it->srcs) {
        int64_t rows = it->ndim == 2 ? it->shape[0] : 1, cols = it->shape[it->ndim - 1];
        return qf_gguf_rows_of(ck, it, it->src, rows, cols, out, err);
    }
    uint64_t slab = qf_ggml_row_bytes(it->type, it->shape[2]) * (uint64_t)it->shape[1];
    for (int64_t e = 0; e < it->shape[0]; e++) {
        QF_TRY(qf_gguf_rows_of(ck, it, it->srcs[e], it->shape[1], it->shape[2], out + (uint64_t)e * slab, err));
        if (e) { /* the caller releases srcs[0] (it->src) */
            qf_checkpoint_release(ck, &ck->tensors[it->srcs[e]]);
            qf_progress_add(prog, ck->tensors[it->srcs[e]].nbytes);
        }
    }
    return QF_OK;
}

static void qf_manifest_gguf_tensor(json_t *m, const char *file, const qf_gguf_item *it, qf_hash128 h)
{
    char hex[QF_HASH_HEX_LEN + 1];
    qf_hash_hex(h, hex);
    json_t *sh = json_array();
    for (int d = 0; d < it->ndim; d++) json_array_append_new(sh, json_integer(it->shape[d]));
    json_t *list = json_object_get(m, "tensors");
    if (!json_is_array(list)) json_object_set_new(m, "tensors", list = json_array());
    json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", it->name, "file", file, "dtype",
                                          qf_ggml_type_name(it->type), "shape", sh, "xxh3_128", hex));
}

qf_status qf_convert_gguf(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err)
{
    memset(st, 0, sizeof *st);
    double t0 = qf_now();
    const qf_gguf_mix *mix = qf_gguf_mix_find(o->gguf_type);
    if (!mix) {
        char names[256];
        qf_gguf_mix_list(names, sizeof names);
        return qf_fail(err, QF_ERR_USAGE, "--layout gguf takes --scheme %s (not '%s')", names,
                       o->gguf_type ? o->gguf_type : "");
    }
    const int calibrated = strcmp(o->method, "rtn") != 0;
    if (calibrated && strcmp(o->method, "gptq") != 0 && strcmp(o->method, "imatrix") != 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "--layout gguf takes --method rtn, imatrix or gptq (not '%s')", o->method);
    if (calibrated && (qf_ggml_block_size(mix->base) <= 1 || o->calib.smooth_alpha > 0 || o->calib.rotate != QF_ROTATE_NONE))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "--layout gguf --method %s needs a quantized ggml type, without "
                                                "--smoothquant or --rotate (not '%s')", o->method, mix->name);

    /* 1. the source: config.json and the tensor table */
    qf_model_config cfg;
    char *cpath = qf_path_join(o->src, "config.json");
    qf_status s = qf_config_load(cpath, &cfg, err);
    if (s) {
        free(cpath);
        return s;
    }
    /* 2a. the llama.cpp architecture (refuses what none of them can hold before anything is read) */
    const qf_gguf_arch *arch = NULL;
    s = qf_gguf_arch_of(cpath, &cfg, &arch, err);
    qf_checkpoint *ck = NULL;
    if (s == QF_OK) s = qf_checkpoint_open_source(o->src, &ck, &st->source, err); /* FP8 / MXFP4: dequantized on read */
    if (s == QF_OK) s = qf_config_check_shapes(cpath, &cfg, ck, err);
    free(cpath);
    if (s) {
        qf_checkpoint_free(ck);
        qf_config_free(&cfg);
        return s;
    }
    for (int i = 0; i < ck->n_tensors; i++) st->bytes_in += ck->tensors[i].nbytes;

    /* 2b. metadata, then names, types, order */
    qf_gguf_writer *w = qf_gguf_writer_new();
    if (!w) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    char *abs = realpath(o->src, NULL);
    if (s == QF_OK) s = qf_gguf_metadata(w, arch, &cfg, qf_path_base(abs ? abs : o->src), mix->ftype, err);
    free(abs);
    if (s == QF_OK) s = qf_gguf_tokenizer(w, o->src, &cfg, err);
    qf_gguf_item *items = calloc((size_t)ck->n_tensors + 2, sizeof *items);
    float rope[1024];
    int n_rope = qf_gguf_llama_rope_freqs(&cfg, rope, 1024), n = 0;
    if (!items && s == QF_OK) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; s == QF_OK && i < ck->n_tensors; i++) {
        const qf_tensor *t = &ck->tensors[i];
        qf_gguf_item *it = &items[n];
        int r = qf_gguf_name_expert(arch, t->name, it->name, sizeof it->name, &it->expert);
        if (r == 0) continue;
        if (r < 0 || t->ndim < 1 || t->ndim > 2) {
            s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s' has no counterpart in llama.cpp's %s architecture",
                        ck->dir, t->name, arch->name);
            break;
        }
        it->src = i;
        it->ndim = t->ndim;
        it->shape[0] = t->shape[0];
        it->shape[1] = t->ndim == 2 ? t->shape[1] : 0;
        it->type = QF_GGML_F32; /* 2-D weights: the mix's rule below, once tied embeddings are known */
        if (arch->permute_qk && strstr(it->name, ".attn_q.")) it->permute_heads = cfg.n_heads;
        if (arch->permute_qk && strstr(it->name, ".attn_k.")) it->permute_heads = cfg.n_kv_heads;
        if (it->permute_heads && t->shape[0] % (2 * it->permute_heads)) {
            s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': %lld rows do not split into %d heads", ck->dir, t->name,
                        (long long)t->shape[0], it->permute_heads);
            break;
        }
        n++;
    }
    if (s == QF_OK && n_rope) {
        items[n] = (qf_gguf_item){
            .src = -1, .name = "rope_freqs.weight", .type = QF_GGML_F32, .ndim = 1, .shape = {n_rope, 0}, .expert = -1};
        n++;
    }
    if (s == QF_OK) qsort(items, (size_t)n, sizeof *items, qf_item_cmp);
    if (s == QF_OK) s = qf_items_stack(ck, items, &n, cfg.n_experts, err);
    /* llama-quantize's rule differs for expert models where qforge's port (formats/qf_gguf_mix.h)
     * does not follow it: the K_S / K_M mixes raise ffn_down_exps by layer, and 8-expert models
     * get Q8_0 attn_v / attn_k under every mix.  The calibration pass hands experts one by one,
     * which the stacked tensors do not take yet.  Refused rather than written unlike llama.cpp. */
    if (s == QF_OK && cfg.n_experts && (calibrated || (!mix->pure && mix->ftype >= 14 && mix->ftype <= 17)))
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: %d experts: --layout gguf writes expert models with --method rtn and "
                    "a plain type or the q8_0 / q4_0 / q4_1 / q5_0 / q5_1 / q6_k mixes, not %s --method %s", o->src,
                    cfg.n_experts, mix->name, o->method);
    /* the same for fused projections: llama-quantize raises attn_qkv under the K_M mixes, and
     * the calibration pass does not hand fused Linears to the GGUF quantizer */
    if (s == QF_OK && arch->fused && (calibrated || (!mix->pure && mix->ftype >= 14 && mix->ftype <= 17)))
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: fused qkv_proj / gate_up_proj: --layout gguf writes them with --method "
                    "rtn and a plain type or the q8_0 / q4_0 / q4_1 / q5_0 / q5_1 / q6_k mixes, not %s --method %s", o->src,
                    mix->name, o->method);
    if (s == QF_OK && cfg.n_experts == 8 && !mix->pure)
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: 8 experts: llama-quantize's Q8_0 attn_v / attn_k for 8-expert models is "
                    "not ported; use a plain type (q8_0 is not one: --scheme f16, bf16, q4_k)", o->src);
    int tied = 1;
    for (int i = 0; i < n; i++) tied &= strcmp(items[i].name, "output.weight") != 0;
    for (int i = 0; s == QF_OK && i < n; i++)
        if (items[i].ndim >= 2 && !strstr(items[i].name, ".ffn_gate_inp")) { /* routers (+ _shexp): F32, as llama.cpp */
            qf_gguf_mix_tensor mt = {items[i].name, items[i].shape[items[i].ndim - 1], cfg.n_layers, tied, calibrated};
            items[i].type = qf_gguf_mix_type(mix, &mt);
        }
    if (s == QF_OK) { /* general.size_label counts every tensor written, as gguf-py's writer does */
        uint64_t n_params = 0;
        for (int i = 0; i < n; i++) {
            uint64_t c = 1;
            for (int d = 0; d < items[i].ndim; d++) c *= (uint64_t)items[i].shape[d];
            n_params += c;
        }
        char label[32];
        qf_gguf_size_label(n_params, label, sizeof label);
        if (n_params) qf_gguf_kv_str(w, "general.size_label", label);
    }

    /* 3. tensor declarations */
    for (int i = 0; s == QF_OK && i < n; i++)
        if (qf_gguf_writer_add_tensor(w, items[i].name, items[i].type, items[i].ndim, items[i].shape, err) < 0)
            s = err ? err->code : QF_ERR_USAGE;

    /* 4. a temporary folder, then the file: tensor by tensor, hashed while written */
    char *tmp = NULL;
    if (s == QF_OK) s = qf_output_begin(o, &tmp, err);
    json_t *manifest = qf_manifest_new();
    char mname[16];
    size_t mk = 0;
    for (; mix->name[mk] && mk + 1 < sizeof mname; mk++) mname[mk] = (char)toupper((unsigned char)mix->name[mk]);
    mname[mk] = 0;
    json_object_set_new(manifest, "recipe",
                        json_pack("{s:s, s:s, s:s, s:[], s:s}", "scheme", mname, "method", o->method, "layout", "gguf",
                                  "ignore", "default_ignore",
                                  mix->pure ? "norms and 1-D tensors (F32); rows that do not fit the block: llama.cpp's "
                                              "fallback (Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0), then F16"
                                            : "norms and 1-D tensors (F32); per-tensor types as llama-quantize's "
                                              "rule for this file type, with its fallbacks"));
    qf_gguf_cal cal = {ck, items, n, strcmp(o->method, "gptq") == 0, o->calib.gptq.percdamp, NULL};
    if (s == QF_OK && calibrated) {
        json_t *report = NULL;
        cal.bytes = calloc((size_t)n + 1, sizeof *cal.bytes);
        s = cal.bytes ? qf_gguf_calibrate(o, tmp, &cal, &report, st, err) : qf_fail(err, QF_ERR_NOMEM, "out of memory");
        if (s == QF_OK) {
            const qf_calib_opts *c = &o->calib;
            json_object_set_new(json_object_get(manifest, "recipe"), "calibration",
                                json_pack("{s:s, s:i, s:i, s:I, s:f, s:b}", "data", c->calib_path ? c->calib_path : "bundled",
                                          "samples", c->n_samples, "seqlen", c->seqlen, "seed", (json_int_t)c->seed,
                                          "dampening", c->gptq.percdamp, "float_target", c->float_target));
            json_object_set_new(manifest, "calibration", report);
        } else {
            json_decref(report);
        }
    }
    double tw = qf_now();
    char *gpath = tmp ? qf_path_join(tmp, "model.gguf") : NULL;
    if (s == QF_OK) s = qf_gguf_writer_open(w, gpath, err);
    qf_progress prog;
    qf_progress_begin_ctx(&prog, s == QF_OK ? o->ctx : NULL, "convert", st->bytes_in ? st->bytes_in : 1);
    for (int i = 0; s == QF_OK && i < n; i++) {
        if (qf_ctx_cancelled(o->ctx)) {
            s = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted; nothing was written to %s", o->out);
            break;
        }
        uint64_t nb = qf_gguf_tensor_bytes(w, i);
        uint8_t *buf = malloc(nb ? nb : 1);
        if (!buf) s = qf_fail(err, QF_ERR_NOMEM, "out of memory for %llu bytes", (unsigned long long)nb);
        if (s == QF_OK && cal.bytes && cal.bytes[i]) { /* calibrated: the kept bytes, rows into llama.cpp's order */
            if (items[i].permute_heads)
                qf_gguf_permute_rows(cal.bytes[i], buf, items[i].shape[0], qf_ggml_row_bytes(items[i].type, items[i].shape[1]),
                                     items[i].permute_heads, 0);
            else
                memcpy(buf, cal.bytes[i], nb);
            free(cal.bytes[i]);
            cal.bytes[i] = NULL;
        } else if (s == QF_OK) {
            s = qf_gguf_tensor_bytes_of(ck, &items[i], rope, buf, &prog, err);
        }
        if (s == QF_OK) s = qf_gguf_writer_write(w, i, buf, nb, err);
        free(buf);
        if (items[i].src >= 0) {
            const qf_tensor *t = &ck->tensors[items[i].src];
            qf_checkpoint_release(ck, t);
            qf_progress_add(&prog, t->nbytes);
            if (qf_ggml_block_size(items[i].type) > 1) st->n_quantized++;
            else st->n_kept++;
        }
    }
    qf_progress_end(&prog);
    qf_hash128 *th = calloc((size_t)n + 1, sizeof *th);
    uint64_t fsize = 0;
    qf_hash128 fh;
    if (s == QF_OK) s = th ? qf_gguf_writer_close(w, &fsize, &fh, th, err) : qf_fail(err, QF_ERR_NOMEM, "out of memory");
    st->seconds_weights = qf_now() - tw;
    if (s == QF_OK) {
        /* the GGUF writer does not carry a SHA-256 context yet: one read of the fresh file */
        qf_sha256 fsha;
        char *gp = qf_path_join(tmp, "model.gguf");
        s = qf_sha256_file(gp, &fsha, NULL, err);
        free(gp);
        if (s == QF_OK) qf_manifest_add_file(manifest, "model.gguf", fsize, fh, &fsha);
        for (int i = 0; i < n; i++) qf_manifest_gguf_tensor(manifest, "model.gguf", &items[i], th[i]);
        st->bytes_out += fsize;
        /* bits per weight as llama.cpp's loader reports it: tensor data bytes over elements */
        double bytes = 0, numel = 0;
        for (int i = 0; i < n; i++) {
            double c = 1;
            for (int d = 0; d < items[i].ndim; d++) c *= (double)items[i].shape[d];
            bytes += (double)qf_gguf_tensor_bytes(w, i);
            numel += c;
        }
        st->bits_per_weight = numel > 0 ? 8.0 * bytes / numel : 0;
        st->n_shards = 1;
    }
    qf_gguf_writer_free(w); /* deletes a partial file */

    /* 5. config.json (unchanged: the runner reads it) and side files; 6. card, manifest, rename */
    /* a dequantized source: its config.json without the quantization_config that no longer holds */
    json_t *plain = NULL;
    if (s == QF_OK && st->source.kind != QF_QSOURCE_NONE) {
        plain = json_deep_copy(cfg.json);
        json_object_del(plain, "quantization_config");
    }
    if (s == QF_OK) s = qf_output_side_files(o->src, tmp, plain, manifest, &st->bytes_out, err);
    json_decref(plain);
    if (tmp) s = qf_output_finish(o, ck, tmp, manifest, s, &st->bytes_out, err);
    free(gpath);
    free(th);
    for (int i = 0; cal.bytes && i < n; i++) free(cal.bytes[i]);
    free(cal.bytes);
    for (int i = 0; items && i < n; i++) free(items[i].srcs);
    free(items);
    json_decref(manifest);
    qf_checkpoint_free(ck);
    qf_config_free(&cfg);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    st->peak_rss_kb = ru.ru_maxrss;
    st->seconds = qf_now() - t0;
    return s;
}
