/** What the scheduler and gates tell the reporter. Executors emit; only the reporter renders. */
import type { FailureReason } from '../catalog/outcome.js';
import type { InstanceStatus } from './state.js';
import type { Phase } from '../catalog/task-spec.js';

export type RunEvent =
  | { type: 'phase-start'; phase: Phase; title: string; instances: { id: string; title: string }[] }
  | { type: 'task-start'; id: string; title: string; agent: string }
  | { type: 'task-progress'; id: string; message: string }
  | { type: 'task-attempt'; id: string; attempt: number; maxAttempts: number; status: InstanceStatus; message: string; retryInMs: number | null; decision: string }
  /** estimateMs: how long the instance's last PASS took (null: it never passed). */
  | { type: 'task-heartbeat'; id: string; elapsedMs: number; estimateMs: number | null }
  | { type: 'task-up-to-date'; id: string; status: InstanceStatus; message: string }
  /** compilerCache: the task's hit rate line, when its compiles went through the compiler cache. */
  | { type: 'task-end'; id: string; status: InstanceStatus; reason?: FailureReason; message: string; durationMs: number; log: string; compilerCache?: string }
  | { type: 'gate'; phase: Phase; recommendation: 'GO' | 'NO-GO'; blockers: string[]; coverage: string; report: string }
  /** RULE-005: a phase with a failure was put back to its last passed gate checkpoint (checkpoint null: there is none). */
  | { type: 'phase-rollback'; phase: Phase; checkpoint: string | null; restored: string[]; missing: string[] }
  | { type: 'info'; message: string };

export type EventSink = (e: RunEvent) => void;
