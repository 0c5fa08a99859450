import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { dir, type DirectoryResult } from 'tmp-promise';
import { run, type RunOptions } from '../../lib/proc.js';
import { sha256File } from '../../lib/hash.js';
import { resetAccelMemo } from '../../qemu/kvm-probe.js';
import type { ArchSpec } from '../catalog/arch.js';
import type { StepContext } from '../catalog/step.js';
import { qemuBootStep } from './qemu-boot.js';
import { loadExpectedChecks } from '../boot/guest-boot.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const FAKE = join(REPO, 'test', 'fakes', 'fake-qemu');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');
const x86 = parse(readFileSync(join(REPO, 'specs', 'arch', 'x86_64.yaml'), 'utf8')) as ArchSpec;

let tmp: DirectoryResult;
beforeEach(async () => {
  resetAccelMemo();
  tmp = await dir({ unsafeCleanup: true });
});
afterEach(async () => {
  await tmp.cleanup();
});

/**
 * A StepContext whose run() puts the fake QEMU in place of the real one. The KVM
 * probe is answered with a QEMU error so the test does not wait for it; each
 * variant replays the log `logFor` picks from its argv.
 */
async function context(params: Record<string, unknown>, logFor: (argv: string[]) => string) {
  const buildDir = join(tmp.path, 'build');
  const outDir = join(buildDir, 'build-engineer', 'x86_64');
  await mkdir(outDir, { recursive: true });
  const lines: string[] = [];
  const ctx: StepContext = {
    taskId: 'Q-01',
    instanceId: 'Q-01@x86_64',
    arch: x86,
    params,
    repoRoot: REPO,
    buildDir,
    outDir,
    cacheDir: join(buildDir, 'cache'),
    buildPath: (rel) => resolve(buildDir, rel),
    sourceDateEpoch: 0,
    jobs: 1,
    log: (l) => lines.push(l),
    progress: () => {},
    signal: new AbortController().signal,
    run: (argv: string[], opts: RunOptions = {}) => {
      const env: Record<string, string> = { FAKE_QEMU_DELAY_MS: '1' };
      if (argv.includes('kvm')) env.FAKE_QEMU_FAIL = 'Could not access KVM kernel module: No such device';
      else if (argv[1] !== '--version') env.FAKE_QEMU_LOG = logFor(argv);
      return run([FAKE, ...argv.slice(1)], { ...opts, env: { ...opts.env, ...env } });
    },
  };
  return { ctx, lines, buildDir, outDir };
}

async function writeIso(buildDir: string) {
  await mkdir(join(buildDir, 'iso'), { recursive: true });
  await writeFile(join(buildDir, 'iso', 'clawos-x86_64.iso'), 'iso');
}

const isOvmf = (argv: string[]) => argv.some((a) => a.startsWith('if=pflash'));

