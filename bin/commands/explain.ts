/**
 * `clawos-build explain TASK[@ARCH] [--json]`: why a task instance would re-run,
 * or that it would not. It computes the instance's fingerprint and takes the
 * up-to-date / restore / run decision with the scheduler's own functions
 * (computeFingerprint, decideFreshness), then puts it in words: the input file,
 * spec, frozen spec, dependency output or tool version that changed
 * (explain-change.ts), the recorded outputs missing or changed. A dependency it
 * would not run has the record the scheduler would keep (keptRecord) assumed in
 * memory, so a dependant is fingerprinted as the scheduler would. Read-only: its
 * context has no vault, logs or events, and it saves nothing (no state, no hash
 * cache), so it is safe beside a running build.
 */
import { findSecureBootKey, loadTestCerts } from '../../pipeline/boot/secureboot-key.js';
import { findModuleSigningKey } from '../../pipeline/kernel/module-signing-key.js';
import { defaultKeyDir } from '../../vault/key-dir.js';
import { join } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { HashCache } from '../../lib/hash-cache.js';
import { loadLocalConfig } from '../../pipeline/catalog/config.js';
import { buildGraph, type TaskGraph } from '../../pipeline/catalog/graph.js';
import type { Catalog } from '../../pipeline/catalog/load-tasks.js';
import { isPassed } from '../../pipeline/catalog/outcome.js';
import type { Step } from '../../pipeline/catalog/step.js';
import type { TaskInstance } from '../../pipeline/catalog/task-spec.js';
import { toolPackagesOf, type FreshnessContext } from '../../pipeline/run/context.js';
import { chooseCompilerCache } from '../../pipeline/ccache/compiler-cache.js';
import { icecreamSetting } from '../../pipeline/kernel/icecc.js';
import { describeChange } from '../../pipeline/run/explain-change.js';
import { ToolVersions } from '../../pipeline/run/fingerprint.js';
import { decideFreshness, frozenSpecRefusal, keptRecord, type OutputCheck } from '../../pipeline/run/freshness.js';
import { computeFingerprint } from '../../pipeline/run/instance-fingerprint.js';
import { clawosVersion, loadValidCatalog, selectArches, sourceDateEpoch } from '../../pipeline/run/session.js';
import { StateStore, type InstanceRecord } from '../../pipeline/run/state.js';
import { builtinSteps } from '../../pipeline/steps/index.js';
import { checkFrozenFiles, loadFreezeState, type FreezeState } from '../../vault/freeze-specs.js';
import { PassIndex } from '../../vault/vault-history.js';
import { Redactor } from '../../lib/redact.js';
import { RemoteTaskCache } from '../../pipeline/run/remote-cache.js';
import { buildDirArg } from '../path-args.js';

export interface ExplainOptions {
  repoRoot: string;
  buildDir: string;
  /** TASK or TASK@ARCH. */
  positionals: string[];
  /** Arches for a per-arch TASK given without @ARCH. */
  arch: string[] | null;
  config?: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
  /** --remote-cache URL (else the config file's remote_cache): asked, read-only, as the scheduler would. */
  remoteCache?: string;
  /** Tests: a tasks dir and steps other than the built-in ones. */
  tasksDir?: string;
  steps?: Map<string, Step>;
}

/** refused: its frozen_spec_deps do not match the freeze record; blocked: a dependency would be refused or blocked. Neither runs. */
export type Verdict = 'up-to-date' | 'restore' | 're-run' | 'refused' | 'blocked';

export interface Explanation {
  id: string;
  verdict: Verdict;
  would_run: boolean;
  /** In words, most important first. */
  reasons: string[];
  fingerprint: string;
  last: { status: string; reason?: string; message: string; finished_at: string; fingerprint: string } | null;
  outputs: OutputCheck;
  /** Dependencies that would re-run first; their new outputs may change this instance's inputs. */
  after: string[];
}

/** What explain reads: the run's read-only part (no vault, logs, events), so it cannot write. */
interface ExplainContext extends FreshnessContext {
  catalog: Catalog;
  graph: TaskGraph;
  /** The verified freeze record, as a run loads it: the scheduler refuses what it refuses. */
  freeze: FreezeState;
}

