/**
 * What must be locked, and what the mirror serves for it now. The list of
 * inputs comes from data, never from code: the kernel source package named in
 * every kernel-config/source*.yaml (the default and each selectable kernel), every arch's `debs:`, the firmware files of every
 * QEMU machine (qemu/<arch>.yaml), G-08's stock kernel (`baseline:`), and the
 * host tool packages (specs/host-packages.txt) whose versions are recorded,
 * every arch's `ebpf.debs` (the eBPF loader's static libraries),
 * and the Buildroot backend's toolchain debs and Debian source packages
 * (specs/buildroot-offline.yaml).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InfraError, UserError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { loadMachine } from '../../qemu/machine.js';
import { loadArches } from '../catalog/arch.js';
import { kernelSourceFiles, loadKernelSourceConfig } from '../kernel/source.js';
import { fetchLockedDebFile } from './debs.js';
import { aptSpec, type InputLock, type LockedDeb, type LockedSource } from '../catalog/input-lock.js';
import { loadOfflineSpec } from '../rootfs/buildroot-offline.js';

export interface WantedDeb {
  name: string;
  /** Debian architecture asked for (an arch-independent package resolves to `all`). */
  arch: string;
  why: string;
  /** Members whose sha256 the lock records. */
  files: string[];
  /** A meta package: lock the versioned package its Depends names (recorded as `alias`). */
  meta?: boolean;
  /** Needed only by runs on this rootfs backend (the Buildroot toolchain); absent: every run needs it. */
  backend?: string;
}

/**
 * Every package the build fetches, from the repository's data files, merged by name and arch.
 * `prefetch` fetches those a run needs: none tagged with another rootfs backend than the run's.
 */
export async function wantedInputs(repoRoot: string): Promise<WantedDeb[]> {
  const out = new Map<string, WantedDeb>();
  const add = (w: WantedDeb) => {
    const k = `${w.name}:${w.arch}`;
    const have = out.get(k);
    if (!have) out.set(k, { ...w, files: [...w.files] });
    else {
      for (const f of w.files) if (!have.files.includes(f)) have.files.push(f);
      // Wanted by two backends, or by one and by every run: every run needs it.
      if (have.backend !== w.backend) delete have.backend;
      if (!have.why.includes(w.why)) have.why = `${have.why}; ${w.why}`;
    }
  };
  // Every selectable kernel stays locked, not only the default one.
  for (const file of await kernelSourceFiles(repoRoot)) {
    const src = await loadKernelSourceConfig(repoRoot, {}, file);
    if (src.deb) add({ name: src.deb.package, arch: 'all', why: `kernel source (A-01, ${file})`, files: [src.deb.member] });
  }
  const arches = await loadArches(repoRoot);
  const offline = await loadOfflineSpec(repoRoot);
  for (const a of [...arches.values()].sort((x, y) => (x.name < y.name ? -1 : 1))) {
    for (const d of a.debs) add({ name: d, arch: a.debian_arch, why: `${a.name} rootfs and ISO`, files: [] });
    for (const d of a.ebpf?.debs ?? []) add({ name: d, arch: a.debian_arch, why: `${a.name} eBPF loader (B-08)`, files: [] });
    const m = await loadMachine(repoRoot, a.qemu);
    for (const v of m.variants) {
      for (const fw of v.firmware ?? []) {
        if (fw.package) add({ name: fw.package, arch: 'all', why: `${a.name} QEMU firmware`, files: [fw.path.replace(/^\/+/, '')] });
      }
    }
    if (a.baseline) add({ name: a.baseline.kernel_package, arch: a.debian_arch, why: `${a.name} G-08 stock kernel`, files: [], meta: true });
    const tc = offline.toolchain[a.name];
    for (const d of tc?.compiler_debs ?? []) add({ name: d, arch: tc!.host_arch, why: `${a.name} Buildroot toolchain`, files: [], backend: offline.backend });
    for (const d of tc?.sysroot_debs ?? []) add({ name: d, arch: a.debian_arch, why: `${a.name} Buildroot toolchain sysroot`, files: [], backend: offline.backend });
  }
  return [...out.values()];
}

/** `name:arch` of every package only another rootfs backend than `backend` needs (prefetch skips them). */
export async function otherBackendInputs(repoRoot: string, backend: string): Promise<Set<string>> {
  return new Set((await wantedInputs(repoRoot)).filter((w) => w.backend !== undefined && w.backend !== backend).map((w) => `${w.name}:${w.arch}`));
}

export interface ResolveContext {
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  log(line: string): void;
  downloadCache: string;
}

interface Stanza {
  Package: string;
  Version: string;
  Architecture: string;
  SHA256: string;
  Size: string;
  Depends?: string;
}

function parseStanza(text: string): Stanza | null {
  const first = text.split(/\n\n/)[0] ?? '';
  const f: Record<string, string> = {};
  for (const m of first.matchAll(/^([A-Za-z0-9-]+):\s?(.*)$/gm)) f[m[1]!] = m[2]!;
  if (!f['Package'] || !f['Version'] || !f['SHA256'] || !f['Size'] || !f['Architecture']) return null;
  return f as unknown as Stanza;
}

