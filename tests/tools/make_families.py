#!/usr/bin/env python3
"""make_families.py - tiny checkpoints of today's open-weight families, built and saved by
Hugging Face transformers (random weights, bf16, hub layout), for qforge's family tests.

Pinned: python 3.11, torch 2.15.0, transformers 5.23.0 (tests/interop/requirements.txt).

    python tests/tools/make_families.py OUT_DIR [FAMILY ...]   # default: every family

Each OUT_DIR/FAMILY/ is what `save_pretrained` writes (config.json, safetensors shards, index)
plus tiny-llama's tokenizer files (vocab 8192, so `qforge validate` can tokenize text for them).
Sizes are the smallest that keep every structural feature of the family: several layers so
that alternating layer kinds (sliding / full, dense / MoE, Mamba / attention, NoPE, linear
attention) all appear, several experts with top-2 routing, shared experts where the family
has them.  Weights are drawn with a fixed seed; norms around 1.

Families (config class, what it exercises):
  nemotron_h        NemotronHConfig       hybrid Mamba-2 + attention + MLP (+ MoE) layers
  qwen3_next        Qwen3NextConfig       gated DeltaNet linear attention + gated attention, MoE + shared expert
  qwen3_5_moe_text  Qwen3_5MoeTextConfig  the same family, Qwen3.5 spelling
  deepseek_v3       DeepseekV3Config      MLA attention, dense-then-MoE, shared experts, grouped routing, YaRN
  deepseek_v32      DeepseekV32Config     + the sparse-attention indexer
  gpt_oss           GptOssConfig          attention sinks, alternating sliding window, fused 3-D experts with biases
  llama4_text       Llama4TextConfig      MoE on interleaved layers + shared expert, chunked attention, NoPE layers
  gemma3_text       Gemma3TextConfig      (1 + w) norms, sandwich norms, GeLU-tanh, 5:1 sliding / full, q/k norms
  phi3              Phi3Config            fused qkv_proj and gate_up_proj
  glm4_moe          Glm4MoeConfig         partial RoPE, dense-then-MoE, shared expert, sigmoid routing
  deepseek_v4       DeepseekV4Config      compressed attention, hash-routed MoE
  gemma4_text       Gemma4TextConfig      per-layer inputs, shared KV layers
"""
import os
import shutil
import sys

import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER = os.path.join(ROOT, "tests", "data", "tiny-llama")
V = 8192  # tiny-llama's tokenizer

# Every Linear's input width is a multiple of 128, so that the group-of-128 schemes quantize
# every Linear as they do on full-size models (a narrower Linear is kept in bf16 and would hide
# what the test is for).
COMMON = dict(vocab_size=V, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=1024, initializer_range=0.1, tie_word_embeddings=False,
              bos_token_id=0, eos_token_id=0, pad_token_id=None)

FAMILIES = {
    "nemotron_h": ("NemotronHConfig", dict(
        head_dim=32, intermediate_size=256, layers_block_type=["mamba", "mlp", "attention", "moe"],
        mamba_num_heads=8, mamba_head_dim=32, ssm_state_size=16, n_groups=2, chunk_size=32,
        n_routed_experts=4, n_shared_experts=1, moe_intermediate_size=128,
        moe_shared_expert_intermediate_size=128, num_experts_per_tok=2)),
    "qwen3_next": ("Qwen3NextConfig", dict(
        num_hidden_layers=4, head_dim=32, intermediate_size=256, linear_key_head_dim=32,
        linear_value_head_dim=32, linear_num_key_heads=2, linear_num_value_heads=4,
        moe_intermediate_size=128, shared_expert_intermediate_size=128, num_experts=4,
        num_experts_per_tok=2)),
    "qwen3_5_moe_text": ("Qwen3_5MoeTextConfig", dict(
        num_hidden_layers=4, head_dim=32, linear_key_head_dim=32, linear_value_head_dim=32,
        linear_num_key_heads=2, linear_num_value_heads=4, moe_intermediate_size=128,
        shared_expert_intermediate_size=128, num_experts=4, num_experts_per_tok=2)),
    "deepseek_v3": ("DeepseekV3Config", dict(
        num_hidden_layers=3, num_key_value_heads=4, intermediate_size=256, moe_intermediate_size=128,
        n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=2, topk_group=1,
        first_k_dense_replace=1, q_lora_rank=128, kv_lora_rank=128, qk_rope_head_dim=32,
        qk_nope_head_dim=32, v_head_dim=32, num_nextn_predict_layers=0,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 256, "mscale": 1.0,
                         "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1})),
    "deepseek_v32": ("DeepseekV32Config", dict(
        num_hidden_layers=3, num_key_value_heads=4, intermediate_size=256, moe_intermediate_size=128,
        n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=2, topk_group=1,
        first_k_dense_replace=1, q_lora_rank=128, kv_lora_rank=128, qk_rope_head_dim=32,
        qk_nope_head_dim=32, v_head_dim=32, index_topk=64, index_head_dim=32, index_n_heads=2)),
    "gpt_oss": ("GptOssConfig", dict(
        num_hidden_layers=4, head_dim=32, intermediate_size=128, num_local_experts=4,
        num_experts_per_tok=2, sliding_window=128, max_position_embeddings=131072,
        rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                         "original_max_position_embeddings": 4096, "beta_fast": 32.0,
                         "beta_slow": 1.0, "truncate": False})),
    "llama4_text": ("Llama4TextConfig", dict(
        num_hidden_layers=4, head_dim=32, intermediate_size=128, intermediate_size_mlp=256,
        num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
        attention_chunk_size=128, no_rope_layer_interval=2)),
    "gemma3_text": ("Gemma3TextConfig", dict(
        num_hidden_layers=6, head_dim=32, intermediate_size=256, query_pre_attn_scalar=32,
        sliding_window=128)),
    "phi3": ("Phi3Config", dict(num_hidden_layers=2, intermediate_size=256)),
    "glm4_moe": ("Glm4MoeConfig", dict(
        num_hidden_layers=3, head_dim=32, intermediate_size=256, moe_intermediate_size=128,
        n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1,
        num_nextn_predict_layers=0)),
    "deepseek_v4": ("DeepseekV4Config", dict(
        num_hidden_layers=4, num_key_value_heads=1, head_dim=32, q_lora_rank=128,
        moe_intermediate_size=128, n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2,
        o_groups=2, o_lora_rank=128, index_n_heads=2, index_head_dim=32, index_topk=32,
        num_nextn_predict_layers=0, sliding_window=64, qk_rope_head_dim=8)),
    "gemma4_text": ("Gemma4TextConfig", dict(
        num_hidden_layers=6, head_dim=32, intermediate_size=256, sliding_window=128,
        vocab_size_per_layer_input=V, hidden_size_per_layer_input=16)),
}


def build(out_dir, name, seed):
    cls_name, over = FAMILIES[name]
    kw = dict(COMMON)
    kw.update(over)
    cfg = getattr(transformers, cls_name)(**kw)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg).to(torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight") and p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    out = os.path.join(out_dir, name)
    shutil.rmtree(out, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(out, max_shard_size="2MB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER, f), os.path.join(out, f))
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    n = sum(p.numel() for p in model.parameters())
    print("%-18s %-22s %8.2f M parameters -> %s" % (name, type(model).__name__, n / 1e6, out))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(FAMILIES)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    failed = 0
    for i, name in enumerate(names):
        try:
            build(out_dir, name, 1400 + list(FAMILIES).index(name))
        except Exception as e:  # report every family, then fail
            failed += 1
            print("%-18s FAILED: %s: %s" % (name, type(e).__name__, str(e).splitlines()[0][:300]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
