/* linear_load.c - resolve one Linear module of a checkpoint or artifact (see qf_linear.h).
 *
 * Order of decisions for module "<m>":
 *   1. "<m>.weight_packed" present: packed 4-bit.  I32 words -> int4 (w4a16, asym when
 *      "<m>.weight_zero_point" exists); U8 bytes -> fp4 (E4M3 scales + global scale: nvfp4,
 *      U8/E8M0 scales: mxfp4).  Group size = in_features / weight_scale columns.
 *   2. "<m>.weight" of dtype F8_E4M3 or I8: fp8 / int8 with "<m>.weight_scale" per output
 *      channel ([out] or [out, 1]) or per tensor ([1] / scalar).
 *   3. "<m>.weight" of a float dtype: a float Linear.
 * Activation quantization of a packed Linear comes from the first config group whose targets
 * match the module; without a quantization_config it is inferred from the tensors.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_linear.h"
#include "qf_numfmt.h"

/* ---- small tensor helpers -------------------------------------------------------------- */
static const qf_tensor *qf_lin_find(const qf_checkpoint *ck, const char *name, const char *suffix)
{
    char full[QF_LINEAR_NAME_MAX + 32];
    snprintf(full, sizeof full, "%s.%s", name, suffix);
    return qf_checkpoint_find(ck, full);
}

/* A one-element float tensor (F32 / BF16 / F16) as float; returns 0 when t is not one. */
static int qf_lin_scalar(const qf_tensor *t, float *out)
{
    if (!t || qf_tensor_numel(t) != 1) return 0;
    switch (t->dtype) {
    case QF_DTYPE_F32: memcpy(out, t->data, 4); return 1;
    case QF_DTYPE_BF16: { uint16_t h; memcpy(&h, t->data, 2); *out = qf_bf16_to_f32(h); return 1; }
    case QF_DTYPE_F16: { uint16_t h; memcpy(&h, t->data, 2); *out = qf_f16_to_f32(h); return 1; }
    default: return 0;
    }
}

static int qf_lin_is_scale_dtype(qf_dtype d)
{
    return d == QF_DTYPE_F32 || d == QF_DTYPE_BF16 || d == QF_DTYPE_F16;
}

/* ---- compressed-tensors config groups -------------------------------------------------- */
/* CT target semantics: "Linear" (the class) matches every Linear; "re:<regex>" is Python
 * re.match (anchored at the start) against the module name; otherwise the module name
 * itself or its last components. */
static int qf_lin_target_match(const char *target, const char *name)
{
    if (strcmp(target, "Linear") == 0) return 1;
    if (strncmp(target, "re:", 3) == 0) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)(target + 3), PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
        if (!re) return 0;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        int rc = md ? pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, PCRE2_ANCHORED, md, NULL) : -1;
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        return rc >= 0;
    }
    size_t lt = strlen(target), ln = strlen(name);
    if (strcmp(target, name) == 0) return 1;
    return ln > lt && name[ln - lt - 1] == '.' && strcmp(name + ln - lt, target) == 0;
}

/* input_activations of the first group matching name; *found = 0 when no group matches. */
static const json_t *qf_lin_group_acts(const json_t *qc, const char *name, int *found)
{
    *found = 0;
    const json_t *groups = json_object_get(qc, "config_groups");
    if (!json_is_object(groups)) return NULL;
    const char *key;
    json_t *g;
    json_object_foreach((json_t *)groups, key, g) {
        json_t *targets = json_object_get(g, "targets");
        size_t i;
        json_t *t;
        json_array_foreach(targets, i, t) {
            if (json_is_string(t) && qf_lin_target_match(json_string_value(t), name)) {
                *found = 1;
                return json_object_get(g, "input_activations");
            }
        }
    }
    return NULL;
}

