import { describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withDir } from 'tmp-promise';
import { stringify } from 'yaml';
import { parse } from 'yaml';
import { expandArg, findRepoRoot, loadMachine, loadMachineSync, prepareBoot, secureBootNotConfigured, variantExpectations, type QemuMachine } from './machine.js';

const REPO = join(import.meta.dirname, '..');

describe('machine definitions', () => {
  test.each(['x86_64', 'aarch64'])('qemu/%s.yaml passes the schema and matches specs/arch', async (arch) => {
    const m = await loadMachine(REPO, `qemu/${arch}.yaml`);
    expect(m.arch).toBe(arch);
    const spec = parse(readFileSync(join(REPO, 'specs', 'arch', `${arch}.yaml`), 'utf8')) as { qemu: string };
    expect(spec.qemu).toBe(`qemu/${arch}.yaml`);
    expect(loadMachineSync(REPO, `qemu/${arch}.yaml`)).toEqual(m);
    // Every firmware file's package is a declared tool package (fingerprint input).
    for (const v of m.variants) for (const f of v.firmware) expect(m.packages).toContain(f.package);
  });

  test('variants are the ones the boots are named after', async () => {
    expect((await loadMachine(REPO, 'qemu/x86_64.yaml')).variants.map((v) => v.name)).toEqual(['seabios', 'ovmf', 'ovmf-secureboot', 'usb-bios', 'usb-uefi']);
    expect((await loadMachine(REPO, 'qemu/aarch64.yaml')).variants.map((v) => v.name)).toEqual(['uefi-acpi', 'uefi-dt', 'uefi-secureboot', 'usb-uefi']);
  });

  test('unknown keys and unknown placeholders are rejected', async () => {
    await withDir(
      async ({ path }) => {
        const good = parse(readFileSync(join(REPO, 'qemu', 'x86_64.yaml'), 'utf8')) as Record<string, unknown>;
        await mkdir(join(path, 'specs', 'schemas'), { recursive: true });
        await writeFile(join(path, 'specs', 'schemas', 'qemu-machine.schema.json'), readFileSync(join(REPO, 'specs', 'schemas', 'qemu-machine.schema.json')));
        await writeFile(join(path, 'extra.yaml'), stringify({ ...good, nic: 'e1000' }));
        await expect(loadMachine(path, 'extra.yaml')).rejects.toThrow('extra.yaml: not a valid QEMU machine definition: / must NOT have additional properties');
        const bad = structuredClone(good) as unknown as QemuMachine;
        bad.variants[0]!.args = ['-bios', '{nope}'];
        await writeFile(join(path, 'ph.yaml'), stringify(bad));
        await expect(loadMachine(path, 'ph.yaml')).rejects.toThrow('ph.yaml: variant seabios: unknown placeholder {nope} in "{nope}"');
      },
      { unsafeCleanup: true },
    );
  });

  test('aarch64 argv: virt + UEFI, ISO on virtio-scsi; uefi-dt turns ACPI off', async () => {
    const m = await loadMachine(REPO, 'qemu/aarch64.yaml');
    const tcg = m.accelerators.find((a) => a.name === 'tcg')!;
    const acpi = await prepareBoot({ machine: m, variant: m.variants[0]!, accel: tcg, media: { iso: '/b/x,y.iso' }, scratchDir: '/tmp' });
    expect(acpi.argv).toEqual([
      'qemu-system-aarch64',
      '-machine',
      'virt',
      '-accel',
      'tcg',
      '-cpu',
      'max,pauth-impdef=on',
      '-m',
      '512M',
      '-smp',
      '1',
      '-nodefaults',
      '-no-user-config',
      '-nographic',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-no-reboot',
      '-boot',
      'menu=on,splash-time=0',
      '-bios',
      '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd',
      '-device',
      'virtio-scsi-pci,id=scsi0',
      '-drive',
      // A comma in a file= value is doubled for QEMU's option parser.
      'if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=/b/x,,y.iso',
      '-device',
      'scsi-cd,drive=cd0,bus=scsi0.0',
    ]);
    const dt = await prepareBoot({ machine: m, variant: m.variants[1]!, accel: tcg, media: { iso: '/b/c.iso' }, scratchDir: '/tmp' });
    expect(dt.argv.slice(1, 3)).toEqual(['-machine', 'virt,acpi=off']);
  });

  test('placeholders outside option lists are verbatim', () => {
    expect(expandArg('{iso}', { iso: '/a,b.iso' })).toBe('/a,b.iso');
    expect(expandArg('console=ttyS0 {append}', { append: 'a,b' })).toBe('console=ttyS0 a,b');
    expect(() => expandArg('{x}', {})).toThrow('no value for {x}');
  });

  test('findRepoRoot finds this checkout', () => {
    expect(findRepoRoot()).toBe(REPO);
  });

  test('a Secure Boot variant is NOT_CONFIGURED unless the UKI is signed with the certificate its VARS enrol (one rule for G-06, boot, lava export)', async () => {
    const m = await loadMachine(REPO, 'qemu/x86_64.yaml');
    const sb = m.variants.find((v) => v.name === 'ovmf-secureboot')!;
    const enrolled = sb.secure_boot!.enrolled_cert_sha256;
    expect(secureBootNotConfigured(sb, enrolled)).toBe(null);
    expect(secureBootNotConfigured(sb, 'b'.repeat(64))).toBe(
      `ovmf-secureboot: NOT_CONFIGURED: its firmware variables enrol certificate sha256 ${enrolled.slice(0, 16)}…, but the UKI is signed with bbbbbbbbbbbbbbbb… (the key dir's secureboot.crt); give this variant VARS that enrol it (docs/boot-lab.md, virt-fw-vars)`,
    );
    expect(secureBootNotConfigured(sb, undefined)).toBe('ovmf-secureboot: NOT_CONFIGURED: no Secure Boot key in the key dir, so no signed UKI to boot');
    // Variants with Secure Boot off boot whatever the key dir holds.
    expect(secureBootNotConfigured(m.variants.find((v) => v.name === 'ovmf')!, undefined)).toBe(null);
  });

  test("a variant's expectations: the checks file's plus its expect_checks (once), and its expect_log", async () => {
    const m = await loadMachine(REPO, 'qemu/aarch64.yaml');
    const sb = m.variants.find((v) => v.name === 'uefi-secureboot')!;
    expect(variantExpectations(sb, ['kernel', 'lsm'])).toEqual({ checks: ['kernel', 'lsm', 'secureboot'], log: ['EFI stub: UEFI Secure Boot is enabled.'] });
    expect(variantExpectations(sb, ['kernel', 'secureboot'])).toEqual({ checks: ['kernel', 'secureboot'], log: ['EFI stub: UEFI Secure Boot is enabled.'] });
    expect(variantExpectations(m.variants.find((v) => v.name === 'uefi-dt')!, ['kernel'])).toEqual({ checks: ['kernel'], log: [] });
  });
});
