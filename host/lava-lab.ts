/**
 * Board farms: ClawOS's boots as LAVA jobs.
 *  - export: one job per boot variant of each arch's machine (host/lava-job.ts),
 *    for an ISO a verified bundle vouches for (the check `flash` makes), unless
 *    the caller allows an unverified one;
 *  - run: each exported job under the real `lava-run` (Debian lava-dispatcher,
 *    no server) against a device description rendered from the same machine
 *    data; a job that does not PASS is run again before it counts;
 *  - ingest: a job's definition and LAVA log (what `run` leaves, or what a LAVA
 *    server gives: `lavacli jobs definition ID`, `lavacli jobs logs --raw ID`)
 *    judged (host/lava-results.ts), bound to the ISO's sha256, and appended to
 *    the vault as boot-verdict events whose `source` says which lab ran them.
 */
import { mkdir, readFile, readdir, stat, writeFile, copyFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { InfraError, UserError } from '../lib/errors.js';
import { sha256File } from '../lib/hash.js';
import { run as runProcess, type Runner } from '../lib/proc.js';
import { writeJsonAtomic } from '../lib/atomic-write.js';
import type { ArchSpec } from '../pipeline/catalog/arch.js';
import { findAccelerator, loadMachine, secureBootNotConfigured, selectVariants, variantExpectations, type QemuMachine } from '../qemu/machine.js';
import { loadExpectedChecks, lockMachineFirmware } from '../pipeline/boot/guest-boot.js';
import { RunVault } from '../vault/run-vault.js';
import type { LavaSource } from '../vault/event-payloads.js';
import { latestBundle, bundlesDir } from '../vault/release-bundle.js';
import { vouchForIso } from './flash.js';
import { deviceFileName, jobFileName, jobYaml, renderLavaDevice, renderLavaJob, type LavaJob } from './lava-job.js';
import { jobBinding, judgeLava, parseLavaLog, type JobBinding, type LavaJudgement } from './lava-results.js';

/** The file names a results folder holds (what `lava run` writes; what to save from a server). */
export const RESULT_FILES = { job: 'job.yaml', log: 'lava-log.yaml', device: 'device.yaml', jobId: 'job-id' } as const;

/** The accelerator a job asks for: the one every host can run (no device, no host restriction). */
export function portableAccelerator(m: QemuMachine) {
  const a = [...m.accelerators].reverse().find((x) => !x.device && !x.host_arches);
  if (!a) throw new UserError(`qemu/${m.arch}.yaml: no accelerator that runs on any host (TCG) for a LAVA job`);
  return a;
}

export interface ExportedJob {
  arch: string;
  variant: string;
  file: string;
  device_file: string;
  iso: string;
  iso_sha256: string;
  vouched_by: string;
  /** What the variant expects on top of the arch's checks (qemu/<arch>.yaml expect_checks, expect_log). */
  variant_expects: { checks: string[]; log: string[] };
}

export interface LavaExportOptions {
  repoRoot: string;
  buildDir: string;
  arches: ArchSpec[];
  outDir: string;
  /** One arch only: the ISO to export jobs for (default: the build's, G-05's output). */
  iso?: string;
  /** The URL a lab downloads the ISO from; {arch} and {file} are filled in (default file://<the ISO>). */
  isoUrl?: string;
  allowUnverified?: boolean;
  bundle?: string;
  trust?: string;
  generator: string;
  log?: (s: string) => void;
  /** sha256 of the certificate the ISO's UKI is signed with (the key dir's Secure Boot key, as G-06 judges it). */
  secureBootCert?: string;
  /** `--firmware`: a variant name or a firmware kind (selectVariants); default every variant. */
  firmware?: string;
}

/** The build's ISO of an arch: G-05's `.iso` output (tasks/G-05.yaml), with {arch} filled in. */
export async function buildIso(repoRoot: string, buildDir: string, arch: string): Promise<string> {
  const text = await readFile(join(repoRoot, 'tasks', 'G-05.yaml'), 'utf8');
  const out = /^\s*-\s*(\S+\.iso)\s*$/m.exec(text);
  if (!out) throw new UserError('tasks/G-05.yaml names no .iso output');
  return join(buildDir, out[1]!.replaceAll('{arch}', arch));
}

/** What vouches for the ISO: a verified bundle (the newest of the build unless given), or nothing when allowed. */
async function vouch(o: LavaExportOptions, iso: string, sha: string): Promise<string> {
  const bundle = o.bundle ?? (await latestBundle(o.buildDir).then((id) => (id ? join(bundlesDir(o.buildDir), id) : undefined)));
  const refuse = (why: string): string => {
    if (o.allowUnverified) return `unverified (--allow-unverified): ${why}`;
    throw new LavaRefusal(`${why}; export refuses an ISO no verified bundle vouches for (--allow-unverified exports it anyway, and the jobs say so)`);
  };
  if (!o.trust) return refuse(`no --trust keys.json given to verify ${bundle ? `bundle ${bundle}` : 'a bundle'} with`);
  if (!bundle) return refuse(`no bundle in ${bundlesDir(o.buildDir)} and no --bundle given`);
  const v = await vouchForIso({ bundle, trust: o.trust, buildDir: o.buildDir }, iso, sha);
  if (!v.ok) return refuse(v.message);
  return v.vouches.map((x) => x.detail).join('; ');
}

/** Export refused an ISO (exit 1, as flash does for an ISO nothing vouches for). */
export class LavaRefusal extends Error {
  override readonly name = 'LavaRefusal';
}

export async function exportLavaJobs(o: LavaExportOptions): Promise<ExportedJob[]> {
  if (o.iso && o.arches.length !== 1) throw new UserError('--iso goes with exactly one --arch');
  await mkdir(o.outDir, { recursive: true });
  const jobs: ExportedJob[] = [];
  for (const arch of o.arches) {
    const iso = resolve(o.iso ?? (await buildIso(o.repoRoot, o.buildDir, arch.name)));
    const st = await stat(iso).catch(() => null);
    if (!st?.isFile()) throw new UserError(`${arch.name}: no ISO at ${iso}`, o.iso ? undefined : `build it first (clawos-build all), or give --iso FILE with --arch ${arch.name}`);
    const sha = await sha256File(iso);
    const vouchedBy = await vouch(o, iso, sha);
    const url = (o.isoUrl ?? `file://${iso}`).replaceAll('{arch}', arch.name).replaceAll('{file}', basename(iso));
    // The firmware the lock pins, as the build's own boots use it.
    const machine = await lockMachineFirmware(
      { run: (a, opts) => runProcess(a, opts), cacheDir: join(o.buildDir, 'cache'), log: () => {}, repoRoot: o.repoRoot },
      arch,
      await loadMachine(o.repoRoot, arch.qemu),
    );
    const accel = portableAccelerator(machine);
    const expected = await loadExpectedChecks(join(o.repoRoot, 'buildroot-external/board/clawos/checks.yaml'), arch.name, arch.guest as unknown as Record<string, unknown>);
    for (const variant of selectVariants(machine, o.firmware)) {
      // G-06's rule: a Secure Boot variant whose VARS do not enrol the UKI's certificate would only be refused.
      const why = secureBootNotConfigured(variant, o.secureBootCert);
      if (why) {
        o.log?.(`${arch.name} ${why}; no LAVA job`);
        continue;
      }
      const want = variantExpectations(variant, expected);
      const firmware: Record<string, { url: string; sha256: string }> = {};
      for (const f of variant.firmware) firmware[f.name] = { url: `file://${f.path}`, sha256: await sha256File(f.path) };
      const job = renderLavaJob({ machine, variant, debianArch: arch.debian_arch, accel, iso: { url, sha256: sha, vouched_by: vouchedBy }, firmware, expectedChecks: want.checks, generator: o.generator });
      const file = join(o.outDir, jobFileName(arch.name, variant.name));
      await writeFile(file, jobYaml(job, `LAVA job: ClawOS ${arch.name} ${variant.name}, written by ${o.generator} (clawos-build lava export)`));
      const deviceFile = join(o.outDir, deviceFileName(arch.name, variant.name));
      await writeFile(deviceFile, jobYaml(renderLavaDevice({ machine, variant, debianArch: arch.debian_arch, accel }), `lava-run device description for ${arch.name} ${variant.name} (a lab uses its own qemu device instead)`));
      jobs.push({ arch: arch.name, variant: variant.name, file, device_file: deviceFile, iso, iso_sha256: sha, vouched_by: vouchedBy, variant_expects: { checks: variant.expect_checks ?? [], log: want.log } });
      o.log?.(`${arch.name} ${variant.name}: ${relative(process.cwd(), file) || file} (ISO sha256 ${sha.slice(0, 12)}…, ${vouchedBy})`);
    }
  }
  return jobs;
}

// ------------------------------------------------------------------ run

export interface LavaRunAttempt {
  arch: string;
  variant: string;
  attempt: number;
  /** The results folder: job.yaml, device.yaml, lava-log.yaml, lava/ (lava-run's output dir). */
  dir: string;
  exit_code: number | null;
  wall_ms: number;
  judgement: LavaJudgement;
  /** Wall time minus the boot's span (QEMU start to the monitor's end): what LAVA adds around the boot. */
  overhead_ms: number | null;
}

export interface LavaRunOptions {
  jobs: ExportedJob[];
  resultsDir: string;
  /** Runs of a job beyond the first when it does not PASS (default 1). */
  retries: number;
  expectedChecks: (arch: string) => Promise<readonly string[]>;
  run?: Runner;
  /** lava-run's program (tests may point elsewhere). */
  lavaRun?: string;
  log?: (s: string) => void;
  signal?: AbortSignal;
}

/** lava-run keeps a job's files in /var/lib/lava/dispatcher/tmp/<job-id>: an id no other job there uses. */
async function freeJobId(): Promise<string> {
  for (;;) {
    const id = String(100000 + Math.floor(Math.random() * 899999999));
    if (!(await stat(join('/var/lib/lava/dispatcher/tmp', id)).catch(() => null))) return id;
  }
}

export async function runLavaJobs(o: LavaRunOptions): Promise<LavaRunAttempt[]> {
  const run = o.run ?? ((a, opts) => runProcess(a, opts));
  const lavaRun = o.lavaRun ?? 'lava-run';
  if (process.getuid?.() !== 0) throw new InfraError('lava-run must run as root (it creates loop devices and /var/lib/lava/dispatcher/tmp/<job-id>)', 'run clawos-build lava run as root');
  const out: LavaRunAttempt[] = [];
  for (const j of o.jobs) {
    for (let attempt = 1; attempt <= 1 + o.retries; attempt++) {
      if (o.signal?.aborted) return out;
      const dir = join(o.resultsDir, `${j.arch}-${j.variant}`, `attempt-${attempt}`);
      await mkdir(dir, { recursive: true });
      await copyFile(j.file, join(dir, RESULT_FILES.job));
      await copyFile(j.device_file, join(dir, RESULT_FILES.device));
      const id = await freeJobId();
      await writeFile(join(dir, RESULT_FILES.jobId), `${id}\n`);
      const logLines: string[] = [];
      const started = Date.now();
      const r = await run([lavaRun, '--job-id', id, '--output-dir', join(dir, 'lava'), '--device', join(dir, RESULT_FILES.device), join(dir, RESULT_FILES.job)], {
        captureStdout: false,
        tailLines: 0,
        signal: o.signal,
        // The YAML log is on stderr: keep every line of it.
        sink: (stream, line) => {
          if (stream === 'stderr') logLines.push(line);
        },
      });
      const wall = Date.now() - started;
      await writeFile(join(dir, RESULT_FILES.log), logLines.join('\n') + '\n');
      if (r.spawnError) throw new InfraError(`${lavaRun} could not be started: ${r.spawnError}`, 'apt-get install lava-dispatcher (it is in specs/host-packages.txt, so bin/bootstrap installs it)');
      const base = await o.expectedChecks(j.arch);
      const judgement = await judgeResults(dir, j.iso_sha256, [...base, ...j.variant_expects.checks.filter((n) => !base.includes(n))], j.variant_expects.log);
      const span = bootSpan(await readFile(join(dir, RESULT_FILES.log), 'utf8'));
      const a: LavaRunAttempt = { arch: j.arch, variant: j.variant, attempt, dir, exit_code: r.exitCode, wall_ms: wall, judgement, overhead_ms: span === null ? null : Math.max(0, wall - span) };
      out.push(a);
      o.log?.(`${j.arch} ${j.variant} attempt ${attempt}: ${judgement.verdict}${judgement.reason ? ` [${judgement.reason}]` : ''} in ${(wall / 1000).toFixed(1)} s (lava-run exit ${r.exitCode}; LAVA job ${judgement.lava_state})${judgement.verdict === 'PASS' ? '' : `: ${judgement.message}`}`);
      if (judgement.verdict === 'PASS') break;
    }
  }
  return out;
}

/**
 * ms the guest ran under LAVA: from the log's "Boot command:" line (QEMU started)
 * to the monitor's end (or the last console line). lava-run's wall time minus
 * this is LAVA's own cost per job (validation, deploy copies, finalize, start-up).
 */
export function bootSpan(logText: string): number | null {
  let start: number | null = null;
  let monitorEnd: number | null = null;
  let lastTarget: number | null = null;
  for (const raw of logText.split('\n')) {
    const m = /^(?:- )?\{"dt": "([^"]+)", "lvl": "([a-z]+)", "msg": (.*)\}$/.exec(raw);
    if (!m) continue;
    const t = Date.parse(`${m[1]}Z`);
    if (start === null && m[2] === 'info' && m[3]!.startsWith('"Boot command:')) start = t;
    else if (start !== null && m[2] === 'results' && m[3]!.includes('"case": "lava-test-monitor"')) monitorEnd = t;
    else if (start !== null && monitorEnd === null && m[2] === 'target') lastTarget = t;
  }
  const end = monitorEnd ?? lastTarget;
  return start !== null && end !== null ? end - start : null;
}

