# --layout gguf: tiny-llama as one model.gguf (Q8_0, Q4_0, Q4_K with llama.cpp's Q5_0 fallback,
# F16, the Q4_K_M mix; calibrated imatrix / gptq: deterministic across thread counts),
# verified tensor by tensor, inspected in GGUF terms, read back (dequantized, Hugging Face names)
# by --to safetensors and validate's loader; refusals for unsupported types and models.
# (Bit-exactness against llama.cpp's gguf-py: tests/interop/check_gguf.py.)
. tests/cli/lib.sh
M=tests/data/tiny-llama
for t in q8_0 q4_0 q4_k f16; do
    expect_exit 0 "$t: convert" -- "$QFORGE" convert $M -o "$T/g-$t" --layout gguf --scheme $t -q
    expect_exit 0 "$t: verify" -- "$QFORGE" verify "$T/g-$t" -q
    [ -f "$T/g-$t/model.gguf" ] && [ -f "$T/g-$t/README.md" ] && [ -f "$T/g-$t/tokenizer.json" ] && ok "$t: files" || bad "$t: files"
done
"$QFORGE" inspect "$T/g-q4_0" --tensors >"$T/insp" 2>&1
grep -q "architecture llama" "$T/insp" && ok "inspect: architecture" || bad "inspect: architecture"
# llama.cpp's own keys: with pre "default" llama.cpp split tiny-llama's text unlike Hugging Face
grep -q "tokenizer gpt2 (pre gpt-2)" "$T/insp" && ok "tokenizer.ggml.pre gpt-2 (GPT-2 ByteLevel)" || bad "pre: $(grep tokenizer "$T/insp")"
"$QFORGE" inspect "$T/g-q4_0" --json >"$T/insp.json" 2>&1
for kv in '"general.type":"model"' '"general.size_label":"16M"' '"llama.attention.key_length":64' \
    '"llama.attention.value_length":64' '"tokenizer.ggml.add_bos_token":false' '"tokenizer.ggml.add_eos_token":false'; do
    grep -qF "$kv" "$T/insp.json" && ok "metadata: $kv" || bad "metadata: $kv missing"
done
grep -q "blk.0.attn_q.weight  *Q4_0  *\[384, 384\]" "$T/insp" && ok "inspect: llama.cpp names, ggml types" || bad "inspect names"
grep -q "output_norm.weight  *F32" "$T/insp" && ok "inspect: norms stay F32" || bad "inspect norms"
"$QFORGE" inspect "$T/g-q4_k" >"$T/insp" 2>&1
grep -q "Q4_K" "$T/insp" && grep -q "Q5_0" "$T/insp" && ! grep -q "Q8_0" "$T/insp" && ok "q4_k: rows of 384 fall back to Q5_0 (llama.cpp)" ||
    bad "q4_k fallback"
"$QFORGE" inspect "$T/g-q4_0" --tensors >"$T/insp" 2>&1
grep -q "^ *output.weight  *Q8_0" "$T/insp" && ok "q4_0: output.weight Q8_0 (llama.cpp: Q6_K, rows of 384 -> Q8_0)" ||
    bad "q4_0 output.weight: $(grep output.weight "$T/insp")"
# the Q4_K_M mix: llama-quantize's per-tensor rule (test_gguf_mix.c has the full tables)
expect_exit 0 "q4_k_m: convert" -- "$QFORGE" convert $M -o "$T/g-q4km" --layout gguf --scheme q4_k_m --json
grep -qF '"bits_per_weight":6.08' "$T/stdout" && ok "q4_k_m: bits per weight in --json" || bad "q4_k_m bpw: $(cat "$T/stdout")"
"$QFORGE" inspect "$T/g-q4km" --tensors >"$T/insp" 2>&1
grep -q "blk.2.ffn_down.weight  *Q6_K" "$T/insp" && grep -q "blk.1.ffn_down.weight  *Q4_K" "$T/insp" &&
    grep -q "blk.5.attn_v.weight  *Q8_0" "$T/insp" && grep -q "file_type 15" "$T/insp" &&
    ok "q4_k_m: ffn_down / attn_v of the use_more_bits layers, file_type 15" || bad "q4_k_m types"
