/**
 * Boot one ISO (or kernel) under QEMU, watch the serial console, and judge it.
 * The process goes through lib/proc run(): argv only, process-group kill on
 * timeout. Results land in <outDir>/<variant>.serial.log and <variant>.json.
 */
import { access, mkdir, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { run as procRun, type LineSink, type RunOptions, type RunResult } from '../lib/proc.js';
import { writeFileAtomic, writeJsonAtomic } from '../lib/atomic-write.js';
import {
  classifyBoot,
  isTerminalLine,
  type BootClassification,
  type BootFailureReason,
  type BootStage,
  type BootVerdict,
  type CheckResult,
  type StageTimes,
} from './classify-boot.js';
import { findAccelerator, findVariant, missingFirmware, variantExpectations, prepareBoot, type BootMedia, type QemuMachine } from './machine.js';

export type { Runner } from '../lib/proc.js';
import type { Runner } from '../lib/proc.js';

export interface BootRecord {
  verdict: BootVerdict;
  /** null when verdict is PASS. */
  reason: BootFailureReason | null;
  stage: BootStage;
  /** ms from QEMU start to the first console line of each stage; null = not reached. */
  stage_ms: StageTimes;
  checks: CheckResult[];
  failed_checks: string[];
  missing_checks: string[];
  message: string;
  arch: string;
  variant: string;
  /** The -machine value used. */
  machine: string;
  accel: string;
  accel_note: string;
  duration_ms: number;
  /** Paste-able command line (from run()); '' when QEMU was never started. */
  command: string;
  /** File name of the serial log, relative to the record's directory. */
  serial_log: string;
  qemu_version: string | null;
  qemu_exit: { code: number | null; signal: string | null } | null;
  /** QEMU's own stderr (warnings, errors), last lines. */
  qemu_stderr: string[];
}

export interface BootOptions {
  machine: QemuMachine;
  variant: string;
  /** Absolute path of the ISO to boot. */
  iso?: string;
  /** Boot a kernel directly instead of an ISO (smoke tests); uses machine.direct_kernel. */
  kernel?: { path: string; initrd?: string; append?: string };
  /** Accelerator name (see kvm-probe chooseAccelerator()). */
  accel: string;
  /** Why this accelerator (goes into the record). */
  accelNote?: string;
  outDir: string;
  expectedChecks: readonly string[];
  /** Defaults to the accelerator's timeout_s in the machine definition. */
  timeoutS?: number;
  signal?: AbortSignal;
  sink?: LineSink;
  /** Run QEMU through this (StepContext.run); defaults to lib/proc run(). */
  runner?: Runner;
  /** Use this program instead of machine.binary (tests: test/fakes/fake-qemu). */
  binary?: string;
  /** Extra environment for QEMU (tests drive the fake with it). */
  env?: Record<string, string | undefined>;
  /** After the verdict line, how long QEMU may take to exit by itself before it is killed. */
  settleMs?: number;
}

const STDERR_KEEP = 20;

/** "QEMU emulator version 7.2.22 (Debian …)" -> "7.2.22 (Debian …)"; null if the binary does not run. */
export async function qemuVersion(binary: string, runner: Runner = procRun): Promise<{ version: string | null; error?: string }> {
  const r = await runner([binary, '--version'], { captureStdout: true, timeoutMs: 15_000 });
  if (r.spawnError) return { version: null, error: r.spawnError };
  if (!r.ok) return { version: null, error: `exit status ${r.exitCode ?? r.signal}: ${r.tail.at(-1) ?? ''}`.trim() };
  const first = r.stdout.split('\n')[0] ?? '';
  return { version: first.replace(/^QEMU emulator version\s+/, '').trim() || null };
}

export async function bootIso(opts: BootOptions): Promise<BootRecord> {
  const m = opts.machine;
  const variant = findVariant(m, opts.variant);
  const accel = findAccelerator(m, opts.accel);
  const runner = opts.runner ?? procRun;
  const binary = opts.binary ?? m.binary;
  const sink: LineSink = opts.sink ?? (() => {});
  const serialName = `${variant.name}.serial.log`;
  await mkdir(opts.outDir, { recursive: true });
  const started = Date.now();

  const record: BootRecord = {
    verdict: 'INFRA_ERROR',
    reason: 'infra',
    stage: 'none',
    stage_ms: { firmware: null, kernel: null, init: null, checks: null, marker: null },
    checks: [],
    failed_checks: [],
    missing_checks: [],
    message: '',
    arch: m.arch,
    variant: variant.name,
    machine: variant.machine ?? m.machine,
    accel: accel.name,
    accel_note: opts.accelNote ?? '',
    duration_ms: 0,
    command: '',
    serial_log: serialName,
    qemu_version: null,
    qemu_exit: null,
    qemu_stderr: [],
  };
  const finish = async (serial: string, c?: BootClassification, infraMessage?: string): Promise<BootRecord> => {
    if (c) {
      record.verdict = c.verdict;
      record.reason = c.reason;
      record.stage = c.stage;
      record.stage_ms = c.stageMs;
      record.checks = c.checks;
      record.failed_checks = c.failedChecks;
      record.missing_checks = c.missingChecks;
      record.message = c.message;
    } else {
      record.message = infraMessage ?? 'infrastructure error';
    }
    record.duration_ms = Date.now() - started;
    await writeFileAtomic(join(opts.outDir, serialName), serial);
    await writeJsonAtomic(join(opts.outDir, `${variant.name}.json`), record);
    return record;
  };

  // Preconditions the guest cannot be blamed for.
  const ver = await qemuVersion(binary, runner);
  if (ver.version === null) {
    const pkg = m.binary_package ? ` (Debian package ${m.binary_package})` : '';
    return finish('', undefined, `${binary} does not run${pkg}: ${ver.error ?? 'unknown error'}`);
  }
  record.qemu_version = ver.version;
  const missing = await missingFirmware(variant);
  if (missing.length) return finish('', undefined, `firmware missing: ${missing.join(', ')}`);
  let media: BootMedia;
  if (opts.kernel) {
    media = { kernel: opts.kernel.path, initrd: opts.kernel.initrd, append: opts.kernel.append };
  } else if (opts.iso) {
    media = { iso: opts.iso };
  } else {
    throw new Error('bootIso: neither iso nor kernel given');
  }
  const bootFile = 'iso' in media ? media.iso : media.kernel;
  try {
    await access(bootFile, constants.R_OK);
  } catch {
    return finish('', undefined, `boot image not readable: ${bootFile}`);
  }

  // Under the record's dir, not /tmp: a sandboxed QEMU has a private /tmp and may write only its task's dir.
  const scratch = await tmpDir({ prefix: '.qemu-scratch-', tmpdir: opts.outDir, unsafeCleanup: true });
  try {
    const { argv } = await prepareBoot({ machine: m, variant, accel, media, scratchDir: scratch.path, binary });

    const lines: string[] = [];
    const times: number[] = [];
    const stderr: string[] = [];
    // Our own stop (verdict seen) vs. the caller's abort: only the latter is a timeout.
    const stop = new AbortController();
    let stoppedByUs = false;
    let callerAborted = false;
    let settleTimer: NodeJS.Timeout | undefined;
    const onCallerAbort = () => {
      callerAborted = true;
      stop.abort();
    };
    if (opts.signal?.aborted) onCallerAbort();
    else opts.signal?.addEventListener('abort', onCallerAbort, { once: true });

    const t0 = Date.now();
    const runSink: LineSink = (stream, line) => {
      if (stream === 'stdout') {
        lines.push(line);
        times.push(Date.now() - t0);
        // Marker or panic: nothing later can change the verdict. The guest reboots
        // (-no-reboot ends QEMU); if it does not, stop it after a moment.
        if (!settleTimer && isTerminalLine(line)) {
          settleTimer = setTimeout(() => {
            stoppedByUs = true;
            stop.abort();
          }, opts.settleMs ?? 3000);
        }
      } else if (stream === 'stderr') {
        stderr.push(line);
        if (stderr.length > STDERR_KEEP) stderr.shift();
      }
      sink(stream, line);
    };
    const timeoutS = opts.timeoutS ?? accel.timeout_s;
    let r: RunResult;
    try {
      r = await runner(argv, {
        timeoutMs: timeoutS * 1000,
        killGraceMs: 3000,
        signal: stop.signal,
        sink: runSink,
        env: opts.env,
      });
    } finally {
      if (settleTimer) clearTimeout(settleTimer);
      opts.signal?.removeEventListener('abort', onCallerAbort);
    }
    record.command = r.reproducer;
    record.qemu_exit = { code: r.exitCode, signal: r.signal };
    record.qemu_stderr = stderr;
    const serial = lines.join('\n') + (lines.length ? '\n' : '');

    if (r.spawnError) return finish(serial, undefined, `${binary} could not be started: ${r.spawnError}`);
    const killed = r.timedOut || callerAborted || stoppedByUs;
    const guestSpoke = lines.some((l) => l.trim() !== '');
    if (!guestSpoke && !killed && r.exitCode !== 0) {
      const why = stderr.filter((l) => l.trim()).at(-1) ?? '(no error output)';
      return finish(serial, undefined, `${binary} exited with status ${r.exitCode ?? r.signal} before any guest output: ${why}`);
    }
    // The variant's own expectations (Secure Boot variants: the secureboot check and the kernel's report) come from its data.
    const want = variantExpectations(variant, opts.expectedChecks);
    const c = classifyBoot({
      log: lines.join('\n'),
      lineTimesMs: times,
      expectedChecks: want.checks,
      expectedLog: want.log,
      timedOut: r.timedOut || callerAborted,
    });
    // A QEMU error after guest output still explains a guest that stopped talking.
    if (c.verdict === 'FAIL' && !killed && r.exitCode !== 0 && (c.reason === 'boot-marker-missing' || c.reason === 'boot-no-console')) {
      const why = stderr.filter((l) => l.trim()).at(-1);
      c.message += ` (qemu exit status ${r.exitCode ?? r.signal}${why ? `: ${why}` : ''})`;
    }
    if (callerAborted && c.verdict === 'TIMEOUT') c.message = `aborted: ${c.message}`;
    return finish(serial, c);
  } finally {
    await scratch.cleanup();
  }
}
