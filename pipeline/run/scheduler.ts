/**
 * Runs task instances with bounded concurrency. For each instance: refuse it when
 * its frozen_spec_deps do not match the signed freeze record; skip it when its
 * fingerprint and outputs are unchanged (restoring outputs from the vault's store
 * when an earlier PASS had the same fingerprint); otherwise run its action under
 * its timeout (the whole process group dies with it), check the declared outputs,
 * run validation_cmd, run rollback_cmd on failure (then restore the last PASS
 * outputs from the store), and put the outputs into the store. Every task start,
 * end, stored output, boot verdict and rollback is an event of the run's vault
 * chain. Emits events for the reporter; never prints.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { run as runProcess, type RunOptions } from '../../lib/proc.js';
import type { HashCache } from '../../lib/hash-cache.js';
import { recordInManifest } from '../../vault/manifest.js';
import { checkFrozenDeps } from '../../vault/freeze.js';
import { readSpec, type FreezeState } from '../../vault/freeze-specs.js';
import type { RunVault, StoredFile } from '../../vault/run-vault.js';
import { detach, restore, storeHas } from '../../vault/store.js';
import type { PassIndex } from '../../vault/vault-history.js';
import type { ArchSpec } from '../catalog/arch.js';
import { buildComponent, componentOutputs, notConfigured } from './component-build.js';
import type { LocalConfig } from '../catalog/config.js';
import type { EventSink } from './events.js';
import { fingerprintOf, hashRepoPath, type FingerprintParts, type ToolVersions } from './fingerprint.js';
import type { TaskGraph } from '../catalog/graph.js';
import type { Catalog } from '../catalog/load-tasks.js';
import { fail, infra, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { InstanceRecord, OutputRecord, StateStore } from './state.js';
import type { Step, StepContext } from '../catalog/step.js';
import { expandArch, expandParams, type TaskInstance } from '../catalog/task-spec.js';
import type { AgentLogs } from './agent-log.js';
import { describeChange } from './explain-change.js';
import { sandboxRecord, sandboxWrapper, ViolationWatch, type SandboxMode, type SandboxPolicy, type SandboxRecord } from '../../lib/sandbox.js';
import type { Redactor } from '../../lib/redact.js';
import { withRetries, type RetryPolicy } from '../../lib/retry.js';

export interface RunContext {
  repoRoot: string;
  buildDir: string;
  cacheDir: string;
  logs: AgentLogs;
  catalog: Catalog;
  graph: TaskGraph;
  arches: Map<string, ArchSpec>;
  steps: Map<string, Step>;
  state: StateStore;
  hashCache: HashCache;
  tools: ToolVersions;
  config: LocalConfig;
  jobs: number;
  sourceDateEpoch: number;
  emit: EventSink;
  signal: AbortSignal;
  clawosVersion: string;
  /** Heartbeat interval for long tasks (ms); 0 disables. */
  heartbeatMs: number;
  /** This run's event chain and the content store. */
  vault: RunVault;
  /** The signed P1 freeze record, verified once per run. */
  freeze: FreezeState;
  /** Earlier PASS results by fingerprint, from every run's chain (loaded on first use). */
  passes: PassIndex;
  /** bwrap (probed once per run) or explicitly off (--no-sandbox); recorded in every task event. */
  sandbox: SandboxMode;
  /** Named secrets, replaced in every log line, event, record and report. */
  redact: Redactor;
  /** INFRA_ERROR retries; a task's `retries:` overrides the count. */
  retry: RetryPolicy;
}

const OK_STATUSES = new Set(['PASS', 'NOT_CONFIGURED']);

function outDirOf(rc: RunContext, inst: TaskInstance): string {
  const agent = inst.task.spec.agent;
  return inst.arch ? join(rc.buildDir, agent, inst.arch) : join(rc.buildDir, agent);
}

