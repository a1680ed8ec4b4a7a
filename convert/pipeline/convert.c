/* convert.c - the conversion pipeline, as a story (see qf_convert.h). */
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert_plan.h"
#include "ct_config.h"
#include "qf_config.h"
#include "qf_fs.h"
#include "qf_manifest.h"
#include "qf_model_card.h"
#include "qf_modelopt.h"
#include "qf_quant_source.h"
#include "convert_output.h"
#include "journal.h"
#include "mixed.h"
#include "qf_progress.h"
#include "qf_sysmem.h"
#include "source_hash.h"
#include "write_queue.h"



/* RTN's clip search steps for this run and scheme s (-1: the scheme's default). */
static int qf_rtn_clip_steps(const qf_convert_opts *o, const qf_scheme *s)
{
    return o->rtn_clip_search >= 0 ? o->rtn_clip_search : qf_rtn_clip_default(s);
}

/* Source bytes an output tensor stands for in the progress count: its tensor's, or for an
 * expert's slice of a fused tensor, the slice's (the slices of a tensor add up to it). */
static uint64_t qf_out_src_bytes(const qf_convert_plan *p, const qf_checkpoint *ck, const qf_out_tensor *ot)
{
    const qf_tensor *t = &ck->tensors[ot->src];
    if (ot->mod < 0 || !p->mods[ot->mod].sliced) return t->nbytes;
    const qf_expert_slice *s = &p->mods[ot->mod].slice;
    return (uint64_t)s->rows * (uint64_t)s->cols * (uint64_t)(qf_dtype_bits(t->dtype) / 8);
}

/* An expert's Linear weight out of its fused tensor (qf_fused_experts.h), in a buffer the caller
 * frees; the expert's pages are dropped afterwards, so one expert matrix is resident at a time. */
static qf_status qf_read_slice(const qf_checkpoint *ck, const qf_module_plan *m, void **out, qf_error *err)
{
    const qf_tensor *t = &ck->tensors[m->src];
    const size_t n = (size_t)m->slice.rows * (size_t)m->slice.cols * (size_t)(qf_dtype_bits(t->dtype) / 8);
    QF_TRY(qf_checkpoint_acquire(ck, t, err)); /* a dequantized source tensor: decoded once for its slices */
    *out = malloc(n ? n : 1);
    if (!*out) return qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for expert %d's %s", ck->dir, t->name,
                              m->slice.expert, m->module);
    qf_expert_slice_read(&m->slice, *out);
    const qf_tensor block = qf_expert_block(t, m->slice.expert);
    qf_checkpoint_release(ck, &block);
    return QF_OK;
}

/* Quantize the packed tensors of module m (a 2-D source weight, or an expert's slice). */
static qf_status qf_quantize_module(const qf_convert_opts *o, const qf_checkpoint *ck, const qf_module_plan *m,
                                    qf_quant_buffers *buf, qf_error *err)
{
    const qf_tensor *t = &ck->tensors[m->src];
    const int64_t rows = m->sliced ? m->slice.rows : t->shape[0], cols = m->sliced ? m->slice.cols : t->shape[1];
    void *sliced = NULL;
    if (m->sliced) QF_TRY(qf_read_slice(ck, m, &sliced, err));
    else QF_TRY(qf_checkpoint_acquire(ck, t, err)); /* a dequantized source tensor is decoded now */
    const void *w = m->sliced ? sliced : t->data;
    qf_status s = QF_OK;
    for (int k = 0; k < m->plan.n && s == QF_OK; k++) {
        buf->data[k] = calloc(1, m->plan.t[k].nbytes ? m->plan.t[k].nbytes : 1);
        if (!buf->data[k]) s = qf_fail(err, QF_ERR_NOMEM, "out of memory for %s.%s", m->module, m->plan.t[k].suffix);
    }
    if (s == QF_OK)
        s = qf_quantize_rtn_clip(m->scheme, t->dtype, w, rows, cols, m->group_amax, qf_rtn_clip_steps(o, m->scheme), o->rtn_clip_min,
                                 &m->plan, buf, err);
    free(sliced);
    if (s == QF_OK && o->layout == QF_LAYOUT_MODELOPT) { /* re-layout the same codes (qf_modelopt.h) */
        qf_quant_buffers mo = {{0}};
        for (int k = 0; k < m->out_plan.n && s == QF_OK; k++)
            if (!(mo.data[k] = calloc(1, m->out_plan.t[k].nbytes ? m->out_plan.t[k].nbytes : 1)))
                s = qf_fail(err, QF_ERR_NOMEM, "out of memory for %s.%s", m->module, m->out_plan.t[k].suffix);
        if (s == QF_OK) s = qf_modelopt_relayout(m->scheme, rows, cols, &m->plan, buf, &m->out_plan, &mo, err);
        for (int k = 0; k < QF_PLAN_MAX; k++) free(buf->data[k]), buf->data[k] = mo.data[k];
    }
    if (s) qf_error_prefix(err, "%s: tensor '%s': ", ck->dir, t->name);
    return s;
}


/* ---- calibration -> writer, in memory ------------------------------------------------------
 * Calibration (the calling thread) hands each decoder layer's tensors to qf_feed_sink as the
 * layer finishes; the writer (its own thread, qf_write_shards) writes the shards in name order
 * and, at a tensor of layer l, waits until calibration is past layer l and takes the
 * calibrated bytes if there are any (packed tensors; norms AWQ/SmoothQuant folded into).  So
 * no per-layer files lie between the two, and a layer's packed tensors are freed as soon as
 * they are written (layers finish in numeric order, names sort "10" before "2": the ones
 * waiting for their turn are held meanwhile). */
