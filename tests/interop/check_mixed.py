"""check_mixed.py - is a --target-bits artifact what its config says, and within its budget?

Usage: check_mixed.py BASE_DIR ARTIFACT_DIR [TARGET_BITS]

Reads the safetensors headers of both folders itself (json + struct, no qforge code) and
checks, for every Linear of the base that a quantized run would touch (2-D ".weight" tensors
other than lm_head, embeddings, norms and MoE routers):
- it is named by exactly one config group's targets, or by the ignore list (then it is
  stored as the base's tensor, same dtype and shape);
- its stored tensors are the ones its group's format and weight arguments describe
  (pack-quantized int4: weight_packed I32 [out, in/8], weight_scale BF16 [out, in/g],
  weight_shape, plus weight_zero_point I32 [out/8, in/g] when asymmetric; nvfp4: weight_packed
  U8 [out, in/2], weight_scale F8_E4M3 [out, in/16], weight_global_scale F32 [1]; int8:
  weight I8 [out, in], weight_scale BF16 [out, 1]);
- fused siblings (q/k/v, gate/up) share one group (vLLM fuses them into one kernel with one
  scheme), and so do all MoE experts of the model (transformers 5.23 dequantizes every
  block's experts with one scheme, the group whose "re:" target mentions experts);
- the top-level format is "mixed-precision" exactly when the groups' formats differ;
- bits per weight = 8 x (bytes of those Linears' stored tensors) / (their weight count)
  is <= TARGET_BITS when given, and equals the manifest's mixed_precision.bits_per_weight.
A uniform artifact (one group targeting "Linear") passes the same checks, which gives the
bits per weight of the baselines in docs/bench.md.
Prints the measured bits per weight and "N passed, N failed" last; exit 1 on any failure.
"""
import json
import os
import re
import struct
import sys

from qf_report import Report

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I64": 8, "U8": 1, "I8": 1, "F8_E4M3": 1}


def headers(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            h = json.loads(f.read(n))
        h.pop("__metadata__", None)
        for k, v in h.items():
            v["nbytes"] = v["data_offsets"][1] - v["data_offsets"][0]
            out[k] = v
    return out


def candidate(name, info):
    if not name.endswith(".weight") or len(info["shape"]) != 2:
        return False
    m = name[: -len(".weight")]
    if any(s in m for s in ("lm_head", "embed", "norm")):
        return False
    return not (m.endswith(".gate") or m.endswith(".router") or "shared_expert_gate" in m)


def fused_key(m):
    if ".experts." in m:  # vLLM: one scheme per MoE block; transformers 5.23: one for all experts
        return "experts"
    parent, _, last = m.rpartition(".")
    return parent + "." + {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "gate_up",
                           "up_proj": "gate_up", "w1": "w13", "w3": "w13"}.get(last, last)


def expected(group, rows, cols):
    """{suffix: (dtype, shape)} the group's format stores for a [rows, cols] Linear."""
    w = group["weights"]
    fmt, g = group["format"], w.get("group_size") or cols
    if fmt == "pack-quantized" and w["num_bits"] == 4:
        t = {"weight_packed": ("I32", [rows, cols // 8]), "weight_scale": ("BF16", [rows, cols // g]),
             "weight_shape": ("I64", [2])}
        if not w["symmetric"]:
            t["weight_zero_point"] = ("I32", [rows // 8, cols // g])
        return t
    if fmt == "nvfp4-pack-quantized":
        return {"weight_packed": ("U8", [rows, cols // 2]), "weight_scale": ("F8_E4M3", [rows, cols // 16]),
                "weight_global_scale": ("F32", [1])}
    if fmt == "int-quantized" and w["num_bits"] == 8:
        return {"weight": ("I8", [rows, cols]), "weight_scale": ("BF16", [rows, 1])}
    return None


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    base, art = sys.argv[1], sys.argv[2]
    target = float(sys.argv[3]) if len(sys.argv) == 4 else None
    rep = Report(os.path.basename(os.path.normpath(art)))
    hb, ha = headers(base), headers(art)
    with open(os.path.join(art, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    groups = qc["config_groups"]
    where, regex = {}, []
    for gname, g in groups.items():
        for t in g["targets"]:
            if t.startswith("re:"):
                regex.append((re.compile(t[3:]), gname))  # compressed-tensors: re.match on the module name
            else:
                where.setdefault(t, []).append(gname)
    formats = {g["format"] for g in groups.values()}
    rep.check((qc["format"] == "mixed-precision") == (len(formats) > 1) and
              (len(formats) > 1 or qc["format"] in formats), "top-level format matches the groups'",
              f"{qc['format']} vs {sorted(formats)}")
    mods = sorted(k[: -len(".weight")] for k, v in hb.items() if candidate(k, v))
    nbytes = weights = 0
    by_key = {}
    for m in mods:
        rows, cols = hb[m + ".weight"]["shape"]
        weights += rows * cols
        stored = {k[len(m) + 1:]: v for k, v in ha.items() if k.startswith(m + ".") and "." not in k[len(m) + 1:]}
        nbytes += sum(v["nbytes"] for v in stored.values())
        gs = where.get(m, []) + where.get("Linear", []) + [g for rx, g in regex if rx.match(m)]
        if m in qc["ignore"]:
            rep.check(not gs, f"{m}: ignored and targeted", str(gs))
            want = {"weight": (hb[m + ".weight"]["dtype"], [rows, cols])}
            by_key.setdefault(fused_key(m), set()).add("ignore")
        elif rep.check(len(gs) == 1, f"{m}: named by exactly one config group", str(gs)):
            want = expected(groups[gs[0]], rows, cols)
            rep.check(want is not None, f"{m}: group {gs[0]} has a format this checker knows", groups[gs[0]]["format"])
            by_key.setdefault(fused_key(m), set()).add(gs[0])
        else:
            continue
        got = {k: (v["dtype"], v["shape"]) for k, v in stored.items()}
        rep.check(got == want, f"{m}: stored tensors match its format", f"{got} vs {want}")
    for k, gs in sorted(by_key.items()):
        rep.check(len(gs) == 1, f"{k}: fused siblings / MoE block share one format", str(sorted(gs)))
    bpw = 8.0 * nbytes / weights
    rep.note(f"{len(mods)} Linears, {weights} weights, {nbytes} bytes: {bpw:.5f} bits per weight")
    if target is not None:
        rep.check(bpw <= target + 1e-9, f"bits per weight {bpw:.5f} <= target {target}")
    with open(os.path.join(art, "qforge.manifest.json")) as f:
        mp = json.load(f).get("mixed_precision") or {}
    mb = mp.get("bits_per_weight")
    if mp or target is not None:  # a uniform artifact (no --target-bits) has none
        rep.check(mb is not None and abs(mb - bpw) < 1e-6, "manifest's bits_per_weight is the stored bytes'",
                  f"{mb} vs {bpw}")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
