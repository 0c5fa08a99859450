import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { machine } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { UserError } from '../../lib/errors.js';
import { loadArches } from '../../pipeline/catalog/arch.js';
import { seccompOf, tableAlternatives, tableInTree } from '../../pipeline/security/seccomp-arch.js';
import { compareProfile, parseStraceTrace, type CompiledWhitelist } from '../../pipeline/security/seccomp-profile.js';
import { readSyscallTable } from '../../pipeline/security/seccomp-tables.js';
import { resolveWhitelist, type SeccompWhitelist } from '../../pipeline/security/seccomp-whitelist.js';
import { defaultWhitelistPath, seccompCommand } from './seccomp.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TREE = join(REPO, 'test/fixtures/syscall-tables/linux-6.1');
const HOST = machine();

const cleanups: DirectoryResult[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await d.cleanup();
});

/** The compiled whitelist for an arch as C-08 writes it (the fields the command reads), from the real spec. */
async function compiled(arch: string): Promise<CompiledWhitelist> {
  const a = (await loadArches(REPO)).get(arch)!;
  // The arch's first table layout this tree has (arm64's moved in Linux 6.11).
  const t = await readSyscallTable(TREE, tableInTree(seccompOf(a)!, TREE) ?? tableAlternatives(seccompOf(a)!)[0]!);
  if (!t.ok) throw new Error(t.problems.join('\n'));
  const spec = parse(await readFile(join(REPO, 'specs/p1/seccomp-whitelist.yaml'), 'utf8')) as SeccompWhitelist;
  const r = resolveWhitelist(spec, t.table.numbers, arch);
  return {
    arch,
    default_action: spec.default_action,
    spec: { spec_id: 'P1.2', version: spec.version, path: 'specs/p1/seccomp-whitelist.yaml' },
    syscalls: Object.fromEntries(r.allowed.map((x) => [x.name, x.nr])),
    aliases_applied: r.aliasesApplied,
  };
}

async function buildDirWith(w: CompiledWhitelist): Promise<string> {
  const d = await tmpDir({ unsafeCleanup: true });
  cleanups.push(d);
  const p = defaultWhitelistPath(d.path, w.arch);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, JSON.stringify(w));
  return d.path;
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, print: (s: string) => void out.push(s), printErr: (s: string) => void err.push(s) };
}

describe('strace trace parsing (a recorded `strace -f -qq -n` of sh -c "cat /etc/hostname | wc -c")', () => {
  it('counts calls by number, a call split over unfinished/resumed once, and skips signal lines', async () => {
    const used = parseStraceTrace(await readFile(join(REPO, 'test/fixtures/seccomp/strace-f-n-pipe.txt'), 'utf8'));
    expect(used).toHaveLength(34);
    expect(used.reduce((n, u) => n + u.calls, 0)).toBe(324);
    expect(used.slice(0, 4)).toEqual([
      { nr: 0, name: 'read', calls: 11 },
      { nr: 1, name: 'write', calls: 2 },
      { nr: 3, name: 'close', calls: 48 },
      { nr: 9, name: 'mmap', calls: 51 },
    ]);
    expect(used.find((u) => u.nr === 61)).toEqual({ nr: 61, name: 'wait4', calls: 3 });
  });

  it('compares with the x86_64 whitelist by number', async () => {
    const w = await compiled('x86_64');
    const r = compareProfile(parseStraceTrace(await readFile(join(REPO, 'test/fixtures/seccomp/strace-f-n-pipe.txt'), 'utf8')), w);
    expect(r.notWhitelisted.map((u) => u.name)).toEqual([
      'ioctl', 'pread64', 'access', 'dup2', 'wait4', 'getuid', 'getgid', 'geteuid', 'getegid', 'getppid', 'arch_prctl', 'set_tid_address',
      'fadvise64', 'set_robust_list', 'prlimit64', 'rseq',
    ]);
    expect(r.unused.map((u) => u.name)).toEqual([
      'open', 'stat', 'fstat', 'poll', 'rt_sigprocmask', 'madvise', 'socket', 'connect', 'sendto', 'recvfrom', 'exit', 'prctl',
      'clock_gettime', 'clock_nanosleep', 'epoll_wait', 'epoll_ctl', 'ppoll', 'epoll_pwait', 'eventfd2', 'epoll_create1', 'clone3',
    ]);
    expect(r.aliasesApplied.map((a) => a.name)).toEqual(['open', 'stat', 'recv', 'send', 'poll', 'epoll_wait']);
  });
});

