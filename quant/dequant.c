/* dequant.c - packed Linear weights back to float32 (see qf_dequant.h).  The inverse of the
 * rules in qf_quantize.h, written directly from the stored layout so it can check them. */
#include "qf_dequant.h"

#include "qf_fmt.h"

static float qf_scale_at(const qf_packed_weight *w, int64_t i)
{
    switch (w->scale_dtype) {
    case QF_DTYPE_F32: return ((const float *)w->scale)[i];
    case QF_DTYPE_BF16: return qf_bf16_to_f32(((const uint16_t *)w->scale)[i]);
    case QF_DTYPE_F16: return qf_f16_to_f32(((const uint16_t *)w->scale)[i]);
    case QF_DTYPE_F8_E4M3: return qf_e4m3_to_f32(((const uint8_t *)w->scale)[i]);
    case QF_DTYPE_U8:
    case QF_DTYPE_F8_E8M0: return qf_e8m0_to_f32(((const uint8_t *)w->scale)[i]);
    default: return 0.0f;
    }
}

void qf_dequant_rows(const qf_packed_weight *w, int64_t r0, int64_t r1, float *out)
{
    const qf_scheme *s = w->scheme;
    int64_t cols = w->cols;
    int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    for (int64_t r = r0; r < r1; r++) {
        float *o = out + (r - r0) * cols;
        switch (s->value) {
        case QF_VALUE_INT4: {
            const uint32_t *wp = (const uint32_t *)w->weight + r * (cols / 8);
            for (int64_t g = 0; g < ng; g++) {
                float sc = qf_scale_at(w, r * ng + g);
                uint32_t zp = w->zero ? qf_int4_zero_get((const uint32_t *)w->zero, ng, r, g) : QF_INT4_SYM_ZERO;
                for (int64_t c = g * gs; c < (g + 1) * gs; c++) o[c] = qf_int4_value(qf_int4_get(wp, c), zp, sc);
            }
            break;
        }
        case QF_VALUE_INT8: {
            const int8_t *wp = (const int8_t *)w->weight + r * cols;
            float sc = qf_scale_at(w, w->scheme->act == QF_ACT_FP8_STATIC ? 0 : r);
            for (int64_t c = 0; c < cols; c++) o[c] = qf_int8_value(wp[c], sc);
            break;
        }
        case QF_VALUE_FP8_E4M3: {
            const uint8_t *wp = (const uint8_t *)w->weight + r * cols;
            float sc = qf_scale_at(w, w->scheme->act == QF_ACT_FP8_STATIC ? 0 : r);
            for (int64_t c = 0; c < cols; c++) o[c] = qf_fp8_value(wp[c], sc);
            break;
        }
        case QF_VALUE_FP4_E2M1: {
            const uint8_t *wp = (const uint8_t *)w->weight + r * (cols / 2);
            for (int64_t g = 0; g < ng; g++) {
                float step = qf_scale_at(w, r * ng + g);
                if (s->has_global_scale) step /= w->global_scale; /* qf_nvfp4_step for an E4M3 scale */
                for (int64_t c = g * gs; c < (g + 1) * gs; c++) o[c] = qf_fp4_value(qf_fp4_nibble(wp, c), step);
            }
            break;
        }
        }
    }
}
