/**
 * The one option parser every command uses. A command declares its options in
 * groups (bin/cli.ts); an option a command does not declare is refused, naming
 * the command it goes with when one other command owns it. Parsing loads nothing
 * beyond node:util, so it costs nothing at start-up.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './exit.js';

export interface OptionSpec {
  /** The long name, without `--`. */
  name: string;
  short?: string;
  type: 'string' | 'boolean';
  /** The value's placeholder in help: DIR, N, FILE. */
  value?: string;
  help: string;
  /** Shown without brackets in the synopsis, and refused when missing. */
  required?: string;
  /** The value when the option is not given (booleans: false). */
  default?: string | number | string[] | (() => string | number | string[]);
  /** Turn the raw string into the value; throws UsageError. */
  parse?: (raw: string) => unknown;
}

export interface OptionGroup {
  options: readonly OptionSpec[];
  /** Who these options go with ("the boot command"): named when another command is given one. Shared groups have none. */
  owner?: string;
}

export interface CommandSpec {
  name: string;
  /** One line, for the command table of --help, docs/commands.md and the README. */
  summary: string;
  /** What follows the name before the options: ISO DEVICE, TASK[@ARCH]. */
  words?: string;
  /** More help lines after the summary. */
  details?: readonly string[];
  options: readonly OptionGroup[];
  /** How many words may follow the name (default 0); message for a wrong count. */
  positionals?: { min?: number; max: number; wrongCount?: (given: string[]) => string };
  /** Everything after `--` is the command's own argv (seccomp profile -- CMD). */
  passThrough?: boolean;
  /** Checks across options, once they are parsed. */
  check?: (a: ParsedArgs) => void;
}

/** Parsed options under camelCase names (build-dir -> buildDir), plus the words. */
export interface ParsedArgs {
  command: string;
  positionals: string[];
  /** After `--`, for a passThrough command. */
  rest: string[];
  [option: string]: unknown;
}

export const camelCase = (name: string): string => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** "a", "a and b", "a, b and c" */
export function listWords(words: readonly string[]): string {
  return words.length < 2 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`;
}

export const allOptions = (spec: CommandSpec): OptionSpec[] => spec.options.flatMap((g) => g.options);

/** A positive whole number, for -j, --repeat, --runs. */
export function positiveInt(flag: string): (raw: string) => number {
  return (raw) => {
    if (!/^[1-9]\d*$/.test(raw)) throw new UsageError(`${flag} takes a positive whole number, not "${raw}"`);
    return Number(raw);
  };
}

const cleanMessage = (e: unknown): string => (e as Error).message.replace(/\. To specify a positional argument.*$/, '');

/** "--iso, --firmware and --repeat go with the boot command", when the option belongs to other commands. */
function goesWith(flag: string, spec: CommandSpec, table: readonly CommandSpec[]): string | null {
  const long = flag.startsWith('--');
  const name = flag.replace(/^-+/, '');
  const owners = new Map<OptionGroup, string[]>();
  for (const other of table) {
    if (other === spec) continue;
    for (const g of other.options) {
      if (g.owner && g.options.some((o) => (long ? o.name === name : o.short === name))) owners.set(g, [...(owners.get(g) ?? []), other.name]);
    }
  }
  if (!owners.size) return null;
  if (owners.size === 1) {
    const [g] = [...owners.keys()] as [OptionGroup];
    const names = g.options.map((o) => `--${o.name}`);
    return `${listWords(names)} ${names.length > 1 ? 'go' : 'goes'} with ${g.owner}`;
  }
  return `${flag} goes with ${listWords([...owners.values()].flat())}`;
}

/**
 * argv after the command's name, parsed as `spec` says. Returns 'help' for -h/--help and
 * 'version' for --version (unless the command has its own --version); throws UsageError.
 */
export function parseCommand(spec: CommandSpec, argv: readonly string[], table: readonly CommandSpec[]): ParsedArgs | 'help' | 'version' {
  const dash = spec.passThrough ? argv.indexOf('--') : -1;
  const before = dash < 0 ? [...argv] : argv.slice(0, dash);
  const rest = dash < 0 ? [] : argv.slice(dash + 1);
  const opts = allOptions(spec);
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
  };
  for (const o of opts) config[o.name] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: before, allowPositionals: true, strict: true, options: config });
  } catch (e) {
    const flag = /^Unknown option '(-{1,2}[^'=]+)'/.exec((e as Error).message)?.[1];
    throw new UsageError((flag && goesWith(flag, spec, table)) || cleanMessage(e));
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) return 'help';
  if (v.version && !opts.some((o) => o.name === 'version')) return 'version';
  const pos = parsed.positionals;
  const { min = 0, max = 0, wrongCount } = spec.positionals ?? {};
  if (pos.length < min || pos.length > max) {
    throw new UsageError(wrongCount ? wrongCount(pos) : `unexpected argument "${pos[max]}" for ${spec.name}`);
  }
  const out: ParsedArgs = { command: spec.name, positionals: pos, rest };
  for (const o of opts) {
    const raw = v[o.name];
    const key = camelCase(o.name);
    if (raw === undefined) {
      if (o.required) throw new UsageError(o.required);
      out[key] = o.type === 'boolean' ? false : typeof o.default === 'function' ? o.default() : o.default;
    } else out[key] = typeof raw === 'string' && o.parse ? o.parse(raw) : raw;
  }
  spec.check?.(out);
  return out;
}

/** The command word: the first argument that is neither an option nor an option's value. */
export function findCommand(argv: readonly string[], table: readonly CommandSpec[]): { name: string | undefined; rest: string[] } {
  const takesValue = new Set<string>();
  for (const o of table.flatMap(allOptions)) {
    // Before the command, --version is clawos-build's own flag.
    if (o.type === 'string' && o.name !== 'version') {
      takesValue.add(`--${o.name}`);
      if (o.short) takesValue.add(`-${o.short}`);
    }
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (!a.startsWith('-') || a === '-') return { name: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
    if (takesValue.has(a)) i++;
  }
  return { name: undefined, rest: [...argv] };
}
