# Calibrated conversion on the fixtures with small sample counts (CI-sized): every method
# runs, is deterministic, verifies, beats RTN on held-out text, and the static schemes get
# their activation scales.  Full-size figures are in docs/bench.md.
. tests/cli/lib.sh
M=tests/data/tiny-llama
small="--calib-samples 8 --calib-seqlen 256 -q"
expect_exit 0 "gptq w4a16-asym" -- "$QFORGE" convert $M -o "$T/g" --scheme w4a16-asym --method gptq $small
expect_exit 0 "gptq again (determinism)" -- "$QFORGE" convert $M -o "$T/g2" --scheme w4a16-asym --method gptq $small
diff -r "$T/g" "$T/g2" >/dev/null && ok "gptq twice: byte-identical artifacts" || bad "gptq is not deterministic"
expect_exit 0 "gptq artifact verifies" -- "$QFORGE" verify "$T/g" -q
grep -q '"calibration"' "$T/g/qforge.manifest.json" && grep -q '"rel_output_error"' "$T/g/qforge.manifest.json" &&
    grep -q '"bundled:default-calib.txt"' "$T/g/qforge.manifest.json" && ok "manifest records the calibration" || bad "no calibration facts in the manifest"
expect_exit 0 "rtn w4a16-asym" -- "$QFORGE" convert $M -o "$T/r" --scheme w4a16-asym -q
kld() { "$QFORGE" validate --base $M --quant "$1" --text tests/data/eval.txt --chunks 3 --act-quant off --json 2>/dev/null |
    sed -n 's/.*"mean_kld":\([0-9.e-]*\).*/\1/p'; }
kr=$(kld "$T/r"); kg=$(kld "$T/g")
echo "mean KLD on 3 eval windows: rtn $kr, gptq (8 x 256 calibration tokens) $kg"
awk -v r="$kr" -v g="$kg" 'BEGIN { exit !(g > 0 && g < 0.9 * r) }' && ok "gptq beats rtn by > 10 %" || bad "gptq $kg vs rtn $kr"
for m in awq awq-gptq; do
    expect_exit 0 "$m w4a16" -- "$QFORGE" convert $M -o "$T/$m" --scheme w4a16 --method $m $small
    expect_exit 0 "$m verifies" -- "$QFORGE" verify "$T/$m" -q
done
expect_exit 0 "gptq nvfp4a16 with act-order" -- "$QFORGE" convert $M -o "$T/n" --scheme nvfp4a16 --method gptq --act-order $small
expect_exit 0 "fp8 static (rtn weights, calibrated input scales)" -- "$QFORGE" convert $M -o "$T/f" --scheme fp8 $small
"$QFORGE" inspect "$T/f" --tensors | grep -q 'q_proj.input_scale' && ok "fp8 static has input_scale tensors" || bad "no input_scale"
expect_exit 0 "nvfp4 W4A4 with gptq" -- "$QFORGE" convert $M -o "$T/w4a4" --scheme nvfp4 --method gptq $small
"$QFORGE" inspect "$T/w4a4" --tensors | grep -q 'input_global_scale' && ok "nvfp4 has input_global_scale" || bad "no input_global_scale"
expect_exit 0 "w8a8 with SmoothQuant + gptq" -- "$QFORGE" convert $M -o "$T/sq" --scheme w8a8 --method gptq --smoothquant 0.5 $small
grep -q '"smoothquant_alpha"' "$T/sq/qforge.manifest.json" && ok "smoothquant recorded" || bad "smoothquant not recorded"
# MoE: every expert calibrated; routed token counts reported
expect_exit 0 "gptq tiny-moe" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moe" --scheme w4a16-asym --method gptq $small
grep -q '"routed_tokens_per_expert"' "$T/moe/qforge.manifest.json" && ok "tokens per expert reported" || bad "no expert token counts"
# experts' statistics weighted by routing (moe_floor 0.001) unless --moe-floor all
grep -q '"moe_floor": 0.001' "$T/moe/qforge.manifest.json" && ok "recipe records moe_floor 0.001" || bad "moe_floor not in the recipe"
expect_exit 0 "gptq tiny-moe --moe-floor all" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moeall" --scheme w4a16-asym --method gptq --moe-floor all $small
grep -q '"moe_floor"' "$T/moeall/qforge.manifest.json" && bad "--moe-floor all still records a floor" || ok "--moe-floor all: no floor in the recipe"
cmp -s "$T/moe/model.safetensors" "$T/moeall/model.safetensors" && bad "routing-weighted statistics changed nothing" || ok "routing-weighted expert statistics change the experts"
# nvfp4 global scales of MoE experts: w1/w3 of one expert share one (vLLM fuses them), every
# expert and every w2 has its own, as the RTN path writes them (also with --moe-floor all).
# With the textbook target the values are RTN's; the float target measures them on the
# retargeted weights (a few % off), with the same sharing.
expect_exit 0 "rtn nvfp4a16 tiny-moe" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moe-n-rtn" --scheme nvfp4a16 -q
expect_exit 0 "gptq nvfp4a16 tiny-moe --calib-target quantized" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moe-n-q" --scheme nvfp4a16 --method gptq --calib-target quantized $small
expect_exit 0 "gptq nvfp4a16 tiny-moe" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moe-n" --scheme nvfp4a16 --method gptq $small
expect_exit 0 "gptq nvfp4a16 tiny-moe --moe-floor all" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/moe-n-all" --scheme nvfp4a16 --method gptq --moe-floor all $small
if ! command -v python3 >/dev/null 2>&1; then echo "skip - MoE nvfp4 global scales: per expert (w1 = w3), as RTN writes them (python3 not found)"; else
python3 - "$T/moe-n-rtn" "$T/moe-n-q" "$T/moe-n" "$T/moe-n-all" <<'PY' && ok "MoE nvfp4 global scales: per expert (w1 = w3), as RTN writes them" || bad "MoE nvfp4 global scales differ from RTN's sharing"
import glob, json, struct, sys
def scales(d):
    out = {}
    for f in glob.glob(d + "/*.safetensors"):
        b = open(f, "rb").read()
        n = struct.unpack("<Q", b[:8])[0]
        for k, v in json.loads(b[8:8 + n]).items():
            if k.endswith(".weight_global_scale") and ".experts." in k:
                out[k] = struct.unpack("<f", b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][0] + 4])[0]
    return out
