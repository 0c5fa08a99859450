import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { dir } from 'tmp-promise';
import { run } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { parseCli } from '../cli.js';
import { createFlashRenderer, formatProgress, progressBar } from './flash.js';
import type { FlashEvent, FlashResult } from '../../host/flash.js';

const cli = join(repoRootDir(), 'bin', 'clawos-build.js');
type Progress = Extract<FlashEvent, { event: 'progress' }>;
const MiB = 1024 * 1024;
const p = (bytes: number, elapsed: number, phase: 'write' | 'readback' = 'write'): Progress => {
  const bps = Math.round((bytes * 1000) / elapsed);
  return { event: 'progress', phase, bytes, total: 300 * MiB, elapsed_ms: elapsed, bytes_per_s: bps, eta_s: Math.round((300 * MiB - bytes) / bps) };
};

function sink(): { s: PassThrough; text: () => string; isTTY?: boolean } {
  const s = new PassThrough();
  const chunks: string[] = [];
  s.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { s, text: () => chunks.join('') };
}

describe('flash progress', () => {
  it('shows percent, bytes, throughput and ETA, then the time taken', () => {
    expect(formatProgress(p(129 * MiB, 5100))).toBe('write     43%  129.0 MiB of 300.0 MiB  25.3 MiB/s  ETA 0:07');
    expect(formatProgress(p(300 * MiB, 75_000))).toBe('write    100%  300.0 MiB of 300.0 MiB  4.0 MiB/s  done in 1:15');
    expect(progressBar(p(150 * MiB, 10_000), 10)).toBe('[#####-----] write     50%  150.0 MiB of 300.0 MiB  15.0 MiB/s  ETA 0:10');
  });

  it('plain output: a line every few seconds and the last one; a bar on a terminal; JSON lines at most once a second', () => {
    let t = 0;
    const out = sink();
    const err = sink();
    const io = { stdout: out.s, stderr: err.s, stdin: new PassThrough(), plainEveryMs: 5000, now: () => t };
    const plain = createFlashRenderer('plain', io);
    for (const [at, bytes] of [[0, 4], [1000, 8], [5000, 60], [6000, 64], [12000, 300]] as const) {
      t = at;
      plain.onEvent(p(bytes * MiB, Math.max(1, at)));
    }
    expect(err.text().split('\n').filter(Boolean)).toEqual([
      'flash: write      1%  4.0 MiB of 300.0 MiB  3.9 GiB/s  ETA 0:00',
      'flash: write     20%  60.0 MiB of 300.0 MiB  12.0 MiB/s  ETA 0:20',
      'flash: write    100%  300.0 MiB of 300.0 MiB  25.0 MiB/s  done in 0:12',
    ]);

    const tty = sink();
    const bar = createFlashRenderer('tty', { ...io, stderr: tty.s });
    bar.onEvent(p(150 * MiB, 10_000));
    bar.onEvent({ event: 'note', message: 'hello' });
    expect(tty.text()).toBe(`\r${progressBar(p(150 * MiB, 10_000))}\x1b[K\nflash: hello\n`);

    const js = sink();
    t = 0;
    const json = createFlashRenderer('json', { ...io, stdout: js.s });
    for (const at of [1500, 1700, 2600]) {
      t = at;
      json.onEvent(p(MiB * (at / 100), at));
    }
    json.result({ ok: true, status: 'PASS', message: 'm' } as FlashResult);
    const lines = js.text().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.event, l.bytes])).toEqual([
      ['progress', 15 * MiB],
      ['progress', 26 * MiB],
      ['result', undefined],
    ]);
  });
});

