/**
 * The LAVA judge on real lava-run output (test/fixtures/lava, recorded with
 * Debian's lava-dispatcher 2023.01): every verdict and its exact reason.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { jobBinding, judgeLava, parseLavaLog, type JobBinding } from './lava-results.js';

const FIX = join(repoRootDir(), 'test', 'fixtures', 'lava');
/** x86_64's expected checks (checks.yaml with guest.cpu_flags): the 14 the stand-in guests print. */
const EXPECTED = ['kernel', 'lsm', 'lockdown', 'btf', 'cgroup2', 'seccomp', 'seccomp-filter', 'namespaces', 'module-sig', 'pivot-root', 'cpu-flags', 'apparmor', 'cgroup-quotas', 'kernel-log'];

function load(name: string): { binding: JobBinding; log: string } {
  const dir = join(FIX, name.includes('/') ? name.slice(1) : `x86_64-seabios-${name}`);
  const b = jobBinding(readFileSync(join(dir, 'job.yaml'), 'utf8'), 'job.yaml');
  if ('problem' in b) throw new Error(b.problem);
  return { binding: b, log: readFileSync(join(dir, 'lava-log.yaml'), 'utf8') };
}

function judge(name: string, over: { iso?: string; log?: string } = {}) {
  const f = load(name);
  return judgeLava({ log: parseLavaLog(over.log ?? f.log), binding: f.binding, isoSha256: over.iso ?? f.binding.iso_sha256, expectedChecks: EXPECTED });
}

describe('parseLavaLog on a real lava-run log', () => {
  test('cases, the ISO LAVA checked, the console and the job result', () => {
    const p = parseLavaLog(load('pass').log);
    expect(p.unreadable).toEqual([]);
    expect(p.job).toEqual({ result: 'pass' });
    expect(p.downloads).toEqual({ iso: 'dfd9a7b9c931e908beabbc34fc9b3690d6ade242c7eeb87a5c100fb1de264b72' });
    const checks = p.cases.filter((c) => c.suite === 'clawos-checks');
    expect(checks.map((c) => c.name)).toEqual(EXPECTED);
    // LAVA's own case ids are lower-cased with non-word runs as _; the guest's name is in extra.
    expect(checks.find((c) => c.name === 'module-sig')?.case).toBe('module_sig');
    expect(p.cases.filter((c) => c.suite === 'clawos-boot')).toEqual([{ suite: 'clawos-boot', case: 'clawos_boot', name: 'CLAWOS-BOOT', result: 'pass', extra: { test_case_id: 'CLAWOS-BOOT' } }]);
    expect(p.console.some((c) => c.text === 'CLAWOS-BOOT-OK passed=14')).toBe(true);
    // LAVA's own "poweroff" typed at the end is not guest output.
    expect(p.console.some((c) => c.text === 'poweroff')).toBe(false);
  });

  test("a LAVA server's raw log (a YAML list of the same records) reads the same", () => {
    const text = load('pass').log;
    const server = text
      .split('\n')
      .filter(Boolean)
      .map((l) => `- ${l}`)
      .join('\n');
    expect(parseLavaLog(server)).toEqual(parseLavaLog(text));
  });
});

