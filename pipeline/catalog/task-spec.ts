/** Task specs: the ClawOS catalog's machine-readable format plus an action. */
export type Phase = 'P1' | 'P2' | 'P3' | 'P4';
export const PHASES: readonly Phase[] = ['P1', 'P2', 'P3', 'P4'];

export interface TaskSpec {
  task_id: string;
  title: string;
  description?: string;
  phase: Phase;
  agent: string;
  optional?: boolean;
  per_arch?: boolean;
  depends_on: string[];
  inputs: string[];
  outputs: string[];
  validation_cmd: string | null;
  rollback_cmd: string | null;
  timeout_minutes: number;
  frozen_spec_deps: string[];
  run?: string;
  uses?: string;
  with?: Record<string, unknown>;
  /** Alternative steps for a run-wide backend choice (pipeline/catalog/backends.ts). */
  backends?: Record<string, { uses?: string; with?: Record<string, unknown>; component?: string }>;
  component?: string;
  pending?: string;
  /** Needs the network; without it the task's sandbox has none (RULE-006). Default false. */
  network?: boolean;
  /** INFRA_ERROR retries for this task, overriding the run's retry policy. */
  retries?: number;
}

/** A task spec with where it came from, for diagnostics. */
export interface LoadedTask {
  spec: TaskSpec;
  /** Repo-relative path of the YAML file. */
  file: string;
  /** sha256 of the file's bytes. */
  sha256: string;
  /** Locate a field for a diagnostic. */
  locate(path: readonly (string | number)[], key?: boolean): { file: string; line: number; col: number };
}

export interface AgentSpec {
  id: string;
  name: string;
}

/** One schedulable unit: a task for one arch (or for none). */
export interface TaskInstance {
  id: string;
  task: LoadedTask;
  arch: string | null;
  deps: string[];
}

export function instanceId(taskId: string, arch: string | null): string {
  return arch ? `${taskId}@${arch}` : taskId;
}

/** Expand {arch} in a string. */
export function expandArch(s: string, arch: string | null): string {
  return arch ? s.replaceAll('{arch}', arch) : s;
}

/** Expand {arch} in every string of a JSON-like value. */
export function expandParams(v: unknown, arch: string | null): unknown {
  if (typeof v === 'string') return expandArch(v, arch);
  if (Array.isArray(v)) return v.map((x) => expandParams(x, arch));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expandParams(x, arch)]));
  }
  return v;
}
