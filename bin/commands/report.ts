/**
 * `clawos-build report [--out FILE] [--trust keys.json] [--metrics FILE.prom] [--json]`:
 * one self-contained HTML file computed from the recorded results (default
 * <build>/report.html), optionally the Prometheus textfile too. --json prints
 * the data model instead of writing the HTML.
 */
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { buildDirArg, outputFileArg, writingTo } from '../path-args.js';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { formatDuration } from '../../lib/format.js';
import { buildReportModel, type ReportModel } from '../../report/report-model.js';
import { renderReportHtml } from '../../report/render-report-html.js';
import { tamperedHeadline } from '../../vault/vault-history.js';
import { writeMetricsFile } from '../../report/report-metrics.js';

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

/** The few lines printed after the HTML is written. */
export function reportSummary(m: ReportModel, file: string | null): string {
  const gates = m.phases.map((p) => `${p.phase} ${p.gate?.recommendation ?? 'not run'}`).join(', ');
  const boots = m.boots.length ? `${m.boots.length} (${[...new Set(m.boots.map((b) => b.verdict))].map((v) => `${m.boots.filter((b) => b.verdict === v).length} ${v}`).join(', ')})` : 'none recorded';
  const lines = [
    ...(file ? [`report: ${file}`] : []),
    ...(m.source.tampered.length ? [tamperedHeadline(m.source.tampered.map((t) => t.run_id))] : []),
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

/** A chain that fails verification is a failed result (exit 1), even though the report is written. */
const reportExit = (m: ReportModel) => (m.source.tampered.length ? EXIT.failed : EXIT.ok);

export async function reportCommand(o: ReportCommandOptions): Promise<number> {
  const buildDir = await buildDirArg(o.buildDir);
  // Every path is checked before the (slow) model is built; no folder is created for them.
  const metrics = o.metrics ? await outputFileArg(o.metrics, '--metrics') : null;
  const out = o.json ? null : await outputFileArg(o.out ?? join(buildDir, 'report.html'), '--out');
  const model = await buildReportModel({ repoRoot: o.repoRoot, buildDir, ...(o.trust ? { trust: o.trust } : {}), ...(o.now ? { now: o.now } : {}) });
  if (metrics) await writingTo(metrics, '--metrics', () => writeMetricsFile(metrics, model));
  if (!out) {
    printJson(o, { ...model, ...(metrics ? { metrics_file: metrics } : {}) });
    return reportExit(model);
  }
  await writingTo(out, '--out', () => writeFileAtomic(out, renderReportHtml(model)));
  o.print(reportSummary(model, out) + (metrics ? `metrics: ${metrics}\n` : ''));
  return reportExit(model);
}

/** UserError/InfraError are thrown for bin/ to map. */
export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return reportCommand({
    repoRoot: io.repoRoot,
    buildDir: a.buildDir as string,
    ...(a.out ? { out: a.out as string } : {}),
    ...(a.trust ? { trust: a.trust as string } : {}),
    ...(a.metrics ? { metrics: a.metrics as string } : {}),
    json: !!a.json,
    print: io.print,
    printErr: io.printErr,
  });
}
