#!/usr/bin/env python3
"""check_gguf_types.py - the ggml type of every tensor of two GGUF files, compared.

usage: check_gguf_types.py A.gguf B.gguf   (exit 0 when every tensor name and type agree)

Read with gguf-py (llama.cpp's own reader).  tests/bench/gguf_vs_llamacpp.sh runs it on
llama-quantize's file and qforge's for the same mix: llama-quantize is the reference for
qforge's per-tensor rule (formats/qf_gguf_mix.h)."""
import sys

import gguf


def types(path):
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = types(sys.argv[1]), types(sys.argv[2])
    diff = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    for n in diff:
        print("%-32s %-6s %-6s" % (n, a.get(n, "-"), b.get(n, "-")))
    print("%d tensors, %d differ in type" % (len(a.keys() | b.keys()), len(diff)))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
