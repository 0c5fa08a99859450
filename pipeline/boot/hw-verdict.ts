/**
 * G-07's rule (issue 15), a pure function of the hardware records and the ISOs
 * being judged: PASS when every arch's ISO has at least one counted record and
 * every counted record for those ISOs passed; FAIL when any counted record for
 * them failed (naming the machine and its failing checks); NOT_CONFIGURED while
 * an arch has no record, saying what to do. A record for another ISO, or one
 * not signed by a trusted tester key, is listed and never counted.
 */

import type { HardwareRecordFields } from '../catalog/step.js';

/** A record as G-07 sees it: the fields of vault/hw-record.ts's payload it reads, and whether its signature counts. */
export interface HwRecordView {
  id: string;
  /** Signed by a key the trust file lists as a tester (not revoked, in its validity). */
  counted: boolean;
  /** Why it is not counted (signature), else null. */
  why: string | null;
  record: HardwareRecordFields | null;
}

export interface MachineRow {
  record: string;
  arch: string;
  iso_sha256: string;
  vendor: string;
  product: string;
  firmware: string;
  boot_path: string;
  secure_boot: string;
  verdict: string;
  failed_checks: string[];
  message: string;
  tester: string;
  recorded_at: string;
  /** null: counted; else why not. */
  not_counted: string | null;
}

export interface HwJudgement {
  status: 'PASS' | 'FAIL' | 'NOT_CONFIGURED';
  message: string;
  rows: MachineRow[];
}

export const machineName = (r: Pick<MachineRow, 'vendor' | 'product' | 'firmware' | 'secure_boot'>): string =>
  `${r.vendor} ${r.product} (firmware ${r.firmware}, Secure Boot ${r.secure_boot})`;

export function judgeHardware(records: readonly HwRecordView[], isos: readonly { arch: string; sha256: string }[]): HwJudgement {
  const rows: MachineRow[] = [];
  for (const v of records) {
    const r = v.record;
    if (!r) {
      rows.push({ record: v.id, arch: '?', iso_sha256: '?', vendor: '?', product: '?', firmware: '?', boot_path: '?', secure_boot: '?', verdict: '?', failed_checks: [], message: '', tester: '?', recorded_at: '?', not_counted: v.why ?? 'unreadable' });
      continue;
    }
    const iso = isos.find((i) => i.sha256 === r.iso.sha256);
    const notCounted = !v.counted ? (v.why ?? 'not signed by a trusted tester key') : !iso ? `for another ISO (sha256 ${r.iso.sha256.slice(0, 16)}…), not one being judged` : null;
    rows.push({
      record: v.id,
      arch: iso?.arch ?? r.iso.arch,
      iso_sha256: r.iso.sha256,
      ...r.machine,
      verdict: r.verdict,
      failed_checks: [...r.failed_checks, ...r.missing_checks.map((m) => `${m} (missing)`)],
      message: r.message,
      tester: r.tester.name,
      recorded_at: r.recorded_at,
      not_counted: notCounted,
    });
  }
  rows.sort((a, b) => (a.arch < b.arch ? -1 : a.arch > b.arch ? 1 : a.recorded_at < b.recorded_at ? -1 : a.recorded_at > b.recorded_at ? 1 : 0));
  const counted = rows.filter((r) => r.not_counted === null);
  const failed = counted.filter((r) => r.verdict !== 'PASS');
  if (failed.length) {
    const what = failed.map((r) => `${r.arch} on ${machineName(r)}: ${r.verdict}${r.failed_checks.length ? `, failing check(s) ${r.failed_checks.join(', ')}` : ''} (${r.message}; recorded by ${r.tester})`);
    return { status: 'FAIL', message: `hardware record(s) failed: ${what.join('; ')}`, rows };
  }
  const missing = isos.filter((i) => !counted.some((r) => r.iso_sha256 === i.sha256));
  if (missing.length) {
    const ignored = rows.length - counted.length;
    return {
      status: 'NOT_CONFIGURED',
      message:
        `no signed hardware record for ${missing.map((i) => `${i.arch} (ISO sha256 ${i.sha256.slice(0, 16)}…)`).join(', ')}` +
        `${ignored ? `; ${ignored} record(s) not counted` : ''}: flash the ISO (clawos-build flash), boot a real machine from the stick, then clawos-build hw record DEVICE with a trusted tester key`,
      rows,
    };
  }
  const per = isos.map((i) => `${i.arch}: ${counted.filter((r) => r.iso_sha256 === i.sha256).map(machineName).join(', ')}`);
  return { status: 'PASS', message: `every check passed on real hardware: ${per.join('; ')}`, rows };
}
