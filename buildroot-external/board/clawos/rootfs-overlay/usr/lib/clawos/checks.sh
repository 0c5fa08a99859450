# ClawOS in-guest checks, sourced by /init (busybox ash).
# Each check_* sets VALUE to the evidence (or the reason it failed) and returns
# 0 for pass. Expectations come from /etc/clawos/expect.env, written by the
# rootfs step: KERNEL_RELEASE, LSMS, CPU_FLAGS.
# Shell builtins (read, case) are used over cat/grep where they can: under
# emulation (no KVM) every fork+exec costs tens of milliseconds.

# missing_words "HAVE" WANT...: sets MISSING to the WANT words not among the HAVE words.
missing_words() {
  _have=" ${1//[[:space:],]/ } "
  shift
  MISSING=
  for _w in "$@"; do
    case "$_have" in *" $_w "*) ;; *) MISSING="${MISSING:+$MISSING }$_w" ;; esac
  done
}

# readline FILE: first line of FILE in LINE ("" if unreadable).
readline() {
  LINE=
  { read -r LINE <"$1"; } 2>/dev/null
  [ -n "$LINE" ]
}

check_kernel() {
  readline /proc/sys/kernel/osrelease || LINE=$(uname -r)
  if [ -z "$KERNEL_RELEASE" ]; then VALUE="uname -r=$LINE but no KERNEL_RELEASE in /etc/clawos/expect.env"; return 1; fi
  if [ "$LINE" != "$KERNEL_RELEASE" ]; then VALUE="uname -r=$LINE expected $KERNEL_RELEASE"; return 1; fi
  VALUE=$LINE
}

check_lsm() {
  if ! readline /sys/kernel/security/lsm; then VALUE="/sys/kernel/security/lsm missing or empty (no securityfs?)"; return 1; fi
  if [ -z "$LSMS" ]; then VALUE="lsm=$LINE but no LSMS in /etc/clawos/expect.env"; return 1; fi
  missing_words "$LINE" $LSMS
  if [ -n "$MISSING" ]; then VALUE="lsm=$LINE missing=$MISSING"; return 1; fi
  VALUE=$LINE
}

check_lockdown() {
  if ! readline /sys/kernel/security/lockdown; then
    VALUE="/sys/kernel/security/lockdown missing (lockdown LSM not built or securityfs not mounted)"
    return 1
  fi
  VALUE=$LINE
  case "$LINE" in *"[confidentiality]"*) return 0 ;; esac
  VALUE="$LINE (want [confidentiality])"
  return 1
}

check_btf() {
  _f=/sys/kernel/btf/vmlinux
  if [ ! -e $_f ]; then VALUE="$_f missing"; return 1; fi
  _size=$(stat -c %s $_f)
  set -- $(od -An -tx1 -N2 $_f)
  VALUE="$_f size=$_size magic=$1$2"
  [ "${_size:-0}" -gt 0 ] || return 1
  # BTF_MAGIC 0xeB9F in the kernel's byte order.
  case "$1$2" in 9feb | eb9f) return 0 ;; esac
  VALUE="$VALUE (not BTF)"
  return 1
}

check_cgroup2() {
  _fs=
  while read -r _dev _mnt _type _rest; do
    [ "$_mnt" = /sys/fs/cgroup ] && _fs=$_type
  done </proc/mounts
  if [ "$_fs" != cgroup2 ]; then VALUE="cgroup2 not mounted on /sys/fs/cgroup (found: ${_fs:-nothing})"; return 1; fi
  readline /sys/fs/cgroup/cgroup.controllers
  missing_words "$LINE" memory pids cpu
  if [ -n "$MISSING" ]; then VALUE="controllers=$LINE missing=$MISSING"; return 1; fi
  VALUE="controllers=$LINE"
}

