/* qf_gguf_llama.c - Hugging Face <-> GGUF tensor names, Q/K row order and llama.* metadata for the
 * llama family, and a GGUF file as a dequantized checkpoint table (see qf_gguf.h). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"

static const struct {
    const char *hf, *gg;
} qf_llama_layer_names[] = {
    {"input_layernorm", "attn_norm"},      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},        {"self_attn.o_proj", "attn_output"},
    {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};
static const struct {
    const char *hf, *gg;
} qf_llama_global_names[] = {
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"lm_head", "output"},
};
#define QF_N_LAYER_NAMES (sizeof qf_llama_layer_names / sizeof *qf_llama_layer_names)
#define QF_N_GLOBAL_NAMES (sizeof qf_llama_global_names / sizeof *qf_llama_global_names)

/* "stem.weight" / "stem.bias" -> stem length and the suffix, or -1. */
static int qf_split_param(const char *name, size_t *stem, const char **suffix)
{
    size_t l = strlen(name);
    if (l > 7 && strcmp(name + l - 7, ".weight") == 0) *stem = l - 7, *suffix = "weight";
    else if (l > 5 && strcmp(name + l - 5, ".bias") == 0) *stem = l - 5, *suffix = "bias";
    else return -1;
    return 0;
}

int qf_gguf_llama_name(const char *hf, char *out, size_t len)
{
    if (strstr(hf, "rotary_emb.inv_freq")) return 0;
    size_t stem;
    const char *suf;
    if (qf_split_param(hf, &stem, &suf)) return -1;
    for (size_t i = 0; i < QF_N_GLOBAL_NAMES; i++)
        if (strlen(qf_llama_global_names[i].hf) == stem && strncmp(hf, qf_llama_global_names[i].hf, stem) == 0) {
            snprintf(out, len, "%s.%s", qf_llama_global_names[i].gg, suf);
            return 1;
        }
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) != 1 || n == 0 || layer < 0) return -1;
    const char *rest = hf + n;
    size_t rl = stem - (size_t)n;
    for (size_t i = 0; i < QF_N_LAYER_NAMES; i++)
        if (strlen(qf_llama_layer_names[i].hf) == rl && strncmp(rest, qf_llama_layer_names[i].hf, rl) == 0) {
            snprintf(out, len, "blk.%d.%s.%s", layer, qf_llama_layer_names[i].gg, suf);
            return 1;
        }
    return -1;
}

int qf_gguf_llama_hf_name(const char *gg, char *out, size_t len)
{
    size_t stem;
    const char *suf;
    if (qf_split_param(gg, &stem, &suf)) return -1;
    for (size_t i = 0; i < QF_N_GLOBAL_NAMES; i++)
        if (strlen(qf_llama_global_names[i].gg) == stem && strncmp(gg, qf_llama_global_names[i].gg, stem) == 0) {
            snprintf(out, len, "%s.%s", qf_llama_global_names[i].hf, suf);
            return 0;
        }
    int layer, n = 0;
    if (sscanf(gg, "blk.%d.%n", &layer, &n) != 1 || n == 0 || layer < 0) return -1;
    const char *rest = gg + n;
    size_t rl = stem - (size_t)n;
    for (size_t i = 0; i < QF_N_LAYER_NAMES; i++)
        if (strlen(qf_llama_layer_names[i].gg) == rl && strncmp(rest, qf_llama_layer_names[i].gg, rl) == 0) {
            snprintf(out, len, "model.layers.%d.%s.%s", layer, qf_llama_layer_names[i].hf, suf);
            return 0;
        }
    return -1;
}

void qf_gguf_permute_rows(const void *src, void *dst, int64_t rows, uint64_t row_bytes, int n_head, int inverse)
{
    const uint8_t *s = src;
    uint8_t *d = dst;
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++) {
                int64_t hf_row = h * hd + j * half + i, gg_row = h * hd + i * 2 + j; /* rotate-half vs interleaved */
                int64_t from = inverse ? gg_row : hf_row, to = inverse ? hf_row : gg_row;
                memcpy(d + (uint64_t)to * row_bytes, s + (uint64_t)from * row_bytes, row_bytes);
            }
}

