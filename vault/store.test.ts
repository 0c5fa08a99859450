import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { restore, storeHas, storePath, storePut, storePutBytes } from './store.js';
import { sha256Hex } from '../lib/hash.js';

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

describe('content-addressed store', () => {
  it('stores by sha256, once, read-only', async () => {
    const f = join(tmp.path, 'out.bin');
    await writeFile(f, 'kernel bytes');
    const sha = await storePut(tmp.path, f);
    expect(sha).toBe(sha256Hex('kernel bytes'));
    expect(storePath(tmp.path, sha)).toBe(join(tmp.path, 'vault/store/sha256', sha));
    const st = await stat(storePath(tmp.path, sha));
    expect(st.mode & 0o777).toBe(0o444);
    expect(await storePut(tmp.path, f)).toBe(sha);
    expect((await stat(storePath(tmp.path, sha))).ino).toBe(st.ino);
    expect(await storePutBytes(tmp.path, Buffer.from('kernel bytes'))).toBe(sha);
    expect(await storeHas(tmp.path, sha)).toBe(true);
    expect(() => storePath(tmp.path, '../x')).toThrow('storePath: not a sha256 hex digest: ../x');
  });

  it('restores by hard link (no copy), and replaces a changed output', async () => {
    const sha = await storePutBytes(tmp.path, Buffer.from('iso'));
    const dest = join(tmp.path, 'build-engineer/x86_64/clawos.iso');
    expect(await restore(tmp.path, sha, dest)).toBe('link');
    const a = await stat(dest);
    expect(a.ino).toBe((await stat(storePath(tmp.path, sha))).ino);
    expect(await restore(tmp.path, sha, dest)).toBe('present');
    const other = join(tmp.path, 'other.iso');
    await writeFile(other, 'tampered');
    expect(await restore(tmp.path, sha, other)).toBe('link');
    expect(await readFile(other, 'utf8')).toBe('iso');
  });
});
