/* cmd_inspect.c - `qforge inspect`: what a checkpoint or artifact holds. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_output.h"
#include "qf_cli.h"
#include "qf_config.h"
#include "qf_fs.h"
#include "qf_manifest.h"
#include "qf_quant_source.h"
#include "qf_safetensors.h"

static void qf_inspect_help(void)
{
    printf("usage: qforge inspect DIR [--tensors] [--json]\n\n"
           "Summarise a Hugging Face checkpoint or a qforge artifact: architecture, shards, bytes\n"
           "per dtype, the quantization_config and the manifest's recipe. --tensors lists every\n"
           "tensor (name, dtype, shape, bytes). \"source format:\" says what convert reads the folder\n"
           "as: float weights, an already-quantized source it dequantizes on read (DeepSeek FP8\n"
           "blocks, GPT-OSS MXFP4, compressed-tensors / ModelOpt FP8), or why it refuses it.\n\n"
           "example:\n  qforge inspect tests/data/tiny-llama --tensors\n");
}

static void qf_shape_str(const qf_tensor *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && k < len; d++) k += (size_t)snprintf(buf + k, len - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
}

int qf_cmd_inspect(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0, list = 0;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        if (qf_cli_is_help(argv[i])) {
            qf_inspect_help();
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--tensors")) list = 1;
        else if (argv[i][0] == '-' || dir) {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge inspect --help)", argv[i]);
            return qf_cli_report_error("inspect", &err, json);
        } else dir = argv[i];
    }
    if (!dir) {
        qf_fail(&err, QF_ERR_USAGE, "need DIR (qforge inspect --help)");
        return qf_cli_report_error("inspect", &err, json);
    }
    int gguf_rc = qf_inspect_gguf(dir, json, list); /* GGUF: the file's own view (convert_output.h) */
    if (gguf_rc >= 0) return gguf_rc;
    qf_checkpoint *ck;
    if (qf_checkpoint_open(dir, &ck, &err) != QF_OK) return qf_cli_report_error("inspect", &err, json);
    qf_model_config cfg = {0};
    char *cpath = qf_path_join(qf_path_is_dir(dir) ? dir : ck->dir, "config.json");
    /* A config.json that is there but unusable is reported with the parser's reason (file, line
     * and column, or the key): "no config.json" would send the user looking for a missing file.
     * The tensors are still listed, which is what one inspects a broken checkpoint for. */
    char cfg_note[sizeof err.msg + 32] = "no config.json";
    const char *cfg_error = "no config.json";
    int have_cfg = 0;
    if (qf_path_exists(cpath)) {
        have_cfg = qf_config_load(cpath, &cfg, &err) == QF_OK;
        if (!have_cfg) {
            snprintf(cfg_note, sizeof cfg_note, "config.json not used: %s", err.msg);
            cfg_error = err.msg;
            fprintf(stderr, "qforge inspect: warning: %s\n", err.msg);
        }
    }
    free(cpath);
    uint64_t by_dtype[QF_DTYPE_COUNT] = {0}, n_by_dtype[QF_DTYPE_COUNT] = {0}, params = 0;
    for (int i = 0; i < ck->n_tensors; i++) {
        by_dtype[ck->tensors[i].dtype] += ck->tensors[i].nbytes;
        n_by_dtype[ck->tensors[i].dtype]++;
        params += qf_tensor_numel(&ck->tensors[i]);
    }
    json_t *qc = have_cfg ? json_object_get(cfg.json, "quantization_config") : NULL;
    /* what `convert` reads this folder as: float, an already-quantized source it dequantizes,
     * or one it refuses (and why) */
    qf_qsource qs;
    qf_error qerr = {0};
    const int qs_ok = qf_qsource_detect(qf_path_is_dir(dir) ? dir : ck->dir, ck, &qs, &qerr) == QF_OK;
    json_t *manifest = NULL;
    qf_error merr;
    char *mpath = qf_path_join(qf_path_is_dir(dir) ? dir : ck->dir, QF_MANIFEST_NAME);
    if (qf_path_exists(mpath)) qf_manifest_load(qf_path_is_dir(dir) ? dir : ck->dir, &manifest, &merr);
    free(mpath);
    if (json) {
        json_t *dt = json_object(), *tensors = json_array();
        for (int t = 1; t < QF_DTYPE_COUNT; t++)
            if (n_by_dtype[t])
                json_object_set_new(dt, qf_dtype_name((qf_dtype)t),
                                    json_pack("{s:I, s:I}", "tensors", (json_int_t)n_by_dtype[t], "bytes", (json_int_t)by_dtype[t]));
        for (int i = 0; list && i < ck->n_tensors; i++) {
            const qf_tensor *t = &ck->tensors[i];
            json_t *sh = json_array();
            for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
            json_array_append_new(tensors, json_pack("{s:s, s:s, s:o, s:I, s:s}", "name", t->name, "dtype",
                                                     qf_dtype_name(t->dtype), "shape", sh, "bytes", (json_int_t)t->nbytes,
                                                     "file", qf_path_base(ck->files[t->file].path)));
        }
        json_t *r = json_pack("{s:s, s:s, s:s?, s:i, s:i, s:I, s:I, s:o, s:O?, s:O?, s:o}", "path", dir,
                              "model_type", have_cfg ? cfg.model_type : "", "config_error", have_cfg ? NULL : cfg_error,
                              "files", ck->n_files, "tensors", ck->n_tensors, "elements",
                              (json_int_t)params, "bytes", (json_int_t)qf_checkpoint_bytes(ck), "dtypes", dt,
                              "quantization_config", qc, "recipe", manifest ? json_object_get(manifest, "recipe") : NULL,
                              "tensor_list", tensors);
        json_object_set_new(r, "source_format",
                            qs_ok ? json_pack("{s:s, s:s, s:i, s:i}", "format", qf_qsource_name(qs.kind), "from", qs.origin,
                                              "dequantized_on_read", qs.n_quantized, "companions", qs.n_dropped)
                                  : json_pack("{s:s, s:s}", "format", "refused", "error", qerr.msg));
        char *s = json_dumps(r, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(r);
    } else {
        printf("%s\n  model_type %s (%s), %d file(s), %d tensors, %.2f M elements, %.1f MB\n", dir,
               have_cfg ? cfg.model_type : "?", have_cfg ? cfg.architecture : cfg_note, ck->n_files,
               ck->n_tensors, params / 1e6, qf_checkpoint_bytes(ck) / 1e6);
        if (have_cfg)
            printf("  layers %d, hidden %d, heads %d/%d kv, ffn %d, vocab %d%s\n", cfg.n_layers, cfg.hidden_size,
                   cfg.n_heads, cfg.n_kv_heads, cfg.intermediate_size, cfg.vocab_size, cfg.n_experts ? ", MoE" : "");
        for (int t = 1; t < QF_DTYPE_COUNT; t++)
            if (n_by_dtype[t])
                printf("  %-8s %5llu tensors %10.2f MB\n", qf_dtype_name((qf_dtype)t), (unsigned long long)n_by_dtype[t],
                       by_dtype[t] / 1e6);
        if (qc) {
            json_t *fmt = json_object_get(qc, "format");
            printf("  quantization: %s, format %s\n", json_string_value(json_object_get(qc, "quant_method")),
                   json_is_string(fmt) ? json_string_value(fmt) : "?");
        }
        if (!qs_ok) printf("  source format: refused as a convert source: %s\n", qerr.msg);
        else if (qs.kind == QF_QSOURCE_FP8_BLOCK && qs.block_rows)
            printf("  source format: %s %dx%d (%s): %d tensors dequantized to bf16 on read, %d scales dropped\n",
                   qf_qsource_name(qs.kind), qs.block_rows, qs.block_cols, qs.origin, qs.n_quantized, qs.n_dropped);
        else if (qs.kind != QF_QSOURCE_NONE)
            printf("  source format: %s (%s): %d tensors dequantized to bf16 on read, %d scales dropped\n",
                   qf_qsource_name(qs.kind), qs.origin, qs.n_quantized, qs.n_dropped);
        else printf("  source format: float (no quantization to undo)\n");
        if (manifest) {
            json_t *r = json_object_get(manifest, "recipe");
            printf("  qforge recipe: scheme %s, method %s\n", json_string_value(json_object_get(r, "scheme")),
                   json_string_value(json_object_get(r, "method")));
        }
        for (int i = 0; list && i < ck->n_tensors; i++) {
            char sh[160];
            qf_shape_str(&ck->tensors[i], sh, sizeof sh);
            printf("  %-60s %-8s %-18s %12llu\n", ck->tensors[i].name, qf_dtype_name(ck->tensors[i].dtype), sh,
                   (unsigned long long)ck->tensors[i].nbytes);
        }
    }
    json_decref(manifest);
    qf_config_free(&cfg);
    qf_checkpoint_free(ck);
    return 0;
}
