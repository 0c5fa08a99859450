import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { run } from '../../lib/proc.js';
import { sha256File } from '../../lib/hash.js';
import { InfraError, UserError } from '../../lib/errors.js';
import { cachedDebPath, debsReferenced, fetchDeb, lockedFile, type DebContext } from './debs.js';
import { sha256Hex } from '../../lib/hash.js';
import { fakeAptCtx, lockFor, makeDeb, testArch } from '../../test/helpers/debs-fixtures.js';

async function withTmp(fn: (d: string) => Promise<void>): Promise<void> {
  const { path, cleanup } = await tmpDir({ unsafeCleanup: true });
  try {
    await fn(path);
  } finally {
    await cleanup();
  }
}

describe('fetchDeb (by the lock)', () => {
  it('downloads the locked version into the shared cache by sha256, unpacks, records and then reuses the tree', () =>
    withTmp(async (d) => {
      const deb = await makeDeb(d, 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BB' });
      const calls: string[][] = [];
      const ctx = fakeAptCtx(join(d, 'cache'), { 'busybox-static:arm64': deb }, calls);
      const got = await fetchDeb(ctx, testArch, 'busybox-static');
      const root = join(d, 'cache', 'debs', 'arm64', 'busybox-static', 'root');
      const sha = await sha256File(deb);
      expect(got).toEqual({ package: 'busybox-static', version: '1:1.35.0-4', arch: 'arm64', sha256: sha, root });
      expect(calls[0]).toEqual(['apt-get', 'download', 'busybox-static:arm64=1:1.35.0-4', '-o', 'APT::Sandbox::User=root']);
      expect(await sha256File(cachedDebPath(ctx.downloadCache!, { sha256: sha }))).toBe(sha);
      expect(await readFile(join(root, 'bin', 'busybox'), 'utf8')).toBe('BB');

      calls.length = 0;
      const again = await fetchDeb(ctx, testArch, 'busybox-static');
      expect(again).toEqual(got);
      expect(calls).toEqual([]);
      expect(ctx.logs.at(-1)).toBe(`debs: reusing busybox-static:arm64 1:1.35.0-4 at ${root}`);
    }));

  it('a mirror serving a newer version does not change what is used: the locked one is asked for by version', () =>
    withTmp(async (d) => {
      const locked = await makeDeb(join(d, 'old'), 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'OLD' });
      const newer = await makeDeb(join(d, 'new'), 'busybox-static', '1:1.36.1-1', { 'bin/busybox': 'NEW' });
      const lock = await lockFor({ 'busybox-static:arm64': locked });
      // The mirror: NAME:ARCH serves the newer .deb; the locked version is still served by exact version.
      const ctx = fakeAptCtx(join(d, 'cache'), { 'busybox-static:arm64': newer, 'busybox-static:arm64=1:1.35.0-4': locked }, [], async () => lock);
      const got = await fetchDeb(ctx, testArch, 'busybox-static');
      expect(got.version).toBe('1:1.35.0-4');
      expect(await readFile(join(got.root, 'bin', 'busybox'), 'utf8')).toBe('OLD');
    }));

  it('a locked version the mirror no longer serves: InfraError (exit 4) naming the package, the version and the command', () =>
    withTmp(async (d) => {
      const locked = await makeDeb(join(d, 'old'), 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'OLD' });
      const newer = await makeDeb(join(d, 'new'), 'busybox-static', '1:1.36.1-1', { 'bin/busybox': 'NEW' });
      const lock = await lockFor({ 'busybox-static:arm64': locked });
      const ctx = fakeAptCtx(join(d, 'cache'), { 'busybox-static:arm64': newer }, [], async () => lock);
      const err = await fetchDeb(ctx, testArch, 'busybox-static').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfraError);
      expect((err as Error).message).toBe(
        "busybox-static:arm64 1:1.35.0-4 (locked in inputs.lock.yaml) is not served by the mirror: E: Version '1:1.35.0-4' for 'busybox-static' was not found; " +
          'fix: run `apt-get update`; if busybox-static 1:1.35.0-4 is still not served, run `clawos-build lock --update busybox-static` and commit inputs.lock.yaml',
      );
      expect(existsSync(join(d, 'cache', 'debs', 'arm64', 'busybox-static', 'root'))).toBe(false);
    }));

  it('a .deb whose bytes differ from the lock is refused and nothing is kept or unpacked', () =>
    withTmp(async (d) => {
      const good = await makeDeb(join(d, 'good'), 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'GOOD' });
      const tampered = await makeDeb(join(d, 'bad'), 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'EVIL' });
      const lock = await lockFor({ 'busybox-static:arm64': good });
      const ctx = fakeAptCtx(join(d, 'cache'), { 'busybox-static:arm64': tampered }, [], async () => lock);
      const err = await fetchDeb(ctx, testArch, 'busybox-static').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfraError);
      expect((err as Error).message).toBe(
        `busybox-static:arm64 1:1.35.0-4: the downloaded .deb has sha256 ${await sha256File(tampered)}, the lock says ${await sha256File(good)}; ` +
          'fix: check the apt sources (a mirror serving other bytes under a locked version is not to be trusted); nothing was used',
      );
      expect((await readdir(join(ctx.downloadCache!, 'debs'))).filter((f) => f.endsWith('.deb'))).toEqual([]);
      expect(existsSync(join(d, 'cache', 'debs', 'arm64', 'busybox-static', 'root'))).toBe(false);
    }));

  it('a damaged file in the download cache is fetched again', () =>
    withTmp(async (d) => {
      const deb = await makeDeb(d, 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BB' });
      const calls: string[][] = [];
      const ctx = fakeAptCtx(join(d, 'cache'), { 'busybox-static:arm64': deb }, calls);
      const got = await fetchDeb(ctx, testArch, 'busybox-static');
      await writeFile(cachedDebPath(ctx.downloadCache!, got), 'garbage');
      await writeFile(join(d, 'cache', 'debs', 'arm64', 'busybox-static', 'deb.json'), '{}');
      calls.length = 0;
      await fetchDeb(ctx, testArch, 'busybox-static');
      expect(calls.filter((c) => c[0] === 'apt-get')).toHaveLength(1);
      expect(await sha256File(cachedDebPath(ctx.downloadCache!, got))).toBe(got.sha256);
    }));

  it('a package the lock does not pin is a UserError naming the command that locks it', () =>
    withTmp(async (d) => {
      const ctx = fakeAptCtx(join(d, 'cache'), {});
      const err = await fetchDeb(ctx, testArch, 'nosuch').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toBe('inputs.lock.yaml: nosuch:arm64 is not locked; run `clawos-build lock --update nosuch` and commit inputs.lock.yaml');
    }));

  it('turns a package the apt lists do not know into an InfraError naming the fix', () =>
    withTmp(async (d) => {
      const deb = await makeDeb(d, 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BB' });
      const lock = await lockFor({ 'busybox-static:arm64': deb });
      const ctx = fakeAptCtx(join(d, 'cache'), {}, [], async () => lock);
      await expect(fetchDeb(ctx, testArch, 'busybox-static')).rejects.toThrow(
        'apt-get download busybox-static:arm64=1:1.35.0-4 failed: E: Unable to locate package busybox-static:arm64; fix: the apt lists do not know busybox-static:arm64: run `dpkg --add-architecture arm64 && apt-get update`',
      );
    }));

  it('reports a missing apt-get', () =>
    withTmp(async (d) => {
      const deb = await makeDeb(d, 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BB' });
      const lock = await lockFor({ 'busybox-static:arm64': deb });
      const ctx: DebContext = {
        cacheDir: d,
        downloadCache: join(d, 'dl'),
        lock: async () => lock,
        log: () => {},
        run: (argv, opts) => run(['/nonexistent/apt-get', ...argv.slice(1)], opts),
      };
      await expect(fetchDeb(ctx, testArch, 'busybox-static')).rejects.toThrow(
        'apt-get download busybox-static:arm64=1:1.35.0-4 failed: /nonexistent/apt-get: command not found; fix: clawos-build needs a Debian host with apt-get and dpkg-deb',
      );
    }));

  it("lockedFile: the host copy serves when its sha256 is the locked one, else the locked package's copy", () =>
    withTmp(async (d) => {
      // The "host" file lives under the temp dir; the package carries the same path.
      const rel = join(d, 'host', 'usr', 'share', 'fw.fd').replace(/^\/+/, '');
      const deb = await makeDeb(join(d, 'mirror'), 'fw-pkg', '1.0-1', { [rel]: 'LOCKED FIRMWARE' });
      const base = await lockFor({ 'fw-pkg:all': deb });
      const lock = { ...base, lock: { ...base.lock, debs: base.lock.debs.map((x) => ({ ...x, files: { [rel]: sha256Hex('LOCKED FIRMWARE') } })) } };
      const calls: string[][] = [];
      const ctx = fakeAptCtx(join(d, 'cache'), { 'fw-pkg:all': deb }, calls, async () => lock);
      await mkdir(dirname(`/${rel}`), { recursive: true });
      await writeFile(`/${rel}`, 'LOCKED FIRMWARE');
      expect(await lockedFile(ctx, testArch, 'fw-pkg', `/${rel}`)).toEqual({ path: `/${rel}`, sha256: sha256Hex('LOCKED FIRMWARE'), from: 'host' });
      expect(calls).toEqual([]);
      await writeFile(`/${rel}`, 'SOME OTHER BUILD');
      const got = await lockedFile(ctx, testArch, 'fw-pkg', `/${rel}`);
      expect(got).toEqual({ path: join(d, 'cache', 'debs', 'all', 'fw-pkg', 'root', rel), sha256: sha256Hex('LOCKED FIRMWARE'), from: 'lock' });
      expect(await readFile(got.path, 'utf8')).toBe('LOCKED FIRMWARE');
      expect(ctx.logs).toContain(`debs: host /${rel} is not the locked fw-pkg 1.0-1's copy: using the locked package`);
    }));

  it('an arch-independent package asked for by two arches at once is unpacked once, and both get the tree', () =>
    withTmp(async (d) => {
      const deb = await makeDeb(d, 'src-pkg', '1.0-1', { 'usr/src/t.tar.xz': 'SRC' });
      const calls: string[][] = [];
      const ctx = fakeAptCtx(join(d, 'cache'), { 'src-pkg:all': deb }, calls);
      const other = { ...testArch, name: 'otherarch', debian_arch: 'amd64' };
      const [a, b] = await Promise.all([fetchDeb(ctx, testArch, 'src-pkg'), fetchDeb(ctx, other, 'src-pkg')]);
      expect(a).toEqual(b);
      expect(a.root).toBe(join(d, 'cache', 'debs', 'all', 'src-pkg', 'root'));
      expect(await readFile(join(a.root, 'usr/src/t.tar.xz'), 'utf8')).toBe('SRC');
      expect(calls.filter((c) => c[0] === 'dpkg-deb' && c[1] === '-x')).toHaveLength(1);
    }));

  it('lists the packages templates refer to', () => {
    expect(debsReferenced(['{deb:bb}/x', '-d', '{deb:aa}/y {deb:bb}/z', '/usr/lib'])).toEqual(['aa', 'bb']);
  });
});
