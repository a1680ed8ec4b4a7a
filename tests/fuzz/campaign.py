#!/usr/bin/env python3
"""campaign.py - deterministic command-line mutation campaign over qforge's input parsers.

Issue 16's release check: every mutated model folder must end in a documented exit code
(docs/cli.md: 0 2 3 4 5 8 11 12) with a one-line error naming a file, and never in a signal,
a sanitizer report, a hang, a peak memory above the bound, or an exit 0 whose artifact
`qforge verify` rejects.

Targets (one mutation per input, chosen by --seed and the input's number, so a run is
reproducible whatever --jobs is):
  safetensors  header of model-00003-of-00003.safetensors: length field, JSON bytes,
               dtype / shape / data_offsets of one tensor, __metadata__
  config       config.json: numbers, types, keys
  index        model.safetensors.index.json: weight_map entries, metadata, bytes
  tokenizer    tokenizer.json: model / vocab / merges / added_tokens, normalizer and
               pre-tokenizer fields, bytes
  bin          a sharded .bin (tests/tools/make_bin_checkpoint.py): data.pkl bytes inside the
               zip (CRC fixed up so the pickle parser is reached), zip header / directory fields
  gguf         a qforge-written model.gguf (q8_0): header counts, KV values, tensor infos

Each input is a fresh temporary folder whose unmodified files are hard links to one pristine
copy (qforge maps inputs read-only; the pristine copies are checked unchanged at the end).
Commands: `convert -o OUT --scheme w4a16 -q` (GGUF and .bin: `--to safetensors`); for a
fraction of inputs also `inspect`, `validate --chunks 1 --ctx 64`, `--layout gguf` (tokenizer)
or `verify` (a mutated GGUF artifact folder).

Limits: --timeout seconds per command (default 20); memory: RLIMIT_AS --mem-mb (default 4096)
for a plain build; for an ASan build (detected from the binary) RLIMIT_AS cannot be used, so
ASAN_OPTIONS hard_rss_limit_mb / max_allocation_size_mb with allocator_may_return_null=1
(a failed allocation is then qforge's exit 8).  Peak RSS of each command is measured (wait4)
and bounded by the size of what it reads: above --rss-base-mb + --rss-per-input x the bytes of
its input files (defaults 128 MB + 4x: docs/security.md's bound, which validate's two float32
copies of a bf16 model come closest to; convert streams and stays near 1x) is a finding.  An
ASan build gets 256 MB more, its allocator's quarantine of freed blocks; the bound itself is
measured on the plain build.  Every bound is on top of the binary's own baseline, the peak RSS
of `qforge --help` (a CUDA build's loader relocates ~220 MB of cuBLAS / cuSOLVER pages).

Findings are saved under OUT/findings/NNNNN-TARGET-KIND/ (the mutated folder, stderr and a
repro.sh).  Exit status 1 when there is any finding.

usage: tests/fuzz/campaign.py [--qforge build/qforge] [--count 5000] [--seed 1] [--jobs 2]
                              [--out DIR] [--targets safetensors,config,...]
"""
import argparse
import collections
import concurrent.futures
import copy
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "data", "tiny-llama")
TEXT = os.path.join(ROOT, "tests", "data", "eval.txt")
OK_CODES = {0, 2, 3, 4, 5, 8, 11, 12}
VERIFY_OK = {0, 6}  # verify of a mutated artifact folder: 6 is the right answer
TARGETS = ["safetensors", "config", "index", "tokenizer", "bin", "gguf"]
SHARD = "model-00003-of-00003.safetensors"
BIN_SHARD = "pytorch_model-00003-of-00003.bin"

INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 4095, 4096,
                    65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**53, 2**62,
                    2**63 - 1, 2**63, 2**64 - 1, -2**31, -2**63]
INTERESTING_JSON = INTERESTING_INTS + [0.0, -0.0, 0.5, 1e-30, 1e30, 1e308, -1e308, "", "x", "NaN",
                                       "inf", None, True, False, [], [1], {}, {"a": 1}, "A" * 4096]
DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3",
          "F8_E5M2", "F4", "U64", "Q4", "", "bf16", "F32\u0000", 7, None]


# ---------------------------------------------------------------------------- byte mutations
def mutate_bytes(rng, b, lo=0, hi=None):
    """One random byte-level mutation of b (within [lo, hi))."""
    b = bytearray(b)
    hi = len(b) if hi is None else hi
    if hi <= lo:
        return bytes(b) + b"\x00"
    k = rng.randrange(6)
    i = rng.randrange(lo, hi)
    if k == 0:
        b[i] ^= 1 << rng.randrange(8)
    elif k == 1:
        b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, ord('"'), ord('{'), ord(']'), ord('\\'), ord('9')])
    elif k == 2:
        del b[i:i + rng.randrange(1, 16)]
    elif k == 3:
        b[i:i] = bytes(rng.choice([b"\x00", b"9999999999999999999", b'"', b"[", b"{", b"-", b"\\u0000",
                                   b"\xff\xfe", b"1e999", b",", b"]]]]"]))
    elif k == 4:
        j = rng.randrange(lo, hi)
        n = rng.randrange(1, 64)
        b[i:i] = b[j:j + n]
    else:
        n = rng.randrange(1, 9)
        b[i:i + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(b)


def mutate_json_value(rng, v):
    """Replace a JSON value by an interesting one, or perturb a number."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or rng.random() < 0.6:
        return copy.deepcopy(rng.choice(INTERESTING_JSON))
    return rng.choice([v + 1, v - 1, v * 2, v * 1000, -v, v // 2 if isinstance(v, int) else v / 2, 0])


def json_paths(obj, path=(), out=None, limit=4000):
    """All (path) to leaves and containers, capped."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    out.append(path)
    if isinstance(obj, dict):
        for k, v in obj.items():
            json_paths(v, path + (k,), out, limit)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:64]):
            json_paths(v, path + (i,), out, limit)
    return out


