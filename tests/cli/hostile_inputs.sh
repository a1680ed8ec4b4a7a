# Hostile paths and broken models (issue 16): the input is never deleted or written into,
# --force replaces only qforge's own artifacts, files outside the model folder are never
# copied into an artifact, a FIFO does not hang, and a NaN drift fails validate's gates.
. tests/cli/lib.sh
mk() { rm -rf "$T/in"; cp -r tests/data/tiny-llama "$T/in"; chmod -R u+w "$T/in"; }
fingerprint() { (cd "$1" && ls -la | awk '{print $5, $9}'; cat ./* | cksum); }
mk; before=$(fingerprint "$T/in")
input_intact() { # input_intact WHAT
    if [ -d "$T/in" ] && [ "$(fingerprint "$T/in")" = "$before" ]; then ok "$1: input intact"; else bad "$1: input changed or deleted"; fi
}

# 1. -o at the input, inside it, or above it: refused before anything is touched, --force or not
expect_exit 2 "-o = input, --force" -- "$QFORGE" convert "$T/in" -o "$T/in" --scheme w4a16 --force -q
stderr_has "inside the input" "-o = input named"
input_intact "-o = input"
expect_exit 2 "-o = input/ (trailing slash), --force" -- "$QFORGE" convert "$T/in" -o "$T/in/" --scheme w4a16 --force -q
input_intact "-o = input/"
expect_exit 2 "-o inside the input" -- "$QFORGE" convert "$T/in" -o "$T/in/q" --scheme w4a16 -q
input_intact "-o inside the input"
[ ! -e "$T/in/q" ] && [ ! -e "$T/in/q.qforge-tmp" ] && ok "nothing created inside the input" || bad "output created inside the input"
expect_exit 2 "-o = parent of the input, --force" -- "$QFORGE" convert "$T/in" -o "$T" --scheme w4a16 --force -q
stderr_has "holds the input" "-o = parent named"
input_intact "-o = parent"
ln -s "$T/in" "$T/alias"
expect_exit 2 "-o = a symlink to the input, --force" -- "$QFORGE" convert "$T/in" -o "$T/alias/.." --scheme w4a16 --force -q
input_intact "-o through a symlink"
expect_exit 2 "--to safetensors -o = input, --force" -- "$QFORGE" convert "$T/in" --to safetensors -o "$T/in" --force -q
input_intact "--to safetensors -o = input"
expect_exit 2 "gguf -o = parent, --force" -- "$QFORGE" convert "$T/in" --layout gguf --scheme q8_0 -o "$T" --force -q
input_intact "gguf -o = parent"

# 2. --force replaces a previous qforge output or an empty folder, nothing else
mkdir -p "$T/notours"; echo keep >"$T/notours/thesis.tex"
expect_exit 2 "--force on a folder that is not a qforge output" -- "$QFORGE" convert "$T/in" -o "$T/notours" --scheme w4a16 --force -q
stderr_has "not a qforge output" "foreign folder named"
[ -f "$T/notours/thesis.tex" ] && ok "foreign folder kept" || bad "foreign folder deleted"
mkdir -p "$T/empty"
expect_exit 0 "--force on an empty folder" -- "$QFORGE" convert "$T/in" -o "$T/empty" --scheme w4a16 --force -q
expect_exit 0 "--force on a previous qforge output" -- "$QFORGE" convert "$T/in" -o "$T/empty" --scheme w8a8 --force -q
grep -q '"w8a8"' "$T/empty/qforge.manifest.json" && ok "previous output replaced" || bad "previous output not replaced"

# 3. a side file that links outside the model folder is refused (never published)
mk; echo "secret" >"$T/secret.txt"; ln -s "$T/secret.txt" "$T/in/notes.txt"
expect_exit 11 "side file symlinked outside the folder" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "notes.txt" "escaping link named"
no_output "$T/out" "no output after an escaping link"
mk; ln -s "$T/secret.txt" "$T/in/vocab.txt"
expect_exit 11 "gguf: side file symlinked outside the folder" -- "$QFORGE" convert "$T/in" --layout gguf --scheme q8_0 -o "$T/out" -q
no_output "$T/out" "gguf: no output after an escaping link"
# a shard that links outside the folder
mk; mv "$T/in/model-00002-of-00003.safetensors" "$T/shard2"; ln -s "$T/shard2" "$T/in/model-00002-of-00003.safetensors"
expect_exit 11 "shard symlinked outside the folder" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
no_output "$T/out" "no output after an escaping shard"
# links inside the folder, and the Hugging Face hub cache layout (snapshots -> ../../blobs), are fine
hub=$T/hub/models--org--tiny; mkdir -p "$hub/blobs" "$hub/snapshots/abc"
for f in tests/data/tiny-llama/*; do
    b=$(basename "$f"); cp "$f" "$hub/blobs/$b.blob"; ln -s "../../blobs/$b.blob" "$hub/snapshots/abc/$b"
done
expect_exit 0 "hub cache layout (symlinks into blobs/)" -- "$QFORGE" convert "$hub/snapshots/abc" -o "$T/hubout" --scheme w4a16 -q
# 4. a FIFO in place of a file: refused at once, no hang
mk; mkfifo "$T/in/generation_config.json.fifo" 2>/dev/null && mv "$T/in/generation_config.json.fifo" "$T/in/notes.md"
if [ -p "$T/in/notes.md" ]; then
    expect_exit 4 "FIFO side file" -- timeout 20 "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
    no_output "$T/out" "no output after a FIFO"
fi
mk; rm "$T/in/model-00003-of-00003.safetensors"; mkfifo "$T/in/model-00003-of-00003.safetensors"
expect_exit 3 "FIFO shard" -- timeout 20 "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "not a regular file" "FIFO shard named"

# 5. an index that lies by omission: it lists one tensor (so one shard), or leaves a tensor of
#    a listed shard out; either would give an artifact that silently lacks tensors
mk; python3_free_keep_first() { # keep only the first weight_map entry (the index is one JSON object)
    sed -i -e ':a;N;$!ba' -e 's/"weight_map": *{\([^,}]*\),[^}]*}/"weight_map": {\1}/' "$1"
}
python3_free_keep_first "$T/in/model.safetensors.index.json"
[ "$(grep -o '"[^"]*": *"model-[^"]*\.safetensors"' "$T/in/model.safetensors.index.json" | wc -l)" = 1 ] || bad "could not cut the index to one tensor"
expect_exit 4 "index listing one tensor of three shards" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "model.safetensors.index.json" "lying index named"
no_output "$T/out" "no output after a lying index"
mk; sed -i 's/"model.norm.weight": *"[^"]*",\{0,1\}//' "$T/in/model.safetensors.index.json"
sed -i -e ':a;N;$!ba' -e 's/,\([[:space:]]*}\)/\1/' "$T/in/model.safetensors.index.json"
expect_exit 4 "index leaving out a tensor of a listed shard" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "model.norm.weight" "unlisted tensor named"

# 6. a GGUF whose head count is absurd: 2^31 overflowed an int into SIGFPE, 2^32-2 wrapped to
#    -2 heads and copied uninitialised heap into q_proj with exit 0; a format error now
set_head_count() { # set_head_count FILE VALUE_AS_4_OCTAL_ESCAPES: the u32 after the key and its type
    off=$(grep -obUaP 'llama\.attention\.head_count(?!_)' "$1" | head -n 1 | cut -d: -f1)
    printf "$2" | dd of="$1" bs=1 seek=$((off + 26 + 4)) conv=notrunc status=none
}
"$QFORGE" convert tests/data/tiny-llama -o "$T/g" --layout gguf --scheme f16 -q >/dev/null
for v in '\000\000\000\200:2^31' '\376\377\377\377:2^32-2' '\350\003\000\000:1000'; do
    cp "$T/g/model.gguf" "$T/h.gguf"; set_head_count "$T/h.gguf" "${v%%:*}"
    expect_exit 4 "GGUF with ${v#*:} heads: --to safetensors" -- "$QFORGE" convert "$T/h.gguf" --to safetensors -o "$T/hs" -q
    stderr_has "h.gguf" "GGUF with ${v#*:} heads: file named"
    no_output "$T/hs" "GGUF with ${v#*:} heads: nothing written"
done

# 6b. a GGUF whose tensor count is lowered (campaign seed 1, input 461: 0) converted into an
#     empty artifact with exit 0; the tensors must account for the data section: a format error
for v in '\000:0' '\001:1'; do
    cp "$T/g/model.gguf" "$T/c.gguf"
    printf "${v%%:*}\000\000\000\000\000\000\000" | dd of="$T/c.gguf" bs=1 seek=8 conv=notrunc status=none
    expect_exit 4 "GGUF with tensor count ${v#*:}: --to safetensors" -- "$QFORGE" convert "$T/c.gguf" --to safetensors -o "$T/cs" -q
    stderr_has "tensor count" "GGUF with tensor count ${v#*:}: named"
    no_output "$T/cs" "GGUF with tensor count ${v#*:}: nothing written"
done

# 6c. an unknown model_type (campaign seed 1, input 3385: 'llam[a') was refused by validate with
#     a message that did not name config.json
mk; sed -i 's/"model_type": *"llama"/"model_type": "llam[a"/' "$T/in/config.json"
expect_exit 5 "validate: unknown model_type" -- "$QFORGE" validate --base "$T/in" --text tests/data/eval.txt --chunks 1 --ctx 64 -q
stderr_has "config.json: model_type" "unknown model_type: config.json named"

# 6d. a pre_tokenizer Sequence of ByteLevel steps doubles the text per step (campaign seed 1,
#     input 3663: 100 steps, 3 GB and a timeout on one window): refused, exit 5, at once
mk; python3 -c 'import json,sys; p=sys.argv[1]; t=json.load(open(p)); t["pre_tokenizer"]={"type":"Sequence","pretokenizers":[{"type":"ByteLevel"}]*100}; json.dump(t,open(p,"w"))' "$T/in/tokenizer.json"
expect_exit 5 "validate: 100 chained ByteLevel pre-tokenizers" -- timeout 20 "$QFORGE" validate --base "$T/in" --text tests/data/eval.txt --chunks 1 --ctx 64 -q
stderr_has "tokenizer.json: more than one ByteLevel" "chained ByteLevel: tokenizer.json named"

# 7. a config that contradicts the weights' shapes is refused before anything is written
lie() { # lie KEY FROM TO: config.json of a fresh copy says KEY is TO where the weights say FROM
    mk; sed -i "s/\"$1\": *$2,*/\"$1\": $3,/" "$T/in/config.json"
    sed -i -e ':a;N;$!ba' -e 's/,\([[:space:]]*}\)/\1/' "$T/in/config.json" # vocab_size is the last key
    grep -q "\"$1\": $3" "$T/in/config.json" || bad "could not set $1 to $3"
}
for kv in hidden_size:384:512 intermediate_size:1024:1536 num_key_value_heads:2:3 vocab_size:8192:8000 num_hidden_layers:6:4; do
    k=${kv%%:*}; rest=${kv#*:}
    lie "$k" "${rest%%:*}" "${rest#*:}"
    expect_exit 4 "config lying about $k" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
    stderr_has "config.json" "lying $k: config named"
    no_output "$T/out" "lying $k: nothing written"
done
# numbers out of int's range are refused, not cut (2^32 + 8192 is not 8192) nor converted with
# undefined behaviour (8e92: found by fuzz_config under UBSan)
for v in 4294975488 8e92; do
    lie vocab_size 8192 "$v"
    expect_exit 4 "config vocab_size $v" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
    stderr_has "vocab_size" "vocab_size $v: key named"
    no_output "$T/out" "vocab_size $v: nothing written"
done
lie vocab_size 8192 8000
expect_exit 4 "gguf: config lying about vocab_size" -- "$QFORGE" convert "$T/in" --layout gguf --scheme q8_0 -o "$T/out" -q

# 8. spec-legal inputs: a zero-element tensor (its own shard, listed in the index) converts
#    and verifies, and stays [0, 384]
mk; hdr='{"model.extra_empty":{"dtype":"BF16","shape":[0,384],"data_offsets":[0,0]}}'
len=$(printf '%s' "$hdr" | wc -c)
{ printf "$(printf '\\%03o' $((len & 255)) $((len >> 8 & 255)) 0 0 0 0 0 0)"; printf '%s' "$hdr"; } >"$T/in/extra.safetensors"
sed -i 's/"weight_map": *{/"weight_map": {"model.extra_empty": "extra.safetensors", /' "$T/in/model.safetensors.index.json"
expect_exit 0 "zero-element tensor converts" -- "$QFORGE" convert "$T/in" -o "$T/z" --scheme w4a16 -q
expect_exit 0 "zero-element tensor verifies" -- "$QFORGE" verify "$T/z" -q
"$QFORGE" inspect "$T/z" --tensors 2>/dev/null | grep -q "model.extra_empty  *BF16  *\[0, 384\]" && ok "zero-element tensor kept as [0, 384]" ||
    bad "zero-element tensor missing from the artifact"

# 9. .bin views that would expand: a stride-0 broadcast (768 bytes asking for 20 GB) and a
#    shape whose element count overflows 64 bits; refused (exit 5), nothing allocated or written
if command -v python3 >/dev/null 2>&1; then
    for v in "27000000,384 0,1:broadcast" "4294967296,4294967296,2 0,0,1:overflowing"; do
        rm -rf "$T/bin"
        # shellcheck disable=SC2086 # shape and stride are two words
        python3 tests/tools/make_bin_checkpoint.py tests/data/tiny-llama "$T/bin" --view model.norm.weight ${v%%:*} ||
            bad "generator failed for the ${v#*:} view"
        expect_exit 5 "${v#*:} .bin view refused" -- "$QFORGE" convert "$T/bin" --to safetensors -o "$T/bo" -q
        stderr_has "would materialise" "${v#*:} view: reason given"
        no_output "$T/bo" "${v#*:} view: nothing written"
    done
else # bin_checkpoint.sh, a required suite, fails CI without python3; here it is a listed skip
    echo "skip - .bin view checks (python3 not found: tests/tools/make_bin_checkpoint.py needs it)"
fi

# 10. spec-legal: a header of odd length leaves every tensor misaligned; the tensors are read
#     through aligned copies and the artifact is byte-identical
odd_header() { # odd_header FILE: one more space at the end of the JSON header (length + 1)
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    m=$((n + 1))
    { printf "$(printf '\\%03o' $((m & 255)) $((m >> 8 & 255)) $((m >> 16 & 255)) 0 0 0 0 0)"
      dd if="$1" bs=1 skip=8 count="$n" status=none; printf ' '
      tail -c +$((n + 9)) "$1"; } >"$1.new" && mv "$1.new" "$1"
}
mk; for f in "$T"/in/*.safetensors; do odd_header "$f"; done
expect_exit 0 "odd header lengths (misaligned tensors) convert" -- "$QFORGE" convert "$T/in" -o "$T/odd" --scheme w4a16 -q
"$QFORGE" convert tests/data/tiny-llama -o "$T/even" --scheme w4a16 -q >/dev/null 2>&1
cmp -s "$T/odd/model.safetensors" "$T/even/model.safetensors" && ok "misaligned input gives the same bytes" ||
    bad "misaligned input changed the artifact"

# 11. validate fails closed on a NaN drift (rope_theta 0 makes the artifact's attention NaN)
mk; "$QFORGE" convert "$T/in" -o "$T/q" --scheme w8a8 -q --force >/dev/null
sed -i 's/"rope_theta": *[0-9.e+]*/"rope_theta": 0/' "$T/q/config.json"
grep -q '"rope_theta": 0' "$T/q/config.json" || bad "could not set rope_theta 0 in the artifact's config"
expect_exit 12 "NaN drift fails --max-kld" -- "$QFORGE" validate --base "$T/in" --quant "$T/q" --text tests/data/eval.txt --chunks 1 --max-kld 1 --max-ppl-drift 5 -q
expect_exit 12 "NaN drift fails without thresholds" -- "$QFORGE" validate --base "$T/in" --quant "$T/q" --text tests/data/eval.txt --chunks 1 -q
"$QFORGE" validate --base "$T/in" --quant "$T/q" --text tests/data/eval.txt --chunks 1 --max-kld 1 --json >"$T/v.json" 2>/dev/null
rc=$?
if [ "$rc" = 12 ] && grep -q '"ok": *false' "$T/v.json" && grep -q '"mean_kld": *null' "$T/v.json" && grep -q '"nonfinite"' "$T/v.json"; then
    ok "--json: ok false, mean_kld null, nonfinite listed, exit 12"
else
    bad "--json on a NaN drift (exit $rc): $(head -c 400 "$T/v.json")"
fi
finish
