/**
 * Which accelerator to boot with. KVM is only trusted after a short real boot
 * prints kernel output: /dev/kvm can exist on a host whose KVM hangs every guest
 * (nested virtualisation without VMX), and a hung boot costs the full timeout.
 * The decision is memoised for the process and, optionally, cached in a file
 * keyed by the kernel's boot_id (the host's KVM cannot change without a reboot).
 */
import { access, constants, mkdir, readFile } from 'node:fs/promises';
import { machine as hostMachine } from 'node:os';
import { dirname } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { run as procRun, type LineSink } from '../lib/proc.js';
import { writeJsonAtomic } from '../lib/atomic-write.js';
import { stageOfLine, stripAnsi, STAGES } from './classify-boot.js';
import { findVariant, missingFirmware, prepareBoot, type Accelerator, type BootMedia, type QemuMachine } from './machine.js';
import type { Runner } from './boot.js';

export interface AccelDecision {
  accel: string;
  /** One line saying why (becomes accel_note in boot records). */
  note: string;
}

export interface ChooseAccelOptions {
  machine: QemuMachine;
  /** What the probe boots: an ISO with a variant (default: the first), or a kernel. */
  probe: { variant?: string; media: BootMedia };
  binary?: string;
  runner?: Runner;
  sink?: LineSink;
  signal?: AbortSignal;
  env?: Record<string, string | undefined>;
  /** uname -m of the host; defaults to os.machine(). */
  hostArch?: string;
  /** Overrides the accelerators' probe_timeout_s. */
  probeTimeoutS?: number;
  /** JSON file caching decisions for this host boot (e.g. <cache>/qemu-accel.json). */
  cacheFile?: string;
}

const memo = new Map<string, Promise<AccelDecision>>();

/** Forget memoised decisions (tests). */
export function resetAccelMemo(): void {
  memo.clear();
}

const BOOT_ID = '/proc/sys/kernel/random/boot_id';

async function bootId(): Promise<string | null> {
  try {
    return (await readFile(BOOT_ID, 'utf8')).trim();
  } catch {
    return null;
  }
}

interface CacheFile {
  boot_id: string;
  decisions: Record<string, AccelDecision>;
}

async function readCache(file: string, id: string): Promise<CacheFile> {
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as CacheFile;
    if (c.boot_id === id && c.decisions && typeof c.decisions === 'object') return c;
  } catch {
    /* absent or unreadable: start over */
  }
  return { boot_id: id, decisions: {} };
}

export async function chooseAccelerator(opts: ChooseAccelOptions): Promise<AccelDecision> {
  const binary = opts.binary ?? opts.machine.binary;
  const key = [binary, opts.machine.arch, opts.hostArch ?? hostMachine(), ...opts.machine.accelerators.map((a) => `${a.name}:${a.cpu}:${a.device ?? ''}`)].join('|');
  let p = memo.get(key);
  if (!p) {
    p = decideCached(key, opts, binary);
    memo.set(key, p);
    // A failed decision (a thrown bug, an abort) must not stick for the whole run.
    p.catch(() => memo.delete(key));
  }
  return p;
}

async function decideCached(key: string, opts: ChooseAccelOptions, binary: string): Promise<AccelDecision> {
  const id = opts.cacheFile ? await bootId() : null;
  if (opts.cacheFile && id) {
    const c = await readCache(opts.cacheFile, id);
    const hit = c.decisions[key];
    if (hit) return { accel: hit.accel, note: `${hit.note} (cached for this host boot)` };
  }
  const d = await decide(opts, binary);
  if (opts.cacheFile && id && !opts.signal?.aborted) {
    const c = await readCache(opts.cacheFile, id);
    c.decisions[key] = d;
    await writeJsonAtomic(opts.cacheFile, c).catch(() => {});
  }
  return d;
}

