#!/bin/sh
# tests/bench/gguf_vs_llamacpp.sh - qforge's GGUF mixes against llama-quantize's, measured by
# llama.cpp itself (llama-perplexity's KL-divergence mode) on the same text.
#
# Usage: sh tests/bench/gguf_vs_llamacpp.sh [QFORGE] [LLAMACPP_BIN_DIR] [OUT_DIR]
#   QFORGE            default build/qforge
#   LLAMACPP_BIN_DIR  holds llama-quantize, llama-imatrix, llama-perplexity (default
#                     build/lcpp/bld/bin: cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF, targets
#                     llama-quantize llama-imatrix llama-perplexity, docs/bench.md)
#   OUT_DIR           work folder (default build/gguf-bench; about 0.5 GB)
# Environment: MODEL (default tests/data/tiny-llama), CALIB (tests/data/calib.txt), EVAL
#   (tests/data/eval.txt), CHUNKS (eval windows of 512 tokens, default 64), CALIB_CHUNKS
#   (llama-imatrix windows of 512, default 128 = qforge's default 128 x 512 calibration tokens),
#   TYPES (default "Q4_0 Q4_K_M"), THREADS (default 2).
# Steps: qforge writes the bf16 GGUF (the base, lossless for a bf16 checkpoint); llama-imatrix
# makes an importance matrix from CALIB with it; llama-quantize writes each TYPE without and with
# that imatrix; qforge writes each TYPE with --method rtn, imatrix and gptq (calibrated on CALIB);
# llama-perplexity stores the base's logits on EVAL (ctx 512) and reports each file's mean KLD
# and top-1 agreement against them.  Prints one table row per file: name, bits per weight
# (tensor bytes * 8 / elements, what llama.cpp's loader prints, read here with gguf-py), mean
# KLD, same top-1 %; then whether llama-quantize's and qforge's files of each type have the same
# per-tensor types (tests/interop/check_gguf_types.py).  llama-perplexity runs with --no-repack:
# on VMs that advertise AMX without granting it, ggml's AMX repacking dies of SIGILL (the
# plain CPU kernels compute the same model).  PYTHON: a python with gguf (build/pyenv/bin/python).
set -eu
Q=${1:-build/qforge}
B=${2:-build/lcpp/bld/bin}
O=${3:-build/gguf-bench}
M=${MODEL:-tests/data/tiny-llama}
C=${CALIB:-tests/data/calib.txt}
E=${EVAL:-tests/data/eval.txt}
N=${CHUNKS:-64}
NC=${CALIB_CHUNKS:-128}
TH=${THREADS:-2}
PY=${PYTHON:-build/pyenv/bin/python}
for t in llama-quantize llama-imatrix llama-perplexity; do
    [ -x "$B/$t" ] || { echo "gguf_vs_llamacpp.sh: $B/$t not found (build llama.cpp's tools: docs/bench.md)" >&2; exit 77; }
done
export OMP_WAIT_POLICY=PASSIVE LD_LIBRARY_PATH="$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$O"
log() { echo "== $*" >&2; }

[ -f "$O/bf16/model.gguf" ] || { rm -rf "$O/bf16"; "$Q" convert "$M" -o "$O/bf16" --layout gguf --scheme bf16 -q >/dev/null; }
BASE=$O/bf16/model.gguf
if [ ! -f "$O/imatrix.gguf" ]; then
    log "llama-imatrix on $C ($NC x 512 tokens)"
    nice "$B/llama-imatrix" -m "$BASE" -f "$C" -c 512 --chunks "$NC" -t "$TH" -o "$O/imatrix.gguf" >"$O/imatrix.log" 2>&1
fi
if [ ! -f "$O/base.kld" ]; then
    log "llama-perplexity: base logits ($N x 512 tokens of $E)"
    nice "$B/llama-perplexity" -m "$BASE" -f "$E" -c 512 --chunks "$N" -t "$TH" --no-repack \
        --kl-divergence-base "$O/base.kld" >"$O/base.log" 2>&1
fi
files=""
for T in ${TYPES:-Q4_0 Q4_K_M}; do
    t=$(echo "$T" | tr 'A-Z' 'a-z')
    for v in "" imatrix; do
        f=$O/llamacpp-$t${v:+-$v}.gguf
        if [ ! -f "$f" ]; then
            log "llama-quantize $T ${v:+with imatrix}"
            nice "$B/llama-quantize" ${v:+--imatrix "$O/imatrix.gguf"} "$BASE" "$f" "$T" "$TH" >"$f.log" 2>&1
        fi
        files="$files $f"
    done
    for m in rtn imatrix gptq; do
        d=$O/qforge-$t-$m
        if [ ! -f "$d/model.gguf" ]; then
            log "qforge $t --method $m"
            rm -rf "$d"
            nice "$Q" convert "$M" -o "$d" --layout gguf --scheme "$t" --method "$m" --calib "$C" -q >"$d.log" 2>&1
        fi
        files="$files $d/model.gguf"
    done
done
printf '%-34s %6s %10s %8s\n' file bpw "mean KLD" "top-1 %"
for f in $files; do
    l=$f.kld.log
    [ -s "$l" ] && grep -q "Mean    KLD" "$l" ||
        nice "$B/llama-perplexity" -m "$f" -f "$E" -c 512 --chunks "$N" -t "$TH" --no-repack \
            --kl-divergence-base "$O/base.kld" --kl-divergence >"$l" 2>&1
    bpw=$("$PY" -c 'import sys, gguf; t = gguf.GGUFReader(sys.argv[1]).tensors; print("%.4f" % (8 * sum(int(x.n_bytes) for x in t) / sum(int(x.n_elements) for x in t)))' "$f")
    kld=$(sed -n 's/^Mean *KLD: *\([0-9.]*\).*/\1/p' "$l" | head -n 1)
    top=$(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$l" | head -n 1)
    name=$(echo "$f" | sed "s|^$O/||; s|/model.gguf||; s|\.gguf$||")
    printf '%-34s %6s %10s %8s\n' "$name" "${bpw:-?}" "${kld:-?}" "${top:-?}"
done
for T in ${TYPES:-Q4_0 Q4_K_M}; do
    t=$(echo "$T" | tr 'A-Z' 'a-z')
    echo "per-tensor types, llama-quantize $T vs qforge $t: $("$PY" tests/interop/check_gguf_types.py \
        "$O/llamacpp-$t.gguf" "$O/qforge-$t-rtn/model.gguf" | tail -n 1)"
done
