/**
 * What the vault says happened: every run's event chain, verified, folded into
 * the latest result of each task instance and gate. `clawos-build status` reads
 * this (not state.json, which is only the scheduler's index), and the scheduler
 * asks it for an earlier PASS with the same fingerprint to restore from the store.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventsPath, splitLines, verifiedPrefix, verifyChain, type VaultEvent } from './event-chain.js';
import type { FailCode } from './codes.js';
import { isEvent, type GatePayload, type TaskEndPayload } from './event-payloads.js';
import { listRunIds } from './run-vault.js';

export type { GatePayload, TaskEndPayload };

/** An earlier PASS task-end and the run that recorded it. */
export type PassRecord = TaskEndPayload & { run_id: string };

/** A chain that fails verification: where, and how much of it still verifies. */
export interface ChainTamper {
  code: FailCode;
  detail: string;
  /** Events of the verified prefix (the ones used). */
  verified: number;
  /** Complete lines in the file. */
  total: number;
}

export interface RunLog {
  runId: string;
  /** The verified events: all of them, or the verified prefix of a tampered chain. */
  events: VaultEvent[];
  /** Set when the chain does not verify (tampered) or its last line is torn. */
  problem?: string;
  /** Set when the chain fails verification: the run's evidence is not what was recorded. */
  tampered?: ChainTamper;
}

/** One line for a tampered chain, shared by `status` and the report. */
export function tamperedText(t: ChainTamper): string {
  return `TAMPERED: ${t.code}: ${t.detail}; only its first ${t.verified} of ${t.total} events verify and are used`;
}

/** The sentence `status` and the report lead with when any chain fails verification. */
export function tamperedHeadline(runIds: readonly string[]): string {
  return `TAMPERED: the event chain of ${runIds.length > 1 ? `${runIds.length} runs (${runIds.join(', ')})` : `run ${runIds[0]}`} fails verification: the build's evidence is not intact; only the verified events before the damage are shown`;
}

/**
 * One run's chain, verified. A chain that fails keeps its verified prefix and is
 * marked tampered (never dropped whole, which would pass an older run off as the
 * latest); a torn last line is an interrupted append, and the lines before it stand.
 */
export async function readRunLog(buildDir: string, runId: string): Promise<RunLog> {
  const split = splitLines(await readFile(eventsPath(buildDir, runId)));
  const v = verifyChain(split.lines, { runId });
  if (!v.ok) {
    const events = verifiedPrefix(split.lines, v, { runId });
    const tampered: ChainTamper = { code: v.code, detail: v.detail, verified: events.length, total: split.lines.length };
    return { runId, events, problem: tamperedText(tampered), tampered };
  }
  // No later line vouches for the last event; the run's bundle, when it has one, holds the chain as signed.
  const signed = await readFile(join(buildDir, 'vault', 'bundles', runId, 'events.jsonl')).catch(() => null);
  if (signed) {
    const theirs = splitLines(signed).lines;
    const n = Math.max(theirs.length, split.lines.length);
    let at = 0;
    while (at < n && at < theirs.length && at < split.lines.length && split.lines[at]!.equals(theirs[at]!)) at++;
    if (at < n) {
      const how = at >= split.lines.length ? 'is missing but is in' : at >= theirs.length ? 'is not in' : 'differs from';
      const tampered: ChainTamper = {
        code: 'CHAIN_BROKEN',
        detail: `event ${at} ${how} the copy the run's signed bundle holds (vault/bundles/${runId}/events.jsonl)`,
        verified: at,
        total: split.lines.length,
      };
      return { runId, events: v.events.slice(0, at), problem: tamperedText(tampered), tampered };
    }
  }
  return { runId, events: v.events, ...(split.torn ? { problem: `the last line is torn (${split.torn.length} bytes): an append was interrupted` } : {}) };
}

export async function readAllRuns(buildDir: string): Promise<RunLog[]> {
  const out: RunLog[] = [];
  for (const id of await listRunIds(buildDir)) out.push(await readRunLog(buildDir, id));
  return out;
}

export interface VaultStatus {
  format: 'clawos-vault-status@1';
  build_dir: string;
  runs: { run_id: string; events: number; started: string | null; ended: string | null; problem?: string; tampered?: ChainTamper }[];
  /** Latest task-end of each instance, with the run and event that recorded it. */
  instances: Record<string, TaskEndPayload & { run_id: string; seq: number; time: string }>;
  /** Latest gate decision of each phase. */
  gates: Record<string, GatePayload & { run_id: string; seq: number; time: string }>;
  problems: string[];
  /** Runs whose chain fails verification (their verified prefix is used): the build's evidence is not intact. */
  tampered: string[];
}

export function foldStatus(buildDir: string, runs: RunLog[]): VaultStatus {
  const s: VaultStatus = { format: 'clawos-vault-status@1', build_dir: buildDir, runs: [], instances: {}, gates: {}, problems: [], tampered: [] };
  for (const r of runs) {
    if (r.problem) s.problems.push(`run ${r.runId}: ${r.problem}`);
    if (r.tampered) s.tampered.push(r.runId);
    s.runs.push({
      run_id: r.runId,
      events: r.events.length,
      started: r.events.find((e) => e.type === 'run-start')?.time ?? null,
      ended: r.events.find((e) => e.type === 'run-end')?.time ?? null,
      ...(r.problem ? { problem: r.problem } : {}),
      ...(r.tampered ? { tampered: r.tampered } : {}),
    });
    for (const e of r.events) {
      const at = { run_id: r.runId, seq: e.seq, time: e.time };
      if (isEvent(e, 'task-end')) s.instances[e.payload.task] = { ...e.payload, ...at };
      else if (isEvent(e, 'gate')) s.gates[e.payload.phase] = { ...e.payload, ...at };
    }
  }
  return s;
}

export async function vaultStatus(buildDir: string): Promise<VaultStatus> {
  return foldStatus(buildDir, await readAllRuns(buildDir));
}

/** Every PASS task-end recorded in the vault, by instance and fingerprint (newest wins); loaded once, on first use. */
export class PassIndex {
  private index?: Promise<{ byFingerprint: Map<string, PassRecord>; latest: Map<string, PassRecord> }>;
  constructor(private readonly buildDir: string) {}

  private load(): Promise<{ byFingerprint: Map<string, PassRecord>; latest: Map<string, PassRecord> }> {
    this.index ??= (async () => {
      const byFingerprint = new Map<string, PassRecord>();
      const latest = new Map<string, PassRecord>();
      for (const r of await readAllRuns(this.buildDir)) {
        for (const e of r.events) {
          if (!isEvent(e, 'task-end')) continue;
          const p = e.payload;
          if (p.status !== 'PASS') continue;
          latest.set(p.task, { ...p, run_id: r.runId });
          if (p.fingerprint) byFingerprint.set(`${p.task} ${p.fingerprint}`, { ...p, run_id: r.runId });
        }
      }
      return { byFingerprint, latest };
    })();
    return this.index;
  }

  async find(task: string, fingerprint: string): Promise<PassRecord | undefined> {
    return (await this.load()).byFingerprint.get(`${task} ${fingerprint}`);
  }

  /** The instance's newest PASS, whatever its fingerprint (a failed attempt's duration says nothing of a build's). */
  async lastPass(task: string): Promise<PassRecord | undefined> {
    return (await this.load()).latest.get(task);
  }
}
