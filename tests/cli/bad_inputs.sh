# Bad inputs: a one-line error naming the file, a non-zero exit, and no output folder.
. tests/cli/lib.sh
mk() { rm -rf "$T/in"; cp -r tests/data/tiny-llama "$T/in"; chmod -R u+w "$T/in"; }
mk; truncate -s 5000000 "$T/in/model-00002-of-00003.safetensors"
expect_exit 4 "truncated shard" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "model-00002-of-00003.safetensors" "truncated shard named"
no_output "$T/out" "no output after truncated shard"
# header lying about offsets: change the first data_offsets end of shard 3
mk; f=$T/in/model-00003-of-00003.safetensors
python_free_edit() { # replace the first occurrence of "data_offsets":[0, with "data_offsets":[8, (same length)
    sed -i '0,/"data_offsets":\[0,/s//"data_offsets":[8,/' "$1"
}
python_free_edit "$f"
expect_exit 4 "header lying about offsets" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "model-00003-of-00003.safetensors" "lying header named"
no_output "$T/out" "no output after lying header"
mk; rm "$T/in/model-00001-of-00003.safetensors"
expect_exit 4 "index naming a missing shard" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "model-00001-of-00003.safetensors" "missing shard named"
no_output "$T/out" "no output after missing shard"
mk; echo "not json {" >"$T/in/config.json"
expect_exit 4 "non-JSON config" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
stderr_has "config.json" "config named"
no_output "$T/out" "no output after bad config"
mk; rm "$T/in/config.json"
expect_exit 3 "missing config" -- "$QFORGE" convert "$T/in" -o "$T/out" --scheme w4a16 -q
no_output "$T/out" "no output after missing config"
# the input is never modified
mk; before=$(cat "$T"/in/* | cksum)
"$QFORGE" convert "$T/in" -o "$T/out" --scheme nvfp4a16 -q
after=$(cat "$T"/in/* | cksum)
[ "$before" = "$after" ] && ok "input unchanged by conversion" || bad "input modified"
# an unwritable destination: the error names it and nothing is left
mkdir -p "$T/ro"; chmod 555 "$T/ro"
if [ "$(id -u)" != 0 ]; then
    expect_exit 3 "unwritable destination" -- "$QFORGE" convert "$T/in" -o "$T/ro/out" --scheme w4a16 -q
fi
# a full disk: a 1 MB tmpfs is too small; skipped when we may not mount
if mkdir -p "$T/full" && mount -t tmpfs -o size=1m tmpfs "$T/full" 2>/dev/null; then
    expect_exit 3 "full disk" -- "$QFORGE" convert "$T/in" -o "$T/full/out" --scheme w4a16 -q
    stderr_has "No space left" "full disk reported"
    [ ! -e "$T/full/out" ] && ok "no output after full disk" || bad "output folder after full disk"
    grep -q "run the same command to resume" "$T/stderr" && ok "full disk keeps the work for a resume" || bad "full disk: no resume hint"
    umount "$T/full"
else
    echo "skip - full disk (cannot mount tmpfs here)"
fi
expect_exit 2 "missing arguments" -- "$QFORGE" convert
expect_exit 2 "unknown command" -- "$QFORGE" frobnicate
expect_exit 4 "inspect of a non-checkpoint" -- "$QFORGE" inspect "$T/in/config.json"
# --device: a bad name is a usage error; gpu without a usable GPU is refused before any work
expect_exit 2 "--device tpu" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/dev" --scheme w4a16 --method gptq --device tpu -q
stderr_has "--device 'tpu': expected auto, cpu or gpu" "--device tpu: one-line error naming the value"
expect_exit 2 "validate --device tpu" -- "$QFORGE" validate --base tests/data/tiny-llama --text tests/data/eval.txt --device tpu
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    expect_exit 5 "--device gpu without a GPU" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/dev" --scheme w4a16 --method gptq --device gpu -q
    stderr_has "--device gpu:" "--device gpu without a GPU: one-line reason"
    no_output "$T/dev" "--device gpu without a GPU: nothing written"
    expect_exit 5 "validate --device gpu without a GPU" -- "$QFORGE" validate --base tests/data/tiny-llama --text tests/data/eval.txt --device gpu
else
    echo "skip - --device gpu refusal (this machine has a GPU)"
fi
finish