def get_at(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def mutate_json_struct(rng, obj, paths=None):
    """One structural mutation of a parsed JSON document: set, delete, duplicate or retype a node."""
    paths = paths or json_paths(obj)
    path = rng.choice(paths[1:] or paths)
    if not path:
        return rng.choice([[], {}, None, 1, "x"]), "root"
    parent = get_at(obj, path[:-1])
    key = path[-1]
    k = rng.randrange(5)
    if k <= 1:
        parent[key] = mutate_json_value(rng, parent[key])
        what = "set"
    elif k == 2:
        del parent[key]
        what = "delete"
    elif k == 3:
        v = parent[key]
        parent[key] = [v, v] if not isinstance(v, list) else v * rng.choice([0, 2, 50])
        what = "wrap/repeat"
    else:
        if isinstance(parent, dict):
            parent[rng.choice(["", "\u0000", key + "x", "__proto__", "A" * 300])] = mutate_json_value(rng, 0)
        else:
            parent.insert(key, mutate_json_value(rng, 0))
        what = "insert"
    return obj, "%s %s" % (what, "/".join(str(p) for p in path))


def dump(obj, rng):
    return json.dumps(obj, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------- targets
class Pristine:
    """Pristine inputs, built once: the tiny-llama folder, a .bin variant and a GGUF artifact."""

    def __init__(self, work, qforge):
        self.work = work
        self.model = os.path.join(work, "tiny-llama")
        shutil.copytree(MODEL, self.model)
        self.bin = os.path.join(work, "tiny-llama-bin")
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "tools", "make_bin_checkpoint.py"),
                        self.model, self.bin], check=True, stdout=subprocess.DEVNULL)
        self.gguf = os.path.join(work, "tiny-llama-gguf")
        subprocess.run([qforge, "convert", self.model, "-o", self.gguf, "--layout", "gguf",
                        "--scheme", "q8_0", "-q"], check=True)
        self.files = {}
        for d in (self.model, self.bin, self.gguf):
            for f in os.listdir(d):
                p = os.path.join(d, f)
                self.files[p] = file_digest(p)
        with open(os.path.join(self.model, SHARD), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            self.st_header = f.read(n)
            self.st_hlen = n
        self.st_size = os.path.getsize(os.path.join(self.model, SHARD))
        self.config = read(os.path.join(self.model, "config.json"))
        self.index = read(os.path.join(self.model, "model.safetensors.index.json"))
        self.tokenizer = read(os.path.join(self.model, "tokenizer.json"))
        self.tokenizer_obj = json.loads(self.tokenizer)
        self.bin_bytes = read(os.path.join(self.bin, BIN_SHARD))
        self.gguf_path = os.path.join(self.gguf, "model.gguf")
        self.gguf_layout = gguf_layout(self.gguf_path)

    def check_unchanged(self):
        return [p for p, d in self.files.items() if file_digest(p) != d]


def read(p):
    with open(p, "rb") as f:
        return f.read()


def file_digest(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def link_folder(src, dst, skip=()):
    """dst gets a hard link to every file of src except those named in skip."""
    os.mkdir(dst)
    for f in os.listdir(src):
        if f not in skip:
            os.link(os.path.join(src, f), os.path.join(dst, f))


def mut_safetensors(rng, pr, d):
    hdr, hlen = pr.st_header, pr.st_hlen
    k = rng.randrange(4)
    length = None
    if k == 0:  # the length field alone
        length = rng.choice([0, 1, 2, 7, hlen - 1, hlen + 1, hlen + 8, pr.st_size - 8, pr.st_size,
                             pr.st_size + 1, 2**31, 2**32 + hlen, 2**63, 2**64 - 1, 100 * 1024 * 1024])
        what = "length field = %d" % length
    elif k == 1:  # JSON bytes
        hdr = mutate_bytes(rng, hdr)
        what = "header bytes"
    else:  # structure: one tensor's dtype / shape / offsets, or __metadata__
        obj = json.loads(hdr)
        names = [n for n in obj if n != "__metadata__"]
        name = rng.choice(names)
        t = obj[name]
        f = rng.choice(["dtype", "shape", "data_offsets", "data_offsets", "meta", "any"])
        if f == "dtype":
            t["dtype"] = rng.choice(DTYPES)
        elif f == "shape":
            s = list(t["shape"])
            c = rng.randrange(5)
            if c == 0 and s:
                s[rng.randrange(len(s))] = rng.choice(INTERESTING_INTS)
            elif c == 1:
                s.append(rng.choice([0, 1, 2, 2**32]))
            elif c == 2 and s:
                s.pop()
            elif c == 3:
                s = [rng.choice(INTERESTING_INTS) for _ in range(rng.randrange(0, 9))]
            else:
                s = rng.choice([[], [0], "x", None, [1.5], [[1]], [-1, -1]])
            t["shape"] = s
        elif f == "data_offsets":
            a, b = t["data_offsets"]
            c = rng.randrange(5)
            if c == 0:
                t["data_offsets"] = [b, a]
            elif c == 1:
                t["data_offsets"] = [a, rng.choice(INTERESTING_INTS)]
            elif c == 2:
                t["data_offsets"] = [rng.choice(INTERESTING_INTS), b]
            elif c == 3:
                other = obj[rng.choice(names)]["data_offsets"]
                t["data_offsets"] = list(other)
            else:
                t["data_offsets"] = rng.choice([[a], [a, b, b], [], None, [str(a), b], [a + 1, b + 1]])
        elif f == "meta":
            obj["__metadata__"] = rng.choice([None, [], 1, {"format": 1}, {"format": "tf"}, {"x": {"y": 1}},
                                              {"a" * 1000: "b" * 100000}])
        else:
            obj, w = mutate_json_struct(rng, obj)
            f += " " + w
        hdr = json.dumps(obj, separators=(",", ":")).encode()
        pad = rng.choice([0, 0, 1, 3, 7])  # spec-legal odd header lengths (space padding)
        hdr += b" " * pad
        what = "%s.%s (pad %d)" % (name, f, pad)
    link_folder(pr.model, d, skip=(SHARD,))
    with open(os.path.join(pr.model, SHARD), "rb") as src, open(os.path.join(d, SHARD), "wb") as out:
        out.write(struct.pack("<Q", len(hdr) if length is None else length))
        out.write(hdr)
        src.seek(8 + hlen)
        if k == 1 or k == 0:
            shutil.copyfileobj(src, out)
        else:  # data keeps its offsets relative to the (possibly longer) header
            shutil.copyfileobj(src, out)
    return what


def mut_json_file(rng, pr, d, name, raw, obj=None):
    link_folder(pr.model, d, skip=(name,))
    if rng.random() < 0.25:
        data, what = mutate_bytes(rng, raw), "bytes"
    else:
        obj = json.loads(raw) if obj is None else copy.deepcopy(obj)
        obj, what = mutate_json_struct(rng, obj)
        data = dump(obj, rng)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return what


def mut_config(rng, pr, d):
    cfg = json.loads(pr.config)
    if rng.random() < 0.7:  # the numbers and keys that matter most
        key = rng.choice([k for k in cfg] + ["num_key_value_heads", "head_dim", "rope_scaling",
                                              "sliding_window", "tie_word_embeddings", "num_local_experts"])
        if rng.random() < 0.15:
            cfg.pop(key, None)
            what = "delete " + key
        else:
            cfg[key] = mutate_json_value(rng, cfg.get(key, 0))
            what = "%s = %s" % (key, json.dumps(cfg[key])[:40])
        link_folder(pr.model, d, skip=("config.json",))
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(dump(cfg, rng))
        return what
    return mut_json_file(rng, pr, d, "config.json", pr.config, cfg)


def mut_index(rng, pr, d):
    idx = json.loads(pr.index)
    wm = idx["weight_map"]
    k = rng.randrange(6)
    if k == 0:
        n = rng.choice(list(wm))
        wm[n] = rng.choice(["model-00004-of-00003.safetensors", "../tiny-llama/" + SHARD, "/etc/passwd", "",
                            SHARD, "model-00001-of-00003.safetensors", "config.json", ".", "a" * 5000])
        what = "weight_map[%s] = %s" % (n, wm[n][:40])
    elif k == 1:
        for n in rng.sample(list(wm), rng.randrange(1, len(wm))):
            del wm[n]
        what = "drop entries (%d left)" % len(wm)
    elif k == 2:
        wm[rng.choice(["model.layers.99.mlp.up_proj.weight", "", "x" * 1000])] = SHARD
        what = "extra entry"
    elif k == 3:
        idx["metadata"] = rng.choice([None, [], {"total_size": -1}, {"total_size": 2**64}, {"total_size": "x"}])
        what = "metadata"
    elif k == 4:
        idx["weight_map"] = rng.choice([[], None, {}, "x", [list(wm.items())]])
        what = "weight_map type"
    else:
        return mut_json_file(rng, pr, d, "model.safetensors.index.json", pr.index)
    link_folder(pr.model, d, skip=("model.safetensors.index.json",))
    with open(os.path.join(d, "model.safetensors.index.json"), "wb") as f:
        f.write(dump(idx, rng))
    return what


def mut_tokenizer(rng, pr, d):
    tok = copy.deepcopy(pr.tokenizer_obj)
    k = rng.randrange(7)
    if k == 0:
        tok["normalizer"] = rng.choice([
            None, {"type": "Lowercase"}, {"type": "NFC"}, {"type": "NFKD"}, {"type": "Bogus"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581" * rng.choice([1, 16, 1000])},
            {"type": "Replace", "pattern": {"Regex": rng.choice(["(a*)*$", "\\", "[", "(?<=x)", ".", "", "(((((((((("])},
             "content": "xx"},
            {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"String": "a"}, "content": "aa"}] * rng.choice([2, 20, 64])},
            {"type": "Prepend", "prepend": "\u2581" * rng.choice([1, 100000])},
            {"type": "Sequence", "normalizers": rng.choice([None, 1, [None], [[]]])},
            {"type": "Strip", "left": "x", "right": None},
        ])
        what = "normalizer %s" % json.dumps(tok["normalizer"])[:60]
    elif k == 1:
        tok["pre_tokenizer"] = rng.choice([
            None, {"type": "ByteLevel", "add_prefix_space": "yes", "use_regex": 3},
            {"type": "Split", "pattern": {"Regex": rng.choice(["(a+)+", "[", "\\p{Bogus}", "", "(?R)", "\\x{110000}"])},
             "behavior": rng.choice(["Isolated", "Removed", "Nope", None]), "invert": rng.choice([False, 1])},
            {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}] * rng.choice([0, 2, 100])},
            {"type": "Metaspace", "replacement": rng.choice(["", "ab", None, "\u2581"])},
            {"type": "Digits", "individual_digits": None}, {"type": "Bogus"},
        ])
        what = "pre_tokenizer %s" % json.dumps(tok["pre_tokenizer"])[:60]
    elif k == 2:
        m = tok["model"]
        f = rng.choice(["type", "vocab", "merges", "unk_token", "byte_fallback", "ignore_merges"])
        if f == "vocab" and isinstance(m.get("vocab"), dict) and rng.random() < 0.7:
            v = m["vocab"]
            key = rng.choice(list(v))
            v[key] = rng.choice(INTERESTING_INTS)
            what = "vocab[%r] = %d" % (key, v[key])
        elif f == "merges" and isinstance(m.get("merges"), list) and rng.random() < 0.7:
            i = rng.randrange(len(m["merges"]))
            m["merges"][i] = rng.choice(["", "a", "a b c", ["a"], ["zz", "qq"], 5, None, " "])
            what = "merges[%d]" % i
        else:
            m[f] = mutate_json_value(rng, m.get(f, 0))
            what = "model.%s" % f
    elif k == 3:
        at = tok.get("added_tokens") or []
        if at:
            t = rng.choice(at)
            key = rng.choice(["id", "content", "special", "normalized"])
            t[key] = mutate_json_value(rng, t.get(key, 0))
            what = "added_tokens.%s" % key
        else:
            tok["added_tokens"] = [{"id": 2**40, "content": ""}]
            what = "added_tokens"
    elif k == 4:
        tok["decoder"] = mutate_json_value(rng, 0)
        tok["post_processor"] = rng.choice([None, {"type": "TemplateProcessing", "single": 5}, {"type": "Bogus"}])
        what = "decoder/post_processor"
    else:
        link_folder(pr.model, d, skip=("tokenizer.json",))
        with open(os.path.join(d, "tokenizer.json"), "wb") as f:
            if k == 5:
                # a byte mutation near the start, where the small fields live
                f.write(mutate_bytes(rng, pr.tokenizer, 0, min(len(pr.tokenizer), 4096) if rng.random() < 0.7 else None))
            else:
                obj, w = mutate_json_struct(rng, copy.deepcopy(pr.tokenizer_obj),
                                            [p for p in json_paths(pr.tokenizer_obj, limit=3000)])
                f.write(dump(obj, rng))
                return "struct " + w[:60]
        return "bytes"
    link_folder(pr.model, d, skip=("tokenizer.json",))
    with open(os.path.join(d, "tokenizer.json"), "wb") as f:
        f.write(json.dumps(tok).encode("utf-8", "surrogatepass"))
    return what


