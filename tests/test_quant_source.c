/* test_quant_source.c - already-quantized sources read as bf16 (formats/qf_quant_source.h).
 *
 * Small checkpoints written here, decoded through qf_checkpoint_open_source, against values
 * from the formats' definitions written out in this file (E4M3 and E2M1 code tables, block
 * placement by hand), never qforge's own codecs; and the refusals, by status and message.
 * The bit-for-bit check against transformers on real layouts is tests/interop/quant_sources.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qf_fs.h"
#include "qf_quant_source.h"
#include "qf_st_writer.h"
#include "qf_test_tmpdir.h"

/* One checkpoint folder: config.json text and one safetensors file of n tensors. */
static const char *qf_make_source(const char *name, const char *config, const qf_st_entry *e, const void *const *data, int n)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", qf_test_tmp, name);
    qf_error err;
    assert_int_equal(qf_mkdirs(dir, &err), QF_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(config, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    qf_st_writer *w;
    assert_int_equal(qf_st_writer_open(path, e, n, &w, &err), QF_OK);
    for (int i = 0; i < n; i++) assert_int_equal(qf_st_writer_write(w, i, data[i], qf_st_entry_bytes(&e[i]), &err), QF_OK);
    assert_int_equal(qf_st_writer_close(w, NULL, NULL, NULL, NULL, &err), QF_OK);
    return dir;
}

static float qf_bf16_value(const qf_tensor *t, int64_t i)
{
    uint16_t h;
    memcpy(&h, t->data + 2 * i, 2);
    uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* E4M3 codes used below and their values (sign, 4 exponent bits of bias 7, 3 mantissa bits). */
static const struct { uint8_t code; float value; } qf_e4m3_table[] = {
    {0x38, 1.0f}, {0x40, 2.0f}, {0x30, 0.5f}, {0xB8, -1.0f}, {0x3C, 1.5f}, {0x01, 0x1p-9f}, {0x7E, 448.0f}, {0x00, 0.0f}};

static float qf_e4m3_ref(uint8_t c)
{
    for (size_t i = 0; i < sizeof qf_e4m3_table / sizeof *qf_e4m3_table; i++)
        if (qf_e4m3_table[i].code == c) return qf_e4m3_table[i].value;
    fail_msg("code 0x%02x not in the test's table", c);
    return 0;
}

/* DeepSeek-style blocks [2, 2] over a [3, 5] weight: the last block row and column are partial. */
static void test_fp8_block_partial_edges(void **state)
{
    (void)state;
    uint8_t q[15];
    for (int i = 0; i < 15; i++) q[i] = qf_e4m3_table[i % 8].code;
    const float sinv[6] = {1.0f, 2.0f, 0.5f, 4.0f, 0.25f, 8.0f}; /* [2, 3]: distinct, so a misplaced block shows */
    const uint16_t norm[5] = {0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80};
    const qf_st_entry e[] = {{"model.layers.0.mlp.up_proj.weight", QF_DTYPE_F8_E4M3, 2, {3, 5}},
                             {"model.layers.0.mlp.up_proj.weight_scale_inv", QF_DTYPE_F32, 2, {2, 3}},
                             {"model.norm.weight", QF_DTYPE_BF16, 1, {5}}};
    const void *d[] = {q, sinv, norm};
    const char *dir = qf_make_source("fp8", "{\"quantization_config\": {\"quant_method\": \"fp8\", \"weight_block_size\": "
                                            "[2, 2], \"activation_scheme\": \"dynamic\"}}", e, d, 3);
    qf_checkpoint *ck;
    qf_qsource qs;
    qf_error err;
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, &qs, &err), QF_OK);
    assert_int_equal(qs.kind, QF_QSOURCE_FP8_BLOCK);
    assert_int_equal(qs.n_quantized, 1);
    assert_int_equal(qs.n_dropped, 1);
    assert_int_equal(ck->n_tensors, 2); /* the scale is gone */
    assert_null(qf_checkpoint_find(ck, "model.layers.0.mlp.up_proj.weight_scale_inv"));
    const qf_tensor *t = qf_checkpoint_find(ck, "model.layers.0.mlp.up_proj.weight");
    assert_non_null(t);
    assert_null(t->data); /* decoded on demand, not when the table is built */
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    assert_int_equal(t->dtype, QF_DTYPE_BF16);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 5);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) /* every product here is exact in bf16 */
            assert_true(qf_bf16_value(t, r * 5 + c) == qf_e4m3_ref(q[r * 5 + c]) * sinv[(r / 2) * 3 + c / 2]);
    qf_checkpoint_release(ck, t); /* the buffer goes; the next acquire decodes again */
    assert_null(t->data);
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    assert_true(qf_bf16_value(t, 14) == qf_e4m3_ref(q[14]) * sinv[5]);
    void *taken = qf_checkpoint_take(ck, t); /* a write queue's way: the buffer is the caller's now */
    assert_non_null(taken);
    assert_null(t->data);
    free(taken);
    assert_null(qf_checkpoint_take(ck, qf_checkpoint_find(ck, "model.norm.weight"))); /* stored: nothing to take */
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    qf_checkpoint_free(ck); /* frees the acquired buffer too (valgrind / ASan would say otherwise) */
}

