/**
 * `uses: iso` — a bootable ClawOS ISO: kernel + initramfs + a serial-console
 * grub.cfg, made by grub-mkrescue with the arch's GRUB platform(s), then checked
 * with xorriso for the El Torito boot entries the arch spec expects
 * (iso.expect_boot: bios / uefi).
 *
 * Output in ctx.outDir: <name> (default clawos-<arch>.iso).
 */
import { copyFile, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { expandArchPath, type ArchSpec } from '../catalog/arch.js';
import { debsReferenced, fetchDebs } from '../inputs/debs.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError, stringParam } from '../catalog/step-params.js';

const str = (params: Record<string, unknown>, key: string, dflt?: string): string => stringParam(params, key, 'iso', dflt);

/** The GRUB menu: serial console where the arch sets one, no timeout, one entry. */
export function grubCfg(arch: ArchSpec): string {
  const lines = ['set timeout=0', 'set default=0'];
  if (arch.iso.grub_serial) {
    lines.push(arch.iso.grub_serial, 'terminal_input serial console', 'terminal_output serial console');
  }
  const cmdline = [`console=${arch.iso.console}`, 'panic=-1', ...(arch.iso.cmdline ?? [])].join(' ');
  lines.push(
    "menuentry 'ClawOS' {",
    `  linux /boot/vmlinuz ${cmdline}`,
    '  initrd /boot/initramfs.cpio.gz',
    '}',
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
 * Native xorriso commands (grub-mkrescue passes what follows `--` on) that pin
 * every file date and the volume UUID to SOURCE_DATE_EPOCH: grub-mkrescue
 * copies GRUB's modules into a fresh temp dir, so their mtimes are "now".
 * The 4-byte FAT serial mformat gives the EFI image is random: mformatShim pins it.
 */
export function xorrisoDates(epoch: number): string[] {
  const uuid = new Date(epoch * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14) + '00';
  return ['-volume_date', 'all_file_dates', `=${epoch}`, '-volume_date', 'uuid', uuid];
}

/**
 * grub-mkrescue runs `mformat` from PATH for the EFI system image and gives no
 * serial, so mformat draws a random one and no two ISOs are alike. This shim,
 * first on PATH, adds `-N` with a serial from SOURCE_DATE_EPOCH and runs the
 * real mformat (the rest of PATH). mcopy already dates files by SOURCE_DATE_EPOCH.
 */
export function mformatShim(epoch: number): string {
  const serial = (epoch >>> 0).toString(16).padStart(8, '0');
  return `#!/bin/sh
# clawos-build: a fixed FAT volume serial, so the ISO's EFI image is the same in every build.
PATH=\${PATH#*:}
exec mformat -N ${serial} "$@"
`;
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

  const templates = [...arch.iso.grub_mkrescue_args, ...arch.iso.grub_platform_dirs];
  const pkgs = debsReferenced(templates);
  if (pkgs.length) ctx.progress(`fetching ${pkgs.map((p) => `${p}:${arch.debian_arch}`).join(', ')}`);
  const debs = await fetchDebs(ctx, arch, pkgs);

  for (const t of arch.iso.grub_platform_dirs) {
    const dir = expandArchPath(t, ctx.cacheDir, arch);
    if (await isDir(dir)) continue;
    const fromDeb = debsReferenced([t])[0];
    const pkg = fromDeb ?? arch.iso.platform_packages?.[t];
    return infra(
      fromDeb
        ? `iso: GRUB platform dir ${dir} is missing from the unpacked ${fromDeb}:${arch.debian_arch}; fix: delete ${join(ctx.cacheDir, 'debs', arch.debian_arch, fromDeb)} and run again`
        : `iso: GRUB platform dir ${dir} is missing; fix: apt-get install ${pkg ?? '<the package that provides it>'}`,
    );
  }

  ctx.progress('grub-mkrescue');
  await mkdir(ctx.outDir, { recursive: true });
  const work = await mkdtemp(join(ctx.outDir, '.iso-'));
  try {
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'boot', 'grub'), { recursive: true });
    await copyFile(kernel, join(tree, 'boot', 'vmlinuz'));
    await copyFile(initrd, join(tree, 'boot', 'initramfs.cpio.gz'));
    const cfg = grubCfg(arch);
    await writeFileAtomic(join(tree, 'boot', 'grub', 'grub.cfg'), cfg);
    await writeFileAtomic(join(ctx.outDir, `${name}.grub.cfg`), cfg);

    const tmpIso = join(work, name);
    const shims = join(work, 'bin');
    await mkdir(shims);
    await writeFile(join(shims, 'mformat'), mformatShim(ctx.sourceDateEpoch), { mode: 0o755 });
    const args = arch.iso.grub_mkrescue_args.map((a) => expandArchPath(a, ctx.cacheDir, arch));
    const r = await ctx.run(['grub-mkrescue', '-o', tmpIso, ...args, tree, '--', ...xorrisoDates(ctx.sourceDateEpoch)], {
      env: { SOURCE_DATE_EPOCH: String(ctx.sourceDateEpoch), PATH: `${shims}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      timeoutMs: 10 * 60_000,
      signal: ctx.signal,
    });
    if (!r.ok) {
      const why = r.spawnError ?? r.tail.slice(-3).join(' / ');
      const msg = `iso: grub-mkrescue failed: ${why}`;
      return r.spawnError ? infra(`${msg}; fix: apt-get install ${arch.iso.host_packages.join(' ')}`) : fail('exit-non-zero', msg);
    }

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
    await rename(tmpIso, isoPath);
    const sha = await sha256File(isoPath);
    return pass(`iso: ${name} boots via ${platforms.join(' + ')}`, {
      evidence: [
        { label: 'iso', path: rel(isoPath), sha256: sha },
        { label: 'grub.cfg', path: rel(join(ctx.outDir, `${name}.grub.cfg`)), sha256: sha256Hex(cfg) },
      ],
      data: {
        iso: rel(isoPath),
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
  version: 2,
  params: paramsSchema({ kernel: P.path, initramfs: P.path, name: P.path }, ['kernel', 'initramfs']),
  // GRUB's platform files come from .debs unpacked into the shared cache.
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