check_seccomp() {
  readline /proc/sys/kernel/seccomp/actions_avail
  _a=$LINE
  _s=
  while read -r _k _v; do
    [ "$_k" = Seccomp: ] && _s="Seccomp: $_v"
  done </proc/self/status
  VALUE="actions_avail=${_a:-none} status=${_s:-none}"
  missing_words "$_a" kill_process errno
  [ -n "$_s" ] || MISSING="${MISSING:+$MISSING }Seccomp-field"
  if [ -n "$MISSING" ]; then VALUE="$VALUE missing=$MISSING"; return 1; fi
}

# nsids: NSIDS = "pid:[n] mnt:[n] ..." of the calling shell (one ls, not five readlinks).
nsids() {
  NSIDS=
  for _w in $(ls -l /proc/$$/ns/); do
    case "$NSIDS " in *" $_w "*) continue ;; esac # pid_for_children repeats pid
    case "$_w" in pid:\[* | mnt:\[* | net:\[* | uts:\[* | ipc:\[*) NSIDS="$NSIDS $_w" ;; esac
  done
}

# Devices the tunnel drivers create in every net ns (fb_tunnels_only_for_init_net=0).
FALLBACK_TUNNELS="sit0 tunl0 ip6tnl0 ip6gre0 gre0 gretap0 erspan0 ip_vti0 ip6_vti0"

# C-03/C-04: each namespace under unshare, each run ending in pivot_root into a
# minimal root (busybox only), as the isolator will run a sandbox:
# - user, unmapped: the uid reads as the overflow uid 65534;
# - user, mapped: the parent writes uid_map/gid_map "0 65534 1" for a holder
#   process, as a container runtime does, and a shell entering its user+mount
#   ns (nsenter -S 0 -G 0) is root inside and 65534 outside: the kernel reports
#   the map, a host root file shows owner 65534 and refuses its write, and the
#   user ns's own mount ns pivots into a minimal root;
# - pid+mount+net+uts+ipc as root (capabilities do not survive exec in an
#   unmapped user ns, hence a separate run), pivoted into a minimal root
#   (busybox, checks.sh, /dev/null, a fresh /proc): pid 1, own hostname, only
#   lo, new ns ids.
check_namespaces() {
  _bad=
  _uid=$(unshare -U id -u 2>&1)
  [ "$_uid" = 65534 ] || _bad="$_bad user-uid"

  _probe=/tmp/.clawos-ns-probe
  : >$_probe && chmod 644 $_probe
  unshare -U -m sleep 60 &
  _h=$!
  # Until the holder has its own user ns (test -ef: same nsfs inode; no fork per try).
  _i=0
  while [ /proc/$_h/ns/user -ef /proc/$$/ns/user ] && [ $_i -lt 100 ]; do
    sleep 0.05
    _i=$((_i + 1))
  done
  { echo '0 65534 1' >/proc/$_h/uid_map && echo '0 65534 1' >/proc/$_h/gid_map; } 2>/dev/null || _bad="$_bad user-map-write"
  _u=$(nsenter -t $_h -U -m -S 0 -G 0 sh -c '
    echo "uid=$(id -u)"
    read -r _a _b _c </proc/self/uid_map && echo "map=$_a $_b $_c"
    echo "owner=$(stat -c %u "$1")"
    if { echo x >>"$1"; } 2>/dev/null; then echo write=ALLOWED; else echo write=denied; fi
    mount --make-rprivate / || exit 10
    mount -t tmpfs userns-root /tmp || exit 11
    mkdir /tmp/bin /tmp/old && cp /bin/busybox /tmp/bin/ || exit 12
    cd /tmp && pivot_root . old || exit 13
    exec /bin/busybox sh -c "/bin/busybox umount -l /old && /bin/busybox rmdir /old && echo root=\$(/bin/busybox ls /)"
  ' userns $_probe 2>&1)
  _urc=$?
  kill $_h 2>/dev/null
  wait $_h 2>/dev/null
  _uu= _umap= _uown= _uw= _uroot=
  while IFS== read -r _k _v; do
    case "$_k" in uid) _uu=$_v ;; map) _umap=$_v ;; owner) _uown=$_v ;; write) _uw=$_v ;; root) _uroot=$_v ;; esac
  done <<EOT
