# The fixtures built with transformers (tests/tools/make_fixtures.py): tiny-tied (qwen3, tied
# embeddings, no lm_head tensor), tiny-swa (mistral, sliding_window 128), tiny-yarn (qwen2,
# q/k/v biases, YaRN RoPE scaling), tiny-gemma3 (gemma3_text), tiny-phi3 (phi3, fused
# projections, partial rotary; tiny-phi3-longrope: its weights with LongRoPE), tiny-glm4moe (glm4_moe:
# sigmoid grouped routing, shared expert), tiny-gptoss (gpt_oss: sinks, fused interleaved experts,
# clamped SwiGLU), tiny-llama4 (llama4_text: NoPE / chunked layers, fused experts, input-weighted
# routing), tiny-nemotronh (nemotron_h: Mamba-2 hybrid with MoE), tiny-qwen3next (qwen3_next: gated
# DeltaNet + gated attention, MoE + gated shared expert) and tiny-qwen35moe (qwen3_5_moe_text: the same
# with four DeltaNet projections) and tiny-deepseekv3 / tiny-deepseekv32 (deepseek_v3 / v32: MLA
# attention, YaRN with mscale_all_dim, glm4_moe's MoE).  `validate` must
# reproduce transformers' PPL through the CLI (tokenizer included), every RTN scheme must
# convert, verify and validate, and `inspect` must say why it could not use a config.json.
. tests/cli/lib.sh
# rel_within A B TOL: |A/B - 1| <= TOL
rel_within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a / b - 1; if (d < 0) d = -d; exit !(b > 0 && d <= t) }'; }
json_num() { sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" "$2" | head -n 1; }
for model in tiny-tied tiny-swa tiny-yarn tiny-gemma3 tiny-phi3 tiny-phi3-longrope tiny-glm4moe tiny-gptoss tiny-llama4 tiny-nemotronh \
    tiny-qwen3next tiny-qwen35moe tiny-deepseekv3 tiny-deepseekv32; do
    ref=$(json_num ppl tests/data/$model.reference.json)
    n=$(json_num windows tests/data/$model.reference.json)
    expect_exit 0 "validate $model, $n windows" -- "$QFORGE" validate --base tests/data/$model \
        --text tests/data/eval.txt --chunks "$n" --json -q
    got=$(json_num ppl "$T/stdout")
    # measured: 1e-9 (tiny-tied), 3.3e-8 (tiny-swa), 9.5e-9 (tiny-yarn), 2e-9 (tiny-gemma3), 7e-9 (tiny-phi3),
    # 9e-9 (tiny-glm4moe), 1.1e-8 (tiny-phi3-longrope, long factors), 6.2e-9 (tiny-gptoss), 2.4e-8 (tiny-llama4),
    # 7e-10 (tiny-nemotronh), 5e-8 (tiny-qwen3next), 1.6e-8 (tiny-deepseekv3),
    # 1.6e-8 (tiny-deepseekv32);
    # the limit's reason is in tests/test_model_families.c
    if rel_within "$got" "$ref" 1e-6; then ok "$model PPL $got = transformers $ref"
    else bad "$model PPL $got, transformers $ref (limit 1e-6 relative)"; fi
    for s in fp8-dynamic w4a16 w4a16-asym nvfp4a16 mxfp4a16 w8a8; do
        out=$T/$model-$s
        expect_exit 0 "convert $model $s" -- "$QFORGE" convert tests/data/$model -o "$out" --scheme $s -q
        expect_exit 0 "verify $model $s" -- "$QFORGE" verify "$out" -q
        expect_exit 0 "validate $model $s" -- "$QFORGE" validate --base tests/data/$model --quant "$out" \
            --text tests/data/eval.txt --chunks 2 --json -q
    done
done
expect_exit 0 "validate tiny-swa, information lines" -- "$QFORGE" validate --base tests/data/tiny-swa \
    --text tests/data/eval.txt --chunks 1
grep -q "sliding-window attention on 3 of 3 layers: a token sees the last 128" "$T/stderr" &&
    ok "validate says the window is in use" || bad "validate does not mention the window: $(head -c 300 "$T/stderr")"
# the sliding window reaches the artifact: its config keeps sliding_window
grep -q '"sliding_window": *128' "$T/tiny-swa-w4a16/config.json" && ok "artifact keeps sliding_window" ||
    bad "artifact config lost sliding_window"
# calibration runs the same attention: GPTQ on tiny-swa with and without the window (512-token
# samples, 128-token window) must give different weights
rm -rf "$T/nowin"; cp -r tests/data/tiny-swa "$T/nowin"; chmod -R u+w "$T/nowin"
sed -i 's/"sliding_window": 128/"sliding_window": null/' "$T/nowin/config.json"
expect_exit 0 "gptq tiny-swa" -- "$QFORGE" convert tests/data/tiny-swa -o "$T/g1" --scheme w4a16 --method gptq --calib-samples 8 -q
expect_exit 0 "gptq tiny-swa without its window" -- "$QFORGE" convert "$T/nowin" -o "$T/g2" --scheme w4a16 --method gptq --calib-samples 8 -q
cmp -s "$T/g1/model.safetensors" "$T/g2/model.safetensors" && bad "calibration ignores the sliding window" ||
    ok "calibration sees the sliding window"
# Gemma 3, Phi-3, GLM-4.5, GPT-OSS and Nemotron-H calibrate: GPTQ (weights only, the same text) must beat RTN's mean
# KLD, as on the Llama fixtures (docs/bench.md has the default-sample figures; 32 samples here),
# and every expert of the MoE fixture must have seen calibration tokens
kld_of() { sed -n 's/.*"mean_kld": *\([-0-9.eE+]*\).*/\1/p' "$T/stdout" | head -n 1; }
for model in tiny-gemma3 tiny-phi3 tiny-glm4moe tiny-gptoss tiny-nemotronh tiny-qwen3next tiny-qwen35moe tiny-deepseekv3 \
    tiny-deepseekv32; do
    expect_exit 0 "gptq $model" -- "$QFORGE" convert tests/data/$model -o "$T/$model-gptq" --scheme w4a16 \
        --method gptq --calib-samples 32 -q
    expect_exit 0 "verify gptq $model" -- "$QFORGE" verify "$T/$model-gptq" -q
    expect_exit 0 "validate gptq $model" -- "$QFORGE" validate --base tests/data/$model --quant "$T/$model-gptq" \
        --text tests/data/eval.txt --chunks 32 --json -q
    kg=$(kld_of)
    expect_exit 0 "validate rtn $model" -- "$QFORGE" validate --base tests/data/$model --quant "$T/$model-w4a16" \
        --text tests/data/eval.txt --chunks 32 --json -q
    kr=$(kld_of)
    awk -v g="$kg" -v r="$kr" 'BEGIN { exit !(g > 0 && r > 0 && g < r) }' &&
        ok "$model w4a16: GPTQ mean KLD $kg < RTN $kr" || bad "$model w4a16: GPTQ mean KLD '$kg' not below RTN '$kr'"
    moe_layers=0
    [ $model = tiny-glm4moe ] && moe_layers=2
    [ $model = tiny-gptoss ] && moe_layers=4
    [ $model = tiny-nemotronh ] && moe_layers=1
    [ $model = tiny-qwen3next ] && moe_layers=3
    [ $model = tiny-qwen35moe ] && moe_layers=4
    [ $model = tiny-deepseekv3 ] && moe_layers=2
    [ $model = tiny-deepseekv32 ] && moe_layers=1
    if [ $moe_layers -gt 0 ]; then
        counts=$(tr -d ' \n' <"$T/$model-gptq/qforge.manifest.json" | grep -o '"routed_tokens_per_expert":\[[0-9,]*\]')
        [ "$(echo "$counts" | wc -l)" = $moe_layers ] && ! echo "$counts" | grep -q '[[,]0[],]' &&
            ok "$model: every expert of its $moe_layers MoE layers saw calibration tokens" ||
            bad "$model: routed_tokens_per_expert: '$counts'"
    fi
    # calibration quantizes exactly the Linears RTN does (qwen3_next: the DeltaNet's in_proj_qkvz,
    # in_proj_ba and out_proj included; qwen3_5_moe_text: in_proj_qkv, _z, _b, _a; conv1d / A_log /
    # dt_bias / norms dense in both)
    packed() { tr -d ' \n' <"$1/qforge.manifest.json" | grep -o '"name":"[^"]*\.weight_packed"' | sort; }
    [ -n "$(packed "$T/$model-gptq")" ] && [ "$(packed "$T/$model-gptq")" = "$(packed "$T/$model-w4a16")" ] &&
        ok "$model: GPTQ quantizes the same $(packed "$T/$model-gptq" | wc -l) Linears as RTN" ||
        bad "$model: GPTQ and RTN quantize different Linears"
    # AWQ folds scales into x*w norms: refused for (1 + w) norms, fused gate_up and shared experts
    expect_exit 5 "awq $model refused" -- "$QFORGE" convert tests/data/$model -o "$T/$model-awq" --scheme w4a16 \
        --method awq -q
    stderr_has "does not fold into model_type" "awq refusal names the reason"
    no_output "$T/$model-awq" "no artifact after the awq refusal"
done
# GPT-OSS: GPTQ writes exactly the tensors RTN writes (names, dtypes, shapes, files): the fused
# experts stay in full precision, listed, byte for byte the base's (convert_plan.h says why), while
# calibration runs through them (every expert's tokens are counted above)
tensor_layout() { sed -n '/"tensors": \[/,/^ \]/p' "$1/qforge.manifest.json" | grep -v '"xxh3_128"'; }
if [ "$(tensor_layout "$T/tiny-gptoss-gptq")" = "$(tensor_layout "$T/tiny-gptoss-w4a16")" ] &&
   [ -n "$(tensor_layout "$T/tiny-gptoss-gptq")" ]; then ok "tiny-gptoss: GPTQ writes RTN's tensor layout"
else bad "tiny-gptoss: GPTQ's tensors differ from RTN's in name, dtype, shape or file"; fi
expert_hashes() { tr -d ' \n' <"$1/qforge.manifest.json" | grep -o '"name":"model.layers.[0-9]*.mlp.experts.[a-z_]*","shape":\[[0-9,]*\],"xxh3_128":"[0-9a-f]*"'; }
[ "$(expert_hashes "$T/tiny-gptoss-gptq" | wc -l)" = 16 ] &&
    [ "$(expert_hashes "$T/tiny-gptoss-gptq")" = "$(expert_hashes "$T/tiny-gptoss-w4a16")" ] &&
    ok "tiny-gptoss: the 16 fused expert tensors hash as in the RTN artifact" ||
    bad "tiny-gptoss: fused expert tensors: $(expert_hashes "$T/tiny-gptoss-gptq" | head -c 300)"
# nemotron_h: GPTQ quantizes exactly the Linears RTN does (in_proj / out_proj, q/k/v/o, up / down,
# every expert's and the shared expert's up / down; lm_head and the router kept), and the Mamba
# vectors stay dense
names_of() { tr -d ' \n' <"$1/qforge.manifest.json" | grep -o '"name":"[^"]*","shape"' | sort; }
[ "$(names_of "$T/tiny-nemotronh-gptq")" = "$(names_of "$T/tiny-nemotronh-w4a16")" ] &&
    names_of "$T/tiny-nemotronh-gptq" | grep -q '"backbone.layers.0.mixer.in_proj.weight_packed",' &&
    names_of "$T/tiny-nemotronh-gptq" | grep -q '"backbone.layers.0.mixer.out_proj.weight_packed"' &&
    names_of "$T/tiny-nemotronh-gptq" | grep -q '"backbone.layers.0.mixer.A_log"' &&
    names_of "$T/tiny-nemotronh-gptq" | grep -q '"backbone.layers.3.mixer.experts.7.up_proj.weight_packed",' &&
    names_of "$T/tiny-nemotronh-gptq" | grep -q '"backbone.layers.3.mixer.gate.weight",' &&
    ok "tiny-nemotronh: GPTQ writes the tensors RTN writes (in_proj / out_proj packed, A_log dense)" ||
    bad "tiny-nemotronh: GPTQ and RTN artifacts hold different tensors"
# MoE experts behind a latent projection (moe_latent_size) are not run: refused by key, nothing written
rm -rf "$T/nhmoe"; cp -r tests/data/tiny-nemotronh "$T/nhmoe"; chmod -R u+w "$T/nhmoe"
sed -i 's/"moe_latent_size": null/"moe_latent_size": 64/' "$T/nhmoe/config.json"
expect_exit 5 "nemotron_h moe_latent_size refused" -- "$QFORGE" validate --base "$T/nhmoe" --text tests/data/eval.txt --chunks 1 -q
stderr_has "moe_latent_size is not supported by the runner" "refusal names the key"
expect_exit 5 "gptq of nemotron_h with moe_latent_size refused" -- "$QFORGE" convert "$T/nhmoe" -o "$T/nhmoe-g" --scheme w4a16 \
    --method gptq --calib-samples 8 -q
no_output "$T/nhmoe-g" "no artifact after the moe_latent_size refusal"
# DeepSeek-V3's MLA: GPTQ calibrates every attention Linear RTN quantizes (q_a, q_b, kv_a_proj_with_mqa,
# kv_b, o of each layer: each reports its calibration tokens, and its packed weight is not RTN's),
# in RTN's layout (the same tensor names, shapes and dtypes)
man_gptq=$(tr -d ' \n' <"$T/tiny-deepseekv3-gptq/qforge.manifest.json")
tensor_list() { tr -d ' \n' <"$1/qforge.manifest.json" | grep -o '"name":"model[^"]*","shape":\[[0-9,]*\]' | sort; }
tensor_hash() { tr -d ' \n' <"$1/qforge.manifest.json" | grep -o "\"name\":\"$2\",\"shape\":\[[0-9,]*\],\"xxh3_128\":\"[0-9a-f]*\""; }
n_mla=0
for l in 0 1 2; do
    for p in q_a_proj q_b_proj kv_a_proj_with_mqa kv_b_proj o_proj; do
        t=model.layers.$l.self_attn.$p
        echo "$man_gptq" | grep -q "\"$t\":{[^}]*\"tokens\":[1-9]" || bad "$t: no GPTQ calibration tokens in the report"
        a=$(tensor_hash "$T/tiny-deepseekv3-gptq" $t.weight_packed); b=$(tensor_hash "$T/tiny-deepseekv3-w4a16" $t.weight_packed)
        [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] && n_mla=$((n_mla + 1)) || bad "$t: gptq '$a' rtn '$b'"
    done
done
[ $n_mla = 15 ] && ok "tiny-deepseekv3: the 15 MLA Linears are GPTQ-calibrated and packed" ||
    bad "tiny-deepseekv3: $n_mla of 15 MLA Linears calibrated"
[ -n "$(tensor_list "$T/tiny-deepseekv3-gptq")" ] &&
    [ "$(tensor_list "$T/tiny-deepseekv3-gptq")" = "$(tensor_list "$T/tiny-deepseekv3-w4a16")" ] &&
    ok "tiny-deepseekv3: GPTQ writes RTN's tensors (names, shapes)" || bad "tiny-deepseekv3: GPTQ and RTN layouts differ"
# without a q LoRA (tiny-deepseekv3-qproj: q_lora_rank null, rope_interleave false, default RoPE) the
# runner matches transformers and GPTQ calibrates q_proj beside kv_a_proj_with_mqa
m=tiny-deepseekv3-qproj
expect_exit 0 "validate $m" -- "$QFORGE" validate --base tests/data/$m --text tests/data/eval.txt --chunks 16 --json -q
got=$(json_num ppl "$T/stdout"); ref=$(json_num ppl tests/data/$m.reference.json)
rel_within "$got" "$ref" 1e-6 && ok "$m PPL $got = transformers $ref" || bad "$m PPL $got, transformers $ref"
expect_exit 0 "rtn $m" -- "$QFORGE" convert tests/data/$m -o "$T/$m-rtn" --scheme w4a16 -q
expect_exit 0 "gptq $m" -- "$QFORGE" convert tests/data/$m -o "$T/$m-gptq" --scheme w4a16 --method gptq --calib-samples 8 -q
for t in model.layers.0.self_attn.q_proj model.layers.1.self_attn.q_proj; do
    a=$(tensor_hash "$T/$m-gptq" $t.weight_packed); b=$(tensor_hash "$T/$m-rtn" $t.weight_packed)
    tr -d ' \n' <"$T/$m-gptq/qforge.manifest.json" | grep -q "\"$t\":{[^}]*\"tokens\":[1-9]" && [ -n "$a" ] && [ -n "$b" ] &&
        [ "$a" != "$b" ] && ok "$m: $t GPTQ-calibrated" || bad "$m: $t gptq '$a' rtn '$b'"
done
# DeepSeek-V3.2: with index_topk 512 its indexer keeps every key of a 512-token window and the model is
# V3's (the PPL above); a longer sequence is refused, naming index_topk, in validate and in calibration.
# GPTQ calibrates the indexer's Linears too (from their real inputs; they do not change the output
# there), in RTN's layout
m=tiny-deepseekv32
expect_exit 5 "$m: a 1024-token window refused" -- "$QFORGE" validate --base tests/data/$m --text tests/data/eval.txt \
    --ctx 1024 --chunks 1 -q
stderr_has "a sequence of 1024 tokens is longer than index_topk 512" "the refusal names index_topk"
expect_exit 5 "$m: 1024-token calibration samples refused" -- "$QFORGE" convert tests/data/$m -o "$T/$m-1k" \
    --scheme w4a16 --method gptq --calib-samples 2 --calib-seqlen 1024 -q
stderr_has "longer than index_topk 512" "the calibration refusal names index_topk"
no_output "$T/$m-1k" "no artifact after the refusal"
n_idx=0
for l in 0 1; do
    for p in q_a_proj q_b_proj kv_a_proj_with_mqa kv_b_proj o_proj indexer.wq_b indexer.wk indexer.weights_proj; do
        t=model.layers.$l.self_attn.$p
        a=$(tensor_hash "$T/$m-gptq" $t.weight_packed); b=$(tensor_hash "$T/$m-w4a16" $t.weight_packed)
        tr -d ' \n' <"$T/$m-gptq/qforge.manifest.json" | grep -q "\"$t\":{[^}]*\"tokens\":[1-9]" && [ -n "$a" ] &&
            [ -n "$b" ] && [ "$a" != "$b" ] && n_idx=$((n_idx + 1)) || bad "$m: $t gptq '$a' rtn '$b'"
    done
done
[ $n_idx = 16 ] && ok "$m: the 16 attention and indexer Linears are GPTQ-calibrated" || bad "$m: $n_idx of 16 calibrated"
[ "$(tensor_list "$T/$m-gptq")" = "$(tensor_list "$T/$m-w4a16")" ] && ok "$m: GPTQ writes RTN's tensors" ||
    bad "$m: GPTQ and RTN layouts differ"
# GLM-4.5 / DeepSeek checkpoints store their MTP layers after the decoder's (num_nextn_predict_layers):
# the runner does not run them, so a calibrated conversion gives them RTN instead of failing.
# tiny-glm4moe with num_hidden_layers 2 makes its layer 2 such a layer.
rm -rf "$T/mtp"; cp -r tests/data/tiny-glm4moe "$T/mtp"; chmod -R u+w "$T/mtp"
sed -i 's/"num_hidden_layers": 3/"num_hidden_layers": 2/' "$T/mtp/config.json"
expect_exit 0 "gptq with an MTP layer" -- "$QFORGE" convert "$T/mtp" -o "$T/mtp-gptq" --scheme w4a16 --method gptq \
    --calib-samples 8 -q
expect_exit 0 "rtn with an MTP layer" -- "$QFORGE" convert "$T/mtp" -o "$T/mtp-rtn" --scheme w4a16 -q
for t in model.layers.2.self_attn.q_proj.weight_packed model.layers.1.self_attn.q_proj.weight_packed; do
    a=$(tensor_hash "$T/mtp-gptq" $t); b=$(tensor_hash "$T/mtp-rtn" $t)
    case $t in *layers.2.*) want=same ;; *) want=different ;; esac
    { [ -n "$a" ] && { [ "$a" = "$b" ] && got=same || got=different; } && [ $got = $want ]; } &&
        ok "MTP layers are RTN, decoder layers GPTQ: $t $want" || bad "$t: gptq '$a' rtn '$b', wanted $want"
