# eBPF in-guest checks (tasks B-02, B-03, B-04, F-03), sourced by /init after checks.sh.
# B-08 (ebpf-build) puts into /usr/lib/clawos/ebpf: the CO-RE objects compiled against
# this kernel's BTF, the static loader clawos-ebpf, policy.conf (generated from
# specs/ebpf/policy.yaml) and ebpf.env (the probes: paths and ports, from the same file).
# Each check loads its programs for the length of one probe command and parses the
# loader's lines ("event kind=… k=v …", "counters …", "connect …", "exit status=N").
# Runs after apparmor.sh: the stacking probe uses the selftest profile it loaded.

EBPF_DIR=${EBPF_DIR:-/usr/lib/clawos/ebpf}
EBPF=$EBPF_DIR/clawos-ebpf

# ebpf_env: source ebpf.env, or say why not (VALUE) and fail.
ebpf_env() {
  if [ ! -r "$EBPF_DIR/ebpf.env" ] || [ ! -x "$EBPF" ]; then
    VALUE="$EBPF_DIR/ebpf.env or clawos-ebpf missing (the B-08 eBPF build is not in the image)"
    return 1
  fi
  . "$EBPF_DIR/ebpf.env"
  mkdir -p "${EBPF_PROTECTED%/*}" "${EBPF_DENIED_EXEC%/*}" "${EBPF_TRACE_READ%/*}" "${EBPF_OPEN_ALLOWED%/*}"
  # The policy names files by inode: they exist before it loads.
  echo clawos-protected >"$EBPF_PROTECTED"
  echo clawos-open >"$EBPF_OPEN_ALLOWED"
  echo clawos-trace >"$EBPF_TRACE_READ"
  cp /bin/busybox "$EBPF_DENIED_EXEC"
  # apparmor.sh made it for its deny rule; made here too should that check not have run.
  [ -e "$EBPF_STACK_APPARMOR_DENIED" ] || echo clawos-canary >"$EBPF_STACK_APPARMOR_DENIED"
  ip link set lo up 2>/dev/null
  return 0
}

# ebpf_field LINE KEY: EF = the value of KEY=… in LINE ("" if absent).
ebpf_field() {
  EF=
  for _kv in $1; do
    case "$_kv" in "$2"=*) EF=${_kv#*=} ;; esac
  done
}

# B-02: the exact exec and openat events of one known program.
check_ebpf_trace() {
  ebpf_env || return 1
  local _out _rc _child _ppid _exec _open _l
  _out=$("$EBPF" trace "$EBPF_DIR/clawos-trace.bpf.o" "$EBPF_NR_EXECVE" "$EBPF_NR_OPENAT" -- /bin/cat "$EBPF_TRACE_READ" 2>&1)
  _rc=$?
  _l=$(echo "$_out" | grep '^child ')
  ebpf_field "$_l" pid; _child=$EF
  ebpf_field "$_l" ppid; _ppid=$EF
  _exec=$(echo "$_out" | grep -F "event kind=exec size=320 pid=$_child tid=$_child uid=0 gid=0 comm=clawos-ebpf ppid=$_ppid filename=/bin/cat" | head -n 1)
  _open=$(echo "$_out" | grep -F "event kind=file_open size=328 pid=$_child tid=$_child uid=0 gid=0 comm=cat dfd=-100 flags=0 mode=0 verdict=0 filename=$EBPF_TRACE_READ" | head -n 1)
  VALUE="child=$_child exec=[${_exec#event }] openat=[${_open#event }]"
  if [ "$_rc" != 0 ] || [ -z "$_child" ] || [ -z "$_exec" ] || [ -z "$_open" ]; then
    VALUE="$VALUE; FAILED (loader exit $_rc): $_out"
    return 1
  fi
  echo "$_out" | grep -q "^exit status=0$" || { VALUE="$VALUE; FAILED: cat did not exit 0: $_out"; return 1; }
}

