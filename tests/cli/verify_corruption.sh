# Corruption campaign: flip one byte in each file (several places), truncate each file,
# delete each, add one: verify must fail every time and name the offending file.
. tests/cli/lib.sh
A=$T/art
"$QFORGE" convert tests/data/tiny-llama -o "$A" --scheme nvfp4a16 -q --max-shard-size 8M || { bad "convert"; finish; exit 1; }
expect_exit 0 "pristine artifact verifies" -- "$QFORGE" verify "$A" -q
for f in $(ls "$A"); do
    size=$(stat -c %s "$A/$f")
    for where in 0 $((size / 3)) $((size / 2)) $((size - 1)); do
        cp -a "$A" "$T/c"
        flip_byte "$T/c/$f" $where
        "$QFORGE" verify "$T/c" -q >"$T/out" 2>"$T/err"
        rc=$?
        if [ $rc = 6 ] && grep -q "$f" "$T/err"; then ok "byte $where of $f"; else bad "byte $where of $f: exit $rc: $(head -c 300 "$T/err")"; fi
        rm -rf "$T/c"
    done
    cp -a "$A" "$T/c"; truncate -s $((size - 1)) "$T/c/$f"
    expect_exit 6 "truncated $f" -- "$QFORGE" verify "$T/c" -q
    grep -q "$f" "$T/stderr" && ok "truncation names $f" || bad "truncation of $f not named"
    rm -rf "$T/c"; cp -a "$A" "$T/c"; rm "$T/c/$f"
    expect_exit 6 "deleted $f" -- "$QFORGE" verify "$T/c" -q
    grep -q "$f" "$T/stderr" && ok "deletion names $f" || bad "deletion of $f not named"
    rm -rf "$T/c"
done
cp -a "$A" "$T/c"; echo hi >"$T/c/extra.txt"
expect_exit 6 "extra file" -- "$QFORGE" verify "$T/c" -q
grep -q "extra.txt" "$T/stderr" && ok "extra file named" || bad "extra file not named"
expect_exit 6 "verify --json on a broken artifact" -- "$QFORGE" verify "$T/c" --json
grep -q '"ok":false' "$T/stdout" && grep -q '"kind":"extra"' "$T/stdout" && ok "json lists the issue" || bad "json: $(cat "$T/stdout")"
expect_exit 3 "verify of a missing folder" -- "$QFORGE" verify "$T/nope" -q
finish