async function readResults(dir: string): Promise<{ binding: JobBinding; logText: string; jobText: string; jobId: string }> {
  const jobPath = join(dir, RESULT_FILES.job);
  const logPath = join(dir, RESULT_FILES.log);
  const jobText = await readFile(jobPath, 'utf8').catch(() => {
    throw new UserError(`${dir}: no ${RESULT_FILES.job} (the job definition clawos-build lava export wrote)`, `a results folder holds ${RESULT_FILES.job} and ${RESULT_FILES.log}; from a LAVA server: lavacli jobs definition ID > ${RESULT_FILES.job}; lavacli jobs logs --raw ID > ${RESULT_FILES.log}`);
  });
  const logText = await readFile(logPath, 'utf8').catch(() => {
    throw new UserError(`${dir}: no ${RESULT_FILES.log} (LAVA's job log)`, `from a LAVA server: lavacli jobs logs --raw ID > ${join(dir, RESULT_FILES.log)}`);
  });
  const binding = jobBinding(jobText, jobPath);
  if ('problem' in binding) throw new UserError(binding.problem);
  // lava run writes the id it gave lava-run; a server's results folder is named after its job.
  const jobId = (await readFile(join(dir, RESULT_FILES.jobId), 'utf8').catch(() => basename(resolve(dir)))).trim();
  return { binding, logText, jobText, jobId };
}

