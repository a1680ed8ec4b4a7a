/* test_gguf.c - GGUF block codecs, writer, reader and the llama mapping, on hand-made inputs.
 *
 * Codecs: hand-computed Q8_0 and Q4_0 blocks (scale rule, rounding, the j / j+16 nibble pairing,
 * the "signed max" of Q4_0), a hand-packed Q4_K block (6-bit scales and mins of sub-blocks 4..7),
 * and error bounds of each quantizer on random rows (Q8_0 half a step plus the f16 rounding of
 * its scale, Q4_0 one step; Q4_K below Q4_0's NMSE).  Writer -> reader round trip: metadata of every kind, tensor infos, alignment,
 * data-span hashes.  Reader hostile inputs: every truncation, bad magic, absurd counts, nested
 * arrays, lying offsets and sizes, oversized names, unknown types - each a message, never a
 * crash.  Llama mapping: names both ways, the Q/K permutation and its inverse (checked against
 * the formula of convert_hf_to_gguf.py on a small case), and a written GGUF loaded back as a
 * Hugging Face checkpoint.  llama.cpp's keys: tokenizer.ggml.pre from the pre-tokenizer (known
 * regexes only, matched exactly), add_bos / add_eos as its converter decides, general.size_label
 * as gguf-py rounds it, and tiny-llama's own tokenizer and config written and read back.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qf_gguf.h"
#include "qf_numfmt.h"

static uint64_t rng = 0x12345678abcdefull;
static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((int64_t)(rng % 2000001) - 1000000) / 1000000.0f;
}

static void test_types(void **state)
{
    (void)state;
    assert_int_equal(qf_ggml_type_size(QF_GGML_Q8_0), 34);
    assert_int_equal(qf_ggml_type_size(QF_GGML_Q4_0), 18);
    assert_int_equal(qf_ggml_type_size(QF_GGML_Q4_K), 144);
    assert_int_equal(qf_ggml_type_size(QF_GGML_Q6_K), 210);
    assert_int_equal(qf_ggml_block_size(QF_GGML_Q4_K), 256);
    assert_int_equal(qf_ggml_row_bytes(QF_GGML_Q4_0, 384), 12 * 18);
    assert_int_equal(qf_ggml_type_from_name("q4_k"), QF_GGML_Q4_K);
    assert_int_equal(qf_ggml_type_from_name("BF16"), QF_GGML_BF16);
    assert_int_equal(qf_ggml_type_from_name("q3_x"), -1);
    assert_string_equal(qf_ggml_type_name(QF_GGML_Q8_0), "Q8_0");
    assert_int_equal(qf_ggml_type_support(QF_GGML_Q6_K), 1);
    assert_int_equal(qf_ggml_type_support(QF_GGML_Q5_K), 1);
    assert_int_equal(qf_ggml_type_support(QF_GGML_Q2_K), 0);
}

static void test_q8_0_and_q4_0_by_hand(void **state)
{
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) / 16.0f; /* -1 .. 0.9375 */
    uint8_t b[34];
    qf_ggml_quantize_row(QF_GGML_Q8_0, x, 32, b);
    float d = qf_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
    assert_true(d == qf_f16_to_f32(qf_f32_to_f16(1.0f / 127.0f)));
    assert_int_equal((int8_t)b[2], -127);     /* x[0] = -1 */
    assert_int_equal((int8_t)b[2 + 16], 0);   /* x[16] = 0 */
    assert_int_equal((int8_t)b[2 + 24], 64);  /* 0.5 * 127 = 63.5 -> 64 (ties away from zero) */
    /* Q4_0: the element of largest magnitude is -1 (signed): d = -1 / -8 = 0.125, codes x/d + 8 */
    uint8_t q[18];
    qf_ggml_quantize_row(QF_GGML_Q4_0, x, 32, q);
    assert_true(qf_f16_to_f32((uint16_t)(q[0] | q[1] << 8)) == 0.125f);
    /* byte j: element j low, element j + 16 high; element 0: -1 / 0.125 + 8.5 -> 0, element 16: 8 */
    assert_int_equal(q[2] & 15, 0);
    assert_int_equal(q[2] >> 4, 8);
    /* element 31 = 0.9375: 7.5 + 8.5 = 16 -> clamped to 15 */
    assert_int_equal(q[2 + 15] >> 4, 15);
    float y[32];
    qf_ggml_dequantize_row(QF_GGML_Q4_0, q, 32, y);
    assert_true(y[0] == -1.0f && y[16] == 0.0f && y[31] == 0.875f);
    /* positive max: d negative, codes mirrored */
    for (int j = 0; j < 32; j++) x[j] = -x[j];
    qf_ggml_quantize_row(QF_GGML_Q4_0, x, 32, q);
    qf_ggml_dequantize_row(QF_GGML_Q4_0, q, 32, y);
    assert_true(y[0] == 1.0f);
    /* all zero: d = 0, everything decodes to 0 */
    memset(x, 0, sizeof x);
    qf_ggml_quantize_row(QF_GGML_Q4_0, x, 32, q);
    qf_ggml_dequantize_row(QF_GGML_Q4_0, q, 32, y);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 0.0f);
}

