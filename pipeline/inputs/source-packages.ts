/**
 * Debian source packages, fetched BY THE LOCK (inputs.lock.yaml
 * source_packages: name, version, .dsc sha256) for the Buildroot backend:
 * `apt-get source --download-only NAME=VERSION` (needs a deb-src line for the
 * archive; bin/bootstrap deps adds it) into the shared download cache, the .dsc
 * checked against the lock, then `dpkg-source -x`, which checks every file the
 * .dsc lists and applies Debian's patches (its security fixes). The unpacked
 * tree is published by a rename and reused while its record names the locked
 * .dsc, so a half-unpacked tree is never used.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, utimes, lstat, lutimes } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { InfraError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import { LOCK_FILE, type LockedSource } from '../catalog/input-lock.js';
import { downloadCacheDir, lockOf, type DebContext } from './debs.js';

export interface SourceTree {
  name: string;
  version: string;
  dscSha256: string;
  /** The unpacked tree, Debian's patches applied. */
  dir: string;
}

/** The locked entry for a source package, or exit 4 saying how to lock it. */
export async function requireLockedSource(ctx: DebContext, name: string): Promise<LockedSource> {
  const loaded = await lockOf(ctx);
  const s = (loaded.lock.source_packages ?? []).find((x) => x.name === name);
  if (!s) {
    const fix = `run \`clawos-build lock --update ${name}\` and commit ${LOCK_FILE}`;
    throw new InfraError(`Debian source package ${name} is not locked in ${LOCK_FILE} (source_packages); fix: ${fix}`, fix, { transient: false });
  }
  return s;
}

const DEB_SRC_FIX =
  'add a deb-src line for the Debian archive (`bin/bootstrap deps` writes /etc/apt/sources.list.d/clawos-deb-src.sources) and run `apt-get update`';

/**
 * The locked source package unpacked with Debian's patches applied. With
 * `autoreconf`, the tree's build system is regenerated as Debian's own build
 * does (dh_autoreconf), so patches to configure.ac and Makefile.am take effect.
 * Every file's mtime is then set to `epoch`, so make never regenerates files by
 * timestamp accident and the tree is the same on every machine.
 */
export async function fetchSourceTree(ctx: DebContext, s: LockedSource, opts: { autoreconf?: boolean; epoch: number }): Promise<SourceTree> {
  const cache = ctx.downloadCache ?? downloadCacheDir();
  const base = join(cache, 'sources', `${s.name}_${s.version.replace(/:/g, '%3a')}${opts.autoreconf ? '+autoreconf' : ''}`);
  const dir = join(base, 'tree');
  const recordPath = join(base, 'source.json');
  if (existsSync(dir)) {
    const rec = await readFile(recordPath, 'utf8').then((t) => JSON.parse(t) as SourceTree, () => null);
    if (rec && rec.dscSha256 === s.dsc_sha256 && rec.version === s.version) return { ...rec, dir };
  }
  await mkdir(base, { recursive: true });
  const tmp = await mkdtemp(join(base, '.fetch-'));
  try {
    const dl = await ctx.run(['apt-get', 'source', '--download-only', `${s.name}=${s.version}`, '-o', 'APT::Sandbox::User=root'], {
      cwd: tmp,
      timeoutMs: 10 * 60_000,
    });
    if (!dl.ok) {
      const why = dl.spawnError ?? dl.tail.filter((l) => /^E: /.test(l)).join(' / ') ?? `exit ${dl.exitCode}`;
      const noSrc = dl.tail.some((l) => /must put some 'deb-src' URIs|Unable to find a source package/.test(l));
      const fix = noSrc
        ? DEB_SRC_FIX
        : `run \`apt-get update\`; if ${s.name} ${s.version} is still not served, run \`clawos-build lock --update ${s.name}\` and commit ${LOCK_FILE}`;
      const served = !noSrc && !dl.tail.some((l) => /Can not find version|Unable to find a source package/.test(l));
      throw new InfraError(`Debian source package ${s.name} ${s.version} (locked in ${LOCK_FILE}) could not be fetched: ${why}; fix: ${fix}`, fix, { transient: served });
    }
    const dscs = (await readdir(tmp)).filter((f) => f.endsWith('.dsc'));
    if (dscs.length !== 1) throw new InfraError(`apt-get source ${s.name}=${s.version} left ${dscs.length} .dsc files in ${tmp}; fix: run it by hand there`);
    const dsc = join(tmp, dscs[0]!);
    const got = await sha256File(dsc);
    if (got !== s.dsc_sha256) {
      const fix = 'check the apt sources (a mirror serving another .dsc under a locked version is not to be trusted); nothing was used';
      throw new InfraError(`Debian source package ${s.name} ${s.version}: the .dsc has sha256 ${got}, ${LOCK_FILE} says ${s.dsc_sha256}; fix: ${fix}`, fix, { transient: false });
    }
    const unpack = join(tmp, 'tree');
    // dpkg-source checks each file against the .dsc's checksums and applies debian/patches.
    const x = await ctx.run(['dpkg-source', '-x', dsc, unpack], { cwd: tmp });
    if (!x.ok) throw new InfraError(`dpkg-source -x ${dsc} failed: ${x.spawnError ?? x.tail.slice(-3).join(' / ')}; fix: apt-get install dpkg-dev`);
    if (opts.autoreconf) {
      const a = await ctx.run(['autoreconf', '-fi'], { cwd: unpack, timeoutMs: 20 * 60_000 });
      if (!a.ok) throw new InfraError(`autoreconf -fi in ${s.name} ${s.version} failed: ${a.spawnError ?? a.tail.slice(-3).join(' / ')}; fix: apt-get install autoconf automake libtool autopoint libltdl-dev`);
    }
    await setMtimes(unpack, opts.epoch);
    await rm(dir, { recursive: true, force: true });
    await rename(unpack, dir);
    const rec: SourceTree = { name: s.name, version: s.version, dscSha256: s.dsc_sha256, dir };
    await writeJsonAtomic(recordPath, rec);
    ctx.log(`sources: ${s.name} ${s.version} (.dsc sha256=${s.dsc_sha256}) unpacked with Debian's patches at ${dir}`);
    return rec;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function setMtimes(root: string, epoch: number): Promise<void> {
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) await setMtimes(p, epoch);
    if (e.isSymbolicLink()) await lutimes(p, epoch, epoch);
    else await utimes(p, epoch, epoch);
  }
  if ((await lstat(root)).isDirectory()) await utimes(root, epoch, epoch);
}