done
# the full-attention number is not what validate prints (the test above could fail)
full=$(json_num full_attention_ppl tests/data/tiny-swa.reference.json)
ref=$(json_num ppl tests/data/tiny-swa.reference.json)
rel_within "$full" "$ref" 1e-3 && bad "tiny-swa: full attention within 0.1 % of the reference" ||
    ok "tiny-swa: full attention PPL $full is outside the limit around $ref"
# a variant the runner does not implement is refused, naming the file and the key
rm -rf "$T/in"; cp -r tests/data/tiny-swa "$T/in"; chmod -R u+w "$T/in"
sed -i 's/"sliding_window": 128/"sliding_window": 0/' "$T/in/config.json"
expect_exit 5 "sliding_window 0 refused" -- "$QFORGE" validate --base "$T/in" --text tests/data/eval.txt --chunks 1 -q
stderr_has "config.json: sliding_window is 0" "refusal names the file and key"
rm -rf "$T/in"; cp -r tests/data/tiny-tied "$T/in"; chmod -R u+w "$T/in"
sed -i 's/"use_sliding_window": false/"use_sliding_window": true/; s/"full_attention",/"chunked_attention",/' "$T/in/config.json"
expect_exit 5 "unknown layer type refused" -- "$QFORGE" validate --base "$T/in" --text tests/data/eval.txt --chunks 1 -q
stderr_has "config.json: layer_types[0] is 'chunked_attention'" "refusal names layer_types[0]"
# qwen3_next: a layer kind the runner does not implement, and DeltaNet shapes it cannot hold, are refused
rm -rf "$T/in"; cp -r tests/data/tiny-qwen3next "$T/in"; chmod -R u+w "$T/in"
sed -i '0,/"linear_attention"/s//"mamba"/' "$T/in/config.json"
expect_exit 5 "qwen3_next: unknown layer type refused" -- "$QFORGE" validate --base "$T/in" --text tests/data/eval.txt \
    --chunks 1 -q