describe('qemu-boot step', () => {
  test('declares the machine packages and inputs', () => {
    expect(qemuBootStep.name).toBe('qemu-boot');
    expect(qemuBootStep.toolPackages(x86, {})).toEqual(['ovmf', 'qemu-system-x86', 'seabios']);
    expect(qemuBootStep.implicitInputs!(x86, { expected_checks_file: 'buildroot-external/board/clawos/checks.yaml' })).toEqual([
      'specs/schemas/qemu-machine.schema.json',
      'qemu/x86_64.yaml',
      'buildroot-external/board/clawos/checks.yaml',
    ]);
  });

  test('every variant passes -> PASS with records and evidence', async () => {
    const checks = join(tmp.path, 'checks.yaml');
    await writeFile(checks, 'checks:\n  - name: kernel\n    description: x\n  - name: smep\n    arches: [x86_64]\n  - name: pac\n    arches: [aarch64]\n');
    const guest = join(tmp.path, 'guest.log');
    await writeFile(
      guest,
      [
        'SeaBIOS (version 1.16.2)',
        'Linux version 6.1.192',
        'Run /init as init process',
        'CLAWOS-INIT arch=x86_64',
        'CLAWOS-CHECK name=kernel result=pass value=6.1.192',
        'CLAWOS-CHECK name=smep result=pass value=smep smap',
        'CLAWOS-BOOT-OK passed=2',
        'reboot: Restarting system',
      ].join('\n') + '\n',
    );
    const { ctx, buildDir, outDir } = await context(
      { iso: 'iso/clawos-x86_64.iso', variants: ['seabios', 'ovmf'], expected_checks_file: checks },
      () => guest,
    );
    await writeIso(buildDir);
    const o = await qemuBootStep.run(ctx);
    expect(o.status).toBe('PASS');
    expect(o.message).toMatch(/^x86_64: all 2 boots passed under TCG \(seabios \d+ s, ovmf \d+ s\)$/);
    const records = o.data as Array<Record<string, unknown>>;
    expect(records.map((r) => [r.variant, r.verdict, r.accel])).toEqual([
      ['seabios', 'PASS', 'tcg'],
      ['ovmf', 'PASS', 'tcg'],
    ]);
    // qemu/x86_64.yaml names the real /dev/kvm: without it KVM is refused before any probe;
    // with it the fake QEMU's probe fails the way a host without a usable KVM module does.
    expect(records[0]!.accel_note).toBe(
      existsSync('/dev/kvm')
        ? 'KVM probe failed: QEMU exited with status 1 before kernel output: fake-qemu: Could not access KVM kernel module: No such device; using TCG'
        : 'KVM not used: /dev/kvm missing; using TCG',
    );
    expect(o.evidence!.map((e) => [e.label, e.path])).toEqual([
      ['seabios boot record', 'build-engineer/x86_64/seabios.json'],
      ['seabios serial log', 'build-engineer/x86_64/seabios.serial.log'],
      ['ovmf boot record', 'build-engineer/x86_64/ovmf.json'],
      ['ovmf serial log', 'build-engineer/x86_64/ovmf.serial.log'],
    ]);
    expect(o.evidence![1]!.sha256).toBe(await sha256File(join(outDir, 'seabios.serial.log')));
  });

  test('a failing variant fails the step with its reason', async () => {
    const { ctx, buildDir } = await context({ iso: 'iso/clawos-x86_64.iso', variants: ['seabios', 'ovmf'] }, (argv) =>
      join(LOGS, isOvmf(argv) ? 'x86_64-panic-no-initramfs.log' : 'x86_64-iso-seabios-pass.log'),
    );
    await writeIso(buildDir);
    const o = await qemuBootStep.run(ctx);
    expect(o).toMatchObject({
      status: 'FAIL',
      reason: 'boot-panic',
      message: 'ovmf: FAIL at stage kernel: kernel panic: Kernel panic - not syncing: No working init found',
    });
    expect((o.data as unknown[]).length).toBe(2);
    expect(o.evidence).toHaveLength(4);
  });

  test('an expected check the guest never reports fails the boot', async () => {
    const checks = join(tmp.path, 'checks.yaml');
    await writeFile(checks, 'checks:\n  - name: lockdown\n');
    const { ctx, buildDir } = await context(
      { iso: 'iso/clawos-x86_64.iso', variants: ['seabios'], expected_checks_file: checks },
      () => join(LOGS, 'x86_64-iso-seabios-pass.log'),
    );
    await writeIso(buildDir);
    const o = await qemuBootStep.run(ctx);
    expect(o).toMatchObject({
      status: 'FAIL',
      reason: 'boot-check-failed',
      message: 'seabios: FAIL at stage marker: CLAWOS-BOOT-OK but lockdown missing',
    });
  });

  test('a Secure Boot variant whose VARS do not enrol the signing certificate is NOT_CONFIGURED, never booted', async () => {
    const { ctx, buildDir } = await context({ iso: 'iso/clawos-x86_64.iso', variants: ['seabios', 'ovmf-secureboot'] }, () => join(LOGS, 'x86_64-iso-seabios-pass.log'));
    await writeIso(buildDir);
    const other = { keyPath: '/k', certPath: '/c', certSha256: 'ab'.repeat(32), subject: 'O=ClawOS', testKey: null };
    const o = await qemuBootStep.run({ ...ctx, secureBootKey: other });
    expect([o.status, o.reason, o.message]).toEqual([
      'NOT_CONFIGURED',
      'not-configured',
      "ovmf-secureboot: NOT_CONFIGURED: its firmware variables enrol certificate sha256 282e8130b7070f10…, but the UKI is signed with abababababababab… (the key dir's secureboot.crt); give this variant VARS that enrol it (docs/boot-lab.md, virt-fw-vars)",
    ]);
    // The other variant still booted; the Secure Boot one has no record.
    expect((o.data as Array<{ variant: string }>).map((r) => r.variant)).toEqual(['seabios']);
    const none = await qemuBootStep.run({ ...ctx, params: { ...ctx.params, variants: ['ovmf-secureboot'] } });
    expect(none.message).toBe('ovmf-secureboot: NOT_CONFIGURED: no Secure Boot key in the key dir, so no signed UKI to boot');
  });

  test('missing ISO, unknown variant, missing checks file', async () => {
    const a = await context({ iso: 'iso/clawos-x86_64.iso' }, () => '');
    expect(await qemuBootStep.run(a.ctx)).toEqual({ status: 'FAIL', reason: 'output-missing', message: 'ISO not found: iso/clawos-x86_64.iso' });
    await writeIso(a.buildDir);
    const b = await context({ iso: 'iso/clawos-x86_64.iso', variants: ['uefi-acpi'] }, () => '');
    expect(await qemuBootStep.run(b.ctx)).toEqual({
      status: 'FAIL',
      reason: 'spec-invalid',
      message: 'qemu-boot: unknown variant(s) uefi-acpi for x86_64 (have: seabios, ovmf, ovmf-secureboot, usb-bios, usb-uefi)',
    });
    const c = await context({ iso: 'iso/clawos-x86_64.iso', expected_checks_file: 'no/such/checks.yaml' }, () => '');
    const oc = await qemuBootStep.run(c.ctx);
    expect(oc.status).toBe('FAIL');
    expect(oc.reason).toBe('spec-invalid');
    expect(oc.message).toMatch(/^expected checks file .*no\/such\/checks\.yaml: ENOENT/);
  });
});

