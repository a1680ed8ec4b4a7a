# PyTorch .bin input: a torch.save-layout copy of tiny-llama (tests/tools/make_bin_checkpoint.py,
# no torch needed) converts to the same tensors, byte for byte (manifest tensor hashes), as the
# safetensors original - plain, with strided views + shared storages + big-endian + deflated
# entries, and through --to safetensors; hostile archives are refused with exit 11 / 4.
. tests/cli/lib.sh
# python3 makes the fixtures; without it the suite skips (exit 77), which CI counts as failed
if ! command -v python3 >/dev/null 2>&1; then echo "SKIP tests/cli/bin_checkpoint.sh: python3 not found on PATH"; exit 77; fi
SRC=tests/data/tiny-llama
# tensors of a manifest as "name hash" lines
tensors() { python3 -c 'import json,sys; [print(t["name"], t["dtype"], t["xxh3_128"]) for t in json.load(open(sys.argv[1]))["tensors"]]' "$1/qforge.manifest.json"; }
"$QFORGE" convert "$SRC" -o "$T/ref-w4" --scheme w4a16 -q >/dev/null || bad "reference conversion"
"$QFORGE" convert "$SRC" -o "$T/ref-st" --to safetensors -q >/dev/null || bad "reference passthrough"
tensors "$T/ref-w4" >"$T/ref-w4.txt"
tensors "$T/ref-st" >"$T/ref-st.txt"
for variant in "" "--views" "--big-endian --views --compress --single" "--protocol 4"; do
    name="bin${variant:+ $variant}"
    rm -rf "$T/bin" "$T/out-w4" "$T/out-st"
    python3 tests/tools/make_bin_checkpoint.py "$SRC" "$T/bin" $variant || { bad "$name: generator"; continue; }
    if [ -z "$(ls "$T"/bin/*.safetensors 2>/dev/null)" ] && ls "$T"/bin/*.bin >/dev/null 2>&1; then ok "$name: .bin only"
    else bad "$name: the generator did not write .bin files only: $(ls "$T/bin")"; fi
    expect_exit 0 "$name: convert w4a16" -- "$QFORGE" convert "$T/bin" -o "$T/out-w4" --scheme w4a16 -q
    tensors "$T/out-w4" >"$T/w4.txt" 2>/dev/null
    cmp -s "$T/ref-w4.txt" "$T/w4.txt" && ok "$name: w4a16 tensors identical to the safetensors source's" ||
        bad "$name: w4a16 tensors differ: $(diff "$T/ref-w4.txt" "$T/w4.txt" | head -3)"
    expect_exit 0 "$name: --to safetensors" -- "$QFORGE" convert "$T/bin" -o "$T/out-st" --to safetensors -q
    tensors "$T/out-st" >"$T/st.txt" 2>/dev/null
    cmp -s "$T/ref-st.txt" "$T/st.txt" && ok "$name: safetensors tensors identical" || bad "$name: safetensors tensors differ"
    expect_exit 0 "$name: verify" -- "$QFORGE" verify "$T/out-st" -q
done
# the passthrough of a safetensors checkpoint holds exactly the source tensors' bytes
python3 - "$SRC" "$T/ref-st/model.safetensors" <<'PY' && ok "passthrough bytes equal the source tensors" || bad "passthrough bytes differ"
import json, os, struct, sys
def load(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
src = {}
for f in sorted(os.listdir(sys.argv[1])):
    if f.endswith(".safetensors"): src.update(load(os.path.join(sys.argv[1], f)))
sys.exit(0 if load(sys.argv[2]) == src else 1)
PY
# hostile archives: code in the pickle, a storage past its record, not a zip
python3 - "$T" <<'PY' && ok "hostile archives written" || bad "hostile archive generator failed"
import os, struct, sys, zipfile
T = sys.argv[1]
def archive(path, pkl, storages=()):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        for k, d in storages: z.writestr("archive/data/%s" % k, d)
        z.writestr("archive/version", "3\n")
archive(T + "/evil/pytorch_model.bin", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.")
pk = (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
      b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuMd\x00tQK\x00Md\x00\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRu.")
archive(T + "/short/pytorch_model.bin", pk, [("0", b"\0" * 16)])
os.makedirs(T + "/junk", exist_ok=True); open(T + "/junk/pytorch_model.bin", "wb").write(b"not a zip at all")
PY
for d in evil short junk; do cp "$SRC/config.json" "$T/$d/"; done
expect_exit 11 "pickle calling os.system refused" -- "$QFORGE" convert "$T/evil" -o "$T/out" --scheme w4a16 -q
stderr_has "pytorch_model.bin: data.pkl: global 'os system' is not allowed" "refusal names the file and the global"
no_output "$T/out" "no output after a hostile pickle"
expect_exit 4 "storage past its record" -- "$QFORGE" convert "$T/short" -o "$T/out" --to safetensors -q
stderr_has "storage '0' needs 400 bytes" "short storage named"
expect_exit 4 "not a zip" -- "$QFORGE" inspect "$T/junk"
stderr_has "pytorch_model.bin: not a zip archive" "junk named"
finish
