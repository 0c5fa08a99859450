/**
 * kconfig-audit (catalog G-03): audit one arch's final kernel .config against
 * specs/audit/kconfig-rules.yaml, with the waivers of specs/audit/waivers.yaml,
 * and check that every built module file carries a signature.
 *
 *   uses: kconfig-audit
 *   with:
 *     config: kernel-engineer/{arch}/config
 *     modules: [kernel-engineer/{arch}/modules]                  # every *.ko under these dirs
 *     modules_order: [kernel-engineer/{arch}/obj/modules.order]  # Kbuild's list of in-tree modules
 *     report: kconfig-audit            # <outDir>/kconfig-audit.json (kernel-hardening-checker's shape) and .md
 *     rules: specs/audit/kconfig-rules.yaml    # optional (default)
 *     waivers: specs/audit/waivers.yaml        # optional (default)
 *
 * FAIL when a non-waived CRITICAL check fails; PASS otherwise, with the counts.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256File } from '../../lib/hash.js';
import { parseConfig } from '../kernel/kconfig.js';
import { fail, pass, type Evidence, type FailureReason, type Outcome } from '../catalog/outcome.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import { AUDIT_CRITICAL_REASON, auditConfig, auditMarkdown, auditModule, blockingLines, summarize, summaryLine, type AuditEntry } from '../security/kconfig-audit.js';
import { loadAuditSpec, RULES_FILE, RULES_SCHEMA, WAIVERS_FILE, WAIVERS_SCHEMA } from '../security/kconfig-audit-spec.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';

export { AUDIT_CRITICAL_REASON } from '../security/kconfig-audit.js';

export interface KconfigAuditParams {
  config: string;
  modules: string[];
  modules_order: string[];
  report: string;
  rules: string;
  waivers: string;
}

const KNOWN = ['config', 'modules', 'modules_order', 'report', 'rules', 'waivers'];

/** Validate the `with:` block; returns an error text or the params. */
export function parseKconfigAuditParams(p: Record<string, unknown>): KconfigAuditParams | string {
  for (const k of Object.keys(p)) if (!KNOWN.includes(k)) return `kconfig-audit: unknown parameter '${k}' (known: ${KNOWN.join(', ')})`;
  if (typeof p['config'] !== 'string' || p['config'] === '') return "kconfig-audit: 'config' must be a build-relative path";
  const list = (k: string): string[] | string => {
    const v = p[k] ?? [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) return `kconfig-audit: '${k}' must be a list of build-relative paths`;
    return v as string[];
  };
  const modules = list('modules');
  if (typeof modules === 'string') return modules;
  const order = list('modules_order');
  if (typeof order === 'string') return order;
  const report = p['report'] ?? 'kconfig-audit';
  if (typeof report !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(report)) return "kconfig-audit: 'report' must be a plain file name (without extension)";
  const repoPath = (k: string, dflt: string): string | null => {
    const v = p[k] ?? dflt;
    return typeof v === 'string' && v !== '' && !v.startsWith('/') && !v.split('/').includes('..') ? v : null;
  };
  const rules = repoPath('rules', RULES_FILE);
  const waivers = repoPath('waivers', WAIVERS_FILE);
  if (!rules) return "kconfig-audit: 'rules' must be a repo-relative path";
  if (!waivers) return "kconfig-audit: 'waivers' must be a repo-relative path";
  return { config: p['config'], modules, modules_order: order, report, rules, waivers };
}

async function koFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await koFiles(abs)));
    else if (e.name.endsWith('.ko')) out.push(abs);
  }
  return out;
}

