import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { sha256File } from '../../lib/hash.js';
import { debsReferenced, fetchDeb, type DebContext } from './debs.js';
import { fakeAptCtx, makeDeb, testArch } from '../../test/helpers/debs-fixtures.js';

describe('fetchDeb', () => {
  it('downloads, unpacks, records and then reuses the cached tree', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const deb = await makeDeb(d, 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BB' });
      const calls: string[][] = [];
      const ctx = fakeAptCtx(join(d, 'cache'), { 'busybox-static:arm64': deb }, calls);
      const got = await fetchDeb(ctx, testArch, 'busybox-static');
      const root = join(d, 'cache', 'debs', 'arm64', 'busybox-static', 'root');
      expect(got).toEqual({ package: 'busybox-static', version: '1:1.35.0-4', arch: 'arm64', sha256: await sha256File(deb), root });
      expect(await readFile(join(root, 'bin', 'busybox'), 'utf8')).toBe('BB');
      const rec = JSON.parse(await readFile(join(d, 'cache', 'debs', 'arm64', 'busybox-static', 'deb.json'), 'utf8'));
      expect(rec.version).toBe('1:1.35.0-4');

      calls.length = 0;
      const again = await fetchDeb(ctx, testArch, 'busybox-static');
      expect(again).toEqual(got);
      expect(calls).toEqual([]);
      expect(ctx.logs.at(-1)).toBe(`debs: reusing busybox-static:arm64 1:1.35.0-4 at ${root}`);
    } finally {
      await cleanup();
    }
  });

  it('turns an unknown package into an InfraError naming the fix', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const ctx = fakeAptCtx(join(d, 'cache'), {});
      await expect(fetchDeb(ctx, testArch, 'nosuch')).rejects.toThrow(
        'apt-get download nosuch:arm64 failed: E: Unable to locate package nosuch:arm64; fix: the apt lists do not know nosuch:arm64: run `dpkg --add-architecture arm64 && apt-get update`',
      );
    } finally {
      await cleanup();
    }
  });

  it('reports a missing apt-get', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const ctx: DebContext = {
        cacheDir: d,
        log: () => {},
        run: (argv, opts) => run(['/nonexistent/apt-get', ...argv.slice(1)], opts),
      };
      await expect(fetchDeb(ctx, testArch, 'busybox-static')).rejects.toThrow(
        'apt-get download busybox-static:arm64 failed: /nonexistent/apt-get: command not found; fix: clawos-build needs a Debian host with apt-get and dpkg-deb',
      );
    } finally {
      await cleanup();
    }
  });

  it('lists the packages templates refer to', () => {
    expect(debsReferenced(['{deb:bb}/x', '-d', '{deb:aa}/y {deb:bb}/z', '/usr/lib'])).toEqual(['aa', 'bb']);
  });
});
