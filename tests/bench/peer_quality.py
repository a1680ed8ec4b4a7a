#!/usr/bin/env python3
"""peer_quality.py - qforge's quantized artifacts against llm-compressor's, on quality (issue 18).

For one fixture (tiny-llama by default, --fixture tiny-moe) and the schemes
w4a16, w4a16-asym, nvfp4a16, fp8-dynamic, w8a8 (llm-compressor presets W4A16, W4A16_ASYM,
NVFP4A16, FP8_DYNAMIC, W8A8, as in tests/tools/make_llmc_expected.py), it makes five artifacts
per scheme and measures each one's drift from the bf16 base with ONE evaluator:

  llmc-rtn       llm-compressor QuantizationModifier(targets=Linear, scheme=PRESET, ignore=...)
  llmc-gptq      llm-compressor GPTQModifier(targets=Linear, scheme=PRESET, ignore=...)
  qforge-rtn     qforge convert --scheme S                (RTN; clip search 10 for int4 / nvfp4)
  qforge-rtn-c0  qforge convert --scheme S --clip-search 0  (textbook RTN: each group's range)
  qforge-gptq    qforge convert --scheme S --method gptq  (its defaults)

Every option not named above is the tool's default.  Both tools ignore lm_head (and MoE
routers), keep embeddings and norms dense.

Calibration (both GPTQ rows; the RTN rows of these presets use no data): the SAME token
windows on both sides.  qforge is given `--calib tests/data/calib.txt --calib-samples N
--calib-seqlen L --seed S` (tests/data/calib.txt is byte-identical to the text bundled in
the binary, calib/calibrate/data/default-calib.txt, so with the defaults N=128, L=512, S=0
these are exactly the windows of a plain `--method gptq`).  qforge picks them as
calib/calibrate/calib_data.c does: tokenize the whole text (no BOS), span = tokens - L + 1,
state = S, window i starts at splitmix64(&state) % span (common/qf_rng.h).  This script
tokenizes with `qforge tokenize` (the ids qforge itself calibrates on), replays the
SplitMix64 draws in Python, and hands llm-compressor those N x L ids as a pre-tokenized
dataset (no BOS added, no truncation, no padding).

Evaluation (tests/interop/check_transformers.py's loader, in the project env with
transformers + compressed-tensors): each artifact is loaded with AutoModelForCausalLM in
float32, its weights decompressed to float32 (nvfp4 unpacked in float32, the asymmetric int4
meta-shape fix applied), the base is tests/data/FIXTURE in float32.  fp8-dynamic and w8a8
keep compressed-tensors' input fake-quantization: per-token dynamic activation quantization,
with the rule vLLM serves (int8 s = absmax/127, codes [-127, 127]; fp8 s = absmax/448) on
both tools' artifacts (check_transformers.serve_8bit_activations_as_vllm), the same rule
`qforge validate --act-quant on` emulates.  --weight-only switches it off for all artifacts.
Protocol ppl-512 on tests/data/eval.txt, first --windows windows: mean KL(base || quant) over
the full vocabulary, PPL, top-1 agreement.  Beside each qforge row (and each llm-compressor
row with --validate-llmc) `qforge validate --chunks N --json` runs as a cross-check.

Artifacts are cached in build/peer/FIXTURE/<calibration>/<maker>/<row>.<scheme>: qforge's
under the hash of the qforge binary, llm-compressor's under its version; a finished
artifact's evaluation is cached beside it (eval-<windows>-<act>.json).  --fresh remakes all.

Runs under the project env (build/pyenv); llm-compressor runs in a separate venv
(build/lcenv, --lc-python) as a subprocess: `peer_quality.py _llmc ...`.  Use the wrapper
tests/bench/peer_quality.sh, which makes that venv and builds qforge when missing.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))

from make_llmc_expected import IGNORE, SCHEMES as LLMC_SCHEMES  # noqa: E402

SCHEMES = ["w4a16", "w4a16-asym", "nvfp4a16", "fp8-dynamic", "w8a8"]
ROWS = ["llmc-rtn", "llmc-gptq", "qforge-rtn", "qforge-rtn-c0", "qforge-gptq"]
ROW_TITLE = {
    "llmc-rtn": "llmc RTN",
    "llmc-gptq": "llmc GPTQ",
    "qforge-rtn": "qforge RTN (default)",
    "qforge-rtn-c0": "qforge RTN --clip-search 0",
    "qforge-gptq": "qforge GPTQ",
}
ACT8 = {"fp8-dynamic", "w8a8"}  # schemes with (dynamic, per-token) 8-bit activations
MASK64 = (1 << 64) - 1


def splitmix64(state):
    """common/qf_rng.h qf_splitmix64: returns (new state, 64 random bits)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def calib_starts(n_tokens, n_samples, seqlen, seed):
    """Window starts as calib/calibrate/calib_data.c qf_calib_data_load draws them."""
    span = n_tokens - seqlen + 1
    state, starts = seed & MASK64, []
    for _ in range(n_samples):
        state, r = splitmix64(state)
        starts.append(r % span)
    return starts


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r.stdout


