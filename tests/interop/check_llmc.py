#!/usr/bin/env python3
"""check_llmc.py - compare a qforge artifact with what llm-compressor writes, key by key.

usage: check_llmc.py QFORGE_ARTIFACT_DIR EXPECTED_JSON

EXPECTED_JSON is one of tests/data/llmc/<fixture>.<scheme>.json, made by
tests/tools/make_llmc_expected.py with llm-compressor from PyPI on the same fixture and the
same scheme.  Only the standard library: no torch, no numpy (the safetensors headers are read
by hand: 8-byte little-endian length, then JSON).

Compared (each line below is one counted check; a failure prints the key, qforge's value and
llm-compressor's value):
  quantization_config
    - every top-level key, except EXCLUDED_TOP below (quant_method, format,
      quantization_status, kv_cache_scheme, sparsity_config, transform_config, ...);
    - config_groups: the same group names; in each group every key (targets, format,
      output_activations, ...) and, inside weights / input_activations /
      output_activations, every field (num_bits, type, symmetric, strategy, group_size,
      dynamic, block_structure, actorder, scale_dtype, zp_dtype, ...) except
      EXCLUDED_ARGS below;
    - ignore: the same module names (order ignored, see ignore_set).
  tensors
    - the same tensor names (each missing and each unexpected name is one failure);
    - for each common name the same safetensors dtype and the same shape.

Prints one line per kind of failure (see Report) and "N passed, N failed" last; exit status 1 on any failure.
"""
import glob
import json
import os
import re
import struct
import sys

# Top-level quantization_config keys deliberately not compared, with the reason.
EXCLUDED_TOP = {
    # compressed-tensors' package version at write time: informational (no loader
    # dispatches on it); llm-compressor writes the version it ran with, qforge the version
    # of the format it follows.
    "version": "package version, informational",
    # A statistic of the compression run (llm-compressor writes null); no reader uses it.
    "global_compression_ratio": "run statistic, informational",
}

# Keys inside a group's weights / input_activations / output_activations not compared.
EXCLUDED_ARGS = {
    # Which observer computed the scales and its options: how the numbers were found, not
    # what they mean.  vLLM and compressed-tensors' decompressors never read them, and the
    # observer llm-compressor picks changes between releases (minmax -> memoryless_minmax,
    # static_minmax ...) while the stored format stays the same.
    "observer": "calibration method, not part of the stored format",
    "observer_kwargs": "calibration method options, not part of the stored format",
}

# A key written as null on one side and absent on the other means the same thing to
# compressed-tensors: its pydantic models (QuantizationConfig, QuantizationScheme,
# QuantizationArgs) give every optional field the default None, so an absent key and an
# explicit null parse to the same object.  This is a representation choice, not a
# difference; it is accepted only where the present value is null.
NULL_EQUALS_ABSENT = True

