/**
 * G-04's inputs from the real data: the real security layers, mitigations, audit
 * rules, catalog and in-guest checks, with every task PASS except the ones not
 * built today, every expected check passing in one boot per arch, and the kernel
 * config given per arch (the recorded one, or it with today's fragments laid over).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRootDir } from '../../lib/repo-root.js';
import { yamlValue } from '../../lib/yaml-source.js';
import { parseConfig } from '../../pipeline/kernel/kconfig.js';
import { auditConfig } from '../../pipeline/security/kconfig-audit.js';
import { loadAuditSpec } from '../../pipeline/security/kconfig-audit-spec.js';
import { LAYERS_FILE, LAYERS_SCHEMA, MITIGATIONS_FILE, MITIGATIONS_SCHEMA, parseMitigations, parseSecurityLayers, type RecordLike, type ReportInputs } from '../../pipeline/security/security-report.js';

const repo = repoRootDir();
export const SECURITY_ARCHES = ['aarch64', 'x86_64'];
/** Not built today (they need sources this repository does not have). */
export const NOT_CONFIGURED_TODAY = ['B-05', 'B-06', 'B-07', 'C-02', 'C-07', 'E-05'];
export const STATE = { path: 'state.json', sha256: 'a'.repeat(64) };

const rec = (id: string, status: string) => ({
  id,
  task_id: id.split('@')[0]!,
  arch: id.includes('@') ? id.split('@')[1]! : null,
  status,
  message: `${id} ${status.toLowerCase()}`,
});

export async function realInputs(configs: Record<string, Map<string, string>>): Promise<ReportInputs> {
  const ARCHES = SECURITY_ARCHES;
  const layersR = parseSecurityLayers(await readFile(join(repo, LAYERS_FILE), 'utf8'), LAYERS_FILE, JSON.parse(await readFile(join(repo, LAYERS_SCHEMA), 'utf8')) as object);
  const mitR = parseMitigations(await readFile(join(repo, MITIGATIONS_FILE), 'utf8'), MITIGATIONS_FILE, JSON.parse(await readFile(join(repo, MITIGATIONS_SCHEMA), 'utf8')) as object);
  const spec = await loadAuditSpec(repo, ARCHES);
  if (!layersR.ok || !mitR.ok || !spec.ok) throw new Error('the real audit data does not load');
  const catalog = new Map<string, { per_arch: boolean; optional: boolean }>();
  const records: Record<string, RecordLike> = {};
  for (const f of (await readdir(join(repo, 'tasks'))).filter((n) => n.endsWith('.yaml'))) {
    const t = yamlValue(await readFile(join(repo, 'tasks', f), 'utf8'), f) as { task_id: string; per_arch?: boolean; optional?: boolean };
    catalog.set(t.task_id, { per_arch: t.per_arch === true, optional: t.optional === true });
    for (const id of t.per_arch ? ARCHES.map((a) => `${t.task_id}@${a}`) : [t.task_id]) records[id] = rec(id, NOT_CONFIGURED_TODAY.includes(t.task_id) ? 'NOT_CONFIGURED' : 'PASS');
  }
  const checksDoc = yamlValue(await readFile(join(repo, 'buildroot-external/board/clawos/checks.yaml'), 'utf8'), 'checks.yaml') as { checks: { name: string; tasks?: string[] }[] };
  const boot = (variant: string) => ({ variant, verdict: 'PASS', checks: checksDoc.checks.map((c) => ({ name: c.name, result: 'pass' })) });
  return {
    layers: layersR.layers,
    catalog,
    arches: ARCHES,
    records,
    state: STATE,
    boots: ARCHES.map((a) => ({ arch: a, dir: `b/${a}`, records: [{ path: `b/${a}/boot.json`, sha256: 'b'.repeat(64), boot: boot(`${a}-fw`) }] })),
    checkTasks: new Map(checksDoc.checks.map((c) => [c.name, c.tasks ?? []])),
    audits: ARCHES.map((a) => ({ arch: a, path: `qa/${a}/kconfig-audit.json`, sha256: 'e'.repeat(64), entries: auditConfig(spec.spec, configs[a]!, a) })),
    auditLayer: 'kernel',
    mitigations: mitR.mitigations,
  };
}

/**
 * A kernel config a real build recorded (test/fixtures/kconfig): by default of the default kernel
 * (kernel-config/source.yaml, Linux 6.12); '6.1.192' is the one recorded before the audit fixes.
 */
export const recordedConfig = async (a: string, version = '6.12.118') => parseConfig(await readFile(join(repo, 'test/fixtures/kconfig', `${a}-${version}-clawos.config`), 'utf8'));

/**
 * The recorded config with today's fragments laid over it, in the default source's order (A-01 fails
 * unless every requested symbol lands in the final .config), then the arch's own fragment.
 */
export const todayConfig = async (a: string) => {
  const c = await recordedConfig(a);
  const src = yamlValue(await readFile(join(repo, 'kernel-config/source.yaml'), 'utf8'), 'kernel-config/source.yaml') as { fragments: string[] };
  for (const f of [...src.fragments.map((x) => x.replace('{arch}', a)), `kernel-config/${a}.config`]) for (const [k, v] of parseConfig(await readFile(join(repo, f), 'utf8'))) c.set(k, v);
  return c;
};
