/**
 * The report's data model, computed from what was recorded (never typed in):
 * tasks and gates from the vault's event chains (recorded-results.ts), the
 * gate specs, the task graph for the critical path, the boot records in the
 * boot task's data, the security report, and the verification of the newest
 * bundle. `clawos-build report --json` prints this; the HTML and the metrics are
 * rendered from it.
 */
import { loadRelease } from '../lib/data.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import { buildGraph } from '../pipeline/catalog/graph.js';
import { loadValidCatalog, selectArches } from '../pipeline/run/session.js';
import { PHASES, type Phase } from '../pipeline/catalog/task-spec.js';
import { criticalPath, pathNodesFromGraph } from './critical-path.js';
import { loadRecordedResults, type RecordedGate, type RecordedResults, type RecordedTask } from './recorded-results.js';
import { bootRecordsOf, securityView, type SecurityView } from './security-findings.js';
import { listBundles, vaultView, type VaultView } from './vault-view.js';
import { runSummaries, type RunSummary } from './changelog.js';
import type { BootRow } from './boot-chart-svg.js';
import type { Step } from '../pipeline/catalog/step.js';
import { foldBootEvidence, type BootEvidence } from '../vault/lava-evidence.js';

import type { MachineRow } from '../pipeline/boot/hw-verdict.js';

export interface TaskView {
  id: string;
  task_id: string;
  arch: string | null;
  phase: Phase;
  status: string;
  reason: string | null;
  message: string;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  run_id: string | null;
  up_to_date: boolean;
  critical: boolean;
}

export interface PhaseView {
  phase: Phase;
  title: string | null;
  rule: string | null;
  gate: RecordedGate | null;
  /** Task instances per status. */
  counts: Record<string, number>;
}

export interface ReportModel {
  format: 'clawos-build-report@1';
  generated_at: string;
  build_dir: string;
  release: string | null;
  /** tampered: runs whose event chain fails verification (only its verified prefix is shown). */
  source: { kind: RecordedResults['source']; detail: string; problems: string[]; tampered: RecordedResults['tampered'] };
  phases: PhaseView[];
  tasks: TaskView[];
  critical_path: { ids: string[]; total_ms: number; note: string };
  boots: (BootRow & { accel: string | null; message: string })[];
  /** Boots other labs ran (LAVA), beside the built-in boot lab's, per ISO, arch and variant. */
  lab_boots: BootEvidence[];
  security: SecurityView;
  /** G-07's machine matrix: which machines booted which ISO, when, by whom, with what result (issue 15). */
  hardware: { status: string | null; message: string; machines: MachineRow[] };
  vault: VaultView;
  runs: RunSummary[];
}

/** The machines G-07 recorded in its last result (its task data), as the vault's chain has it. */
export function hardwareView(tasks: ReadonlyMap<string, RecordedTask>): ReportModel['hardware'] {
  const t = tasks.get('G-07');
  if (!t) return { status: null, message: 'G-07 has not run: no hardware result recorded', machines: [] };
  const rows = (t.data as { machines?: unknown } | undefined)?.machines;
  return { status: t.status, message: t.message, machines: Array.isArray(rows) ? (rows as MachineRow[]) : [] };
}

export async function releaseVersion(repoRoot: string): Promise<string | null> {
  try {
    return (await loadRelease(repoRoot)).version;
  } catch {
    return null;
  }
}

/** The critical path over the catalog's graph, for the arches the records have. */
async function computeCriticalPath(repoRoot: string, tasks: ReadonlyMap<string, RecordedTask>, steps?: Map<string, Step>): Promise<ReportModel['critical_path']> {
  if (!tasks.size) return { ids: [], total_ms: 0, note: 'no task recorded' };
  let graph;
  try {
    const catalog = await loadValidCatalog(repoRoot, undefined, steps);
    const known = [...(await selectArches(repoRoot, null)).keys()];
    const present = new Set([...tasks.values()].map((t) => t.arch).filter((a): a is string => a !== null));
    const arches = [...known.filter((a) => present.has(a)), ...[...present].filter((a) => !known.includes(a)).sort()];
    graph = buildGraph(catalog.tasks, arches);
  } catch (e) {
    return { ids: [], total_ms: 0, note: `not computed: the task graph does not load (${(e as Error).message.split('\n')[0]})` };
  }
  const durations = new Map([...tasks.values()].map((t) => [t.id, t.duration_ms]));
  const cp = criticalPath(pathNodesFromGraph(graph, durations));
  return { ...cp, note: 'the longest chain through the task dependency graph by recorded durations' };
}