static qf_status qf_lin_act_from_config(const json_t *ia, const char *name, qf_act_quant *act, qf_error *err)
{
    if (!json_is_object(ia)) {
        *act = QF_ACT_NONE;
        return QF_OK;
    }
    /* range-checked before the cast, so 2^32 + 8 is not taken for 8 */
    const json_int_t bits_v = json_integer_value(json_object_get(ia, "num_bits"));
    int bits = bits_v > 0 && bits_v <= 64 ? (int)bits_v : -1;
    const char *type = json_string_value(json_object_get(ia, "type"));
    const char *strategy = json_string_value(json_object_get(ia, "strategy"));
    json_t *dyn = json_object_get(ia, "dynamic");
    int dynamic = json_is_true(dyn) || json_is_string(dyn); /* "local" (nvfp4) counts as dynamic */
    const json_int_t gs_v = json_integer_value(json_object_get(ia, "group_size"));
    int gs = gs_v >= 0 && gs_v <= INT_MAX ? (int)gs_v : -1;
    type = type ? type : "int";
    strategy = strategy ? strategy : "";
    if (bits == 8 && strcmp(type, "float") == 0 && dynamic && strcmp(strategy, "token") == 0)
        *act = QF_ACT_FP8_TOKEN;
    else if (bits == 8 && strcmp(type, "float") == 0 && !dynamic && strcmp(strategy, "tensor") == 0)
        *act = QF_ACT_FP8_STATIC;
    else if (bits == 8 && strcmp(type, "int") == 0 && dynamic && strcmp(strategy, "token") == 0)
        *act = QF_ACT_INT8_TOKEN;
    else if (bits == 4 && strcmp(type, "float") == 0 && gs == 16)
        *act = QF_ACT_NVFP4;
    else
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "%s: input activation quantization (%d-bit %s, strategy '%s', %s) is not supported (per-token "
                       "fp8/int8, static per-tensor fp8, nvfp4 per-16)",
                       name, bits, type, strategy, dynamic ? "dynamic" : "static");
    return QF_OK;
}

/* ---- packed layouts -------------------------------------------------------------------- */
static qf_status qf_lin_packed4(qf_linear *lin, const qf_checkpoint *ck, const char *name, const qf_tensor *wp,
                                qf_error *err)
{
    const qf_tensor *ws = qf_lin_find(ck, name, "weight_scale"), *shape = qf_lin_find(ck, name, "weight_shape");
    if (!ws) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.weight_scale'", ck->dir, name);
    if (wp->ndim != 2 || ws->ndim != 2 || ws->shape[0] != lin->rows || ws->shape[1] <= 0)
        return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_packed' / '.weight_scale' have unexpected shapes", ck->dir,
                       name);
    int per_word = wp->dtype == QF_DTYPE_I32 ? 8 : 2;
    if (shape) {
        if (shape->dtype != QF_DTYPE_I64 || qf_tensor_numel(shape) != 2)
            return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_shape' is not I64 [2]", ck->dir, name);
        int64_t s[2];
        memcpy(s, shape->data, sizeof s);
        if (s[0] != lin->rows || s[1] != lin->cols)
            return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_shape' is [%lld, %lld], expected [%lld, %lld]", ck->dir,
                           name, (long long)s[0], (long long)s[1], (long long)lin->rows, (long long)lin->cols);
    }
    if (wp->shape[0] != lin->rows || wp->shape[1] * per_word != lin->cols) {
        if (wp->dtype == QF_DTYPE_I32 && wp->shape[1] * 4 == lin->cols)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s.weight_packed' holds 8-bit packed ints (only 4-bit is "
                           "supported in pack-quantized)", ck->dir, name);
        return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_packed' is [%lld, %lld], expected [%lld, %lld/%d]", ck->dir,
                       name, (long long)wp->shape[0], (long long)wp->shape[1], (long long)lin->rows,
                       (long long)lin->cols, per_word);
    }
    int64_t ng = ws->shape[1];
    if (lin->cols % ng)
        return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_scale' has %lld groups, which do not divide %lld inputs",
                       ck->dir, name, (long long)ng, (long long)lin->cols);
    int64_t gs = lin->cols / ng;
    lin->packed.weight = wp->data;
    lin->packed.scale = ws->data;
    lin->packed.scale_dtype = ws->dtype;
    lin->packed.global_scale = 1.0f;
    if (wp->dtype == QF_DTYPE_I32) {
        const qf_tensor *zp = qf_lin_find(ck, name, "weight_zero_point");
        if (!qf_lin_is_scale_dtype(ws->dtype))
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s.weight_scale' has dtype %s (int4 scales are F32/BF16/F16)",
                           ck->dir, name, qf_dtype_name(ws->dtype));
        if (gs % 8)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s': int4 group size %lld is not a multiple of 8", ck->dir,
                           name, (long long)gs);
        lin->scheme = *qf_scheme_by_id(zp ? QF_SCHEME_W4A16_ASYM : QF_SCHEME_W4A16);
        if (zp) {
            if (zp->dtype != QF_DTYPE_I32 || zp->ndim != 2 || zp->shape[0] != (lin->rows + 7) / 8 || zp->shape[1] != ng)
                return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_zero_point' is not I32 [%lld, %lld]", ck->dir, name,
                               (long long)((lin->rows + 7) / 8), (long long)ng);
            lin->packed.zero = zp->data;
        }
    } else {
        if (ws->dtype == QF_DTYPE_F8_E4M3) {
            const qf_tensor *gt = qf_lin_find(ck, name, "weight_global_scale");
            if (!gt) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.weight_global_scale'", ck->dir, name);
            if (!qf_lin_scalar(gt, &lin->packed.global_scale) || !(lin->packed.global_scale > 0))
                return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.weight_global_scale' is not one positive float", ck->dir,
                               name);
            lin->scheme = *qf_scheme_by_id(QF_SCHEME_NVFP4A16);
        } else if (ws->dtype == QF_DTYPE_U8 || ws->dtype == QF_DTYPE_F8_E8M0) {
            lin->scheme = *qf_scheme_by_id(QF_SCHEME_MXFP4A16);
        } else {
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s.weight_scale' has dtype %s (fp4 scales are F8_E4M3 or "
                           "E8M0)", ck->dir, name, qf_dtype_name(ws->dtype));
        }
        if (gs % 2) return qf_fail(err, QF_ERR_FORMAT, "%s: '%s': odd fp4 group size", ck->dir, name);
    }
    lin->scheme.group_size = (int)gs;
    return QF_OK;
}

