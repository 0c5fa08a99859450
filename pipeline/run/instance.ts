/**
 * One task instance's life, as a ladder of short rungs, each returning a value:
 * blocked by a dependency? -> refused by the freeze record? -> fingerprint -> up to
 * date or restorable (freshness.ts, the decision `explain` reports too)? -> start
 * -> act (under timeout, sandbox, retries) -> check outputs -> validate -> roll
 * back on failure -> record (record.ts). Emits events for the reporter; never prints.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import { run as runProcess, type RunOptions } from '../../lib/proc.js';
import { withRetries } from '../../lib/retry.js';
import { sandboxRecord, sandboxWrapper, ViolationWatch, type SandboxPolicy, type SandboxRecord } from '../../lib/sandbox.js';
import type { StoredFile } from '../../vault/event-payloads.js';
import { fail, infra, inputMissing, isPassed, type Outcome } from '../catalog/outcome.js';
import type { BootReport, StepContext } from '../catalog/step.js';
import type { TaskInstance, TaskSpec } from '../catalog/task-spec.js';
import { buildComponent, notConfigured } from './component-build.js';
import { readHwRecords } from '../../vault/hw-record.js';
import { loadTrust, parseTrust } from '../../vault/keys.js';
import { declaredOutputs, icecreamOf, outDirOf, paramsOf, stepOf, type RunContext } from './context.js';
import { describeChange } from './explain-change.js';
import { decideFreshness, frozenSpecRefusal, keptRecord, type RecordBase } from './freshness.js';
import { computeFingerprint, type InstanceFingerprint } from './instance-fingerprint.js';
import { expandOutputFiles, hashOutputs, restoreOutputs } from './outputs.js';
import { settle, storeOutputs, type TaskEndExtra } from './record.js';
import type { InstanceRecord, InstanceStatus, OutputRecord } from './state.js';
import { compilerCacheUse, statsLogPath, type CompilerCache } from '../ccache/compiler-cache.js';
import { formatCcacheStats, parseCcacheStatsLog } from '../ccache/ccache-stats.js';
import type { TaskEndPayload } from '../../vault/event-payloads.js';

type Log = (line: string) => void;


/** The task's own abort: its timeout or the run's interruption; heartbeats while it runs. */
class TaskClock {
  readonly abort = new AbortController();
  timedOut = false;
  private readonly timer: NodeJS.Timeout;
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private readonly onRunAbort = () => this.abort.abort();

  constructor(
    private readonly rc: RunContext,
    id: string,
    timeoutMinutes: number,
    log: Log,
    /** The instance's last PASS duration: what the heartbeat estimates from. */
    estimateMs: number | null,
  ) {
    const started = Date.now();
    this.timer = setTimeout(() => {
      this.timedOut = true;
      log(`timeout: ${timeoutMinutes} min elapsed, killing the task's process groups`);
      this.abort.abort();
    }, timeoutMinutes * 60_000);
    rc.signal.addEventListener('abort', this.onRunAbort, { once: true });
    this.heartbeat =
      rc.heartbeatMs > 0
        ? setInterval(() => {
            const elapsed = Date.now() - started;
            rc.emit({ type: 'task-heartbeat', id, elapsedMs: elapsed, estimateMs });
          }, rc.heartbeatMs)
        : undefined;
  }

  stop(): void {
    clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.rc.signal.removeEventListener('abort', this.onRunAbort);
  }
}

/** What a started instance runs with. */
interface Started {
  log: Log;
  sandbox: SandboxRecord;
  watch: ViolationWatch;
  clock: TaskClock;
  ctx: StepContext;
  startedAt: string;
  started: number;
  /** The compiler cache this task's compiles go through, and the stats log they write. */
  compilerCache: { cache: CompilerCache; statsLog: string } | null;
}

const now = () => new Date().toISOString();

