/* quant_source_detect.c - what a source checkpoint's quantization is, and which of its tensors
 * go together (see qf_quant_source.h and quant_source_pair.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "quant_source_pair.h"

const char *qf_qsource_name(qf_qsource_kind k)
{
    switch (k) {
    case QF_QSOURCE_FP8_BLOCK: return "fp8-block";
    case QF_QSOURCE_MXFP4: return "mxfp4";
    case QF_QSOURCE_CT_FP8: return "compressed-tensors-fp8";
    case QF_QSOURCE_MODELOPT_FP8: return "modelopt-fp8";
    default: return "none";
    }
}

static int qf_qs_ends(const char *s, const char *suffix)
{
    size_t l = strlen(s), k = strlen(suffix);
    return l >= k && strcmp(s + l - k, suffix) == 0;
}

/* Activation and KV-cache scales: meaningless for float weights, dropped in every quantized source. */
static int qf_qs_act_scale(const char *name)
{
    return qf_qs_ends(name, ".input_scale") || qf_qs_ends(name, ".activation_scale") || qf_qs_ends(name, ".k_scale") ||
           qf_qs_ends(name, ".v_scale");
}

/* A tensor that only a quantized checkpoint holds: never passed through as if it were a weight. */
static int qf_qs_looks_quantized(const qf_tensor *t)
{
    static const char *const suffixes[] = {".weight_scale_inv", ".weight_scale", ".weight_packed", ".weight_zero_point",
                                           ".weight_global_scale", ".weight_scale_2", ".input_scale",
                                           ".input_global_scale"};
    if (t->dtype == QF_DTYPE_F8_E4M3 || t->dtype == QF_DTYPE_F8_E5M2 || t->dtype == QF_DTYPE_F8_E8M0 ||
        t->dtype == QF_DTYPE_F4)
        return 1;
    /* MXFP4 blocks and exponents are bytes; a float parameter that happens to end so is a weight */
    if (t->dtype == QF_DTYPE_U8 && (qf_qs_ends(t->name, "_blocks") || qf_qs_ends(t->name, "_scales"))) return 1;
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (qf_qs_ends(t->name, suffixes[i])) return 1;
    return 0;
}

/* ---- the config ------------------------------------------------------------------------- */

/* weights of one compressed-tensors group: float, 8 bits, per tensor / channel / block. */
static qf_status qf_qs_ct_group(const char *path, const char *g, json_t *w, qf_qsource *q, qf_error *err)
{
    json_t *ty = json_object_get(w, "type"), *nb = json_object_get(w, "num_bits"), *st = json_object_get(w, "strategy");
    const char *type = json_is_string(ty) ? json_string_value(ty) : "?";
    const char *strat = json_is_string(st) ? json_string_value(st) : "?";
    if (strcmp(type, "float") != 0 || json_integer_value(nb) != 8)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: quantization_config.config_groups.%s.weights is %s %lld-bit: qforge "
                       "reads compressed-tensors sources with float 8-bit weights only", path, g, type,
                       (long long)json_integer_value(nb));
    if (strcmp(strat, "block") == 0) {
        json_t *bs = json_object_get(w, "block_structure");
        if (!json_is_array(bs) || json_array_size(bs) != 2 || json_integer_value(json_array_get(bs, 0)) <= 0 ||
            json_integer_value(json_array_get(bs, 1)) <= 0)
            return qf_fail(err, QF_ERR_FORMAT, "%s: quantization_config.config_groups.%s.weights.block_structure is not "
                           "[rows, cols]", path, g);
        q->block_rows = (int)json_integer_value(json_array_get(bs, 0));
        q->block_cols = (int)json_integer_value(json_array_get(bs, 1));
    } else if (strcmp(strat, "tensor") != 0 && strcmp(strat, "channel") != 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: quantization_config.config_groups.%s.weights.strategy '%s' is not "
                       "read (tensor, channel, block)", path, g, strat);
    return QF_OK;
}