async function openExplainContext(o: ExplainOptions, arches: string[] | null): Promise<ExplainContext> {
  // The run stops before any task when a frozen file drifted (pipeline/run/session.ts): explain says exactly that.
  const frozen = await checkFrozenFiles(o.repoRoot);
  if (!frozen.ok) throw new UserError(frozen.message, frozen.hint);
  const buildDir = await buildDirArg(o.buildDir);
  const steps = o.steps ?? builtinSteps();
  const catalog = await loadValidCatalog(o.repoRoot, o.tasksDir, steps);
  const archMap = await selectArches(o.repoRoot, arches);
  const graph = buildGraph(catalog.tasks, [...archMap.keys()]);
  const ctx: ExplainContext = {
    repoRoot: o.repoRoot,
    buildDir,
    catalog,
    graph,
    arches: archMap,
    steps,
    state: await StateStore.open(buildDir),
    // Read, never saved; the tool versions are asked of dpkg, not of (or into) the run's cache file.
    hashCache: await HashCache.open(join(buildDir, 'cache', 'hash-cache.json')),
    tools: new ToolVersions(null),
    config: await loadLocalConfig(o.repoRoot, o.config),
    sourceDateEpoch: await sourceDateEpoch(o.repoRoot),
    clawosVersion: await clawosVersion(o.repoRoot),
    passes: new PassIndex(buildDir),
    // The same key the run would give the kernel build: its certificate is in kernel-build's fingerprint.
    moduleSigningKey: (await findModuleSigningKey(defaultKeyDir())) ?? null,
    // And the Secure Boot key G-05 signs with: its certificate is in the ISO step's fingerprint.
    secureBootKey: (await findSecureBootKey(defaultKeyDir(), await loadTestCerts(o.repoRoot))) ?? null,
    freeze: await loadFreezeState(o.repoRoot),
  };
  // What `all` without flags would do: the config file's compiler_cache turns ccache on, and that is in the
  // fingerprint, unless its icecream sends the step's compiles to the cluster instead (compilerCacheOf).
  ctx.compilerCacheOn = chooseCompilerCache(ctx.config.compiler_cache, {}).on;
  ctx.icecream = icecreamSetting({}, ctx.config.icecream, 1);
  const remoteUrl = o.remoteCache ?? ctx.config.remote_cache?.url;
  if (remoteUrl) {
    // Read-only here: explain looks entries up (and says why one is refused) but never pulls or pushes.
    ctx.remote = await RemoteTaskCache.open(
      { url: remoteUrl, readonly: true, ...(ctx.config.remote_cache?.header_env ? { headerEnv: ctx.config.remote_cache.header_env } : {}) },
      { keyDir: defaultKeyDir(), redact: new Redactor(), emit: (e) => (e.type === 'info' ? o.printErr(`${e.message}\n`) : undefined) },
    );
  }
  await ctx.tools.load(graph.order.flatMap((i) => toolPackagesOf(ctx, i)));
  return ctx;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** Up to five known names closest to what was typed. */
export function closeMatches(typed: string, known: Iterable<string>): string[] {
  const t = typed.toUpperCase();
  return [...new Set(known)]
    .map((k) => ({ k, d: editDistance(t, k.toUpperCase()) }))
    .filter((x) => x.d <= 2 || x.k.toUpperCase().startsWith(t) || t.startsWith(x.k.toUpperCase()))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, 5)
    .map((x) => x.k);
}

/** TASK or TASK@ARCH → task id and arch (null: all selected arches). */
function parseTarget(target: string): { task: string; arch: string | null } {
  const at = target.indexOf('@');
  return at < 0 ? { task: target.toUpperCase(), arch: null } : { task: target.slice(0, at).toUpperCase(), arch: target.slice(at + 1) };
}

const short = (sha: string) => sha.slice(0, 12);

function describeOutputs(o: OutputCheck): string[] {
  return [
    ...o.missing.map((p) => `output ${p} missing`),
    ...o.changed.map((c) => `output ${c.path} changed since it was recorded (recorded ${short(c.recorded)}, now ${short(c.now)})`),
  ];
}

