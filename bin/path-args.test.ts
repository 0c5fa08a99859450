/**
 * The paths a command line names: a --build-dir that is a regular file is refused
 * by every command that reads one (exit 3, one line), and write errors in an
 * output's folder become one line naming it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { InfraError, UserError } from '../lib/errors.js';
import { runCli } from '../test/helpers/cli.js';
import { buildDirArg, outputFileArg, writingTo } from './path-args.js';

let tmp: DirectoryResult;
let file: string;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  file = join(tmp.path, 'not-a-dir');
  await writeFile(file, 'a regular file\n');
});
afterAll(() => tmp.cleanup());

describe('--build-dir naming a regular file', () => {
  for (const argv of [['status'], ['explain', 'A-01@x86_64'], ['report'], ['report', '--json']]) {
    it(`${argv.join(' ')}: exit 3, one line`, async () => {
      const r = await runCli([...argv, '--build-dir', file]);
      expect(r.exitCode).toBe(3);
      if (argv.includes('--json')) {
        expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, exit_code: 3, error: { kind: 'UserError', message: `--build-dir ${file} is not a directory` } });
      } else {
        expect([r.stdout, r.stderr]).toEqual(['', [`clawos-build: --build-dir ${file} is not a directory`]]);
      }
    });
  }

  it('a build dir that does not exist yet is fine (nothing recorded)', async () => {
    expect(await buildDirArg(join(tmp.path, 'later'))).toBe(join(tmp.path, 'later'));
  });
});

describe('outputFileArg and writingTo', () => {
  it('refuse a missing folder, a file as folder and a directory as the file', async () => {
    const d = join(tmp.path, 'out');
    await mkdir(d);
    await expect(outputFileArg(join(d, 'r.html'), '--out')).resolves.toBe(join(d, 'r.html'));
    await expect(outputFileArg(join(d, 'no', 'r.html'), '--out')).rejects.toThrow(new UserError(`--out ${join(d, 'no', 'r.html')}: folder ${join(d, 'no')} does not exist`));
    await expect(outputFileArg(join(file, 'r.html'), '--out')).rejects.toThrow(new UserError(`--out ${join(file, 'r.html')}: ${file} is not a folder`));
    await expect(outputFileArg(d, '--out')).rejects.toThrow(new UserError(`--out ${d} is a directory; give a file name`));
  });

  it('a system error in the output folder is one line (full disk: infrastructure); anything else is left alone', async () => {
    const out = join(tmp.path, 'x.tar');
    const errno = (code: string, path: string) => Object.assign(new Error(`${code}: some words, open '${path}'`), { code, path });
    const eacces = await writingTo(out, '--out', () => Promise.reject(errno('EACCES', join(tmp.path, '.x.tar.1.tmp')))).catch((e: unknown) => e);
    expect(eacces).toBeInstanceOf(UserError);
    expect((eacces as Error).message).toBe(`cannot write --out ${out}: some words (EACCES)`);
    const full = await writingTo(out, '--out', () => Promise.reject(errno('ENOSPC', out))).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(InfraError);
    expect((full as Error).message).toBe(`cannot write --out ${out}: some words (ENOSPC)`);
    // A read error elsewhere (the bundle) is not the output's fault.
    const elsewhere = errno('EACCES', '/some/bundle/manifest.json');
    await expect(writingTo(out, '--out', () => Promise.reject(elsewhere))).rejects.toBe(elsewhere);
  });
});