rtn = scales(sys.argv[1])
assert len(rtn) == 4 * 4 * 3, len(rtn)
assert scales(sys.argv[2]) == rtn, sys.argv[2]
for d in [sys.argv[1]] + sys.argv[3:]:
    s = scales(d)
    assert s.keys() == rtn.keys(), d
    assert all(0.8 < s[k] / rtn[k] < 1.25 for k in s), d
    for l in range(4):
        g = lambda e, w: s["model.layers.%d.block_sparse_moe.experts.%d.%s.weight_global_scale" % (l, e, w)]
        assert all(g(e, "w1") == g(e, "w3") for e in range(4)), d
        assert len({g(e, "w1") for e in range(4)}) > 1, d
PY
fi
# partitioned GPTQ: each slice re-runs (and re-quantizes) the layers before it for its inputs,
# so the merged parts equal the single run byte for byte
"$QFORGE" convert $M -o "$T/gp0" --scheme w4a16-asym --method gptq $small --layers 0-2 >/dev/null 2>&1
"$QFORGE" convert $M -o "$T/gp1" --scheme w4a16-asym --method gptq $small --layers 3-5 >/dev/null 2>&1
expect_exit 0 "merge gptq slices" -- "$QFORGE" merge "$T/gp1" "$T/gp0" -o "$T/gmerged" -q
diff -r "$T/g" "$T/gmerged" >/dev/null && ok "merged gptq slices identical to the single gptq run" || bad "gptq slices differ from the single run"
# calibration data: JSONL, errors
printf '{"text": "%s"}\n{"text": "%s"}\n' "$(head -c 3000 tests/data/calib.txt | tr -cd '[:alnum:] .,')" "$(tail -c 3000 tests/data/calib.txt | tr -cd '[:alnum:] .,')" >"$T/c.jsonl"
expect_exit 0 "JSONL calibration file" -- "$QFORGE" convert $M -o "$T/j" --scheme w4a16 --method gptq --calib "$T/c.jsonl" --calib-samples 4 --calib-seqlen 128 -q
echo '{"nottext": 1}' >"$T/bad.jsonl"
expect_exit 4 "JSONL without text" -- "$QFORGE" convert $M -o "$T/b" --scheme w4a16 --method gptq --calib "$T/bad.jsonl" -q
stderr_has "bad.jsonl" "bad JSONL named"
no_output "$T/b" "no output after bad calibration data"
echo "too short" >"$T/short.txt"
expect_exit 2 "calibration text shorter than a window" -- "$QFORGE" convert $M -o "$T/s" --scheme w4a16 --method gptq --calib "$T/short.txt" -q
expect_exit 2 "unknown method" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --method magic -q
# GPTQ's clip search (default 20) and scale refit (off by default) are part of the recipe
grep -q '"clip_search": 20' "$T/g/qforge.manifest.json" && grep -q '"refit": 0' "$T/g/qforge.manifest.json" &&
    ok "default recipe: clip_search 20, refit 0" || bad "clip_search / refit not in the recipe"