async function decide(opts: ChooseAccelOptions, binary: string): Promise<AccelDecision> {
  const accels = opts.machine.accelerators;
  const host = opts.hostArch ?? hostMachine();
  const notes: string[] = [];
  for (const [i, a] of accels.entries()) {
    const next = accels[i + 1];
    const fallback = next ? `; using ${next.name.toUpperCase()}` : '';
    const label = a.name.toUpperCase();
    const refusal = await precondition(a, host);
    if (refusal) {
      notes.push(`${label} not used: ${refusal}${fallback}`);
      continue;
    }
    if (a.probe_timeout_s === undefined) {
      // The notes so far already end in "using <this one>".
      return { accel: a.name, note: notes.length ? notes.join('; ') : label };
    }
    const probe = await probeAccel(a, opts, binary);
    if (probe.ok) {
      notes.push(`${label} probe reached kernel output in ${(probe.ms / 1000).toFixed(1)} s`);
      return { accel: a.name, note: notes.join('; ') };
    }
    notes.push(`${label} probe failed: ${probe.why}${fallback}`);
  }
  // Nothing qualified: the last one is the one that needs no hardware.
  const last = accels[accels.length - 1]!;
  return { accel: last.name, note: notes.join('; ') };
}

/** Why an accelerator cannot be used on this host without even trying it, or null. */
async function precondition(a: Accelerator, host: string): Promise<string | null> {
  if (a.host_arches && !a.host_arches.includes(host)) {
    return `host is ${host}, ${a.name} needs ${a.host_arches.join(' or ')}`;
  }
  if (a.device) {
    try {
      await access(a.device, constants.F_OK);
    } catch {
      return `${a.device} missing`;
    }
    try {
      await access(a.device, constants.R_OK | constants.W_OK);
    } catch {
      return `${a.device} not accessible`;
    }
  }
  return null;
}

async function probeAccel(
  a: Accelerator,
  opts: ChooseAccelOptions,
  binary: string,
): Promise<{ ok: true; ms: number } | { ok: false; why: string }> {
  const m = opts.machine;
  const variant = findVariant(m, opts.probe.variant ?? m.variants[0]!.name);
  const missing = await missingFirmware(variant);
  if (missing.length) return { ok: false, why: `firmware missing: ${missing.join(', ')}` };
  const limitS = opts.probeTimeoutS ?? a.probe_timeout_s ?? 10;
  // Beside the decision cache when there is one: a sandboxed QEMU has a private /tmp (the step declares the cache writable).
  if (opts.cacheFile) await mkdir(dirname(opts.cacheFile), { recursive: true });
  const scratch = await tmpDir({ prefix: 'clawos-kvm-probe-', ...(opts.cacheFile ? { tmpdir: dirname(opts.cacheFile) } : {}), unsafeCleanup: true });
  try {
    const { argv } = await prepareBoot({ machine: m, variant, accel: a, media: opts.probe.media, scratchDir: scratch.path, binary });
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let reachedMs: number | null = null;
    const lastErr: string[] = [];
    const t0 = Date.now();
    const sink: LineSink = (stream, line) => {
      opts.sink?.(stream, `[${a.name} probe] ${line}`);
      if (stream === 'stderr' && line.trim()) lastErr.splice(0, lastErr.length, line.trim());
      // Kernel output proves the accelerator runs guest code; the probe has done its job.
      if (stream === 'stdout' && reachedMs === null && STAGES.indexOf(stageOfLine(stripAnsi(line))) >= STAGES.indexOf('kernel')) {
        reachedMs = Date.now() - t0;
        stop.abort();
      }
    };
    const runner = opts.runner ?? procRun;
    const r = await runner(argv, { timeoutMs: limitS * 1000, killGraceMs: 2000, signal: stop.signal, sink, env: opts.env });
    opts.signal?.removeEventListener('abort', onAbort);
    if (reachedMs !== null) return { ok: true, ms: reachedMs };
    if (r.spawnError) return { ok: false, why: r.spawnError };
    if (r.timedOut) return { ok: false, why: `no kernel output in ${limitS} s` };
    if (r.aborted) return { ok: false, why: 'aborted' };
    return { ok: false, why: `QEMU exited with status ${r.exitCode ?? r.signal} before kernel output${lastErr[0] ? `: ${lastErr[0]}` : ''}` };
  } finally {
    await scratch.cleanup();
  }
}
