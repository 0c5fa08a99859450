/**
 * Expected failures are values. Every task instance, gate and boot ends in an
 * Outcome; only a broken run (bad CLI input, no disk, a bug) throws.
 */
import type { SourceLocation } from '../../lib/errors.js';
import type { BootFailureReason } from '../../qemu/classify-boot.js';

/**
 * BUILT: a component was built and its outputs recorded, but nothing proved it
 * works (no validation_cmd, no in-guest check). Building is not proving: BUILT
 * is never PASS, and a gate that requires the task says NO-GO.
 */
export type Status = 'PASS' | 'BUILT' | 'FAIL' | 'TIMEOUT' | 'INFRA_ERROR' | 'NOT_CONFIGURED';

/**
 * The statuses that are not failures: dependants run, the fingerprint is kept, no
 * rollback. NOT_CONFIGURED is honest "not built", BUILT honest "built, unproven";
 * neither counts as passed in a gate (only PASS does, see pipeline/run/gates.ts).
 */
export const PASSED_STATUSES = ['PASS', 'BUILT', 'NOT_CONFIGURED'] as const satisfies readonly Status[];

export function isPassed(status: string): boolean {
  return (PASSED_STATUSES as readonly string[]).includes(status);
}

export type FailureReason =
  | 'exit-non-zero'
  | 'timeout'
  | 'cycle'
  | 'gate-failed'
  | 'config-dropped'
  | 'config-unknown-symbol'
  | 'source-mismatch'
  | 'output-missing'
  | 'validation-failed'
  // BUILT: built, but no validation_cmd or in-guest check proves it
  | 'unvalidated'
  // boot-panic, boot-oops, boot-check-failed, boot-marker-missing, boot-no-console, boot-timeout, boot-firmware-refused, infra
  | BootFailureReason
  // INFRA_ERROR that retrying cannot cure: a locked input missing, not served or not the locked one
  | 'input-missing'
  | 'rule-001-write-outside'
  | 'rule-006-network-undeclared'
  | 'not-configured'
  | 'dependency-failed'
  | 'spec-invalid'
  // a frozen_spec_deps entry does not match the verified freeze record (specs/p1/freeze.dsse.json)
  | 'frozen-spec-mismatch'
  // G-08: a metric below the catalog's bar, or a boot that gave no figure
  | 'bench-below-bar'
  | 'bench-no-figure'
  // G-03/G-04: a non-waived CRITICAL finding (or a HIGH without a mitigation)
  | 'audit-critical';

/** A file that backs a claim: where it is and what it hashed to. */
export interface Evidence {
  label: string;
  /** Relative to the build dir where possible. */
  path: string;
  sha256: string;
}

export interface Outcome {
  status: Status;
  /** Set for every status but PASS. */
  reason?: FailureReason;
  /** One line a person reads first. */
  message: string;
  taskId?: string;
  location?: SourceLocation;
  evidence?: Evidence[];
  /** Step-specific structured result (boot verdicts, dropped symbols …). */
  data?: unknown;
}

export const pass = (message: string, extra: Partial<Outcome> = {}): Outcome => ({ status: 'PASS', message, ...extra });
export const fail = (reason: FailureReason, message: string, extra: Partial<Outcome> = {}): Outcome => ({
  status: 'FAIL',
  reason,
  message,
  ...extra,
});
export const built = (message: string, extra: Partial<Outcome> = {}): Outcome => ({
  status: 'BUILT',
  reason: 'unvalidated',
  message,
  ...extra,
});
/** INFRA_ERROR from an input that is missing or not the locked one: the same on every attempt, so never retried. */
export const inputMissing = (message: string, extra: Partial<Outcome> = {}): Outcome => ({
  status: 'INFRA_ERROR',
  reason: 'input-missing',
  message,
  ...extra,
});

export const infra = (message: string, extra: Partial<Outcome> = {}): Outcome => ({
  status: 'INFRA_ERROR',
  reason: 'infra',
  message,
  ...extra,
});
