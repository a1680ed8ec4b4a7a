#!/usr/bin/env python3
"""check_gguf.py - qforge's GGUF output read by llama.cpp's own Python package (gguf-py).

usage: check_gguf.py QFORGE_BINARY MODEL_DIR [MODEL_DIR...]   (prints 'N passed, N failed' last)

The first model is converted to Q8_0, Q4_0, Q4_K (whose rows of 384 fall back to Q5_0 on
tiny-llama, as llama.cpp's), Q4_1, Q5_0, Q5_1 and the mixes Q4_K_M, Q5_K_M, Q6_K (which between
them write every block type qforge has: Q5_K, Q6_K, Q5_1 ...), and calibrated (q4_k_m and q5_k_m
--method gptq, q4_0 --method imatrix, on 4 x 64 tokens: checks 0-4 but not 2's bytes), each
further one to Q8_0 and F16 (tiny-moe, Mixtral: experts stacked into ffn_{gate,up,down}_exps
[n_expert, rows, cols] as convert_hf_to_gguf.py's LlamaModel writes them, routers ffn_gate_inp in
F32, expert_count / expert_used_count; tiny-qwen2moe / tiny-qwen3moe as Qwen2MoeModel /
Qwen3MoeModel write them: qwen2moe / qwen3moe, expert_feed_forward_length, qwen2moe's shared
expert ffn_*_shexp and ffn_gate_inp_shexp (F32) with expert_shared_feed_forward_length; stacked
tensors are held, expert by expert, to the same reference bytes and decodes as every other
tensor).  For each:
  0. the architecture is the one llama.cpp's converter picks for config.json's model_type
     (llama / mistral: llama; qwen2; qwen3), every tensor name is one gguf-py's own tables
     (gguf.constants.MODEL_TENSORS[arch], TENSOR_NAMES) define for that architecture, each
     shape is the source tensor's, tied embeddings give no output.weight (llama.cpp reuses
     token_embd), and the {arch}.* key-values gguf-py's Keys name are there with config.json's
     values (yarn RoPE, tiny-yarn: rope.scaling.type / factor / original_context_length, as
     convert_hf_to_gguf.py's Qwen2Model writes them);
  1. qforge convert MODEL --layout gguf --scheme TYPE; gguf.GGUFReader loads model.gguf and
     finds the llama metadata, the tokenizer (tokens / token types / merges as tokenizer.json
     has them; pre gpt-2 for GPT-2's ByteLevel; add_bos / add_eos as gguf-py's SpecialVocab
     decides), general.type / size_label (gguf.size_label of the tensors), key / value_length,
     and every tensor under llama.cpp's name, with ggml types qforge chose;
  2. Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / F16 / BF16 / F32 tensors hold exactly the bytes gguf-py's reference
     quantizers (gguf.quants.quantize, a port of ggml's quantize_row_*_ref) make from the same
     source weights, and every tensor decoded by gguf.quants.dequantize equals, bit for bit,
     qforge's own decoder
     (qforge convert model.gguf --to safetensors gives qforge's dequantized F32 tensors in
     Hugging Face names and row order); attn_q / attn_k are compared after applying
     convert_hf_to_gguf.py's permutation (written here from its formula) to qforge's rows, so
     the row order qforge writes is checked against llama.cpp's independently (llama only:
     qwen2 / qwen3 rows are written as Hugging Face has them, NEOX RoPE);
  3. the decoded weights are close to the source weights (NMSE bounds per type), which a wrong
     permutation or layout would break;
  4. qforge verify passes on the artifact.
Then a GGUF written by gguf-py itself, with Q4_K / Q5_K / Q6_K / Q4_1 / Q5_0 / Q5_1 / F32 tensors of
random blocks, is read by
qforge (inspect, and convert --to safetensors) and decoded to what gguf-py decodes.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qf_interop import Report, f32, load_dir  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402

LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
         "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
GLOBAL = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# Mixtral (convert_hf_to_gguf.py's LlamaModel): the router, and each layer's experts stacked into
# one [n_expert, rows, cols] tensor per projection from block_sparse_moe.experts.E.w1 / w3 / w2
# Qwen2MoeModel / Qwen3MoeModel (TextModels): mlp.gate, mlp.experts.E.{gate,up,down}_proj stacked,
# qwen2_moe's shared expert and its gate (gguf-py's tensor_mapping)
MOE = {"llama": ({"ffn_gate_inp": "block_sparse_moe.gate"}, "block_sparse_moe.experts.%d.",
                 {"ffn_gate_exps": "w1", "ffn_up_exps": "w3", "ffn_down_exps": "w2"}),
       "qwen2moe": ({"ffn_gate_inp": "mlp.gate", "ffn_gate_shexp": "mlp.shared_expert.gate_proj",
                     "ffn_up_shexp": "mlp.shared_expert.up_proj", "ffn_down_shexp": "mlp.shared_expert.down_proj",
                     "ffn_gate_inp_shexp": "mlp.shared_expert_gate"}, "mlp.experts.%d.",
                    {"ffn_gate_exps": "gate_proj", "ffn_up_exps": "up_proj", "ffn_down_exps": "down_proj"}),
       "qwen3moe": ({"ffn_gate_inp": "mlp.gate"}, "mlp.experts.%d.",
                    {"ffn_gate_exps": "gate_proj", "ffn_up_exps": "up_proj", "ffn_down_exps": "down_proj"}),
       # Phi3MiniModel: the fused projections under attn_qkv and ffn_up (gguf-py's tensor_mapping)
       "phi3": ({"attn_qkv": "self_attn.qkv_proj", "ffn_up": "mlp.gate_up_proj"}, "", {})}


def hf_name(g, expert=None, arch="llama"):
    stem, suf = g.rsplit(".", 1)
    if stem in GLOBAL:
        return GLOBAL[stem] + "." + suf
    _, n, part = stem.split(".", 2)
    single, prefix, exps = MOE.get(arch, ({}, "", {}))
    if part in exps:
        return "model.layers.%s.%s%s.%s" % (n, prefix % expert, exps[part], suf)
    return "model.layers.%s.%s.%s" % (n, {**LAYER, **single}[part], suf)


def stacked(t):
    """True for a stacked expert tensor (3-D in the file)."""
    return len(t.shape) == 3


def source_of(t, tensors, arch):
    """The source tensor(s) of GGUF tensor t as one array: experts stacked in expert order."""
    if stacked(t):
        parts = [tensors.get(hf_name(t.name, e, arch)) for e in range(int(t.shape[2]))]
        return None if any(p is None for p in parts) else np.stack(parts)
    return tensors.get(hf_name(t.name, None, arch))


# convert_hf_to_gguf.py's architecture per model_type (LlamaModel serves llama and mistral)
ARCH = {"llama": "llama", "mistral": "llama", "mixtral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
        "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe", "phi3": "phi3"}
PERMUTED = {"llama"}  # LlamaModel.modify_tensors permutes q/k; Qwen2Model / Qwen3Model do not


def arch_tensor_names(arch):
    """gguf-py's name templates for arch ("blk.{bid}.attn_q", ...)."""
    a = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    return {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[a]}


