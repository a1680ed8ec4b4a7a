# verify on a hub folder without a qforge manifest: structure of every safetensors file and
# the index, and with --sha256 (sha256sum output or a hub API file list) every digest.
. tests/cli/lib.sh
H=$T/hub
cp -a tests/data/tiny-llama "$H"
chmod -R u+w "$H"
expect_exit 0 "clean folder, structure only" -- "$QFORGE" verify "$H" -q
(cd "$H" && sha256sum *) >"$T/sums"
expect_exit 0 "clean folder matches its sha256sum listing" -- "$QFORGE" verify "$H" --sha256 "$T/sums" -q
# the same digests as a hub API returns them: siblings with lfs.sha256, and a tree with lfs.oid
awk 'BEGIN { printf "{\"siblings\": [" } { printf "%s{\"rfilename\": \"%s\", \"lfs\": {\"sha256\": \"%s\"}}", (NR > 1 ? ", " : ""), $2, $1 } END { print "]}" }' "$T/sums" >"$T/api.json"
expect_exit 0 "clean folder matches a hub siblings listing" -- "$QFORGE" verify "$H" --sha256 "$T/api.json" -q
awk 'BEGIN { printf "[" } { printf "%s{\"type\": \"file\", \"path\": \"%s\", \"lfs\": {\"oid\": \"%s\"}}", (NR > 1 ? ", " : ""), $2, $1 } END { print "]" }' "$T/sums" >"$T/tree.json"
expect_exit 0 "clean folder matches a hub tree listing" -- "$QFORGE" verify "$H" --sha256 "$T/tree.json" -q
S3=model-00003-of-00003.safetensors

cp -a "$H" "$T/c"; truncate -s -100 "$T/c/$S3"
expect_exit 6 "truncated shard (structure)" -- "$QFORGE" verify "$T/c" -q
grep -q "size: $S3" "$T/stderr" && ok "truncation named as a size issue of $S3" || bad "truncation: $(cat "$T/stderr")"
expect_exit 6 "truncated shard (listing)" -- "$QFORGE" verify "$T/c" --sha256 "$T/api.json" -q
grep -qF "$S3" "$T/stderr" && ok "names $S3" || bad "not named: $(cat "$T/stderr")"
rm -rf "$T/c"

cp -a "$H" "$T/c"
# a header that lies: the first tensor now claims to begin 8 bytes later (same header length)
sed -i '0,/"data_offsets":\[0,/s//"data_offsets":[8,/' "$T/c/$S3"
cmp -s "$T/c/$S3" "$H/$S3" && bad "sed did not edit the header" || ok "header edited"
expect_exit 6 "lying header" -- "$QFORGE" verify "$T/c" -q
grep -q "structure: $S3" "$T/stderr" && ok "lying header named as structure of $S3" || bad "lying header: $(cat "$T/stderr")"
rm -rf "$T/c"

cp -a "$H" "$T/c"; flip_byte "$T/c/$S3" 4000000
expect_exit 0 "a flipped weight byte keeps the structure valid" -- "$QFORGE" verify "$T/c" -q
expect_exit 6 "but its SHA-256 differs from the listing" -- "$QFORGE" verify "$T/c" --sha256 "$T/sums" -q
grep -q "modified: $S3" "$T/stderr" && ok "different file named" || bad "modified: $(cat "$T/stderr")"
rm -rf "$T/c"

cp -a "$H" "$T/c"; rm "$T/c/tokenizer.json"; echo x >"$T/c/stray.bin"
expect_exit 6 "missing and extra files" -- "$QFORGE" verify "$T/c" --sha256 "$T/sums" -q
grep -q "missing: tokenizer.json" "$T/stderr" && grep -q "extra: stray.bin" "$T/stderr" && ok "both named" || bad "missing/extra: $(cat "$T/stderr")"
rm -rf "$T/c"

cp -a "$H" "$T/c"; rm "$T/c/$S3"
expect_exit 6 "a shard the index maps is gone" -- "$QFORGE" verify "$T/c" -q
grep -q "missing: $S3" "$T/stderr" && ok "missing shard named" || bad "missing shard: $(cat "$T/stderr")"
rm -rf "$T/c"

: >"$T/empty.sums"
expect_exit 4 "an empty listing is refused" -- "$QFORGE" verify "$H" --sha256 "$T/empty.sums" -q
printf 'not a listing\n' >"$T/bad.sums"
expect_exit 4 "a malformed listing is refused" -- "$QFORGE" verify "$H" --sha256 "$T/bad.sums" -q
stderr_has "bad.sums" "the message names the listing"
finish