static qf_status qf_lin_packed8(qf_linear *lin, const qf_checkpoint *ck, const char *name, const qf_tensor *w,
                                qf_error *err)
{
    const qf_tensor *ws = qf_lin_find(ck, name, "weight_scale");
    if (!ws) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.weight_scale'", ck->dir, name);
    if (!qf_lin_is_scale_dtype(ws->dtype))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s.weight_scale' has dtype %s", ck->dir, name,
                       qf_dtype_name(ws->dtype));
    uint64_t ns = qf_tensor_numel(ws);
    if (ns != 1 && ns != (uint64_t)lin->rows)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s.weight_scale' has %llu values (per-channel %lld or per-tensor "
                       "1 supported)", ck->dir, name, (unsigned long long)ns, (long long)lin->rows);
    lin->scheme = *qf_scheme_by_id(w->dtype == QF_DTYPE_I8 ? QF_SCHEME_W8A8
                                   : ns == 1                ? QF_SCHEME_FP8
                                                            : QF_SCHEME_FP8_DYNAMIC);
    /* qf_dequant_rows reads a single weight scale when the row's act is static: mark the copy
     * so (lin->act, not scheme.act, is what the forward pass applies). */
    if (ns == 1) lin->scheme.act = QF_ACT_FP8_STATIC;
    lin->packed.weight = w->data;
    lin->packed.scale = ws->data;
    lin->packed.scale_dtype = ws->dtype;
    lin->packed.global_scale = 1.0f;
    return QF_OK;
}

static qf_status qf_lin_act(qf_linear *lin, const qf_checkpoint *ck, const char *name, const json_t *qc,
                            qf_error *err)
{
    const qf_tensor *is = qf_lin_find(ck, name, "input_scale"), *ig = qf_lin_find(ck, name, "input_global_scale");
    int found = 0;
    const json_t *ia = qc ? qf_lin_group_acts(qc, name, &found) : NULL;
    if (found) {
        QF_TRY(qf_lin_act_from_config(ia, name, &lin->act, err));
    } else if (ig) {
        lin->act = QF_ACT_NVFP4;
    } else if (is) {
        lin->act = QF_ACT_FP8_STATIC;
    } else {
        qf_act_quant a = lin->scheme.act;
        lin->act = a == QF_ACT_FP8_TOKEN || a == QF_ACT_INT8_TOKEN ? a : QF_ACT_NONE;
    }
    if (lin->act == QF_ACT_FP8_STATIC) {
        if (!is) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.input_scale'", ck->dir, name);
        if (!qf_lin_scalar(is, &lin->act_scale) || !(lin->act_scale > 0))
            return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.input_scale' is not one positive float", ck->dir, name);
        lin->packed.input_scale = lin->act_scale;
    }
    if (lin->act == QF_ACT_NVFP4) {
        if (!ig) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.input_global_scale'", ck->dir, name);
        if (!qf_lin_scalar(ig, &lin->act_scale) || !(lin->act_scale > 0))
            return qf_fail(err, QF_ERR_FORMAT, "%s: '%s.input_global_scale' is not one positive float", ck->dir, name);
        if (lin->cols % 16)
            return qf_fail(err, QF_ERR_FORMAT, "%s: '%s': nvfp4 activations need in_features %% 16 == 0", ck->dir,
                           name);
        lin->packed.input_scale = 1.0f / lin->act_scale;
        if (lin->scheme.id == QF_SCHEME_NVFP4A16) { /* same storage; the row that names W4A4 */
            int gs = lin->scheme.group_size;
            lin->scheme = *qf_scheme_by_id(QF_SCHEME_NVFP4);
            lin->scheme.group_size = gs;
        }
    }
    lin->act_enabled = lin->act != QF_ACT_NONE;
    return QF_OK;
}

