/**
 * The Buildroot backend offline: Buildroot's pinned upstream sources are not on
 * the Debian mirror, so each package Buildroot would download is built from the
 * locked Debian source package instead (`<PKG>_OVERRIDE_SRCDIR` in a generated
 * local.mk), or replaced by a host tool (specs/buildroot-offline.yaml). Every
 * such package is listed: the version Buildroot wanted, the version used, and
 * Buildroot's own patches, which an override does not apply.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadData } from '../../lib/data.js';

export const OFFLINE_SPEC = 'specs/buildroot-offline.yaml';
export const OFFLINE_SCHEMA = 'specs/schemas/buildroot-offline.schema.json';

export interface OfflineSource {
  /** The Debian source package. */
  debian: string;
  /** Run autoreconf on the unpacked tree, as Debian's dh_autoreconf does (its patches touch configure.ac/Makefile.am). */
  autoreconf?: boolean;
  /** Let Buildroot run autoreconf (<PKG>_AUTORECONF = YES): the Debian tree ships no configure. */
  buildroot_autoreconf?: boolean;
  /** make variables for the package's build and install (MAKEINFO=true: the docs are not built). */
  make_vars?: string[];
}

export interface ToolchainSpec {
  triplet: string;
  gcc_version: string;
  /** Debian arch of the compiler packages (the build host's). */
  host_arch: string;
  /** Where the compiler packages put cc1, crt*.o and libgcc. */
  gcc_lib_dir: string;
  compiler_debs: string[];
  /** The target arch's libc packages: the toolchain's sysroot. */
  sysroot_debs: string[];
}

export interface OfflineSpec {
  /** The rootfs backend this spec serves: runs on another backend fetch none of its inputs. */
  backend: string;
  /** The Buildroot release tested with this tree, and its tarball's sha256. */
  buildroot: { release: string; sha256: string };
  /** Buildroot package name (host-tar) -> its Debian source package. */
  sources: Record<string, OfflineSource>;
  /** Buildroot host package -> the host executable that stands in for it. */
  host_tools: Record<string, string>;
  /** Arch name -> the external toolchain made from Debian's packages. */
  toolchain: Record<string, ToolchainSpec>;
}

export function loadOfflineSpec(repoRoot: string): Promise<OfflineSpec> {
  return loadData<OfflineSpec>(repoRoot, OFFLINE_SPEC, OFFLINE_SCHEMA);
}

/** One package of `make show-info`, as far as this module needs it. */
export interface ShowInfoPackage {
  type?: string;
  version?: string | null;
  /** uris[0] `local+DIR` is a local site: nothing to download. */
  downloads?: { source?: string; uris?: string[] }[];
  /** Buildroot's patches for the package (package/<dir>/*.patch), as show-info lists them. */
  patches?: string[];
}

/** host-tar -> HOST_TAR: the prefix of a package's make variables. */
export function pkgVar(pkg: string): string {
  return pkg.toUpperCase().replace(/[-.+]/g, '_');
}

/** Buildroot's package dir for a package name (host-tar is package/tar). */
export function pkgDir(pkg: string): string {
  return pkg.replace(/^host-/, '');
}

/** A package built from another source than the one Buildroot's .hash names. */
export interface OverrideRow {
  package: string;
  /** The version Buildroot pins. */
  wanted: string;
  /** What was used instead: "debian:tar 1.34+dfsg-1.2+deb12u1" or "host:/usr/bin/fakeroot". */
  used: string;
  /** Buildroot's patches for the package (package/<dir>/*.patch), not applied to the override. */
  buildrootPatchesNotApplied: string[];
}

export interface OfflinePlan {
  rows: OverrideRow[];
  /** Packages that would download and have neither a source package nor a host tool. */
  needsDownload: { package: string; version: string; files: string[] }[];
}

/**
 * From `make show-info` (JSON), which packages download, and how each is served
 * offline. `versions` maps a Debian source package to its locked version.
 */
