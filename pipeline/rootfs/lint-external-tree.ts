/**
 * Static checks of the BR2_EXTERNAL tree (buildroot-external/): Buildroot is
 * not on the machines that run the tests, so what a typo would break there is
 * caught here. Every problem is one "path[:line]: message" string, paths
 * relative to the repository.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArchSpec } from '../catalog/arch.js';
import { configMap } from './defconfig.js';

export const EXTERNAL_NAME = 'CLAWOS';
const PATH_VAR = '$(BR2_EXTERNAL_CLAWOS_PATH)';
const SYMBOL_RE = /\bBR2_[A-Za-z0-9_]+/g;
const DEFCONFIG_LINE_RE = /^(BR2_[A-Za-z0-9_]+=(y|m|-?\d+|0x[0-9a-fA-F]+|"([^"\\]|\\.)*")|# BR2_[A-Za-z0-9_]+ is not set|#.*|)$/;
/** What every ClawOS defconfig must set, whatever the arch. */
export const REQUIRED_SYMBOLS: Record<string, string> = {
  // The toolchain clawos-build assembles from locked Debian debs (pipeline/rootfs/buildroot-toolchain.ts).
  BR2_TOOLCHAIN_EXTERNAL_CUSTOM: 'y',
  BR2_TOOLCHAIN_EXTERNAL_PREINSTALLED: 'y',
  BR2_TOOLCHAIN_EXTERNAL_PATH: '"$(CLAWOS_TOOLCHAIN_DIR)"',
  BR2_PACKAGE_BUSYBOX: 'y',
  BR2_REPRODUCIBLE: 'y',
  BR2_DOWNLOAD_FORCE_CHECK_HASHES: 'y',
  BR2_TARGET_ROOTFS_CPIO: 'y',
  BR2_TARGET_ROOTFS_CPIO_GZIP: 'y',
  // One kernel per release: A-01's, whichever backend assembled the rootfs.
  BR2_LINUX_KERNEL: 'n',
  BR2_ROOTFS_OVERLAY: `"${PATH_VAR}/board/clawos/rootfs-overlay"`,
  BR2_ROOTFS_POST_BUILD_SCRIPT: `"${PATH_VAR}/board/clawos/post-build.sh"`,
  BR2_PACKAGE_CLAWOS_INIT: 'y',
  BR2_PACKAGE_CLAWOS_CANARY: 'y',
};

/** clawos-seccomp-loader -> CLAWOS_SECCOMP_LOADER */
export const pkgVar = (name: string) => name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
const unquote = (v: string | undefined) => (v === undefined ? undefined : v.replace(/^"|"$/g, ''));

interface Text {
  rel: string;
  text: string;
}

async function read(root: string, rel: string, problems: string[]): Promise<Text | null> {
  const text = await readFile(join(root, rel), 'utf8').catch(() => null);
  if (text === null) problems.push(`${rel}: missing`);
  return text === null ? null : { rel, text };
}

/** fn(line, 1-based number) for each line of t. */
function eachLine(t: Text, fn: (line: string, no: number) => void): void {
  t.text.split('\n').forEach((l, i) => fn(l, i + 1));
}

export interface LintInput {
  repoRoot: string;
  /** Repo-relative, normally buildroot-external. */
  external: string;
  arches: ArchSpec[];
  /** Arch name -> the external toolchain's prefix (specs/buildroot-offline.yaml toolchain.<arch>.triplet). */
  triplets: Record<string, string>;
}

