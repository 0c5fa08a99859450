import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile, copyFile, rm } from 'node:fs/promises';
import { machine } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { run } from '../../lib/proc.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { loadArches, type ArchSpec } from '../catalog/arch.js';
import { expandParams } from '../catalog/task-spec.js';
import { fakeStepContext } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { decodeFilter, evaluate, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS } from '../security/seccomp-bpf.js';
import { builtinSteps } from './index.js';
import { seccompCompileStep } from './seccomp-compile.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TREE = join(REPO, 'test/fixtures/syscall-tables/linux-6.1');
// Linux 6.12 (the default kernel): arm64's numbers are in scripts/syscall.tbl.
const TREE_612 = join(REPO, 'test/fixtures/syscall-tables/linux-6.12');
const SPEC = 'specs/p1/seccomp-whitelist.yaml';
const HOST_IS_X86 = machine() === 'x86_64';

const tmp = useTmpDirs();

let archesP: Promise<Map<string, ArchSpec>> | null = null;
const arch = async (name: string) => (await (archesP ??= loadArches(REPO))).get(name)!;

/** tasks/C-08.yaml's `with:` for an arch, as the scheduler expands it. */
async function taskParams(archName: string): Promise<Record<string, unknown>> {
  const spec = parse(await readFile(join(REPO, 'tasks/C-08.yaml'), 'utf8')) as { with: Record<string, unknown> };
  return expandParams(spec.with, archName) as Record<string, unknown>;
}

const realSpecText = () => readFile(join(REPO, SPEC), 'utf8');

interface Setup {
  build: string;
  specText?: string;
  srcDir?: string;
  tarball?: string | null;
  kernelSha?: string;
  archName: string;
}

/** A build dir as C-01 and A-01 leave it: the frozen whitelist and the kernel's build-info.json. */
async function prepare(o: Setup): Promise<void> {
  const text = o.specText ?? (await realSpecText());
  await mkdir(join(o.build, 'security'), { recursive: true });
  await writeFile(join(o.build, 'security/seccomp-whitelist.yaml'), text);
  const version = /^version: (\S+)$/m.exec(text)?.[1] ?? '?';
  await writeFile(
    join(o.build, 'security/seccomp-whitelist.freeze.json'),
    JSON.stringify({ spec_id: 'P1.2', version, path: SPEC, sha256: sha256Hex(text), schema_sha256: 'x', frozen_at: '2026-01-01T00:00:00.000Z' }),
  );
  const kdir = join(o.build, 'kernel-engineer', o.archName);
  await mkdir(kdir, { recursive: true });
  await writeFile(
    join(kdir, 'build-info.json'),
    JSON.stringify({ arch: o.archName, source: { tarball: o.tarball ?? null, sha256: o.kernelSha ?? 'a'.repeat(64), srcDir: o.srcDir ?? TREE } }),
  );
}

async function compile(o: Setup & { repoRoot?: string; params?: Record<string, unknown> }) {
  await prepare(o);
  const ctx = fakeStepContext({
    repoRoot: o.repoRoot ?? REPO,
    buildDir: o.build,
    arch: await arch(o.archName),
    params: o.params ?? (await taskParams(o.archName)),
    outDir: join(o.build, 'security', o.archName),
  });
  const outcome = await seccompCompileStep.run(ctx);
  const out = join(o.build, 'security', o.archName, 'seccomp');
  return { outcome, out, ctx };
}

const specWith = async (edit: (t: string) => string) => edit(await realSpecText());

