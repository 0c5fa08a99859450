/**
 * F-02's step with the fake QEMU replaying the serial consoles of real boots
 * (test/fixtures/serial-logs/*-kernel-apparmor-{complain,enforce}-pass.log): the
 * boot the step asks for with clawos.apparmor=<mode> gets that mode's recording.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { dir, type DirectoryResult } from 'tmp-promise';
import { run, type RunOptions } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { resetAccelMemo } from '../../qemu/kvm-probe.js';
import type { BootRecord } from '../../qemu/boot.js';
import type { ArchSpec } from '../catalog/arch.js';
import type { StepContext } from '../catalog/step.js';
import { parseApparmorCheckValue } from '../security/apparmor-check-value.js';
import { apparmorFlowStep, judgeFlowBoot } from './apparmor-flow.js';

const REPO = repoRootDir();
const FAKE = join(REPO, 'test', 'fakes', 'fake-qemu');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');
const archSpec = (name: string) => parse(readFileSync(join(REPO, 'specs', 'arch', `${name}.yaml`), 'utf8')) as ArchSpec;
const PROFILES = ['clawos-agent', 'clawos-wasm', 'clawos-selftest'];
/** The checks the recorded boots ran (their image had no C-08 seccomp filter). */
const CHECKS = 'checks: [kernel, lsm, lockdown, btf, cgroup2, seccomp, namespaces, module-sig, pivot-root, {name: cpu-flags, when: cpu_flags}, apparmor]\n';

let tmp: DirectoryResult;
beforeEach(async () => {
  resetAccelMemo();
  tmp = await dir({ unsafeCleanup: true });
});
afterEach(async () => {
  await tmp.cleanup();
});

const modeOf = (argv: string[]) => /clawos\.apparmor=(\w+)/.exec(argv.join(' '))?.[1] ?? 'none';

/** A ctx whose QEMU is the fake, replaying the log `logFor` picks for a boot's mode; KVM answers with an error. */
async function context(archName: string, logFor: (mode: string) => string, o: { profiles?: string[]; params?: Record<string, unknown> } = {}) {
  const arch = archSpec(archName);
  const buildDir = join(tmp.path, 'build');
  const outDir = join(buildDir, 'security', archName);
  await mkdir(join(buildDir, 'kernel-engineer', archName), { recursive: true });
  await mkdir(join(buildDir, 'build-engineer', archName), { recursive: true });
  await mkdir(join(buildDir, 'security', 'apparmor'), { recursive: true });
  await mkdir(outDir, { recursive: true });
  await writeFile(join(buildDir, 'kernel-engineer', archName, 'vmlinuz'), 'kernel');
  await writeFile(join(buildDir, 'build-engineer', archName, 'initramfs.cpio.gz'), 'initrd');
  await writeFile(join(buildDir, 'security', 'apparmor', 'apparmor-policy.json'), JSON.stringify({ profiles: (o.profiles ?? PROFILES).map((name) => ({ name })) }));
  const checks = join(tmp.path, 'checks.yaml');
  await writeFile(checks, CHECKS);
  const boots: string[][] = [];
  const lines: string[] = [];
  const ctx: StepContext = {
    taskId: 'F-02',
    instanceId: `F-02@${archName}`,
    arch,
    params: {
      kernel: `kernel-engineer/${archName}/vmlinuz`,
      initrd: `build-engineer/${archName}/initramfs.cpio.gz`,
      policy_manifest: 'security/apparmor/apparmor-policy.json',
      expected_checks_file: checks,
      out: `security/${archName}/apparmor-flow`,
      ...o.params,
    },
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
      const env: Record<string, string> = { FAKE_QEMU_DELAY_MS: '0' };
      if (argv.includes('kvm')) env.FAKE_QEMU_FAIL = 'Could not access KVM kernel module: No such device';
      else if (argv[1] !== '--version') {
        boots.push(argv);
        env.FAKE_QEMU_LOG = join(LOGS, logFor(modeOf(argv)));
      }
      return run([FAKE, ...argv.slice(1)], { ...opts, env: { ...opts.env, ...env } });
    },
  };
  return { ctx, boots, lines, buildDir };
}

const recorded = (arch: string) => (mode: string) => `${arch}-kernel-apparmor-${mode}-pass.log`;

