/* quantize.c - packed-tensor plans, group rules and round-to-nearest (see qf_quantize.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

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

/* The (lo, hi) = (min(0, x...), max(0, x...)) of a group in independent lanes: 1 when that is
 * exactly what any in-order fold gives (qf_minf's or fminf's: they differ only at NaN), 0
 * when the caller must fold in order.  The in-order fold is one long dependency chain (the
 * slowest step of RTN); the lanes give the same two numbers whenever no value is NaN and
 * neither bound is zero, since the min and max of nonzero finite values do not depend on the
 * order.  A NaN (whose place in the order decides qf_minf's result), a bound of +-0 (whose
 * sign the order decides) and an Inf (x * 0 cannot tell it from a NaN) return 0. */
static int qf_range_lanes(const float *x, int n, float *lo_out, float *hi_out)
{
    float l = 0, h = 0, poison = 0; /* poison: NaN once a NaN or Inf was seen (x * 0) */
    int i = 0;
#ifdef __AVX__
    /* 16 lanes in two registers; gcc does not vectorize the portable loop below by itself.
     * vminps(a, b) is a < b ? a : b exactly, as qf_minf. */
    __m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, hi0 = lo0, hi1 = lo0, p0 = lo0, p1 = lo0;
    const __m256 zero = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        lo0 = _mm256_min_ps(lo0, a), lo1 = _mm256_min_ps(lo1, b);
        hi0 = _mm256_max_ps(hi0, a), hi1 = _mm256_max_ps(hi1, b);
        p0 = _mm256_add_ps(p0, _mm256_mul_ps(a, zero)), p1 = _mm256_add_ps(p1, _mm256_mul_ps(b, zero));
    }
    float lanes[3][8];
    _mm256_storeu_ps(lanes[0], _mm256_min_ps(lo0, lo1));
    _mm256_storeu_ps(lanes[1], _mm256_max_ps(hi0, hi1));
    _mm256_storeu_ps(lanes[2], _mm256_add_ps(p0, p1));
    for (int k = 0; k < 8; k++) {
        l = qf_minf(l, lanes[0][k]);
        h = qf_maxf(h, lanes[1][k]);
        poison += lanes[2][k];
    }
#endif
    for (; i < n; i++) {
        l = qf_minf(l, x[i]);
        h = qf_maxf(h, x[i]);
        poison += x[i] * 0.0f;
    }
    *lo_out = l;
    *hi_out = h;
    return poison == poison && l != 0 && h != 0;
}

/* The (lo, hi) of a group as qf_group_params_from defines it: the in-order fold
 * lo = qf_minf(lo, x), hi = qf_maxf(hi, x) from 0 (qf_range_lanes when it can). */
static void qf_group_range(const float *x, int n, float *lo_out, float *hi_out)
{
    if (qf_range_lanes(x, n, lo_out, hi_out)) return;
    float l = 0, h = 0;
    for (int i = 0; i < n; i++) {
        l = qf_minf(l, x[i]);
        h = qf_maxf(h, x[i]);
    }
    *lo_out = l;
    *hi_out = h;
}

qf_group_params qf_group_params_from(const qf_scheme *s, const float *x, int n, float global_scale)
{
    float lo, hi;
    qf_group_range(x, n, &lo, &hi);
    if (s->symmetric) { /* only the magnitude matters */
        float a = qf_maxf(-lo, hi);
        lo = -a, hi = a;
    }
    return qf_group_params_from_range(s, lo, hi, global_scale);
}

/* The range a clip ratio shrinks: min / max with fminf's rules (qf_fminf), symmetric when the
 * scheme is. */
static void qf_search_range(const qf_scheme *s, const float *v, int n, float *lo_out, float *hi_out)
{
    float lo = 0, hi = 0;
    if (!qf_range_lanes(v, n, &lo, &hi)) {
        lo = 0, hi = 0;
        for (int t = 0; t < n; t++) lo = qf_fminf(lo, v[t]), hi = qf_fmaxf(hi, v[t]);
    }
    if (s->symmetric) {
        const float a = qf_fmaxf(-lo, hi);
        lo = -a, hi = a;
    }
    *lo_out = lo, *hi_out = hi;
}

qf_group_params qf_group_params_clipped(const qf_scheme *s, const float *x, int n, float global_scale, float ratio)
{
    if (ratio == 1.0f) return qf_group_params_from(s, x, n, global_scale);
    float lo, hi;
    qf_search_range(s, x, n, &lo, &hi);
    return qf_group_params_from_range(s, lo * ratio, hi * ratio, global_scale);
}