describe('seccomp-compile step', () => {
  it('is registered and declares its contract from the arch data', async () => {
    expect(builtinSteps().get('seccomp-compile')).toBe(seccompCompileStep);
    expect(seccompCompileStep.toolPackages(await arch('aarch64'), {})).toEqual(['gcc-aarch64-linux-gnu', 'libc6-dev-arm64-cross']);
    expect(seccompCompileStep.toolPackages(await arch('x86_64'), {})).toEqual(['gcc', 'libc6-dev']);
    expect(seccompCompileStep.implicitInputs!(null, await taskParams('x86_64'))).toEqual([
      'buildroot-external/package/clawos-seccomp-loader/src/clawos-seccomp-exec.c',
      'specs/schemas/p1/seccomp-whitelist.schema.json',
    ]);
  });

  it('x86_64: filter, description, env and a static loader; the six aliases add their targets, open/stat/poll/epoll_wait stay', { timeout: 60_000 }, async () => {
    const build = await tmp();
    const { outcome, out } = await compile({ build, archName: 'x86_64' });
    expect(outcome.status, outcome.message).toBe('PASS');
    const bpf = await readFile(join(out, 'seccomp-filter.bpf'));
    const desc = JSON.parse(await readFile(join(out, 'seccomp-filter.json'), 'utf8'));
    expect(desc).toMatchObject({
      arch: 'x86_64',
      audit_arch: '0xc000003e',
      x32_bit: '0x40000000',
      byte_order: 'little',
      default_action: 'kill_process',
      default_action_value: '0x80000000',
      allow_exec: true,
      spec: { spec_id: 'P1.2', version: '2.0.0', path: SPEC },
      kernel_source: { sha256: 'a'.repeat(64), tarball: null },
      tables: [{ path: 'arch/x86/entry/syscalls/syscall_64.tbl', sha256: await sha256File(join(TREE, 'arch/x86/entry/syscalls/syscall_64.tbl')) }],
      aliases_applied: [
        { name: 'open', group: 'file_io', to: ['openat'], name_is_syscall: true },
        { name: 'stat', group: 'file_io', to: ['newfstatat'], name_is_syscall: true },
        { name: 'recv', group: 'network', to: ['recvfrom'], name_is_syscall: false },
        { name: 'send', group: 'network', to: ['sendto'], name_is_syscall: false },
        { name: 'poll', group: 'network', to: ['ppoll'], name_is_syscall: true },
        { name: 'epoll_wait', group: 'network', to: ['epoll_pwait'], name_is_syscall: true },
      ],
      instructions: 6 + 39 + 2,
      filter: { path: 'seccomp-filter.bpf', sha256: sha256Hex(bpf), bytes: bpf.length },
      probe: { allowed: { name: 'getpid', nr: 39, expect: 'allowed' }, denied: { name: 'getppid', nr: 110, expect: 'killed SIGSYS' } },
      loader: {
        path: 'clawos-seccomp-exec',
        source: 'buildroot-external/package/clawos-seccomp-loader/src/clawos-seccomp-exec.c',
        elf_machine: 62,
        compile: [
          'gcc', '-static', '-O2', '-Wall', '-Wextra', '-Werror', '-Wl,--build-id=none', '-ffile-prefix-map=<source dir>=.',
          '-o', 'clawos-seccomp-exec', 'buildroot-external/package/clawos-seccomp-loader/src/clawos-seccomp-exec.c',
        ],
      },
    });
    expect(Object.keys(desc.syscalls)).toHaveLength(39);
    expect(desc.syscalls).toMatchObject({ read: 0, open: 2, stat: 4, poll: 7, getpid: 39, recvfrom: 45, sendto: 44, execve: 59, epoll_wait: 232, newfstatat: 262, ppoll: 271, epoll_pwait: 281, clone3: 435 });
    // The written bytes are the filter the description disassembles, and it allows exactly the list.
    const prog = decodeFilter(bpf);
    expect(prog).toHaveLength(desc.instructions);
    expect(desc.disassembly.slice(0, 6)).toEqual([
      '0000: ld [4] ; arch',
      '0001: jeq #0xc000003e jt 3 jf 2',
      '0002: ret KILL_PROCESS',
      '0003: ld [0] ; nr',
      '0004: jset #0x40000000 jt 5 jf 6',
      '0005: ret KILL_PROCESS',
    ]);
    const allowed = new Set(Object.values(desc.syscalls as Record<string, number>));
    for (let nr = 0; nr < 460; nr++) expect(evaluate(prog, { nr, arch: 0xc000003e })).toBe(allowed.has(nr) ? SECCOMP_RET_ALLOW : SECCOMP_RET_KILL_PROCESS);
    expect(await readFile(join(out, 'seccomp-filter.env'), 'utf8')).toBe(
      [
        '# Written by clawos-build (seccomp-compile, C-08): what the guest check seccomp-filter needs.',
        "SECCOMP_ARCH='x86_64'",
        "SECCOMP_FILTER='seccomp-filter.bpf'",
        "SECCOMP_DEFAULT_ACTION='kill_process'",
        "SECCOMP_ALLOWED='getpid'",
        'SECCOMP_ALLOWED_NR=39',
        "SECCOMP_DENIED='getppid'",
        'SECCOMP_DENIED_NR=110',
        "SECCOMP_DENIED_EXPECT='killed SIGSYS'",
        '',
      ].join('\n'),
    );
    const file = await run(['file', '-b', join(out, 'clawos-seccomp-exec')], { captureStdout: true });
    expect(file.stdout).toMatch(/^ELF 64-bit LSB executable, x86-64, .*statically linked/);
    if (HOST_IS_X86) {
      expect(desc.probe.host).toEqual({ ran: true, results: { getpid: 'allowed', getppid: 'killed SIGSYS' } });
      expect(outcome.message).toBe(
        'x86_64: 39 syscalls allowed, aliases open->openat stat->newfstatat recv->recvfrom send->sendto poll->ppoll epoll_wait->epoll_pwait, ' +
          'default kill_process, 47 instructions; ' +
          `clawos-seccomp-exec static ${desc.loader.bytes} bytes; on this host: getpid allowed, getppid killed SIGSYS`,
      );
    }
    expect(outcome.evidence!.map((e) => e.path)).toEqual([
      'security/x86_64/seccomp/seccomp-filter.bpf',
      'security/x86_64/seccomp/seccomp-filter.json',
      'security/x86_64/seccomp/clawos-seccomp-exec',
    ]);
  });

  it('aarch64: the six aliases apply, the loader is an AArch64 static binary, the host cannot run it', { timeout: 60_000 }, async () => {
    const build = await tmp();
    const { outcome, out } = await compile({ build, archName: 'aarch64' });
    expect(outcome.status, outcome.message).toBe('PASS');
    const desc = JSON.parse(await readFile(join(out, 'seccomp-filter.json'), 'utf8'));
    expect(desc.aliases_applied.map((a: { name: string }) => a.name)).toEqual(['open', 'stat', 'recv', 'send', 'poll', 'epoll_wait']);
    expect(desc).toMatchObject({
      audit_arch: '0xc00000b7',
      x32_bit: null,
      tables: [{ path: 'include/uapi/asm-generic/unistd.h' }, { path: 'arch/arm64/include/uapi/asm/unistd.h' }],
      probe: { allowed: { name: 'getpid', nr: 172 }, denied: { name: 'getppid', nr: 173 } },
      loader: { elf_machine: 183 },
      instructions: 4 + 35 + 2,
    });
    expect(desc.disassembly).not.toContain('jset');
    if (HOST_IS_X86) expect(desc.probe.host).toEqual({ ran: false, why: 'the host is x86_64, the filter is for aarch64' });
    const file = await run(['file', '-b', join(out, 'clawos-seccomp-exec')], { captureStdout: true });
    expect(file.stdout).toMatch(/^ELF 64-bit LSB executable, ARM aarch64, .*statically linked/);
  });

  it('aarch64 on Linux 6.12: the first table alternative (syscall_64.tbl) is read, with the same numbers and filter as on 6.1', { timeout: 60_000 }, async () => {
    const old = await compile({ build: await tmp(), archName: 'aarch64' });
    const { outcome, out } = await compile({ build: await tmp(), archName: 'aarch64', srcDir: TREE_612 });
    expect(outcome.status, outcome.message).toBe('PASS');
    const desc = JSON.parse(await readFile(join(out, 'seccomp-filter.json'), 'utf8'));
    expect(desc.tables).toEqual([{ path: 'scripts/syscall.tbl', sha256: await sha256File(join(TREE_612, 'scripts/syscall.tbl')) }]);
    expect(desc.probe).toMatchObject({ allowed: { name: 'getpid', nr: 172 }, denied: { name: 'getppid', nr: 173 } });
    // Every whitelisted syscall has the number it had on 6.1: the same filter program.
    expect(await readFile(join(out, 'seccomp-filter.bpf'))).toEqual(await readFile(join(old.out, 'seccomp-filter.bpf')));
  });

  it('when the kernel tree is gone, the table alternatives are tried in the tarball in order (6.1: no scripts/syscall.tbl)', { timeout: 60_000 }, async () => {
    const d = await tmp();
    const top = join(d, 'linux-fake');
    for (const rel of ['include/uapi/asm-generic/unistd.h', 'arch/arm64/include/uapi/asm/unistd.h']) {
      await mkdir(dirname(join(top, rel)), { recursive: true });
      await copyFile(join(TREE, rel), join(top, rel));
    }
    const tarball = join(d, 'linux-fake.tar.xz');
    expect((await run(['tar', '-cJf', tarball, '-C', d, 'linux-fake'])).ok).toBe(true);
    const sha = await sha256File(tarball);
    const r = await compile({ build: await tmp(), archName: 'aarch64', srcDir: join(d, 'gone'), tarball, kernelSha: sha });
    expect(r.outcome.status, r.outcome.message).toBe('PASS');
    const desc = JSON.parse(await readFile(join(r.out, 'seccomp-filter.json'), 'utf8'));
    expect(desc.tables.map((t: { path: string }) => t.path)).toEqual(['include/uapi/asm-generic/unistd.h', 'arch/arm64/include/uapi/asm/unistd.h']);
    // A tarball with neither: both alternatives named.
    const empty = join(d, 'empty');
    await mkdir(join(empty, 'linux-empty'), { recursive: true });
    await writeFile(join(empty, 'linux-empty', 'README'), 'x');
    const tb2 = join(d, 'linux-empty.tar.xz');
    expect((await run(['tar', '-cJf', tb2, '-C', empty, 'linux-empty'])).ok).toBe(true);
    const none = await compile({ build: await tmp(), archName: 'aarch64', srcDir: join(d, 'gone'), tarball: tb2, kernelSha: await sha256File(tb2) });
    expect(none.outcome).toMatchObject({ status: 'FAIL', reason: 'exit-non-zero' });
    expect(none.outcome.message).toMatch(/^seccomp-compile: unpacking the syscall table from .*linux-empty\.tar\.xz failed: scripts\/syscall\.tbl:\n/);
    expect(none.outcome.message).toContain('include/uapi/asm-generic/unistd.h, arch/arm64/include/uapi/asm/unistd.h:\n');
  });

  it('the outputs are byte-reproducible: same bytes from another checkout path and build dir', { timeout: 90_000 }, async () => {
    const a = await compile({ build: await tmp(), archName: 'aarch64' });
    // A second "checkout" at another path holding the files the step reads from the repo.
    const repo2 = await tmp();
    const params = await taskParams('aarch64');
    for (const rel of [params.loader as string, params.schema as string]) {
      await mkdir(dirname(join(repo2, rel)), { recursive: true });
      await copyFile(join(REPO, rel), join(repo2, rel));
    }
    const b = await compile({ build: await tmp(), archName: 'aarch64', repoRoot: repo2 });
    expect(b.outcome.status, b.outcome.message).toBe('PASS');
    expect(await sha256File(join(b.out, 'clawos-seccomp-exec'))).toBe(await sha256File(join(a.out, 'clawos-seccomp-exec')));
    expect(await sha256File(join(b.out, 'seccomp-filter.bpf'))).toBe(await sha256File(join(a.out, 'seccomp-filter.bpf')));
    // Everything that goes into the image is the same bytes: the description and env too.
    for (const f of ['seccomp-filter.json', 'seccomp-filter.env']) expect(await readFile(join(b.out, f), 'utf8'), f).toBe(await readFile(join(a.out, f), 'utf8'));
  });

  it('the seed list without aliases fails with every name that is not a syscall, per entry and arch', async () => {
    const seed = await specWith((t) => t.replace(/^aliases:\n(  .*\n)+/m, 'aliases: {}\n'));
    const x = await compile({ build: await tmp(), archName: 'x86_64', specText: seed });
    expect(x.outcome).toMatchObject({ status: 'FAIL', reason: 'spec-invalid' });
    expect(x.outcome.message).toBe('specs/p1/seccomp-whitelist.yaml:35:12: syscalls.network: not syscalls on x86_64: recv, send');
    const a = await compile({ build: await tmp(), archName: 'aarch64', specText: seed });
    expect(a.outcome.message).toBe(
      [
        'specs/p1/seccomp-whitelist.yaml:32:12: syscalls.file_io: not syscalls on aarch64: open, stat',
        'specs/p1/seccomp-whitelist.yaml:35:12: syscalls.network: not syscalls on aarch64: recv, send, poll, epoll_wait',
      ].join('\n'),
    );
    expect(a.outcome.location).toEqual({ file: SPEC, line: 32, col: 12 });
    // Nothing is left that looks like a filter.
    await expect(readFile(join(a.out, 'seccomp-filter.bpf'))).rejects.toThrow();
  });

  it('a frozen copy that differs from its record, a spec the schema refuses, no kernel build info', async () => {
    const build = await tmp();
    await prepare({ build, archName: 'x86_64' });
    await writeFile(join(build, 'security/seccomp-whitelist.yaml'), 'tampered\n');
    const ctx = fakeStepContext({ repoRoot: REPO, buildDir: build, arch: await arch('x86_64'), params: await taskParams('x86_64'), outDir: join(build, 'security/x86_64') });
    expect(await seccompCompileStep.run(ctx)).toMatchObject({
      status: 'FAIL',
      reason: 'validation-failed',
      message: `seccomp-compile: security/seccomp-whitelist.yaml has sha256 ${sha256Hex('tampered\n')}, its freeze record says ${sha256Hex(await realSpecText())}`,
    });

    // The 1.0.0 freeze (no allow_exec) must be re-frozen before it compiles.
    const old = await specWith((t) => t.replace(/^allow_exec: true\n/m, ''));
    const o = await compile({ build: await tmp(), archName: 'x86_64', specText: old });
    expect(o.outcome).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: 'specs/p1/seccomp-whitelist.yaml:14:1: missing required field "allow_exec"' });

    const nob = await tmp();
    await prepare({ build: nob, archName: 'x86_64' });
    await rm(join(nob, 'kernel-engineer/x86_64/build-info.json'));
    const ctx2 = fakeStepContext({ repoRoot: REPO, buildDir: nob, arch: await arch('x86_64'), params: await taskParams('x86_64'), outDir: join(nob, 'security/x86_64') });
    expect(await seccompCompileStep.run(ctx2)).toMatchObject({
      status: 'FAIL',
      reason: 'output-missing',
      message: 'seccomp-compile: kernel-engineer/x86_64/build-info.json is missing or not JSON: the kernel build (A-01) did not record its source',
    });
  });

  it('probe syscalls are checked against the filter', async () => {
    const params = { ...(await taskParams('x86_64')), probe: { allowed: 'uname', denied: 'getpid' } };
    const r = await compile({ build: await tmp(), archName: 'x86_64', params });
    expect(r.outcome).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: 'seccomp-compile: probe.allowed uname is not allowed by the x86_64 filter' });
    const r2 = await compile({ build: await tmp(), archName: 'x86_64', params: { ...params, probe: { allowed: 'getpid', denied: 'read' } } });
    expect(r2.outcome.message).toBe('seccomp-compile: probe.denied read must be a x86_64 syscall the filter does not allow');
    const r3 = await compile({ build: await tmp(), archName: 'x86_64', params: { ...params, bogus: 1 } });
    expect(r3.outcome.message).toBe("seccomp-compile: unknown parameter 'bogus' (known: whitelist, schema, kernel_dir, loader, probe)");
  });

  it('when the kernel tree is gone, the tables come from the recorded tarball after a sha256 check', { timeout: 60_000 }, async () => {
    const d = await tmp();
    // A small tarball standing in for the kernel source: one top directory, the table files.
    const top = join(d, 'linux-fake');
    for (const rel of ['arch/x86/entry/syscalls/syscall_64.tbl']) {
      await mkdir(dirname(join(top, rel)), { recursive: true });
      await copyFile(join(TREE, rel), join(top, rel));
    }
    const tarball = join(d, 'linux-fake.tar.xz');
    expect((await run(['tar', '-cJf', tarball, '-C', d, 'linux-fake'])).ok).toBe(true);
    const sha = await sha256File(tarball);
    const build = await tmp();
    const r = await compile({ build, archName: 'x86_64', srcDir: join(d, 'gone'), tarball, kernelSha: sha });
    expect(r.outcome.status, r.outcome.message).toBe('PASS');
    const desc = JSON.parse(await readFile(join(r.out, 'seccomp-filter.json'), 'utf8'));
    expect(desc.kernel_source).toEqual({ sha256: sha, tarball: basename(tarball) });
    expect(r.outcome.data).toMatchObject({ tablesFrom: `unpacked from ${tarball}` });
    expect(await sha256File(join(build, 'cache/seccomp-tables', sha.slice(0, 16), 'linux-fake/arch/x86/entry/syscalls/syscall_64.tbl'))).toBe(
      await sha256File(join(TREE, 'arch/x86/entry/syscalls/syscall_64.tbl')),
    );
    const bad = await compile({ build: await tmp(), archName: 'x86_64', srcDir: join(d, 'gone'), tarball, kernelSha: 'b'.repeat(64) });
    expect(bad.outcome).toMatchObject({ status: 'FAIL', reason: 'source-mismatch', message: `seccomp-compile: ${tarball}: sha256 ${sha}, but the kernel was built from ${'b'.repeat(64)}` });
  });
});

