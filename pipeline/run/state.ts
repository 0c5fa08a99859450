/**
 * The build's state file (<build>/state.json): the last result of every task
 * instance and gate. Always replaced atomically, writes serialized, so a crash
 * leaves the previous complete state, never a half-written one.
 */
import { readFile } from 'node:fs/promises';
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

export class StateStore {
  private chain: Promise<void> = Promise.resolve();
  private constructor(
    readonly path: string,
    readonly data: BuildStateData,
  ) {}

  static async open(buildDir: string): Promise<StateStore> {
    const path = join(buildDir, 'state.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return new StateStore(path, { format: 'clawos-build-state@1', instances: {}, gates: {} });
    }
    let data: BuildStateData;
    try {
      data = JSON.parse(text) as BuildStateData;
    } catch (err) {
      throw new UserError(
        `${path} is not valid JSON (${(err as Error).message})`,
        'it is only ever replaced atomically, so it was edited by hand: restore it or remove the build dir',
      );
    }
    if (data.format !== 'clawos-build-state@1') {
      throw new UserError(`${path} has format ${JSON.stringify(data.format)}, expected clawos-build-state@1`, 'remove the build dir to start afresh');
    }
    return new StateStore(path, data);
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