describe('flash on the command line', () => {
  it('parses ISO DEVICE and the flash options, refusing them elsewhere', () => {
    expect(parseCli(['flash', 'a.iso', '/dev/sdb', '--yes', '--sha256', 'ab', '--allow-file'])).toMatchObject({
      command: 'flash',
      positionals: ['a.iso', '/dev/sdb'],
      yes: true,
      allowFile: true,
      sha256: 'ab',
    });
    expect(() => parseCli(['boot', '--yes'])).toThrow('--yes, --allow-file, --sha256, --bundle, --trust and --no-results-area go with the flash command');
    expect(() => parseCli(['plan', 'x'])).toThrow('unexpected argument "x" for plan');
    expect(() => parseCli(['flash', '--until-fail'])).toThrow('--until-fail and --junit go with the boot command');
    expect(() => parseCli(['boot', '--fix'])).toThrow('--fix goes with the doctor command');
    expect(parseCli(['boot', '--until-fail', '--junit', 'r.xml', '--repeat', '5', '-j', '2'])).toMatchObject({ untilFail: true, junit: 'r.xml', repeat: 5, jobs: 2 });
    expect(parseCli(['doctor', '--fix', '--json'])).toMatchObject({ command: 'doctor', fix: true, json: true });
  });

  it('the binary: exit 0 after a verified write, 1 on a wrong sha256, 3 without confirmation', async () => {
    if (!(await run(['test', '-f', join(repoRootDir(), 'dist/bin/cli.js')])).ok) throw new Error('dist/ missing: run npm run build first');
    const d = await dir({ unsafeCleanup: true });
    try {
      const data = randomBytes(300_000);
      const iso = join(d.path, 'clawos.iso');
      await writeFile(iso, data);
      const sha = createHash('sha256').update(data).digest('hex');
      const img = join(d.path, 'stick.img');
      const ok = await run(['node', cli, 'flash', iso, img, '--allow-file', '--yes', '--sha256', sha, '--build-dir', join(d.path, 'b')], { captureStdout: true });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toMatch(new RegExp(`^flash: done: clawos\\.iso written to ${img.replace(/[.]/g, '\\.')}: 293\\.0 KiB in \\d+\\.\\d s \\(.*\\); readback from the page cache matches sha256 ${sha}; empty results area at byte 1048576\\n$`));
      expect(readFileSync(img).subarray(0, data.length).equals(data)).toBe(true);

      const bad = await run(['node', cli, 'flash', iso, join(d.path, 'x.img'), '--allow-file', '--yes', '--sha256', '0'.repeat(64), '--build-dir', join(d.path, 'b')], { captureStdout: true });
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout).toBe(`flash: FAILED: the ISO's sha256 is ${sha}, not the ${'0'.repeat(64)} given with --sha256; nothing was written\n`);

      const ask = await run(['node', cli, 'flash', iso, join(d.path, 'y.img'), '--allow-file', '--sha256', sha, '--build-dir', join(d.path, 'b')], { input: '' });
      expect(ask.exitCode).toBe(3);
      expect(ask.tail.slice(-2)).toEqual([`clawos-build: refusing to overwrite ${join(d.path, 'y.img')} without confirmation`, 'hint: pass --yes, or run at a terminal and type the device name when asked']);

      const refusedJson = await run(['node', cli, 'flash', iso, join(d.path, 'z.img'), '--sha256', sha, '--json', '--build-dir', join(d.path, 'b')], { captureStdout: true });
      expect(refusedJson.exitCode).toBe(3);
      const events = refusedJson.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(events.map((e) => e.event)).toEqual(['verified', 'error']);
      expect(events[1]).toEqual({
        event: 'error',
        ok: false,
        exit_code: 3,
        kind: 'UserError',
        message: `${join(d.path, 'z.img')} does not exist`,
        hint: 'give a whole-disk device such as /dev/sdb (lsblk lists them), or --allow-file to create an image file',
      });

      const usage = await run(['node', cli, 'flash', iso]);
      expect(usage.exitCode).toBe(3);
      expect(usage.tail[0]).toBe('clawos-build: flash needs ISO and DEVICE');
    } finally {
      await d.cleanup();
    }
  }, 60_000);
});
