# seccomp-filter in-guest check (tasks C-01, C-08), sourced by /init after checks.sh.
# C-08 (seccomp-compile) puts into /usr/lib/clawos/seccomp: the arch's compiled
# whitelist filter, the static loader clawos-seccomp-exec and seccomp-filter.env
# (the syscall numbers to probe and what the default action must do).
# The loader's probe installs the filter in a forked child and makes the raw
# syscall: no exec, no libc wrapper. Passes when the allowed syscall returns and
# the denied one gets the default action (killed with SIGSYS, EPERM, or, in log
# mode, allowed and logged).

SECCOMP_DIR=${SECCOMP_DIR:-/usr/lib/clawos/seccomp}

check_seccomp_filter() {
  local _env=$SECCOMP_DIR/seccomp-filter.env _exec=$SECCOMP_DIR/clawos-seccomp-exec _out _rc _a _d _n _nr _r _x
  if [ ! -r "$_env" ]; then VALUE="$_env missing (the C-08 filter is not in the image)"; return 1; fi
  SECCOMP_ARCH= SECCOMP_FILTER= SECCOMP_DEFAULT_ACTION= SECCOMP_ALLOWED= SECCOMP_ALLOWED_NR= SECCOMP_DENIED= SECCOMP_DENIED_NR= SECCOMP_DENIED_EXPECT=
  . "$_env"
  # The Buildroot package installs the same loader in /usr/sbin.
  [ -x "$_exec" ] || _exec=$(command -v clawos-seccomp-exec) || _exec=
  if [ -z "$_exec" ]; then VALUE="clawos-seccomp-exec missing from $SECCOMP_DIR and PATH"; return 1; fi
  _out=$("$_exec" --probe "$SECCOMP_DIR/$SECCOMP_FILTER" "$SECCOMP_ALLOWED=$SECCOMP_ALLOWED_NR" "$SECCOMP_DENIED=$SECCOMP_DENIED_NR" 2>&1)
  _rc=$?
  # One line per probe: "NAME NR allowed ret=R" | "NAME NR errno EPERM" | "NAME NR killed SIGSYS".
  _a= _d=
  while read -r _n _nr _r _x; do
    [ "$_n" = "$SECCOMP_ALLOWED" ] && [ "$_nr" = "$SECCOMP_ALLOWED_NR" ] && _a="$_r${_x:+ $_x}"
    [ "$_n" = "$SECCOMP_DENIED" ] && [ "$_nr" = "$SECCOMP_DENIED_NR" ] && _d="$_r${_x:+ $_x}"
  done <<EOF
$_out
EOF
  VALUE="arch=$SECCOMP_ARCH default=$SECCOMP_DEFAULT_ACTION $SECCOMP_ALLOWED ${_a:-no result}, $SECCOMP_DENIED ${_d:-no result}"
  if [ "$_rc" != 0 ]; then VALUE="$VALUE (probe exit $_rc: $_out)"; return 1; fi
  case "$_a" in allowed*) ;; *) VALUE="$VALUE (want $SECCOMP_ALLOWED allowed)"; return 1 ;; esac
  case "$SECCOMP_DENIED_EXPECT" in
    allowed) case "$_d" in allowed*) VALUE="$VALUE (log mode: not blocked, logged)"; return 0 ;; esac ;;
    *) [ "$_d" = "$SECCOMP_DENIED_EXPECT" ] && return 0 ;;
  esac
  VALUE="$VALUE (want $SECCOMP_DENIED $SECCOMP_DENIED_EXPECT)"
  return 1
}

run_check seccomp-filter check_seccomp_filter
