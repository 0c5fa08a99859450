/**
 * The one process layer: every child process of clawos-build goes through run().
 * - argv arrays only; zx quotes each element, nothing is hand-quoted.
 * - each child leads its own process group, so a timeout or an abort kills the
 *   whole tree (make's compilers, qemu) with one signal.
 * - output goes line by line to the caller's sink (the task log) and a bounded tail
 *   is kept for error messages.
 * - the reproducer command line is written to the sink before the child starts.
 */
import { $, quote } from 'zx';

export interface LineSink {
  (stream: 'stdout' | 'stderr' | 'meta', line: string): void;
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
}

export interface RunResult {
  argv: string[];
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
  const sink: LineSink = opts.sink ?? (() => {});
  const repro = reproducer(argv, opts);
  sink('meta', `$ ${repro}`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
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
    cwd: opts.cwd,
    env,
    detached: true,
    nothrow: true,
    quiet: true,
    verbose: false,
    input: opts.input,
    prefix: 'exec ',
    postfix: '',
  })`${argv}`;

  const emit = (stream: 'stdout' | 'stderr', line: string) => {
    if (stream === 'stdout' && opts.captureStdout) stdout += line + '\n';
    tail.push(line);
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
  const terminate = () => {
    killGroup('SIGTERM');
    graceTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 5000);
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
  }
  for (const s of ['stdout', 'stderr'] as const) {
    if (partials[s]) emit(s, partials[s]!);
  }
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
