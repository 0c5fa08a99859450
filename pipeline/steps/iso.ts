/**
 * `uses: iso` (G-05) — a small bootable hybrid ClawOS ISO:
 *  - UEFI: a Unified Kernel Image (pipeline/boot/uki.ts: systemd-boot-efi stub +
 *    kernel + initramfs + command line), signed with the key dir's Secure Boot key
 *    (sbsign) and checked against its certificate (sbverify), as the removable-media
 *    default loader EFI/BOOT/<loader> in the El Torito EFI FAT image, which is
 *    also a GPT partition so the ISO written raw to a USB stick boots under UEFI;
 *  - legacy BIOS (where the arch has bios_grub): a GRUB i386-pc El Torito core
 *    image with only the modules that path needs and its config embedded (no
 *    menu, no timeout), plus GRUB's hybrid MBR for the USB stick.
 * Made with xorriso directly (no grub-mkrescue: it copies every GRUB module of
 * every platform, most of the old 25 MB), then checked with xorriso for the El
 * Torito boot entries the arch spec expects (iso.expect_boot: bios / uefi).
 *
 * Outputs in ctx.outDir: <name> (default clawos-<arch>.iso), <name minus .iso>.efi (the
 * signed UKI) and <name minus .iso>.secureboot.der (the certificate it is signed for, DER).
 * The unsigned UKI never leaves the step's scratch dir.
 */
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { expandArchPath, type ArchSpec } from '../catalog/arch.js';
import { debsReferenced, fetchDebs } from '../inputs/debs.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError, stringParam } from '../catalog/step-params.js';
import { assembleUki, osRelease, ukiBlocklists, type Blocklist } from '../boot/uki.js';
import { certDer, MAKE_SECUREBOOT_KEY, testKeyWarning } from '../boot/secureboot-key.js';
import { loadRelease } from '../../lib/data.js';

const str = (params: Record<string, unknown>, key: string, dflt?: string): string => stringParam(params, key, 'iso', dflt);

/** The EFI system image's name in the ISO's root (El Torito EFI entry, GPT partition, GRUB's loop device). */
export const EFI_IMAGE = 'efi.img';

/** The kernel command line, the same for the UKI and the BIOS path. */
export function kernelCmdline(arch: ArchSpec): string {
  return [`console=${arch.iso.console}`, 'panic=-1', ...(arch.iso.cmdline ?? [])].join(' ');
}

/**
 * GRUB i386-pc's embedded config: run by GRUB's kernel before any menu code, so
 * the core image needs no normal.mod and there is nothing to wait for. The
 * search finds the ISO whether it is a CD (El Torito) or a USB disk (hybrid MBR);
 * the kernel and initramfs are read as sector runs (blocklists) out of the signed
 * UKI inside the EFI image, mounted as a loop device, so the ISO holds them once.
 */
export function biosGrubCfg(arch: ArchSpec, blocks: { linux: Blocklist; initrd: Blocklist }): string {
  const g = arch.iso.bios_grub;
  const lines: string[] = [];
  if (g?.serial) lines.push(g.serial, 'terminal_input serial console', 'terminal_output serial console');
  const bl = (b: Blocklist) => `(esp)${b.start}+${b.count}`;
  lines.push(
    `search --no-floppy --file --set=root /${EFI_IMAGE}`,
    `loopback esp /${EFI_IMAGE}`,
    `linux ${bl(blocks.linux)} ${kernelCmdline(arch)}`,
    `initrd ${bl(blocks.initrd)}`,
    'boot',
  );
  return lines.join('\n') + '\n';
}

/** Platforms (lower case: bios, uefi …) of the El Torito boot images in `xorriso -report_el_torito plain` output. */
export function elToritoPlatforms(report: string): string[] {
  const out: string[] = [];
  for (const m of report.matchAll(/^El Torito boot img\s*:\s*\d+\s+(\S+)/gm)) out.push(m[1]!.toLowerCase());
  return out;
}

/**
 * Native xorriso commands (after `--`) that pin every file date and the volume
 * UUID to SOURCE_DATE_EPOCH, so the same inputs give the same ISO.
 */
export function xorrisoDates(epoch: number): string[] {
  const uuid = new Date(epoch * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14) + '00';
  return ['-volume_date', 'all_file_dates', `=${epoch}`, '-volume_date', 'uuid', uuid];
}

