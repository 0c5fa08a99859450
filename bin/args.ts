/** Option parsing for the subcommands that parse their own words (report, release). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CommandIo {
  repoRoot: string;
  print(s: string): void;
  printErr(s: string): void;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * The values of `argv` (no positionals), or null after printing the usage error,
 * for which the caller returns exit code 2.
 */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, usage: string, io: CommandIo) {
  try {
    return parseArgs({ args: argv, allowPositionals: false, strict: true, options }).values;
  } catch (e) {
    io.printErr(`clawos-build: ${(e as Error).message.replace(/\. To specify a positional argument.*$/, '')}\n\n${usage}\n`);
    return null;
  }
}
