/**
 * A LAVA job's results, judged the way the built-in boot lab judges a boot.
 * Input: the job definition clawos-build exported (its metadata binds it to an
 * ISO's sha256, arch and variant) and LAVA's job log, one JSON object per line
 * ({"dt", "lvl", "msg"}: what lava-run prints on stderr, and what a LAVA
 * server's raw log download holds as a YAML list, "- {…}" per line). From it:
 *  - the `results` lines: the test cases of the clawos-checks and clawos-boot
 *    suites (host/lava-job.ts MONITORS), the deploy's file-download (the sha256
 *    LAVA checked the ISO against), the monitor's own status and the job's;
 *  - the `target` and `feedback` lines: the serial console, which the boot
 *    classifier (qemu/classify-boot.ts) reads as it reads a boot lab's log.
 * The verdict: LAVA's job state first (an infrastructure error stays
 * INFRA_ERROR, never FAIL; a timeout is TIMEOUT), then the cases against the
 * expected checks (a check missing or failed, or no marker, is a FAIL), then the
 * classifier on the console (a panic or oops LAVA's patterns do not see is a
 * FAIL). A log without the job's end is truncated and never a PASS. Pure.
 */
import { parse as parseYaml } from 'yaml';
import { classifyBoot, type BootClassification, type BootFailureReason, type BootVerdict } from '../qemu/classify-boot.js';
import { CHECK_SUITE, MARKER_SUITE } from './lava-job.js';

/** Why a LAVA job is not a PASS, beyond the classifier's reasons. */
export type LavaFailureReason = BootFailureReason | 'lava-infra' | 'lava-log-truncated' | 'lava-job-error' | 'lava-other-iso';

export interface LavaLogLine {
  dt: string;
  lvl: string;
  msg: unknown;
}

export interface LavaCase {
  suite: string;
  /** LAVA's case id (lower-cased, non-word runs as `_`). */
  case: string;
  /** The id as the guest printed it (extra.test_case_id), e.g. module-sig. */
  name: string;
  result: string;
  extra: Record<string, unknown>;
}

export interface ParsedLavaLog {
  lines: number;
  /** Lines that are not a log record (a torn last line of a cut log, garbage). */
  unreadable: { line: number; text: string }[];
  cases: LavaCase[];
  /** The serial console: target and feedback lines, with ms since the first of them. */
  console: { text: string; ms: number }[];
  /** The job's own result (definition lava, case job), absent when the log was cut before the end. */
  job: { result: string; error_type?: string; error_msg?: string } | null;
  /** sha256 LAVA checked each deployed image against, by label. */
  downloads: Record<string, string>;
  /** Error lines (lvl error), in order. */
  errors: string[];
  started: string | null;
  ended: string | null;
}

