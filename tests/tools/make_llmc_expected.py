#!/usr/bin/env python3
"""make_llmc_expected.py - what llm-compressor writes, for qforge's interop comparison.

For each fixture (tests/data/tiny-llama, tests/data/tiny-moe, and tests/data/tiny-tied when it
exists) and each compressed-tensors scheme qforge writes, runs llm-compressor's `oneshot` with
one QuantizationModifier of the matching preset, saves with save_compressed=True into a
temporary folder, and writes tests/data/llmc/<fixture>.<scheme>.json with

  "quantization_config": config.json's quantization_config, as llm-compressor wrote it;
  "tensors":             {name: [safetensors dtype, shape]} from the safetensors headers;
  "made_by":             the preset, ignore list, calibration and package versions used.

tests/interop/check_llmc.py compares a qforge artifact with such a file, key by key.

Run once, in a venv made from tests/tools/requirements-llmcompressor.txt (torch on the CPU is
enough; about 2 minutes for everything):

  python3 -m venv /tmp/lcmp
  /tmp/lcmp/bin/pip install --require-hashes -r tests/tools/requirements-llmcompressor.txt
  /tmp/lcmp/bin/python tests/tools/make_llmc_expected.py [--only FIXTURE.SCHEME ...]

The output is deterministic: sorted keys, no timestamps, no paths (weights values never
enter the files, only names, dtypes and shapes).
"""
import argparse
import glob
import json
import os
import struct
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(DATA, "llmc")

# qforge scheme name -> (llm-compressor preset, needs calibration data)
SCHEMES = {
    "fp8-dynamic": ("FP8_DYNAMIC", False),
    "w8a8": ("W8A8", False),  # int8 channel weights, dynamic per-token int8 activations
    "w4a16": ("W4A16", False),
    "w4a16-asym": ("W4A16_ASYM", False),
    "nvfp4a16": ("NVFP4A16", False),
    "mxfp4a16": ("MXFP4A16", False),
    "fp8": ("FP8", True),  # static per-tensor weights and inputs
    "nvfp4": ("NVFP4", True),  # W4A4 with calibrated input global scales
}

# lm_head as in every llm-compressor example; the MoE routers as its MoE examples name them
# (Mixtral's block_sparse_moe.gate, Qwen-MoE's mlp.gate).
IGNORE = ["lm_head", "re:.*block_sparse_moe.gate$", "re:.*mlp.gate$"]

N_CALIB = 8  # calibration samples (paragraphs of tests/data/calib.txt)
CALIB_LEN = 128  # tokens per sample


FIXTURES = ["tiny-llama", "tiny-moe", "tiny-tied"]
FIXTURE_DIRS = {n: os.path.join(DATA, n) for n in FIXTURES}  # --fixture NAME=DIR overrides


def fixtures():
    return [n for n in FIXTURES if os.path.isfile(os.path.join(FIXTURE_DIRS[n], "config.json"))]


def calib_dataset(tokenizer):
    """The first N_CALIB paragraphs of calib.txt with at least 200 characters, tokenized."""
    from datasets import Dataset

    with open(os.path.join(DATA, "calib.txt"), encoding="utf-8") as f:
        paras = [p.strip() for p in f.read().split("\n\n")]
    paras = [p for p in paras if len(p) >= 200][:N_CALIB]
    enc = [tokenizer(p, truncation=True, max_length=CALIB_LEN) for p in paras]
    return Dataset.from_dict(
        {"input_ids": [e["input_ids"] for e in enc], "attention_mask": [e["attention_mask"] for e in enc]}
    )


def safetensors_list(folder):
    """{name: [dtype, shape]} over every *.safetensors file of a folder (headers only)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            hdr = json.loads(f.read(n))
        hdr.pop("__metadata__", None)
        for name, e in hdr.items():
            out[name] = [e["dtype"], e["shape"]]
    return out


def dump(obj, path):
    """Sorted keys, two-space indent, but each tensor entry on one line (small diffs)."""
    tensors = obj.pop("tensors")
    text = json.dumps(obj, indent=2, sort_keys=True)
    lines = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(tensors.items()))
    text = text[: text.rindex("}")].rstrip() + ',\n  "tensors": {\n' + lines + "\n  }\n}\n"
    json.loads(text)  # must stay valid JSON
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def versions():
    from importlib.metadata import version

    return {p: version(p) for p in ("llmcompressor", "compressed-tensors", "transformers", "torch")}


def make_one(fixture, scheme, tmp):
    import torch
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    preset, calibrated = SCHEMES[scheme]
    src = FIXTURE_DIRS[fixture]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(src, dtype="auto")
    tok = AutoTokenizer.from_pretrained(src)
    recipe = QuantizationModifier(targets="Linear", scheme=preset, ignore=IGNORE)
    kw = {}
    if calibrated:
        kw = dict(dataset=calib_dataset(tok), num_calibration_samples=N_CALIB, max_seq_length=CALIB_LEN)
    oneshot(model=model, recipe=recipe, **kw)
    out = os.path.join(tmp, f"{fixture}.{scheme}")
    model.save_pretrained(out, save_compressed=True)
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        qc = json.load(f)["quantization_config"]
    return {
        "made_by": {
            "script": "tests/tools/make_llmc_expected.py",
            "fixture": f"tests/data/{fixture}",
            "preset": preset,
            "targets": "Linear",
            "ignore": IGNORE,
            "calibration": (f"{N_CALIB} paragraphs of tests/data/calib.txt, <= {CALIB_LEN} tokens" if calibrated else None),
            "versions": versions(),
        },
        "quantization_config": qc,
        "tensors": safetensors_list(out),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="FIXTURE.SCHEME pairs to (re)make (default: all)")
    ap.add_argument("--fixture", action="append", default=[], metavar="NAME=DIR",
                    help="read fixture NAME from DIR (one not yet in this checkout); the files are still named NAME")
    args = ap.parse_args()
    for spec in args.fixture:
        name, _, folder = spec.partition("=")
        if name not in FIXTURE_DIRS or not folder:
            ap.error(f"--fixture {spec}: expected NAME=DIR with NAME one of {', '.join(FIXTURES)}")
        FIXTURE_DIRS[name] = os.path.abspath(folder)
    os.makedirs(OUT, exist_ok=True)
    todo = [(f, s) for f in fixtures() for s in SCHEMES]
    if args.only:
        todo = [(f, s) for f, s in todo if f"{f}.{s}" in args.only]
    failed = []
    with tempfile.TemporaryDirectory(prefix="llmc-expected.") as tmp:
        for fixture, scheme in todo:
            print(f"== {fixture} {scheme}", flush=True)
            try:
                res = make_one(fixture, scheme, tmp)
            except Exception as e:  # one preset missing must not hide the others
                print(f"FAILED {fixture} {scheme}: {type(e).__name__}: {e}", flush=True)
                failed.append(f"{fixture}.{scheme}")
                continue
            dump(res, os.path.join(OUT, f"{fixture}.{scheme}.json"))
    if failed:
        print("not made: " + " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
