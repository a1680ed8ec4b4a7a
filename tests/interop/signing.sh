#!/bin/sh
# tests/interop/signing.sh - qforge's signatures against OpenSSF model-signing (PyPI
# model-signing 1.1.1, the `model_signing` CLI through `python -m model_signing`).
#
# Usage: sh tests/interop/signing.sh QFORGE_BINARY
#   Converts tests/data/tiny-llama (w4a16, 3 shards) and signs it with a throwaway ECDSA
#   P-256 key: `model_signing verify key` must accept qforge's model.sig, `qforge verify
#   --key` must accept model_signing's; after a one-byte change to any file, or a shard
#   rebuilt with a resealed manifest, both tools must reject both signatures.
#   Python: $PYTHON or python3 with model_signing importable (tests/interop/
#   requirements.txt); otherwise prints "SKIP signing: <reason>" and exits 77.
#   Prints "N passed, N failed" last; exit 1 on any failure.
. "$(dirname "$0")/lib.sh"
interop_begin signing $# 1 1 "${1:-}"
if ! "$py" -c "import model_signing" 2>/dev/null; then
    echo "SKIP signing: $py cannot import model_signing (pip install -r tests/interop/requirements.txt)"
    exit 77
fi
if ! command -v openssl >/dev/null; then
    echo "SKIP signing: no openssl command to make a throwaway key"
    exit 77
fi
interop_tmp
umask 077
ok() { pass=$((pass + 1)); [ -n "${SIGNING_VERBOSE:-}" ] && echo "ok - $*"; return 0; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
ms() { "$py" -m model_signing "$@" >"$tmp/ms.log" 2>&1; }
ms_verify() { ms verify key "$1" --signature "$1/model.sig" --public_key "$tmp/pub.pem"; }
qf_verify() { "$qforge" verify "$1" --key "$tmp/pub.pem" -q >"$tmp/qf.log" 2>&1; }
flip() { # flip FILE OFFSET
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((255 - b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

openssl ecparam -genkey -name prime256v1 -noout -out "$tmp/key.pem" 2>/dev/null &&
    openssl ec -in "$tmp/key.pem" -pubout -out "$tmp/pub.pem" 2>/dev/null || { bad "openssl key"; echo "$pass passed, $fail failed"; exit 1; }
chmod 600 "$tmp/key.pem"
q=$tmp/qf-signed
if ! "$qforge" convert "$root/tests/data/tiny-llama" -o "$q" --scheme w4a16 --max-shard-size 8M -q --sign "$tmp/key.pem" >"$tmp/convert.log" 2>&1; then
    bad "qforge convert --sign: $(tail -c 300 "$tmp/convert.log")"
    echo "$pass passed, $fail failed"
    exit 1
fi
if ms_verify "$q"; then ok "model_signing verifies qforge's signature"; else bad "model_signing rejects qforge's signature: $(tail -c 400 "$tmp/ms.log")"; fi
m=$tmp/ms-signed
cp -a "$q" "$m" && rm "$m/model.sig"
if ms sign key "$m" --private_key "$tmp/key.pem" --signature "$m/model.sig"; then ok "model_signing signs"; else bad "model_signing sign: $(tail -c 400 "$tmp/ms.log")"; fi
if qf_verify "$m"; then ok "qforge verifies model_signing's signature"; else bad "qforge rejects model_signing's signature: $(cat "$tmp/qf.log")"; fi

# both tools, both signatures: every tampered copy is rejected
both_reject() { # WHAT DIR_MAKER (a function that edits $tmp/c)
    for signed in "$q" "$m"; do
        rm -rf "$tmp/c"; cp -a "$signed" "$tmp/c"; "$2" "$tmp/c"
        who=$(basename "$signed")
        if qf_verify "$tmp/c"; then bad "qforge accepts $1 ($who)"; else ok "qforge rejects $1 ($who)"; fi
        if ms_verify "$tmp/c"; then bad "model_signing accepts $1 ($who)"; else ok "model_signing rejects $1 ($who)"; fi
    done
}
for f in $(ls "$q"); do
    [ "$f" = model.sig ] && continue
    size=$(stat -c %s "$q/$f")
    edit_one() { flip "$1/$f" $((size / 2)); }
    both_reject "one byte of $f" edit_one
done
# a shard rebuilt from an edited input, with the manifest resealed by qforge itself
cp -a "$root/tests/data/tiny-llama" "$tmp/src2"
flip "$tmp/src2/model-00002-of-00003.safetensors" 5000001
"$qforge" convert "$tmp/src2" -o "$tmp/forged" --scheme w4a16 --max-shard-size 8M -q >/dev/null 2>&1 || bad "forged convert"
reseal() { for f in $(ls "$tmp/forged"); do cp "$tmp/forged/$f" "$1/$f"; done; }
both_reject "a rebuilt shard with a resealed manifest" reseal
interop_end
