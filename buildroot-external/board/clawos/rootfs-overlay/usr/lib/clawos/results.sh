# ClawOS hardware results (issue 15), sourced by /init after checks.sh.
# On sourcing: prints the machine description (CLAWOS-MACHINE key=value lines)
# and starts RESULTS_LOG, where /init keeps a copy of every protocol line.
# results_write, called after the marker: if a disk carries a results area
# (its last 4 MiB start with the header `clawos-build flash` writes,
# "CLAWOS-RESULTS-AREA v1"), write the results there. Nothing else is ever
# written: no other disk, and on that disk nothing outside the area.
#
# Area layout (host/results-area.ts reads it): sector 0 the header (magic,
# iso_sha256=, iso_bytes=, area_bytes=); from byte 512 one line
# "CLAWOS-RESULTS v1 bytes=N sha256=HEX" and then the N bytes it describes.

RESULTS_LOG=/tmp/clawos-results.log
RESULTS_AREA_SECTORS=8192
: >"$RESULTS_LOG"

# machine KEY VALUE: one description line, on the console and in the log.
machine() {
  _l="CLAWOS-MACHINE $1=${2//[[:space:]]/ }"
  printf '%s\n' "$_l"
  printf '%s\n' "$_l" >>"$RESULTS_LOG"
}

results_machine() {
  machine arch "$(uname -m)"
  readline /sys/class/dmi/id/sys_vendor || LINE=unknown
  machine vendor "$LINE"
  readline /sys/class/dmi/id/product_name || LINE=unknown
  machine product "$LINE"
  readline /sys/class/dmi/id/bios_version || LINE=unknown
  machine firmware "$LINE"
  _model= _flags= _impl= _part=
  while IFS=: read -r _k _v; do
    _k=${_k%"${_k##*[![:space:]]}"}
    _v=${_v# }
    case "$_k" in
      'model name' | Hardware) [ -z "$_model" ] && _model=$_v ;;
      'CPU implementer') [ -z "$_impl" ] && _impl=$_v ;;
      'CPU part') [ -z "$_part" ] && _part=$_v ;;
      flags | Features) [ -z "$_flags" ] && _flags=$_v ;;
    esac
  done </proc/cpuinfo
  [ -z "$_model" ] && [ -n "$_impl" ] && _model="implementer $_impl part $_part"
  machine cpu_model "${_model:-unknown}"
  machine cpu_flags "${_flags:-unknown}"
  _mem=
  while read -r _k _v _u; do
    [ "$_k" = MemTotal: ] && _mem=$_v
  done </proc/meminfo
  machine mem_total_kb "${_mem:-unknown}"
  # Secure Boot: the SecureBoot EFI variable if efivarfs can be mounted (its last byte, 1 = on), else the kernel log.
  _sb=unknown
  if [ -d /sys/firmware/efi ]; then
    machine boot_path UEFI
    mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
    for _f in /sys/firmware/efi/efivars/SecureBoot-*; do
      [ -r "$_f" ] || continue
      set -- $(od -An -tu1 "$_f")
      eval "_last=\${$#}"
      case "$_last" in 1) _sb=on ;; 0) _sb=off ;; esac
    done
    if [ "$_sb" = unknown ]; then
      case "$(dmesg)" in
        *'Secure boot enabled'*) _sb=on ;;
        *'Secure boot disabled'*) _sb=off ;;
      esac
    fi
  else
    machine boot_path BIOS
    _sb=off
  fi
  machine secure_boot "$_sb"
}

results_write() {
  # usb-storage binds a stick at once but scans it for disks after a delay: while a stick is bound
  # (an interface "B-P:C.I" under its driver) and no SCSI disk is there yet, wait up to 10 s.
  # A boot without a stick (QEMU's CD-ROM boots) does not wait.
  _w=0
  while [ $_w -lt 10 ]; do
    case " $(echo "${RESULTS_SYS:-/sys}"/bus/usb/drivers/usb-storage/*:*) " in *'/*:*'*) break ;; esac
    case " $(echo "${RESULTS_SYS:-/sys}"/block/sd*) " in *'/sd*'*) ;; *) break ;; esac
    sleep 1
    _w=$((_w + 1))
  done
  for _d in "${RESULTS_SYS:-/sys}"/block/*; do
    _n=${_d##*/}
    case "$_n" in loop* | ram* | zram*) continue ;; esac
    _dev="${RESULTS_DEV:-/dev}/$_n"
    [ -e "$_dev" ] || continue
    readline "$_d/size" || continue
    [ "$LINE" -gt "$RESULTS_AREA_SECTORS" ] 2>/dev/null || continue
    _start=$((LINE - RESULTS_AREA_SECTORS))
    _magic= _iso=
    dd if="$_dev" bs=512 skip=$_start count=1 2>/dev/null | head -n 4 >/tmp/clawos-area.hdr
    while read -r _l; do
      case "$_l" in
        'CLAWOS-RESULTS-AREA v1') _magic=1 ;;
        iso_sha256=*) _iso=${_l#iso_sha256=} ;;
      esac
    done </tmp/clawos-area.hdr
    [ -n "$_magic" ] || continue
    {
      echo "iso_sha256=$_iso"
      cat "$RESULTS_LOG"
      echo '--- dmesg'
      dmesg
    } | head -c $(((RESULTS_AREA_SECTORS - 2) * 512)) >/tmp/clawos-results.body
    set -- $(wc -c </tmp/clawos-results.body)
    _len=$1
    set -- $(sha256sum /tmp/clawos-results.body)
    { echo "CLAWOS-RESULTS v1 bytes=$_len sha256=$1"; cat /tmp/clawos-results.body; } >/tmp/clawos-results.out
    if dd if=/tmp/clawos-results.out of="$_dev" bs=512 seek=$((_start + 1)) conv=notrunc,fsync 2>/dev/null; then
      echo "CLAWOS-RESULTS written=$_dev bytes=$_len"
    else
      echo "CLAWOS-RESULTS failed=$_dev"
    fi
    sync
    return 0
  done
  return 0
}

results_machine