describe('apparmor-flow step (F-02)', () => {
  it('passes x86_64 with a complain boot that allows and logs the probe and an enforce boot that denies it', async () => {
    const { ctx, boots, buildDir } = await context('x86_64', recorded('x86_64'));
    const o = await apparmorFlowStep.run(ctx);
    expect(o.message).toBe(
      'x86_64: complain boot: 3 profiles (complain), selftest read ALLOWED and logged; enforce boot: 3 profiles (enforce), selftest read DENIED (EACCES) and logged',
    );
    expect(o.status).toBe('PASS');
    // The same kernel and initramfs, booted directly, each time with its mode on the command line.
    expect(boots.map(modeOf)).toEqual(['complain', 'enforce']);
    for (const argv of boots) {
      expect(argv.slice(argv.indexOf('-kernel'), argv.indexOf('-kernel') + 2)).toEqual(['-kernel', join(buildDir, 'kernel-engineer/x86_64/vmlinuz')]);
      expect(argv.slice(argv.indexOf('-initrd'), argv.indexOf('-initrd') + 2)).toEqual(['-initrd', join(buildDir, 'build-engineer/x86_64/initramfs.cpio.gz')]);
      expect(argv[argv.indexOf('-append') + 1]).toBe(`console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 clawos.apparmor=${modeOf(argv)}`);
    }
    const summary = JSON.parse(await readFile(join(buildDir, 'security/x86_64/apparmor-flow/F-02-apparmor-flow.json'), 'utf8'));
    expect(summary.variant).toBe('seabios');
    expect(summary.boots.map((b: { mode: string; verdict: string; probe: string; audit: string }) => [b.mode, b.verdict, b.probe, b.audit])).toEqual([
      ['complain', 'PASS', 'ALLOWED', 'apparmor="ALLOWED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary"'],
      ['enforce', 'PASS', 'DENIED', 'apparmor="DENIED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary"'],
    ]);
    expect(o.evidence?.map((e) => e.path)).toEqual([
      'security/x86_64/apparmor-flow/complain/seabios.json',
      'security/x86_64/apparmor-flow/complain/seabios.serial.log',
      'security/x86_64/apparmor-flow/enforce/seabios.json',
      'security/x86_64/apparmor-flow/enforce/seabios.serial.log',
      'security/x86_64/apparmor-flow/F-02-apparmor-flow.json',
    ]);
  });

  it('passes aarch64 from its recordings, on the machine’s first variant (UEFI with ACPI)', async () => {
    const { ctx, boots } = await context('aarch64', recorded('aarch64'));
    const o = await apparmorFlowStep.run(ctx);
    expect(o.status).toBe('PASS');
    expect(boots[0]).toContain('-bios');
    expect(boots[0]![boots[0]!.indexOf('-append') + 1]).toBe('console=ttyAMA0 panic=-1 clawos.apparmor=complain');
  });

  it('fails naming what each boot showed when the guest ignored the requested mode', async () => {
    // Each boot replays the other mode's console: the guest "ran" in the wrong mode.
    const { ctx } = await context('x86_64', (mode) => recorded('x86_64')(mode === 'complain' ? 'enforce' : 'complain'));
    const o = await apparmorFlowStep.run(ctx);
    expect(o).toMatchObject({ status: 'FAIL', reason: 'boot-check-failed' });
    expect(o.message).toBe(
      'complain boot: the guest ran in mode enforce, not complain: clawos.apparmor=complain was not honoured; ' +
        'profiles not in complain mode: clawos-agent (enforce), clawos-wasm (enforce), clawos-selftest (enforce); ' +
        'selftest read DENIED, expected ALLOWED; ' +
        'no apparmor="ALLOWED" audit record for the selftest read (got apparmor="DENIED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary"); ' +
        'enforce boot: the guest ran in mode complain, not enforce: clawos.apparmor=enforce was not honoured; ' +
        'profiles not in enforce mode: clawos-agent (complain), clawos-wasm (complain), clawos-selftest (complain); ' +
        'selftest read ALLOWED, expected DENIED; ' +
        'no apparmor="DENIED" audit record for the selftest read (got apparmor="ALLOWED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary")',
    );
  });

  it('fails when a profile F-06 compiled is not listed, and when a boot does not pass', async () => {
    const { ctx } = await context('x86_64', recorded('x86_64'), { profiles: [...PROFILES, 'clawos-extra'] });
    const o = await apparmorFlowStep.run(ctx);
    expect(o.message).toBe('complain boot: profiles not listed: clawos-extra; enforce boot: profiles not listed: clawos-extra');

    resetAccelMemo();
    const panic = await context('x86_64', () => 'x86_64-panic-no-initramfs.log');
    const p = await apparmorFlowStep.run(panic.ctx);
    expect(p.status).toBe('FAIL');
    expect(p.message).toMatch(/^complain boot: FAIL at stage kernel: kernel panic: .*; enforce boot: FAIL at stage kernel: kernel panic: /);
  });

  it('fails with output-missing before booting when an input is absent', async () => {
    const { ctx, boots } = await context('x86_64', recorded('x86_64'), { params: { initrd: 'build-engineer/x86_64/nope.cpio.gz' } });
    expect(await apparmorFlowStep.run(ctx)).toEqual({
      status: 'FAIL',
      reason: 'output-missing',
      message: 'apparmor-flow: initrd build-engineer/x86_64/nope.cpio.gz not found (the task that makes it has not run?)',
    });
    expect(boots).toEqual([]);
  });
});

describe('parseApparmorCheckValue / judgeFlowBoot', () => {
  const value =
    'mode=enforce profiles=clawos-agent:enforce,clawos-selftest:enforce probe=DENIED(rc=1: cat: can\'t open \'/etc/clawos/secret-canary\': Permission denied) ' +
    'audit=apparmor="DENIED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary"; deny-rule=1:cat: Permission denied';

  it('reads the mode, the listed profiles, the probe and its audit record', () => {
    expect(parseApparmorCheckValue(value)).toEqual({
      mode: 'enforce',
      profiles: [
        { name: 'clawos-agent', mode: 'enforce' },
        { name: 'clawos-selftest', mode: 'enforce' },
      ],
      probe: 'DENIED',
      audit: 'apparmor="DENIED" operation="open" profile="clawos-selftest" name="/etc/clawos/secret-canary"',
      auditKind: 'DENIED',
    });
    expect(parseApparmorCheckValue('no compiled policy')).toEqual({ mode: '', profiles: [], probe: null, audit: null, auditKind: null });
  });

  it('judges a passing boot by its apparmor check, and a boot without it as a problem', () => {
    const rec = { verdict: 'PASS', stage: 'marker', message: 'ok', checks: [{ name: 'apparmor', result: 'pass', value }] } as unknown as BootRecord;
    expect(judgeFlowBoot(rec, 'enforce', 'apparmor', ['clawos-agent', 'clawos-selftest']).problems).toEqual([]);
    expect(judgeFlowBoot({ ...rec, checks: [] }, 'enforce', 'apparmor', []).problems).toEqual(['no apparmor check reported']);
  });
});
