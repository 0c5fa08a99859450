/**
 * The verifier's reason codes (issue 3), one per way a bundle can be wrong, and
 * the `{ok, code, detail}` result every vault check returns instead of throwing:
 * a failed check is an expected outcome, not a crash.
 */
export const VERIFY_CODES = [
  'PASS',
  'INVALID_SCHEMA',
  'UNSUPPORTED_VERSION',
  'UNSUPPORTED_ALGORITHM',
  'UNKNOWN_KEY',
  'KEY_REVOKED',
  'INVALID_SIGNATURE',
  'NON_CANONICAL_JSON',
  'PATH_UNSAFE',
  'FILE_MISSING',
  'UNEXPECTED_FILE',
  'HASH_MISMATCH',
  'CHAIN_BROKEN',
  'LOG_ROOT_MISMATCH',
  'SUBJECT_MISMATCH',
  'RUN_ID_MISMATCH',
  'REPLAY_DETECTED',
] as const;

export type VerifyCode = (typeof VERIFY_CODES)[number];
export type FailCode = Exclude<VerifyCode, 'PASS'>;

export interface Fail {
  ok: false;
  code: FailCode;
  detail: string;
}

export function fail(code: FailCode, detail: string): Fail {
  return { ok: false, code, detail };
}

/** Thrown by the few vault functions that cannot return a result (loadTrust, openEventLog). */
export class VaultError extends Error {
  override readonly name = 'VaultError';
  constructor(
    readonly code: FailCode | 'TORN_TAIL' | 'EXISTS' | 'KEY_MODE',
    message: string,
  ) {
    super(message);
  }
}
