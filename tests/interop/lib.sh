# tests/interop/lib.sh - the prologue and the counting every interop suite shares.
#
# Sourced first thing:  . "$(dirname "$0")/lib.sh"; interop_begin NAME "$#" MIN MAX "${1:-}"
#   checks the argument count (usage line and exit 2 otherwise), then sets
#     here    this folder          root  the repository       py  $PYTHON or python3
#     qforge  $1, made absolute
#     pass, fail                   the counters the suite's "N passed, N failed" line prints
# interop_tmp: makes $tmp (removed on exit; Ctrl-C exits 130).
# need_torch: the suite needs torch + transformers + compressed-tensors in $py; without them
#   it prints "SKIP NAME: ..." and exits 77 (required under CI=true: scripts/run-tests.sh).
# need_qforge: a non-executable QFORGE_BINARY is one failure (after the suite's SKIP checks,
#   so that a machine without Python still reports a skip).
# counts_add LOG: adds the "N passed, N failed" last line of a checker's LOG to the totals;
#   returns 1 when there is no such line (the checker crashed before its summary: one failure).
# interop_end: prints the totals; exit 1 when anything failed.
set -u
interop_begin() { # NAME ARGC MIN MAX QFORGE_BINARY
    interop_name=$1
    if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
        echo "usage: sh $0 QFORGE_BINARY (see the header of $0)" >&2
        exit 2
    fi
    qforge=$5
    here=$(cd "$(dirname "$0")" && pwd)
    root=$(cd "$here/../.." && pwd)
    case $qforge in /*) ;; *) qforge=$(pwd)/$qforge ;; esac
    py=${PYTHON:-python3}
    pass=0
    fail=0
}

need_torch() {
    err=$("$py" -c "import torch, transformers, compressed_tensors, tokenizers, safetensors" 2>&1) && return 0
    echo "SKIP $interop_name: $py cannot import torch, transformers and compressed-tensors" \
         "($(echo "$err" | tail -n 1); pip install -r tests/interop/requirements.txt)"
    exit 77
}

need_qforge() {
    [ -x "$qforge" ] && return 0
    echo "$interop_name: $qforge is not an executable qforge binary" >&2
    echo "0 passed, 1 failed"
    exit 1
}

interop_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/qf-$interop_name.XXXXXX") || exit 1
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM
}

counts_add() {
    counts_line=$(tail -n 1 "$1")
    p=$(echo "$counts_line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$counts_line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ] || [ -z "$f" ]; then
        fail=$((fail + 1))
        return 1
    fi
    pass=$((pass + p))
    fail=$((fail + f))
}

interop_end() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ] || exit 1
}