stderr_has "config.json: layer_types[0] is 'mamba'" "refusal names layer_types[0]"
rm -rf "$T/in"; cp -r tests/data/tiny-qwen3next "$T/in"; chmod -R u+w "$T/in"
sed -i 's/"linear_value_head_dim": 32/"linear_value_head_dim": 64/' "$T/in/config.json"
expect_exit 5 "qwen3_next: value dim != attention dim refused" -- "$QFORGE" validate --base "$T/in" \
    --text tests/data/eval.txt --chunks 1 -q
stderr_has "linear_num_value_heads x linear_value_head_dim (256) differs" "refusal names the keys"
# inspect: a config.json that is there but unusable is reported with the parser's reason
printf '{\n  "model_type": "qwen3",\n  "hidden_size": 128,,\n}\n' >"$T/in/config.json"
expect_exit 0 "inspect with a broken config.json" -- "$QFORGE" inspect "$T/in"
grep -q "config.json: not valid JSON at line 3, column 22" "$T/stdout" && ok "inspect names line and column" ||
    bad "inspect did not say what it could not parse: $(head -c 300 "$T/stdout")"
grep -q "no config.json" "$T/stdout" && bad "inspect claims there is no config.json" || ok "inspect does not claim a missing file"
stderr_has "config.json: not valid JSON" "inspect warns on stderr, one line"
expect_exit 0 "inspect --json with a broken config.json" -- "$QFORGE" inspect "$T/in" --json
grep -q '"config_error":"[^"]*not valid JSON at line 3' "$T/stdout" && ok "inspect --json has config_error" ||
    bad "inspect --json: no config_error: $(head -c 300 "$T/stdout")"