def zip_entries(data):
    """(name, local header offset, data offset, size, central-directory entry offset) of a stored zip."""
    out = []
    eocd = data.rfind(b"PK\x05\x06")
    n, cd_size, cd_off = struct.unpack_from("<HII", data, eocd + 10)
    p = cd_off
    for _ in range(n):
        (_, _, _, _, _, _, _, _, csize, _, nlen, elen, clen, _, _, _, loff) = struct.unpack_from("<IHHHHHHIIIHHHHHII", data, p)
        name = data[p + 46:p + 46 + nlen].decode()
        lnlen, lelen = struct.unpack_from("<HH", data, loff + 26)
        out.append((name, loff, loff + 30 + lnlen + lelen, csize, p))
        p += 46 + nlen + elen + clen
    return out, eocd, cd_off


def mut_bin(rng, pr, d):
    data = bytearray(pr.bin_bytes)
    ents, eocd, cd_off = zip_entries(bytes(data))
    k = rng.randrange(10)
    if k < 7:  # data.pkl bytes, CRC fixed so that the unpickler sees them
        name, loff, doff, size, cdp = next(e for e in ents if e[0].endswith("/data.pkl"))
        pkl = bytes(data[doff:doff + size])
        new = mutate_bytes(rng, pkl)
        if len(new) != len(pkl):  # keep the entry's size: pad or cut (a STOP in the middle is fine)
            new = (new + b"." * len(pkl))[:len(pkl)]
        data[doff:doff + size] = new
        crc = zlib.crc32(new) & 0xFFFFFFFF
        struct.pack_into("<I", data, loff + 14, crc)
        struct.pack_into("<I", data, cdp + 16, crc)
        what = "data.pkl bytes"
    else:  # zip fields: local header, central directory or end record
        region = rng.choice(["local", "cd", "eocd"])
        if region == "local":
            e = rng.choice(ents)
            off = e[1] + rng.randrange(4, 30)
        elif region == "cd":
            e = rng.choice(ents)
            off = e[4] + rng.randrange(4, 46)
        else:
            off = eocd + rng.randrange(4, 22)
        v = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        data[off] = v
        what = "zip %s byte %d = %d" % (region, off, v)
    link_folder(pr.bin, d, skip=(BIN_SHARD,))
    with open(os.path.join(d, BIN_SHARD), "wb") as f:
        f.write(data)
    return what


GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
GGUF_INT_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_layout(path):
    """Offsets in a GGUF header: counts, KV values (scalar and array headers), tensor infos."""
    with open(path, "rb") as f:
        b = f.read(4 << 20)
    p = 8
    n_t, n_kv = struct.unpack_from("<QQ", b, p)
    lay = {"tensor_count": 8, "kv_count": 16, "kvs": [], "tensors": []}
    p = 24

    def string(p):
        n = struct.unpack_from("<Q", b, p)[0]
        return b[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n

    for _ in range(n_kv):
        kstart = p
        key, p = string(p)
        t = struct.unpack_from("<I", b, p)[0]
        p += 4
        if t == 8:
            vstart = p
            _, p = string(p)
            lay["kvs"].append((key, t, kstart, vstart, None))
        elif t == 9:
            et, n = struct.unpack_from("<IQ", b, p)
            astart = p
            p += 12
            if et == 8:
                for _ in range(n):
                    _, p = string(p)
            else:
                p += GGUF_SIZES[et] * n
            lay["kvs"].append((key, t, kstart, astart, et))
        else:
            lay["kvs"].append((key, t, kstart, p, None))
            p += GGUF_SIZES[t]
    for _ in range(n_t):
        tstart = p
        name, p = string(p)
        nd = struct.unpack_from("<I", b, p)[0]
        dims_at = p + 4
        p += 4 + 8 * nd
        lay["tensors"].append((name, tstart, dims_at, nd, p, p + 4))  # type at p, offset at p+4
        p += 12
    lay["end"] = p
    return lay


def mut_gguf(rng, pr, d):
    lay = pr.gguf_layout
    with open(pr.gguf_path, "rb") as f:
        data = bytearray(f.read())
    k = rng.randrange(8)
    if k == 0:
        field = rng.choice(["tensor_count", "kv_count"])
        v = rng.choice([0, 1, 2**31, 2**32, 2**63, 2**64 - 1, 100000,
                        len(lay["tensors"]) - 1, len(lay["tensors"]) + 1, len(lay["kvs"]) - 1, len(lay["kvs"]) + 1])
        struct.pack_into("<Q", data, lay[field], v)
        what = "%s = %d" % (field, v)
    elif k <= 3:
        key, t, kstart, vstart, et = rng.choice(lay["kvs"])
        if t == 9:
            c = rng.randrange(3)
            if c == 0:
                struct.pack_into("<I", data, vstart, rng.choice([0, 4, 8, 9, 13, 2**31]))
                what = "%s array type" % key
            else:
                n = struct.unpack_from("<Q", data, vstart + 4)[0]
                struct.pack_into("<Q", data, vstart + 4, rng.choice([0, 1, n - 1, n + 1, 2**62, 2**64 - 1]))
                what = "%s array length" % key
        elif t == 8:
            n = struct.unpack_from("<Q", data, vstart)[0]
            struct.pack_into("<Q", data, vstart, rng.choice([0, n + 1, 2**63, 2**64 - 1]))
            what = "%s string length" % key
        else:
            fmt = GGUF_INT_FMT[t]
            if rng.random() < 0.2:
                struct.pack_into("<I", data, vstart - 4, rng.choice([0, 6, 8, 9, 13, 255]))
                what = "%s value type" % key
            elif fmt in ("<f", "<d"):
                struct.pack_into(fmt, data, vstart, rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e30, 1e-30]))
                what = "%s float" % key
            else:
                size = struct.calcsize(fmt)
                vals = [v for v in INTERESTING_INTS if 0 <= v < 2 ** (8 * size)]
                v = rng.choice(vals)
                data[vstart:vstart + size] = v.to_bytes(size, "little")
                what = "%s = %d" % (key, v)
    elif k <= 5:
        name, tstart, dims_at, nd, type_at, off_at = rng.choice(lay["tensors"])
        c = rng.randrange(4)
        if c == 0:
            struct.pack_into("<I", data, dims_at - 4, rng.choice([0, 1, 3, 4, 5, 2**31]))
            what = "%s n_dims" % name
        elif c == 1:
            i = rng.randrange(nd)
            struct.pack_into("<Q", data, dims_at + 8 * i, rng.choice([0, 1, 2, 31, 33, 2**31, 2**32, 2**63, 2**64 - 1]))
            what = "%s dim %d" % (name, i)
        elif c == 2:
            struct.pack_into("<I", data, type_at, rng.choice([0, 1, 2, 3, 6, 8, 10, 12, 14, 30, 31, 39, 2**31]))
            what = "%s type" % name
        else:
            o = struct.unpack_from("<Q", data, off_at)[0]
            struct.pack_into("<Q", data, off_at, rng.choice([0, 1, o + 32, o - 32 if o >= 32 else 7, 2**40, 2**64 - 1, 2**64 - 32]))
            what = "%s offset" % name
    else:
        data = bytearray(mutate_bytes(rng, bytes(data), 0, lay["end"]))
        what = "header bytes"
    link_folder(pr.gguf, d, skip=("model.gguf",))
    with open(os.path.join(d, "model.gguf"), "wb") as f:
        f.write(data)
    return what


