#!/usr/bin/env python3
"""make_bin_checkpoint.py - turn a safetensors checkpoint into a PyTorch .bin one, without torch.

Writes what torch.save(state_dict, "pytorch_model-0000k-of-0000n.bin") writes, byte layout
included: a zip archive (stored entries, each entry's data 64-byte aligned by an 'FB' extra
field padded with 'Z') whose entries live under one folder named after the file, holding
data.pkl (protocol 2 pickle of an OrderedDict with _metadata, tensors as
torch._utils._rebuild_tensor_v2 + BINPERSID ('storage', torch.<X>Storage, key, 'cpu', numel)),
.format_version, .storage_alignment, byteorder, data/<key> and version.  The pickle is made by
the standard pickle module: stand-in modules named torch / torch._utils are put in
sys.modules so that GLOBAL opcodes name the real torch callables, and a persistent_id hook
emits the storages - which is how torch.save itself pickles.

Shards follow the source index (pytorch_model-00001-of-00003.bin + pytorch_model.bin.index.json);
every other file of the source folder except *.safetensors and the safetensors index is copied.

Options that exercise the reader beyond what torch.save usually produces:
  --views        2-D "down_proj" weights stored as the transpose of a contiguous storage
                 (non-contiguous view, stride (1, rows)); all 1-D tensors of a shard share one
                 storage at different offsets
  --big-endian   byteorder "big", storages byte-swapped per element
  --compress     data/ entries deflated (torch never does; the reader accepts it)
  --protocol N   pickle protocol (default 2, as torch.save)
  --single       one pytorch_model.bin, no index
  --view NAME SHAPE STRIDE
                 hostile input: tensor NAME becomes a view of its own storage with this shape
                 and stride (comma-separated ints), e.g. a stride-0 broadcast or a shape whose
                 element count overflows 64 bits

usage: make_bin_checkpoint.py SRC_DIR OUT_DIR [options]
"""
import argparse
import collections
import json
import os
import pickle
import shutil
import struct
import sys
import types
import zipfile

# ---- stand-ins for the torch names the pickle refers to --------------------------------
torch_mod = types.ModuleType("torch")
utils_mod = types.ModuleType("torch._utils")
torch_mod._utils = utils_mod


def _named(fn, module, name):
    fn.__module__, fn.__qualname__, fn.__name__ = module, name, name
    return fn


for _n in ("_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter"):
    setattr(utils_mod, _n, _named(lambda *a: None, "torch._utils", _n))

STORAGE_TYPES = {}  # safetensors dtype -> (storage class name, element size)
for _st, _cls, _es in (("F64", "DoubleStorage", 8), ("F32", "FloatStorage", 4), ("F16", "HalfStorage", 2),
                       ("BF16", "BFloat16Storage", 2), ("I64", "LongStorage", 8), ("I32", "IntStorage", 4),
                       ("I16", "ShortStorage", 2), ("I8", "CharStorage", 1), ("U8", "ByteStorage", 1),
                       ("BOOL", "BoolStorage", 1)):
    setattr(torch_mod, _cls, type(_cls, (), {"__module__": "torch"}))
    STORAGE_TYPES[_st] = (getattr(torch_mod, _cls), _es)
torch_mod.UntypedStorage = type("UntypedStorage", (), {"__module__": "torch"})


class _DType:
    """A torch dtype as pickle sees it: a module-level singleton saved by name."""

    def __init__(self, name):
        self.name, self.__module__ = name, "torch"

    def __reduce__(self):
        return self.name


NEW_DTYPES = {}  # safetensors dtype -> (torch dtype name, element size): saved with _rebuild_tensor_v3
for _st, _tn, _es in (("F8_E4M3", "float8_e4m3fn", 1), ("F8_E5M2", "float8_e5m2", 1), ("F8_E8M0", "float8_e8m0fnu", 1),
                      ("U16", "uint16", 2), ("U32", "uint32", 4), ("U64", "uint64", 8)):
    setattr(torch_mod, _tn, _DType(_tn))
    NEW_DTYPES[_st] = (getattr(torch_mod, _tn), _es)

sys.modules["torch"] = torch_mod
sys.modules["torch._utils"] = utils_mod


class Storage:
    def __init__(self, key, dtype, data, elem):
        self.key, self.dtype, self.data, self.elem = key, dtype, data, elem


