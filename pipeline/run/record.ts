/**
 * How a task instance's end is recorded: the scheduler's index (state.json) and
 * the run's vault chain (task-end, the artifacts put into the store, one
 * boot-verdict per boot the step reports). Payloads are vault/event-payloads.ts types.
 */
import { basename } from 'node:path';
import type { SandboxRecord } from '../../lib/sandbox.js';
import type { StoredFile, TaskEndPayload } from '../../vault/event-payloads.js';
import type { BootReport } from '../catalog/step.js';
import type { RunContext } from './context.js';
import type { InstanceRecord, OutputRecord } from './state.js';

/** What a task-end adds beyond the record. */
export type TaskEndExtra = Pick<TaskEndPayload, 'up_to_date' | 'restored_from' | 'restored' | 'attempts' | 'remote' | 'compiler_cache'> & { sandbox?: SandboxRecord };

const byPath = ([a]: [string, unknown], [b]: [string, unknown]): number => (a < b ? -1 : a > b ? 1 : 0);

/** The build-relative output files of a PASS record, as the vault records them (each put into the store). */
export async function storeOutputs(rc: RunContext, task: string, outputs: Record<string, OutputRecord>, opts: { onlyNew: boolean }): Promise<StoredFile[]> {
  const stored: StoredFile[] = [];
  for (const [path, o] of Object.entries(outputs).sort(byPath)) {
    const { added, ...file } = await rc.vault.store(path, o.sha256);
    stored.push(file);
    // An up-to-date task's outputs are already cited by an earlier run's artifact
    // events; only a first-time store is news.
    if (!opts.onlyNew || added) await rc.vault.append('artifact', { task, ...file });
  }
  return stored;
}

/** One boot-verdict event per boot, citing the serial log and boot record in the store. */
async function recordBootVerdicts(rc: RunContext, rec: InstanceRecord, boots: readonly BootReport[], stored: StoredFile[], upToDate: boolean): Promise<void> {
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
      reason: b.reason,
      stage: b.stage,
      stage_ms: b.stage_ms,
      message: b.message,
      accel: b.accel,
      duration_ms: b.duration_ms,
      serial_log: await cite(b.serial_log),
      record: await cite(b.record),
      ...(upToDate ? { up_to_date: true } : {}),
    });
  }
}

function taskEndPayload(rec: InstanceRecord, stored: StoredFile[], extra: TaskEndExtra): TaskEndPayload {
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

/** The end of an instance: scheduler index (unless unchanged), boot verdicts, task-end. */
export async function settle(rc: RunContext, rec: InstanceRecord, stored: StoredFile[], boots: readonly BootReport[], extra: TaskEndExtra = {}): Promise<void> {
  if (rc.state.instance(rec.id) !== rec) await rc.state.putInstance(rc.redact.value(rec));
  await recordBootVerdicts(rc, rec, boots, stored, !!extra.up_to_date);
  // An up-to-date end says nothing new: no fsync of its own (the next event's covers it).
  await rc.vault.append('task-end', taskEndPayload(rec, stored, extra), { sync: !extra.up_to_date });
}