def template(name):
    stem = name.rsplit(".", 1)[0]
    parts = stem.split(".")
    if parts[0] == "blk":
        parts[1] = "{bid}"
    return ".".join(parts)


def permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute: rotate-half rows -> interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(r, key):
    f = r.fields.get(key)
    if f is None:
        return None
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


def decode(t):
    """A tensor as gguf-py decodes it, in row-major (PyTorch) shape."""
    shape = tuple(int(x) for x in reversed(t.shape))
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def check_model(rep, qforge, model, qtype, tmp, method="rtn"):
    out, deq = os.path.join(tmp, "gguf-" + qtype + method), os.path.join(tmp, "deq-" + qtype + method)
    extra = [] if method == "rtn" else ["--method", method, "--calib-samples", "4", "--calib-seqlen", "64"]
    rc, log = run([qforge, "convert", model, "--layout", "gguf", "--scheme", qtype, "-o", out, "-q"] + extra)
    qtype = qtype if method == "rtn" else qtype + " " + method
    if not rep.check(rc == 0, "%s: qforge convert" % qtype, log.strip()[-300:]):
        return
    path = os.path.join(out, "model.gguf")
    r = gguf.GGUFReader(path)
    cfg = json.load(open(os.path.join(model, "config.json")))
    tok = json.load(open(os.path.join(model, "tokenizer.json")))
    arch = ARCH[cfg["model_type"]]
    rep.check(field(r, "general.architecture") == arch, "%s: architecture %s" % (qtype, arch),
              str(field(r, "general.architecture")))
    rope = cfg.get("rope_parameters") or cfg
    for key, want in ((gguf.Keys.LLM.BLOCK_COUNT, cfg["num_hidden_layers"]),
                      (gguf.Keys.LLM.EMBEDDING_LENGTH, cfg["hidden_size"]),
                      (gguf.Keys.LLM.CONTEXT_LENGTH, cfg["max_position_embeddings"]),
                      (gguf.Keys.Attention.HEAD_COUNT, cfg["num_attention_heads"]),
                      (gguf.Keys.Attention.HEAD_COUNT_KV, cfg["num_key_value_heads"]),
                      (gguf.Keys.LLM.FEED_FORWARD_LENGTH, cfg["intermediate_size"]),
                      (gguf.Keys.LLM.VOCAB_SIZE, cfg["vocab_size"]),
                      (gguf.Keys.Rope.FREQ_BASE, float(rope["rope_theta"])),
                      (gguf.Keys.Attention.LAYERNORM_RMS_EPS, float(np.float32(cfg["rms_norm_eps"])))):
        key = key.format(arch=arch)
        got = field(r, key)
        rep.check(got is not None and (got == want if isinstance(want, int) else np.isclose(got, want, rtol=1e-6)),
                  "%s: %s" % (qtype, key), "%s != %s" % (got, want))
    if rope.get("rope_type") == "yarn":
        for key, want in ((gguf.Keys.Rope.SCALING_TYPE, "yarn"), (gguf.Keys.Rope.SCALING_FACTOR, float(rope["factor"])),
                          (gguf.Keys.Rope.SCALING_ORIG_CTX_LEN, rope["original_max_position_embeddings"])):
            key = key.format(arch=arch)
            rep.check(field(r, key) == want, "%s: %s" % (qtype, key), "%s != %s" % (field(r, key), want))
    else:
        rep.check(field(r, gguf.Keys.Rope.SCALING_TYPE.format(arch=arch)) is None, "%s: no rope scaling keys" % qtype)
    n_exp = cfg.get("num_local_experts", cfg.get("num_experts", 0))
    if n_exp:  # the converter's TextModel: expert_count / expert_used_count; Qwen2MoeModel the widths
        for key, want in ((gguf.Keys.LLM.EXPERT_COUNT, n_exp), (gguf.Keys.LLM.EXPERT_USED_COUNT, cfg["num_experts_per_tok"]),
                          (gguf.Keys.LLM.EXPERT_FEED_FORWARD_LENGTH, cfg.get("moe_intermediate_size")),
                          (gguf.Keys.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, cfg.get("shared_expert_intermediate_size"))):
            key = key.format(arch=arch)
            rep.check(field(r, key) == want, "%s: %s" % (qtype, key), "%s != %s" % (field(r, key), want))
    known = arch_tensor_names(arch)
    bad = sorted(t.name for t in r.tensors if template(t.name) not in known)
    rep.check(not bad, "%s: every tensor name is in gguf-py's MODEL_TENSORS[%s]" % (qtype, arch), ", ".join(bad[:5]))
    src_all = load_dir(model)[0]
    src_shapes = {k: v.shape for k, v in src_all.items()}
    names = {t.name for t in r.tensors}
    rep.check(("output.weight" in names) == ("lm_head.weight" in src_shapes),
              "%s: output.weight written exactly when the source has lm_head (tied: llama.cpp reuses token_embd)" % qtype)
    ffn = ("ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps") if n_exp else ("ffn_gate", "ffn_up", "ffn_down")
    if arch == "qwen2moe":  # llama.cpp's qwen2moe graph needs the shared expert
        ffn += ("ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp")
    attn = ("attn_q", "attn_k", "attn_v")
    if arch == "phi3":  # fused: attn_qkv, and ffn_up holding gate then up
        attn, ffn = ("attn_qkv",), ("ffn_up", "ffn_down")
        rp = cfg.get("rope_parameters") or {}
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        for key, want in (("phi3.rope.dimension_count", int(rp.get("partial_rotary_factor", 1.0) * cfg["hidden_size"]) // cfg["num_attention_heads"]),
                          ("phi3.attention.sliding_window", cfg.get("sliding_window") or 0),
                          ("phi3.rope.scaling.original_context_length", rp.get("original_max_position_embeddings", cfg.get("original_max_position_embeddings")))):
            rep.check(field(r, key) == want, "%s: %s (Phi3MiniModel's value)" % (qtype, key), "%s != %s" % (field(r, key), want))
        rep.check(field(r, "phi3.rope.dimension_count") < head_dim, "%s: partial rotary: fewer rotated dims than head_dim" % qtype)
    want_names = {"token_embd.weight", "output_norm.weight"} | {
        "blk.%d.%s.weight" % (i, p) for i in range(cfg["num_hidden_layers"])
        for p in ("attn_norm", "attn_output", "ffn_norm") + attn + ffn}
    if arch in ("qwen3", "qwen3moe"):
        want_names |= {"blk.%d.%s.weight" % (i, p) for i in range(cfg["num_hidden_layers"]) for p in ("attn_q_norm", "attn_k_norm")}
    if arch in ("qwen2", "qwen2moe"):
        want_names |= {"blk.%d.%s.bias" % (i, p) for i in range(cfg["num_hidden_layers"]) for p in ("attn_q", "attn_k", "attn_v")}
    missing = sorted(want_names - names)
    rep.check(not missing, "%s: the tensors llama.cpp's %s graph loads are all there" % (qtype, arch), ", ".join(missing[:5]))
    def src_shape(t):
        s = source_of(t, src_all, arch)
        return () if s is None else s.shape
    wrong = sorted(t.name for t in r.tensors if tuple(int(x) for x in reversed(t.shape)) != tuple(src_shape(t)))
    rep.check(not wrong, "%s: every tensor has its source tensor's shape (experts: [n_expert, rows, cols])" % qtype,
              ", ".join(wrong[:5]))
    if n_exp:  # llama-quantize and the converter keep routers in F32
        routers = [t for t in r.tensors if ".ffn_gate_inp" in t.name]
        rep.check(routers and all(t.tensor_type == T.F32 for t in routers), "%s: ffn_gate_inp tensors are F32" % qtype)
    tokens, types, merges = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.token_type"), field(r, "tokenizer.ggml.merges")
    vocab = tok["model"]["vocab"]
    rep.check(field(r, "tokenizer.ggml.model") == "gpt2", "%s: tokenizer model gpt2" % qtype)
    rep.check(len(tokens) == cfg["vocab_size"] and all(tokens[i] == t for t, i in vocab.items()),
              "%s: tokens by id as in tokenizer.json" % qtype)
    special = {a["id"] for a in tok["added_tokens"] if a.get("special")}
    rep.check(all(types[i] == (3 if i in special else 1) for i in vocab.values()), "%s: token types" % qtype)
    want_merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    rep.check(merges == want_merges, "%s: merges" % qtype)
    rep.check(field(r, "tokenizer.ggml.bos_token_id") == cfg["bos_token_id"], "%s: bos id" % qtype)
    # what llama.cpp's converter adds beside: pre for a GPT-2 ByteLevel pre-tokenizer (llama.cpp
    # splits text unlike Hugging Face under "default"), general.type / size_label (gguf-py's rule
    # on the tensors in the file), key / value length (config.json names head_dim), add_bos /
    # add_eos as gguf-py's SpecialVocab reads tokenizer.json + tokenizer_config.json (unset: false,
    # what the Hugging Face tokenizer does)
    pt = tok["pre_tokenizer"]
    if pt.get("type") == "ByteLevel" and not pt.get("add_prefix_space") and pt.get("use_regex", True):
        rep.check(field(r, "tokenizer.ggml.pre") == "gpt-2", "%s: tokenizer.ggml.pre gpt-2" % qtype,
                  str(field(r, "tokenizer.ggml.pre")))
    rep.check(field(r, "general.type") == "model", "%s: general.type model" % qtype)
    n_params = sum(int(np.prod(t.shape)) for t in r.tensors)
    rep.check(field(r, "general.size_label") == gguf.size_label(n_params, n_params, 0, 0),
              "%s: general.size_label as gguf-py computes it" % qtype,
              "%s vs %s" % (field(r, "general.size_label"), gguf.size_label(n_params, n_params, 0, 0)))
    for key in ("%s.attention.key_length" % arch, "%s.attention.value_length" % arch):
        rep.check(field(r, key) == cfg.get("head_dim"), "%s: %s" % (qtype, key), "%s" % field(r, key))
    sv = gguf.SpecialVocab(model, load_merges=False)
    for typ in ("bos", "eos"):
        want = sv.add_special_token.get(typ, False)
        got = field(r, "tokenizer.ggml.add_%s_token" % typ)
        rep.check(got is not None and bool(got) == want, "%s: add_%s_token as gguf-py's SpecialVocab" % (qtype, typ),
                  "%s vs %s" % (got, want))

    rc, log = run([qforge, "convert", path, "--to", "safetensors", "-o", deq, "-q"])
    if not rep.check(rc == 0, "%s: qforge reads its GGUF back" % qtype, log.strip()[-300:]):
        return
    mine, _, _ = load_dir(deq)
    src, _, _ = load_dir(model)
    heads = {"attn_q": cfg["num_attention_heads"], "attn_k": cfg["num_key_value_heads"]} if arch in PERMUTED else {}
    n_exact = 0
    worst = {}
    for t in r.tensors:
        hf = hf_name(t.name, 0 if stacked(t) else None, arch)
        ref = decode(t)
        q = source_of(t, mine, arch)
        if not rep.check(q is not None and q.shape == ref.shape, "%s: %s present with shape %s" % (qtype, hf, ref.shape)):
            continue
        part = t.name.split(".")[-2]
        ordered = permute(q, heads[part]) if part in heads else q
        same = np.array_equal(ordered.view(np.uint32), ref.view(np.uint32))
        n_exact += same
        rep.check(same, "%s: %s decodes as gguf-py decodes it" % (qtype, t.name),
                  "max diff %g" % float(np.max(np.abs(ordered - ref))))
        s = f32(source_of(t, src, arch))
        if method == "rtn" and t.tensor_type in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.F16, T.BF16, T.F32):  # gguf-py's reference quantizers
            want = gguf.quants.quantize(permute(s, heads[part]) if part in heads else s, t.tensor_type)
            n_bytes_same = np.array_equal(np.asarray(want).view(np.uint8).reshape(-1), np.asarray(t.data).view(np.uint8).reshape(-1))
            rep.check(n_bytes_same, "%s: %s bytes equal gguf-py's reference %s quantizer" % (qtype, t.name, t.tensor_type.name))
        nmse = float(np.sum((q - s) ** 2) / max(np.sum(s ** 2), 1e-30))
        worst[t.tensor_type.name] = max(worst.get(t.tensor_type.name, 0.0), nmse)
    bound = {"F32": 0.0, "F16": 1e-6, "Q8_0": 1e-4, "Q4_0": 2e-2, "Q4_1": 2e-2, "Q4_K": 2e-2, "Q5_0": 6e-3,
             "Q5_1": 6e-3, "Q5_K": 6e-3, "Q6_K": 2e-3}
    if method != "rtn":  # GPTQ / the float target move weights to cut the output error: x4 (a layout error gives ~1)
        bound = {k: 4 * v for k, v in bound.items()}
    for tn, v in sorted(worst.items()):
        rep.check(v <= bound.get(tn, 1.0), "%s: %s tensors within NMSE %g of the source" % (qtype, tn, bound.get(tn, 1.0)),
                  "worst %g" % v)
    rep.note("%s %s: %d tensors, %d decode bit-identically; worst NMSE vs source %s" % (
        arch, qtype, len(r.tensors), n_exact, ", ".join("%s %.2e" % kv for kv in sorted(worst.items()))))
    rc, log = run([qforge, "verify", out, "-q"])
    rep.check(rc == 0, "%s: qforge verify" % qtype, log.strip()[-300:])