describe('loadExpectedChecks', () => {
  test('filters by arch and accepts bare names', async () => {
    const f = join(tmp.path, 'c.yaml');
    await writeFile(f, 'checks:\n  - kernel\n  - name: smep\n    arches: [x86_64]\n  - name: bti\n    arches: [aarch64]\n');
    expect(await loadExpectedChecks(f, 'x86_64')).toEqual(['kernel', 'smep']);
    expect(await loadExpectedChecks(f, 'aarch64')).toEqual(['kernel', 'bti']);
  });
  test('rejects what it cannot read', async () => {
    const f = join(tmp.path, 'c.yaml');
    await writeFile(f, 'checks:\n  - name: 3\n');
    await expect(loadExpectedChecks(f, 'x86_64')).rejects.toThrow('checks[0] has no usable name');
    await writeFile(f, 'check: []\n');
    await expect(loadExpectedChecks(f, 'x86_64')).rejects.toThrow('no "checks:" list');
  });
});

describe('loadExpectedChecks with `when:`', () => {
  test('expects cpu-flags only on arches whose guest.cpu_flags is non-empty', async () => {
    const { repoRootDir } = await import('../../lib/repo-root.js');
    const f = `${repoRootDir()}/buildroot-external/board/clawos/checks.yaml`;
    const x86 = await loadExpectedChecks(f, 'x86_64', { cpu_flags: ['smep', 'smap'] });
    const arm = await loadExpectedChecks(f, 'aarch64', { cpu_flags: [] });
    expect(x86).toContain('cpu-flags');
    expect(arm).not.toContain('cpu-flags');
    expect(arm).toEqual(x86.filter((c) => c !== 'cpu-flags'));
  });
});
