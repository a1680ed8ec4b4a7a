/* test_model_families.c - the runner on the dense families the shared fixtures do not cover:
 * tied embeddings (tests/data/tiny-tied, qwen3, no lm_head tensor), sliding-window attention
 * (tiny-swa, mistral, sliding_window 128 < the 512-token window), YaRN (tiny-yarn), Gemma 3,
 * Phi-3 with partial rotary and with LongRoPE; and the config rules (RoPE keys, each family's
 * defaults, the sliding-window rules per model_type).  The MoE and hybrid families are
 * test_model_families_moe.c; the fixture, its reference files and the limits are
 * qf_family_fixture.h.
 *
 * The window rules per model_type are checked against the values transformers 5.23's config
 * classes give for the same config.json keys (computed once with its Qwen2Config, Qwen3Config,
 * Qwen2MoeConfig, Qwen3MoeConfig, MistralConfig, MixtralConfig, LlamaConfig; the table below).
 */
#include "qf_family_fixture.h"

static void test_tiny_tied(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-tied", &f);
    /* no lm_head tensor: the runner reads the logits through the embedding */
    assert_null(qf_checkpoint_find(f.m->ck, "lm_head.weight"));
    assert_true(f.m->lm_head.weight == f.m->embed);
    for (int l = 0; l < f.m->cfg.n_layers; l++) assert_int_equal(f.m->layers[l].attn_window, 0);
    fixture_close(&f);
}

static void test_tiny_swa(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-swa", &f);
    for (int l = 0; l < f.m->cfg.n_layers; l++) assert_int_equal(f.m->layers[l].attn_window, 128);
    /* The same model with the window switched off must fail both checks above, or they could
     * not catch a runner that ignores sliding_window. */
    for (int l = 0; l < f.m->cfg.n_layers; l++) f.m->layers[l].attn_window = 0;
    int windows = (int)json_integer_value(json_object_get(f.ref, "windows"));
    double ref_ppl = json_real_value(json_object_get(f.ref, "ppl"));
    double full_ref = json_real_value(json_object_get(f.ref, "full_attention_ppl"));
    double lerr = 0, ppl = fixture_ppl(&f, windows, &lerr);
    printf("tiny-swa with full attention: PPL %.6f (transformers full attention %.6f), %+.3f %% off the "
           "reference; logits relative L2 %.2g\n", ppl, full_ref, 100 * (ppl / ref_ppl - 1), lerr);
    assert_true(fabs(ppl / ref_ppl - 1) > 20 * PPL_REL_TOL);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    /* and it is what transformers gives with full attention: the mask is the only difference */
    assert_true(fabs(ppl / full_ref - 1) < PPL_REL_TOL);
    /* a window one key too narrow or too wide is seen too (masking_utils: kv_idx > q_idx - W) */
    for (int w = 127; w <= 129; w += 2) {
        for (int l = 0; l < f.m->cfg.n_layers; l++) f.m->layers[l].attn_window = w;
        fixture_ppl(&f, 1, &lerr);
        printf("tiny-swa with a window of %d: window-0 logits relative L2 %.2g\n", w, lerr);
        assert_true(lerr > 10 * LOGITS_REL_TOL);
    }
    fixture_close(&f);
}

/* tiny-yarn: Qwen2 (q/k/v biases) with YaRN RoPE (factor 4 over an original context of 128).
 * Checked like the others against transformers; then the same weights with the scaling
 * switched off (plain RoPE, cos/sin unscaled) must fail the logits check by far, and match
 * what transformers gives with plain RoPE, so the check can see a runner that ignores YaRN. */
