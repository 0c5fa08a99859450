/**
 * `clawos-build export` through the built binary: a wrong --out or --bundle is one
 * line and exit 3 (never a Node stack), a bundle that does not verify is not
 * exported (exit 1, nothing written), and SHA256SUMS stays true for the whole folder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { copyBundle, makeFixture, type Fixture } from '../../test/fixtures/vault/make-bundle.js';
import { runCli } from '../../test/helpers/cli.js';
import { trustDocument } from '../../vault/keys.js';
import { sha256File } from '../../lib/hash.js';

let fx: Fixture;
let trustFile: string;
beforeAll(async () => {
  fx = await makeFixture();
  trustFile = join(fx.root, 'keys.json');
  await writeFile(trustFile, JSON.stringify(trustDocument(fx.trustEntries)));
});
afterAll(() => fx.cleanup());

const exportTo = (out: string, ...more: string[]) => runCli(['export', '--bundle', fx.bundleDir, '--out', out, '--trust', trustFile, ...more]);

describe('export refuses a wrong path in one line, exit 3', () => {
  it('an --out that cannot be written (/proc)', async () => {
    const r = await exportTo('/proc/clawos-bundle.tar');
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: ['clawos-build: cannot write --out /proc/clawos-bundle.tar: no such file or directory (ENOENT)'] });
  });

  it('a directory as --out', async () => {
    const d = join(fx.root, 'a-dir');
    await mkdir(d);
    const r = await exportTo(d);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --out ${d} is a directory; give a file name`] });
    expect(await readdir(d)).toEqual([]);
  });

  it('an --out whose folder is missing, or is a file', async () => {
    const missing = join(fx.root, 'no-such-folder', 'b.tar');
    expect(await exportTo(missing)).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --out ${missing}: folder ${join(fx.root, 'no-such-folder')} does not exist`] });
    const file = join(fx.root, 'plain-file');
    await writeFile(file, 'x');
    expect(await exportTo(join(file, 'b.tar'))).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --out ${join(file, 'b.tar')}: ${file} is not a folder`] });
  });

  it('a missing --bundle, and a file as --bundle', async () => {
    const out = join(fx.root, 'c.tar');
    const missing = join(fx.root, 'no-such-bundle');
    const r = await runCli(['export', '--bundle', missing, '--out', out, '--trust', trustFile]);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --bundle ${missing}: no such bundle directory`] });
    const f = await runCli(['export', '--bundle', trustFile, '--out', out, '--trust', trustFile]);
    expect(f).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --bundle ${trustFile} is not a directory`] });
  });

  it('an --out inside the bundle itself', async () => {
    const out = join(fx.bundleDir, 'self.tar');
    expect(await exportTo(out)).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --out ${out} is inside the bundle ${fx.bundleDir}: writing there would change the bundle`] });
  });

  it('no --trust is a usage error (exit 2)', async () => {
    const r = await runCli(['export', '--bundle', fx.bundleDir, '--out', join(fx.root, 'd.tar')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr[0]).toBe('clawos-build: export needs --trust FILE: the trusted public keys the bundle must verify with (never taken from the build)');
  });
});

describe('export verifies first', () => {
  it('a bundle that does not verify is not exported: exit 1, nothing written', async () => {
    const bad = await copyBundle(fx);
    await writeFile(join(bad, 'artifacts/x86_64/vmlinuz'), 'not the kernel');
    const out = join(fx.root, 'refused');
    await mkdir(out);
    const r = await runCli(['export', '--bundle', bad, '--out', join(out, 'clawos.tar'), '--trust', trustFile]);
    expect(r).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: [`clawos-build: ${bad} does not verify, so it is not exported: HASH_MISMATCH: artifacts/x86_64/vmlinuz: size 14, manifest says 120000`],
    });
    expect(await readdir(out)).toEqual([]);
  });
});

describe('SHA256SUMS is true for the whole folder', () => {
  it('a second export keeps the first tar listed, sorted; a changed or removed file loses its line', async () => {
    const out = join(fx.root, 'twice');
    await mkdir(out);
    const first = await exportTo(join(out, 'b-first.tar'), '--json');
    expect(first.exitCode).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ ok: true, bundle: fx.bundleDir, tar: join(out, 'b-first.tar') });
    const second = await exportTo(join(out, 'a-second.tar'));
    expect(second.exitCode).toBe(0);
    expect(second.stdout.split('\n')[0]).toMatch(/^verified: run run-20251121T000000Z-a1b2 \(release 0\.1\.0-alpha\): /);
    const sha = await sha256File(join(out, 'b-first.tar'));
    expect(await sha256File(join(out, 'a-second.tar'))).toBe(sha);
    expect(await readFile(join(out, 'SHA256SUMS'), 'utf8')).toBe(`${sha}  a-second.tar\n${sha}  b-first.tar\n`);
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out, encoding: 'utf8' })).toBe('a-second.tar: OK\nb-first.tar: OK\n');

    // Lines whose file is gone or no longer matches would make `sha256sum -c` fail: they go; the same name is replaced.
    await writeFile(join(out, 'SHA256SUMS'), `${(await readFile(join(out, 'SHA256SUMS'), 'utf8'))}${'0'.repeat(64)}  gone.iso\n`);
    await writeFile(join(out, 'a-second.tar'), 'changed');
    expect((await exportTo(join(out, 'b-first.tar'))).exitCode).toBe(0);
    expect(await readFile(join(out, 'SHA256SUMS'), 'utf8')).toBe(`${sha}  b-first.tar\n`);
    await rm(out, { recursive: true });
  });
});
