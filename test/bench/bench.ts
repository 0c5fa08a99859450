/**
 * `npm run bench`: prints clawos-build's figures, each the median of several runs.
 *   1. no-op `all` (a second run with nothing changed), in ms;
 *   2. the x86_64 kernel build through clawos-build against a plain `make -j2`
 *      of the same tree (the same commands, replayed from build-info.json), as a ratio;
 *   3. boot time to the final marker per arch and firmware (from `clawos-build boot`);
 *   4. vault verify throughput on a real bundle, as a ratio to `sha256sum` over
 *      the same files (goal >= 0.8): the newest bundle of the build dir with the
 *      trust file of the key dir, else one made by a pipeline run with stand-in
 *      steps (test/fixtures/vault/pipeline-bundle.ts). Both warm, several runs, medians;
 *   5. the sandbox's overhead per task command: a few real commands under bwrap
 *      (as a task runs them: output dir writable, no network) against the same
 *      command unsandboxed, medians of --sandbox-runs (default 9), as a ratio.
 *   6. the remote task cache on a small real pipeline (the stand-in pipeline of 4,
 *      against a real nginx, test/helpers/nginx-cache.ts): a cold build pushing to an
 *      empty cache against the same cold build without one (the overhead, goal < 3 %),
 *      and an empty build dir pulling everything from the warm cache, as a ratio to cold.
 *   7. the shared compiler cache (ccache, issue 17): the real kernel-build step for x86_64
 *      under the task sandbox, from an empty ccache dir (cold), then again after `make clean`
 *      with the cache warm, as a ratio (goal >= 4x); vmlinuz must be the same bytes both times,
 *      and the same as --ccache-reference FILE (a vmlinuz built without the cache) when given.
 *      Needs the unpacked kernel in <build-dir>/cache/src; two kernel builds, not part of a
 *      plain `npm run bench` (--only ccache).
 *      With --ccache-warm-from BUILD_DIR instead: that build's compiler cache (its run-start names
 *      it) and its own kernel builds from the empty cache as the cold figures; both arches are
 *      built again side by side, as `all` builds them, in another folder with the cache warm, and
 *      each vmlinuz is compared with that build's.
 *   8. the remote task cache on the whole build (issue 17, item 5): two clones of HEAD, each with an
 *      empty build dir and an empty compiler cache (as two fresh machines); the first runs `all` cold
 *      and pushes to a real nginx on loopback, the second runs `all` pulling from it. Prints both
 *      wall times, what the second compiled (goal: nothing, under 3 minutes), and the time the first
 *      waited on the cache (lookups and pushes) as a share of its build (the overhead, goal < 3 %).
 *      The key dir must hold a builder key (`clawos-build keys init --role builder`). About as long
 *      as a cold build; asked for by name only (--only cache-all).
 *   9. a whole kernel through icecream (issue 17, item 4): the real kernel-build step for x86_64
 *      (--arch) compiling through a real cluster on this machine (test/helpers/icecc-cluster.ts:
 *      a scheduler and two daemons in network namespaces), its time, the jobs per daemon, and its
 *      vmlinuz against --icecream-reference FILE|SHA256 (a vmlinuz built locally without the compiler
 *      cache, or the start of its sha256, e.g. from CI's reproduce output). Needs root and the
 *      unpacked kernel in <build-dir>/cache/src (--only icecream).
 * Options: --runs N (default 3), --kernel-runs N (default 1: each kernel run
 * costs two full builds, ~12 min on 2 cores), --skip-kernel, --build-dir DIR,
 * --only noop|kernel|boots|verify|sandbox|cache|ccache|cache-all|icecream (one part), --trust FILE (for 4).
 * Needs a finished `clawos-build all` in the build dir for 1 and 3.
 */