typedef struct qf_feed {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qf_convert_plan *plan;
    const qf_calib_opts *calib; /* which tensors outside the layers calibration hands over */
    int layers_done;   /* layers 0..layers_done-1 handed over */
    int n_layers;      /* num_hidden_layers: tensors of later layers (GLM / DeepSeek MTP layers,
                        * which the runner does not run) are not calibrated: RTN by the writer */
    int cal_state;     /* 0 running, 1 finished, -1 failed */
    int writer_failed;
    int cal_failure_seen; /* the writer stopped because calibration failed */
    double seconds_waited; /* the writer's time waiting for calibration */
    /* the writer's progress is held back while calibration reports its own lines */
    pthread_mutex_t log_mu;
    const qf_ctx *ctx;
    int calibrating, begin_pending, end_pending;
    char stage[64];
    uint64_t total;
    /* the writer thread starts when the first layer is handed over: until then calibration
     * plans its memory and runs layer 0 with nothing of the writer resident */
    struct qf_writer_job *job;
    pthread_t th;
    int started;
} qf_feed;

static int qf_feed_start(qf_feed *f);

static qf_status qf_feed_sink(void *user, int layer, qf_calib_tensor *t, int n, qf_error *err)
{
    qf_feed *f = user;
    qf_status s = QF_OK;
    if (qf_feed_start(f) != 0) return qf_fail(err, QF_ERR_NOMEM, "cannot start the shard writer thread");
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < n && s == QF_OK; i++) {
        qf_out_tensor *ot = qf_plan_find(f->plan, t[i].name);
        if (!ot) continue; /* a tensor of a layer outside this --layers slice: calibration runs layers 0..B */
        if (t[i].dtype != ot->dtype || t[i].nbytes != ot->nbytes)
            s = qf_fail(err, QF_ERR_FORMAT, "calibration output '%s' is %s of %llu bytes, the plan expects %s of %llu",
                        t[i].name, qf_dtype_name(t[i].dtype), (unsigned long long)t[i].nbytes, qf_dtype_name(ot->dtype),
                        (unsigned long long)ot->nbytes);
        else if (ot->consumed == 1) /* written already: the writer's wait rule does not cover it */
            s = qf_fail(err, QF_ERR_FORMAT, "calibration output '%s' came after the tensor was written", t[i].name);
        else if (!ot->consumed) { /* consumed 2: in a shard resumed from an interrupted run */
            ot->cal_data = t[i].data, t[i].data = NULL;
            ot->cal_ready = 1;
        }
    }
    if (s == QF_OK && f->writer_failed) s = qf_fail(err, QF_ERR_IO, "the shard writer stopped");
    f->layers_done = layer + 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* The writer is at ot: wait for calibration to pass its layer (all of calibration for a
 * quantized tensor outside the layers), then *data = the calibrated bytes (owned) or NULL. */
