/**
 * The one exit-code table, and the one place that maps thrown errors
 * (lib/errors.ts) to those codes. Commands return EXIT.* values, never bare numbers.
 */
import { InfraError, InternalError, UserError, formatLocation } from '../lib/errors.js';
import { VaultError } from '../vault/codes.js';

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  invalidInput: 3,
  infra: 4,
  internal: 70,
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each code means, in the order --help and docs/commands.md list them. */
export const EXIT_MEANINGS: readonly (readonly [ExitCode, string])[] = [
  [EXIT.ok, 'ok'],
  [EXIT.failed, 'a task, gate or boot failed'],
  [EXIT.usage, 'usage error'],
  [EXIT.invalidInput, 'invalid input (specs, config, state)'],
  [EXIT.infra, 'infrastructure error (missing tool, firmware, disk)'],
  [EXIT.internal, 'internal error'],
  [EXIT.interrupted, 'interrupted'],
];

/** A wrong command line: printed with the command's usage, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface ErrorIo {
  print(s: string): void;
  printErr(s: string): void;
}

/**
 * Print a thrown error and return its exit code: UserError 3, InfraError 4
 * (one JSON document with --json), a vault error 3 when the command's entry asks
 * for it, anything else is a bug: 70 with its stack.
 */
export function reportError(err: unknown, o: { json: boolean; vaultErrors?: boolean }, io: ErrorIo): ExitCode {
  if (err instanceof UserError || err instanceof InfraError) {
    const code = err instanceof UserError ? EXIT.invalidInput : EXIT.infra;
    if (o.json) {
      io.print(
        JSON.stringify({ ok: false, exit_code: code, error: { kind: err.name, message: err.message, hint: err.hint, location: err instanceof UserError ? err.location : undefined } }, null, 2) + '\n',
      );
    } else {
      const where = err instanceof UserError && err.location && !err.message.includes(formatLocation(err.location)) ? `${formatLocation(err.location)}: ` : '';
      io.printErr(`clawos-build: ${where}${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    }
    return code;
  }
  // The vault's commands report a VaultError (a broken key, trust file or event log) as invalid input.
  if (o.vaultErrors && err instanceof VaultError) {
    io.printErr(`clawos-build: ${err.code}: ${err.message}\n`);
    return EXIT.invalidInput;
  }
  const e = err instanceof Error ? err : new InternalError(String(err));
  io.printErr(`clawos-build: internal error (a bug in clawos-build; please report it with this trace):\n${e.stack ?? e.message}\n`);
  return EXIT.internal;
}
