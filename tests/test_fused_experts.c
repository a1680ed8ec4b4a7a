/* test_fused_experts.c - unfusing 3-D expert tensors: exact slices, refusals, and the plan.
 *
 * Where the expected values come from: the layouts transformers 5.23 computes with
 * (models/llama4/modeling_llama4.py Llama4TextExperts: gate, up = gate_up.chunk(2, -1);
 * models/gpt_oss/modeling_gpt_oss.py GptOssExperts: gate_up[..., ::2], gate_up[..., 1::2];
 * both x @ W[e], so the Linear weight is W[e]^T).  Each stored element is its own index
 * e*100 + row*10 + column, so a value read from the wrong expert, half or orientation shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "convert_plan.h"
#include "qf_fused_experts.h"

/* A [E, A, B] tensor of u16 codes (dtype BF16: only bytes are moved) holding e*100 + a*10 + b. */
static qf_tensor qf_coded(const char *name, int64_t E, int64_t A, int64_t B, uint16_t **buf)
{
    *buf = malloc(sizeof(uint16_t) * (size_t)(E * A * B));
    for (int64_t e = 0; e < E; e++)
        for (int64_t a = 0; a < A; a++)
            for (int64_t b = 0; b < B; b++) (*buf)[(e * A + a) * B + b] = (uint16_t)(e * 100 + a * 10 + b);
    qf_tensor t = {.name = (char *)name, .dtype = QF_DTYPE_BF16, .ndim = 3, .shape = {E, A, B},
                   .nbytes = sizeof(uint16_t) * (uint64_t)(E * A * B), .data = (const uint8_t *)*buf};
    return t;
}

static void test_slices_exact(void **state)
{
    (void)state;
    uint16_t *gu, *dn, out[16];
    /* E = 2, H = 3, I = 2: gate_up [2, 3, 4], down [2, 2, 3] */
    qf_tensor g = qf_coded("m.layers.0.feed_forward.experts.gate_up_proj", 2, 3, 4, &gu);
    qf_tensor d = qf_coded("m.layers.0.feed_forward.experts.down_proj", 2, 2, 3, &dn);
    assert_int_equal(qf_fused_kind_of(g.name), QF_FUSED_GATE_UP);
    assert_int_equal(qf_fused_kind_of(d.name), QF_FUSED_DOWN);
    assert_int_equal(qf_fused_kind_of("m.experts.gate_up_proj_bias"), QF_FUSED_NOT);
    qf_error err = {0};
    assert_int_equal(qf_fused_experts_check("dir", &g, &d, &err), QF_OK);

    /* Llama 4, expert 1, up: Linear [I=2, H=3], up[r][c] = gate_up[1][c][I + r] */
    qf_expert_slice s = qf_expert_slice_of(&g, 1, QF_EXPERT_UP, QF_FUSED_HALVES);
    assert_int_equal(s.rows, 2);
    assert_int_equal(s.cols, 3);
    qf_expert_slice_read(&s, out);
    const uint16_t up_halves[] = {102, 112, 122, 103, 113, 123};
    assert_memory_equal(out, up_halves, sizeof up_halves);
    /* gate: the first half */
    s = qf_expert_slice_of(&g, 1, QF_EXPERT_GATE, QF_FUSED_HALVES);
    qf_expert_slice_read(&s, out);
    const uint16_t gate_halves[] = {100, 110, 120, 101, 111, 121};
    assert_memory_equal(out, gate_halves, sizeof gate_halves);
    /* GPT-OSS: gate in the even columns, up in the odd ones */
    s = qf_expert_slice_of(&g, 0, QF_EXPERT_UP, QF_FUSED_INTERLEAVED);
    qf_expert_slice_read(&s, out);
    const uint16_t up_inter[] = {1, 11, 21, 3, 13, 23};
    assert_memory_equal(out, up_inter, sizeof up_inter);
    /* down, expert 1: Linear [H=3, I=2], down[r][c] = down_proj[1][c][r] */
    s = qf_expert_slice_of(&d, 1, QF_EXPERT_DOWN, QF_FUSED_HALVES);
    assert_int_equal(s.rows, 3);
    assert_int_equal(s.cols, 2);
    qf_expert_slice_read(&s, out);
    const uint16_t down1[] = {100, 110, 101, 111, 102, 112};
    assert_memory_equal(out, down1, sizeof down1);
    /* an expert's block is [e] of the tensor, at its own offset */
    qf_tensor b = qf_expert_block(&d, 1);
    assert_int_equal(b.nbytes, 2 * 3 * 2);
    assert_ptr_equal(b.data, d.data + 12);
    free(gu), free(dn);
}

