/**
 * The payload of each vault event type, defined once: the run writes events
 * through RunVault.append against these types, and every reader (status, the
 * release bundle, the report, the changelog) reads them back through eventsOf /
 * isEvent with the same types. Fields a reader cannot rely on in chains written
 * by older versions or by hand are optional. Type aliases, not interfaces, so a
 * payload is a plain JSON record.
 */
import type { SandboxRecord } from '../lib/sandbox.js';
import type { EventType, VaultEvent } from './event-chain.js';

/** An output or report as events record it. */
export type StoredFile = {
  /** Build-dir-relative. */
  path: string;
  sha256: string;
  size: number;
  /** Build-dir-relative path of the stored object. */
  store: string;
};

export type EvidenceRef = { label: string; path: string; sha256: string };

export type RunStartPayload = {
  /** What made the run when it is not a build (`lava ingest`: boot verdicts of another lab). */
  command?: string;
  clawos_version?: string;
  node?: string;
  arches?: string[];
  phases?: string[] | null;
  jobs?: number;
  sandbox?: { kind: 'bwrap'; version: string } | { kind: 'off'; reason: string };
  secrets?: string[];
  /** --remote-cache: the cache (no credentials) and whether this run pulls from and pushes to it. */
  remote_cache?: { cache: string; readonly: boolean; pull: boolean; push: boolean };
  /** The shared compiler cache of the run's compiling steps: ccache's version, its dir, the remote storage (no credentials); null: off. */
  compiler_cache?: { ccache: string; dir: string; remote: { url: string; readonly: boolean } | null } | null;
  /** --icecream: kernel compiles went to the local iceccd's cluster at make -j this (each kernel task's task-end names the hosts). */
  icecream?: { jobs: number };
  source_date_epoch?: number;
  /** The commit the run built from (dirty: the tree had changes git sees); null outside git. */
  source?: { commit: string; dirty: boolean } | null;
  /** The managed module-signing key's certificate (sha256 of its DER), or null: kernels made their own key. */
  module_signing?: { cert_sha256: string; subject: string } | null;
  /** The Secure Boot signing key's certificate; test_key names a public TEST certificate (specs/secureboot.yaml). */
  secure_boot?: { cert_sha256: string; subject: string; test_key: string | null } | null;
  tools?: Record<string, string>;
  /** `read`: every covered file as the run read it (sha256 of the bytes), checked against `specs` before anything ran. */
  freeze?: { frozen_at: string; specs: unknown[]; read?: { path: string; sha256: string }[] } | { problem: string };
};

export type RunEndPayload = {
  status: string;
  error?: string;
  gates?: { phase: string; recommendation: 'GO' | 'NO-GO' }[];
  /** built: BUILT instances (built, not validated), counted apart from passed (absent in older chains). */
  tasks?: { total: number; passed: number; built?: number; not_configured: number; other: number };
  bundle?: { status: 'signing'; dir: string; release_key: string } | { status: 'none'; reason?: string };
  /** --remote-cache: the cache (no credentials) and its counts for this run. */
  remote_cache?: { cache: string; readonly: boolean; stats: Record<string, number>; down?: string };
};

export type TaskStartPayload = {
  task: string;
  task_id: string;
  arch: string | null;
  phase: string;
  agent: string;
  fingerprint: string;
  /** What changed since the last result, in words ("no earlier result" for a first build). */
  why: string[];
  sandbox?: SandboxRecord;
  /** Why the remote cache gave no hit, when it was asked and had something to say (an entry refused). */
  remote?: string;
};

export type TaskEndPayload = {
  task: string;
  task_id: string;
  arch: string | null;
  phase: string;
  agent: string;
  status: string;
  reason?: string;
  message: string;
  fingerprint: string;
  outputs: StoredFile[];
  evidence?: EvidenceRef[];
  data?: unknown;
  started_at?: string;
  finished_at?: string;
  duration_ms: number;
  log?: string;
  /** Kept, not run again (same fingerprint). */
  up_to_date?: boolean;
  /** "run <id>": restored from an earlier run's PASS with the same fingerprint. */
  restored_from?: string;
  /** Outputs put back from the store. */
  restored?: string[];
  /** Restored from a remote cache: which one (no credentials), the entry, the builder key that signed it, the run that built it, the outputs whose bytes came over the network. */
  remote?: { cache: string; key: string; builder_key: string; built_by_run: string; fetched: string[] };
  sandbox?: SandboxRecord;
  attempts?: number;
  /** The task's compiles through the compiler cache (ccache's stats log of this task): calls that were hits, misses, passed through. */
  compiler_cache?: { hits: number; local_hits: number; remote_hits: number; misses: number; uncacheable: number; remote_errors: number; summary: string };
};

