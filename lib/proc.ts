/**
 * The one process layer: every child process of clawos-build goes through run().
 * - argv arrays only; zx quotes each element, nothing is hand-quoted.
 * - each child leads its own process group, so a timeout or an abort kills the
 *   whole tree (make's compilers, qemu) with one signal.
 * - output goes line by line to the caller's sink (the task log) and a bounded tail
 *   is kept for error messages.
 * - the reproducer command line is written to the sink before the child starts.
 * - an optional wrapper (the bwrap sandbox, lib/sandbox.ts) turns the command into
 *   the one actually started; the reproducer shows the wrapped one, so it reproduces
 *   exactly what ran.
 * - an optional redaction (lib/redact.ts) is applied to everything that can reach a
 *   log or a report: the reproducer, every output line, the kept tail. Captured
 *   stdout is data for the caller and is left as the program printed it.
 */
import { $, quote } from 'zx';

export interface LineSink {
  (stream: 'stdout' | 'stderr' | 'meta', line: string): void;
}

/** The command as the caller asked for it (env: the caller's additions/removals). */
export interface CommandSpec {
  argv: string[];
  cwd?: string;
  env: Record<string, string | undefined>;
}

/** The command actually started instead, e.g. inside a sandbox. */
export interface WrappedCommand {
  argv: string[];
  /** Replaces the caller's env additions for the started program. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Recognise the wrapper's own report that the wrapped program could not be started. */
  spawnError?(exitCode: number | null, tail: string[]): string | undefined;
}

export type CommandWrapper = (cmd: CommandSpec) => WrappedCommand;

/** Hides secrets in text that can reach a log or report (lib/redact.ts Redactor). */
export interface Redaction {
  text(s: string): string;
}

export interface RunOptions {
  cwd?: string;
  /** Added to (or, with value undefined, removed from) the parent's environment. */
  env?: Record<string, string | undefined>;
  /** Kill the process group after this many milliseconds. */
  timeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when killing on timeout/abort. */
  killGraceMs?: number;
  signal?: AbortSignal;
  input?: string | Buffer;
  sink?: LineSink;
  /** Keep the whole stdout in memory (for commands whose output is data). */
  captureStdout?: boolean;
  /** How many trailing lines of output to keep for diagnostics. */
  tailLines?: number;
  /** Start a different command instead (the sandbox): see CommandWrapper. */
  wrap?: CommandWrapper;
  /** Applied to the reproducer, every line given to the sink, and the tail. */
  redact?: Redaction;
}

export interface RunResult {
  /** The command as asked for (before any wrapper). */
  argv: string[];
  /** Pasteable command line of what really ran (wrapped, redacted). */
  reproducer: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  /** The program could not be started at all (ENOENT …). */
  spawnError?: string;
  durationMs: number;
  stdout: string;
  tail: string[];
  ok: boolean;
}

const SAFE = /^[A-Za-z0-9_\-+=.,/:@%]+$/;
function shellWord(s: string): string {
  return SAFE.test(s) ? s : quote(s);
}

/** A command line a person can paste into a shell to reproduce the run. */
export function reproducer(argv: string[], opts: Pick<RunOptions, 'cwd' | 'env'> = {}): string {
  const parts: string[] = [];
  if (opts.cwd) parts.push(`cd ${shellWord(opts.cwd)} &&`);
  const envs = Object.entries(opts.env ?? {}).filter(([, v]) => v !== undefined);
  if (envs.length) parts.push('env', ...envs.map(([k, v]) => shellWord(`${k}=${v}`)));
  parts.push(...argv.map(shellWord));
  return parts.join(' ');
}

