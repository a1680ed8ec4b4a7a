/* quantize.c - packed-tensor plans, group rules and round-to-nearest (see qf_quantize.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fmt.h"
#include "qf_quantize.h"

/* NaN-free min/max (inputs here are finite); plain compares inline, libm's fminf does not. */
static inline float qf_minf(float a, float b) { return a < b ? a : b; }
static inline float qf_maxf(float a, float b) { return a > b ? a : b; }

static void qf_plan_add(qf_quant_plan *p, qf_packed_role role, const char *suffix, qf_dtype dt, int ndim, int64_t d0,
                        int64_t d1)
{
    qf_packed_tensor *t = &p->t[p->n++];
    t->role = role;
    t->suffix = suffix;
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    uint64_t numel = (uint64_t)d0 * (uint64_t)(ndim > 1 ? d1 : 1);
    t->nbytes = numel * (uint64_t)qf_dtype_bits(dt) / 8;
}

qf_status qf_quant_plan_linear(const qf_scheme *s, int64_t rows, int64_t cols, qf_quant_plan *plan, qf_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (!qf_scheme_fits(s, rows, cols))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "shape [%lld, %lld] does not fit scheme %s (group %d)", (long long)rows,
                       (long long)cols, s->name, s->group_size);
    int64_t groups = s->group_size ? cols / s->group_size : 1;
    switch (s->value) {
    case QF_VALUE_FP8_E4M3:
    case QF_VALUE_INT8:
        qf_plan_add(plan, QF_ROLE_WEIGHT, "weight", s->weight_dtype, 2, rows, cols);
        if (s->act == QF_ACT_FP8_STATIC) {
            /* static fp8: per-tensor weight scale, calibrated input scale */
            qf_plan_add(plan, QF_ROLE_SCALE, "weight_scale", s->scale_dtype, 1, 1, 0);
            qf_plan_add(plan, QF_ROLE_INPUT_SCALE, "input_scale", QF_DTYPE_BF16, 1, 1, 0); /* as llm-compressor */
        } else {
            qf_plan_add(plan, QF_ROLE_SCALE, "weight_scale", s->scale_dtype, 2, rows, 1);
        }
        break;
    case QF_VALUE_INT4:
        qf_plan_add(plan, QF_ROLE_WEIGHT, "weight_packed", QF_DTYPE_I32, 2, rows, cols / 8);
        qf_plan_add(plan, QF_ROLE_SCALE, "weight_scale", s->scale_dtype, 2, rows, groups);
        if (!s->symmetric) qf_plan_add(plan, QF_ROLE_ZERO, "weight_zero_point", QF_DTYPE_I32, 2, rows / 8, groups);
        qf_plan_add(plan, QF_ROLE_SHAPE, "weight_shape", QF_DTYPE_I64, 1, 2, 0);
        break;
    case QF_VALUE_FP4_E2M1:
        qf_plan_add(plan, QF_ROLE_WEIGHT, "weight_packed", QF_DTYPE_U8, 2, rows, cols / 2);
        qf_plan_add(plan, QF_ROLE_SCALE, "weight_scale", s->scale_dtype, 2, rows, groups);
        if (s->has_global_scale) qf_plan_add(plan, QF_ROLE_GLOBAL, "weight_global_scale", QF_DTYPE_F32, 1, 1, 0);
        if (s->act == QF_ACT_NVFP4) qf_plan_add(plan, QF_ROLE_INPUT_SCALE, "input_global_scale", QF_DTYPE_F32, 1, 1, 0);
        break;
    }
    return QF_OK;
}

int qf_quant_plan_find(const qf_quant_plan *plan, qf_packed_role role)
{
    for (int i = 0; i < plan->n; i++)
        if (plan->t[i].role == role) return i;
    return -1;
}

float qf_nvfp4_global_scale(float amax) { return qf_nvfp4_global(amax); }

