/**
 * The security report (G-04): every finding of every ClawOS security layer,
 * computed only from what the build recorded: the state's task instance records
 * (status, reason, message, evidence, data), each boot's in-guest checks, and
 * the kernel config audit (G-03). Nothing in it is written by hand; each finding
 * says what evidence it rests on (path + sha256).
 *
 * Severity: a failed task of a layer and a failed or missing in-guest check are
 * CRITICAL; an audit entry keeps its rule's severity; a task that was not built,
 * or was built but proven by nothing (BUILT), has its layer's `gap` severity (specs/audit/security-layers.yaml). The report
 * FAILs on any open CRITICAL and on any open HIGH without a proven mitigation: a
 * compensating control in place (a gap's `mitigation`, or specs/audit/mitigations.yaml
 * for an audit finding) whose evidence, in-guest checks and tasks, all passed in
 * this run. A rule's `fix` (what to change) is not a mitigation.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Evidence } from '../catalog/outcome.js';
import type { Diagnostic } from '../../lib/yaml-source.js';
import { checkDataText } from '../../lib/data.js';
import type { AuditEntry } from './kconfig-audit.js';
import { RULES_FILE, ruleName, SEVERITIES, type Severity } from './kconfig-audit-spec.js';
import { parseYaml, yamlValue } from '../../lib/yaml-source.js';

export const LAYERS_FILE = 'specs/audit/security-layers.yaml';
export const LAYERS_SCHEMA = 'specs/schemas/audit/security-layers.schema.json';
export const MITIGATIONS_FILE = 'specs/audit/mitigations.yaml';
export const MITIGATIONS_SCHEMA = 'specs/schemas/audit/mitigations.schema.json';
/** The in-guest checks and the catalog tasks they prove. */
export const CHECKS_FILE = 'buildroot-external/board/clawos/checks.yaml';

/** What proves a mitigation: an in-guest check passing in every boot of every arch, or a task every instance of which PASSed. */
export type ProofRef = { check: string } | { task: string };

/** A compensating control in place, and the evidence that proves it in every run. */
export interface Mitigation {
  control: string;
  evidence: ProofRef[];
}

export interface Gap {
  severity: Severity;
  /** What is missing and what it would take. */
  note?: string;
  mitigation?: Mitigation;
}

/** A mitigation of open audit findings of one rule (specs/audit/mitigations.yaml). */
export interface RuleMitigation extends Mitigation {
  option: string;
  desired?: string;
  arches?: string[];
  who: string;
  /** file:line where it is written. */
  at: string;
}

export interface LayerTask {
  id: string;
  gap: Gap;
}

export interface Layer {
  id: string;
  title: string;
  tasks: LayerTask[];
}

/** Parse and check the layers file; a task in two layers is an error. */
export function parseSecurityLayers(text: string, file: string, schema: object): { ok: true; layers: Layer[] } | { ok: false; problems: Diagnostic[] } {
  const { src, diagnostics: diags } = checkDataText<unknown>(text, file, schema);
  if (diags.length) return { ok: false, problems: diags };
  const doc = src.value as { layers: { id: string; title: string; tasks: (string | { id: string; gap: Gap })[]; gap: Gap }[] };
  const problems: Diagnostic[] = [];
  const owner = new Map<string, string>();
  const layers = doc.layers.map((l, li) => ({
    id: l.id,
    title: l.title,
    tasks: l.tasks.map((t, ti) => {
      const id = typeof t === 'string' ? t : t.id;
      const prev = owner.get(id);
      if (prev) problems.push({ ...src.locate(['layers', li, 'tasks', ti]), message: `${id} is already in layer ${prev}` });
      owner.set(id, l.id);
      return { id, gap: typeof t === 'string' ? l.gap : t.gap };
    }),
  }));
  const ids = new Set<string>();
  doc.layers.forEach((l, li) => {
    if (ids.has(l.id)) problems.push({ ...src.locate(['layers', li, 'id']), message: `layer ${l.id} is defined twice` });
    ids.add(l.id);
  });
  return problems.length ? { ok: false, problems } : { ok: true, layers };
}