export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new Error('run: empty argv');
  const hide = opts.redact ? (s: string) => opts.redact!.text(s) : (s: string) => s;
  const rawSink: LineSink = opts.sink ?? (() => {});
  const sink: LineSink = opts.redact ? (stream, line) => rawSink(stream, hide(line)) : rawSink;
  const wrapped: WrappedCommand = opts.wrap
    ? opts.wrap({ argv, cwd: opts.cwd, env: opts.env ?? {} })
    : { argv, env: opts.env, cwd: opts.cwd };
  if (wrapped.argv.length === 0) throw new Error('run: the wrapper returned an empty argv');
  const repro = hide(reproducer(wrapped.argv, { cwd: wrapped.cwd, env: wrapped.env }));
  sink('meta', `$ ${repro}`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(wrapped.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const tailMax = opts.tailLines ?? 60;
  const tail: string[] = [];
  let stdout = '';
  const started = Date.now();
  let timedOut = false;
  let aborted = false;

  // `exec` replaces zx's wrapper shell, so the group leader is the program itself.
  const p = $({
    cwd: wrapped.cwd,
    env,
    detached: true,
    nothrow: true,
    quiet: true,
    verbose: false,
    input: opts.input,
    prefix: 'exec ',
    postfix: '',
  })`${wrapped.argv}`;

  const emit = (stream: 'stdout' | 'stderr', line: string) => {
    if (stream === 'stdout' && opts.captureStdout) stdout += line + '\n';
    tail.push(hide(line));
    if (tail.length > tailMax) tail.shift();
    sink(stream, line);
  };
  const partials: Record<string, string> = { stdout: '', stderr: '' };
  const handler = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const text = partials[stream] + chunk.toString('utf8');
    const lines = text.split('\n');
    partials[stream] = lines.pop() ?? '';
    for (const line of lines) emit(stream, line);
  };
  p.stdout.on('data', handler('stdout'));
  p.stderr.on('data', handler('stderr'));

  const killGroup = (sig: NodeJS.Signals) => {
    const pid = p.pid;
    if (!pid) return;
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  };
  let graceTimer: NodeJS.Timeout | undefined;
  let pipeTimer: NodeJS.Timeout | undefined;
  // A child that left the group (setsid) survives the group kill and keeps our
  // pipes open; once the leader is gone, stop waiting for it.
  const releasePipes = () => {
    const child = p.child;
    if (!child) return;
    const release = () => {
      pipeTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, 500);
    };
    if (child.exitCode !== null || child.signalCode !== null) release();
    else child.once('exit', release);
  };
  const terminate = () => {
    killGroup('SIGTERM');
    graceTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 5000);
    releasePipes();
  };
  const timer = opts.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        sink('meta', `clawos-build: timeout after ${Math.round(opts.timeoutMs! / 1000)} s, killing process group`);
        terminate();
      }, opts.timeoutMs)
    : undefined;
  const onAbort = () => {
    aborted = true;
    terminate();
  };
  if (opts.signal) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }

  let exitCode: number | null = null;
  let signal: string | null = null;
  let spawnError: string | undefined;
  try {
    const out = await p;
    exitCode = out.exitCode;
    signal = out.signal;
  } catch (err) {
    spawnError = err instanceof Error ? err.message : String(err);
  } finally {
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
    // Anything the leader left behind in its group goes with it.
    if (timedOut || aborted) killGroup('SIGKILL');
    if (graceTimer) clearTimeout(graceTimer);
    if (pipeTimer) clearTimeout(pipeTimer);
  }
  for (const s of ['stdout', 'stderr'] as const) {
    if (partials[s]) emit(s, partials[s]!);
  }
  if (!spawnError && wrapped.spawnError) spawnError = wrapped.spawnError(exitCode, tail);
  // zx reports a missing program as exit 127 from the shell.
  if (exitCode === 127 && !spawnError && tail.some((l) => /command not found|: not found|No such file/.test(l))) {
    spawnError = `${argv[0]}: command not found`;
  }
  const durationMs = Date.now() - started;
  sink('meta', `clawos-build: exit=${exitCode ?? '-'} signal=${signal ?? '-'} ${(durationMs / 1000).toFixed(1)} s`);
  return {
    argv,
    reproducer: repro,
    exitCode,
    signal,
    timedOut,
    aborted,
    spawnError,
    durationMs,
    stdout,
    tail,
    ok: exitCode === 0 && !timedOut && !aborted && !spawnError,
  };
}

/** Run a command and return its trimmed stdout, or null when it fails. */
export async function capture(argv: string[], opts: RunOptions = {}): Promise<string | null> {
  const r = await run(argv, { ...opts, captureStdout: true });
  return r.ok ? r.stdout.trimEnd() : null;
}

/** What every layer that starts processes takes, so tests can hand in a fake: run() itself fits it. */
export type Runner = (argv: string[], opts?: RunOptions) => Promise<RunResult>;
