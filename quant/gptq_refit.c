/* gptq_refit.c - re-choosing the stored group scales after GPTQ has fixed the codes.
 *
 * GPTQ picks each group's scale (and zero point) once, when the sweep reaches the group,
 * from min/max of the weights as they are at that moment; every later column then rounds
 * under that scale.  Once all codes are chosen the scale is no longer the best one: with
 * the codes held fixed the layer's output error
 *     f(row) = (w0 - q)^T H (w0 - q),   q_j = a_j * scale_g(j)
 * (w0 the original row, a_j the code's unit value: code - zero for int4, the E2M1/E4M3/int8
 * value for float and int8 formats) is a quadratic in the row's group scales.  This file
 * minimises it by exact coordinate descent, one group at a time, over the values the scale's
 * stored dtype can hold (bf16 for int4, E4M3 / G for nvfp4, E8M0 for mxfp4, F32 for the
 * per-channel 8-bit formats): the continuous optimum of the group given the others, then the
 * best of the stored neighbours around it (and, for int4 asym, of the zero points next to the
 * current one, with the codes unchanged).  Every accepted move lowers f, so the result is
 * never worse than GPTQ's own in the layer objective; a few sweeps settle it.
 *
 * Cost per row: one row of E H (a gemm for all rows, cols^2 per row), gs^2 per group per row
 * for H_gg * codes, and cols * gs for each accepted move.  Memory: a float copy of H plus
 * rows * cols floats.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gptq_refit.h"
#include "qf_linalg.h"
#include "qf_fmt.h"

/* The unit value of a stored code (what the scale multiplies), zero point excluded. */
static float qf_code_unit(const qf_scheme *s, uint32_t code)
{
    switch (s->value) {
    case QF_VALUE_INT4:
        return qf_int4_value(code, s->symmetric ? QF_INT4_SYM_ZERO : 0u, 1.0f);
    case QF_VALUE_INT8:
        return qf_int8_value((int8_t)(uint8_t)code, 1.0f);
    case QF_VALUE_FP8_E4M3:
        return qf_fp8_value((uint8_t)code, 1.0f);
    case QF_VALUE_FP4_E2M1:
        return qf_fp4_value((uint8_t)code, 1.0f);
    }
    return 0.0f;
}

/* Which stored scale is nearest to the wanted step t > 0, and its neighbours: candidate k
 * (k = -1, 0, 1) as group params, or 0 when there is no such stored value. */
static int qf_scale_candidate(const qf_scheme *s, float t, float G, int k, qf_group_params *p)
{
    if (!(t > 0) || !isfinite(t)) return 0;
    switch (s->value) {
    case QF_VALUE_INT4: {
        int b = (int)qf_f32_to_bf16(t) + k; /* positive bf16 codes are ordered like their values */
        if (b <= 0 || b >= 0x7f80) return 0;
        p->scale = qf_bf16_to_f32((uint16_t)b);
        return 1;
    }
    case QF_VALUE_FP4_E2M1:
        if (s->has_global_scale) { /* nvfp4: E4M3 codes 0x01..0x7e are ordered like their values */
            int c = (int)qf_f32_to_e4m3(t * G) + k;
            if (c < 1 || c > 0x7e) return 0;
            p->code = (uint8_t)c;
            p->scale = qf_nvfp4_step(p->code, G);
        } else { /* mxfp4: a power of two */
            int c = (int)lrintf(log2f(t)) + 127 + k;
            if (c < 1 || c > 254) return 0;
            p->code = (uint8_t)c;
            p->scale = qf_mxfp4_step(p->code);
        }
        return 1;
    case QF_VALUE_INT8:
    case QF_VALUE_FP8_E4M3: { /* BF16 scales, as int4's */
        int b = (int)qf_f32_to_bf16(t) + k;
        if (b <= 0 || b >= 0x7f80) return 0;
        p->scale = qf_bf16_to_f32((uint16_t)b);
        return 1;
    }
    }
    return 0;
}

/* The dequantized value as the stored bytes decode to it (the same float operations as
 * qf_quant_value). */
static float qf_refit_deq(const qf_scheme *s, const qf_group_params *p, uint32_t code)
{
    if (s->value == QF_VALUE_INT4 && !s->symmetric) return qf_int4_value(code, (uint32_t)p->zero, p->scale);
    return qf_code_unit(s, code) * p->scale;
}

qf_status qf_gptq_refit(const qf_scheme *s, const float *W0, int64_t rows, int64_t cols, const double *H,
                        const uint8_t *codes, qf_group_params *gp, float G, int sweeps, float *Wq,
                        qf_refit_result *res, qf_error *err)
{
    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int asym = s->value == QF_VALUE_INT4 && !s->symmetric;
    if (res) memset(res, 0, sizeof *res);
    if (sweeps <= 0 || s->act == QF_ACT_FP8_STATIC) return QF_OK; /* one scale per tensor: nothing to refit */

    float *Hf = malloc(sizeof(float) * (size_t)(cols * cols));
    float *EH = calloc((size_t)(rows * cols), sizeof(float));
    float *E = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!Hf || !EH || !E) {
        free(Hf), free(EH), free(E);
        return qf_fail(err, QF_ERR_NOMEM, "gptq refit: out of memory for a [%lld, %lld] Linear", (long long)rows,
                       (long long)cols);
    }
    for (int64_t i = 0; i < cols * cols; i++) Hf[i] = (float)H[i];
    for (int64_t i = 0; i < rows * cols; i++) E[i] = W0[i] - Wq[i];
    qf_status st = qf_sgemm(0, 0, rows, cols, cols, 1.0f, E, cols, Hf, cols, EH, cols, 0, err);
    free(E);
    if (st) {
        free(Hf), free(EH);
        return st;
    }

    double before = 0, after = 0;
    int64_t moves = 0;
    int failed = 0;