$_u
EOT
  [ "$_uu" = 0 ] && [ "$_umap" = "0 65534 1" ] || _bad="$_bad user-map"
  [ "$_uown" = 65534 ] && [ "$_uw" = denied ] && [ ! -s $_probe ] || _bad="$_bad user-host-file"
  [ $_urc = 0 ] && [ "$_uroot" = bin ] || _bad="$_bad user-pivot(step $_urc)"
  rm -f $_probe

  ip link set lo up 2>/dev/null
  # IFF_UP is bit 0 of the interface flags.
  readline /sys/class/net/lo/flags
  _hostlo=down
  [ -n "$LINE" ] && [ $((LINE & 1)) = 1 ] && _hostlo=up
  readline /proc/1/comm
  _hostcomm=$LINE
  nsids
  _hostids=$NSIDS
  # Runs as pid 1 of the new pid ns, in the minimal root, once pivoted.
  _inside='
    /bin/busybox umount -l /old && /bin/busybox rmdir /old || { echo step=old-root; exit 15; }
    /bin/busybox mount -t proc proc /proc || { echo step=proc; exit 16; }
    /bin/busybox --install -s /bin
    PATH=/bin
    . /checks.sh
    echo "root=$(echo /*)"
    echo "pid=$$"
    readline /proc/1/comm && echo "comm1=$LINE"
    # The sethostname of the uts ns, without an exec.
    echo clawos-ns >/proc/sys/kernel/hostname
    readline /proc/sys/kernel/hostname && echo "hostname=$LINE"
    _l=
    while IFS=: read -r _n _rest; do
      case "$_n" in *\|* | "") ;; *) _l="$_l ${_n// /}" ;; esac
    done </proc/net/dev
    echo "links=${_l# }"
    case "$(ip -o link show lo)" in *[\<,]UP[,\>]*) echo lo=up ;; *) echo lo=down ;; esac
    nsids
    echo "ids=${NSIDS# }"
  '
  _o=$(unshare -p -f -m -n -u -i sh -c '
    mount --make-rprivate / || exit 10
    mount -t tmpfs ns-root /tmp || exit 11
    mkdir /tmp/bin /tmp/dev /tmp/proc /tmp/old && mknod -m 666 /tmp/dev/null c 1 3 || exit 12
    cp /bin/busybox /tmp/bin/ && cp /usr/lib/clawos/checks.sh /tmp/ || exit 13
    cd /tmp && pivot_root . old || exit 14
    exec /bin/busybox sh -c "$1"
  ' ns "$_inside" 2>&1)
  _prc=$?
  _root= _pid= _comm1= _hn= _links= _lo= _ids=
  while IFS== read -r _k _v; do
    case "$_k" in
      root) _root=$_v ;; pid) _pid=$_v ;; comm1) _comm1=$_v ;; hostname) _hn=$_v ;;
      links) _links=$_v ;; lo) _lo=$_v ;; ids) _ids=$_v ;;
    esac
  done <<EOT
