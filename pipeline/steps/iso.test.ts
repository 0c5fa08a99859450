import { beforeAll, describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import { run } from '../../lib/proc.js';
import { lockedDeb } from '../../test/helpers/locked-debs.js';
import { fakeStepContext, testArch } from '../../test/helpers/debs-fixtures.js';
import type { ArchSpec } from '../catalog/arch.js';
import type { SecureBootKey } from '../catalog/step.js';
import { importSecureBootKey, loadTestCerts } from '../boot/secureboot-key.js';
import { ukiBlocklists } from '../boot/uki.js';
import { faketimeStamp, frozenClock, biosGrubCfg, efiImageSectors, elToritoPlatforms, fatSerial, isoStep, kernelCmdline, xorrisoArgv, xorrisoDates } from './iso.js';

const repoRoot = resolve(__dirname, '../..');

const x86: ArchSpec = {
  ...testArch,
  name: 'x86_64',
  debian_arch: 'amd64',
  debs: [],
  iso: {
    uki: { stub: '{deb:systemd-boot-efi}/usr/lib/systemd/boot/efi/linuxx64.efi.stub', objcopy: 'objcopy', loader: 'BOOTX64.EFI' },
    bios_grub: {
      dir: '{deb:grub-pc-bin}/usr/lib/grub/i386-pc',
      modules: ['biosdisk', 'iso9660', 'search', 'search_fs_file', 'loopback', 'serial', 'terminal', 'linux', 'boot'],
      serial: 'serial --unit=0 --speed=115200',
    },
    host_packages: ['grub-common', 'xorriso', 'mtools', 'sbsigntool', 'faketime', 'binutils'],
    console: 'ttyS0,115200',
    cmdline: ['earlycon'],
    expect_boot: ['bios', 'uefi'],
  },
};

// Real packages at the locked versions (the mirror is reachable where the tests run), fetched once.
let debs: Record<string, string> = {};
let sbKey: SecureBootKey;
let fixtures: string;
beforeAll(async () => {
  fixtures = (await tmpDir({ unsafeCleanup: true })).path;
  for (const [name, arch] of [['systemd-boot-efi', 'amd64'], ['grub-pc-bin', 'amd64']] as const) debs[`${name}:${arch}`] = (await lockedDeb(name, arch)).deb;
  // Debian's public snakeoil test key, as bin/bootstrap imports it.
  sbKey = await importSecureBootKey(join(fixtures, 'keys'), { key: '/usr/share/ovmf/PkKek-1-snakeoil.key', cert: '/usr/share/ovmf/PkKek-1-snakeoil.pem', passphrase: 'snakeoil' }, await loadTestCerts(repoRoot));
}, 120_000);

async function setup(d: string) {
  const build = join(d, 'build');
  await mkdir(join(build, 'k'), { recursive: true });
  await writeFile(join(build, 'k', 'bzImage'), 'kernel');
  await writeFile(join(build, 'k', 'initramfs.cpio.gz'), 'initramfs');
  return build;
}

const ctxFor = (arch: ArchSpec, build: string, params: Record<string, unknown> = {}, key: SecureBootKey | undefined = sbKey) => ({
  ...fakeStepContext({
    arch,
    repoRoot,
    buildDir: build,
    outDir: join(build, 'iso'),
    params: { kernel: 'k/bzImage', initramfs: 'k/initramfs.cpio.gz', ...params },
    debs,
  }),
  ...(key ? { secureBootKey: key } : {}),
});

describe('iso pure parts', () => {
  it('embeds a GRUB config with no menu and no timeout, serial where the arch has it', () => {
    expect(biosGrubCfg(x86, { linux: { start: 4375, count: 9498 }, initrd: { start: 205, count: 4170 } })).toBe(
      [
        'serial --unit=0 --speed=115200',
        'terminal_input serial console',
        'terminal_output serial console',
        'search --no-floppy --file --set=root /efi.img',
        'loopback esp /efi.img',
        'linux (esp)4375+9498 console=ttyS0,115200 panic=-1 earlycon',
        'initrd (esp)205+4170',
        'boot',
        '',
      ].join('\n'),
    );
    expect(kernelCmdline(testArch)).toBe('console=ttyAMA0 panic=-1');
  });

  it('pins xorriso dates and the FAT serial to SOURCE_DATE_EPOCH', () => {
    expect(xorrisoDates(0)).toEqual(['-volume_date', 'all_file_dates', '=0', '-volume_date', 'uuid', '1970010100000000']);
    expect(fatSerial(1763683200)).toBe('691fab80');
    expect(faketimeStamp(1763683200)).toBe('2025-11-21 00:00:00');
  });

  // Real faketime: the signing time sbsign writes must not move however long the signing takes.
  it('stops the clock at SOURCE_DATE_EPOCH for the whole command, not only at its start', async () => {
    const r = await run([...frozenClock(1763683200), 'sh', '-c', 'date -u +%s; sleep 1.3; date -u +%s'], { captureStdout: true });
    expect(r.ok).toBe(true);
    expect(r.stdout.trim().split('\n')).toEqual(['1763683200', '1763683200']);
  });

  it('sizes the EFI image to the UKI plus 256 KiB, in whole 256 KiB', () => {
    expect(efiImageSectors(1)).toBe(2 * 512);
    expect(efiImageSectors(3 * (1 << 20))).toBe(13 * 512);
    expect(efiImageSectors(7455400)).toBe(15360);
  });

  it('lays the hybrid image out as grub-mkrescue does, the BIOS part only when asked', () => {
    expect(xorrisoArgv({ out: 'o.iso', tree: 't', volid: 'V', efiImage: 'efi.img', epoch: 0 })).toEqual([
      'xorriso', '-as', 'mkisofs', '-o', 'o.iso', '-r', '-V', 'V',
      '--efi-boot', 'efi.img', '-efi-boot-part', '--efi-boot-image', '--protective-msdos-label', 't', '--', ...xorrisoDates(0),
    ]);
    expect(xorrisoArgv({ out: 'o.iso', tree: 't', volid: 'V', efiImage: 'efi.img', epoch: 0, biosImage: 'b.img', hybridMbr: 'm.img' }).slice(8, 17)).toEqual([
      '-b', 'b.img', '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table', '--grub2-boot-info', '--grub2-mbr', 'm.img',
    ]);
  });

  it('reads El Torito platforms from xorriso', () => {
    const rep = [
      'El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA',
      'El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4        2973',
      'El Torito boot img :   2  UEFI  y   none  0x0000  0x00   5760          72',
    ].join('\n');
    expect(elToritoPlatforms(rep)).toEqual(['bios', 'uefi']);
  });
});

describe('isoStep (real objcopy, sbsign, sbverify, grub-mkimage, mtools, xorriso)', () => {
  it('makes a hybrid BIOS + UEFI ISO whose EFI loader is the signed UKI', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      const ctx = ctxFor(x86, build);
      const o = await isoStep.run(ctx);
      expect(o.status).toBe('PASS');
      expect(o.message).toMatch(/^iso: clawos-x86_64\.iso \(\d+\.\d MB\) boots via bios \+ uefi; UKI signed for Secure Boot by C=US, ST=Colorado, L=Fort Collins, O=SnakeOil \(public TEST key\)$/);
      const iso = join(build, 'iso', 'clawos-x86_64.iso');
      const uki = join(build, 'iso', 'clawos-x86_64.efi');
      expect(o.evidence?.slice(0, 2)).toEqual([
        { label: 'iso', path: 'iso/clawos-x86_64.iso', sha256: await sha256File(iso) },
        { label: 'signed UKI', path: 'iso/clawos-x86_64.efi', sha256: await sha256File(uki) },
      ]);
      // The signed UKI verifies against the key dir's certificate, and it is the ISO's EFI loader.
      expect((await run(['sbverify', '--cert', sbKey.certPath, uki])).ok).toBe(true);
      const x = await run(['xorriso', '-osirrox', 'on', '-indev', iso, '-extract', '/efi.img', join(d, 'efi.img')]);
      expect(x.ok).toBe(true);
      const m = await run(['mcopy', '-n', '-i', join(d, 'efi.img'), '::/EFI/BOOT/BOOTX64.EFI', join(d, 'loader.efi')], { env: { MTOOLS_SKIP_CHECK: '1' } });
      expect(m.ok).toBe(true);
      expect(await sha256File(join(d, 'loader.efi'))).toBe(await sha256File(uki));
      // GRUB's blocklists name the kernel and initramfs inside the signed UKI in the EFI image: those sectors
      // hold exactly the inputs, then zeros; the ISO carries no other copy of them.
      const img = await readFile(join(d, 'efi.img'));
      const blocks = ukiBlocklists(img, await readFile(uki));
      if (typeof blocks === 'string') throw new Error(blocks);
      for (const [b, file] of [[blocks.linux, 'k/bzImage'], [blocks.initrd, 'k/initramfs.cpio.gz']] as const) {
        const want = await readFile(join(build, file));
        const got = img.subarray(b.start * 512, (b.start + b.count) * 512);
        expect([got.subarray(0, want.length).equals(want), got.subarray(want.length).every((x) => x === 0), b.count]).toEqual([true, true, Math.ceil(want.length / 512)]);
      }
      expect(await readFile(join(build, 'iso', 'clawos-x86_64.iso.grub.cfg'), 'utf8')).toBe(biosGrubCfg(x86, blocks));
      const files = await run(['xorriso', '-indev', iso, '-find', '/', '-type', 'f'], { captureStdout: true });
      expect(files.stdout.trim().split('\n').sort()).toEqual(["'/boot/grub/bios.img'", "'/efi.img'"]);
      // Only the outputs: no scratch dir, no unsigned UKI, no key copy.
      expect((await readdir(join(build, 'iso'))).sort()).toEqual(['clawos-x86_64.efi', 'clawos-x86_64.iso', 'clawos-x86_64.iso.grub.cfg', 'clawos-x86_64.secureboot.der']);
      // The certificate as DER, as mokutil --import takes it.
      const der = await run(['openssl', 'x509', '-inform', 'DER', '-in', join(build, 'iso', 'clawos-x86_64.secureboot.der'), '-noout', '-fingerprint', '-sha256'], { captureStdout: true });
      expect(der.stdout.replace(/:/g, '').toLowerCase()).toContain(sbKey.certSha256);
    } finally {
      await cleanup();
    }
  }, 120_000);

  it('gives the same ISO and UKI bytes in two folders at two times', async () => {
    const a = await tmpDir({ unsafeCleanup: true });
    const b = await tmpDir({ unsafeCleanup: true });
    try {
      const ba = await setup(a.path);
      const oa = await isoStep.run(ctxFor(x86, ba));
      // More than FAT's 2 s timestamp resolution apart: a time of day in the EFI image would show.
      await new Promise((r) => setTimeout(r, 2100));
      const bb = await setup(join(b.path, 'elsewhere'));
      const ob = await isoStep.run(ctxFor(x86, bb));
      expect([oa.status, ob.status]).toEqual(['PASS', 'PASS']);
      for (const f of ['clawos-x86_64.iso', 'clawos-x86_64.efi']) expect(await sha256File(join(bb, 'iso', f))).toBe(await sha256File(join(ba, 'iso', f)));
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  }, 120_000);

  it('fails validation when a platform the spec expects is not in the image', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      const { bios_grub: _b, ...efiOnlyIso } = x86.iso;
      expect(await isoStep.run(ctxFor({ ...x86, iso: efiOnlyIso }, build, { name: 'x.iso' }))).toEqual({
        status: 'FAIL',
        reason: 'validation-failed',
        message: 'iso: x.iso has El Torito boot images for [uefi] but the arch spec expects [bios, uefi]',
      });
    } finally {
      await cleanup();
    }
  }, 120_000);

  it('is an infrastructure error naming the fix when the key dir has no Secure Boot key', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const build = await setup(d);
      const ctx = ctxFor(x86, build);
      delete (ctx as { secureBootKey?: unknown }).secureBootKey;
      expect(await isoStep.run(ctx)).toEqual({
        status: 'INFRA_ERROR',
        reason: 'infra',
        message: "iso: no Secure Boot key in the key dir: the UKI must be signed; fix: clawos-build keys init --role secureboot (or bin/bootstrap build, which imports Debian's public snakeoil TEST key)",
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
