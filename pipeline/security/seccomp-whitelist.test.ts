import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadArches } from '../catalog/arch.js';
import { seccompOf, tableAlternatives, tableInTree } from './seccomp-arch.js';
import { readSyscallTable } from './seccomp-tables.js';
import { checkSeccompWhitelist, resolveWhitelist, type SeccompWhitelist } from './seccomp-whitelist.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TREE = join(REPO, 'test/fixtures/syscall-tables/linux-6.1');

async function tables(): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  for (const [name, arch] of await loadArches(REPO)) {
    // The arch's first table layout this tree has (arm64's moved in Linux 6.11), as the step picks it.
    const sec = seccompOf(arch)!;
    const r = await readSyscallTable(TREE, tableInTree(sec, TREE) ?? tableAlternatives(sec)[0]!);
    if (!r.ok) throw new Error(r.problems.join('\n'));
    out.set(name, r.table.numbers);
  }
  return out;
}

async function realSpec(): Promise<SeccompWhitelist> {
  return parse(await readFile(join(REPO, 'specs/p1/seccomp-whitelist.yaml'), 'utf8')) as SeccompWhitelist;
}

describe('P1.2 whitelist resolution', () => {
  it('the spec keeps the plan list exactly and adds the six aliases', async () => {
    const spec = await realSpec();
    expect(spec.version).toBe('2.0.0');
    expect(Object.values(spec.syscalls).flat().join(' ')).toBe(
      'mmap munmap mprotect brk madvise read write open openat close stat fstat exit exit_group getpid futex clone clone3 ' +
        'socket connect recv send poll epoll_create1 epoll_ctl epoll_wait clock_gettime clock_nanosleep ' +
        'rt_sigaction rt_sigprocmask rt_sigreturn prctl getrandom eventfd2 pipe2',
    );
    expect(spec.aliases).toEqual({ open: ['openat'], stat: ['newfstatat'], poll: ['ppoll'], recv: ['recvfrom'], send: ['sendto'], epoll_wait: ['epoll_pwait'] });
    expect(checkSeccompWhitelist(spec)).toEqual([]);
  });

  it('the seed list without aliases fails on both arches, naming every missing name per group', async () => {
    const t = await tables();
    const seed = { ...(await realSpec()), aliases: {} };
    expect(resolveWhitelist(seed, t.get('x86_64')!, 'x86_64').problems).toEqual([
      { path: ['syscalls', 'network'], message: 'syscalls.network: not syscalls on x86_64: recv, send' },
    ]);
    expect(resolveWhitelist(seed, t.get('aarch64')!, 'aarch64').problems).toEqual([
      { path: ['syscalls', 'file_io'], message: 'syscalls.file_io: not syscalls on aarch64: open, stat' },
      { path: ['syscalls', 'network'], message: 'syscalls.network: not syscalls on aarch64: recv, send, poll, epoll_wait' },
    ]);
  });

  it('x86_64: every alias adds its targets; open, stat, poll, epoll_wait stay allowed as the syscalls they are there', async () => {
    const t = await tables();
    const r = resolveWhitelist(await realSpec(), t.get('x86_64')!, 'x86_64');
    expect(r.problems).toEqual([]);
    expect(r.aliasesApplied.map((a) => [a.name, a.to.join('+'), a.name_is_syscall])).toEqual([
      ['open', 'openat', true],
      ['stat', 'newfstatat', true],
      ['recv', 'recvfrom', false],
      ['send', 'sendto', false],
      ['poll', 'ppoll', true],
      ['epoll_wait', 'epoll_pwait', true],
    ]);
    const names = r.allowed.map((a) => a.name);
    for (const n of ['open', 'stat', 'poll', 'epoll_wait', 'openat', 'newfstatat', 'ppoll', 'epoll_pwait', 'recvfrom', 'sendto', 'execve']) expect(names).toContain(n);
    for (const n of ['recv', 'send']) expect(names).not.toContain(n);
    // 35 listed names less recv and send, five new alias targets (openat is listed already), and execve for allow_exec.
    expect(r.allowed).toHaveLength(39);
    expect(r.allowed.find((a) => a.name === 'recvfrom')).toEqual({ name: 'recvfrom', nr: 45, via: { alias: 'recv', group: 'network' } });
    expect(r.allowed.find((a) => a.name === 'stat')).toEqual({ name: 'stat', nr: 4, via: { group: 'file_io' } });
    expect(r.allowed.find((a) => a.name === 'execve')).toEqual({ name: 'execve', nr: 59, via: { allow_exec: true } });
    expect(r.allowed.map((a) => a.nr)).toEqual([...r.allowed.map((a) => a.nr)].sort((a, b) => a - b));
  });

  it('aarch64: all six aliases apply; openat appears once', async () => {
    const t = await tables();
    const r = resolveWhitelist(await realSpec(), t.get('aarch64')!, 'aarch64');
    expect(r.problems).toEqual([]);
    expect(r.aliasesApplied.every((a) => !a.name_is_syscall)).toBe(true);
    expect(r.aliasesApplied.map((a) => `${a.name}->${a.to.join('+')}`)).toEqual([
      'open->openat',
      'stat->newfstatat',
      'recv->recvfrom',
      'send->sendto',
      'poll->ppoll',
      'epoll_wait->epoll_pwait',
    ]);
    expect(Object.fromEntries(r.allowed.map((a) => [a.name, a.nr]))).toMatchObject({ openat: 56, newfstatat: 79, ppoll: 73, epoll_pwait: 22, recvfrom: 207, sendto: 206, execve: 221 });
    expect(r.allowed.filter((a) => a.name === 'openat')).toHaveLength(1);
    // open is listed before openat: openat is allowed through the alias, once.
    expect(r.allowed.find((a) => a.name === 'openat')!.via).toEqual({ alias: 'open', group: 'file_io' });
    // 35 listed names, open and openat merged, and execve.
    expect(r.allowed).toHaveLength(35);
  });

  it('an unknown name and a bad alias target are named with the entry', async () => {
    const t = await tables();
    const spec: SeccompWhitelist = { ...(await realSpec()), syscalls: { misc: ['getpid', 'frobnicate'], network: ['recv'] }, aliases: { recv: ['recvfrom', 'recvx'] }, allow_exec: false };
    expect(resolveWhitelist(spec, t.get('x86_64')!, 'x86_64').problems).toEqual([
      { path: ['syscalls', 'misc'], message: 'syscalls.misc: not syscalls on x86_64: frobnicate' },
      { path: ['aliases', 'recv'], message: 'aliases.recv: alias targets not syscalls on x86_64: recvx' },
    ]);
  });

  it('without allow_exec there is no execve', async () => {
    const t = await tables();
    const r = resolveWhitelist({ ...(await realSpec()), allow_exec: false }, t.get('x86_64')!, 'x86_64');
    expect(r.allowed.map((a) => a.name)).not.toContain('execve');
  });

  it('spec-level rules: an alias of an unlisted name, a self alias, a name listed twice', () => {
    expect(
      checkSeccompWhitelist({ syscalls: { a: ['read', 'open'], b: ['read'] }, aliases: { recv: ['recvfrom'], open: ['open'] } }),
    ).toEqual([
      { path: ['syscalls', 'b', 0], message: 'syscalls.b: read is already listed in syscalls.a' },
      { path: ['aliases', 'recv'], message: 'aliases.recv: recv is not in any syscalls group' },
      { path: ['aliases', 'open'], message: 'aliases.open: an alias cannot map a name to itself' },
    ]);
  });
});