/** The root cause a NOT_CONFIGURED dependant recorded in its data (notConfiguredBecause), if any. */
function notConfiguredRoot(data: unknown): { id: string; message: string } | null {
  if (!data || typeof data !== 'object' || !('not_configured_root' in data)) return null;
  const r = data.not_configured_root;
  if (!r || typeof r !== 'object' || !('id' in r) || !('message' in r)) return null;
  return typeof r.id === 'string' && typeof r.message === 'string' ? { id: r.id, message: r.message } : null;
}

export function runInstance(rc: RunContext, inst: TaskInstance): Promise<InstanceRecord> {
  return new InstanceRun(rc, inst).execute();
}

class InstanceRun {
  private readonly spec: TaskSpec;
  private readonly outDir: string;
  private readonly base: RecordBase;

  constructor(
    private readonly rc: RunContext,
    private readonly inst: TaskInstance,
  ) {
    this.spec = inst.task.spec;
    this.outDir = outDirOf(rc.buildDir, inst);
    this.base = {
      id: inst.id,
      task_id: this.spec.task_id,
      arch: inst.arch,
      phase: this.spec.phase,
      agent: this.spec.agent,
      log: relative(rc.buildDir, rc.logs.pathFor(this.spec.agent)),
    };
  }

  async execute(): Promise<InstanceRecord> {
    const blocked = this.blockedBy();
    if (blocked) return this.decided('BLOCKED', blocked);
    // Checked before "up to date": a record that no longer verifies refuses even an unchanged task.
    // The same refusal `explain` reports (freshness.ts).
    const refused = await frozenSpecRefusal(this.rc, this.spec);
    if (refused) return this.decided('FAIL', refused);
    const fp = await computeFingerprint(this.rc, this.inst);
    return (await this.reuse(fp)) ?? this.runAndRecord(fp);
  }

  /** A dependency that did not pass decides this instance without running it. */
  private blockedBy(): Outcome | null {
    for (const d of this.inst.deps) {
      const r = this.rc.state.instance(d);
      if (!r || !isPassed(r.status)) return { status: 'FAIL', reason: 'dependency-failed', message: `not run: dependency ${d} is ${r?.status ?? 'not built'}` };
    }
    return null;
  }

