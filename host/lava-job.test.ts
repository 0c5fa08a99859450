/**
 * LAVA jobs and device descriptions rendered from the real qemu/<arch>.yaml
 * machine data: one job per variant, the ISO and firmware as images, options
 * and timeouts from the data. (That lava-run accepts and runs them is proven by
 * test/lava-run.test.ts and the recordings in test/fixtures/lava.)
 */
import { describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { findAccelerator, loadMachine, type QemuMachine } from '../qemu/machine.js';
import { MONITORS, renderLavaDevice, renderLavaJob, splitVariantArgs } from './lava-job.js';
import { bootSpan } from './lava-lab.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = repoRootDir();
const ISO = { url: 'https://lab.example/clawos-x86_64.iso', sha256: 'a'.repeat(64), vouched_by: 'signed bundle b: run r, release 0.1.0, as artifacts/x.iso' };

async function job(arch: string, variant: string) {
  const m = await loadMachine(ROOT, `qemu/${arch}.yaml`);
  const v = m.variants.find((x) => x.name === variant)!;
  const firmware = Object.fromEntries(v.firmware.map((f) => [f.name, { url: `file://${f.path}`, sha256: 'f'.repeat(64) }]));
  return { m, job: renderLavaJob({ machine: m, variant: v, debianArch: arch === 'x86_64' ? 'amd64' : 'arm64', accel: findAccelerator(m, 'tcg'), iso: ISO, firmware, expectedChecks: ['kernel', 'lsm'], generator: 'clawos-build 0.1.0' }) };
}

describe('renderLavaJob', () => {
  test('x86_64 SeaBIOS: the ISO by URL with its sha256, the machine in the context, timeouts from qemu/x86_64.yaml (TCG 240 s)', async () => {
    const { job: j } = await job('x86_64', 'seabios');
    expect(j.device_type).toBe('qemu');
    expect(j.timeouts).toEqual({ job: { seconds: 780 }, action: { seconds: 240 }, connection: { seconds: 240 } });
    expect(j.context).toEqual({
      arch: 'amd64',
      machine: 'q35',
      cpu: 'max',
      memory: 512,
      no_kvm: true,
      extra_options: ['-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-monitor', 'none', '-no-reboot'],
    });
    const actions = j.actions as Record<string, Record<string, unknown>>[];
    expect(actions[0]!.deploy).toEqual({ to: 'tmpfs', timeout: { seconds: 300 }, images: { iso: { url: ISO.url, sha256sum: ISO.sha256, image_arg: '-cdrom {iso}' } } });
    expect(actions[1]!.boot).toEqual({ method: 'qemu', media: 'tmpfs', timeout: { seconds: 240 } });
    expect((j.metadata as Record<string, string>)['clawos.iso_sha256']).toBe(ISO.sha256);
    expect((j.metadata as Record<string, string>)['clawos.iso_vouched_by']).toBe(ISO.vouched_by);
  });

  test('x86_64 OVMF: each firmware file is an image of its own, its pflash drive its image_arg (a per-job copy of the vars)', async () => {
    const { job: j } = await job('x86_64', 'ovmf');
    const images = ((j.actions as Record<string, { images?: Record<string, { image_arg: string }> }>[])[0]!.deploy!.images)!;
    expect(Object.keys(images)).toEqual(['iso', 'ovmf_code', 'vars_copy']);
    expect(images.ovmf_code!.image_arg).toBe('-drive if=pflash,format=raw,unit=0,readonly=on,file={ovmf_code}');
    expect(images.vars_copy!.image_arg).toBe('-drive if=pflash,format=raw,unit=1,file={vars_copy}');
  });

  test('aarch64 UEFI with a device tree: the variant machine, the -bios image, the virtio-scsi CD, TCG timeout 600 s', async () => {
    const { job: j } = await job('aarch64', 'uefi-dt');
    expect((j.context as Record<string, unknown>).machine).toBe('virt,acpi=off');
    expect((j.context as Record<string, unknown>).cpu).toBe('max,pauth-impdef=on');
    expect((j.timeouts as Record<string, unknown>).action).toEqual({ seconds: 600 });
    const images = ((j.actions as Record<string, { images?: Record<string, { image_arg: string }> }>[])[0]!.deploy!.images)!;
    expect(images.qemu_efi!.image_arg).toBe('-bios {qemu_efi}');
    expect(images.iso!.image_arg).toBe('-device virtio-scsi-pci,id=scsi0 -drive if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={iso} -device scsi-cd,drive=cd0,bus=scsi0.0');
  });

  test('USB variants: the ISO image_arg is the variant\'s own iso_args (an xHCI controller and a USB stick), not the machine\'s CD', async () => {
    for (const [arch, variant] of [['x86_64', 'usb-bios'], ['x86_64', 'usb-uefi'], ['aarch64', 'usb-uefi']] as const) {
      const { job: j } = await job(arch, variant);
      const images = ((j.actions as Record<string, { images?: Record<string, { image_arg: string }> }>[])[0]!.deploy!.images)!;
      expect(images.iso!.image_arg).toBe('-device qemu-xhci,id=xhci -drive if=none,id=stick,format=raw,readonly=on,file={iso} -device usb-storage,bus=xhci.0,drive=stick,removable=on');
    }
  });

  test('x86_64 Secure Boot: SMM in the context machine, the pflash secure flag an extra option, the snakeoil CODE and VARS images', async () => {
    const { job: j } = await job('x86_64', 'ovmf-secureboot');
    const ctx = j.context as { machine: string; extra_options: string[] };
    expect(ctx.machine).toBe('q35,smm=on');
    expect(ctx.extra_options.slice(-2)).toEqual(['-global', 'driver=cfi.pflash01,property=secure,value=on']);
    const images = ((j.actions as Record<string, { images?: Record<string, { url: string; image_arg: string }> }>[])[0]!.deploy!.images)!;
    expect(images.ovmf_code).toEqual({ url: 'file:///usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd', sha256sum: 'f'.repeat(64), image_arg: '-drive if=pflash,format=raw,unit=0,readonly=on,file={ovmf_code}' });
    expect(images.vars_copy!.image_arg).toBe('-drive if=pflash,format=raw,unit=1,file={vars_copy}');
  });

  test('the monitors turn check lines and the marker into cases; every pattern ends in \\s so a half-arrived line never matches', () => {
    const check = new RegExp(MONITORS[0].pattern.replace(/\(\?P</g, '(?<'));
    expect(check.exec('CLAWOS-CHECK name=module-sig result=pass value=x')?.groups).toEqual({ test_case_id: 'module-sig', result: 'pass' });
    expect(check.test('CLAWOS-CHECK name=module-sig result=pas')).toBe(false);
    expect(check.test('CLAWOS-CHECK name=module-sig result=pass')).toBe(false);
    for (const m of MONITORS) expect(m.pattern.endsWith('\\s')).toBe(true);
    const marker = new RegExp(MONITORS[1].pattern.replace(/\(\?P</g, '(?<'));
    expect(marker.exec('CLAWOS-BOOT-FAILED failed=lockdown')?.groups).toEqual({ test_case_id: 'CLAWOS-BOOT', result: 'FAILED' });
  });

  test('every variant of the machine data gets a job: a new variant needs no code', async () => {
    const m = await loadMachine(ROOT, 'qemu/x86_64.yaml');
    const extra: QemuMachine = { ...m, variants: [...m.variants, { name: 'usb-stick', description: 'test', firmware: [], args: ['-device', 'qemu-xhci'] }] };
    const v = extra.variants.at(-1)!;
    const j = renderLavaJob({ machine: extra, variant: v, debianArch: 'amd64', accel: findAccelerator(m, 'tcg'), iso: ISO, firmware: {}, expectedChecks: [], generator: 'g' });
    expect(j.job_name).toBe(`clawos x86_64 usb-stick iso ${'a'.repeat(12)}`);
    expect((j.context as { extra_options: string[] }).extra_options.slice(-2)).toEqual(['-device', 'qemu-xhci']);
  });

  test('an argument naming two firmware files cannot be one image_arg: refused, naming it', async () => {
    const m = await loadMachine(ROOT, 'qemu/x86_64.yaml');
    const v = { ...m.variants[1]!, args: ['-drive', 'file={ovmf_code},x={vars_copy}'] };
    expect(() => splitVariantArgs(m, v)).toThrow('qemu/x86_64.yaml: variant ovmf: "-drive file={ovmf_code},x={vars_copy}" names {ovmf_code} and {vars_copy}; a LAVA image_arg can carry one image');
  });
});

describe('renderLavaDevice', () => {
  test("the device lava-run gets: the machine's binary and options for the variant, without the ISO and firmware", async () => {
    const m = await loadMachine(ROOT, 'qemu/aarch64.yaml');
    const d = renderLavaDevice({ machine: m, variant: m.variants[0]!, debianArch: 'arm64', accel: findAccelerator(m, 'tcg') });
    expect(d.available_architectures).toEqual(['arm64']);
    expect((d.actions as { boot: { methods: { qemu: { parameters: unknown } } } }).boot.methods.qemu.parameters).toEqual({
      command: 'qemu-system-aarch64',
      options: ['-machine', 'virt', '-accel', 'tcg', '-cpu', 'max,pauth-impdef=on', '-m', '512M', '-smp', '1', '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-boot', 'menu=on,splash-time=0'],
    });
  });
});

describe('bootSpan', () => {
  test("the guest's time under LAVA: from QEMU's start (Boot command) to the monitor's end, in a real lava-run log", () => {
    const log = readFileSync(join(ROOT, 'test', 'fixtures', 'lava', 'x86_64-seabios-pass', 'lava-log.yaml'), 'utf8');
    expect(bootSpan(log)).toBe(58920);
    expect(bootSpan('{"dt": "2026-12-06T07:05:52.459651", "lvl": "info", "msg": "no boot"}\n')).toBe(null);
  });
});