static void test_tiny_yarn(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-yarn", &f);
    assert_int_equal(f.m->cfg.rope_type, QF_ROPE_YARN);
    /* transformers' attention factor for factor 4 without mscale: 0.1 ln 4 + 1 */
    assert_float_equal(f.m->rope.scale, (float)(0.1 * log(4.0) + 1.0), 1e-7);
    qf_model_config plain = f.m->cfg;
    plain.rope_type = QF_ROPE_DEFAULT;
    qf_error err = {0};
    int64_t len = f.m->rope.len;
    qf_rope_free(&f.m->rope);
    assert_int_equal(qf_rope_init(&f.m->rope, &plain, len, &err), QF_OK);
    assert_float_equal(f.m->rope.scale, 1.0f, 0);
    double lerr = 0, ppl = fixture_ppl(&f, (int)json_integer_value(json_object_get(f.ref, "windows")), &lerr);
    double plain_ref = json_real_value(json_object_get(f.ref, "default_rope_ppl"));
    printf("tiny-yarn with plain RoPE: PPL %.6f (transformers plain RoPE %.6f); window-0 logits relative L2 %.2g\n",
           ppl, plain_ref, lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    assert_true(fabs(ppl / plain_ref - 1) < PPL_REL_TOL);
    fixture_close(&f);
}

/* tiny-gemma3: Gemma3ForCausalLM (tests/tools/make_fixtures.py): (1 + w) norms, sandwich
 * norms, embeddings × sqrt(128), q/k norms, query_pre_attn_scalar 64 (head_dim 32), GeLU-tanh,
 * layers s s F s (sliding window 128, local RoPE base 1e4; the full layer: base 1e6, linear
 * factor 4), final logit soft-capping at 5, tied embeddings.  Checked against transformers,
 * then each Gemma feature is switched off in turn: every one must move the window-0 logits
 * far beyond the limit (and the norm offset the PPL far beyond the 0.05 %), or the
 * check could not see a runner that forgets it. */
static void test_tiny_gemma3(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-gemma3", &f);
    qf_model *m = f.m;
    const int want_window[4] = {128, 128, 0, 128};
    for (int l = 0; l < 4; l++) {
        assert_int_equal(m->layers[l].attn_window, want_window[l]);
        assert_ptr_equal(m->layers[l].rope, want_window[l] ? &m->rope_local : &m->rope);
        assert_non_null(m->layers[l].post_attn_norm);
    }
    assert_true(m->lm_head.weight == m->embed);
    assert_float_equal(m->embed_scale, (float)sqrt(128.0), 0);
    assert_float_equal(m->attn_scale, 0.125f, 0);
    assert_int_equal(m->cfg.hidden_act, QF_FFN_ACT_GELU_TANH);
    double lerr = 0;
    printf("tiny-gemma3 with one feature switched off:\n");
    /* (1 + w) read as w: every norm one lower */
    shift_norms(m, -1.0f);
    assert_true(broken_ppl(&f, "norms x w instead of x (1 + w)", &lerr) > 0.0005 * 20);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    shift_norms(m, 1.0f);
    /* no soft-capping */
    double cap = m->cfg.final_logit_softcap;
    m->cfg.final_logit_softcap = 0;
    broken_ppl(&f, "no final logit soft-capping", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.final_logit_softcap = cap;
    /* embeddings unscaled */
    m->embed_scale = 1.0f;
    broken_ppl(&f, "embeddings not scaled by sqrt(hidden)", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->embed_scale = (float)sqrt(128.0);
    /* scores scaled by head_dim^-1/2 */
    m->attn_scale = 1.0f / sqrtf(32.0f);
    broken_ppl(&f, "scores x head_dim^-1/2", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->attn_scale = 0.125f;
    /* every layer on the full layers' RoPE */
    for (int l = 0; l < 4; l++) m->layers[l].rope = &m->rope;
    broken_ppl(&f, "sliding layers on the global RoPE", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    for (int l = 0; l < 4; l++) m->layers[l].rope = want_window[l] ? &m->rope_local : &m->rope;
    /* SwiGLU in place of GeLU-tanh */
    m->cfg.hidden_act = QF_FFN_ACT_SILU;
    broken_ppl(&f, "silu in place of gelu_pytorch_tanh", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->cfg.hidden_act = QF_FFN_ACT_GELU_TANH;
    /* and back: the same numbers as the first check */
    broken_ppl(&f, "(everything restored)", &lerr);
    assert_true(lerr < LOGITS_REL_TOL);
    fixture_close(&f);
}

/* tiny-phi3: Phi3ForCausalLM: fused qkv_proj and gate_up_proj, RoPE on the first 24 of 32
 * dimensions (partial_rotary_factor 0.75).  Then RoPE over whole heads must be seen. */
static void test_tiny_phi3(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-phi3", &f);
    qf_model *m = f.m;
    assert_int_equal(m->rope.dims, 24);
    assert_int_equal(m->layers[0].q.rows, (4 + 2 * 2) * 32); /* qkv_proj */
    assert_int_equal(m->layers[0].k.kind, 0);
    assert_int_equal(m->layers[0].gate.rows, 2 * 256);       /* gate_up_proj */
    qf_model_config whole = m->cfg;
    whole.rope_partial_factor = 1.0;
    qf_error err = {0};
    int64_t len = m->rope.len;
    qf_rope_free(&m->rope);
    assert_int_equal(qf_rope_init(&m->rope, &whole, len, &err), QF_OK);
    double lerr = 0;
    printf("tiny-phi3 with RoPE over whole heads:\n");
    broken_ppl(&f, "partial_rotary_factor ignored", &lerr);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    fixture_close(&f);
}

/* tiny-phi3-longrope: tiny-phi3's weights with LongRoPE (Phi-3-mini-128k, Phi-3.5, Phi-4-mini):
 * original context 256, factor 1024 / 256, short and long factor lists.  The ppl-512 windows
 * are longer than 256, so transformers runs them on the long factors; the 256-token windows
 * (short_mean_nll) on the short ones; both with cos / sin × sqrt(1 + ln 4 / ln 256).  Then
 * the wrong list on either side, and plain RoPE, must be seen. */
static void test_tiny_phi3_longrope(void **state)
{
    (void)state;
    fixture f;
    check_fixture("tiny-phi3-longrope", &f);
    qf_model *m = f.m;
    assert_int_equal(m->cfg.rope_type, QF_ROPE_LONGROPE);
    assert_int_equal(m->cfg.rope_n_factors, 12);
    assert_non_null(m->rope.long_ctx);
    assert_int_equal(m->rope.long_after, 256);
    assert_float_equal(m->rope.scale, (float)sqrt(1.0 + log(4.0) / log(256.0)), 1e-7);
    assert_float_equal(m->rope.long_ctx->scale, m->rope.scale, 0);
    const int64_t n = json_integer_value(json_object_get(f.ref, "short_ctx"));
    const double ref_short = json_real_value(json_object_get(f.ref, "short_mean_nll"));
    assert_int_equal(n, 256);
    int windows = (int)json_integer_value(json_object_get(f.ref, "windows"));
    double nll = short_windows_nll(&f, n, windows), rel = fabs(nll / ref_short - 1);
    printf("tiny-phi3-longrope, %d windows of %d tokens (short factors): mean NLL %.9f vs transformers %.9f "
           "(relative %.2g)\n", windows, (int)n, nll, ref_short, rel);
    assert_true(rel < 1e-6);
    double lerr = 0;
    printf("tiny-phi3-longrope with a factor list or the scaling switched off:\n");
    m->rope.long_after = 1 << 30; /* the short factors on the long windows */
    assert_true(broken_ppl(&f, "short factors on 512-token windows", &lerr) > 20 * PPL_REL_TOL);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    m->rope.long_after = 0; /* the long factors on the short windows */
    nll = short_windows_nll(&f, n, windows);
    printf("  %-44s mean NLL %+9.4f %% off transformers\n", "long factors on 256-token windows",
           100 * (nll / ref_short - 1));
    assert_true(fabs(nll / ref_short - 1) > 20 * 1e-6);
    m->rope.long_after = 256;
    qf_model_config plain = m->cfg;
    plain.rope_type = QF_ROPE_DEFAULT;
    qf_error err = {0};
    int64_t len = m->rope.len;
    qf_rope_free(&m->rope);
    assert_int_equal(qf_rope_init(&m->rope, &plain, len, &err), QF_OK);
    assert_null(m->rope.long_ctx);
    assert_true(broken_ppl(&f, "plain RoPE (no factors, no scale)", &lerr) > 20 * PPL_REL_TOL);
    assert_true(lerr > 100 * LOGITS_REL_TOL);
    /* what transformers gives with plain RoPE on the same weights */
    double plain_ref = json_real_value(json_object_get(f.ref, "default_rope_ppl"));
    assert_true(fabs(fixture_ppl(&f, windows, &lerr) / plain_ref - 1) < PPL_REL_TOL);
    fixture_close(&f);
}

/* LongRoPE's keys as Phi3Config reads them: the older "su" spelling, the top-level original
 * context (4096 when absent, whatever the rope dict says), factor from the two contexts, the
 * attention factor from it; a list of the wrong length or a non-positive factor is refused
 * naming the file and the key. */
static void test_longrope_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/qf-longrope-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *head = "{\"model_type\":\"%s\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                       "\"vocab_size\":10,\"max_position_embeddings\":131072%s,\"rope_scaling\":{\"type\":\"%s\","
                       "\"short_factor\":[1,1,1,1,1,1,1,%s],\"long_factor\":[1,2,3,4,5,6,7,8]%s}}";
    static const struct {
        const char *type, *top, *rtype, *last_short, *extra;
        qf_status want;
        int orig;
        double attn;
        const char *key;
    } cases[] = {
        {"phi3", ",\"original_max_position_embeddings\":4096", "su", "1.5", "", QF_OK, 4096, 0, NULL},
        {"phi3", "", "longrope", "1.5", ",\"original_max_position_embeddings\":8192", QF_OK, 4096, 0, NULL},
        {"phi3", "", "yarn", "1.5", ",\"attention_factor\":1.25", QF_OK, 4096, 1.25, NULL},
        {"llama", "", "longrope", "1.5", ",\"original_max_position_embeddings\":8192", QF_OK, 8192, 0, NULL},
        {"phi3", "", "longrope", "1.5,1", "", QF_ERR_FORMAT, 0, 0, "short_factor"},
        {"phi3", "", "longrope", "-1", "", QF_ERR_FORMAT, 0, 0, "short_factor[7]"},
        {"phi3", "", "longrope", "1", ",\"long_factor\":null", QF_ERR_FORMAT, 0, 0, "long_factor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, head, cases[i].type, cases[i].top, cases[i].rtype, cases[i].last_short, cases[i].extra);
        fclose(fp);
        qf_model_config c;
        qf_error err = {0};
        qf_status st = qf_config_load(path, &c, &err);
        assert_int_equal(st, cases[i].want);
        if (st) {
            assert_non_null(strstr(err.msg, path));
            assert_non_null(strstr(err.msg, cases[i].key));
            continue;
        }
        assert_int_equal(c.rope_type, QF_ROPE_LONGROPE);
        assert_int_equal(c.rope_n_factors, 8);
        assert_int_equal(c.rope_original_max_pos, cases[i].orig);
        assert_float_equal(c.rope_short_factor[7], 1.5f, 0);
        assert_float_equal(c.rope_long_factor[7], 8.0f, 0);
        double factor = 131072.0 / cases[i].orig;
        double attn = cases[i].attn ? cases[i].attn : sqrt(1.0 + log(factor) / log((double)cases[i].orig));
        assert_float_equal(c.rope_yarn_attn_factor, attn, 1e-12);
        qf_config_free(&c);
    }
    unlink(path);
    rmdir(dir);
}

/* YaRN keys as transformers reads them: factor from max / original when null, attention
 * factor from mscale / mscale_all_dim (DeepSeek-V3's spelling), defaults for the betas. */
static void test_yarn_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/qf-yarn-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
          "\"vocab_size\":10,\"max_position_embeddings\":163840,\"rope_scaling\":{\"type\":\"yarn\","
          "\"factor\":null,\"original_max_position_embeddings\":4096,\"mscale\":0.707,\"mscale_all_dim\":0.707,"
          "\"beta_fast\":0}}", fp);
    fclose(fp);
    qf_model_config c;
    qf_error err = {0};
    assert_int_equal(qf_config_load(path, &c, &err), QF_OK);
    assert_int_equal(c.rope_type, QF_ROPE_YARN);
    assert_float_equal(c.rope_factor, 40.0f, 0);
    assert_int_equal(c.rope_original_max_pos, 4096);
    assert_float_equal(c.rope_yarn_attn_factor, 1.0, 1e-12); /* equal mscales cancel */
    assert_float_equal(c.rope_yarn_beta_fast, 32.0, 0);       /* 0 means the default */
    assert_float_equal(c.rope_yarn_beta_slow, 1.0, 0);
    assert_int_equal(c.rope_yarn_truncate, 1);
    qf_config_free(&c);
    /* a lying yarn block is refused with the file named, not run with nonsense frequencies */
    static const char *const lies[] = {"\"factor\":-4", "\"factor\":4,\"beta_slow\":-1",
                                       "\"factor\":4,\"attention_factor\":1e9"};
    for (size_t i = 0; i < sizeof lies / sizeof *lies; i++) {
        fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,"
                "\"num_attention_heads\":2,\"vocab_size\":10,\"rope_scaling\":{\"type\":\"yarn\",%s}}", lies[i]);
        fclose(fp);
        assert_int_equal(qf_config_load(path, &c, &err), QF_ERR_FORMAT);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, "yarn"));
    }
    /* partial RoPE loads (conversion needs no RoPE) but the runner refuses it */
    fp = fopen(path, "w");
    fputs("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
          "\"vocab_size\":10,\"partial_rotary_factor\":0.5}", fp);
    fclose(fp);
    assert_int_equal(qf_config_load(path, &c, &err), QF_OK);
    assert_int_equal(qf_config_runnable(&c, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "partial_rotary_factor"));
    qf_config_free(&c);
    unlink(path);
    rmdir(dir);
}

/* The new families' config keys as transformers 5.23 reads them (expected values: its
 * Gemma3TextConfig / Glm4MoeConfig on the same dicts): Gemma 3's older spelling (rope_theta +
 * rope_scaling for the full layers, rope_local_base_freq for the sliding ones) and its
 * defaults (1e6 / 1e4); and what the runner refuses, by name. */
static void test_family_configs(void **state)
{
    (void)state;
    char dir[] = "/tmp/qf-fam-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    static const struct {
        const char *json;
        double theta, local;
        qf_rope_type type;
        float factor;
    } ok_cases[] = {
        /* transformers: {'sliding_attention': default 1e4, 'full_attention': linear 8, 1e6} */
        {"\"rope_theta\":1000000.0,\"rope_local_base_freq\":10000.0,\"rope_scaling\":{\"rope_type\":\"linear\","
         "\"factor\":8.0}", 1e6, 1e4, QF_ROPE_LINEAR, 8.0f},
        /* no RoPE keys: default 1e6 / 1e4 */
        {"\"hidden_activation\":\"gelu_pytorch_tanh\"", 1e6, 1e4, QF_ROPE_DEFAULT, 1.0f},
        {"\"rope_parameters\":{\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":20000.0},"
         "\"full_attention\":{\"rope_type\":\"linear\",\"factor\":4.0,\"rope_theta\":500000.0}}", 5e5, 2e4,
         QF_ROPE_LINEAR, 4.0f},
    };
    qf_model_config c;
    qf_error err = {0};
    for (size_t i = 0; i < sizeof ok_cases / sizeof *ok_cases; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, "{\"model_type\":\"gemma3_text\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                "\"num_attention_heads\":2,\"vocab_size\":10,%s}", ok_cases[i].json);
        fclose(fp);
        if (qf_config_load(path, &c, &err)) fail_msg("case %zu: %s", i, err.msg);
        assert_float_equal(c.rope_theta, ok_cases[i].theta, 0);
        assert_float_equal(c.rope_local_theta, ok_cases[i].local, 0);
        assert_int_equal(c.rope_type, ok_cases[i].type);
        assert_float_equal(c.rope_factor, ok_cases[i].factor, 0);
        assert_int_equal(c.qk_norm, 1);
        assert_int_equal(qf_config_runnable(&c, &err), QF_OK);
        qf_config_free(&c);
    }
    /* refused: a local RoPE that is not the default type, an unknown activation, bidirectional
     * attention, GLM groups that do not divide the experts */
    static const struct {
        const char *json;
        qf_status load, run;
        const char *key;
    } bad_cases[] = {
        {"\"model_type\":\"gemma3_text\",\"rope_parameters\":{\"sliding_attention\":{\"rope_type\":\"yarn\"},"
         "\"full_attention\":{\"rope_type\":\"default\"}}", QF_ERR_UNSUPPORTED, QF_OK, "sliding_attention.rope_type"},
        {"\"model_type\":\"gemma3_text\",\"hidden_activation\":\"relu2\"", QF_OK, QF_ERR_UNSUPPORTED, "relu2"},
        {"\"model_type\":\"gemma3_text\",\"use_bidirectional_attention\":true", QF_OK, QF_ERR_UNSUPPORTED,
         "use_bidirectional_attention"},
        {"\"model_type\":\"glm4_moe\",\"n_routed_experts\":6,\"n_group\":4,\"topk_group\":1", QF_ERR_FORMAT, QF_OK,
         "n_group"},
        {"\"model_type\":\"llama\",\"partial_rotary_factor\":0.5", QF_OK, QF_ERR_UNSUPPORTED, "partial_rotary_factor"},
        /* DeepSeek-V3's MLA: RoPE pairs need an even rope part, MLA has one kv head per head */
        {"\"model_type\":\"deepseek_v3\",\"qk_rope_head_dim\":15", QF_ERR_FORMAT, QF_OK, "qk_rope_head_dim 15"},
        {"\"model_type\":\"deepseek_v3\",\"num_key_value_heads\":1", QF_ERR_FORMAT, QF_OK, "num_key_value_heads 1"},
        {"\"model_type\":\"deepseek_v3\",\"q_lora_rank\":\"64\"", QF_ERR_FORMAT, QF_OK, "q_lora_rank"},
    };
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, "{\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":2,\"vocab_size\":10,%s}",
                bad_cases[i].json);
        fclose(fp);
        qf_status st = qf_config_load(path, &c, &err);
        if (st != bad_cases[i].load) fail_msg("case %zu: load %d, wanted %d: %s", i, st, bad_cases[i].load, err.msg);
        if (st == QF_OK) {
            st = qf_config_runnable(&c, &err);
            qf_config_free(&c);
            if (st != bad_cases[i].run) fail_msg("case %zu: runnable %d, wanted %d", i, st, bad_cases[i].run);
        }
        if (!strstr(err.msg, bad_cases[i].key)) fail_msg("case %zu: '%s' does not name %s", i, err.msg, bad_cases[i].key);
    }
    /* gpt_oss: GptOssConfig's defaults (transformers 5.23 on the same dicts): attention_bias true,
     * swiglu 1.702 / 7, and without RoPE keys its YaRN (factor 32 over 4096, truncate false,
     * theta 150000); keys that are set win */
    static const char *const gpt_oss_cases[] = {
        "",
        ",\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":32.0,\"original_max_position_embeddings\":4096,"
        "\"truncate\":false}",
    };
    for (size_t i = 0; i < 2; i++) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, "{\"model_type\":\"gpt_oss\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
                "\"vocab_size\":10%s}", gpt_oss_cases[i]);
        fclose(fp);
        if (qf_config_load(path, &c, &err)) fail_msg("gpt_oss case %zu: %s", i, err.msg);
        assert_int_equal(c.attention_bias, 1);
        assert_float_equal(c.swiglu_alpha, 1.702, 0);
        assert_float_equal(c.swiglu_limit, 7.0, 0);
        assert_int_equal(c.rope_type, QF_ROPE_YARN);
        assert_float_equal(c.rope_theta, 150000.0, 0);
        assert_float_equal(c.rope_factor, 32.0f, 0);
        assert_int_equal(c.rope_original_max_pos, 4096);
        assert_int_equal(c.rope_yarn_truncate, 0);
        assert_int_equal(qf_config_runnable(&c, &err), QF_OK);
        qf_config_free(&c);
    }
    /* GLM: the routing keys */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"model_type\":\"glm4_moe\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
          "\"vocab_size\":10,\"n_routed_experts\":8,\"n_group\":2,\"topk_group\":1,\"routed_scaling_factor\":2.5,"
          "\"use_qk_norm\":true,\"num_nextn_predict_layers\":1,\"partial_rotary_factor\":0.5}", fp);
    fclose(fp);
    assert_int_equal(qf_config_load(path, &c, &err), QF_OK);
    assert_int_equal(c.n_experts, 8);
    assert_int_equal(c.n_group, 2);
    assert_int_equal(c.topk_group, 1);
    assert_float_equal(c.routed_scaling_factor, 2.5, 0);
    assert_int_equal(c.qk_norm, 1);
    assert_int_equal(c.norm_topk_prob, 1);
    assert_int_equal(c.n_extra_layers, 1);
    assert_int_equal(qf_config_runnable(&c, &err), QF_OK);
    qf_config_free(&c);
    /* Qwen3-Next without layer_types: Qwen3NextConfig makes every full_attention_interval-th layer
     * full (here 2: [linear, full, linear, full]) and partial_rotary_factor 0.25 by default */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"model_type\":\"qwen3_next\",\"hidden_size\":64,\"num_hidden_layers\":4,\"num_attention_heads\":2,"
          "\"vocab_size\":10,\"full_attention_interval\":2,\"linear_num_key_heads\":2,\"linear_num_value_heads\":4}", fp);
    fclose(fp);
    assert_int_equal(qf_config_load(path, &c, &err), QF_OK);
    assert_int_equal(qf_config_runnable(&c, &err), QF_OK);
    assert_float_equal(c.rope_partial_factor, 0.25, 0);
    assert_int_equal(c.attn_output_gate, 1);
    assert_int_equal(c.lin_k_dim, 128); /* Qwen3NextConfig's defaults */
    assert_int_equal(c.lin_conv, 4);
    int linear[4] = {9, 9, 9, 9};
    assert_int_equal(qf_config_linear_layers(path, &c, linear, &err), QF_OK);
    assert_int_equal(linear[0], 1);
    assert_int_equal(linear[1], 0);
    assert_int_equal(linear[2], 1);
    assert_int_equal(linear[3], 0);
    qf_config_free(&c);
    /* a layer kind the runner does not implement is refused by index and name */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"model_type\":\"qwen3_next\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
          "\"vocab_size\":10,\"layer_types\":[\"linear_attention\",\"sliding_attention\"]}", fp);
    fclose(fp);
    assert_int_equal(qf_config_load(path, &c, &err), QF_OK);
    assert_int_equal(qf_config_linear_layers(path, &c, linear, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "layer_types[1] is 'sliding_attention'"));
    qf_config_free(&c);
    unlink(path);
    rmdir(dir);
}

