/**
 * The report's figures as a Prometheus textfile for node_exporter's textfile
 * collector: task durations, gate results, boot stage times, boot verdict
 * counts and the bundle check. Metric names carry the clawos_ prefix and base
 * units (seconds). node_exporter may read the file at any moment, so it is
 * written to a temp file in the same directory and renamed over the old one.
 */
import { writeFileAtomic } from '../lib/atomic-write.js';
import { InternalError, UserError } from '../lib/errors.js';
import { BOOT_STAGES } from './boot-chart-svg.js';
import { formatPromText, parsePromText, type PromFamily } from './prom-text.js';
import type { ReportModel } from './report-model.js';

const VERDICTS = ['PASS', 'FAIL', 'TIMEOUT', 'INFRA_ERROR'];
const byLabels = (a: { labels: Record<string, string> }, b: { labels: Record<string, string> }) => {
  const x = JSON.stringify(Object.values(a.labels));
  const y = JSON.stringify(Object.values(b.labels));
  return x < y ? -1 : x > y ? 1 : 0;
};

export function reportMetrics(m: ReportModel): PromFamily[] {
  const families: PromFamily[] = [];
  families.push({
    name: 'clawos_task_duration_seconds',
    help: 'Recorded duration of the latest result of each task instance.',
    type: 'gauge',
    samples: m.tasks.map((t) => ({ labels: { task: t.task_id, arch: t.arch ?? '', phase: t.phase, status: t.status }, value: t.duration_ms / 1000 })).sort(byLabels),
  });
  families.push({
    name: 'clawos_gate_go',
    help: 'Latest decision of each phase gate: 1 GO, 0 NO-GO (absent: gate not run).',
    type: 'gauge',
    samples: m.phases.filter((p) => p.gate).map((p) => ({ labels: { phase: p.phase }, value: p.gate!.recommendation === 'GO' ? 1 : 0 })),
  });
  families.push({
    name: 'clawos_boot_stage_seconds',
    help: 'Time from QEMU start to the first console line of each boot stage, latest recorded boot per arch and firmware variant (absent: stage not reached).',
    type: 'gauge',
    samples: m.boots
      .flatMap((b) =>
        BOOT_STAGES.filter((s) => typeof b.stage_ms[s] === 'number').map((s) => ({ labels: { arch: b.arch, variant: b.variant, stage: s }, value: (b.stage_ms[s] as number) / 1000 })),
      )
      .sort(byLabels),
  });
  const counts = new Map(VERDICTS.map((v) => [v, 0]));
  for (const b of m.boots) counts.set(b.verdict, (counts.get(b.verdict) ?? 0) + 1);
  families.push({
    name: 'clawos_boot_verdicts',
    help: 'Latest recorded boots per verdict.',
    type: 'gauge',
    samples: [...counts].map(([verdict, n]) => ({ labels: { verdict }, value: n })),
  });
  if (m.vault.state === 'verified' || m.vault.state === 'failed') {
    families.push({
      name: 'clawos_bundle_verified',
      help: 'Newest signed bundle checked with the given trust file: 1 PASS, 0 FAIL (absent: no bundle, or no trust file given).',
      type: 'gauge',
      samples: [{ labels: {}, value: m.vault.state === 'verified' ? 1 : 0 }],
    });
  }
  return families;
}

export function metricsText(m: ReportModel): string {
  const text = formatPromText(reportMetrics(m));
  const parsed = parsePromText(text);
  if (parsed.errors.length) throw new InternalError(`metrics: the textfile would not parse: ${parsed.errors.join('; ')}`);
  return text;
}

export async function writeMetricsFile(path: string, m: ReportModel): Promise<string> {
  if (!path.endsWith('.prom')) throw new UserError(`--metrics ${path}: the name must end in .prom`, "node_exporter's textfile collector reads only *.prom files");
  const text = metricsText(m);
  await writeFileAtomic(path, text);
  return text;
}