qf_group_params qf_group_params_from_range(const qf_scheme *s, float lo, float hi, float global_scale)
{
    qf_group_params p = {0};
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    float amax = qf_maxf(-lo, hi);
    switch (s->value) {
    case QF_VALUE_INT4:
        if (s->symmetric) {
            p.scale = qf_int4_sym_scale(amax);
        } else {
            p.scale = qf_int4_asym_scale(lo, hi);
            p.zero = qf_int4_asym_zero(lo, p.scale);
        }
        break;
    case QF_VALUE_INT8: /* the stored (BF16) scale is the one the codes are rounded with */
        p.scale = qf_int8_wscale(amax);
        break;
    case QF_VALUE_FP8_E4M3:
        p.scale = qf_fp8_wscale(amax);
        break;
    case QF_VALUE_FP4_E2M1:
        if (s->has_global_scale) { /* nvfp4 */
            p.code = qf_nvfp4_scale_code(amax, global_scale);
            p.scale = qf_nvfp4_step(p.code, global_scale);
        } else { /* mxfp4 */
            p.code = qf_mxfp4_scale_code(amax);
            p.scale = qf_mxfp4_step(p.code);
        }
        break;
    }
    return p;
}

qf_group_params qf_group_params_from(const qf_scheme *s, const float *x, int n, float global_scale)
{
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        lo = qf_minf(lo, x[i]);
        hi = qf_maxf(hi, x[i]);
    }
    if (s->symmetric) { /* only the magnitude matters */
        float a = qf_maxf(-lo, hi);
        lo = -a, hi = a;
    }
    return qf_group_params_from_range(s, lo, hi, global_scale);
}

uint32_t qf_quant_value(const qf_scheme *s, const qf_group_params *p, float x, float *deq)
{
    const float sc = p->scale;
    uint32_t code;
    switch (s->value) {
    case QF_VALUE_INT4:
        if (!(sc > 0)) {
            if (deq) *deq = 0;
            return s->symmetric ? qf_int4_sym_code(x, sc) : qf_int4_asym_code(x, sc, p->zero);
        }
        /* deq as level * scale (not the stored code's value): x = -0 keeps its sign, as the
         * vectorised qf_quant_dequant and GPTQ's error propagation have always had it */
        if (s->symmetric) {
            if (deq) *deq = qf_int4_sym_qdq(x, sc);
            return qf_int4_sym_code(x, sc);
        }
        if (deq) *deq = qf_int4_asym_qdq(x, sc, p->zero);
        return qf_int4_asym_code(x, sc, p->zero);
    case QF_VALUE_INT8:
        code = qf_int8_code(x, sc);
        if (deq) *deq = sc > 0 ? qf_int8_qdq(x, sc) : qf_int8_value(0, sc);
        return code;
    case QF_VALUE_FP8_E4M3:
        code = qf_fp8_code(x, sc);
        if (deq) *deq = qf_fp8_value((uint8_t)code, sc);
        return code;
    case QF_VALUE_FP4_E2M1:
        code = qf_fp4_code(x, sc);
        if (deq) *deq = qf_fp4_value((uint8_t)code, sc);
        return code;
    }
    if (deq) *deq = 0;
    return 0;
}

/* The codes of n values under one group's params: the same results as qf_quant_value, as
 * tight per-format loops the compiler vectorizes (no per-element switch). */
static void qf_quant_codes(const qf_scheme *s, const qf_group_params *p, const float *x, int64_t n, uint32_t *codes)
{
    const float sc = p->scale;
    if (!(sc > 0)) {
        for (int64_t i = 0; i < n; i++) codes[i] = qf_quant_value(s, p, x[i], NULL);
        return;
    }
    switch (s->value) {
    case QF_VALUE_INT4:
        if (s->symmetric) {
            for (int64_t i = 0; i < n; i++) codes[i] = qf_int4_sym_code(x[i], sc);
        } else {
            const float z = p->zero;
            for (int64_t i = 0; i < n; i++) codes[i] = qf_int4_asym_code(x[i], sc, z);
        }
        break;
    case QF_VALUE_INT8:
        for (int64_t i = 0; i < n; i++) codes[i] = qf_int8_code(x[i], sc);
        break;
    case QF_VALUE_FP8_E4M3:
        for (int64_t i = 0; i < n; i++) codes[i] = qf_fp8_code(x[i], sc);
        break;
    case QF_VALUE_FP4_E2M1:
        for (int64_t i = 0; i < n; i++) codes[i] = qf_fp4_code(x[i], sc);
        break;
    }
}