/** apt-cache show of NAME:ARCH (the candidate) or NAME:ARCH=VERSION. */
async function show(ctx: ResolveContext, name: string, arch: string, version?: string): Promise<Stanza> {
  const spec = `${name}${arch === 'all' ? '' : `:${arch}`}${version ? `=${version}` : ''}`;
  const r = await ctx.run(['apt-cache', 'show', '--no-all-versions', spec], { captureStdout: true, timeoutMs: 60_000 });
  const s = r.ok ? parseStanza(r.stdout) : null;
  if (!s) {
    const why = r.spawnError ?? (r.tail.filter((l) => /^[EW]: /.test(l)).join(' / ') || 'no such package or version');
    throw new InfraError(
      `apt-cache show ${spec}: ${why}; fix: run \`${arch === 'all' ? '' : `dpkg --add-architecture ${arch} && `}apt-get update\`${version ? `, or lock another version of ${name}` : ''}`,
    );
  }
  return s;
}

/** Hash the given members of a .deb (unpacked into a private temp dir). */
async function memberHashes(ctx: ResolveContext, debPath: string, members: string[]): Promise<Record<string, string>> {
  if (!members.length) return {};
  const dir = await mkdtemp(join(tmpdir(), 'clawos-lock-'));
  try {
    const x = await ctx.run(['dpkg-deb', '-x', debPath, dir]);
    if (!x.ok) throw new InfraError(`dpkg-deb -x ${debPath} failed: ${x.tail.slice(-2).join(' / ')}`);
    const out: Record<string, string> = {};
    for (const m of members) {
      const h = await sha256File(join(dir, m)).catch(() => null);
      if (!h) throw new UserError(`${debPath}: has no ${m} (named by the repository's data as a file the build uses)`);
      out[m] = h;
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The lock entry the mirror gives for one wanted package: the candidate, or
 * the exact `version` when asked. Packages with files to pin are downloaded
 * (into the shared cache, verified against the archive's stated hash) to hash them.
 */
export async function resolveWanted(ctx: ResolveContext, w: WantedDeb, version?: string): Promise<LockedDeb> {
  let s = await show(ctx, w.name, w.arch, version);
  let alias: string | undefined;
  let files = w.files;
  if (w.meta) {
    const versioned = /\b(linux-image-[0-9][A-Za-z0-9.+-]*)/.exec(s.Depends ?? '')?.[1];
    if (!versioned) throw new InfraError(`apt-cache show ${w.name}:${w.arch}: no linux-image-<version> in its Depends ("${s.Depends ?? ''}")`);
    alias = w.name;
    s = await show(ctx, versioned, w.arch);
    files = [`boot/vmlinuz-${versioned.replace(/^linux-image-/, '')}`];
  }
  const entry: LockedDeb = {
    name: s.Package,
    arch: s.Architecture,
    version: s.Version,
    sha256: s.SHA256.toLowerCase(),
    size: Number(s.Size),
    why: w.why,
    ...(alias ? { alias } : {}),
  };
  if (files.length) {
    ctx.log(`lock: fetching ${aptSpec(entry)} to hash ${files.join(', ')}`);
    const deb = await fetchLockedDebFile({ run: ctx.run, log: ctx.log, cacheDir: ctx.downloadCache, downloadCache: ctx.downloadCache }, entry);
    entry.files = await memberHashes(ctx, deb, files);
  }
  return entry;
}

/** Installed versions of the host tool packages (specs/host-packages.txt). */
export async function hostToolVersions(ctx: Pick<ResolveContext, 'run'>, repoRoot: string): Promise<Record<string, string>> {
  const text = await readFile(join(repoRoot, 'specs', 'host-packages.txt'), 'utf8');
  const pkgs = text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  const r = await ctx.run(['dpkg-query', '-W', '-f', '${Package} ${Version} ${db:Status-Abbrev}\n', ...pkgs], { captureStdout: true });
  const out: Record<string, string> = {};
  for (const p of pkgs) out[p] = 'not-installed';
  for (const line of r.stdout.split('\n')) {
    const [name, version, status] = line.split(' ');
    if (name && version && status?.startsWith('ii') && name in out) out[name] = version;
  }
  return out;
}

export interface UpdateRequest {
  /** Only these packages (NAME or NAME=VERSION); empty: every package. */
  only: string[];
}

/**
 * The lock re-resolved against the mirror: every wanted package (or only the
 * named ones, the rest kept as locked). Entries no longer wanted are dropped.
 */
export async function resolveLock(ctx: ResolveContext, repoRoot: string, old: InputLock | null, req: UpdateRequest): Promise<InputLock> {
  const wanted = await wantedInputs(repoRoot);
  const sources = await wantedSources(repoRoot);
  const asked = new Map(req.only.map((s) => [s.split('=')[0]!, s.includes('=') ? s.slice(s.indexOf('=') + 1) : undefined]));
  for (const n of asked.keys()) {
    if (!wanted.some((w) => w.name === n) && !old?.debs.some((d) => d.name === n || d.alias === n) && !sources.includes(n)) {
      throw new UserError(`lock --update: ${n} is not an input of the build (${wanted.map((w) => w.name).join(', ')})`);
    }
  }
  const debs: LockedDeb[] = [];
  for (const w of wanted) {
    const prior = old?.debs.find((d) => (d.name === w.name || (w.meta && d.alias === w.name)) && (d.arch === w.arch || d.arch === 'all'));
    const wantsFiles = w.meta || w.files.every((f) => prior?.files?.[f]);
    const touch = asked.size === 0 || [...asked.keys()].some((n) => n === w.name || n === prior?.name);
    if (prior && !touch && wantsFiles) {
      debs.push({ ...prior, why: w.why });
      continue;
    }
    const version = asked.get(w.name) ?? (prior ? asked.get(prior.name) : undefined);
    debs.push(await resolveWanted(ctx, w, version));
  }
  const source_packages: LockedSource[] = [];
  for (const name of await wantedSources(repoRoot)) {
    const prior = old?.source_packages?.find((x) => x.name === name);
    const touch = asked.size === 0 || asked.has(name);
    source_packages.push(prior && !touch ? prior : await resolveSource(ctx, name, asked.get(name)));
  }
  const host_tools = await hostToolVersions(ctx, repoRoot);
  return {
    lock_version: 1,
    distribution: old?.distribution ?? 'Debian 12 (bookworm)',
    debs,
    ...(source_packages.length ? { source_packages } : {}),
    host_tools,
  };
}

/** Versions the mirror would give now, for `clawos-build lock` (no download). */
export async function candidates(ctx: ResolveContext, repoRoot: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const w of await wantedInputs(repoRoot)) {
    let s = await show(ctx, w.name, w.arch);
    if (w.meta) {
      const versioned = /\b(linux-image-[0-9][A-Za-z0-9.+-]*)/.exec(s.Depends ?? '')?.[1];
      if (versioned) s = await show(ctx, versioned, w.arch);
    }
    out.set(`${s.Package}:${s.Architecture}`, `${s.Version} ${s.SHA256.toLowerCase()}`);
    if (w.meta) out.set(`alias:${w.name}:${w.arch}`, `${s.Package}:${s.Architecture}`);
  }
  return out;
}

/** Whether the mirror still serves a locked version (apt-cache knows NAME=VERSION with the locked hash). */
export async function stillServed(ctx: ResolveContext, d: LockedDeb): Promise<boolean> {
  try {
    const s = await show(ctx, d.name, d.arch, d.version);
    return s.SHA256.toLowerCase() === d.sha256;
  } catch {
    return false;
  }
}


/** The Debian source packages the Buildroot backend builds from (specs/buildroot-offline.yaml), sorted. */
export async function wantedSources(repoRoot: string): Promise<string[]> {
  const spec = await loadOfflineSpec(repoRoot);
  return [...new Set(Object.values(spec.sources).map((s) => s.debian))].sort();
}

/** One source package's stanzas of `apt-cache showsrc`: version and .dsc sha256. */
export function parseShowsrc(text: string, name: string): { version: string; dscSha256: string }[] {
  const out: { version: string; dscSha256: string }[] = [];
  for (const stanza of text.split(/\n\n+/)) {
    if (!new RegExp(`^Package: ${name.replace(/[.+]/g, '\\$&')}$`, 'm').test(stanza)) continue;
    const version = /^Version: (\S+)$/m.exec(stanza)?.[1];
    const sums = /^Checksums-Sha256:\n((?: .*\n?)+)/m.exec(stanza)?.[1] ?? '';
    const dsc = /^ ([0-9a-f]{64}) \d+ \S+\.dsc$/m.exec(sums)?.[1];
    if (version && dsc) out.push({ version, dscSha256: dsc });
  }
  return out;
}

/** The lock entry for a source package: the exact `version` when asked, else the highest the mirror serves. */
export async function resolveSource(ctx: ResolveContext, name: string, version?: string): Promise<LockedSource> {
  const r = await ctx.run(['apt-cache', 'showsrc', name], { captureStdout: true, timeoutMs: 60_000 });
  const all = r.ok ? parseShowsrc(r.stdout, name) : [];
  const fix = 'add a deb-src line for the Debian archive (`bin/bootstrap deps` does) and run `apt-get update`';
  if (!all.length) throw new InfraError(`apt-cache showsrc ${name}: no source package; fix: ${fix}`, fix);
  let pick = version ? all.find((s) => s.version === version) : all[0];
  if (!version) {
    for (const s of all.slice(1)) {
      const gt = await ctx.run(['dpkg', '--compare-versions', s.version, 'gt', pick!.version]);
      if (gt.ok) pick = s;
    }
  }
  if (!pick) throw new InfraError(`apt-cache showsrc ${name}: version ${version} is not served (${all.map((s) => s.version).join(', ')}); fix: lock another version of ${name}`);
  return { name, version: pick.version, dsc_sha256: pick.dscSha256, why: 'Buildroot backend: built from Debian source (specs/buildroot-offline.yaml)' };
}
