/**
 * Issue 17, the shared compiler cache, for real: Debian's ccache under the task
 * sandbox (bwrap), through the scheduler, with a step that compiles as the kernel
 * build does (sources copied into its output dir, build paths mapped away, ccache
 * in front of gcc by name). Two build dirs in two folders share one local cache;
 * a third folder with an empty local cache gets its hits from a real redis-server
 * (over TCP, then over its unix socket, which the sandbox reaches without a network).
 * These objects are the same bytes as gcc's own without the cache; an -I path
 * with ".." is not (the last test), so the cache is part of a fingerprint.
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { afterEach, describe, expect, it } from 'vitest';
import { explainCommand } from '../bin/commands/explain.js';
import { run } from '../lib/proc.js';
import type { Step } from '../pipeline/catalog/step.js';
import { baseDirPrefixMap, ccacheMasquerade } from '../pipeline/ccache/ccache-masquerade.js';
import type { RunEvent } from '../pipeline/run/events.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import { finishRun, runPhases } from '../pipeline/run/phases.js';
import { formatEvent } from '../pipeline/run/reporter.js';
import { openRun } from '../pipeline/run/session.js';
import { prefixMapFlags } from '../pipeline/steps/kernel-build.js';
import { readAllRuns } from '../vault/vault-history.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';
import { makeTestRepo, OPEN_GATES, taskYaml, type TestRepo } from './helpers/test-repo.js';

const FILES = ['a.c', 'b.c', 'c.c'];
const gccArgv = (src: string, obj: string, f: string, out: string) => [
  'gcc',
  '-g',
  '-O2',
  '-I',
  join(src, 'include'),
  ...prefixMapFlags({ [src]: '/clawos/src', [obj]: '/clawos/obj', ...baseDirPrefixMap({ [src]: '/clawos/src' }, obj) }).split(' '),
  '-c',
  join(src, f),
  '-o',
  out,
];

/** Compiles csrc/*.c in its output dir, through the compiler cache when the run has one. */
const ccStep: Step = {
  name: 'cc',
  version: 1,
  compilerCache: true,
  toolPackages: () => [],
  async run(ctx) {
    const src = join(ctx.outDir, 'src');
    const obj = join(ctx.outDir, 'obj');
    await cp(join(ctx.repoRoot, 'csrc'), src, { recursive: true });
    await mkdir(obj, { recursive: true });
    const env = ctx.compilerCache ? await ccacheMasquerade(ctx.compilerCache, join(ctx.outDir, 'ccache-bin'), ['gcc']) : {};
    for (const f of FILES) {
      const r = await ctx.run(gccArgv(src, obj, f, f.replace('.c', '.o')), { cwd: obj, env });
      if (!r.ok) return { status: 'FAIL', reason: 'exit-non-zero', message: `gcc ${f}: ${r.tail.join(' | ')}` };
    }
    return { status: 'PASS', message: `compiled ${FILES.length} files` };
  },
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const have = async (tool: string, arg: string) => (await run([tool, arg], { captureStdout: true })).ok;

/** A repository of one task (C-01: the cc step) in a folder of its own, configured with `config`. */
async function ccRepo(config: string): Promise<TestRepo> {
  const repo = await makeTestRepo(OPEN_GATES);
  cleanups.push(() => repo.cleanup());
  await repo.write('csrc/include/x.h', '#define X 42\n');
  for (const [i, f] of FILES.entries()) {
    await repo.write(`csrc/${f}`, `#include <stdio.h>\n#include "x.h"\nint f${i}(void) { printf("%s %d\\n", __FILE__, X); return ${i}; }\n`);
  }
  await repo.writeTask('C-01', taskYaml({ id: 'C-01', inputs: ['csrc'], outputs: FILES.map((f) => `build-engineer/obj/${f.replace('.c', '.o')}`), action: 'uses: cc' }));
  await repo.write('cc.config.yaml', config);
  return repo;
}

async function runP1(repo: TestRepo, flags: { remote?: string } = {}) {
  const events: RunEvent[] = [];
  const rc = await openRun({
    repoRoot: repo.root,
    buildDir: repo.buildDir,
    arches: ['x86_64'],
    jobs: 2,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    heartbeatMs: 0,
    configFile: join(repo.root, 'cc.config.yaml'),
    steps: new Map([['cc', ccStep]]),
    ...(flags.remote ? { compilerCache: { remote: flags.remote } } : {}),
  });
  const results = await runPhases(rc, ['P1'], await loadGateSpecs(repo.root));
  await finishRun(rc, results, { keyDir: join(repo.root, 'no-keys') });
  const log = await readFile(rc.logs.pathFor('build-engineer'), 'utf8');
  const chain = (await readAllRuns(repo.buildDir)).at(-1)!.events;
  const raw = JSON.stringify(chain);
  const taskEnd = chain.find((e) => e.type === 'task-end')?.payload as { status: string; compiler_cache?: Record<string, unknown> };
  const runStart = chain.find((e) => e.type === 'run-start')!.payload as { compiler_cache?: unknown };
  const end = events.find((e) => e.type === 'task-end');
  return { events, log, raw, taskEnd, runStart, line: end ? formatEvent(end)! : '', info: events.filter((e) => e.type === 'info').map((e) => (e as { message: string }).message) };
}

/** gcc's own objects, without the cache, in the same object dir (its path is in the debug info, mapped). */
async function plainObjects(repo: TestRepo): Promise<Map<string, Buffer>> {
  const out = join(repo.buildDir, 'build-engineer');
  const objs = new Map<string, Buffer>();
  for (const f of FILES) {
    const name = f.replace('.c', '.plain.o');
    const r = await run(gccArgv(join(out, 'src'), join(out, 'obj'), f, name), { cwd: join(out, 'obj') });
    expect(r.ok).toBe(true);
    objs.set(f, await readFile(join(out, 'obj', name)));
  }
  return objs;
}

async function expectSameAsPlain(repo: TestRepo): Promise<void> {
  const plain = await plainObjects(repo);
  for (const f of FILES) expect((await readFile(join(repo.buildDir, 'build-engineer', 'obj', f.replace('.c', '.o')))).equals(plain.get(f)!)).toBe(true);
}

describe('the shared compiler cache (ccache) through the scheduler, sandboxed', () => {
  it('a second build dir in another folder gets local hits; a third with an empty local cache gets them from redis', async (t) => {
    if (!(await have('ccache', '--version'))) return t.skip('ccache is not installed (apt-get install ccache)');
    if (!(await have('redis-server', '--version'))) return t.skip('redis-server is not installed (apt-get install redis-server)');
    const caches = await dir({ unsafeCleanup: true });
    cleanups.push(() => caches.cleanup());
    const redis: RedisServer = await startRedis({ password: 'ccache-s3cret' });
    cleanups.push(() => redis.stop());
    const local = join(caches.path, 'local');
    const version = /ccache version (\S+)/.exec((await run(['ccache', '--version'], { captureStdout: true })).stdout)![1]!;
    const shown = `redis://127.0.0.1:${redis.port}`;

    // 1. Cold: three misses, stored locally and in redis. The password is in no log, event or line.
    const a = await ccRepo(`compiler_cache:\n  dir: ${local}\n  remote: ${redis.url}\n`);
    const first = await runP1(a);
    expect(first.taskEnd.status).toBe('PASS');
    expect(first.line).toMatch(/^C-01 PASS in [^:]+: compiled 3 files; ccache: 0 of 3 compiles were hits \(0%; 0 local, 0 remote\), 0 calls not cacheable$/);
    expect(first.taskEnd.compiler_cache).toEqual({ hits: 0, local_hits: 0, remote_hits: 0, misses: 3, uncacheable: 0, remote_errors: 0, summary: 'ccache: 0 of 3 compiles were hits (0%; 0 local, 0 remote), 0 calls not cacheable' });
    expect(first.info).toContain(`compiler cache: ccache ${version} in ${local}, remote storage ${shown}`);
    expect(first.runStart.compiler_cache).toEqual({ ccache: version, dir: local, remote: { url: shown, readonly: false } });
    // A TCP redis needs the host's network in the task's sandbox; the log says why it has it.
    expect(first.log).toContain(`network the host's, for the compiler cache's remote storage ${shown}`);
    expect(first.log).toContain(`writable ${join(a.buildDir, 'build-engineer')}, ${local} and a private /tmp`);
    for (const text of [first.raw, first.log, first.events.map(formatEvent).join('\n')]) expect(text).not.toContain('ccache-s3cret');
    await expectSameAsPlain(a);

    // 2. Another folder, the same local cache: every compile a local hit, the same bytes as gcc without the cache.
    const b = await ccRepo(`compiler_cache:\n  dir: ${local}\n`);
    const second = await runP1(b);
    expect(second.taskEnd.compiler_cache).toMatchObject({ hits: 3, local_hits: 3, remote_hits: 0, misses: 0 });
    expect(second.line).toMatch(/; ccache: 3 of 3 compiles were hits \(100%; 3 local, 0 remote\), 0 calls not cacheable$/);
    expect(second.log).toContain('network none');
    await expectSameAsPlain(b);

    // 3. A third folder with an empty local cache and the remote from the command line: every compile a remote hit.
    const c = await ccRepo(`compiler_cache:\n  dir: ${join(caches.path, 'empty')}\n`);
    const third = await runP1(c, { remote: redis.url });
    expect(third.taskEnd.compiler_cache).toMatchObject({ hits: 3, local_hits: 0, remote_hits: 3, misses: 0, remote_errors: 0 });
    expect(third.line).toMatch(/; ccache: 3 of 3 compiles were hits \(100%; 0 local, 3 remote\), 0 calls not cacheable$/);
    await expectSameAsPlain(c);

    // 4. The same server on a unix socket: hits again from an empty local cache, and the sandbox keeps no network.
    const d = await ccRepo(`compiler_cache:\n  dir: ${join(caches.path, 'empty-too')}\n  remote: ${redis.unixUrl}\n`);
    const fourth = await runP1(d);
    expect(fourth.taskEnd.compiler_cache).toMatchObject({ hits: 3, local_hits: 0, remote_hits: 3, misses: 0 });
    expect(fourth.log).toContain('network none');
    await expectSameAsPlain(d);
  }, 120_000);

  it('off: nothing asked of ccache, nothing reported; turning it on later is another result (in the fingerprint), built again', async (t) => {
    if (!(await have('ccache', '--version'))) return t.skip('ccache is not installed (apt-get install ccache)');
    const caches = await dir({ unsafeCleanup: true });
    cleanups.push(() => caches.cleanup());
    const a = await ccRepo(`compiler_cache:\n  enabled: false\n  dir: ${join(caches.path, 'local')}\n`);
    const r = await runP1(a);
    expect(r.info).toContain('compiler cache: off (compiler_cache.enabled is false in the config file)');
    expect(r.taskEnd.compiler_cache).toBeUndefined();
    expect(r.runStart.compiler_cache).toBeNull();
    expect(r.line).toMatch(/^C-01 PASS in [^:]+: compiled 3 files$/);
    await expectSameAsPlain(a);
    // Part of the fingerprint (the test below shows why): turning the cache on runs C-01 again, through it.
    await a.write('cc.config.yaml', `compiler_cache:\n  dir: ${join(caches.path, 'local')}\n`);
    const again = await runP1(a);
    expect(again.events.filter((e) => e.type === 'task-start').map((e) => (e as { id: string }).id)).toEqual(['C-01']);
    expect(again.taskEnd.compiler_cache).toMatchObject({ misses: 3 });
    const state = JSON.parse(await readFile(join(a.buildDir, 'state.json'), 'utf8')) as { instances: Record<string, { fingerprint_parts: { compiled_by?: string } }> };
    expect(state.instances['C-01']!.fingerprint_parts.compiled_by).toBe('ccache');
    // explain reads the same config file and so makes the same decision: up to date.
    const out: string[] = [];
    const rc = await explainCommand({ repoRoot: a.root, buildDir: a.buildDir, positionals: ['C-01'], arch: null, config: join(a.root, 'cc.config.yaml'), json: true, print: (t) => out.push(t), printErr: () => {}, steps: new Map([['cc', ccStep]]) });
    expect(rc).toBe(0);
    expect(JSON.parse(out.join('')).instances).toMatchObject([{ id: 'C-01', verdict: 'up-to-date', would_run: false }]);
  }, 60_000);

  // Why the cache is in the fingerprint: Linux's arch/x86/kernel/Makefile has CFLAGS_irq.o := -I $(src)/../include/asm/trace,
  // and ccache's base_dir rewriting (which makes hits across folders possible) writes that path without its "..",
  // so the object's DWARF directory table (.debug_line_str) differs from gcc's own: the ClawOS kernel's irq.o and fault.o did.
  it('ccache with base_dir writes an -I path with ".." into the debug info differently from gcc itself', async (t) => {
    if (!(await have('ccache', '--version'))) return t.skip('ccache is not installed (apt-get install ccache)');
    const w = await dir({ unsafeCleanup: true });
    cleanups.push(() => w.cleanup());
    const src = join(w.path, 'src');
    const obj = join(w.path, 'obj');
    await mkdir(join(src, 'sub'), { recursive: true });
    await mkdir(join(src, 'include'), { recursive: true });
    await mkdir(obj);
    await writeFile(join(src, 'include', 'y.h'), 'static inline int y(int a) { return a * 3; }\n');
    // As include/trace/define_trace.h includes a trace header with TRACE_INCLUDE_PATH ".".
    await writeFile(join(src, 'sub', 'd.c'), '#include <./y.h>\nint d(int a) { return y(a) + 1; }\n');
    const argv = (out: string) => ['gcc', '-g', '-O2', '-I', `${src}/sub/../include`, ...prefixMapFlags({ [src]: '/clawos/src', [obj]: '/clawos/obj', ...baseDirPrefixMap({ [src]: '/clawos/src' }, obj) }).split(' '), '-c', join(src, 'sub', 'd.c'), '-o', out];
    const plain = await run(argv('plain.o'), { cwd: obj });
    const cached = await run(['ccache', ...argv('ccache.o')], { cwd: obj, env: { CCACHE_DIR: join(w.path, 'ccache'), CCACHE_BASEDIR: w.path } });
    expect(plain.ok && cached.ok).toBe(true);
    const dirs = async (o: string) => (await run(['readelf', '--debug-dump=line', join(obj, o)], { captureStdout: true })).stdout.match(/\/clawos\/src\S*include\S*/g) ?? [];
    expect(await dirs('plain.o')).toEqual(['/clawos/src/sub/../include/.']);
    expect(await dirs('ccache.o')).toEqual(['/clawos/src/include/.']);
  }, 60_000);
});
