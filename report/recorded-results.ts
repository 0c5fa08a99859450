/**
 * What the report, the metrics and the release read: the latest recorded result
 * of every task instance and gate, and every run.
 *
 * The source is the vault's event chains (<build>/vault/runs/<run_id>/events.jsonl),
 * each verified before any of its events is used; a chain that does not verify
 * is named in `problems` and `tampered`, and only its verified prefix is used.
 * Only a build dir that has no event chain at all (made before the vault
 * recorded runs) falls back to state.json, and says so in `source`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VaultEvent } from '../vault/event-chain.js';
import { listRunIds } from '../vault/run-vault.js';
import { readRunLog, type ChainTamper } from '../vault/vault-history.js';
import { eventsOf, isEvent, type TaskEndPayload } from '../vault/event-payloads.js';
import { StateStore } from '../pipeline/run/state.js';
import { PHASES, type Phase } from '../pipeline/catalog/task-spec.js';

export interface RecordedTask {
  id: string;
  task_id: string;
  arch: string | null;
  phase: Phase;
  agent: string;
  status: string;
  reason?: string;
  message: string;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  outputs: { path: string; sha256: string; size: number }[];
  evidence: { label: string; path: string; sha256: string }[];
  data?: unknown;
  /** The run whose chain holds this result (null from state.json). */
  run_id: string | null;
  up_to_date: boolean;
}

export interface RecordedGate {
  phase: Phase;
  recommendation: 'GO' | 'NO-GO';
  blockers: string[];
  coverage: string | null;
  decided_at: string;
  report_json: string | null;
  report_md: string | null;
  run_id: string | null;
}

export interface RecordedRun {
  run_id: string;
  events: VaultEvent[];
  started: string | null;
  ended: string | null;
  /** The run-end event's status (passed, failed, error, interrupted); null while running or cut short. */
  status: string | null;
  problem?: string;
  /** The chain fails verification: `events` is its verified prefix. */
  tampered?: ChainTamper;
}

export interface RecordedResults {
  source: 'vault' | 'state' | 'none';
  /** One line saying where the results come from. */
  source_detail: string;
  build_dir: string;
  runs: RecordedRun[];
  tasks: Map<string, RecordedTask>;
  gates: Partial<Record<Phase, RecordedGate>>;
  problems: string[];
  /** Runs whose chain fails verification: the build's evidence is not intact. */
  tampered: { run_id: string; text: string }[];
}

/** Run ids with an events.jsonl, oldest first: the vault's own listing (its run id format is its own). */
export const listRuns = listRunIds;

/** One run, read with the vault's own chain reader (a tampered chain keeps its verified prefix). */
export async function readRun(buildDir: string, runId: string): Promise<RecordedRun> {
  const log = await readRunLog(buildDir, runId);
  const end = eventsOf(log.events, 'run-end')[0];
  return {
    run_id: runId,
    events: log.events,
    started: log.events.find((e) => e.type === 'run-start')?.time ?? null,
    ended: end?.time ?? null,
    status: typeof end?.payload.status === 'string' ? end.payload.status : null,
    ...(log.problem ? { problem: log.problem } : {}),
    ...(log.tampered ? { tampered: log.tampered } : {}),
  };
}

const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Read defensively: a chain written by an older version or by hand may lack fields. */
function taskFromEvent(p: TaskEndPayload, runId: string): RecordedTask {
  const outputs = Array.isArray(p.outputs) ? p.outputs.map((o) => ({ path: o.path, sha256: o.sha256, size: o.size })) : [];
  return {
    id: str(p.task),
    task_id: str(p.task_id, str(p.task).split('@')[0]),
    arch: typeof p.arch === 'string' ? p.arch : null,
    phase: str(p.phase) as Phase,
    agent: str(p.agent),
    status: str(p.status, 'UNKNOWN'),
    ...(typeof p.reason === 'string' ? { reason: p.reason } : {}),
    message: str(p.message),
    started_at: str(p.started_at),
    finished_at: str(p.finished_at),
    duration_ms: num(p.duration_ms),
    outputs,
    evidence: Array.isArray(p.evidence) ? p.evidence : [],
    ...(p.data !== undefined ? { data: p.data } : {}),
    run_id: runId,
    up_to_date: p.up_to_date === true,
  };
}