/* ---- window rules per model_type (expected values: transformers 5.23's config classes) ---- */
typedef struct window_case {
    const char *json; /* config.json body with 4 layers */
    int want[4];
    qf_status st;     /* expected status; on failure `key` must be named */
    const char *key;
} window_case;

static void test_window_rules(void **state)
{
    (void)state;
    static const window_case cases[] = {
        {"{\"model_type\":\"mistral\",\"sliding_window\":128}", {128, 128, 128, 128}, QF_OK, NULL},
        {"{\"model_type\":\"mistral\",\"sliding_window\":null}", {0, 0, 0, 0}, QF_OK, NULL},
        {"{\"model_type\":\"mistral\"}", {4096, 4096, 4096, 4096}, QF_OK, NULL},
        /* mistral ignores layer_types (transformers only warns) */
        {"{\"model_type\":\"mistral\",\"sliding_window\":128,\"layer_types\":[\"full_attention\","
         "\"sliding_attention\",\"full_attention\",\"sliding_attention\"]}", {128, 128, 128, 128}, QF_OK, NULL},
        {"{\"model_type\":\"mixtral\"}", {0, 0, 0, 0}, QF_OK, NULL},
        {"{\"model_type\":\"mixtral\",\"sliding_window\":64}", {64, 64, 64, 64}, QF_OK, NULL},
        {"{\"model_type\":\"qwen2\",\"use_sliding_window\":false,\"sliding_window\":4096}", {0, 0, 0, 0}, QF_OK, NULL},
        {"{\"model_type\":\"qwen2\",\"use_sliding_window\":true,\"sliding_window\":64,\"max_window_layers\":2}",
         {0, 0, 64, 64}, QF_OK, NULL},
        {"{\"model_type\":\"qwen3\",\"use_sliding_window\":true,\"sliding_window\":64,\"layer_types\":["
         "\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"full_attention\"]}", {64, 0, 64, 0}, QF_OK,
         NULL},
        {"{\"model_type\":\"qwen2_moe\",\"use_sliding_window\":true,\"sliding_window\":64,\"max_window_layers\":3}",
         {64, 0, 64, 0}, QF_OK, NULL},
        {"{\"model_type\":\"qwen2_moe\",\"use_sliding_window\":false,\"sliding_window\":0}", {0, 0, 0, 0}, QF_OK, NULL},
        {"{\"model_type\":\"qwen3_moe\",\"use_sliding_window\":true,\"sliding_window\":64}", {64, 64, 64, 64}, QF_OK,
         NULL},
        {"{\"model_type\":\"llama\",\"sliding_window\":128}", {0, 0, 0, 0}, QF_OK, NULL},
        {"{\"model_type\":\"phi3\",\"sliding_window\":64}", {64, 64, 64, 64}, QF_OK, NULL},
        {"{\"model_type\":\"phi3\"}", {0, 0, 0, 0}, QF_OK, NULL},
        {"{\"model_type\":\"gemma3_text\",\"sliding_window\":64,\"sliding_window_pattern\":2}", {64, 0, 64, 0},
         QF_OK, NULL},
        {"{\"model_type\":\"gemma3_text\"}", {4096, 4096, 4096, 4096}, QF_OK, NULL},
        {"{\"model_type\":\"gemma3_text\",\"sliding_window\":64,\"layer_types\":[\"full_attention\","
         "\"sliding_attention\",\"sliding_attention\",\"full_attention\"]}", {0, 64, 64, 0}, QF_OK, NULL},
        /* gpt_oss (GptOssConfig): even layers slide, window 128 unless set */
        {"{\"model_type\":\"gpt_oss\"}", {128, 0, 128, 0}, QF_OK, NULL},
        {"{\"model_type\":\"gpt_oss\",\"sliding_window\":64}", {64, 0, 64, 0}, QF_OK, NULL},
        {"{\"model_type\":\"gpt_oss\",\"sliding_window\":64,\"layer_types\":[\"full_attention\","
         "\"full_attention\",\"sliding_attention\",\"sliding_attention\"]}", {0, 0, 64, 64}, QF_OK, NULL},
        /* what the runner does not implement is refused, naming the key */
        {"{\"model_type\":\"qwen3\",\"layer_types\":[\"chunked_attention\",\"full_attention\",\"full_attention\","
         "\"full_attention\"]}", {0}, QF_ERR_UNSUPPORTED, "layer_types[0]"},
        {"{\"model_type\":\"qwen2\",\"layer_types\":[\"full_attention\",\"sliding_attention\",\"full_attention\","
         "\"full_attention\"]}", {0}, QF_ERR_UNSUPPORTED, "layer_types[1]"},
        {"{\"model_type\":\"qwen2\",\"layer_types\":[\"full_attention\"]}", {0}, QF_ERR_FORMAT, "layer_types"},
        {"{\"model_type\":\"mistral\",\"sliding_window\":0}", {0}, QF_ERR_UNSUPPORTED, "sliding_window"},
        {"{\"model_type\":\"mistral\",\"sliding_window\":\"128\"}", {0}, QF_ERR_FORMAT, "sliding_window"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const window_case *k = &cases[i];
        qf_model_config c;
        memset(&c, 0, sizeof c);
        json_error_t je;
        c.json = json_loads(k->json, 0, &je);
        assert_non_null(c.json);
        snprintf(c.model_type, sizeof c.model_type, "%s", json_string_value(json_object_get(c.json, "model_type")));
        c.n_layers = 4;
        int w[4] = {-1, -1, -1, -1};
        qf_error err = {0};
        qf_status st = qf_config_attn_windows("dir/config.json", &c, w, &err);
        if (st != k->st) fail_msg("case %zu (%s): status %d, wanted %d: %s", i, k->json, st, k->st, err.msg);
        if (st == QF_OK) {
            for (int l = 0; l < 4; l++)
                if (w[l] != k->want[l]) fail_msg("case %zu (%s): layer %d window %d, wanted %d", i, k->json, l, w[l],
                                                 k->want[l]);
        } else {
            assert_non_null(strstr(err.msg, "dir/config.json"));
            assert_non_null(strstr(err.msg, k->key));
        }
        json_decref(c.json);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_rules),
        cmocka_unit_test(test_tiny_tied),
        cmocka_unit_test(test_tiny_swa),
        cmocka_unit_test(test_tiny_yarn),
        cmocka_unit_test(test_tiny_gemma3),
        cmocka_unit_test(test_tiny_phi3),
        cmocka_unit_test(test_tiny_phi3_longrope),
        cmocka_unit_test(test_longrope_config),
        cmocka_unit_test(test_yarn_config),
        cmocka_unit_test(test_family_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
