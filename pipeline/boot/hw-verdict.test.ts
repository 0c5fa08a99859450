import { describe, expect, it } from 'vitest';
import { judgeHardware, type HwRecordView } from './hw-verdict.js';

const X = { arch: 'x86_64', sha256: 'a'.repeat(64) };
const A = { arch: 'aarch64', sha256: 'b'.repeat(64) };

function rec(id: string, iso: { arch: string; sha256: string }, o: Partial<{ verdict: string; failed: string[]; counted: boolean; why: string; vendor: string }> = {}): HwRecordView {
  return {
    id,
    counted: o.counted ?? true,
    why: o.why ?? null,
    record: {
      iso,
      machine: { vendor: o.vendor ?? 'QEMU', product: 'Standard PC (i440FX + PIIX, 1996)', firmware: 'rel-1.16.2', boot_path: 'BIOS', secure_boot: 'off' },
      verdict: o.verdict ?? 'PASS',
      message: o.verdict === 'FAIL' ? `CLAWOS-BOOT-FAILED failed=${(o.failed ?? []).join(',')}` : 'CLAWOS-BOOT-OK, all 14 expected checks passed',
      failed_checks: o.failed ?? [],
      missing_checks: [],
      tester: { name: 'Ada Tester', keyid: 'k' },
      recorded_at: `2026-12-06T07:00:0${id.length}Z`,
    },
  };
}

describe("G-07's rule", () => {
  it('NOT_CONFIGURED with no record, saying what to do', () => {
    const j = judgeHardware([], [X]);
    expect(j.status).toBe('NOT_CONFIGURED');
    expect(j.message).toBe(`no signed hardware record for x86_64 (ISO sha256 aaaaaaaaaaaaaaaa…): flash the ISO (clawos-build flash), boot a real machine from the stick, then clawos-build hw record DEVICE with a trusted tester key`);
  });

  it('PASS when every arch has a passing record, naming the machines', () => {
    const j = judgeHardware([rec('1', X), rec('22', A, { vendor: 'ARM' })], [X, A]);
    expect(j.status).toBe('PASS');
    expect(j.message).toBe('every check passed on real hardware: x86_64: QEMU Standard PC (i440FX + PIIX, 1996) (firmware rel-1.16.2, Secure Boot off); aarch64: ARM Standard PC (i440FX + PIIX, 1996) (firmware rel-1.16.2, Secure Boot off)');
  });

  it('FAIL from any machine, naming it and the check', () => {
    const j = judgeHardware([rec('1', X), rec('22', X, { verdict: 'FAIL', failed: ['lockdown'], vendor: 'Dell' })], [X]);
    expect(j.status).toBe('FAIL');
    expect(j.message).toBe('hardware record(s) failed: x86_64 on Dell Standard PC (i440FX + PIIX, 1996) (firmware rel-1.16.2, Secure Boot off): FAIL, failing check(s) lockdown (CLAWOS-BOOT-FAILED failed=lockdown; recorded by Ada Tester)');
  });

  it("a record for another ISO's sha256 does not count, nor does an untrusted one", () => {
    const j = judgeHardware([rec('1', { arch: 'x86_64', sha256: 'c'.repeat(64) }), rec('22', X, { counted: false, why: 'UNKNOWN_KEY: no signature by a trusted tester key' }), rec('333', X, { counted: false, why: 'UNKNOWN_KEY: x', verdict: 'FAIL', failed: ['kernel'] })], [X]);
    expect(j.status).toBe('NOT_CONFIGURED');
    expect(j.message).toMatch(/^no signed hardware record for x86_64 \(ISO sha256 aaaaaaaaaaaaaaaa…\); 3 record\(s\) not counted: /);
    expect(j.rows.map((r) => r.not_counted)).toEqual([`for another ISO (sha256 cccccccccccccccc…), not one being judged`, 'UNKNOWN_KEY: no signature by a trusted tester key', 'UNKNOWN_KEY: x']);
  });

  it('NOT_CONFIGURED while one arch has none', () => {
    const j = judgeHardware([rec('1', X)], [X, A]);
    expect(j.status).toBe('NOT_CONFIGURED');
    expect(j.message).toMatch(/^no signed hardware record for aarch64 /);
  });
});
