/**
 * `clawos-build boot --iso FILE` checks that FILE is an ISO 9660 image ("CD001"
 * at byte 0x8001) before anything starts QEMU: exit 3, one line naming the file
 * and what was found.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { UserError } from '../../lib/errors.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { loadMachine } from '../../qemu/machine.js';
import { runCli } from '../../test/helpers/cli.js';
import { bootCommand, checkIso9660 } from './boot.js';

const FAKE = join(repoRootDir(), 'test', 'fakes', 'fake-qemu');
let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

const gone = (p: string) => access(p).then(() => false, () => true);

/** `size` zero bytes with `magic` at 0x8001. */
async function image(name: string, size: number, magic = ''): Promise<string> {
  const b = Buffer.alloc(size);
  b.write(magic, 0x8001, 'latin1');
  const f = join(tmp.path, name);
  await writeFile(f, b);
  return f;
}

describe('boot --iso that is not an ISO 9660 image', () => {
  it('is refused before QEMU starts: exit 3, the file and what byte 0x8001 holds', async () => {
    const notIso = await image('disk.img', 0x9000, 'EFI P');
    const buildDir = join(tmp.path, 'build');
    const args = join(tmp.path, 'qemu-args');
    const run = bootCommand({
      repoRoot: repoRootDir(),
      iso: notIso,
      arch: ['x86_64'],
      repeat: 1,
      jobs: 1,
      buildDir,
      json: false,
      print: () => {},
      printErr: () => {},
      machine: await loadMachine(repoRootDir(), 'qemu/x86_64.yaml'),
      accel: { accel: 'tcg', note: 'test' },
      hostCpus: 1,
      binary: FAKE,
      envFor: () => ({ FAKE_QEMU_ARGS_FILE: args, FAKE_QEMU_FAIL: 'started' }),
    });
    await expect(run).rejects.toThrow(new UserError(`--iso ${notIso} is not an ISO 9660 image: byte 0x8001 holds 45 46 49 20 50, not "CD001" (43 44 30 30 31)`));
    expect(await gone(args)).toBe(true);
    expect(await gone(join(buildDir, 'boots'))).toBe(true);
  });

  it('through the binary: a text file, too short to hold the descriptor', async () => {
    const txt = join(tmp.path, 'notes.txt');
    await writeFile(txt, 'not an ISO\n');
    const r = await runCli(['boot', '--iso', txt, '--arch', 'x86_64', '--build-dir', join(tmp.path, 'b2')]);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --iso ${txt} is not an ISO 9660 image: it is 11 bytes, too short to hold "CD001" at byte 0x8001`] });
    expect(await gone(join(tmp.path, 'b2'))).toBe(true);
  });

  it('a directory, and a missing file', async () => {
    const d = join(tmp.path, 'a-dir');
    await mkdir(d);
    await expect(checkIso9660(d)).rejects.toThrow(new UserError(`--iso ${d} is not a file`));
    await expect(checkIso9660(join(tmp.path, 'none.iso'))).rejects.toThrow(new UserError(`--iso ${join(tmp.path, 'none.iso')}: ISO not found or not readable (ENOENT)`));
  });

  it('an image with "CD001" at 0x8001 passes', async () => {
    await expect(checkIso9660(await image('ok.iso', 0x9000, 'CD001'))).resolves.toBeUndefined();
  });
});