/* Squared rounding error of v[n] under p, unweighted, in 8 float lanes (a search compares
 * candidates: it needs speed and a fixed order, not a double sum).  The hot formats round with
 * their rule inline (no buffer between rounding and error); the rest through qf_quant_dequant. */
#define QF_SQ_ERR_LANES(expr)                                                                      \
    do {                                                                                           \
        int t = 0;                                                                                 \
        for (; t + 8 <= n; t += 8)                                                                 \
            for (int k = 0; k < 8; k++) {                                                          \
                const float x = v[t + k], d = x - (expr);                                          \
                lanes[k] += d * d;                                                                 \
            }                                                                                      \
        for (; t < n; t++) {                                                                       \
            const float x = v[t], d = x - (expr);                                                  \
            lanes[0] += d * d;                                                                     \
        }                                                                                          \
    } while (0)

static float qf_group_sq_error(const qf_scheme *s, const qf_group_params *p, const float *v, int n)
{
    float lanes[8] = {0};
    const float sc = p->scale, z = p->zero;
    if (sc > 0 && s->value == QF_VALUE_INT4 && s->symmetric) {
        QF_SQ_ERR_LANES(qf_int4_sym_qdq(x, sc));
    } else if (sc > 0 && s->value == QF_VALUE_INT4) {
        QF_SQ_ERR_LANES(qf_int4_asym_qdq(x, sc, z));
    } else if (sc > 0 && s->value == QF_VALUE_FP4_E2M1) {
        QF_SQ_ERR_LANES(qf_e2m1_round(x / sc) * sc);
    } else {
        float dq[256];
        for (int t0 = 0; t0 < n; t0 += 256) {
            const int len = n - t0 < 256 ? n - t0 : 256;
            qf_quant_dequant(s, p, v + t0, len, dq);
            for (int t = 0; t < len; t++) lanes[t % 8] += (v[t0 + t] - dq[t]) * (v[t0 + t] - dq[t]);
        }
    }
    float e = 0;
    for (int k = 0; k < 8; k++) e += lanes[k];
    return e;
}
#undef QF_SQ_ERR_LANES

