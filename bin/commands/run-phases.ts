/** `clawos-build p1|p2|p3|p4|all`: run phases and their gates, then seal the run in the vault. */
import { resolve } from 'node:path';
import { run as runProcess } from '../../lib/proc.js';
import { formatDuration } from '../../lib/format.js';
import { DEFAULT_BACKEND } from '../../pipeline/catalog/backends.js';
import { PHASES, type Phase } from '../../pipeline/catalog/task-spec.js';
import { isPassed } from '../../pipeline/catalog/outcome.js';
import { acquireBuildLock } from '../../pipeline/run/build-lock.js';
import { loadGateSpecs } from '../../pipeline/run/gates.js';
import { finishRun, runPhases, type PhaseResult, type RunFinish } from '../../pipeline/run/phases.js';
import { chooseMode, createReporter } from '../../pipeline/run/reporter.js';
import { openRun } from '../../pipeline/run/session.js';
import { defaultKeyDir, defaultTrustFile } from '../../vault/key-dir.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';

interface RunArgs {
  command: string;
  arch: string[];
  jobs: number;
  buildDir: string;
  logDir?: string;
  config?: string;
  json: boolean;
  noSandbox: boolean;
  remoteCache?: string;
  remoteCacheReadonly: boolean;
  compilerCache: boolean;
  noCompilerCache: boolean;
  compilerCacheRemote?: string;
  icecream: boolean;
  icecreamJobs?: number;
  rootfsBackend: string;
  buildroot?: string;
  buildrootSha256?: string;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const p = args as unknown as RunArgs;
  const phases: Phase[] = p.command === 'all' ? [...PHASES] : [p.command.toUpperCase() as Phase];
  const repoRoot = io.repoRoot;
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const mode = chooseMode({ json: p.json, isTTY: !!process.stderr.isTTY, ci: !!process.env.CI });
  const reporter = createReporter(mode);
  const release = await acquireBuildLock(resolve(p.buildDir));
  const started = Date.now();
  let results: PhaseResult[] = [];
  let finish: RunFinish | undefined;
  const keyDir = defaultKeyDir();
  try {
    const rc = await openRun({
      repoRoot,
      buildDir: p.buildDir,
      logDir: p.logDir,
      arches: p.arch,
      jobs: p.jobs,
      configFile: p.config,
      emit: reporter.sink,
      signal: ac.signal,
      heartbeatMs: mode === 'plain' ? 30_000 : 0,
      phases,
      noSandbox: p.noSandbox,
      keyDir,
      ...(p.remoteCache || p.remoteCacheReadonly ? { remoteCache: { ...(p.remoteCache ? { url: p.remoteCache } : {}), ...(p.remoteCacheReadonly ? { readonly: true } : {}) } } : {}),
      ...(p.compilerCache || p.noCompilerCache || p.compilerCacheRemote
        ? { compilerCache: { ...(p.compilerCache ? { on: true } : {}), ...(p.noCompilerCache ? { off: true } : {}), ...(p.compilerCacheRemote ? { remote: p.compilerCacheRemote } : {}) } }
        : {}),
      ...(p.icecream || p.icecreamJobs !== undefined ? { icecream: { on: true, ...(p.icecreamJobs !== undefined ? { jobs: p.icecreamJobs } : {}) } } : {}),
      ...(p.rootfsBackend !== DEFAULT_BACKEND
        ? {
            backend: {
              name: p.rootfsBackend,
              params: { ...(p.buildroot ? { buildroot: resolve(p.buildroot) } : {}), ...(p.buildrootSha256 ? { buildroot_sha256: p.buildrootSha256 } : {}) },
            },
          }
        : {}),
    });
    // Every locked input the planned tasks use, fetched before any of them runs and outside them:
    // a mirror problem stops the run before anything is built, and no task needs the network for its inputs.
    if (rc.graph.order.some((i) => phases.includes(i.task.spec.phase) && rc.steps.get(i.task.spec.uses ?? '')?.lockedInputs)) {
      const { prefetchLocked } = await import('../../pipeline/inputs/prefetch.js');
      const { lockOf } = await import('../../pipeline/inputs/debs.js');
      const lock = await lockOf({ repoRoot });
      const { otherBackendInputs } = await import('../../pipeline/inputs/lock-resolve.js');
      const otherBackend = await otherBackendInputs(repoRoot, p.rootfsBackend);
      const got = await prefetchLocked({ run: (a, o) => runProcess(a, o), cacheDir: rc.cacheDir, log: () => {}, repoRoot }, lock, [...rc.arches.values()].map((a) => a.debian_arch), otherBackend);
      if (mode !== 'json') {
        const skipped = got.skipped.length ? `, ${got.skipped.length} not needed by the ${p.rootfsBackend} backend` : '';
        process.stderr.write(`inputs: ${lock.file} sha256 ${lock.sha256.slice(0, 16)}: ${got.fetched.length} fetched, ${got.cached.length} already in the download cache, ${got.host.length} served by the host's matching copy${skipped}\n`);
      }
    }
    let error: string | undefined;
    try {
      results = await runPhases(rc, phases, await loadGateSpecs(repoRoot));
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      // The run's chain always ends with run-end, even when a phase refused to start.
      finish = await finishRun(rc, results, { keyDir, ...(error !== undefined ? { error } : {}) });
    }
  } finally {
    await reporter.finish();
    await release();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
  const records = results.flatMap((r) => r.records);
  const bad = records.filter((r) => !isPassed(r.status));
  const nogo = results.filter((r) => r.gate.recommendation !== 'GO');
  const ranAll = results.length === phases.length;
  const code = runExitCode({ aborted: ac.signal.aborted, bad, nogo: nogo.length, ranAll });
  if (p.json) {
    printJson(io, {
      ok: code === EXIT.ok,
      exit_code: code,
      duration_ms: Date.now() - started,
      build_dir: resolve(p.buildDir),
      run_id: finish?.runId,
      events: finish?.eventsFile,
      bundle: finish?.bundle
        ? { dir: finish.bundle.dir, signed: true, subjects: finish.bundle.subjects.length, manifest_sha256: finish.bundle.manifestSha256, log_root: finish.bundle.logRootB64u }
        : { signed: false, note: finish?.bundleNote },
      gates: results.map((r) => ({ phase: r.phase, recommendation: r.gate.recommendation, blockers: r.gate.blockers, coverage: r.gate.coverage })),
      tasks: records.map((r) => ({
        id: r.id,
        status: r.status,
        reason: r.reason,
        message: r.message,
        duration_ms: r.duration_ms,
        ran: Date.parse(r.finished_at) >= started,
      })),
    });
  } else {
    const ran = records.filter((r) => Date.parse(r.finished_at) >= started).length;
    io.printErr(
      `${code === EXIT.ok ? 'done' : ac.signal.aborted ? 'interrupted' : 'FAILED'} in ${formatDuration(Date.now() - started)}: ` +
        results.map((r) => `${r.phase} ${r.gate.recommendation}`).join(', ') +
        ` (${records.length} task instances, ${ran} run, ${records.length - ran} up to date; build dir ${resolve(p.buildDir)})\n`,
    );
    if (finish) io.printErr(`vault: run ${finish.runId}, events ${finish.eventsFile}\n`);
    if (finish?.bundle) {
      io.printErr(
        `bundle: ${finish.bundle.dir} (${finish.bundle.subjects.length} attested subjects, ${finish.bundle.manifest.files.length} files; ` +
          `signed by release key ${finish.releaseKeyId?.slice(0, 16)}; log root ${finish.bundle.logRootB64u})\n` +
          `verify: clawos-build verify ${finish.bundle.dir} --trust ${defaultTrustFile(keyDir)}\n`,
      );
    } else if (finish?.bundleNote) io.printErr(`bundle: ${finish.bundleNote}\n`);
  }
  return code;
}

/**
 * The run's exit code: 4 when what went wrong is only infrastructure (a tool, a
 * download, a pinned input that is not there: INFRA_ERROR, and what it blocked),
 * 1 when a task, gate or boot failed, 130 when interrupted.
 */
export function runExitCode(o: { aborted: boolean; bad: readonly { status: string }[]; nogo: number; ranAll: boolean }): number {
  if (o.aborted) return EXIT.interrupted;
  if (!o.bad.length && !o.nogo && o.ranAll) return EXIT.ok;
  const causes = o.bad.filter((r) => r.status !== 'BLOCKED');
  if (causes.length && causes.every((r) => r.status === 'INFRA_ERROR')) return EXIT.infra;
  return EXIT.failed;
}
