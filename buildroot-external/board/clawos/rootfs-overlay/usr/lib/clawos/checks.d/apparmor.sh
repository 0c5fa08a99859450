# AppArmor in-guest check (tasks F-06, F-02), sourced by /init after checks.sh.
# The policy comes from clawos-build's F-06 (apparmor-compile step) in
# /etc/apparmor/clawos: <profile>.<mode>.bin (binary policy, compiled on the host
# by apparmor_parser for this kernel's features), profiles.list ("name mode kind"
# per line, mode = the spec's), probe.env (the selftest probe) and features (the
# feature set the policy was compiled for).
# The mode is the spec's, unless the kernel command line says
# clawos.apparmor=complain or clawos.apparmor=enforce (F-02's two boots).

AA_POLICY=${AA_POLICY:-/etc/apparmor/clawos}
AA_FS=${AA_FS:-/sys/kernel/security/apparmor}
AA_CMDLINE=${AA_CMDLINE:-/proc/cmdline}

# aa_features DIR: the features tree in apparmor_parser's --features-file format
# ("name {content}" per file, "name {children}" per dir), shell builtins only.
aa_features() {
  local _f _n _l
  for _f in "$1"/*; do
    [ -e "$_f" ] || continue
    _n=${_f##*/}
    printf '%s {' "$_n"
    if [ -d "$_f" ]; then
      aa_features "$_f"
    else
      while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\n' "$_l"; done <"$_f"
    fi
    printf '}\n'
  done
}

# aa_cmdline_mode: AA_MODE = the value of clawos.apparmor= on the kernel command line, or "".
aa_cmdline_mode() {
  AA_MODE=
  readline "$AA_CMDLINE"
  for _w in $LINE; do
    case "$_w" in clawos.apparmor=*) AA_MODE=${_w#clawos.apparmor=} ;; esac
  done
}

# aa_probe PROFILE FILE: AA_RC/AA_OUT of `cat FILE` run under PROFILE (change_onexec).
aa_probe() {
  AA_OUT=$( (echo "exec $1" >/proc/self/attr/exec && exec cat "$2") 2>&1)
  AA_RC=$?
}

