/**
 * The CI boot lab behind `clawos-build boot --repeat N --jobs J`: boot one ISO
 * many times with bounded concurrency, keep every boot's record and serial log
 * under <build>/boots/<stamp>/, and sum it up: verdict counts, stage-time
 * percentiles, flaky boots (same ISO, different verdicts), one sample log per
 * failure bucket, and JUnit XML for CI systems. The summary and the XML are
 * pure functions of the recorded boots, so they are tested on fixed input.
 */
import { readFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../lib/atomic-write.js';
import { bootIso, type BootRecord } from '../qemu/boot.js';
import { STAGES, stripAnsi, type BootFailureReason, type BootVerdict, type ReachedStage } from '../qemu/classify-boot.js';
import type { AccelDecision } from '../qemu/kvm-probe.js';
import { bootTimeout, findAccelerator, type BootTimeout, type BootVariant, type QemuMachine } from '../qemu/machine.js';
import { formatDuration } from '../lib/format.js';

export const VERDICTS: readonly BootVerdict[] = ['PASS', 'FAIL', 'TIMEOUT', 'INFRA_ERROR'];
const REACHED: readonly ReachedStage[] = STAGES.filter((s): s is ReachedStage => s !== 'none');
/** Verdicts that are the guest's fault: --until-fail stops scheduling after one. INFRA_ERROR is the host's. */
export const STOPPING_VERDICTS: readonly BootVerdict[] = ['FAIL', 'TIMEOUT'];
/** Lines of serial log kept in a failure bucket's sample and in a JUnit failure. */
export const LOG_TAIL_LINES = 20;

export interface PlannedBoot {
  /** 1-based, in scheduling order. */
  index: number;
  /** Which repetition (1..repeat). */
  round: number;
  variant: BootVariant;
  /** Absolute directory of this boot's record and serial log. */
  dir: string;
}

export interface LabBoot {
  index: number;
  round: number;
  arch: string;
  variant: string;
  firmware_kind: string | null;
  /** Directory of the record, relative to the lab dir. */
  dir: string;
  /** null: not started (--until-fail stopped the lab, or it was interrupted). */
  record: BootRecord | null;
  /** Last lines of the serial log (escapes stripped), for non-PASS boots. */
  log_tail: string[];
}

export type LabEvent =
  | { type: 'start'; boot: PlannedBoot; running: number }
  | { type: 'finish'; boot: PlannedBoot; record: BootRecord; running: number; done: number; planned: number };

export interface LabOptions {
  machine: QemuMachine;
  variants: BootVariant[];
  /** Absolute path of the ISO. */
  iso: string;
  isoSha256: string;
  repeat: number;
  jobs: number;
  untilFail: boolean;
  /** The lab dir, <build>/boots/<stamp>. */
  labDir: string;
  expectedChecks: readonly string[];
  accel: AccelDecision;
  hostCpus: number;
  signal?: AbortSignal;
  onEvent?: (e: LabEvent) => void;
  /** Use this program instead of the machine's binary (tests: test/fakes/fake-qemu). */
  binary?: string;
  /** Extra environment for one boot's QEMU (tests pick the fake's serial log per boot). */
  envFor?: (b: PlannedBoot) => Record<string, string | undefined> | undefined;
  /** After the verdict line, how long QEMU may take to exit by itself (bootIso settleMs). */
  settleMs?: number;
}

export interface LabRun {
  arch: string;
  iso: string;
  iso_sha256: string;
  accel: string;
  accel_note: string;
  timeout: BootTimeout;
  jobs: number;
  repeat: number;
  until_fail: boolean;
  started_at: string;
  duration_ms: number;
  labDir: string;
  boots: LabBoot[];
  /** Set when --until-fail stopped scheduling. */
  stopped: { after_boot: number; verdict: BootVerdict; reason: BootFailureReason | null; in_flight: number } | null;
  interrupted: boolean;
}

/** Boots in order: round by round, each round every selected variant. */
export function planBoots(labDir: string, arch: string, variants: BootVariant[], repeat: number): PlannedBoot[] {
  const out: PlannedBoot[] = [];
  const width = Math.max(3, String(repeat).length);
  for (let round = 1; round <= repeat; round++) {
    for (const variant of variants) {
      out.push({ index: out.length + 1, round, variant, dir: join(labDir, arch, variant.name, String(round).padStart(width, '0')) });
    }
  }
  return out;
}

async function logTail(file: string, n = LOG_TAIL_LINES): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n').map((l) => stripAnsi(l.replace(/\r/g, '')).trimEnd());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n);
}

