#!/usr/bin/env python3
"""make_reference_windows.py - the independent reference for the CI-sized validate checks.

tests/test_validate.c checks qforge's runner on the first 24 windows of eval.txt (the whole
text takes minutes on CI's 2 cores).  A pin measured by the runner itself would only say the
runner has not changed; this script computes the same numbers with Hugging Face transformers
(float32, CPU) so the check compares against an implementation that shares no code with qforge:

  - base perplexity of tiny-llama and tiny-moe on windows 0..23 (ppl-512, docs/validate.md);
  - for tiny-llama with every decoder Linear quantized by the int4 asymmetric g128 RTN rule
    (written here in numpy from README/docs/formats.md, not read from qforge's artifact):
    mean KLD(base || quant) and top-1 agreement over the same positions.

Inputs (committed): tests/data/tiny-llama, tests/data/tiny-moe, tests/data/eval.tokens.i32.
Output: tests/data/reference-24w.json.  Run with the pinned test venv:
    build/pyenv/bin/python3 tests/tools/make_reference_windows.py
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

WINDOWS = 24
CTX = 512
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def bf16_round(x):
    """float32 -> bfloat16 (round to nearest even) -> float32, the scales' storage dtype."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return (b << 16).astype(np.uint32).view(np.float32)


def rtn_int4_asym(w, group=128):
    """int4 asymmetric RTN per group of 128 inputs: lo = min(x, 0), hi = max(x, 0),
    s = bf16((hi - lo) / 15), zp = clamp(rint(-lo / s), 0, 15), q = clamp(rint(x / s) + zp, 0, 15),
    value (q - zp) * s; a zero group stays zero."""
    n, k = w.shape
    g = w.reshape(n, k // group, group).astype(np.float32)
    lo = np.minimum(g.min(axis=2, keepdims=True), 0).astype(np.float32)
    hi = np.maximum(g.max(axis=2, keepdims=True), 0).astype(np.float32)
    s = bf16_round((hi - lo) / np.float32(15))
    safe = np.where(s == 0, np.float32(1), s)
    zp = np.clip(np.rint(-lo / safe), 0, 15)
    q = np.clip(np.rint(g / safe) + zp, 0, 15)
    out = ((q - zp) * s).astype(np.float32)
    return np.where(s == 0, np.float32(0), out).reshape(n, k)


def load(name):
    m = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "tests/data", name), dtype=torch.float32)
    return m.eval()


def window_logits(model, ids, w):
    x = torch.from_numpy(ids[w * CTX:(w + 1) * CTX].astype(np.int64))[None]
    with torch.no_grad():
        return model(x).logits[0, :CTX - 1].double()  # positions 0..510 score tokens 1..511


def main():
    ids = np.fromfile(os.path.join(ROOT, "tests/data/eval.tokens.i32"), dtype="<i4")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    # laid out as reference.json (model -> row -> key), so one reader serves both
    out = {"made_by": "tests/tools/make_reference_windows.py", "torch": torch.__version__}
    import transformers
    out["transformers"] = transformers.__version__
    for name in ("tiny-llama", "tiny-moe"):
        base = load(name)
        quant = None
        if name == "tiny-llama":
            quant = load(name)
            with torch.no_grad():
                for mod_name, mod in quant.named_modules():
                    if isinstance(mod, torch.nn.Linear) and mod_name != "lm_head":
                        mod.weight.copy_(torch.from_numpy(rtn_int4_asym(mod.weight.numpy())))
        nll, kld, top1 = 0.0, 0.0, 0
        for w in range(WINDOWS):
            lb = torch.log_softmax(window_logits(base, ids, w), dim=-1)
            tgt = torch.from_numpy(ids[w * CTX + 1:(w + 1) * CTX].astype(np.int64))
            nll -= lb.gather(1, tgt[:, None]).sum().item()
            if quant is not None:
                lq = torch.log_softmax(window_logits(quant, ids, w), dim=-1)
                kld += (lb.exp() * (lb - lq)).sum().item()
                top1 += (lb.argmax(-1) == lq.argmax(-1)).sum().item()
            print(f"{name} window {w}", file=sys.stderr, flush=True)
        n = WINDOWS * (CTX - 1)
        row = {"eval": {"ppl": float(np.exp(nll / n)), "scored_tokens": n, "windows": WINDOWS}}
        if quant is not None:
            row["int4_g128_asym_rtn"] = {"mean_kld": kld / n, "same_top1": top1 / n}
        out[name] = row
    path = os.path.join(ROOT, "tests/data/reference-24w.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