MUTATORS = {"safetensors": mut_safetensors, "config": mut_config, "index": mut_index,
            "tokenizer": mut_tokenizer, "bin": mut_bin, "gguf": mut_gguf}


# ---------------------------------------------------------------------------- running
class Runner:
    def __init__(self, args, asan):
        self.args = args
        self.asan = asan

    def env(self, logdir):
        e = dict(os.environ)
        e.pop("OMP_NUM_THREADS", None)
        e["OMP_NUM_THREADS"] = "1"
        if self.asan:
            e["ASAN_OPTIONS"] = ("detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:"
                                 "hard_rss_limit_mb=%d:max_allocation_size_mb=%d:log_path=%s/asan"
                                 % (self.args.mem_mb, self.args.mem_mb, logdir))
            e["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:log_path=%s/ubsan" % logdir
        return e

    def run(self, cmd, logdir):
        """(rc or -signal or 'timeout', stderr, peak RSS MB, seconds)."""
        mem = self.args.mem_mb * 1024 * 1024
        asan = self.asan

        def limits():
            os.setsid()
            if not asan:
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        t0 = time.time()
        with tempfile.TemporaryFile() as err:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=self.env(logdir),
                                 preexec_fn=limits, cwd=ROOT)
            rc, rss = None, 0
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    rss = ru.ru_maxrss / 1024.0
                    rc = os.waitstatus_to_exitcode(status)
                    p.returncode = rc
                    break
                if time.time() - t0 > self.args.timeout:
                    os.killpg(p.pid, signal.SIGKILL)
                    _, status, ru = os.wait4(p.pid, 0)
                    p.returncode = -9
                    rc, rss = "timeout", ru.ru_maxrss / 1024.0
                    break
                time.sleep(0.005)
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        return rc, stderr, rss, time.time() - t0


