/**
 * `clawos-build report [--out FILE] [--trust keys.json] [--metrics FILE.prom] [--json]`:
 * one self-contained HTML file computed from the recorded results (default
 * <build>/report.html), optionally the Prometheus textfile too. --json prints
 * the data model instead of writing the HTML. Like bin/commands/vault.ts, it
 * parses its own options (reportMain) so bin/cli.ts only dispatches to it.
 */
import { parseCommandArgs, type CommandIo } from '../args.js';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { formatDuration } from '../../lib/format.js';
import { buildReportModel, type ReportModel } from '../../report/report-model.js';
import { renderReportHtml } from '../../report/render-report-html.js';
import { writeMetricsFile } from '../../report/report-metrics.js';

export const REPORT_USAGE = `  report [--out FILE] [--trust keys.json] [--metrics FILE.prom] [--json]
                      one self-contained HTML report of the recorded results (default <build-dir>/report.html);
                      --trust verifies the newest bundle; --metrics also writes a node_exporter textfile;
                      --json prints the report's data instead of writing the HTML`;

export interface ReportCommandOptions {
  repoRoot: string;
  buildDir: string;
  out?: string;
  trust?: string;
  metrics?: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
  now?: () => Date;
}

export type { CommandIo } from '../args.js';

/** The few lines printed after the HTML is written. */
export function reportSummary(m: ReportModel, file: string | null): string {
  const gates = m.phases.map((p) => `${p.phase} ${p.gate?.recommendation ?? 'not run'}`).join(', ');
  const boots = m.boots.length ? `${m.boots.length} (${[...new Set(m.boots.map((b) => b.verdict))].map((v) => `${m.boots.filter((b) => b.verdict === v).length} ${v}`).join(', ')})` : 'none recorded';
  const lines = [
    ...(file ? [`report: ${file}`] : []),
    `records: ${m.source.detail}`,
    ...m.source.problems.map((p) => `problem: ${p}`),
    `gates: ${gates}; ${m.tasks.length} task instances`,
    `critical path: ${m.critical_path.ids.length ? `${m.critical_path.ids.join(' -> ')} (${formatDuration(m.critical_path.total_ms)})` : m.critical_path.note}`,
    `boots: ${boots}`,
    `security: ${m.security.note}`,
    `vault: ${m.vault.headline}${m.vault.note ? ` (${m.vault.note})` : ''}`,
  ];
  return lines.join('\n') + '\n';
}

export async function reportCommand(o: ReportCommandOptions): Promise<number> {
  const buildDir = resolve(o.buildDir);
  const model = await buildReportModel({ repoRoot: o.repoRoot, buildDir, ...(o.trust ? { trust: o.trust } : {}), ...(o.now ? { now: o.now } : {}) });
  let metrics: string | null = null;
  if (o.metrics) {
    metrics = resolve(o.metrics);
    await writeMetricsFile(metrics, model);
  }
  if (o.json) {
    o.print(JSON.stringify({ ...model, ...(metrics ? { metrics_file: metrics } : {}) }, null, 2) + '\n');
    return 0;
  }
  const out = resolve(o.out ?? join(buildDir, 'report.html'));
  await writeFileAtomic(out, renderReportHtml(model));
  o.print(reportSummary(model, out) + (metrics ? `metrics: ${metrics}\n` : ''));
  return 0;
}

/** argv after the word "report". Exit codes: 0 written, 2 usage; UserError/InfraError are thrown for bin/cli.ts to map. */
export async function reportMain(argv: string[], io: CommandIo): Promise<number> {
  const v = parseCommandArgs(argv, { out: { type: 'string' }, trust: { type: 'string' }, metrics: { type: 'string' }, json: { type: 'boolean' }, 'build-dir': { type: 'string' } } as const, REPORT_USAGE, io);
  if (!v) return 2;
  if (v.json && v.out) {
    io.printErr(`clawos-build: --out and --json do not go together: --json prints the report's data instead of writing the HTML\n\n${REPORT_USAGE}\n`);
    return 2;
  }
  return reportCommand({
    repoRoot: io.repoRoot,
    buildDir: v['build-dir'] ?? 'build',
    ...(v.out ? { out: v.out } : {}),
    ...(v.trust ? { trust: v.trust } : {}),
    ...(v.metrics ? { metrics: v.metrics } : {}),
    json: !!v.json,
    print: io.print,
    printErr: io.printErr,
  });
}
