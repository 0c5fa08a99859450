/**
 * `clawos-build flash ISO DEVICE`: the terminal side of host/flash.ts.
 * Progress goes to stderr (a bar on a terminal, a line every few seconds
 * otherwise); with --json every event is one JSON line on stdout, ending with
 * {"event":"result",…}. Exit 0 when the readback matched, 1 when the ISO could
 * not be vouched for or the readback differed; refusals are invalid input (3).
 * --json is the one command output that is a stream (JSON lines), not one document.
 */
import { createInterface } from 'node:readline/promises';
import { InfraError, UserError } from '../../lib/errors.js';
import type { ParsedArgs } from '../args.js';
import { EXIT } from '../exit.js';
import { flash, formatBytes, type FlashEvent, type FlashResult } from '../../host/flash.js';

export interface FlashCommandOptions {
  positionals: string[];
  buildDir: string;
  json: boolean;
  yes?: boolean;
  allowFile?: boolean;
  sha256?: string;
  bundle?: string;
  trust?: string;
  noResultsArea?: boolean;
}

export interface FlashIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Plain progress lines at most this often (default 5 s). */
  plainEveryMs?: number;
  now?: () => number;
}

type Progress = Extract<FlashEvent, { event: 'progress' }>;

function clock(s: number): string {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

/** "write  43%  129.0 MiB of 300.0 MiB  25.3 MiB/s  ETA 0:07" */
export function formatProgress(e: Progress): string {
  const pct = e.total ? Math.floor((e.bytes * 100) / e.total) : 100;
  const rate = e.bytes_per_s > 0 ? `${formatBytes(e.bytes_per_s)}/s` : '– /s';
  const eta = e.eta_s === null ? 'ETA –' : e.bytes >= e.total ? `done in ${clock(e.elapsed_ms / 1000)}` : `ETA ${clock(e.eta_s)}`;
  return `${e.phase.padEnd(8)} ${String(pct).padStart(3)}%  ${formatBytes(e.bytes)} of ${formatBytes(e.total)}  ${rate}  ${eta}`;
}

export function progressBar(e: Progress, width = 24): string {
  const filled = e.total ? Math.round((e.bytes * width) / e.total) : width;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${formatProgress(e)}`;
}

/** Renders flash events as the mode wants them. */
export function createFlashRenderer(mode: 'tty' | 'plain' | 'json', io: FlashIo): { onEvent(e: FlashEvent): void; result(r: FlashResult): void } {
  const now = io.now ?? Date.now;
  const every = io.plainEveryMs ?? 5000;
  let lastPlain = -Infinity;
  let lastJson = -Infinity;
  let barOpen = false;
  const closeBar = () => {
    if (barOpen) io.stderr.write('\n');
    barOpen = false;
  };
  const say = (s: string) => {
    closeBar();
    io.stderr.write(`${s}\n`);
  };
  return {
    onEvent(e) {
      if (mode === 'json') {
        // Progress at most once a second, but always a phase's last one.
        if (e.event === 'progress' && e.bytes < e.total && now() - lastJson < 1000) return;
        if (e.event === 'progress') lastJson = now();
        io.stdout.write(JSON.stringify(e) + '\n');
        return;
      }
      switch (e.event) {
        case 'verified':
          say(`flash: ISO ${e.iso} (${formatBytes(e.size)}, sha256 ${e.sha256})`);
          for (const v of e.vouched_by) say(`flash: vouched for by ${v.detail}`);
          return;
        case 'target':
          say(`flash: target ${e.target.path}: ${e.target.description}`);
          return;
        case 'results-area':
          say(`flash: empty results area (${formatBytes(e.bytes)}) at byte ${e.offset}: the ClawOS init writes its results there when a machine boots the stick; read them with clawos-build hw record`);
          return;
        case 'flushed':
          say(`flash: dropped the device's buffers (${e.how}); reading back from the device`);
          return;
        case 'note':
          say(`flash: ${e.message}`);
          return;
        case 'progress': {
          const last = e.bytes >= e.total;
          if (mode === 'tty') {
            io.stderr.write(`\r${progressBar(e)}\x1b[K`);
            barOpen = true;
            if (last) closeBar();
          } else if (last || now() - lastPlain >= every) {
            lastPlain = now();
            io.stderr.write(`flash: ${formatProgress(e)}\n`);
          }
        }
      }
    },
    result(r) {
      if (mode === 'json') {
        io.stdout.write(JSON.stringify({ event: 'result', ...r }) + '\n');
        return;
      }
      closeBar();
      io.stdout.write(`${r.ok ? 'flash: done' : 'flash: FAILED'}: ${r.message}\n`);
    },
  };
}

export async function flashCommand(o: FlashCommandOptions, io: FlashIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  if (o.positionals.length !== 2) {
    throw new UserError('flash needs ISO and DEVICE', 'e.g. clawos-build flash build/build-engineer/x86_64/clawos-x86_64.iso /dev/sdX (run lsblk to find the stick)');
  }
  const [iso, device] = o.positionals as [string, string];
  const mode = o.json ? 'json' : io.stderr.isTTY && !process.env.CI ? 'tty' : 'plain';
  const r = createFlashRenderer(mode, io);
  const confirm = io.stdin.isTTY
    ? async (q: string) => {
        const rl = createInterface({ input: io.stdin, output: io.stderr });
        try {
          return await rl.question(q);
        } finally {
          rl.close();
        }
      }
    : undefined;
  let result: FlashResult;
  try {
    result = await flash({
      iso,
      device,
      buildDir: o.buildDir,
      sha256: o.sha256,
      bundle: o.bundle,
      trust: o.trust,
      allowFile: o.allowFile,
      yes: o.yes,
      resultsArea: !o.noResultsArea,
      confirm,
      onEvent: (e) => r.onEvent(e),
    });
  } catch (err) {
    // --json is a stream of JSON lines: a refusal is its last line, not a pretty document.
    if (!o.json || !(err instanceof UserError || err instanceof InfraError)) throw err;
    const code = err instanceof UserError ? EXIT.invalidInput : EXIT.infra;
    io.stdout.write(JSON.stringify({ event: 'error', ok: false, exit_code: code, kind: err.name, message: err.message, hint: err.hint }) + '\n');
    return code;
  }
  r.result(result);
  return result.ok ? EXIT.ok : EXIT.failed;
}

export async function run(a: ParsedArgs): Promise<number> {
  return flashCommand({
    positionals: a.positionals,
    buildDir: a.buildDir as string,
    json: !!a.json,
    yes: !!a.yes,
    allowFile: !!a.allowFile,
    sha256: a.sha256 as string | undefined,
    bundle: a.bundle as string | undefined,
    trust: a.trust as string | undefined,
    noResultsArea: !!a.noResultsArea,
  });
}