static qf_status qf_qs_from_config(const char *path, json_t *qc, qf_qsource *q, qf_error *err)
{
    json_t *m = json_object_get(qc, "quant_method");
    if (!json_is_string(m))
        return qf_fail(err, QF_ERR_FORMAT, "%s: quantization_config has no quant_method string", path);
    const char *method = json_string_value(m);
    snprintf(q->origin, sizeof q->origin, "config.json quantization_config.quant_method \"%.40s\"", method);
    if (strcmp(method, "fp8") == 0) {
        q->kind = QF_QSOURCE_FP8_BLOCK;
        q->block_rows = q->block_cols = 128; /* transformers' FineGrainedFP8Config default */
        json_t *bs = json_object_get(qc, "weight_block_size");
        if (json_is_null(bs)) q->block_rows = q->block_cols = 0; /* null: one scale per tensor */
        else if (bs) {
            if (!json_is_array(bs) || json_array_size(bs) != 2 || json_integer_value(json_array_get(bs, 0)) <= 0 ||
                json_integer_value(json_array_get(bs, 1)) <= 0)
                return qf_fail(err, QF_ERR_FORMAT, "%s: quantization_config.weight_block_size is not [rows, cols]", path);
            q->block_rows = (int)json_integer_value(json_array_get(bs, 0));
            q->block_cols = (int)json_integer_value(json_array_get(bs, 1));
        }
        return QF_OK;
    }
    if (strcmp(method, "mxfp4") == 0) {
        q->kind = QF_QSOURCE_MXFP4;
        return QF_OK;
    }
    if (strcmp(method, "compressed-tensors") == 0) {
        json_t *groups = json_object_get(qc, "config_groups");
        if (!json_is_object(groups) || !json_object_size(groups))
            return qf_fail(err, QF_ERR_FORMAT, "%s: quantization_config.config_groups is missing or empty", path);
        const char *g;
        json_t *gv;
        json_object_foreach(groups, g, gv)
        {
            json_t *w = json_object_get(gv, "weights");
            if (!json_is_object(w))
                return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: quantization_config.config_groups.%s has no weights "
                               "quantization (activation-only schemes are not read)", path, g);
            QF_TRY(qf_qs_ct_group(path, g, w, q, err));
        }
        q->kind = QF_QSOURCE_CT_FP8;
        return QF_OK;
    }
    if (strcmp(method, "modelopt") == 0) {
        json_t *a = json_object_get(qc, "quant_algo");
        const char *algo = json_is_string(a) ? json_string_value(a) : "?";
        if (strcmp(algo, "FP8") != 0 && strcmp(algo, "FP8_PER_CHANNEL_PER_TOKEN") != 0)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: quantization_config.quant_algo '%.40s' is not read (ModelOpt FP8, "
                           "FP8_PER_CHANNEL_PER_TOKEN)", path, algo);
        q->kind = QF_QSOURCE_MODELOPT_FP8;
        return QF_OK;
    }
    return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: quantization_config.quant_method '%.40s' is not a source qforge reads "
                   "(fp8, mxfp4, compressed-tensors fp8, modelopt FP8)", path, method);
}

/* ModelOpt's own record, when config.json says nothing: {"quantization": {"quant_algo": ...}}. */
static qf_status qf_qs_from_hf_quant(const char *path, qf_qsource *q, qf_error *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) return qf_fail(err, QF_ERR_FORMAT, "%s: not valid JSON at line %d: %s", path, je.line, je.text);
    json_t *a = json_object_get(json_object_get(root, "quantization"), "quant_algo");
    const char *algo = json_is_string(a) ? json_string_value(a) : NULL;
    qf_status s = QF_OK;
    if (!algo || (strcmp(algo, "FP8") != 0 && strcmp(algo, "FP8_PER_CHANNEL_PER_TOKEN") != 0))
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: quantization.quant_algo '%.40s' is not read (ModelOpt FP8, "
                    "FP8_PER_CHANNEL_PER_TOKEN)", path, algo ? algo : "(missing)");
    else {
        q->kind = QF_QSOURCE_MODELOPT_FP8;
        snprintf(q->origin, sizeof q->origin, "hf_quant_config.json quantization.quant_algo \"%s\"", algo);
    }
    json_decref(root);
    return s;
}

/* ---- the tensors ------------------------------------------------------------------------ */

static char *qf_qs_swap_suffix(const char *name, const char *from, const char *to)
{
    size_t l = strlen(name) - strlen(from), k = strlen(to);
    char *s = malloc(l + k + 1);
    if (!s) return NULL;
    memcpy(s, name, l);
    memcpy(s + l, to, k + 1);
    return s;
}

static int qf_qs_float_scale(qf_dtype d, int e8m0_ok)
{
    return d == QF_DTYPE_F32 || d == QF_DTYPE_BF16 || d == QF_DTYPE_F16 ||
           (e8m0_ok && (d == QF_DTYPE_F8_E8M0 || d == QF_DTYPE_U8));
}

