/**
 * Target-arch Debian packages (busybox-static:arm64, grub-efi-arm64-bin …):
 * `apt-get download` into the shared cache, `dpkg-deb -x` into debRoot().
 * The unpacked tree is published by a rename, so a half-unpacked tree is never
 * seen, and reused afterwards (recorded in deb.json beside it).
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { debRoot, type ArchSpec } from '../catalog/arch.js';

export interface DebContext {
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  cacheDir: string;
  log(line: string): void;
}

export interface FetchedDeb {
  package: string;
  version: string;
  /** Debian architecture, e.g. arm64. */
  arch: string;
  /** sha256 of the .deb file. */
  sha256: string;
  /** Absolute path of the unpacked tree (debRoot()). */
  root: string;
}

/** Package names a set of arch path templates refers to with {deb:NAME}, sorted, unique. */
export function debsReferenced(templates: string[]): string[] {
  const out = new Set<string>();
  for (const t of templates) for (const m of t.matchAll(/\{deb:([a-z0-9][a-z0-9+.-]+)\}/g)) out.add(m[1]!);
  return [...out].sort();
}

function lastError(r: RunResult): string {
  const e = r.tail.filter((l) => /^E: /.test(l));
  return (e.length ? e : r.tail.slice(-3)).join(' / ').trim() || `exit ${r.exitCode ?? r.signal ?? '?'}`;
}

function failure(what: string, r: RunResult, fix: string): InfraError {
  const why = r.spawnError ?? (r.timedOut ? 'timed out' : lastError(r));
  return new InfraError(`${what} failed: ${why}; fix: ${fix}`, fix);
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Fetch and unpack PKG for ARCH (or reuse the cached tree). Throws InfraError,
 * with the command that fixes it in the message, when apt cannot deliver.
 */
export async function fetchDeb(ctx: DebContext, arch: ArchSpec, pkg: string): Promise<FetchedDeb> {
  const root = debRoot(ctx.cacheDir, arch, pkg);
  const pkgDir = dirname(root);
  const recordPath = join(pkgDir, 'deb.json');
  if (await exists(root)) {
    try {
      const rec = JSON.parse(await readFile(recordPath, 'utf8')) as FetchedDeb;
      if (rec.package === pkg && rec.arch === arch.debian_arch && rec.version && rec.sha256) {
        ctx.log(`debs: reusing ${pkg}:${rec.arch} ${rec.version} at ${root}`);
        return { ...rec, root };
      }
    } catch {
      /* no usable record: fetch again */
    }
  }

  const spec = `${pkg}:${arch.debian_arch}`;
  const debsDir = join(ctx.cacheDir, 'debs', arch.debian_arch);
  await mkdir(debsDir, { recursive: true });
  // A private download dir so the one .deb in it is the one apt just fetched.
  const dl = await mkdtemp(join(debsDir, `.dl-${pkg}-`));
  try {
    // Download as root: under the sandbox (no capabilities) apt cannot drop to _apt,
    // and _apt could not write the task's dir anyway.
    const r = await ctx.run(['apt-get', 'download', spec, '-o', 'APT::Sandbox::User=root'], { cwd: dl, timeoutMs: 10 * 60_000 });
    if (!r.ok) {
      const fix = r.spawnError
        ? 'clawos-build needs a Debian host with apt-get and dpkg-deb'
        : r.tail.some((l) => /Unable to locate package|has no installation candidate|no candidate/.test(l))
          ? `the apt lists do not know ${spec}: run \`dpkg --add-architecture ${arch.debian_arch} && apt-get update\``
          : `check the apt sources and network, then run \`apt-get update\``;
      throw failure(`apt-get download ${spec}`, r, fix);
    }
    const files = (await readdir(dl)).filter((f) => f.endsWith('.deb'));
    if (files.length !== 1) {
      throw new InfraError(
        `apt-get download ${spec} left ${files.length} .deb files in ${dl}; fix: run it by hand there and check its output`,
      );
    }
    const debPath = join(debsDir, files[0]!);
    await rename(join(dl, files[0]!), debPath);

    const v = await ctx.run(['dpkg-deb', '-f', debPath, 'Version'], { captureStdout: true });
    if (!v.ok || !v.stdout.trim()) throw failure(`dpkg-deb -f ${debPath} Version`, v, `delete ${debPath} and run again`);
    const version = v.stdout.trim();

    const unpack = join(dl, 'root');
    const x = await ctx.run(['dpkg-deb', '-x', debPath, unpack]);
    if (!x.ok) throw failure(`dpkg-deb -x ${debPath}`, x, `delete ${debPath} and run again`);
    const sha256 = await sha256File(debPath);

    await mkdir(pkgDir, { recursive: true });
    await rm(root, { recursive: true, force: true });
    try {
      await rename(unpack, root);
    } catch (err) {
      // Another task published the same package between the rm and the rename:
      // same .deb, same tree, so theirs will do.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    const rec: FetchedDeb = { package: pkg, version, arch: arch.debian_arch, sha256, root };
    await writeJsonAtomic(recordPath, rec);
    ctx.log(`debs: ${spec} ${version} sha256=${sha256} unpacked at ${root}`);
    return rec;
  } finally {
    await rm(dl, { recursive: true, force: true });
  }
}

/** fetchDeb for several packages, in order. */
export async function fetchDebs(ctx: DebContext, arch: ArchSpec, pkgs: string[]): Promise<FetchedDeb[]> {
  const out: FetchedDeb[] = [];
  for (const p of pkgs) out.push(await fetchDeb(ctx, arch, p));
  return out;
}