  /** Decided without running (blocked, refused): recorded with no fingerprint. */
  private async decided(status: InstanceStatus, outcome: Outcome): Promise<InstanceRecord> {
    const rec: InstanceRecord = {
      ...this.base,
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
    await settle(this.rc, rec, [], []);
    this.rc.emit({ type: 'task-end', id: rec.id, status: rec.status, reason: rec.reason, message: rec.message, durationMs: 0, log: rec.log });
    return rec;
  }

  private bootReports(rec: InstanceRecord): BootReport[] {
    return stepOf(this.rc, this.inst)?.bootReports?.(rec.data) ?? [];
  }

  /** Up to date, or restored from the store: the kept record; null when it must run. */
  private async reuse(fp: InstanceFingerprint): Promise<InstanceRecord | null> {
    const f = await decideFreshness(this.rc, this.inst, fp.fingerprint);
    if (f.verdict === 'run') return null;
    // The same record `explain` assumes for this decision (freshness.ts).
    const kept = keptRecord(f, this.base, fp);
    if (f.verdict === 'up-to-date') return this.keep(kept, {});
    // A remote hit's content comes into the store first, each object checked against its signed sha256.
    const remote = f.source === 'remote' ? this.rc.remote : null;
    if (f.source === 'remote' && !(await remote?.pull(this.inst.id, f.hit, this.rc.buildDir))) return null;
    const restored = await restoreOutputs(this.rc.buildDir, this.rc.hashCache, kept.outputs);
    if (!restored) return null;
    const rec: InstanceRecord = { ...kept, outputs: await hashOutputs(this.rc.buildDir, Object.keys(kept.outputs), this.rc.hashCache) };
    const origin = remote?.origin(this.inst.id);
    const from = f.source === 'vault' ? `run ${f.hit.run_id}` : origin ? `remote cache ${origin.cache} (run ${origin.built_by_run}, builder key ${origin.builder_key.slice(0, 16)})` : undefined;
    if (restored.length) {
      const where = origin ? `the remote cache ${origin.cache} (${origin.fetched.length} object(s) pulled, run ${origin.built_by_run})` : `the vault store (${from ?? 'last PASS'})`;
      this.rc.emit({ type: 'info', message: `${this.inst.id}: ${restored.length} output(s) restored from ${where}, not rebuilt: ${restored.join(', ')}` });
    }
    return this.keep(rec, { ...(from ? { restored_from: from } : {}), restored, ...(origin ? { remote: origin } : {}) });
  }

  private async keep(rec: InstanceRecord, extra: Pick<TaskEndExtra, 'restored_from' | 'restored' | 'remote'>): Promise<InstanceRecord> {
    // Objects pulled from a remote cache are new to this build dir: each gets its artifact event.
    const stored = rec.status === 'PASS' || rec.status === 'BUILT' ? await storeOutputs(this.rc, this.inst.id, rec.outputs, { onlyNew: !extra.remote }) : [];
    await settle(this.rc, rec, stored, this.bootReports(rec), { up_to_date: true, ...extra });
    this.rc.emit({ type: 'task-up-to-date', id: this.inst.id, status: rec.status, message: rec.message });
    return rec;
  }

  private async runAndRecord(fp: InstanceFingerprint): Promise<InstanceRecord> {
    const prev = this.rc.state.instance(this.inst.id);
    const notConfiguredDep = this.inst.deps.find((d) => this.rc.state.instance(d)?.status === 'NOT_CONFIGURED');
    const s = await this.start(fp, prev);
    await this.prepareOutDir(s.log);
    let { outcome, attempts } = notConfiguredDep ? { outcome: this.notConfiguredBecause(notConfiguredDep), attempts: 1 } : await this.act(s);
    if (s.clock.timedOut) outcome = { status: 'TIMEOUT', reason: 'timeout', message: `timed out after ${this.spec.timeout_minutes} min; its process group was killed` };
    else if (this.rc.signal.aborted) outcome = infra('interrupted');
    let outputs: Record<string, OutputRecord> = {};
    if (outcome.status === 'PASS' || outcome.status === 'BUILT') ({ outcome, outputs } = await this.checkOutputs(outcome, s.ctx));
    // validation_cmd runs on the task's clock: past the timeout it is killed, and the task timed out.
    if (s.clock.timedOut && outcome.status !== 'TIMEOUT') {
      outcome = { status: 'TIMEOUT', reason: 'timeout', message: `timed out after ${this.spec.timeout_minutes} min (in validation_cmd); its process group was killed` };
      outputs = {};
    }
    if (!isPassed(outcome.status) && this.spec.rollback_cmd) await this.rollBack(this.spec.rollback_cmd, s, prev);
    s.clock.stop();
    return this.finish(fp, s, outcome, outputs, attempts, await this.compilerCacheStats(s));
  }

  /** What the task's compiles got from the compiler cache, from its own stats log (then removed). */
  private async compilerCacheStats(s: Started): Promise<TaskEndPayload['compiler_cache'] | undefined> {
    if (!s.compilerCache) return undefined;
    const text = await readFile(s.compilerCache.statsLog, 'utf8').catch(() => '');
    await rm(s.compilerCache.statsLog, { force: true });
    const st = parseCcacheStatsLog(text);
    const summary = formatCcacheStats(st);
    s.log(summary);
    return { hits: st.hits, local_hits: st.localHits, remote_hits: st.remoteHits, misses: st.misses, uncacheable: st.uncacheable, remote_errors: st.remoteErrors, summary };
  }

  /** task-start: the reporter, the log (sandbox, why it runs) and the vault. */
  private async start({ fingerprint, parts }: InstanceFingerprint, prev: InstanceRecord | undefined): Promise<Started> {
    const { rc, inst, spec } = this;
    const startedAt = now();
    const started = Date.now();
    const log = rc.redact.writer(rc.logs.writer(spec.agent, inst.id));
    rc.emit({ type: 'task-start', id: inst.id, title: spec.title, agent: spec.agent });
    // RULE-001 / RULE-006: only the output dir (and what the step declares) is writable; network only if declared.
    const step = stepOf(rc, inst);
    const cc = step?.compilerCache && rc.compilerCache ? { cache: rc.compilerCache, statsLog: statsLogPath(rc.compilerCache, rc.vault.runId, inst.id) } : null;
    if (cc) await rm(cc.statsLog, { force: true });
    const icecream = icecreamOf(rc, inst) !== null;
    const policy: SandboxPolicy = {
      task: inst.id,
      outDir: this.outDir,
      // The compiler cache's dir is shared by every build dir: content-keyed by ccache, as the download cache is by us.
      writable: [...(step?.sandbox?.cache ? [rc.cacheDir] : []), ...(cc ? [cc.cache.dir] : [])],
      // A redis socket under /tmp would be hidden by the sandbox's private /tmp: its dir is bound back (connecting is no write).
      readOnly: [rc.repoRoot, rc.buildDir, ...(cc?.cache.remote?.socket ? [dirname(cc.cache.remote.socket)] : [])],
      // icecc's client connects to the cluster's daemons itself, and a redis server over TCP is reachable only
      // with the host's network (a unix socket needs none).
      network: spec.network === true || icecream || !!cc?.cache.remote?.network,
      devices: step?.sandbox?.devices ?? [],
      specFile: inst.task.file,
    };
    const sandbox = sandboxRecord(rc.sandbox, policy);
    const watch = new ViolationWatch(policy);
    const network = !sandbox.network
      ? 'none'
      : spec.network === true
        ? 'declared'
        : [icecream ? 'the icecream cluster (--icecream)' : '', cc?.cache.remote?.network ? `the compiler cache's remote storage ${cc.cache.remote.shown}` : '']
            .filter(Boolean)
            .map((why) => `the host's, for ${why}`)
            .join('; ');
    log(`sandbox: ${sandbox.sandbox_detail}; writable ${sandbox.writable.join(', ')} and a private /tmp; network ${network}`);
    const why = describeChange(prev?.fingerprint_parts, parts);
    log(`start ${spec.task_id} "${spec.title}"${inst.arch ? ` for ${inst.arch}` : ''} fingerprint ${fingerprint.slice(0, 16)}`);
    log(`why it runs: ${why.join('; ')}`);
    const remoteMiss = rc.remote?.missReason(inst.id);
    if (remoteMiss) log(remoteMiss);
    await rc.vault.append('task-start', { task: inst.id, task_id: spec.task_id, arch: inst.arch, phase: spec.phase, agent: spec.agent, fingerprint, why, sandbox, ...(remoteMiss ? { remote: remoteMiss } : {}) });
    // From the last PASS, not the last result: a failure after 273 ms says nothing of a 12-minute compile.
    const estimate = prev?.status === 'PASS' ? prev.duration_ms : ((await rc.passes.lastPass(inst.id))?.duration_ms ?? null);
    const clock = new TaskClock(rc, inst.id, spec.timeout_minutes, log, estimate);
    const ctx = this.stepContext(log, clock.abort.signal, sandboxWrapper(rc.sandbox, policy), watch);
    if (cc) ctx.compilerCache = compilerCacheUse(cc.cache, { baseDir: rc.buildDir, statsLog: cc.statsLog });
    return { log, sandbox, watch, clock, ctx, startedAt, started, compilerCache: cc };
  }

  /**
   * The declared outputs of an earlier run are removed before this one: only what this attempt
   * writes can count as its evidence (a step that now writes nothing must not pass on old files).
   * The store keeps the last good ones for a rollback; a restored output is a hard link into it,
   * so removing the link never touches the stored object.
   */
  private async prepareOutDir(log: Log): Promise<void> {
    await mkdir(this.outDir, { recursive: true });
    const stale: string[] = [];
    for (const rel of declaredOutputs(this.rc, this.inst)) {
      for (const f of (await expandOutputFiles(this.rc.buildDir, rel)) ?? []) {
        await rm(join(this.rc.buildDir, f), { force: true });
        stale.push(f);
      }
    }
    if (stale.length) log(`outputs: removed ${stale.length} file(s) of the previous run before this one (${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', …' : ''})`);
  }

  private stepContext(log: Log, signal: AbortSignal, wrap: RunOptions['wrap'], watch: ViolationWatch): StepContext {
    const { rc, inst, spec, outDir } = this;
    const icecream = icecreamOf(rc, inst);
    const env: Record<string, string> = {
      CLAWOS_BUILD_DIR: rc.buildDir,
      CLAWOS_OUT: outDir,
      CLAWOS_ARCH: inst.arch ?? '',
      CLAWOS_REPO: rc.repoRoot,
      CLAWOS_TASK: inst.id,
      SOURCE_DATE_EPOCH: String(rc.sourceDateEpoch),
    };
    const sink: RunOptions['sink'] = (_stream, line) => log(line);
    return {
      taskId: spec.task_id,
      instanceId: inst.id,
      arch: inst.arch ? rc.arches.get(inst.arch)! : null,
      params: paramsOf(inst),
      repoRoot: rc.repoRoot,
      buildDir: rc.buildDir,
      outDir,
      cacheDir: rc.cacheDir,
      ...(stepOf(rc, inst)?.moduleSigningKey && rc.moduleSigningKey ? { moduleSigningKey: rc.moduleSigningKey.path } : {}),
      ...(stepOf(rc, inst)?.secureBootKey && rc.secureBootKey ? { secureBootKey: rc.secureBootKey } : {}),
      ...(icecream ? { icecream } : {}),
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
          signal: opts.signal ?? signal,
          wrap,
          redact: rc.redact,
          sink: (stream, line) => {
            if (stream !== 'meta') watch.line(line, opts.cwd);
            to(stream, line);
          },
        });
      },
      signal,
      hardwareRecords: async (trustFile: string) => {
        let trust;
        try {
          trust = await loadTrust(trustFile);
        } catch (e) {
          // No usable trust file: every record is listed, none counted.
          const why = `trust file ${relative(rc.repoRoot, trustFile)}: ${(e as Error).message}`;
          return (await readHwRecords(rc.buildDir, parseTrust({ format: 'clawos-trust-root', version: 1, keys: [] }))).map((r) => ({ id: r.id, counted: false, why, record: r.record }));
        }
        return (await readHwRecords(rc.buildDir, trust)).map((r) => ({ id: r.id, counted: r.counted, why: r.counted ? null : `${r.code}: ${r.detail}`, record: r.record }));
      },
    };
  }

  /** Name the root cause of a NOT_CONFIGURED chain once, not the whole chain of dependants. */
  private notConfiguredBecause(depId: string): Outcome {
    const dep = this.rc.state.instance(depId)!;
    const root = notConfiguredRoot(dep.data) ?? { id: depId, message: dep.message };
    return {
      status: 'NOT_CONFIGURED',
      reason: 'not-configured',
      message: `not run: needs ${depId}, which is NOT_CONFIGURED${root.id !== depId ? ` because ${root.id} is` : ''}: ${root.message}`,
      data: { not_configured_root: root },
    };
  }

  /** The action under retries (INFRA_ERROR only); a failure the sandbox caused says which rule, and where. */
  private async act(s: Started): Promise<{ outcome: Outcome; attempts: number }> {
    const { rc, inst, spec } = this;
    const attemptEvents: Promise<unknown>[] = [];
    const r = await withRetries(
      async (n) => {
        if (n > 1) s.log(`attempt ${n}`);
        try {
          return await this.action(s.ctx);
        } catch (err) {
          s.log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          const message = err instanceof Error ? err.message : String(err);
          if (err instanceof InfraError) return err.transient ? infra(message) : inputMissing(message);
          return infra(`internal error: ${message}`);
        }
      },
      {
        policy: spec.retries !== undefined ? { ...rc.retry, retries: spec.retries } : rc.retry,
        signal: s.clock.abort.signal,
        onAttempt: (a) => {
          if (a.attempt === 1 && a.retryInMs === null) return; // decided at once: task-end says it all
          s.log(`attempt ${a.attempt}/${a.maxAttempts}: ${a.outcome.status}: ${a.outcome.message}; ${a.decision}`);
          rc.emit({ type: 'task-attempt', id: inst.id, attempt: a.attempt, maxAttempts: a.maxAttempts, status: a.outcome.status, message: a.outcome.message, retryInMs: a.retryInMs, decision: a.decision });
          attemptEvents.push(
            rc.vault.append('task-attempt', {
              task: inst.id,
              attempt: a.attempt,
              max_attempts: a.maxAttempts,
              status: a.outcome.status,
              reason: a.outcome.reason,
              message: a.outcome.message,
              retry_in_ms: a.retryInMs,
              decision: a.decision,
            }),
          );
        },
      },
    );
    await Promise.all(attemptEvents);
    let outcome = r.outcome;
    const v = s.watch.first;
    // A recorded violation fails the task even when the command ignored the error (`… || true`) and passed.
    if (v) {
      outcome = fail(v.rule === 'RULE-001' ? 'rule-001-write-outside' : 'rule-006-network-undeclared', v.message, {
        evidence: outcome.evidence,
        data: { violation: v, step_outcome: { status: outcome.status, reason: outcome.reason, message: outcome.message } },
      });
    }
    return { outcome, attempts: r.attempts };
  }

  /** What the task does: pending, a component, a `run:` command or a step. */
  private async action(ctx: StepContext): Promise<Outcome> {
    const { rc, spec } = this;
    if (spec.pending) return { status: 'NOT_CONFIGURED', reason: 'not-configured', message: spec.pending };
    if (spec.component) {
      const cfg = rc.config.components[spec.component];
      const decl = rc.catalog.components.get(spec.component);
      if (!cfg) return notConfigured(spec.component, decl?.needs ?? '', rc.config.file ? relative(rc.repoRoot, rc.config.file) : null);
      return buildComponent(ctx, spec.component, cfg, { network: spec.network === true, specFile: this.inst.task.file });
    }
    if (spec.run) {
      const r = await ctx.run(['bash', '-c', spec.run], { cwd: ctx.outDir });
      if (r.ok) return { status: 'PASS', message: 'run: command succeeded' };
      return fail('exit-non-zero', `run: command exited ${r.exitCode ?? r.signal}: ${r.tail.slice(-3).join(' | ')}`);
    }
    const step = stepOf(rc, this.inst);
    if (!step) return infra(`unknown step ${spec.uses}`);
    return step.run(ctx);
  }

  /** A PASS (or BUILT) keeps only with every declared output present and validation_cmd passing; then its outputs are hashed. */
  private async checkOutputs(outcome: Outcome, ctx: StepContext): Promise<{ outcome: Outcome; outputs: Record<string, OutputRecord> }> {
    const files: string[] = [];
    const missing: string[] = [];
    for (const rel of declaredOutputs(this.rc, this.inst)) {
      const found = await expandOutputFiles(this.rc.buildDir, rel);
      if (!found || !found.length) missing.push(rel);
      else files.push(...found);
    }
    if (missing.length) return { outcome: fail('output-missing', `declared output${missing.length > 1 ? 's' : ''} missing: ${missing.join(', ')}`), outputs: {} };
    const validated = await this.validate(outcome, ctx);
    if (validated.status !== 'PASS' && validated.status !== 'BUILT') return { outcome: validated, outputs: {} };
    return { outcome: validated, outputs: await hashOutputs(this.rc.buildDir, files, this.rc.hashCache) };
  }

  /** validation_cmd; it is also the only way a BUILT outcome (built, unproven) becomes PASS. */
  private async validate(outcome: Outcome, ctx: StepContext): Promise<Outcome> {
    const cmd = this.spec.validation_cmd;
    if (!cmd) {
      if (outcome.status !== 'BUILT') return outcome;
      const file = this.inst.task.file;
      return { ...outcome, message: `${outcome.message}; BUILT, not PASS: nothing proves it works (${file} has no validation_cmd, and no in-guest check covers it)` };
    }
    const r = await ctx.run(['bash', '-c', cmd], { cwd: this.outDir, signal: ctx.signal });
    if (!r.ok) return fail('validation-failed', `validation_cmd exited ${r.exitCode ?? r.signal}: ${cmd}`, { evidence: outcome.evidence });
    if (outcome.status !== 'BUILT') return outcome;
    const { reason: _unvalidated, ...rest } = outcome;
    return { ...rest, status: 'PASS', message: `${outcome.message}; validated: validation_cmd passed` };
  }

  /** rollback_cmd, then back to the last good outputs, which the store still holds. */
  private async rollBack(command: string, s: Started, prev: InstanceRecord | undefined): Promise<void> {
    const { rc } = this;
    // Its own budget of one task timeout (the task's may be spent already), and never unbounded.
    const budget = AbortSignal.any([rc.signal, AbortSignal.timeout(Math.max(1000, this.spec.timeout_minutes * 60_000))]);
    const r = await s.ctx.run(['bash', '-c', command], { cwd: this.outDir, signal: budget });
    s.log(`rollback_cmd exited ${r.exitCode ?? r.signal}`);
    const lastPass = prev?.status === 'PASS' ? prev : null;
    const lastGood = lastPass ? await restoreOutputs(rc.buildDir, rc.hashCache, lastPass.outputs) : null;
    if (lastGood?.length) s.log(`vault: restored the last PASS outputs from the store: ${lastGood.join(', ')}`);
    await rc.vault.append('rollback', {
      task: this.inst.id,
      command,
      exit_code: r.exitCode,
      signal: r.signal,
      restored: (lastGood ?? []).map((p) => ({ path: p, sha256: lastPass!.outputs[p]!.sha256, store: rc.vault.storeRel(lastPass!.outputs[p]!.sha256) })),
      ...(lastPass && !lastGood ? { not_restored: 'the last PASS outputs are not all in the store' } : {}),
    });
  }

  /** The record, its outputs into the store and the manifest, the vault's task-end, the reporter's. */
  private async finish(
    { fingerprint, parts }: InstanceFingerprint,
    s: Started,
    outcome: Outcome,
    outputs: Record<string, OutputRecord>,
    attempts: number,
    compilerCache: TaskEndPayload['compiler_cache'],
  ): Promise<InstanceRecord> {
    const { rc, inst } = this;
    const rec = rc.redact.value<InstanceRecord>({
      ...this.base,
      status: outcome.status,
      reason: outcome.reason,
      message: outcome.message,
      fingerprint: isPassed(outcome.status) ? fingerprint : '',
      fingerprint_parts: parts,
      outputs,
      evidence: outcome.evidence,
      data: outcome.data,
      started_at: s.startedAt,
      finished_at: now(),
      duration_ms: Date.now() - s.started,
    });
    s.log(`end ${outcome.status}${outcome.reason ? ` (${outcome.reason})` : ''}: ${outcome.message}`);
    let stored: StoredFile[] = [];
    if (outcome.status === 'PASS' || outcome.status === 'BUILT') {
      stored = await storeOutputs(rc, inst.id, outputs, { onlyNew: false });
      await rc.manifest.record(inst.id, Object.entries(outputs).map(([path, o]) => ({ path, sha256: o.sha256, size: o.size })));
    }
    await settle(rc, rec, stored, this.bootReports(rec), { sandbox: s.sandbox, ...(attempts > 1 ? { attempts } : {}), ...(compilerCache ? { compiler_cache: compilerCache } : {}) });
    // Shared only after it is recorded here; a failed push is a warning, never the task's result.
    if (rec.status === 'PASS' && rc.remote?.canPush) {
      const key = await rc.remote.push(rec, rc.buildDir, { run_id: rc.vault.runId, clawos_version: rc.clawosVersion });
      if (key) s.log(`remote cache: pushed as ac/${key}`);
    }
    rc.emit({ type: 'task-end', id: inst.id, status: rec.status, reason: rec.reason, message: rec.message, durationMs: rec.duration_ms, log: rec.log, ...(compilerCache ? { compilerCache: compilerCache.summary } : {}) });
    return rec;
  }
}
