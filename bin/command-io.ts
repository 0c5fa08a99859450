/** What a command gets besides its options, and its two output shapes: human text, or one JSON document. */
import type { ParsedArgs } from './args.js';

export interface CommandIo {
  repoRoot: string;
  print(s: string): void;
  printErr(s: string): void;
  env?: Record<string, string | undefined>;
}

/** A command: parsed options in, an exit code (bin/exit.ts) out. */
export type CommandRun = (a: ParsedArgs, io: CommandIo) => Promise<number>;

/** The --json shape: one indented document on stdout. */
export function printJson(io: Pick<CommandIo, 'print'>, v: unknown): void {
  io.print(JSON.stringify(v, null, 2) + '\n');
}
