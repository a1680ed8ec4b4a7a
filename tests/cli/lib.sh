# lib.sh - helpers for the CLI tests (sourced).  QFORGE is the binary under test.
# Each check prints "ok - what" or "FAIL - what" and the script exits non-zero at the end
# if any check failed.
: "${QFORGE:=build/qforge}"
T=$(mktemp -d "${TMPDIR:-/tmp}/qforge-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
n_ok=0
n_fail=0
ok() { n_ok=$((n_ok + 1)); echo "ok - $*"; }
bad() { n_fail=$((n_fail + 1)); echo "FAIL - $*"; }
# expect_exit CODE WHAT -- command...   (stderr kept in $T/stderr)
expect_exit() {
    want=$1; what=$2; shift 3
    "$@" >"$T/stdout" 2>"$T/stderr"
    got=$?
    if [ "$got" = "$want" ]; then ok "$what (exit $got)"; else bad "$what: exit $got, wanted $want; stderr: $(head -c 300 "$T/stderr")"; fi
}
# stderr_has TEXT WHAT: the last command's stderr contains TEXT and is one line
stderr_has() {
    if grep -qF -- "$1" "$T/stderr" && [ "$(wc -l <"$T/stderr")" -le 1 ]; then ok "$2"; else bad "$2: stderr was: $(head -c 400 "$T/stderr")"; fi
}
no_output() { # no_output DIR WHAT
    if [ ! -e "$1" ] && [ -z "$(ls -d "$1".qforge-tmp* 2>/dev/null)" ]; then ok "$2"; else bad "$2: $1 or its temporary folder exists"; fi
}
finish() { echo "$n_ok passed, $n_fail failed"; [ "$n_fail" = 0 ]; }
# flip_byte FILE OFFSET: invert one byte in place
flip_byte() {
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((255 - b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