function reportPath(reports: readonly { path: string }[] | undefined, ext: string): string | null {
  if (!Array.isArray(reports)) return null;
  const r = reports.find((x) => typeof x.path === 'string' && x.path.endsWith(ext));
  return r ? r.path : null;
}

export async function loadRecordedResults(buildDir: string): Promise<RecordedResults> {
  const runs: RecordedRun[] = [];
  for (const id of await listRuns(buildDir)) runs.push(await readRun(buildDir, id));
  const problems = runs.filter((r) => r.problem).map((r) => `run ${r.run_id}: ${r.problem}`);
  const tampered = runs.filter((r) => r.tampered).map((r) => ({ run_id: r.run_id, text: `run ${r.run_id}: ${r.problem}` }));
  const tasks = new Map<string, RecordedTask>();
  const gates: RecordedResults['gates'] = {};
  if (runs.length) {
    for (const r of runs) {
      for (const e of r.events) {
        if (isEvent(e, 'task-end')) {
          const t = taskFromEvent(e.payload, r.run_id);
          if (t.id) tasks.set(t.id, t);
        } else if (isEvent(e, 'gate')) {
          const p = e.payload;
          const phase = str(p.phase) as Phase;
          if (!PHASES.includes(phase)) continue;
          gates[phase] = {
            phase,
            recommendation: p.recommendation === 'GO' ? 'GO' : 'NO-GO',
            blockers: Array.isArray(p.blockers) ? p.blockers.map(String) : [],
            coverage: typeof p.coverage === 'string' ? p.coverage : null,
            decided_at: str(p.decided_at, e.time),
            report_json: reportPath(p.reports, '.json'),
            report_md: reportPath(p.reports, '.md'),
            run_id: r.run_id,
          };
        }
      }
    }
    return {
      source: 'vault',
      source_detail: `the vault's event chains: ${runs.length} run(s) in ${join(buildDir, 'vault', 'runs')}${tampered.length ? ` (${tampered.length} TAMPERED: only the verified prefix of ${tampered.length > 1 ? 'their chains is' : 'its chain is'} used)` : ''}`,
      build_dir: buildDir,
      runs,
      tasks,
      gates,
      problems,
      tampered,
    };
  }
  const state = await StateStore.open(buildDir);
  for (const rec of Object.values(state.data.instances)) {
    tasks.set(rec.id, {
      id: rec.id,
      task_id: rec.task_id,
      arch: rec.arch,
      phase: rec.phase,
      agent: rec.agent,
      status: rec.status,
      ...(rec.reason ? { reason: rec.reason } : {}),
      message: rec.message,
      started_at: rec.started_at,
      finished_at: rec.finished_at,
      duration_ms: rec.duration_ms,
      outputs: Object.entries(rec.outputs).map(([path, o]) => ({ path, sha256: o.sha256, size: o.size })),
      evidence: rec.evidence ?? [],
      ...(rec.data !== undefined ? { data: rec.data } : {}),
      run_id: null,
      up_to_date: false,
    });
  }
  for (const phase of PHASES) {
    const g = state.gate(phase);
    if (!g) continue;
    let coverage: string | null = null;
    try {
      coverage = (JSON.parse(await readFile(join(buildDir, g.report_json), 'utf8')) as { coverage?: { line?: string } }).coverage?.line ?? null;
    } catch {
      coverage = null;
    }
    gates[phase] = { phase, recommendation: g.recommendation, blockers: g.blockers, coverage, decided_at: g.decided_at, report_json: g.report_json, report_md: g.report_md, run_id: null };
  }
  const any = tasks.size > 0 || Object.keys(gates).length > 0;
  return {
    source: any ? 'state' : 'none',
    source_detail: any
      ? `${join(buildDir, 'state.json')} (this build dir has no vault event chain: it was built before runs were recorded in the vault)`
      : `nothing recorded in ${buildDir} yet (no vault event chain, no state.json)`,
    build_dir: buildDir,
    runs,
    tasks,
    gates,
    problems,
    tampered,
  };
}