/**
 * The proof on the host: the x86_64 filter applied by the loader to this
 * kernel. An allowed syscall returns, a denied one is killed (SIGSYS) or
 * fails with EPERM, per the spec's default action.
 */
describe.runIf(HOST_IS_X86)('the x86_64 filter on the host kernel', () => {
  const probe = async (out: string, ...args: string[]) => {
    const r = await run([join(out, 'clawos-seccomp-exec'), '--probe', join(out, 'seccomp-filter.bpf'), ...args], { captureStdout: true });
    return { ok: r.ok, lines: r.stdout.trim().split('\n') };
  };

  it('kill_process: getpid allowed, uname killed with SIGSYS, an x32 getpid killed', { timeout: 60_000 }, async () => {
    const { outcome, out } = await compile({ build: await tmp(), archName: 'x86_64' });
    expect(outcome.status, outcome.message).toBe('PASS');
    const r = await probe(out, 'getpid=39', 'uname=63', 'getpid_x32=1073741863', 'getppid=110');
    expect(r.ok).toBe(true);
    expect(r.lines[0]).toMatch(/^getpid 39 allowed ret=\d+$/);
    expect(r.lines.slice(1)).toEqual(['uname 63 killed SIGSYS', 'getpid_x32 1073741863 killed SIGSYS', 'getppid 110 killed SIGSYS']);
  });

  it('errno: uname fails with EPERM, the x32 bit still kills', { timeout: 60_000 }, async () => {
    const spec = await specWith((t) => t.replace(/^default_action: kill_process$/m, 'default_action: errno'));
    const { outcome, out } = await compile({ build: await tmp(), archName: 'x86_64', specText: spec });
    expect(outcome.status, outcome.message).toBe('PASS');
    expect(outcome.message).toMatch(/on this host: getpid allowed, getppid errno EPERM$/);
    const r = await probe(out, 'uname=63', 'getpid_x32=1073741863');
    expect(r.lines).toEqual(['uname 63 errno EPERM', 'getpid_x32 1073741863 killed SIGSYS']);
  });

  it('log: getppid and uname run (complain mode)', { timeout: 60_000 }, async () => {
    const spec = await specWith((t) => t.replace(/^default_action: kill_process$/m, 'default_action: log'));
    const { outcome, out } = await compile({ build: await tmp(), archName: 'x86_64', specText: spec });
    expect(outcome.status, outcome.message).toBe('PASS');
    expect(outcome.message).toMatch(/on this host: getpid allowed, getppid allowed$/);
    // uname(NULL) runs and fails on the null buffer: the kernel executed it.
    expect((await probe(out, 'uname=63')).lines).toEqual(['uname 63 errno EFAULT']);
  });

  it('exec mode: the loader execs a program under the filter; a denied syscall there kills it; no execve, no exec', { timeout: 60_000 }, async () => {
    const { outcome, out } = await compile({ build: await tmp(), archName: 'x86_64' });
    expect(outcome.status, outcome.message).toBe('PASS');
    const d = await tmp();
    const src = join(REPO, 'test/fixtures/seccomp/exec-probe.c');
    expect((await run(['gcc', '-static', '-nostdlib', '-O2', '-o', join(d, 'plain'), src])).ok).toBe(true);
    expect((await run(['gcc', '-static', '-nostdlib', '-O2', '-DCALL_UNAME', '-o', join(d, 'uname'), src])).ok).toBe(true);
    const loader = join(out, 'clawos-seccomp-exec');
    const filter = join(out, 'seccomp-filter.bpf');
    const plain = await run([loader, filter, '--', join(d, 'plain')], { captureStdout: true });
    expect([plain.exitCode, plain.stdout]).toEqual([0, 'exec-probe: running\n']);
    const denied = await run([loader, filter, '--', join(d, 'uname')], { captureStdout: true });
    expect([denied.exitCode, denied.signal, denied.stdout]).toEqual([null, 'SIGSYS', 'exec-probe: running\n']);
    // The same whitelist without allow_exec: the loader's own execve is the denied syscall.
    const noExec = await compile({ build: await tmp(), archName: 'x86_64', specText: await specWith((t) => t.replace(/^allow_exec: true$/m, 'allow_exec: false')) });
    expect(noExec.outcome.status, noExec.outcome.message).toBe('PASS');
    const r = await run([join(noExec.out, 'clawos-seccomp-exec'), join(noExec.out, 'seccomp-filter.bpf'), '--', join(d, 'plain')], { captureStdout: true });
    expect([r.exitCode, r.signal, r.stdout]).toEqual([null, 'SIGSYS', '']);
  });

  it('the loader refuses a file that is not a whole filter, and bad usage', async () => {
    const { out } = await compile({ build: await tmp(), archName: 'x86_64' });
    const d = await tmp();
    await writeFile(join(d, 'bad.bpf'), Buffer.alloc(12));
    const loader = join(out, 'clawos-seccomp-exec');
    const r = await run([loader, '--probe', join(d, 'bad.bpf'), 'getpid=39']);
    expect([r.exitCode, r.tail]).toEqual([1, [`clawos-seccomp-exec: ${join(d, 'bad.bpf')}: not a seccomp BPF program (12 bytes is not 1..4096 whole instructions)`]]);
    const u = await run([loader, join(out, 'seccomp-filter.bpf'), '/bin/true']);
    expect(u.exitCode).toBe(2);
    const p = await run([loader, '--probe', join(out, 'seccomp-filter.bpf'), 'getpid']);
    expect([p.exitCode, p.tail[0]]).toEqual([2, 'clawos-seccomp-exec: --probe takes NAME=NR, not "getpid"']);
  });

  it('the guest check script passes on the real filter and loader, and says why it fails', { timeout: 60_000 }, async () => {
    const { outcome, out } = await compile({ build: await tmp(), archName: 'x86_64' });
    expect(outcome.status, outcome.message).toBe('PASS');
    const script = join(REPO, 'buildroot-external/board/clawos/rootfs-overlay/usr/lib/clawos/checks.d/seccomp-filter.sh');
    // /init's run_check, reduced to what the check needs.
    const sh = async (dir: string) => {
      const r = await run(
        ['busybox', 'sh', '-c', `run_check() { VALUE=; if "$2"; then echo "$1 pass $VALUE"; else echo "$1 fail $VALUE"; fi; }; . ${script}`],
        { captureStdout: true, env: { SECCOMP_DIR: dir } },
      );
      return r.stdout.trim();
    };
    expect(await sh(out)).toMatch(/^seccomp-filter pass arch=x86_64 default=kill_process getpid allowed ret=\d+, getppid killed SIGSYS$/);

    // An env whose "denied" syscall the filter allows (read(0, NULL, 0) returns 0): the check must fail and say so.
    const env = await readFile(join(out, 'seccomp-filter.env'), 'utf8');
    await writeFile(join(out, 'seccomp-filter.env'), env.replace("SECCOMP_DENIED='getppid'", "SECCOMP_DENIED='read'").replace('SECCOMP_DENIED_NR=110', 'SECCOMP_DENIED_NR=0'));
    expect(await sh(out)).toMatch(/^seccomp-filter fail arch=x86_64 default=kill_process getpid allowed ret=\d+, read allowed ret=0 \(want read killed SIGSYS\)$/);
    expect(await sh(join(out, 'nowhere'))).toBe(`seccomp-filter fail ${join(out, 'nowhere')}/seccomp-filter.env missing (the C-08 filter is not in the image)`);
  });
});
