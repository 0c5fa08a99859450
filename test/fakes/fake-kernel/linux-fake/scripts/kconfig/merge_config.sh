#!/bin/sh
# merge_config.sh [-m] [-O dir] base fragment...: later fragments override
# earlier values, like Linux's; the result goes to <dir>/.config.
set -e
out=.
while [ $# -gt 0 ]; do
  case $1 in
    -O) out=$2; shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
base=$1; shift
tmp=$(mktemp)
cp "$base" "$tmp"
for frag in "$@"; do
  test -f "$frag" || { echo "The merge file '$frag' does not exist.  Exit." >&2; exit 1; }
  echo "Merging $frag"
  for sym in $(sed -n -e 's/^\(CONFIG_[A-Za-z0-9_]*\)=.*/\1/p' -e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set.*/\1/p' "$frag"); do
    grep -v -e "^$sym=" -e "^# $sym is not set" "$tmp" > "$tmp.n" || true
    mv "$tmp.n" "$tmp"
  done
  grep -e '^CONFIG_' -e '^# CONFIG_.* is not set' "$frag" >> "$tmp" || true
done
cp "$tmp" "$out/.config"
rm -f "$tmp"