import { parseArgs } from 'node:util';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { run } from '../../lib/proc.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { defaultKeyDir, defaultTrustFile } from '../../vault/key-dir.js';
import { addTrustEntry, initKey, loadTrust } from '../../vault/keys.js';
import { startNginxCache } from '../helpers/nginx-cache.js';
import { readBundleManifest } from '../../vault/bundle.js';
import { verifyBundle } from '../../vault/verify.js';
import { bundlesDir, latestBundle } from '../../vault/release-bundle.js';
import { makePipelineFixture } from '../fixtures/vault/pipeline-bundle.js';
import { probeSandbox, sandboxWrapper } from '../../lib/sandbox.js';
import { dir as tmpDir } from 'tmp-promise';
import { appendFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { sha256File } from '../../lib/hash.js';
import { loadArches } from '../../pipeline/catalog/arch.js';
import { chooseCompilerCache, compilerCacheUse, openCompilerCache, statsLogPath } from '../../pipeline/ccache/compiler-cache.js';
import { formatCcacheStats, parseCcacheStatsLog } from '../../pipeline/ccache/ccache-stats.js';
import { findModuleSigningKey } from '../../pipeline/kernel/module-signing-key.js';
import { sourceDateEpoch } from '../../pipeline/run/session.js';
import { kernelBuildStep } from '../../pipeline/steps/kernel-build.js';
import type { ArchSpec } from '../../pipeline/catalog/arch.js';
import type { StepContext } from '../../pipeline/catalog/step.js';
import type { Outcome } from '../../pipeline/catalog/outcome.js';
import type { CommandWrapper } from '../../lib/proc.js';
import { readAllRuns } from '../../vault/vault-history.js';
import { countSchedulerJobs } from '../../pipeline/kernel/icecc.js';
import { iceccClusterUnavailable, startIceccCluster } from '../helpers/icecc-cluster.js';
import type { RemoteStats } from '../../pipeline/run/remote-cache.js';
import type { TaskEndPayload } from '../../vault/event-payloads.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'kernel-runs': { type: 'string', default: '1' },
    'skip-kernel': { type: 'boolean', default: false },
    'build-dir': { type: 'string', default: 'build' },
    only: { type: 'string' },
    trust: { type: 'string' },
    'sandbox-runs': { type: 'string', default: '9' },
    'ccache-reference': { type: 'string' },
    'icecream-reference': { type: 'string' },
    'ccache-warm-from': { type: 'string' },
    arch: { type: 'string', default: 'x86_64' },
  },
});
const runs = Number(values.runs);
const kernelRuns = Number(values['kernel-runs']);
const repo = repoRootDir();
const buildDir = resolve(values['build-dir']!);
const cli = join(repo, 'bin', 'clawos-build.js');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

async function timed(argv: string[], opts: Parameters<typeof run>[1] = {}): Promise<{ ms: number; ok: boolean; stdout: string }> {
  const t = process.hrtime.bigint();
  const r = await run(argv, { captureStdout: true, ...opts });
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, ok: r.ok, stdout: r.stdout };
}

async function noopAll(): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await timed(['node', cli, 'all', '--build-dir', buildDir, '--json']);
    if (!r.ok) {
      console.log(`no-op all: skipped (\`clawos-build all\` does not pass in ${buildDir}; run it first)`);
      return;
    }
    const ran = (JSON.parse(r.stdout) as { tasks: { ran: boolean }[] }).tasks.filter((t) => t.ran).length;
    if (ran) console.log(`  note: run ${i + 1} re-ran ${ran} task(s); the figure is not a no-op`);
    times.push(r.ms);
  }
  const m = median(times);
  console.log(`no-op all: median ${fmt(m)} over ${runs} runs (${times.map(fmt).join(', ')}); budget 2 s: ${m < 2000 ? 'within' : 'OVER'}`);
}

/** 5. The same commands with and without bwrap, alternating, in a scratch output dir. */
async function sandboxOverhead(): Promise<void> {
  const n = Number(values['sandbox-runs']);
  const mode = await probeSandbox();
  const scratch = await tmpDir({ prefix: 'clawos-bench-sandbox-', unsafeCleanup: true, tmpdir: buildDir });
  try {
    const outDir = join(scratch.path, 'out');
    await mkdir(outDir, { recursive: true });
    const wrap = sandboxWrapper(mode, { task: 'bench', outDir, readOnly: [repo, buildDir], network: false });
    const commands: { name: string; argv: string[] }[] = [
      { name: 'true', argv: ['true'] },
      { name: 'bash -c (a validation_cmd)', argv: ['bash', '-c', 'test -d . && echo ok > ok.txt && grep -q ok ok.txt'] },
      { name: 'sha256sum of 4 MB', argv: ['bash', '-c', 'head -c 4194304 /dev/zero > z.bin && sha256sum z.bin > z.sha256'] },
      { name: 'gzip -9 of bash', argv: ['bash', '-c', 'gzip -9 -c /usr/bin/bash > bash.gz'] },
    ];
    console.log(`sandbox overhead (${mode.kind === 'bwrap' ? `bwrap ${mode.version}` : mode.reason}), medians of ${n}, sandboxed / unsandboxed:`);
    for (const c of commands) {
      const plain: number[] = [];
      const boxed: number[] = [];
      for (let i = 0; i < n; i++) {
        const a = await timed(c.argv, { cwd: outDir });
        const b = await timed(c.argv, { cwd: outDir, wrap });
        if (!a.ok || !b.ok) throw new Error(`bench: ${c.name} failed (${a.ok ? 'sandboxed' : 'unsandboxed'})`);
        plain.push(a.ms);
        boxed.push(b.ms);
      }
      const p = median(plain);
      const q = median(boxed);
      console.log(`  ${c.name}: ${fmt(q)} vs ${fmt(p)}, ratio ${(q / p).toFixed(2)} (+${fmt(q - p)} per command)`);
    }
  } finally {
    await scratch.cleanup();
  }
}

