#!/usr/bin/env python3
"""make_qwen_moe.py - tiny Qwen2-MoE and Qwen3-MoE checkpoints for the GGUF tests (tests/data/
tiny-qwen2moe, tiny-qwen3moe), built and saved by Hugging Face transformers (random weights,
bf16), with tiny-llama's tokenizer (vocab 8192) so llama.cpp and `qforge validate` read the same
ids.

Pinned: python 3.11, torch 2.15.0, transformers 5.23.0 (tests/interop/requirements.txt).

    python tests/tools/make_qwen_moe.py OUT_DIR

Both: 2 layers, every one MoE, 4 experts of width 128, top-2.  qwen2_moe adds its shared expert
(width 256) with the sigmoid shared_expert_gate, q/k/v biases and unnormalised top-k weights
(norm_topk_prob false, what llama.cpp's qwen2moe graph computes); qwen3_moe has q/k norms and
normalised top-k weights (llama.cpp's qwen3moe).

Also written, as tests/tools/make_fixtures.py writes it for its fixtures (transformers in float32
from the saved bf16 weights, eager attention): OUT_DIR/NAME.window0.logits.safetensors, the logits
of the first 512-token window of tests/data/eval.tokens.i32 at positions 0..15 and 496..511
(logits [32, 8192], positions int32 [32], input_ids int32 [512]).
"""
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER = os.path.join(ROOT, "tests", "data", "tiny-llama")
COMMON = dict(vocab_size=8192, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
              num_hidden_layers=2, max_position_embeddings=2048, initializer_range=0.1,
              tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=None,
              num_experts=4, num_experts_per_tok=2, moe_intermediate_size=128, intermediate_size=256,
              decoder_sparse_step=1, mlp_only_layers=[], rms_norm_eps=1e-6)
MODELS = {
    "tiny-qwen2moe": ("Qwen2MoeConfig", dict(shared_expert_intermediate_size=256, norm_topk_prob=False), 1501),
    "tiny-qwen3moe": ("Qwen3MoeConfig", dict(head_dim=32, norm_topk_prob=True), 1502),
}


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    for name, (cls, over, seed) in MODELS.items():
        cfg = getattr(transformers, cls)(**{**COMMON, **over})
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(cfg).to(torch.float32)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight") and p.dim() == 1:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                elif pname.endswith(".bias"):
                    p.copy_(0.1 * torch.randn_like(p))
        out = os.path.join(sys.argv[1], name)
        shutil.rmtree(out, ignore_errors=True)
        model.to(torch.bfloat16).save_pretrained(out)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(TOKENIZER, f), os.path.join(out, f))
        for f in os.listdir(out):
            os.chmod(os.path.join(out, f), 0o644)
        print("%s: %.2f M parameters -> %s" % (name, sum(p.numel() for p in model.parameters()) / 1e6, out))
        ref = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
        ids = torch.from_numpy(np.fromfile(os.path.join(ROOT, "tests", "data", "eval.tokens.i32"), dtype="<i4")[:512].copy())
        with torch.no_grad():
            logits = ref(ids[None].long()).logits[0]
        pos = list(range(16)) + list(range(496, 512))
        save_file({"logits": logits[pos].contiguous(), "positions": torch.tensor(pos, dtype=torch.int32),
                   "input_ids": ids.to(torch.int32).contiguous()},
                  os.path.join(sys.argv[1], name + ".window0.logits.safetensors"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