static void test_q4_k_by_hand(void **state)
{
    (void)state;
    /* d = 1, dmin = 0.5; sub-block j has scale j + 1 and min j; scales 4..7 use the split 6-bit packing */
    uint8_t b[144] = {0};
    uint16_t one = qf_f32_to_f16(1.0f), half = qf_f32_to_f16(0.5f);
    b[0] = (uint8_t)one, b[1] = (uint8_t)(one >> 8), b[2] = (uint8_t)half, b[3] = (uint8_t)(half >> 8);
    uint8_t *sc = b + 4;
    int scl[8], mn[8];
    for (int j = 0; j < 8; j++) scl[j] = j + 1 + (j >= 4 ? 40 : 0), mn[j] = j + (j >= 6 ? 50 : 0);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = (uint8_t)scl[j], sc[j + 4] = (uint8_t)mn[j];
        } else {
            sc[j + 4] = (uint8_t)((scl[j] & 15) | (mn[j] & 15) << 4);
            sc[j - 4] |= (uint8_t)((scl[j] >> 4) << 6);
            sc[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
    for (int i = 0; i < 128; i++) b[16 + i] = (uint8_t)((i % 16) | ((15 - i % 16) << 4));
    float y[256];
    qf_ggml_dequantize_row(QF_GGML_Q4_K, b, 256, y);
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) {
            int lo = (32 * c + i) % 16, hi = 15 - lo;
            assert_true(y[64 * c + i] == (float)scl[2 * c] * lo - 0.5f * (float)mn[2 * c]);
            assert_true(y[64 * c + 32 + i] == (float)scl[2 * c + 1] * hi - 0.5f * (float)mn[2 * c + 1]);
        }
}

static double nmse_of(int type, int n)
{
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    uint8_t *q = malloc(qf_ggml_row_bytes(type, n));
    for (int i = 0; i < n; i++) x[i] = frand() * (i % 97 == 0 ? 4.0f : 1.0f);
    qf_ggml_quantize_row(type, x, n, q);
    qf_ggml_dequantize_row(type, q, n, y);
    double e = 0, s = 0;
    int bs = qf_ggml_block_size(type);
    /* per value: Q8_0 within half a step plus the f16 rounding of d (127 * 2^-11 steps at most);
     * Q4_0 within one step (the side opposite the signed max reaches only 7 steps of 8) */
    for (int b = 0; b < n / bs && bs == 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        float step = type == QF_GGML_Q8_0 ? amax / 127.0f : amax / 8.0f;
        float bound = type == QF_GGML_Q8_0 ? step * (0.5f + 127.0f / 2048.0f) : step * 1.001f;
        for (int j = 0; j < 32; j++) assert_true(fabsf(x[32 * b + j] - y[32 * b + j]) <= bound + 1e-7f);
    }
    for (int i = 0; i < n; i++) e += (double)(x[i] - y[i]) * (x[i] - y[i]), s += (double)x[i] * x[i];
    free(x), free(y), free(q);
    return e / s;
}

static void test_quantizer_bounds(void **state)
{
    (void)state;
    double q8 = nmse_of(QF_GGML_Q8_0, 4096), q4 = nmse_of(QF_GGML_Q4_0, 4096), q4k = nmse_of(QF_GGML_Q4_K, 4096);
    printf("NMSE on uniform rows: Q8_0 %.2e, Q4_0 %.2e, Q4_K %.2e\n", q8, q4, q4k);
    assert_true(q8 < 1e-4);
    assert_true(q4 < 2e-2);
    assert_true(q4k < q4); /* the min/scale fit beats the symmetric 4-bit grid */
}

/* ---- writer and reader ------------------------------------------------------------------------ */

static char *tmp_path(const char *name)
{
    static char dir[64];
    if (!dir[0]) {
        strcpy(dir, "/tmp/qf-gguf-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    return qf_path_join(dir, name);
}

static qf_status write_small(const char *path, qf_hash128 *hashes)
{
    qf_gguf_writer *w = qf_gguf_writer_new();
    qf_error err;
    qf_gguf_kv_str(w, "general.architecture", "llama");
    qf_gguf_kv_u32(w, "llama.attention.head_count", 2);
    qf_gguf_kv_u32(w, "llama.attention.head_count_kv", 1);
    qf_gguf_kv_f32(w, "llama.rope.freq_base", 10000.0f);
    qf_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", 1);
    qf_gguf_kv_i32(w, "x.neg", -5);
    const char *toks[] = {"a", "bb", "ccc"};
    qf_gguf_kv_str_array(w, "tokenizer.ggml.tokens", toks, 3);
    int32_t tt[] = {1, 3, 4};
    qf_gguf_kv_i32_array(w, "tokenizer.ggml.token_type", tt, 3);
    /* q: 8 rows x 64 (2 heads of 4), k: 4 x 64, norm: 64 */
    assert_int_equal(qf_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", QF_GGML_Q8_0, 2, (int64_t[]){8, 64}, &err), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "blk.0.attn_k.weight", QF_GGML_F32, 2, (int64_t[]){4, 64}, &err), 1);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", QF_GGML_F32, 1, (int64_t[]){64}, &err), 2);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "bad", QF_GGML_Q4_0, 2, (int64_t[]){2, 48}, &err), -1); /* 48 % 32 */
    assert_int_equal(qf_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", QF_GGML_F32, 1, (int64_t[]){64}, &err), -1);
    qf_status s = qf_gguf_writer_open(w, path, &err);
    float q[8 * 64], k[4 * 64], nrm[64];
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 64; c++) q[r * 64 + c] = (float)(r + 1) * 0.25f; /* row r -> value (r+1)/4 */
    for (int i = 0; i < 256; i++) k[i] = (float)(i / 64) + 0.5f;
    for (int i = 0; i < 64; i++) nrm[i] = 1.0f + (float)i / 64.0f;
    uint8_t qb[8 * 68];
    for (int r = 0; r < 8; r++) qf_ggml_quantize_row(QF_GGML_Q8_0, q + r * 64, 64, qb + r * 68);
    if (!s) s = qf_gguf_writer_write(w, 0, qb, 200, &err); /* in two pieces */
    if (!s) s = qf_gguf_writer_write(w, 0, qb + 200, sizeof qb - 200, &err);
    if (!s) assert_int_not_equal(qf_gguf_writer_write(w, 2, nrm, sizeof nrm, &err), QF_OK); /* out of order */
    if (!s) s = qf_gguf_writer_write(w, 1, k, sizeof k, &err);
    if (!s) s = qf_gguf_writer_write(w, 2, nrm, sizeof nrm, &err);
    uint64_t size;
    qf_hash128 fh;
    if (!s) s = qf_gguf_writer_close(w, &size, &fh, hashes, &err);
    qf_gguf_writer_free(w);
    return s;
}

