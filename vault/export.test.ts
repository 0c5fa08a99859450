import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { exportBundle, mergedSums } from './export.js';
import { copyBundle, EPOCH, makeFixture, type Fixture } from '../test/fixtures/vault/make-bundle.js';
import { sha256Hex } from '../lib/hash.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture();
});
afterAll(() => fx.cleanup());

describe('exportBundle', () => {
  it('is byte-identical whatever the files\' mtimes and modes, and sha256sum -c accepts SHA256SUMS', async () => {
    await mkdir(join(fx.root, 'ea'));
    await mkdir(join(fx.root, 'eb'));
    const a = await exportBundle(fx.bundleDir, join(fx.root, 'ea', 'clawos.tar'), { sourceDateEpoch: EPOCH });
    const copy = await copyBundle(fx);
    await utimes(join(copy, 'events.jsonl'), new Date(), new Date(2000, 1, 1));
    await chmod(join(copy, 'manifest.json'), 0o600);
    const b = await exportBundle(copy, join(fx.root, 'eb', 'clawos.tar'), { sourceDateEpoch: EPOCH });
    const ab = await readFile(a.tarPath);
    expect(ab.equals(await readFile(b.tarPath))).toBe(true);
    expect(a.sha256).toBe(sha256Hex(ab));
    expect(a.size).toBe(ab.length);
    expect(a.sumsPath).toBe(join(fx.root, 'ea', 'SHA256SUMS'));
    expect(await readFile(a.sumsPath, 'utf8')).toBe(`${a.sha256}  clawos.tar\n`);
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: join(fx.root, 'ea'), encoding: 'utf8' })).toBe('clawos.tar: OK\n');
  });

  it('has sorted entries, mtime = SOURCE_DATE_EPOCH, uid/gid 0, no atime/ctime', async () => {
    const r = await exportBundle(fx.bundleDir, join(fx.root, 'c.tar'), { sourceDateEpoch: EPOCH });
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '--utc', '-tvf', r.tarPath], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } })
      .trim()
      .split('\n');
    const names = listing.map((l) => l.split(/\s+/).pop()!);
    expect(names).toEqual([
      'artifacts/gates/P4/gate-report.json',
      'artifacts/x86_64/clawos-x86_64.iso',
      'artifacts/x86_64/initramfs.cpio.gz',
      'artifacts/x86_64/vmlinuz',
      'attestation.dsse.json',
      'events.jsonl',
      'inputs.lock.yaml',
      'manifest.dsse.json',
      'manifest.json',
    ]);
    for (const l of listing) expect(l).toMatch(/^-rw-r--r-- 0\/0 +\d+ 2025-11-21 00:00:00 /);
    const raw = await readFile(r.tarPath);
    expect(raw.includes(Buffer.from('atime='))).toBe(false);
    expect(raw.includes(Buffer.from('ctime='))).toBe(false);
  });

  it('needs SOURCE_DATE_EPOCH', async () => {
    const saved = process.env.SOURCE_DATE_EPOCH;
    delete process.env.SOURCE_DATE_EPOCH;
    try {
      await expect(exportBundle(fx.bundleDir, join(fx.root, 'd.tar'))).rejects.toThrow('export needs SOURCE_DATE_EPOCH (or sourceDateEpoch)');
    } finally {
      if (saved !== undefined) process.env.SOURCE_DATE_EPOCH = saved;
    }
  });
});

describe('exportBundle with a path too long for ustar', () => {
  it('adds a pax path header (no atime/ctime) and GNU tar reads the full path', async () => {
    const { mkdir: mk, writeFile: wf } = await import('node:fs/promises');
    const dir = join(fx.root, 'longpath');
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.bin`;
    await mk(join(dir, 'd'.repeat(120)), { recursive: true });
    await wf(join(dir, long), 'x');
    const r = await exportBundle(dir, join(fx.root, 'long.tar'), { sourceDateEpoch: EPOCH });
    expect(execFileSync('tar', ['-tf', r.tarPath], { encoding: 'utf8' })).toBe(`${long}\n`);
    const raw = await readFile(r.tarPath);
    expect(raw.includes(Buffer.from('atime='))).toBe(false);
    expect(raw.includes(Buffer.from('ctime='))).toBe(false);
  });
});

describe('mergedSums', () => {
  it("replaces the tar's line, keeps binary-mode and other lines whose file still matches, drops the rest, sorted", async () => {
    const d = join(fx.root, 'sums');
    await mkdir(d);
    await writeFile(join(d, 'b.iso'), 'iso');
    await writeFile(join(d, 'c.txt'), 'now different');
    const iso = sha256Hex('iso');
    await writeFile(
      join(d, 'SHA256SUMS'),
      [`${'1'.repeat(64)}  z.tar`, `${iso} *b.iso`, `${sha256Hex('before')}  c.txt`, `${iso}  ../b.iso`, 'not a line', `${'2'.repeat(64)}  gone`].join('\n') + '\n',
    );
    expect(await mergedSums(join(d, 'SHA256SUMS'), 'z.tar', 'f'.repeat(64))).toBe(`${iso}  b.iso\n${'f'.repeat(64)}  z.tar\n`);
    expect(await mergedSums(join(d, 'none', 'SHA256SUMS'), 'a.tar', 'e'.repeat(64))).toBe(`${'e'.repeat(64)}  a.tar\n`);
  });
});