$_o
EOT
  readline /proc/1/comm
  _hostcomm2=$LINE
  readline /proc/sys/kernel/hostname
  _hosthn=$LINE
  [ $_prc = 0 ] && [ "$_root" = "/bin /checks.sh /dev /proc" ] || _bad="$_bad pivot(step $_prc)"
  [ "$_pid" = 1 ] || _bad="$_bad pid"
  [ "$_comm1" = busybox ] || _bad="$_bad fresh-proc"
  [ "$_hostcomm2" = "$_hostcomm" ] || _bad="$_bad host-proc-changed"
  [ "$_hn" = clawos-ns ] || _bad="$_bad uts-set"
  [ "$_hosthn" = clawos ] || _bad="$_bad uts-leaked"
  # Every new net ns gets lo plus the fallback device of each tunnel driver
  # built in (sit0 with IPV6_SIT …): those are the ns's own, not the host's.
  _own= _fb=
  for _n in $_links; do
    case " $FALLBACK_TUNNELS " in *" $_n "*) _fb="$_fb $_n" ;; *) _own="$_own $_n" ;; esac
  done
  [ "$_own" = " lo" ] || _bad="$_bad net-links"
  [ "$_lo" = down ] && [ "$_hostlo" = up ] || _bad="$_bad net-lo"
  _same=
  for _id in $_ids; do
    case " $_hostids " in *" $_id "*) _same="${_same:+$_same,}${_id%%:*}" ;; esac
  done
  [ -z "$_same" ] && [ -n "$_ids" ] || _bad="$_bad same-ns:${_same:-none}"

  VALUE="user:unmapped-uid=$_uid mapped(uid_map=$_umap):uid=$_uu host-root-file:owner=$_uown,write=$_uw pivot-root=$_uroot; pivot-root=$_root; pid:self=$_pid proc1=$_comm1 host-proc1=$_hostcomm2; uts:inside=$_hn host=$_hosthn; net:links=$_links${_fb:+ (fallback tunnels:$_fb)} lo=$_lo host-lo=$_hostlo; new-ns=${_ids// /,}"
  if [ -n "$_bad" ]; then
    VALUE="$VALUE; FAILED:$_bad; output: $_u $_o"
    return 1
  fi
}

check_module_sig() {
  _un=/lib/modules/clawos_canary-unsigned.ko
  _si=/lib/modules/clawos_canary.ko
  _miss=
  for _f in $_un $_si; do [ -f $_f ] || _miss="$_miss $_f"; done
  if [ -n "$_miss" ]; then VALUE="missing:$_miss"; return 1; fi
  if _out=$(insmod $_un 2>&1); then
    VALUE="unsigned module LOADED: module signatures are not enforced"
    rmmod clawos_canary 2>/dev/null
    return 1
  fi
  # EKEYREJECTED is MODULE_SIG_FORCE's answer; lockdown alone would say EPERM.
  case "$_out" in
    *"Key was rejected"*) _uv="unsigned=refused(${_out##*: })" ;;
    *) VALUE="unsigned refused for another reason: $_out"; return 1 ;;
  esac
  if ! _out=$(insmod $_si 2>&1); then
    # The kernel says why in its log (hidden from the console by the low printk level).
    VALUE="$_uv signed=refused(${_out##*: }) kernel: $(dmesg | grep -i -e canary -e 'module' | tail -n 3)"
    return 1
  fi
  case "$(dmesg)" in
    *"clawos_canary: loaded"*) ;;
    *) VALUE="$_uv signed=inserted but no 'clawos_canary: loaded' in dmesg"; return 1 ;;
  esac
  VALUE="$_uv signed=loaded(dmesg: clawos_canary: loaded)"
}

# C-05: in a new mount namespace, pivot_root into a minimal tmpfs root holding
# only busybox and a marker, drop the old root, and run a command there.
check_pivot_root() {
  _o=$(unshare -m sh -c '
    mount --make-rprivate / || exit 10
    mkdir -p /tmp/pivot && mount -t tmpfs pivot /tmp/pivot || exit 11
    mkdir -p /tmp/pivot/bin /tmp/pivot/old || exit 12
    cp /bin/busybox /tmp/pivot/bin/busybox || exit 13
    echo clawos-pivot >/tmp/pivot/marker
    cd /tmp/pivot || exit 14
    pivot_root . old || exit 15
    exec /bin/busybox sh -c "/bin/busybox umount -l /old && /bin/busybox echo root=\$(/bin/busybox ls /) marker=\$(/bin/busybox cat /marker)"
  ' 2>&1)
  _rc=$?
  VALUE="$_o"
  [ $_rc = 0 ] || { VALUE="pivot failed (step $_rc): $_o"; return 1; }
  case "$_o" in
    "root=bin marker old marker=clawos-pivot") ;;
    *) VALUE="unexpected view after pivot_root: $_o"; return 1 ;;
  esac
  # The host's root must be untouched.
  [ -x /init ] || { VALUE="$VALUE; host root changed"; return 1; }
}