def folder_bytes(path):
    """Bytes of the regular files under path (a file: its size), not following links."""
    if os.path.isfile(path):
        return os.lstat(path).st_size
    n = 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            n += st.st_size if not os.path.islink(os.path.join(root, f)) else 0
    return n


# ASan keeps freed blocks in a quarantine (256 MB by default) before reusing them, so an ASan
# build's RSS grows with what it has freed; its bound gets that much on top.  The memory bound
# itself is measured on the plain build.
ASAN_QUARANTINE_MB = 256.0


def rss_bound_mb(args, input_bytes):
    extra = ASAN_QUARANTINE_MB if getattr(args, "asan", False) else 0.0
    return (getattr(args, "baseline_mb", 0.0) + args.rss_base_mb + extra +
            args.rss_per_input * input_bytes / (1024.0 * 1024.0))


def classify(runner, cmd, d, logdir, expect_named=True, ok_codes=OK_CODES, input_bytes=0):
    rc, stderr, rss, secs = runner.run(cmd, logdir)
    reports = os.listdir(logdir) if os.path.isdir(logdir) else []
    if not reports and ("runtime error:" in stderr or "ERROR: AddressSanitizer" in stderr
                        or "ERROR: LeakSanitizer" in stderr):
        reports = ["stderr"]  # UBSan combined with ASan may report on stderr whatever log_path says
        return "sanitizer", rc, stderr, rss
    if reports:
        return "sanitizer", rc, stderr + "".join(read(os.path.join(logdir, r)).decode("utf-8", "replace") for r in reports), rss
    if rc == "timeout":
        return "timeout", rc, stderr, rss
    if rc < 0:
        return "signal", rc, stderr, rss
    if rss > rss_bound_mb(runner.args, input_bytes):
        return "memory", rc, stderr + "\npeak RSS %.0f MB above the bound %.0f MB (input %.1f MB)" % (
            rss, rss_bound_mb(runner.args, input_bytes), input_bytes / 1048576.0), rss
    if rc not in ok_codes:
        return "exit-code", rc, stderr, rss
    if rc != 0 and ok_codes is OK_CODES:
        lines = [l for l in stderr.splitlines() if l.strip()]
        named = any(tok in stderr for tok in (d, ".json", ".safetensors", ".gguf", ".bin", "data.pkl", "config",
                                               "tokenizer", "index"))
        if len(lines) != 1 or (expect_named and not named):
            return "message", rc, stderr, rss
    return "ok", rc, stderr, rss