/* ---- a GGUF file as a checkpoint -------------------------------------------------------------- */

static int qf_has_suffix(const char *s, const char *suf)
{
    size_t l = strlen(s), k = strlen(suf);
    return l >= k && strcmp(s + l - k, suf) == 0;
}

char *qf_gguf_checkpoint_path(const char *path)
{
    if (!qf_path_is_dir(path)) return qf_has_suffix(path, ".gguf") && qf_path_exists(path) ? strdup(path) : NULL;
    DIR *d = opendir(path);
    if (!d) return NULL;
    int n_gguf = 0, n_other = 0;
    char *found = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (qf_has_suffix(de->d_name, ".gguf")) {
            if (!n_gguf++) found = strdup(de->d_name);
        } else if (qf_has_suffix(de->d_name, ".safetensors") || qf_has_suffix(de->d_name, ".bin") ||
                   qf_has_suffix(de->d_name, ".pt") || qf_has_suffix(de->d_name, ".pth"))
            n_other++;
    }
    closedir(d);
    char *p = n_gguf == 1 && !n_other && found ? qf_path_join(path, found) : NULL;
    free(found);
    return p;
}

static int qf_tensor_name_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_tensor *)a)->name, ((const qf_tensor *)b)->name);
}

qf_status qf_gguf_load_checkpoint(const char *path, qf_checkpoint **out, qf_error *err)
{
    *out = NULL;
    char *file = qf_gguf_checkpoint_path(path);
    if (!file) return qf_fail(err, QF_ERR_IO, "%s: no single .gguf file here", path);
    qf_gguf *g;
    qf_status s = qf_gguf_open(file, &g, err);
    free(file);
    if (s) return s;
    const char *arch = qf_gguf_get_str(g, "general.architecture");
    int64_t n_head = 0, n_head_kv = 0;
    if (!arch || strcmp(arch, "llama") != 0) {
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: general.architecture '%s' (only llama is mapped back to Hugging Face names)",
                    g->label, arch ? arch : "(none)");
    } else if (qf_gguf_get_int(g, "llama.attention.head_count", &n_head) || n_head <= 0) {
        s = qf_fail(err, QF_ERR_FORMAT, "%s: llama.attention.head_count is missing", g->label);
    } else if (qf_gguf_get_int(g, "llama.attention.head_count_kv", &n_head_kv) || n_head_kv <= 0) {
        n_head_kv = n_head;
    }
    /* Head counts size the q/k row permutation below: bound them before any arithmetic (2^31
     * heads overflowed an int into a division by zero; a count above the rows left rows unset). */
    if (!s && (n_head > QF_GGUF_MAX_HEADS || n_head_kv > n_head))
        s = qf_fail(err, QF_ERR_FORMAT, "%s: llama.attention.head_count %lld / head_count_kv %lld are not a valid pair "
                    "(at most %d heads, kv heads <= heads)", g->label, (long long)n_head, (long long)n_head_kv,
                    QF_GGUF_MAX_HEADS);
    if (s) {
        qf_gguf_free(g);
        return s;
    }
    qf_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) {
        qf_gguf_free(g);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    const char *b = qf_path_base(g->label);
    ck->dir = strndup(g->label, (size_t)(b - g->label));
    if (!*ck->dir) free(ck->dir), ck->dir = strdup(".");
    ck->files = calloc(1, sizeof *ck->files);
    ck->tensors = calloc((size_t)g->n_tensors + 1, sizeof *ck->tensors);
    ck->owned = calloc((size_t)g->n_tensors + 1, sizeof *ck->owned);
    if (!ck->files || !ck->tensors || !ck->owned) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; s == QF_OK && i < g->n_tensors; i++) {
        const qf_gguf_tensor *gt = &g->tensors[i];
        char hf[256];
        if (strcmp(gt->name, "rope_freqs.weight") == 0) continue; /* derived from config.json by HF */
        if (qf_gguf_llama_hf_name(gt->name, hf, sizeof hf)) snprintf(hf, sizeof hf, "%s", gt->name);
        uint64_t numel = 1;
        for (int d = 0; d < gt->ndim; d++) numel *= (uint64_t)gt->ne[d];
        float *buf = malloc(numel ? sizeof(float) * numel : 1);
        if (!buf) {
            s = qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for %llu values", g->label, gt->name,
                        (unsigned long long)numel);
            break;
        }
        ck->owned[ck->n_owned++] = buf;
        s = qf_gguf_dequant_tensor(g, i, buf, err);
        if (s) break;
        int is_q = strstr(gt->name, ".attn_q.") != NULL, is_k = strstr(gt->name, ".attn_k.") != NULL;
        if ((is_q || is_k) && numel) { /* back to the rotate-half row order of Hugging Face */
            int64_t heads = is_q ? n_head : n_head_kv;
            int64_t rows = gt->ndim >= 2 ? gt->ne[1] : gt->ne[0];
            uint64_t rb = gt->ndim >= 2 ? sizeof(float) * (uint64_t)gt->ne[0] : sizeof(float);
            if (rows < 2 * heads || rows % (2 * heads)) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': %lld rows do not split into %lld heads of pairs",
                            g->label, gt->name, (long long)rows, (long long)heads);
                break;
            }
            float *tmp = malloc(sizeof(float) * numel);
            if (!tmp) {
                s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
                break;
            }
            qf_gguf_permute_rows(buf, tmp, rows, rb, (int)heads, 1);
            memcpy(buf, tmp, sizeof(float) * numel);
            free(tmp);
        }
        qf_tensor *t = &ck->tensors[ck->n_tensors++];
        t->name = strdup(hf);
        t->dtype = QF_DTYPE_F32;
        t->ndim = gt->ndim;
        for (int d = 0; d < gt->ndim; d++) t->shape[d] = gt->ne[gt->ndim - 1 - d];
        t->nbytes = sizeof(float) * numel;
        t->data = numel ? (const uint8_t *)buf : NULL;
        t->file = 0;
        t->offset = gt->offset;
    }
    if (s == QF_OK) {
        qsort(ck->tensors, (size_t)ck->n_tensors, sizeof *ck->tensors, qf_tensor_name_cmp);
        for (int i = 1; i < ck->n_tensors && s == QF_OK; i++)
            if (strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) == 0)
                s = qf_fail(err, QF_ERR_FORMAT, "%s: two tensors map to '%s'", g->label, ck->tensors[i].name);
    }
    /* the mapping moves to the checkpoint (its files[0]); g no longer owns it */
    if (ck->files) {
        ck->files[0] = g->map;
        ck->n_files = 1;
        memset(&g->map, 0, sizeof g->map);
    }
    qf_gguf_free(g);
    if (s) {
        qf_checkpoint_free(ck);
        return s;
    }
    *out = ck;
    return QF_OK;
}