/** Why each instance would (or would not) re-run, dependencies first. */
export async function explainInstances(rc: ExplainContext, wanted: TaskInstance[]): Promise<Explanation[]> {
  const memo = new Map<string, Promise<Explanation>>();
  const explain = (inst: TaskInstance): Promise<Explanation> => {
    let p = memo.get(inst.id);
    if (!p) {
      p = explainOne(rc, inst, (id) => explain(rc.graph.byId.get(id)!));
      memo.set(inst.id, p);
    }
    return p;
  };
  return Promise.all(wanted.map(explain));
}

async function explainOne(rc: ExplainContext, inst: TaskInstance, dep: (id: string) => Promise<Explanation>): Promise<Explanation> {
  const after: string[] = [];
  const stopped: Explanation[] = [];
  for (const d of inst.deps) {
    const e = await dep(d);
    if (e.would_run) after.push(d);
    if (e.verdict === 'refused' || e.verdict === 'blocked') stopped.push(e);
  }
  const { fingerprint, parts } = await computeFingerprint(rc, inst);
  // The scheduler's order: a dependency that did not pass blocks it, then a freeze mismatch refuses it.
  const notRun = (verdict: 'refused' | 'blocked', reasons: string[]): Explanation => ({ id: inst.id, verdict, would_run: false, reasons, fingerprint, last: lastOf(rc.state.instance(inst.id)), outputs: { missing: [], changed: [] }, after });
  if (stopped.length) return notRun('blocked', stopped.map((e) => `dependency ${e.id} would be ${e.verdict}, not run`));
  const refused = await frozenSpecRefusal(rc, inst.task.spec);
  if (refused) return notRun('refused', [`${refused.reason}: ${refused.message}`]);
  // The scheduler's own decision (pipeline/run/freshness.ts): explain only puts it in words.
  const f = await decideFreshness(rc, inst, fingerprint);
  const prev = f.prev;
  const base = {
    id: inst.id,
    fingerprint,
    last: lastOf(prev),
    outputs: { missing: [], changed: [] } as OutputCheck,
    after,
  };
  const done = (verdict: Verdict, reasons: string[], outputs = base.outputs): Explanation => ({ ...base, verdict, would_run: verdict === 're-run', reasons, outputs });
  // What the scheduler would record for it (in memory only): its dependants' fingerprints are computed from that.
  if (f.verdict !== 'run') {
    const spec = inst.task.spec;
    rc.state.assume(keptRecord(f, { id: inst.id, task_id: spec.task_id, arch: inst.arch, phase: spec.phase, agent: spec.agent, log: '' }, { fingerprint, parts }));
  }

  if (f.verdict === 'up-to-date') {
    return done('up-to-date', [`up to date: would not re-run (${f.prev.status} at ${f.prev.finished_at}, fingerprint ${short(fingerprint)})`], { missing: [], changed: [] });
  }
  if (f.verdict === 'restore' && f.source === 'last-result') {
    return done('restore', [...describeOutputs(f.outputs), 'inputs unchanged: the recorded outputs would be restored from the vault store, not rebuilt'], f.outputs);
  }
  if (f.verdict === 'run' && f.cause === 'outputs-not-stored') {
    const outputs = f.outputs ?? base.outputs;
    return done('re-run', [...describeOutputs(outputs), 'inputs unchanged, but the recorded outputs are not all in the vault store'], outputs);
  }
  // The fingerprint changed, the last result did not pass, or there is none.
  const since = prev ? sinceLast(prev, parts) : [`${f.verdict === 'run' ? 'never run: ' : ''}no earlier result in ${join(rc.buildDir, 'state.json')}`];
  if (f.verdict === 'restore' && f.source === 'remote') {
    const a = f.hit.action;
    return done('restore', [...since, ...describeOutputs(f.outputs), `the remote cache holds a PASS with exactly these inputs (run ${a.built_by.run_id}, signed by builder key ${short(f.hit.builder)}): its outputs would be pulled, checked against their sha256 and restored, not rebuilt`], f.outputs);
  }
  if (f.verdict === 'restore') {
    const changed = describeOutputs(f.outputs);
    // Its outputs are what that run recorded: the scheduler takes the record over and restores nothing.
    if (!changed.length) return done('up-to-date', [`up to date: would not re-run (run ${f.hit.run_id} passed with exactly these inputs and its outputs are intact)`, ...since]);
    return done('restore', [...since, ...changed, `run ${f.hit.run_id} passed with exactly these inputs: its outputs would be restored from the vault store, not rebuilt`], f.outputs);
  }
  return done('re-run', since);
}

