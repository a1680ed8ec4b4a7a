/* qf_modelopt.c - ModelOpt layout: plans, re-layout from compressed-tensors, the JSON
 * records, and the reference decoder (see qf_modelopt.h). */
#include <string.h>

#include "qf_modelopt.h"
#include "qf_fmt.h"
#include "qf_version.h"

static void qf_mo_add(qf_quant_plan *p, qf_packed_role role, const char *suffix, qf_dtype dt, int ndim, int64_t d0,
                      int64_t d1)
{
    qf_packed_tensor *t = &p->t[p->n++];
    t->role = role;
    t->suffix = suffix;
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = ndim > 0 ? d0 : 0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    uint64_t numel = ndim == 0 ? 1 : (uint64_t)d0 * (uint64_t)(ndim > 1 ? d1 : 1);
    t->nbytes = numel * (uint64_t)qf_dtype_bits(dt) / 8;
}

static qf_status qf_mo_unsupported(const qf_scheme *s, qf_error *err)
{
    const char *why = s->id == QF_SCHEME_W8A8 ? "ModelOpt's W8A8_SQ_PER_CHANNEL needs static activation scales"
                      : s->id == QF_SCHEME_W4A16_ASYM ? "ModelOpt's W4A16_AWQ has no zero points"
                                                       : "ModelOpt has no weight-only form of it";
    return qf_fail(err, QF_ERR_UNSUPPORTED, "scheme %s has no ModelOpt layout (%s); use --layout compressed-tensors",
                   s->name, why);
}

qf_status qf_modelopt_plan(const qf_scheme *s, qf_dtype src_dtype, int64_t rows, int64_t cols, qf_quant_plan *out,
                           qf_error *err)
{
    memset(out, 0, sizeof *out);
    if (!qf_scheme_fits(s, rows, cols))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "shape [%lld, %lld] does not fit scheme %s", (long long)rows,
                       (long long)cols, s->name);
    switch (s->id) {
    case QF_SCHEME_FP8_DYNAMIC:
        qf_mo_add(out, QF_ROLE_WEIGHT, "weight", QF_DTYPE_F8_E4M3, 2, rows, cols);
        qf_mo_add(out, QF_ROLE_SCALE, "weight_scale", QF_DTYPE_F32, 1, rows, 0);
        return QF_OK;
    case QF_SCHEME_FP8:
        qf_mo_add(out, QF_ROLE_WEIGHT, "weight", QF_DTYPE_F8_E4M3, 2, rows, cols);
        qf_mo_add(out, QF_ROLE_SCALE, "weight_scale", QF_DTYPE_F32, 0, 0, 0);
        qf_mo_add(out, QF_ROLE_INPUT_SCALE, "input_scale", QF_DTYPE_F32, 0, 0, 0);
        return QF_OK;
    case QF_SCHEME_NVFP4A16:
    case QF_SCHEME_NVFP4:
        qf_mo_add(out, QF_ROLE_WEIGHT, "weight", QF_DTYPE_U8, 2, rows, cols / 2);
        qf_mo_add(out, QF_ROLE_SCALE, "weight_scale", QF_DTYPE_F8_E4M3, 2, rows, cols / s->group_size);
        qf_mo_add(out, QF_ROLE_GLOBAL, "weight_scale_2", QF_DTYPE_F32, 0, 0, 0);
        if (s->act == QF_ACT_NVFP4) qf_mo_add(out, QF_ROLE_INPUT_SCALE, "input_scale", QF_DTYPE_F32, 0, 0, 0);
        return QF_OK;
    case QF_SCHEME_W4A16:
        if (rows % 2)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "W4A16_AWQ packs pairs of rows: %lld rows is odd", (long long)rows);
        if (src_dtype != QF_DTYPE_BF16 && src_dtype != QF_DTYPE_F16 && src_dtype != QF_DTYPE_F32) src_dtype = QF_DTYPE_F16;
        qf_mo_add(out, QF_ROLE_WEIGHT, "weight", QF_DTYPE_U8, 2, rows / 2, cols);
        qf_mo_add(out, QF_ROLE_SCALE, "weight_scale", QF_DTYPE_F32, 2, rows, cols / s->group_size);
        qf_mo_add(out, QF_ROLE_PRE_QUANT_SCALE, "pre_quant_scale", src_dtype, 1, cols, 0);
        return QF_OK;
    default:
        return qf_mo_unsupported(s, err);
    }
}

static const void *qf_ct_part(const qf_quant_plan *p, const qf_quant_buffers *b, qf_packed_role role, qf_dtype *dt)
{
    int i = qf_quant_plan_find(p, role);
    if (i < 0) return NULL;
    if (dt) *dt = p->t[i].dtype;
    return b->data[i];
}

static void *qf_mo_part(const qf_quant_plan *p, qf_quant_buffers *b, qf_packed_role role, uint64_t *nbytes)
{
    for (int i = 0; i < p->n; i++)
        if (p->t[i].role == role) {
            if (nbytes) *nbytes = p->t[i].nbytes;
            return b->data[i];
        }
    return NULL;
}