# calibrated: the same bytes whatever the thread count; refused where GGUF has no such method
for m in imatrix gptq; do
    for th in 1 2; do
        expect_exit 0 "$m: convert ($th threads)" -- env OMP_NUM_THREADS=$th "$QFORGE" convert $M -o "$T/c-$m-$th" \
            --layout gguf --scheme q4_k_m --method $m --calib-samples 4 --calib-seqlen 64 -q
    done
    cmp -s "$T/c-$m-1/model.gguf" "$T/c-$m-2/model.gguf" && ok "$m: deterministic" || bad "$m: bytes depend on threads"
    cmp -s "$T/c-$m-1/model.gguf" "$T/g-q4km/model.gguf" && bad "$m: same bytes as rtn" || ok "$m: differs from rtn"
done
expect_exit 0 "gptq: verify" -- "$QFORGE" verify "$T/c-gptq-1" -q
expect_exit 5 "awq with gguf refused" -- "$QFORGE" convert $M -o "$T/x" --layout gguf --scheme q4_0 --method awq -q
stderr_has "--layout gguf takes --method rtn, imatrix or gptq (not 'awq')" "awq refusal names the methods"
no_output "$T/x" "no output after the awq refusal"
expect_exit 2 "imatrix without gguf refused" -- "$QFORGE" convert $M -o "$T/x" --scheme w4a16 --method imatrix -q
expect_exit 0 "read back as safetensors" -- "$QFORGE" convert "$T/g-q8_0/model.gguf" --to safetensors -o "$T/back" -q
"$QFORGE" inspect "$T/back" --tensors >"$T/insp" 2>&1
grep -q "model.layers.0.self_attn.q_proj.weight  *F32  *\[384, 384\]" "$T/insp" && ok "read back: Hugging Face names, F32" ||
    bad "read back names"
# a modified tensor is found
cp -r "$T/g-q4_0" "$T/bad"
flip_byte "$T/bad/model.gguf" 4000000
expect_exit 6 "flipped byte detected" -- "$QFORGE" verify "$T/bad" -q
grep -q "tensor" "$T/stderr" && ok "the modified tensor is named" || bad "modified tensor not named: $(cat "$T/stderr")"
# a pre-tokenizer llama.cpp does not split alike is refused, naming the file and the regex
mkdir -p "$T/odd"
cp -r $M/. "$T/odd/" && chmod -R u+w "$T/odd" # copies: links out of a model folder are refused
rm "$T/odd/tokenizer.json"
sed '0,/"type": "ByteLevel",/s//"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\\\p{N}{1,5}"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}],/' \
    $M/tokenizer.json >"$T/odd/tokenizer.json"
expect_exit 5 "unknown pre-tokenizer refused" -- "$QFORGE" convert "$T/odd" -o "$T/x" --layout gguf --scheme q8_0 -q
stderr_has "tokenizer.json: pre-tokenizer Split regex '\\p{N}{1,5}' is not one llama.cpp splits alike" \
    "refusal names tokenizer.json and the regex"
no_output "$T/x" "no output after the pre-tokenizer refusal"
expect_exit 2 "unknown ggml type" -- "$QFORGE" convert $M -o "$T/x" --layout gguf --scheme q3_k -q
expect_exit 5 "unmapped family refused" -- "$QFORGE" convert tests/data/tiny-gemma3 -o "$T/x" --layout gguf --scheme q8_0 -q
stderr_has "tiny-gemma3/config.json: model_type 'gemma3_text' has no GGUF mapping: llama.cpp's gemma3 graph fixes what the config sets" \
    "refusal names config.json, the model type and what is mapped"
no_output "$T/x" "no output after a refusal"
expect_exit 5 "glm4_moe refused" -- "$QFORGE" convert tests/data/tiny-glm4moe -o "$T/x" --layout gguf --scheme q8_0 -q
stderr_has "tiny-glm4moe/config.json: model_type 'glm4_moe' has no GGUF mapping: llama.cpp's glm4moe needs sigmoid routing" \
    "glm4_moe refusal names the reason"
no_output "$T/x" "no output after the glm4_moe refusal"
# Mixtral (tiny-moe): llama.cpp's llama architecture with stacked experts, read back per expert;
# the mixes whose llama-quantize rule differs for experts, and calibration, are refused
expect_exit 0 "mixtral: convert" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moe" --layout gguf --scheme q4_0 -q
expect_exit 0 "mixtral: verify" -- "$QFORGE" verify "$T/moe" -q
"$QFORGE" inspect "$T/moe" --json >"$T/insp.json" 2>&1
for kv in '"llama.expert_count":4' '"llama.expert_used_count":2'; do
    grep -qF "$kv" "$T/insp.json" && ok "mixtral metadata: $kv" || bad "mixtral metadata: $kv missing"
