#!/bin/sh
# Enforces the include direction between stage folders (docs/architecture.md):
#   common   <- everything
#   quant    may include common
#   formats  may include common, quant
#   kernels  may include common, quant
#   calib    may include common, formats, quant, kernels
#   convert  may include everything (it is the CLI)
# A folder's own headers are always allowed.  Prints each violation; exit 1 if any.
set -u
bad=0
allowed() { # folder -> allowed folders
    case $1 in
    common) echo "common" ;;
    quant) echo "common quant" ;;
    formats) echo "common quant formats" ;;
    kernels) echo "common quant kernels" ;;
    calib) echo "common formats quant kernels calib" ;;
    *) echo "common formats quant kernels calib convert" ;;
    esac
}
for dir in common quant formats kernels calib; do
    ok=$(allowed $dir)
    for f in $dir/*.c $dir/*.h $dir/*.cu; do
        [ -f "$f" ] || continue
        for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
            home=""
            for d in common quant formats kernels calib convert; do
                [ -f "$d/$inc" ] && home=$d
            done
            [ -z "$home" ] && continue
            case " $ok " in *" $home "*) ;; *) echo "$f includes $home/$inc"; bad=1 ;; esac
        done
    done
done
[ $bad = 0 ] && echo "include direction: ok"
exit $bad