# The LSM probes, run as one command while the LSM programs are attached.
ebpf_lsm_probes() {
  cat >/tmp/ebpf-lsm-probes.sh <<EOF
probe() { _n=\$1; shift; _o=\$("\$@" 2>&1); echo "probe \$_n rc=\$? out=\$(echo \$_o)"; }
probe open-protected cat "$EBPF_PROTECTED"
probe open-allowed cat "$EBPF_OPEN_ALLOWED"
/bin/busybox nc -l -p $EBPF_CONNECT_ALLOWED_PORT >/dev/null 2>&1 </dev/null &
_nc=\$!
sleep 1
probe connect-blocked "$EBPF" connect 127.0.0.1 $EBPF_CONNECT_BLOCKED_PORT 3
probe connect-allowed "$EBPF" connect 127.0.0.1 $EBPF_CONNECT_ALLOWED_PORT 3
kill \$_nc 2>/dev/null
probe exec-denied "$EBPF_DENIED_EXEC" true
probe exec-allowed /bin/busybox true
probe stack-bpf-denies sh -c 'echo "exec $EBPF_STACK_PROFILE" >/proc/self/attr/exec && exec cat "$EBPF_PROTECTED"'
probe stack-apparmor-denies sh -c 'echo "exec $EBPF_STACK_PROFILE" >/proc/self/attr/exec && exec cat "$EBPF_STACK_APPARMOR_DENIED"'
probe stack-bpf-allows cat "$EBPF_STACK_APPARMOR_DENIED"
EOF
  EBPF_LSM_OUT=$("$EBPF" lsm "$EBPF_DIR/clawos-lsm.bpf.o" "$EBPF_DIR/policy.conf" -- /bin/sh /tmp/ebpf-lsm-probes.sh 2>&1)
  EBPF_LSM_RC=$?
}

# ebpf_probe NAME: EP = the probe's line without "probe NAME ".
ebpf_probe() {
  EP=$(echo "$EBPF_LSM_OUT" | grep "^probe $1 " | head -n 1)
  EP=${EP#probe $1 }
}

# B-03: file_open and socket_connect enforcement.
check_ebpf_lsm() {
  ebpf_env || return 1
  local _bad= _o _c _n
  ebpf_lsm_probes
  for _n in open-protected open-allowed connect-blocked connect-allowed; do
    ebpf_probe $_n
    case "$_n:$EP" in
      open-protected:"rc=1 out=cat: can't open '$EBPF_PROTECTED': Operation not permitted") ;;
      open-allowed:"rc=0 out=clawos-open") ;;
      connect-blocked:"rc=1 out=connect error errno=EPERM addr=127.0.0.1 port=$EBPF_CONNECT_BLOCKED_PORT (Operation not permitted)") ;;
      connect-allowed:"rc=0 out=connect ok addr=127.0.0.1 port=$EBPF_CONNECT_ALLOWED_PORT") ;;
      *) _bad="$_bad $_n" ;;
    esac
    VALUE="${VALUE:+$VALUE; }$_n: $EP"
  done
  _o=$(echo "$EBPF_LSM_OUT" | grep "^event kind=file_open " | grep -F "verdict=-1 filename=$EBPF_PROTECTED" | head -n 1)
  _c=$(echo "$EBPF_LSM_OUT" | grep "^event kind=socket_connect " | grep -F "family=2 protocol=6 port=$EBPF_CONNECT_BLOCKED_PORT verdict=-1 addr=127.0.0.1" | head -n 1)
  [ -n "$_o" ] || _bad="$_bad no-file_open-event"
  [ -n "$_c" ] || _bad="$_bad no-socket_connect-event"
  VALUE="$VALUE; events: [${_o#event }] [${_c#event }]"
  if [ -n "$_bad" ]; then
    VALUE="$VALUE; FAILED:$_bad (loader exit $EBPF_LSM_RC): $EBPF_LSM_OUT"
    return 1
  fi
}

# F-03: the exec hook, and "eBPF LSM DENY > AppArmor" both ways (uses check_ebpf_lsm's run).
check_ebpf_lsm_stack() {
  ebpf_env || return 1
  local _bad= _x _n
  [ -n "$EBPF_LSM_OUT" ] || ebpf_lsm_probes
  for _n in exec-denied exec-allowed stack-bpf-denies stack-apparmor-denies stack-bpf-allows; do
    ebpf_probe $_n
    case "$_n:$EP" in
      exec-denied:"rc=126 out="*"$EBPF_DENIED_EXEC: Operation not permitted") ;;
      exec-allowed:"rc=0 out=") ;;
      stack-bpf-denies:"rc=1 out=cat: can't open '$EBPF_PROTECTED': Operation not permitted") ;;
      stack-apparmor-denies:"rc=1 out=cat: can't open '$EBPF_STACK_APPARMOR_DENIED': Permission denied") ;;
      stack-bpf-allows:"rc=0 out=clawos-canary") ;;
      *) _bad="$_bad $_n" ;;
    esac
    VALUE="${VALUE:+$VALUE; }$_n: $EP"
  done
  _x=$(echo "$EBPF_LSM_OUT" | grep "^event kind=lsm_deny " | grep -F "hook=2 ret=-1 target=$EBPF_DENIED_EXEC" | head -n 1)
  [ -n "$_x" ] || _bad="$_bad no-lsm_deny-event"
  VALUE="$VALUE; event: [${_x#event }]"
  if [ -n "$_bad" ]; then
    VALUE="$VALUE; FAILED:$_bad (loader exit $EBPF_LSM_RC): $EBPF_LSM_OUT"
    return 1
  fi
}