/** The module files to check: every .ko under the dirs, and each module Kbuild's modules.order lists. */
async function moduleFiles(ctx: StepContext, p: KconfigAuditParams): Promise<{ abs: string; missing: boolean }[]> {
  const files = new Map<string, boolean>();
  for (const d of p.modules) {
    const abs = ctx.buildPath(d);
    if (!existsSync(abs)) files.set(abs, true);
    else for (const f of await koFiles(abs)) files.set(f, false);
  }
  for (const o of p.modules_order) {
    const abs = ctx.buildPath(o);
    if (!existsSync(abs)) {
      files.set(abs, true);
      continue;
    }
    // Linux 6.1 lists the .ko files; later kernels list the .o they are linked from.
    for (const line of (await readFile(abs, 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean)) {
      const ko = resolve(dirname(abs), line.replace(/\.o$/, '.ko'));
      files.set(ko, !existsSync(ko));
    }
  }
  return [...files.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([abs, missing]) => ({ abs, missing }));
}

async function archNames(repoRoot: string): Promise<string[]> {
  return (await readdir(join(repoRoot, 'specs', 'arch'))).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

async function run(ctx: StepContext): Promise<Outcome> {
  const params = parseKconfigAuditParams(ctx.params);
  if (typeof params === 'string') return fail('spec-invalid', params);
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'kconfig-audit audits one architecture\'s kernel; make the task per_arch');

  let loaded;
  try {
    loaded = await loadAuditSpec(ctx.repoRoot, await archNames(ctx.repoRoot), { rules: params.rules, waivers: params.waivers });
  } catch (err) {
    return fail('spec-invalid', `kconfig-audit: cannot read the audit data: ${(err as Error).message}`);
  }
  if (!loaded.ok) {
    const lines = loaded.problems.map(formatDiagnostic);
    const first = loaded.problems[0]!;
    return fail('spec-invalid', `${lines.length} problem${lines.length === 1 ? '' : 's'} in the audit data:\n${lines.join('\n')}`, {
      location: { file: first.file, line: first.line, col: first.col },
      data: { problems: loaded.problems },
    });
  }
  const spec = loaded.spec;

  const configAbs = ctx.buildPath(params.config);
  const configRel = relative(ctx.buildDir, configAbs);
  if (!existsSync(configAbs)) return fail('output-missing', `kconfig-audit: ${configRel} does not exist (was the kernel built?)`);
  ctx.progress(`auditing ${configRel}`);
  const configSha = await sha256File(configAbs);
  const entries: AuditEntry[] = auditConfig(spec, parseConfig(await readFile(configAbs, 'utf8')), arch.name);
  for (const m of await moduleFiles(ctx, params)) {
    entries.push(await auditModule(spec, { path: relative(ctx.buildDir, m.abs), abs: m.abs, sha256: m.missing ? null : await sha256File(m.abs) }));
  }

  const s = summarize(entries);
  const verdict = s.blocking.length ? 'FAIL' : 'PASS';
  const jsonAbs = join(ctx.outDir, `${params.report}.json`);
  const mdAbs = join(ctx.outDir, `${params.report}.md`);
  await writeJsonAtomic(jsonAbs, entries);
  await writeFileAtomic(
    mdAbs,
    auditMarkdown({ arch: arch.name, config: { path: configRel, sha256: configSha }, rulesVersion: spec.rulesVersion, waiversVersion: spec.waiversVersion, entries, verdict }),
  );
  const evidence: Evidence[] = [
    { label: 'final .config', path: configRel, sha256: configSha },
    { label: 'audit rules', path: params.rules, sha256: await sha256File(join(ctx.repoRoot, params.rules)) },
    { label: 'audit waivers', path: params.waivers, sha256: await sha256File(join(ctx.repoRoot, params.waivers)) },
    { label: 'audit (JSON)', path: relative(ctx.buildDir, jsonAbs), sha256: await sha256File(jsonAbs) },
    { label: 'audit (Markdown)', path: relative(ctx.buildDir, mdAbs), sha256: await sha256File(mdAbs) },
  ];
  const data = {
    arch: arch.name,
    config: { path: configRel, sha256: configSha },
    rules_version: spec.rulesVersion,
    waivers_version: spec.waiversVersion,
    total: s.total,
    ok: s.ok,
    failed: s.failed,
    waived: s.waived,
    blocking: s.blocking.map((e) => ({ option_name: e.option_name, desired_val: e.desired_val, check_result: e.check_result, rule: e.rule })),
  };
  for (const l of blockingLines(s)) ctx.log(`CRITICAL ${l}`);
  if (s.blocking.length) {
    const n = s.blocking.length;
    return fail(
      AUDIT_CRITICAL_REASON,
      `${n} non-waived CRITICAL failure${n === 1 ? '' : 's'} in the kernel config audit for ${arch.name} (${summaryLine(s)}):\n${blockingLines(s).join('\n')}`,
      { evidence, data },
    );
  }
  return pass(`${arch.name}: ${summaryLine(s)}; no non-waived CRITICAL (${relative(ctx.buildDir, mdAbs)})`, { evidence, data });
}

export const kconfigAuditStep: Step = {
  name: 'kconfig-audit',
  version: 2,
  params: paramsSchema({ config: P.path, modules: P.paths, modules_order: P.paths, report: P.path, rules: P.path, waivers: P.path }, ['config']),
  toolPackages: () => [],
  implicitInputs: (_arch, params) => {
    const rules = typeof params['rules'] === 'string' ? params['rules'] : RULES_FILE;
    const waivers = typeof params['waivers'] === 'string' ? params['waivers'] : WAIVERS_FILE;
    return [rules, waivers, RULES_SCHEMA, WAIVERS_SCHEMA];
  },
  run,
};