function asRecord(v: unknown): Record<string, unknown> | null {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** One log record from a line: JSON (lava-run), or a YAML list item "- {…}" (a server's log download). */
function parseLine(raw: string): LavaLogLine | null {
  const text = raw.startsWith('- ') ? raw.slice(2) : raw;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    try {
      v = parseYaml(text);
    } catch {
      return null;
    }
  }
  const r = asRecord(v);
  if (!r || typeof r.dt !== 'string' || typeof r.lvl !== 'string' || !('msg' in r)) return null;
  return { dt: r.dt, lvl: r.lvl, msg: r.msg };
}

export function parseLavaLog(text: string): ParsedLavaLog {
  const out: ParsedLavaLog = { lines: 0, unreadable: [], cases: [], console: [], job: null, downloads: {}, errors: [], started: null, ended: null };
  const rawLines = text.split('\n');
  if (rawLines.at(-1) === '') rawLines.pop();
  let t0: number | null = null;
  // What LAVA typed into the console (poweroff at the end): its echo is not guest output.
  const typed = new Set<string>();
  for (const [i, raw] of rawLines.entries()) {
    if (!raw.trim()) continue;
    out.lines++;
    const l = parseLine(raw);
    if (!l) {
      out.unreadable.push({ line: i + 1, text: raw.length > 120 ? `${raw.slice(0, 119)}…` : raw });
      continue;
    }
    out.started ??= l.dt;
    out.ended = l.dt;
    if (l.lvl === 'input' && typeof l.msg === 'string') {
      typed.add(l.msg.trim());
    } else if ((l.lvl === 'target' || l.lvl === 'feedback') && !(typeof l.msg === 'string' && typed.has(l.msg.trim()))) {
      const ms = Date.parse(`${l.dt}Z`);
      t0 ??= ms;
      out.console.push({ text: typeof l.msg === 'string' ? l.msg : JSON.stringify(l.msg), ms: ms - t0 });
    } else if (l.lvl === 'error') {
      out.errors.push(typeof l.msg === 'string' ? l.msg : JSON.stringify(l.msg));
    } else if (l.lvl === 'results') {
      const m = asRecord(l.msg);
      if (!m) continue;
      const suite = String(m.definition ?? '');
      const kase = String(m.case ?? '');
      const extra = asRecord(m.extra) ?? {};
      if (suite === 'lava' && kase === 'job') {
        out.job = {
          result: String(m.result ?? ''),
          ...(typeof m.error_type === 'string' ? { error_type: m.error_type } : {}),
          ...(typeof m.error_msg === 'string' ? { error_msg: m.error_msg } : {}),
        };
      }
      if (suite === 'lava' && kase === 'file-download' && typeof extra.label === 'string' && typeof extra.sha256sum === 'string') {
        out.downloads[extra.label] = extra.sha256sum;
      }
      out.cases.push({ suite, case: kase, name: typeof extra.test_case_id === 'string' ? extra.test_case_id : kase, result: String(m.result ?? ''), extra });
    }
  }
  return out;
}

/** What the exported job says about itself (host/lava-job.ts metadata). */
export interface JobBinding {
  job_name: string;
  device_type: string;
  arch: string;
  variant: string;
  iso_sha256: string;
  expected_checks: string[];
}

export function jobBinding(jobText: string, shown: string): JobBinding | { problem: string } {
  let doc: unknown;
  try {
    doc = parseYaml(jobText);
  } catch (err) {
    return { problem: `${shown}: not a YAML job definition: ${(err as Error).message.split('\n')[0]}` };
  }
  const j = asRecord(doc);
  const md = asRecord(j?.metadata);
  const need = ['clawos.arch', 'clawos.variant', 'clawos.iso_sha256'] as const;
  const missing = need.filter((k) => typeof md?.[k] !== 'string');
  if (!j || !md || missing.length) {
    return { problem: `${shown}: not a job clawos-build lava export wrote: its metadata lacks ${missing.length ? missing.join(', ') : 'clawos.*'}` };
  }
  return {
    job_name: String(j.job_name ?? ''),
    device_type: String(j.device_type ?? ''),
    arch: md['clawos.arch'] as string,
    variant: md['clawos.variant'] as string,
    iso_sha256: md['clawos.iso_sha256'] as string,
    expected_checks: typeof md['clawos.expected_checks'] === 'string' ? (md['clawos.expected_checks'] as string).split(',').filter(Boolean) : [],
  };
}

export interface LavaJudgement {
  verdict: BootVerdict;
  reason: LavaFailureReason | null;
  message: string;
  /** LAVA's own words: the job result and error type ("pass", "fail Infrastructure", "no job result: log cut"). */
  lava_state: string;
  checks: { name: string; result: string }[];
  failed_checks: string[];
  missing_checks: string[];
  /** The final marker's case: pass (CLAWOS-BOOT-OK), fail (CLAWOS-BOOT-FAILED), or null when absent. */
  marker: 'pass' | 'fail' | null;
  /** The boot classifier on the console LAVA recorded. */
  console: Pick<BootClassification, 'verdict' | 'reason' | 'stage' | 'stageMs' | 'message'>;
  /** ms from the first console line to the marker, from the console's timestamps. */
  marker_ms: number | null;
}

export interface JudgeInput {
  log: ParsedLavaLog;
  binding: JobBinding;
  /** The ISO the results are ingested for. */
  isoSha256: string;
  /** Checks this arch must report (pipeline/boot/guest-boot.ts loadExpectedChecks). */
  expectedChecks: readonly string[];
  /** Text the console must contain (the variant's expect_log, qemu/<arch>.yaml), as under the built-in boot lab. */
  expectedLog?: readonly string[];
}

/** LAVA error types that are the lab's, not the guest's (lava_common/exceptions.py). */
const INFRA_TYPES = new Set(['Infrastructure', 'Bug', 'Configuration', 'Canceled', 'ObjectNotPersisted']);

export function judgeLava(o: JudgeInput): LavaJudgement {
  const { log, binding } = o;
  const consoleText = log.console.map((c) => c.text).join('\n');
  // LAVA stopped a guest that ran out of time: the classifier reads that console as a timeout, as the boot lab's.
  const monitorFail = String(log.cases.find((x) => x.suite === 'lava' && x.case === 'lava-test-monitor')?.extra.fail ?? '');
  const timedOut = /timed out/i.test(`${log.job?.error_msg ?? ''} ${monitorFail}`);
  const cls = classifyBoot({ log: consoleText, lineTimesMs: log.console.map((c) => c.ms), expectedChecks: o.expectedChecks, expectedLog: o.expectedLog ?? [], timedOut });
  const consoleView = { verdict: cls.verdict, reason: cls.reason, stage: cls.stage, stageMs: cls.stageMs, message: cls.message };

  // The checks as LAVA recorded them; a check reported twice (a rebooting guest) fails if either report failed.
  const checks = new Map<string, string>();
  for (const c of log.cases.filter((x) => x.suite === CHECK_SUITE)) {
    if (checks.get(c.name) !== 'fail') checks.set(c.name, c.result);
  }
  const markers = log.cases.filter((x) => x.suite === MARKER_SUITE).map((x) => x.result);
  const marker = markers.includes('fail') ? 'fail' : markers.includes('pass') ? 'pass' : null;
  const failed = [...checks].filter(([, r]) => r !== 'pass').map(([n]) => n);
  const missing = o.expectedChecks.filter((n) => !checks.has(n));
  const monitor = log.cases.find((x) => x.suite === 'lava' && x.case === 'lava-test-monitor');
  const state = log.job ? `${log.job.result}${log.job.error_type ? ` (${log.job.error_type} error${log.job.error_msg ? `: ${oneLine(log.job.error_msg)}` : ''})` : ''}` : 'no job result: the log ends before the job did';
  const base = {
    lava_state: state,
    checks: [...checks].map(([name, result]) => ({ name, result })),
    failed_checks: failed,
    missing_checks: missing,
    marker: marker as LavaJudgement['marker'],
    console: consoleView,
    marker_ms: cls.stageMs.marker,
  };
  const v = (verdict: BootVerdict, reason: LavaFailureReason | null, message: string): LavaJudgement => ({ verdict, reason, message, ...base });
  const seen = `console: ${cls.verdict}${cls.verdict === 'PASS' ? '' : ` (${cls.message})`}`;

  // Bound to another ISO: nothing in it speaks for this one.
  if (binding.iso_sha256 !== o.isoSha256) {
    return v('FAIL', 'lava-other-iso', `the job was exported for ISO sha256 ${binding.iso_sha256}, not this ISO (${o.isoSha256})`);
  }
  const got = log.downloads.iso;
  if (got !== undefined && got !== o.isoSha256) {
    return v('FAIL', 'lava-other-iso', `LAVA deployed an ISO with sha256 ${got}, not this ISO (${o.isoSha256})`);
  }
  const problems = [...failed.map((n) => `${n} failed`), ...missing.map((n) => `${n} missing`)].join(', ');
  // What the guest itself printed is the guest's, whatever LAVA made of the job: a failed check,
  // CLAWOS-BOOT-FAILED, a panic or oops (a panicking guest ends QEMU, which LAVA calls an
  // Infrastructure error: "Connection closed").
  if (failed.length || marker === 'fail') {
    return v('FAIL', 'boot-check-failed', `${marker === 'fail' ? 'CLAWOS-BOOT-FAILED' : 'a check failed'}: ${problems || 'no failed check recorded'}`);
  }
  if (cls.verdict === 'FAIL' && (cls.reason === 'boot-panic' || cls.reason === 'boot-oops')) {
    return v('FAIL', cls.reason, `${cls.message} (on the console LAVA recorded; LAVA job ${state})`);
  }
  // Without such evidence, the lab's failure is the lab's: never a FAIL of the ISO.
  if (log.job && INFRA_TYPES.has(log.job.error_type ?? '')) {
    return v('INFRA_ERROR', 'lava-infra', `LAVA ${state}; ${seen}`);
  }
  if (log.job?.error_type === 'LAVATimeout' || (log.job && /timed out/i.test(log.job.error_msg ?? ''))) {
    return v('TIMEOUT', 'boot-timeout', `LAVA ${state}; ${seen}`);
  }
  if (monitor && monitor.result !== 'pass') {
    return v('TIMEOUT', 'boot-timeout', `LAVA's monitor did not see the marker (${String(monitor.extra.status ?? monitor.result)}); ${seen}`);
  }
  if (!log.job) {
    return v('INFRA_ERROR', 'lava-log-truncated', `the LAVA log is truncated: it ends at ${log.ended ?? 'its start'} with no job result${log.unreadable.length ? ` (line ${log.unreadable.at(-1)!.line} is not a log record)` : ''}, so its cases cannot be trusted whole; ${seen}`);
  }
  if (log.job.result !== 'pass') {
    // A job LAVA refused or could not deploy never booted the ISO: nothing to blame it for.
    if (!log.console.length) return v('INFRA_ERROR', 'lava-job-error', `the boot never started: LAVA ${state}`);
    return v('FAIL', 'lava-job-error', `LAVA ${state}; ${seen}`);
  }
  if (!marker) {
    return v('FAIL', 'boot-marker-missing', `LAVA recorded no CLAWOS-BOOT marker${problems ? `; ${problems}` : ''}; ${seen}`);
  }
  if (missing.length) {
    return v('FAIL', 'boot-check-failed', `CLAWOS-BOOT-OK but ${problems}`);
  }
  // The cases say PASS; the console must agree, as the built-in boot lab would judge it.
  if (cls.verdict !== 'PASS') {
    return v(cls.verdict, cls.reason, `LAVA's cases passed, but the ${seen}`);
  }
  return v('PASS', null, `CLAWOS-BOOT-OK, all ${o.expectedChecks.length} expected checks passed (LAVA job ${state})`);
}

function oneLine(s: string): string {
  const t = s.trim().split('\n')[0]!.replace(/\s+/g, ' ');
  return t.length > 160 ? `${t.slice(0, 159)}…` : t;
}
