# ClawOS in-guest checks, sourced by /init (busybox ash).
# Each check_* sets VALUE to the evidence (or the reason it failed) and returns
# 0 for pass. Expectations come from /etc/clawos/expect.env, written by the
# rootfs step: KERNEL_RELEASE, LSMS, CPU_FLAGS.

# missing_words HAVE WANT...: prints the WANT words not in the space-separated HAVE.
missing_words() {
  _have=" $(echo $1) "; shift
  _miss=
  for _w in "$@"; do
    case "$_have" in *" $_w "*) ;; *) _miss="${_miss:+$_miss }$_w" ;; esac
  done
  echo "$_miss"
}

check_kernel() {
  _r=$(uname -r)
  if [ -z "$KERNEL_RELEASE" ]; then VALUE="uname -r=$_r but no KERNEL_RELEASE in /etc/clawos/expect.env"; return 1; fi
  if [ "$_r" != "$KERNEL_RELEASE" ]; then VALUE="uname -r=$_r expected $KERNEL_RELEASE"; return 1; fi
  VALUE=$_r
}

check_lsm() {
  _f=/sys/kernel/security/lsm
  if [ ! -r $_f ]; then VALUE="$_f missing (no securityfs?)"; return 1; fi
  _have=$(cat $_f)
  if [ -z "$LSMS" ]; then VALUE="lsm=$_have but no LSMS in /etc/clawos/expect.env"; return 1; fi
  _m=$(missing_words "$(echo "$_have" | tr , ' ')" $LSMS)
  if [ -n "$_m" ]; then VALUE="lsm=$_have missing=$_m"; return 1; fi
  VALUE=$_have
}

check_lockdown() {
  _f=/sys/kernel/security/lockdown
  if [ ! -r $_f ]; then VALUE="$_f missing (lockdown LSM not built or securityfs not mounted)"; return 1; fi
  VALUE=$(cat $_f)
  case "$VALUE" in *"[confidentiality]"*) return 0 ;; esac
  VALUE="$VALUE (want [confidentiality])"
  return 1
}

check_btf() {
  _f=/sys/kernel/btf/vmlinux
  if [ ! -e $_f ]; then VALUE="$_f missing"; return 1; fi
  _size=$(stat -c %s $_f)
  _magic=$(head -c 2 $_f | od -An -tx1 | tr -d ' \n')
  VALUE="$_f size=$_size magic=$_magic"
  [ "${_size:-0}" -gt 0 ] || return 1
  # BTF_MAGIC 0xeB9F in the kernel's byte order.
  case "$_magic" in 9feb | eb9f) return 0 ;; esac
  VALUE="$VALUE (not BTF)"
  return 1
}

check_cgroup2() {
  _line=$(grep ' /sys/fs/cgroup ' /proc/mounts)
  case "$_line" in
    *" cgroup2 "*) ;;
    *) VALUE="cgroup2 not mounted on /sys/fs/cgroup (${_line:-nothing there})"; return 1 ;;
  esac
  _c=$(cat /sys/fs/cgroup/cgroup.controllers)
  _m=$(missing_words "$_c" memory pids cpu)
  if [ -n "$_m" ]; then VALUE="controllers=$_c missing=$_m"; return 1; fi
  VALUE="controllers=$_c"
}

check_seccomp() {
  _a=$(cat /proc/sys/kernel/seccomp/actions_avail 2>/dev/null)
  _s=$(grep '^Seccomp:' /proc/self/status | tr -s '\t ' ' ')
  VALUE="actions_avail=${_a:-none} status=${_s:-none}"
  _m=$(missing_words "$_a" kill_process errno)
  [ -n "$_s" ] || _m="${_m:+$_m }Seccomp-field"
  if [ -n "$_m" ]; then VALUE="$VALUE missing=$_m"; return 1; fi
}

nsids() {
  for _n in pid mnt net uts ipc; do printf '%s ' "$(readlink /proc/self/ns/$_n)"; done
}

# User ns without a uid map (uid reads as the overflow uid), and a pid+mount+
# net+uts+ipc set as root (caps survive exec there; in an unmapped user ns
# they would not, so the two are separate runs).
check_namespaces() {
  _bad=
  _hostuser=$(readlink /proc/self/ns/user)
  _u=$(unshare -U sh -c 'echo "$(id -u) $(readlink /proc/self/ns/user)"' 2>&1)
  _uid=${_u%% *}
  [ "$_uid" = 65534 ] || _bad="$_bad user-uid"
  [ "${_u#* }" != "$_hostuser" ] || _bad="$_bad user-ns-same"

  ip link set lo up 2>/dev/null
  _hostlo=down
  ip -o link show lo 2>/dev/null | grep -q '[<,]UP[,>]' && _hostlo=up
  _hostcomm=$(cat /proc/1/comm)
  _hostids=$(nsids)
  _o=$(unshare -p -f -m -n -u -i --mount-proc sh -c '
    . /usr/lib/clawos/checks.sh
    echo "pid=$$"
    echo "comm1=$(cat /proc/1/comm)"
    hostname clawos-ns
    echo "hostname=$(hostname)"
    echo "links=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " " | sed "s/ *$//")"
    if ip -o link show lo | grep -q "[<,]UP[,>]"; then echo lo=up; else echo lo=down; fi
    echo "ids=$(nsids)"
  ' 2>&1)
  _get() { echo "$_o" | sed -n "s/^$1=//p"; }
  _pid=$(_get pid) _comm1=$(_get comm1) _hn=$(_get hostname) _links=$(_get links) _lo=$(_get lo) _ids=$(_get ids)
  [ "$_pid" = 1 ] || _bad="$_bad pid"
  [ "$_comm1" = sh ] || _bad="$_bad fresh-proc"
  [ "$(cat /proc/1/comm)" = "$_hostcomm" ] || _bad="$_bad host-proc-changed"
  [ "$_hn" = clawos-ns ] || _bad="$_bad uts-set"
  [ "$(hostname)" = clawos ] || _bad="$_bad uts-leaked"
  [ "$_links" = lo ] || _bad="$_bad net-links"
  [ "$_lo" = down ] && [ "$_hostlo" = up ] || _bad="$_bad net-lo"
  _same=
  for _id in $_ids; do
    case " $_hostids " in *" $_id "*) _same="${_same:+$_same,}${_id%%:*}" ;; esac
  done
  [ -z "$_same" ] && [ -n "$_ids" ] || _bad="$_bad same-ns:${_same:-none}"

  VALUE="user:uid=$_uid; pid:self=$_pid proc1=$_comm1 host-proc1=$(cat /proc/1/comm); uts:inside=$_hn host=$(hostname); net:links=$_links lo=$_lo host-lo=$_hostlo; new-ns=$(echo $_ids | tr ' ' ,)"
  if [ -n "$_bad" ]; then
    VALUE="$VALUE; FAILED:$_bad; output: $(echo $_u $_o)"
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
  if ! _out=$(insmod $_si 2>&1); then VALUE="$_uv signed=refused(${_out##*: })"; return 1; fi
  if ! dmesg | grep -q 'clawos_canary: loaded'; then
    VALUE="$_uv signed=inserted but no 'clawos_canary: loaded' in dmesg"
    return 1
  fi
  VALUE="$_uv signed=loaded(dmesg: clawos_canary: loaded)"
}

check_cpu_flags() {
  # x86 calls the line "flags", arm64 "Features".
  _have=$(grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2)
  _m=$(missing_words "$_have" $CPU_FLAGS)
  if [ -n "$_m" ]; then VALUE="missing=$_m"; return 1; fi
  VALUE="present=$(echo $CPU_FLAGS)"
}