static void test_round_trip(void **state)
{
    (void)state;
    char *path = tmp_path("small.gguf");
    qf_hash128 h[3];
    assert_int_equal(write_small(path, h), QF_OK);
    qf_gguf *g;
    qf_error err;
    assert_int_equal(qf_gguf_open(path, &g, &err), QF_OK);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_tensors, 3);
    assert_string_equal(qf_gguf_get_str(g, "general.architecture"), "llama");
    int64_t v;
    double f;
    assert_int_equal(qf_gguf_get_int(g, "x.neg", &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(qf_gguf_get_float(g, "llama.rope.freq_base", &f), 0);
    assert_true(f == 10000.0);
    assert_true(json_is_true(json_object_get(g->kv, "tokenizer.ggml.add_bos_token")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(g->kv, "tokenizer.ggml.tokens"), 2)), "ccc");
    assert_int_equal(json_integer_value(json_object_get(g->kv_types, "tokenizer.ggml.tokens")), 100 + QF_GGUF_STRING);
    const qf_gguf_tensor *t = &g->tensors[0];
    assert_string_equal(t->name, "blk.0.attn_q.weight");
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 8);
    assert_int_equal(t->nbytes, 8 * 68);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g->tensors[i].offset % 32, 0);
        assert_true(qf_hash_equal(h[i], qf_hash_bytes(g->tensors[i].data, g->tensors[i].nbytes)));
    }
    float out[8 * 64];
    assert_int_equal(qf_gguf_dequant_tensor(g, 0, out, &err), QF_OK);
    assert_true(fabsf(out[3 * 64 + 5] - 1.0f) < 0.01f);
    qf_tensor *tt;
    int nt;
    assert_int_equal(qf_gguf_parse_tensors(path, g->data, g->size, &tt, &nt, &err), QF_OK);
    assert_int_equal(nt, 3);
    assert_int_equal(tt[0].dtype, QF_DTYPE_INVALID);
    assert_int_equal(tt[1].dtype, QF_DTYPE_F32);
    assert_int_equal(tt[1].shape[0], 4);
    qf_tensors_free(tt, nt);
    qf_gguf_free(g);
    free(path);
}

