/**
 * The one decision whether a task instance must run: up to date (same fingerprint
 * as its last passed result, outputs intact), restorable from the vault's store
 * (same fingerprint, outputs gone or changed; or an earlier run passed with exactly
 * these inputs), or must run. Read-only: the scheduler acts on it, `explain`
 * reports it, so the two cannot disagree.
 */
import { join } from 'node:path';
import { checkFrozenDeps } from '../../vault/freeze.js';
import { readSpec, type FreezeState } from '../../vault/freeze-specs.js';
import { storeHas } from '../../vault/store.js';
import type { PassRecord } from '../../vault/vault-history.js';
import { fail, isPassed, type Outcome } from '../catalog/outcome.js';
import type { TaskInstance, TaskSpec } from '../catalog/task-spec.js';
import type { FreshnessContext } from './context.js';
import type { InstanceFingerprint } from './instance-fingerprint.js';
import type { InstanceRecord } from './state.js';
import type { RemoteHit } from './remote-cache.js';

/** Recorded outputs that are not there any more, or hash differently now. */
export interface OutputCheck {
  missing: string[];
  changed: { path: string; recorded: string; now: string }[];
}

export type Freshness =
  /** The last result passed with this fingerprint and its outputs are intact. */
  | { verdict: 'up-to-date'; prev: InstanceRecord }
  /** The last result passed with this fingerprint; the outputs that differ are all in the store. */
  | { verdict: 'restore'; source: 'last-result'; prev: InstanceRecord; outputs: OutputCheck }
  /** An earlier run passed with exactly this fingerprint and its outputs are all in the store (`outputs`: which differ now). */
  | { verdict: 'restore'; source: 'vault'; prev: InstanceRecord | undefined; hit: PassRecord; outputs: OutputCheck }
  /** Not in the local store, but the remote cache holds a trusted entry for exactly this fingerprint (its content is checked as it is pulled). */
  | { verdict: 'restore'; source: 'remote'; prev: InstanceRecord | undefined; hit: RemoteHit; outputs: OutputCheck }
  | { verdict: 'run'; cause: RunCause; prev: InstanceRecord | undefined; outputs?: OutputCheck };

export type RunCause =
  /** No recorded result at all. */
  | 'never-run'
  /** The last result did not pass. */
  | 'last-not-passed'
  /** The fingerprint changed since the last result. */
  | 'changed'
  /** Same fingerprint, outputs gone or changed, and not all of them in the store. */
  | 'outputs-not-stored';

export async function checkOutputs(ctx: Pick<FreshnessContext, 'buildDir' | 'hashCache'>, rec: { outputs: Record<string, { sha256: string }> }): Promise<OutputCheck> {
  const out: OutputCheck = { missing: [], changed: [] };
  for (const [path, o] of Object.entries(rec.outputs).sort(([a], [b]) => a.localeCompare(b))) {
    const now = await ctx.hashCache.file(join(ctx.buildDir, path)).catch(() => null);
    if (!now) out.missing.push(path);
    else if (now.sha256 !== o.sha256) out.changed.push({ path, recorded: o.sha256, now: now.sha256 });
  }
  return out;
}

async function allStored(buildDir: string, shas: readonly string[]): Promise<boolean> {
  for (const s of shas) if (!(await storeHas(buildDir, s))) return false;
  return true;
}

export async function decideFreshness(
  ctx: Pick<FreshnessContext, 'buildDir' | 'state' | 'hashCache' | 'passes' | 'remote'>,
  inst: Pick<TaskInstance, 'id'>,
  fingerprint: string,
): Promise<Freshness> {
  const local = await decideLocally(ctx, inst, fingerprint);
  if (local.verdict !== 'run' || !ctx.remote) return local;
  // The last rung before running: a trusted builder passed with exactly these inputs.
  const hit = await ctx.remote.lookup(inst.id, fingerprint);
  if (!hit) return local;
  return { verdict: 'restore', source: 'remote', prev: local.prev, hit, outputs: await checkOutputs(ctx, { outputs: Object.fromEntries(hit.action.outputs.map((o) => [o.path, o])) }) };
}

