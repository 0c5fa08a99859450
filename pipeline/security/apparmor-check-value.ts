/**
 * The evidence line of the in-guest `apparmor` check (checks.d/apparmor.sh), read
 * back on the host:
 *   mode=<spec|complain|enforce> profiles=<name:mode,…> probe=<ALLOWED|DENIED>(rc=N: …)
 *   audit=apparmor="<ALLOWED|DENIED>" operation="open" profile="…" name="…"; deny-rule=…
 */

export interface ApparmorCheckValue {
  /** "spec" when the command line named no mode. */
  mode: string;
  profiles: { name: string; mode: string }[];
  probe: 'ALLOWED' | 'DENIED' | null;
  /** The kernel's audit record for the probe, from apparmor=" on; null if none. */
  audit: string | null;
  /** apparmor="…" of that record. */
  auditKind: string | null;
}

export function parseApparmorCheckValue(value: string): ApparmorCheckValue {
  const mode = /^mode=(\S+)/.exec(value)?.[1] ?? '';
  const list = /\bprofiles=(\S*)/.exec(value)?.[1] ?? '';
  const profiles = list
    .split(',')
    .filter(Boolean)
    .map((e) => {
      const i = e.lastIndexOf(':');
      return i < 0 ? { name: e, mode: '' } : { name: e.slice(0, i), mode: e.slice(i + 1) };
    });
  const probe = (/\bprobe=(ALLOWED|DENIED)\(/.exec(value)?.[1] ?? null) as ApparmorCheckValue['probe'];
  const audit = /\baudit=(apparmor="[^;]*)/.exec(value)?.[1]?.trim() ?? null;
  const auditKind = audit ? (/^apparmor="([A-Z]+)"/.exec(audit)?.[1] ?? null) : null;
  return { mode, profiles, probe, audit, auditKind };
}
