#!/usr/bin/env python3
"""make_fixtures.py - build tests/data/tiny-tied, tiny-swa, tiny-yarn, tiny-gemma3, tiny-phi3,
tiny-glm4moe, tiny-gptoss, tiny-llama4, tiny-nemotronh, tiny-qwen3next, tiny-qwen35moe, tiny-deepseekv3,
tiny-deepseekv3-qproj and tiny-deepseekv32 with Hugging Face transformers, and their independent
reference numbers.

Pinned (the versions the committed files were made with; other versions may differ in the
last bits of the random init, not in the protocol):
    python 3.11, torch 2.15.0, transformers 5.23.0, safetensors 0.8.0, numpy 2.4.6

Run from the repository root:
    python tests/tools/make_fixtures.py            # writes tests/data/tiny-*{,.reference.json,...}
    python tests/tools/make_fixtures.py tiny-yarn  # only the fixtures named

Why these two: the shared fixtures (tiny-llama, tiny-moe) have an untied lm_head and full
attention, so they cannot show (a) a checkpoint with tied embeddings, where no lm_head tensor
exists (Qwen3 / Qwen2.5 / Llama 3.2 small models), or (b) a sliding window smaller than the
ppl-512 window (Mistral), where full attention gives the wrong numbers.  tiny-yarn (Qwen2:
q/k/v biases, YaRN RoPE scaling with factor 4 over an original context of 128, as Qwen2.5 and
Qwen3 ship for long context) shows (c) a RoPE variant whose inverse frequencies and cos/sin
scale differ from the default: a runner that ignores it is measurably off.  tiny-gemma3,
tiny-phi3, tiny-glm4moe, tiny-nemotronh and tiny-qwen3next are the runner's Gemma 3, Phi-3, GLM-4.5,
Nemotron-H and Qwen3-Next (issue 15): each has the
family's features at settings where switching one off is visible (tests/data/README.md).

The weights are random (no training), drawn with a fixed seed; initializer_range is large
(0.1) so the logits are far from uniform and a wrong mask moves the PPL clearly.  Norm
weights are drawn around 1 so that a runner that skips one of them is seen.  The checkpoint is
saved in bf16 (two shards, hub layout); the references are computed in float32 from the saved
bf16 weights (eager attention, no TF32), so they are what the files on disk mean.

Reference protocol ("ppl-512", /work/shared/fixtures/README.md): tests/data/eval.tokens.i32 cut
into 512-token windows, each evaluated alone, tokens 1..511 scored; the first N_WINDOWS
windows.  Written per fixture:
    tests/data/NAME.reference.json          ppl, mean_nll, scored_tokens, windows (+ full-attention
                                            ppl for tiny-swa: what a runner ignoring the window gets)
    tests/data/NAME.window0.logits.safetensors  float32 logits of window 0 at positions 0..15 and
                                            496..511 (tensor logits [32, vocab]), their ids
                                            (input_ids int32 [512], the whole window) and
                                            positions (int32 [32])
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]
CTX = 512
N_WINDOWS = 16
POSITIONS = list(range(16)) + list(range(CTX - 16, CTX))  # the tail lies beyond a 128 window

# tiny-phi3 and tiny-phi3-longrope: the same shapes (and seed), so the same weights
PHI3 = dict(vocab_size=8192, hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=0.1,
            partial_rotary_factor=0.75, bos_token_id=0, eos_token_id=0, pad_token_id=0)

FIXTURES = {
    "tiny-tied": dict(
        cls="Qwen3ForCausalLM",
        config=transformers.Qwen3Config(
            vocab_size=8192, hidden_size=128, intermediate_size=384, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
            rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.1,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            bos_token_id=0, eos_token_id=0),
        seed=1301, shard="2MB"),
    "tiny-swa": dict(
        cls="MistralForCausalLM",
        config=transformers.MistralConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=384, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
            rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=0.1, sliding_window=128,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            bos_token_id=0, eos_token_id=0),
        seed=1302, shard="3MB"),
    "tiny-yarn": dict(
        cls="Qwen2ForCausalLM",
        config=transformers.Qwen2Config(
            vocab_size=8192, hidden_size=128, intermediate_size=384, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.1,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 128},
            bos_token_id=0, eos_token_id=0),
        seed=1303, shard="3MB"),
    # Gemma 3: (1 + w) norms (drawn around 0, the q/k norms around 1 so the attention is sharp),
    # sandwich norms, scaled embeddings, GeLU-tanh, query_pre_attn_scalar != head_dim, sliding
    # layers with their own RoPE base next to full layers with linear-scaled RoPE, final logit
    # soft-capping, tied embeddings (Gemma's default).
    "tiny-gemma3": dict(
        cls="Gemma3ForCausalLM",
        config=transformers.Gemma3TextConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
            rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.1, sliding_window=128,
            query_pre_attn_scalar=64, final_logit_softcapping=5.0,
            layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                             "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0}},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1304, shard="3MB", norm_offset=1.0),
    # Phi-3: fused qkv_proj and gate_up_proj, RoPE on 3/4 of each head (Phi-4-mini's
    # partial_rotary_factor).
    "tiny-phi3": dict(
        cls="Phi3ForCausalLM",
        config=transformers.Phi3Config(
            **PHI3, max_position_embeddings=2048, original_max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75}),
        seed=1305, shard="3MB", sharpen=False),
    # Phi-3 with LongRoPE (Phi-3-mini-128k, Phi-3.5-mini, Phi-4-mini): tiny-phi3's weights (same
    # seed and shapes, so the same bytes) under a config whose original context (256) is shorter
    # than the ppl-512 window, so the 512-token windows run on the long factors and the
    # 256-token reference below on the short ones; attention factor sqrt(1 + ln 4 / ln 256).
    "tiny-phi3-longrope": dict(
        cls="Phi3ForCausalLM",
        config=transformers.Phi3Config(
            **PHI3, max_position_embeddings=1024, original_max_position_embeddings=256,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                             "short_factor": [1.0 + 0.05 * i for i in range(12)],
                             "long_factor": [1.0 + 1.5 * i for i in range(12)]}),
        seed=1305, shard="3MB", sharpen=False),
    # GLM-4.5 (glm4_moe): a dense first layer, then MoE with sigmoid routing over 8 experts in 2
    # groups (top-1 group, top-2 experts), e_score_correction_bias, routed_scaling_factor 2.5,
    # one shared expert; partial rotary 0.5, q/k norms, q/k/v biases.
    "tiny-glm4moe": dict(
        cls="Glm4MoeForCausalLM",
        config=transformers.Glm4MoeConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=256, moe_intermediate_size=128,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
            max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
            initializer_range=0.1, n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1,
            n_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
            use_qk_norm=True, attention_bias=True, partial_rotary_factor=0.5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1306, shard="3MB", sharpen=False, router_bias=0.1),
    # GPT-OSS (gpt_oss): attention sinks (drawn N(1, 1), so a head can put real weight on
    # nothing), sliding / full layers alternating (window 128 < the 512 window), YaRN with
    # truncate false (gpt-oss's rope_parameters, factor 4 over 128), q/k/v/o biases, a router
    # with a bias (top-2 of 8 by logit, softmax over the two), fused experts with gate / up
    # interleaved and biases, the clamped SwiGLU with swiglu_limit 3 (the released 7 would barely
    # clamp a random model's activations; a runner that hard-codes 7 or skips the clamp is seen).
    # Not sharpened: with q/k x3 transformers' own float32 logits were 5e-5 (relative L2) from
    # its float64 ones at some positions, the test's whole tolerance; unsharpened 1.3e-6.
    "tiny-gptoss": dict(
        cls="GptOssForCausalLM",
        config=transformers.GptOssConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=128, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=512,
            rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=0.1, sliding_window=128,
            num_local_experts=8, num_experts_per_tok=2, swiglu_limit=3.0, attention_bias=True,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 4.0,
                             "original_max_position_embeddings": 128, "beta_fast": 32.0,
                             "beta_slow": 1.0, "truncate": False},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1307, shard="5MB", sharpen=False, gptoss=True),
    # Llama 4 (llama4_text): MoE on every second layer (4 fused experts, top-1, sigmoid score
    # scaling the expert's input, a shared expert), dense layers of intermediate_size_mlp;
    # layers 0-2 RoPE (interleaved pairs, llama3 scaling) + L2 q/k norm + chunked attention (128
    # < the 512 window), layer 3 NoPE with full attention and attention temperature tuning
    # (floor_scale 64, so positions < 512 reach several steps).
    "tiny-llama4": dict(
        cls="Llama4ForCausalLM",
        config=transformers.Llama4TextConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=128, intermediate_size_mlp=256,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
            max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False, initializer_range=0.1,
            num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2, no_rope_layers=[1, 1, 1, 0],
            attention_chunk_size=128, use_qk_norm=True, attn_temperature_tuning=True, floor_scale=64,
            attn_scale=0.1,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1308, shard="4MB", sharpen=False),
    # Nemotron-H (nemotron_h): one mixer per layer, M - * E M (Mamba-2, squared-ReLU MLP, NoPE
    # attention, MoE, Mamba-2); the MoE layer: 8 ungated relu^2 experts in 2 groups (top-1 group,
    # top-2 experts), sigmoid routing with e_score_correction_bias, routed_scaling_factor 2.5, a
    # shared expert.  Mamba: 8 heads of 32 in 2 groups, state 16, conv kernel 4 with
    # bias, chunk_size 128 (< the 512-token window, so the reference's chunked scan crosses 3
    # chunk boundaries); time_step_min 0.05, so the dt clamp (the mixer's lower limit) bites;
    # D and the gated norm's weights drawn away from 1.
    "tiny-nemotronh": dict(
        cls="NemotronHForCausalLM",
        config=transformers.NemotronHConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=256, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, max_position_embeddings=2048, layer_norm_epsilon=1e-5,
            tie_word_embeddings=False, initializer_range=0.1,
            layers_block_type=["mamba", "mlp", "attention", "moe", "mamba"],
            mamba_num_heads=8, mamba_head_dim=32, ssm_state_size=16, n_groups=2, conv_kernel=4,
            chunk_size=128, time_step_min=0.05, time_step_max=0.1, use_conv_bias=True,
            mlp_hidden_act="relu2", n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1,
            moe_intermediate_size=128, moe_shared_expert_intermediate_size=128, routed_scaling_factor=2.5,
            norm_topk_prob=True, bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1307, shard="4MB", sharpen=False, mamba=True, router_bias=0.1),
    # Qwen3-Next (qwen3_next): layers L D L F (gated DeltaNet linear attention x3, gated full
    # attention at layer 3 by full_attention_interval 4), layer 1 a dense MLP (mlp_only_layers),
    # the others MoE (8 experts, top-2, shared expert behind a sigmoid gate); (1 + w) norms,
    # q/k norms, partial rotary 0.25.  A_log / dt_bias / conv1d drawn so that the decay keeps
    # memory across the 64-token chunks of the reference's chunked delta rule (512 > 64).
    "tiny-qwen3next": dict(
        cls="Qwen3NextForCausalLM",
        config=transformers.Qwen3NextConfig(
            vocab_size=8192, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
            rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.1,
            linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32,
            linear_value_head_dim=32, linear_conv_kernel_dim=4, num_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=128, shared_expert_intermediate_size=128, norm_topk_prob=True,
            mlp_only_layers=[1], full_attention_interval=4,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1307, shard="5MB", sharpen=False, norm_offset=1.0,
        plain_norms=("linear_attn.norm.weight",), deltanet=True),
    # Qwen3.5-MoE text (qwen3_5_moe_text): Qwen3-Next's layer with the DeltaNet's four separate
    # projections (in_proj_qkv, in_proj_z, in_proj_b, in_proj_a), every layer MoE, top-k weights
    # always renormalised; layers L L L F.
    "tiny-qwen35moe": dict(
        cls="Qwen3_5MoeForCausalLM",
        config=transformers.Qwen3_5MoeTextConfig(
            vocab_size=8192, hidden_size=128, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
            rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.1,
            linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32,
            linear_value_head_dim=32, linear_conv_kernel_dim=4, num_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=128, shared_expert_intermediate_size=128,
            layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1308, shard="5MB", sharpen=False, norm_offset=1.0,
        plain_norms=("linear_attn.norm.weight",), deltanet=True),
    # DeepSeek-V3 (deepseek_v3): MLA attention (q_a_proj -> q_a_layernorm -> q_b_proj;
    # kv_a_proj_with_mqa -> latent + shared k_pe -> kv_a_layernorm -> kv_b_proj), qk_head_dim 48
    # (nope 32 + rope 16) and v_head_dim 32, decoupled RoPE on the rope part in the interleaved
    # layout, YaRN (factor 4 over 128, mscale 1 / mscale_all_dim 0.8: cos/sin × 0.983 and the
    # softmax scale × 1.23), rms_norm_eps 1e-5 beside the latent norms' fixed 1e-6; layer 0
    # dense, layers 1-2 MoE (8 experts in 4 groups, top-2 groups, top-2 experts, sigmoid +
    # correction bias, routed_scaling_factor 2.5, one shared expert).  Every Linear's input
    # width is a multiple of 128, so w4a16's groups quantize all of them (GPTQ included).
    "tiny-deepseekv3": dict(
        cls="DeepseekV3ForCausalLM",
        config=transformers.DeepseekV3Config(
            vocab_size=8192, hidden_size=128, intermediate_size=256, moe_intermediate_size=128,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=128, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
            max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
            initializer_range=0.1, n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2,
            n_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
            rope_interleave=True, num_nextn_predict_layers=0,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 128, "mscale": 1.0, "mscale_all_dim": 0.8,
                             "beta_fast": 32.0, "beta_slow": 1.0},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1307, shard="3MB", sharpen=False, router_bias=0.1),
    # DeepSeek-V3's other branches: q_lora_rank null (a plain q_proj), rope_interleave false
    # (rotate-half on the rope part), default RoPE (softmax scale 48^-1/2 alone), tied
    # embeddings to stay small; one dense layer, one MoE layer (4 experts in 2 groups).
    "tiny-deepseekv3-qproj": dict(
        cls="DeepseekV3ForCausalLM",
        config=transformers.DeepseekV3Config(
            vocab_size=8192, hidden_size=128, intermediate_size=256, moe_intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=None, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
            max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=True,
            initializer_range=0.1, n_routed_experts=4, num_experts_per_tok=2, n_group=2, topk_group=1,
            n_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
            rope_interleave=False, num_nextn_predict_layers=0,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1308, shard="2MB", sharpen=False, router_bias=0.1),
    # DeepSeek-V3.2 (deepseek_v32): V3's layer plus the DSA indexer (wq_b on the q latent, wk +
    # LayerNorm, weights_proj), with index_topk 512 = the ppl-512 window, where the indexer keeps
    # every key; main() checks that the same weights run as DeepseekV3 give the same logits, and
    # records what index_topk 256 gives (the indexer then drops keys: the runner refuses that).
    "tiny-deepseekv32": dict(
        cls="DeepseekV32ForCausalLM",
        config=transformers.DeepseekV32Config(
            vocab_size=8192, hidden_size=128, intermediate_size=256, moe_intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=128, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
            index_topk=512, index_head_dim=32, index_n_heads=2,
            max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=True,
            initializer_range=0.1, n_routed_experts=4, num_experts_per_tok=2, n_group=2, topk_group=1,
            n_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 128, "mscale": 1.0, "mscale_all_dim": 0.8,
                             "beta_fast": 32.0, "beta_slow": 1.0},
            bos_token_id=0, eos_token_id=0, pad_token_id=0),
        seed=1309, shard="2MB", sharpen=False, router_bias=0.1),
}


def v32_as_v3(path):
    """The tiny-deepseekv32 weights run as DeepseekV3ForCausalLM (indexer weights dropped)."""
    c = transformers.AutoConfig.from_pretrained(path).to_dict()
    keep = {k: c[k] for k in (
        "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
        "qk_rope_head_dim", "v_head_dim", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
        "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group", "n_shared_experts",
        "first_k_dense_replace", "routed_scaling_factor", "norm_topk_prob", "rope_parameters")}
    cfg = transformers.DeepseekV3Config(rope_interleave=True, num_nextn_predict_layers=0, **keep)
    cfg._attn_implementation = "eager"
    v3 = transformers.DeepseekV3ForCausalLM(cfg).to(torch.float32).eval()
    src = load_f32(path).state_dict()
    missing, unexpected = v3.load_state_dict(src, strict=False)
    assert not missing and unexpected and all(".indexer." in k for k in unexpected), (missing, unexpected)
    return v3


def build(name, spec):
    torch.manual_seed(spec["seed"])
    cfg = spec["config"]
    model = getattr(transformers, spec["cls"])(cfg).to(torch.float32)
    with torch.no_grad():
        if spec.get("router_bias"):  # a routing bias that matters, and routers that are not zero
            for bname, b in model.named_buffers():
                if bname.endswith("e_score_correction_bias"):
                    b.copy_(spec["router_bias"] * torch.randn_like(b))
            for pname, p in model.named_parameters():
                if pname.endswith(("mlp.gate.weight", "mixer.gate.weight")):
                    p.copy_(cfg.initializer_range * torch.randn_like(p))
        if spec.get("gptoss"):  # biases, sinks and expert weights that matter (their init is 0 / tiny)
            for pname, p in model.named_parameters():
                if pname.endswith(".bias") or pname.endswith("_proj_bias"):
                    p.copy_(0.1 * torch.randn_like(p))
                if pname.endswith("self_attn.sinks"):
                    p.copy_(1.0 + torch.randn_like(p))
                if pname.endswith(("experts.gate_up_proj", "experts.down_proj", "router.weight")):
                    p.copy_(cfg.initializer_range * torch.randn_like(p))
        if spec.get("mamba"):  # a D skip and a conv bias that matter (they init to 1 and small)
            for pname, p in model.named_parameters():
                if pname.endswith("mixer.D"):
                    p.copy_(1.0 + 0.5 * torch.randn_like(p))
                if pname.endswith("conv1d.bias"):
                    p.copy_(0.5 * torch.randn_like(p))
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):  # around 1, so a skipped norm weight shows
                # (1 + w) norms (Gemma): w around 0, except q/k norms (sharper attention)
                off = spec.get("norm_offset", 0.0) if not pname.endswith(("q_norm.weight", "k_norm.weight")) else 0.0
                if pname.endswith(spec.get("plain_norms", ())):  # x w norms beside (1 + w) ones
                    off = 0.0
                p.copy_(1.0 - off + 0.2 * torch.randn_like(p))
            # Sharper attention that writes more into the residual: a random model's attention
            # is otherwise close to a mean over the keys, and the window would barely matter.
            # (not for tiny-phi3, which has no window to show: there the sharper scores made a
            # few positions' float32 rounding grow to 4e-4 through near-ties in the softmax)
            if not spec.get("sharpen", True):
                continue
            if pname.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(3.0)
            if pname.endswith(("v_proj.weight", "o_proj.weight")):
                p.mul_(2.0)
        if spec.get("deltanet"):  # decays between 0.5 and 0.98 per token, a conv that matters
            for pname, p in model.named_parameters():
                if pname.endswith("linear_attn.A_log"):
                    p.copy_(torch.empty_like(p).uniform_(0.02, 1.0).log())
                elif pname.endswith("linear_attn.dt_bias"):
                    p.copy_(0.5 * torch.randn_like(p))
                elif pname.endswith("linear_attn.conv1d.weight"):
                    p.copy_(0.4 * torch.randn_like(p))
    out = os.path.join(DATA, name)
    shutil.rmtree(out, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(out, max_shard_size=spec["shard"])
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(DATA, "tiny-llama", f), os.path.join(out, f))
    for f in os.listdir(out):  # safetensors writes 0600; the fixtures are read by every user
        os.chmod(os.path.join(out, f), 0o644)
    return out


def load_f32(path, **overrides):
    cfg = transformers.AutoConfig.from_pretrained(path)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, config=cfg, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def windows():
    ids = np.fromfile(os.path.join(DATA, "eval.tokens.i32"), dtype="<i4")
    n = len(ids) // CTX
    assert n >= N_WINDOWS
    return torch.from_numpy(ids[: N_WINDOWS * CTX].astype(np.int64)).view(N_WINDOWS, CTX)


@torch.no_grad()
def evaluate(model, w):
    """Summed NLL (float64) over tokens 1..n-1 of each window of n, and window 0's logits."""
    total, count, logits0 = 0.0, 0, None
    for i in range(w.shape[0]):
        logits = model(w[i : i + 1]).logits[0].float()  # (CTX, V)
        if i == 0:
            logits0 = logits.clone()
        lp = torch.log_softmax(logits[:-1].double(), dim=-1)
        total += -lp.gather(1, w[i, 1:, None]).sum().item()
        count += w.shape[1] - 1
    return total, count, logits0


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    w = windows()
    wanted = sys.argv[1:] or list(FIXTURES)
    for name in wanted:
        spec = FIXTURES[name]
        path = build(name, spec)
        model = load_f32(path)
        total, count, logits0 = evaluate(model, w)
        nll = total / count
        ref = {
            "protocol": "ppl-512", "text": "eval.tokens.i32", "ctx": CTX, "windows": N_WINDOWS,
            "scored_tokens": count, "mean_nll": nll, "ppl": math.exp(nll),
            "computed_by": "transformers %s, torch %s, float32, eager attention" % (
                transformers.__version__, torch.__version__),
        }
        if name == "tiny-tied":
            assert "lm_head.weight" not in open(os.path.join(path, "model.safetensors.index.json")).read()
        if name == "tiny-swa":
            # The same weights with full attention: the number a runner that ignores the window
            # would get.  The test must be able to tell the two apart.
            full = load_f32(path, sliding_window=None)
            ft, fc, _ = evaluate(full, w)
            ref["full_attention_ppl"] = math.exp(ft / fc)
            ref["full_attention_mean_nll"] = ft / fc
            gap = abs(ref["full_attention_ppl"] / ref["ppl"] - 1)
            print("%s: full attention PPL differs by %.3f %%" % (name, 100 * gap))
            assert gap > 0.01, "sliding window does not change the PPL enough to be tested"
        if name == "tiny-yarn":
            # The same weights with plain RoPE: what a runner that ignores the scaling gets.
            plain = load_f32(path, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
            pt, pc, plain0 = evaluate(plain, w)
            ref["default_rope_ppl"] = math.exp(pt / pc)
            gap = abs(ref["default_rope_ppl"] / ref["ppl"] - 1)
            lgap = ((plain0 - logits0).norm() / logits0.norm()).item()
            ref["default_rope_window0_logits_rel_l2"] = lgap
            print("%s: default RoPE PPL differs by %.3f %%, window-0 logits by %.2g (relative L2)" % (
                name, 100 * gap, lgap))
            assert lgap > 1e-3, "YaRN does not change the logits enough to be tested"
        if name == "tiny-phi3-longrope":
            # The short factors: windows of 256 tokens (= original_max_position_embeddings, so
            # transformers keeps the short set), and what plain RoPE gives on the long windows.
            short = w.reshape(-1, 256)[:N_WINDOWS]
            st, sc, _ = evaluate(model, short)
            ref["short_ctx"] = 256
            ref["short_mean_nll"] = st / sc
            plain = load_f32(path, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                    "partial_rotary_factor": 0.75})
            pt, pc, plain0 = evaluate(plain, w)
            ref["default_rope_ppl"] = math.exp(pt / pc)
            lgap = ((plain0 - logits0).norm() / logits0.norm()).item()
            print("%s: short-factor NLL %.6f on 256-token windows; default RoPE PPL differs by %.3f %%, "
                  "window-0 logits by %.2g" % (name, ref["short_mean_nll"], 100 * abs(ref["default_rope_ppl"] /
                                                math.exp(nll) - 1), lgap))
            assert lgap > 1e-3, "LongRoPE does not change the logits enough to be tested"
        if name == "tiny-deepseekv32":
            # index_topk 512 keeps every key of a 512-token window: the model is DeepSeek-V3's
            v3t, v3c, v3l = evaluate(v32_as_v3(path), w)
            ref["deepseek_v3_same_weights_ppl"] = math.exp(v3t / v3c)
            ref["deepseek_v3_same_weights_window0_logits_max_abs_diff"] = (v3l - logits0).abs().max().item()
            print("%s: as DeepseekV3 PPL %.6f, window-0 logits max |diff| %.3g" % (
                name, ref["deepseek_v3_same_weights_ppl"], ref["deepseek_v3_same_weights_window0_logits_max_abs_diff"]))
            assert abs(ref["deepseek_v3_same_weights_ppl"] / ref["ppl"] - 1) < 1e-9
            sparse = load_f32(path, index_topk=256)
            st, sc, _ = evaluate(sparse, w)
            ref["index_topk_256_ppl"] = math.exp(st / sc)
            print("%s: index_topk 256 (the indexer drops keys) PPL %.6f" % (name, ref["index_topk_256_ppl"]))
        with open(os.path.join(DATA, name + ".reference.json"), "w") as f:
            json.dump(ref, f, indent=2)
            f.write("\n")
        save_file({"logits": logits0[POSITIONS].contiguous(),
                   "positions": torch.tensor(POSITIONS, dtype=torch.int32),
                   "input_ids": w[0].to(torch.int32).contiguous()},
                  os.path.join(DATA, name + ".window0.logits.safetensors"))
        sd = logits0.std(dim=-1).mean().item()
        print("%s: PPL %.4f (mean NLL %.6f) over %d windows; logits std per position %.3f" % (
            name, ref["ppl"], nll, N_WINDOWS, sd))


if __name__ == "__main__":
    sys.exit(main())