static void test_llama_mapping(void **state)
{
    (void)state;
    char b[128];
    const qf_gguf_arch *L = qf_gguf_arch_for("llama");
    assert_non_null(L);
    assert_int_equal(qf_gguf_name(L, "model.layers.12.self_attn.k_proj.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.12.attn_k.weight");
    assert_int_equal(qf_gguf_name(L, "model.layers.0.mlp.down_proj.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.0.ffn_down.weight");
    assert_int_equal(qf_gguf_name(L, "model.embed_tokens.weight", b, sizeof b), 1);
    assert_string_equal(b, "token_embd.weight");
    assert_int_equal(qf_gguf_name(L, "lm_head.weight", b, sizeof b), 1);
    assert_string_equal(b, "output.weight");
    assert_int_equal(qf_gguf_name(L, "model.layers.1.self_attn.q_proj.bias", b, sizeof b), 1);
    assert_string_equal(b, "blk.1.attn_q.bias");
    assert_int_equal(qf_gguf_name(L, "model.layers.0.self_attn.rotary_emb.inv_freq", b, sizeof b), 0);
    /* llama has no q/k norms in llama.cpp: refused, never written where llama.cpp would not read them */
    assert_int_equal(qf_gguf_name(L, "model.layers.0.self_attn.q_norm.weight", b, sizeof b), -1);
    /* llama.cpp's llama architecture holds Mixtral: the router maps, an expert is a slice */
    assert_int_equal(qf_gguf_name(L, "model.layers.0.block_sparse_moe.gate.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.0.ffn_gate_inp.weight");
    assert_int_equal(qf_gguf_name(L, "model.layers.0.block_sparse_moe.experts.1.w1.weight", b, sizeof b), -1);
    assert_int_equal(qf_gguf_hf_name(L, "blk.3.ffn_norm.weight", b, sizeof b), 0);
    assert_string_equal(b, "model.layers.3.post_attention_layernorm.weight");
    assert_int_equal(qf_gguf_hf_name(L, "output_norm.weight", b, sizeof b), 0);
    assert_string_equal(b, "model.norm.weight");
    assert_int_equal(qf_gguf_hf_name(L, "blk.3.unknown.weight", b, sizeof b), -1);
    /* convert_hf_to_gguf.py: W.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2): with 2
     * heads of 4 rows, HF rows [0 1 2 3 | 4 5 6 7] become [0 2 1 3 | 4 6 5 7] */
    int32_t src[8] = {0, 1, 2, 3, 4, 5, 6, 7}, dst[8], back[8];
    qf_gguf_permute_rows(src, dst, 8, 4, 2, 0);
    int32_t want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    assert_memory_equal(dst, want, sizeof want);
    qf_gguf_permute_rows(dst, back, 8, 4, 2, 1);
    assert_memory_equal(back, src, sizeof src);
    /* head_dim 8: [0..3 | 4..7] -> 0 4 1 5 2 6 3 7 */
    int32_t s8[8] = {0, 1, 2, 3, 4, 5, 6, 7}, d8[8], w8[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    qf_gguf_permute_rows(s8, d8, 8, 4, 1, 0);
    assert_memory_equal(d8, w8, sizeof w8);
}

/* Mixtral: experts w1 / w3 / w2 are slices of ffn_gate_exps / ffn_up_exps / ffn_down_exps
 * (convert_hf_to_gguf.py's LlamaModel stacks them so), and back; other names keep no expert */
static void test_mixtral_mapping(void **state)
{
    (void)state;
    char b[128];
    int e = 7;
    const qf_gguf_arch *M = qf_gguf_arch_for("mixtral");
    assert_non_null(M);
    assert_string_equal(M->name, "llama");
    assert_true(M->permute_qk);
    assert_int_equal(qf_gguf_name_expert(M, "model.layers.2.block_sparse_moe.experts.13.w2.weight", b, sizeof b, &e), 1);
    assert_string_equal(b, "blk.2.ffn_down_exps.weight"), assert_int_equal(e, 13);
    assert_int_equal(qf_gguf_name_expert(M, "model.layers.0.block_sparse_moe.experts.0.w3.weight", b, sizeof b, &e), 1);
    assert_string_equal(b, "blk.0.ffn_up_exps.weight"), assert_int_equal(e, 0);
    assert_int_equal(qf_gguf_name_expert(M, "model.layers.0.block_sparse_moe.experts.5.w1.weight", b, sizeof b, &e), 1);
    assert_string_equal(b, "blk.0.ffn_gate_exps.weight"), assert_int_equal(e, 5);
    assert_int_equal(qf_gguf_name_expert(M, "model.layers.0.self_attn.q_proj.weight", b, sizeof b, &e), 1);
    assert_int_equal(e, -1);
    assert_int_equal(qf_gguf_name_expert(M, "model.layers.0.block_sparse_moe.experts.5.w4.weight", b, sizeof b, &e), -1);
    assert_int_equal(qf_gguf_name_expert(M, "model.layers.0.block_sparse_moe.experts.5.w1.bias", b, sizeof b, &e), -1);
    assert_int_equal(qf_gguf_hf_name_expert(M, "blk.2.ffn_down_exps.weight", 13, b, sizeof b), 0);
    assert_string_equal(b, "model.layers.2.block_sparse_moe.experts.13.w2.weight");
    assert_int_equal(qf_gguf_hf_name_expert(M, "blk.2.ffn_gate_inp.weight", -1, b, sizeof b), 0);
    assert_string_equal(b, "model.layers.2.block_sparse_moe.gate.weight");
    assert_int_equal(qf_gguf_hf_name(M, "blk.2.ffn_up_exps.weight", b, sizeof b), -1); /* needs an expert */
    assert_int_equal(qf_gguf_hf_name_expert(M, "blk.2.attn_q.weight", 1, b, sizeof b), -1);
    /* Qwen: mlp.experts.E.{gate,up,down}_proj, mlp.gate; qwen2moe's shared expert and its gate */
    const qf_gguf_arch *Q2 = qf_gguf_arch_for("qwen2_moe"), *Q3 = qf_gguf_arch_for("qwen3_moe");
    assert_int_equal(qf_gguf_name_expert(Q3, "model.layers.1.mlp.experts.10.up_proj.weight", b, sizeof b, &e), 1);
    assert_string_equal(b, "blk.1.ffn_up_exps.weight"), assert_int_equal(e, 10);
    assert_int_equal(qf_gguf_name_expert(Q3, "model.layers.1.mlp.experts.01.up_proj.weight", b, sizeof b, &e), -1);
    assert_int_equal(qf_gguf_name_expert(Q3, "model.layers.1.mlp.experts.x.up_proj.weight", b, sizeof b, &e), -1);
    assert_int_equal(qf_gguf_name(Q3, "model.layers.1.mlp.gate.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.1.ffn_gate_inp.weight");
    assert_int_equal(qf_gguf_name(Q3, "model.layers.1.mlp.shared_expert.up_proj.weight", b, sizeof b), -1);
    assert_int_equal(qf_gguf_name(Q2, "model.layers.1.mlp.shared_expert.up_proj.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.1.ffn_up_shexp.weight");
    assert_int_equal(qf_gguf_name(Q2, "model.layers.1.mlp.shared_expert_gate.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.1.ffn_gate_inp_shexp.weight");
    assert_int_equal(qf_gguf_hf_name(Q2, "blk.0.ffn_gate_inp_shexp.weight", b, sizeof b), 0);
    assert_string_equal(b, "model.layers.0.mlp.shared_expert_gate.weight");
    assert_int_equal(qf_gguf_hf_name_expert(Q2, "blk.0.ffn_down_exps.weight", 2, b, sizeof b), 0);
    assert_string_equal(b, "model.layers.0.mlp.experts.2.down_proj.weight");
    /* phi3: the fused projections keep their rows; ffn_up reads back as gate_up_proj there only */
    const qf_gguf_arch *P = qf_gguf_arch_for("phi3");
    assert_int_equal(qf_gguf_name(P, "model.layers.1.self_attn.qkv_proj.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.1.attn_qkv.weight");
    assert_int_equal(qf_gguf_name(P, "model.layers.1.mlp.gate_up_proj.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.1.ffn_up.weight");
    assert_int_equal(qf_gguf_hf_name(P, "blk.1.ffn_up.weight", b, sizeof b), 0);
    assert_string_equal(b, "model.layers.1.mlp.gate_up_proj.weight");
    assert_int_equal(qf_gguf_hf_name(M, "blk.1.ffn_up.weight", b, sizeof b), 0);
    assert_string_equal(b, "model.layers.1.mlp.up_proj.weight");
    assert_int_equal(qf_gguf_name(M, "model.layers.1.self_attn.qkv_proj.weight", b, sizeof b), -1);
    /* dense-only architectures refuse experts */
    assert_int_equal(qf_gguf_name(qf_gguf_arch_for("qwen2"), "model.layers.0.block_sparse_moe.gate.weight", b, sizeof b), -1);
}

/* qwen3: q/k norms, no biases; qwen2: q/k/v biases only; neither permutes q/k rows (NEOX RoPE);
 * mistral is llama; unmapped families are refused naming config.json and what is mapped */
static void test_qwen_mapping(void **state)
{
    (void)state;
    char b[128];
    const qf_gguf_arch *q3 = qf_gguf_arch_for("qwen3"), *q2 = qf_gguf_arch_for("qwen2");
    assert_non_null(q3), assert_non_null(q2);
    assert_string_equal(q3->name, "qwen3"), assert_string_equal(q2->name, "qwen2");
    assert_false(q3->permute_qk), assert_false(q2->permute_qk);
    assert_true(qf_gguf_arch_for("llama")->permute_qk);
    assert_string_equal(qf_gguf_arch_for("mistral")->name, "llama");
    assert_ptr_equal(qf_gguf_arch_named("qwen3"), q3);
    assert_ptr_equal(qf_gguf_arch_named("llama"), qf_gguf_arch_for("llama"));
    assert_string_equal(qf_gguf_arch_for("qwen3_moe")->name, "qwen3moe");
    assert_string_equal(qf_gguf_arch_for("qwen2_moe")->name, "qwen2moe");
    assert_null(qf_gguf_arch_for("gemma3_text"));
    assert_int_equal(qf_gguf_name(q3, "model.layers.2.self_attn.q_norm.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.2.attn_q_norm.weight");
    assert_int_equal(qf_gguf_name(q3, "model.layers.2.self_attn.k_norm.weight", b, sizeof b), 1);
    assert_string_equal(b, "blk.2.attn_k_norm.weight");
    assert_int_equal(qf_gguf_name(q3, "model.layers.0.self_attn.q_proj.bias", b, sizeof b), -1);
    assert_int_equal(qf_gguf_hf_name(q3, "blk.1.attn_k_norm.weight", b, sizeof b), 0);
    assert_string_equal(b, "model.layers.1.self_attn.k_norm.weight");
    assert_int_equal(qf_gguf_name(q2, "model.layers.0.self_attn.v_proj.bias", b, sizeof b), 1);
    assert_string_equal(b, "blk.0.attn_v.bias");
    assert_int_equal(qf_gguf_name(q2, "model.layers.0.self_attn.o_proj.bias", b, sizeof b), -1);
    assert_int_equal(qf_gguf_name(q2, "model.layers.0.self_attn.q_norm.weight", b, sizeof b), -1);
    char list[128];
    qf_gguf_arch_list(list, sizeof list, 0);
    assert_string_equal(list, "llama, mistral, mixtral, qwen2, qwen3, qwen2_moe, qwen3_moe, phi3");
    qf_gguf_arch_list(list, sizeof list, 1);
    assert_string_equal(list, "llama, qwen2, qwen3, qwen2moe, qwen3moe, phi3");

    qf_model_config cfg;
    qf_error err;
    const qf_gguf_arch *a;
    if (qf_config_load("tests/data/tiny-tied/config.json", &cfg, &err)) fail_msg("%s", err.msg);
    assert_int_equal(qf_gguf_arch_of("tests/data/tiny-tied/config.json", &cfg, &a, &err), QF_OK);
    assert_ptr_equal(a, q3);
    qf_gguf_writer *w = qf_gguf_writer_new();
    assert_int_equal(qf_gguf_metadata(w, a, &cfg, "tiny-tied", 7, &err), QF_OK);
    char *path = tmp_path("qwen3.gguf");
    uint64_t size;
    qf_hash128 fh, th[1];
    assert_int_equal(qf_gguf_writer_open(w, path, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_close(w, &size, &fh, th, &err), QF_OK);
    qf_gguf_writer_free(w);
    qf_gguf *g;
    assert_int_equal(qf_gguf_open(path, &g, &err), QF_OK);
    assert_string_equal(qf_gguf_get_str(g, "general.architecture"), "qwen3");
    int64_t v;
    assert_int_equal(qf_gguf_get_int(g, "qwen3.block_count", &v), 0), assert_int_equal(v, 3);
    assert_int_equal(qf_gguf_get_int(g, "qwen3.attention.head_count_kv", &v), 0), assert_int_equal(v, 2);
    assert_int_equal(qf_gguf_get_int(g, "qwen3.attention.key_length", &v), 0), assert_int_equal(v, 64);
    assert_int_equal(qf_gguf_get_int(g, "llama.block_count", &v), -1);
    qf_gguf_free(g);
    unlink(path);
    free(path);
    /* the same config as qwen3_moe / with yarn: refused, naming the file and what is mapped */
    snprintf(cfg.model_type, sizeof cfg.model_type, "gemma3_text");
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_ERR_UNSUPPORTED);
    assert_null(a);
    assert_string_equal(err.msg, "x/config.json: model_type 'gemma3_text' has no GGUF mapping: llama.cpp's gemma3 graph "
                                 "fixes what the config sets (every 6th layer full, queries scaled by head_dim^-1/2 "
                                 "whatever query_pre_attn_scalar says) and its converter shifts norms by +1 and trims "
                                 "embedding rows; not written yet (GGUF output maps llama, mistral, mixtral, qwen2, "
                                 "qwen3, qwen2_moe, qwen3_moe, phi3)");
    snprintf(cfg.model_type, sizeof cfg.model_type, "starcoder2");
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "x/config.json: model_type 'starcoder2' has no GGUF mapping (GGUF output maps llama, "
                                 "mistral, mixtral, qwen2, qwen3, qwen2_moe, qwen3_moe, phi3)");
    /* yarn: written for qwen (rope.scaling.*) only with what llama.cpp computes itself */
    snprintf(cfg.model_type, sizeof cfg.model_type, "qwen3");
    cfg.rope_type = QF_ROPE_YARN, cfg.rope_factor = 4.0f, cfg.rope_original_max_pos = 512;
    cfg.rope_yarn_attn_factor = 0.1 * log(4.0) + 1.0, cfg.rope_yarn_beta_fast = 32, cfg.rope_yarn_beta_slow = 1;
    cfg.rope_yarn_truncate = 1;
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_OK);
    cfg.rope_yarn_attn_factor = 1.0; /* an explicit attention_factor llama.cpp would not apply */
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "x/config.json: rope yarn factor 4 / attention_factor 1"));
    cfg.rope_yarn_attn_factor = 0.1 * log(4.0) + 1.0, cfg.rope_yarn_beta_fast = 16;
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "beta_fast 16"));
    cfg.rope_yarn_beta_fast = 32;
    snprintf(cfg.model_type, sizeof cfg.model_type, "llama");
    cfg.qk_norm = 0;
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "x/config.json: rope type yarn is not mapped to llama.cpp's llama keys"));
    snprintf(cfg.model_type, sizeof cfg.model_type, "qwen3");
    cfg.qk_norm = 1;
    cfg.rope_type = QF_ROPE_DEFAULT, cfg.qk_norm = 0;
    assert_int_equal(qf_gguf_arch_of("x/config.json", &cfg, &a, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "lacks q/k norms"));
    qf_config_free(&cfg);
}

static void test_load_checkpoint(void **state)
{
    (void)state;
    char *path = tmp_path("ck.gguf");
    qf_hash128 h[3];
    assert_int_equal(write_small(path, h), QF_OK);
    qf_checkpoint *ck;
    qf_error err;
    assert_int_equal(qf_gguf_load_checkpoint(path, &ck, &err), QF_OK);
    assert_int_equal(ck->n_tensors, 3);
    const qf_tensor *q = qf_checkpoint_find(ck, "model.layers.0.self_attn.q_proj.weight");
    const qf_tensor *k = qf_checkpoint_find(ck, "model.layers.0.self_attn.k_proj.weight");
    assert_non_null(q), assert_non_null(k);
    assert_int_equal(q->dtype, QF_DTYPE_F32);
    assert_int_equal(q->shape[0], 8);
    assert_int_equal(q->shape[1], 64);
    /* GGUF row r held (r+1)/4; with 2 heads of 4 the stored order [0 2 1 3 | 4 6 5 7] of HF rows
     * is undone: HF row 1 is GGUF row 2, value 0.75 */
    const float *qd = (const float *)q->data, *kd = (const float *)k->data;
    assert_true(fabsf(qd[1 * 64] - 0.75f) < 0.01f);
    assert_true(fabsf(qd[2 * 64] - 0.5f) < 0.01f);
    /* k: one kv head of 4 rows: GGUF rows [0 2 1 3] of HF rows; GGUF row r holds r + 0.5 */
    assert_true(kd[1 * 64] == 2.5f && kd[2 * 64] == 1.5f);
    qf_checkpoint_free(ck);
    unlink(path);
    free(path);
}

/* A stacked expert tensor [3 experts, 2 rows, 32 cols] reads back as three Hugging Face tensors,
 * expert e's slice under expert e's name (value = 100 e + row); a 3-D tensor without rows (ne 0)
 * is not taken for 2^40 experts */
static void test_load_stacked(void **state)
{
    (void)state;
    char *path = tmp_path("stk.gguf");
    qf_error err;
    qf_gguf_writer *w = qf_gguf_writer_new();
    qf_gguf_kv_str(w, "general.architecture", "qwen3moe");
    qf_gguf_kv_u32(w, "qwen3moe.attention.head_count", 2);
    int64_t shape[3] = {3, 2, 32}, empty[3] = {(int64_t)1 << 40, 0, 32};
    assert_true(qf_gguf_writer_add_tensor(w, "blk.1.ffn_down_exps.weight", QF_GGML_F32, 3, shape, &err) == 0);
    assert_true(qf_gguf_writer_add_tensor(w, "blk.1.ffn_up_exps.weight", QF_GGML_F32, 3, empty, &err) == 1);
    assert_int_equal(qf_gguf_writer_open(w, path, &err), QF_OK);
    float v[3 * 2 * 32];
    for (int i = 0; i < 3 * 2 * 32; i++) v[i] = (float)(100 * (i / 64) + (i / 32) % 2);
    assert_int_equal(qf_gguf_writer_write(w, 0, v, sizeof v, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_close(w, NULL, NULL, NULL, &err), QF_OK);
    qf_gguf_writer_free(w);
    qf_checkpoint *ck;
    if (qf_gguf_load_checkpoint(path, &ck, &err)) fail_msg("%s", err.msg);
    assert_int_equal(ck->n_tensors, 4);
    for (int e = 0; e < 3; e++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.1.mlp.experts.%d.down_proj.weight", e);
        const qf_tensor *t = qf_checkpoint_find(ck, name);
        assert_non_null(t);
        assert_int_equal(t->ndim, 2), assert_int_equal(t->shape[0], 2), assert_int_equal(t->shape[1], 32);
        const float *d = (const float *)t->data;
        assert_true(d[0] == 100.0f * e && d[31] == 100.0f * e && d[32] == 100.0f * e + 1 && d[63] == 100.0f * e + 1);
    }
    assert_non_null(qf_checkpoint_find(ck, "blk.1.ffn_up_exps.weight")); /* kept whole, under its own name */
    qf_checkpoint_free(ck);
    unlink(path);
    free(path);
}

/* ---- llama.cpp's tokenizer and general.* keys -------------------------------------------------- */

#define QF_LLAMA3_RE                                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|" \
    "\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define QF_QWEN2_RE                                                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|"     \
    "\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

/* tokenizer.json's pre_tokenizer for a Split regex (JSON-escaped) followed by ByteLevel */
static const char *pre_of(const char *json, const char **regex, json_t **keep)
{
    json_error_t je;
    *keep = json_loads(json, 0, &je);
    if (!*keep) fail_msg("bad test JSON: %s", je.text);
    return qf_gguf_pre_name(*keep, regex);
}

static const char *pre_split(const char *re, const char *behavior, const char **regex, json_t **keep)
{
    char b[1024];
    snprintf(b, sizeof b,
             "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"%s\"}, "
             "\"behavior\": \"%s\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
             "\"trim_offsets\": false, \"use_regex\": false}]}",
             re, behavior);
    return pre_of(b, regex, keep);
}

static void test_pre_tokenizer(void **state)
{
    (void)state;
    const char *re, *name;
    json_t *j;
    /* tiny-llama's (GPT-2's): ByteLevel alone, its built-in regex, no prefix space */
    name = pre_of("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}", &re, &j);
    assert_non_null(name), assert_string_equal(name, "gpt-2"), assert_null(re), json_decref(j);
    /* a prefix space, or no regex: llama.cpp's gpt-2 splits otherwise */
    assert_null(pre_of("{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}", &re, &j)), json_decref(j);
    assert_null(pre_of("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}", &re, &j)), json_decref(j);
    assert_null(pre_of("{\"type\": \"Metaspace\", \"replacement\": \"_\"}", &re, &j)), json_decref(j);
    name = pre_split(QF_LLAMA3_RE, "Isolated", &re, &j);
    assert_non_null(name), assert_string_equal(name, "llama-bpe"), json_decref(j);
    name = pre_split(QF_QWEN2_RE, "Isolated", &re, &j);
    assert_non_null(name), assert_string_equal(name, "qwen2"), json_decref(j);
    /* one character off (Llama 3 with \p{N}{1,4}): unknown, and the regex is handed back for the message */
    assert_null(pre_split("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,4}", "Isolated", &re, &j));
    assert_non_null(re), assert_non_null(strstr(re, "{1,4}")), json_decref(j);
    assert_null(pre_split(QF_LLAMA3_RE, "Removed", &re, &j)), json_decref(j);
}

static void test_add_special(void **state)
{
    (void)state;
    json_t *bl = json_loads("{\"type\": \"ByteLevel\"}", 0, NULL);
    json_t *tmpl = json_loads("{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, {\"type\": "
                              "\"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\"}}, "
                              "{\"Sequence\": {\"id\": \"A\"}}]}]}",
                              0, NULL);
    json_t *tc = json_loads("{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": {\"content\": \"<|end|>\"}}", 0, NULL);
    json_t *tc_off = json_loads("{\"bos_token\": \"<|begin_of_text|>\", \"add_bos_token\": false, \"add_eos_token\": true}", 0, NULL);
    json_t *rob = json_loads("{\"type\": \"RobertaProcessing\"}", 0, NULL);
    int b, e;
    qf_gguf_add_special(bl, tc, &b, &e); /* tiny-llama: the Hugging Face tokenizer adds nothing */
    assert_int_equal(b, 0), assert_int_equal(e, 0);
    qf_gguf_add_special(NULL, NULL, &b, &e);
    assert_int_equal(b, 0), assert_int_equal(e, 0);
    qf_gguf_add_special(tmpl, tc, &b, &e); /* Llama 3: [<|begin_of_text|>, $A] */
    assert_int_equal(b, 1), assert_int_equal(e, 0);
    qf_gguf_add_special(tmpl, NULL, &b, &e);
    assert_int_equal(b, 1), assert_int_equal(e, 0);
    qf_gguf_add_special(tmpl, tc_off, &b, &e); /* tokenizer_config.json's flags win */
    assert_int_equal(b, 0), assert_int_equal(e, 1);
    qf_gguf_add_special(rob, tc, &b, &e);
    assert_int_equal(b, 1), assert_int_equal(e, 1);
    json_decref(bl), json_decref(tmpl), json_decref(tc), json_decref(tc_off), json_decref(rob);
}

static void test_size_label(void **state)
{
    (void)state;
    /* expected strings: gguf.size_label(n, n, 0, 0) of gguf-py 0.19.0 */
    static const struct {
        uint64_t n;
        const char *want;
    } cases[] = {{15733120, "16M"},   {1235814400, "1.2B"}, {8030261248, "8.0B"}, {494032768, "494M"},
                 {999999, "1000K"},   {500, "0.50K"},       {125000000, "125M"}, {1000000, "1000K"},
                 {7241732096, "7.2B"}, {2500000, "2.5M"},   {1500000000000, "1.5T"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char b[32];
        qf_gguf_size_label(cases[i].n, b, sizeof b);
        assert_string_equal(b, cases[i].want);
    }
}

/* tiny-llama's tokenizer and config as metadata: pre gpt-2, add_bos / add_eos false, general.type,
 * key_length (config.json names head_dim) */
static void test_tiny_llama_metadata(void **state)
{
    (void)state;
    qf_model_config cfg;
    qf_error err;
    if (qf_config_load("tests/data/tiny-llama/config.json", &cfg, &err)) fail_msg("%s", err.msg);
    qf_gguf_writer *w = qf_gguf_writer_new();
    const qf_gguf_arch *a;
    assert_int_equal(qf_gguf_arch_of("tests/data/tiny-llama/config.json", &cfg, &a, &err), QF_OK);
    assert_int_equal(qf_gguf_metadata(w, a, &cfg, "tiny-llama", 1, &err), QF_OK);
    if (qf_gguf_tokenizer(w, "tests/data/tiny-llama", &cfg, &err)) fail_msg("%s", err.msg);
    char *path = tmp_path("meta.gguf");
    uint64_t size;
    qf_hash128 fh, th[1];
    assert_int_equal(qf_gguf_writer_open(w, path, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_close(w, &size, &fh, th, &err), QF_OK);
    qf_gguf_writer_free(w);
    qf_gguf *g;
    assert_int_equal(qf_gguf_open(path, &g, &err), QF_OK);
    assert_string_equal(qf_gguf_get_str(g, "tokenizer.ggml.pre"), "gpt-2");
    assert_string_equal(qf_gguf_get_str(g, "general.type"), "model");
    assert_true(json_is_false(json_object_get(g->kv, "tokenizer.ggml.add_bos_token")));
    assert_true(json_is_false(json_object_get(g->kv, "tokenizer.ggml.add_eos_token")));
    int64_t v;
    assert_int_equal(qf_gguf_get_int(g, "llama.attention.key_length", &v), 0), assert_int_equal(v, 64);
    assert_int_equal(qf_gguf_get_int(g, "llama.attention.value_length", &v), 0), assert_int_equal(v, 64);
    qf_gguf_free(g);
    unlink(path);
    free(path);
    /* refusals name tokenizer.json: not byte-level at all (SentencePiece's Metaspace), or a
     * byte-level split llama.cpp does not know */
    static const struct {
        const char *pre, *says;
    } bad[] = {
        {"{\"type\": \"Metaspace\", \"replacement\": \"x\"}", "reads byte-level BPE tokenizers"},
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\d+\"}, "
         "\"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
         "pre-tokenizer Split regex '\\d+' is not one llama.cpp splits alike"},
    };
    char *dir = tmp_path("tok");
    mkdir(dir, 0700);
    char *tj = malloc(strlen(dir) + 32);
    sprintf(tj, "%s/tokenizer.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FILE *f = fopen(tj, "w");
        fprintf(f, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": %s}", bad[i].pre);
        fclose(f);
        w = qf_gguf_writer_new();
        assert_int_equal(qf_gguf_tokenizer(w, dir, &cfg, &err), QF_ERR_UNSUPPORTED);
        qf_gguf_writer_free(w);
        assert_non_null(strstr(err.msg, "tokenizer.json: "));
        if (!strstr(err.msg, bad[i].says)) fail_msg("'%s' lacks '%s'", err.msg, bad[i].says);
    }
    unlink(tj), rmdir(dir);
    free(tj), free(dir);
    qf_config_free(&cfg);
}

/* ---- hostile files --------------------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static qf_status parse(const uint8_t *b, size_t n, qf_error *err)
{
    qf_gguf *g = NULL;
    qf_status s = qf_gguf_parse("x.gguf", b, n, &g, err);
    qf_gguf_free(g);
    return s;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static void test_hostile(void **state)
{
    (void)state;
    char *path = tmp_path("h.gguf");
    qf_hash128 h[3];
    assert_int_equal(write_small(path, h), QF_OK);
    size_t n;
    uint8_t *b = read_file(path, &n);
    qf_error err;
    assert_int_equal(parse(b, n, &err), QF_OK);
    for (size_t k = 0; k < n; k++) { /* every truncation */
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, b, k);
        assert_int_not_equal(parse(c, k, &err), QF_OK);
        free(c);
    }
    uint8_t *c = malloc(n);
    memcpy(c, b, n), c[0] = 'X';
    assert_int_equal(parse(c, n, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a GGUF file"));
    memcpy(c, b, n), put_u64(c + 8, UINT64_C(1) << 60); /* tensor count */
    assert_int_equal(parse(c, n, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "cannot fit"));
    memcpy(c, b, n), put_u64(c + 24, UINT64_C(0xffffffffff)); /* first key's length */
    assert_int_equal(parse(c, n, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    /* the first tensor's offset (after its name, 2 dims, type) */
    memcpy(c, b, n);
    uint8_t *p = memmem(c, n, "blk.0.attn_q.weight", 19);
    assert_non_null(p);
    put_u64(p + 19 + 4 + 16 + 4, 32);
    assert_int_equal(parse(c, n, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "offset 32, expected 0"));
    memcpy(c, b, n), put_u64(p + 19 + 4, 1000000); /* ne[0]: the data runs past the file */
    assert_int_equal(parse(c, n, &err), QF_ERR_FORMAT);
    memcpy(c, b, n), p[19 + 4 + 16] = 99; /* unknown type */
    assert_int_equal(parse(c, n, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "ggml type 99"));
    memcpy(c, b, n), put_u64(p - 8, 100); /* name length 100 > 63 */
    assert_int_not_equal(parse(c, n, &err), QF_OK);
    free(c);
    /* arrays nested deeper than 4 */
    uint8_t deep[256];
    size_t k = 0;
    memcpy(deep, "GGUF\3\0\0\0", 8), k = 8;
    put_u64(deep + k, 0), k += 8;
    put_u64(deep + k, 1), k += 8;
    put_u64(deep + k, 1), k += 8, deep[k++] = 'a';
    for (int d = 0; d < 6; d++) {
        uint32_t t = 9;
        memcpy(deep + k, &t, 4), k += 4; /* type ARRAY (the key's, then element types) */
        if (d) put_u64(deep + k, 1), k += 8;
    }
    memset(deep + k, 0, 64), k += 64;
    assert_int_equal(parse(deep, k, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "nested deeper"));
    free(b);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),           cmocka_unit_test(test_q8_0_and_q4_0_by_hand),
        cmocka_unit_test(test_q4_k_by_hand),    cmocka_unit_test(test_quantizer_bounds),
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_llama_mapping),
        cmocka_unit_test(test_qwen_mapping),     cmocka_unit_test(test_mixtral_mapping),
        cmocka_unit_test(test_load_checkpoint), cmocka_unit_test(test_load_stacked), cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_pre_tokenizer),   cmocka_unit_test(test_add_special),
        cmocka_unit_test(test_size_label),      cmocka_unit_test(test_tiny_llama_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
