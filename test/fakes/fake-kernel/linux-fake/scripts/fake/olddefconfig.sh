#!/bin/sh
# Like Kconfig's olddefconfig: forget symbols no Kconfig file defines and turn
# off a symbol whose `depends on` symbols are not all y (one pass, no cascade).
set -e
cfg=$obj/.config
deps=$(mktemp)
find "$src" -name 'Kconfig*' -type f | sort | xargs awk '
  $1 == "config" || $1 == "menuconfig" { if (cur != "") print cur d; cur = $2; d = ""; next }
  $1 == "depends" && $2 == "on" { d = d " " $3 }
  END { if (cur != "") print cur d }' > "$deps"
awk '
  FNR == 1 { f++ }
  f == 1 { defined[$1] = 1; for (i = 2; i <= NF; i++) dep[$1] = dep[$1] " " $i; next }
  f == 2 { if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) v[substr($0, 8, RLENGTH - 8)] = substr($0, RLENGTH + 1); next }
  {
    if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) {
      s = substr($0, 8, RLENGTH - 8)
      if (!(s in defined)) next
      n = split(dep[s], d, " "); ok = 1
      for (i = 1; i <= n; i++) if (v[d[i]] != "y") ok = 0
      if (!ok) { print "# CONFIG_" s " is not set"; next }
    } else if ($0 ~ /^# CONFIG_[A-Za-z0-9_]+ is not set/) {
      s = substr($2, 8); if (!(s in defined)) next
    }
    print
  }' "$deps" "$cfg" "$cfg" > "$cfg.new"
mv "$cfg.new" "$cfg"
rm -f "$deps"
echo "# configuration written to .config"
