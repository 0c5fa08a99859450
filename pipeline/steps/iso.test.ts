import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import { fakeStepContext, testArch } from '../../test/helpers/debs-fixtures.js';
import type { ArchSpec } from '../catalog/arch.js';
import { elToritoPlatforms, grubCfg, isoStep, mformatShim, xorrisoDates } from './iso.js';

const x86: ArchSpec = {
  ...testArch,
  name: 'x86_64',
  debian_arch: 'amd64',
  debs: [],
  iso: {
    grub_mkrescue_args: [],
    grub_platform_dirs: ['/usr/lib/grub/i386-pc', '/usr/lib/grub/x86_64-efi'],
    host_packages: ['grub-pc-bin', 'grub-efi-amd64-bin', 'grub-common', 'xorriso', 'mtools'],
    console: 'ttyS0,115200',
    grub_serial: 'serial --unit=0 --speed=115200',
    cmdline: ['earlycon'],
    expect_boot: ['bios', 'uefi'],
    platform_packages: { '/usr/lib/grub/i386-pc': 'grub-pc-bin', '/nonexistent/grub/x': 'grub-x-bin' },
  },
};

async function setup(d: string) {
  const build = join(d, 'build');
  await mkdir(join(build, 'k'), { recursive: true });
  await writeFile(join(build, 'k', 'bzImage'), 'kernel');
  await writeFile(join(build, 'k', 'initramfs.cpio.gz'), 'initramfs');
  return build;
}

const ctxFor = (arch: ArchSpec, build: string, params: Record<string, unknown> = {}) =>
  fakeStepContext({
    arch,
    repoRoot: build,
    buildDir: build,
    outDir: join(build, 'iso'),
    params: { kernel: 'k/bzImage', initramfs: 'k/initramfs.cpio.gz', ...params },
    debs: {},
  });

describe('grubCfg', () => {
  it('sets up the serial console only where the arch has one', () => {
    expect(grubCfg(x86)).toBe(
      [
        'set timeout=0',
        'set default=0',
        'serial --unit=0 --speed=115200',
        'terminal_input serial console',
        'terminal_output serial console',
        "menuentry 'ClawOS' {",
        '  linux /boot/vmlinuz console=ttyS0,115200 panic=-1 earlycon',
        '  initrd /boot/initramfs.cpio.gz',
        '}',
        '',
      ].join('\n'),
    );
    expect(grubCfg(testArch)).toBe(
      "set timeout=0\nset default=0\nmenuentry 'ClawOS' {\n  linux /boot/vmlinuz console=ttyAMA0 panic=-1\n  initrd /boot/initramfs.cpio.gz\n}\n",
    );
  });

  it('pins xorriso dates to SOURCE_DATE_EPOCH', () => {
    expect(xorrisoDates(0)).toEqual(['-volume_date', 'all_file_dates', '=0', '-volume_date', 'uuid', '1970010100000000']);
  });

  it('reads El Torito platforms from xorriso', () => {
    const rep = [
      'El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA',
      'El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4        2973',
      'El Torito boot img :   2  UEFI  y   none  0x0000  0x00   5760          72',
      'El Torito img path :   1  /boot/grub/i386-pc/eltorito.img',
    ].join('\n');
    expect(elToritoPlatforms(rep)).toEqual(['bios', 'uefi']);
  });
});

describe('isoStep', () => {
  it('makes a hybrid BIOS + UEFI ISO with grub-mkrescue and checks it', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      const ctx = ctxFor(x86, build);
      const o = await isoStep.run(ctx);
      expect(o.message).toBe('iso: clawos-x86_64.iso boots via bios + uefi');
      expect(o.status).toBe('PASS');
      const iso = join(build, 'iso', 'clawos-x86_64.iso');
      expect(o.evidence?.[0]).toEqual({ label: 'iso', path: 'iso/clawos-x86_64.iso', sha256: await sha256File(iso) });
      expect(o.data).toEqual({ iso: 'iso/clawos-x86_64.iso', bootPlatforms: ['bios', 'uefi'], debs: [] });
      expect(await readFile(join(build, 'iso', 'clawos-x86_64.iso.grub.cfg'), 'utf8')).toBe(grubCfg(x86));
      const gm = ctx.calls.find((c) => c[0] === 'grub-mkrescue')!;
      expect(gm.slice(3)).toEqual([
        expect.stringMatching(/\/iso\/\.iso-\w+\/tree$/),
        '--',
        ...['-volume_date', 'all_file_dates', '=1700000000', '-volume_date', 'uuid', '2023111422132000'],
      ]);
      // No temp dirs left behind.
      expect((await readdir(join(build, 'iso'))).sort()).toEqual(['clawos-x86_64.iso', 'clawos-x86_64.iso.grub.cfg']);
      expect(isoStep.toolPackages(x86, {})).toEqual(x86.iso.host_packages);
    } finally {
      await cleanup();
    }
  });

  it('gives the same ISO bytes in two folders at two times (the EFI image serial pinned by the mformat shim)', async () => {
    const a = await tmpDir({ unsafeCleanup: true });
    const b = await tmpDir({ unsafeCleanup: true });
    try {
      const ba = await setup(a.path);
      const oa = await isoStep.run(ctxFor(x86, ba));
      await new Promise((r) => setTimeout(r, 1100));
      const bb = await setup(join(b.path, 'elsewhere'));
      const ob = await isoStep.run(ctxFor(x86, bb));
      expect([oa.status, ob.status]).toEqual(['PASS', 'PASS']);
      expect(await sha256File(join(bb, 'iso', 'clawos-x86_64.iso'))).toBe(await sha256File(join(ba, 'iso', 'clawos-x86_64.iso')));
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });

  it('the mformat shim pins the serial and hands the rest to the real mformat', () => {
    expect(mformatShim(1763683200)).toBe('#!/bin/sh\n# clawos-build: a fixed FAT volume serial, so the ISO\'s EFI image is the same in every build.\nPATH=${PATH#*:}\nexec mformat -N 691fab80 "$@"\n');
  });

  it('fails validation when a platform the spec expects is not in the image', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      const efiOnly = { ...x86, iso: { ...x86.iso, grub_mkrescue_args: ['-d', '/usr/lib/grub/x86_64-efi'] } };
      expect(await isoStep.run(ctxFor(efiOnly, build, { name: 'x.iso' }))).toEqual({
        status: 'FAIL',
        reason: 'validation-failed',
        message: 'iso: x.iso has El Torito boot images for [uefi] but the arch spec expects [bios, uefi]',
      });
    } finally {
      await cleanup();
    }
  });

  it('names the Debian package when a GRUB platform dir is missing', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      const arch = { ...x86, iso: { ...x86.iso, grub_platform_dirs: ['/usr/lib/grub/i386-pc', '/nonexistent/grub/x'] } };
      expect(await isoStep.run(ctxFor(arch, build))).toEqual({
        status: 'INFRA_ERROR',
        reason: 'infra',
        message: 'iso: GRUB platform dir /nonexistent/grub/x is missing; fix: apt-get install grub-x-bin',
      });
    } finally {
      await cleanup();
    }
  });

  it('fails with output-missing when the kernel is not there', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      expect(await isoStep.run(ctxFor(x86, build, { kernel: 'k/nope' }))).toEqual({
        status: 'FAIL',
        reason: 'output-missing',
        message: 'iso: kernel k/nope does not exist',
      });
    } finally {
      await cleanup();
    }
  });
});