export async function runBootLab(o: LabOptions): Promise<LabRun> {
  const m = o.machine;
  const plan = planBoots(o.labDir, m.arch, o.variants, o.repeat);
  const accel = findAccelerator(m, o.accel.accel);
  const jobs = Math.max(1, Math.min(o.jobs, plan.length));
  const timeout = bootTimeout(m, accel, { concurrent: jobs, hostCpus: o.hostCpus });
  const startedAt = new Date();
  const records = new Map<number, BootRecord>();
  let stopped: LabRun['stopped'] = null;
  let next = 0;
  let running = 0;
  let done = 0;

  const worker = async (): Promise<void> => {
    for (;;) {
      if (stopped || o.signal?.aborted) return;
      const b = plan[next++];
      if (!b) return;
      running++;
      o.onEvent?.({ type: 'start', boot: b, running });
      const rec = await bootIso({
        machine: m,
        variant: b.variant.name,
        iso: o.iso,
        accel: accel.name,
        accelNote: o.accel.note,
        outDir: b.dir,
        expectedChecks: o.expectedChecks,
        timeoutS: timeout.seconds,
        signal: o.signal,
        binary: o.binary,
        env: o.envFor?.(b),
        settleMs: o.settleMs,
      });
      records.set(b.index, rec);
      running--;
      done++;
      // Boots already running finish; nothing new starts after a guest failure.
      if (o.untilFail && !stopped && STOPPING_VERDICTS.includes(rec.verdict)) stopped = { after_boot: b.index, verdict: rec.verdict, reason: rec.reason, in_flight: running };
      o.onEvent?.({ type: 'finish', boot: b, record: rec, running, done, planned: plan.length });
    }
  };
  await Promise.all(Array.from({ length: jobs }, () => worker()));

  const boots: LabBoot[] = [];
  for (const b of plan) {
    const record = records.get(b.index) ?? null;
    boots.push({
      index: b.index,
      round: b.round,
      arch: m.arch,
      variant: b.variant.name,
      firmware_kind: b.variant.firmware_kind ?? null,
      dir: relative(o.labDir, b.dir),
      record,
      log_tail: record && record.verdict !== 'PASS' ? await logTail(join(b.dir, record.serial_log)) : [],
    });
  }
  return {
    arch: m.arch,
    iso: o.iso,
    iso_sha256: o.isoSha256,
    accel: accel.name,
    accel_note: o.accel.note,
    timeout,
    jobs,
    repeat: o.repeat,
    until_fail: o.untilFail,
    started_at: startedAt.toISOString(),
    duration_ms: Date.now() - startedAt.getTime(),
    labDir: o.labDir,
    boots,
    stopped,
    interrupted: !!o.signal?.aborted,
  };
}

// ---------------------------------------------------------------- summary

export interface StageStats {
  /** Boots that reached the stage. */
  n: number;
  p50_ms: number;
  p95_ms: number;
  max_ms: number;
}

export interface GroupSummary {
  arch: string;
  variant: string;
  firmware_kind: string | null;
  counts: Record<BootVerdict, number>;
  not_started: number;
  /** Time from QEMU start to each stage's first console line, over the boots that reached it. */
  stages: Partial<Record<ReachedStage, StageStats>>;
  /** Wall time of the boots (QEMU start to record). */
  duration: StageStats | null;
}

export interface FlakyEntry {
  iso_sha256: string;
  arch: string;
  variant: string;
  verdicts: Partial<Record<BootVerdict, number>>;
  boots: number[];
}

export interface FailureBucket {
  verdict: BootVerdict;
  reason: BootFailureReason | null;
  count: number;
  boots: number[];
  sample: {
    boot: number;
    variant: string;
    round: number;
    stage: string;
    message: string;
    /** Relative to the lab dir. */
    record: string;
    serial_log: string;
    log_tail: string[];
  };
}

export interface LabSummary {
  format: 'clawos-boot-lab-summary@1';
  ok: boolean;
  arch: string;
  iso: { path: string; sha256: string };
  accel: string;
  accel_note: string;
  timeout_s: number;
  timeout_note: string;
  jobs: number;
  repeat: number;
  until_fail: boolean;
  started_at: string;
  duration_ms: number;
  planned: number;
  run: number;
  not_started: number;
  stopped_early: LabRun['stopped'];
  interrupted: boolean;
  counts: Record<BootVerdict, number>;
  groups: GroupSummary[];
  flaky: FlakyEntry[];
  failure_buckets: FailureBucket[];
  boots: {
    index: number;
    round: number;
    arch: string;
    variant: string;
    verdict: BootVerdict | 'NOT_STARTED';
    reason: BootFailureReason | null;
    stage: string | null;
    message: string;
    duration_ms: number | null;
    stage_ms: Partial<Record<ReachedStage, number | null>>;
    record: string | null;
    serial_log: string | null;
  }[];
}