def sha12(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- calibration ids
def make_calib(a, out):
    """N x L int32 ids (little-endian, row-major) of qforge's calibration windows."""
    import numpy as np

    if os.path.exists(out):
        return out
    ids_path = out + ".all.i32"
    run([a.qforge, "tokenize", a.model, a.calib, "--out", ids_path])
    ids = np.fromfile(ids_path, dtype="<i4")
    os.unlink(ids_path)
    # the same ids through Hugging Face tokenizers (what llm-compressor's side would get from
    # the text): they must agree, else the two tools would not see the same text
    from tokenizers import Tokenizer

    with open(a.calib, encoding="utf-8") as f:
        hf = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json")).encode(f.read(), add_special_tokens=False).ids
    if len(hf) != len(ids) or not np.array_equal(np.asarray(hf, dtype="<i4"), ids):
        raise SystemExit(f"{a.calib}: qforge tokenize and HF tokenizers disagree ({len(ids)} vs {len(hf)} ids)")
    starts = calib_starts(len(ids), a.calib_samples, a.calib_seqlen, a.seed)
    win = np.stack([ids[s:s + a.calib_seqlen] for s in starts]).astype("<i4")
    tmp = out + ".tmp"
    win.tofile(tmp)
    os.replace(tmp, out)
    with open(out + ".json", "w") as f:
        json.dump({"text": os.path.relpath(a.calib, ROOT), "text_sha256_12": sha12(a.calib), "text_tokens": int(len(ids)),
                   "samples": a.calib_samples, "seqlen": a.calib_seqlen, "seed": a.seed, "starts": [int(s) for s in starts]},
                  f, indent=1)
    return out


# --------------------------------------------------------------------------- llm-compressor
def llmc_main(argv):
    """Subcommand run inside the llm-compressor venv: _llmc MODEL SCHEME METHOD CALIB_I32 N L OUT."""
    model_dir, scheme, method, calib_path, n, seqlen, out = argv
    n, seqlen = int(n), int(seqlen)
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    preset = LLMC_SCHEMES[scheme][0]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")  # bf16, as llm-compressor's examples
    tok = AutoTokenizer.from_pretrained(model_dir)
    kw = {}
    if method == "gptq":
        from datasets import Dataset

        ids = np.fromfile(calib_path, dtype="<i4").reshape(n, seqlen)
        ds = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": np.ones_like(ids).tolist()})
        recipe = GPTQModifier(targets="Linear", scheme=preset, ignore=IGNORE)
        kw = dict(dataset=ds, num_calibration_samples=n, max_seq_length=seqlen)
    else:
        recipe = QuantizationModifier(targets="Linear", scheme=preset, ignore=IGNORE)
    t0 = time.time()
    oneshot(model=model, recipe=recipe, **kw)
    secs = time.time() - t0
    tmp = out + ".tmp"
    model.save_pretrained(tmp, save_compressed=True)
    tok.save_pretrained(tmp)
    fields = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
              for k, v in recipe.model_dump().items() if k not in ("config_groups",)}
    with open(os.path.join(tmp, "peer_made_by.json"), "w") as f:
        json.dump({"modifier": type(recipe).__name__, "fields": fields, "seconds": secs,
                   "calibration": kw and {"windows": n, "seqlen": seqlen}}, f, indent=1, default=str)
    os.replace(tmp, out)
    return 0


def lc_versions(lc_python):
    code = ("from importlib.metadata import version as v; import json; print(json.dumps({p: v(p) for p in "
            "('llmcompressor', 'compressed-tensors', 'transformers', 'torch')}))")
    return json.loads(run([lc_python, "-c", code]))


