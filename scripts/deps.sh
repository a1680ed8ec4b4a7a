#!/bin/sh
# Installs the Debian packages qforge builds against, when missing.  As root it runs
# apt-get; otherwise it prints the exact command to run and fails.
set -eu
# clang + libomp-dev + clang's runtimes: the fuzz harnesses (libFuzzer + ASan + UBSan;
# tests/fuzz/run.sh).  Debian ships the fuzzer and sanitizer runtimes of clang-N apart, as
# libclang-rt-N-dev, so N is read from the clang package's dependency.
pkgs="build-essential libzip-dev libxxhash-dev libcmocka-dev libjansson-dev libpcre2-dev libssl-dev clang libomp-dev"
rt=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9][0-9]*\)$/libclang-rt-\1-dev/p' | head -n 1)
if [ -n "$rt" ] && apt-cache show "$rt" >/dev/null 2>&1; then pkgs="$pkgs $rt"; fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq $missing >/dev/null
else
    echo "deps: missing packages; run:  sudo apt-get install -y$missing" >&2
    exit 1
fi
