#!/usr/bin/env python3
"""make_corpus.py - (re)write the seed corpora of tests/fuzz (small files, committed).

corpus/pickle: data.pkl streams (protocols 2 and 4) and whole torch.save archives of a tiny
state_dict made by tests/tools/make_bin_checkpoint.py (plain, views + shared storage,
big-endian, deflated), plus a few hostile pickles.  corpus/safetensors: small valid and
invalid safetensors files.  corpus/gguf: a GGUF written by gguf-py (skipped without it).
corpus/config, corpus/index: the bundled checkpoints' config.json and shard indexes.
corpus/tokenizer: tokenizer.json + NUL + text (fuzz_tokenizer_json's layout): the fixtures'
byte-level BPE cut to its first 512 tokens, a SentencePiece-style Metaspace BPE with byte
fallback, and a normalizer chain (Sequence of Replace / NFC / Prepend).  corpus/manifest is
not written here: its seed is a manifest sealed by qforge itself for fuzz_manifest.c's folder,
and tests/test_fuzz_replay.c checks that it still verifies.
usage: tests/fuzz/make_corpus.py
"""
import collections
import io
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import make_bin_checkpoint as mbc  # noqa: E402


def tiny_tensors():
    t = collections.OrderedDict()
    t["model.norm.weight"] = ("BF16", [4], struct.pack("<4H", 0x3f80, 0x4000, 0x4040, 0x4080))
    t["model.layers.0.mlp.down_proj.weight"] = ("F32", [2, 3], struct.pack("<6f", 0, 1, 2, 3, 4, 5))
    t["model.layers.0.input_layernorm.weight"] = ("BF16", [2], struct.pack("<2H", 0x3f80, 0xbf80))
    t["lm_head.scale"] = ("F8_E4M3", [1, 2], bytes([0x38, 0xb8]))
    return t


class Args:
    def __init__(self, **kw):
        self.views, self.big_endian, self.compress, self.protocol, self.view = False, False, False, 2, None
        self.__dict__.update(kw)


def main():
    pk = os.path.join(HERE, "corpus", "pickle")
    st = os.path.join(HERE, "corpus", "safetensors")
    os.makedirs(pk, exist_ok=True)
    os.makedirs(st, exist_ok=True)
    for proto in (2, 4):
        sd, _ = mbc.build_state_dict(tiny_tensors(), Args(views=True))
        buf = io.BytesIO()
        mbc.TorchPickler(buf, protocol=proto).dump(sd)
        open(os.path.join(pk, "state_dict_p%d.pkl" % proto), "wb").write(buf.getvalue())
    for name, kw in (("plain", {}), ("views", {"views": True}), ("big_endian", {"big_endian": True, "views": True}),
                     ("deflated", {"compress": True})):
        mbc.write_bin(os.path.join(pk, "archive_%s.bin" % name), tiny_tensors(), Args(**kw))
    open(os.path.join(pk, "hostile_os_system.pkl"), "wb").write(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.")
    open(os.path.join(pk, "hostile_memo.pkl"), "wb").write(b"\x80\x02]r\xff\xff\xff\xff.")

    def st_file(name, header, data=b""):
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        open(os.path.join(st, name), "wb").write(struct.pack("<Q", len(h)) + h + data)

    st_file("two_tensors.safetensors", {"__metadata__": {"format": "pt"},
                                        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                        "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]}}, bytes(16))
    st_file("f4_and_empty.safetensors", {"q": {"dtype": "F4", "shape": [1, 4], "data_offsets": [0, 2]},
                                         "e": {"dtype": "U8", "shape": [0, 3], "data_offsets": [2, 2]}}, bytes(2))
    gguf_seeds(os.path.join(HERE, "corpus", "gguf"))
    st_file("overlap.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8))
    json_seeds(os.path.join(HERE, "corpus"))


def json_seeds(corpus):
    data = os.path.join(HERE, "..", "data")
    for sub in ("config", "index", "tokenizer"):
        os.makedirs(os.path.join(corpus, sub), exist_ok=True)
    for model in ("tiny-llama", "tiny-moe", "tiny-swa", "tiny-tied", "tiny-yarn", "tiny-gemma3", "tiny-phi3-longrope",
                  "tiny-glm4moe", "tiny-gptoss", "tiny-llama4", "tiny-nemotronh", "tiny-qwen3next", "tiny-qwen35moe",
                  "tiny-deepseekv3", "tiny-deepseekv32"):
        src = os.path.join(data, model)
        with open(os.path.join(src, "config.json"), "rb") as f:
            open(os.path.join(corpus, "config", model + ".json"), "wb").write(f.read())
        idx = os.path.join(src, "model.safetensors.index.json")
        if os.path.exists(idx):
            with open(idx, "rb") as f:
                open(os.path.join(corpus, "index", model + ".json"), "wb").write(f.read())
    # the fixtures' byte-level BPE, cut to the tokens below 512 and the merges among them
    with open(os.path.join(data, "tiny-llama", "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    vocab = {k: v for k, v in tok["model"]["vocab"].items() if v < 512}
    merges = []
    for m in tok["model"]["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    tok["model"]["vocab"], tok["model"]["merges"] = vocab, merges
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < 512]

    def tok_seed(name, doc, text):
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        open(os.path.join(corpus, "tokenizer", name), "wb").write(body + b"\0" + text.encode())

    tok_seed("bytelevel_bpe", tok, "The quick brown fox, 1234 \u00e9t\u00e9 <|endoftext|> ok")
    spm = {"normalizer": {"type": "Sequence", "normalizers": [
               {"type": "Prepend", "prepend": "\u2581"},
               {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
           "pre_tokenizer": None,
           "decoder": {"type": "Sequence", "decoders": [
               {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
               {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
           "added_tokens": [{"id": 0, "content": "<unk>", "special": True}],
           "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>", "fuse_unk": True,
                     "vocab": dict([("<unk>", 0)] + [("<0x%02X>" % i, 1 + i) for i in range(256)] +
                                   [("\u2581", 257), ("a", 258), ("b", 259), ("\u2581a", 260), ("ab", 261)]),
                     "merges": ["\u2581 a", "a b"]}}
    tok_seed("metaspace_byte_fallback", spm, "ab a\u00ff \U0001F600b")
    norm = dict(spm)
    norm["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFC"}, {"type": "Replace", "pattern": {"String": "a"}, "content": "aa"},
        {"type": "Replace", "pattern": {"Regex": "b+"}, "content": "b"}, {"type": "Lowercase"}]}
    tok_seed("normalizer_chain", norm, "aAbBbb e\u0301")


def gguf_seeds(folder):
    """A small GGUF written by llama.cpp's gguf-py (when installed): Q8_0, Q4_0, F16, F32 tensors."""
    try:
        import gguf
        import numpy as np
    except ImportError:
        return
    os.makedirs(folder, exist_ok=True)
    w = gguf.GGUFWriter(os.path.join(folder, "gguf_py.gguf"), "llama")
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_token_list(["a", "b", "c"])
    x = (np.arange(64, dtype=np.float32).reshape(2, 32) - 20) / 7
    for name, qt in (("q8", gguf.GGMLQuantizationType.Q8_0), ("q4", gguf.GGMLQuantizationType.Q4_0)):
        w.add_tensor(name, gguf.quants.quantize(x, qt), raw_dtype=qt)
    w.add_tensor("h", x.astype(np.float16))
    w.add_tensor("f", x[0])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