printf '{"model_type":"qwen3","hidden_size":"128","num_hidden_layers":3,"num_attention_heads":4,"vocab_size":8192}' \
    >"$T/in/config.json"
expect_exit 0 "inspect with a string where a size belongs" -- "$QFORGE" inspect "$T/in"
grep -q "config.json: hidden_size is not an integer" "$T/stdout" && ok "inspect names the key" ||
    bad "inspect did not name the key: $(head -c 300 "$T/stdout")"
rm "$T/in/config.json"
expect_exit 0 "inspect without config.json" -- "$QFORGE" inspect "$T/in"
grep -q "no config.json" "$T/stdout" && ok "a missing config.json is called missing" || bad "missing config.json not reported"
# GGUF has no YaRN mapping in qforge yet: refused, never written as plain RoPE (a llama
# config so that the refusal is the RoPE's, not the model type's)
rm -rf "$T/yarn-llama"; cp -r tests/data/tiny-yarn "$T/yarn-llama"; chmod -R u+w "$T/yarn-llama"
sed -i 's/"model_type": "qwen2"/"model_type": "llama"/' "$T/yarn-llama/config.json"
expect_exit 5 "gguf of a YaRN model refused" -- "$QFORGE" convert "$T/yarn-llama" -o "$T/yarn-gguf" --layout gguf --scheme q8_0 -q
stderr_has "rope type yarn is not mapped" "refusal names YaRN"
no_output "$T/yarn-gguf" "no GGUF after the refusal"
# Llama 4's fused experts are unfused for RTN only: calibration is refused by name, nothing written
expect_exit 5 "gptq of tiny-llama4 refused" -- "$QFORGE" convert tests/data/tiny-llama4 -o "$T/l4-gptq" --scheme w4a16 \
    --method gptq --calib-samples 4 -q
stderr_has "feed_forward.experts.down_proj': fused 3-D experts are unfused for RTN" "refusal names the fused tensor"
no_output "$T/l4-gptq" "no artifact after the refusal"
finish