#pragma omp parallel reduction(+ : before, after, moves)
    {
        double *u = malloc(sizeof(double) * (size_t)cols);    /* H e, e = w0 - q */
        double *Hc = malloc(sizeof(double) * (size_t)cols);   /* H_gg a (zero point excluded), per group */
        double *H1 = asym ? malloc(sizeof(double) * (size_t)cols) : NULL; /* H_gg 1, per group */
        float *a = malloc(sizeof(float) * (size_t)cols);
        float *d = malloc(sizeof(float) * (size_t)gs);
        if (!u || !Hc || (asym && !H1) || !a || !d) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier /* every thread's allocation is settled before failed is read */
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < rows; r++) {
            if (failed) continue;
            const uint8_t *cd = codes + r * cols;
            float *q = Wq + r * cols;
            qf_group_params *gr = gp + r * ng;
            double f0 = 0;
            for (int64_t j = 0; j < cols; j++) {
                u[j] = EH[r * cols + j];
                a[j] = qf_code_unit(s, cd[j]);
                f0 += (double)(W0[r * cols + j] - q[j]) * u[j];
            }
            /* H_gg a and H_gg 1: the codes never change, so once per row */
            for (int64_t g = 0; g < ng; g++)
                for (int64_t i = g * gs; i < (g + 1) * gs; i++) {
                    const float *hi = Hf + i * cols + g * gs;
                    const float *ag = a + g * gs;
                    double x = 0, y = 0;
                    for (int64_t j = 0; j < gs; j++) x += (double)hi[j] * ag[j], y += hi[j];
                    Hc[i] = x;
                    if (asym) H1[i] = y;
                }
            double f = f0;
            for (int sw = 0; sw < sweeps; sw++) {
                int changed = 0;
                for (int64_t g = 0; g < ng; g++) {
                    const int64_t o = g * gs;
                    qf_group_params cur = gr[g], best = cur;
                    /* with a' = a - z' (z' = 0 unless asym) and the group's current values
                     * v = s (a - z):  delta(s') = s'^2 P - 2 s' B + C, where
                     * P = a'^T H_gg a', B = a'^T (u_g + H_gg v), C = v^T H_gg v + 2 v^T u_g */
                    double aHa = 0, aH1 = 0, oHo = 0, au = 0, ou = 0;
                    for (int64_t j = 0; j < gs; j++) {
                        aHa += (double)a[o + j] * Hc[o + j];
                        au += (double)a[o + j] * u[o + j];
                        if (asym) aH1 += (double)a[o + j] * H1[o + j], oHo += H1[o + j], ou += u[o + j];
                    }
                    const double sc = cur.scale, z = asym ? cur.zero : 0.0;
                    /* v^T H_gg v and a'^T H_gg v from the sums above (H_gg symmetric) */
                    const double vHv = sc * sc * (aHa - 2 * z * aH1 + z * z * oHo);
                    const double vu = sc * (au - z * ou);
                    double best_delta = -1e-12 * (f > 0 ? f : 0); /* only clear improvements move */
                    const int zlo = asym ? -1 : 0, zhi = asym ? 1 : 0;
                    for (int dz = zlo; dz <= zhi; dz++) {
                        const double zz = z + dz;
                        if (zz < 0 || zz > 15) continue;
                        const double P = aHa - 2 * zz * aH1 + zz * zz * oHo;
                        if (!(P > 0)) continue;
                        const double aHv = sc * (aHa - (z + zz) * aH1 + z * zz * oHo);
                        const double B = (au - zz * ou) + aHv;
                        const double C = vHv + 2 * vu;
                        for (int k = -1; k <= 1; k++) {
                            qf_group_params cand = cur;
                            cand.zero = (float)zz;
                            if (!qf_scale_candidate(s, (float)(B / P), G, k, &cand)) continue;
                            const double s2 = cand.scale, delta = s2 * s2 * P - 2 * s2 * B + C;
                            if (delta < best_delta) best_delta = delta, best = cand;
                        }
                    }
                    if (best.scale == cur.scale && best.zero == cur.zero) continue;
                    /* apply: q_g changes by d; e_g -= d, so u -= H[:, g] d */
                    for (int64_t j = 0; j < gs; j++) {
                        const float nq = qf_refit_deq(s, &best, cd[o + j]);
                        d[j] = nq - q[o + j];
                        q[o + j] = nq;
                    }
                    for (int64_t i = 0; i < cols; i++) {
                        const float *hi = Hf + i * cols + o;
                        double x = 0;
                        for (int64_t j = 0; j < gs; j++) x += (double)hi[j] * d[j];
                        u[i] -= x;
                    }
                    gr[g] = best;
                    f += best_delta;
                    changed = 1;
                    moves++;
                }
                if (!changed) break;
            }
            before += f0;
            after += f;
        }
        free(u), free(Hc), free(H1), free(a), free(d);
    }
    free(Hf);
    free(EH);
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "gptq refit: out of memory");
    if (res) res->loss_before = before, res->loss_after = after, res->moves = moves;
    return QF_OK;
}
