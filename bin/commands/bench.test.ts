import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRootDir } from '../../lib/repo-root.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import { parseCli } from '../cli.js';
import { bootBenchCommand, bootBenchInputs } from './bench.js';

const REPO = repoRootDir();
const tmp = useTmpDirs();

describe('bench on the command line', () => {
  it('takes stock (the default) or boot, and --firmware only with boot', () => {
    expect(parseCli(['bench'])).toMatchObject({ command: 'bench', positionals: [], runs: 3 });
    expect(parseCli(['bench', 'boot', '--runs', '5', '--firmware', 'uefi'])).toMatchObject({ positionals: ['boot'], runs: 5, firmware: 'uefi' });
    expect(() => parseCli(['bench', 'floor'])).toThrow('unknown bench "floor": bench takes stock (the default) or boot');
    expect(() => parseCli(['bench', 'boot', 'stock'])).toThrow('unexpected argument "stock" for bench: bench takes stock (the default) or boot');
    expect(() => parseCli(['bench', '--firmware', 'seabios'])).toThrow('--firmware goes with bench boot');
  });
});

describe('bench boot', () => {
  it('refuses a build dir without the ISO, kernel or initramfs before any boot, naming the file and the fix', async () => {
    const d = await tmp();
    const out: string[] = [];
    const iso = bootBenchInputs(d, 'x86_64').iso;
    await expect(bootBenchCommand({ repoRoot: REPO, buildDir: d, arch: ['x86_64'], runs: 1, json: false, print: (s) => out.push(s), printErr: (s) => out.push(s) })).rejects.toMatchObject({
      name: 'InfraError',
      message: `${iso} not found: bench boot needs the ISO, kernel and initramfs of a build`,
      hint: 'run `clawos-build all --arch x86_64` (or p4) first, or give --build-dir of a build that has them',
    });
    expect(out).toEqual([]);
  });
});

// A real ISO boot and its real floor, under the real QEMU, where a build has left its ISO (CI step 3).
const BUILD = join(REPO, 'build');
const REAL = bootBenchInputs(BUILD, 'x86_64');
describe.skipIf(!Object.values(REAL).every((f) => existsSync(f)))("bench boot on the build's real x86_64 ISO, kernel and initramfs", () => {
  it('boots the seabios ISO and its -kernel floor once each, both PASS, and writes the figures', async () => {
    const d = await tmp();
    // The build's inputs in a build dir of its own, so the records do not land in the real build.
    for (const [f, link] of Object.values(REAL).map((f, i) => [f, Object.values(bootBenchInputs(d, 'x86_64'))[i]!] as const)) {
      await mkdir(join(link, '..'), { recursive: true });
      await symlink(f, link);
    }
    if (existsSync(join(BUILD, 'cache'))) await symlink(join(BUILD, 'cache'), join(d, 'cache'));
    const out: string[] = [];
    const code = await bootBenchCommand({ repoRoot: REPO, buildDir: d, arch: ['x86_64'], runs: 1, firmware: 'seabios', json: false, print: (s) => out.push(s), printErr: () => {} });
    const benchDir = join(d, 'bench', (await readdir(join(d, 'bench')))[0]!);
    const { results } = JSON.parse(await readFile(join(benchDir, 'boot-floor.json'), 'utf8')) as { results: { variants: { variant: string; iso: { passed: number }; floor: { passed: number }; ratio: number | null; meets_goal: boolean }[] }[] };
    const v = results[0]!.variants[0]!;
    expect([v.variant, v.iso.passed, v.floor.passed]).toEqual(['seabios', 1, 1]);
    expect(v.ratio).toBeGreaterThan(0);
    // Exit 0 only when the goal is met; either way the figures are written and printed.
    expect(code).toBe(v.meets_goal ? 0 : 1);
    expect(out.join('')).toContain('| x86_64 seabios |');
    expect(await readFile(join(benchDir, 'boot-floor.md'), 'utf8')).toContain('| x86_64 seabios |');
  }, 600_000);
});
