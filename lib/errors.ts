/**
 * The few thrown error classes. Expected failures of tasks, gates and boots are
 * values (see pipeline/catalog/outcome.ts); these are for when the run itself cannot go on.
 * Only bin/ maps them to exit codes.
 */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

/** The user's input is wrong: a bad spec, option or path. Printed without a stack. */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly hint?: string,
    readonly location?: SourceLocation,
  ) {
    super(message);
  }
}

/** The machine cannot do what was asked: a missing tool, firmware, disk space. */
export class InfraError extends Error {
  override readonly name = 'InfraError';
  /**
   * False when another attempt would fail the same way until someone acts: a locked
   * input the mirror does not serve, a tarball with the wrong sha256. Never retried.
   */
  readonly transient: boolean;
  constructor(
    message: string,
    readonly hint?: string,
    opts: { transient?: boolean } = {},
  ) {
    super(message);
    this.transient = opts.transient ?? true;
  }
}

/** A bug in clawos-build itself. Printed with a stack. */
export class InternalError extends Error {
  override readonly name = 'InternalError';
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}