void qf_quant_dequant(const qf_scheme *s, const qf_group_params *p, const float *x, int64_t n, float *deq)
{
    const float sc = p->scale;
    if (!(sc > 0)) {
        for (int64_t i = 0; i < n; i++) qf_quant_value(s, p, x[i], &deq[i]);
        return;
    }
    switch (s->value) {
    case QF_VALUE_INT4:
        if (s->symmetric) {
            for (int64_t i = 0; i < n; i++) deq[i] = qf_int4_sym_qdq(x[i], sc);
        } else {
            const float z = p->zero;
            for (int64_t i = 0; i < n; i++) deq[i] = qf_int4_asym_qdq(x[i], sc, z);
        }
        break;
    case QF_VALUE_INT8:
        for (int64_t i = 0; i < n; i++) deq[i] = qf_int8_qdq(x[i], sc);
        break;
    case QF_VALUE_FP8_E4M3:
        for (int64_t i = 0; i < n; i++) deq[i] = qf_fp8_qdq(x[i], sc);
        break;
    case QF_VALUE_FP4_E2M1:
        for (int64_t i = 0; i < n; i++) deq[i] = qf_fp4_value(qf_fp4_code(x[i], sc), sc);
        break;
    default:
        for (int64_t i = 0; i < n; i++) qf_quant_value(s, p, x[i], &deq[i]);
    }
}

void qf_load_row(qf_dtype dtype, const void *src, int64_t r, int64_t cols, float *out)
{
    if (dtype == QF_DTYPE_F32) {
        memcpy(out, (const float *)src + r * cols, sizeof(float) * (size_t)cols);
    } else if (dtype == QF_DTYPE_BF16) {
        const uint16_t *p = (const uint16_t *)src + r * cols;
        for (int64_t c = 0; c < cols; c++) out[c] = qf_bf16_to_f32(p[c]);
    } else {
        const uint16_t *p = (const uint16_t *)src + r * cols;
        for (int64_t c = 0; c < cols; c++) out[c] = qf_f16_to_f32(p[c]);
    }
}

float qf_tensor_absmax(qf_dtype dtype, const void *src, uint64_t n)
{
    float m = 0;
    const int64_t chunk = 1 << 16;
    int64_t nchunks = (int64_t)((n + (uint64_t)chunk - 1) / (uint64_t)chunk);
#pragma omp parallel for reduction(max : m) schedule(static)
    for (int64_t b = 0; b < nchunks; b++) {
        float buf[1 << 10];
        int64_t end = (b + 1) * chunk < (int64_t)n ? (b + 1) * chunk : (int64_t)n;
        for (int64_t i = b * chunk; i < end; i += 1024) {
            int64_t len = end - i < 1024 ? end - i : 1024;
            qf_load_row(dtype, (const uint8_t *)src + (size_t)i * (dtype == QF_DTYPE_F32 ? 4 : 2), 0, len, buf);
            for (int64_t k = 0; k < len; k++) {
                float a = fabsf(buf[k]);
                if (a > m) m = a; /* NaN never wins */
            }
        }
    }
    return m;
}

void qf_store_scale(const qf_scheme *s, void *dst, int64_t i, float scale)
{
    if (s->scale_dtype == QF_DTYPE_BF16) ((uint16_t *)dst)[i] = qf_f32_to_bf16(scale); /* exact: already bf16 */
    else ((float *)dst)[i] = scale;
}