static void test_bad_shapes_refused(void **state)
{
    (void)state;
    uint16_t *gu, *dn;
    qf_error err = {0};
    qf_tensor odd = qf_coded("x.experts.gate_up_proj", 2, 3, 5, &gu);
    assert_int_equal(qf_fused_experts_check("ckpt", &odd, NULL, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "ckpt: tensor 'x.experts.gate_up_proj'"));
    assert_non_null(strstr(err.msg, "odd"));
    free(gu);
    qf_tensor g = qf_coded("x.experts.gate_up_proj", 2, 3, 4, &gu);
    qf_tensor d = qf_coded("x.experts.down_proj", 2, 3, 3, &dn); /* I = 3, gate_up says 2 */
    assert_int_equal(qf_fused_experts_check("ckpt", &g, &d, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'x.experts.down_proj' is [2, 3, 3]"));
    d.ndim = 2;
    assert_int_equal(qf_fused_experts_check("ckpt", NULL, &d, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'x.experts.down_proj': a fused expert tensor must be 3-D"));
    free(gu), free(dn);
}

/* A checkpoint in memory: layer 0's fused experts (E = 2, H = 128, I = 128) and a q_proj. */
typedef struct {
    qf_checkpoint ck;
    qf_tensor t[3];
    uint16_t *buf[3];
} qf_mem_ck;

static void qf_mem_ck_init(qf_mem_ck *m, int64_t down_i)
{
    memset(m, 0, sizeof *m);
    m->t[0] = qf_coded("model.layers.0.feed_forward.experts.down_proj", 2, down_i, 128, &m->buf[0]);
    m->t[1] = qf_coded("model.layers.0.feed_forward.experts.gate_up_proj", 2, 128, 256, &m->buf[1]);
    m->t[2] = qf_coded("model.layers.0.self_attn.q_proj.weight", 1, 128, 128, &m->buf[2]);
    m->t[2].ndim = 2, m->t[2].shape[0] = 128, m->t[2].shape[1] = 128;
    m->ck = (qf_checkpoint){.dir = "ckpt", .n_tensors = 3, .tensors = m->t};
}

static void qf_mem_ck_free(qf_mem_ck *m)
{
    for (int i = 0; i < 3; i++) free(m->buf[i]);
}

static qf_convert_opts qf_opts(void)
{
    qf_convert_opts o;
    memset(&o, 0, sizeof o);
    o.scheme = qf_scheme_find("w4a16");
    o.layer_first = o.layer_last = -1;
    return o;
}

static void test_plan_unfuses_llama4(void **state)
{
    (void)state;
    qf_mem_ck m;
    qf_mem_ck_init(&m, 128);
    qf_convert_opts o = qf_opts();
    qf_convert_plan p;
    qf_error err = {0};
    assert_int_equal(qf_plan_build(&o, &m.ck, "llama4_text", &p, &err), QF_OK);
    assert_int_equal(p.n_mods, 7); /* 2 experts x 3 projections + q_proj */
    assert_int_equal(p.n_dense_experts, 0);
    assert_null(qf_plan_find(&p, "model.layers.0.feed_forward.experts.gate_up_proj"));
    const qf_out_tensor *ot = qf_plan_find(&p, "model.layers.0.feed_forward.experts.1.up_proj.weight_packed");
    assert_non_null(ot);
    const qf_module_plan *mp = &p.mods[ot->mod];
    assert_true(mp->sliced);
    assert_int_equal(mp->slice.expert, 1);
    assert_int_equal(mp->slice.part, QF_EXPERT_UP);
    assert_int_equal(mp->slice.layout, QF_FUSED_HALVES);
    assert_string_equal(mp->module, "model.layers.0.feed_forward.experts.1.up_proj");
    assert_non_null(qf_plan_find(&p, "model.layers.0.feed_forward.experts.0.down_proj.weight_scale"));
    qf_plan_free(&p);

    /* an expert ignored by --ignore is written dense, as its own 2-D weight */
    o.ignore[0] = "experts\\.0\\.gate_proj";
    o.n_ignore = 1;
    assert_int_equal(qf_plan_build(&o, &m.ck, "llama4_text", &p, &err), QF_OK);
    ot = qf_plan_find(&p, "model.layers.0.feed_forward.experts.0.gate_proj.weight");
    assert_non_null(ot);
    assert_int_equal(ot->plan_index, -1);
    assert_true(ot->mod >= 0 && p.mods[ot->mod].sliced);
    assert_int_equal(ot->shape[0], 128);
    assert_int_equal(ot->nbytes, 128 * 128 * 2);
    qf_plan_free(&p);
    qf_mem_ck_free(&m);
}

static void test_plan_keeps_gpt_oss_and_refuses_the_rest(void **state)
{
    (void)state;
    qf_mem_ck m;
    qf_mem_ck_init(&m, 128);
    qf_convert_opts o = qf_opts();
    qf_convert_plan p;
    qf_error err = {0};
    assert_int_equal(qf_plan_build(&o, &m.ck, "gpt_oss", &p, &err), QF_OK);
    assert_int_equal(p.n_dense_experts, 2);
    assert_string_equal(p.dense_experts[0], "model.layers.0.feed_forward.experts.down_proj");
    assert_non_null(qf_plan_find(&p, "model.layers.0.feed_forward.experts.gate_up_proj"));
    int listed = 0;
    for (int i = 0; i < p.n_ignored; i++) listed += strcmp(p.ignored_modules[i], "model.layers.0.feed_forward.experts") == 0;
    assert_int_equal(listed, 1); /* once for the pair */
    qf_plan_free(&p);

    assert_int_equal(qf_plan_build(&o, &m.ck, "qwen3_moe", &p, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "tensor 'model.layers.0.feed_forward.experts.down_proj'"));
    qf_plan_free(&p);

    o.calibrated = 1;
    assert_int_equal(qf_plan_build(&o, &m.ck, "llama4_text", &p, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "calibrated"));
    qf_plan_free(&p);
    qf_mem_ck_free(&m);

    qf_mem_ck_init(&m, 64); /* down_proj's I disagrees with gate_up's */
    o.calibrated = 0;
    assert_int_equal(qf_plan_build(&o, &m.ck, "llama4_text", &p, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "ckpt: tensor 'model.layers.0.feed_forward.experts.down_proj' is [2, 64, 128]"));
    qf_plan_free(&p);
    qf_mem_ck_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_exact),
        cmocka_unit_test(test_bad_shapes_refused),
        cmocka_unit_test(test_plan_unfuses_llama4),
        cmocka_unit_test(test_plan_keeps_gpt_oss_and_refuses_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
