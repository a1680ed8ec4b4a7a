/* cmd_synth.c - `qforge synth`: write a hub-layout checkpoint with random weights of real
 * shapes (Llama-3-8B, 70B, Mixtral-8x7B, or the tiny fixture's), so big-model paths can be
 * exercised and benchmarked without downloads.  Weights are bf16 N(0, 0.02) with a few
 * larger outliers per row (as trained weights have), norms near 1; deterministic per seed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_fs.h"
#include "qf_numfmt.h"
#include "qf_progress.h"
#include "qf_rng.h"
#include "qf_st_writer.h"

typedef struct {
    const char *name, *arch;
    int hidden, layers, heads, kv_heads, ffn, vocab, experts, top_k, llama3_rope;
    double theta;
} qf_synth_preset;

static const qf_synth_preset qf_presets[] = {
    {"tiny", "llama", 384, 6, 6, 2, 1024, 8192, 0, 0, 0, 1e4},
    {"8b", "llama", 4096, 32, 32, 8, 14336, 128256, 0, 0, 1, 5e5},
    {"70b", "llama", 8192, 80, 64, 8, 28672, 128256, 0, 0, 1, 5e5},
    {"tiny", "mixtral", 256, 4, 4, 2, 384, 8192, 4, 2, 0, 1e4},
    {"8x7b", "mixtral", 4096, 32, 32, 8, 14336, 32000, 8, 2, 0, 1e6},
};

typedef struct {
    char name[160];
    int64_t rows, cols; /* cols = 0 for a vector */
    int is_norm;
} qf_synth_tensor;

static int qf_synth_add(qf_synth_tensor *t, int n, const char *name, int64_t rows, int64_t cols, int norm)
{
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].rows = rows, t[n].cols = cols, t[n].is_norm = norm;
    return n + 1;
}

static int qf_synth_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_synth_tensor *)a)->name, ((const qf_synth_tensor *)b)->name);
}

static void qf_synth_row(uint16_t *out, int64_t n, uint64_t seed, int norm)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = qf_splitmix64(&s);
        /* sum of 4 uniforms ~ N(0, 1/3): cheap and bell-shaped */
        float u = (float)((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)) / 65536.0f - 2.0f;
        float v = norm ? 1.0f + 0.05f * u : 0.02f * 1.7320508f * u;
        if (!norm && (r & 0x3ff) == 0) v *= 8.0f; /* ~0.1 % outliers */
        out[i] = qf_f32_to_bf16(v);
    }
}

static void qf_synth_help(void)
{
    printf("usage: qforge synth --arch llama|mixtral --preset NAME -o DIR [--layers N] [--seed S]\n"
           "                    [--max-shard-size BYTES] [-q]\n\n"
           "Write a Hugging Face checkpoint (config.json, sharded bf16 safetensors, index) with\n"
           "random weights of real shapes. Presets: llama tiny|8b|70b, mixtral tiny|8x7b.\n"
           "--layers overrides the number of decoder layers (a smaller model of the same width).\n\n"
           "example:\n  qforge synth --arch llama --preset 8b -o /data/synth-8b   # 16 GB\n");
}