void qf_pack_row(const qf_scheme *s, const qf_quant_plan *plan, qf_quant_buffers *out, int64_t r, int64_t cols,
                 const uint32_t *codes, const qf_group_params *groups)
{
    void *w = out->data[qf_quant_plan_find(plan, QF_ROLE_WEIGHT)];
    void *sc = out->data[qf_quant_plan_find(plan, QF_ROLE_SCALE)];
    int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    switch (s->value) {
    case QF_VALUE_INT4: {
        uint32_t *wp = (uint32_t *)w + r * (cols / 8);
        memset(wp, 0, sizeof(uint32_t) * (size_t)(cols / 8));
        for (int64_t c = 0; c < cols; c++) qf_int4_put(wp, c, codes[c]);
        uint16_t *sp = (uint16_t *)sc + r * ng;
        for (int64_t g = 0; g < ng; g++) sp[g] = qf_f32_to_bf16(groups[g].scale);
        if (!s->symmetric) {
            /* zero points packed along rows: word (r/8, g), nibble r%8 (rows of one 8-block
             * are packed by the same thread, so this read-modify-write does not race) */
            uint32_t *zp = (uint32_t *)out->data[qf_quant_plan_find(plan, QF_ROLE_ZERO)] + (r / 8) * ng;
            for (int64_t g = 0; g < ng; g++) zp[g] = qf_int4_zero_set(zp[g], r, (uint32_t)groups[g].zero);
        }
        break;
    }
    case QF_VALUE_INT8:
    case QF_VALUE_FP8_E4M3: {
        uint8_t *wp = (uint8_t *)w + r * cols;
        for (int64_t c = 0; c < cols; c++) wp[c] = (uint8_t)codes[c];
        if (s->act != QF_ACT_FP8_STATIC) qf_store_scale(s, sc, r, groups[0].scale);
        break;
    }
    case QF_VALUE_FP4_E2M1: {
        uint8_t *wp = (uint8_t *)w + r * (cols / 2);
        for (int64_t j = 0; j < cols / 2; j++) wp[j] = qf_fp4x2_pack(codes[2 * j], codes[2 * j + 1]);
        uint8_t *sp = (uint8_t *)sc + r * ng;
        for (int64_t g = 0; g < ng; g++) sp[g] = groups[g].code;
        break;
    }
    }
}

void qf_pack_tensor_info(const qf_scheme *s, const qf_quant_plan *plan, qf_quant_buffers *out, int64_t rows,
                         int64_t cols, float global_scale)
{
    int i = qf_quant_plan_find(plan, QF_ROLE_SHAPE);
    if (i >= 0) {
        int64_t shape[2] = {rows, cols};
        memcpy(out->data[i], shape, sizeof shape);
    }
    i = qf_quant_plan_find(plan, QF_ROLE_GLOBAL);
    if (i >= 0) memcpy(out->data[i], &global_scale, sizeof(float));
    (void)s;
}

qf_status qf_quantize_rtn(const qf_scheme *s, qf_dtype src_dtype, const void *src, int64_t rows, int64_t cols,
                          float tensor_amax, const qf_quant_plan *plan, qf_quant_buffers *out, qf_error *err)
{
    if (src_dtype != QF_DTYPE_F32 && src_dtype != QF_DTYPE_BF16 && src_dtype != QF_DTYPE_F16)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "cannot quantize from dtype %s", qf_dtype_name(src_dtype));
    if (s->needs_calibration)
        return qf_fail(err, QF_ERR_USAGE, "scheme %s has static activation scales: it needs calibration", s->name);
    float G = 1.0f;
    if (s->has_global_scale) {
        if (!(tensor_amax > 0)) tensor_amax = qf_tensor_absmax(src_dtype, src, (uint64_t)rows * (uint64_t)cols);
        G = qf_nvfp4_global_scale(tensor_amax);
    }
    int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    int64_t nblocks = (rows + 7) / 8;
    int failed = 0;
#pragma omp parallel
    {
        float *x = malloc(sizeof(float) * (size_t)cols);
        uint32_t *codes = malloc(sizeof(uint32_t) * (size_t)cols);
        qf_group_params *gp = malloc(sizeof(qf_group_params) * (size_t)ng);
        if (!x || !codes || !gp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t b = 0; b < nblocks; b++) {
            if (!x || !codes || !gp) continue;
            for (int64_t r = b * 8; r < rows && r < b * 8 + 8; r++) {
                qf_load_row(src_dtype, src, r, cols, x);
                for (int64_t g = 0; g < ng; g++) {
                    gp[g] = qf_group_params_from(s, x + g * gs, (int)gs, G);
                    qf_quant_codes(s, &gp[g], x + g * gs, gs, codes + g * gs);
                }
                qf_pack_row(s, plan, out, r, cols, codes, gp);
            }
        }
        free(x);
        free(codes);
        free(gp);
    }
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "out of memory quantizing a [%lld, %lld] tensor", (long long)rows,
                               (long long)cols);
    qf_pack_tensor_info(s, plan, out, rows, cols, G);
    return QF_OK;
}