async function decideLocally(
  ctx: Pick<FreshnessContext, 'buildDir' | 'state' | 'hashCache' | 'passes'>,
  inst: Pick<TaskInstance, 'id'>,
  fingerprint: string,
): Promise<Freshness> {
  const prev = ctx.state.instance(inst.id);
  if (prev && prev.fingerprint === fingerprint && isPassed(prev.status)) {
    const outputs = await checkOutputs(ctx, prev);
    if (!outputs.missing.length && !outputs.changed.length) return { verdict: 'up-to-date', prev };
    if (await allStored(ctx.buildDir, Object.values(prev.outputs).map((o) => o.sha256))) return { verdict: 'restore', source: 'last-result', prev, outputs };
    // Same inputs as the last result: an older run cannot hold anything else.
    return { verdict: 'run', cause: 'outputs-not-stored', prev, outputs };
  }
  // An earlier run passed with exactly these inputs (e.g. a change was reverted): restore, do not rebuild.
  const hit = await ctx.passes.find(inst.id, fingerprint);
  if (hit && (await allStored(ctx.buildDir, hit.outputs.map((o) => o.sha256)))) {
    return { verdict: 'restore', source: 'vault', prev, hit, outputs: await checkOutputs(ctx, { outputs: Object.fromEntries(hit.outputs.map((o) => [o.path, o])) }) };
  }
  return { verdict: 'run', cause: !prev ? 'never-run' : !isPassed(prev.status) ? 'last-not-passed' : 'changed', prev };
}

/** The fields of an instance's record that say which instance it is. */
export type RecordBase = Pick<InstanceRecord, 'id' | 'task_id' | 'arch' | 'phase' | 'agent' | 'log'>;

/**
 * The record the scheduler keeps when the decision is not to run: the last
 * result, or the earlier run's PASS with this fingerprint, now under this
 * fingerprint. The scheduler records it (after restoring the outputs); `explain`
 * assumes it in memory, so a dependant's fingerprint is computed from the same
 * state the scheduler would see.
 */
export function keptRecord(f: Exclude<Freshness, { verdict: 'run' }>, base: RecordBase, { fingerprint, parts }: InstanceFingerprint): InstanceRecord {
  if (f.verdict === 'up-to-date') return f.prev;
  if (f.source === 'last-result') return { ...f.prev, fingerprint, fingerprint_parts: parts };
  // An earlier run's PASS, or a trusted builder's: the same fields either way.
  const hit = f.source === 'vault' ? f.hit : f.hit.action;
  const at = new Date().toISOString();
  return {
    ...base,
    status: 'PASS',
    message: hit.message,
    fingerprint,
    fingerprint_parts: parts,
    outputs: Object.fromEntries(hit.outputs.map((o) => [o.path, { sha256: o.sha256, size: o.size, mtimeMs: 0 }])),
    evidence: hit.evidence,
    data: hit.data,
    started_at: hit.started_at ?? at,
    finished_at: hit.finished_at ?? at,
    duration_ms: hit.duration_ms,
  };
}

/**
 * Checked before "up to date": an instance whose frozen_spec_deps do not match the
 * verified freeze record is refused (FAIL, not run), even when nothing changed.
 * The scheduler records the refusal; `explain` reports it.
 */
export async function frozenSpecRefusal(ctx: { repoRoot: string; freeze: FreezeState }, spec: Pick<TaskSpec, 'frozen_spec_deps'>): Promise<Outcome | null> {
  const deps = spec.frozen_spec_deps;
  if (!deps.length) return null;
  const freeze = ctx.freeze;
  if (!freeze.ok) return fail('frozen-spec-mismatch', `frozen_spec_deps (${deps.join(', ')}) cannot be checked: ${freeze.detail}; run \`clawos-build spec freeze\``);
  const current = new Map<string, { sha256: string; version: string }>();
  for (const p of deps) {
    const s = await readSpec(ctx.repoRoot, p);
    if (s) current.set(p, s);
  }
  const r = checkFrozenDeps(deps.map((path) => ({ path })), current, freeze.payload);
  return r.ok ? null : fail('frozen-spec-mismatch', r.message);
}