qf_group_params qf_group_params_search(const qf_scheme *s, const float *v, int n, float global_scale,
                                       const double *w, int steps, float clip_min)
{
    if (steps <= 0) return qf_group_params_from(s, v, n, global_scale);
    /* one range pass serves both the full-range parameters and the search when the lanes give
     * it (both folds agree then, see qf_range_lanes); otherwise each takes its own in-order fold */
    float lo, hi;
    qf_group_params full;
    if (qf_range_lanes(v, n, &lo, &hi)) {
        if (s->symmetric) {
            const float a = qf_maxf(-lo, hi);
            lo = -a, hi = a;
        }
        full = qf_group_params_from_range(s, lo, hi, global_scale);
    } else {
        full = qf_group_params_from(s, v, n, global_scale);
        qf_search_range(s, v, n, &lo, &hi);
    }
    qf_group_params best = full;
    double best_e = -1;
    qf_group_params prev = {0};
    for (int k = 0; k <= steps; k++) {
        const float ratio = 1.0f - (1.0f - clip_min) * (float)k / (float)steps;
        const qf_group_params p = ratio == 1.0f ? full : qf_group_params_from_range(s, lo * ratio, hi * ratio, global_scale);
        /* stored scales are rounded (bf16, e4m3, e8m0), so neighbouring ratios often give the
         * same parameters: the same error, which could not win (strict <), so skip it */
        if (k > 0 && p.scale == prev.scale && p.zero == prev.zero && p.code == prev.code) continue;
        prev = p;
        double e = 0;
        if (w) { /* GPTQ's loss weights: in order, in double */
            float dq[256];
            for (int t0 = 0; t0 < n; t0 += 256) {
                const int len = n - t0 < 256 ? n - t0 : 256;
                qf_quant_dequant(s, &p, v + t0, len, dq);
                for (int t = 0; t < len; t++)
                    e += ((double)v[t0 + t] - dq[t]) * ((double)v[t0 + t] - dq[t]) * w[t0 + t];
            }
        } else {
            e = qf_group_sq_error(s, &p, v, n);
        }
        if (best_e < 0 || e < best_e) best_e = e, best = p;
    }
    return best;
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
            for (int64_t i = 0; i < n; i++) codes[i] = qf_int4_sym_code_pos(x[i], sc);
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
        for (int64_t i = 0; i < n; i++) codes[i] = qf_fp4_code_pos(x[i], sc);
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
        for (int64_t i = 0; i < n; i++) deq[i] = qf_e2m1_round(x[i] / sc) * sc; /* = qf_fp4_value(qf_fp4_code()) */
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

/* The stored codes of columns [c0, c0 + n) of row r (c0 and n multiples of the packing unit:
 * the group, or the whole row). */
static void qf_pack_codes(const qf_scheme *s, void *w, int64_t r, int64_t cols, int64_t c0, int64_t n,
                          const uint32_t *codes)
{
    switch (s->value) {
    case QF_VALUE_INT4: {
        uint32_t *wp = (uint32_t *)w + r * (cols / 8) + c0 / 8;
        for (int64_t j = 0; j < n / 8; j++) wp[j] = qf_int4x8_pack_codes(codes + 8 * j);
        break;
    }
    case QF_VALUE_INT8:
    case QF_VALUE_FP8_E4M3: {
        uint8_t *wp = (uint8_t *)w + r * cols + c0;
        for (int64_t c = 0; c < n; c++) wp[c] = (uint8_t)codes[c];
        break;
    }
    case QF_VALUE_FP4_E2M1: {
        uint8_t *wp = (uint8_t *)w + r * (cols / 2) + c0 / 2;
        for (int64_t j = 0; j < n / 2; j++) wp[j] = qf_fp4x2_pack(codes[2 * j], codes[2 * j + 1]);
        break;
    }
    }
}

/* The scales (and zero points) of row r. */
static void qf_pack_params(const qf_scheme *s, const qf_quant_plan *plan, qf_quant_buffers *out, int64_t r,
                           int64_t cols, const qf_group_params *groups)
{
    void *sc = out->data[qf_quant_plan_find(plan, QF_ROLE_SCALE)];
    int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    switch (s->value) {
    case QF_VALUE_INT4: {
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
    case QF_VALUE_FP8_E4M3:
        if (s->act != QF_ACT_FP8_STATIC) qf_store_scale(s, sc, r, groups[0].scale);
        break;
    case QF_VALUE_FP4_E2M1: {
        uint8_t *sp = (uint8_t *)sc + r * ng;
        for (int64_t g = 0; g < ng; g++) sp[g] = groups[g].code;
        break;
    }
    }
}

void qf_pack_row(const qf_scheme *s, const qf_quant_plan *plan, qf_quant_buffers *out, int64_t r, int64_t cols,
                 const uint32_t *codes, const qf_group_params *groups)
{
    qf_pack_codes(s, out->data[qf_quant_plan_find(plan, QF_ROLE_WEIGHT)], r, cols, 0, cols, codes);
    qf_pack_params(s, plan, out, r, cols, groups);
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
    return qf_quantize_rtn_clip(s, src_dtype, src, rows, cols, tensor_amax, 0, 0.0f, plan, out, err);
}

int qf_rtn_clip_default(const qf_scheme *s)
{
    return s->value == QF_VALUE_INT4 || (s->value == QF_VALUE_FP4_E2M1 && s->has_global_scale) ? 10 : 0;
}

qf_status qf_quantize_rtn_clip(const qf_scheme *s, qf_dtype src_dtype, const void *src, int64_t rows, int64_t cols,
                               float tensor_amax, int clip_search, float clip_min, const qf_quant_plan *plan,
                               qf_quant_buffers *out, qf_error *err)
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
    void *w = out->data[qf_quant_plan_find(plan, QF_ROLE_WEIGHT)];
    int failed = 0;
#pragma omp parallel
    {
        float *x = malloc(sizeof(float) * (size_t)gs);
        uint32_t *codes = malloc(sizeof(uint32_t) * (size_t)gs);
        qf_group_params *gp = malloc(sizeof(qf_group_params) * (size_t)ng);
        if (!x || !codes || !gp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t b = 0; b < nblocks; b++) {
            if (!x || !codes || !gp) continue;
            for (int64_t r = b * 8; r < rows && r < b * 8 + 8; r++) {
                /* a group at a time, so its floats and codes stay in L1 from load to packing */
                for (int64_t g = 0; g < ng; g++) {
                    qf_load_row(src_dtype, src, r * ng + g, gs, x);
                    gp[g] = qf_group_params_search(s, x, (int)gs, G, NULL, clip_search, clip_min);
                    qf_quant_codes(s, &gp[g], x, gs, codes);
                    qf_pack_codes(s, w, r, cols, g * gs, gs, codes);
                }
                qf_pack_params(s, plan, out, r, cols, gp);
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