describe('judgeLava: the same verdicts as the boot lab, never PASS on bad input', () => {
  test('every check and the marker passed: PASS, and the console classifier agrees', () => {
    const j = judge('pass');
    expect([j.verdict, j.reason, j.message]).toEqual(['PASS', null, 'CLAWOS-BOOT-OK, all 14 expected checks passed (LAVA job pass)']);
    expect(j.console.verdict).toBe('PASS');
    expect(j.marker).toBe('pass');
    expect(j.marker_ms).toBe(57131);
  });

  test('a failed check and CLAWOS-BOOT-FAILED: FAIL although the LAVA job passed', () => {
    const j = judge('fail-check');
    expect([j.verdict, j.reason, j.message, j.lava_state]).toEqual(['FAIL', 'boot-check-failed', 'CLAWOS-BOOT-FAILED: lockdown failed', 'pass']);
    expect(j.failed_checks).toEqual(['lockdown']);
  });

  test('a check never printed is missing: FAIL, even with CLAWOS-BOOT-OK', () => {
    const j = judge('missing-check');
    expect([j.verdict, j.reason, j.message]).toEqual(['FAIL', 'boot-check-failed', 'CLAWOS-BOOT-OK but btf missing']);
    expect(j.missing_checks).toEqual(['btf']);
  });

  test("a guest that panics: FAIL boot-panic from its console, though LAVA calls the closed connection an Infrastructure error", () => {
    const j = judge('panic');
    expect([j.verdict, j.reason]).toEqual(['FAIL', 'boot-panic']);
    expect(j.message).toBe('kernel panic: Kernel panic - not syncing: sysrq triggered crash (on the console LAVA recorded; LAVA job fail (Infrastructure error: Connection closed))');
  });

  test('a log without the marker because the guest hung: TIMEOUT', () => {
    const j = judge('hang');
    expect([j.verdict, j.reason, j.marker]).toEqual(['TIMEOUT', 'boot-timeout', null]);
    expect(j.message).toBe(
      'LAVA fail (Test error: lava-test-monitor timed out after 90 seconds); console: TIMEOUT (timed out at stage checks, last output: CLAWOS-CHECK name=seccomp result=pass value=stand-in seccomp)',
    );
  });

  test('an Infrastructure error with no guest output stays INFRA_ERROR, never FAIL', () => {
    const j = judge('qemu-fails');
    expect([j.verdict, j.reason, j.message]).toEqual(['INFRA_ERROR', 'lava-infra', 'LAVA fail (Infrastructure error: Connection closed); console: FAIL (guest exited with no output)']);
  });

  test('a job LAVA could not deploy never booted: INFRA_ERROR, not a FAIL of the ISO', () => {
    expect([judge('wrong-sha').verdict, judge('wrong-sha').message]).toEqual([
      'INFRA_ERROR',
      "the boot never started: LAVA fail (Job error: sha256 for 'file:///work/h12-scratch/standin/standin-pass.iso' does not match.)",
    ]);
    expect(judge('missing-iso').reason).toBe('lava-job-error');
  });

  test('a truncated log (cut inside a result line): never PASS, says where it ends', () => {
    const j = judge('truncated');
    expect([j.verdict, j.reason]).toEqual(['INFRA_ERROR', 'lava-log-truncated']);
    expect(j.message).toBe(
      'the LAVA log is truncated: it ends at 2026-12-06T07:06:51.340458 with no job result (line 95 is not a log record), so its cases cannot be trusted whole; console: FAIL (guest exited at stage checks without a CLAWOS-BOOT marker, last output: CLAWOS-CHECK name=cgroup2 result=pass value=stand-in cgroup2)',
    );
  });

  test('the PASS log cut before its last record is not a PASS either', () => {
    const lines = load('pass').log.trimEnd().split('\n');
    const j = judge('pass', { log: lines.slice(0, -1).join('\n') });
    expect([j.verdict, j.reason]).toEqual(['INFRA_ERROR', 'lava-log-truncated']);
  });

  test('results for another ISO: FAIL lava-other-iso, naming both sha256', () => {
    const other = '5c97be4f4dc09089480dd00336c1dbddc92943614394160ba97a50e9a524d782';
    const j = judge('pass', { iso: other });
    expect([j.verdict, j.reason, j.message]).toEqual([
      'FAIL',
      'lava-other-iso',
      `the job was exported for ISO sha256 dfd9a7b9c931e908beabbc34fc9b3690d6ade242c7eeb87a5c100fb1de264b72, not this ISO (${other})`,
    ]);
  });

  test('a job whose ISO LAVA deployed is not the one its metadata names: FAIL lava-other-iso', () => {
    const f = load('pass');
    const other = '5c97be4f4dc09089480dd00336c1dbddc92943614394160ba97a50e9a524d782';
    const j = judgeLava({ log: parseLavaLog(f.log), binding: { ...f.binding, iso_sha256: other }, isoSha256: other, expectedChecks: EXPECTED });
    expect(j.message).toBe(`LAVA deployed an ISO with sha256 dfd9a7b9c931e908beabbc34fc9b3690d6ade242c7eeb87a5c100fb1de264b72, not this ISO (${other})`);
  });

  test('a job file clawos-build did not write is refused with its reason', () => {
    expect(jobBinding('job_name: x\ndevice_type: qemu\n', 'j.yaml')).toEqual({ problem: 'j.yaml: not a job clawos-build lava export wrote: its metadata lacks clawos.arch, clawos.variant, clawos.iso_sha256' });
    expect(jobBinding('metadata: {clawos.arch: x86_64}\n', 'j.yaml')).toEqual({ problem: 'j.yaml: not a job clawos-build lava export wrote: its metadata lacks clawos.variant, clawos.iso_sha256' });
  });
});

describe('judgeLava on jobs `clawos-build lava run` rendered and ran (x86_64 SeaBIOS and OVMF, aarch64 UEFI with ACPI and with a device tree)', () => {
  const AARCH64 = EXPECTED.filter((c) => c !== 'cpu-flags');
  test.each([
    ['/x86_64-seabios-run', EXPECTED],
    ['/x86_64-ovmf-run', EXPECTED],
    ['/aarch64-uefi-acpi-pass', AARCH64],
    ['/aarch64-uefi-dt-pass', AARCH64],
  ])('%s: PASS with every expected check, the console classifier agreeing', (name, expected) => {
    const f = load(name);
    const j = judgeLava({ log: parseLavaLog(f.log), binding: f.binding, isoSha256: f.binding.iso_sha256, expectedChecks: expected });
    expect([j.verdict, j.message, j.console.verdict]).toEqual(['PASS', `CLAWOS-BOOT-OK, all ${expected.length} expected checks passed (LAVA job pass)`, 'PASS']);
  });
});
