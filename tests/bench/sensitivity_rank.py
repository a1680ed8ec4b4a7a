#!/usr/bin/env python3
"""Does --target-bits' sensitivity proxy rank Linears as the measured drift does?

For each Linear of a --target-bits artifact's manifest: convert the model with only that Linear
quantized to SCHEME by RTN (every other Linear kept by --ignore), measure mean KL(base || quant)
with `qforge validate --chunks N` on the eval text, and compare the ranking with the proxy
(qforge.manifest.json "mixed_precision": error[SCHEME], absolute and relative to energy) by
Spearman's rank correlation.  Prints a table and one JSON line.

usage: sensitivity_rank.py QFORGE MODEL_DIR MIXED_ARTIFACT EVAL_TEXT WORKDIR [--scheme S] [--chunks N]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qforge")
    ap.add_argument("model")
    ap.add_argument("mixed")
    ap.add_argument("text")
    ap.add_argument("work")
    ap.add_argument("--scheme", default="w4a16-asym")
    ap.add_argument("--chunks", type=int, default=16)
    a = ap.parse_args()
    mp = json.load(open(os.path.join(a.mixed, "qforge.manifest.json")))["mixed_precision"]
    mods = sorted(mp["modules"])
    os.makedirs(a.work, exist_ok=True)
    rows = []
    for m in mods:
        g = re.match(r"^(.*\.layers\.)(\d+)\.(.*)$", m)
        prefix, layer, rest = g.group(1), int(g.group(2)), g.group(3)
        others = sorted({int(re.match(r"^.*\.layers\.(\d+)\.", x).group(1)) for x in mods} - {layer})
        same = [re.match(r"^.*\.layers\.\d+\.(.*)$", x).group(1) for x in mods if x.startswith(f"{prefix}{layer}.") and x != m]
        ign = [f"^{re.escape(prefix)}({'|'.join(map(str, others))})\\."] if others else []
        if same:
            ign.append(f"^{re.escape(prefix)}{layer}\\.({'|'.join(re.escape(s) for s in same)})$")
        out = os.path.join(a.work, "one")
        shutil.rmtree(out, ignore_errors=True)
        cmd = [a.qforge, "convert", a.model, "-o", out, "--scheme", a.scheme, "-q"]
        for p in ign:
            cmd += ["--ignore", p]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        v = json.loads(subprocess.run([a.qforge, "validate", "--base", a.model, "--quant", out, "--text", a.text,
                                       "--chunks", str(a.chunks), "--json", "-q"], check=True,
                                      capture_output=True, text=True).stdout)
        e = mp["modules"][m]["error"][a.scheme]
        rows.append((m, v["mean_kld"], e, e / mp["modules"][m]["energy"]))
        print(f"{m:40s} kld {v['mean_kld']:.6f}  proxy {e:.5f}  relative {rows[-1][3]:.6f}", flush=True)
    kld = [r[1] for r in rows]
    res = {"scheme": a.scheme, "chunks": a.chunks, "n": len(rows),
           "spearman_abs": spearman(kld, [r[2] for r in rows]),
           "spearman_rel": spearman(kld, [r[3] for r in rows]),
           "sum_single_kld": sum(kld)}
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
