/** What the scheduler and gates tell the reporter. Executors emit; only the reporter renders. */
import type { FailureReason } from './outcome.js';
import type { InstanceStatus } from './state.js';
import type { Phase } from './task-spec.js';

export type RunEvent =
  | { type: 'phase-start'; phase: Phase; title: string; instances: { id: string; title: string }[] }
  | { type: 'task-start'; id: string; title: string; agent: string }
  | { type: 'task-progress'; id: string; message: string }
  | { type: 'task-heartbeat'; id: string; elapsedMs: number; etaMs: number | null }
  | { type: 'task-up-to-date'; id: string; status: InstanceStatus; message: string }
  | { type: 'task-end'; id: string; status: InstanceStatus; reason?: FailureReason; message: string; durationMs: number; log: string }
  | { type: 'gate'; phase: Phase; recommendation: 'GO' | 'NO-GO'; blockers: string[]; coverage: string; report: string }
  | { type: 'info'; message: string };

export type EventSink = (e: RunEvent) => void;