expect_exit 0 "gptq textbook (--clip-search 0) with --refit 2" -- "$QFORGE" convert $M -o "$T/rf" --scheme w4a16-asym --method gptq --clip-search 0 --refit 2 $small
grep -q '"clip_search": 0' "$T/rf/qforge.manifest.json" && grep -q '"refit": 2' "$T/rf/qforge.manifest.json" &&
    ok "recipe records --clip-search 0 --refit 2" || bad "recipe misses the GPTQ options"
if ! command -v python3 >/dev/null 2>&1; then echo "skip - refit_gain reported for every Linear, in [0, 1) (python3 not found)"; else
python3 - "$T/rf/qforge.manifest.json" <<'PY' && ok "refit_gain reported for every Linear, in [0, 1)" || bad "refit_gain missing or out of range"
import json, sys
m = json.load(open(sys.argv[1]))
gains = []
def walk(o):
    if isinstance(o, dict):
        if "refit_gain" in o: gains.append(o["refit_gain"])
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
walk(m)
sys.exit(not (len(gains) == 42 and all(0 <= g < 1 for g in gains) and max(gains) > 0))
PY
fi
cmp -s "$T/g/model.safetensors" "$T/rf/model.safetensors" && bad "--clip-search 0 --refit 2 wrote the default's bytes" || ok "the GPTQ options change the weights"
# code descent (--descent N, off by default): recorded, a gain reported for every Linear
# (GPTQ's greedy codes are no local minimum of the output error), other bytes
grep -q '"descent": 0' "$T/g/qforge.manifest.json" && ok "default recipe: descent 0" || bad "descent not in the recipe"
expect_exit 0 "gptq --descent 4" -- "$QFORGE" convert $M -o "$T/cd" --scheme w4a16-asym --method gptq --descent 4 $small
grep -q '"descent": 4' "$T/cd/qforge.manifest.json" && ok "recipe records --descent 4" || bad "recipe misses --descent"
if ! command -v python3 >/dev/null 2>&1; then echo "skip - descent_gain reported for every Linear, in (0, 1) (python3 not found)"; else
python3 - "$T/cd/qforge.manifest.json" <<'PY' && ok "descent_gain reported for every Linear, in (0, 1)" || bad "descent_gain missing or out of range"
import json, sys
m = json.load(open(sys.argv[1]))
gains = []
def walk(o):
    if isinstance(o, dict):
        if "descent_gain" in o: gains.append(o["descent_gain"])
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
walk(m)
sys.exit(not (len(gains) == 42 and all(0 < g < 1 for g in gains)))
PY
fi
cmp -s "$T/g/model.safetensors" "$T/cd/model.safetensors" && bad "--descent 4 wrote the default's bytes" || ok "--descent changes the weights"
expect_exit 2 "--descent above 100" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --method gptq --descent 101 -q
stderr_has "0 <= descent <= 100" "--descent range named"
# the float target (default for gptq, awq, awq-gptq): recorded, reported per Linear, and
# --calib-target quantized (textbook GPTQ) writes other weights
grep -q '"target": "float"' "$T/g/qforge.manifest.json" && grep -q '"float_target_shift"' "$T/g/qforge.manifest.json" &&
    ok "recipe records the float target, report its shift" || bad "float target not in the recipe / report"
expect_exit 0 "gptq --calib-target quantized" -- "$QFORGE" convert $M -o "$T/gq" --scheme w4a16-asym --method gptq --calib-target quantized $small
grep -q '"target": "quantized"' "$T/gq/qforge.manifest.json" && ! grep -q '"float_target_shift"' "$T/gq/qforge.manifest.json" &&
    ok "recipe records the textbook target" || bad "--calib-target quantized not recorded"