export interface ReportModelOptions {
  repoRoot: string;
  buildDir: string;
  /** Trust root for the bundle check; without it the vault section says "not verified". */
  trust?: string;
  now?: () => Date;
  /** Replace the built-in steps when loading the task specs (tests with stand-in steps). */
  steps?: Map<string, Step>;
}

export async function buildReportModel(o: ReportModelOptions): Promise<ReportModel> {
  const rec = await loadRecordedResults(o.buildDir);
  let specs: Awaited<ReturnType<typeof loadGateSpecs>> | null = null;
  try {
    specs = await loadGateSpecs(o.repoRoot);
  } catch {
    specs = null;
  }
  const cp = await computeCriticalPath(o.repoRoot, rec.tasks, o.steps);
  const onPath = new Set(cp.ids);
  const phaseIdx = (p: string) => PHASES.indexOf(p as Phase);
  const tasks: TaskView[] = [...rec.tasks.values()]
    .map((t) => ({
      id: t.id,
      task_id: t.task_id,
      arch: t.arch,
      phase: t.phase,
      status: t.status,
      reason: t.reason ?? null,
      message: t.message,
      started_at: t.started_at,
      finished_at: t.finished_at,
      duration_ms: t.duration_ms,
      run_id: t.run_id,
      up_to_date: t.up_to_date,
      critical: onPath.has(t.id),
    }))
    .sort((a, b) => phaseIdx(a.phase) - phaseIdx(b.phase) || a.started_at.localeCompare(b.started_at) || a.id.localeCompare(b.id));
  const phases: PhaseView[] = PHASES.map((phase) => {
    const counts: Record<string, number> = {};
    for (const t of tasks.filter((x) => x.phase === phase)) counts[t.status] = (counts[t.status] ?? 0) + 1;
    return { phase, title: specs?.[phase]?.title ?? null, rule: specs?.[phase]?.rule ?? null, gate: rec.gates[phase] ?? null, counts };
  });
  const bootRecs = [...rec.tasks.values()].sort((a, b) => a.id.localeCompare(b.id)).flatMap((t) => bootRecordsOf(t));
  const boots = bootRecs.map((b) => {
    const raw = (rec.tasks.get(b.task)?.data as Record<string, unknown>[]).find((x) => x.arch === b.arch && x.variant === b.variant) ?? {};
    return {
      arch: b.arch,
      variant: b.variant,
      verdict: b.verdict,
      stage_ms: b.stage_ms,
      duration_ms: b.duration_ms,
      task: b.task,
      accel: typeof raw.accel === 'string' ? raw.accel : null,
      message: typeof raw.message === 'string' ? raw.message : '',
    };
  });
  const vault = await vaultView(o.buildDir, rec.runs, o.trust);
  return {
    format: 'clawos-build-report@1',
    generated_at: (o.now ?? (() => new Date()))().toISOString(),
    build_dir: o.buildDir,
    release: await releaseVersion(o.repoRoot),
    source: { kind: rec.source, detail: rec.source_detail, problems: rec.problems, tampered: rec.tampered },
    phases,
    tasks,
    critical_path: cp,
    boots,
    lab_boots: foldBootEvidence(rec.runs.map((r) => ({ runId: r.run_id, events: r.events }))),
    security: await securityView(o.buildDir, rec.tasks, bootRecs),
    hardware: hardwareView(rec.tasks),
    vault,
    runs: runSummaries(rec.runs, new Set(await listBundles(o.buildDir))),
  };
}