const zeroCounts = (): Record<BootVerdict, number> => ({ PASS: 0, FAIL: 0, TIMEOUT: 0, INFRA_ERROR: 0 });

/** Nearest-rank percentile of an ascending list (p in 0..100]: the smallest value with at least p% of values at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) throw new Error('percentile of nothing');
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function stats(values: readonly number[]): StageStats | null {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50_ms: percentile(s, 50), p95_ms: percentile(s, 95), max_ms: s[s.length - 1]! };
}

export function summarizeLab(run: LabRun): LabSummary {
  const started = run.boots.filter((b): b is LabBoot & { record: BootRecord } => b.record !== null);
  const counts = zeroCounts();
  for (const b of started) counts[b.record.verdict]++;

  const groups: GroupSummary[] = [];
  for (const b of run.boots) {
    if (!groups.some((g) => g.arch === b.arch && g.variant === b.variant)) {
      groups.push({ arch: b.arch, variant: b.variant, firmware_kind: b.firmware_kind, counts: zeroCounts(), not_started: 0, stages: {}, duration: null });
    }
  }
  for (const g of groups) {
    const mine = run.boots.filter((b) => b.arch === g.arch && b.variant === g.variant);
    const ran = mine.filter((b) => b.record).map((b) => b.record!);
    g.not_started = mine.length - ran.length;
    for (const r of ran) g.counts[r.verdict]++;
    for (const s of REACHED) {
      const st = stats(ran.map((r) => r.stage_ms[s]).filter((v): v is number => v !== null && v !== undefined));
      if (st) g.stages[s] = st;
    }
    g.duration = stats(ran.map((r) => r.duration_ms));
  }

  // Flaky: the same ISO booted the same way gave more than one verdict.
  const flaky: FlakyEntry[] = [];
  for (const g of groups) {
    const mine = started.filter((b) => b.arch === g.arch && b.variant === g.variant);
    const verdicts: Partial<Record<BootVerdict, number>> = {};
    for (const b of mine) verdicts[b.record.verdict] = (verdicts[b.record.verdict] ?? 0) + 1;
    if (Object.keys(verdicts).length > 1) {
      flaky.push({ iso_sha256: run.iso_sha256, arch: g.arch, variant: g.variant, verdicts, boots: mine.map((b) => b.index) });
    }
  }

  const buckets: FailureBucket[] = [];
  for (const b of started) {
    const r = b.record;
    if (r.verdict === 'PASS') continue;
    let k = buckets.find((x) => x.verdict === r.verdict && x.reason === r.reason);
    if (!k) {
      k = {
        verdict: r.verdict,
        reason: r.reason,
        count: 0,
        boots: [],
        sample: {
          boot: b.index,
          variant: b.variant,
          round: b.round,
          stage: r.stage,
          message: r.message,
          record: join(b.dir, `${b.variant}.json`),
          serial_log: join(b.dir, r.serial_log),
          log_tail: b.log_tail,
        },
      };
      buckets.push(k);
    }
    k.count++;
    k.boots.push(b.index);
  }
  buckets.sort((a, b) => VERDICTS.indexOf(a.verdict) - VERDICTS.indexOf(b.verdict) || b.count - a.count || a.sample.boot - b.sample.boot);

  return {
    format: 'clawos-boot-lab-summary@1',
    ok: started.length === run.boots.length && started.every((b) => b.record.verdict === 'PASS'),
    arch: run.arch,
    iso: { path: run.iso, sha256: run.iso_sha256 },
    accel: run.accel,
    accel_note: run.accel_note,
    timeout_s: run.timeout.seconds,
    timeout_note: run.timeout.note,
    jobs: run.jobs,
    repeat: run.repeat,
    until_fail: run.until_fail,
    started_at: run.started_at,
    duration_ms: run.duration_ms,
    planned: run.boots.length,
    run: started.length,
    not_started: run.boots.length - started.length,
    stopped_early: run.stopped,
    interrupted: run.interrupted,
    counts,
    groups,
    flaky,
    failure_buckets: buckets,
    boots: run.boots.map((b) => ({
      index: b.index,
      round: b.round,
      arch: b.arch,
      variant: b.variant,
      verdict: b.record?.verdict ?? 'NOT_STARTED',
      reason: b.record?.reason ?? null,
      stage: b.record?.stage ?? null,
      message: b.record?.message ?? 'not started',
      duration_ms: b.record?.duration_ms ?? null,
      stage_ms: b.record?.stage_ms ?? {},
      record: b.record ? join(b.dir, `${b.variant}.json`) : null,
      serial_log: b.record ? join(b.dir, b.record.serial_log) : null,
    })),
  };
}

/** The exit code of a lab: 0 all PASS, 1 a guest failure (FAIL, TIMEOUT), 4 only host failures, 130 interrupted. */
export function labExitCode(s: LabSummary): number {
  if (s.interrupted) return 130;
  if (s.ok) return 0;
  return s.counts.FAIL || s.counts.TIMEOUT ? 1 : 4;
}

