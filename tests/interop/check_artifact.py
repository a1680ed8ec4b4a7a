#!/usr/bin/env python3
"""check_artifact.py - read a qforge artifact the way vLLM / compressed-tensors would, with an
independent numpy decoder, and compare it with the original checkpoint.

usage: check_artifact.py MODEL_DIR ARTIFACT_DIR SCHEME

Checks (each counted; the last line is "N passed, N failed"; exit status 1 on any failure):
  1. config.json: the original keys are kept, and quantization_config is what vLLM's
     compressed-tensors loader dispatches on (quant_method, format, config_groups.group_0
     targets / weights / input_activations, ignore contains lm_head);
  2. layout: every Linear of the original becomes exactly the compressed-tensors tensors of
     the scheme (names, dtypes, shapes read from the safetensors header by hand); every other
     tensor is kept byte for byte; nothing else is present;
  3. scales: recomputed from the original weights by the fixture README rules (numpy float32,
     ml_dtypes RNE casts) and compared exactly with the stored ones; when the manifest's recipe
     says RTN searched each group's clip (recipe.clip_search.steps > 0), the stored scale (and
     zero point) of every group must be the rule's value for one of the searched range ratios
     1, 1 - d, ..., min_ratio (the choice among them is qforge's, the candidates are the rule's);
  4. values: the packed weights decoded here (int4 nibbles with +8 offset, zero points packed
     along rows, fp8 via ml_dtypes, fp4 by lookup table, E4M3 block scales over the global
     scale, E8M0 exponents) lie within the format's rounding bound of the original weight
     (nearest grid point: half a step, or half an ulp of the small-float grid, plus the
     distance past the clamp end), and the mean relative error of the scheme is below a
     stated bound;
  5. manifest (when the xxhash package is importable): sizes and XXH3-128 canonical hex of
     every file and tensor equal what Python's xxhash computes.
"""
import json
import os
import re
import sys

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qf_interop import Report, f32, half_ulp, load_dir  # noqa: E402

# ---- what vLLM expects per scheme --------------------------------------------------------
SCHEMES = {
    "fp8-dynamic": {
        "format": "float-quantized",
        "weights": {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel", "group_size": None},
        "input": {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "token", "dynamic": True},
    },
    "w4a16": {
        "format": "pack-quantized",
        "weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128},
        "input": None,
    },
    "w4a16-asym": {
        "format": "pack-quantized",
        "weights": {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 128},
        "input": None,
    },
    "nvfp4a16": {
        "format": "nvfp4-pack-quantized",
        "weights": {"num_bits": 4, "type": "float", "symmetric": True, "strategy": "tensor_group", "group_size": 16},
        "input": None,
    },
    "mxfp4a16": {
        "format": "mxfp4-pack-quantized",
        "weights": {"num_bits": 4, "type": "float", "symmetric": True, "strategy": "group", "group_size": 32},
        "input": None,
    },
    "w8a8": {
        "format": "int-quantized",
        "weights": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel", "group_size": None},
        "input": {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True},
    },
}

# Mean relative error  sum|w - deq| / sum|w|  over all Linear weights, per scheme.  Derivation
# for roughly Gaussian weights (sigma s): mean |w| = 0.80 s; RTN error is ~uniform over a
# step, mean |err| = step/4.
#   int4 sym g128: step = amax/7, amax of 128 ~ 2.6 s -> 0.37 s, ratio ~0.12 -> bound 0.16
#   int4 asym g128: step = range/15 ~ 5.2 s/15 = 0.35 s -> ratio ~0.11       -> bound 0.16
#   int8 per row: step = amax/127, amax of 384..1024 ~ 3.3 s -> ratio ~0.008  -> bound 0.02
#   fp8 E4M3: relative half-ulp <= 2^-4, mean over a binade ~2^-5.5           -> bound 0.04
#   nvfp4: E2M1 relative half-spacing <= 1/4 (mean ~1/8 over the used range) -> bound 0.16
#   mxfp4: like nvfp4 but power-of-two scales waste up to one binade          -> bound 0.22
MEAN_REL_ERR_BOUND = {
    "fp8-dynamic": 0.04, "w4a16": 0.16, "w4a16-asym": 0.16, "nvfp4a16": 0.16, "mxfp4a16": 0.22, "w8a8": 0.02,
}

FP4_LUT = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)
SLACK = 2.0 ** -21  # a few float32 roundings on the way (x/scale, q*scale), relative