/* An F8_E4M3 weight: its scale companion and the grid that maps elements to scales. */
static qf_status qf_qs_fp8_pair(const char *dir, const qf_checkpoint *ck, const qf_qsource *q, const qf_tensor *t,
                                qf_qs_pair *p, qf_error *err)
{
    const int blockwise = q->kind == QF_QSOURCE_FP8_BLOCK;
    const char *suffix = blockwise ? "_scale_inv" : "_scale";
    char *sname = malloc(strlen(t->name) + 16);
    if (!sname) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    sprintf(sname, "%s%s", t->name, suffix); /* "X.weight" -> "X.weight_scale_inv" */
    p->scale = qf_checkpoint_find(ck, sname);
    qf_status s = QF_OK;
    if (t->ndim < 2)
        s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is F8_E4M3 but %d-D: a quantized weight is [.., rows, cols]", dir,
                    t->name, t->ndim);
    else if (!p->scale)
        s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is F8_E4M3 but '%s' is missing (%s source)", dir, t->name, sname,
                    qf_qsource_name(q->kind));
    else if (!qf_qs_float_scale(p->scale->dtype, blockwise))
        s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is %s: a scale must be F32, BF16 or F16", dir, sname,
                    qf_dtype_name(p->scale->dtype));
    free(sname);
    if (s) return s;
    p->rows = t->shape[t->ndim - 2], p->cols = t->shape[t->ndim - 1];
    p->lead = 1;
    for (int d = 0; d < t->ndim - 2; d++) p->lead *= t->shape[d];
    const qf_tensor *sc = p->scale;
    const uint64_t sn = qf_tensor_numel(sc);
    if (sn == 1 && p->lead == 1 && (!blockwise || q->block_rows == 0)) { /* per tensor */
        p->bn = p->rows, p->bk = p->cols;
    } else if (!blockwise && sn == (uint64_t)(p->lead * p->rows) && (sc->ndim == t->ndim - 1 || sc->shape[sc->ndim - 1] == 1)) {
        p->bn = 1, p->bk = p->cols; /* per output channel: [.., rows] or [.., rows, 1] */
    } else if (blockwise || q->block_rows > 0) {
        p->bn = q->block_rows, p->bk = q->block_cols;
    } else
        p->bn = 0;
    const int64_t gr = p->bn ? (p->rows + p->bn - 1) / p->bn : 0, gc = p->bn ? (p->cols + p->bk - 1) / p->bk : 0;
    int ok = p->bn > 0 && sn == (uint64_t)(p->lead * gr * gc);
    if (ok && p->bn != p->rows && p->bn != 1) /* a block grid: [.., ceil(R/bn), ceil(C/bk)] exactly */
        ok = sc->ndim == t->ndim && sc->shape[sc->ndim - 2] == gr && sc->shape[sc->ndim - 1] == gc;
    if (!ok)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' has %llu scales, which fit no %s grid of '%s' [%lld, %lld]%s",
                       dir, sc->name, (unsigned long long)sn, qf_qsource_name(q->kind), t->name, (long long)p->rows,
                       (long long)p->cols, blockwise ? " (weight_block_size)" : "");
    p->q = t;
    p->out_name = strdup(t->name);
    p->ndim = t->ndim;
    memcpy(p->shape, t->shape, sizeof p->shape);
    return p->out_name ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "out of memory");
}

/* GPT-OSS: P_blocks U8 [E, N, G, 16] + P_scales U8 [E, N, G] -> P [E, 32G, N]. */
static qf_status qf_qs_mxfp4_pair(const char *dir, const qf_checkpoint *ck, const qf_tensor *t, qf_qs_pair *p,
                                  qf_error *err)
{
    char *sname = qf_qs_swap_suffix(t->name, "_blocks", "_scales");
    if (!sname) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    p->scale = qf_checkpoint_find(ck, sname);
    qf_status s = QF_OK;
    if (t->dtype != QF_DTYPE_U8 || t->ndim != 4 || t->shape[3] != 16)
        s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is %d-D %s: MXFP4 blocks are U8 [experts, rows, groups, 16]", dir,
                    t->name, t->ndim, qf_dtype_name(t->dtype));
    else if (!p->scale)
        s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' has no '%s' (mxfp4 source)", dir, t->name, sname);
    else if (p->scale->dtype != QF_DTYPE_U8 || p->scale->ndim != 3 || p->scale->shape[0] != t->shape[0] ||
             p->scale->shape[1] != t->shape[1] || p->scale->shape[2] != t->shape[2])
        s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' must be U8 [%lld, %lld, %lld], one E8M0 exponent per 32 values of "
                    "'%s'", dir, sname, (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2], t->name);
    free(sname);
    if (s) return s;
    p->q = t;
    p->lead = t->shape[0];
    p->rows = t->shape[1];
    p->cols = t->shape[2] * 32;
    p->out_name = qf_qs_swap_suffix(t->name, "_blocks", "");
    p->ndim = 3;
    p->shape[0] = t->shape[0], p->shape[1] = p->cols, p->shape[2] = p->rows;
    return p->out_name ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "out of memory");
}