# B-04: XDP on a veth pair between two network namespaces: the allowed port connects,
# another is dropped (timeout), and the program's counters agree.
check_ebpf_xdp() {
  ebpf_env || return 1
  local _srv _cli _out _rc _bad= _l _ok _drop _pass _dropped _ev
  unshare -n sleep 600 &
  _srv=$!
  unshare -n sleep 600 &
  _cli=$!
  sleep 1
  if ! ip link add cx-srv type veth 2>/tmp/ebpf-ip.err; then
    VALUE="ip link add cx-srv type veth: $(cat /tmp/ebpf-ip.err)"
    kill $_srv $_cli
    return 1
  fi
  # The kernel names the peer itself (busybox ip cannot): the other end of cx-srv.
  _l=$(ip -o link show | grep -o '[^ :]*@cx-srv' | head -n 1)
  ip link set "${_l%@cx-srv}" name cx-cli
  ip link set cx-srv netns $_srv
  ip link set cx-cli netns $_cli
  nsenter -t $_srv -n sh -c 'ip link set lo up; ip addr add 10.99.0.1/24 dev cx-srv; ip link set cx-srv up'
  nsenter -t $_cli -n sh -c 'ip link set lo up; ip addr add 10.99.0.2/24 dev cx-cli; ip link set cx-cli up'
  cat >/tmp/ebpf-xdp-probes.sh <<EOF
nsenter -t $_srv -n /bin/busybox nc -l -p $EBPF_XDP_ALLOWED_PORT >/dev/null 2>&1 </dev/null &
_a=\$!
nsenter -t $_srv -n /bin/busybox nc -l -p $EBPF_XDP_BLOCKED_PORT >/dev/null 2>&1 </dev/null &
_b=\$!
sleep 1
nsenter -t $_cli -n "$EBPF" connect 10.99.0.1 $EBPF_XDP_ALLOWED_PORT 5
nsenter -t $_cli -n "$EBPF" connect 10.99.0.1 $EBPF_XDP_BLOCKED_PORT 3
kill \$_a \$_b 2>/dev/null
exit 0
EOF
  _out=$(nsenter -t $_srv -n "$EBPF" xdp "$EBPF_DIR/clawos-xdp.bpf.o" "$EBPF_DIR/policy.conf" cx-srv -- /bin/sh /tmp/ebpf-xdp-probes.sh 2>&1)
  _rc=$?
  kill $_srv $_cli 2>/dev/null
  _ok=$(echo "$_out" | grep "^connect " | grep -F "port=$EBPF_XDP_ALLOWED_PORT")
  _drop=$(echo "$_out" | grep "^connect " | grep -F "port=$EBPF_XDP_BLOCKED_PORT ")
  _l=$(echo "$_out" | grep '^counters ')
  ebpf_field "$_l" tcp_pass; _pass=$EF
  ebpf_field "$_l" tcp_drop; _dropped=$EF
  _ev=$(echo "$_out" | grep '^event kind=net_drop ' | grep -F "action=1 family=2 protocol=6" | grep -F "dst_port=$EBPF_XDP_BLOCKED_PORT saddr=10.99.0.2 daddr=10.99.0.1" | head -n 1)
  VALUE="$_ok; $_drop; ${_l:-no counters}; drop event: [${_ev#event }]"
  case "$_ok" in "connect ok addr=10.99.0.1 port=$EBPF_XDP_ALLOWED_PORT") ;; *) _bad="$_bad allowed-port-not-connected" ;; esac
  case "$_drop" in "connect timeout addr=10.99.0.1 port=$EBPF_XDP_BLOCKED_PORT "*) ;; *) _bad="$_bad blocked-port-not-dropped" ;; esac
  # The allowed connection's SYN, ACK … passed; the blocked one's SYN (and retries) dropped.
  [ "${_pass:-0}" -ge 2 ] || _bad="$_bad tcp_pass<2"
  [ "${_dropped:-0}" -ge 1 ] || _bad="$_bad tcp_drop<1"
  [ -n "$_ev" ] || _bad="$_bad no-net_drop-event"
  if [ "$_rc" != 0 ] || [ -n "$_bad" ]; then
    VALUE="$VALUE; FAILED:$_bad (loader exit $_rc): $_out"
    return 1
  fi
}

run_check ebpf-trace check_ebpf_trace
run_check ebpf-lsm check_ebpf_lsm
run_check ebpf-lsm-stack check_ebpf_lsm_stack
run_check ebpf-xdp check_ebpf_xdp