def expected_tensors(scheme, out, inn):
    """{suffix: (safetensors dtype, shape)} of one quantized Linear [out, inn]."""
    if scheme == "fp8-dynamic":
        return {"weight": ("F8_E4M3", [out, inn]), "weight_scale": ("BF16", [out, 1])}
    if scheme == "w8a8":
        return {"weight": ("I8", [out, inn]), "weight_scale": ("BF16", [out, 1])}
    if scheme in ("w4a16", "w4a16-asym"):
        t = {"weight_packed": ("I32", [out, inn // 8]), "weight_scale": ("BF16", [out, inn // 128]),
             "weight_shape": ("I64", [2])}
        if scheme == "w4a16-asym":
            t["weight_zero_point"] = ("I32", [(out + 7) // 8, inn // 128])
        return t
    if scheme == "nvfp4a16":
        return {"weight_packed": ("U8", [out, inn // 2]), "weight_scale": ("F8_E4M3", [out, inn // 16]),
                "weight_global_scale": ("F32", [1])}
    if scheme == "mxfp4a16":
        return {"weight_packed": ("U8", [out, inn // 2]), "weight_scale": ("U8", [out, inn // 32])}
    raise ValueError(scheme)


def is_linear(name, arr):
    """Linear weights of a Llama/Mixtral checkpoint: 2-D .weight except embeddings and lm_head."""
    return name.endswith(".weight") and arr.ndim == 2 and "embed_tokens" not in name and not name.startswith("lm_head")


def sibling_key(module):
    """Modules that share an NVFP4 global scale (fused in vLLM): q/k/v and gate/up."""
    return re.sub(r"\.(q_proj|k_proj|v_proj)$", ".qkv", re.sub(r"\.(gate_proj|up_proj)$", ".gate_up", module))


# ---- decoders of the packed layout (written from docs/formats.md, not from qforge) -------
def unpack_nibbles_along_cols(words_i32, cols):
    """I32 [rows, cols/8] -> uint8 [rows, cols]: column 8j+k is bits 4k..4k+3 of word j."""
    u = words_i32.view(np.uint32)
    shifts = (np.arange(8, dtype=np.uint32) * 4)
    return ((u[:, :, None] >> shifts) & 0xF).reshape(u.shape[0], -1)[:, :cols].astype(np.uint8)


def unpack_nibbles_along_rows(words_i32, rows):
    """I32 [rows/8, g] -> uint8 [rows, g]: row 8i+k is bits 4k..4k+3 of word (i, g)."""
    u = words_i32.view(np.uint32)
    shifts = (np.arange(8, dtype=np.uint32) * 4)
    return ((u[:, None, :] >> shifts[None, :, None]) & 0xF).reshape(-1, u.shape[1])[:rows].astype(np.uint8)


def unpack_fp4(packed_u8):
    """U8 [rows, cols/2] -> codes [rows, cols]: element 2k in the low nibble, 2k+1 high."""
    codes = np.empty((packed_u8.shape[0], packed_u8.shape[1] * 2), dtype=np.uint8)
    codes[:, 0::2] = packed_u8 & 0xF
    codes[:, 1::2] = packed_u8 >> 4
    return codes


def expand(per_group, group):
    return np.repeat(per_group, group, axis=1)


def e8m0_value(u8):
    return np.ldexp(np.float32(1.0), u8.astype(np.int32) - 127).astype(np.float32)


def decode(scheme, t, out, inn):
    """(deq float32 [out, inn], step float64 [out, inn], lo_code, hi_code arrays or None, kind)
    from the stored tensors t (suffix -> array).  step is what multiplies a code."""
    if scheme in ("w4a16", "w4a16-asym"):
        u = unpack_nibbles_along_cols(t["weight_packed"], inn).astype(np.float32)
        s = expand(f32(t["weight_scale"]), 128)
        if scheme == "w4a16":
            z = np.float32(8)  # symmetric: stored q + 8 ("uint4b8")
        else:
            z = expand(unpack_nibbles_along_rows(t["weight_zero_point"], out).astype(np.float32), 128)
        deq = (u - z) * s
        return deq, s.astype(np.float64), (0 - z) * np.ones_like(s), (15 - z) * np.ones_like(s), "int"
    if scheme == "w8a8":
        s = np.broadcast_to(t["weight_scale"].astype(np.float32), (out, inn))
        deq = t["weight"].astype(np.float32) * s
        return deq, s.astype(np.float64), np.full(s.shape, -127.0), np.full(s.shape, 127.0), "int"
    if scheme == "fp8-dynamic":
        s = np.broadcast_to(t["weight_scale"].astype(np.float32), (out, inn))
        deq = f32(t["weight"]) * s
        return deq, s.astype(np.float64), None, None, "fp8"
    if scheme == "nvfp4a16":
        g = np.float32(t["weight_global_scale"][0])
        s = expand(f32(t["weight_scale"]) / g, 16)
        deq = FP4_LUT[unpack_fp4(t["weight_packed"])] * s
        return deq, s.astype(np.float64), None, None, "fp4"
    if scheme == "mxfp4a16":
        s = expand(e8m0_value(t["weight_scale"]), 32)
        deq = FP4_LUT[unpack_fp4(t["weight_packed"])] * s
        return deq, s.astype(np.float64), None, None, "fp4"
    raise ValueError(scheme)


def rounding_bound(kind, w, step, lo_code, hi_code):
    """Per-element bound of |w - deq| for round-to-nearest on the format's grid (float64)."""
    w = w.astype(np.float64)
    slack = SLACK * (np.abs(w) + step)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "int":
            # nearest integer code: within half a step inside [lo_code, hi_code] * step; past
            # an end the value is clamped, adding its distance past that end
            lo_r, hi_r = lo_code * step, hi_code * step
            over = np.maximum(0, np.maximum(w - hi_r, lo_r - w))
            return step / 2 + over + slack
        y = np.where(step > 0, np.abs(w) / step, 0)
        top, mbits, emin = (448.0, 3, -6) if kind == "fp8" else (6.0, 1, 0)
        # nearest E4M3 / E2M1 value: half an ulp at |y| inside the range, saturation past it
        return step * (half_ulp(np.minimum(y, top), mbits, emin) + np.maximum(0, y - top)) + slack


# ---- the README rules for the stored scales ----------------------------------------------
def clip_ratios(art_dir):
    """The range ratios RTN's clip search tried, from the artifact's recipe: [1] when none.
    Computed as qforge does in float32: 1 - (1 - min_ratio) * k / steps."""
    path = os.path.join(art_dir, "qforge.manifest.json")
    cs = json.load(open(path)).get("recipe", {}).get("clip_search", {}) if os.path.exists(path) else {}
    steps, lo = int(cs.get("steps", 0)), np.float32(cs.get("min_ratio", 1.0))
    if steps <= 0:
        return [np.float32(1)]
    return [np.float32(1) - (np.float32(1) - lo) * np.float32(k) / np.float32(steps) for k in range(steps + 1)]


def expected_scales(scheme, w, global_amax, ratio=np.float32(1)):
    """Scales by the fixture README formulas, from float32 weights w [out, inn], with each group's
    range (min/max or absmax) multiplied by ratio in float32 first (1: the README rule itself)."""
    out, inn = w.shape
    if ratio != 1 and scheme in ("w4a16", "w4a16-asym", "nvfp4a16"):
        if scheme == "w4a16-asym":
            g = w.reshape(out, -1, 128)
            lo = np.minimum(g.min(axis=2), 0).astype(np.float32) * ratio
            hi = np.maximum(g.max(axis=2), 0).astype(np.float32) * ratio
            s = f32(((hi - lo) / np.float32(15)).astype(ml_dtypes.bfloat16))
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(s > 0, np.clip(np.rint(-lo / s), 0, 15), 0)
            return {"weight_scale": s, "weight_zero_point": z.astype(np.float32)}
        bs = 128 if scheme == "w4a16" else 16
        amax = np.abs(w.reshape(out, -1, bs)).max(axis=2) * ratio
        if scheme == "w4a16":
            return {"weight_scale": f32((amax / np.float32(7)).astype(ml_dtypes.bfloat16))}
        G = np.float32(2688.0) / np.float32(global_amax)
        sb = f32((amax * G / np.float32(6)).astype(ml_dtypes.float8_e4m3fn))
        sb = np.where(sb == 0, np.float32(0.125), sb)
        return {"weight_scale": sb, "weight_global_scale": np.array([G], dtype=np.float32)}
    if scheme in ("fp8-dynamic", "w8a8"):
        amax = np.abs(w).max(axis=1, keepdims=True)
        # stored in the model's dtype (bf16), as llm-compressor stores it
        return {"weight_scale": f32((amax / np.float32(448.0 if scheme == "fp8-dynamic" else 127.0))
                                    .astype(ml_dtypes.bfloat16))}
    if scheme == "w4a16":
        amax = np.abs(w.reshape(out, -1, 128)).max(axis=2)
        return {"weight_scale": f32((amax / np.float32(7)).astype(ml_dtypes.bfloat16))}
    if scheme == "w4a16-asym":
        g = w.reshape(out, -1, 128)
        lo = np.minimum(g.min(axis=2), 0).astype(np.float32)
        hi = np.maximum(g.max(axis=2), 0).astype(np.float32)
        s = f32(((hi - lo) / np.float32(15)).astype(ml_dtypes.bfloat16))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(s > 0, np.clip(np.rint(-lo / s), 0, 15), 0)
        return {"weight_scale": s, "weight_zero_point": z.astype(np.float32)}
    if scheme == "nvfp4a16":
        G = np.float32(2688.0) / np.float32(global_amax)  # 448 * 6 / amax over fused siblings
        amax = np.abs(w.reshape(out, -1, 16)).max(axis=2)
        sb = f32((amax * G / np.float32(6)).astype(ml_dtypes.float8_e4m3fn))
        sb = np.where(sb == 0, np.float32(0.125), sb)  # CT: zero scale -> finfo(e4m3).eps
        return {"weight_scale": sb, "weight_global_scale": np.array([G], dtype=np.float32)}
    if scheme == "mxfp4a16":
        amax = np.abs(w.reshape(out, -1, 32)).max(axis=2).astype(np.float64)
        _, k = np.frexp(amax)  # floor(log2 amax) = k - 1; OCP: e = floor(log2 amax) - 2
        e = np.where(amax > 0, np.clip(k - 1 - 2, -127, 127), -127)
        return {"weight_scale": (e + 127).astype(np.float32)}
    raise ValueError(scheme)


def stored_scales(scheme, t, out):
    if scheme == "w4a16-asym":
        return {"weight_scale": f32(t["weight_scale"]),
                "weight_zero_point": unpack_nibbles_along_rows(t["weight_zero_point"], out).astype(np.float32)}
    if scheme == "mxfp4a16":
        return {"weight_scale": t["weight_scale"].astype(np.float32)}
    if scheme == "nvfp4a16":
        return {"weight_scale": f32(t["weight_scale"]), "weight_global_scale": t["weight_global_scale"]}
    return {"weight_scale": f32(t["weight_scale"])}


# ---- the checks ---------------------------------------------------------------------------
def check_config(rep, model_dir, art_dir, scheme):
    orig = json.load(open(os.path.join(model_dir, "config.json")))
    cfg = json.load(open(os.path.join(art_dir, "config.json")))
    for k, v in orig.items():
        if k != "quantization_config":
            rep.check(cfg.get(k) == v, f"config.json keeps {k}", f"{cfg.get(k)!r} != {v!r}")
    qc = cfg.get("quantization_config")
    if not rep.check(isinstance(qc, dict), "config.json has quantization_config"):
        return
    want = SCHEMES[scheme]
    rep.check(qc.get("quant_method") == "compressed-tensors", "quant_method", qc.get("quant_method"))
    rep.check(qc.get("format") == want["format"], "format", qc.get("format"))
    rep.check(qc.get("quantization_status") == "compressed", "quantization_status", qc.get("quantization_status"))
    groups = qc.get("config_groups") or {}
    rep.check(list(groups) == ["group_0"], "config_groups has exactly group_0", list(groups))
    g = groups.get("group_0", {})
    rep.check(g.get("targets") == ["Linear"], "group_0.targets", g.get("targets"))
    rep.check(g.get("format") in (None, want["format"]), "group_0.format", g.get("format"))
    wa = g.get("weights") or {}
    for k, v in want["weights"].items():
        rep.check(wa.get(k) == v, f"group_0.weights.{k}", f"{wa.get(k)!r} != {v!r}")
    rep.check(wa.get("dynamic") is False, "group_0.weights.dynamic is false", wa.get("dynamic"))
    rep.check(wa.get("actorder") is None, "group_0.weights.actorder is null (no g_idx)", wa.get("actorder"))
    ia = g.get("input_activations")
    if want["input"] is None:
        rep.check(ia is None, "group_0.input_activations is null (weight-only)", ia)
    elif rep.check(isinstance(ia, dict), "group_0.input_activations present"):
        for k, v in want["input"].items():
            rep.check(ia.get(k) == v, f"group_0.input_activations.{k}", f"{ia.get(k)!r} != {v!r}")
    rep.check(g.get("output_activations") is None, "group_0.output_activations is null")
    ign = qc.get("ignore") or []
    rep.check("lm_head" in ign, "ignore contains lm_head", ign)


def check_manifest(rep, art_dir, headers, files):
    try:
        import xxhash
    except ImportError:
        # pinned in requirements.txt: a missing package is a broken venv, not a reason to pass
        rep.check(False, "Python package xxhash importable (tests/interop/requirements.txt pins it)")
        return
    path = os.path.join(art_dir, "qforge.manifest.json")
    if not rep.check(os.path.exists(path), "qforge.manifest.json exists"):
        return
    m = json.load(open(path))
    bad = []
    for f in m.get("files", []):
        p = os.path.join(art_dir, f["name"])
        data = open(p, "rb").read()
        if len(data) != f["size"] or xxhash.xxh3_128(data).hexdigest() != f["xxh3_128"]:
            bad.append(f["name"])
    rep.check(not bad and m.get("files"), "manifest file sizes and XXH3-128 match xxhash", bad)
    listed = {f["name"] for f in m.get("files", [])}
    on_disk = {n for n in os.listdir(art_dir) if n != "qforge.manifest.json"}
    rep.check(listed == on_disk, "manifest lists exactly the artifact's files", sorted(listed ^ on_disk))
    bad = []
    blobs = {}
    for t in m.get("tensors", []):
        fname = t["file"]
        if fname not in blobs:
            blobs[fname] = open(os.path.join(art_dir, fname), "rb").read()
        blob = blobs[fname]
        hl = int.from_bytes(blob[:8], "little")
        b, e = headers[t["name"]]["data_offsets"]
        digest = xxhash.xxh3_128(blob[8 + hl + b: 8 + hl + e]).hexdigest()
        if digest != t["xxh3_128"] or files.get(t["name"]) != fname:
            bad.append(t["name"])
    rep.check(not bad and len(m.get("tensors", [])) == len(headers),
              "manifest tensor XXH3-128 match xxhash, one entry per tensor", bad[:5])


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in SCHEMES:
        sys.exit(f"usage: {sys.argv[0]} MODEL_DIR ARTIFACT_DIR SCHEME ({', '.join(SCHEMES)})")
    model_dir, art_dir, scheme = sys.argv[1:]
    rep = Report(scheme)
    check_config(rep, model_dir, art_dir, scheme)

    orig, _, _ = load_dir(model_dir)
    out, headers, files = load_dir(art_dir)
    index = os.path.join(art_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        wm = json.load(open(index))["weight_map"]
        rep.check(wm == files, "index weight_map names every tensor's shard")

    ratios = clip_ratios(art_dir)
    linears = {n: a for n, a in orig.items() if is_linear(n, a)}
    rep.note(f"{len(linears)} Linear weights, {len(orig) - len(linears)} other tensors")
    expected_names = set()
    for name, a in orig.items():
        if name in linears:
            continue
        expected_names.add(name)
        ok = name in out and headers[name]["dtype"] == {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}.get(
            str(a.dtype)) and out[name].shape == a.shape and out[name].tobytes() == a.tobytes()
        rep.check(ok, f"{name} kept byte for byte")

    # nvfp4: global amax per fused sibling group, from the original weights
    sib_amax = {}
    for name, a in linears.items():
        k = sibling_key(name[: -len(".weight")])
        sib_amax[k] = max(sib_amax.get(k, 0.0), float(np.abs(f32(a)).max()))

    sum_err = sum_abs = 0.0
    worst = (0.0, "")
    sib_global = {}
    for name, a in sorted(linears.items()):
        module = name[: -len(".weight")]
        o, i = a.shape
        want = expected_tensors(scheme, o, i)
        t = {}
        for suffix, (dt, shape) in want.items():
            full = f"{module}.{suffix}"
            expected_names.add(full)
            h = headers.get(full)
            if not rep.check(h is not None, f"{full} present"):
                continue
            rep.check(h["dtype"] == dt and h["shape"] == shape, f"{full} is {dt} {shape}", f"{h['dtype']} {h['shape']}")
            t[suffix] = out[full]
        if len(t) != len(want):
            continue
        if "weight_shape" in t:
            rep.check(t["weight_shape"].tolist() == [o, i], f"{module}.weight_shape = [{o}, {i}]",
                      t["weight_shape"].tolist())
        w = f32(a)
        # 3. scales by the README rules (under one of the clip search's ratios, when it ran)
        got = stored_scales(scheme, t, o)
        match = None  # per group: its scale (and zero point) equal one candidate's, both of it
        for r in ratios:
            exp = expected_scales(scheme, w, sib_amax[sibling_key(module)], r)
            same = None
            for k, v in exp.items():
                if k != "weight_global_scale":  # per tensor, checked below
                    eq = np.asarray(got[k]).reshape(v.shape) == v
                    same = eq if same is None else same & eq
            match = same if match is None else match | same
        diff = int(np.count_nonzero(~match))
        rule = "the README rule" if len(ratios) == 1 else f"the README rule under one of {len(ratios)} clip ratios"
        rep.check(diff == 0, f"{module}.weight_scale follows {rule}", f"{diff} of {match.size} differ")
        if "weight_global_scale" in got:  # the search never moves G
            g_want = expected_scales(scheme, w, sib_amax[sibling_key(module)])["weight_global_scale"]
            rep.check(np.array_equal(np.asarray(got["weight_global_scale"]).reshape(1), g_want),
                      f"{module}.weight_global_scale follows the README rule", float(np.asarray(got["weight_global_scale"]).reshape(-1)[0]))
        if scheme == "nvfp4a16":
            sib_global.setdefault(sibling_key(module), set()).add(float(t["weight_global_scale"][0]))
        # 4. decoded values within the rounding bound, and the error statistics
        deq, step, lo_c, hi_c, kind = decode(scheme, t, o, i)
        err = np.abs(w.astype(np.float64) - deq.astype(np.float64))
        bound = rounding_bound(kind, w, step, lo_c, hi_c)
        nbad = int(np.count_nonzero(~(err <= bound)))
        if nbad:
            r, c = np.unravel_index(int(np.argmax(err - bound)), err.shape)
            detail = f"{nbad} elements, worst ({r}, {c}): w {w[r, c]:.6g} deq {deq[r, c]:.6g} bound {bound[r, c]:.3g}"
        else:
            detail = ""
        rep.check(nbad == 0, f"{module} decoded within the format's rounding bound", detail)
        rep.check(bool(np.all(np.isfinite(deq))), f"{module} decodes to finite values")
        sum_err += float(err.sum())
        sum_abs += float(np.abs(w).sum())
        rel = float(err.sum() / max(np.abs(w).sum(), 1e-30))
        worst = max(worst, (rel, module))

    extra = set(headers) - expected_names
    rep.check(not extra, "no unexpected tensors", sorted(extra)[:5])
    if scheme == "nvfp4a16":
        split = {k: v for k, v in sib_global.items() if len(v) != 1}
        rep.check(not split, "fused siblings (q/k/v, gate/up) share weight_global_scale", split)
    mean_rel = sum_err / max(sum_abs, 1e-30)
    rep.check(mean_rel < MEAN_REL_ERR_BOUND[scheme], f"mean relative error {mean_rel:.4f} < "
              f"{MEAN_REL_ERR_BOUND[scheme]}", f"worst module {worst[1]} {worst[0]:.4f}")
    rep.note(f"mean relative error sum|w-deq|/sum|w| = {mean_rel:.4f} (worst module {worst[1]}: {worst[0]:.4f})")
    check_manifest(rep, art_dir, headers, files)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
