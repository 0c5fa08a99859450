#!/bin/sh
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT), run as
#   post-build.sh TARGET_DIR [key=value ...]   (BR2_ROOTFS_POST_SCRIPT_ARGS)
# It fails the build early, with the reason, when the target tree lacks what the
# in-guest checks need: a broken image would otherwise only show up at boot.
set -eu

TARGET=${1:?usage: post-build.sh TARGET_DIR [arch=NAME ...]}
shift
ARCH=
for arg in "$@"; do
  case "$arg" in arch=*) ARCH=${arg#arch=} ;; esac
done

# The layers clawos-build generates (the seccomp filter and its loader, the AppArmor
# policy, the P1.5 quota table) arrive as "FROM<TAB>TO" lines in CLAWOS_EXTRAS, the
# list the busybox backend's rootfs step takes as its `extras`.
if [ -n "${CLAWOS_EXTRAS:-}" ]; then
  tab=$(printf '\t')
  printf '%s\n' "$CLAWOS_EXTRAS" | while IFS="$tab" read -r from to; do
    [ -n "$from" ] || continue
    # --remove-destination: a rebuild in the same output dir finds the last build's
    # copies, read-only as clawos-build's outputs are, which the sandbox (no
    # CAP_DAC_OVERRIDE) cannot open for writing; each is replaced instead.
    if [ -d "$from" ]; then
      mkdir -p "$TARGET/$to" && cp -a --remove-destination "$from/." "$TARGET/$to/"
    else
      mkdir -p "$(dirname "$TARGET/$to")" && cp -a --remove-destination "$from" "$TARGET/$to"
    fi
  done
fi

missing=
need() { [ -e "$TARGET/$1" ] || missing="$missing /$1"; }
need init
need bin/busybox
need usr/lib/clawos/checks.sh
need etc/clawos/expect.env
need lib/modules/clawos_canary.ko
need lib/modules/clawos_canary-unsigned.ko
if [ -n "$missing" ]; then
  echo "clawos post-build: the target tree lacks:$missing" >&2
  exit 1
fi
[ -x "$TARGET/init" ] || { echo "clawos post-build: /init is not executable" >&2; exit 1; }

# expect.env is what the checks compare against: an empty value would make them fail in the guest.
for key in ARCH KERNEL_RELEASE LSMS; do
  if ! grep -q "^$key='[^']" "$TARGET/etc/clawos/expect.env"; then
    echo "clawos post-build: /etc/clawos/expect.env has no $key value" >&2
    exit 1
  fi
done
if [ -n "$ARCH" ] && ! grep -qx "ARCH='$ARCH'" "$TARGET/etc/clawos/expect.env"; then
  echo "clawos post-build: /etc/clawos/expect.env is for another arch (want ARCH='$ARCH')" >&2
  exit 1
fi

# /init runs `busybox --install -s`; links Buildroot installed are harmless
# duplicates, but /linuxrc is a leftover of busybox's init we do not use.
rm -f "$TARGET/linuxrc"
