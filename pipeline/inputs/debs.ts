/**
 * Debian packages the build uses (busybox-static:arm64, grub-efi-arm64-bin,
 * linux-source-6.12, firmware, G-08's stock kernel ...), fetched BY THE LOCK
 * (inputs.lock.yaml): `apt-get download NAME:ARCH=VERSION` into the download
 * cache shared by all build dirs, where a .deb is kept under its sha256 and
 * checked against the lock before every use; then `dpkg-deb -x` into
 * debRoot() of the build dir. A .deb whose hash differs from the lock is
 * deleted and nothing is used. The unpacked tree is published by a rename, so a
 * half-unpacked tree is never seen, and reused while its record (deb.json)
 * names the locked .deb.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { debRoot, type ArchSpec } from '../catalog/arch.js';
import { aptSpec, LOCK_FILE, loadLock, requireLocked, type LoadedLock, type LockedDeb } from '../catalog/input-lock.js';

export interface DebContext {
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  cacheDir: string;
  log(line: string): void;
  /** Where inputs.lock.yaml is read from (when `lock` is not given). */
  repoRoot?: string;
  /** The lock to fetch by; default: inputs.lock.yaml of repoRoot. */
  lock?: () => Promise<LoadedLock>;
  /** The shared download cache; default: downloadCacheDir(). */
  downloadCache?: string;
}

export interface FetchedDeb {
  package: string;
  version: string;
  /** Debian architecture, e.g. arm64 (all for architecture-independent packages). */
  arch: string;
  /** sha256 of the .deb file (equal to the lock's). */
  sha256: string;
  /** Absolute path of the unpacked tree (debRoot()). */
  root: string;
}

/**
 * The download cache every build dir on this machine shares:
 * $CLAWOS_DOWNLOAD_CACHE, else $XDG_CACHE_HOME/clawos-build/downloads, else ~/.cache/clawos-build/downloads.
 */
export function downloadCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env['CLAWOS_DOWNLOAD_CACHE']) return env['CLAWOS_DOWNLOAD_CACHE'];
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'clawos-build', 'downloads');
}

/** Where a locked .deb is kept in the download cache: by its sha256. */
export function cachedDebPath(downloadCache: string, d: Pick<LockedDeb, 'sha256'>): string {
  return join(downloadCache, 'debs', `${d.sha256}.deb`);
}

/** Package names a set of arch path templates refers to with {deb:NAME}, sorted, unique. */
export function debsReferenced(templates: string[]): string[] {
  const out = new Set<string>();
  for (const t of templates) for (const m of t.matchAll(/\{deb:([a-z0-9][a-z0-9+.-]+)\}/g)) out.add(m[1]!);
  return [...out].sort();
}

const lockCache = new Map<string, Promise<LoadedLock>>();

/** The context's lock (loaded once per repo and process). */
export async function lockOf(ctx: Pick<DebContext, 'lock' | 'repoRoot'>): Promise<LoadedLock> {
  if (ctx.lock) return ctx.lock();
  const root = ctx.repoRoot ?? process.cwd();
  let p = lockCache.get(root);
  if (!p) {
    p = loadLock(root);
    lockCache.set(root, p);
    p.catch(() => lockCache.delete(root));
  }
  return p;
}

function lastError(r: RunResult): string {
  const e = r.tail.filter((l) => /^E: /.test(l));
  return (e.length ? e : r.tail.slice(-3)).join(' / ').trim() || `exit ${r.exitCode ?? r.signal ?? '?'}`;
}

function failure(what: string, r: RunResult, fix: string): InfraError {
  const why = r.spawnError ?? (r.timedOut ? 'timed out' : lastError(r));
  return new InfraError(`${what} failed: ${why}; fix: ${fix}`, fix);
}

/**
 * The locked .deb in the download cache, downloaded by exact version if it is
 * not there yet. Throws InfraError (exit 4) when the mirror no longer serves the
 * locked version, or serves other bytes under it; nothing is kept then.
 */
