/* convert_passthrough.c - `qforge convert SRC --to safetensors -o OUT`: the checkpoint's
 * tensors unchanged, as plain safetensors shards (see convert_output.h).  Any input qforge
 * reads works (a PyTorch .bin / .pt checkpoint is the point); tensors are written in name
 * order and bytes, so the output equals what safetensors' own conversion of the same
 * state_dict holds, tensor for tensor.  An already-quantized source (qf_quant_source.h) is
 * written as its bf16 dequantization, under its config.json without quantization_config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "convert_output.h"
#include "convert_plan.h"
#include "qf_manifest.h"
#include "qf_progress.h"
#include "qf_quant_source.h"
#include "qf_st_writer.h"

static qf_status qf_passthrough_shards(const qf_convert_opts *o, const qf_checkpoint *ck, const char *tmp, json_t *manifest,
                                       qf_convert_stats *st, qf_error *err)
{
    /* shards: greedy in name order */
    uint64_t limit = o->max_shard_bytes ? o->max_shard_bytes : QF_DEFAULT_SHARD_BYTES, cur = 0, total = 0;
    int *shard_of = calloc((size_t)ck->n_tensors + 1, sizeof *shard_of), n_shards = 1;
    if (!shard_of) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ck->n_tensors; i++) {
        if (cur > 0 && cur + ck->tensors[i].nbytes > limit) n_shards++, cur = 0;
        shard_of[i] = n_shards - 1;
        cur += ck->tensors[i].nbytes;
        total += ck->tensors[i].nbytes;
    }
    qf_progress prog;
    qf_progress_begin_ctx(&prog, o->ctx, "convert", total);
    json_t *weight_map = json_object();
    qf_status s = QF_OK;
    for (int shard = 0, first = 0; shard < n_shards && s == QF_OK; shard++) {
        int last = first;
        while (last < ck->n_tensors && shard_of[last] == shard) last++;
        int n = last - first;
        qf_st_entry *e = calloc((size_t)n + 1, sizeof *e);
        qf_hash128 *th = calloc((size_t)n + 1, sizeof *th);
        if (!e || !th) {
            free(e), free(th);
            s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
            break;
        }
        for (int i = 0; i < n; i++) {
            const qf_tensor *t = &ck->tensors[first + i];
            e[i] = (qf_st_entry){t->name, t->dtype, t->ndim, {0}};
            memcpy(e[i].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        }
        char fname[64];
        qf_shard_name(shard, n_shards, fname, sizeof fname);
        char *path = qf_path_join(tmp, fname);
        qf_st_writer *w = NULL;
        s = qf_st_writer_open(path, e, n, &w, err);
        for (int i = 0; i < n && s == QF_OK; i++) {
            const qf_tensor *t = &ck->tensors[first + i];
            if (qf_ctx_cancelled(o->ctx)) {
                s = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted; nothing was written to %s", o->out);
                break;
            }
            s = qf_checkpoint_acquire(ck, t, err); /* a dequantized source tensor is decoded now */
            if (s == QF_OK) s = qf_st_writer_write(w, i, t->data, t->nbytes, err);
            qf_checkpoint_release(ck, t);
            qf_progress_add(&prog, t->nbytes);
            json_object_set_new(weight_map, t->name, json_string(fname));
            st->n_kept++;
        }
        uint64_t fsize = 0;
        qf_hash128 fh;
        qf_sha256 fsha;
        if (s == QF_OK) s = qf_st_writer_close(w, &fsize, &fh, &fsha, th, err);
        else qf_st_writer_abort(w);
        if (s == QF_OK) {
            qf_manifest_add_file(manifest, fname, fsize, fh, &fsha);
            for (int i = 0; i < n; i++)
                qf_manifest_add_tensor(manifest, fname, e[i].name, e[i].dtype, e[i].ndim, e[i].shape, th[i]);
            st->bytes_out += fsize;
        }
        free(path);
        free(e);
        free(th);
        first = last;
    }
    qf_progress_end(&prog);
    if (s == QF_OK && n_shards > 1) {
        json_t *index = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", weight_map);
        char *text = json_dumps(index, JSON_INDENT(2) | JSON_SORT_KEYS);
        size_t len = strlen(text);
        text = realloc(text, len + 2);
        text[len] = '\n';
        char *ipath = qf_path_join(tmp, "model.safetensors.index.json");
        s = qf_file_write_atomic(ipath, text, len + 1, err);
        qf_sha256 isha = qf_sha256_bytes(text, len + 1);
        if (s == QF_OK)
            qf_manifest_add_file(manifest, "model.safetensors.index.json", len + 1, qf_hash_bytes(text, len + 1), &isha);
        st->bytes_out += len + 1;
        free(ipath);
        free(text);
        json_decref(index);
    }
    json_decref(weight_map);
    free(shard_of);
    st->n_shards = n_shards;
    return s;
}

qf_status qf_convert_passthrough(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err)
{
    memset(st, 0, sizeof *st);
    double t0 = qf_now();
    /* 1. the source (safetensors, or PyTorch .bin / .pt through the restricted unpickler) */
    qf_checkpoint *ck = NULL;
    QF_TRY(qf_checkpoint_open_source(o->src, &ck, &st->source, err)); /* a quantized source: its bf16 dequantization */
    const int dequantized = st->source.kind != QF_QSOURCE_NONE;
    json_t *config = NULL; /* dequantized: the source's config.json without its quantization_config */
    if (dequantized) {
        char *cpath = qf_path_join(o->src, "config.json");
        json_error_t je;
        config = json_load_file(cpath, JSON_REJECT_DUPLICATES, &je);
        free(cpath);
        json_object_del(config, "quantization_config");
    }
    for (int i = 0; i < ck->n_tensors; i++) st->bytes_in += ck->tensors[i].nbytes;
    /* 2. a temporary folder beside the destination */
    char *tmp = NULL;
    qf_status s = qf_output_begin(o, &tmp, err);
    if (s) {
        qf_checkpoint_free(ck);
        json_decref(config);
        return s;
    }
    json_t *manifest = qf_manifest_new();
    json_object_set_new(manifest, "recipe", json_pack("{s:s, s:s, s:s}", "scheme", "none", "method",
                                                      dequantized ? "dequantize" : "passthrough", "layout", "safetensors"));
    if (dequantized)
        json_object_set_new(manifest, "source_format", json_pack("{s:s, s:s, s:i}", "format", qf_qsource_name(st->source.kind),
                                                                 "from", st->source.origin, "dequantized_to_bf16",
                                                                 st->source.n_quantized));
    /* 3. every tensor, unchanged, hashed while written */
    double tw = qf_now();
    s = qf_passthrough_shards(o, ck, tmp, manifest, st, err);
    st->seconds_weights = qf_now() - tw;
    /* 4. config.json and side files as they are; 5. card, manifest, rename */
    if (s == QF_OK) s = qf_output_side_files(o->src, tmp, config, manifest, &st->bytes_out, err);
    json_decref(config);
    s = qf_output_finish(o, ck, tmp, manifest, s, &st->bytes_out, err);
    json_decref(manifest);
    qf_checkpoint_free(ck);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    st->peak_rss_kb = ru.ru_maxrss;
    st->seconds = qf_now() - t0;
    return s;
}
