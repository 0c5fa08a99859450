#!/bin/sh
# `make M=<dir> modules`: one fake .ko per obj-m entry of <dir>/Kbuild.
set -e
m=$1
test -f "$obj/vmlinux" || { echo "fake-kernel: $obj is not built (run make first)" >&2; exit 2; }
test -f "$m/Kbuild" || { echo "fake-kernel: no Kbuild in $m" >&2; exit 2; }
for o in $(sed -n 's/^obj-m *[:+]*= *//p' "$m/Kbuild"); do
  echo "  CC [M]  $m/$o"
  echo "fake module ${o%.o}" > "$m/${o%.o}.ko"
done
