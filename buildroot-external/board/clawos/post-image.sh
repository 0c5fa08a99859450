#!/bin/sh
# Buildroot post-image script (BR2_ROOTFS_POST_IMAGE_SCRIPT), run as
#   post-image.sh BINARIES_DIR [key=value ...]   (BR2_ROOTFS_POST_SCRIPT_ARGS)
# With efi_iso=NAME and grub_cfg=FILE (board/clawos/FILE) it makes a UEFI-only
# ISO, BINARIES_DIR/NAME: Buildroot's ISO9660 target is x86-only, so arm64
# gets its ISO here, laid out like the busybox backend's (boot/vmlinuz,
# boot/initramfs.cpio.gz, boot/grub/grub.cfg) with an El Torito EFI image that
# holds Buildroot's GRUB (built with grub-efi-builtin.cfg, which finds the menu).
# Only Buildroot's host tools (HOST_DIR) are used, so the host needs none.
# Without efi_iso it does nothing (x86_64: Buildroot made images/rootfs.iso9660).
set -eu

BIN=${1:?usage: post-image.sh BINARIES_DIR [efi_iso=NAME grub_cfg=FILE]}
shift
ISO='' GRUB_CFG=''
for arg in "$@"; do
  case "$arg" in
    efi_iso=*) ISO=${arg#efi_iso=} ;;
    grub_cfg=*) GRUB_CFG=${arg#grub_cfg=} ;;
  esac
done
[ -n "$ISO" ] || exit 0

BOARD=$(dirname "$0")
: "${HOST_DIR:?HOST_DIR is not set: run this from Buildroot}"
: "${BUILD_DIR:?BUILD_DIR is not set: run this from Buildroot}"
EPOCH=${SOURCE_DATE_EPOCH:-0}

KERNEL=
for k in Image bzImage zImage; do
  if [ -f "$BIN/$k" ]; then KERNEL=$BIN/$k; break; fi
done
GRUB_EFI=$(find "$BIN/efi-part/EFI/BOOT" -maxdepth 1 -iname 'boot*.efi' 2>/dev/null | head -n 1)
missing=
[ -n "$KERNEL" ] || missing="$missing kernel(Image)"
[ -f "$BIN/rootfs.cpio.gz" ] || missing="$missing rootfs.cpio.gz"
[ -n "$GRUB_EFI" ] || missing="$missing efi-part/EFI/BOOT/boot*.efi(BR2_TARGET_GRUB2_*_EFI)"
[ -n "$GRUB_CFG" ] && [ -f "$BOARD/$GRUB_CFG" ] || missing="$missing board/clawos/${GRUB_CFG:-<grub_cfg=>}"
if [ -n "$missing" ]; then
  echo "clawos post-image: cannot make $ISO, missing:$missing" >&2
  exit 1
fi

WORK=$(mktemp -d "$BUILD_DIR/clawos-iso.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/tree
mkdir -p "$TREE/boot/grub" "$TREE/EFI/BOOT"
cp "$KERNEL" "$TREE/boot/vmlinuz"
cp "$BIN/rootfs.cpio.gz" "$TREE/boot/initramfs.cpio.gz"
grep -v '^#' "$BOARD/$GRUB_CFG" >"$TREE/boot/grub/grub.cfg"
EFI_NAME=$(basename "$GRUB_EFI" | tr '[:lower:]' '[:upper:]')
cp "$GRUB_EFI" "$TREE/EFI/BOOT/$EFI_NAME"

# The FAT image firmware boots from: size in KiB, with room for the FAT itself;
# its volume id comes from SOURCE_DATE_EPOCH so the image does not depend on the clock.
EFI_IMG=$TREE/boot/efi.img
KB=$(( $(du -k "$GRUB_EFI" | cut -f1) + 512 ))
"$HOST_DIR/sbin/mkfs.vfat" -i "$(printf '%08x' $((EPOCH & 0xffffffff)))" -n CLAWOS_EFI -C "$EFI_IMG" "$KB" >/dev/null
export MTOOLS_SKIP_CHECK=1
"$HOST_DIR/bin/mmd" -i "$EFI_IMG" ::/EFI ::/EFI/BOOT
"$HOST_DIR/bin/mcopy" -i "$EFI_IMG" "$GRUB_EFI" "::/EFI/BOOT/$EFI_NAME"

UUID=$(date -u -d "@$EPOCH" +%Y%m%d%H%M%S00)
rm -f "$BIN/$ISO"
"$HOST_DIR/bin/xorriso" -as mkisofs -R -J -V CLAWOS \
  -e boot/efi.img -no-emul-boot -append_partition 2 0xef "$EFI_IMG" \
  -o "$BIN/$ISO" "$TREE" \
  -- -volume_date all_file_dates "=$EPOCH" -volume_date uuid "$UUID"
echo "clawos post-image: $BIN/$ISO (UEFI)"
