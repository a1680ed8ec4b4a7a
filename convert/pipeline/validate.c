/* validate.c - the measurement behind `qforge validate` (see qf_validate.h). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_model.h"
#include "qf_progress.h"
#include "qf_tokenizer.h"
#include "qf_validate.h"

#define QF_VALIDATE_MAX_TEXT (1ull << 30)

/* Tokenize the whole text file with dir/tokenizer.json. */
static qf_status qf_validate_tokens(const qf_validate_opts *o, int32_t **ids, size_t *n, qf_hash128 *text_hash,
                                    qf_error *err)
{
    char *text = NULL;
    size_t len = 0;
    QF_TRY(qf_file_read_all(o->text, QF_VALIDATE_MAX_TEXT, &text, &len, err));
    *text_hash = qf_hash_bytes(text, len);
    if (len == 0) {
        free(text);
        return qf_fail(err, QF_ERR_USAGE, "%s: the text is empty", o->text);
    }
    char *tok_path = qf_path_join(o->base, "tokenizer.json");
    qf_tokenizer *tok = NULL;
    qf_status st = tok_path ? qf_tokenizer_load(tok_path, &tok, err) : qf_fail(err, QF_ERR_NOMEM, "out of memory");
    free(tok_path);
    if (!st) st = qf_tokenizer_encode(tok, text, len, ids, n, err);
    qf_tokenizer_free(tok);
    free(text);
    return st;
}

qf_status qf_validate(const qf_validate_opts *o, qf_validate_result *res, qf_error *err)
{
    memset(res, 0, sizeof *res);
    if (o->ctx && o->ctx->threads > 0) omp_set_num_threads(o->ctx->threads);
    qf_model *base = NULL, *quant = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *lb = NULL, *lq = NULL;
    qf_eval ev = {0};
    qf_model_options mo;
    qf_model_options_default(&mo);
    mo.act_quant = o->act_quant;
    const int W = o->window;
    /* 1. base model, text, windows */
    qf_status st = qf_model_load(o->base, &mo, &base, err);
    if (!st) st = qf_validate_tokens(o, &ids, &n_ids, &res->text_hash, err);
    int64_t windows = st ? 0 : qf_eval_window_count((int64_t)n_ids, W, o->chunks);
    if (!st && windows == 0)
        st = qf_fail(err, QF_ERR_USAGE, "%s: %zu tokens, fewer than one window of %d (use a longer text or a smaller "
                     "--ctx)", o->text, n_ids, W);
    for (size_t i = 0; !st && i < (size_t)windows * (size_t)W; i++)
        if (ids[i] >= base->vocab_in)
            st = qf_fail(err, QF_ERR_USAGE, "%s: tokenizer id %d is outside the model's vocabulary (%lld)", o->base,
                         ids[i], (long long)base->vocab_in);
    /* 2. the artifact */
    if (!st && o->quant) st = qf_model_load(o->quant, &mo, &quant, err);
    if (!st && quant && (quant->vocab_out != base->vocab_out || quant->cfg.vocab_size != base->cfg.vocab_size))
        st = qf_fail(err, QF_ERR_USAGE, "vocabulary sizes differ: base %s has %lld (config %d), artifact %s has %lld "
                     "(config %d)", o->base, (long long)base->vocab_out, base->cfg.vocab_size, o->quant,
                     (long long)quant->vocab_out, quant->cfg.vocab_size);
    const int64_t V = st ? 0 : base->vocab_out;
    if (!st) st = qf_eval_init(&ev, W, V, windows, quant != NULL, err);
    if (!st) {
        lb = malloc((size_t)W * (size_t)V * sizeof(float));
        lq = quant ? malloc((size_t)W * (size_t)V * sizeof(float)) : NULL;
        if (!lb || (quant && !lq)) st = qf_fail(err, QF_ERR_NOMEM, "out of memory for logits (%d x %lld)", W, (long long)V);
    }
    if (st) goto done;
    qf_ctx_log(o->ctx, "validate", "qforge validate: %s: %zu tokens, %lld windows of %d (%lld scored), %d threads",
               qf_path_base(o->text), n_ids, (long long)windows, W, (long long)windows * (W - 1), omp_get_max_threads());
    /* say so when a sliding window shapes the numbers (the same model with full attention
     * scores differently once the window exceeds the attention window) */
    int n_win = 0, win = 0;
    for (int l = 0; l < base->cfg.n_layers; l++)
        if (base->layers[l].attn_window > 0) {
            n_win++;
            win = base->layers[l].attn_window;
        }
    if (n_win)
        qf_ctx_log(o->ctx, "validate", "qforge validate: sliding-window attention on %d of %d layers: a token sees the "
                   "last %d (--ctx %d)", n_win, base->cfg.n_layers, win, W);
    if (quant && quant->n_linear_packed && o->ctx && o->ctx->progress) {
        int cnt = qf_model_linears(quant, NULL, 0), any_act = 0, shown = 0;
        qf_linear **all = malloc((size_t)cnt * sizeof *all);
        char d[96] = "";
        if (all) {
            qf_model_linears(quant, all, cnt);
            for (int i = 0; i < cnt; i++) {
                if (all[i]->kind != QF_LINEAR_PACKED) continue;
                any_act |= all[i]->act != QF_ACT_NONE;
                if (!shown++) qf_linear_describe(all[i], d, sizeof d);
            }
            free(all);
        }
        qf_ctx_log(o->ctx, "validate", "qforge validate: artifact %s: %d of %d Linear layers packed (%s); activation "
                   "quantization: %s", o->quant, quant->n_linear_packed, cnt, d,
                   !any_act ? "none (weight-only)" : o->act_quant ? "emulated" : "off (--act-quant off)");
    }
    /* 3. window by window: base, then quant against the base log-probs */
    qf_progress prog;
    qf_progress_begin_ctx(&prog, o->ctx, "validate", (uint64_t)windows * (uint64_t)W);
    double t0 = qf_now();
    for (int64_t w = 0; w < windows && !st; w++) {
        if (qf_ctx_cancelled(o->ctx)) {
            st = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted after %lld of %lld windows", (long long)w, (long long)windows);
            break;
        }
        const int32_t *wid = ids + w * W;
        st = qf_model_forward(base, wid, W, lb, err);
        if (!st) qf_eval_add_base(&ev, wid, lb);
        if (!st && quant) st = qf_model_forward(quant, wid, W, lq, err);
        if (!st && quant) qf_eval_add_quant(&ev, wid, lb, lq);
        qf_progress_add(&prog, (uint64_t)W);
    }
    qf_progress_end(&prog);
    res->seconds = qf_now() - t0;
    res->tokens_per_s = res->seconds > 0 ? (double)windows * W / res->seconds : 0;
    res->windows = windows;
    res->n_tokens = n_ids;
    res->threads = omp_get_max_threads();
    if (!st) st = qf_eval_finish(&ev, &res->r, err);
done:
    free(lb);
    free(lq);
    free(ids);
    qf_eval_free(&ev);
    qf_model_free(quant);
    qf_model_free(base);
    return st;
}
