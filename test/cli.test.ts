import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dir } from 'tmp-promise';
import { run } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';
import { COMMANDS, commandHelp, main, parseCli, usage } from '../bin/cli.js';
import { commandsMarkdown, HAND_WRITTEN, withReadmeTable } from '../bin/command-docs.js';

const cli = join(repoRootDir(), 'bin', 'clawos-build.js');
const hasDist = async () => (await run(['test', '-f', join(repoRootDir(), 'dist/bin/cli.js')])).ok;

describe('command line parsing', () => {
  it('defaults to both arches, ./build and the CPU count', () => {
    const p = parseCli(['all']);
    expect(p).toMatchObject({ command: 'all', arch: ['x86_64', 'aarch64'], buildDir: 'build', json: false });
  });
  it('refuses unknown words and bad values with a usage error, not a stack trace', () => {
    expect(() => parseCli(['frobnicate'])).toThrow('unknown command "frobnicate"');
    expect(() => parseCli(['all', '--bogus'])).toThrow("Unknown option '--bogus'");
    expect(() => parseCli(['all', '-j', 'zero'])).toThrow('-j/--jobs takes a positive whole number, not "zero"');
    expect(() => parseCli(['all', '--firmware', 'bios'])).toThrow('--firmware goes with boot, lava and bench');
    expect(() => parseCli(['all', '--iso', 'x.iso'])).toThrow('--iso goes with boot, hw and lava');
    expect(() => parseCli([])).toThrow('no command given');
  });
});

describe('clawos-build binary', () => {
  it('prints usage and exits 2 on a wrong word', async () => {
    if (!(await hasDist())) throw new Error('dist/ missing: run npm run build first');
    const r = await run(['node', cli, 'frobnicate'], { captureStdout: true, tailLines: 200 });
    expect(r.exitCode).toBe(2);
    expect(r.tail[0]).toBe('clawos-build: unknown command "frobnicate"');
    expect(r.tail.join('\n')).toContain('usage: clawos-build <command> [options]');
    expect(r.tail.join('\n')).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('validates the real catalog', async () => {
    const r = await run(['node', cli, 'validate']);
    expect(r.exitCode).toBe(0);
    expect(r.tail).toContain('51 task specs valid (50 required, 1 optional)');
  });

  it('reports a corrupt state file as invalid input with a hint, exit 3', async () => {
    const d = await dir({ unsafeCleanup: true });
    await mkdir(join(d.path, 'b'), { recursive: true });
    await writeFile(join(d.path, 'b', 'state.json'), '{"format": "clawos-build-state@1", "instan');
    // (status reads the vault's event chains; a run opens the state file, the scheduler's index.)
    const r = await run(['node', cli, 'p1', '--build-dir', join(d.path, 'b')]);
    expect(r.exitCode).toBe(3);
    const state = join(d.path, 'b', 'state.json');
    expect(r.tail[0]).toMatch(new RegExp(`^clawos-build: ${state.replace(/[.]/g, '\\.')} is damaged: not valid JSON \\(.+\\)$`));
    // Never "remove the build dir": it holds the signed vault and the kernel build.
    expect(r.tail[1]).toBe(
      `hint: move it aside, and keep the build dir (the vault holds every result; the next run rebuilds the index from it and rebuilds nothing whose outputs it holds): mv ${state} ${state}.damaged`,
    );
    await d.cleanup();
  });

  it('plans 72 task instances (48 catalog tasks plus C-08, F-06 and B-08, 21 of them per arch) for both arches in phase order', async () => {
    const r = await run(['node', cli, 'plan', '--json'], { captureStdout: true });
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout) as { instances: { id: string; phase: string }[] };
    expect(plan.instances).toHaveLength(72);
    const phases = plan.instances.map((i) => i.phase);
    expect([...phases].sort()).toEqual(phases);
    expect(plan.instances.findIndex((i) => i.id === 'A-01@x86_64')).toBeLessThan(plan.instances.findIndex((i) => i.id === 'A-04@x86_64'));
  });

  it('boot needs an ISO and one arch', async () => {
    const r = await run(['node', cli, 'boot', '--arch', 'x86_64']);
    expect(r.exitCode).toBe(3);
    expect(r.tail[0]).toBe('clawos-build: boot needs --iso FILE');
  });
});

describe('the command table', () => {
  const capture = () => {
    const out: string[] = [];
    return { out, io: { repoRoot: repoRootDir(), print: (s: string) => out.push(s), printErr: (s: string) => out.push(s) } };
  };

  it('--help and help print the usage generated from the table; COMMAND --help that entry', async () => {
    const a = capture();
    const b = capture();
    expect(await main(['--help'], a.io)).toBe(0);
    expect(await main(['help'], b.io)).toBe(0);
    expect(a.out.join('')).toBe(`${usage()}\n`);
    expect(b.out.join('')).toBe(a.out.join(''));
    for (const c of COMMANDS) expect(usage()).toContain(`\n  ${c.name}`);
    const v = capture();
    expect(await main(['verify', '--help'], v.io)).toBe(0);
    expect(v.out.join('')).toBe(`${commandHelp(COMMANDS.find((c) => c.name === 'verify')!)}\n`);
    expect(v.out.join('')).toMatch(/^usage: clawos-build verify BUNDLE\|TAR --trust FILE \[--ledger FILE\]/);
  });

  it('the compiler cache asked for and refused at once is a usage error naming both', () => {
    expect(() => parseCli(['all', '--compiler-cache', '--no-compiler-cache'])).toThrow('--no-compiler-cache and --compiler-cache contradict each other: give one');
    expect(() => parseCli(['p2', '--no-compiler-cache', '--compiler-cache-remote', 'redis://h:1'])).toThrow('--no-compiler-cache and --compiler-cache-remote contradict each other: give one');
    expect(parseCli(['all', '--compiler-cache'])).toMatchObject({ command: 'all' });
  });

  it('an option of another command names that command; one owned by several names them all', () => {
    expect(() => parseCli(['report', '--fix'])).toThrow('--fix goes with the doctor command');
    expect(() => parseCli(['validate', '--no-sandbox'])).toThrow('--no-sandbox, --remote-cache, --remote-cache-readonly, --compiler-cache, --no-compiler-cache, --compiler-cache-remote, --icecream, --icecream-jobs, --rootfs-backend, --buildroot and --buildroot-sha256 go with p1..p4 and all');
    expect(() => parseCli(['plan', '--trust', 'k.json'])).toThrow('--trust goes with flash, hw, reproduce, keys, spec, lava, report, release, verify and export');
  });

  it('docs/commands.md and the README command table are what the table generates (npm run docs:commands)', async () => {
    const docs = await readFile(join(repoRootDir(), 'docs', 'commands.md'), 'utf8');
    expect(docs.slice(0, docs.indexOf(HAND_WRITTEN))).toBe(`${commandsMarkdown()}\n`);
    // The README's table only exists once the README has the markers.
    const readme = await readFile(join(repoRootDir(), 'README.md'), 'utf8');
    const refreshed = withReadmeTable(readme);
    if (refreshed !== null) expect(readme).toBe(refreshed);
  });
});