done
expect_exit 0 "mixtral: read back" -- "$QFORGE" convert "$T/moe/model.gguf" --to safetensors -o "$T/moeback" -q
"$QFORGE" inspect "$T/moeback" --tensors >"$T/insp" 2>&1
grep -q "model.layers.3.block_sparse_moe.experts.3.w2.weight  *F32  *\[256, 384\]" "$T/insp" &&
    ok "mixtral read back: expert 3's w2 under its HF name" || bad "mixtral read back names"
expect_exit 5 "mixtral q4_k_m refused" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/x" --layout gguf --scheme q4_k_m -q
stderr_has "tests/data/tiny-moe: 4 experts: --layout gguf writes expert models with --method rtn" "expert-mix refusal names the count"
no_output "$T/x" "no output after the expert-mix refusal"
expect_exit 5 "mixtral gptq refused" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/x" --layout gguf --scheme q4_0 \
    --method gptq -q
no_output "$T/x" "no output after the expert-calibration refusal"
# qwen3_moe / qwen2_moe: llama.cpp's qwen3moe renormalises the top-k weights, qwen2moe does not;
# a config asking otherwise, or with dense layers among the MoE ones, is refused by name
expect_exit 0 "qwen2_moe: convert" -- "$QFORGE" convert tests/data/tiny-qwen2moe -o "$T/q2m" --layout gguf --scheme q8_0 -q
"$QFORGE" inspect "$T/q2m" --json >"$T/insp.json" 2>&1
for kv in '"general.architecture":"qwen2moe"' '"qwen2moe.expert_feed_forward_length":128' \
    '"qwen2moe.expert_shared_feed_forward_length":256'; do
    grep -qF "$kv" "$T/insp.json" && ok "qwen2moe metadata: $kv" || bad "qwen2moe metadata: $kv missing"
done
mkdir -p "$T/q3m" && cp -r tests/data/tiny-qwen3moe/. "$T/q3m/" && chmod -R u+w "$T/q3m"
sed 's/"norm_topk_prob": true/"norm_topk_prob": false/' tests/data/tiny-qwen3moe/config.json >"$T/q3m/config.json"
expect_exit 5 "qwen3_moe without norm_topk_prob refused" -- "$QFORGE" convert "$T/q3m" -o "$T/x" --layout gguf --scheme q8_0 -q
stderr_has "q3m/config.json: model_type 'qwen3_moe': grouped routing, a routed scaling factor or norm_topk_prob false" \
    "norm_topk_prob refusal names config.json"
no_output "$T/x" "no output after the norm_topk_prob refusal"
sed 's/"mlp_only_layers": \[\]/"mlp_only_layers": [1]/' tests/data/tiny-qwen3moe/config.json >"$T/q3m/config.json"
expect_exit 5 "qwen3_moe with a dense layer refused" -- "$QFORGE" convert "$T/q3m" -o "$T/x" --layout gguf --scheme q8_0 -q
stderr_has "q3m/config.json: mlp_only_layers / decoder_sparse_step make dense layers" "dense-layer refusal names config.json"
no_output "$T/x" "no output after the dense-layer refusal"
# phi3 (tiny-phi3): fused attn_qkv / ffn_up kept as they are, partial rotary as rope.dimension_count;
# read back under the fused Hugging Face names; the K_M mixes (attn_qkv rule not ported) refused
expect_exit 0 "phi3: convert" -- "$QFORGE" convert tests/data/tiny-phi3 -o "$T/p3" --layout gguf --scheme q8_0 -q
"$QFORGE" inspect "$T/p3" --json >"$T/insp.json" 2>&1
for kv in '"general.architecture":"phi3"' '"phi3.rope.dimension_count":24' '"phi3.attention.sliding_window":0'; do
    grep -qF "$kv" "$T/insp.json" && ok "phi3 metadata: $kv" || bad "phi3 metadata: $kv missing"
done
expect_exit 0 "phi3: read back" -- "$QFORGE" convert "$T/p3/model.gguf" --to safetensors -o "$T/p3back" -q
"$QFORGE" inspect "$T/p3back" --tensors >"$T/insp" 2>&1
grep -q "model.layers.2.mlp.gate_up_proj.weight  *F32  *\[512, 128\]" "$T/insp" && ok "phi3 read back: gate_up_proj under its HF name" ||
    bad "phi3 read back names"