export async function lintExternalTree(o: LintInput): Promise<string[]> {
  const problems: string[] = [];
  const ext = o.external;
  const abs = (rel: string) => join(o.repoRoot, rel);

  const desc = await read(o.repoRoot, `${ext}/external.desc`, problems);
  if (desc && !/^name:\s*CLAWOS\s*$/m.test(desc.text)) problems.push(`${desc.rel}: no 'name: ${EXTERNAL_NAME}' line`);
  const mk = await read(o.repoRoot, `${ext}/external.mk`, problems);
  if (mk && !mk.text.includes(`${PATH_VAR}/package/*/*.mk`)) problems.push(`${mk.rel}: does not include ${PATH_VAR}/package/*/*.mk`);
  const top = await read(o.repoRoot, `${ext}/Config.in`, problems);

  // Packages: files, sourcing, symbols and variable names.
  const defined = new Set<string>();
  const used: Array<{ symbol: string; where: string }> = [];
  const pkgRoot = `${ext}/package`;
  const pkgs = existsSync(abs(pkgRoot)) ? (await readdir(abs(pkgRoot), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort() : [];
  const sourced = new Set<string>();
  if (top) {
    eachLine(top, (line, no) => {
      const m = /^\s*source\s+"?\$BR2_EXTERNAL_CLAWOS_PATH\/([^"\s]+)"?\s*$/.exec(line);
      if (m) {
        sourced.add(m[1]!);
        if (!existsSync(abs(`${ext}/${m[1]}`))) problems.push(`${top.rel}:${no}: sources ${m[1]}, which does not exist`);
      } else if (/^\s*source\b/.test(line)) {
        problems.push(`${top.rel}:${no}: source a file as "$BR2_EXTERNAL_CLAWOS_PATH/package/<name>/Config.in"`);
      }
    });
  }
  for (const name of pkgs) {
    const dir = `${pkgRoot}/${name}`;
    const prefix = pkgVar(name);
    if (!/^clawos-[a-z0-9-]+$/.test(name)) problems.push(`${dir}: package names are clawos-<name> (lower case, '-')`);
    const cfg = await read(o.repoRoot, `${dir}/Config.in`, problems);
    const make = await read(o.repoRoot, `${dir}/${name}.mk`, problems);
    if (cfg) {
      if (!sourced.has(`package/${name}/Config.in`)) problems.push(`${cfg.rel}: not sourced from ${ext}/Config.in`);
      eachLine(cfg, (line, no) => {
        const m = /^\s*(?:menu)?config\s+(\S+)/.exec(line);
        if (!m) return;
        defined.add(m[1]!);
        if (!m[1]!.startsWith(`BR2_PACKAGE_${prefix}`)) problems.push(`${cfg.rel}:${no}: ${m[1]} must start with BR2_PACKAGE_${prefix}`);
      });
      if (!defined.has(`BR2_PACKAGE_${prefix}`)) problems.push(`${cfg.rel}: defines no BR2_PACKAGE_${prefix}`);
    }
    if (make) {
      eachLine(make, (line, no) => {
        const m = /^define\s+([A-Za-z0-9_]+)/.exec(line) ?? /^([A-Za-z0-9_]+)\s*[+:?]?=/.exec(line);
        if (m && !m[1]!.startsWith(`${prefix}_`)) problems.push(`${make.rel}:${no}: variable ${m[1]} must start with ${prefix}_`);
      });
      if (!/^\$\(eval \$\((generic-package|kernel-module|cmake-package|autotools-package|meson-package)\)\)/m.test(make.text)) {
        problems.push(`${make.rel}: no $(eval $(generic-package)) (or another package infrastructure)`);
      }
      const method = /^\S+_SITE_METHOD\s*=\s*(\S+)/m.exec(make.text)?.[1];
      const site = /^\S+_SITE\s*=\s*(\S+)/m.exec(make.text)?.[1];
      const downloads = method !== 'local' && site !== undefined;
      if (!site) problems.push(`${make.rel}: no ${prefix}_SITE`);
      if (downloads && !existsSync(abs(`${dir}/${name}.hash`))) problems.push(`${dir}: downloads from ${site} but has no ${name}.hash`);
      for (const m of make.text.matchAll(SYMBOL_RE)) used.push({ symbol: m[0], where: make.rel });
    }
    if (cfg) for (const m of cfg.text.matchAll(SYMBOL_RE)) used.push({ symbol: m[0], where: cfg.rel });
  }
  for (const rel of sourced) {
    const m = /^package\/([^/]+)\/Config\.in$/.exec(rel);
    if (!m || !pkgs.includes(m[1]!)) problems.push(`${ext}/Config.in: sources ${rel}, which is not package/<name>/Config.in of a package`);
  }

  // Defconfigs: well-formed lines, and the facts the busybox backend and the arch data also hold.
  for (const arch of o.arches) {
    if (!arch.buildroot) continue;
    const dc = await read(o.repoRoot, `${ext}/configs/${arch.buildroot.defconfig}`, problems);
    if (!dc) continue;
    const seen = new Map<string, number>();
    eachLine(dc, (line, no) => {
      if (!DEFCONFIG_LINE_RE.test(line.trimEnd())) problems.push(`${dc.rel}:${no}: not a defconfig line: ${line}`);
      const sym = /^(?:# )?(BR2_[A-Za-z0-9_]+)[= ]/.exec(line)?.[1];
      if (sym) {
        if (seen.has(sym)) problems.push(`${dc.rel}:${no}: ${sym} is already set on line ${seen.get(sym)}`);
        seen.set(sym, no);
      }
      if (!line.startsWith('#') || sym) for (const m of line.matchAll(SYMBOL_RE)) used.push({ symbol: m[0], where: `${dc.rel}:${no}` });
      for (const m of line.matchAll(/\$\(BR2_EXTERNAL_CLAWOS_PATH\)(\/[^\s"]*)/g)) {
        if (!existsSync(abs(`${ext}${m[1]}`))) problems.push(`${dc.rel}:${no}: ${m[0]} does not exist`);
      }
    });
    const cfg = configMap(dc.text);
    const want = (sym: string, value: string, why: string) => {
      const got = cfg.get(sym);
      if (got !== value && !(value === 'n' && got === undefined)) problems.push(`${dc.rel}: ${sym} is ${got ?? 'not set'}, want ${value} (${why})`);
    };
    for (const [sym, value] of Object.entries(REQUIRED_SYMBOLS)) want(sym, value, 'every ClawOS defconfig');
    const triplet = o.triplets[arch.name];
    if (!triplet) problems.push(`specs/buildroot-offline.yaml: no toolchain for ${arch.name}`);
    else want('BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX', `"${triplet}"`, `specs/buildroot-offline.yaml toolchain.${arch.name}.triplet`);
    want('BR2_PACKAGE_CLAWOS_INIT_ARCH', `"${arch.name}"`, `specs/arch/${arch.name}.yaml name`);
    const flags = arch.guest.cpu_flags.join(' ');
    if ((unquote(cfg.get('BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS')) ?? '') !== flags) {
      problems.push(`${dc.rel}: BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS is ${cfg.get('BR2_PACKAGE_CLAWOS_INIT_CPU_FLAGS') ?? 'not set'}, want "${flags}" (specs/arch/${arch.name}.yaml guest.cpu_flags)`);
    }
    const args = (unquote(cfg.get('BR2_ROOTFS_POST_SCRIPT_ARGS')) ?? '').split(/\s+/);
    if (!args.includes(`arch=${arch.name}`)) problems.push(`${dc.rel}: BR2_ROOTFS_POST_SCRIPT_ARGS has no arch=${arch.name}`);
  }
  for (const { symbol, where } of used) {
    if (symbol.startsWith('BR2_PACKAGE_CLAWOS') && !defined.has(symbol)) problems.push(`${where}: ${symbol} is defined by no package Config.in`);
    if (symbol.startsWith('BR2_CLAWOS')) problems.push(`${where}: ${symbol}: ClawOS symbols are BR2_PACKAGE_CLAWOS_*`);
  }
  return problems;
}
