# Signing campaign (qforge sign / verify --key): a signed w4a16 artifact verifies; every
# single-file tampering (byte flip, truncation, appended byte, deletion), an extra file, two
# shards swapped, and a shard rebuilt with a valid resealed manifest are all rejected, each
# message naming the file; a wrong key, a missing signature and a readable private key too.
. tests/cli/lib.sh
umask 077
openssl ecparam -genkey -name prime256v1 -noout -out "$T/key.pem" 2>/dev/null &&
    openssl ec -in "$T/key.pem" -pubout -out "$T/pub.pem" 2>/dev/null || { bad "openssl key generation"; finish; exit 1; }
openssl ecparam -genkey -name prime256v1 -noout -out "$T/other.pem" 2>/dev/null
openssl ec -in "$T/other.pem" -pubout -out "$T/other.pub" 2>/dev/null
chmod 600 "$T/key.pem" "$T/other.pem"
A=$T/art
"$QFORGE" convert tests/data/tiny-llama -o "$A" --scheme w4a16 -q --max-shard-size 8M --sign "$T/key.pem" ||
    { bad "convert --sign"; finish; exit 1; }
[ -f "$A/model.sig" ] && ok "convert --sign wrote model.sig" || bad "no model.sig"
n_shards=$(ls "$A" | grep -c '^model-.*\.safetensors$')
[ "$n_shards" -ge 2 ] && ok "$n_shards shards" || bad "wanted >= 2 shards, got $n_shards"
expect_exit 0 "signed artifact verifies with its key" -- "$QFORGE" verify "$A" --key "$T/pub.pem" -q
expect_exit 0 "plain verify ignores model.sig" -- "$QFORGE" verify "$A" -q
grep -q '"sha256"' "$A/qforge.manifest.json" && ok "manifest records sha256" || bad "no sha256 in the manifest"
"$QFORGE" hash "$A" >"$T/sums" && (cd "$A" && sha256sum -c --quiet "$T/sums") && ok "qforge hash agrees with sha256sum" || bad "qforge hash vs sha256sum"

# reject WHAT WANT_EXIT FILE: verify --key on $T/c must exit WANT_EXIT and name FILE
reject() {
    "$QFORGE" verify "$T/c" --key "$T/pub.pem" -q >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc = "$2" ] && grep -qF "$3" "$T/err"; then ok "$1 (exit $rc)"; else bad "$1: exit $rc (wanted $2): $(head -c 300 "$T/err")"; fi
    rm -rf "$T/c"
}
for f in $(ls "$A"); do
    size=$(stat -c %s "$A/$f")
    case $f in model.sig) changed=14; gone=13 ;; *) changed=6; gone=16 ;; esac
    for where in 0 $((size / 2)) $((size - 1)); do
        cp -a "$A" "$T/c"; flip_byte "$T/c/$f" $where
        # a flipped byte inside the signature's JSON syntax or base64 is as bad as a forged one
        reject "byte $where of $f" $changed "$f"
    done
    cp -a "$A" "$T/c"; truncate -s $((size - 1)) "$T/c/$f"; reject "truncated $f" $changed "$f"
    cp -a "$A" "$T/c"; printf x >>"$T/c/$f"; reject "byte appended to $f" $changed "$f"
    cp -a "$A" "$T/c"; rm "$T/c/$f"; reject "deleted $f" $gone "$f"
done
cp -a "$A" "$T/c"; echo hi >"$T/c/extra.txt"; reject "extra file" 16 extra.txt
cp -a "$A" "$T/c"; mkdir "$T/c/sub"; echo hi >"$T/c/sub/x.bin"; reject "extra file in a subfolder" 16 sub/x.bin
s1=model-00001-of-0000$n_shards.safetensors; s2=model-00002-of-0000$n_shards.safetensors
cp -a "$A" "$T/c"; mv "$T/c/$s1" "$T/c/tmp"; mv "$T/c/$s2" "$T/c/$s1"; mv "$T/c/tmp" "$T/c/$s2"
reject "shards swapped" 6 "$s1"

# the attacker re-runs qforge on an edited input: a valid, sealed manifest over a changed shard
cp -a tests/data/tiny-llama "$T/src2"
flip_byte "$T/src2/model-00002-of-00003.safetensors" 5000001 # a bf16 high byte: the value moves
"$QFORGE" convert "$T/src2" -o "$T/forged" --scheme w4a16 -q --max-shard-size 8M || bad "forged convert"
cp -a "$A" "$T/c"; changed_shard=""
for f in $(ls "$T/forged"); do
    cmp -s "$T/forged/$f" "$A/$f" || { cp "$T/forged/$f" "$T/c/$f"; case $f in model-*) changed_shard=$f ;; esac; }
done
expect_exit 0 "resealed manifest fools plain verify (the attack is real)" -- "$QFORGE" verify "$T/c" -q
[ -n "$changed_shard" ] && ok "forged artifact changed $changed_shard" || bad "forged artifact changed no shard"
reject "shard edited, manifest resealed" 6 "$changed_shard"

cp -a "$A" "$T/c"; "$QFORGE" verify "$T/c" --key "$T/other.pub" -q >"$T/out" 2>"$T/err"
[ $? = 15 ] && grep -q "model.sig" "$T/err" && ok "wrong key: exit 15 naming model.sig" || bad "wrong key: $(cat "$T/err")"
rm -rf "$T/c"
cp -a "$A" "$T/c"; "$QFORGE" sign "$T/c" --key "$T/other.pem" -q
reject "re-signed by another key" 15 model.sig
cp -a "$A" "$T/c"; rm "$T/c/model.sig"; rm -f "$T/c/qforge.manifest.json"; reject "unsigned folder" 13 model.sig

chmod 644 "$T/key.pem"
cp -a "$A" "$T/c"
expect_exit 11 "sign refuses a world-readable private key" -- "$QFORGE" sign "$T/c" --key "$T/key.pem" -q
stderr_has "readable by group or others" "the refusal says why"
expect_exit 11 "convert --sign refuses it before converting" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/o2" --scheme w4a16 -q --sign "$T/key.pem"
no_output "$T/o2" "nothing written when the key is refused"
chmod 640 "$T/key.pem"
expect_exit 11 "group-readable key refused too" -- "$QFORGE" sign "$T/c" --key "$T/key.pem"
chmod 600 "$T/key.pem"
expect_exit 4 "a public key is not a private key" -- "$QFORGE" sign "$T/c" --key "$T/pub.pem"
grep -rq "BEGIN EC PRIVATE KEY\|BEGIN PRIVATE KEY" "$T/c" && bad "key material written into the folder" || ok "no key material in the folder"
expect_exit 0 "verify --json" -- "$QFORGE" verify "$A" --key "$T/pub.pem" --json
grep -q '"ok":true' "$T/stdout" && grep -q '"signature":true' "$T/stdout" && ok "json ok, signature verified" || bad "json: $(cat "$T/stdout")"
finish