export async function fetchLockedDebFile(ctx: DebContext, d: LockedDeb): Promise<string> {
  const cache = ctx.downloadCache ?? downloadCacheDir();
  const final = cachedDebPath(cache, d);
  if (existsSync(final)) {
    const have = await sha256File(final);
    if (have === d.sha256) return final;
    // A damaged cache entry: drop it and fetch again.
    ctx.log(`debs: ${final} has sha256 ${have}, not the locked ${d.sha256}: fetching again`);
    await rm(final, { force: true });
  }
  const dir = dirname(final);
  await mkdir(dir, { recursive: true });
  const spec = aptSpec(d);
  // A private download dir so the one .deb in it is the one apt just fetched.
  const dl = await mkdtemp(join(dir, `.dl-${d.name}-`));
  try {
    // As root: under the sandbox (no capabilities) apt cannot drop to _apt.
    const r = await ctx.run(['apt-get', 'download', spec, '-o', 'APT::Sandbox::User=root'], { cwd: dl, timeoutMs: 10 * 60_000 });
    if (!r.ok) {
      const vanished = r.tail.some((l) => /Version '.*' for '.*' was not found|Can't find a source to download version/.test(l));
      const unknown = r.tail.some((l) => /Unable to locate package|has no installation candidate|no candidate/.test(l));
      const fix = r.spawnError
        ? 'clawos-build needs a Debian host with apt-get and dpkg-deb'
        : vanished
          ? `run \`apt-get update\`; if ${d.name} ${d.version} is still not served, run \`clawos-build lock --update ${d.name}\` and commit ${LOCK_FILE}`
          : unknown
            ? `the apt lists do not know ${d.name}:${d.arch}: run \`${d.arch === 'all' ? '' : `dpkg --add-architecture ${d.arch} && `}apt-get update\``
            : 'check the apt sources and network, then run `apt-get update`';
      if (vanished) {
        throw new InfraError(`${d.name}:${d.arch} ${d.version} (locked in ${LOCK_FILE}) is not served by the mirror: ${lastError(r)}; fix: ${fix}`, fix, { transient: false });
      }
      throw failure(`apt-get download ${spec}`, r, fix);
    }
    const files = (await readdir(dl)).filter((f) => f.endsWith('.deb'));
    if (files.length !== 1) {
      throw new InfraError(`apt-get download ${spec} left ${files.length} .deb files in ${dl}; fix: run it by hand there and check its output`);
    }
    const got = join(dl, files[0]!);
    const sha256 = await sha256File(got);
    if (sha256 !== d.sha256) {
      const fix = `check the apt sources (a mirror serving other bytes under a locked version is not to be trusted); nothing was used`;
      throw new InfraError(`${d.name}:${d.arch} ${d.version}: the downloaded .deb has sha256 ${sha256}, the lock says ${d.sha256}; fix: ${fix}`, fix, { transient: false });
    }
    await rename(got, final);
    ctx.log(`debs: fetched ${spec} sha256=${sha256} into ${final}`);
    return final;
  } finally {
    await rm(dl, { recursive: true, force: true });
  }
}

/** Check the lock's `files` hashes in an unpacked tree. Throws InfraError naming the first that differs. */
async function checkFiles(d: LockedDeb, root: string): Promise<void> {
  for (const [p, want] of Object.entries(d.files ?? {})) {
    const have = await sha256File(join(root, p)).catch(() => 'missing');
    if (have !== want) {
      throw new InfraError(`${d.name}:${d.arch} ${d.version}: ${p} has sha256 ${have}, the lock says ${want}; fix: run \`clawos-build lock --update ${d.name}\` if the package was re-locked by hand`);
    }
  }
}

/**
 * Fetch (by the lock) and unpack PKG for ARCH, or reuse the unpacked tree
 * while its record names the locked .deb. Throws InfraError, with the command
 * that fixes it in the message, when the locked package cannot be had.
 */
export async function fetchDeb(ctx: DebContext, arch: ArchSpec, pkg: string): Promise<FetchedDeb> {
  const loaded = await lockOf(ctx);
  const d = requireLocked(loaded, pkg, arch.debian_arch);
  // An architecture-independent package (the kernel source, firmware) is unpacked once for all arches.
  const root = d.arch === 'all' ? join(ctx.cacheDir, 'debs', 'all', d.name, 'root') : debRoot(ctx.cacheDir, arch, pkg);
  // Two instances of one run (both arches' A-01) asking for the same tree share one unpack:
  // a second unpack would remove the tree under the first one's feet.
  const key = `${root} ${d.sha256}`;
  let p = unpacking.get(key);
  if (!p) {
    p = unpackLocked(ctx, d, root).finally(() => unpacking.delete(key));
    unpacking.set(key, p);
  }
  return p;
}

const unpacking = new Map<string, Promise<FetchedDeb>>();

async function unpackLocked(ctx: DebContext, d: LockedDeb, root: string): Promise<FetchedDeb> {
  const pkgDir = dirname(root);
  const recordPath = join(pkgDir, 'deb.json');
  if (existsSync(root)) {
    try {
      const rec = JSON.parse(await readFile(recordPath, 'utf8')) as FetchedDeb;
      if (rec.package === d.name && rec.sha256 === d.sha256) {
        ctx.log(`debs: reusing ${d.name}:${d.arch} ${d.version} at ${root}`);
        return { ...rec, root };
      }
    } catch {
      /* no usable record: unpack again */
    }
  }
  const debPath = await fetchLockedDebFile(ctx, d);
  await mkdir(pkgDir, { recursive: true });
  const tmp = await mkdtemp(join(pkgDir, '.unpack-'));
  try {
    const unpack = join(tmp, 'root');
    const x = await ctx.run(['dpkg-deb', '-x', debPath, unpack]);
    if (!x.ok) throw failure(`dpkg-deb -x ${debPath}`, x, `delete ${debPath} and run again`);
    await checkFiles(d, unpack);
    await rm(root, { recursive: true, force: true });
    try {
      await rename(unpack, root);
    } catch (err) {
      // Another task published the same package between the rm and the rename:
      // same .deb, same tree, so theirs will do.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    const rec: FetchedDeb = { package: d.name, version: d.version, arch: d.arch, sha256: d.sha256, root };
    await writeJsonAtomic(recordPath, rec);
    ctx.log(`debs: ${d.name}:${d.arch} ${d.version} sha256=${d.sha256} unpacked at ${root}`);
    return rec;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** fetchDeb for several packages, in order. */
export async function fetchDebs(ctx: DebContext, arch: ArchSpec, pkgs: string[]): Promise<FetchedDeb[]> {
  const out: FetchedDeb[] = [];
  for (const p of pkgs) out.push(await fetchDeb(ctx, arch, p));
  return out;
}

/**
 * A file the lock pins inside a package (`files:`), as a verified path: the
 * host-installed copy when its sha256 is the locked one (no download), else
 * the copy in the locked .deb, unpacked into the build dir's cache.
 */
export async function lockedFile(ctx: DebContext, arch: ArchSpec, pkg: string, member: string): Promise<{ path: string; sha256: string; from: 'host' | 'lock' }> {
  const loaded = await lockOf(ctx);
  const d = requireLocked(loaded, pkg, arch.debian_arch);
  const rel = member.replace(/^\/+/, '');
  const want = d.files?.[rel];
  if (!want) throw new InfraError(`${loaded.file}: ${d.name}:${d.arch} does not pin ${rel} under files:; fix: run \`clawos-build lock --update ${d.name}\``);
  const host = `/${rel}`;
  if (await stat(host).then((s) => s.isFile(), () => false)) {
    if ((await sha256File(host)) === want) return { path: host, sha256: want, from: 'host' };
    ctx.log(`debs: host ${host} is not the locked ${d.name} ${d.version}'s copy: using the locked package`);
  }
  const got = await fetchDeb(ctx, arch, pkg);
  return { path: join(got.root, rel), sha256: want, from: 'lock' };
}