int qf_cmd_synth(int argc, char **argv)
{
    const char *arch = "llama", *preset = NULL, *out = NULL;
    int layers = -1, quiet = 0;
    uint64_t seed = 1, shard_limit = 5000000000ull;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (qf_cli_is_help(a)) {
            qf_synth_help();
            return 0;
        } else if (!strcmp(a, "--arch") && v) arch = v, i++;
        else if (!strcmp(a, "--preset") && v) preset = v, i++;
        else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && v) out = v, i++;
        else if (!strcmp(a, "--layers") && v) {
            if (qf_cli_int(a, v, &layers, &err)) return qf_cli_report_error("synth", &err, 0);
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            if (qf_cli_u64(a, v, &seed, &err)) return qf_cli_report_error("synth", &err, 0);
            i++;
        } else if (!strcmp(a, "--max-shard-size") && v) {
            if (qf_cli_u64(a, v, &shard_limit, &err)) return qf_cli_report_error("synth", &err, 0);
            i++;
        }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge synth --help)", a);
            return qf_cli_report_error("synth", &err, 0);
        }
    }
    const qf_synth_preset *p = NULL;
    for (size_t i = 0; preset && i < sizeof qf_presets / sizeof *qf_presets; i++)
        if (!strcmp(qf_presets[i].arch, arch) && !strcmp(qf_presets[i].name, preset)) p = &qf_presets[i];
    if (!p || !out) {
        qf_fail(&err, QF_ERR_USAGE, "need --arch, a known --preset and -o (qforge synth --help)");
        return qf_cli_report_error("synth", &err, 0);
    }
    int L = layers > 0 ? layers : p->layers, hd = p->hidden / p->heads;
    int per_layer = 5 + (p->experts ? 1 + 3 * p->experts : 3) + 2;
    int cap = L * per_layer + 8, n = 0;
    qf_synth_tensor *t = calloc((size_t)cap, sizeof *t);
    char nm[160];
    n = qf_synth_add(t, n, "model.embed_tokens.weight", p->vocab, p->hidden, 0);
    n = qf_synth_add(t, n, "lm_head.weight", p->vocab, p->hidden, 0);
    n = qf_synth_add(t, n, "model.norm.weight", p->hidden, 0, 1);
    for (int l = 0; l < L; l++) {
#define QF_T(fmt, r, c, norm) (snprintf(nm, sizeof nm, "model.layers.%d." fmt, l), n = qf_synth_add(t, n, nm, r, c, norm))
        QF_T("input_layernorm.weight", p->hidden, 0, 1);
        QF_T("post_attention_layernorm.weight", p->hidden, 0, 1);
        QF_T("self_attn.q_proj.weight", p->heads * hd, p->hidden, 0);
        QF_T("self_attn.k_proj.weight", p->kv_heads * hd, p->hidden, 0);
        QF_T("self_attn.v_proj.weight", p->kv_heads * hd, p->hidden, 0);
        QF_T("self_attn.o_proj.weight", p->hidden, p->heads * hd, 0);
        if (!p->experts) {
            QF_T("mlp.gate_proj.weight", p->ffn, p->hidden, 0);
            QF_T("mlp.up_proj.weight", p->ffn, p->hidden, 0);
            QF_T("mlp.down_proj.weight", p->hidden, p->ffn, 0);
        } else {
            QF_T("block_sparse_moe.gate.weight", p->experts, p->hidden, 0);
            for (int e = 0; e < p->experts; e++) {
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, e);
                n = qf_synth_add(t, n, nm, p->ffn, p->hidden, 0);
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", l, e);
                n = qf_synth_add(t, n, nm, p->hidden, p->ffn, 0);
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight", l, e);
                n = qf_synth_add(t, n, nm, p->ffn, p->hidden, 0);
            }
        }