/** Parse and check the audit mitigations file. */
export function parseMitigations(text: string, file: string, schema: object): { ok: true; mitigations: RuleMitigation[] } | { ok: false; problems: Diagnostic[] } {
  const { src, diagnostics } = checkDataText<unknown>(text, file, schema);
  if (diagnostics.length) return { ok: false, problems: diagnostics };
  const doc = src.value as { mitigations: Omit<RuleMitigation, 'at'>[] };
  return { ok: true, mitigations: doc.mitigations.map((m, i) => ({ ...m, at: `${file}:${src.locate(['mitigations', i]).line}` })) };
}

/**
 * Evidence naming an in-guest check that does not exist can never pass: located
 * problems. (A task not in tasks/ yet is allowed, as in the layers, and simply
 * does not pass: the report says so.)
 */
function unknownEvidence(src: { locate(path: (string | number)[]): Omit<Diagnostic, 'message'> }, at: (string | number)[], refs: ProofRef[], checks: ReadonlySet<string> | null): Diagnostic[] {
  const out: Diagnostic[] = [];
  refs.forEach((r, i) => {
    if ('check' in r && checks && !checks.has(r.check)) out.push({ ...src.locate([...at, i, 'check']), message: `mitigation evidence: no in-guest check "${r.check}" in ${CHECKS_FILE}` });
  });
  return out;
}

/**
 * For `clawos-build validate`: the problems of the layers file and of the
 * mitigations file ([] when both are valid), including evidence that names no
 * in-guest check, and a mitigation that names no audit rule.
 */
export async function securityLayersDiagnostics(repoRoot: string, file = LAYERS_FILE, mitigationsFile = MITIGATIONS_FILE): Promise<Diagnostic[]> {
  const read = (p: string) => readFile(join(repoRoot, p), 'utf8');
  // A repository without the overlay's checks (a test repo) cannot name checks wrongly.
  const checksText = await read(CHECKS_FILE).catch(() => null);
  const known = checksText === null ? null : new Set(((yamlValue(checksText, CHECKS_FILE) as { checks?: { name: string }[] } | null)?.checks ?? []).map((c) => c.name));
  const out: Diagnostic[] = [];

  const layersText = await read(file);
  const r = parseSecurityLayers(layersText, file, JSON.parse(await read(LAYERS_SCHEMA)) as object);
  if (!r.ok) out.push(...r.problems);
  else {
    const src = parseYaml(layersText, file);
    const doc = src.value as { layers: { tasks: (string | { gap: Gap })[]; gap: Gap }[] };
    doc.layers.forEach((l, li) => {
      if (l.gap.mitigation) out.push(...unknownEvidence(src, ['layers', li, 'gap', 'mitigation', 'evidence'], l.gap.mitigation.evidence, known));
      l.tasks.forEach((t, ti) => {
        if (typeof t !== 'string' && t.gap.mitigation) out.push(...unknownEvidence(src, ['layers', li, 'tasks', ti, 'gap', 'mitigation', 'evidence'], t.gap.mitigation.evidence, known));
      });
    });
  }

  const mText = await read(mitigationsFile);
  const m = parseMitigations(mText, mitigationsFile, JSON.parse(await read(MITIGATIONS_SCHEMA)) as object);
  if (!m.ok) out.push(...m.problems);
  else {
    const src = parseYaml(mText, mitigationsFile);
    const rulesText = await read(RULES_FILE).catch(() => '');
    const rules = (yamlValue(rulesText, RULES_FILE) as { rules?: { option: string }[] } | null)?.rules ?? [];
    m.mitigations.forEach((x, i) => {
      out.push(...unknownEvidence(src, ['mitigations', i, 'evidence'], x.evidence, known));
      if (x.option.startsWith('CONFIG_') && !rules.some((rule) => rule.option === x.option)) {
        out.push({ ...src.locate(['mitigations', i, 'option']), message: `mitigations.${i} (${x.option}): matches no rule in ${RULES_FILE}` });
      }
    });
  }
  return out;
}

/** The parts of a state instance record the report reads. */
export interface RecordLike {
  id: string;
  task_id: string;
  arch: string | null;
  status: string;
  reason?: string;
  message: string;
  evidence?: Evidence[];
  outputs?: Record<string, { sha256: string }>;
  data?: unknown;
}

export interface BootLike {
  variant?: string;
  verdict?: string;
  checks?: { name: string; result: string; value?: string }[];
  missing_checks?: string[];
}

