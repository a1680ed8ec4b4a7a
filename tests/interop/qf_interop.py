"""qf_interop.py - shared helpers for qforge's Python interop checks (tests/interop/).

Only the standard library, numpy, safetensors and ml_dtypes (xxhash optionally).  Nothing
here imports or calls qforge: these checks are an independent reader of what qforge writes.
"""
import glob
import json
import os
import struct
import sys

import ml_dtypes
import numpy as np

# safetensors' numpy backend resolves F8 dtype names as attributes of the numpy module
# (np.float8_e4m3fn), which only exist when a numpy build ships them; ml_dtypes provides the
# same types, so expose them under the names safetensors looks up.
for _name in ("float8_e4m3fn", "float8_e5m2", "bfloat16"):
    if not hasattr(np, _name):
        setattr(np, _name, getattr(ml_dtypes, _name))

from safetensors.numpy import load_file  # noqa: E402  (after the dtype shim)

from qf_report import Report  # noqa: E402,F401  (re-exported for the checkers)


def read_header(path):
    """The JSON header of a safetensors file, read by hand: 8-byte little-endian length, then
    JSON.  Returns {name: {"dtype", "shape", "data_offsets"}} without __metadata__."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return hdr


def load_dir(folder):
    """All tensors of every *.safetensors file in a folder (sharded or not):
    (tensors {name: ndarray}, headers {name: header entry}, files {name: file basename})."""
    tensors, headers, files = {}, {}, {}
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        base = os.path.basename(path)
        hdr = read_header(path)
        data = load_file(path)
        for name, entry in hdr.items():
            if name in tensors:
                raise ValueError(f"{name} appears in two shards")
            tensors[name] = data[name]
            headers[name] = entry
            files[name] = base
    return tensors, headers, files


def f32(a):
    """A float32 copy of a bf16 / f16 / f8 / int array (ml_dtypes casts exactly)."""
    return np.asarray(a).astype(np.float32)


def half_ulp(y, mbits, emin):
    """Half the spacing of a binary float grid (mbits mantissa bits, min normal exponent emin)
    at |y|: 2^(max(floor(log2|y|), emin) - mbits) / 2 (same definition as tests/qf_test_util.h)."""
    y = np.abs(np.asarray(y, dtype=np.float64))
    _, k = np.frexp(y)  # y = f * 2^k, f in [0.5, 1): floor(log2 y) = k - 1
    e = np.where(y > 0, k - 1, emin)
    e = np.maximum(e, emin)
    return np.ldexp(1.0, e - mbits) / 2


if __name__ == "__main__":
    sys.exit("qf_interop.py is a helper module")