def one(runner, pr, i, tmp):
    args = runner.args
    rng = random.Random("%d:%d" % (args.seed, i))
    target = args.targets[i % len(args.targets)]
    base = os.path.join(tmp, "%05d" % i)
    os.mkdir(base)
    d = os.path.join(base, "in")
    try:
        what = MUTATORS[target](rng, pr, d)
    except Exception as e:  # a mutation that could not be applied is skipped, not a finding
        shutil.rmtree(base, ignore_errors=True)
        return target, "skipped", "mutator: %r" % e, [], 0.0, 0.0
    q = os.path.abspath(args.qforge)
    out = os.path.join(base, "out")
    if target == "gguf":
        src = os.path.join(d, "model.gguf")
        cmds = [[q, "convert", src, "-o", out, "--to", "safetensors", "-q"]]
    elif target == "bin":
        src = d
        cmds = [[q, "convert", d, "-o", out, "--scheme", "w4a16", "-q"] if rng.random() < 0.5
                else [q, "convert", d, "-o", out, "--to", "safetensors", "-q"]]
    elif target == "tokenizer" and rng.random() < 0.5:  # w4a16 copies tokenizer.json; gguf parses it
        src = d
        cmds = [[q, "convert", d, "-o", out, "--layout", "gguf", "--scheme", "q8_0", "-q"]]
    else:
        src = d
        cmds = [[q, "convert", d, "-o", out, "--scheme", "w4a16", "-q"]]
    extra = []
    if rng.random() < args.extra:
        c = rng.choice(["inspect", "validate", "gguf" if target == "tokenizer" else "inspect"])
        if target == "gguf" and rng.random() < 0.5:
            extra.append(("verify", [q, "verify", d, "-q"]))
        elif c == "inspect":
            extra.append(("inspect", [q, "inspect", src]))
        elif c == "validate":
            if target == "gguf":
                extra.append(("validate", [q, "validate", "--base", pr.model, "--quant", d, "--text", TEXT,
                                           "--chunks", "1", "--ctx", "64", "-q"]))
            else:
                extra.append(("validate", [q, "validate", "--base", d, "--text", TEXT, "--chunks", "1", "--ctx", "64", "-q"]))
        else:
            extra.append(("convert-gguf", [q, "convert", d, "-o", out + "-gguf", "--layout", "gguf", "--scheme", "q8_0", "-q"]))
    results = []
    peak, ratio = 0.0, 0.0
    in_bytes = folder_bytes(d)
    for n, (label, cmd) in enumerate([("convert", cmds[0])] + extra):
        logdir = os.path.join(base, "log%d" % n)
        os.mkdir(logdir)
        ok_codes = (VERIFY_OK | OK_CODES) if label == "verify" else OK_CODES
        reads = in_bytes + (folder_bytes(pr.model) if pr.model in cmd else 0)
        kind, rc, stderr, rss = classify(runner, cmd, d, logdir, ok_codes=ok_codes, input_bytes=reads)
        peak = max(peak, rss)
        ratio = max(ratio, rss / rss_bound_mb(args, reads))
        if kind == "ok" and rc == 0 and label in ("convert", "convert-gguf"):
            o = out if label == "convert" else out + "-gguf"
            vlog = os.path.join(base, "vlog%d" % n)
            os.mkdir(vlog)
            vk, vrc, vstderr, _ = classify(runner, [q, "verify", o, "-q"], o, vlog, ok_codes={0},
                                           input_bytes=folder_bytes(o))
            if vk != "ok":
                kind, stderr = "bad-artifact", "verify exit %s: %s" % (vrc, vstderr)
        results.append((label, kind, rc, stderr, cmd))
    bad = [r for r in results if r[1] != "ok"]
    if bad:
        fdir = os.path.join(args.out, "findings", "%05d-%s-%s" % (i, target, bad[0][1]))
        if os.path.exists(fdir):
            shutil.rmtree(fdir)
        os.makedirs(fdir)
        shutil.copytree(d, os.path.join(fdir, "in"))
        with open(os.path.join(fdir, "repro.sh"), "w") as f:
            f.write("#!/bin/sh\n# %s: %s (campaign seed %d, input %d)\ncd \"$(dirname \"$0\")\"\n"
                    % (target, what, args.seed, i))
            for label, kind, rc, stderr, cmd in bad:
                c = [x.replace(d, "in").replace(out, "out") for x in cmd]
                c[0] = q
                f.write("# %s -> %s (exit %s)\nrm -rf out out-gguf\n%s\n" % (label, kind, rc, " ".join("'%s'" % x for x in c)))
        with open(os.path.join(fdir, "stderr.txt"), "w") as f:
            for label, kind, rc, stderr, cmd in bad:
                f.write("== %s: %s, exit %s\n%s\n" % (label, kind, rc, stderr[-20000:]))
    shutil.rmtree(base, ignore_errors=True)
    return target, (bad[0][1] if bad else "ok"), what, results, peak, ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qforge", default=os.path.join(ROOT, "build", "qforge"))
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None, help="findings and the summary (default: a new /tmp folder)")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--mem-mb", type=int, default=4096)
    ap.add_argument("--rss-base-mb", type=float, default=128.0)
    ap.add_argument("--rss-per-input", type=float, default=4.0)
    ap.add_argument("--extra", type=float, default=0.3, help="fraction of inputs that also get inspect / validate / verify")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--start", type=int, default=0, help="first input number (to replay one: --start N --count 1)")
    args = ap.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    for t in args.targets:
        if t not in MUTATORS:
            ap.error("unknown target %s" % t)
    args.out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="qf-campaign."))
    os.makedirs(args.out, exist_ok=True)
    asan = b"__asan_init" in read(args.qforge)
    args.asan = asan
    # the binary's own resident pages before it reads anything (`qforge --help`): about 5 MB for
    # a CPU build, about 220 MB for a CUDA build, whose cuBLAS / cuSOLVER libraries the loader
    # relocates at start (file-backed, shared pages); the bound is on memory above it
    blog = os.path.join(args.out, "baseline-log")
    os.makedirs(blog, exist_ok=True)
    _, _, args.baseline_mb, _ = Runner(args, asan).run([os.path.abspath(args.qforge), "--help"], blog)
    runner = Runner(args, asan)
    tmp = tempfile.mkdtemp(prefix="qf-campaign-work.")
    try:
        pr = Pristine(os.path.join(tmp, "pristine"), os.path.abspath(args.qforge))
        t0 = time.time()
        counts = collections.defaultdict(collections.Counter)
        peaks = collections.defaultdict(float)
        ratios = collections.defaultdict(float)
        exits = collections.defaultdict(collections.Counter)
        lock = threading.Lock()
        done = [0]

        def job(i):
            r = one(runner, pr, i, tmp)
            with lock:
                target, kind, what, results, peak, ratio = r
                counts[target][kind] += 1
                peaks[target] = max(peaks[target], peak)
                ratios[target] = max(ratios[target], ratio)
                for res in results:
                    exits[target][res[2]] += 1
                done[0] += 1
                if kind not in ("ok", "skipped"):
                    print("finding %05d %s %s: %s" % (i, target, kind, what), flush=True)
                if done[0] % 100 == 0:
                    print("... %d/%d in %.0f s" % (done[0], args.count, time.time() - t0), flush=True)

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
            list(ex.map(job, range(args.start, args.start + args.count)))
        changed = pr.check_unchanged()
        secs = time.time() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kinds = ["ok", "message", "exit-code", "bad-artifact", "signal", "sanitizer", "timeout", "memory", "skipped"]
    lines = ["qforge campaign: %s%s, seed %d, %d inputs, %d jobs, %.0f s, timeout %g s, memory limit %d MB, "
             "RSS bound %.0f MB baseline + %g MB + %gx input%s" % (args.qforge, " (ASan+UBSan)" if asan else "", args.seed, args.count,
                                                args.jobs, secs, args.timeout, args.mem_mb, args.baseline_mb,
                                                args.rss_base_mb,
                                                args.rss_per_input, " + ASan's %g MB quarantine" % ASAN_QUARANTINE_MB
                                                if asan else ""),
             "| target | inputs | " + " | ".join(kinds) + " | peak RSS MB | peak RSS / bound | exit codes |",
             "|---" * (len(kinds) + 5) + "|"]
    total = collections.Counter()
    for t in args.targets:
        c = counts[t]
        total.update(c)
        ex = " ".join("%s:%d" % (k, v) for k, v in sorted(exits[t].items(), key=lambda kv: str(kv[0])))
        lines.append("| %s | %d | %s | %.0f | %.2f | %s |" % (t, sum(c.values()), " | ".join(str(c[k]) for k in kinds),
                                                         peaks[t], ratios[t], ex))
    lines.append("| all | %d | %s | %.0f | %.2f | |" % (sum(total.values()), " | ".join(str(total[k]) for k in kinds),
                                                        max(peaks.values() or [0]), max(ratios.values() or [0])))
    findings = sum(v for k, v in total.items() if k not in ("ok", "skipped"))
    lines.append("findings: %d%s; pristine inputs %s" % (findings, " (in %s/findings)" % args.out if findings else "",
                                                         "CHANGED: " + ", ".join(changed) if changed else "unchanged"))
    print("\n".join(lines))
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 1 if findings or changed else 0


if __name__ == "__main__":
    sys.exit(main())