#undef QF_T
    }
    qsort(t, (size_t)n, sizeof *t, qf_synth_cmp);
    /* shards: greedy in name order, as huggingface_hub does */
    int *shard_of = calloc((size_t)n, sizeof(int)), n_shards = 1;
    uint64_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1) * 2;
        if (cur && cur + b > shard_limit) n_shards++, cur = 0;
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    qf_status s = qf_mkdirs(out, &err);
    qf_progress prog;
    qf_cli_bar bar = {.enabled = !quiet, .unit = "B"};
    qf_progress_begin(&prog, qf_cli_progress, &bar, "synth", total);
    json_t *wm = json_object();
    for (int sh = 0, first = 0; s == QF_OK && sh < n_shards; sh++) {
        int last = first;
        while (last < n && shard_of[last] == sh) last++;
        qf_st_entry *e = calloc((size_t)(last - first), sizeof *e);
        for (int i = first; i < last; i++) {
            e[i - first].name = t[i].name;
            e[i - first].dtype = QF_DTYPE_BF16;
            e[i - first].ndim = t[i].cols ? 2 : 1;
            e[i - first].shape[0] = t[i].rows;
            e[i - first].shape[1] = t[i].cols;
        }
        char fname[64];
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh + 1, n_shards);
        char *path = qf_path_join(out, fname);
        qf_st_writer *w;
        s = qf_st_writer_open(path, e, last - first, &w, &err);
        for (int i = first; s == QF_OK && i < last; i++) {
            int64_t cols = t[i].cols ? t[i].cols : t[i].rows, rows = t[i].cols ? t[i].rows : 1;
            const int64_t block = 64;
            uint16_t *buf = malloc(sizeof(uint16_t) * (size_t)(block * cols));
            uint64_t name_seed = seed * 0x100000001b3ull;
            for (const char *c = t[i].name; *c; c++) name_seed = (name_seed ^ (uint8_t)*c) * 0x100000001b3ull;
            for (int64_t r0 = 0; s == QF_OK && r0 < rows; r0 += block) {
                int64_t nr = rows - r0 < block ? rows - r0 : block;
#pragma omp parallel for schedule(static)
                for (int64_t r = 0; r < nr; r++) qf_synth_row(buf + r * cols, cols, name_seed + (uint64_t)(r0 + r) * 7919u, t[i].is_norm);
                s = qf_st_writer_write(w, i - first, buf, sizeof(uint16_t) * (uint64_t)(nr * cols), &err);
                qf_progress_add(&prog, sizeof(uint16_t) * (uint64_t)(nr * cols));
            }
            free(buf);
            json_object_set_new(wm, t[i].name, json_string(fname));
        }
        if (s == QF_OK) s = qf_st_writer_close(w, NULL, NULL, NULL, NULL, &err);
        else qf_st_writer_abort(w);
        free(path);
        free(e);
        first = last;
    }
    qf_progress_end(&prog);
    if (s == QF_OK && n_shards > 1) {
        json_t *index = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
        char *path = qf_path_join(out, "model.safetensors.index.json");
        if (json_dump_file(index, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
            s = qf_fail(&err, QF_ERR_IO, "%s: cannot write", path);
        free(path);
        json_decref(index);
    }
    json_decref(wm);
    if (s == QF_OK) {
        json_t *cfg = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:b, s:i, s:i}",
                                "architectures", p->experts ? "MixtralForCausalLM" : "LlamaForCausalLM", "model_type",
                                p->arch, "hidden_size", p->hidden, "intermediate_size", p->ffn, "num_hidden_layers", L,
                                "num_attention_heads", p->heads, "num_key_value_heads", p->kv_heads, "head_dim", hd,
                                "vocab_size", p->vocab, "max_position_embeddings", 8192, "rms_norm_eps", 1e-5,
                                "torch_dtype", "bfloat16", "tie_word_embeddings", 0, "bos_token_id", 0, "eos_token_id", 0);
        json_object_set_new(cfg, "rope_theta", json_real(p->theta));
        if (p->llama3_rope)
            json_object_set_new(cfg, "rope_scaling",
                                json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 8.0,
                                          "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                          "original_max_position_embeddings", 8192));
        if (p->experts) {
            json_object_set_new(cfg, "num_local_experts", json_integer(p->experts));
            json_object_set_new(cfg, "num_experts_per_tok", json_integer(p->top_k));
        }
        char *path = qf_path_join(out, "config.json");
        if (json_dump_file(cfg, path, JSON_INDENT(2)) != 0) s = qf_fail(&err, QF_ERR_IO, "%s: cannot write", path);
        free(path);
        json_decref(cfg);
    }
    free(t);
    free(shard_of);
    if (s != QF_OK) return qf_cli_report_error("synth", &err, 0);
    printf("%s: %s %s, %d layers, %d tensors, %.2f GB in %d shard(s)\n", out, p->arch, p->name, L, n, total / 1e9, n_shards);
    return 0;
}