def random_blocks(rng, qtype, rows, cols):
    """Random bytes of ggml blocks with finite, moderate f16 scales."""
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    n = rows * cols // bs
    b = rng.integers(0, 256, size=(n, ts), dtype=np.uint8)
    d = (rng.random(n) * 0.01 + 1e-3).astype(np.float16).view(np.uint8).reshape(n, 2)
    if qtype in (T.Q4_K, T.Q5_K, T.Q4_1, T.Q5_1):
        b[:, 0:2], b[:, 2:4] = d, d
    elif qtype == T.Q6_K:
        b[:, 208:210] = d
    return b.reshape(rows, cols // bs * ts)


def check_foreign(rep, qforge, tmp):
    """A GGUF written by gguf-py with block types qforge only decodes."""
    rng = np.random.default_rng(7)
    path = os.path.join(tmp, "foreign.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_embedding_length(256)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    tensors = {"token_embd.weight": (T.Q4_K, 8, 256), "blk.0.ffn_down.weight": (T.Q6_K, 4, 512),
               "blk.0.attn_q.weight": (T.Q6_K, 8, 256), "blk.0.attn_norm.weight": (T.F32, 1, 256),
               "blk.0.attn_k.weight": (T.Q5_K, 8, 256), "blk.0.attn_v.weight": (T.Q5_0, 8, 256),
               "blk.0.ffn_gate.weight": (T.Q5_1, 8, 256), "blk.0.ffn_up.weight": (T.Q4_1, 8, 256)}
    raw = {}
    for name, (qt, rows, cols) in tensors.items():
        if qt == T.F32:
            a = rng.standard_normal(cols).astype(np.float32)
            w.add_tensor(name, a)
        else:
            a = random_blocks(rng, qt, rows, cols)
            w.add_tensor(name, a, raw_dtype=qt)
        raw[name] = (qt, rows, cols)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    rc, log = run([qforge, "inspect", path, "--tensors"])
    rep.check(rc == 0 and "Q6_K" in log and "Q4_K" in log, "foreign GGUF: qforge inspect", log.strip()[-300:])
    deq = os.path.join(tmp, "foreign-deq")
    rc, log = run([qforge, "convert", path, "--to", "safetensors", "-o", deq, "-q"])
    if not rep.check(rc == 0, "foreign GGUF: qforge reads it", log.strip()[-300:]):
        return
    mine, _, _ = load_dir(deq)
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        ref = decode(t)
        q = mine[hf_name(t.name)]
        if t.name.split(".")[-2] in ("attn_q", "attn_k"):
            q = permute(q, 2)
        rep.check(np.array_equal(q.view(np.uint32), ref.view(np.uint32)),
                  "foreign GGUF: %s (%s) decodes as gguf-py decodes it" % (t.name, t.tensor_type.name),
                  "max diff %g" % float(np.max(np.abs(q - ref))))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    qforge, models = sys.argv[1], sys.argv[2:]
    rep = Report("gguf")
    with tempfile.TemporaryDirectory() as tmp:
        for i, model in enumerate(models):
            for qtype in ("q8_0", "q4_0", "q4_k", "q4_1", "q5_0", "q5_1", "q4_k_m", "q5_k_m", "q6_k") if i == 0 else ("q8_0", "f16"):
                os.makedirs(os.path.join(tmp, str(i)), exist_ok=True)
                check_model(rep, qforge, model, qtype, os.path.join(tmp, str(i)))
            if i == 0:  # calibrated blocks (GPTQ's codes under fitted scales) decode as gguf-py decodes them
                for qtype, method in (("q4_k_m", "gptq"), ("q4_0", "imatrix"), ("q5_k_m", "gptq")):
                    check_model(rep, qforge, model, qtype, os.path.join(tmp, str(i)), method)
        check_foreign(rep, qforge, tmp)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
