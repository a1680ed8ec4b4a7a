/* test_model_families_moe.c - the runner on the MoE and hybrid families: GLM-4.5 (tiny-glm4moe),
 * GPT-OSS (tiny-gptoss), Llama 4 (tiny-llama4), Nemotron-H (tiny-nemotronh), Qwen3-Next and
 * Qwen3.5 (tiny-qwen3next, tiny-qwen35moe), DeepSeek-V3 and V3.2 (tiny-deepseekv3,
 * tiny-deepseekv3-qproj, tiny-deepseekv32): each against transformers' reference files
 * (qf_family_fixture.h), then each family feature switched off must be seen.
 */
#include "qf_family_fixture.h"

/* tiny-glm4moe: Glm4MoeForCausalLM: layer 0 dense, layers 1-2 MoE (8 experts in 2 groups, top-1
 * group, top-2 experts, sigmoid scores + e_score_correction_bias, routed_scaling_factor 2.5,
 * one shared expert without a gate), partial rotary 0.5, q/k norms, q/k/v biases.  Then the
 * correction bias, the scaling factor and the partial rotary are each switched off. */
static void test_tiny_glm4moe(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-glm4moe", &f);
    qf_model *m = f.m;
    assert_int_equal(m->layers[0].is_moe, 0);
    for (int l = 1; l < 3; l++) {
        assert_int_equal(m->layers[l].is_moe, 1);
        assert_int_equal(m->layers[l].has_shared, 1);
        assert_int_equal(m->layers[l].sh_router.kind, 0);
        assert_non_null(m->layers[l].router_bias);
    }
    assert_int_equal(m->rope.dims, 16);
    assert_int_equal(m->cfg.n_group, 2);
    double lerr = 0;
    printf("tiny-glm4moe with one feature switched off:\n");
    float saved[2][8];
    for (int l = 1; l < 3; l++) {
        memcpy(saved[l - 1], m->layers[l].router_bias, sizeof saved[0]);
        memset(m->layers[l].router_bias, 0, sizeof saved[0]);
    }
    broken_ppl(&f, "no e_score_correction_bias", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 1; l < 3; l++) memcpy(m->layers[l].router_bias, saved[l - 1], sizeof saved[0]);
    m->cfg.routed_scaling_factor = 1.0;
    broken_ppl(&f, "routed_scaling_factor 1", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.routed_scaling_factor = 2.5;
    m->cfg.topk_group = 2;
    broken_ppl(&f, "every group kept (topk_group 2)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.topk_group = 1;
    qf_model_config whole = m->cfg;
    whole.rope_partial_factor = 1.0;
    qf_error err = {0};
    int64_t len = m->rope.len;
    qf_rope_free(&m->rope);
    assert_int_equal(qf_rope_init(&m->rope, &whole, len, &err), QF_OK);
    broken_ppl(&f, "partial_rotary_factor ignored", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    fixture_close(&f);
}

/* tiny-gptoss: GptOssForCausalLM: layers s F s F (window 128), attention sinks, YaRN (factor 4
 * over 128, truncate false), q/k/v/o biases, a router with a bias (top-2 of 8 logits, softmax
 * over the two), fused experts (gate / up interleaved, biases), the clamped SwiGLU with
 * swiglu_limit 3.  Then the sinks, the window, the clamp, the interleave and the routing order
 * are each switched off, and YaRN's truncate: every one must move the window-0 logits far
 * beyond the limit. */
static void test_tiny_gptoss(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-gptoss", &f);
    qf_model *m = f.m;
    const int want_window[4] = {128, 0, 128, 0};
    for (int l = 0; l < 4; l++) {
        qf_layer *L = &m->layers[l];
        assert_int_equal(L->attn_window, want_window[l]);
        assert_int_equal(L->is_moe, 1);
        assert_non_null(L->sinks);
        assert_non_null(L->router.bias);
        assert_non_null(L->o.bias);
        assert_non_null(L->experts[0].bias);
    }
    assert_int_equal(m->cfg.rope_type, QF_ROPE_YARN);
    assert_int_equal(m->cfg.rope_yarn_truncate, 0);
    assert_float_equal(m->cfg.swiglu_limit, 3.0, 0);
    assert_float_equal(m->cfg.swiglu_alpha, 1.702, 0);
    assert_int_equal(m->ffn_max, 128);
    double lerr = 0;
    printf("tiny-gptoss with one feature switched off:\n");
    float *sinks[4];
    for (int l = 0; l < 4; l++) sinks[l] = m->layers[l].sinks, m->layers[l].sinks = NULL;
    broken_ppl(&f, "no attention sinks", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 0; l < 4; l++) m->layers[l].sinks = sinks[l], m->layers[l].attn_window = 0;
    broken_ppl(&f, "full attention on the sliding layers", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 0; l < 4; l++) m->layers[l].attn_window = want_window[l];
    m->cfg.swiglu_limit = 1e30;
    broken_ppl(&f, "no SwiGLU clamp", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.swiglu_limit = 7.0;
    broken_ppl(&f, "the released clamp (7) in place of the config's (3)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.swiglu_limit = 3.0;
    qf_family fam = *m->fam;
    fam.topk_softmax = 0; /* softmax over all 8 logits, then the top 2 (not renormalized) */
    broken_family(&f, &fam, "softmax before the top-k", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    /* gate and up read as halves (Llama 4's layout) instead of interleaved: re-read each
     * expert's gate / up weight and bias from the fused tensors */
    for (int l = 0; l < 4; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", l);
        const qf_tensor *gu = qf_checkpoint_find(m->ck, name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj_bias", l);
        const qf_tensor *gub = qf_checkpoint_find(m->ck, name);
        assert_non_null(gu);
        assert_non_null(gub);
        assert_int_equal(gu->dtype, QF_DTYPE_BF16);
        for (int e = 0; e < m->cfg.n_experts; e++)
            for (int j = 0; j < 2; j++) {
                qf_linear *lin = &m->layers[l].experts[3 * e + j];
                qf_expert_slice s = qf_expert_slice_of(gu, e, (qf_expert_part)j, QF_FUSED_HALVES);
                qf_expert_slice_read(&s, (void *)lin->weight);
                for (int64_t r = 0; r < s.rows; r++)
                    lin->bias[r] = qf_bf16_to_f32(((const uint16_t *)gub->data)[e * 2 * s.rows + j * s.rows + r]);
            }
    }
    broken_ppl(&f, "gate / up as halves, not interleaved", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    /* YaRN's ramp bounds rounded to whole dimensions (truncate true, the yarn default that
     * gpt-oss's rope_parameters turn off), then no YaRN at all */
    qf_model_config rc = m->cfg;
    qf_error err = {0};
    int64_t len = m->rope.len;
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 0) rc.rope_yarn_truncate = 1;
        else rc.rope_type = QF_ROPE_DEFAULT;
        qf_rope_free(&m->rope);
        assert_int_equal(qf_rope_init(&m->rope, &rc, len, &err), QF_OK);
        broken_ppl(&f, variant == 0 ? "YaRN with truncate true" : "plain RoPE", &lerr);
        assert_true(lerr > 100 * LOGITS_REL_TOL);
    }
    fixture_close(&f);
}

/* tiny-llama4: Llama4ForCausalLM: layers 0-2 RoPE (interleaved pairs, llama3 scaling) with the
 * L2 q/k norm and chunked attention (chunks of 128 < the 512 window), layer 3 NoPE with full
 * attention and attention temperature tuning (floor_scale 64); MoE on layers 1 and 3 (4 fused
 * experts, gate the first half, top-1, sigmoid(logit) weighting the expert's input, an ungated
 * shared expert), dense layers of intermediate_size_mlp 256.  Then each feature switched off. */
static void test_tiny_llama4(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-llama4", &f);
    qf_model *m = f.m;
    const int want_moe[4] = {0, 1, 0, 1};
    for (int l = 0; l < 4; l++) {
        qf_layer *L = &m->layers[l];
        assert_int_equal(L->is_moe, want_moe[l]);
        assert_int_equal(L->attn_chunk, l < 3 ? 128 : 0);
        assert_true(l < 3 ? L->rope == &m->rope : L->rope == NULL);
        if (want_moe[l]) {
            assert_int_equal(L->has_shared, 1);
            assert_int_equal(L->experts[0].rows, 128);
        } else {
            assert_int_equal(L->gate.rows, 256);
        }
    }
    assert_int_equal(m->rope.interleaved, 1);
    assert_int_equal(m->cfg.rope_type, QF_ROPE_LLAMA3);
    double lerr = 0;
    printf("tiny-llama4 with one feature switched off:\n");
    m->rope.interleaved = 0;
    assert_true(broken_ppl(&f, "RoPE rotate-half, not interleaved", &lerr) > 20 * PPL_REL_TOL);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->rope.interleaved = 1;
    m->layers[3].rope = &m->rope;
    broken_ppl(&f, "RoPE on the NoPE layer", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->layers[3].rope = NULL;
    for (int l = 0; l < 3; l++) m->layers[l].attn_chunk = 0;
    broken_ppl(&f, "full attention on the chunked layers", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 0; l < 3; l++) m->layers[l].attn_chunk = 127; /* a chunk one token short */
    broken_ppl(&f, "chunks of 127", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 0; l < 3; l++) m->layers[l].attn_chunk = 128;
    m->cfg.l4_qk_norm = 0;
    broken_ppl(&f, "no L2 q/k norm", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.l4_qk_norm = 1;
    m->cfg.l4_temp_tuning = 0;
    broken_ppl(&f, "no attention temperature on the NoPE layer", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.l4_temp_tuning = 1;
    qf_family fam = *m->fam;
    fam.sigmoid_input_routing = 0; /* softmax over the 4 logits, weighting the expert's output */
    broken_family(&f, &fam, "router weight on the output (softmax)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    broken_ppl(&f, "(everything restored)", &lerr);
    assert_true(lerr < LOGITS_REL_TOL);
    fixture_close(&f);
}

/* Llama 4's layer kinds as Llama4TextConfig fills them in, and the refusals. */
static void test_llama4_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/qf-llama4-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    static const struct {
        const char *keys;
        qf_status want;
        int rope[4], chunk[4];
        const char *key;
    } cases[] = {
        /* the defaults: NoPE every 4th layer, chunked where RoPE, chunks of 8192 */
        {"", QF_OK, {1, 1, 1, 0}, {8192, 8192, 8192, 0}, NULL},
        {",\"no_rope_layers\":[],\"no_rope_layer_interval\":2,\"attention_chunk_size\":64", QF_OK, {1, 0, 1, 0},
         {64, 0, 64, 0}, NULL},
        {",\"layer_types\":[\"full_attention\",\"full_attention\",\"chunked_attention\",\"full_attention\"]", QF_OK,
         {1, 1, 1, 0}, {0, 0, 8192, 0}, NULL},
        {",\"no_rope_layers\":[1,1,0]", QF_ERR_FORMAT, {0}, {0}, "no_rope_layers"},
        {",\"layer_types\":[\"sliding_attention\",\"full_attention\",\"full_attention\",\"full_attention\"]",
         QF_ERR_UNSUPPORTED, {0}, {0}, "layer_types[0]"},
        {",\"attention_chunk_size\":null", QF_ERR_FORMAT, {0}, {0}, "attention_chunk_size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, "{\"model_type\":\"llama4_text\",\"hidden_size\":64,\"num_hidden_layers\":4,"
                "\"num_attention_heads\":2,\"vocab_size\":10%s}", cases[i].keys);
        fclose(fp);
        qf_model_config c;
        qf_error err = {0};
        assert_int_equal(qf_config_load(path, &c, &err), QF_OK);
        assert_int_equal(c.rope_interleaved, 1);
        assert_int_equal(c.mlp_intermediate_size, 16384);
        int rope[4], chunk[4];
        qf_status st = qf_config_llama4_layers(path, &c, rope, chunk, &err);
        assert_int_equal(st, cases[i].want);
        if (st) {
            assert_non_null(strstr(err.msg, path));
            assert_non_null(strstr(err.msg, cases[i].key));
        } else {
            assert_memory_equal(rope, cases[i].rope, sizeof rope);
            assert_memory_equal(chunk, cases[i].chunk, sizeof chunk);
        }
        qf_config_free(&c);
    }
    unlink(path);
    rmdir(dir);
}

/* tiny-nemotronh: NemotronHForCausalLM, layers M - * E M (Mamba-2, squared-ReLU MLP, attention
 * without RoPE, MoE of ungated relu^2 experts with GLM-style sigmoid grouped routing and a
 * shared expert, Mamba-2); the reference scans in chunks of 128, the runner token by token.
 * Then the Mamba mixer's D skip, the gated norm's weight, dt_bias, the dt clamp and the conv
 * bias, the routing bias, scaling factor and group choice are each switched off, and RoPE
 * switched on for the attention layer. */
static void test_tiny_nemotronh(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-nemotronh", &f);
    qf_model *m = f.m;
    const char want[] = "M-*EM";
    for (int l = 0; l < 5; l++) assert_int_equal(m->layers[l].mixer, want[l]);
    assert_int_equal(m->cfg.ssm_chunk_size, 128);
    assert_int_equal(m->cfg.hidden_act, QF_FFN_ACT_RELU2);
    assert_int_equal(m->layers[0].q.rows, 256 + (256 + 2 * 2 * 16) + 8); /* in_proj: z, xBC, dt */
    assert_int_equal(m->layers[0].o.cols, 256);
    assert_int_equal(m->layers[1].gate.kind, 0); /* ungated MLP */
    assert_int_equal(m->mixer_width, 256);
    qf_layer *moe = &m->layers[3];
    assert_int_equal(moe->is_moe, 1);
    assert_int_equal(moe->has_shared, 1);
    assert_int_equal(moe->experts[0].kind, 0); /* ungated experts */
    assert_int_equal(moe->experts[1].rows, 128);
    assert_int_equal(moe->sh_gate.kind, 0);
    assert_non_null(moe->router_bias);
    assert_int_equal(m->cfg.n_experts, 8);
    assert_int_equal(m->cfg.n_group, 2);
    const int H = 8, I = 256, CD = 320;
    qf_layer *mamba[2] = {&m->layers[0], &m->layers[4]};
    float saved[2][320];
    double lerr = 0;
    printf("tiny-nemotronh with one feature switched off:\n");
    for (int i = 0; i < 2; i++) memcpy(saved[i], mamba[i]->ssm_d, H * sizeof(float)), memset(mamba[i]->ssm_d, 0, H * sizeof(float));
    broken_ppl(&f, "no D skip", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int i = 0; i < 2; i++) memcpy(mamba[i]->ssm_d, saved[i], H * sizeof(float));
    for (int i = 0; i < 2; i++) {
        memcpy(saved[i], mamba[i]->gnorm, I * sizeof(float));
        for (int j = 0; j < I; j++) mamba[i]->gnorm[j] = 1.0f;
    }
    broken_ppl(&f, "gated norm without its weight", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int i = 0; i < 2; i++) memcpy(mamba[i]->gnorm, saved[i], I * sizeof(float));
    for (int i = 0; i < 2; i++) memcpy(saved[i], mamba[i]->dt_bias, H * sizeof(float)), memset(mamba[i]->dt_bias, 0, H * sizeof(float));
    broken_ppl(&f, "no dt_bias", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int i = 0; i < 2; i++) memcpy(mamba[i]->dt_bias, saved[i], H * sizeof(float));
    m->cfg.time_step_min = 0;
    broken_ppl(&f, "dt not clamped at time_step_min", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.time_step_min = 0.05;
    for (int i = 0; i < 2; i++) memcpy(saved[i], mamba[i]->conv_b, CD * sizeof(float)), memset(mamba[i]->conv_b, 0, CD * sizeof(float));
    broken_ppl(&f, "no conv1d bias", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int i = 0; i < 2; i++) memcpy(mamba[i]->conv_b, saved[i], CD * sizeof(float));
    float bias[8];
    memcpy(bias, moe->router_bias, sizeof bias);
    memset(moe->router_bias, 0, sizeof bias);
    broken_ppl(&f, "no e_score_correction_bias", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    memcpy(moe->router_bias, bias, sizeof bias);
    m->cfg.routed_scaling_factor = 1.0;
    broken_ppl(&f, "routed_scaling_factor 1", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.routed_scaling_factor = 2.5;
    m->cfg.topk_group = 2;
    broken_ppl(&f, "every group kept (topk_group 2)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.topk_group = 1;
    qf_family rope = *m->fam;
    rope.nope = 0;
    broken_family(&f, &rope, "RoPE on the attention layer", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    broken_ppl(&f, "(everything restored)", &lerr);
    assert_true(lerr < LOGITS_REL_TOL);
    fixture_close(&f);
}

/* tiny-qwen3next: Qwen3NextForCausalLM: layers 0-2 gated DeltaNet (linear attention), layer 3
 * gated full attention; layer 1 a dense MLP, the others MoE (8 experts, top-2, a shared expert
 * behind sigmoid(shared_expert_gate)); (1 + w) norms, q/k norms, partial rotary 0.25.  The
 * reference runs the delta rule in 64-token chunks over the 512-token windows, the runner token
 * by token: the PPL and logits limits hold both to one function.  Then each feature is switched
 * off: the (1 + w) offset, the attention's output gate, the DeltaNet's conv, beta and decay
 * (QF_ABLATE_*), and the config's layer kinds (layer_types). */
static void test_tiny_qwen3next(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-qwen3next", &f);
    qf_model *m = f.m;
    for (int l = 0; l < 4; l++) {
        const qf_layer *L = &m->layers[l];
        assert_int_equal(L->linear_attn, l < 3);
        assert_int_equal(L->is_moe, l != 1);
        assert_int_equal(L->has_shared, l != 1);
        if (l != 1) assert_int_equal(L->sh_router.rows, 1);
    }
    assert_int_equal(m->layers[0].q.rows, 2 * 2 * 32 + 2 * 4 * 32); /* in_proj_qkvz */
    assert_int_equal(m->layers[0].k.rows, 2 * 4);                   /* in_proj_ba */
    assert_int_equal(m->layers[3].q.rows, 2 * 4 * 32);              /* q_proj: query + gate */
    assert_int_equal(m->rope.dims, 8);
    double lerr = 0;
    printf("tiny-qwen3next with one feature switched off:\n");
    shift_norms(m, -1.0f);
    assert_true(broken_ppl(&f, "norms x w instead of x (1 + w)", &lerr) > 0.0005 * 20);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    shift_norms(m, 1.0f);
    static const struct {
        unsigned bit;
        const char *what;
    } off[] = {
        {QF_ABLATE_ATTN_GATE, "attention output without sigmoid(gate)"},
        {QF_ABLATE_CONV, "DeltaNet without its causal conv1d"},
        {QF_ABLATE_BETA, "DeltaNet with beta = 1"},
        {QF_ABLATE_DECAY, "DeltaNet without decay (g = 0)"},
    };
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        m->opt.ablate = off[i].bit;
        broken_ppl(&f, off[i].what, &lerr);
        assert_true(lerr > 100 * LOGITS_REL_TOL);
    }
    m->opt.ablate = 0;
    broken_ppl(&f, "(everything restored)", &lerr);
    assert_true(lerr < LOGITS_REL_TOL);
    fixture_close(&f);
}

/* tiny-qwen35moe: Qwen3_5MoeForCausalLM (text): Qwen3-Next's layers (L L L F) with the DeltaNet's
 * four separate projections (in_proj_qkv flat [q | k | v], in_proj_z, in_proj_b, in_proj_a),
 * every layer MoE, top-k weights always renormalised (no norm_topk_prob key in its config).
 * Then the renormalisation, the decay and beta (read from in_proj_a / in_proj_b) are switched off. */
static void test_tiny_qwen35moe(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-qwen35moe", &f);
    qf_model *m = f.m;
    for (int l = 0; l < 4; l++) {
        assert_int_equal(m->layers[l].linear_attn, l < 3);
        assert_int_equal(m->layers[l].is_moe, 1);
        assert_int_equal(m->layers[l].has_shared, 1);
    }
    assert_int_equal(m->layers[0].q.rows, 2 * 2 * 32 + 4 * 32); /* in_proj_qkv */
    assert_int_equal(m->layers[0].k.rows, 4 * 32);              /* in_proj_z */
    assert_int_equal(m->layers[0].v.rows, 4);                   /* in_proj_b */
    assert_int_equal(m->layers[0].in_a.rows, 4);                /* in_proj_a */
    assert_int_equal(m->layers[3].in_a.kind, 0);
    assert_int_equal(m->cfg.norm_topk_prob, 1);
    double lerr = 0;
    printf("tiny-qwen35moe with one feature switched off:\n");
    m->cfg.norm_topk_prob = 0;
    broken_ppl(&f, "top-k weights not renormalised", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.norm_topk_prob = 1;
    m->opt.ablate = QF_ABLATE_DECAY;
    broken_ppl(&f, "DeltaNet without decay (in_proj_a unused)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->opt.ablate = QF_ABLATE_BETA;
    broken_ppl(&f, "DeltaNet with beta = 1 (in_proj_b unused)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->opt.ablate = 0;
    fixture_close(&f);
}

/* tiny-deepseekv3: DeepseekV3ForCausalLM: MLA attention (q_lora_rank 128, kv_lora_rank 128,
 * qk_nope 32 + qk_rope 16, v_head_dim 32, interleaved rope), YaRN factor 4 with mscale 1 /
 * mscale_all_dim 0.8, layer 0 dense, layers 1-2 MoE (8 experts in 4 groups, top-2 groups,
 * top-2 experts, sigmoid + correction bias, scaling 2.5, one shared expert).  Then the
 * softmax's mscale², the interleaved rope layout, the group restriction and kv_a_layernorm are
 * each switched off: each must move the window-0 logits far beyond the limit. */
static void test_tiny_deepseekv3(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-deepseekv3", &f);
    qf_model *m = f.m;
    assert_int_equal(m->rope.dims, 16);      /* qk_rope_head_dim, transformers' head_dim */
    assert_int_equal(m->cfg.head_dim, 48);   /* the runner's per-head width: qk_nope + qk_rope */
    assert_int_equal(m->layers[0].is_moe, 0);
    for (int l = 0; l < 3; l++) {
        qf_layer *L = &m->layers[l];
        assert_int_equal(L->q_a.rows, 128);
        assert_int_equal(L->q.rows, 4 * 48);  /* q_b_proj */
        assert_int_equal(L->q.cols, 128);
        assert_int_equal(L->kv_a.rows, 128 + 16);
        assert_int_equal(L->kv_b.rows, 4 * (32 + 32));
        assert_int_equal(L->o.cols, 4 * 32);
        assert_int_equal(L->k.kind, 0);
        if (l == 0) continue;
        assert_int_equal(L->is_moe, 1);
        assert_int_equal(L->has_shared, 1);
        assert_int_equal(L->sh_router.kind, 0);
        assert_non_null(L->router_bias);
    }
    /* DeepseekV3Attention.scaling = 48^-0.5 × (0.1 × 0.8 × ln 4 + 1)² */
    const float plain = (float)pow(48.0, -0.5);
    assert_float_equal(m->attn_scale, plain * pow(0.08 * log(4.0) + 1.0, 2), 1e-6);
    double lerr = 0;
    printf("tiny-deepseekv3 with one feature switched off:\n");
    const float scale = m->attn_scale;
    m->attn_scale = plain;
    broken_ppl(&f, "softmax scale without YaRN's mscale^2", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->attn_scale = scale;
    m->cfg.rope_interleave = 0;
    broken_ppl(&f, "rope_interleave ignored", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.rope_interleave = 1;
    m->cfg.topk_group = m->cfg.n_group;
    broken_ppl(&f, "every group kept (topk_group = n_group)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.topk_group = 2;
    float *kvn[3];
    for (int l = 0; l < 3; l++) kvn[l] = m->layers[l].kv_a_norm, m->layers[l].kv_a_norm = NULL;
    broken_ppl(&f, "no kv_a_layernorm", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 0; l < 3; l++) m->layers[l].kv_a_norm = kvn[l];
    fixture_close(&f);
}

/* tiny-deepseekv3-qproj: DeepSeek-V3's other branches: q_lora_rank null (q_proj on xn),
 * rope_interleave false, default RoPE (softmax scale 48^-1/2 alone), tied embeddings; then the
 * interleaved layout switched on must be seen (the rotate-half path is not the same). */
static void test_tiny_deepseekv3_qproj(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-deepseekv3-qproj", &f);
    qf_model *m = f.m;
    for (int l = 0; l < 2; l++) {
        assert_int_equal(m->layers[l].q_a.kind, 0);
        assert_null(m->layers[l].q_a_norm);
        assert_int_equal(m->layers[l].q.rows, 4 * 48); /* q_proj */
        assert_int_equal(m->layers[l].q.cols, 128);
    }
    assert_int_equal(m->layers[1].is_moe, 1);
    assert_int_equal(m->cfg.rope_interleave, 0);
    assert_float_equal(m->attn_scale, (float)pow(48.0, -0.5), 0);
    double lerr = 0;
    printf("tiny-deepseekv3-qproj with one feature switched on:\n");
    m->cfg.rope_interleave = 1;
    broken_ppl(&f, "rope_interleave where the config says false", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    fixture_close(&f);
}

/* tiny-deepseekv32: DeepseekV32ForCausalLM with index_topk 512 = the window: its DSA indexer
 * keeps every key, so the model is DeepSeek-V3's (transformers itself gives bit-identical
 * logits for the same weights run as DeepseekV3, recorded by make_fixtures.py), and the runner,
 * which does not run the indexer, must match transformers' V3.2.  With index_topk 256 the
 * indexer drops keys (transformers' PPL moves): the runner must refuse such a sequence. */
static void test_tiny_deepseekv32(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-deepseekv32", &f);
    qf_model *m = f.m;
    double ppl = json_real_value(json_object_get(f.ref, "ppl"));
    double v3 = json_real_value(json_object_get(f.ref, "deepseek_v3_same_weights_ppl"));
    double sparse = json_real_value(json_object_get(f.ref, "index_topk_256_ppl"));
    assert_true(v3 > 1 && fabs(v3 / ppl - 1) < 1e-12);
    assert_true(sparse > 1 && fabs(sparse / ppl - 1) > 1e-3);
    assert_int_equal(m->cfg.index_topk, 512);
    assert_int_equal(m->cfg.rope_interleave, 1);
    for (int l = 0; l < 2; l++) {
        assert_int_equal(m->layers[l].idx_wq_b.rows, 2 * 32);
        assert_int_equal(m->layers[l].idx_wq_b.cols, 128);
        assert_int_equal(m->layers[l].idx_wk.rows, 32);
        assert_int_equal(m->layers[l].idx_wproj.rows, 2);
    }
    m->cfg.index_topk = 511;
    qf_error err = {0};
    assert_int_equal(qf_model_forward(m, (const int32_t *)f.tokens.data, CTX, f.logits, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "512 tokens is longer than index_topk 511"));
    m->cfg.index_topk = 512;
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_glm4moe),
        cmocka_unit_test(test_tiny_gptoss),
        cmocka_unit_test(test_tiny_llama4),
        cmocka_unit_test(test_llama4_config),
        cmocka_unit_test(test_tiny_nemotronh),
        cmocka_unit_test(test_tiny_qwen3next),
        cmocka_unit_test(test_tiny_qwen35moe),
        cmocka_unit_test(test_tiny_deepseekv3),
        cmocka_unit_test(test_tiny_deepseekv3_qproj),
        cmocka_unit_test(test_tiny_deepseekv32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