export async function planOffline(
  info: Record<string, ShowInfoPackage>,
  spec: OfflineSpec,
  versions: Map<string, string>,
  buildrootDir: string,
): Promise<OfflinePlan> {
  const rows: OverrideRow[] = [];
  const needsDownload: OfflinePlan['needsDownload'] = [];
  for (const name of Object.keys(info).sort()) {
    const p = info[name]!;
    const files = (p.downloads ?? [])
      .filter((d) => !(d.uris?.[0] ?? '').startsWith('local+'))
      .map((d) => d.source ?? '')
      .filter(Boolean);
    if (!files.length) continue;
    const wanted = p.version ?? '?';
    const src = spec.sources[name];
    const tool = spec.host_tools[name];
    if (!src && !tool) {
      needsDownload.push({ package: name, version: wanted, files });
      continue;
    }
    const used = src ? `debian:${src.debian} ${versions.get(src.debian) ?? '(not locked)'}` : `host:${tool}`;
    const patches = Array.isArray(p.patches) ? [...p.patches].sort() : await patchesOf(buildrootDir, name);
    rows.push({ package: name, wanted, used, buildrootPatchesNotApplied: patches });
  }
  return { rows, needsDownload };
}

async function patchesOf(buildrootDir: string, pkg: string): Promise<string[]> {
  const dir = join('package', pkgDir(pkg));
  const names = await readdir(join(buildrootDir, dir)).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.patch')).sort().map((n) => `${dir}/${n}`);
}

/**
 * local.mk (BR2_PACKAGE_OVERRIDE_FILE): an OVERRIDE_SRCDIR per source package
 * tree, and host tools installed into HOST_DIR in place of the package's build.
 * Buildroot's infrastructures define a package's *_CMDS only when they are not
 * defined yet, and this file is read before the packages, so these win.
 */
export function renderLocalMk(trees: Map<string, string>, spec: OfflineSpec, emptyDir: string): string {
  const out = [
    '# Generated by clawos-build (pipeline/rootfs/buildroot-offline.ts) from specs/buildroot-offline.yaml:',
    '# packages built from locked Debian source packages (Debian patches applied), or replaced by host tools.',
  ];
  for (const [pkg, dir] of [...trees].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out.push(`${pkgVar(pkg)}_OVERRIDE_SRCDIR = ${dir}`);
    if (spec.sources[pkg]?.buildroot_autoreconf) out.push(`${pkgVar(pkg)}_AUTORECONF = YES`);
    const vars = spec.sources[pkg]?.make_vars ?? [];
    if (vars.length) out.push(`${pkgVar(pkg)}_MAKE_OPTS = ${vars.join(' ')}`, `${pkgVar(pkg)}_INSTALL_OPTS = ${vars.join(' ')} install`);
  }
  for (const [pkg, tool] of Object.entries(spec.host_tools).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const v = pkgVar(pkg);
    const exe = tool.split('/').pop()!;
    out.push(
      `${v}_OVERRIDE_SRCDIR = ${emptyDir}`,
      // Nothing to regenerate in an empty source dir (the infrastructure keeps a value set here).
      `${v}_AUTORECONF = NO`,
      `define ${v}_CONFIGURE_CMDS`,
      '\ttrue',
      'endef',
      `define ${v}_BUILD_CMDS`,
      '\ttrue',
      'endef',
      `define ${v}_INSTALL_CMDS`,
      '\tmkdir -p $(HOST_DIR)/bin',
      `\tprintf '#!/bin/sh\\nexec ${tool} "$$@"\\n' >$(HOST_DIR)/bin/${exe}`,
      `\tchmod 0755 $(HOST_DIR)/bin/${exe}`,
      'endef',
    );
  }
  return out.join('\n') + '\n';
}

/** The rows as security-report findings: an override carries no Buildroot patch and no Buildroot hash. */
export function overrideFindings(rows: OverrideRow[]): { id: string; severity: 'LOW' | 'MEDIUM'; message: string }[] {
  return rows.map((r) => ({
    id: `buildroot-override:${r.package}`,
    // As the security report grades them (pipeline/security/security-report.ts).
    severity: r.buildrootPatchesNotApplied.length ? 'MEDIUM' : 'LOW',
    message:
      `${r.package}: Buildroot wants ${r.wanted}, built from ${r.used}` +
      (r.buildrootPatchesNotApplied.length ? `; Buildroot patches not applied: ${r.buildrootPatchesNotApplied.join(', ')}` : '; Buildroot has no patches for it'),
  }));
}
