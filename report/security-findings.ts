/**
 * The security section of the report. Its source is the security report that
 * the catalog's G-04 task writes, found among that task's recorded outputs (or
 * its evidence, for a G-04 that FAILed on a finding), and used only if the file
 * still hashes to what was recorded. Until G-04 has produced one, the section
 * shows the in-guest check results of the boot records instead, labelled as
 * such: they are evidence, not the security report's judgement.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { sha256File } from '../lib/hash.js';
import type { RecordedTask } from './recorded-results.js';

/** The catalog task that writes the security report ("Security Report periodic generation"). */
export const SECURITY_REPORT_TASK = 'G-04';

export interface Finding {
  id: string;
  layer: string;
  severity: string;
  status: string;
  title: string;
  /** More on the finding (its detail, what it rests on, a waiver's reason), '' if nothing. */
  detail: string;
  mitigation: string;
  /** Build-relative paths the finding rests on. */
  evidence: string[];
}

export interface SecurityView {
  source: 'security-report' | 'in-guest-checks' | 'none';
  /** What the section shows and why, in one sentence a person reads first. */
  note: string;
  report: { path: string; sha256: string; task: string; task_status: string } | null;
  /** Why there is no usable security report (null when there is one). */
  missing: string | null;
  /** The security report's own verdict and blocking findings (null without a report). */
  verdict: string | null;
  blocking: string[];
  findings: Finding[];
  /** Open findings per severity (security report), or checks per status (in-guest checks). */
  counts: Record<string, number>;
  /** Waived findings per severity, kept apart: a waived CRITICAL is not an open one. */
  waived: Record<string, number>;
}

export interface BootCheckRecord {
  task: string;
  arch: string;
  variant: string;
  verdict: string;
  checks: { name: string; result: string; value?: string }[];
  /** Checks the boot was expected to report but did not. */
  missing_checks: string[];
  /** The boot record's build-relative path, when the task's evidence names it. */
  record_path: string | null;
}

const s = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

function countBy(findings: Finding[], key: 'severity' | 'status'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of findings) out[f[key] || 'unrated'] = (out[f[key] || 'unrated'] ?? 0) + 1;
  return out;
}

/** Findings of a security report document; null when it has no findings list. */
export function findingsOf(doc: unknown): Finding[] | null {
  const list = (doc as { findings?: unknown } | null)?.findings;
  if (!Array.isArray(list)) return null;
  return list.map((f: Record<string, unknown>) => {
    const waiver = f.waiver as { reason?: unknown; who?: unknown } | undefined;
    const detail = [s(f.detail), f.rests_on ? `rests on: ${s(f.rests_on)}` : '', waiver?.reason ? `waived by ${s(waiver.who) || '?'}: ${s(waiver.reason)}` : ''].filter(Boolean).join(' · ');
    return {
      id: s(f.id),
      layer: s(f.layer),
      severity: s(f.severity),
      status: s(f.status),
      title: s(f.title ?? f.message ?? f.description),
      detail,
      mitigation: s(f.mitigation),
      evidence: Array.isArray(f.evidence) ? f.evidence.map((e: unknown) => (typeof e === 'string' ? e : s((e as { path?: unknown })?.path))).filter(Boolean) : [],
    };
  });
}

function inGuest(boots: BootCheckRecord[]): Finding[] {
  const names = [...new Set(boots.flatMap((b) => [...b.checks.map((c) => c.name), ...b.missing_checks]))].sort();
  const where = (b: BootCheckRecord) => `${b.arch} ${b.variant}`;
  return names.map((name) => {
    // A check a boot neither reported nor was expected to (cpu-flags on aarch64) does not apply to it.
    const applies = boots.filter((b) => b.checks.some((c) => c.name === name) || b.missing_checks.includes(name));
    const bad = applies
      .map((b) => ({ b, c: b.checks.find((c) => c.name === name) }))
      .filter((x) => x.c?.result !== 'pass');
    const na = boots.length - applies.length;
    return {
      id: name,
      layer: 'in-guest check',
      severity: '',
      status: bad.length ? 'fail' : 'pass',
      title: bad.length
        ? bad.map((x) => `${where(x.b)}: ${x.c ? `${x.c.result}${x.c.value ? ` (${x.c.value})` : ''}` : 'missing'}`).join('; ')
        : `pass in ${applies.length} boot(s): ${applies.map(where).join(', ')}${na ? `; not expected on ${na} other boot(s)` : ''}`,
      detail: '',
      mitigation: '',
      evidence: applies.map((b) => b.record_path).filter((p): p is string => !!p),
    };
  });
}