qf_status qf_linear_load(qf_linear *lin, const qf_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                         int with_bias, const json_t *qc, qf_error *err)
{
    memset(lin, 0, sizeof *lin);
    snprintf(lin->name, sizeof lin->name, "%s", name);
    lin->layer = -1;
    lin->expert = -1;
    lin->rows = rows;
    lin->cols = cols;
    const qf_tensor *w = qf_lin_find(ck, name, "weight"), *wp = qf_lin_find(ck, name, "weight_packed");
    qf_status st = QF_OK;
    if (wp) {
        if (wp->dtype != QF_DTYPE_I32 && wp->dtype != QF_DTYPE_U8)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: '%s.weight_packed' has dtype %s (I32 int4 or U8 fp4 expected)",
                           ck->dir, name, qf_dtype_name(wp->dtype));
        lin->kind = QF_LINEAR_PACKED;
        st = qf_lin_packed4(lin, ck, name, wp, err);
    } else if (w) {
        if (w->ndim != 2 || w->shape[0] != rows || w->shape[1] != cols)
            return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s.weight' has shape [%lld, %lld], expected [%lld, %lld]",
                           ck->dir, name, (long long)(w->ndim > 0 ? w->shape[0] : 0),
                           (long long)(w->ndim > 1 ? w->shape[1] : 0), (long long)rows, (long long)cols);
        if (w->dtype == QF_DTYPE_F32 || w->dtype == QF_DTYPE_BF16 || w->dtype == QF_DTYPE_F16) {
            lin->kind = QF_LINEAR_FLOAT;
            lin->weight = w->data;
            lin->wdtype = w->dtype;
        } else if (w->dtype == QF_DTYPE_F8_E4M3 || w->dtype == QF_DTYPE_I8) {
            lin->kind = QF_LINEAR_PACKED;
            st = qf_lin_packed8(lin, ck, name, w, err);
        } else {
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s.weight' has dtype %s, which no supported scheme uses",
                           ck->dir, name, qf_dtype_name(w->dtype));
        }
    } else {
        return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.weight'", ck->dir, name);
    }
    if (st) return st;
    if (lin->kind == QF_LINEAR_PACKED) {
        lin->packed.rows = rows;
        lin->packed.cols = cols;
        lin->packed.scheme = NULL; /* set per call from lin->scheme (the struct may move) */
        QF_TRY(qf_lin_act(lin, ck, name, qc, err));
    }
    const qf_tensor *b = with_bias ? qf_lin_find(ck, name, "bias") : NULL;
    if (with_bias == 1 && !b) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s.bias'", ck->dir, name);
    if (b) {
        if (qf_tensor_numel(b) != (uint64_t)rows || !qf_dtype_is_float(b->dtype) || b->dtype == QF_DTYPE_F64)
            return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s.bias' is not a float vector of %lld", ck->dir, name,
                           (long long)rows);
        lin->bias = malloc((size_t)rows * sizeof(float));
        if (!lin->bias) return qf_fail(err, QF_ERR_NOMEM, "out of memory for '%s.bias'", name);
        for (int64_t i = 0; i < rows; i++) {
            uint16_t h;
            if (b->dtype == QF_DTYPE_F32) memcpy(&lin->bias[i], b->data + 4 * i, 4);
            else if (memcpy(&h, b->data + 2 * i, 2), b->dtype == QF_DTYPE_BF16) lin->bias[i] = qf_bf16_to_f32(h);
            else lin->bias[i] = qf_f16_to_f32(h);
        }
    }
    return QF_OK;
}

void qf_linear_free(qf_linear *lin)
{
    if (!lin) return;
    free(lin->bias);
    memset(lin, 0, sizeof *lin);
}

const char *qf_linear_describe(const qf_linear *lin, char *buf, size_t n)
{
    if (lin->kind == QF_LINEAR_FLOAT) {
        snprintf(buf, n, "%s", lin->wdtype == QF_DTYPE_BF16 ? "bf16" : lin->wdtype == QF_DTYPE_F16 ? "f16" : "f32");
    } else {
        static const char *const acts[] = {"", " +fp8-token act", " +int8-token act", " +fp8-static act",
                                           " +nvfp4 act"};
        char g[24] = " per-channel";
        if (lin->scheme.group_size) snprintf(g, sizeof g, " g%d", lin->scheme.group_size);
        else if (lin->scheme.act == QF_ACT_FP8_STATIC) snprintf(g, sizeof g, " per-tensor"); /* one weight scale */
        snprintf(buf, n, "%s%s%s", lin->scheme.name, g, lin->act_enabled && (int)lin->act < 5 ? acts[lin->act] : "");
    }
    return buf;
}