/* Whether name is the scale companion of a quantized tensor of q's kind. */
static int qf_qs_is_companion(const qf_checkpoint *ck, const qf_qsource *q, const char *name)
{
    const char *suffix = q->kind == QF_QSOURCE_MXFP4 ? "_scales" : q->kind == QF_QSOURCE_FP8_BLOCK ? "_scale_inv" : "_scale";
    if (!qf_qs_ends(name, suffix)) return 0;
    char *base = qf_qs_swap_suffix(name, suffix, q->kind == QF_QSOURCE_MXFP4 ? "_blocks" : "");
    const qf_tensor *b = base ? qf_checkpoint_find(ck, base) : NULL;
    free(base);
    return b && (q->kind == QF_QSOURCE_MXFP4 ? b->dtype == QF_DTYPE_U8 : b->dtype == QF_DTYPE_F8_E4M3);
}

qf_status qf_qs_classify(const char *dir, const qf_checkpoint *ck, const qf_qsource *q, int i, qf_qs_role *role,
                         qf_qs_pair *pair, qf_error *err)
{
    const qf_tensor *t = &ck->tensors[i];
    memset(pair, 0, sizeof *pair);
    *role = QF_QS_PLAIN;
    if (q->kind == QF_QSOURCE_MXFP4 && qf_qs_ends(t->name, "_blocks")) {
        *role = QF_QS_PRIMARY;
        return qf_qs_mxfp4_pair(dir, ck, t, pair, err);
    }
    if (q->kind != QF_QSOURCE_NONE && q->kind != QF_QSOURCE_MXFP4 && t->dtype == QF_DTYPE_F8_E4M3) {
        *role = QF_QS_PRIMARY;
        return qf_qs_fp8_pair(dir, ck, q, t, pair, err);
    }
    if (q->kind != QF_QSOURCE_NONE && (qf_qs_act_scale(t->name) || qf_qs_is_companion(ck, q, t->name))) {
        *role = QF_QS_COMPANION;
        return QF_OK;
    }
    if (qf_qs_looks_quantized(t)) {
        if (q->kind == QF_QSOURCE_NONE)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s' (%s) is quantized but config.json declares no "
                           "quantization_config: qforge cannot tell how to read it", dir, t->name, qf_dtype_name(t->dtype));
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' (%s) is quantized in a way the %s source (%s) does not "
                       "explain", dir, t->name, qf_dtype_name(t->dtype), qf_qsource_name(q->kind), q->origin);
    }
    return QF_OK;
}

qf_status qf_qsource_detect(const char *dir, const qf_checkpoint *ck, qf_qsource *q, qf_error *err)
{
    memset(q, 0, sizeof *q);
    snprintf(q->origin, sizeof q->origin, "no quantization_config");
    char *cpath = qf_path_join(dir, "config.json"), *hpath = qf_path_join(dir, "hf_quant_config.json");
    qf_status s = QF_OK;
    json_t *root = NULL;
    if (qf_path_exists(cpath)) {
        json_error_t je;
        root = json_load_file(cpath, JSON_REJECT_DUPLICATES, &je);
        if (!root) s = qf_fail(err, QF_ERR_FORMAT, "%s: not valid JSON at line %d: %s", cpath, je.line, je.text);
    }
    json_t *qc = json_object_get(root, "quantization_config");
    if (s == QF_OK && qc && !json_is_null(qc)) {
        if (!json_is_object(qc)) s = qf_fail(err, QF_ERR_FORMAT, "%s: quantization_config is not an object", cpath);
        else s = qf_qs_from_config(cpath, qc, q, err);
    } else if (s == QF_OK && qf_path_exists(hpath)) {
        s = qf_qs_from_hf_quant(hpath, q, err);
    }
    json_decref(root);
    free(cpath);
    free(hpath);
    for (int i = 0; s == QF_OK && i < ck->n_tensors; i++) {
        qf_qs_role role;
        qf_qs_pair pair;
        s = qf_qs_classify(dir, ck, q, i, &role, &pair, err);
        free(pair.out_name);
        q->n_quantized += role == QF_QS_PRIMARY;
        q->n_dropped += role == QF_QS_COMPANION;
    }
    if (s == QF_OK && q->kind != QF_QSOURCE_NONE && q->n_quantized == 0)
        s = qf_fail(err, QF_ERR_FORMAT, "%s: %s declares a %s source but no tensor is quantized that way", dir, q->origin,
                    qf_qsource_name(q->kind));
    return s;
}