function lastOf(prev: InstanceRecord | undefined): Explanation['last'] {
  return prev ? { status: prev.status, ...(prev.reason ? { reason: prev.reason } : {}), message: prev.message, finished_at: prev.finished_at, fingerprint: prev.fingerprint } : null;
}

/** What is different from the last result: its failure, and what changed since. */
function sinceLast(prev: InstanceRecord, parts: Record<string, unknown>): string[] {
  const changes = describeChange(prev.fingerprint_parts, parts);
  if (isPassed(prev.status)) return changes;
  const last = `last result ${prev.status}${prev.reason ? ` (${prev.reason})` : ''}: ${prev.message}`;
  // A BLOCKED or refused record has no fingerprint parts to compare with.
  const compared = Object.keys(prev.fingerprint_parts ?? {}).length > 0;
  const same = changes.length === 1 && changes[0] === 'clawos-build version changed';
  return [last, ...(!compared ? [] : same ? ['nothing it depends on changed since'] : changes.map((c) => `since then: ${c}`))];
}

export function formatExplanation(e: Explanation): string {
  const heads: Record<Verdict, string> = {
    'up-to-date': `${e.id}: ${e.reasons[0]}`,
    restore: `${e.id}: would not re-run, but restore outputs`,
    're-run': `${e.id}: would re-run`,
    refused: `${e.id}: would be refused, not run (recorded as FAIL)`,
    blocked: `${e.id}: would be blocked, not run`,
  };
  const head = heads[e.verdict];
  const lines = [head];
  for (const r of e.verdict === 'up-to-date' ? [] : e.reasons) lines.push(`  - ${r}`);
  if (e.after.length) {
    lines.push(`  - ${e.verdict === 're-run' ? 'after' : 'but it may re-run after'} ${e.after.join(', ')}, which would re-run${e.verdict === 're-run' ? '' : ' and may change its outputs'}`);
  }
  return lines.join('\n') + '\n';
}

/** The instances TASK[@ARCH] names, or a UserError listing close matches. */
function resolveTargets(rc: ExplainContext, target: string): TaskInstance[] {
  const { task, arch } = parseTarget(target);
  const t = rc.catalog.tasks.get(task);
  if (!t) {
    const near = closeMatches(task, [...rc.catalog.tasks.keys()]);
    throw new UserError(`unknown task "${target}"${near.length ? `; close matches: ${near.join(', ')}` : ''}`, '`clawos-build plan` lists every task instance');
  }
  if (arch !== null && !t.spec.per_arch) throw new UserError(`${task} is not per-arch: it has one instance, ${task}`, `run \`clawos-build explain ${task}\``);
  return rc.graph.order.filter((i) => i.task.spec.task_id === task && (arch === null || i.arch === arch));
}

export async function explainCommand(o: ExplainOptions): Promise<number> {
  if (o.positionals.length !== 1) throw new UserError(`explain takes one TASK or TASK@ARCH, got ${o.positionals.length ? o.positionals.join(' ') : 'none'}`, 'e.g. `clawos-build explain A-01@x86_64`');
  const target = o.positionals[0]!;
  const { arch } = parseTarget(target);
  const rc = await openExplainContext(o, arch !== null ? [arch] : o.arch);
  const explanations = await explainInstances(rc, resolveTargets(rc, target));
  if (o.json) o.print(JSON.stringify({ build_dir: rc.buildDir, instances: explanations }, null, 2) + '\n');
  else for (const e of explanations) o.print(formatExplanation(e));
  return 0;
}