static qf_status qf_feed_take(qf_feed *f, qf_out_tensor *ot, qf_write_queue *q, void **data, qf_error *err)
{
    *data = NULL;
    if (!f) return QF_OK;
    const int l = qf_tensor_layer(ot->name);
    qf_status s = QF_OK;
    if (f->n_layers > 0 && l >= f->n_layers) return QF_OK; /* beyond the decoder: RTN, nothing to wait for */
    pthread_mutex_lock(&f->mu);
    /* outside the layers: a quantized tensor comes when calibration ends, a rotated one
     * (qf_calib_outside_tensor) with layer 0 */
    const int outside = l < 0 && qf_calib_outside_tensor(f->calib, ot->name);
#define QF_FEED_WAITS                                                                                              \
    (f->cal_state == 0 && (l >= 0 ? f->layers_done <= l : outside ? !ot->cal_ready : ot->plan_index >= 0))
    if (QF_FEED_WAITS) { /* idle while calibration runs: the shard buffer's pages go back meanwhile */
        pthread_mutex_unlock(&f->mu);
        qf_wq_trim(q);
        const double t0 = qf_now();
        pthread_mutex_lock(&f->mu);
        while (QF_FEED_WAITS) pthread_cond_wait(&f->cv, &f->mu);
        f->seconds_waited += qf_now() - t0;
    }
#undef QF_FEED_WAITS
    if (f->cal_state < 0 && !ot->cal_ready) {
        s = qf_fail(err, QF_ERR_INTERRUPTED, "calibration stopped");
        f->cal_failure_seen = 1;
    }
    else if ((ot->plan_index >= 0 || outside) && !ot->cal_ready)
        s = qf_fail(err, QF_ERR_FORMAT, "calibration produced no '%s'", ot->name);
    *data = ot->cal_data;
    ot->cal_data = NULL;
    ot->consumed = 1;
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* A resumed shard's tensor: calibrated bytes for it, now or later, are dropped. */
static void qf_feed_skip(qf_feed *f, qf_out_tensor *ot)
{
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    free(ot->cal_data);
    ot->cal_data = NULL;
    ot->consumed = 2;
    pthread_mutex_unlock(&f->mu);
}

static void qf_feed_progress(void *user, const char *stage, uint64_t done, uint64_t total, const char *msg)
{
    qf_feed *f = user;
    pthread_mutex_lock(&f->log_mu);
    if (!f->calibrating) {
        f->ctx->progress(f->ctx->user, stage, done, total, msg);
    } else if (!msg && done == 0) {
        f->begin_pending = 1;
        snprintf(f->stage, sizeof f->stage, "%s", stage);
        f->total = total;
    } else if (msg) {
        f->end_pending = 1;
    }
    pthread_mutex_unlock(&f->log_mu);
}

/* Calibration returned: the writer's progress goes through from now on. */
static void qf_feed_calibrated(qf_feed *f, qf_status s)
{
    pthread_mutex_lock(&f->mu);
    f->cal_state = s == QF_OK ? 1 : -1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_mutex_lock(&f->log_mu);
    f->calibrating = 0;
    if (f->ctx && f->ctx->progress && f->begin_pending) {
        f->ctx->progress(f->ctx->user, f->stage, 0, f->total, NULL);
        if (f->end_pending) f->ctx->progress(f->ctx->user, f->stage, f->total, f->total, QF_PROGRESS_END);
    }
    pthread_mutex_unlock(&f->log_mu);
}

/* Write every shard: for each output tensor in name order, stream its bytes to its shard.
 * A writer thread per shard writes and hashes while this thread quantizes the next module;
 * with feed, calibrated tensors come from calibration as its layers finish. */
static qf_status qf_write_shards(const qf_convert_opts *o, const qf_checkpoint *ck, qf_convert_plan *p,
                                 const char *tmp, json_t *manifest, json_t *journal, qf_feed *feed,
                                 qf_convert_stats *st, qf_error *err)
{
    qf_progress prog;
    uint64_t total = 0;
    for (int i = 0; i < ck->n_tensors; i++) total += ck->tensors[i].nbytes;
    if (feed && o->ctx && o->ctx->progress) qf_progress_begin(&prog, qf_feed_progress, feed, "convert", total);
    else qf_progress_begin_ctx(&prog, o->ctx, "convert", total);
    qf_status s = QF_OK;
    int first = 0;
    json_t *weight_map = json_object();
    /* owned packed bytes queued for writing, at most: 256 MiB keeps the disk busy while the
     * next module is quantized; more buys nothing, and a small budget gets a quarter of it */
    const uint64_t budget = o->ctx && o->ctx->max_memory ? o->ctx->max_memory : qf_mem_default_budget();
    const uint64_t in_flight = budget && budget / 4 < (256ull << 20) ? budget / 4 : 256ull << 20;
    for (int shard = 0; shard < p->n_shards && s == QF_OK; shard++) {
        int last = first;
        while (last < p->n_out && p->out[last].shard == shard) last++;
        int n = last - first;
        qf_st_entry *entries = calloc((size_t)n, sizeof *entries);
        for (int i = 0; i < n; i++) {
            const qf_out_tensor *ot = &p->out[first + i];
            entries[i] = (qf_st_entry){ot->name, ot->dtype, ot->ndim, {0}};
            memcpy(entries[i].shape, ot->shape, sizeof(int64_t) * (size_t)ot->ndim);
        }
        char fname[64];
        qf_shard_name(shard, p->n_shards, fname, sizeof fname);
        json_t *done = qf_journal_shard(journal, tmp, fname);
        if (done) { /* resumed: this shard was completed by an earlier, interrupted run */
            json_t *th = json_object_get(done, "tensors");
            qf_hash128 fh, h;
            qf_hash_parse_hex(json_string_value(json_object_get(done, "xxh3_128")), &fh);
            uint64_t fsize = (uint64_t)json_integer_value(json_object_get(done, "size"));
            qf_sha256 fsha;
            json_t *jsha = json_object_get(done, "sha256");
            if (!json_is_string(jsha) || qf_sha256_parse_hex(json_string_value(jsha), &fsha) != 0) {
                /* a journal from before SHA-256 was recorded: read the shard once */
                char *sp = qf_path_join(tmp, fname);
                s = qf_sha256_file(sp, &fsha, NULL, err);
                free(sp);
                if (s) {
                    free(entries);
                    break;
                }
            }
            qf_manifest_add_file(manifest, fname, fsize, fh, &fsha);
            for (int i = 0; i < n; i++) {
                qf_hash_parse_hex(json_string_value(json_array_get(th, (size_t)i)), &h);
                qf_manifest_add_tensor(manifest, fname, entries[i].name, entries[i].dtype, entries[i].ndim,
                                       entries[i].shape, h);
                json_object_set_new(weight_map, entries[i].name, json_string(fname));
                qf_out_tensor *ot = &p->out[first + i];
                qf_feed_skip(feed, ot);
                if (ot->plan_index <= 0) qf_progress_add(&prog, qf_out_src_bytes(p, ck, ot));
            }
            st->bytes_out += fsize;
            st->n_resumed_shards++;
            free(entries);
            first = last;
            continue;
        }
        char *path = qf_path_join(tmp, fname);
        qf_hash128 *th = calloc(n > 0 ? (size_t)n : 1, sizeof *th); /* n >= 1: a shard holds a tensor */
        qf_st_writer *w = NULL;
        qf_write_queue *q = NULL;
        s = qf_st_writer_open(path, entries, n, &w, err);
        if (s == QF_OK) s = qf_wq_start(&q, w, in_flight, ck, err);
        if (s == QF_OK && feed) qf_wq_set_lean(q, 1); /* beside calibration: add little to its peak */
        qf_quant_buffers buf = {{0}};
        int buf_mod = -1;
        for (int i = 0; i < n && s == QF_OK; i++) {
            qf_out_tensor *ot = &p->out[first + i];
            const qf_tensor *t = &ck->tensors[ot->src];
            if (qf_ctx_cancelled(o->ctx)) {
                s = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted; nothing was written to %s", o->out);
                break;
            }
            int last_use = i + 1 == n || p->out[first + i + 1].src != ot->src;
            void *cal = NULL;
            if ((s = qf_feed_take(feed, ot, q, &cal, err)) != QF_OK) break;
            if (cal) { /* calibrated bytes (packed tensors, folded norms); the writer frees them */
                if (qf_wq_push(q, i, cal, ot->nbytes, cal, NULL) != QF_OK) break;
                if (ot->plan_index <= 0) {
                    qf_progress_add(&prog, qf_out_src_bytes(p, ck, ot));
                    if (ot->plan_index == 0) st->n_quantized++;
                    else st->n_kept++;
                }
            } else if (ot->plan_index < 0 && ot->mod < 0) {
                /* passthrough straight from the mapping (or a dequantized source tensor, decoded
                 * now); its pages, or its buffer, are dropped once written */
                if ((s = qf_checkpoint_acquire(ck, t, err)) != QF_OK) break;
                if (t->decode) { /* decoded: the queue owns its buffer and counts it against in_flight */
                    void *buf = qf_checkpoint_take(ck, t);
                    if (qf_wq_push(q, i, buf, t->nbytes, buf, NULL) != QF_OK) break;
                } else if (qf_wq_push(q, i, t->data, t->nbytes, NULL, last_use ? t : NULL) != QF_OK)
                    break;
                qf_progress_add(&prog, t->nbytes);
                st->n_kept++;
            } else if (ot->plan_index < 0) { /* an expert kept dense (--ignore): its slice as it is */
                void *dense = NULL;
                if ((s = qf_read_slice(ck, &p->mods[ot->mod], &dense, err)) != QF_OK) break;
                if (last_use) qf_checkpoint_release(ck, t); /* a decoded source tensor: its slices are done */
                if (qf_wq_push(q, i, dense, ot->nbytes, dense, NULL) != QF_OK) break;
                qf_progress_add(&prog, ot->nbytes);
                st->n_kept++;
            } else {
                if (buf_mod != ot->mod) {
                    const qf_module_plan *m = &p->mods[ot->mod];
                    for (int k = 0; k < QF_PLAN_MAX; k++) free(buf.data[k]), buf.data[k] = NULL;
                    s = qf_quantize_module(o, ck, m, &buf, err);
                    /* the packed copy is all that is needed now (a decoded source tensor: once its
                     * last slice is quantized) */
                    if (!m->sliced || (t->decode && last_use)) qf_checkpoint_release(ck, t);
                    buf_mod = ot->mod;
                    qf_progress_add(&prog, qf_out_src_bytes(p, ck, ot));
                    st->n_quantized++;
                    if (s) break;
                }
                void *owned = buf.data[ot->plan_index];
                buf.data[ot->plan_index] = NULL; /* the writer frees it */
                if (qf_wq_push(q, i, owned, ot->nbytes, owned, NULL) != QF_OK) break;
            }
            json_object_set_new(weight_map, ot->name, json_string(fname));
        }
        for (int k = 0; k < QF_PLAN_MAX; k++) free(buf.data[k]);
        qf_error werr;
        if (q && qf_wq_finish(q, &werr) != QF_OK && s == QF_OK) {
            s = werr.code;
            *err = werr;
        }
        uint64_t fsize = 0;
        qf_hash128 fh;
        qf_sha256 fsha;
        if (s == QF_OK) s = qf_st_writer_close(w, &fsize, &fh, &fsha, th, err);
        else qf_st_writer_abort(w);
        if (s == QF_OK) s = qf_journal_add(journal, tmp, fname, fsize, fh, &fsha, th, n, err);
        if (s == QF_OK) {
            qf_manifest_add_file(manifest, fname, fsize, fh, &fsha);
            for (int i = 0; i < n; i++)
                qf_manifest_add_tensor(manifest, fname, entries[i].name, entries[i].dtype, entries[i].ndim,
                                       entries[i].shape, th[i]);
            st->bytes_out += fsize;
        }
        free(path);
        free(entries);
        free(th);
        first = last;
    }
    qf_progress_end(&prog);
    if (s == QF_OK && p->n_shards > 1) {
        uint64_t total_size = 0;
        for (int i = 0; i < p->n_out; i++) total_size += p->out[i].nbytes;
        json_t *index = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total_size, "weight_map",
                                  weight_map);
        char *text = json_dumps(index, JSON_INDENT(2) | JSON_SORT_KEYS);
        char *ipath = qf_path_join(tmp, "model.safetensors.index.json");
        size_t len = strlen(text);
        text = realloc(text, len + 2);
        text[len] = '\n';
        s = qf_file_write_atomic(ipath, text, len + 1, err);
        free(ipath);
        free(text);
        json_decref(index);
    }
    json_decref(weight_map);
    st->n_shards = p->n_shards;
    return s;
}


