#!/usr/bin/env python3
"""check_gguf_types.py - the ggml type of every tensor of two GGUF files, compared.

usage: check_gguf_types.py A.gguf B.gguf [--bytes]   (exit 0 when every tensor name and type agree)

--bytes also counts the tensors whose data are byte-identical (reported, not required).

Read with gguf-py (llama.cpp's own reader).  tests/bench/gguf_vs_llamacpp.sh runs it on
llama-quantize's file and qforge's for the same mix: llama-quantize is the reference for
qforge's per-tensor rule (formats/qf_gguf_mix.h)."""
import sys

import numpy as np

import gguf


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def main():
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] != "--bytes"):
        sys.exit(__doc__)
    ta, tb = tensors(sys.argv[1]), tensors(sys.argv[2])
    a = {n: t.tensor_type.name for n, t in ta.items()}
    b = {n: t.tensor_type.name for n, t in tb.items()}
    diff = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    for n in diff:
        print("%-32s %-6s %-6s" % (n, a.get(n, "-"), b.get(n, "-")))
    extra = ""
    if len(sys.argv) == 4:
        same = [n for n in ta if n in tb and a[n] == b[n] and np.array_equal(
            np.asarray(ta[n].data).view(np.uint8).reshape(-1), np.asarray(tb[n].data).view(np.uint8).reshape(-1))]
        other = sorted(set(ta) - set(same))
        extra = "; %d byte-identical%s" % (len(same), (" (not: " + ", ".join(other[:4]) + (" ..." if len(other) > 4 else "") + ")") if other else "")
    print("%d tensors, %d differ in type%s" % (len(a.keys() | b.keys()), len(diff), extra))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