static float qf_mo_load_scale(const void *p, qf_dtype dt, int64_t i)
{
    switch (dt) {
    case QF_DTYPE_F32: return ((const float *)p)[i];
    case QF_DTYPE_BF16: return qf_bf16_to_f32(((const uint16_t *)p)[i]);
    case QF_DTYPE_F16: return qf_f16_to_f32(((const uint16_t *)p)[i]);
    default: return 0.0f;
    }
}

qf_status qf_modelopt_relayout(const qf_scheme *s, int64_t rows, int64_t cols, const qf_quant_plan *ct,
                               const qf_quant_buffers *ct_buf, const qf_quant_plan *mo, qf_quant_buffers *mo_buf,
                               qf_error *err)
{
    qf_dtype sdt = QF_DTYPE_INVALID;
    const void *w = qf_ct_part(ct, ct_buf, QF_ROLE_WEIGHT, NULL), *sc = qf_ct_part(ct, ct_buf, QF_ROLE_SCALE, &sdt);
    qf_dtype isdt = QF_DTYPE_INVALID;
    const void *gs = qf_ct_part(ct, ct_buf, QF_ROLE_GLOBAL, NULL), *is = qf_ct_part(ct, ct_buf, QF_ROLE_INPUT_SCALE, &isdt);
    uint64_t n_w = 0, n_s = 0;
    void *ow = qf_mo_part(mo, mo_buf, QF_ROLE_WEIGHT, &n_w), *os = qf_mo_part(mo, mo_buf, QF_ROLE_SCALE, &n_s);
    if (!w || !sc || !ow || !os)
        return qf_fail(err, QF_ERR_USAGE, "ModelOpt re-layout of a %s Linear: plans do not match", s->name);
    void *og = qf_mo_part(mo, mo_buf, QF_ROLE_GLOBAL, NULL), *oi = qf_mo_part(mo, mo_buf, QF_ROLE_INPUT_SCALE, NULL);
    switch (s->id) {
    case QF_SCHEME_FP8_DYNAMIC:
    case QF_SCHEME_FP8:
    case QF_SCHEME_NVFP4A16:
    case QF_SCHEME_NVFP4:
        /* codes and block scales: the same bytes under ModelOpt names and shapes */
        memcpy(ow, w, n_w);
        if (s->value == QF_VALUE_FP8_E4M3) { /* CT: BF16 (llm-compressor's dtype); ModelOpt: F32, widened exactly */
            for (uint64_t i = 0; i < n_s / 4; i++) ((float *)os)[i] = qf_mo_load_scale(sc, sdt, (int64_t)i);
        } else {
            memcpy(os, sc, n_s);
        }
        if (og) { /* weight_scale_2 = 1 / weight_global_scale */
            float g;
            memcpy(&g, gs, 4);
            float r = 1.0f / g;
            memcpy(og, &r, 4);
        }
        if (oi && is) {
            float x = qf_mo_load_scale(is, isdt, 0); /* CT fp8: BF16; nvfp4 input_global_scale: F32 */
            if (s->has_global_scale) x = x > 0 ? 1.0f / x : 0.0f; /* input_scale = 1 / input_global_scale */
            memcpy(oi, &x, 4);
        }
        return QF_OK;
    case QF_SCHEME_W4A16: {
        /* CT: word (r, j) holds columns 8j..8j+7 as q + 8; ModelOpt: byte (r/2, c) holds rows 2r', 2r'+1 */
        const uint32_t *cw = w;
        uint8_t *mw = ow;
        for (int64_t r2 = 0; r2 < rows / 2; r2++)
            for (int64_t c = 0; c < cols; c++) {
                uint32_t lo = (cw[(2 * r2) * (cols / 8) + c / 8] >> (4 * (c % 8))) & 15u;
                uint32_t hi = (cw[(2 * r2 + 1) * (cols / 8) + c / 8] >> (4 * (c % 8))) & 15u;
                /* q + 8 -> q as a two's-complement nibble: flip the top bit */
                mw[r2 * cols + c] = (uint8_t)(((lo ^ 8u) & 15u) | (((hi ^ 8u) & 15u) << 4));
            }
        int64_t ng = cols / s->group_size;
        float *ms = os;
        for (int64_t i = 0; i < rows * ng; i++) ms[i] = qf_mo_load_scale(sc, sdt, i);
        uint64_t n_p = 0;
        void *pq = qf_mo_part(mo, mo_buf, QF_ROLE_PRE_QUANT_SCALE, &n_p);
        qf_dtype pdt = QF_DTYPE_INVALID;
        for (int i = 0; i < mo->n; i++)
            if (mo->t[i].role == QF_ROLE_PRE_QUANT_SCALE) pdt = mo->t[i].dtype;
        for (int64_t c = 0; pq && c < cols; c++) {
            if (pdt == QF_DTYPE_F32) ((float *)pq)[c] = 1.0f;
            else ((uint16_t *)pq)[c] = pdt == QF_DTYPE_BF16 ? 0x3f80 : 0x3c00;
        }
        return QF_OK;
    }
    default:
        return qf_mo_unsupported(s, err);
    }
}