expect_exit 5 "phi3 q4_k_m refused" -- "$QFORGE" convert tests/data/tiny-phi3 -o "$T/x" --layout gguf --scheme q4_k_m -q
stderr_has "fused qkv_proj / gate_up_proj: --layout gguf writes them with --method rtn" "fused-mix refusal names the projections"
no_output "$T/x" "no output after the fused-mix refusal"
# qwen2 with yarn (tiny-yarn): llama.cpp's rope.scaling keys; yarn on a llama config is refused
expect_exit 0 "qwen2 yarn: convert" -- "$QFORGE" convert tests/data/tiny-yarn -o "$T/q2" --layout gguf --scheme q8_0 -q
"$QFORGE" inspect "$T/q2" --json >"$T/insp.json" 2>&1
for kv in '"general.architecture":"qwen2"' '"qwen2.rope.scaling.type":"yarn"' '"qwen2.rope.scaling.factor":4' \
    '"qwen2.rope.scaling.original_context_length":128'; do
    grep -qF "$kv" "$T/insp.json" && ok "qwen2 metadata: $kv" || bad "qwen2 metadata: $kv missing"
done
mkdir -p "$T/lyarn" && cp -r $M/. "$T/lyarn/" && chmod -R u+w "$T/lyarn"
sed 's/"rope_type": *"default"/"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512/' \
    $M/config.json >"$T/lyarn/config.json"
expect_exit 5 "yarn on llama refused" -- "$QFORGE" convert "$T/lyarn" -o "$T/x" --layout gguf --scheme q8_0 -q
stderr_has "lyarn/config.json: rope type yarn is not mapped to llama.cpp's llama keys" "yarn refusal names config.json"
no_output "$T/x" "no output after the yarn refusal"
# qwen3 (tiny-tied): llama.cpp's qwen3 architecture and keys, q/k norms, no output.weight (tied:
# llama.cpp reuses token_embd), q/k rows as Hugging Face has them; read back under HF names
expect_exit 0 "qwen3: convert" -- "$QFORGE" convert tests/data/tiny-tied -o "$T/q3" --layout gguf --scheme q8_0 -q
expect_exit 0 "qwen3: verify" -- "$QFORGE" verify "$T/q3" -q
"$QFORGE" inspect "$T/q3" --tensors >"$T/insp" 2>&1
grep -q "architecture qwen3" "$T/insp" && ok "qwen3: architecture" || bad "qwen3: architecture"
grep -q "blk.2.attn_k_norm.weight  *F32" "$T/insp" && ok "qwen3: attn_k_norm" || bad "qwen3: no attn_k_norm"
grep -q "^ *output.weight" "$T/insp" && bad "qwen3: output.weight written for tied embeddings" || ok "qwen3: tied, no output.weight"
"$QFORGE" inspect "$T/q3" --json >"$T/insp.json" 2>&1
for kv in '"qwen3.block_count":3' '"qwen3.attention.head_count_kv":2' '"qwen3.attention.key_length":64' \
    '"qwen3.context_length":2048'; do
    grep -qF "$kv" "$T/insp.json" && ok "qwen3 metadata: $kv" || bad "qwen3 metadata: $kv missing"
done
expect_exit 0 "qwen3: read back" -- "$QFORGE" convert "$T/q3/model.gguf" --to safetensors -o "$T/q3back" -q
"$QFORGE" inspect "$T/q3back" --tensors >"$T/insp" 2>&1
grep -q "model.layers.0.self_attn.q_norm.weight  *F32  *\[64\]" "$T/insp" && ok "qwen3 read back: q_norm under its HF name" ||
    bad "qwen3 read back names"
# llama.cpp's llama architecture has no sliding window: a sliding model announces its window as
# the context (where sliding and full attention agree); a full-attention one its own context
expect_exit 0 "sliding-window model: convert" -- "$QFORGE" convert tests/data/tiny-swa -o "$T/swa" --layout gguf --scheme f16 -q
"$QFORGE" inspect "$T/swa" --json 2>/dev/null | grep -q '"llama.context_length": *128[,}]' && ok "sliding window 128 -> context_length 128" ||
    bad "sliding-window model: context_length is not the window"
"$QFORGE" inspect "$T/g-f16" --json 2>/dev/null | grep -q '"llama.context_length": *2048[,}]' && ok "full attention: context_length 2048" ||
    bad "full-attention model: context_length is not max_position_embeddings"
finish