export interface ReportInputs {
  layers: Layer[];
  /** Tasks that exist in tasks/, with what the report needs of their spec. */
  catalog: ReadonlyMap<string, { per_arch: boolean; optional: boolean }>;
  arches: readonly string[];
  records: Readonly<Record<string, RecordLike>>;
  /** The state file the records were read from, with the sha256 of the bytes read. */
  state: { path: string; sha256: string };
  /** Per arch: the boot record dir and every boot record in it (none: the ISO was not booted). */
  boots: { arch: string; dir: string; records: { path: string; sha256: string; boot: BootLike }[] }[];
  /** In-guest check name -> the catalog tasks it proves (checks.yaml). */
  checkTasks: ReadonlyMap<string, readonly string[]>;
  /** Per arch: the G-03 audit JSON (entries null when it is missing or unreadable). */
  audits: { arch: string; path: string; sha256: string | null; entries: AuditEntry[] | null; error?: string }[];
  /** The layer the kernel config audit belongs to. */
  auditLayer: string;
  /** Compensating controls for open audit findings (specs/audit/mitigations.yaml); none when absent. */
  mitigations?: readonly RuleMitigation[];
}

export type FindingStatus = 'open' | 'waived';

export interface Finding {
  id: string;
  layer: string;
  severity: Severity;
  status: FindingStatus;
  title: string;
  detail: string;
  /** What the finding rests on, in words; `evidence` gives the files and their sha256. */
  rests_on: string;
  evidence: Evidence[];
  /** What would close it: the audit rule's fix, or what a gap is missing. Not a mitigation. */
  fix: string | null;
  /** A compensating control in place, set only when its evidence all passed in this run. */
  mitigation: string | null;
  /** A declared mitigation, with each piece of evidence and whether it passed (present even when it did not). */
  mitigation_proof?: MitigationProof;
  waiver?: { reason: string; who: string };
}

export interface ProofItem {
  kind: 'check' | 'task';
  name: string;
  passed: boolean;
  /** Where it passed, or what did not. */
  detail: string;
}

export interface MitigationProof {
  control: string;
  proven: boolean;
  evidence: ProofItem[];
  /** For a mitigations.yaml entry: who answers for it and where it is written. */
  who?: string;
  at?: string;
}

export interface LayerSummary {
  id: string;
  title: string;
  /** Task instances of the layer that passed (host-side records, including guest-check tasks). */
  host_passed: string[];
  /** Per arch: in-guest checks of the layer that passed in every boot, and those that did not. */
  guest: Record<string, { passed: string[]; failed: string[] }>;
  /** Layer tasks named in the layers file that tasks/ does not have (yet). */
  not_in_catalog: string[];
  open: Record<Severity, number>;
}

export interface SecurityReport {
  format: 'clawos-security-report@1';
  verdict: 'PASS' | 'FAIL';
  /** Why it FAILs: one line per open CRITICAL and per open HIGH without a proven mitigation. */
  blocking: string[];
  summary: { findings: number; open: Record<Severity, number>; waived: Record<Severity, number> };
  /** Every file the report was computed from. */
  inputs: Evidence[];
  layers: LayerSummary[];
  findings: Finding[];
}

const zero = (): Record<Severity, number> => ({ CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 });
const rank = (s: Severity): number => SEVERITIES.indexOf(s);
const FAILED = new Set(['FAIL', 'TIMEOUT', 'INFRA_ERROR', 'BLOCKED']);

/** The blocking rule of G-04: `mitigation` is set only for a control whose evidence passed. */
export function isBlocking(f: Finding): boolean {
  return f.status === 'open' && (f.severity === 'CRITICAL' || (f.severity === 'HIGH' && !f.mitigation));
}

