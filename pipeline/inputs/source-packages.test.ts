import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../../lib/proc.js';
import { sha256File } from '../../lib/hash.js';
import { InfraError } from '../../lib/errors.js';
import type { LoadedLock, LockedSource } from '../catalog/input-lock.js';
import { parseShowsrc } from './lock-resolve.js';
import { fetchSourceTree, requireLockedSource } from './source-packages.js';

/** A real 3.0 (quilt) source package whose one Debian patch turns "old" into "new". */
async function makeSourcePackage(dir: string): Promise<string> {
  const build = join(dir, 'build');
  const src = join(build, 'hello-1.0');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'hello.txt'), 'old\n');
  let r = await run(['tar', '-czf', 'hello_1.0.orig.tar.gz', 'hello-1.0'], { cwd: build });
  expect(r.ok).toBe(true);
  await mkdir(join(src, 'debian', 'patches'), { recursive: true });
  await mkdir(join(src, 'debian', 'source'), { recursive: true });
  await writeFile(join(src, 'debian', 'source', 'format'), '3.0 (quilt)\n');
  await writeFile(join(src, 'debian', 'changelog'), 'hello (1.0-1) unstable; urgency=medium\n\n  * t\n\n -- t <t@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n');
  await writeFile(join(src, 'debian', 'control'), 'Source: hello\nMaintainer: t <t@example.org>\n\nPackage: hello\nArchitecture: all\nDescription: t\n');
  await writeFile(join(src, 'debian', 'patches', 'series'), 'fix.patch\n');
  await writeFile(join(src, 'debian', 'patches', 'fix.patch'), '--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-old\n+new\n');
  r = await run(['dpkg-source', '-b', 'hello-1.0'], { cwd: build });
  expect(r.ok, r.tail.join('\n')).toBe(true);
  return build;
}

/** ctx.run with a fake `apt-get source` that copies the package from `pool` (or fails as apt does). */
function ctxWith(pool: string | null, cache: string, lock: LockedSource[], logs: string[]) {
  return {
    cacheDir: cache,
    downloadCache: cache,
    log: (l: string) => logs.push(l),
    lock: async (): Promise<LoadedLock> => ({ lock: { lock_version: 1, distribution: 'd', debs: [], source_packages: lock, host_tools: {} }, sha256: 'x', file: 'inputs.lock.yaml' }),
    async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
      if (argv[0] === 'apt-get' && argv[1] === 'source') {
        if (!pool) {
          return { argv, reproducer: argv.join(' '), exitCode: 100, signal: null, timedOut: false, aborted: false, durationMs: 1, stdout: '', ok: false,
            tail: ["E: You must put some 'deb-src' URIs in your sources.list"] };
        }
        for (const f of await readdir(pool)) if (/\.(dsc|tar\.\w+)$/.test(f)) await copyFile(join(pool, f), join(opts.cwd!, f));
        return { argv, reproducer: argv.join(' '), exitCode: 0, signal: null, timedOut: false, aborted: false, durationMs: 1, stdout: '', tail: [], ok: true };
      }
      return run(argv, opts);
    },
  };
}

describe('Debian source packages by the lock', () => {
  it("unpacks the locked package with Debian's patches applied, every mtime at the epoch, and reuses it", async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const pool = await makeSourcePackage(d);
      const dsc = await sha256File(join(pool, 'hello_1.0-1.dsc'));
      const locked = { name: 'hello', version: '1.0-1', dsc_sha256: dsc, why: 't' };
      const logs: string[] = [];
      const ctx = ctxWith(pool, join(d, 'cache'), [locked], logs);
      expect(await requireLockedSource(ctx, 'hello')).toEqual(locked);
      const t = await fetchSourceTree(ctx, locked, { epoch: 1700000000 });
      expect(await readFile(join(t.dir, 'hello.txt'), 'utf8')).toBe('new\n');
      expect((await stat(join(t.dir, 'hello.txt'))).mtimeMs).toBe(1700000000_000);
      expect(logs.at(-1)).toBe(`sources: hello 1.0-1 (.dsc sha256=${dsc}) unpacked with Debian's patches at ${t.dir}`);
      // Reused: no apt-get this time.
      const again = await fetchSourceTree(ctxWith(null, join(d, 'cache'), [locked], logs), locked, { epoch: 1700000000 });
      expect(again.dir).toBe(t.dir);
    } finally {
      await cleanup();
    }
  });

  it('refuses a .dsc whose sha256 is not the locked one, and publishes nothing', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const pool = await makeSourcePackage(d);
      const dsc = await sha256File(join(pool, 'hello_1.0-1.dsc'));
      const locked = { name: 'hello', version: '1.0-1', dsc_sha256: '0'.repeat(64), why: 't' };
      const err = await fetchSourceTree(ctxWith(pool, join(d, 'cache'), [locked], []), locked, { epoch: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfraError);
      expect((err as Error).message).toBe(
        `Debian source package hello 1.0-1: the .dsc has sha256 ${dsc}, inputs.lock.yaml says ${'0'.repeat(64)}; ` +
          'fix: check the apt sources (a mirror serving another .dsc under a locked version is not to be trusted); nothing was used',
      );
      expect(await readdir(join(d, 'cache', 'sources', 'hello_1.0-1'))).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it('says what to do when apt has no deb-src line, or the package is not locked', async () => {
    const locked = { name: 'hello', version: '1.0-1', dsc_sha256: '0'.repeat(64), why: 't' };
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const ctx = ctxWith(null, d, [locked], []);
      await expect(fetchSourceTree(ctx, locked, { epoch: 1 })).rejects.toThrow(
        "Debian source package hello 1.0-1 (locked in inputs.lock.yaml) could not be fetched: E: You must put some 'deb-src' URIs in your sources.list; " +
          'fix: add a deb-src line for the Debian archive (`bin/bootstrap deps` writes /etc/apt/sources.list.d/clawos-deb-src.sources) and run `apt-get update`',
      );
      await expect(requireLockedSource(ctx, 'tar')).rejects.toThrow(
        'Debian source package tar is not locked in inputs.lock.yaml (source_packages); fix: run `clawos-build lock --update tar` and commit inputs.lock.yaml',
      );
    } finally {
      await cleanup();
    }
  });

  it("reads apt-cache showsrc: each stanza's version and .dsc sha256", () => {
    const text =
      'Package: tar\nBinary: tar\nVersion: 1.34+dfsg-1.2+deb12u1\nChecksums-Sha256:\n ' + 'a'.repeat(64) + ' 2093 tar_1.34+dfsg-1.2+deb12u1.dsc\n ' + 'b'.repeat(64) +
      ' 1 tar_1.34+dfsg.orig.tar.xz\nDirectory: pool/main/t/tar\n\nPackage: tar-doc\nVersion: 9\nChecksums-Sha256:\n ' + 'c'.repeat(64) + ' 1 tar-doc_9.dsc\n';
    expect(parseShowsrc(text, 'tar')).toEqual([{ version: '1.34+dfsg-1.2+deb12u1', dscSha256: 'a'.repeat(64) }]);
  });
});