/** Build-relative output paths an instance must produce. */
export function declaredOutputs(rc: RunContext, inst: TaskInstance): string[] {
  const spec = inst.task.spec;
  const outs = spec.outputs.map((o) => expandArch(o, inst.arch));
  if (spec.component && rc.config.components[spec.component]) {
    outs.push(...componentOutputs(relative(rc.buildDir, outDirOf(rc, inst)), rc.config.components[spec.component]!));
  }
  return outs;
}

export function stepOf(rc: RunContext, inst: TaskInstance): Step | null {
  return inst.task.spec.uses ? (rc.steps.get(inst.task.spec.uses) ?? null) : null;
}

export function paramsOf(inst: TaskInstance): Record<string, unknown> {
  return (expandParams(inst.task.spec.with ?? {}, inst.arch) as Record<string, unknown>) ?? {};
}

export function toolPackagesOf(rc: RunContext, inst: TaskInstance): string[] {
  const step = stepOf(rc, inst);
  const arch = inst.arch ? (rc.arches.get(inst.arch) ?? null) : null;
  return step ? step.toolPackages(arch, paramsOf(inst)) : [];
}

export async function computeFingerprint(rc: RunContext, inst: TaskInstance): Promise<{ fingerprint: string; parts: FingerprintParts }> {
  const spec = inst.task.spec;
  const arch = inst.arch ? (rc.arches.get(inst.arch) ?? null) : null;
  const step = stepOf(rc, inst);
  const params = paramsOf(inst);
  const inputs: Record<string, string> = {};
  const inputPaths = [...spec.inputs.map((i) => expandArch(i, inst.arch)), ...(step?.implicitInputs?.(arch, params) ?? [])];
  if (arch) inputPaths.push(`specs/arch/${arch.name}.yaml`);
  for (const p of [...new Set(inputPaths)].sort()) inputs[p] = await hashRepoPath(rc.repoRoot, p, rc.hashCache);
  const frozen: Record<string, string> = {};
  for (const p of spec.frozen_spec_deps) frozen[p] = await hashRepoPath(rc.repoRoot, p, rc.hashCache);
  const deps: FingerprintParts['deps'] = {};
  for (const d of inst.deps) {
    const r = rc.state.instance(d);
    deps[d] = { status: r?.status ?? 'missing', outputs: Object.fromEntries(Object.entries(r?.outputs ?? {}).map(([k, v]) => [k, v.sha256])) };
  }
  const tools: Record<string, string> = {};
  for (const p of toolPackagesOf(rc, inst).sort()) tools[p] = rc.tools.get(p);
  const parts: FingerprintParts = {
    spec,
    arch,
    step: step ? { name: step.name, version: step.version } : null,
    inputs,
    frozen_specs: frozen,
    deps,
    tools,
    component: spec.component ? (rc.config.components[spec.component] ?? 'not-configured') : null,
    source_date_epoch: rc.sourceDateEpoch,
  };
  return { fingerprint: fingerprintOf({ ...parts, clawos: rc.clawosVersion } as FingerprintParts), parts };
}

