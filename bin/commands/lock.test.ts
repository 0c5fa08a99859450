import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { InfraError } from '../../lib/errors.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { loadLock, type LockedDeb } from '../../pipeline/catalog/input-lock.js';
import { lockCommand } from './lock.js';

/**
 * A fake mirror for `apt-cache show`: the real lock's packages at their locked
 * versions (still served), plus newer candidates where `newer` says so.
 */
function fakeMirror(locked: LockedDeb[], newer: Record<string, string>, gone: string[] = []) {
  const calls: string[][] = [];
  const stanza = (d: { name: string; arch: string; version: string; sha256: string; depends?: string }) =>
    `Package: ${d.name}\nVersion: ${d.version}\nArchitecture: ${d.arch}\nSize: 1000\nSHA256: ${d.sha256}\n${d.depends ? `Depends: ${d.depends}\n` : ''}\n`;
  const result = (argv: string[], ok: boolean, stdout = '', tail: string[] = []): RunResult => ({
    argv, reproducer: argv.join(' '), exitCode: ok ? 0 : 100, signal: null, timedOut: false, aborted: false, durationMs: 1, stdout, tail, ok,
  });
  const run = async (argv: string[], _opts?: RunOptions): Promise<RunResult> => {
    calls.push(argv);
    if (argv[0] === 'dpkg-query') return result(argv, true);
    if (argv[0] !== 'apt-cache') return result(argv, false, '', [`E: unexpected ${argv.join(' ')}`]);
    const spec = argv[3]!;
    const [nameArch, version] = spec.split('=') as [string, string | undefined];
    const [name, qual] = nameArch.split(':') as [string, string | undefined];
    // Meta packages name the locked versioned kernel.
    const viaAlias = locked.find((d) => d.alias === name && (qual === undefined || d.arch === qual));
    if (viaAlias && !version) return result(argv, true, stanza({ name, arch: viaAlias.arch, version: viaAlias.version, sha256: 'f'.repeat(64), depends: `${viaAlias.name} (= ${viaAlias.version})` }));
    const d = locked.find((x) => x.name === name && (qual === undefined || x.arch === qual || x.arch === 'all'));
    if (!d) return result(argv, false, '', [`E: No packages found`]);
    const key = `${d.name}:${d.arch}`;
    if (version) {
      if (version === d.version && !gone.includes(key)) return result(argv, true, stanza(d));
      if (version === newer[key]) return result(argv, true, stanza({ ...d, version, sha256: 'e'.repeat(64) }));
      return result(argv, false, '', [`E: No packages found`]);
    }
    return result(argv, true, newer[key] ? stanza({ ...d, version: newer[key]!, sha256: 'e'.repeat(64) }) : stanza(d));
  };
  return { run, calls };
}

let tmp: DirectoryResult;
let repo: string;
let out: string[];
let err: string[];
const io = (run: ReturnType<typeof fakeMirror>['run']) => ({
  print: (s: string) => out.push(s),
  printErr: (s: string) => err.push(s),
  resolve: { run, log: () => {}, downloadCache: join(tmp.path, 'dl') },
});

beforeEach(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
  repo = join(tmp.path, 'repo');
  const real = repoRootDir();
  for (const d of ['specs', 'qemu', 'kernel-config']) await cp(join(real, d), join(repo, d), { recursive: true });
  await cp(join(real, 'inputs.lock.yaml'), join(repo, 'inputs.lock.yaml'));
  out = [];
  err = [];
});
afterEach(() => tmp.cleanup());

describe('clawos-build lock', () => {
  it('the mirror serving exactly the lock: exit 0, every package "="', async () => {
    const locked = (await loadLock(repo)).lock.debs;
    const m = fakeMirror(locked, {});
    expect(await lockCommand({ update: false, names: [], json: false }, repo, io(m.run))).toBe(0);
    const text = out.join('');
    expect(text).toContain('linux-source-6.1:all              6.1.192-2                =\n');
    expect(text.trimEnd().split('\n').at(-1)).toBe('the mirror serves exactly the locked versions');
  });

  it('a newer version on the mirror: exit 1, the package with both versions, and the command that re-locks', async () => {
    const locked = (await loadLock(repo)).lock.debs;
    const m = fakeMirror(locked, { 'busybox-static:arm64': '1:1.36.1-1' });
    expect(await lockCommand({ update: false, names: [], json: false }, repo, io(m.run))).toBe(1);
    const text = out.join('');
    expect(text).toContain('busybox-static:arm64              1:1.35.0-4+deb12u1+b1    1:1.36.1-1\n');
    expect(text.trimEnd().split('\n').at(-1)).toBe('1 package(s) differ from the mirror: `clawos-build lock --update [NAME ...]` re-locks them');
  });

  it('a locked version the mirror no longer serves: InfraError (exit 4) naming the package, the version and the command', async () => {
    const locked = (await loadLock(repo)).lock.debs;
    const m = fakeMirror(locked, { 'linux-source-6.1:all': '6.1.192-9' }, ['linux-source-6.1:all']);
    const e = await lockCommand({ update: false, names: [], json: false }, repo, io(m.run)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InfraError);
    expect((e as Error).message).toBe(
      'linux-source-6.1:all 6.1.192-2 is locked in inputs.lock.yaml but the mirror no longer serves it; fix: run `apt-get update`; if it is still missing, `clawos-build lock --update linux-source-6.1` and commit inputs.lock.yaml',
    );
  });

  it('--update NAME re-locks only that package: the diff printed, the lock rewritten in place, the rest untouched', async () => {
    const before = await loadLock(repo);
    const m = fakeMirror(before.lock.debs, { 'busybox-static:amd64': '1:1.36.1-1', 'busybox-static:arm64': '1:1.36.1-1', 'ovmf:all': '2099.1-1' });
    expect(await lockCommand({ update: true, names: ['busybox-static'], json: false }, repo, io(m.run))).toBe(0);
    expect(out.join('')).toBe(
      [
        'busybox-static:amd64: 1:1.35.0-4+deb12u1+b1 -> 1:1.36.1-1',
        'busybox-static:arm64: 1:1.35.0-4+deb12u1+b1 -> 1:1.36.1-1',
        'inputs.lock.yaml: 2 package(s) changed; review the diff and commit it',
        '',
      ].join('\n'),
    );
    const after = await loadLock(repo);
    const bb = after.lock.debs.filter((d) => d.name === 'busybox-static');
    expect(bb.map((d) => [d.arch, d.version, d.sha256])).toEqual([
      ['amd64', '1:1.36.1-1', 'e'.repeat(64)],
      ['arm64', '1:1.36.1-1', 'e'.repeat(64)],
    ]);
    // ovmf has a newer candidate too, but was not asked for: kept as locked.
    expect(after.lock.debs.filter((d) => d.name !== 'busybox-static')).toEqual(before.lock.debs.filter((d) => d.name !== 'busybox-static'));
    // Written by a rename: no temp file left beside it.
    expect((await readdir(repo)).filter((f) => f.includes('inputs.lock'))).toEqual(['inputs.lock.yaml']);
    expect(await readFile(join(repo, 'inputs.lock.yaml'), 'utf8')).toContain('version: 1:1.36.1-1');
  });

  it('names without --update are a usage error', async () => {
    const m = fakeMirror([], {});
    expect(await lockCommand({ update: false, names: ['busybox-static'], json: false }, repo, io(m.run))).toBe(2);
    expect(err.join('')).toBe('clawos-build: package names go with --update\nusage: clawos-build lock [--json] | lock --update [NAME[=VERSION] ...] [--json]\n');
    expect(m.calls).toEqual([]);
  });
});