static json_t *qf_mo_list(char *const *names, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *qf_mo_producer(void) { return json_pack("{s:s, s:s}", "name", "modelopt", "version", "qforge " QF_VERSION); }

json_t *qf_modelopt_hf_quant_config(const qf_scheme *s, char *const *excluded, int n_excluded)
{
    if (!s->modelopt_algo || s->id == QF_SCHEME_W8A8) return NULL;
    json_t *q = json_pack("{s:s, s:n, s:o}", "quant_algo", s->modelopt_algo, "kv_cache_quant_algo", "exclude_modules",
                          qf_mo_list(excluded, n_excluded));
    if (s->group_size) json_object_set_new(q, "group_size", json_integer(s->group_size));
    if (s->id == QF_SCHEME_W4A16) {
        json_object_set_new(q, "has_zero_point", json_false());
        json_object_set_new(q, "pre_quant_scale", json_true());
    }
    return json_pack("{s:o, s:o}", "producer", qf_mo_producer(), "quantization", q);
}

json_t *qf_modelopt_quant_config(const qf_scheme *s, char *const *excluded, int n_excluded)
{
    if (!s->modelopt_algo || s->id == QF_SCHEME_W8A8) return NULL;
    json_t *c = json_pack("{s:s, s:s, s:o, s:o, s:o, s:n, s:n, s:s}", "quant_method", "modelopt", "quant_algo",
                          s->modelopt_algo, "ignore", qf_mo_list(excluded, n_excluded), "exclude_modules",
                          qf_mo_list(excluded, n_excluded), "producer", qf_mo_producer(), "kv_cache_scheme",
                          "kv_cache_quant_algo", "quant_library", "modelopt");
    if (s->group_size) json_object_set_new(c, "group_size", json_integer(s->group_size));
    if (s->value == QF_VALUE_FP8_E4M3 || s->value == QF_VALUE_FP4_E2M1) {
        /* the llm-compressor-style groups ModelOpt's export adds for FP8 and NVFP4 */
        int bits = s->value == QF_VALUE_FP8_E4M3 ? 8 : 4;
        json_t *wts = json_pack("{s:b, s:i, s:s}", "dynamic", 0, "num_bits", bits, "type", "float");
        json_t *act = json_pack("{s:b, s:i, s:s}", "dynamic", s->act == QF_ACT_FP8_TOKEN, "num_bits", bits, "type", "float");
        if (s->group_size) {
            json_object_set_new(wts, "group_size", json_integer(s->group_size));
            json_object_set_new(act, "group_size", json_integer(s->group_size));
        }
        json_t *g = json_pack("{s:o, s:[s]}", "weights", wts, "targets", "Linear");
        if (s->act != QF_ACT_NONE) json_object_set_new(g, "input_activations", act);
        else json_decref(act);
        json_object_set_new(c, "config_groups", json_pack("{s:o}", "group_0", g));
    }
    return c;
}

void qf_modelopt_dequant_rows(const qf_modelopt_weight *w, int64_t r0, int64_t r1, float *out)
{
    const qf_scheme *s = w->scheme;
    int64_t cols = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        float *o = out + (r - r0) * cols;
        switch (s->value) {
        case QF_VALUE_FP8_E4M3: {
            const uint8_t *q = (const uint8_t *)w->weight + r * cols;
            float sc = ((const float *)w->weight_scale)[s->act == QF_ACT_FP8_STATIC ? 0 : r];
            for (int64_t c = 0; c < cols; c++) o[c] = qf_fp8_value(q[c], sc);
            break;
        }
        case QF_VALUE_FP4_E2M1: {
            const uint8_t *q = (const uint8_t *)w->weight + r * (cols / 2);
            const uint8_t *bs = (const uint8_t *)w->weight_scale + r * (cols / s->group_size);
            for (int64_t c = 0; c < cols; c++) /* step = block scale * weight_scale_2 (ModelOpt's 1 / G) */
                o[c] = qf_fp4_value(qf_fp4_nibble(q, c), qf_e4m3_to_f32(bs[c / s->group_size]) * w->weight_scale_2);
            break;
        }
        case QF_VALUE_INT4: {
            const uint8_t *q = (const uint8_t *)w->weight + (r / 2) * cols;
            const float *sc = (const float *)w->weight_scale + r * (cols / s->group_size);
            for (int64_t c = 0; c < cols; c++) {
                int nib = (r & 1) ? q[c] >> 4 : q[c] & 15;
                int v = nib >= 8 ? nib - 16 : nib; /* two's complement */
                float pqs = w->pre_quant_scale ? qf_mo_load_scale(w->pre_quant_scale, w->pqs_dtype, c) : 1.0f;
                o[c] = (float)v * sc[c / s->group_size] * pqs;
            }
            break;
        }
        default:
            memset(o, 0, sizeof(float) * (size_t)cols);
        }
    }
}