/** Every file under the declared outputs (a directory output counts file by file). */
async function expandOutputFiles(buildDir: string, rel: string): Promise<string[] | null> {
  const abs = join(buildDir, rel);
  const st = await stat(abs).catch(() => null);
  if (!st) return null;
  if (st.isFile()) return [rel];
  const out: string[] = [];
  for (const e of (await readdir(abs, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const sub = await expandOutputFiles(buildDir, `${rel}/${e.name}`);
    if (sub) out.push(...sub);
  }
  return out;
}

async function hashOutputs(buildDir: string, files: string[], cache: HashCache): Promise<Record<string, OutputRecord>> {
  const out: Record<string, OutputRecord> = {};
  for (const f of files) {
    const e = await cache.file(join(buildDir, f));
    out[f] = { sha256: e.sha256, size: e.size, mtimeMs: e.mtimeMs };
  }
  return out;
}

/** Recorded outputs still there with the recorded content. */
export async function outputsIntact(rc: RunContext, rec: InstanceRecord): Promise<boolean> {
  for (const [rel, o] of Object.entries(rec.outputs)) {
    try {
      const e = await rc.hashCache.file(join(rc.buildDir, rel));
      if (e.sha256 !== o.sha256) return false;
    } catch {
      return false;
    }
  }
  return true;
}

let manifestChain: Promise<unknown> = Promise.resolve();
function recordVault(buildDir: string, producer: string, outputs: Record<string, OutputRecord>): Promise<void> {
  const entries = Object.entries(outputs).map(([path, o]) => ({ path, sha256: o.sha256, size: o.size }));
  const next = manifestChain.then(() => recordInManifest(buildDir, producer, entries));
  manifestChain = next.catch(() => {});
  return next.then(() => {});
}

async function runAction(rc: RunContext, inst: TaskInstance, ctx: StepContext): Promise<Outcome> {
  const spec = inst.task.spec;
  if (spec.pending) return { status: 'NOT_CONFIGURED', reason: 'not-configured', message: spec.pending };
  if (spec.component) {
    const cfg = rc.config.components[spec.component];
    const decl = rc.catalog.components.get(spec.component);
    if (!cfg) return notConfigured(spec.component, decl?.needs ?? '', rc.config.file ? relative(rc.repoRoot, rc.config.file) : null);
    return buildComponent(ctx, spec.component, cfg);
  }
  if (spec.run) {
    const r = await ctx.run(['bash', '-c', spec.run], { cwd: ctx.outDir });
    if (r.ok) return { status: 'PASS', message: 'run: command succeeded' };
    return fail('exit-non-zero', `run: command exited ${r.exitCode ?? r.signal}: ${r.tail.slice(-3).join(' | ')}`);
  }
  const step = stepOf(rc, inst);
  if (!step) return infra(`unknown step ${spec.uses}`);
  return step.run(ctx);
}

function taskEnv(rc: RunContext, inst: TaskInstance, outDir: string): Record<string, string> {
  return {
    CLAWOS_BUILD_DIR: rc.buildDir,
    CLAWOS_OUT: outDir,
    CLAWOS_ARCH: inst.arch ?? '',
    CLAWOS_REPO: rc.repoRoot,
    CLAWOS_TASK: inst.id,
    SOURCE_DATE_EPOCH: String(rc.sourceDateEpoch),
  };
}

/** The build-relative output files of a PASS record, as the vault records them (each put into the store). */
async function storeOutputs(rc: RunContext, inst: TaskInstance, outputs: Record<string, OutputRecord>, opts: { onlyNew: boolean }): Promise<StoredFile[]> {
  const stored: StoredFile[] = [];
  for (const [path, o] of Object.entries(outputs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const s = await rc.vault.store(path, o.sha256);
    const { added, ...file } = s;
    stored.push(file);
    // An up-to-date task's outputs are already cited by an earlier run's artifact
    // events; only a first-time store is news.
    if (!opts.onlyNew || added) await rc.vault.append('artifact', { task: inst.id, ...file });
  }
  return stored;
}

/** A step's data that is a list of boot records (the qemu-boot step's), else null. */
function bootRecordsOf(data: unknown): { arch: string; variant: string; verdict: string; reason?: unknown; stage?: unknown; stage_ms?: unknown; message?: unknown; accel?: unknown; duration_ms?: unknown; serial_log: string }[] | null {
  if (!Array.isArray(data) || data.length === 0) return null;
  const ok = data.every((b) => b && typeof b === 'object' && ['arch', 'variant', 'verdict', 'serial_log'].every((k) => typeof (b as Record<string, unknown>)[k] === 'string'));
  return ok ? (data as ReturnType<typeof bootRecordsOf> & object) : null;
}

/** One boot-verdict event per boot a task's data reports, citing the serial log and boot record in the store. */
async function recordBootVerdicts(rc: RunContext, rec: InstanceRecord, stored: StoredFile[], upToDate: boolean): Promise<void> {
  const boots = bootRecordsOf(rec.data);
  if (!boots) return;
  const cite = async (name: string): Promise<StoredFile | null> => {
    const s = stored.find((f) => basename(f.path) === name);
    if (s) return s;
    // A failed boot has no recorded outputs, but its evidence names the files.
    const ev = (rec.evidence ?? []).find((e) => basename(e.path) === name);
    if (!ev) return null;
    try {
      const { added: _added, ...file } = await rc.vault.store(ev.path);
      return file;
    } catch {
      return null;
    }
  };
  for (const b of boots) {
    await rc.vault.append('boot-verdict', {
      task: rec.id,
      arch: b.arch,
      variant: b.variant,
      verdict: b.verdict,
      reason: b.reason ?? null,
      stage: b.stage ?? null,
      stage_ms: b.stage_ms ?? null,
      message: b.message ?? '',
      accel: b.accel ?? null,
      duration_ms: b.duration_ms ?? null,
      serial_log: await cite(b.serial_log),
      record: await cite(`${b.variant}.json`),
      ...(upToDate ? { up_to_date: true } : {}),
    });
  }
}

function taskEndPayload(
  rec: InstanceRecord,
  stored: StoredFile[],
  extra: { up_to_date?: boolean; restored_from?: string; restored?: string[]; sandbox?: SandboxRecord; attempts?: number } = {},
): Record<string, unknown> {
  return {
    task: rec.id,
    task_id: rec.task_id,
    arch: rec.arch,
    phase: rec.phase,
    agent: rec.agent,
    status: rec.status,
    reason: rec.reason,
    message: rec.message,
    fingerprint: rec.fingerprint,
    outputs: stored,
    evidence: rec.evidence,
    data: rec.data,
    started_at: rec.started_at,
    finished_at: rec.finished_at,
    duration_ms: rec.duration_ms,
    log: rec.log,
    ...extra,
  };
}

/** The end of an instance: scheduler index (unless unchanged), vault chain. */
async function settle(rc: RunContext, rec: InstanceRecord, stored: StoredFile[], extra: Parameters<typeof taskEndPayload>[2] = {}): Promise<void> {
  if (rc.state.instance(rec.id) !== rec) await rc.state.putInstance(rc.redact.value(rec));
  await recordBootVerdicts(rc, rec, stored, !!extra.up_to_date);
  // An up-to-date end says nothing new: no fsync of its own (the next event's covers it).
  await rc.vault.append('task-end', taskEndPayload(rec, stored, extra), { sync: !extra.up_to_date });
}

/**
 * Make the recorded outputs present again from the store: each one whose content
 * differs (or is gone) becomes a hard link to its stored object. Returns the
 * restored paths, or null (nothing touched) when an object is not in the store.
 */
async function restoreOutputs(rc: RunContext, outputs: Record<string, { sha256: string }>): Promise<string[] | null> {
  for (const o of Object.values(outputs)) if (!(await storeHas(rc.buildDir, o.sha256))) return null;
  const restored: string[] = [];
  for (const [rel, o] of Object.entries(outputs)) {
    const now = await rc.hashCache.file(join(rc.buildDir, rel)).catch(() => null);
    if (now?.sha256 === o.sha256) continue;
    await restore(rc.buildDir, o.sha256, join(rc.buildDir, rel));
    restored.push(rel);
  }
  return restored.sort();
}

/** A refusal when the instance's frozen_spec_deps do not match the verified freeze record. */
async function frozenSpecRefusal(rc: RunContext, inst: TaskInstance): Promise<Outcome | null> {
  const deps = inst.task.spec.frozen_spec_deps;
  if (!deps.length) return null;
  if (!rc.freeze.ok) {
    return fail('frozen-spec-mismatch', `frozen_spec_deps (${deps.join(', ')}) cannot be checked: ${rc.freeze.detail}; run \`clawos-build spec freeze\``);
  }
  const current = new Map<string, { sha256: string; version: string }>();
  for (const p of deps) {
    const s = await readSpec(rc.repoRoot, p);
    if (s) current.set(p, s);
  }
  const r = checkFrozenDeps(deps.map((path) => ({ path })), current, rc.freeze.payload);
  return r.ok ? null : fail('frozen-spec-mismatch', r.message);
}

async function executeInstance(rc: RunContext, inst: TaskInstance): Promise<InstanceRecord> {
  const spec = inst.task.spec;
  const outDir = outDirOf(rc, inst);
  const logPath = relative(rc.buildDir, rc.logs.pathFor(spec.agent));
  const base = {
    id: inst.id,
    task_id: spec.task_id,
    arch: inst.arch,
    phase: spec.phase,
    agent: spec.agent,
    log: logPath,
  };
  const now = () => new Date().toISOString();
  const decided = async (status: InstanceRecord['status'], outcome: Outcome): Promise<InstanceRecord> => {
    const rec: InstanceRecord = {
      ...base,
      status,
      reason: outcome.reason,
      message: outcome.message,
      fingerprint: '',
      fingerprint_parts: {},
      outputs: {},
      started_at: now(),
      finished_at: now(),
      duration_ms: 0,
    };
    await settle(rc, rec, []);
    rc.emit({ type: 'task-end', id: inst.id, status: rec.status, reason: rec.reason, message: rec.message, durationMs: 0, log: logPath });
    return rec;
  };

  // A dependency that did not pass decides this instance without running it.
  for (const d of inst.deps) {
    const r = rc.state.instance(d);
    if (!r || !OK_STATUSES.has(r.status)) {
      return decided('BLOCKED', { status: 'FAIL', reason: 'dependency-failed', message: `not run: dependency ${d} is ${r?.status ?? 'not built'}` });
    }
  }
  // Checked before "up to date": a record that no longer verifies refuses even an unchanged task.
  const refused = await frozenSpecRefusal(rc, inst);
  if (refused) return decided('FAIL', refused);

  const { fingerprint, parts } = await computeFingerprint(rc, inst);
  const prev = rc.state.instance(inst.id);
  const upToDate = async (rec: InstanceRecord, extra: { restored_from?: string; restored?: string[] }): Promise<InstanceRecord> => {
    let next = rec;
    if (extra.restored) {
      next = { ...rec, fingerprint, fingerprint_parts: parts as unknown as Record<string, unknown>, outputs: await hashOutputs(rc.buildDir, Object.keys(rec.outputs), rc.hashCache) };
      if (extra.restored.length) {
        rc.emit({ type: 'info', message: `${inst.id}: ${extra.restored.length} output(s) restored from the vault store (${extra.restored_from ?? 'last PASS'}), not rebuilt: ${extra.restored.join(', ')}` });
      }
    }
    const stored = next.status === 'PASS' ? await storeOutputs(rc, inst, next.outputs, { onlyNew: true }) : [];
    await settle(rc, next, stored, { up_to_date: true, ...extra });
    rc.emit({ type: 'task-up-to-date', id: inst.id, status: next.status, message: next.message });
    return next;
  };
  if (prev && prev.fingerprint === fingerprint && OK_STATUSES.has(prev.status)) {
    if (await outputsIntact(rc, prev)) return upToDate(prev, {});
    const restored = await restoreOutputs(rc, prev.outputs);
    if (restored) return upToDate(prev, { restored });
  } else if (fingerprint) {
    // An earlier run passed with exactly these inputs (e.g. a change was reverted): restore, do not rebuild.
    const hit = await rc.passes.find(inst.id, fingerprint);
    const outs = hit ? Object.fromEntries(hit.outputs.map((o) => [o.path, { sha256: o.sha256 }])) : null;
    const restored = outs ? await restoreOutputs(rc, outs) : null;
    if (hit && restored) {
      const rec: InstanceRecord = {
        ...base,
        status: 'PASS',
        message: hit.message,
        fingerprint,
        fingerprint_parts: parts as unknown as Record<string, unknown>,
        outputs: Object.fromEntries(hit.outputs.map((o) => [o.path, { sha256: o.sha256, size: o.size, mtimeMs: 0 }])),
        evidence: hit.evidence as Evidence[] | undefined,
        data: hit.data,
        started_at: hit.started_at ?? now(),
        finished_at: hit.finished_at ?? now(),
        duration_ms: hit.duration_ms,
      };
      return upToDate(rec, { restored_from: `run ${hit.run_id}`, restored });
    }
  }

  const notConfiguredDep = inst.deps.find((d) => rc.state.instance(d)?.status === 'NOT_CONFIGURED');
  const startedAt = now();
  const started = Date.now();
  const log = rc.redact.writer(rc.logs.writer(spec.agent, inst.id));
  rc.emit({ type: 'task-start', id: inst.id, title: spec.title, agent: spec.agent });
  // RULE-001 / RULE-006: only the output dir (and what the step declares) is writable; network only if declared.
  const step = stepOf(rc, inst);
  const policy: SandboxPolicy = {
    task: inst.id,
    outDir,
    writable: step?.sandbox?.cache ? [rc.cacheDir] : [],
    readOnly: [rc.repoRoot, rc.buildDir],
    network: spec.network === true,
    devices: step?.sandbox?.devices ?? [],
    specFile: inst.task.file,
  };
  const sandbox = sandboxRecord(rc.sandbox, policy);
  const wrap = sandboxWrapper(rc.sandbox, policy);
  const watch = new ViolationWatch(policy);
  log(`sandbox: ${sandbox.sandbox_detail}; writable ${sandbox.writable.join(', ')} and a private /tmp; network ${sandbox.network ? 'declared' : 'none'}`);
  const why = describeChange(prev?.fingerprint_parts, parts as unknown as Record<string, unknown>);
  log(`start ${spec.task_id} "${spec.title}"${inst.arch ? ` for ${inst.arch}` : ''} fingerprint ${fingerprint.slice(0, 16)}`);
  log(`why it runs: ${why.join('; ')}`);
  await rc.vault.append('task-start', { task: inst.id, task_id: spec.task_id, arch: inst.arch, phase: spec.phase, agent: spec.agent, fingerprint, why, sandbox });

  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    log(`timeout: ${spec.timeout_minutes} min elapsed, killing the task's process groups`);
    ac.abort();
  }, spec.timeout_minutes * 60_000);
  const onRunAbort = () => ac.abort();
  rc.signal.addEventListener('abort', onRunAbort, { once: true });
  const prevDuration = prev?.duration_ms ?? null;
  const heartbeat =
    rc.heartbeatMs > 0
      ? setInterval(() => {
          const elapsed = Date.now() - started;
          rc.emit({ type: 'task-heartbeat', id: inst.id, elapsedMs: elapsed, etaMs: prevDuration !== null ? Math.max(0, prevDuration - elapsed) : null });
        }, rc.heartbeatMs)
      : undefined;

  await mkdir(outDir, { recursive: true });
  // Restored outputs are hard links to read-only store objects: give them their own
  // inode before a step that might write them in place runs.
  for (const rel of declaredOutputs(rc, inst)) {
    for (const f of (await expandOutputFiles(rc.buildDir, rel)) ?? []) {
      if (await detach(join(rc.buildDir, f))) log(`vault: ${f} was a link into the store; detached before the run`);
    }
  }
  const env = taskEnv(rc, inst, outDir);
  const sink: RunOptions['sink'] = (_stream, line) => log(line);
  const ctx: StepContext = {
    taskId: spec.task_id,
    instanceId: inst.id,
    arch: inst.arch ? rc.arches.get(inst.arch)! : null,
    params: paramsOf(inst),
    repoRoot: rc.repoRoot,
    buildDir: rc.buildDir,
    outDir,
    cacheDir: rc.cacheDir,
    buildPath: (rel: string) => (rel.startsWith('/') ? rel : join(rc.buildDir, rel)),
    sourceDateEpoch: rc.sourceDateEpoch,
    jobs: rc.jobs,
    log,
    progress: (message: string) => {
      log(`progress: ${message}`);
      rc.emit({ type: 'task-progress', id: inst.id, message });
    },
    run: (argv, opts = {}) => {
      const to = opts.sink ?? sink;
      return runProcess(argv, {
        ...opts,
        env: { ...env, ...(opts.env ?? {}) },
        signal: opts.signal ?? ac.signal,
        wrap,
        redact: rc.redact,
        sink: (stream, line) => {
          if (stream !== 'meta') watch.line(line, opts.cwd);
          to(stream, line);
        },
      });
    },
    signal: ac.signal,
  };

  let outcome: Outcome;
  let attempts = 1;
  if (notConfiguredDep) {
    // Name the root cause once, not the whole chain of dependants.
    const dep = rc.state.instance(notConfiguredDep)!;
    const root = (dep.data as { not_configured_root?: { id: string; message: string } } | undefined)?.not_configured_root ?? {
      id: notConfiguredDep,
      message: dep.message,
    };
    outcome = {
      status: 'NOT_CONFIGURED',
      reason: 'not-configured',
      message: `not run: needs ${notConfiguredDep}, which is NOT_CONFIGURED${root.id !== notConfiguredDep ? ` because ${root.id} is` : ''}: ${root.message}`,
      data: { not_configured_root: root },
    };
  } else {
    const attemptEvents: Promise<unknown>[] = [];
    const r = await withRetries(
      async (n) => {
        if (n > 1) log(`attempt ${n}`);
        try {
          return await runAction(rc, inst, ctx);
        } catch (err) {
          const e = err as Error;
          log(`error: ${e.stack ?? e.message}`);
          return infra(`${e.name === 'InfraError' ? '' : 'internal error: '}${e.message}`);
        }
      },
      {
        policy: spec.retries !== undefined ? { ...rc.retry, retries: spec.retries } : rc.retry,
        signal: ac.signal,
        onAttempt: (a) => {
          if (a.attempt === 1 && a.retryInMs === null) return; // decided at once: task-end says it all
          log(`attempt ${a.attempt}/${a.maxAttempts}: ${a.outcome.status}: ${a.outcome.message}; ${a.decision}`);
          const ev = { id: inst.id, attempt: a.attempt, maxAttempts: a.maxAttempts, status: a.outcome.status, message: a.outcome.message, retryInMs: a.retryInMs, decision: a.decision };
          rc.emit({ type: 'task-attempt', ...ev });
          attemptEvents.push(rc.vault.append('task-attempt', { task: inst.id, attempt: a.attempt, max_attempts: a.maxAttempts, status: a.outcome.status, reason: a.outcome.reason, message: a.outcome.message, retry_in_ms: a.retryInMs, decision: a.decision }));
        },
      },
    );
    await Promise.all(attemptEvents);
    outcome = r.outcome;
    attempts = r.attempts;
    // A failure the sandbox caused says which rule, and where.
    const v = watch.first;
    if (v && (outcome.status === 'FAIL' || outcome.status === 'INFRA_ERROR')) {
      outcome = fail(v.rule === 'RULE-001' ? 'rule-001-write-outside' : 'rule-006-network-undeclared', v.message, {
        evidence: outcome.evidence,
        data: { violation: v, step_outcome: { status: outcome.status, reason: outcome.reason, message: outcome.message } },
      });
    }
  }
  if (timedOut) outcome = { status: 'TIMEOUT', reason: 'timeout', message: `timed out after ${spec.timeout_minutes} min; its process group was killed` };
  else if (rc.signal.aborted) outcome = infra('interrupted');

  let outputs: Record<string, OutputRecord> = {};
  if (outcome.status === 'PASS') {
    const files: string[] = [];
    const missing: string[] = [];
    for (const rel of declaredOutputs(rc, inst)) {
      const found = await expandOutputFiles(rc.buildDir, rel);
      if (!found || !found.length) missing.push(rel);
      else files.push(...found);
    }
    if (missing.length) {
      outcome = fail('output-missing', `declared output${missing.length > 1 ? 's' : ''} missing: ${missing.join(', ')}`);
    } else if (spec.validation_cmd) {
      const r = await ctx.run(['bash', '-c', spec.validation_cmd], { cwd: outDir, signal: rc.signal });
      if (!r.ok) outcome = fail('validation-failed', `validation_cmd exited ${r.exitCode ?? r.signal}: ${spec.validation_cmd}`, { evidence: outcome.evidence });
    }
    if (outcome.status === 'PASS') outputs = await hashOutputs(rc.buildDir, files, rc.hashCache);
  }
  if (outcome.status !== 'PASS' && outcome.status !== 'NOT_CONFIGURED' && spec.rollback_cmd) {
    const r = await ctx.run(['bash', '-c', spec.rollback_cmd], { cwd: outDir, signal: rc.signal });
    log(`rollback_cmd exited ${r.exitCode ?? r.signal}`);
    // Rolled back = back to the last good outputs, which the store still holds.
    const lastGood = prev?.status === 'PASS' ? await restoreOutputs(rc, prev.outputs) : null;
    if (lastGood?.length) log(`vault: restored the last PASS outputs from the store: ${lastGood.join(', ')}`);
    await rc.vault.append('rollback', {
      task: inst.id,
      command: spec.rollback_cmd,
      exit_code: r.exitCode,
      signal: r.signal,
      restored: (lastGood ?? []).map((p) => ({ path: p, sha256: prev!.outputs[p]!.sha256, store: rc.vault.storeRel(prev!.outputs[p]!.sha256) })),
      ...(prev?.status === 'PASS' && !lastGood ? { not_restored: 'the last PASS outputs are not all in the store' } : {}),
    });
  }
  clearTimeout(timer);
  if (heartbeat) clearInterval(heartbeat);
  rc.signal.removeEventListener('abort', onRunAbort);

  const rec = rc.redact.value<InstanceRecord>({
    ...base,
    status: outcome.status,
    reason: outcome.reason,
    message: outcome.message,
    fingerprint: outcome.status === 'PASS' || outcome.status === 'NOT_CONFIGURED' ? fingerprint : '',
    fingerprint_parts: parts as unknown as Record<string, unknown>,
    outputs,
    evidence: outcome.evidence,
    data: outcome.data,
    started_at: startedAt,
    finished_at: now(),
    duration_ms: Date.now() - started,
  });
  log(`end ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}: ${outcome.message}`);
  let stored: StoredFile[] = [];
  if (outcome.status === 'PASS') {
    stored = await storeOutputs(rc, inst, outputs, { onlyNew: false });
    await recordVault(rc.buildDir, inst.id, outputs);
  }
  await settle(rc, rec, stored, { sandbox, ...(attempts > 1 ? { attempts } : {}) });
  rc.emit({ type: 'task-end', id: inst.id, status: rec.status, reason: rec.reason, message: rec.message, durationMs: rec.duration_ms, log: logPath });
  return rec;
}

class Semaphore {
  private queue: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.queue.push(r));
  }
  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.free++;
  }
}

/** Run the given instances (dependencies outside the set must already be recorded). */
export async function runInstances(rc: RunContext, instances: TaskInstance[]): Promise<InstanceRecord[]> {
  const inRun = new Set(instances.map((i) => i.id));
  const sem = new Semaphore(Math.max(1, rc.jobs));
  const results = new Map<string, Promise<InstanceRecord>>();
  const schedule = (inst: TaskInstance): Promise<InstanceRecord> => {
    const existing = results.get(inst.id);
    if (existing) return existing;
    const p = (async () => {
      await Promise.all(inst.deps.filter((d) => inRun.has(d)).map((d) => schedule(rc.graph.byId.get(d)!)));
      await sem.acquire();
      try {
        return await executeInstance(rc, inst);
      } finally {
        sem.release();
      }
    })();
    results.set(inst.id, p);
    return p;
  };
  const all = await Promise.all(instances.map(schedule));
  await rc.hashCache.save();
  return all;
}
