import { afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { machine as hostMachine } from 'node:os';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { chooseAccelerator, resetAccelMemo } from './kvm-probe.js';
import { loadMachine, type QemuMachine } from './machine.js';

const REPO = join(import.meta.dirname, '..');
const FAKE = join(REPO, 'test', 'fakes', 'fake-qemu');
const LOGS = join(REPO, 'test', 'fixtures', 'serial-logs');

let base: QemuMachine;
let tmp: DirectoryResult;
let iso: string;
let kvmDev: string;

beforeAll(async () => {
  base = await loadMachine(REPO, 'qemu/x86_64.yaml');
});
beforeEach(async () => {
  resetAccelMemo();
  tmp = await dir({ unsafeCleanup: true });
  iso = join(tmp.path, 'clawos.iso');
  kvmDev = join(tmp.path, 'kvm');
  await writeFile(iso, 'iso');
  await writeFile(kvmDev, '');
});
afterEach(async () => {
  await tmp.cleanup();
});

/** The x86_64 machine with KVM allowed on this host and a stand-in /dev/kvm. */
function machineWithKvm(): QemuMachine {
  const m = structuredClone(base);
  const kvm = m.accelerators.find((a) => a.name === 'kvm')!;
  kvm.device = kvmDev;
  kvm.host_arches = [hostMachine()];
  return m;
}

describe('chooseAccelerator', () => {
  test('KVM that hangs at the firmware falls back to TCG, saying why', async () => {
    const argsFile = join(tmp.path, 'args');
    const tag = `k${process.pid}x${Date.now()}`;
    const opts = {
      machine: machineWithKvm(),
      probe: { media: { iso } },
      binary: FAKE,
      probeTimeoutS: 1,
      env: {
        FAKE_QEMU_DELAY_MS: '1',
        FAKE_QEMU_KVM_HANG: '1',
        FAKE_QEMU_KVM_LOG: join(LOGS, 'x86_64-kvm-hang-no-output.log'),
        FAKE_QEMU_ARGS_FILE: argsFile,
        FAKE_QEMU_TAG: tag,
      },
    };
    const d = await chooseAccelerator(opts);
    expect(d).toEqual({ accel: 'tcg', note: 'KVM probe failed: no kernel output in 1 s; using TCG' });
    // The hung probe was killed with its whole process group.
    await new Promise((r) => setTimeout(r, 300));
    const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
    expect(ps.split('\n').filter((l) => l.includes(`fake-qemu-child-${tag}`))).toEqual([]);
    const args = readFileSync(argsFile, 'utf8');
    expect(args).toContain('-accel\nkvm\n-cpu\nhost\n');
    // Memoised for the run: no second probe.
    expect(await chooseAccelerator(opts)).toEqual(d);
    expect(readFileSync(argsFile, 'utf8')).toBe(args);
  });

  test('KVM whose guest reaches the kernel is used', async () => {
    const d = await chooseAccelerator({
      machine: machineWithKvm(),
      probe: { media: { iso } },
      binary: FAKE,
      probeTimeoutS: 20,
      env: { FAKE_QEMU_DELAY_MS: '1', FAKE_QEMU_LOG: join(LOGS, 'x86_64-iso-seabios-pass.log'), FAKE_QEMU_HANG: '1' },
    });
    expect(d.accel).toBe('kvm');
    expect(d.note).toMatch(/^KVM probe reached kernel output in \d+\.\d s$/);
  });

  test('a QEMU error during the probe falls back with the error', async () => {
    const d = await chooseAccelerator({
      machine: machineWithKvm(),
      probe: { media: { iso } },
      binary: FAKE,
      env: { FAKE_QEMU_FAIL: 'failed to initialize kvm: Permission denied' },
    });
    expect(d).toEqual({
      accel: 'tcg',
      note: 'KVM probe failed: QEMU exited with status 1 before kernel output: fake-qemu: failed to initialize kvm: Permission denied; using TCG',
    });
  });

  test('no device node: TCG without a probe', async () => {
    const m = machineWithKvm();
    m.accelerators[0]!.device = join(tmp.path, 'no-kvm');
    const d = await chooseAccelerator({ machine: m, probe: { media: { iso } }, binary: FAKE });
    expect(d).toEqual({ accel: 'tcg', note: `KVM not used: ${join(tmp.path, 'no-kvm')} missing; using TCG` });
  });

  test('KVM is never used for a foreign-arch guest', async () => {
    const m = machineWithKvm();
    m.accelerators[0]!.host_arches = ['riscv64'];
    const d = await chooseAccelerator({ machine: m, probe: { media: { iso } }, binary: FAKE, hostArch: 'x86_64' });
    expect(d).toEqual({ accel: 'tcg', note: 'KVM not used: host is x86_64, kvm needs riscv64; using TCG' });
  });

  test('the decision is cached in a file for this host boot', async () => {
    const cacheFile = join(tmp.path, 'cache', 'qemu-accel.json');
    const opts = {
      machine: machineWithKvm(),
      probe: { media: { iso } },
      binary: FAKE,
      probeTimeoutS: 1,
      cacheFile,
      env: { FAKE_QEMU_KVM_HANG: '1' },
    };
    const first = await chooseAccelerator(opts);
    expect(first.accel).toBe('tcg');
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8'));
    expect(cache.boot_id).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    resetAccelMemo();
    const t0 = Date.now();
    const second = await chooseAccelerator(opts);
    expect(Date.now() - t0).toBeLessThan(900);
    expect(second).toEqual({ accel: 'tcg', note: 'KVM probe failed: no kernel output in 1 s; using TCG (cached for this host boot)' });
  });
});
