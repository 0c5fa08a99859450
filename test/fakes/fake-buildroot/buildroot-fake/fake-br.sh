#!/bin/sh
# Fake Buildroot's make goals (see ../README.md).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
: "${O:?fake buildroot: O= is required}"
mkdir -p "$O"
if [ -n "${BR2_EXTERNAL:-}" ]; then
  echo "BR2_EXTERNAL_CLAWOS_PATH := $BR2_EXTERNAL" >"$O/.br2-external.mk"
else
  BR2_EXTERNAL=$(sed -n 's/^BR2_EXTERNAL_CLAWOS_PATH := //p' "$O/.br2-external.mk" 2>/dev/null || true)
fi

# cfg SYMBOL: the .config value (quotes stripped, $(BR2_EXTERNAL_CLAWOS_PATH) expanded).
cfg() {
  sed -n "s/^$1=//p" "$O/.config" | tail -n 1 | sed -e 's/^"//' -e 's/"$//' -e "s|\$(BR2_EXTERNAL_CLAWOS_PATH)|$BR2_EXTERNAL|g"
}

step() { echo ">>> $1 $2 $3"; if [ "${FAKE_BUILDROOT_FAIL:-}" = "$1:$3" ]; then fail_step "$1" "$2"; fi; }
fail_step() {
  echo "$1/src/main.c:42:7: error: 'clawos' undeclared (first use in this function)" >&2
  echo "make[1]: *** [package/pkg-generic.mk:283: $O/build/$1-$2/.stamp_built] Error 1" >&2
  echo "make: *** [Makefile:82: _all] Error 2" >&2
  exit 2
}

case "$1" in
defconfig)
  src="$BR2_EXTERNAL/configs/$2"
  if [ ! -f "$src" ]; then
    echo "make: *** No rule to make target '$2'.  Stop." >&2
    exit 2
  fi
  grep -E '^BR2_[A-Za-z0-9_]+=' "$src" >"$O/.config.tmp" || true
  : >"$O/.config"
  while IFS= read -r line; do
    sym=${line%%=*}
    dep=$(awk -v s="$sym" '$1 == s { print $2 }' "$HERE/fake-deps.txt")
    if [ -n "$dep" ] && ! grep -qx "$dep=y" "$O/.config.tmp"; then
      echo "# $sym is not set" >>"$O/.config"
    else
      echo "$line" >>"$O/.config"
    fi
  done <"$O/.config.tmp"
  rm -f "$O/.config.tmp"
  # Buildroot's defaults that our defconfigs do not mention.
  echo 'BR2_JLEVEL=0' >>"$O/.config"
  echo "#"
  echo "# configuration written to $O/.config"
  echo "#"
  ;;
show-info)
  # What Buildroot's show-info says of the packages: FAKE_BUILDROOT_DOWNLOADS lists
  # the ones that would download ("pkg:version:file ..."); the others download nothing.
  printf '{"busybox": {"type": "target", "version": "1.38.0", "downloads": []}'
  for d in ${FAKE_BUILDROOT_DOWNLOADS:-}; do
    IFS=: read -r p v f <<EOF2
$d
EOF2
    printf ', "%s": {"type": "host", "version": "%s", "downloads": [{"source": "%s"}]}' "$p" "$v" "$f"
  done
  printf '}\n'
  ;;
savedefconfig)
  : "${BR2_DEFCONFIG:?fake buildroot: BR2_DEFCONFIG= is required (it would overwrite the external defconfig)}"
  grep -v -x -F -f "$HERE/fake-defaults.txt" "$O/.config" | grep -v '^BR2_JLEVEL=' | grep -v ' is not set$' >"$BR2_DEFCONFIG" || true
  ;;
build)
  : "${BR2_DL_DIR:?fake buildroot: BR2_DL_DIR= is required}"
  [ -f "$O/.config" ] || { echo "Please configure Buildroot first (e.g. \"make menuconfig\")" >&2; exit 2; }
  : "${CLAWOS_TOOLCHAIN_DIR:?fake buildroot: CLAWOS_TOOLCHAIN_DIR= is required}"
  : "${CLAWOS_KERNEL_DIR:?fake buildroot: CLAWOS_KERNEL_DIR= is required}"
  [ -f "$O/local.mk" ] || { echo "fake buildroot: no $O/local.mk" >&2; exit 2; }
  mkdir -p "$BR2_DL_DIR/busybox" "$O/images"
  step toolchain-external-custom "" Installing
  step busybox 1.36.1 Downloading
  echo "busybox-1.36.1.tar.bz2" >"$BR2_DL_DIR/busybox/busybox-1.36.1.tar.bz2"
  step busybox 1.36.1 Extracting
  step busybox 1.36.1 Building
  step busybox 1.36.1 "Installing to target"
  T=$O/target
  rm -rf "$T"
  mkdir -p "$T/bin" "$T/etc/clawos" "$T/lib/modules"
  echo BUSYBOX >"$T/bin/busybox"
  chmod 755 "$T/bin/busybox"
  ln -sf busybox "$T/bin/sh"
  ln -sf bin/busybox "$T/linuxrc"
  if [ "$(cfg BR2_PACKAGE_CLAWOS_INIT)" = y ]; then
    step clawos-init 1.0 "Installing to target"
    lsms=$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "$CLAWOS_KERNEL_DIR/config" | tail -n 1 | tr , ' ')
    printf '%s\n' "# Written by clawos-init (Buildroot): what the in-guest checks expect." \
      "ARCH='$(cfg BR2_PACKAGE_CLAWOS_INIT_ARCH)'" "KERNEL_RELEASE='$(cat "$CLAWOS_KERNEL_DIR/kernel.release")'" "LSMS='$lsms'" \
      "CPU_FLAGS='$(cfg BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS)'" >"$T/etc/clawos/expect.env"
  fi
  if [ "$(cfg BR2_PACKAGE_CLAWOS_CANARY)" = y ]; then
    step clawos-canary 1.0 "Installing to target"
    cp "$CLAWOS_KERNEL_DIR/modules/clawos_canary.ko" "$CLAWOS_KERNEL_DIR/modules/clawos_canary-unsigned.ko" "$T/lib/modules/"
  fi
  echo ">>>   Finalizing target directory"
  overlay=$(cfg BR2_ROOTFS_OVERLAY)
  [ -z "$overlay" ] || cp -a "$overlay/." "$T/"
  for s in $(cfg BR2_ROOTFS_POST_BUILD_SCRIPT); do
    echo ">>>   Executing post-build script $s"
    # shellcheck disable=SC2046
    sh "$s" "$T" $(cfg BR2_ROOTFS_POST_SCRIPT_ARGS)
  done
  echo ">>>   Generating filesystem image rootfs.cpio"
  (cd "$T" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -n >"$O/images/rootfs.cpio.gz"
  ;;
*)
  echo "fake buildroot: unknown goal $1" >&2
  exit 2
  ;;
esac
