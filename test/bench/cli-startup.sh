#!/bin/bash
# Start-up of the CLI, end to end: 20 runs each of `--version` and `verify BUNDLE --trust KEYS`,
# beside `node -e 0` and sha256sum over the bundle's artifacts. Prints median and minimum in ms.
# usage: test/bench/cli-startup.sh BUNDLE_DIR KEYS_JSON   (run `npm run build` first)
set -eu
bundle=$1 keys=$2
cli="$(dirname "$0")/../../bin/clawos-build.js"
declare -A T
t() { local k=$1; shift; local s; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; T[$k]+="$(( ($(date +%s%N) - s) / 1000000 )) "; }
for _ in $(seq 1 20); do
  t 'node -e 0' node -e 0
  t 'sha256sum artifacts' sh -c "find '$bundle/artifacts' -type f -exec sha256sum {} + >/dev/null"
  t 'clawos-build --version' node "$cli" --version
  t 'clawos-build verify' node "$cli" verify "$bundle" --trust "$keys"
done
for k in 'node -e 0' 'sha256sum artifacts' 'clawos-build --version' 'clawos-build verify'; do
  tr ' ' '\n' <<<"${T[$k]}" | grep . | sort -n | awk -v k="$k" '{a[NR]=$1} END {printf "%-24s median %5d ms  min %5d ms\n", k, a[int((NR+1)/2)], a[1]}'
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
