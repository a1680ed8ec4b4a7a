#!/usr/bin/env python3
"""check_numfmt_tables.py - qforge's scalar number formats against ml_dtypes / numpy.

usage: check_numfmt_tables.py DIR     (DIR written by `test_numfmt --dump-tables DIR`)

Decoders: every code of bf16, fp16 (all 65536), E4M3FN, E5M2, E8M0 (all 256) and E2M1 (all 16)
must decode to the same float32 bits as ml_dtypes (numpy for fp16); NaN codes to NaN.
Encoders: 65536 float32 inputs (log-uniform magnitudes, uniform [-8, 8), exact bf16
midpoints) must encode to the same code as ml_dtypes' round-to-nearest-even casts wherever
those casts are finite: qforge saturates FP8/FP4 where the casts give NaN/inf (E4M3 above
464, E5M2 at and above 61440), and that range is left to tests/test_numfmt.c.
The last line is "N passed, N failed"; exit status 1 on any failure.
"""
import os
import sys

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qf_interop import Report  # noqa: E402


def same_f32(a, b):
    """Bitwise equal float32 arrays, except that any NaN equals any NaN."""
    nan = np.isnan(a) & np.isnan(b)
    return (a.view(np.uint32) == b.view(np.uint32)) | nan


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR")
    d = sys.argv[1]
    rep = Report("numfmt")

    def load(name, dtype):
        return np.fromfile(os.path.join(d, name), dtype=dtype)

    decoders = [
        ("bf16", "decode_bf16.f32", np.arange(65536, dtype=np.uint32).astype(np.uint16).view(ml_dtypes.bfloat16)),
        ("f16", "decode_f16.f32", np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)),
        ("e4m3", "decode_e4m3.f32", np.arange(256, dtype=np.uint16).astype(np.uint8).view(ml_dtypes.float8_e4m3fn)),
        ("e5m2", "decode_e5m2.f32", np.arange(256, dtype=np.uint16).astype(np.uint8).view(ml_dtypes.float8_e5m2)),
        ("e8m0", "decode_e8m0.f32", np.arange(256, dtype=np.uint16).astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)),
        ("e2m1", "decode_e2m1.f32", np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn)),
    ]
    for name, fname, codes in decoders:
        got = load(fname, np.float32)
        want = codes.astype(np.float32)
        ok = got.shape == want.shape and bool(np.all(same_f32(got, want)))
        detail = ""
        if not ok and got.shape == want.shape:
            bad = np.flatnonzero(~same_f32(got, want))
            detail = f"{bad.size} codes differ, first 0x{bad[0]:x}: qforge {got[bad[0]]!r} ml_dtypes {want[bad[0]]!r}"
        rep.check(ok, f"{name}: all {want.size} codes decode like ml_dtypes", detail)

    x = load("encode_inputs.f32", np.float32)
    rep.check(x.size == 65536 and not np.any(np.isnan(x)), "encode inputs present")
    ax = np.abs(x.astype(np.float64))
    with np.errstate(over="ignore"):  # fp16 overflow to inf is the expected IEEE result
        f16 = x.astype(np.float16).view(np.uint16)
    encoders = [
        ("bf16", "encode_bf16.u16", np.uint16, x.astype(ml_dtypes.bfloat16).view(np.uint16), np.ones(x.shape, bool)),
        ("f16", "encode_f16.u16", np.uint16, f16, np.ones(x.shape, bool)),
        ("e4m3", "encode_e4m3.u8", np.uint8, x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8), ax <= 464),
        ("e5m2", "encode_e5m2.u8", np.uint8, x.astype(ml_dtypes.float8_e5m2).view(np.uint8), ax < 61440),
        ("e2m1", "encode_e2m1.u8", np.uint8, x.astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & 0xF,
         np.ones(x.shape, bool)),
    ]
    for name, fname, dt, want, mask in encoders:
        got = load(fname, dt)
        ok = got.shape == want.shape and bool(np.all(got[mask] == want[mask]))
        detail = ""
        if not ok and got.shape == want.shape:
            bad = np.flatnonzero(mask & (got != want))
            i = bad[0]
            detail = f"{bad.size} inputs differ, first {x[i]!r}: qforge 0x{int(got[i]):x} ml_dtypes 0x{int(want[i]):x}"
        rep.check(ok, f"{name}: {int(mask.sum())} encodings equal ml_dtypes' RNE cast", detail)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