/* compressed-tensors fp8, per output channel, with an activation scale that must disappear.
 * 1.5 * (1 + 2^-7) = 1.51171875 lies half way between the bf16 values 0x3FC1 and 0x3FC2: one
 * rounding, to nearest even, gives 0x3FC2 (truncation would give 0x3FC1). */
static void test_ct_fp8_channel(void **state)
{
    (void)state;
    const uint8_t q[6] = {0x38, 0x3C, 0xB8, 0x40, 0x30, 0x3C};
    const uint16_t scale[2] = {0x3F81 /* 1 + 2^-7 */, 0x4080 /* 4 */};
    const float in_scale = 0.5f;
    const qf_st_entry e[] = {{"l.weight", QF_DTYPE_F8_E4M3, 2, {2, 3}},
                             {"l.weight_scale", QF_DTYPE_BF16, 2, {2, 1}},
                             {"l.input_scale", QF_DTYPE_F32, 1, {1}}};
    const void *d[] = {q, scale, &in_scale};
    const char *dir = qf_make_source("ct", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
                                           "\"config_groups\": {\"group_0\": {\"weights\": {\"type\": \"float\", "
                                           "\"num_bits\": 8, \"strategy\": \"channel\"}}}}}", e, d, 3);
    qf_checkpoint *ck;
    qf_qsource qs;
    qf_error err;
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, &qs, &err), QF_OK);
    assert_int_equal(qs.kind, QF_QSOURCE_CT_FP8);
    assert_int_equal(ck->n_tensors, 1);
    const qf_tensor *t = &ck->tensors[0];
    assert_string_equal(t->name, "l.weight");
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    const float s0 = 1.0078125f;
    assert_true(qf_bf16_value(t, 0) == s0);
    uint16_t h;
    memcpy(&h, t->data + 2, 2);
    assert_int_equal(h, 0x3FC2);
    assert_true(qf_bf16_value(t, 2) == -s0);
    assert_true(qf_bf16_value(t, 3) == 8.0f && qf_bf16_value(t, 4) == 2.0f && qf_bf16_value(t, 5) == 6.0f);
    qf_checkpoint_free(ck);
}

/* ModelOpt FP8 announced only by hf_quant_config.json: one scalar scale per tensor ([] shape),
 * input_scale and the attention's k_scale dropped. */
static void test_modelopt_fp8_tensor(void **state)
{
    (void)state;
    const uint8_t q[4] = {0x38, 0x40, 0xB8, 0x3C};
    const float scale = 0.25f, in_scale = 2.0f, k_scale = 1.0f;
    const qf_st_entry e[] = {{"m.k_proj.k_scale", QF_DTYPE_F32, 0, {0}},
                             {"m.weight", QF_DTYPE_F8_E4M3, 2, {2, 2}},
                             {"m.weight_scale", QF_DTYPE_F32, 0, {0}},
                             {"m.input_scale", QF_DTYPE_F32, 0, {0}}};
    const void *d[] = {&k_scale, q, &scale, &in_scale};
    const char *dir = qf_make_source("modelopt", "{\"model_type\": \"llama\"}", e, d, 4);
    char path[600];
    snprintf(path, sizeof path, "%s/hf_quant_config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"quantization\": {\"quant_algo\": \"FP8\", \"kv_cache_quant_algo\": null}}", f);
    fclose(f);
    qf_checkpoint *ck;
    qf_qsource qs;
    qf_error err;
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, &qs, &err), QF_OK);
    assert_int_equal(qs.kind, QF_QSOURCE_MODELOPT_FP8);
    assert_non_null(strstr(qs.origin, "hf_quant_config.json"));
    assert_int_equal(qs.n_dropped, 3);
    assert_int_equal(ck->n_tensors, 1);
    const qf_tensor *t = &ck->tensors[0];
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    assert_true(qf_bf16_value(t, 0) == 0.25f && qf_bf16_value(t, 1) == 0.5f && qf_bf16_value(t, 2) == -0.25f &&
                qf_bf16_value(t, 3) == 0.375f);
    qf_checkpoint_free(ck);
}

