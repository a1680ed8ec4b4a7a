# Resume: a conversion killed at several points (between and in the middle of shards, with
# SIGKILL as a power loss would, and with SIGINT) leaves no OUT, keeps its temporary folder,
# and the same command then finishes with output byte-identical to an uninterrupted run.
# Also --layers parts merged equal the single run.
. tests/cli/lib.sh
# the kills come from the test build's fault hooks (Makefile: qforge-testing); the shipped
# binary has none
QFT=${QFORGE_TESTING:-$QFORGE-testing}
[ -x "$QFT" ] || { bad "no test build $QFT (make all builds it)"; finish; exit 1; }
M=tests/data/tiny-llama
args="--scheme w4a16-asym -q --max-shard-size 4M"
QF_TEST_KILL_AFTER_BYTES=1 "$QFORGE" convert $M -o "$T/ref" $args >/dev/null &&
    ok "the shipped binary has no fault hooks (QF_TEST_KILL_AFTER_BYTES is ignored)" || { bad "reference run"; finish; exit 1; }
for at in 1 2000000 4500000 9000000 13000000 17000000; do
    rm -rf "$T/out" "$T/out.qforge-tmp"
    QF_TEST_KILL_AFTER_BYTES=$at "$QFT" convert $M -o "$T/out" $args >/dev/null 2>&1
    rc=$?
    [ $rc = 137 ] && [ ! -e "$T/out" ] && [ -d "$T/out.qforge-tmp" ] && ok "killed after $at bytes: no output, work kept" ||
        bad "kill at $at: exit $rc, out exists: $([ -e "$T/out" ] && echo yes)"
    expect_exit 0 "resume after kill at $at" -- "$QFORGE" convert $M -o "$T/out" $args
    diff -r "$T/ref" "$T/out" >/dev/null && ok "resumed output identical (kill at $at)" || bad "resumed output differs (kill at $at)"
    [ ! -e "$T/out.qforge-tmp" ] && ok "temporary folder gone" || bad "temporary folder left"
done
rm -rf "$T/out" "$T/out.qforge-tmp"
QF_TEST_INTERRUPT_AFTER_BYTES=6000000 "$QFT" convert $M -o "$T/out" $args >/dev/null 2>"$T/stderr"
rc=$?
[ $rc = 10 ] && grep -q "resume" "$T/stderr" && [ ! -e "$T/out" ] && ok "SIGINT: exit 10, says how to resume" || bad "SIGINT: exit $rc: $(cat "$T/stderr")"
expect_exit 0 "resume after SIGINT" -- "$QFORGE" convert $M -o "$T/out" $args
diff -r "$T/ref" "$T/out" >/dev/null && ok "output after SIGINT identical" || bad "output after SIGINT differs"
# a different recipe does not reuse another job's work
rm -rf "$T/out" "$T/out.qforge-tmp"
QF_TEST_KILL_AFTER_BYTES=9000000 "$QFT" convert $M -o "$T/out" $args >/dev/null 2>&1
"$QFORGE" convert $M -o "$T/out" --scheme w4a16 -q --max-shard-size 4M >/dev/null
"$QFORGE" convert $M -o "$T/ref2" --scheme w4a16 -q --max-shard-size 4M >/dev/null
diff -r "$T/ref2" "$T/out" >/dev/null && ok "another recipe starts afresh" || bad "stale shards reused across recipes"
# partitioned run: --layers slices merged equal the single run, whatever the part order
"$QFORGE" convert $M -o "$T/p0" $args --layers 0-1 >/dev/null
"$QFORGE" convert $M -o "$T/p1" $args --layers 2-4 >/dev/null
"$QFORGE" convert $M -o "$T/p2" $args --layers 5-5 >/dev/null
expect_exit 0 "merge parts" -- "$QFORGE" merge "$T/p2" "$T/p0" "$T/p1" -o "$T/merged" -q
diff -r "$T/ref" "$T/merged" >/dev/null && ok "merged parts identical to the single run" || bad "merged differs from single run"
expect_exit 0 "merged artifact verifies" -- "$QFORGE" verify "$T/merged" -q
expect_exit 2 "merge with a missing layer" -- "$QFORGE" merge "$T/p0" "$T/p2" -o "$T/m2" -q
stderr_has "decoder layer 2" "missing layer named"
expect_exit 4 "merge with overlapping parts" -- "$QFORGE" merge "$T/p0" "$T/p0" "$T/p1" "$T/p2" -o "$T/m3" -q
expect_exit 2 "merge of a whole artifact" -- "$QFORGE" merge "$T/ref" -o "$T/m4" -q
finish