// ---------------------------------------------------------------- text

const short = (sha: string) => sha.slice(0, 12);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function verdictList(v: Partial<Record<BootVerdict, number>>): string {
  return VERDICTS.filter((k) => v[k]).map((k) => `${v[k]} ${k}`).join(', ');
}

function bootRefs(ids: number[]): string {
  const shown = ids.slice(0, 8).map((i) => `#${i}`).join(' ');
  return ids.length > 8 ? `${shown} …` : shown;
}

/** The human summary printed at the end of a lab (and asserted verbatim in tests). */
export function formatLabSummary(s: LabSummary): string {
  const out: string[] = [];
  out.push(
    `boot lab ${s.arch}: ${s.run} of ${plural(s.planned, 'boot')} run in ${formatDuration(s.duration_ms)}, ${s.jobs} at a time, ${s.accel} (timeout ${s.timeout_s} s each); ISO ${basename(s.iso.path)} sha256 ${short(s.iso.sha256)}`,
  );
  out.push(`verdicts: ${VERDICTS.map((v) => `${s.counts[v]} ${v}`).join(', ')}${s.not_started ? `, ${s.not_started} not started` : ''}`);
  const rows: string[][] = [];
  for (const g of s.groups) {
    let first = true;
    for (const st of REACHED) {
      const x = g.stages[st];
      if (!x) continue;
      rows.push([first ? `${g.arch}/${g.variant}` : '', st, String(x.n), formatDuration(x.p50_ms), formatDuration(x.p95_ms), formatDuration(x.max_ms)]);
      first = false;
    }
  }
  if (rows.length) {
    out.push('stage times from QEMU start (n = boots that reached the stage):');
    const head = ['boot', 'stage', 'n', 'p50', 'p95', 'max'];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => `  ${r.map((c, i) => (i === 2 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ')}`.trimEnd();
    out.push(line(head), ...rows.map(line));
  }
  if (s.flaky.length) {
    out.push('flaky (same ISO, same firmware, different verdicts):');
    for (const f of s.flaky) out.push(`  ${f.arch}/${f.variant} on ISO ${short(f.iso_sha256)}: ${verdictList(f.verdicts)} in ${plural(f.boots.length, 'boot')}`);
  } else if (s.run > 1) {
    out.push('flaky: none');
  }
  if (s.failure_buckets.length) {
    out.push('failure buckets (one sample log each):');
    for (const b of s.failure_buckets) {
      const x = b.sample;
      out.push(`  ${b.verdict}${b.reason ? ` ${b.reason}` : ''}: ${plural(b.count, 'boot')} (${bootRefs(b.boots)}); sample #${x.boot} ${s.arch}/${x.variant} at stage ${x.stage}: ${x.message}`);
      out.push(`    log: ${x.serial_log}`);
      for (const l of x.log_tail.slice(-5)) out.push(`    | ${l}`);
    }
  }
  if (s.stopped_early) {
    const inFlight = s.stopped_early.in_flight;
    out.push(
      `stopped early (--until-fail): boot #${s.stopped_early.after_boot} was ${s.stopped_early.verdict}${s.stopped_early.reason ? ` ${s.stopped_early.reason}` : ''}; ${plural(s.not_started, 'boot')} not started${
        inFlight > 0 ? `, ${plural(inFlight, 'boot')} already running finished` : ''
      }`,
    );
  }
  if (s.interrupted) out.push(`interrupted: ${plural(s.not_started, 'boot')} not started`);
  return out.join('\n') + '\n';
}

/** One line per finished boot, for the live output. */
export function formatBootLine(e: Extract<LabEvent, { type: 'finish' }>, describe: (r: BootRecord) => string): string {
  return `[${e.done}/${e.planned}] #${e.boot.index} round ${e.boot.round}: ${describe(e.record)}`;
}

// ---------------------------------------------------------------- JUnit