/* compressed-tensors FP8 with strategy block: the block comes from the group's block_structure. */
static void test_ct_fp8_block(void **state)
{
    (void)state;
    uint8_t q[6];
    for (int i = 0; i < 6; i++) q[i] = 0x38; /* all 1.0: the output shows each element's scale */
    /* [3, 2] in blocks of [2, 2]: a grid of [2, 1], the second block row partial */
    const qf_st_entry e[] = {{"b.weight", QF_DTYPE_F8_E4M3, 2, {3, 2}}, {"b.weight_scale", QF_DTYPE_F32, 2, {2, 1}}};
    const float grid[2] = {2.0f, 8.0f};
    const void *d[] = {q, grid};
    const char *dir = qf_make_source("ct_block", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
                                                 "\"config_groups\": {\"g\": {\"weights\": {\"type\": \"float\", "
                                                 "\"num_bits\": 8, \"strategy\": \"block\", \"block_structure\": [2, 2]}}}}}",
                                     e, d, 2);
    qf_checkpoint *ck;
    qf_qsource qs;
    qf_error err;
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, &qs, &err), QF_OK);
    const qf_tensor *t = &ck->tensors[0];
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    for (int r = 0; r < 3; r++) /* rows 0-1 in block row 0, row 2 in the partial block row 1 */
        for (int c = 0; c < 2; c++) assert_true(qf_bf16_value(t, r * 2 + c) == grid[r / 2]);
    qf_checkpoint_free(ck);
}

/* E2M1 codes 0..7 and their values; bit 3 is the sign. */
static float qf_e2m1_ref(int c)
{
    static const float v[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    return (c & 8) ? -v[c & 7] : v[c & 7];
}

/* GPT-OSS: blocks [E=1, N=2, G=2, 16], scales [1, 2, 2] -> [1, 64, 2], transposed; value k of
 * row n is byte k/2's low nibble (k even) or high nibble (k odd), times 2^(scale - 127). */
static void test_mxfp4_experts(void **state)
{
    (void)state;
    uint8_t blocks[64], scales[4] = {127, 128, 126, 130}; /* 1, 2, 1/2, 8 */
    for (int i = 0; i < 64; i++) blocks[i] = (uint8_t)((i * 7 + 3) & 0xFF);
    const qf_st_entry e[] = {{"model.layers.0.mlp.experts.down_proj_blocks", QF_DTYPE_U8, 4, {1, 2, 2, 16}},
                             {"model.layers.0.mlp.experts.down_proj_scales", QF_DTYPE_U8, 3, {1, 2, 2}}};
    const void *d[] = {blocks, scales};
    const char *dir = qf_make_source("mxfp4", "{\"quantization_config\": {\"quant_method\": \"mxfp4\"}}", e, d, 2);
    qf_checkpoint *ck;
    qf_qsource qs;
    qf_error err;
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, &qs, &err), QF_OK);
    assert_int_equal(qs.kind, QF_QSOURCE_MXFP4);
    assert_int_equal(ck->n_tensors, 1);
    const qf_tensor *t = qf_checkpoint_find(ck, "model.layers.0.mlp.experts.down_proj");
    assert_non_null(t);
    assert_int_equal(qf_checkpoint_acquire(ck, t, &err), QF_OK);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->shape[2], 2);
    const float step[4] = {1.0f, 2.0f, 0.5f, 8.0f};
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 64; k++) {
            const int g = k / 32, byte = blocks[(n * 2 + g) * 16 + (k % 32) / 2];
            const int code = k % 2 ? byte >> 4 : byte & 15;
            assert_true(qf_bf16_value(t, k * 2 + n) == qf_e2m1_ref(code) * step[n * 2 + g]);
        }
    qf_checkpoint_free(ck);
}

/* Each refusal: status and a word of the one-line message. */
static void qf_expect_refusal(const char *name, const char *config, const qf_st_entry *e, const void *const *d, int n,
                              qf_status want, const char *needle)
{
    const char *dir = qf_make_source(name, config, e, d, n);
    qf_checkpoint *ck = NULL;
    qf_error err = {0};
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, NULL, &err), want);
    assert_null(ck);
    if (!strstr(err.msg, needle)) fail_msg("%s: message '%s' lacks '%s'", name, err.msg, needle);
}