/* ---- metadata --------------------------------------------------------------------------------- */

qf_status qf_gguf_llama_metadata(qf_gguf_writer *w, const qf_model_config *cfg, const char *name, int file_type,
                                 qf_error *err)
{
    if (strcmp(cfg->model_type, "llama") != 0 && strcmp(cfg->model_type, "mistral") != 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "GGUF output maps the llama family (llama, mistral); model_type is '%s'",
                       cfg->model_type);
    if (cfg->n_experts || cfg->qk_norm)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "GGUF output: %s models are not mapped", cfg->n_experts ? "MoE" : "q/k-norm");
    if (cfg->head_dim % 2 || cfg->n_heads <= 0 || cfg->n_kv_heads <= 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "GGUF output: head_dim %d / %d heads cannot be laid out", cfg->head_dim,
                       cfg->n_heads);
    if (cfg->rope_type == QF_ROPE_YARN) /* not silently dropped: llama.cpp would run plain RoPE */
        return qf_fail(err, QF_ERR_UNSUPPORTED, "GGUF output: yarn RoPE scaling is not mapped");
    qf_gguf_kv_str(w, "general.architecture", "llama");
    qf_gguf_kv_str(w, "general.type", "model"); /* not an adapter or a vision projector */
    qf_gguf_kv_str(w, "general.name", name);
    qf_gguf_kv_u32(w, "general.file_type", (uint32_t)file_type);
    qf_gguf_kv_u32(w, "general.quantization_version", 2);
    qf_gguf_kv_u32(w, "llama.vocab_size", (uint32_t)cfg->vocab_size);
    /* llama.cpp's llama architecture has no sliding window.  Within the window sliding and full
     * attention are the same computation, so a model whose layers slide (Mistral v0.1, tiny-swa)
     * announces the smallest window as its context: llama.cpp then warns before running longer
     * contexts instead of silently attending further than the model was made to. */
    int64_t ctx = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 2048;
    int *win = calloc((size_t)(cfg->n_layers > 0 ? cfg->n_layers : 1), sizeof *win);
    if (!win) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    qf_status ws = qf_config_attn_windows("config.json", cfg, win, err);
    for (int l = 0; ws == QF_OK && l < cfg->n_layers; l++)
        if (win[l] > 0 && win[l] < ctx) ctx = win[l];
    free(win);
    if (ws) return ws;
    qf_gguf_kv_u32(w, "llama.context_length", (uint32_t)ctx);
    qf_gguf_kv_u32(w, "llama.embedding_length", (uint32_t)cfg->hidden_size);
    qf_gguf_kv_u32(w, "llama.block_count", (uint32_t)cfg->n_layers);
    qf_gguf_kv_u32(w, "llama.feed_forward_length", (uint32_t)cfg->intermediate_size);
    qf_gguf_kv_u32(w, "llama.rope.dimension_count", (uint32_t)cfg->head_dim);
    qf_gguf_kv_u32(w, "llama.attention.head_count", (uint32_t)cfg->n_heads);
    qf_gguf_kv_u32(w, "llama.attention.head_count_kv", (uint32_t)cfg->n_kv_heads);
    qf_gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", cfg->rms_norm_eps);
    qf_gguf_kv_f32(w, "llama.rope.freq_base", (float)cfg->rope_theta);
    /* llama.cpp's converter writes them whenever config.json names head_dim; they are needed
     * when heads do not tile the hidden size */
    if (json_object_get(cfg->json, "head_dim") || cfg->head_dim * cfg->n_heads != cfg->hidden_size) {
        qf_gguf_kv_u32(w, "llama.attention.key_length", (uint32_t)cfg->head_dim);
        qf_gguf_kv_u32(w, "llama.attention.value_length", (uint32_t)cfg->head_dim);
    }
    if (cfg->rope_type == QF_ROPE_LINEAR) {
        qf_gguf_kv_str(w, "llama.rope.scaling.type", "linear");
        qf_gguf_kv_f32(w, "llama.rope.scaling.factor", cfg->rope_factor);
    }
    return QF_OK;
}