class Tensor:
    """Pickles as torch.Tensor.__reduce_ex__ does: _rebuild_tensor_v2/_v3 with a storage."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def __reduce_ex__(self, proto):
        hooks = collections.OrderedDict()
        if self.storage.dtype in NEW_DTYPES:
            return (utils_mod._rebuild_tensor_v3, (self.storage, self.offset, self.shape, self.stride, False, hooks,
                                                   NEW_DTYPES[self.storage.dtype][0]))
        return (utils_mod._rebuild_tensor_v2, (self.storage, self.offset, self.shape, self.stride, False, hooks))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        if obj.dtype in NEW_DTYPES:  # new dtypes: untyped storage, numel in bytes
            return ("storage", torch_mod.UntypedStorage, obj.key, "cpu", len(obj.data))
        return ("storage", STORAGE_TYPES[obj.dtype][0], obj.key, "cpu", len(obj.data) // obj.elem)


# ---- safetensors input -------------------------------------------------------------------
def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], blob[base + b:base + e])
    return out


def elem_size(dtype):
    if dtype in STORAGE_TYPES:
        return STORAGE_TYPES[dtype][1]
    if dtype in NEW_DTYPES:
        return NEW_DTYPES[dtype][1]
    raise SystemExit("dtype %s has no torch storage here" % dtype)


def swap(data, es):
    if es == 1:
        return data
    out = bytearray(len(data))
    for k in range(es):
        out[k::es] = data[es - 1 - k::es]
    return bytes(out)


def transpose(data, rows, cols, es):
    """Row-major [rows, cols] -> row-major [cols, rows] bytes."""
    out = bytearray(len(data))
    for r in range(rows):
        for c in range(cols):
            o = (c * rows + r) * es
            i = (r * cols + c) * es
            out[o:o + es] = data[i:i + es]
    return bytes(out)


def contiguous_strides(shape):
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= d
    return list(reversed(st))


def build_state_dict(tensors, args):
    """name -> Tensor over Storages, in the source order."""
    sd = collections.OrderedDict()
    storages = []
    shared = None  # --views: one storage for all 1-D tensors of this shard (per dtype)
    if args.views:
        ones = [(n, t) for n, t in tensors.items() if len(t[1]) == 1]
        if ones and len({t[0] for _, t in ones}) == 1:
            blob = b"".join(t[2] for _, t in ones)
            shared = Storage(str(len(storages)), ones[0][1][0], blob, elem_size(ones[0][1][0]))
            storages.append(shared)
            off = 0
            for n, (dt, shape, data) in ones:
                sd[n] = Tensor(shared, off, shape, [1])
                off += len(data) // shared.elem
    for name, (dt, shape, data) in tensors.items():
        if name in sd:
            continue
        es = elem_size(dt)
        if args.views and len(shape) == 2 and "down_proj" in name:
            rows, cols = shape
            st = Storage(str(len(storages)), dt, transpose(data, rows, cols, es), es)
            sd[name] = Tensor(st, 0, shape, [1, rows])
        else:
            st = Storage(str(len(storages)), dt, data, es)
            sd[name] = Tensor(st, 0, shape, contiguous_strides(shape))
        if args.view and args.view[0] == name:
            sd[name] = Tensor(st, 0, [int(x) for x in args.view[1].split(",")], [int(x) for x in args.view[2].split(",")])
        storages.append(st)
    # key order: sd's order, as torch assigns keys on first reference
    order = collections.OrderedDict()
    for t in sd.values():
        order.setdefault(id(t.storage), t.storage)
    for k, st in enumerate(order.values()):
        st.key = str(k)
    # the state_dict()'s _metadata attribute -> BUILD on the OrderedDict
    out = collections.OrderedDict((n, sd[n]) for n in tensors)
    out._metadata = collections.OrderedDict([("", {"version": 1})])
    return out, list(order.values())


def write_record(zf, name, data, compress=False):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    off = zf.fp.tell()
    need = off + 30 + len(name.encode()) + 4
    pad = (-need) % 64
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)


def write_bin(path, tensors, args):
    sd, storages = build_state_dict(tensors, args)
    prefix = os.path.splitext(os.path.basename(path))[0]
    import io
    buf = io.BytesIO()
    TorchPickler(buf, protocol=args.protocol).dump(sd)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        write_record(zf, prefix + "/data.pkl", buf.getvalue())
        write_record(zf, prefix + "/.format_version", b"1")
        write_record(zf, prefix + "/.storage_alignment", b"64")
        write_record(zf, prefix + "/byteorder", b"big" if args.big_endian else b"little")
        for st in sorted(storages, key=lambda s: int(s.key)):
            data = swap(st.data, st.elem) if args.big_endian else st.data
            write_record(zf, prefix + "/data/" + st.key, data, args.compress)
        write_record(zf, prefix + "/version", b"3\n")
        write_record(zf, prefix + "/.data/serialization_id", b"1234567890123456789012345678901234567890")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--views", action="store_true")
    ap.add_argument("--big-endian", action="store_true")
    ap.add_argument("--compress", action="store_true")
    ap.add_argument("--protocol", type=int, default=2)
    ap.add_argument("--single", action="store_true")
    ap.add_argument("--view", nargs=3, metavar=("NAME", "SHAPE", "STRIDE"))
    args = ap.parse_args()

    index = os.path.join(args.src, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        shards = sorted(set(wm.values()))
    else:
        shards = [n for n in sorted(os.listdir(args.src)) if n.endswith(".safetensors")]
    os.makedirs(args.out, exist_ok=True)
    tables = [read_safetensors(os.path.join(args.src, s)) for s in shards]
    if args.single:
        merged = collections.OrderedDict()
        for t in tables:
            merged.update(t)
        tables = [merged]
    n = len(tables)
    weight_map, total = {}, 0
    for k, t in enumerate(tables):
        name = "pytorch_model.bin" if n == 1 else "pytorch_model-%05d-of-%05d.bin" % (k + 1, n)
        write_bin(os.path.join(args.out, name), t, args)
        for tn, (_, _, data) in t.items():
            weight_map[tn] = name
            total += len(data)
    if n > 1:
        with open(os.path.join(args.out, "pytorch_model.bin.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f,
                      indent=2, sort_keys=True)
            f.write("\n")
    for name in os.listdir(args.src):
        p = os.path.join(args.src, name)
        if os.path.isfile(p) and not name.endswith(".safetensors") and name != "model.safetensors.index.json":
            shutil.copyfile(p, os.path.join(args.out, name))


if __name__ == "__main__":
    main()
