import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { writeFile, lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { cpioNewc, initramfs, type CpioEntry } from './cpio.js';
import { run } from './proc.js';

const entries: CpioEntry[] = [
  // Deliberately unsorted: the writer sorts.
  { type: 'file', path: 'init', mode: 0o755, data: Buffer.from('#!/bin/busybox sh\necho hi\n') },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'dir', path: 'dev', mode: 0o755 },
  { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  { type: 'dir', path: 'bin', mode: 0o755 },
  { type: 'file', path: 'bin/busybox', mode: 0o755, data: Buffer.from('not really busybox') },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
  { type: 'file', path: 'etc-motd', mode: 0o644, data: Buffer.from('abc') },
];

describe('cpioNewc', () => {
  it('is byte-identical across runs and gzip carries no name or mtime', () => {
    const a = initramfs(entries, 1700000000);
    const b = initramfs([...entries].reverse(), 1700000000);
    expect(a.equals(b)).toBe(true);
    // gzip header: magic, CM=8, FLG=0 (no FNAME), MTIME=0.
    expect([...a.subarray(0, 8)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    const raw = gunzipSync(a);
    expect(raw.subarray(0, 6).toString()).toBe('070701');
    expect(raw.length % 4).toBe(0);
    expect(raw.includes(Buffer.from('TRAILER!!!\0'))).toBe(true);
  });

  it('is listed and extracted by GNU cpio with modes, device numbers and symlink targets', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      await writeFile(join(d, 'a.cpio'), cpioNewc(entries, 1700000000));
      const list = await run(['cpio', '-itv', '-F', join(d, 'a.cpio')], { captureStdout: true, env: { TZ: 'UTC', LC_ALL: 'C' } });
      expect(list.ok).toBe(true);
      const names = await run(['cpio', '-it', '-F', join(d, 'a.cpio')], { captureStdout: true });
      expect(names.stdout.trimEnd().split('\n')).toEqual(['bin', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'etc-motd', 'init', 'tmp']);
      expect(list.stdout).toContain(' bin/sh -> busybox\n');
      expect(list.stdout).toMatch(/^-rwxr-xr-x +1 root +root +18 Nov 14 {2}2023 bin\/busybox$/m);
      const lines = list.stdout.split('\n');
      expect(lines[4]).toMatch(/^crw------- +1 root +root +5, +1 Nov 14 {2}2023 dev\/console$/);
      expect(lines[7]).toMatch(/^drwxrwxrwt /);

      const out = join(d, 'x');
      const ex = await run(['sh', '-c', `mkdir ${out} && cd ${out} && cpio -idv --no-absolute-filenames < ../a.cpio`]);
      // Creating the device node needs root; everything else must extract.
      expect(ex.tail.some((l) => l === 'init')).toBe(true);
      expect((await lstat(join(out, 'init'))).mode & 0o7777).toBe(0o755);
      expect((await lstat(join(out, 'etc-motd'))).mode & 0o7777).toBe(0o644);
      expect(await readlink(join(out, 'bin/sh'))).toBe('busybox');
      expect(await readFile(join(out, 'bin/busybox'), 'utf8')).toBe('not really busybox');
      if (process.getuid?.() === 0) {
        const st = await lstat(join(out, 'dev/console'));
        expect(st.isCharacterDevice()).toBe(true);
        expect(st.rdev).toBe((5 << 8) | 1);
      }
    } finally {
      await cleanup();
    }
  });

  it('refuses entries without their parent directory, duplicates and bad paths', () => {
    expect(() => cpioNewc([{ type: 'file', path: 'etc/x', mode: 0o644, data: Buffer.alloc(0) }], 0)).toThrow(
      "cpio: 'etc/x' has no parent directory entry 'etc'",
    );
    expect(() =>
      cpioNewc(
        [
          { type: 'dir', path: 'a', mode: 0o755 },
          { type: 'dir', path: 'a', mode: 0o755 },
        ],
        0,
      ),
    ).toThrow("cpio: duplicate entry 'a'");
    expect(() => cpioNewc([{ type: 'dir', path: '/a', mode: 0o755 }], 0)).toThrow(
      "cpio: bad entry path '/a' (want a relative path like 'dev/console')",
    );
  });
});