check_cpu_flags() {
  # x86 calls the line "flags", arm64 "Features".
  _have=$(grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo)
  _have=${_have#*:}
  missing_words "$_have" $CPU_FLAGS
  if [ -n "$MISSING" ]; then VALUE="missing=$MISSING"; return 1; fi
  VALUE="present=$CPU_FLAGS"
}

# The kernel log lines that fail a boot (kernel-log.patterns: data, one ERE a line).
KERNEL_LOG_PATTERNS=${KERNEL_LOG_PATTERNS:-/usr/lib/clawos/kernel-log.patterns}

# kernel-log: no line of dmesg matches a pattern of $KERNEL_LOG_PATTERNS. /init
# runs it last, so whatever the other checks set off is in the log too; the low
# console log level keeps BUG:/WARNING:/UBSAN reports off the serial log, so this
# is how they reach the verdict. Fails, quoting the first offending line.
check_kernel_log() {
  _pf=${TMPDIR:-/tmp}/.clawos-kernel-log.$$
  # Comments and blank lines out: an empty pattern would match every line.
  grep -v -e '^#' -e '^[[:space:]]*$' "$KERNEL_LOG_PATTERNS" >"$_pf" 2>/dev/null
  if [ ! -s "$_pf" ]; then
    rm -f "$_pf"
    VALUE="no patterns in $KERNEL_LOG_PATTERNS"
    return 1
  fi
  if ! _log=$(dmesg 2>&1); then
    rm -f "$_pf"
    VALUE="dmesg failed: $_log"
    return 1
  fi
  _np=$(grep -c '' "$_pf")
  _hits=$(printf '%s\n' "$_log" | grep -E -f "$_pf" 2>&1)
  _grc=$?
  rm -f "$_pf"
  # grep: 0 a line matched, 1 none did, 2 an error (a pattern this regex library refuses).
  if [ $_grc -gt 1 ]; then
    VALUE="grep -E failed on $KERNEL_LOG_PATTERNS (exit $_grc): $_hits"
    return 1
  fi
  _n=0 _first=
  while IFS= read -r _l; do
    [ -n "$_l" ] || continue
    _n=$((_n + 1))
    [ -n "$_first" ] || _first=$_l
  done <<EOT
$_hits
EOT
  if [ $_n -gt 0 ]; then
    # The line first: the host's verdict message shows only the value's start.
    VALUE="dmesg: $_first ($_n line(s) match $KERNEL_LOG_PATTERNS)"
    return 1
  fi
  VALUE="dmesg clean: $(printf '%s\n' "$_log" | grep -c '') lines, none matches the $_np patterns of $KERNEL_LOG_PATTERNS"
}

# The UEFI global variable SecureBoot: 4 bytes of attributes, then one byte, 1 = on.
SB_VAR=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c

# secureboot_on: the firmware reports Secure Boot on (SB_BYTE holds the byte read).
secureboot_on() {
  SB_BYTE=
  [ -r "$SB_VAR" ] || return 1
  # efivarfs files stat as 0 bytes, so od cannot skip into them: read all five bytes.
  set -- $(od -An -tu1 "$SB_VAR" 2>/dev/null)
  SB_BYTE=$5
  [ "$SB_BYTE" = 1 ]
}

check_secureboot() {
  if ! secureboot_on; then VALUE="SecureBoot variable ${SB_BYTE:-unreadable}"; return 1; fi
  if ! readline /sys/kernel/security/lockdown; then VALUE="SecureBoot=1 but /sys/kernel/security/lockdown missing"; return 1; fi
  case "$LINE" in
    *"[integrity]"* | *"[confidentiality]"*) VALUE="SecureBoot=1 lockdown=$LINE" ;;
    *) VALUE="SecureBoot=1 but lockdown=$LINE (want integrity or confidentiality)"; return 1 ;;
  esac
}
