import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { copyFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { bootIso } from './boot.js';
import { loadMachine, type QemuMachine } from './machine.js';

const REPO = join(import.meta.dirname, '..');
const FAKE = join(REPO, 'test', 'fakes', 'fake-qemu');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');

let x86: QemuMachine;
let tmp: DirectoryResult;
let iso: string;

beforeAll(async () => {
  x86 = await loadMachine(REPO, 'qemu/x86_64.yaml');
});
afterEach(async () => {
  await tmp?.cleanup();
});

async function setup() {
  tmp = await dir({ unsafeCleanup: true });
  iso = join(tmp.path, 'clawos.iso');
  await writeFile(iso, 'not really an iso');
  return tmp.path;
}

/** Processes whose command line carries this tag (the fake's hang child). */
function survivors(tag: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(`fake-qemu-child-${tag}`));
}

const env = (e: Record<string, string>) => ({ FAKE_QEMU_DELAY_MS: '1', ...e });

describe('bootIso with the fake QEMU', () => {
  test('PASS replay writes the serial log and the record', async () => {
    const out = await setup();
    const rec = await bootIso({
      machine: x86,
      variant: 'seabios',
      iso,
      accel: 'tcg',
      accelNote: 'KVM probe failed: no kernel output in 15 s; using TCG',
      outDir: out,
      expectedChecks: [],
      binary: FAKE,
      env: env({ FAKE_QEMU_LOG: join(LOGS, 'x86_64-iso-seabios-pass.log') }),
    });
    expect(rec).toMatchObject({
      verdict: 'PASS',
      reason: null,
      stage: 'marker',
      message: 'CLAWOS-BOOT-OK (no checks expected)',
      arch: 'x86_64',
      variant: 'seabios',
      machine: 'q35',
      accel: 'tcg',
      accel_note: 'KVM probe failed: no kernel output in 15 s; using TCG',
      serial_log: 'seabios.serial.log',
      qemu_version: '7.2.99 (fake-qemu)',
      qemu_exit: { code: 0, signal: null },
    });
    expect(rec.command).toBe(
      `env FAKE_QEMU_DELAY_MS=1 FAKE_QEMU_LOG=${join(LOGS, 'x86_64-iso-seabios-pass.log')} ${FAKE} -machine q35 -accel tcg -cpu max -m 512M -smp 1 -nodefaults -no-user-config -nographic -serial stdio -monitor none -no-reboot -cdrom ${iso}`,
    );
    expect(rec.stage_ms.firmware).toBeTypeOf('number');
    expect(rec.stage_ms.marker!).toBeGreaterThanOrEqual(rec.stage_ms.kernel!);
    expect(JSON.parse(readFileSync(join(out, 'seabios.json'), 'utf8'))).toEqual(rec);
    const serial = readFileSync(join(out, 'seabios.serial.log'), 'utf8');
    expect(serial).toBe(readFileSync(join(LOGS, 'x86_64-iso-seabios-pass.log'), 'utf8'));
  });

  test('panic replay -> FAIL boot-panic', async () => {
    const out = await setup();
    const rec = await bootIso({
      machine: x86,
      variant: 'seabios',
      iso,
      accel: 'tcg',
      outDir: out,
      expectedChecks: ['kernel'],
      binary: FAKE,
      env: env({ FAKE_QEMU_LOG: join(LOGS, 'x86_64-panic-no-initramfs.log') }),
    });
    expect(rec).toMatchObject({
      verdict: 'FAIL',
      reason: 'boot-panic',
      stage: 'kernel',
      message: 'kernel panic: Kernel panic - not syncing: No working init found',
    });
  });

  test('hang -> TIMEOUT, and the whole process group is killed', async () => {
    const out = await setup();
    const tag = `t${process.pid}x${Date.now()}`;
    const t0 = Date.now();
    const rec = await bootIso({
      machine: x86,
      variant: 'seabios',
      iso,
      accel: 'tcg',
      outDir: out,
      expectedChecks: [],
      timeoutS: 2,
      binary: FAKE,
      env: env({ FAKE_QEMU_LOG: join(LOGS, 'x86_64-kvm-hang-no-output.log'), FAKE_QEMU_HANG: '1', FAKE_QEMU_TAG: tag }),
    });
    expect(rec).toMatchObject({
      verdict: 'TIMEOUT',
      reason: 'boot-timeout',
      stage: 'firmware',
      message: 'timed out at stage firmware, last output: Booting from ROM...',
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(rec.qemu_stderr).toContain('fake-qemu: terminating on signal 15');
    // Give the kernel a moment to reap, then nothing of the group may be left.
    await new Promise((r) => setTimeout(r, 300));
    expect(survivors(tag)).toEqual([]);
  });

  test('after the marker QEMU gets a moment, then is stopped: PASS, nothing left', async () => {
    const out = await setup();
    const tag = `m${process.pid}x${Date.now()}`;
    const t0 = Date.now();
    const rec = await bootIso({
      machine: x86,
      variant: 'seabios',
      iso,
      accel: 'tcg',
      outDir: out,
      expectedChecks: [],
      timeoutS: 60,
      settleMs: 200,
      binary: FAKE,
      env: env({ FAKE_QEMU_LOG: join(LOGS, 'x86_64-kernel-direct-pass.log'), FAKE_QEMU_HANG: '1', FAKE_QEMU_TAG: tag }),
    });
    expect(rec.verdict).toBe('PASS');
    expect(Date.now() - t0).toBeLessThan(15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(survivors(tag)).toEqual([]);
  });

  test('missing qemu binary -> INFRA_ERROR naming the package', async () => {
    const out = await setup();
    const rec = await bootIso({
      machine: x86,
      variant: 'seabios',
      iso,
      accel: 'tcg',
      outDir: out,
      expectedChecks: [],
      binary: '/nonexistent/qemu-system-x86_64',
    });
    expect(rec.verdict).toBe('INFRA_ERROR');
    expect(rec.reason).toBe('infra');
    expect(rec.message).toBe('/nonexistent/qemu-system-x86_64 does not run (Debian package qemu-system-x86): /nonexistent/qemu-system-x86_64: command not found');
    expect(rec.command).toBe('');
    expect(JSON.parse(readFileSync(join(out, 'seabios.json'), 'utf8')).verdict).toBe('INFRA_ERROR');
  });

  test('qemu failing before any guest output -> INFRA_ERROR with its error', async () => {
    const out = await setup();
    const rec = await bootIso({
      machine: x86,
      variant: 'seabios',
      iso,
      accel: 'tcg',
      outDir: out,
      expectedChecks: [],
      binary: FAKE,
      env: env({ FAKE_QEMU_FAIL: "-cdrom x.iso: Could not open 'x.iso': No such file or directory" }),
    });
    expect(rec).toMatchObject({
      verdict: 'INFRA_ERROR',
      reason: 'infra',
      stage: 'none',
      message: `${FAKE} exited with status 1 before any guest output: fake-qemu: -cdrom x.iso: Could not open 'x.iso': No such file or directory`,
    });
  });

  test('missing firmware -> INFRA_ERROR naming the Debian package', async () => {
    const out = await setup();
    const m: QemuMachine = structuredClone(x86);
    m.variants[1]!.firmware[0]!.path = '/nonexistent/OVMF_CODE_4M.fd';
    const rec = await bootIso({ machine: m, variant: 'ovmf', iso, accel: 'tcg', outDir: out, expectedChecks: [], binary: FAKE });
    expect(rec.verdict).toBe('INFRA_ERROR');
    expect(rec.message).toBe('firmware missing: /nonexistent/OVMF_CODE_4M.fd (Debian package ovmf)');
  });

  test('UEFI vars: each boot gets its own copy; the system file is only read', async () => {
    const out = await setup();
    const sys = join(tmp.path, 'system');
    await (await import('node:fs/promises')).mkdir(sys);
    const code = join(sys, 'OVMF_CODE_4M.fd');
    const vars = join(sys, 'OVMF_VARS_4M.fd');
    await writeFile(code, 'code');
    await writeFile(vars, 'vars');
    await (await import('node:fs/promises')).chmod(vars, 0o444);
    const m: QemuMachine = structuredClone(x86);
    m.variants[1]!.firmware[0]!.path = code;
    m.variants[1]!.firmware[1]!.path = vars;
    const argsFile = join(tmp.path, 'args');
    const rec = await bootIso({
      machine: m,
      variant: 'ovmf',
      iso,
      accel: 'tcg',
      outDir: join(out, 'rec'),
      expectedChecks: [],
      binary: FAKE,
      env: env({ FAKE_QEMU_LOG: join(LOGS, 'x86_64-iso-ovmf-pass.log'), FAKE_QEMU_ARGS_FILE: argsFile }),
    });
    expect(rec.verdict).toBe('PASS');
    const args = (await readFile(argsFile, 'utf8')).split('\n');
    expect(args).toContain(`if=pflash,format=raw,unit=0,readonly=on,file=${code}`);
    const varsArg = args.find((a) => a.startsWith('if=pflash,format=raw,unit=1,file='))!;
    const copy = varsArg.slice('if=pflash,format=raw,unit=1,file='.length);
    expect(copy).not.toBe(vars);
    expect(copy.endsWith('/ovmf.OVMF_VARS_4M.fd')).toBe(true);
    // The copy lives only as long as the boot.
    expect(() => statSync(copy)).toThrow();
    expect(await readFile(vars, 'utf8')).toBe('vars');
    expect((await readdir(join(out, 'rec'))).sort()).toEqual(['ovmf.json', 'ovmf.serial.log']);
  });
});