# Mixtral expert names.  The checkpoint (and every Mixtral checkpoint on the Hub) names an
# expert's Linears w1 (gate), w3 (up), w2 (down); qforge keeps those names, and vLLM's Mixtral
# loader maps exactly them (FusedMoE.make_expert_params_mapping(ckpt_gate_proj_name="w1",
# ckpt_down_proj_name="w2", ckpt_up_proj_name="w3")).  llm-compressor 0.14 with transformers 5
# writes gate_proj / up_proj / down_proj instead: transformers 5 fuses the experts into 3-D
# parameters at load time, llm-compressor unfuses them into Linear modules of its own naming
# to quantize them, and nothing renames them back on save.  Those names are an artefact of
# that round trip, not a convention a loader asks for, so the tensor list compares
# llm-compressor's names mapped back to the checkpoint's; the mapping is printed as a NOTE,
# and every mapped tensor's dtype and shape are still compared.
EXPERT_RENAME = [(re.compile(r"(\.block_sparse_moe\.experts\.\d+\.)" + theirs + r"\."), r"\1" + ours + ".")
                 for theirs, ours in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2"))]


def checkpoint_names(tensors):
    """llm-compressor's tensor names with the Mixtral expert names of the checkpoint."""
    out, renamed = {}, 0
    for name, v in tensors.items():
        new = name
        for pat, rep in EXPERT_RENAME:
            new = pat.sub(rep, new)
        renamed += new != name
        out[new] = v
    return out, renamed


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return hdr


def tensor_list(folder):
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        for name, e in read_header(path).items():
            out[name] = [e["dtype"], list(e["shape"])]
    return out


class Report:
    """Counts checks.  Failures are printed at the end, one line per kind: the same difference
    in every layer / expert (layers.N., experts.N. -> layers.*., experts.*.) is one line with
    its count, so a systematic difference reads as one line and an odd one stands out."""

    def __init__(self, prefix):
        self.prefix, self.passed, self.failed = prefix, 0, 0
        self.kinds = {}  # (what with indices generalised, qforge, llm-compressor) -> count

    def check(self, ok, what, ours=None, theirs=None):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            key = (re.sub(r"\b(layers|experts)\.\d+\.", r"\1.*.", what), json.dumps(ours), json.dumps(theirs))
            self.kinds[key] = self.kinds.get(key, 0) + 1
        return ok

    def finish(self):
        for (what, ours, theirs), n in self.kinds.items():
            times = f" (x{n})" if n > 1 else ""
            print(f"FAIL {self.prefix}: {what}: qforge {ours} vs llm-compressor {theirs}{times}", flush=True)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


MISSING = object()


def show(v):
    return "<absent>" if v is MISSING else v


def ct_derived(args, key):
    """The value compressed-tensors' QuantizationArgs validator gives `key` when a config leaves
    it out, or MISSING where it derives none.

    zp_dtype: when absent or null, QuantizationArgs.validate_model_after sets it from the
    number format (4-bit float: float8_e4m3fn; otherwise the storage type of num_bits:
    int8 for int <= 8 bits), and its serializer writes it back only for asymmetric args.  So a
    config without zp_dtype and one with the derived value parse to the same object in
    compressed-tensors (and so in vLLM, which parses with it): a representation choice.
    scale_dtype has no such derivation: left out, calculate_qparams does not round scales to
    E4M3 (nvfp4 activations quantized at run time differ) and a zero scale is replaced by the
    model dtype's eps instead of E4M3's; it is compared as written."""
    if key == "zp_dtype":
        if args.get("num_bits") == 4 and args.get("type") == "float":
            return "torch.float8_e4m3fn"
        if args.get("type") == "int" and isinstance(args.get("num_bits"), int) and args["num_bits"] <= 8:
            return "torch.int8"
    return MISSING


def compare_dicts(rep, where, ours, theirs, excluded, derived=None):
    """Every key of either dict, except `excluded`; nested dicts are compared whole.
    derived(dict, key): the value a reader gives an absent key (see ct_derived)."""
    for key in sorted(set(ours) | set(theirs)):
        if key in excluded:
            continue
        a, b = ours.get(key, MISSING), theirs.get(key, MISSING)
        if NULL_EQUALS_ABSENT and {id(a), id(b)} <= {id(MISSING), id(None)}:
            rep.check(True, f"{where}.{key}")
            continue
        if derived and (a is MISSING or b is MISSING):
            present, side = (b, theirs) if a is MISSING else (a, ours)
            if present == derived(side, key):
                rep.check(True, f"{where}.{key}")
                continue
        rep.check(a == b, f"{where}.{key}", show(a), show(b))


def ignore_set(names):
    # The ignore list is a set of module names (or "re:" patterns) to vLLM and
    # compressed-tensors: a module is skipped when any entry matches; the order carries no
    # meaning (llm-compressor writes module order, qforge its own).  Duplicates are kept in the
    # count so that a repeated entry still shows up.
    return sorted(names or [])


def compare_config(rep, ours, theirs):
    groups_o = ours.get("config_groups") or {}
    groups_t = theirs.get("config_groups") or {}
    plain = {k for k in set(ours) | set(theirs) if k not in ("config_groups", "ignore")}
    compare_dicts(rep, "quantization_config", {k: ours[k] for k in plain if k in ours},
                  {k: theirs[k] for k in plain if k in theirs}, EXCLUDED_TOP)
    rep.check(sorted(groups_o) == sorted(groups_t), "quantization_config.config_groups names",
              sorted(groups_o), sorted(groups_t))
    for g in sorted(set(groups_o) & set(groups_t)):
        go, gt = groups_o[g], groups_t[g]
        where = f"config_groups.{g}"
        args = ("weights", "input_activations", "output_activations")
        compare_dicts(rep, where, {k: v for k, v in go.items() if k not in args},
                      {k: v for k, v in gt.items() if k not in args}, {})
        for a in args:
            ao, at = go.get(a), gt.get(a)
            if isinstance(ao, dict) and isinstance(at, dict):
                compare_dicts(rep, f"{where}.{a}", ao, at, EXCLUDED_ARGS, ct_derived)
            else:  # one of them null / absent: equal only when both are
                rep.check(ao is None and at is None, f"{where}.{a}", ao, at)
    io, it = ignore_set(ours.get("ignore")), ignore_set(theirs.get("ignore"))
    for name in sorted(set(io) | set(it)):
        rep.check(io.count(name) == it.count(name), f"quantization_config.ignore entry {name!r}",
                  "listed" * io.count(name) or "not listed", "listed" * it.count(name) or "not listed")


def compare_tensors(rep, ours, theirs):
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours:
            rep.check(False, f"tensor {name}", "<absent>", theirs[name])
        elif name not in theirs:
            rep.check(False, f"tensor {name}", ours[name], "<absent>")
        else:
            rep.check(ours[name][0] == theirs[name][0], f"tensor {name} dtype", ours[name][0], theirs[name][0])
            rep.check(ours[name][1] == theirs[name][1], f"tensor {name} shape", ours[name][1], theirs[name][1])


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    art, expected_path = argv[1], argv[2]
    rep = Report(os.path.basename(expected_path)[: -len(".json")])
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    try:
        with open(os.path.join(art, "config.json"), encoding="utf-8") as f:
            ours = json.load(f).get("quantization_config")
    except (OSError, ValueError) as e:
        ours = None
        rep.check(False, "config.json readable", str(e), "a JSON file")
    if rep.check(isinstance(ours, dict), "config.json has a quantization_config object", ours, "an object"):
        compare_config(rep, ours, expected["quantization_config"])
    theirs, renamed = checkpoint_names({k: [v[0], list(v[1])] for k, v in expected["tensors"].items()})
    if renamed:
        print(f"NOTE {rep.prefix}: {renamed} llm-compressor expert tensors compared under the checkpoint's "
              "names (experts.N.gate_proj/up_proj/down_proj -> w1/w3/w2, see EXPERT_RENAME)", flush=True)
    compare_tensors(rep, tensor_list(art), theirs)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