/** libfaketime's absolute time ("YYYY-MM-DD hh:mm:ss", UTC) for SOURCE_DATE_EPOCH. */
export function faketimeStamp(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

/**
 * The argv prefix that runs a command with its clock stopped at SOURCE_DATE_EPOCH.
 * `-f` matters: without it the faketime wrapper only starts the clock there and
 * lets it run, so a signing that takes past the next second (a busy machine, a big
 * UKI) stamps a later signing time and the same inputs sign to other bytes (CI's
 * reproduce found the x86_64 UKI differing that way).
 */
export function frozenClock(epoch: number): string[] {
  return ['faketime', '-f', faketimeStamp(epoch)];
}

/** The 4-byte FAT volume serial of the EFI image: from SOURCE_DATE_EPOCH, not random (mformat's default). */
export function fatSerial(epoch: number): string {
  return (epoch >>> 0).toString(16).padStart(8, '0');
}

/**
 * Sectors (512 B) of the EFI FAT image: the UKI plus 256 KiB for the boot sector,
 * FAT tables and directories (a FAT12/16 of this size needs under 64 KiB), in
 * whole 256 KiB. The image is most of the ISO, so its slack is the ISO's.
 */
export function efiImageSectors(ukiBytes: number): number {
  const q = 256 * 1024;
  return (Math.ceil((ukiBytes + q) / q) * q) / 512;
}

/** xorriso (mkisofs emulation) arguments of the hybrid image, as grub-mkrescue lays it out. */
export function xorrisoArgv(o: { out: string; tree: string; volid: string; biosImage?: string; hybridMbr?: string; efiImage: string; epoch: number }): string[] {
  const argv = ['xorriso', '-as', 'mkisofs', '-o', o.out, '-r', '-V', o.volid];
  if (o.biosImage) {
    argv.push('-b', o.biosImage, '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table', '--grub2-boot-info');
    if (o.hybridMbr) argv.push('--grub2-mbr', o.hybridMbr);
  }
  argv.push('--efi-boot', o.efiImage, '-efi-boot-part', '--efi-boot-image', '--protective-msdos-label', o.tree, '--', ...xorrisoDates(o.epoch));
  return argv;
}

async function isDir(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function runIso(ctx: StepContext): Promise<Outcome> {
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'iso: this step builds for one arch; the task has none');
  const kernel = ctx.buildPath(str(ctx.params, 'kernel'));
  const initrd = ctx.buildPath(str(ctx.params, 'initramfs'));
  const name = str(ctx.params, 'name', `clawos-${arch.name}.iso`);
  if (name.includes('/')) return fail('spec-invalid', `iso: parameter 'name' must be a file name, not '${name}'`);
  const rel = (p: string) => relative(ctx.buildDir, p);
  for (const [what, p] of [
    ['kernel', kernel],
    ['initramfs', initrd],
  ] as const) {
    if (!(await stat(p).then((s) => s.isFile(), () => false))) return fail('output-missing', `iso: ${what} ${rel(p)} does not exist`);
  }
  const sb = ctx.secureBootKey;
  if (!sb) return infra(`iso: no Secure Boot key in the key dir: the UKI must be signed; fix: ${MAKE_SECUREBOOT_KEY} (or bin/bootstrap build, which imports Debian's public snakeoil TEST key)`);

  const bios = arch.iso.bios_grub;
  const templates = [arch.iso.uki.stub, ...(bios ? [bios.dir] : [])];
  const pkgs = debsReferenced(templates);
  if (pkgs.length) ctx.progress(`fetching ${pkgs.map((p) => `${p}:${arch.debian_arch}`).join(', ')}`);
  const debs = await fetchDebs(ctx, arch, pkgs);
  const stub = expandArchPath(arch.iso.uki.stub, ctx.cacheDir, arch);
  if (!(await stat(stub).then((s) => s.isFile(), () => false))) {
    return infra(`iso: the EFI stub ${stub} is missing; fix: check iso.uki.stub in specs/arch/${arch.name}.yaml against the package's files`);
  }
  const grubDir = bios ? expandArchPath(bios.dir, ctx.cacheDir, arch) : undefined;
  if (grubDir && !(await isDir(grubDir))) {
    return infra(`iso: GRUB platform dir ${grubDir} is missing; fix: check iso.bios_grub.dir in specs/arch/${arch.name}.yaml against the package's files`);
  }

  await mkdir(ctx.outDir, { recursive: true });
  const work = await mkdtemp(join(ctx.outDir, '.iso-'));
  const env = { SOURCE_DATE_EPOCH: String(ctx.sourceDateEpoch) };
  const toolFail = (what: string, r: { spawnError?: string; tail: string[] }): Outcome => {
    const msg = `iso: ${what} failed: ${r.spawnError ?? r.tail.slice(-3).join(' / ')}`;
    return r.spawnError ? infra(`${msg}; fix: apt-get install ${arch.iso.host_packages.join(' ')}`) : fail('exit-non-zero', msg);
  };
  try {
    // 1. The UKI, signed. The key is copied into the scratch dir (0600): tools run sandboxed and see only the task's files.
    ctx.progress('UKI');
    const cmdline = kernelCmdline(arch);
    await writeFile(join(work, 'cmdline'), cmdline);
    await writeFile(join(work, 'os-release'), osRelease({ version: (await loadRelease(ctx.repoRoot)).version, arch: arch.name }));
    const unsigned = join(work, 'uki.unsigned.efi');
    try {
      await assembleUki(ctx.run, {
        stub, kernel, initrd, cmdline: join(work, 'cmdline'), osrel: join(work, 'os-release'), out: unsigned,
        objcopy: arch.iso.uki.objcopy, epoch: ctx.sourceDateEpoch, env,
      });
    } catch (e) {
      return fail('exit-non-zero', `iso: ${(e as Error).message}`);
    }
    const keyCopy = join(work, 'sb.key');
    const certCopy = join(work, 'sb.crt');
    await copyFile(sb.keyPath, keyCopy);
    await copyFile(sb.certPath, certCopy);
    const ukiName = name.replace(/\.iso$/, '') + '.efi';
    const signed = join(work, ukiName);
    // OpenSSL stamps the signature with the signing time: frozen at SOURCE_DATE_EPOCH, the same inputs sign to the same bytes.
    const s = await ctx.run([...frozenClock(ctx.sourceDateEpoch), 'sbsign', '--key', keyCopy, '--cert', certCopy, '--output', signed, unsigned], { env: { ...env, TZ: 'UTC' } });
    await rm(keyCopy, { force: true });
    if (!s.ok) return toolFail('sbsign', s);
    const v = await ctx.run(['sbverify', '--cert', certCopy, signed], { env });
    if (!v.ok) return fail('validation-failed', `iso: sbverify --cert (the key dir's secureboot.crt) refuses the signed UKI: ${v.spawnError ?? v.tail.slice(-2).join(' / ')}`);
    const ukiBytes = (await stat(signed)).size;

    // 2. The EFI system image: FAT holding only EFI/BOOT/<loader>.
    ctx.progress('EFI image');
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'boot', 'grub'), { recursive: true });
    const efiImg = join(tree, EFI_IMAGE);
    const mt = async (argv: string[]) => ctx.run(argv, { env: { ...env, MTOOLS_SKIP_CHECK: '1' } });
    for (const argv of [
      ['mformat', '-i', efiImg, '-C', '-T', String(efiImageSectors(ukiBytes)), '-h', '64', '-s', '32', '-N', fatSerial(ctx.sourceDateEpoch), '::'],
      ['mmd', '-i', efiImg, '::/EFI', '::/EFI/BOOT'],
      ['mcopy', '-i', efiImg, signed, `::/EFI/BOOT/${arch.iso.uki.loader}`],
    ]) {
      const r = await mt(argv);
      if (!r.ok) return toolFail(argv[0]!, r);
    }

    // 3. Legacy BIOS: GRUB i386-pc, only its own modules, config embedded.
    let cfg = '';
    if (bios && grubDir) {
      ctx.progress('GRUB i386-pc');
      const blocks = ukiBlocklists(await readFile(efiImg), await readFile(signed));
      if (typeof blocks === 'string') return fail('validation-failed', `iso: GRUB cannot read the kernel out of the EFI image: ${blocks}`);
      cfg = biosGrubCfg(arch, blocks);
      await writeFile(join(work, 'embedded.cfg'), cfg);
      const r = await ctx.run(
        ['grub-mkimage', '-O', 'i386-pc-eltorito', '-d', grubDir, '-p', '/boot/grub', '-c', join(work, 'embedded.cfg'), '-o', join(tree, 'boot', 'grub', 'bios.img'), ...bios.modules],
        { env },
      );
      if (!r.ok) return toolFail('grub-mkimage', r);
      await writeFileAtomic(join(ctx.outDir, `${name}.grub.cfg`), cfg);
    }

    // 4. The hybrid ISO.
    ctx.progress('xorriso');
    const tmpIso = join(work, name);
    const x = await ctx.run(
      xorrisoArgv({
        out: tmpIso, tree, volid: `CLAWOS_${arch.name.toUpperCase()}`.slice(0, 32), efiImage: EFI_IMAGE, epoch: ctx.sourceDateEpoch,
        ...(bios && grubDir ? { biosImage: 'boot/grub/bios.img', hybridMbr: join(grubDir, 'boot_hybrid.img') } : {}),
      }),
      { env, timeoutMs: 10 * 60_000, signal: ctx.signal },
    );
    if (!x.ok) return toolFail('xorriso', x);

    const rep = await ctx.run(['xorriso', '-indev', tmpIso, '-report_el_torito', 'plain'], { captureStdout: true });
    if (!rep.ok) return fail('validation-failed', `iso: xorriso could not read the El Torito catalog of ${name}: ${rep.spawnError ?? rep.tail.slice(-2).join(' / ')}`);
    const platforms = elToritoPlatforms(rep.stdout);
    const want = arch.iso.expect_boot ?? [];
    const missing = want.filter((p) => !platforms.includes(p));
    if (missing.length || platforms.length === 0) {
      return fail(
        'validation-failed',
        `iso: ${name} has El Torito boot images for [${platforms.join(', ')}] but the arch spec expects [${want.join(', ')}]`,
      );
    }

    const isoPath = join(ctx.outDir, name);
    const ukiPath = join(ctx.outDir, ukiName);
    const derPath = join(ctx.outDir, name.replace(/\.iso$/, '') + '.secureboot.der');
    await rename(tmpIso, isoPath);
    await rename(signed, ukiPath);
    await writeFileAtomic(derPath, await certDer(sb));
    const sha = await sha256File(isoPath);
    const size = (await stat(isoPath)).size;
    const warn = testKeyWarning(sb);
    if (warn) ctx.log(`iso: ${warn}`);
    return pass(`iso: ${name} (${(size / 1e6).toFixed(1)} MB) boots via ${platforms.join(' + ')}; UKI signed for Secure Boot by ${sb.subject}${sb.testKey ? ' (public TEST key)' : ''}`, {
      evidence: [
        { label: 'iso', path: rel(isoPath), sha256: sha },
        { label: 'signed UKI', path: rel(ukiPath), sha256: await sha256File(ukiPath) },
        { label: 'secureboot cert (DER)', path: rel(derPath), sha256: await sha256File(derPath) },
        ...(cfg ? [{ label: 'grub.cfg', path: rel(join(ctx.outDir, `${name}.grub.cfg`)), sha256: sha256Hex(cfg) }] : []),
      ],
      data: {
        iso: rel(isoPath),
        isoBytes: size,
        uki: rel(ukiPath),
        ukiBytes,
        cmdline,
        secureBoot: { certSha256: sb.certSha256, subject: sb.subject, testKey: sb.testKey },
        bootPlatforms: platforms,
        debs: debs.map((d) => ({ package: d.package, version: d.version, sha256: d.sha256 })),
      },
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export const isoStep: Step = {
  name: 'iso',
  lockedInputs: true,
  version: 3,
  // Signs the UKI with the key dir's Secure Boot key; its certificate is part of the fingerprint.
  secureBootKey: true,
  params: paramsSchema({ kernel: P.path, initramfs: P.path, name: P.path }, ['kernel', 'initramfs']),
  // The EFI stub and GRUB's i386-pc files come from .debs unpacked into the shared cache.
  sandbox: { cache: true },
  toolPackages: (arch) => arch?.iso.host_packages ?? [],
  async run(ctx) {
    try {
      return await runIso(ctx);
    } catch (err) {
      if (err instanceof InfraError) return infra(err.message);
      if (err instanceof StepParamError) return fail('spec-invalid', err.message);
      throw err;
    }
  },
};