export type TaskAttemptPayload = {
  task: string;
  attempt: number;
  max_attempts: number;
  status: string;
  reason?: string;
  message: string;
  retry_in_ms: number | null;
  decision: string;
};

export type ArtifactPayload = StoredFile & { task: string };

export type BootVerdictPayload = {
  task: string;
  arch: string;
  variant: string;
  verdict: string;
  reason: string | null;
  stage: string | null;
  stage_ms: Record<string, number | null> | null;
  message: string;
  accel: string | null;
  duration_ms: number | null;
  serial_log: StoredFile | null;
  record: StoredFile | null;
  /** The boot task was up to date: the verdict it keeps, not a new boot. */
  up_to_date?: boolean;
  /** sha256 of the ISO booted (LAVA-sourced verdicts always carry it). */
  iso_sha256?: string;
  /** Absent: the built-in boot lab (a task's own boot). Set: a boot another lab ran, ingested. */
  source?: LavaSource;
};

/** A boot run by a LAVA lab (clawos-build lava run / lava ingest), as its verdict records it. */
export type LavaSource = {
  kind: 'lava';
  /** Who ran it: a lab name (--lab), e.g. lava-run@host for the local dispatcher. */
  lab: string;
  job_id: string;
  job_name: string;
  device_type: string;
  /** emulated (a QEMU device type: evidence for G-06) or hardware (a real board: evidence for G-07). */
  device_kind: 'emulated' | 'hardware';
  /** LAVA's own job result and error type, in words. */
  lava_state: string;
  /** 1 for the first run of the job; a retried failure is attempt 2 … */
  attempt: number;
  /** The job definition and LAVA's log as ingested (build-relative, in the store). */
  job: StoredFile;
  log: StoredFile;
  /** The checks as LAVA's test cases recorded them. */
  checks: { name: string; result: string }[];
  missing_checks: string[];
  marker: 'pass' | 'fail' | null;
  /** The boot classifier's verdict on the console LAVA recorded. */
  console_verdict: string;
};

export type GatePayload = {
  phase: string;
  recommendation: 'GO' | 'NO-GO';
  blockers: string[];
  coverage: string;
  inputs_fingerprint: string;
  kept: boolean;
  decided_at: string;
  reports: StoredFile[];
  evidence: { task: string; path: string; sha256: string; store: string | null }[];
};

/** A failed task's rollback_cmd, and the last PASS outputs put back from the store. */
export type TaskRollbackPayload = {
  task: string;
  command: string;
  exit_code: number | null;
  signal: string | null;
  restored: { path: string; sha256: string; store: string }[];
  not_restored?: string;
};

/** RULE-005: a phase put back to its last passed gate checkpoint. */
export type PhaseRollbackPayload = {
  phase: string;
  checkpoint: { run_id: string; seq: number; decided_at: string } | null;
  restored: { task: string; path: string; sha256: string; store: string }[];
  not_restored: string[];
};

export type RollbackPayload = TaskRollbackPayload | PhaseRollbackPayload;

export type SpecFreezePayload = Record<string, unknown>;

export type EventPayloads = {
  'run-start': RunStartPayload;
  'run-end': RunEndPayload;
  'task-start': TaskStartPayload;
  'task-end': TaskEndPayload;
  gate: GatePayload;
  'boot-verdict': BootVerdictPayload;
  artifact: ArtifactPayload;
  'spec-freeze': SpecFreezePayload;
  rollback: RollbackPayload;
  'task-attempt': TaskAttemptPayload;
};

/** A verified event whose payload has its type's shape. */
export type TypedEvent<T extends EventType> = Omit<VaultEvent, 'type' | 'payload'> & { type: T; payload: EventPayloads[T] };

/**
 * The one place a payload read back is given its type: the chain verified, and
 * the writer (RunVault.append) is typed against the same EventPayloads.
 */
export function isEvent<T extends EventType>(e: VaultEvent, type: T): e is VaultEvent & TypedEvent<T> {
  return e.type === type;
}

/** The events of one type, payloads typed. */
export function eventsOf<T extends EventType>(events: readonly VaultEvent[], type: T): TypedEvent<T>[] {
  return events.filter((e): e is VaultEvent & TypedEvent<T> => isEvent(e, type));
}
