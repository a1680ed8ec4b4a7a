#!/bin/bash
# scripts/gpu-check.sh [STAGE...] - the GPU checks, for a machine with CUDA and a GPU but none of
# the Debian libraries: they travel in .devdeps/, the packages of scripts/deps.sh unpacked with
# `apt-get download` + `dpkg -x` into one folder (its usr/include and usr/lib/x86_64-linux-gnu).
# Logs go to $OUT (default /tmp/qf-gpu-out).  Stages, in the order given (default: build test bench):
#   build   make all + the GPU test programs
#   test    make test-gpu (kernels and calibration products against their CPU references)
#   bench   qforge bench kernels
#   gptq8b  synthetic Llama-3-8B, qforge convert --scheme w4a16 --method gptq, 128 x 512 calibration
#   tiny    tiny-llama w4a16-asym gptq with --device cpu and --device gpu, both validated (KLD)
#   val8b   qforge validate on that synthetic 8B (base bf16) over 512-token windows
# Each stage has its own time limit so that a slow one cannot eat the others' logs.  A stage
# that fails (or times out, or skips its GPU tests) is named at the end and the exit status is
# 1: a GPU check that always exits 0 says nothing.
set -u
O=${OUT:-/tmp/qf-gpu-out}; mkdir -p "$O"
D=$PWD/.devdeps
export CPATH=$D/usr/include${CPATH:+:$CPATH} LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:/usr/local/cuda/bin
J=$(nproc)
stage() { echo "== $1 $(date +%T)"; }
failed=""
check() { # check STAGE RC: remember a failed stage
    echo "$1 rc=$2"
    [ "$2" = 0 ] || failed="$failed $1"
}
[ $# -eq 0 ] && set -- build test bench
for s in "$@"; do
  case $s in
  build)
    stage build
    { nvidia-smi; nproc; lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-200; df -h /tmp .; } >"$O/machine.txt" 2>&1
    if ! make -j"$J" WERROR= all build/tests/gpu_test_kernels build/tests/gpu_test_calib >"$O/build.log" 2>&1; then
      grep -E 'error|Error' "$O/build.log" | head -20; exit 1; fi
    echo "warnings: $(grep -c "warning:" "$O/build.log")"; grep -A3 "warning:" "$O/build.log" | head -20; tail -1 "$O/build.log" ;;
  test)
    stage test
    QF_GPU_REQUIRED=1 timeout 180 make test-gpu >"$O/test-gpu.log" 2>&1; check test-gpu $?
    grep -E "PASSED|FAILED|SKIP|FAIL|\[  FAILED|ERROR" "$O/test-gpu.log" | head -30 ;;
  bench)
    stage bench
    timeout 200 build/qforge bench kernels >"$O/bench-kernels.txt" 2>&1; check bench $?; head -80 "$O/bench-kernels.txt" ;;
  gptq8b)
    stage synth
    M=/tmp/synth-8b
    if [ ! -d $M ]; then /usr/bin/time -v build/qforge synth --arch llama --preset 8b -o $M -q >"$O/synth.log" 2>&1; check synth $?; fi
    cp tests/data/tiny-llama/tokenizer.json tests/data/tiny-llama/tokenizer_config.json $M/ # ids < 8192: a valid 8B input
    grep -E "Elapsed" "$O/synth.log"
    stage gptq8b
    rm -rf /tmp/8b-gptq
    /usr/bin/time -v timeout ${GPTQ_LIMIT:-330} build/qforge convert $M -o /tmp/8b-gptq --scheme w4a16 --method gptq \
      --calib-samples 128 --calib-seqlen ${SEQLEN:-512} --stats ${GPTQ_ARGS:-} >"$O/gptq8b.log" 2>&1
    check gptq8b $?; grep -E "layer|peak|Elapsed|Maximum resident|error|GPU|gpu" "$O/gptq8b.log" | tail -60 ;;
  tiny)
    for d in cpu gpu; do
      stage "tiny $d"
      rm -rf /tmp/tiny-$d
      /usr/bin/time -f "%e s wall, %M KB peak" timeout 300 build/qforge convert tests/data/tiny-llama -o /tmp/tiny-$d --scheme w4a16-asym \
        --method gptq --act-order --device $d -q >"$O/tiny-$d.log" 2>&1; check "tiny-$d" $?; tail -2 "$O/tiny-$d.log"
      build/qforge validate --base tests/data/tiny-llama --quant /tmp/tiny-$d --text tests/data/eval.txt --chunks ${TINY_CHUNKS:-513} -q \
        >"$O/tiny-$d-val.log" 2>&1; check "tiny-$d-validate" $?; grep -E "KLD|drift|agreement|throughput" "$O/tiny-$d-val.log"
    done ;;
  val8b)
    stage val8b
    timeout ${VAL_LIMIT:-120} build/qforge validate --base /tmp/synth-8b --text tests/data/eval.txt --chunks ${VAL_CHUNKS:-16} \
      >"$O/val8b.log" 2>&1; check val8b $?; tail -5 "$O/val8b.log" ;;
  *) echo "unknown stage $s"; exit 2 ;;
  esac
done
stage done
if [ -n "$failed" ]; then echo "gpu-check: FAILED:$failed"; exit 1; fi
echo "gpu-check: every stage passed"