void qf_gguf_size_label(uint64_t n_params, char *buf, size_t len)
{
    /* gguf-py's model_weight_count_rounded_notation: scale by a power of 1e-3 (multiplied, as
     * there), then as many decimals as make two significant digits of the rounded value
     * (rint is Python's round: half to even) */
    static const struct {
        double above, scale;
        char suffix;
    } steps[] = {{1e12, 1e-12, 'T'}, {1e9, 1e-9, 'B'}, {1e6, 1e-6, 'M'}, {-1, 1e-3, 'K'}};
    size_t i = 0;
    while ((double)n_params <= steps[i].above) i++;
    double x = (double)n_params * steps[i].scale;
    int digits = 0;
    for (double r = rint(x); r >= 1; r = floor(r / 10)) digits++;
    snprintf(buf, len, "%.*f%c", digits < 2 ? 2 - digits : 0, x, steps[i].suffix);
}

int qf_gguf_llama_rope_freqs(const qf_model_config *cfg, float *out, int cap)
{
    if (cfg->rope_type != QF_ROPE_LLAMA3) return 0;
    int n = cfg->head_dim / 2;
    if (n > cap) return 0;
    double old_len = cfg->rope_original_max_pos, lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
    double lo_wave = old_len / lo, hi_wave = old_len / hi, factor = cfg->rope_factor;
    for (int i = 0; i < n; i++) {
        double freq = 1.0 / pow(cfg->rope_theta, (2.0 * i) / cfg->head_dim), wave = 2.0 * M_PI / freq;
        if (wave < hi_wave) out[i] = 1.0f;
        else if (wave > lo_wave) out[i] = (float)factor;
        else {
            double smooth = (old_len / wave - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
    return n;
}
