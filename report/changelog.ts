/**
 * What each recorded run did, from its verified event chain alone: what it was
 * asked for, which task instances ran and why (the task-start event's `why`,
 * which the scheduler computes with describeChange from the fingerprint parts),
 * which results changed status, the gate decisions, the boots and whether a
 * bundle was signed. The release's CHANGELOG.md is this, newest run first.
 */
import { formatDuration } from '../lib/format.js';
import { eventsOf, isEvent } from '../vault/event-payloads.js';
import type { RecordedRun } from './recorded-results.js';

export interface RunSummary {
  run_id: string;
  started: string | null;
  ended: string | null;
  status: string | null;
  problem?: string;
  /** The run's chain fails verification: this summary is of its verified prefix only. */
  tampered?: true;
  clawos_version: string | null;
  arches: string[];
  phases: string[] | null;
  /** Task instances that ran in this run (task-start events), in order. */
  ran: string[];
  up_to_date: number;
  /** Instances built for the first time ("no earlier result"). */
  first_builds: string[];
  /** Instances re-run because something changed, with what changed. */
  changes: { task: string; why: string[] }[];
  /** Results whose status differs from the one recorded before this run. */
  status_changes: { task: string; from: string; to: string }[];
  gates: { phase: string; recommendation: string; kept: boolean; blockers: string[] }[];
  /** Boot verdicts of this run; up_to_date: the boot task was up to date, so this is the verdict it keeps, not a new boot. */
  boots: { task: string; arch: string; variant: string; verdict: string; reason: string | null; duration_ms: number | null; up_to_date: boolean }[];
  bundle: { signed: boolean; dir: string | null; reason: string | null };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Summaries of the runs, oldest first; `bundles` holds the run ids that have a bundle directory. */
export function runSummaries(runs: readonly RecordedRun[], bundles: ReadonlySet<string>): RunSummary[] {
  const lastStatus = new Map<string, string>();
  const out: RunSummary[] = [];
  for (const r of runs) {
    const start = eventsOf(r.events, 'run-start')[0]?.payload ?? {};
    const end = eventsOf(r.events, 'run-end')[0]?.payload;
    const s: RunSummary = {
      run_id: r.run_id,
      started: r.started,
      ended: r.ended,
      status: r.status,
      ...(r.problem ? { problem: r.problem } : {}),
      ...(r.tampered ? { tampered: true as const } : {}),
      clawos_version: typeof start.clawos_version === 'string' ? start.clawos_version : null,
      arches: Array.isArray(start.arches) ? start.arches.map(String) : [],
      phases: Array.isArray(start.phases) ? start.phases.map(String) : null,
      ran: [],
      up_to_date: 0,
      first_builds: [],
      changes: [],
      status_changes: [],
      gates: [],
      boots: [],
      bundle: { signed: false, dir: null, reason: null },
    };
    // Read defensively: a chain written by an older version or by hand may lack fields.
    for (const e of r.events) {
      if (isEvent(e, 'task-start')) {
        const p = e.payload;
        const task = str(p.task);
        s.ran.push(task);
        const why = Array.isArray(p.why) ? p.why.map(String) : [];
        if (why.length === 1 && why[0] === 'no earlier result') s.first_builds.push(task);
        else s.changes.push({ task, why: why.length ? why : ['fingerprint changed (no reason recorded)'] });
      } else if (isEvent(e, 'task-end')) {
        const p = e.payload;
        const task = str(p.task);
        const status = str(p.status);
        if (p.up_to_date === true) s.up_to_date++;
        const before = lastStatus.get(task);
        if (before !== undefined && before !== status) s.status_changes.push({ task, from: before, to: status });
        lastStatus.set(task, status);
      } else if (isEvent(e, 'gate')) {
        const p = e.payload;
        s.gates.push({ phase: str(p.phase), recommendation: str(p.recommendation), kept: p.kept === true, blockers: Array.isArray(p.blockers) ? p.blockers.map(String) : [] });
      } else if (isEvent(e, 'boot-verdict')) {
        const p = e.payload;
        s.boots.push({
          task: str(p.task),
          arch: str(p.arch),
          variant: str(p.variant),
          verdict: str(p.verdict),
          reason: typeof p.reason === 'string' ? p.reason : null,
          duration_ms: typeof p.duration_ms === 'number' ? p.duration_ms : null,
          up_to_date: p.up_to_date === true,
        });
      }
    }
    const b = end?.bundle;
    s.bundle = bundles.has(r.run_id)
      ? { signed: true, dir: `vault/bundles/${r.run_id}`, reason: null }
      : { signed: false, dir: null, reason: typeof b === 'object' && b !== null && 'reason' in b && typeof b.reason === 'string' ? b.reason : end ? 'no bundle was written' : 'the run has no run-end event' };
    out.push(s);
  }
  return out;
}

const when = (t: string | null): string => (t ? t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '?');

function runSection(s: RunSummary, releaseRun: string | null): string {
  const lines: string[] = [];
  lines.push(`## ${s.run_id}: ${s.tampered ? 'TAMPERED, ' : ''}${s.status ?? 'no run-end'}${s.run_id === releaseRun ? ' (this release)' : ''}`, '');
  lines.push(`- time: ${when(s.started)} to ${when(s.ended)}`);
  if (s.problem) lines.push(`- chain: ${s.problem}`);
  lines.push(`- asked for: ${s.phases?.join(', ') ?? 'unknown phases'} on ${s.arches.join(', ') || 'unknown arches'}${s.clawos_version ? ` (clawos-build ${s.clawos_version})` : ''}`);
  lines.push(`- gates: ${s.gates.length ? s.gates.map((g) => `${g.phase} ${g.recommendation}${g.kept ? ' (kept)' : ''}`).join(', ') : 'none decided'}`);
  for (const g of s.gates) for (const b of g.blockers) lines.push(`  - ${g.phase} blocker: ${b}`);
  lines.push(`- ran ${s.ran.length} task instance(s), ${s.up_to_date} up to date`);
  if (s.first_builds.length) lines.push(`- first build: ${s.first_builds.join(', ')}`);
  if (s.changes.length) {
    lines.push('- changed:');
    for (const c of s.changes) lines.push(`  - ${c.task}: ${c.why.join('; ')}`);
  }
  if (s.status_changes.length) lines.push(`- status: ${s.status_changes.map((c) => `${c.task} ${c.from} -> ${c.to}`).join(', ')}`);
  const booted = s.boots.filter((b) => !b.up_to_date);
  const kept = s.boots.filter((b) => b.up_to_date);
  const boots = [
    ...(booted.length ? [booted.map((b) => `${b.arch} ${b.variant} ${b.verdict}${b.reason ? ` [${b.reason}]` : ''}${b.duration_ms !== null ? ` in ${formatDuration(b.duration_ms)}` : ''}`).join(', ')] : []),
    ...(kept.length ? [`up to date, not booted again: ${kept.map((b) => `${b.arch} ${b.variant} ${b.verdict}`).join(', ')}`] : []),
  ];
  lines.push(`- boots: ${boots.length ? boots.join('; ') : 'none'}`);
  lines.push(`- bundle: ${s.bundle.signed ? `signed, ${s.bundle.dir}` : `none (${s.bundle.reason})`}`);
  return lines.join('\n');
}

export interface ChangelogInput {
  version: string;
  releaseRun: string | null;
  buildDir: string;
  summaries: readonly RunSummary[];
  /** Extra lines under the title (release facts). */
  preamble?: string[];
}

/** CHANGELOG.md: the runs newest first. */
export function changelogMarkdown(c: ChangelogInput): string {
  const parts = [
    `# ClawOS ${c.version}: changelog`,
    '',
    ...(c.preamble?.length ? [...c.preamble, ''] : []),
    `Generated by clawos-build from the verified event chains of ${c.summaries.length} run(s) in ${c.buildDir}, newest first. Nothing here is written by hand.`,
    '',
  ];
  for (const s of [...c.summaries].reverse()) parts.push(runSection(s, c.releaseRun), '');
  return parts.join('\n');
}
