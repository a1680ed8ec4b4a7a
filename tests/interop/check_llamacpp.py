#!/usr/bin/env python3
"""check_llamacpp.py - qforge's GGUF run by llama.cpp itself (llama-cpp-python), not by a reader.

usage: check_llamacpp.py QFORGE_BINARY ROOT [WINDOWS]   (prints 'N passed, N failed' last)

On ROOT/tests/data/tiny-llama (llama), tiny-tied (qwen3: q/k norms, tied embeddings, NEOX RoPE)
tiny-yarn (qwen2: q/k/v biases, YaRN factor 4 over an original context of 128, so the 512
windows below run in YaRN's scaled range), tiny-moe (mixtral: llama.cpp's llama graph with 4
stacked experts, top-2 routing), tiny-qwen2moe (qwen2moe: shared expert under its sigmoid gate,
top-k weights not renormalised), tiny-qwen3moe (qwen3moe: q/k norms, renormalised) and tiny-phi3
(phi3: fused attn_qkv and gate+up ffn_up, partial rotary 0.75), each converted by `qforge convert --layout gguf
--scheme f16` (the three share one tokenizer):
  1. llama.cpp loads the file (vocab only) and tokenizes ROOT/tests/data/eval.txt with no BOS and
     no special-token parsing; the ids equal ROOT/tests/data/eval.tokens.i32 (Hugging Face
     tokenizers' encode(text, add_special_tokens=False); tests/test_tokenizer.c) id for id.
     tokenizer.ggml.pre decides this: under "default" instead of "gpt-2" llama.cpp splits the
     text differently (+3.9 % tokens).  Asked to add special tokens (its default), llama.cpp
     adds none, as the Hugging Face tokenizer (add_bos_token / add_eos_token false).
  2. llama.cpp's perplexity under the ppl-512 protocol (docs/validate.md: consecutive windows of
     512 of those ids, each evaluated on its own from an empty cache, tokens 1..511 scored from
     the logits before them) over the first WINDOWS windows (default 8) equals `qforge validate
     --base GGUF_FOLDER --chunks WINDOWS` on the same file within 0.1 %.  Both read the same F16
     weights; llama.cpp's CPU matmuls round activations to F16, qforge's runner does not, which
     is what the 0.1 % covers (measured: docs/bench.md).
  3. Where the fixture has a transformers reference (ROOT/tests/data/NAME.window0.logits.safetensors:
     float32 logits of window 0 at 32 positions, tests/tools/make_fixtures.py / make_qwen_moe.py),
     llama.cpp's logits of window 0 at those positions are within 5e-3 relative L2 of it: llama.cpp
     held to transformers directly, not only to qforge (measured 2e-4 .. 8e-4, F16 activations; a
     wrong routing, norm or RoPE is ~1).  tiny-yarn: 2e-2 (LOGITS_TOL_KNOWN, measured 1.19e-2).
Needs llama_cpp (tests/interop/requirements-llamacpp.txt) and numpy; nothing from qforge's Python.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import llama_cpp

from qf_report import Report

CTX = 512
PPL_TOL = 1e-3  # relative; see the docstring
LOGITS_TOL = 5e-3  # relative L2 of window 0's logits against transformers'
# Measured, not understood yet (issue 15): llama.cpp's YaRN on tiny-yarn is 1.19e-2 off
# transformers' window-0 logits (every other fixture 2e-4 .. 8e-4), while its perplexity equals
# qforge validate's within 0.002 % and plain RoPE would be 1.5 off.  Held to 2e-2 so that it
# cannot grow unseen.
LOGITS_TOL_KNOWN = {"qwen2 yarn": 2e-2}


def read_safetensors(path):
    """{name: array} of a safetensors file (u64 header length, JSON header, raw data): numpy only."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    dt = {"F32": "<f4", "I32": "<i4"}
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr


def check_tokens(rep, gguf, text, want):
    vocab = llama_cpp.Llama(model_path=gguf, vocab_only=True, verbose=False)
    got = np.asarray(vocab.tokenize(text, add_bos=False, special=False), dtype=np.int32)
    diff = np.flatnonzero(got[: len(want)] != want[: len(got)])
    first = int(diff[0]) if len(diff) else min(len(got), len(want))
    rep.check(len(got) == len(want) and not len(diff), "tokenization of eval.txt equals the Hugging Face tokenizer's",
              "%d ids vs %d (%+.2f %%), first difference at id %d" % (len(got), len(want), 100.0 * (len(got) / len(want) - 1), first))
    rep.note("tokens: %d from llama.cpp, %d from the Hugging Face tokenizer, %d differ" % (len(got), len(want), len(diff)))
    # llama.cpp's default call adds the special tokens the file asks for (add_bos_token /
    # add_eos_token); the Hugging Face tokenizer adds none for tiny-llama, so neither may llama.cpp
    head = text[:4096].rsplit(b"\n", 1)[0]
    plain, special = vocab.tokenize(head, add_bos=False, special=False), vocab.tokenize(head, add_bos=True, special=False)
    rep.check(plain == special, "add_bos / add_eos: llama.cpp adds no special token, as the Hugging Face tokenizer",
              "%s... vs %s..." % (special[:3], plain[:3]))
    del vocab


