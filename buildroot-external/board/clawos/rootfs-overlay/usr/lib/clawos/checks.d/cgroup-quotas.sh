# checks.d/cgroup-quotas.sh — P1.5 in the guest (C-06): the frozen cgroup v2
# quota table, applied and read back, and a pids.max that refuses a fork.
# Sourced by /init after checks.sh (busybox ash); it defines its functions and
# runs its check. /etc/clawos/cgroup-quotas.env comes from the rootfs step's
# `cgroup_quotas` parameter: CGROUP_SLICES holds one line per slice,
#   name memory.max cpu.max-quota cpu.max-period pids.max
# The cgroup root and the table are variables, so the host tests can point
# them at a fake tree.
: "${CGROUP_ROOT:=/sys/fs/cgroup}"
: "${CGROUP_QUOTAS_ENV:=/etc/clawos/cgroup-quotas.env}"
# pids.max of the refusal test: the shell moved into the cgroup is one task.
: "${CGQ_PIDS_MAX:=4}"
: "${CGQ_SLEEP:=10}"

# cgq_read FILE: its first line in LINE, "" if unreadable.
cgq_read() {
  LINE=
  { read -r LINE <"$1"; } 2>/dev/null
}

# cgq_page_size: PAGE = the unit the kernel keeps memory.max in. Writing
# 2^20-1 bytes reads back as whole pages: 2^20 - PAGE (PAGE 1 on a plain file).
cgq_page_size() {
  PAGE=
  _p=$CGROUP_ROOT/clawos-page-probe
  mkdir -p "$_p" 2>/dev/null && { echo 1048575 >"$_p/memory.max"; } 2>/dev/null && cgq_read "$_p/memory.max"
  rmdir "$_p" 2>/dev/null
  case "$LINE" in '' | *[!0-9]*) return 1 ;; esac
  PAGE=$((1048576 - LINE))
  [ "$PAGE" -gt 0 ]
}