static void test_refusals(void **state)
{
    (void)state;
    const uint8_t q[4] = {0x38, 0x38, 0x38, 0x38};
    const float one = 1.0f, four[4] = {1, 1, 1, 1};
    const uint16_t bf[4] = {0x3f80, 0x3f80, 0x3f80, 0x3f80};
    const qf_st_entry fp8_alone[] = {{"l.weight", QF_DTYPE_F8_E4M3, 2, {2, 2}}};
    const qf_st_entry fp8_pair[] = {{"l.weight", QF_DTYPE_F8_E4M3, 2, {2, 2}}, {"l.weight_scale_inv", QF_DTYPE_F32, 2, {1, 1}}};
    const qf_st_entry fp8_grid[] = {{"l.weight", QF_DTYPE_F8_E4M3, 2, {2, 2}}, {"l.weight_scale_inv", QF_DTYPE_F32, 2, {2, 2}}};
    const qf_st_entry orphan[] = {{"l.weight", QF_DTYPE_BF16, 2, {2, 2}}, {"l.weight_scale_inv", QF_DTYPE_F32, 2, {1, 1}}};
    const void *d1[] = {q}, *d2[] = {q, &one}, *d4[] = {q, four}, *dor[] = {bf, &one};
    const char *fp8 = "{\"quantization_config\": {\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}}";
    qf_expect_refusal("gptq", "{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4}}", fp8_pair, d2, 2,
                      QF_ERR_UNSUPPORTED, "quant_method 'gptq'");
    qf_expect_refusal("undeclared", "{}", fp8_pair, d2, 2, QF_ERR_UNSUPPORTED, "declares no quantization_config");
    qf_expect_refusal("no_scale", fp8, fp8_alone, d1, 1, QF_ERR_FORMAT, "'l.weight_scale_inv' is missing");
    qf_expect_refusal("bad_grid", fp8, fp8_grid, d4, 2, QF_ERR_FORMAT, "fit no fp8-block grid");
    qf_expect_refusal("orphan", fp8, orphan, dor, 2, QF_ERR_FORMAT, "l.weight_scale_inv");
    qf_expect_refusal("ct_int4", "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", \"config_groups\": "
                                 "{\"g\": {\"weights\": {\"type\": \"int\", \"num_bits\": 4, \"strategy\": \"group\"}}}}}",
                      fp8_pair, d2, 2, QF_ERR_UNSUPPORTED, "int 4-bit");
    qf_expect_refusal("modelopt_nvfp4", "{\"quantization_config\": {\"quant_method\": \"modelopt\", \"quant_algo\": "
                                        "\"NVFP4\"}}", fp8_pair, d2, 2, QF_ERR_UNSUPPORTED, "NVFP4");
    uint8_t blocks[32] = {0}, nan_scale[2] = {127, 0xFF};
    const qf_st_entry mx[] = {{"e.gate_up_proj_blocks", QF_DTYPE_U8, 4, {1, 2, 1, 16}},
                              {"e.gate_up_proj_scales", QF_DTYPE_U8, 3, {1, 2, 1}}};
    const void *dmx[] = {blocks, nan_scale};
    qf_expect_refusal("mx_nan", "{\"quantization_config\": {\"quant_method\": \"mxfp4\"}}", mx, dmx, 2, QF_ERR_FORMAT,
                      "0xFF");
    const qf_st_entry mx_alone[] = {{"e.gate_up_proj_blocks", QF_DTYPE_U8, 4, {1, 2, 1, 16}}};
    qf_expect_refusal("mx_alone", "{\"quantization_config\": {\"quant_method\": \"mxfp4\"}}", mx_alone, dmx, 1,
                      QF_ERR_FORMAT, "e.gate_up_proj_scales");
}

/* A float checkpoint is read unchanged, and says so. */
static void test_float_source(void **state)
{
    (void)state;
    const uint16_t bf[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    const qf_st_entry e[] = {{"l.weight", QF_DTYPE_BF16, 2, {2, 2}}};
    const void *d[] = {bf};
    const char *dir = qf_make_source("float", "{\"model_type\": \"llama\"}", e, d, 1);
    qf_checkpoint *ck;
    qf_qsource qs;
    qf_error err;
    assert_int_equal(qf_checkpoint_open_source(dir, &ck, &qs, &err), QF_OK);
    assert_int_equal(qs.kind, QF_QSOURCE_NONE);
    assert_int_equal(ck->n_tensors, 1);
    assert_true(qf_bf16_value(&ck->tensors[0], 3) == 4.0f);
    qf_checkpoint_free(ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp8_block_partial_edges), cmocka_unit_test(test_ct_fp8_channel),
        cmocka_unit_test(test_mxfp4_experts),           cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_float_source),            cmocka_unit_test(test_modelopt_fp8_tensor),
        cmocka_unit_test(test_ct_fp8_block),
    };
    return cmocka_run_group_tests(tests, qf_test_tmp_setup, qf_test_tmp_teardown);
}
