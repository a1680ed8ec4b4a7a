/* qf_gptq_fixture.h - internal to tests/test_gptq.c and tests/test_float_target.c: one seeded
 * Linear (GR x GC weights, GN correlated calibration tokens, XᵀX) and GPTQ / RTN runs over it
 * that return the dequantized weights, built on qf_calib_fixture.h. */
#ifndef QF_GPTQ_FIXTURE_H
#define QF_GPTQ_FIXTURE_H

#include "qf_calib_fixture.h"
#include "qf_gptq.h"
#include "qf_quantize.h"

#define GR 128  /* rows */
#define GC 256  /* cols */
#define GN 1024 /* calibration tokens */

typedef struct gptq_fx {
    float *W;  /* original weights */
    float *X;  /* inputs [GN, GC] */
    double *H; /* XᵀX */
} gptq_fx;

static inline gptq_fx fx_make(uint64_t seed)
{
    gptq_fx f;
    f.W = fx_weights(GR, GC, seed);
    f.X = fx_inputs(GN, GC, seed + 100, 0, 1);
    f.H = fx_xtx(f.X, GN, GC);
    return f;
}
static inline void fx_drop(gptq_fx *f) { free(f->W), free(f->X), free(f->H); }

/* Runs GPTQ on a copy of f.W; returns the dequantized weights (caller frees) and checks that
 * the packed tensors decode to them bit for bit. */
static inline float *run_gptq(const qf_scheme *s, const gptq_fx *f, const double *H, const qf_gptq_opts *o,
                       qf_quant_buffers *keep, qf_gptq_result *res)
{
    qf_error err = {0};
    qf_quant_plan plan;
    qf_quant_buffers b;
    assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
    fx_alloc_buffers(&plan, &b);
    float *Q = malloc(sizeof(float) * GR * GC), *D = malloc(sizeof(float) * GR * GC);
    memcpy(Q, f->W, sizeof(float) * GR * GC);
    qf_gptq_result r;
    qf_status st = qf_gptq_quantize(s, Q, GR, GC, H ? H : f->H, GN, 0, o, &plan, &b, &r, &err);
    if (st) fail_msg("gptq %s: %s", s->name, err.msg);
    fx_dequant(s, &plan, &b, GR, GC, D);
    if (memcmp(D, Q, sizeof(float) * GR * GC)) fail_msg("gptq %s: packed tensors do not decode to the returned W", s->name);
    assert_true(isfinite(r.loss) && r.loss >= 0);
    if (res) *res = r;
    if (keep)
        *keep = b;
    else
        fx_free_buffers(&plan, &b);
    free(D);
    return Q;
}

static inline float *run_rtn(const qf_scheme *s, const float *W, qf_quant_buffers *keep)
{
    qf_error err = {0};
    qf_quant_plan plan;
    qf_quant_buffers b;
    assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
    fx_alloc_buffers(&plan, &b);
    assert_int_equal(qf_quantize_rtn(s, QF_DTYPE_F32, W, GR, GC, 0, &plan, &b, &err), QF_OK);
    float *Q = malloc(sizeof(float) * GR * GC);
    fx_dequant(s, &plan, &b, GR, GC, Q);
    if (keep)
        *keep = b;
    else
        fx_free_buffers(&plan, &b);
    return Q;
}

#endif /* QF_GPTQ_FIXTURE_H */