async function kernel(): Promise<void> {
  const through: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < kernelRuns; i++) {
    // Through clawos-build: P1, then P2 for x86_64 from a clean object dir, in a scratch
    // build dir that shares the unpacked source (the unpacking is a one-time cost).
    const scratch = join(buildDir, 'bench', `k${i}`);
    await rm(scratch, { recursive: true, force: true });
    await mkdir(join(scratch, 'cache'), { recursive: true });
    await cp(join(buildDir, 'cache', 'src'), join(scratch, 'cache', 'src'), { recursive: true }).catch(() => {});
    await run(['node', cli, 'p1', '--arch', 'x86_64', '--build-dir', scratch, '--json'], { captureStdout: true });
    await run(['node', cli, 'p2', '--arch', 'x86_64', '--build-dir', scratch, '--json', '-j', '2'], { captureStdout: true });
    const st = JSON.parse(await readFile(join(scratch, 'state.json'), 'utf8')) as { instances: Record<string, { status: string; duration_ms: number }> };
    const a01 = st.instances['A-01@x86_64'];
    if (a01?.status !== 'PASS') {
      console.log(`kernel build: A-01@x86_64 did not pass in the bench run (${a01?.status ?? 'not run'}); see ${scratch}`);
      return;
    }
    through.push(a01.duration_ms);
    // Plain: the same configure and compile commands (from build-info.json), replayed by bash into a fresh object dir.
    const outDir = join(scratch, 'kernel-engineer', 'x86_64');
    const info = JSON.parse(await readFile(join(outDir, 'build-info.json'), 'utf8')) as { commands: { phase: string; command: string }[] };
    const plainDir = join(buildDir, 'bench', `plain${i}`);
    await rm(plainDir, { recursive: true, force: true });
    await mkdir(join(plainDir, 'obj'), { recursive: true });
    const script = info.commands
      .filter((c) => (c.phase === 'configure' || c.phase === 'compile') && /\bmake\b|merge_config/.test(c.command))
      .map((c) => c.command.replaceAll(outDir, plainDir))
      .join(' && ');
    const p = await timed(['bash', '-c', script]);
    if (!p.ok) {
      console.log('kernel build: the plain make replay failed; see build-info.json');
      return;
    }
    plain.push(p.ms);
    await rm(scratch, { recursive: true, force: true });
    await rm(plainDir, { recursive: true, force: true });
  }
  const ratio = median(through) / median(plain);
  console.log(
    `kernel build x86_64: through clawos-build median ${fmt(median(through))} (whole A-01: source check, configure, compile, canary module, signing), ` +
      `plain make median ${fmt(median(plain))} (configure + compile), ratio ${ratio.toFixed(3)} ` +
      `(overhead ${((ratio - 1) * 100).toFixed(1)}%, goal < 2%) over ${kernelRuns} run(s)`,
  );
}

async function boots(): Promise<void> {
  for (const arch of ['x86_64', 'aarch64']) {
    const iso = join(buildDir, 'build-engineer', arch, `clawos-${arch}.iso`);
    const r = await run(['node', cli, 'boot', '--iso', iso, '--arch', arch, '--repeat', String(runs), '--build-dir', buildDir, '--json'], { captureStdout: true });
    if (!r.stdout.trim()) {
      console.log(`boot ${arch}: skipped (${iso} missing or unbootable)`);
      continue;
    }
    const out = JSON.parse(r.stdout) as { boots: { variant: string; verdict: string; accel: string; stage_ms: { marker: number | null } }[] };
    const byVariant = new Map<string, number[]>();
    for (const b of out.boots) {
      if (b.verdict !== 'PASS' || b.stage_ms.marker === null) continue;
      byVariant.set(b.variant, [...(byVariant.get(b.variant) ?? []), b.stage_ms.marker]);
    }
    for (const [variant, xs] of byVariant) {
      console.log(`boot to marker ${arch} ${variant} (${out.boots[0]?.accel}): median ${fmt(median(xs))} over ${xs.length} boots (${xs.map(fmt).join(', ')})`);
    }
    const failed = out.boots.filter((b) => b.verdict !== 'PASS').length;
    if (failed) console.log(`  ${failed} boot(s) of ${arch} did not PASS and are left out`);
  }
}