# aa_audit KIND PROFILE FILE: AA_AUDIT = the kernel's audit record for an open of FILE
# under PROFILE with apparmor="KIND", from apparmor=" on ("" if none). kauditd prints
# asynchronously: wait for it a little.
aa_audit() {
  AA_AUDIT=
  for _try in 1 2 3 4 5; do
    # Linux 6.12 puts class="file" between operation= and profile=; 6.1 does not.
    AA_AUDIT=$(dmesg | grep -F "apparmor=\"$1\" operation=\"open\" " | grep -F " profile=\"$2\" name=\"$3\"" | head -n 1)
    [ -n "$AA_AUDIT" ] && break
    sleep 1
  done
  AA_AUDIT=${AA_AUDIT#*apparmor=}
  AA_AUDIT=${AA_AUDIT:+apparmor=${AA_AUDIT%% pid=*}}
}

check_apparmor() {
  aa_cmdline_mode
  case "$AA_MODE" in
    "" | complain | enforce) ;;
    *) VALUE="clawos.apparmor=$AA_MODE on the kernel command line: want complain or enforce"; return 1 ;;
  esac
  if [ ! -r "$AA_POLICY/profiles.list" ]; then VALUE="no $AA_POLICY/profiles.list: the image has no compiled AppArmor policy (task F-06)"; return 1; fi
  if [ ! -e "$AA_FS/.load" ]; then VALUE="$AA_FS/.load missing: AppArmor is not enabled or securityfs is not mounted"; return 1; fi

  # The policy must have been compiled for exactly this kernel's feature set.
  aa_features "$AA_FS/features" >/tmp/aa-features
  if ! cmp -s /tmp/aa-features "$AA_POLICY/features"; then
    # Printed so the data file can be regenerated from the serial log (grep '^AAFEATURES|').
    while IFS= read -r _l; do echo "AAFEATURES|$_l"; done </tmp/aa-features
    VALUE="the kernel's AppArmor features differ from $AA_POLICY/features, which the policy was compiled for (the kernel's are on the console as AAFEATURES| lines)"
    return 1
  fi

  # Load every profile in its mode: the spec's, or the command line's.
  _want= _bad= _probe_mode=
  AA_PROBE_PROFILE= AA_PROBE_READ= AA_PROBE_DENY=
  [ -r "$AA_POLICY/probe.env" ] && . "$AA_POLICY/probe.env"
  while read -r _name _mode _kind; do
    case "$_name" in "" | "#"*) continue ;; esac
    _m=${AA_MODE:-$_mode}
    _f="$AA_POLICY/$_name.$_m.bin"
    # The kernel takes a policy only as one write(2) (a second one fails with ESPIPE):
    # dd with bs = the file's size writes it whole, where busybox cat splits at 64 KiB.
    if [ ! -s "$_f" ]; then
      _bad="$_bad load-$_name(missing or empty: $_f)"
    elif ! _err=$(dd if="$_f" of="$AA_FS/.load" bs="$(stat -c %s "$_f")" count=1 2>&1); then
      _bad="$_bad load-$_name($_err)"
    fi
    _want="$_want $_name:$_m"
    [ "$_name" = "$AA_PROBE_PROFILE" ] && _probe_mode=$_m
  done <"$AA_POLICY/profiles.list"

  # Each must be listed, in that mode.
  _listed=
  while read -r _p _m; do
    _m=${_m#(}
    _listed="$_listed $_p:${_m%)}"
  done <"$AA_FS/profiles"
  _profiles=
  for _w in $_want; do
    case "$_listed " in *" $_w "*) _profiles="${_profiles:+$_profiles,}$_w" ;; *) _bad="$_bad not-listed:$_w" ;; esac
  done
  case "$_bad" in *not-listed*) _listed=${_listed# } && _bad="$_bad (kernel lists: ${_listed:-nothing})" ;; esac

  if [ -z "$AA_PROBE_PROFILE" ] || [ -z "$_probe_mode" ]; then
    VALUE="mode=${AA_MODE:-spec} profiles=$_profiles; no selftest probe (probe.env names no loaded profile)${_bad:+; FAILED:$_bad}"
    return 1
  fi
  # The probe reads a file the selftest profile does not allow: enforce denies it
  # with EACCES, complain allows it and logs apparmor="ALLOWED".
  echo clawos-canary >"$AA_PROBE_READ"
  aa_probe "$AA_PROBE_PROFILE" "$AA_PROBE_READ"
  if [ "$_probe_mode" = enforce ]; then
    _kind=DENIED
    if [ "$AA_RC" = 0 ]; then
      _bad="$_bad probe-read-allowed"
    else
      case "$AA_OUT" in *"Permission denied"*) ;; *) _bad="$_bad probe-not-EACCES" ;; esac
    fi
  else
    _kind=ALLOWED
    [ "$AA_RC" = 0 ] && [ "$AA_OUT" = clawos-canary ] || _bad="$_bad probe-read-failed"
  fi
  aa_audit $_kind "$AA_PROBE_PROFILE" "$AA_PROBE_READ"
  [ -n "$AA_AUDIT" ] || _bad="$_bad no-audit-$_kind"
  _probe="$_kind(rc=$AA_RC: $AA_OUT) audit=${AA_AUDIT:-none}"

  # An explicit deny rule holds in complain mode too (it is not "learning").
  if [ -n "$AA_PROBE_DENY" ]; then
    echo clawos-canary >"$AA_PROBE_DENY"
    aa_probe "$AA_PROBE_PROFILE" "$AA_PROBE_DENY"
    case "$AA_RC:$AA_OUT" in 0:*) _bad="$_bad deny-rule-allowed" ;; *"Permission denied"*) ;; *) _bad="$_bad deny-rule-not-EACCES" ;; esac
    _probe="$_probe; deny-rule=${AA_RC}:$AA_OUT"
  fi

  VALUE="mode=${AA_MODE:-spec} profiles=$_profiles probe=$_probe"
  if [ -n "$_bad" ]; then
    VALUE="$VALUE; FAILED:$_bad"
    return 1
  fi
}

run_check apparmor check_apparmor