/** A mitigation's evidence against this run's records and boots: each item, and the files it rests on. */
function prove(inp: ReportInputs, m: Mitigation): { items: ProofItem[]; evidence: Evidence[] } {
  const items: ProofItem[] = [];
  const evidence = new Map<string, Evidence>();
  for (const ref of m.evidence) {
    if ('check' in ref) {
      const bad: string[] = [];
      let boots = 0;
      for (const b of inp.boots) {
        if (!b.records.length) bad.push(`${b.arch}: no boot records`);
        for (const r of b.records) {
          boots++;
          evidence.set(r.path, { label: `boot ${b.arch} ${r.boot.variant ?? ''}`.trim(), path: r.path, sha256: r.sha256 });
          const c = r.boot.checks?.find((x) => x.name === ref.check);
          if (c?.result !== 'pass') bad.push(`${b.arch} ${r.boot.variant ?? r.path}: ${c ? c.result : 'not reported'}`);
        }
      }
      items.push({ kind: 'check', name: ref.check, passed: !bad.length, detail: bad.length ? bad.join('; ') : `passed in all ${boots} boots (${inp.boots.map((b) => b.arch).join(', ')})` });
    } else {
      const spec = inp.catalog.get(ref.task);
      evidence.set(inp.state.path, { label: 'recorded results', path: inp.state.path, sha256: inp.state.sha256 });
      if (!spec) {
        items.push({ kind: 'task', name: ref.task, passed: false, detail: `${ref.task} is not in tasks/` });
        continue;
      }
      const ids = spec.per_arch ? inp.arches.map((a) => `${ref.task}@${a}`) : [ref.task];
      const bad = ids.filter((id) => inp.records[id]?.status !== 'PASS').map((id) => `${id}: ${inp.records[id]?.status ?? 'no recorded result'}`);
      items.push({ kind: 'task', name: ref.task, passed: !bad.length, detail: bad.length ? bad.join('; ') : `${ids.join(', ')} PASS` });
    }
  }
  return { items, evidence: [...evidence.values()] };
}

/** The mitigation fields of a finding: `mitigation` only when every piece of evidence passed. */
function mitigated(inp: ReportInputs, m: (Mitigation & { who?: string; at?: string }) | undefined, evidence: Evidence[]): Pick<Finding, 'mitigation' | 'mitigation_proof' | 'evidence'> {
  if (!m) return { mitigation: null, evidence };
  const p = prove(inp, m);
  const proven = p.items.every((i) => i.passed);
  const seen = new Set(evidence.map((e) => e.path));
  return {
    mitigation: proven ? m.control.trim() : null,
    mitigation_proof: { control: m.control.trim(), proven, evidence: p.items, ...(m.who ? { who: m.who } : {}), ...(m.at ? { at: m.at } : {}) },
    evidence: [...evidence, ...p.evidence.filter((e) => !seen.has(e.path)).map((e) => ({ ...e, label: `mitigation evidence: ${e.label}` }))],
  };
}

function recordEvidence(state: ReportInputs['state'], rec: RecordLike): Evidence[] {
  return [{ label: `recorded result of ${rec.id}`, path: state.path, sha256: state.sha256 }, ...(rec.evidence ?? [])];
}

