/**
 * security-report (catalog G-04): security-report.json and .md, computed from
 * the recorded results only (pipeline/security/security-report.ts).
 *
 *   uses: security-report
 *   with:
 *     boot_dir: build-engineer/{arch}/boot       # {arch}: every arch of specs/arch/
 *     audit: qa/{arch}/kconfig-audit.json        # G-03's output
 *     audit_layer: kernel                        # the layer the audit's findings belong to
 *     report: security-report                    # <outDir>/security-report.json and .md
 *     layers: specs/audit/security-layers.yaml   # optional (default)
 *     mitigations: specs/audit/mitigations.yaml  # optional (default)
 *     checks: buildroot-external/board/clawos/checks.yaml   # optional (default)
 *
 * FAIL on any open CRITICAL finding or open HIGH finding without a mitigation
 * whose evidence (in-guest checks, task results) passed in this run.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { fail, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import { expandArch } from '../catalog/task-spec.js';
import { formatDiagnostic, yamlValue } from '../../lib/yaml-source.js';
import type { AuditEntry } from '../security/kconfig-audit.js';
import {
  CHECKS_FILE,
  computeSecurityReport,
  LAYERS_FILE,
  LAYERS_SCHEMA,
  MITIGATIONS_FILE,
  MITIGATIONS_SCHEMA,
  parseMitigations,
  parseSecurityLayers,
  securityReportMarkdown,
  type BootLike,
  type RecordLike,
  type ReportInputs,
} from '../security/security-report.js';
import { SEVERITIES } from '../security/kconfig-audit-spec.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';
import { AUDIT_CRITICAL_REASON } from '../security/kconfig-audit.js';

export { CHECKS_FILE };

export interface SecurityReportParams {
  boot_dir: string;
  audit: string;
  audit_layer: string;
  report: string;
  layers: string;
  mitigations: string;
  checks: string;
}

const KNOWN = ['boot_dir', 'audit', 'audit_layer', 'report', 'layers', 'mitigations', 'checks'];

export function parseSecurityReportParams(p: Record<string, unknown>): SecurityReportParams | string {
  for (const k of Object.keys(p)) if (!KNOWN.includes(k)) return `security-report: unknown parameter '${k}' (known: ${KNOWN.join(', ')})`;
  const str = (k: string, dflt?: string): string | null => {
    const v = p[k] ?? dflt;
    return typeof v === 'string' && v !== '' && !v.startsWith('/') && !v.split('/').includes('..') ? v : null;
  };
  const boot = str('boot_dir');
  const audit = str('audit');
  const layer = str('audit_layer');
  const report = str('report', 'security-report');
  const layers = str('layers', LAYERS_FILE);
  const mitigations = str('mitigations', MITIGATIONS_FILE);
  const checks = str('checks', CHECKS_FILE);
  if (!boot || !boot.includes('{arch}')) return "security-report: 'boot_dir' must be a build-relative path with {arch}";
  if (!audit || !audit.includes('{arch}')) return "security-report: 'audit' must be a build-relative path with {arch}";
  if (!layer) return "security-report: 'audit_layer' must name a layer of the layers file";
  if (!report || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(report)) return "security-report: 'report' must be a plain file name (without extension)";
  if (!layers || !mitigations || !checks) return "security-report: 'layers', 'mitigations' and 'checks' must be repo-relative paths";
  return { boot_dir: boot, audit, audit_layer: layer, report, layers, mitigations, checks };
}

async function readCatalog(repoRoot: string): Promise<Map<string, { per_arch: boolean; optional: boolean }>> {
  const out = new Map<string, { per_arch: boolean; optional: boolean }>();
  for (const f of (await readdir(join(repoRoot, 'tasks'))).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    const doc = yamlValue(await readFile(join(repoRoot, 'tasks', f), 'utf8'), `tasks/${f}`) as { task_id?: unknown; per_arch?: unknown; optional?: unknown } | null;
    if (doc && typeof doc.task_id === 'string') out.set(doc.task_id, { per_arch: doc.per_arch === true, optional: doc.optional === true });
  }
  return out;
}

async function readBoots(ctx: StepContext, dirRel: string): Promise<ReportInputs['boots'][number]['records']> {
  const dir = ctx.buildPath(dirRel);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  } catch {
    return [];
  }
  const out: ReportInputs['boots'][number]['records'] = [];
  for (const n of names) {
    const abs = join(dir, n);
    const bytes = await readFile(abs);
    let boot: BootLike;
    try {
      boot = JSON.parse(bytes.toString('utf8')) as BootLike;
    } catch {
      continue;
    }
    // Only boot records: the dir may hold other JSON.
    if (!boot || typeof boot.verdict !== 'string' || typeof boot.variant !== 'string') continue;
    out.push({ path: relative(ctx.buildDir, abs), sha256: sha256Hex(bytes), boot });
  }
  return out;
}

async function readAudit(ctx: StepContext, arch: string, rel: string): Promise<ReportInputs['audits'][number]> {
  const abs = ctx.buildPath(rel);
  const path = relative(ctx.buildDir, abs);
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch {
    return { arch, path, sha256: null, entries: null, error: `${path} is missing: G-03 did not audit ${arch}` };
  }
  const sha256 = sha256Hex(bytes);
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    if (!Array.isArray(v)) return { arch, path, sha256, entries: null, error: `${path} is not a list of audit entries` };
    return { arch, path, sha256, entries: v as AuditEntry[] };
  } catch (err) {
    return { arch, path, sha256, entries: null, error: `${path} is not JSON: ${(err as Error).message}` };
  }
}

async function run(ctx: StepContext): Promise<Outcome> {
  const params = parseSecurityReportParams(ctx.params);
  if (typeof params === 'string') return fail('spec-invalid', params);

  let layersBytes: Buffer;
  let schema: object;
  let mitigationsBytes: Buffer;
  let mitigationsSchema: object;
  let checksDoc: { checks?: { name: string; tasks?: string[] }[] };
  try {
    layersBytes = await readFile(join(ctx.repoRoot, params.layers));
    schema = JSON.parse(await readFile(join(ctx.repoRoot, LAYERS_SCHEMA), 'utf8')) as object;
    mitigationsBytes = await readFile(join(ctx.repoRoot, params.mitigations));
    mitigationsSchema = JSON.parse(await readFile(join(ctx.repoRoot, MITIGATIONS_SCHEMA), 'utf8')) as object;
    checksDoc = yamlValue(await readFile(join(ctx.repoRoot, params.checks), 'utf8'), params.checks) as typeof checksDoc;
  } catch (err) {
    return fail('spec-invalid', `security-report: cannot read its data: ${(err as Error).message}`);
  }
  const layers = parseSecurityLayers(layersBytes.toString('utf8'), params.layers, schema);
  if (!layers.ok) {
    const lines = layers.problems.map(formatDiagnostic);
    return fail('spec-invalid', `${lines.length} problem${lines.length === 1 ? '' : 's'} in ${params.layers}:\n${lines.join('\n')}`, {
      location: { file: layers.problems[0]!.file, line: layers.problems[0]!.line, col: layers.problems[0]!.col },
    });
  }
  const mitigations = parseMitigations(mitigationsBytes.toString('utf8'), params.mitigations, mitigationsSchema);
  if (!mitigations.ok) {
    const lines = mitigations.problems.map(formatDiagnostic);
    return fail('spec-invalid', `${lines.length} problem${lines.length === 1 ? '' : 's'} in ${params.mitigations}:\n${lines.join('\n')}`, {
      location: { file: mitigations.problems[0]!.file, line: mitigations.problems[0]!.line, col: mitigations.problems[0]!.col },
    });
  }
  if (!layers.layers.some((l) => l.id === params.audit_layer)) {
    return fail('spec-invalid', `security-report: audit_layer '${params.audit_layer}' is not a layer of ${params.layers} (${layers.layers.map((l) => l.id).join(', ')})`);
  }

  const statePath = join(ctx.buildDir, 'state.json');
  let stateBytes: Buffer;
  try {
    stateBytes = await readFile(statePath);
  } catch {
    return fail('output-missing', `security-report: ${relative(ctx.buildDir, statePath)} is missing: nothing was recorded yet`);
  }
  const state = JSON.parse(stateBytes.toString('utf8')) as { instances?: Record<string, RecordLike> };

  const arches = (await readdir(join(ctx.repoRoot, 'specs', 'arch'))).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
  ctx.progress('collecting recorded results');
  const inputs: ReportInputs = {
    layers: layers.layers,
    catalog: await readCatalog(ctx.repoRoot),
    arches,
    records: state.instances ?? {},
    state: { path: relative(ctx.buildDir, statePath), sha256: sha256Hex(stateBytes) },
    boots: await Promise.all(
      arches.map(async (a) => ({ arch: a, dir: expandArch(params.boot_dir, a), records: await readBoots(ctx, expandArch(params.boot_dir, a)) })),
    ),
    checkTasks: new Map((checksDoc?.checks ?? []).map((c) => [c.name, c.tasks ?? []])),
    audits: await Promise.all(arches.map((a) => readAudit(ctx, a, expandArch(params.audit, a)))),
    auditLayer: params.audit_layer,
    mitigations: mitigations.mitigations,
  };
  const report = computeSecurityReport(inputs);

  const jsonAbs = join(ctx.outDir, `${params.report}.json`);
  const mdAbs = join(ctx.outDir, `${params.report}.md`);
  await writeJsonAtomic(jsonAbs, report);
  await writeFileAtomic(mdAbs, securityReportMarkdown(report, arches));
  const evidence: Evidence[] = [
    { label: 'security report (JSON)', path: relative(ctx.buildDir, jsonAbs), sha256: await sha256File(jsonAbs) },
    { label: 'security report (Markdown)', path: relative(ctx.buildDir, mdAbs), sha256: await sha256File(mdAbs) },
    ...report.inputs,
    { label: 'security layers', path: params.layers, sha256: sha256Hex(layersBytes) },
    { label: 'audit mitigations', path: params.mitigations, sha256: sha256Hex(mitigationsBytes) },
  ];
  const counts = (c: Record<string, number>) => SEVERITIES.map((s) => `${c[s]} ${s}`).join(', ');
  const line = `open findings ${counts(report.summary.open)}; waived ${counts(report.summary.waived)}`;
  const data = { verdict: report.verdict, summary: report.summary, blocking: report.blocking };
  for (const b of report.blocking) ctx.log(`blocking: ${b}`);
  if (report.verdict === 'FAIL') {
    const n = report.blocking.length;
    return fail(AUDIT_CRITICAL_REASON, `${n} blocking finding${n === 1 ? '' : 's'} (${line}):\n${report.blocking.join('\n')}`, { evidence, data });
  }
  return pass(`${line}; ${report.summary.findings} finding(s) in ${relative(ctx.buildDir, mdAbs)}`, { evidence, data });
}

export const securityReportStep: Step = {
  name: 'security-report',
  version: 2,
  params: paramsSchema({ boot_dir: P.path, audit: P.path, audit_layer: P.path, report: P.path, layers: P.path, mitigations: P.path, checks: P.path }, ['boot_dir', 'audit', 'audit_layer']),
  toolPackages: () => [],
  implicitInputs: (_arch, params) => [
    typeof params['layers'] === 'string' ? params['layers'] : LAYERS_FILE,
    LAYERS_SCHEMA,
    typeof params['mitigations'] === 'string' ? params['mitigations'] : MITIGATIONS_FILE,
    MITIGATIONS_SCHEMA,
    typeof params['checks'] === 'string' ? params['checks'] : CHECKS_FILE,
    'specs/arch',
    'tasks',
  ],
  run,
};