// XML 1.0 allows only these characters; serial consoles carry escapes and NULs.
const XML_INVALID = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

export function xmlText(s: string): string {
  return stripAnsi(s)
    .replace(XML_INVALID, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
}

export function xmlAttr(s: string): string {
  return xmlText(s).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\t/g, '&#9;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;');
}

const secs = (ms: number) => (ms / 1000).toFixed(3);
/** JUnit's timestamp has no zone; ours is UTC. */
const junitTime = (iso: string) => iso.replace(/\.\d+Z$|Z$/, '');

/** JUnit XML: one testsuite per arch/firmware variant, one testcase per boot. */
export function junitXml(s: LabSummary, tails: ReadonlyMap<number, string[]> = new Map()): string {
  const failures = s.counts.FAIL + s.counts.TIMEOUT;
  const errors = s.counts.INFRA_ERROR;
  const x: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  x.push(
    `<testsuites name="clawos-build boot lab ${xmlAttr(s.arch)}" tests="${s.planned}" failures="${failures}" errors="${errors}" skipped="${s.not_started}" time="${secs(s.duration_ms)}" timestamp="${junitTime(s.started_at)}">`,
  );
  for (const g of s.groups) {
    const mine = s.boots.filter((b) => b.arch === g.arch && b.variant === g.variant);
    const time = mine.reduce((a, b) => a + (b.duration_ms ?? 0), 0);
    x.push(
      `  <testsuite name="${xmlAttr(`${g.arch}/${g.variant}`)}" tests="${mine.length}" failures="${g.counts.FAIL + g.counts.TIMEOUT}" errors="${g.counts.INFRA_ERROR}" skipped="${g.not_started}" time="${secs(time)}" timestamp="${junitTime(s.started_at)}">`,
    );
    x.push('    <properties>');
    const props: [string, string][] = [
      ['iso', basename(s.iso.path)],
      ['iso_sha256', s.iso.sha256],
      ['firmware_kind', g.firmware_kind ?? ''],
      ['accel', s.accel],
      ['accel_note', s.accel_note],
      ['timeout_s', String(s.timeout_s)],
    ];
    for (const [k, v] of props) x.push(`      <property name="${k}" value="${xmlAttr(v)}"/>`);
    x.push('    </properties>');
    for (const b of mine) {
      const open = `    <testcase classname="${xmlAttr(`boot.${g.arch}.${g.variant}`)}" name="boot ${b.index} (round ${b.round})" time="${secs(b.duration_ms ?? 0)}"`;
      if (b.verdict === 'PASS') {
        x.push(`${open}/>`);
        continue;
      }
      x.push(`${open}>`);
      if (b.verdict === 'NOT_STARTED') {
        const why = s.stopped_early ? `not started: --until-fail stopped after boot ${s.stopped_early.after_boot}` : 'not started: interrupted';
        x.push(`      <skipped message="${xmlAttr(why)}"/>`);
      } else {
        const tag = b.verdict === 'INFRA_ERROR' ? 'error' : 'failure';
        const tail = tails.get(b.index) ?? [];
        const body = [`${b.verdict}${b.reason ? ` ${b.reason}` : ''} at stage ${b.stage}: ${b.message}`, `record: ${b.record}`, `serial log: ${b.serial_log}`];
        if (tail.length) body.push(`last ${tail.length} lines of the serial log:`, ...tail);
        x.push(`      <${tag} type="${xmlAttr(`${b.verdict}${b.reason ? ` ${b.reason}` : ''}`)}" message="${xmlAttr(b.message)}">${xmlText(body.join('\n'))}</${tag}>`);
      }
      x.push('    </testcase>');
    }
    x.push('  </testsuite>');
  }
  x.push('</testsuites>');
  return x.join('\n') + '\n';
}

/** Serial-log tails by boot index, for junitXml. */
export function tailsOf(run: LabRun): Map<number, string[]> {
  return new Map(run.boots.filter((b) => b.log_tail.length).map((b) => [b.index, b.log_tail]));
}

/** Write summary.json (and junit.xml into the lab dir, plus a copy at `junitFile` if given). */
export async function writeLabReports(run: LabRun, s: LabSummary, junitFile?: string): Promise<{ summary: string; junit: string }> {
  const summary = join(run.labDir, 'summary.json');
  const junit = join(run.labDir, 'junit.xml');
  const xml = junitXml(s, tailsOf(run));
  await writeJsonAtomic(summary, s);
  await writeFileAtomic(junit, xml);
  if (junitFile) await writeFileAtomic(junitFile, xml);
  return { summary, junit };
}