export async function judgeResults(dir: string, isoSha256: string, expectedChecks: readonly string[], expectedLog: readonly string[] = []): Promise<LavaJudgement> {
  const r = await readResults(dir);
  return judgeLava({ log: parseLavaLog(r.logText), binding: r.binding, isoSha256, expectedChecks, expectedLog });
}

// ------------------------------------------------------------------ ingest

export interface IngestItem {
  dir: string;
  binding: JobBinding;
  judgement: LavaJudgement;
  attempt: number;
  /** Not appended: the results are not for this ISO. */
  refused?: string;
}

export interface LavaIngestOptions {
  repoRoot: string;
  buildDir: string;
  /** Results folders, in order (a retried job's attempts in the order they ran). */
  dirs: string[];
  /** The ISO the results must be for; default: the build's ISO of the job's arch. */
  iso?: string;
  /** Or its sha256 (the ISO need not be here: a lab's results for a released ISO). */
  isoSha256?: string;
  lab: string;
  arches: Map<string, ArchSpec>;
  generator: string;
  now?: () => Date;
}

export function defaultLab(): string {
  return `lava-run@${hostname()}`;
}

export interface IngestResult {
  run_id: string | null;
  items: IngestItem[];
}

/** Judge each results folder and append the verdicts to the vault as one run (command: lava ingest). */
export async function ingestLavaResults(o: LavaIngestOptions): Promise<IngestResult> {
  const items: (IngestItem & { jobText: string; logText: string; jobId: string; machine: QemuMachine })[] = [];
  const attempts = new Map<string, number>();
  for (const dir of o.dirs) {
    const r = await readResults(dir);
    const arch = o.arches.get(r.binding.arch);
    if (!arch) throw new UserError(`${dir}: the job is for arch ${r.binding.arch}, which this build does not know`);
    const iso = resolve(o.iso ?? (await buildIso(o.repoRoot, o.buildDir, arch.name)));
    const isoSha =
      o.isoSha256 ??
      (await sha256File(iso).catch(() => {
        throw new UserError(`${dir}: no ISO at ${iso} to bind the results to`, 'give --iso FILE (the ISO the jobs were exported for) or --sha256 HEX');
      }));
    const expected = await loadExpectedChecks(join(o.repoRoot, 'buildroot-external/board/clawos/checks.yaml'), arch.name, arch.guest as unknown as Record<string, unknown>);
    const machine = await loadMachine(o.repoRoot, arch.qemu);
    // The variant's own expectations (a Secure Boot variant: its check and the kernel's report), as the boot lab judges them.
    const variant = machine.variants.find((v) => v.name === r.binding.variant);
    const want = variant ? variantExpectations(variant, expected) : { checks: expected, log: [] };
    const judgement = judgeLava({ log: parseLavaLog(r.logText), binding: r.binding, isoSha256: isoSha, expectedChecks: want.checks, expectedLog: want.log });
    const key = `${r.binding.arch} ${r.binding.variant}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    items.push({
      dir,
      binding: r.binding,
      judgement,
      attempt,
      jobText: r.jobText,
      logText: r.logText,
      jobId: r.jobId,
      machine,
      ...(judgement.reason === 'lava-other-iso' ? { refused: judgement.message } : {}),
    });
  }
  const kept = items.filter((i) => !i.refused);
  if (!kept.length) return { run_id: null, items: items.map(strip) };
  const vault = await RunVault.open(o.buildDir, { now: o.now });
  try {
    await vault.append('run-start', { command: 'lava ingest', clawos_version: o.generator, arches: [...new Set(kept.map((i) => i.binding.arch))] });
    for (const [n, i] of kept.entries()) {
      // The evidence, kept in the build dir and the content store: the job, LAVA's log, the console, the verdict.
      const rel = join('lava', vault.runId, `${String(n + 1).padStart(2, '0')}-${i.binding.arch}-${i.binding.variant}`);
      const abs = join(o.buildDir, rel);
      await mkdir(abs, { recursive: true });
      await writeFile(join(abs, RESULT_FILES.job), i.jobText);
      await writeFile(join(abs, RESULT_FILES.log), i.logText);
      const consoleText = parseLavaLog(i.logText).console.map((c) => c.text).join('\n') + '\n';
      await writeFile(join(abs, 'serial.log'), consoleText);
      const job = await vault.store(join(rel, RESULT_FILES.job));
      const log = await vault.store(join(rel, RESULT_FILES.log));
      const serial = await vault.store(join(rel, 'serial.log'));
      const j = i.judgement;
      const source: LavaSource = {
        kind: 'lava',
        lab: o.lab,
        job_id: i.jobId,
        job_name: i.binding.job_name,
        device_type: i.binding.device_type,
        device_kind: i.binding.device_type === i.machine.lava?.device_type ? 'emulated' : 'hardware',
        lava_state: j.lava_state,
        attempt: i.attempt,
        job: strip2(job),
        log: strip2(log),
        checks: j.checks,
        missing_checks: j.missing_checks,
        marker: j.marker,
        console_verdict: j.console.verdict,
      };
      await writeJsonAtomic(join(abs, 'verdict.json'), { ...j, source: { ...source, job: source.job.path, log: source.log.path } });
      const record = await vault.store(join(rel, 'verdict.json'));
      await vault.append('boot-verdict', {
        // Evidence for the task that boots this arch: G-06 on an emulated device, G-07 on hardware.
        task: source.device_kind === 'hardware' ? 'G-07' : `G-06@${i.binding.arch}`,
        arch: i.binding.arch,
        variant: i.binding.variant,
        verdict: j.verdict,
        reason: j.reason,
        stage: j.console.stage,
        stage_ms: j.console.stageMs,
        message: j.message,
        accel: null,
        duration_ms: j.marker_ms,
        serial_log: strip2(serial),
        record: strip2(record),
        iso_sha256: i.binding.iso_sha256,
        source,
      });
    }
    const bad = kept.filter((i) => i.judgement.verdict !== 'PASS').length;
    await vault.append('run-end', { status: bad ? 'failed' : 'passed' });
  } finally {
    await vault.close();
  }
  return { run_id: vault.runId, items: items.map(strip) };
}

function strip(i: IngestItem & { jobText?: string; logText?: string; machine?: QemuMachine }): IngestItem {
  return { dir: i.dir, binding: i.binding, judgement: i.judgement, attempt: i.attempt, ...(i.refused ? { refused: i.refused } : {}) };
}

function strip2(f: { path: string; sha256: string; size: number; store: string }) {
  return { path: f.path, sha256: f.sha256, size: f.size, store: f.store };
}

/** Results folders under DIR: DIR itself when it holds a job, else every folder below that does. */
export async function findResultDirs(dir: string): Promise<string[]> {
  const has = async (d: string) => !!(await stat(join(d, RESULT_FILES.job)).catch(() => null));
  if (await has(dir)) return [dir];
  const out: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > 3) return;
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (await has(p)) out.push(p);
      else await walk(p, depth + 1);
    }
  };
  await walk(dir, 0);
  return out;
}

export type { LavaJob };