static int qf_strcmp_p(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Mixed precision's quantization_config: a group per menu scheme over its modules. */
static json_t *qf_ct_config_of_plan(const qf_mixed *mx, const qf_convert_plan *p)
{
    char **names = malloc(sizeof(char *) * (size_t)(p->n_mods + 1));
    const qf_scheme **sch = malloc(sizeof *sch * (size_t)(p->n_mods + 1));
    const qf_scheme *menu[QF_MIXED_MENU_MAX];
    int n = 0, nm = 0;
    for (int i = 0; names && sch && i < p->n_mods; i++)
        if (p->mods[i].quantized) names[n] = p->mods[i].module, sch[n++] = p->mods[i].scheme;
    for (int k = 0; k < mx->n_menu; k++)
        if (mx->menu[k]) menu[nm++] = mx->menu[k];
    json_t *c = names && sch ? qf_ct_quant_config_mixed(menu, nm, sch, names, n, p->ignored_modules, p->n_ignored) : NULL;
    free(names);
    free(sch);
    return c;
}

/* Copy side files, write config.json; add them to the manifest in name order. */
static qf_status qf_write_side_files(const qf_convert_opts *o, const qf_convert_plan *p, const qf_model_config *cfg,
                                     const char *src_dir, const char *tmp, json_t *m, qf_convert_stats *st, qf_error *err)
{
    json_t *conf = json_deep_copy(cfg->json);
    if (!o->n_parts) /* a merge copies the parts' config, whose quantization_config is final */
        json_object_set_new(conf, "quantization_config",
                            o->layout == QF_LAYOUT_MODELOPT ? qf_modelopt_quant_config(o->scheme, p->ignored_modules, p->n_ignored)
                            : o->mixed ? qf_ct_config_of_plan(o->mixed, p)
                                       : qf_ct_quant_config(o->scheme, p->ignored_modules, p->n_ignored));
    char *text = json_dumps(conf, JSON_INDENT(2));
    json_decref(conf);
    size_t len = strlen(text);
    text = realloc(text, len + 2);
    text[len] = '\n';
    char *cpath = qf_path_join(tmp, "config.json");
    qf_status s = qf_file_write_atomic(cpath, text, len + 1, err);
    free(cpath);
    free(text);
    if (s) return s;
    char **names = NULL;
    int n = 0;
    s = qf_output_list_side_files(src_dir, 3, &names, &n, err); /* + config, index, hf_quant_config */
    if (s) return s;
    for (int i = 0; i < n && s == QF_OK; i++) {
        char *src = qf_path_join(src_dir, names[i]), *dst = qf_path_join(tmp, names[i]);
        s = qf_file_copy(src, dst, err);
        free(src);
        free(dst);
    }
    names[n++] = strdup("config.json");
    if (p->n_shards > 1) names[n++] = strdup("model.safetensors.index.json");
    if (s == QF_OK && o->layout == QF_LAYOUT_MODELOPT && !o->n_parts) { /* ModelOpt's own record of the export */
        json_t *h = qf_modelopt_hf_quant_config(o->scheme, p->ignored_modules, p->n_ignored);
        char *htext = json_dumps(h, JSON_INDENT(2)), *hpath = qf_path_join(tmp, "hf_quant_config.json");
        s = qf_file_write_atomic(hpath, htext, strlen(htext), err);
        int listed = 0;
        for (int i = 0; i < n; i++) listed |= strcmp(names[i], "hf_quant_config.json") == 0;
        if (!listed) names[n++] = strdup("hf_quant_config.json");
        free(hpath), free(htext), json_decref(h);
    }
    qsort(names, (size_t)n, sizeof *names, qf_strcmp_p);
    for (int i = 0; i < n; i++) {
        if (s == QF_OK) s = qf_output_hash_file(m, tmp, names[i], &st->bytes_out, err);
        free(names[i]);
    }
    free(names);
    return s;
}

/* Source identity: names, sizes and hashes (computed in the background) of the input files. */
static qf_status qf_source_json(const qf_checkpoint *ck, const char *src, qf_source_hasher *hasher, json_t **out,
                                qf_error *err)
{
    qf_hash128 *h = calloc((size_t)ck->n_files + 1, sizeof *h);
    qf_status s = qf_source_hash_finish(hasher, h, err);
    if (s) {
        free(h);
        return s;
    }
    json_t *files = qf_source_files_json(ck, h);
    free(h);
    char cfg_hex[QF_HASH_HEX_LEN + 1];
    char *cpath = qf_path_join(src, "config.json"), *ctext = NULL;
    size_t clen = 0;
    s = qf_file_read_all(cpath, 64u << 20, &ctext, &clen, err);
    free(cpath);
    if (s) {
        json_decref(files);
        return s;
    }
    qf_hash_hex(qf_hash_bytes(ctext, clen), cfg_hex);
    free(ctext);
    char *abs = realpath(src, NULL);
    *out = json_pack("{s:s, s:s, s:o}", "name", qf_path_base(abs ? abs : src), "config_xxh3_128", cfg_hex, "files", files);
    free(abs);
    return QF_OK;
}

static json_t *qf_recipe_json(const qf_convert_opts *o)
{
    json_t *ign = json_array();
    for (int i = 0; i < o->n_ignore; i++) json_array_append_new(ign, json_string(o->ignore[i]));
    json_t *r = json_pack("{s:s, s:s, s:s, s:o, s:s, s:I}", "scheme",
                          o->target_bits > 0 || o->target_size ? "mixed" : o->scheme->name,
                          "method", o->method, "layout",
                          qf_layout_name(o->layout), "ignore", ign, "default_ignore", "lm_head, embeddings, norms, MoE routers",
                          "max_shard_size", (json_int_t)(o->max_shard_bytes ? o->max_shard_bytes : QF_DEFAULT_SHARD_BYTES));
    if (o->layer_first >= 0) json_object_set_new(r, "layers", json_pack("[i,i]", o->layer_first, o->layer_last));
    if (o->target_bits > 0 || o->target_size) /* absent without: the recipe of every other run is unchanged */
        json_object_set_new(r, "target_bits", json_pack("{s:f, s:I, s:s, s:i}", "bits_per_weight", (double)o->target_bits,
                                                        "tensor_bytes", (json_int_t)o->target_size,
                                                        "menu", QF_MIXED_MENU_NAMES, "sensitivity_samples",
                                                        o->sens_samples > 0 ? o->sens_samples : 4));
    if (!o->calibrated) /* the range search RTN ran with (0: each group's full range) */
        json_object_set_new(r, "clip_search", json_pack("{s:i, s:f}", "steps", qf_rtn_clip_steps(o, o->scheme),
                                                        "min_ratio", (double)o->rtn_clip_min));
    if (o->calibrated) {
        const qf_calib_opts *c = &o->calib;
        json_object_set_new(r, "calibration",
                            json_pack("{s:s, s:i, s:i, s:I, s:f, s:b, s:i, s:f}", "data", c->calib_path ? c->calib_path : "bundled",
                                      "samples", c->n_samples, "seqlen", c->seqlen, "seed", (json_int_t)c->seed,
                                      "dampening", c->gptq.percdamp, "act_order", c->gptq.act_order, "block_size",
                                      c->gptq.block_size, "smoothquant_alpha", c->smooth_alpha));
        if (c->rotate != QF_ROTATE_NONE) /* absent without one: the recipe of every other run is unchanged */
            json_object_set_new(r, "rotation", json_pack("{s:s, s:I, s:i}", "kind", qf_rotate_kind_name(c->rotate), "seed",
                                                         (json_int_t)c->rotate_seed, "block", c->rotate_block));
    }
    return r;
}

typedef struct qf_writer_job {
    const qf_convert_opts *o;
    const qf_checkpoint *ck;
    qf_convert_plan *plan;
    const char *tmp;
    json_t *manifest, *journal;
    qf_feed *feed;
    qf_convert_stats *st;
    double seconds;
    qf_status s;
    qf_error err;
} qf_writer_job;

static void *qf_writer_main(void *arg)
{
    qf_writer_job *j = arg;
    const double t0 = qf_now();
    j->s = qf_write_shards(j->o, j->ck, j->plan, j->tmp, j->manifest, j->journal, j->feed, j->st, &j->err);
    j->seconds = qf_now() - t0;
    if (j->s != QF_OK) {
        pthread_mutex_lock(&j->feed->mu);
        j->feed->writer_failed = 1;
        pthread_mutex_unlock(&j->feed->mu);
    }
    return NULL;
}

/* Start the writer thread once (called on the calibrating thread only). */
static int qf_feed_start(qf_feed *f)
{
    if (f->started) return 0;
    if (pthread_create(&f->th, NULL, qf_writer_main, f->job) != 0) return -1;
    f->started = 1;
    return 0;
}

/* Calibrate (this thread) while the writer thread streams the shards; *report is
 * calibration's report.  The first failure wins: the writer's (a full disk) or calibration's. */
static qf_status qf_calibrate_and_write(const qf_convert_opts *o, const qf_checkpoint *ck, qf_convert_plan *plan,
                                        int n_layers, const char *tmp, json_t *manifest, json_t *journal,
                                        qf_convert_stats *st, json_t **report, double *t_weights, qf_error *err)
{
    qf_feed feed = {.plan = plan, .calib = &o->calib, .ctx = o->ctx, .calibrating = 1, .n_layers = n_layers};
    pthread_mutex_init(&feed.mu, NULL);
    pthread_cond_init(&feed.cv, NULL);
    pthread_mutex_init(&feed.log_mu, NULL);
    qf_writer_job job = {o, ck, plan, tmp, manifest, journal, &feed, st, 0, QF_OK, {0}};
    feed.job = &job;
    qf_calib_opts co = o->calib;
    qf_plan_ctx pc = {plan, ck};
    co.scheme = o->scheme;
    co.quantize_module = qf_plan_quantizes;
    co.module_scheme = o->mixed ? qf_plan_module_scheme : NULL;
    co.ctx = &pc;
    co.job = o->ctx;
    co.last_layer = o->layer_last;
    co.max_memory = o->ctx ? o->ctx->max_memory : 0;
    co.sink = qf_feed_sink;
    co.sink_user = &feed;
    char *sdir = qf_path_join(tmp, "calib");
    qf_error cerr = {0};
    qf_status cs = qf_calibrate(o->src, &co, sdir, report, &st->calib_memory, &cerr);
    qf_remove_tree(sdir);
    free(sdir);
    qf_feed_calibrated(&feed, cs);
    if (cs == QF_OK && qf_feed_start(&feed) != 0) /* no layer was handed over */
        cs = qf_fail(&cerr, QF_ERR_NOMEM, "cannot start the shard writer thread");
    if (feed.started) pthread_join(feed.th, NULL);
    *t_weights = job.seconds - feed.seconds_waited; /* the writer's own time, as without calibration */
    pthread_mutex_destroy(&feed.mu);
    pthread_cond_destroy(&feed.cv);
    pthread_mutex_destroy(&feed.log_mu);
    /* a writer that stopped on its own (a full disk) explains calibration's "writer stopped"; a
     * calibration failure explains the writer's "calibration stopped" */
    if (job.s != QF_OK && !feed.cal_failure_seen) {
        *err = job.err;
        return job.s;
    }
    if (cs != QF_OK) *err = cerr;
    return cs;
}

/* Merge: open the parts as one tensor table; recipe and source identity come from the first
 * part's manifest, and every part must have been made by the same recipe.  What the parts'
 * manifests say about their tensors is carried into *carried: "dense_experts" (the union of
 * the parts' lists, each name once) and "source_format" (the first part's; one source, so the
 * same in every part). */
static qf_status qf_open_parts(const qf_convert_opts *o, qf_checkpoint **ck, json_t **recipe, json_t **source,
                               json_t **calibration, json_t **carried, qf_error *err)
{
    *ck = NULL, *recipe = NULL, *source = NULL, *calibration = NULL;
    *carried = json_object();
    json_t *dense = json_array();
    json_object_set_new(*carried, "dense_experts", dense);
    qf_checkpoint **parts = calloc((size_t)o->n_parts, sizeof *parts);
    qf_status s = QF_OK;
    for (int i = 0; i < o->n_parts && s == QF_OK; i++) {
        json_t *m = NULL;
        s = qf_manifest_load(o->merge_parts[i], &m, err);
        if (s) {
            qf_error_prefix(err, "part %s: ", o->merge_parts[i]);
            break;
        }
        json_t *r = json_deep_copy(json_object_get(m, "recipe"));
        if (!json_object_get(r, "layers"))
            s = qf_fail(err, QF_ERR_USAGE, "%s: not a part (it was not written with --layers)", o->merge_parts[i]);
        json_object_del(r, "layers");
        if (s == QF_OK && i == 0) {
            *recipe = json_incref(r);
            *source = json_deep_copy(json_object_get(m, "source"));
        } else if (s == QF_OK && (!json_equal(r, *recipe) || !json_equal(json_object_get(m, "source"), *source)))
            s = qf_fail(err, QF_ERR_USAGE, "%s: made from another source or recipe than %s", o->merge_parts[i],
                        o->merge_parts[0]);
        /* a calibrated slice ran every layer up to its last: the part that reaches the last
         * layer holds the whole model's calibration report */
        json_t *cal = json_object_get(m, "calibration");
        if (s == QF_OK && json_is_object(cal) &&
            (!*calibration || json_array_size(json_object_get(cal, "layers")) >
                                  json_array_size(json_object_get(*calibration, "layers")))) {
            json_decref(*calibration);
            *calibration = json_deep_copy(cal);
        }
        size_t k, j;
        json_t *name, *have;
        json_array_foreach(json_object_get(m, "dense_experts"), k, name) { /* each once (a part may list all) */
            int dup = 0;
            json_array_foreach(dense, j, have) dup |= json_equal(have, name);
            if (!dup) json_array_append(dense, name);
        }
        if (json_is_object(json_object_get(m, "source_format")) && !json_object_get(*carried, "source_format"))
            json_object_set_new(*carried, "source_format", json_deep_copy(json_object_get(m, "source_format")));
        json_decref(r);
        json_decref(m);
        if (s == QF_OK) s = qf_checkpoint_open(o->merge_parts[i], &parts[i], err);
    }
    if (s == QF_OK) s = qf_checkpoint_union(parts, o->n_parts, ck, err);
    for (int i = 0; i < o->n_parts; i++) qf_checkpoint_free(parts[i]);
    free(parts);
    return s;
}

/* Merge: every decoder layer 0..n_layers-1 must be present exactly once. */
static qf_status qf_check_coverage(const qf_checkpoint *ck, const qf_model_config *cfg, qf_error *err)
{
    char *seen = calloc((size_t)cfg->n_layers + 1, 1);
    for (int i = 0; i < ck->n_tensors; i++) {
        int l = qf_tensor_layer(ck->tensors[i].name);
        if (l >= 0 && l < cfg->n_layers) seen[l] = 1;
    }
    int missing = -1;
    for (int l = 0; l < cfg->n_layers && missing < 0; l++)
        if (!seen[l]) missing = l;
    free(seen);
    if (missing >= 0) return qf_fail(err, QF_ERR_USAGE, "decoder layer %d is in none of the parts", missing);
    if (!qf_checkpoint_find(ck, "model.embed_tokens.weight"))
        return qf_fail(err, QF_ERR_USAGE, "no part holds the embeddings: include the part with --layers 0-...");
    return QF_OK;
}

void qf_convert_stats_free(qf_convert_stats *st)
{
    if (!st) return;
    for (int i = 0; i < st->n_dense_experts; i++) free(st->dense_experts[i]);
    free(st->dense_experts);
    st->dense_experts = NULL;
    st->n_dense_experts = 0;
    free(st->mixed_json);
    st->mixed_json = NULL;
}

qf_status qf_convert_run(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err)
{
    memset(st, 0, sizeof *st);
    double t0 = qf_now();
    int merging = o->n_parts > 0;
    if (o->ctx && o->ctx->threads > 0) omp_set_num_threads(o->ctx->threads);
    if (!merging && !o->scheme)
        return qf_fail(err, QF_ERR_USAGE, "no scheme (--target-bits / --target-size take w4a16-asym as the base)");
    if (!merging && o->scheme->needs_calibration && !o->calibrated)
        return qf_fail(err, QF_ERR_USAGE,
                       "scheme %s has static activation scales and needs calibration data (add --calibrate, or use "
                       "--method gptq|awq)",
                       o->scheme->name);
    QF_TRY(qf_output_guard(o, err));

    /* 1. the source: config and tensor table (memory-mapped, never modified) */
    const char *src = merging ? o->merge_parts[0] : o->src;
    qf_model_config cfg;
    char *cpath = qf_path_join(src, "config.json");
    qf_status s = qf_config_load(cpath, &cfg, err);
    free(cpath);
    if (s) return s;
    qf_checkpoint *ck = NULL;
    json_t *recipe = NULL, *source = NULL, *merged_calibration = NULL, *carried = NULL;
    qf_convert_opts mo = *o; /* a merge takes its recipe from the parts */
    if (merging) {
        s = qf_open_parts(o, &ck, &recipe, &source, &merged_calibration, &carried, err);
        if (s == QF_OK) s = qf_check_coverage(ck, &cfg, err);
        if (s == QF_OK) {
            mo.scheme = qf_scheme_find(json_string_value(json_object_get(recipe, "scheme")));
            mo.max_shard_bytes = (uint64_t)json_integer_value(json_object_get(recipe, "max_shard_size"));
            mo.layer_first = mo.layer_last = -1;
            if (!mo.scheme) s = qf_fail(err, QF_ERR_FORMAT, "%s: unknown scheme in the part's recipe", src);
        }
    } else {
        /* an already-quantized source (DeepSeek FP8, GPT-OSS MXFP4, compressed-tensors / ModelOpt
         * FP8) is read as its bf16 dequantization; any other quantized source is refused */
        s = qf_checkpoint_open_source(o->src, &ck, &st->source, err);
        /* calibration reads the source through the model runner, which dequantizes it the same
         * way (model_load.c: FP8 blocks and MXFP4 always, compressed-tensors / ModelOpt FP8 with
         * qf_model_options.float_source, which calibration and --target-bits set) */
        if (s == QF_OK) { /* a config that lies about the shapes would give an artifact engines misread */
            char *cp = qf_path_join(o->src, "config.json");
            s = qf_config_check_shapes(cp, &cfg, ck, err);
            free(cp);
        }
        recipe = qf_recipe_json(o);
    }
    /* 1b. mixed precision: measure each Linear and choose its format before the plan */
    qf_mixed mixed = {0};
    if (s == QF_OK && (o->target_bits > 0 || o->target_size)) {
        if (merging || o->layer_first >= 0 || o->layout != QF_LAYOUT_COMPRESSED_TENSORS || o->calib.rotate != QF_ROTATE_NONE ||
            o->calib.smooth_alpha > 0)
            s = qf_fail(err, QF_ERR_UNSUPPORTED, "--target-bits writes a whole compressed-tensors artifact: not with %s",
                        merging ? "merge" : o->layer_first >= 0 ? "--layers" : o->layout != QF_LAYOUT_COMPRESSED_TENSORS ?
                        "--layout modelopt" : o->calib.rotate != QF_ROTATE_NONE ? "--rotate" : "--smoothquant");
        if (s == QF_OK) s = qf_mixed_choose(o, ck, cfg.model_type, &mixed, err);
        if (s == QF_OK) mo.mixed = &mixed;
    }
    o = &mo;
    if (s) {
        qf_checkpoint_free(ck);
        qf_config_free(&cfg);
        json_decref(recipe);
        json_decref(source);
        json_decref(merged_calibration);
        json_decref(carried);
        return s;
    }
    for (int i = 0; i < ck->n_tensors; i++) st->bytes_in += ck->tensors[i].nbytes;

    /* 2. the plan: what is quantized, output names, shards; the source is hashed meanwhile */
    qf_source_hasher *hasher = NULL;
    json_t *dense_json = NULL;
    if (!merging) s = qf_source_hash_start(ck, &hasher, err);
    qf_convert_plan plan = {0};
    if (s == QF_OK) s = qf_plan_build(o, ck, cfg.model_type, &plan, err);
    /* fused experts kept dense: found by the plan, or (merge) listed by the parts */
    json_t *carried_dense = json_object_get(carried, "dense_experts");
    const int n_dense = merging ? (int)json_array_size(carried_dense) : plan.n_dense_experts;
    if (s == QF_OK && n_dense) { /* said wherever the result is reported */
        json_t *dense = json_array();
        st->dense_experts = calloc((size_t)n_dense, sizeof(char *));
        for (int i = 0; st->dense_experts && i < n_dense; i++) {
            const char *name = merging ? json_string_value(json_array_get(carried_dense, (size_t)i)) : plan.dense_experts[i];
            if (!name) continue;
            st->dense_experts[st->n_dense_experts++] = strdup(name);
            json_array_append_new(dense, json_string(name));
        }
        dense_json = dense;
    }

    /* 3. a temporary folder beside the destination, resumed when its journal is this job's */
    size_t tl = strlen(o->out) + 16;
    char *tmp = malloc(tl);
    snprintf(tmp, tl, "%s.qforge-tmp", o->out);
    char key[QF_HASH_HEX_LEN + 1];
    qf_journal_key(recipe, src, key);
    json_t *journal = qf_path_is_dir(tmp) ? qf_journal_load(tmp, key) : NULL;
    if (s == QF_OK && !journal) {
        qf_remove_tree(tmp);
        s = qf_mkdirs(tmp, err);
        journal = qf_journal_new(key);
    }
    json_t *manifest = qf_manifest_new();
    json_object_set_new(manifest, "recipe", json_incref(recipe));
    if (dense_json) json_object_set_new(manifest, "dense_experts", dense_json);
    if (st->source.kind != QF_QSOURCE_NONE) /* what the weights were read from, said once */
        json_object_set_new(manifest, "source_format",
                            json_pack("{s:s, s:s, s:i}", "format", qf_qsource_name(st->source.kind), "from",
                                      st->source.origin, "dequantized_to_bf16", st->source.n_quantized));
    else if (json_object_get(carried, "source_format")) /* merge: the parts' */
        json_object_set(manifest, "source_format", json_object_get(carried, "source_format"));
    if (merged_calibration) json_object_set_new(manifest, "calibration", merged_calibration);
    if (o->mixed) {
        json_t *mj = qf_mixed_json(o->mixed);
        st->mixed_json = json_dumps(mj, JSON_COMPACT | JSON_SORT_KEYS);
        json_object_set_new(manifest, "mixed_precision", mj);
    }

    /* 3b + 4. weights: quantize and write shard by shard, hashing on the way; calibrated, the
     * writer runs beside calibration (layer by layer on calibration text), whose packed
     * tensors replace RTN's as each layer finishes */
    double tw = qf_now();
    if (s == QF_OK && o->calibrated) {
        json_t *report = NULL;
        s = qf_calibrate_and_write(o, ck, &plan, cfg.n_layers, tmp, manifest, journal, st, &report,
                                   &st->seconds_weights, err);
        if (s == QF_OK) json_object_set_new(manifest, "calibration", report);
        else json_decref(report);
    } else if (s == QF_OK) {
        s = qf_write_shards(o, ck, &plan, tmp, manifest, journal, NULL, st, err);
        st->seconds_weights = qf_now() - tw;
    }

    /* 5. config.json with quantization_config, tokenizer and side files */
    if (s == QF_OK) s = qf_write_side_files(o, &plan, &cfg, src, tmp, manifest, st, err);

    /* 6. provenance, the model card and the sealed manifest; the journal goes once everything is written */
    if (hasher) {
        qf_status hs = qf_source_json(ck, o->src, hasher, &source, s == QF_OK ? err : NULL);
        if (s == QF_OK) s = hs;
    }
    if (s == QF_OK) {
        json_object_set_new(manifest, "source", json_incref(source));
        char *jp = qf_path_join(tmp, QF_JOURNAL_NAME);
        unlink(jp);
        free(jp);
        s = qf_model_card_write(tmp, manifest, err); /* README.md, hashed into the manifest */
        if (s == QF_OK) s = qf_manifest_write(tmp, manifest, err);
    }

    /* 7. into place, atomically */
    if (s == QF_OK && o->force && qf_path_exists(o->out)) qf_remove_tree(o->out);
    if (s == QF_OK && rename(tmp, o->out) != 0)
        s = qf_fail(err, QF_ERR_IO, "cannot rename %s to %s: %s", tmp, o->out, strerror(errno));
    if (s == QF_ERR_INTERRUPTED || s == QF_ERR_IO) {
        if (qf_path_is_dir(tmp)) qf_error_prefix(err, "(work so far kept in %s: run the same command to resume) ", tmp);
    } else if (s != QF_OK) {
        qf_remove_tree(tmp);
    }

    json_decref(journal);
    json_decref(manifest);
    json_decref(recipe);
    json_decref(source);
    json_decref(carried);
    free(tmp);
    qf_plan_free(&plan);
    qf_mixed_free(&mixed);
    qf_checkpoint_free(ck);
    qf_config_free(&cfg);
    st->peak_rss_kb = (long)(qf_mem_rss_peak() / 1024);
    st->seconds = qf_now() - t0;
    if (s != QF_OK) qf_convert_stats_free(st); /* the caller frees only after a success */
    return s;
}
