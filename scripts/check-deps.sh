#!/bin/sh
# Lists include-direction violations between stage folders.  The rules are the Makefile's
# INC_<folder> variables (docs/architecture.md), which the build already enforces by giving
# each folder only those -I paths; this script names every offending line at once and also
# catches a relative include ("../x.h") that would get past the -I paths.
# Usage (from make check-deps): check-deps.sh "folder:allowed,allowed ..." ...
set -u
bad=0
all_dirs=""
for rule in "$@"; do all_dirs="$all_dirs ${rule%%:*}"; done
for rule in "$@"; do
    dir=${rule%%:*}
    ok=" $(echo "${rule#*:}" | tr ',' ' ') "
    for f in "$dir"/*.c "$dir"/*.h "$dir"/*.cu "$dir"/*.cuh; do
        [ -f "$f" ] || continue
        for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
            case $inc in */*) echo "$f: relative include \"$inc\""; bad=1; continue ;; esac
            home=""
            for d in $all_dirs; do [ -f "$d/$inc" ] && home=$d; done
            [ -z "$home" ] && continue
            case "$ok" in *" $home "*) ;; *) echo "$f includes $home/$inc"; bad=1 ;; esac
        done
    done
done
[ $bad = 0 ] && echo "include direction: ok"
exit $bad