# cgq_slices: enable memory, cpu and pids for the children of the root, create
# each slice of the table, write its limits and compare what the kernel reads
# back (memory.max in whole pages). CGQ_OK and CGQ_BAD list the results.
cgq_slices() {
  CGQ_OK= CGQ_BAD=
  CGROUP_SLICES=
  if [ ! -r "$CGROUP_QUOTAS_ENV" ]; then CGQ_BAD="$CGROUP_QUOTAS_ENV missing (rootfs step without cgroup_quotas)"; return 1; fi
  . "$CGROUP_QUOTAS_ENV"
  [ -n "$CGROUP_SLICES" ] || { CGQ_BAD="no slices in $CGROUP_QUOTAS_ENV"; return 1; }
  { echo "+memory +cpu +pids" >"$CGROUP_ROOT/cgroup.subtree_control"; } 2>/dev/null
  cgq_read "$CGROUP_ROOT/cgroup.subtree_control"
  missing_words "${LINE//+/}" memory cpu pids
  [ -z "$MISSING" ] || { CGQ_BAD="subtree_control=${LINE:-unreadable} missing=$MISSING"; return 1; }
  cgq_page_size || { CGQ_BAD="memory.max of a probe cgroup unreadable: no page size"; return 1; }
  while read -r _n _mem _q _per _pids; do
    [ -n "$_n" ] || continue
    _d=$CGROUP_ROOT/$_n
    if ! mkdir -p "$_d" 2>/dev/null; then CGQ_BAD="$CGQ_BAD $_n:mkdir"; continue; fi
    cgq_read "$_d/cgroup.controllers"
    missing_words "$LINE" memory cpu pids
    if [ -n "$MISSING" ]; then CGQ_BAD="$CGQ_BAD $_n:controllers=${LINE:-none}(missing $MISSING)"; continue; fi
    _want_mem=$_mem
    [ "$_mem" = max ] || _want_mem=$((_mem / PAGE * PAGE))
    _bad1=
    for _kv in "memory.max|$_mem|$_want_mem" "cpu.max|$_q $_per|$_q $_per" "pids.max|$_pids|$_pids"; do
      _f=${_kv%%|*} _rest=${_kv#*|}
      _set=${_rest%%|*} _want=${_rest#*|}
      { echo "$_set" >"$_d/$_f"; } 2>/dev/null || _bad1="$_bad1 $_f:write-refused"
      cgq_read "$_d/$_f"
      [ "$LINE" = "$_want" ] || _bad1="$_bad1 $_f=${LINE:-unreadable}(want $_want)"
    done
    if [ -n "$_bad1" ]; then CGQ_BAD="$CGQ_BAD $_n:${_bad1# }"; else CGQ_OK="$CGQ_OK $_n=$_want_mem,$_q/$_per,$_pids"; fi
  done <<EOF
$CGROUP_SLICES
EOF
  [ -z "$CGQ_BAD" ]
}

# cgq_pids_refusal: a test cgroup with pids.max=CGQ_PIDS_MAX; a shell moves
# itself in and forks `sleep` until a fork fails. With the shell counted, the
# first CGQ_PIDS_MAX-1 forks must succeed and the next must fail (ash exits on
# a failed fork, after printing each success), and pids.events must count it.
cgq_pids_refusal() {
  CGQ_PIDS=
  _t=$CGROUP_ROOT/clawos-pids-test
  if ! mkdir -p "$_t" 2>/dev/null || ! { echo "$CGQ_PIDS_MAX" >"$_t/pids.max"; } 2>/dev/null; then
    CGQ_PIDS="cannot create $_t with pids.max=$CGQ_PIDS_MAX"
    return 1
  fi
  _o=$(sh -c '
    echo $$ >"$1/cgroup.procs" || exit 10
    i=0
    while [ $i -le "$2" ]; do
      # Not on the $(...) pipe: the capture would wait for the sleeps to end.
      sleep "$3" >/dev/null 2>&1 &
      i=$((i + 1))
      echo "forked=$i"
    done
    echo all-forked
  ' cgq "$_t" "$CGQ_PIDS_MAX" "$CGQ_SLEEP" 2>&1)
  _rc=$?
  _n=0 _err=
  while read -r _l; do
    case "$_l" in forked=*) _n=${_l#forked=} ;; all-forked | "") ;; *) _err=$_l ;; esac
  done <<EOF
$_o
EOF
  _events=
  while read -r _k _v; do [ "$_k" = max ] && _events=$_v; done 2>/dev/null <"$_t/pids.events"
  # Stop the sleeps (cgroup.kill, else one by one) and remove the test cgroup.
  { echo 1 >"$_t/cgroup.kill"; } 2>/dev/null || for _p in $(cat "$_t/cgroup.procs" 2>/dev/null); do kill -9 "$_p" 2>/dev/null; done
  _i=0
  while [ $_i -lt 20 ]; do
    _left=
    for _p in $(cat "$_t/cgroup.procs" 2>/dev/null); do [ -e "/proc/$_p" ] && _left="$_left $_p"; done
    [ -z "$_left" ] && break
    sleep 0.1
    _i=$((_i + 1))
  done
  _gone="test cgroup removed"
  rmdir "$_t" 2>/dev/null || _gone="test cgroup NOT removed (tasks:${_left:- none})"
  _want=$((CGQ_PIDS_MAX - 1))
  if [ "$_rc" = 10 ]; then CGQ_PIDS="could not move a shell into $_t: $_err"; return 1; fi
  if [ "$_n" -gt "$_want" ]; then
    CGQ_PIDS="pids.max=$CGQ_PIDS_MAX not enforced: the shell forked $_n children (limit allows $_want)"
    return 1
  fi
  if [ "$_n" != "$_want" ] || [ -z "$_err" ]; then
    CGQ_PIDS="pids.max=$CGQ_PIDS_MAX: fork $((_n + 1)) failed, expected fork $((_want + 1)) to: ${_err:-no error} (exit $_rc)"
    return 1
  fi
  CGQ_PIDS="pids.max=$CGQ_PIDS_MAX: shell+$_n children ran, fork $((_n + 1)) refused (${_err##*: }), pids.events max=${_events:-missing}"
  [ "${_events:-0}" -gt 0 ] 2>/dev/null || { CGQ_PIDS="$CGQ_PIDS (want > 0)"; return 1; }
  CGQ_PIDS="$CGQ_PIDS, $_gone"
}

check_cgroup_quotas() {
  # Never write into a directory that is not a cgroup2 tree (or a fake one).
  if [ ! -e "$CGROUP_ROOT/cgroup.controllers" ]; then
    VALUE="$CGROUP_ROOT is not a cgroup2 tree (no cgroup.controllers)"
    return 1
  fi
  _s=0
  cgq_slices || _s=1
  cgq_pids_refusal || _s=1
  VALUE="slices (memory.max in ${PAGE:-?}-byte pages):${CGQ_OK:- none}${CGQ_BAD:+; FAILED:$CGQ_BAD}; pids: $CGQ_PIDS"
  return $_s
}

run_check cgroup-quotas check_cgroup_quotas
