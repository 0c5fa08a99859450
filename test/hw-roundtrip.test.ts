/**
 * Issue 15's round trip with QEMU as the stand-in machine, on the real ISOs a
 * build made: `flash` each ISO to an image file (with its empty results area),
 * boot QEMU from that image attached as a USB stick (qemu-xhci + usb-storage,
 * writes kept, -smbios naming a recognisable machine), let the guest write its
 * results and power off, then `hw record` the image, signed by a tester key.
 *  - both arches PASS: G-07 for the build's ISOs is PASS and lists each machine;
 *  - a machine without SMAP (x86_64, -cpu max,-smap): the guest's cpu-flags
 *    check fails, the record is FAIL and G-07 FAIL names the machine and check;
 *  - the records judged for another ISO's sha256 do not count.
 * Nothing is faked: real QEMU, the real guest writing the real results area.
 * It skips, saying why, only where QEMU or a built ISO is missing; .ci/run runs
 * it after the build (step 3), where neither may be missing.
 * The ISOs: $CLAWOS_HW_BUILD_DIR (a build dir), else the checkout's build/.
 */
import { access, constants, link, mkdir, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { capture } from '../lib/proc.js';
import { sha256File } from '../lib/hash.js';
import { loadArches } from '../pipeline/catalog/arch.js';
import { loadExpectedChecks } from '../pipeline/boot/guest-boot.js';
import { bootIso } from '../qemu/boot.js';
import { findVariant, loadMachine, type QemuMachine } from '../qemu/machine.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp-dirs.js';

const tmp = useTmpDirs();
const ROOT = repoRootDir();
const BUILD = process.env.CLAWOS_HW_BUILD_DIR ?? join(ROOT, 'build');
const isoOf = (arch: string) => join(BUILD, 'build-engineer', arch, `clawos-${arch}.iso`);

async function missing(): Promise<string | null> {
  for (const arch of ['x86_64', 'aarch64']) {
    if (!(await capture(['sh', '-c', `command -v qemu-system-${arch}`]))) return `qemu-system-${arch} is not installed`;
    if (!(await access(isoOf(arch), constants.R_OK).then(() => true, () => false))) return `no ISO at ${isoOf(arch)} (build one, or set CLAWOS_HW_BUILD_DIR)`;
  }
  return null;
}
const why = await missing();

interface StandIn {
  arch: string;
  /** The qemu/<arch>.yaml USB variant whose firmware and stick attachment the machine uses. */
  variant: string;
  vendor: string;
  product: string;
  /** -cpu instead of the TCG accelerator's (a machine lacking a CPU feature). */
  cpu?: string;
}

/** Boot `image` as a USB stick of a stand-in machine; the guest's writes reach the image. */
async function bootStick(m: QemuMachine, s: StandIn, image: string, outDir: string) {
  const arches = await loadArches(ROOT);
  const spec = arches.get(s.arch)!;
  const v = findVariant(m, s.variant);
  const stick = (v.iso_args ?? m.iso_args).map((a) => a.replace('readonly=on,', ''));
  expect(stick.join(' '), 'the stick must be attached writable').not.toMatch(/readonly=on|snapshot=on/);
  const machine: QemuMachine = {
    ...m,
    accelerators: m.accelerators.map((a) => (a.name === 'tcg' && s.cpu ? { ...a, cpu: s.cpu } : a)),
    variants: [
      {
        ...v,
        name: 'hw-stand-in',
        iso_args: stick,
        args: [...v.args, '-smbios', `type=1,manufacturer=${s.vendor},product=${s.product}`],
      },
    ],
  };
  const checks = await loadExpectedChecks(join(ROOT, 'buildroot-external/board/clawos/checks.yaml'), s.arch, spec.guest as unknown as Record<string, unknown>);
  // After the marker the guest writes its results and reboots (-no-reboot: QEMU exits); give it time.
  return bootIso({ machine, variant: 'hw-stand-in', iso: image, accel: 'tcg', outDir, expectedChecks: checks, settleMs: 120_000 });
}

describe('hardware results round trip, QEMU as the stand-in machine', () => {
  test.skipIf(why !== null)(`flash, boot from the stick, hw record, G-07 from the records${why ? ` (skipped: ${why})` : ''}`, { timeout: 1_800_000 }, async () => {
    const d = await tmp();
    const b = join(d, 'build');
    const env = { ...process.env, CLAWOS_KEY_DIR: join(d, 'keys') };
    expect((await runCli(['keys', 'init', '--role', 'tester', '--name', 'Ada Tester'], { env })).exitCode).toBe(0);
    // G-07 judges the ISOs of the build dir: the ones under test, linked in.
    const sha: Record<string, string> = {};
    for (const arch of ['x86_64', 'aarch64']) {
      await mkdir(join(b, 'build-engineer', arch), { recursive: true });
      await link(isoOf(arch), join(b, 'build-engineer', arch, `clawos-${arch}.iso`)).catch(() => copyFile(isoOf(arch), join(b, 'build-engineer', arch, `clawos-${arch}.iso`)));
      sha[arch] = await sha256File(isoOf(arch));
    }
    const machines: Record<string, QemuMachine> = {};
    for (const [arch, spec] of await loadArches(ROOT)) machines[arch] = await loadMachine(ROOT, spec.qemu);

    const round = async (s: StandIn, name: string) => {
      const img = join(d, `${name}.img`);
      const f = await runCli(['flash', isoOf(s.arch), img, '--allow-file', '--yes', '--sha256', sha[s.arch]!, '--build-dir', b]);
      expect(f.exitCode, f.stderr.join('\n')).toBe(0);
      const boot = await bootStick(machines[s.arch]!, s, img, join(d, `${name}-boot`));
      const rec = await runCli(['hw', 'record', img, '--build-dir', b, '--json'], { env });
      return { boot, rec, doc: JSON.parse(rec.stdout) as { ok: boolean; recorded: boolean; reason?: string; message?: string; record?: { verdict: string; message: string; iso: { arch: string; sha256: string }; machine: Record<string, unknown>; source: { kind: string } } } };
    };

    // Both arches boot from the stick (UEFI), every check passes, the record says so.
    for (const s of [
      { arch: 'x86_64', variant: 'usb-uefi', vendor: 'ClawLab', product: 'Standin-X1' },
      { arch: 'aarch64', variant: 'usb-uefi', vendor: 'ClawLab', product: 'Standin-A1' },
    ]) {
      const r = await round(s, `${s.arch}-pass`);
      expect(r.boot.verdict, `${r.boot.message}\n${r.boot.command}`).toBe('PASS');
      expect(r.rec.exitCode, `${r.rec.stdout}\n${r.rec.stderr.join('\n')}`).toBe(0);
      expect(r.doc.record).toMatchObject({ verdict: 'PASS', iso: { arch: s.arch, sha256: sha[s.arch] }, source: { kind: 'image' } });
      expect(r.doc.record!.message).toMatch(/^CLAWOS-BOOT-OK, all \d+ expected checks passed$/);
      expect(r.doc.record!.machine).toMatchObject({ vendor: s.vendor, product: s.product, boot_path: 'UEFI', secure_boot: 'off' });
    }
    const both = JSON.parse((await runCli(['hw', 'list', '--build-dir', b, '--json'], { env })).stdout) as { g07: { status: string; message: string }; machines: { arch: string; vendor: string; product: string; verdict: string }[] };
    expect(both.g07.status, both.g07.message).toBe('PASS');
    expect(both.machines.map((m) => `${m.arch} ${m.vendor} ${m.product} ${m.verdict}`).sort()).toEqual(['aarch64 ClawLab Standin-A1 PASS', 'x86_64 ClawLab Standin-X1 PASS']);

    // Another ISO (another sha256): these records are not evidence for it.
    const other = 'f'.repeat(64);
    const forOther = JSON.parse((await runCli(['hw', 'list', '--sha256', other, '--build-dir', b, '--json'], { env })).stdout) as { g07: { status: string; message: string } };
    expect(forOther.g07.status, forOther.g07.message).toBe('NOT_CONFIGURED');

    // A machine without SMAP, booted through BIOS: the cpu-flags check fails on it.
    const bad = await round({ arch: 'x86_64', variant: 'usb-bios', vendor: 'ClawLab', product: 'NoSMAP-B1', cpu: 'max,-smap' }, 'x86_64-nosmap');
    expect(bad.boot.failed_checks, bad.boot.message).toEqual(['cpu-flags']);
    expect(bad.rec.exitCode).toBe(1);
    expect(bad.doc.record).toMatchObject({ verdict: 'FAIL', machine: { vendor: 'ClawLab', product: 'NoSMAP-B1', boot_path: 'BIOS' } });
    expect(bad.doc.record!.message).toMatch(/cpu-flags/);
    const after = JSON.parse((await runCli(['hw', 'list', '--build-dir', b, '--json'], { env })).stdout) as { g07: { status: string; message: string } };
    expect(after.g07.status).toBe('FAIL');
    expect(after.g07.message).toMatch(/ClawLab NoSMAP-B1/);
    expect(after.g07.message).toMatch(/cpu-flags/);
  });
});