export function computeSecurityReport(inp: ReportInputs): SecurityReport {
  const findings: Finding[] = [];
  const layerOfTask = new Map<string, { layer: Layer; task: LayerTask }>();
  for (const l of inp.layers) for (const t of l.tasks) layerOfTask.set(t.id, { layer: l, task: t });
  const summaries = new Map<string, LayerSummary>(
    inp.layers.map((l) => [
      l.id,
      {
        id: l.id,
        title: l.title,
        host_passed: [],
        guest: Object.fromEntries(inp.arches.map((a) => [a, { passed: [], failed: [] }])),
        not_in_catalog: l.tasks.filter((t) => !inp.catalog.has(t.id)).map((t) => t.id),
        open: zero(),
      },
    ]),
  );

  // ---- task instance records
  // Not built: one finding per layer and root cause (a NOT_CONFIGURED chain names its root).
  // Built but unproven (BUILT): a finding of its own kind, worded apart, for the layer is no better proven.
  const gaps = new Map<string, { layer: Layer; built: boolean; root: string; rootMessage: string; members: { id: string; gap: Gap }[]; evidence: Evidence[] }>();
  for (const l of inp.layers) {
    for (const t of l.tasks) {
      const spec = inp.catalog.get(t.id);
      if (!spec || spec.optional) continue;
      const ids = spec.per_arch ? inp.arches.map((a) => `${t.id}@${a}`) : [t.id];
      for (const id of ids) {
        const rec = inp.records[id];
        if (rec?.status === 'PASS') {
          summaries.get(l.id)!.host_passed.push(id);
        } else if (rec && FAILED.has(rec.status)) {
          findings.push({
            id: `TASK:${id}`,
            layer: l.id,
            severity: 'CRITICAL',
            status: 'open',
            title: `${id} ${rec.status}${rec.reason ? ` (${rec.reason})` : ''}`,
            detail: rec.message,
            rests_on: `the recorded result of ${id} in ${inp.state.path}`,
            evidence: recordEvidence(inp.state, rec),
            fix: null,
            mitigation: null,
          });
        } else {
          const built = rec?.status === 'BUILT';
          const root = rec ? ((built ? undefined : (rec.data as { not_configured_root?: { id: string; message: string } } | undefined)?.not_configured_root) ?? { id, message: rec.message }) : { id, message: 'no recorded result (not run)' };
          const key = `${l.id} ${built} ${root.id}`;
          const g = gaps.get(key) ?? { layer: l, built, root: root.id, rootMessage: root.message, members: [], evidence: [{ label: 'recorded results', path: inp.state.path, sha256: inp.state.sha256 }] };
          g.members.push({ id, gap: t.gap });
          gaps.set(key, g);
        }
      }
    }
  }
  for (const g of gaps.values()) {
    const worst = [...g.members].sort((a, b) => rank(a.gap.severity) - rank(b.gap.severity))[0]!;
    const names = g.members.map((m) => m.id);
    findings.push({
      id: `GAP:${g.layer.id}:${g.root}`,
      layer: g.layer.id,
      severity: worst.gap.severity,
      status: 'open',
      title: `${g.built ? 'built, not validated' : 'not built'}: ${names.join(', ')}`,
      detail: names.length === 1 && names[0] === g.root ? g.rootMessage : `${g.root}: ${g.rootMessage}`,
      rests_on: g.built
        ? `the recorded results of ${names.join(', ')} in ${inp.state.path} (BUILT: built, but no validation_cmd or in-guest check proves it works)`
        : `the recorded results of ${names.join(', ')} in ${inp.state.path} (NOT_CONFIGURED or absent)`,
      fix: worst.gap.note?.trim() ? worst.gap.note.trim() : null,
      ...mitigated(inp, worst.gap.mitigation, g.evidence),
    });
  }

  // ---- packages the Buildroot backend built from another source than Buildroot's
  // (buildroot step data.overrides): the version Buildroot pins and its patches
  // are not what shipped, so a reviewer must see each one.
  for (const rec of Object.values(inp.records)) {
    const rows = (rec.data as { overrides?: { package: string; wanted: string; used: string; buildrootPatchesNotApplied: string[] }[] } | undefined)?.overrides;
    if (!Array.isArray(rows)) continue;
    const layer = layerOfTask.get(rec.task_id)?.layer.id ?? 'unclassified';
    for (const r of rows) {
      const skipped = r.buildrootPatchesNotApplied;
      findings.push({
        id: `BUILDROOT-SOURCE:${rec.id}:${r.package}`,
        layer,
        severity: skipped.length ? 'MEDIUM' : 'LOW',
        status: 'open',
        title: `${rec.id}: ${r.package} built from ${r.used}, not Buildroot's ${r.wanted}`,
        detail:
          `Buildroot pins ${r.package} ${r.wanted}; this image was built from ${r.used}` +
          (skipped.length ? `; Buildroot's patches not applied: ${skipped.join(', ')}` : "; Buildroot has no patches for it"),
        rests_on: `the recorded result of ${rec.id} in ${inp.state.path}`,
        evidence: recordEvidence(inp.state, rec),
        fix: `review the version used against Buildroot's${skipped.length ? ' and its patches' : ''}, or lock a Debian source package at Buildroot's version`,
        mitigation: null,
      });
    }
  }

  // ---- in-guest checks, per arch and boot
  const layerOfCheck = (name: string): string => {
    for (const t of inp.checkTasks.get(name) ?? []) {
      const l = layerOfTask.get(t);
      if (l) return l.layer.id;
    }
    return 'unclassified';
  };
  for (const b of inp.boots) {
    if (!b.records.length) {
      findings.push({
        id: `GUEST:${b.arch}`,
        layer: 'unclassified',
        severity: 'CRITICAL',
        status: 'open',
        title: `${b.arch}: no boot records`,
        detail: `no boot record in ${b.dir}: nothing was proven inside a ${b.arch} guest`,
        rests_on: `the absence of boot records in ${b.dir}`,
        evidence: [],
        fix: null,
        mitigation: null,
      });
      continue;
    }
    const perCheck = new Map<string, { ok: boolean }>();
    for (const r of b.records) {
      const variant = r.boot.variant ?? r.path;
      const seen = new Set<string>();
      const results = [
        ...(r.boot.checks ?? []),
        ...(r.boot.missing_checks ?? []).map((name) => ({ name, result: 'missing', value: undefined as string | undefined })),
      ];
      for (const c of results) {
        if (seen.has(c.name)) continue;
        seen.add(c.name);
        const layer = layerOfCheck(c.name);
        const ok = c.result === 'pass';
        perCheck.set(c.name, { ok: (perCheck.get(c.name)?.ok ?? true) && ok });
        if (ok) continue;
        findings.push({
          id: `GUEST:${b.arch}/${variant}:${c.name}`,
          layer,
          severity: 'CRITICAL',
          status: 'open',
          title: `in-guest check ${c.name} ${c.result} on ${b.arch} (${variant})`,
          detail: c.value ? `${c.name}: ${c.value}` : `${c.name}: ${c.result}`,
          rests_on: `the boot record ${r.path} (in-guest check ${c.name})`,
          evidence: [{ label: `boot ${b.arch} ${variant}`, path: r.path, sha256: r.sha256 }],
          fix: null,
          mitigation: null,
        });
      }
    }
    for (const [name, { ok }] of [...perCheck.entries()].sort(([a], [b2]) => a.localeCompare(b2))) {
      const s = summaries.get(layerOfCheck(name));
      if (!s) continue;
      (ok ? s.guest[b.arch]!.passed : s.guest[b.arch]!.failed).push(name);
    }
  }

  // ---- the kernel config audit (G-03)
  for (const a of inp.audits) {
    if (!a.entries) {
      findings.push({
        id: `AUDIT:${a.arch}`,
        layer: inp.auditLayer,
        severity: 'CRITICAL',
        status: 'open',
        title: `${a.arch}: no kernel config audit`,
        detail: a.error ?? `${a.path} is missing`,
        rests_on: `the absence of ${a.path}`,
        evidence: [],
        fix: null,
        mitigation: null,
      });
      continue;
    }
    const seen = new Map<string, number>();
    for (const e of a.entries) {
      if (e.check_result_bool) continue;
      const base = `${e.type === 'module_signature' ? 'MODSIG' : 'KCONFIG'}@${a.arch}:${e.option_name}`;
      const n = (seen.get(base) ?? 0) + 1;
      seen.set(base, n);
      findings.push({
        id: n === 1 ? base : `${base}#${n}`,
        layer: inp.auditLayer,
        severity: e.severity,
        status: e.waived ? 'waived' : 'open',
        title: e.type === 'module_signature' ? `${e.option_name}: ${e.check_result}` : `${ruleName(e.option_name, e.desired_val)} (${e.decision}): ${e.check_result}`,
        detail: e.rationale,
        rests_on: `the G-03 audit entry for ${e.option_name} in ${a.path} (rule ${e.rule})`,
        fix: e.fix?.trim() ? e.fix.trim() : null,
        // Only for what is still open: a waived finding needs no compensating control to stop blocking.
        ...mitigated(
          inp,
          e.waived ? undefined : (inp.mitigations ?? []).find((m) => m.option === e.option_name && (m.desired === undefined || m.desired === e.desired_val) && (!m.arches || m.arches.includes(a.arch))),
          [{ label: `kernel config audit ${a.arch}`, path: a.path, sha256: a.sha256! }],
        ),
        ...(e.waived ? { waiver: { reason: e.waiver_reason ?? '', who: e.waiver_who ?? '' } } : {}),
      });
    }
  }

  const layerOrder = new Map(inp.layers.map((l, i) => [l.id, i]));
  findings.sort(
    (x, y) =>
      rank(x.severity) - rank(y.severity) ||
      (x.status === y.status ? 0 : x.status === 'open' ? -1 : 1) ||
      (layerOrder.get(x.layer) ?? 1e9) - (layerOrder.get(y.layer) ?? 1e9) ||
      (x.id < y.id ? -1 : x.id > y.id ? 1 : 0),
  );
  const open = zero();
  const waived = zero();
  for (const f of findings) {
    (f.status === 'open' ? open : waived)[f.severity]++;
    if (f.status === 'open') {
      const s = summaries.get(f.layer);
      if (s) s.open[f.severity]++;
    }
  }
  const blocking = findings
    .filter(isBlocking)
    .map((f) => {
      if (f.severity !== 'HIGH') return `${f.id}: ${f.severity}: ${f.title}`;
      const notPassed = f.mitigation_proof?.evidence.filter((i) => !i.passed).map((i) => `${i.kind} ${i.name} (${i.detail})`);
      return `${f.id}: HIGH without a proven mitigation: ${f.title}${notPassed?.length ? `; its mitigation's evidence did not pass: ${notPassed.join(', ')}` : ''}`;
    });
  const inputs: Evidence[] = [
    { label: 'recorded results', path: inp.state.path, sha256: inp.state.sha256 },
    ...inp.boots.flatMap((b) => b.records.map((r) => ({ label: `boot record ${b.arch}`, path: r.path, sha256: r.sha256 }))),
    ...inp.audits.filter((a) => a.sha256).map((a) => ({ label: `kernel config audit ${a.arch}`, path: a.path, sha256: a.sha256! })),
  ];
  return {
    format: 'clawos-security-report@1',
    verdict: blocking.length ? 'FAIL' : 'PASS',
    blocking,
    summary: { findings: findings.length, open, waived },
    inputs,
    layers: [...summaries.values()],
    findings,
  };
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const counts = (c: Record<Severity, number>): string => SEVERITIES.map((s) => `${c[s]} ${s}`).join(', ');

export function securityReportMarkdown(r: SecurityReport, arches: readonly string[]): string {
  const out: string[] = [];
  out.push('# ClawOS security report', '');
  out.push(`**${r.verdict}**: open findings ${counts(r.summary.open)}; waived ${counts(r.summary.waived)}.`, '');
  out.push(
    'Computed by G-04 from the recorded results only (task records, boot records, the G-03 kernel config audit); ' +
      'it FAILs on any open CRITICAL finding and on any open HIGH finding without a mitigation whose evidence passed in this run.',
    '',
  );
  out.push('## Blocking', '');
  if (r.blocking.length) for (const b of r.blocking) out.push(`- ${b}`);
  else out.push('None.');
  out.push('', '## What is proven where', '');
  out.push(`| layer | host (task instances passed) | ${arches.map((a) => `${a} guest (in-guest checks passed in every boot)`).join(' | ')} | open findings |`);
  out.push(`|---|---|${arches.map(() => '---|').join('')}---|`);
  for (const l of r.layers) {
    const guest = arches.map((a) => {
      const g = l.guest[a];
      if (!g || (!g.passed.length && !g.failed.length)) return '–';
      return [...g.passed, ...g.failed.map((f) => `**${f} (not passed)**`)].join(', ');
    });
    const host = l.host_passed.join(', ') || '–';
    const nic = l.not_in_catalog.length ? ` (not in tasks/: ${l.not_in_catalog.join(', ')})` : '';
    out.push(`| ${cell(l.title)} | ${cell(host + nic)} | ${guest.map(cell).join(' | ')} | ${counts(l.open)} |`);
  }
  out.push('', '## Findings', '');
  if (!r.findings.length) out.push('None.');
  for (const f of r.findings) {
    out.push(`### ${f.severity} ${f.status}: ${f.title}`, '');
    out.push(`- id: \`${f.id}\` · layer: ${f.layer}`);
    out.push(`- detail: ${f.detail.replace(/\n/g, ' ')}`);
    out.push(`- rests on: ${f.rests_on}`);
    for (const e of f.evidence) out.push(`  - \`${e.path}\` sha256 \`${e.sha256}\` (${e.label})`);
    if (f.fix) out.push(`- fix: ${f.fix.replace(/\n/g, ' ')}`);
    const p = f.mitigation_proof;
    if (!p) out.push('- mitigation: **none in place**');
    else {
      out.push(`- mitigation${p.proven ? '' : ' (**not proven in this run**)'}: ${p.control.replace(/\n/g, ' ')}${p.who ? ` (${p.who}, ${p.at})` : ''}`);
      for (const i of p.evidence) out.push(`  - ${i.kind} ${i.name}: ${i.passed ? 'passed' : '**not passed**'}: ${i.detail}`);
    }
    if (f.waiver) out.push(`- waived by ${f.waiver.who}: ${f.waiver.reason}`);
    out.push('');
  }
  out.push('## Inputs', '');
  for (const e of r.inputs) out.push(`- \`${e.path}\` sha256 \`${e.sha256}\` (${e.label})`);
  out.push('');
  return out.join('\n');
}