# --------------------------------------------------------------------------- artifacts
def make_artifact(a, row, scheme, path, calib_ids):
    if os.path.isfile(os.path.join(path, "config.json")) and not a.fresh:
        return None
    if os.path.exists(path):
        import shutil

        shutil.rmtree(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t0 = time.time()
    if row.startswith("llmc-"):
        if os.path.exists(path + ".tmp"):
            import shutil

            shutil.rmtree(path + ".tmp")
        env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        r = subprocess.run([a.lc_python, os.path.abspath(__file__), "_llmc", a.model, scheme, row[5:], calib_ids,
                            str(a.calib_samples), str(a.calib_seqlen), path], capture_output=True, text=True, env=env)
        with open(path + ".log", "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise RuntimeError(f"llm-compressor {row} {scheme} failed (exit {r.returncode}); log {path}.log:\n"
                               + r.stderr[-1500:])
    else:
        cmd = [a.qforge, "convert", a.model, "-o", path, "--scheme", scheme, "-q", "--threads", str(a.threads)]
        if row == "qforge-rtn-c0":
            cmd += ["--clip-search", "0"]
        if row == "qforge-gptq":
            cmd += ["--method", "gptq", "--calib", a.calib, "--calib-samples", str(a.calib_samples),
                    "--calib-seqlen", str(a.calib_seqlen), "--seed", str(a.seed)]
        run(cmd)
    secs = time.time() - t0
    with open(path + ".seconds", "w") as f:
        f.write(f"{secs:.1f}\n")
    return secs


def qforge_validate(a, path):
    cache = os.path.join(path, f"peer-validate-{a.windows}-{'off' if a.weight_only else 'on'}.json")
    if os.path.exists(cache) and not a.fresh:
        with open(cache) as f:
            return json.load(f)
    out = run([a.qforge, "validate", "--base", a.model, "--quant", path, "--text", a.text, "--chunks", str(a.windows),
               "--act-quant", "off" if a.weight_only else "on", "--json", "--threads", str(a.threads), "-q"])
    res = json.loads(out)
    with open(cache, "w") as f:
        json.dump(res, f)
    return res


def weights_digest(path):
    """sha256 of the artifact's safetensors files (names sorted): equal digests, equal weights."""
    import glob

    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(path, "*.safetensors"))):
        h.update(os.path.basename(f).encode() + sha12(f).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- evaluation
class Evaluator:
    """One loader and one metric for every artifact (check_transformers.py's load())."""

    def __init__(self, a):
        import torch

        import check_transformers as ct

        torch.set_num_threads(1)
        self.a, self.ct, self.torch = a, ct, torch
        ct.serve_8bit_activations_as_vllm()
        ct.unpack_fp4_in_float32()
        ct.patch_ct_meta_zero_point()
        if a.moe:
            ct.patch_hf_fused_experts()
        self.windows = ct.windows_of(a.model, a.text, a.windows)
        self.lp_base = None

    def _base(self):
        if self.lp_base is None:
            base, info, _ = self.ct.load(self.a.model)
            if info["missing_keys"] or info["unexpected_keys"]:
                raise RuntimeError(f"base loads with {info}")
            self.lp_base = self.ct.log_probs(base, self.windows)  # [n, 511, V] float32
            tgt = self.windows[:, 1:]
            self.base_nll = float(-self.lp_base.gather(-1, tgt.unsqueeze(-1)).mean())
            self.base_top = self.lp_base.argmax(-1)
        return self.lp_base

    def __call__(self, path, act_quant):
        cache = os.path.join(path, f"peer-eval-{self.a.windows}-{'on' if act_quant else 'off'}.json")
        if os.path.exists(cache) and not self.a.fresh:
            with open(cache) as f:
                return json.load(f)
        torch, lp_base = self.torch, self._base()
        model, info, _ = self.ct.load(path, act_quant)
        keys = {k: sorted(info[k])[:4] for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info[k]}
        if keys:
            raise RuntimeError(f"{path}: loads with {keys}")
        kl_sum = nll_sum = agree = 0.0
        with torch.no_grad():
            for i, w in enumerate(self.windows):
                lp = torch.log_softmax(model(w.unsqueeze(0)).logits[0, :-1].float(), dim=-1)
                lb = lp_base[i]
                kl_sum += float((lb.exp() * (lb - lp)).sum(-1).sum())
                nll_sum += float(-lp.gather(-1, w[1:].unsqueeze(-1)).sum())
                agree += float((lp.argmax(-1) == self.base_top[i]).sum())
        n = self.windows.shape[0] * (self.windows.shape[1] - 1)
        import math

        res = {"mean_kld": kl_sum / n, "ppl": math.exp(nll_sum / n), "top1": agree / n,
               "base_ppl": math.exp(self.base_nll), "windows": int(self.windows.shape[0]), "act_quant": act_quant}
        with open(cache, "w") as f:
            json.dump(res, f)
        return res


# --------------------------------------------------------------------------- report
def header(a, lcv, calib_meta):
    import compressed_tensors
    import torch
    import transformers

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "nogit"
    dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"]).returncode != 0
    act = "weight-only (activations in float32)" if a.weight_only else \
        "fp8-dynamic / w8a8 with per-token dynamic activation quantization emulated (vLLM's rule), others weight-only"
    return (f"{os.path.basename(a.model)}; eval: ppl-512 on {os.path.relpath(a.text, ROOT)}, first {a.windows} windows "
            f"({a.windows * 511} scored tokens), {act}; calibration (GPTQ rows): {a.calib_samples} x {a.calib_seqlen} "
            f"tokens of {calib_meta['text']} (seed {a.seed}, qforge's windows); qforge {commit}{' +changes' if dirty else ''}"
            f" (binary {sha12(a.qforge)}, --threads {a.threads}); llmcompressor {lcv['llmcompressor']}, "
            f"compressed-tensors {lcv['compressed-tensors']}, transformers {lcv['transformers']}, torch {lcv['torch']} "
            f"(making llmc artifacts); evaluator transformers {transformers.__version__}, compressed-tensors "
            f"{compressed_tensors.__version__}, torch {torch.__version__} (1 thread, float32); {cpu}, {os.cpu_count()} "
            f"cores, {platform.system()} {platform.release()}; {datetime.date.today().isoformat()}")


def table(a, results):
    lines = ["| scheme | " + " | ".join(ROW_TITLE[r] for r in a.rows) + " |", "|---|" + "---|" * len(a.rows)]
    for s in a.schemes:
        cells = []
        for r in a.rows:
            e = results.get((s, r))
            if e is None or "error" in e:
                cells.append("n/a" if e is None else "failed")
                continue
            c = f"{e['eval']['mean_kld']:.5f}"
            best = min((results[(s, x)]["eval"]["mean_kld"] for x in a.rows
                        if (s, x) in results and "eval" in results[(s, x)]), default=None)
            if best is not None and e["eval"]["mean_kld"] == best:
                c = f"**{c}**"
            if "validate" in e:
                c += f" (v {e['validate']['mean_kld']:.5f})"
            cells.append(c)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    detail = ["| scheme | artifact | mean KLD | PPL | top-1 | qforge validate mean KLD (diff) | make (s) |",
              "|---|---|---|---|---|---|---|"]
    for s in a.schemes:
        for r in a.rows:
            e = results.get((s, r))
            if e is None:
                continue
            if "error" in e:
                detail.append(f"| {s} | {r} | failed: {e['error'][:100]} | | | | |")
                continue
            ev = e["eval"]
            v = e.get("validate")
            vs = f"{v['mean_kld']:.5f} ({100 * (v['mean_kld'] - ev['mean_kld']) / ev['mean_kld']:+.2f} %)" if v else ""
            same = f" (= {e['same_as']}: identical weights)" if e.get("same_as") else ""
            detail.append(f"| {s} | {r}{same} | {ev['mean_kld']:.5f} | {ev['ppl']:.3f} | {ev['top1']:.4f} | {vs} | "
                          f"{e.get('seconds', '')} |")
    return "\n".join(lines), "\n".join(detail)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_llmc":
        return llmc_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixture", default="tiny-llama", choices=["tiny-llama", "tiny-moe"])
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--rows", default=",".join(ROWS), help="artifact makers, comma-separated (default: all five)")
    ap.add_argument("--windows", type=int, default=64, help="eval windows of 512 tokens (default 64)")
    ap.add_argument("--calib-samples", type=int, default=128)
    ap.add_argument("--calib-seqlen", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib", default=os.path.join(ROOT, "tests", "data", "calib.txt"))
    ap.add_argument("--text", default=os.path.join(ROOT, "tests", "data", "eval.txt"))
    ap.add_argument("--qforge", default=os.path.join(ROOT, "build", "qforge"))
    ap.add_argument("--lc-python", default=os.path.join(ROOT, "build", "lcenv", "bin", "python"))
    ap.add_argument("--threads", type=int, default=1, help="qforge --threads (default 1)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "peer"))
    ap.add_argument("--weight-only", action="store_true", help="no activation quantization for fp8-dynamic / w8a8")
    ap.add_argument("--validate-llmc", action="store_true", help="also run qforge validate on llm-compressor's artifacts")
    ap.add_argument("--fresh", action="store_true", help="remake and re-evaluate every artifact")
    ap.add_argument("--markdown", help="also write the tables to this file")
    a = ap.parse_args()
    a.schemes, a.rows = a.schemes.split(","), a.rows.split(",")
    for s in a.schemes:
        if s not in SCHEMES:
            ap.error(f"--schemes: {s} not one of {SCHEMES}")
    for r in a.rows:
        if r not in ROWS:
            ap.error(f"--rows: {r} not one of {ROWS}")
    a.model = os.path.join(ROOT, "tests", "data", a.fixture)
    a.calib, a.text, a.qforge = map(os.path.abspath, (a.calib, a.text, a.qforge))
    with open(os.path.join(a.model, "config.json")) as f:
        a.moe = "num_local_experts" in json.load(f)
    t_start = time.time()
    lcv = lc_versions(a.lc_python) if any(r.startswith("llmc") for r in a.rows) else \
        {k: "-" for k in ("llmcompressor", "compressed-tensors", "transformers", "torch")}
    tag = f"calib-{a.calib_samples}x{a.calib_seqlen}-s{a.seed}-{sha12(a.calib)}"
    base = os.path.join(a.out, a.fixture, tag)
    os.makedirs(base, exist_ok=True)
    calib_ids = make_calib(a, os.path.join(base, "calib.i32"))
    with open(calib_ids + ".json") as f:
        calib_meta = json.load(f)
    makers = {"llmc": f"llmc-{lcv['llmcompressor']}", "qforge": f"qforge-{sha12(a.qforge)}"}
    ev = Evaluator(a)
    results = {}
    for s in a.schemes:
        for r in a.rows:
            path = os.path.join(base, makers[r.split("-")[0]], f"{r}.{s}")
            e = results[(s, r)] = {}
            try:
                secs = make_artifact(a, r, s, path, calib_ids)
                if secs is None and os.path.exists(path + ".seconds"):
                    with open(path + ".seconds") as f:
                        secs = float(f.read())
                e["seconds"] = f"{secs:.1f}" if secs is not None else ""
                digest = weights_digest(path)
                same = next((x for x in a.rows if x != r and results.get((s, x), {}).get("digest") == digest), None)
                if same:  # byte-identical weights (clip search 0 is already the default for 8-bit schemes)
                    e.update({k: results[(s, same)][k] for k in ("eval", "validate") if k in results[(s, same)]})
                    e["same_as"] = same
                else:
                    e["eval"] = ev(path, act_quant=(s in ACT8 and not a.weight_only))
                    if r.startswith("qforge") or a.validate_llmc:
                        e["validate"] = qforge_validate(a, path)
                e["digest"] = digest
            except Exception as x:  # one failing maker must not hide the others
                e.clear()
                e["error"] = f"{type(x).__name__}: {x}".replace("\n", " ")
            v = e.get("validate")
            print(f"{s:12s} {r:14s} " + (f"mean KLD {e['eval']['mean_kld']:.5f}  PPL {e['eval']['ppl']:.3f}  "
                                          f"top-1 {e['eval']['top1']:.4f}" if "eval" in e else e["error"][:300])
                  + (f"  | qforge validate {v['mean_kld']:.5f}" if v else "")
                  + (f"  ({e['seconds']} s to make)" if e.get("seconds") else "")
                  + (f"  [weights identical to {e['same_as']}]" if e.get("same_as") else ""), flush=True)
    hdr = header(a, lcv, calib_meta)
    main_t, detail_t = table(a, results)
    base_ppl = ev.lp_base is not None and f"base PPL {__import__('math').exp(ev.base_nll):.3f}"
    text = (f"{hdr}\n\nMean KL(base || quant), lower is better; (v X) = `qforge validate` on the same windows. "
            f"{base_ppl or ''}\n\n{main_t}\n\n{detail_t}\n\nTotal {time.time() - t_start:.0f} s.\n")
    print("\n" + text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    return 1 if any("error" in e for e in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