/** Verify throughput against sha256sum on the same files, both with a warm page cache. */
async function verifyThroughput(): Promise<void> {
  let bundle: string | undefined;
  let trustFile = values.trust ?? defaultTrustFile(defaultKeyDir());
  let cleanup = async (): Promise<void> => {};
  const latest = await latestBundle(buildDir);
  if (latest) bundle = join(bundlesDir(buildDir), latest);
  if (!bundle) {
    // No real bundle yet: one from a pipeline run with stand-in steps (32 MiB stand-in ISOs, as large as the real ones).
    const fx = await makePipelineFixture({ isoBytes: 32 << 20 });
    const r = await fx.run();
    bundle = r.finish.bundle?.dir;
    trustFile = fx.trustFile;
    cleanup = fx.cleanup;
    console.log(`vault verify: no bundle in ${bundlesDir(buildDir)}; using one made by a stand-in pipeline run`);
  }
  try {
    if (!bundle) throw new Error('no bundle was written');
    const trust = await loadTrust(trustFile);
    const files = (await readBundleManifest(bundle)).files.map((f) => join(bundle, f.path));
    const bytes = files.length ? (await Promise.all(files.map((f) => readFile(f).then((b) => b.length)))).reduce((a, b) => a + b, 0) : 0;
    const sum = async () => {
      const t = process.hrtime.bigint();
      const r = await run(['sha256sum', '--', ...files], { captureStdout: true });
      if (!r.ok) throw new Error(`sha256sum failed: ${r.tail.join(' ')}`);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const verify = async () => {
      const t = process.hrtime.bigint();
      const r = await verifyBundle(bundle, trust);
      if (!r.ok) throw new Error(`verify did not pass: ${r.code}: ${r.detail}`);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    await sum();
    await verify();
    const tv: number[] = [];
    const ts: number[] = [];
    for (let i = 0; i < Math.max(runs, 5); i++) {
      tv.push(await verify());
      ts.push(await sum());
    }
    const mb = bytes / 1e6;
    const v = median(tv);
    const s = median(ts);
    console.log(
      `vault verify: ${bundle} (${files.length} files, ${mb.toFixed(1)} MB): verify median ${fmt(v)} (${(mb / (v / 1000)).toFixed(0)} MB/s, in-process, every check), ` +
        `sha256sum median ${fmt(s)} (${(mb / (s / 1000)).toFixed(0)} MB/s, one process over the same files); ` +
        `ratio ${(s / v).toFixed(2)} (verify throughput / sha256sum throughput, goal >= 0.8) over ${tv.length} runs each, warm cache`,
    );
  } finally {
    await cleanup();
  }
}

console.log(`clawos-build bench (${new Date().toISOString()}, build dir ${buildDir})`);
/** 6. Cold without a cache, cold pushing to an empty nginx, empty build dir pulling from it: medians. */
async function remoteCacheFigures(): Promise<void> {
  const fx = await makePipelineFixture({ isoBytes: 8 << 20 });
  try {
    const k = await initKey(fx.keyDir, 'builder');
    await addTrustEntry(fx.trustFile, k.trustEntry);
    const cfg = (url: string, readonly: boolean) => `remote_cache:\n  url: ${url}\n  readonly: ${readonly}\n`;
    const cfgFile = join(fx.repo.root, '..', 'cache-config.yaml');
    const once = async (config: string | null): Promise<{ ms: number; ran: number }> => {
      await rm(fx.repo.buildDir, { recursive: true, force: true });
      if (config) await writeFile(cfgFile, config);
      const t = process.hrtime.bigint();
      const r = await fx.run(config ? { configFile: cfgFile } : {});
      return { ms: Number(process.hrtime.bigint() - t) / 1e6, ran: r.events.filter((e) => e.type === 'task-start').length };
    };
    const cold: number[] = [];
    const push: number[] = [];
    const pull: number[] = [];
    let ranCold = 0;
    let ranPull = 0;
    for (let i = 0; i < runs; i++) {
      cold.push((await once(null)).ms);
      const cache = await startNginxCache();
      try {
        const p = await once(cfg(cache.url, false));
        push.push(p.ms);
        ranCold = p.ran;
        const q = await once(cfg(cache.url, true));
        pull.push(q.ms);
        ranPull = q.ran;
      } finally {
        await cache.stop();
      }
    }
    const c = median(cold);
    const p = median(push);
    const q = median(pull);
    console.log(
      `remote cache (stand-in pipeline, ${ranCold} task instances, 2 × 8 MB ISOs, nginx on loopback; medians of ${runs}):\n` +
        `  cold, no cache ${fmt(c)} (${cold.map(fmt).join(', ')}); cold, pushing to an empty cache ${fmt(p)} (${push.map(fmt).join(', ')}): overhead ${(((p - c) / c) * 100).toFixed(1)} % (goal < 3 %)\n` +
        `  empty build dir, warm cache ${fmt(q)} (${pull.map(fmt).join(', ')}), ${ranPull} task(s) run: ${(c / q).toFixed(2)}x faster than cold`,
    );
  } finally {
    await fx.cleanup();
  }
}

/** The real kernel-build step for one arch in a scratch build dir, as a run calls it; `extra` adds the cache or the cluster. */
async function runKernelStep(o: {
  arch: ArchSpec;
  scratch: string;
  outDir: string;
  extra: Partial<StepContext>;
  log: (line: string) => void;
  wrap?: CommandWrapper;
}): Promise<{ outcome: Outcome; ms: number }> {
  const key = await findModuleSigningKey(defaultKeyDir());
  const epoch = await sourceDateEpoch(repo);
  const t = process.hrtime.bigint();
  const outcome = await kernelBuildStep.run({
    taskId: 'A-01',
    instanceId: `A-01@${o.arch.name}`,
    arch: o.arch,
    params: {},
    repoRoot: repo,
    buildDir: o.scratch,
    outDir: o.outDir,
    cacheDir: join(o.scratch, 'cache'),
    ...(key ? { moduleSigningKey: key.path } : {}),
    buildPath: (rel) => join(o.scratch, rel),
    sourceDateEpoch: epoch,
    jobs: 2,
    log: o.log,
    progress: () => {},
    run: (argv, opts = {}) => run(argv, { sink: (_s, l) => o.log(l), ...opts, env: { SOURCE_DATE_EPOCH: String(epoch), ...(opts.env ?? {}) }, ...(o.wrap ? { wrap: o.wrap } : {}) }),
    signal: new AbortController().signal,
    ...o.extra,
  });
  return { outcome, ms: Number(process.hrtime.bigint() - t) / 1e6 };
}

/** 7. kernel-build from an empty ccache, then after `make clean` with it warm: the step itself, sandboxed as a run does. */
async function compilerCacheFigures(): Promise<void> {
  const arch = (await loadArches(repo)).get('x86_64')!;
  const scratch = join(buildDir, 'bench', 'ccache');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(join(scratch, 'cache'), { recursive: true });
  // The unpacked source, hard-linked (the kernel builds out of tree and writes nothing into it).
  const src = await run(['cp', '-al', join(buildDir, 'cache', 'src'), join(scratch, 'cache', 'src')]);
  if (!src.ok) {
    console.log(`compiler cache: skipped (no unpacked kernel in ${join(buildDir, 'cache', 'src')}; run \`clawos-build p2\` there first)`);
    return;
  }
  const opened = await openCompilerCache(chooseCompilerCache({ dir: join(scratch, 'ccache') }, {}), { run });
  if (!opened.cache) {
    console.log(`compiler cache: skipped (${opened.notes.join('; ')})`);
    return;
  }
  const cache = opened.cache;
  const key = await findModuleSigningKey(defaultKeyDir());
  const sandbox = await probeSandbox();
  const logFile = join(scratch, 'kernel-build.log');
  const build = async (label: string) => {
    const outDir = join(scratch, 'kernel-engineer', 'x86_64');
    const statsLog = statsLogPath(cache, 'bench', `A-01@x86_64-${label}`);
    const wrap = sandboxWrapper(sandbox, { task: 'A-01@x86_64', outDir, writable: [join(scratch, 'cache'), cache.dir], readOnly: [repo, buildDir], network: false });
    const log = (line: string) => appendFileSync(logFile, `[${label}] ${line}\n`);
    const { outcome: o, ms } = await runKernelStep({ arch, scratch, outDir, extra: { compilerCache: compilerCacheUse(cache, { baseDir: scratch, statsLog }) }, log, ...(wrap ? { wrap } : {}) });
    const stats = parseCcacheStatsLog(await readFile(statsLog, 'utf8').catch(() => ''));
    if (o.status !== 'PASS') throw new Error(`bench: kernel-build (${label}) ${o.status}: ${o.message} (log ${logFile})`);
    const info = JSON.parse(await readFile(join(outDir, 'build-info.json'), 'utf8')) as { commands: { phase: string; durationMs: number }[] };
    const compileMs = info.commands.filter((c) => c.phase === 'compile').reduce((a, c) => a + c.durationMs, 0);
    return { ms, compileMs, stats, vmlinuz: await sha256File(join(outDir, 'vmlinuz')), obj: join(outDir, 'obj') };
  };
  const cold = await build('cold');
  const clean = await run(['make', '-C', join(scratch, 'cache', 'src', (await readdir(join(scratch, 'cache', 'src')))[0]!), `O=${cold.obj}`, 'ARCH=x86_64', 'clean']);
  if (!clean.ok) throw new Error(`bench: make clean failed: ${clean.tail.join(' | ')}`);
  const warm = await build('warm');
  const reference = values['ccache-reference'] ? await sha256File(resolve(values['ccache-reference'])) : null;
  const same = (h: string) => (reference ? (h === reference ? 'the same as the reference' : `DIFFERS from the reference ${reference.slice(0, 16)}`) : '');
  console.log(
    `compiler cache (ccache ${cache.version}, kernel-build x86_64 -j2, sandboxed, module-signing key ${key ? 'managed' : 'made per build'}):\n` +
      `  cold, empty cache: ${fmt(cold.ms)} (make ${fmt(cold.compileMs)}); ${formatCcacheStats(cold.stats)}\n` +
      `  after make clean, warm cache: ${fmt(warm.ms)} (make ${fmt(warm.compileMs)}); ${formatCcacheStats(warm.stats)}\n` +
      `  ${(cold.ms / warm.ms).toFixed(2)}x faster (goal >= 4x; make alone ${(cold.compileMs / warm.compileMs).toFixed(2)}x); ` +
      `vmlinuz ${cold.vmlinuz.slice(0, 16)} cold, ${warm.vmlinuz.slice(0, 16)} warm: ${cold.vmlinuz === warm.vmlinuz ? 'the same bytes' : 'DIFFERENT'}` +
      (reference ? `; cold ${same(cold.vmlinuz)}, warm ${same(warm.vmlinuz)} (${values['ccache-reference']})` : ''),
  );
}

/** 7b. Both arches side by side with the warm cache of a build whose kernels filled it from empty; its times as cold. */
async function compilerCacheWarmFrom(from: string): Promise<void> {
  const runs = await readAllRuns(from);
  const started = runs.flatMap((r) => r.events.filter((e) => e.type === 'run-start').map((e) => e.payload as { compiler_cache?: { dir: string } | null }));
  const dir = started.map((p) => p.compiler_cache?.dir).find(Boolean);
  const colds = new Map<string, TaskEndPayload>();
  for (const r of runs) {
    for (const e of r.events) {
      const p = e.payload as TaskEndPayload;
      if (e.type === 'task-end' && p.task_id === 'A-01' && p.status === 'PASS' && p.compiler_cache && !p.up_to_date && !p.restored_from) colds.set(p.task, p);
    }
  }
  if (!dir || colds.size === 0) {
    console.log(`compiler cache (warm from ${from}): skipped (no kernel built through the compiler cache there)`);
    return;
  }
  const opened = await openCompilerCache(chooseCompilerCache({ dir }, {}), { run });
  const cache = opened.cache!;
  const scratch = join(buildDir, 'bench', 'ccache-warm');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(join(scratch, 'cache'), { recursive: true });
  const src = await run(['cp', '-al', join(from, 'cache', 'src'), join(scratch, 'cache', 'src')]);
  if (!src.ok) throw new Error(`bench: no unpacked kernel in ${join(from, 'cache', 'src')}`);
  const arches = await loadArches(repo);
  const sandbox = await probeSandbox();
  const logFile = join(scratch, 'kernel-build.log');
  const results = await Promise.all(
    [...colds.values()].map(async (cold) => {
      const arch = arches.get(cold.arch!)!;
      const outDir = join(scratch, 'kernel-engineer', arch.name);
      const statsLog = statsLogPath(cache, 'bench', `${cold.task}-warm`);
      const wrap = sandboxWrapper(sandbox, { task: cold.task, outDir, writable: [join(scratch, 'cache'), cache.dir], readOnly: [repo, buildDir, from], network: false });
      const log = (line: string) => appendFileSync(logFile, `[${arch.name}] ${line}\n`);
      const { outcome, ms } = await runKernelStep({ arch, scratch, outDir, extra: { compilerCache: compilerCacheUse(cache, { baseDir: scratch, statsLog }) }, log, ...(wrap ? { wrap } : {}) });
      if (outcome.status !== 'PASS') throw new Error(`bench: kernel-build ${arch.name} (warm) ${outcome.status}: ${outcome.message} (log ${logFile})`);
      const stats = parseCcacheStatsLog(await readFile(statsLog, 'utf8').catch(() => ''));
      const vmlinuz = await sha256File(join(outDir, 'vmlinuz'));
      const theirs = await sha256File(join(from, 'kernel-engineer', arch.name, 'vmlinuz'));
      return { arch: arch.name, cold, ms, stats, vmlinuz, same: vmlinuz === theirs };
    }),
  );
  console.log(`compiler cache (ccache ${cache.version}), both arches side by side as \`all\` builds them; cold: ${from}'s own build from the empty cache ${dir}; warm: a fresh object dir in another folder:`);
  for (const r of results) {
    console.log(
      `  ${r.arch}: cold ${fmt(r.cold.duration_ms)} (${r.cold.compiler_cache!.summary}); warm ${fmt(r.ms)} (${formatCcacheStats(r.stats)}); ` +
        `${(r.cold.duration_ms / r.ms).toFixed(2)}x faster (goal >= 4x); vmlinuz ${r.vmlinuz.slice(0, 16)} ${r.same ? 'the same bytes as' : 'DIFFERS from'} the cold build's`,
    );
  }
}

/** 8. `all` in a clone from nothing, pushing; `all` in a second clone from nothing, pulling. */
async function remoteCacheWholeBuild(): Promise<void> {
  const status = await run(['git', '-C', repo, 'status', '--porcelain'], { captureStdout: true });
  if (status.stdout.trim()) console.log('  note: the working tree has changes; the clones build HEAD without them');
  const keyDir = defaultKeyDir();
  if (!(await readdir(keyDir).catch(() => [] as string[])).some((f) => f.startsWith('builder-') && f.endsWith('.key'))) {
    console.log(`remote cache (whole build): skipped (no builder key in ${keyDir}: clawos-build keys init --role builder)`);
    return;
  }
  const scratch = join(buildDir, 'bench', 'cache-all');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  const cache = await startNginxCache();
  try {
    const build = async (name: string) => {
      const clone = join(scratch, name);
      const c = await run(['git', 'clone', '--quiet', '--no-hardlinks', repo, clone]);
      if (!c.ok) throw new Error(`bench: git clone failed: ${c.tail.join(' | ')}`);
      await run(['ln', '-s', join(repo, 'node_modules'), join(clone, 'node_modules')]);
      const tsc = await run(['npx', 'tsc', '-p', 'tsconfig.json'], { cwd: clone });
      if (!tsc.ok) throw new Error(`bench: tsc in ${clone} failed: ${tsc.tail.join(' | ')}`);
      // An empty compiler cache too: each clone is a fresh machine.
      const env = { XDG_CACHE_HOME: join(scratch, `${name}-xdg-cache`) };
      const logFile = join(scratch, `${name}.log`);
      const r = await timed(['sh', '-c', `exec node bin/clawos-build.js all --remote-cache ${cache.url} --json 2>${logFile}`], { cwd: clone, env });
      const out = JSON.parse(r.stdout || '{}') as { ok?: boolean; tasks?: { id: string; ran: boolean }[] };
      if (!r.ok || !out.ok) throw new Error(`bench: all in ${clone} failed (log ${logFile})`);
      const runs = await readAllRuns(join(clone, 'build'));
      const end = runs.at(-1)!.events.find((e) => e.type === 'run-end');
      const stats = (end?.payload as { remote_cache?: { stats: RemoteStats } }).remote_cache?.stats;
      if (!stats) throw new Error(`bench: the run in ${clone} recorded no remote cache figures`);
      return { ms: r.ms, ran: (out.tasks ?? []).filter((t) => t.ran).map((t) => t.id), tasks: (out.tasks ?? []).length, stats };
    };
    const first = await build('first');
    const second = await build('second');
    const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
    console.log(
      `remote task cache, whole build (nginx on loopback, two clones of HEAD, empty build dirs and compiler caches):\n` +
        `  first clone, cold, pushing: ${fmt(first.ms)}; ran ${first.ran.length} of ${first.tasks} task instances; pushed ${first.stats.pushed} (${first.stats.pushed_objects} objects, ${mb(first.stats.pushed_bytes)}); ` +
        `waited on the cache ${fmt(first.stats.busy_ms)} = ${((100 * first.stats.busy_ms) / first.ms).toFixed(2)} % of the build (goal < 3 %)\n` +
        `  second clone, pulling: ${fmt(second.ms)} (goal < 3 min); ${second.stats.hits} hits, ${second.stats.pulled_objects} objects pulled (${mb(second.stats.pulled_bytes)}); ` +
        `ran ${second.ran.length ? second.ran.join(', ') : 'nothing'}; ${(first.ms / second.ms).toFixed(1)}x faster than the first`,
    );
  } finally {
    await cache.stop();
  }
}

/** 9. kernel-build for one arch, every compile through a real icecream cluster, compared with a local build's vmlinuz. */
async function icecreamKernel(): Promise<void> {
  const why = iceccClusterUnavailable();
  if (why) {
    console.log(`icecream (whole kernel): skipped (${why})`);
    return;
  }
  const arch = (await loadArches(repo)).get(values.arch!);
  if (!arch) throw new Error(`bench: no arch ${values.arch}`);
  const scratch = join(buildDir, 'bench', `icecream-${arch.name}`);
  await rm(scratch, { recursive: true, force: true });
  await mkdir(join(scratch, 'cache'), { recursive: true });
  const src = await run(['cp', '-al', join(buildDir, 'cache', 'src'), join(scratch, 'cache', 'src')]);
  if (!src.ok) {
    console.log(`icecream (whole kernel): skipped (no unpacked kernel in ${join(buildDir, 'cache', 'src')}; run \`clawos-build p2\` there first)`);
    return;
  }
  const logFile = join(scratch, 'kernel-build.log');
  const cluster = await startIceccCluster();
  try {
    const outDir = join(scratch, 'kernel-engineer', arch.name);
    // Every command as the cluster's client: in its namespace, whose iceccd takes no job itself.
    const wrap: CommandWrapper = (cmd) => ({ argv: cluster.client(cmd.argv), env: cmd.env, cwd: cmd.cwd });
    const log = (line: string) => appendFileSync(logFile, `${line}\n`);
    const { outcome: o, ms } = await runKernelStep({ arch, scratch, outDir, extra: { icecream: { jobs: 8 } }, log, wrap });
    if (o.status !== 'PASS') throw new Error(`bench: kernel-build through icecream ${o.status}: ${o.message} (log ${logFile})`);
    const vmlinuz = await sha256File(join(outDir, 'vmlinuz'));
    // A file, or a sha256 (16 hex digits at least) of a plain build's vmlinuz recorded elsewhere (CI's reproduce lists them).
    const ref = values['icecream-reference'];
    const reference = !ref ? null : /^[0-9a-f]{16,64}$/.test(ref) ? ref : await sha256File(resolve(ref));
    const byDaemon = countSchedulerJobs(await cluster.schedulerLog());
    console.log(
      `icecream, whole kernel (kernel-build ${arch.name}, make -j8, scheduler and two 2-slot daemons in network namespaces on these 2 cores):\n` +
        `  ${fmt(ms)}; ${o.message}\n` +
        `  scheduler: ${Object.entries(byDaemon).map(([d, n]) => `${d} ${n} jobs`).join(', ')}\n` +
        `  vmlinuz ${vmlinuz.slice(0, 16)}` +
        (reference ? `: ${vmlinuz.startsWith(reference) ? 'the same bytes as' : 'DIFFERS from'} ${ref} (${reference.slice(0, 16)})` : ''),
    );
  } finally {
    await cluster.stop();
  }
}

const only = values.only;
if (!only || only === 'noop') await noopAll();
if ((!only && !values['skip-kernel']) || only === 'kernel') await kernel();
if (!only || only === 'boots') await boots();
if (!only || only === 'verify') await verifyThroughput();
if (!only || only === 'sandbox') await sandboxOverhead();
if (!only || only === 'cache') await remoteCacheFigures();
// Two kernel builds: asked for by name only.
if (only === 'ccache') await (values['ccache-warm-from'] ? compilerCacheWarmFrom(resolve(values['ccache-warm-from'])) : compilerCacheFigures());
if (only === 'cache-all') await remoteCacheWholeBuild();
if (only === 'icecream') await icecreamKernel();
