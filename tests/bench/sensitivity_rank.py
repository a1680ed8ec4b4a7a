#!/usr/bin/env python3
"""Does --target-bits' sensitivity rank Linears as the drift measured on the eval text does?

For each Linear (--items: each item, the Linears that share a format) of a --target-bits
artifact's manifest: convert the model with only those Linears quantized to SCHEME by RTN
(every other Linear kept by --ignore), measure mean KL(base || quant) with `qforge validate
--chunks N` on the eval text, and compare the ranking with the sensitivity the manifest
recorded (qforge.manifest.json "mixed_precision") by Spearman's rank correlation.  Two
manifests are understood: commit 71bca4e's Hessian-diagonal proxy (per module: error[SCHEME],
absolute and relative to energy) and the measured calibration-window KLD since (per item:
kld[SCHEME]).  Prints a table and one JSON line.

usage: sensitivity_rank.py QFORGE MODEL_DIR MIXED_ARTIFACT EVAL_TEXT WORKDIR [--scheme S] [--chunks N] [--items]
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
    ap.add_argument("--items", action="store_true")
    a = ap.parse_args()
    mp = json.load(open(os.path.join(a.mixed, "qforge.manifest.json")))["mixed_precision"]
    mods = sorted(mp["modules"])
    if a.items:
        units = [(it["modules"][0], it["modules"], it["kld"][a.scheme], 1.0) for it in mp["items"]]
    else:
        units = [(m, [m], mp["modules"][m]["error"][a.scheme], mp["modules"][m]["energy"]) for m in mods]
    os.makedirs(a.work, exist_ok=True)
    rows = []
    for m, members, e, energy in units:
        g = re.match(r"^(.*\.layers\.)(\d+)\.(.*)$", m)
        prefix, layer, rest = g.group(1), int(g.group(2)), g.group(3)
        others = sorted({int(re.match(r"^.*\.layers\.(\d+)\.", x).group(1)) for x in mods} - {layer})
        same = [re.match(r"^.*\.layers\.\d+\.(.*)$", x).group(1) for x in mods if x.startswith(f"{prefix}{layer}.") and x not in members]
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
        rows.append((m, v["mean_kld"], e, e / energy))
        print(f"{m:40s} kld {v['mean_kld']:.6f}  proxy {e:.5f}  relative {rows[-1][3]:.6f}", flush=True)
    kld = [r[1] for r in rows]
    res = {"scheme": a.scheme, "chunks": a.chunks, "n": len(rows),
           "spearman_abs": spearman(kld, [r[2] for r in rows]),
           "spearman_rel": spearman(kld, [r[3] for r in rows]),
           "sum_single_kld": sum(kld)}
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
