/**
 * Phase gates. A gate judges the recorded results of its phase's task
 * instances and re-checks their evidence (each output's sha256, now), then
 * writes gate-report.json and gate-report.md: every check with its evidence, a
 * GO / NO-GO recommendation, explicit blockers, and a coverage line naming the
 * NOT_CONFIGURED and the BUILT tasks. It never claims more than the records show:
 * BUILT (a component built but not proven to work) is never counted as passed, and a
 * gate whose require_pass names a BUILT task says NO-GO. Each piece
 * of evidence cites its object in the vault's content store (vault/store/sha256/…),
 * and the decision itself is a `gate` event of the run's vault chain.
 */
import { join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { sha256Hex } from '../../lib/hash.js';
import type { HashCache } from '../../lib/hash-cache.js';
import { loadData } from '../../lib/data.js';
import { GATES } from '../catalog/load-tasks.js';
import { storeHas, storePath } from '../../vault/store.js';
import type { GateRecord, InstanceRecord, StateStore } from './state.js';
import type { Phase, TaskInstance } from '../catalog/task-spec.js';

export interface GateSpec {
  title: string;
  rule: string;
  require_pass: string[];
  require_arches: string[];
}

export async function loadGateSpecs(repoRoot: string): Promise<Record<Phase, GateSpec>> {
  return (await loadData<{ gates: Record<Phase, GateSpec> }>(repoRoot, ...GATES)).gates;
}

export interface GateCheck {
  id: string;
  title: string;
  status: 'pass' | 'fail' | 'not-configured' | 'built';
  detail: string;
  /** `store`: the build-relative path of the object in the vault's store (null when it is not there). */
  evidence: { path: string; sha256: string; store?: string | null }[];
}

export interface GateReport {
  format: 'clawos-gate-report@1';
  phase: Phase;
  title: string;
  rule: string;
  decided_at: string;
  arches: string[];
  inputs_fingerprint: string;
  recommendation: 'GO' | 'NO-GO';
  blockers: string[];
  checks: GateCheck[];
  coverage: {
    tasks: number;
    passed: string[];
    not_configured: string[];
    optional_not_configured: string[];
    /** Built but not validated (BUILT): not counted as passed. */
    built: string[];
    failed: string[];
    line: string;
  };
}

/** What the gate's decision depends on: the fingerprints of the phase's instances and the arches. */
export function gateInputsFingerprint(records: { id: string; fingerprint: string }[], arches: string[]): string {
  const parts = records.map((r) => `${r.id}=${r.fingerprint}`).sort();
  return sha256Hex(JSON.stringify({ parts, arches: [...arches].sort() }));
}

export async function evaluateGate(opts: {
  phase: Phase;
  spec: GateSpec;
  instances: TaskInstance[];
  state: StateStore;
  arches: string[];
  buildDir: string;
  hashCache: HashCache;
}): Promise<GateReport> {
  const { phase, spec, instances, state, arches, buildDir } = opts;
  const blockers: string[] = [];
  const checks: GateCheck[] = [];
  const passed: string[] = [];
  const notConfigured: string[] = [];
  const optionalNC: string[] = [];
  const builtOnly: string[] = [];
  const failed: string[] = [];
  const records: InstanceRecord[] = [];

  for (const inst of instances) {
    const rec = state.instance(inst.id);
    const title = inst.task.spec.title;
    if (!rec) {
      checks.push({ id: inst.id, title, status: 'fail', detail: 'no recorded result', evidence: [] });
      blockers.push(`${inst.id}: no recorded result (not run)`);
      failed.push(inst.id);
      continue;
    }
    records.push(rec);
    const evidence: GateCheck['evidence'] = [];
    let evidenceOk = true;
    for (const [path, o] of Object.entries(rec.outputs)) {
      let now: string;
      try {
        now = (await opts.hashCache.file(join(buildDir, path))).sha256;
      } catch {
        now = 'missing';
      }
      const stored = /^[0-9a-f]{64}$/.test(now) && (await storeHas(buildDir, now)) ? relative(buildDir, storePath(buildDir, now)) : null;
      evidence.push({ path, sha256: now, store: stored });
      if (now !== o.sha256) {
        evidenceOk = false;
        blockers.push(`${inst.id}: evidence ${path} changed since it was recorded (recorded ${o.sha256.slice(0, 16)}…, now ${now.slice(0, 16)}…)`);
      }
    }
    if (rec.status === 'PASS') {
      checks.push({ id: inst.id, title, status: evidenceOk ? 'pass' : 'fail', detail: rec.message, evidence });
      if (evidenceOk) passed.push(inst.id);
      else failed.push(inst.id);
    } else if (rec.status === 'NOT_CONFIGURED') {
      checks.push({ id: inst.id, title, status: 'not-configured', detail: rec.message, evidence });
      if (inst.task.spec.optional) optionalNC.push(inst.id);
      else notConfigured.push(inst.id);
      if (spec.require_pass.includes(inst.task.spec.task_id)) blockers.push(`${inst.id}: required to PASS for gate ${phase}, but NOT_CONFIGURED: ${rec.message}`);
    } else if (rec.status === 'BUILT') {
      checks.push({ id: inst.id, title, status: evidenceOk ? 'built' : 'fail', detail: rec.message, evidence });
      if (evidenceOk) builtOnly.push(inst.id);
      else failed.push(inst.id);
      if (spec.require_pass.includes(inst.task.spec.task_id)) {
        blockers.push(`${inst.id}: required to PASS for gate ${phase}, but only BUILT (built, not validated: no validation_cmd or in-guest check proves it): ${rec.message}`);
      }
    } else {
      checks.push({ id: inst.id, title, status: 'fail', detail: `${rec.status}${rec.reason ? ` (${rec.reason})` : ''}: ${rec.message}`, evidence });
      failed.push(inst.id);
      blockers.push(`${inst.id}: ${rec.status}${rec.reason ? ` (${rec.reason})` : ''}: ${rec.message}`);
    }
  }
  for (const req of spec.require_pass) {
    if (!instances.some((i) => i.task.spec.task_id === req)) blockers.push(`${req}: required by gate ${phase} but not part of this phase`);
  }
  for (const a of spec.require_arches) {
    if (!arches.includes(a)) blockers.push(`architecture ${a} was not built in this run: gate ${phase} requires ${spec.require_arches.join(' and ')}`);
  }
  const total = instances.length;
  const line =
    `${passed.length}/${total} task instances passed` +
    (notConfigured.length ? `; NOT_CONFIGURED (not built, not counted as passed): ${notConfigured.join(', ')}` : '; none NOT_CONFIGURED') +
    (optionalNC.length ? `; optional, not built: ${optionalNC.join(', ')}` : '') +
    (builtOnly.length ? `; BUILT (built, not validated, not counted as passed): ${builtOnly.join(', ')}` : '') +
    (failed.length ? `; failed or not run: ${failed.join(', ')}` : '');
  return {
    format: 'clawos-gate-report@1',
    phase,
    title: spec.title,
    rule: spec.rule,
    decided_at: new Date().toISOString(),
    arches,
    inputs_fingerprint: gateInputsFingerprint(
      instances.map((i) => ({ id: i.id, fingerprint: state.instance(i.id)?.fingerprint ?? '' })),
      arches,
    ),
    recommendation: blockers.length ? 'NO-GO' : 'GO',
    blockers,
    checks,
    coverage: { tasks: total, passed, not_configured: notConfigured, optional_not_configured: optionalNC, built: builtOnly, failed, line },
  };
}

export function gateReportMarkdown(r: GateReport): string {
  const out: string[] = [];
  out.push(`# Gate ${r.phase}: ${r.title}`, '');
  out.push(`**Recommendation: ${r.recommendation}**`, '');
  out.push(`Rule: ${r.rule}`, '');
  out.push(`Decided: ${r.decided_at} · architectures: ${r.arches.join(', ')} · inputs fingerprint \`${r.inputs_fingerprint.slice(0, 16)}\``, '');
  out.push(`Coverage: ${r.coverage.line}`, '');
  out.push('## Blockers', '');
  if (r.blockers.length) for (const b of r.blockers) out.push(`- ${b}`);
  else out.push('None.');
  out.push('', '## Checks', '', '| task | status | detail | evidence (sha256) |', '|---|---|---|---|');
  for (const c of r.checks) {
    const ev = c.evidence.map((e) => `\`${e.path}\` ${e.sha256.slice(0, 12)}…${e.store ? ' (vault)' : ''}`).join('<br>') || '–';
    out.push(`| ${c.id} ${c.title.replace(/\|/g, '/')} | ${c.status.toUpperCase()} | ${c.detail.replace(/\|/g, '/').replace(/\n/g, ' ')} | ${ev} |`);
  }
  out.push('');
  return out.join('\n');
}

export async function writeGateReport(buildDir: string, r: GateReport, fingerprints: Record<string, string>): Promise<GateRecord> {
  const dir = join(buildDir, 'gates', r.phase);
  const jsonPath = join(dir, 'gate-report.json');
  const mdPath = join(dir, 'gate-report.md');
  await writeJsonAtomic(jsonPath, r);
  await writeFileAtomic(mdPath, gateReportMarkdown(r));
  return {
    phase: r.phase,
    recommendation: r.recommendation,
    inputs_fingerprint: r.inputs_fingerprint,
    fingerprints,
    arches: r.arches,
    decided_at: r.decided_at,
    report_json: `gates/${r.phase}/gate-report.json`,
    report_md: `gates/${r.phase}/gate-report.md`,
    blockers: r.blockers,
  };
}
