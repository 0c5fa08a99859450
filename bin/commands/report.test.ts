/**
 * `clawos-build report` through the built binary: an --out or --metrics that
 * cannot be written is one line and exit 3 (never exit 70 with a stack), and no
 * folder is created at a mistyped path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { access, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { runCli } from '../../test/helpers/cli.js';

let tmp: DirectoryResult;
let buildDir: string;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  buildDir = join(tmp.path, 'build');
  await mkdir(buildDir);
});
afterAll(() => tmp.cleanup());

const gone = (p: string) => access(p).then(() => false, () => true);

describe('report refuses an output it cannot write, exit 3', () => {
  it('--out /proc/x', async () => {
    const r = await runCli(['report', '--build-dir', buildDir, '--out', '/proc/clawos-report.html']);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: ['clawos-build: cannot write --out /proc/clawos-report.html: no such file or directory (ENOENT)'] });
  });

  it('--out in a folder that does not exist: named, and not created', async () => {
    const out = join(tmp.path, 'no', 'such', 'report.html');
    const r = await runCli(['report', '--build-dir', buildDir, '--out', out]);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --out ${out}: folder ${join(tmp.path, 'no', 'such')} does not exist`] });
    expect(await gone(join(tmp.path, 'no'))).toBe(true);
  });

  it('the default --out of a build dir that does not exist: named, and not created', async () => {
    const missing = join(tmp.path, 'typo-build');
    const r = await runCli(['report', '--build-dir', missing]);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --out ${join(missing, 'report.html')}: folder ${missing} does not exist`] });
    expect(await gone(missing)).toBe(true);
  });

  it('--metrics in a folder that does not exist, even with --json', async () => {
    const prom = join(tmp.path, 'nowhere', 'clawos.prom');
    const r = await runCli(['report', '--build-dir', buildDir, '--metrics', prom, '--json']);
    expect(r.exitCode).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, exit_code: 3, error: { kind: 'UserError', message: `--metrics ${prom}: folder ${join(tmp.path, 'nowhere')} does not exist` } });
    expect(await gone(join(tmp.path, 'nowhere'))).toBe(true);
  });

  it('a writable --out still gets the report', async () => {
    const out = join(tmp.path, 'r.html');
    const r = await runCli(['report', '--build-dir', buildDir, '--out', out]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`report: ${out}`);
    expect(await readdir(tmp.path)).toContain('r.html');
  });
});