export async function securityView(buildDir: string, tasks: ReadonlyMap<string, RecordedTask>, boots: BootCheckRecord[]): Promise<SecurityView> {
  const rec = [...tasks.values()].find((t) => t.task_id === SECURITY_REPORT_TASK);
  let why: string;
  if (!rec) why = `${SECURITY_REPORT_TASK} has no recorded result`;
  else {
    const candidates = [...rec.outputs, ...rec.evidence].filter((f) => f.path.endsWith('.json'));
    why = `${SECURITY_REPORT_TASK} is ${rec.status}${rec.message ? `: ${rec.message.split('\n')[0]!.replace(/\.$/, '')}` : ''}`;
    for (const c of candidates) {
      const abs = join(buildDir, c.path);
      const now = await sha256File(abs).catch(() => null);
      if (now === null) {
        why = `${SECURITY_REPORT_TASK} recorded ${c.path}, which is gone`;
        continue;
      }
      if (now !== c.sha256) {
        why = `${c.path} changed since ${SECURITY_REPORT_TASK} recorded it (sha256 ${now}, recorded ${c.sha256}): not used`;
        continue;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(await readFile(abs, 'utf8'));
      } catch {
        why = `${c.path} is not JSON`;
        continue;
      }
      const findings = findingsOf(doc);
      if (!findings) {
        why = `${c.path} has no findings list`;
        continue;
      }
      return {
        source: 'security-report',
        note: `From the security report ${c.path} (sha256 ${c.sha256}) that ${rec.id} recorded (${rec.status}).`,
        report: { path: c.path, sha256: c.sha256, task: rec.id, task_status: rec.status },
        missing: null,
        verdict: typeof (doc as { verdict?: unknown }).verdict === 'string' ? (doc as { verdict: string }).verdict : null,
        blocking: Array.isArray((doc as { blocking?: unknown }).blocking) ? (doc as { blocking: unknown[] }).blocking.map(String) : [],
        findings,
        counts: countBy(findings.filter((f) => f.status !== 'waived'), 'severity'),
        waived: countBy(findings.filter((f) => f.status === 'waived'), 'severity'),
      };
    }
  }
  if (!boots.length) {
    return { source: 'none', note: `No security report (${why}) and no boot record with in-guest checks: nothing to show.`, report: null, missing: why, verdict: null, blocking: [], findings: [], counts: {}, waived: {} };
  }
  const findings = inGuest(boots);
  return {
    source: 'in-guest-checks',
    note: `The security report is not produced yet (${why}). Shown instead: the in-guest check results of ${boots.length} recorded boot(s) (${[...new Set(boots.map((b) => b.task))].join(', ')}); these are evidence, not the security report's findings.`,
    report: null,
    missing: why,
    verdict: null,
    blocking: [],
    findings,
    counts: countBy(findings, 'status'),
    waived: {},
  };
}

/** The boot records (with their checks) in a task's data, if its data is a list of them. */
export function bootRecordsOf(t: RecordedTask): (BootCheckRecord & { stage_ms: Record<string, number | null>; duration_ms: number })[] {
  if (!Array.isArray(t.data)) return [];
  const out = [];
  for (const b of t.data as Record<string, unknown>[]) {
    if (!b || typeof b !== 'object' || typeof b.arch !== 'string' || typeof b.variant !== 'string' || typeof b.verdict !== 'string') continue;
    if (!b.stage_ms || typeof b.stage_ms !== 'object') continue;
    const ev = t.evidence.find((e) => basename(e.path) === `${b.variant}.json`) ?? t.outputs.find((o) => basename(o.path) === `${b.variant}.json`);
    out.push({
      task: t.id,
      arch: b.arch,
      variant: b.variant,
      verdict: b.verdict,
      checks: Array.isArray(b.checks) ? (b.checks as BootCheckRecord['checks']).filter((c) => c && typeof c.name === 'string').map((c) => ({ name: c.name, result: s(c.result), ...(c.value !== undefined ? { value: s(c.value) } : {}) })) : [],
      missing_checks: Array.isArray(b.missing_checks) ? b.missing_checks.filter((x): x is string => typeof x === 'string') : [],
      record_path: ev?.path ?? null,
      stage_ms: b.stage_ms as Record<string, number | null>,
      duration_ms: typeof b.duration_ms === 'number' ? b.duration_ms : 0,
    });
  }
  return out;
}
