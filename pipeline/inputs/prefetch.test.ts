import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/hash.js';
import type { LoadedLock, LockedDeb } from '../catalog/input-lock.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import { cachedDebPath } from './debs.js';
import { otherBackendInputs } from './lock-resolve.js';
import { prefetchLocked } from './prefetch.js';

const repoRoot = resolve(__dirname, '../..');
const tmp = useTmpDirs();

describe('otherBackendInputs (the repository data)', () => {
  it('tags the Buildroot toolchain debs, and nothing every run needs', async () => {
    const forBusybox = await otherBackendInputs(repoRoot, 'busybox');
    // specs/buildroot-offline.yaml: the x86_64 compiler and the aarch64 sysroot.
    expect(forBusybox.has('gcc-12:amd64')).toBe(true);
    expect(forBusybox.has('gcc-12-aarch64-linux-gnu:amd64')).toBe(true);
    expect(forBusybox.has('libc6-dev:arm64')).toBe(true);
    // The busybox rootfs and the QEMU firmware are every run's.
    expect(forBusybox.has('busybox-static:amd64')).toBe(false);
    expect([...forBusybox].some((k) => k.startsWith('ovmf:'))).toBe(false);
    expect(await otherBackendInputs(repoRoot, 'buildroot')).toEqual(new Set());
  });
});

describe('prefetchLocked', () => {
  const deb = (name: string, sha256: string): LockedDeb => ({ name, arch: 'amd64', version: '1.0-1', sha256, size: 3, why: 't' });

  it('fetches nothing a run on another rootfs backend needs', async () => {
    const cache = await tmp();
    const f = join(cache, 'x');
    await writeFile(f, 'abc');
    const sha = await sha256File(f);
    const have = deb('busybox-static', sha);
    await mkdir(dirname(cachedDebPath(cache, have)), { recursive: true });
    await writeFile(cachedDebPath(cache, have), 'abc');
    const lock: LoadedLock = { lock: { lock_version: 1, distribution: 'd', debs: [have, deb('gcc-12', 'f'.repeat(64))] } as LoadedLock['lock'], sha256: 'e'.repeat(64), file: 'inputs.lock.yaml' };
    const ran: string[][] = [];
    const got = await prefetchLocked(
      { run: async (argv) => { ran.push(argv); throw new Error(`unexpected ${argv.join(' ')}`); }, cacheDir: cache, downloadCache: cache, log: () => {} },
      lock,
      ['amd64'],
      new Set(['gcc-12:amd64']),
    );
    expect(got).toEqual({ fetched: [], cached: ['busybox-static:amd64 1.0-1'], host: [], skipped: ['gcc-12:amd64 1.0-1'] });
    expect(ran).toEqual([]);
  });
});