def llamacpp_ppl(gguf, ids, windows):
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=CTX, n_batch=CTX, n_ubatch=CTX, logits_all=True,
                          n_threads=os.cpu_count(), verbose=False)
    nll, n, first = 0.0, 0, None
    for w in range(windows):
        win = [int(t) for t in ids[w * CTX:(w + 1) * CTX]]
        llm.reset()  # each window on its own: eval() drops the cache past n_tokens = 0
        llm.eval(win)
        if w == 0:
            first = np.asarray(llm.scores[:CTX], dtype=np.float64)
        z = np.asarray(llm.scores[: CTX - 1], dtype=np.float64)  # logits at positions 0..510
        m = z.max(axis=1, keepdims=True)
        logp = z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))
        nll -= float(logp[np.arange(CTX - 1), win[1:]].sum())
        n += CTX - 1
    del llm
    return float(np.exp(nll / n)), n, first


def check_one(rep, label, qforge, model, out, text, text_path, want, windows):
    if label == "phi3":  # llama.cpp sets token attributes on "</s>" ... for any general.name containing
        # "phi3" and stops with unordered_map::at when the vocabulary lacks them (tiny-llama's does):
        # the copy's folder, which general.name is taken from, does not say phi3
        model = shutil.copytree(model, os.path.join(os.path.dirname(out), "fused-src"))
    rc, _, err = run([qforge, "convert", model, "--layout", "gguf", "--scheme", "f16", "-o", out, "-q"])
    if not rep.check(rc == 0, "%s: qforge convert --layout gguf --scheme f16" % label, err.strip()[-300:]):
        return
    gguf = os.path.join(out, "model.gguf")
    check_tokens(rep, gguf, text, want)
    t0 = time.time()
    ppl_l, scored, first = llamacpp_ppl(gguf, want, windows)
    ref_path = os.path.join(os.path.dirname(model.rstrip("/")), os.path.basename(model.rstrip("/")) + ".window0.logits.safetensors")
    if label == "phi3":
        ref_path = os.path.join(text_path.rsplit("/", 1)[0], "tiny-phi3.window0.logits.safetensors")
    if os.path.exists(ref_path):
        ref = read_safetensors(ref_path)
        # the shared tiny-llama reference holds positions 0..15 and their 16 ids only
        pos = ref["positions"] if "positions" in ref else np.arange(len(ref["logits"]))
        same_ids = np.array_equal(ref["input_ids"], want[:len(ref["input_ids"])])
        got = first[pos]
        rel = float(np.linalg.norm(got - ref["logits"]) / np.linalg.norm(ref["logits"]))
        tol = LOGITS_TOL_KNOWN.get(label, LOGITS_TOL)
        rep.check(same_ids and rel <= tol, "%s: window-0 logits within %g of transformers'" % (label, tol),
                  "relative L2 %.3g, same ids %s" % (rel, same_ids))
        rep.note("%s: window-0 logits vs transformers (%s): relative L2 %.2e" % (label, os.path.basename(ref_path), rel))
    t_l = time.time() - t0
    t0 = time.time()
    rc, so, err = run([qforge, "validate", "--base", out, "--text", text_path, "--ctx", str(CTX), "--chunks",
                       str(windows), "--json", "-q"])
    t_q = time.time() - t0
    if not rep.check(rc == 0, "%s: qforge validate on the GGUF" % label, err.strip()[-300:]):
        return
    v = json.loads(so)
    ppl_q = v["ppl"]
    rep.check(v.get("scored_tokens") == scored, "%s: same scored tokens" % label,
              "%s vs %d" % (v.get("scored_tokens"), scored))
    rel = ppl_l / ppl_q - 1
    rep.check(abs(rel) <= PPL_TOL, "%s: perplexity equals qforge validate's within %.1f %%" % (label, 100 * PPL_TOL),
              "llama.cpp %.6f, qforge %.6f" % (ppl_l, ppl_q))
    rep.note("%s: PPL over %d windows (%d scored tokens): llama.cpp %.6f (%.1f s), qforge validate %.6f (%.1f s), "
             "difference %+.4f %%" % (label, windows, scored, ppl_l, t_l, ppl_q, t_q, 100 * rel))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    qforge, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    windows = int(sys.argv[3]) if len(sys.argv) == 4 else 8
    text_path = os.path.join(root, "tests/data/eval.txt")
    want = np.fromfile(os.path.join(root, "tests/data/eval.tokens.i32"), dtype="<i4")
    text = open(text_path, "rb").read()  # llama_tokenize takes UTF-8 bytes
    rep = Report("llama.cpp")
    rep.note("llama-cpp-python %s" % llama_cpp.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(root, "tests/data")
        models = (("llama", os.path.join(data, "tiny-llama")), ("qwen3", os.path.join(data, "tiny-tied")),
                  ("qwen2 yarn", os.path.join(data, "tiny-yarn")), ("mixtral", os.path.join(data, "tiny-moe")),
                  ("qwen2moe", os.path.join(data, "tiny-qwen2moe")), ("qwen3moe", os.path.join(data, "tiny-qwen3moe")),
                  ("phi3", os.path.join(data, "tiny-phi3")))
        for label, model in models:
            check_one(rep, label, qforge, model, os.path.join(tmp, label), text, text_path, want, windows)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
