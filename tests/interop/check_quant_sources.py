"""check_quant_sources.py - does qforge dequantize already-quantized sources as transformers does?

Usage: check_quant_sources.py SOURCE_DIR DEQUANTIZED_DIR

SOURCE_DIR is a quantized checkpoint from tests/tools/make_quant_sources.py (DeepSeek FP8
blocks or GPT-OSS MXFP4 experts); DEQUANTIZED_DIR is `qforge convert SOURCE_DIR --to
safetensors`'s output.  Every tensor qforge wrote is compared, bit for bit, with what
transformers' own code makes of the source:
- FP8 blocks: transformers' loader op Fp8Dequantize (dequantize=True), which derives the block
  from the scale grid; for a weight whose rows or columns are not a multiple of the block
  (DeepSeek's kv_a_proj_with_mqa, 576 rows in blocks of 128) that derivation is wrong (or
  raises), so such a weight is compared with transformers' FP8Linear rule
  (_dequantize_fp8_weight with the config's weight_block_size, in float32, then bf16), and
  the loader's disagreement is printed as a NOTE;
- MXFP4 experts: transformers' convert_moe_packed_tensors (what its GPT-OSS loader calls with
  dequantize=True), [E, N, K/32, 16] + [E, N, K/32] -> [E, K, N] bf16;
- compressed-tensors FP8 (a qforge fp8-dynamic artifact as the source): compressed-tensors'
  own dequantize() with the config group's QuantizationArgs;
- ModelOpt FP8 (qforge's --layout modelopt fp8-dynamic): ModelOpt's definition, e4m3 weight
  times the F32 weight_scale per output row, in float32, then bf16 (no ModelOpt package here);
- every other tensor: the source's, unchanged.
And: no scale or block tensor is left, config.json has no quantization_config.
Prints one line per check and "N passed, N failed" last; exit 1 on any failure.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

from qf_report import Report


def tensors(d):
    sd = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(d, f)))
    return sd


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.int16), b.view(torch.int16))


def fp8_reference(q, sinv, block):
    from transformers.integrations.finegrained_fp8 import Fp8Dequantize, _dequantize_fp8_weight

    rows, cols = q.shape[-2:]
    grid_block = (rows // sinv.shape[-2], cols // sinv.shape[-1])
    loader = None
    try:
        loader = Fp8Dequantize(None)._dequantize_one(q, sinv, torch.bfloat16)
    except ValueError as e:
        loader = e
    if rows % block[0] == 0 and cols % block[1] == 0 and grid_block == tuple(block):
        return loader, None, "Fp8Dequantize"
    ref = _dequantize_fp8_weight(q, sinv, list(block), torch.float32).to(torch.bfloat16)
    return ref, loader, "_dequantize_fp8_weight (partial edge blocks)"


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    src, deq = sys.argv[1:]
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    rep = Report()
    qc = json.load(open(os.path.join(src, "config.json")))["quantization_config"]
    method = qc["quant_method"]
    block = tuple(qc.get("weight_block_size") or (128, 128))
    out_cfg = json.load(open(os.path.join(deq, "config.json")))
    rep.check("quantization_config" not in out_cfg, f"{method}: the dequantized config.json has no quantization_config")
    s, d = tensors(src), tensors(deq)
    expected, n_deq, bad, notes = set(), 0, [], []
    for name, t in s.items():
        if name.endswith("_scale_inv") or name.endswith("_scales"):
            continue
        if name.endswith(".weight_scale") or name.endswith(".input_scale"):
            continue
        if t.dtype == torch.float8_e4m3fn and method == "compressed-tensors":
            from compressed_tensors.quantization import QuantizationArgs
            from compressed_tensors.quantization.lifecycle.forward import dequantize

            (group,) = qc["config_groups"].values()
            ref = dequantize(t, s[name + "_scale"], None, QuantizationArgs(**group["weights"]), dtype=torch.bfloat16)
            out_name = name
        elif t.dtype == torch.float8_e4m3fn and method == "modelopt":
            sc = s[name + "_scale"].float()
            ref = (t.float() * (sc.reshape(-1, 1) if sc.numel() > 1 else sc)).to(torch.bfloat16)
            out_name = name
        elif t.dtype == torch.float8_e4m3fn:
            ref, loader, how = fp8_reference(t, s[name + "_scale_inv"], block)
            if isinstance(loader, Exception) or (loader is not None and not same_bits(loader, ref)):
                what = "raises" if isinstance(loader, Exception) else "places blocks of %dx%d, not %dx%d" % (
                    t.shape[0] // s[name + "_scale_inv"].shape[0], t.shape[1] // s[name + "_scale_inv"].shape[1],
                    *block)
                notes.append(f"{name} {tuple(t.shape)}: transformers' Fp8Dequantize {what}; compared with {how}")
            out_name = name
        elif name.endswith("_blocks"):
            out_name = name[: -len("_blocks")]
            ref = convert_moe_packed_tensors(t, s[out_name + "_scales"], dtype=torch.bfloat16)
        else:
            out_name, ref = name, t
        expected.add(out_name)
        got = d.get(out_name)
        if got is None:
            bad.append(f"{out_name}: absent")
        elif not same_bits(got, ref):
            diff = int((got.view(torch.int16) != ref.view(torch.int16)).sum()) if got.shape == ref.shape else -1
            bad.append(f"{out_name}: {diff} of {ref.numel()} values differ ({got.dtype} {tuple(got.shape)} vs "
                       f"{ref.dtype} {tuple(ref.shape)})")
        elif ref is not t:
            n_deq += 1
    rep.check(not bad, f"{method}: {n_deq} dequantized weights equal transformers' bit for bit, every other "
              f"tensor unchanged", "; ".join(bad[:4]))
    extra = sorted(set(d) - expected)
    rep.check(not extra, f"{method}: no scale, block or other extra tensor in the output", str(extra[:4]))
    rep.check(n_deq > 0, f"{method}: the source had quantized weights to compare ({n_deq})")
    for n in notes:
        print(f"     NOTE {n}")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