describe.runIf(HOST === 'x86_64')('clawos-build seccomp profile, with the real strace', () => {
  it('/bin/true: the dynamic loader\'s syscalls are not whitelisted (exit 1), the report names them', { timeout: 60_000 }, async () => {
    const buildDir = await buildDirWith(await compiled('x86_64'));
    const c = capture();
    const code = await seccompCommand({ subcommand: 'profile', command: ['/bin/true'], buildDir, json: true, ...c });
    expect(code).toBe(1);
    const j = JSON.parse(c.out.join(''));
    expect(j).toMatchObject({ ok: false, command: ['/bin/true'], command_exit: 0, arch: 'x86_64', whitelist: defaultWhitelistPath(buildDir, 'x86_64'), default_action: 'kill_process' });
    const used = j.used.map((u: { name: string }) => u.name);
    for (const n of ['execve', 'brk', 'mmap', 'exit_group']) expect(used).toContain(n);
    const notW = j.not_whitelisted.map((u: { name: string }) => u.name);
    for (const n of ['arch_prctl', 'set_tid_address']) expect(notW).toContain(n);
    for (const n of ['execve', 'mmap', 'exit_group']) expect(notW).not.toContain(n);
    expect(j.whitelisted_unused.map((u: { name: string }) => u.name)).toContain('socket');
    expect(j.aliases_applied.map((a: { name: string; to: string[] }) => `${a.name}->${a.to.join('+')}`)).toEqual([
      'open->openat', 'stat->newfstatat', 'recv->recvfrom', 'send->sendto', 'poll->ppoll', 'epoll_wait->epoll_pwait',
    ]);
  });

  it('cat /etc/hostname: the text report, with the command\'s output shown', { timeout: 60_000 }, async () => {
    const buildDir = await buildDirWith(await compiled('x86_64'));
    const c = capture();
    const code = await seccompCommand({ subcommand: 'profile', command: ['cat', '/etc/hostname'], buildDir, json: false, ...c });
    expect(code).toBe(1);
    const text = c.out.join('');
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(
      `seccomp profile of \`cat /etc/hostname\` (exit 0) on x86_64 against ${defaultWhitelistPath(buildDir, 'x86_64')} (P1.2 2.0.0, default kill_process)`,
    );
    expect(lines[1]).toMatch(/^used \d+ distinct syscalls in \d+ calls; the whitelist allows 39$/);
    expect(lines[2]).toMatch(/^used but NOT whitelisted \(\d+; the filter would kill the process\): .*arch_prctl\(158\) x1/);
    expect(lines[3]).toMatch(/^whitelisted but unused \(\d+\): .*socket\(41\)/);
    expect(lines[4]).toBe('aliases applied: open -> openat; stat -> newfstatat; recv -> recvfrom; send -> sendto; poll -> ppoll; epoll_wait -> epoll_pwait');
    const hostname = (await readFile('/etc/hostname', 'utf8')).trim();
    expect(c.err.join('')).toContain(`  | ${hostname}\n`);
  });

  it('refuses another arch\'s whitelist, a missing one, an unknown subcommand, no command', async () => {
    const buildDir = await buildDirWith(await compiled('aarch64'));
    const w = defaultWhitelistPath(buildDir, 'aarch64');
    const c = capture();
    await expect(seccompCommand({ subcommand: 'profile', command: ['true'], whitelist: w, buildDir, json: false, ...c })).rejects.toThrow(
      new UserError(`${w} is the aarch64 whitelist; this host is x86_64, and strace sees the host's syscall numbers`),
    );
    const missing = seccompCommand({ subcommand: 'profile', command: ['true'], buildDir, json: false, ...c });
    await expect(missing).rejects.toThrow(`compiled whitelist not found: ${defaultWhitelistPath(buildDir, 'x86_64')}`);
    await expect(missing).rejects.toMatchObject({ hint: 'run `clawos-build p2` (C-08 compiles it) or pass --whitelist FILE' });
    await expect(seccompCommand({ subcommand: 'trace', command: ['true'], buildDir, json: false, ...c })).rejects.toThrow('unknown seccomp subcommand "trace"');
    await expect(seccompCommand({ subcommand: 'profile', command: [], buildDir, json: false, ...c })).rejects.toThrow('seccomp profile needs a command after --');
  });
});
