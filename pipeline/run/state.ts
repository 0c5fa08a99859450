/**
 * The build's state file (<build>/state.json): the last result of every task
 * instance and gate. Always replaced atomically, writes serialized, so a crash
 * leaves the previous complete state, never a half-written one.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { UserError } from '../../lib/errors.js';
import type { Evidence, FailureReason, Status } from '../catalog/outcome.js';
import type { Phase } from '../catalog/task-spec.js';

export type InstanceStatus = Status | 'BLOCKED';

export interface OutputRecord {
  sha256: string;
  size: number;
  mtimeMs: number;
}

export interface InstanceRecord {
  id: string;
  task_id: string;
  arch: string | null;
  phase: Phase;
  agent: string;
  status: InstanceStatus;
  reason?: FailureReason;
  message: string;
  fingerprint: string;
  fingerprint_parts: Record<string, unknown>;
  outputs: Record<string, OutputRecord>;
  evidence?: Evidence[];
  data?: unknown;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  log: string;
}

export interface GateRecord {
  phase: Phase;
  recommendation: 'GO' | 'NO-GO';
  inputs_fingerprint: string;
  /** sha256 of the gate's rule as specs/gates.yaml states it: a changed rule is judged again. */
  rule_sha256?: string;
  /** Fingerprint of each task instance the gate judged. */
  fingerprints: Record<string, string>;
  arches: string[];
  decided_at: string;
  report_json: string;
  report_md: string;
  blockers: string[];
}

export interface BuildStateData {
  format: 'clawos-build-state@1';
  instances: Record<string, InstanceRecord>;
  gates: Partial<Record<Phase, GateRecord>>;
}

const EMPTY = (): BuildStateData => ({ format: 'clawos-build-state@1', instances: {}, gates: {} });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The state file's data (empty when there is none), or what is wrong with it. */
async function readStateFile(path: string): Promise<{ data: BuildStateData } | { damage: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { data: EMPTY() };
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { damage: `not valid JSON (${(err as Error).message})` };
  }
  if (!isObject(data)) return { damage: 'not a JSON object' };
  if (data.format !== 'clawos-build-state@1') return { damage: `format ${JSON.stringify(data.format)}, expected clawos-build-state@1` };
  if (!isObject(data.instances) || !isObject(data.gates)) return { damage: 'no "instances" or "gates" object' };
  return { data: data as unknown as BuildStateData };
}

const shellQuote = (s: string) => (/^[\w./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** A free name beside the file to move it to: nothing is overwritten. */
async function asideName(path: string): Promise<string> {
  for (let n = 1; ; n++) {
    const p = `${path}.damaged${n > 1 ? `-${n}` : ''}`;
    if (await access(p).then(() => false, () => true)) return p;
  }
}

export interface StateDamage {
  path: string;
  problem: string;
  /** What to do, with the exact command. */
  fix: string;
  command: string;
}

/**
 * state.json is only the scheduler's index: the results are in the vault's event
 * chains and the outputs in its store. So a damaged one is moved aside, never the
 * build dir (which holds the signed vault and the kernel build).
 */
async function describeDamage(path: string, damage: string): Promise<StateDamage> {
  const command = `mv ${shellQuote(path)} ${shellQuote(await asideName(path))}`;
  return {
    path,
    problem: `${path} is damaged: ${damage}`,
    fix: `move it aside, and keep the build dir (the vault holds every result; the next run rebuilds the index from it and rebuilds nothing whose outputs it holds): ${command}`,
    command,
  };
}

/** What `status` says about the state file: null when it is absent or sound. */
export async function stateDamage(buildDir: string): Promise<StateDamage | null> {
  const path = join(buildDir, 'state.json');
  const r = await readStateFile(path);
  return 'damage' in r ? describeDamage(path, r.damage) : null;
}

export class StateStore {
  private chain: Promise<void> = Promise.resolve();
  private constructor(
    readonly path: string,
    readonly data: BuildStateData,
  ) {}

  static async open(buildDir: string): Promise<StateStore> {
    const path = join(buildDir, 'state.json');
    const r = await readStateFile(path);
    if ('damage' in r) {
      const d = await describeDamage(path, r.damage);
      throw new UserError(d.problem, d.fix);
    }
    return new StateStore(path, r.data);
  }

  /**
   * Set a record in memory only, never saved: `explain` puts there what the
   * scheduler would keep for a dependency, so a dependant's fingerprint is
   * computed from the same state the scheduler would see.
   */
  assume(rec: InstanceRecord): void {
    this.data.instances[rec.id] = rec;
  }

  instance(id: string): InstanceRecord | undefined {
    return this.data.instances[id];
  }

  gate(phase: Phase): GateRecord | undefined {
    return this.data.gates[phase];
  }

  async putInstance(rec: InstanceRecord): Promise<void> {
    this.data.instances[rec.id] = rec;
    await this.save();
  }

  async putGate(rec: GateRecord): Promise<void> {
    this.data.gates[rec.phase] = rec;
    await this.save();
  }

  /** Serialized: each save writes the whole, current state. */
  save(): Promise<void> {
    const next = this.chain.then(() => writeJsonAtomic(this.path, this.data));
    this.chain = next.catch(() => {});
    return next;
  }
}
