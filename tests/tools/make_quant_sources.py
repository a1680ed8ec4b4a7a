#!/usr/bin/env python3
"""make_quant_sources.py - already-quantized sources, as their publishers ship them, made from
the tiny bf16 family checkpoints of make_families.py, for qforge's dequantize-on-read tests.

    python tests/tools/make_quant_sources.py BASE_DIR OUT_DIR

BASE_DIR holds make_families.py's deepseek_v3/ and gpt_oss/.  Writes:
  OUT_DIR/deepseek_v3_fp8/  DeepSeek-V3's release layout: every Linear weight of the decoder
      (attention, MLA projections, dense and expert MLPs) F8_E4M3 with weight_scale_inv F32
      [ceil(R/128), ceil(C/128)]; kv_a_proj_with_mqa [160, 128] has a partial edge block.
      config.json quantization_config {"quant_method": "fp8", "weight_block_size": [128, 128],
      "activation_scheme": "dynamic", "fmt": "e4m3"}, as DeepSeek ships it.
  OUT_DIR/gpt_oss_mxfp4/    GPT-OSS's release layout: each layer's experts as
      mlp.experts.{gate_up,down}_proj_{blocks,scales} (U8 [E, N, K/32, 16] and U8 [E, N, K/32],
      N the output rows of W^T), everything else bf16; quantization_config {"quant_method":
      "mxfp4", "modules_to_not_convert": [...]}, as OpenAI ships it.
  OUT_DIR/tiny_llama_fp8/   tests/data/tiny-llama with every decoder Linear in DeepSeek's FP8
      blocks: a source the model runner can run, for `validate --base` and calibrated methods.
The encoders are written here from the formats' definitions (torch, no qforge code):
  fp8 block: scale_inv = amax(block) / 448 (float32; 1 for an all-zero block),
             q = float8_e4m3fn(clamp(w / scale_inv, -448, 448))   (DeepSeek's weight_quant)
  mxfp4:     per 32 values e = floor(log2(amax)) - 2 (OCP MX), scale byte e + 127, code =
             E2M1 of w / 2^e rounded to nearest, ties to the even code, saturating at 6; two
             codes per byte, the even-indexed one in the low nibble
transformers cannot write either on a CPU (its FP8 and MXFP4 quantizers need a GPU), but it
reads both: check_quant_sources.py compares qforge's dequantization with transformers'.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

FP8_MAX = 448.0
BLOCK = 128


def fp8_block(w):
    """w [R, C] float -> (q F8_E4M3 [R, C], scale_inv F32 [ceil(R/128), ceil(C/128)])."""
    R, C = w.shape
    gr, gc = -(-R // BLOCK), -(-C // BLOCK)
    w = w.float()
    pad = torch.zeros(gr * BLOCK, gc * BLOCK)
    pad[:R, :C] = w
    amax = pad.abs().reshape(gr, BLOCK, gc, BLOCK).amax(dim=(1, 3))
    sinv = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax)).float()
    full = sinv.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:R, :C]
    q = torch.clamp(w / full, -FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, sinv


# E2M1 code thresholds: ties at 0.25, 1.25, 2.5 and 5 go down to the even code, at 0.75, 1.75
# and 3.5 up to it.
TIES_DOWN = torch.tensor([0.25, 1.25, 2.5, 5.0])
TIES_UP = torch.tensor([0.75, 1.75, 3.5])


def e2m1_codes(x):
    a = x.abs()
    code = (a.unsqueeze(-1) > TIES_DOWN).sum(-1) + (a.unsqueeze(-1) >= TIES_UP).sum(-1)
    return (code | torch.where(x < 0, 8, 0)).to(torch.uint8)


def mxfp4(wt):
    """wt [E, N, K] (rows of W^T) -> (blocks U8 [E, N, K/32, 16], scales U8 [E, N, K/32])."""
    E, N, K = wt.shape
    g = wt.float().reshape(E, N, K // 32, 32)
    amax = g.abs().amax(-1)
    e = torch.where(amax > 0, torch.floor(torch.log2(torch.where(amax > 0, amax, torch.ones_like(amax)))) - 2,
                    torch.full_like(amax, -127)).clamp(-127, 127)
    codes = e2m1_codes(g / torch.exp2(e).unsqueeze(-1))
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return blocks.to(torch.uint8), (e + 127).to(torch.uint8)


def copy_side_files(src, dst, config):
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for f in os.listdir(src):
        if not f.endswith(".safetensors") and f not in ("model.safetensors.index.json", "config.json"):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    with open(os.path.join(dst, "config.json"), "w") as fh:
        json.dump(config, fh, indent=2)


def base_tensors(src):
    sd = {}
    for f in sorted(os.listdir(src)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(src, f)))
    return sd


def deepseek_fp8(src, dst):
    """DeepSeek's release layout for src (any Llama-like checkpoint)."""
    config = json.load(open(os.path.join(src, "config.json")))
    config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3",
                                     "weight_block_size": [BLOCK, BLOCK]}
    copy_side_files(src, dst, config)
    out = {}
    for name, t in base_tensors(src).items():
        # DeepSeek keeps the embeddings, lm_head, norms and the router (mlp.gate) in bf16
        if (t.dim() == 2 and ".layers." in name and name.endswith(".weight") and "norm" not in name
                and not name.endswith(".mlp.gate.weight")):
            q, sinv = fp8_block(t)
            out[name] = q
            out[name[:-len(".weight")] + ".weight_scale_inv"] = sinv
        else:
            out[name] = t
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    return sum(1 for n in out if n.endswith("weight_scale_inv"))


def gpt_oss_mxfp4(src, dst):
    config = json.load(open(os.path.join(src, "config.json")))
    config["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    copy_side_files(src, dst, config)
    out = {}
    n = 0
    for name, t in base_tensors(src).items():
        if name.endswith(".mlp.experts.gate_up_proj") or name.endswith(".mlp.experts.down_proj"):
            blocks, scales = mxfp4(t.transpose(1, 2))  # [E, in, out] -> rows of W^T [E, out, in]
            out[name + "_blocks"], out[name + "_scales"] = blocks, scales
            n += 1
        else:
            out[name] = t
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    return n


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    base, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    n = deepseek_fp8(os.path.join(base, "deepseek_v3"), os.path.join(out, "deepseek_v3_fp8"))
    print("deepseek_v3_fp8     %3d FP8 block-quantized weights -> %s" % (n, os.path.join(out, "deepseek_v3_fp8")))
    n = gpt_oss_mxfp4(os.path.join(base, "gpt_oss"), os.path.join(out, "gpt_oss_mxfp4"))
    print("gpt_oss_mxfp4       %3d MXFP4 expert tensors -> %s" % (n, os.path.join(out, "gpt_oss_mxfp4")))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    n = deepseek_fp8(os.path.join(root, "tests", "data", "tiny-llama"), os.path.join(out, "tiny_llama_fp8"))
    print("tiny_llama_fp8      %3d FP8 block-quantized weights -> %s" % (n, os.path.join(out, "tiny_llama_fp8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