cmp -s "$T/g/model.safetensors" "$T/gq/model.safetensors" && bad "the float target changed nothing" || ok "the float target changes the weights"
kq=$(kld "$T/gq")
echo "mean KLD on 3 eval windows: gptq float target $kg, textbook target $kq"
awk -v q="$kq" -v g="$kg" 'BEGIN { exit !(g < q) }' && ok "the float target beats the textbook target with 8 x 256 tokens" || bad "float target $kg vs textbook $kq"
grep -q '"target": "float"' "$T/awq/qforge.manifest.json" && grep -q '"float_target_shift"' "$T/awq/qforge.manifest.json" &&
    ok "awq uses the float target too" || bad "awq without the float target"
grep -q '"target"' "$T/f/qforge.manifest.json" && bad "rtn weights (fp8 static) record a target" || ok "rtn keeps its plain rounding (no target)"
expect_exit 2 "bad --calib-target" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --method gptq --calib-target best -q
stderr_has "--calib-target 'best'" "bad --calib-target named"
expect_exit 2 "negative --clip-search" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --method gptq --clip-search -1 -q
expect_exit 2 "--moe-floor that is not a number" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/u" --scheme w4a16 --method gptq --moe-floor abc -q
stderr_has "--moe-floor 'abc'" "bad --moe-floor named"
no_output "$T/u" "no output after a bad option"
# numeric options take the whole text as the number (atoi used to read "abc" as 0)
for bad in "--clip-search abc" "--calib-samples 12x" "--damp x" "--seed -3" "--threads 1.5" "--refit 2e" "--descent 4x"; do
    expect_exit 2 "convert $bad" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --method gptq $bad -q
    stderr_has "${bad%% *} '${bad#* }'" "$bad named in the error"
done
no_output "$T/u" "no output after bad numbers"
# rotations (--rotate): the float model is unchanged, so a rotated artifact that keeps every
# Linear in full precision differs from the original by bf16 rounding only
expect_exit 0 "rotated, every Linear kept" -- "$QFORGE" convert $M -o "$T/rot0" --scheme w4a16 --rotate hadamard --ignore '.*' $small
k0=$(kld "$T/rot0")
echo "mean KLD on 3 eval windows of the rotated bf16 model: $k0"
awk -v k="$k0" 'BEGIN { exit !(k >= 0 && k < 1e-3) }' && ok "rotated float model: KLD $k0 (bf16 rounding)" || bad "rotated float model drifts: $k0"
grep -q '"rotation"' "$T/g/qforge.manifest.json" && bad "a run without --rotate records a rotation" || ok "no rotation recorded without --rotate"
expect_exit 0 "nvfp4 W4A4 gptq, rotated in blocks of 16" -- "$QFORGE" convert $M -o "$T/rot" --scheme nvfp4 --method gptq --rotate hadamard --rotate-block 16 $small
expect_exit 0 "rotated artifact verifies" -- "$QFORGE" verify "$T/rot" -q
grep -q '"kind": "hadamard"' "$T/rot/qforge.manifest.json" && grep -q '"block": 16' "$T/rot/qforge.manifest.json" &&
    ok "recipe records the rotation" || bad "rotation not in the recipe"
expect_exit 0 "rotated again (determinism)" -- "$QFORGE" convert $M -o "$T/rot2" --scheme nvfp4 --method gptq --rotate hadamard --rotate-block 16 $small
cmp -s "$T/rot/model.safetensors" "$T/rot2/model.safetensors" && ok "rotation twice: byte-identical" || bad "rotation is not deterministic"
expect_exit 0 "another --rotate-seed" -- "$QFORGE" convert $M -o "$T/rot3" --scheme nvfp4 --method rtn --rotate orthogonal --rotate-seed 7 $small
expect_exit 0 "rotated MoE" -- "$QFORGE" convert tests/data/tiny-moe -o "$T/rotmoe" --scheme w4a16 --method gptq --rotate hadamard $small
expect_exit 5 "tied embeddings under a non-unit final norm" -- "$QFORGE" convert tests/data/tiny-tied -o "$T/u" --scheme w4a16 --rotate hadamard $small
stderr_has "tied embeddings under a final norm" "tied refusal says why"
expect_exit 2 "unknown --rotate" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --rotate givens -q
stderr_has "--rotate 'givens'" "bad --rotate named"
expect_exit 2 "--rotate-block that does not divide the hidden size" -- "$QFORGE" convert $M -o "$T/u" --scheme w4a16 --rotate hadamard --rotate-block 100 $small
stderr_has "does not divide the hidden size" "bad --rotate-block named"
expect_exit 2 "--rotate with --to safetensors" -- "$QFORGE" convert $M -o "$T/u" --to safetensors --rotate hadamard -q
no_output "$T/u" "no output after a refused rotation"
finish
