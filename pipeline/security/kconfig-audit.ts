/**
 * The kernel config audit (G-03): every rule of specs/audit/kconfig-rules.yaml
 * that applies to an architecture, evaluated against that arch's final .config,
 * plus a signature check of every built module file. The result is a list in
 * kernel-hardening-checker's JSON shape (option_name, type, desired_val,
 * decision, reason, check_result, check_result_bool) with ClawOS's severity and
 * waiver fields added. Unlike that tool, the verdict is not "exit 0 whatever
 * fails": a non-waived CRITICAL failure fails the audit.
 */
import { open } from 'node:fs/promises';
import { desiredVal, SEVERITIES, type AuditRule, type AuditSpec, type Desired, type Severity, type Waiver } from './kconfig-audit-spec.js';
import type { FailureReason } from '../catalog/outcome.js';

/** The failure reason of a non-waived CRITICAL finding (G-03) or a blocking one (G-04). */
export const AUDIT_CRITICAL_REASON: FailureReason = 'audit-critical';

export interface AuditEntry {
  option_name: string;
  type: 'kconfig' | 'module_signature';
  desired_val: string;
  /** Who recommends it (kernel-hardening-checker's "decision"): kspp, defconfig, clipos, grsec, … or clawos. */
  decision: string;
  /** kernel-hardening-checker's category: self_protection, cut_attack_surface, … */
  reason: string;
  check_result: string;
  check_result_bool: boolean;
  severity: Severity;
  waived: boolean;
  waiver_reason: string | null;
  waiver_who: string | null;
  rationale: string;
  /** What to change so the rule passes (not a mitigation: see specs/audit/mitigations.yaml). */
  fix: string;
  /** The rule (file:line) that produced this entry. */
  rule: string;
  /** module_signature entries: the file's sha256. */
  sha256?: string;
}

/** kernel-hardening-checker's state of an option: its value, "is not set", or undefined when absent. */
function stateOf(config: ReadonlyMap<string, string>, option: string): string | undefined {
  const v = config.get(option.replace(/^CONFIG_/, ''));
  return v === 'n' ? 'is not set' : v;
}

/** One option against one desired value; the texts follow kernel-hardening-checker's. */
function checkOne(config: ReadonlyMap<string, string>, option: string, desired: Desired): string {
  const state = stateOf(config, option);
  if (typeof desired === 'string') {
    if (state === desired) return 'OK';
    if (state === undefined) return desired === 'is not set' ? 'OK: is not found' : 'FAIL: is not found';
    return `FAIL: "${state}"`;
  }
  if (state === undefined) return 'FAIL: is not found';
  let min: number;
  if (typeof desired.min === 'number') min = desired.min;
  else {
    const ref = stateOf(config, desired.min);
    if (ref === undefined || !/^-?\d+$/.test(ref)) return `FAIL: ${desired.min} is not found`;
    min = Number(ref);
  }
  if (!/^-?(0x[0-9a-fA-F]+|\d+)$/.test(state)) return `FAIL: "${state}"`;
  const n = Number(state);
  if (n < min) return `FAIL: "${state}" < ${min}`;
  return n === min ? 'OK' : `OK: "${state}" >= ${min}`;
}

/** The rule's main option, then each alternative (an OR, as the tool does for renamed options). */
export function evaluateRule(config: ReadonlyMap<string, string>, rule: Pick<AuditRule, 'option' | 'desired' | 'alternatives'>): string {
  const main = checkOne(config, rule.option, rule.desired);
  if (main.startsWith('OK')) return main;
  for (const alt of rule.alternatives ?? []) {
    const r = checkOne(config, alt.option, alt.desired);
    if (r === 'OK') return `OK: ${alt.option} is "${desiredVal(alt.desired)}"`;
    if (r === 'OK: is not found') return `OK: ${alt.option} is not found`;
    if (r.startsWith('OK')) return `OK: ${alt.option} ${r.slice(4)}`;
  }
  return main;
}

function findWaiver(waivers: readonly Waiver[], match: (w: Waiver) => boolean): Waiver | undefined {
  return waivers.find(match);
}

function entry(
  base: Omit<AuditEntry, 'check_result_bool' | 'waived' | 'waiver_reason' | 'waiver_who'>,
  waiver: Waiver | undefined,
): AuditEntry {
  const ok = base.check_result.startsWith('OK');
  const applied = !ok && waiver ? waiver : undefined;
  // kernel-hardening-checker's keys first, in its order; ClawOS's after them.
  return {
    option_name: base.option_name,
    type: base.type,
    desired_val: base.desired_val,
    decision: base.decision,
    reason: base.reason,
    check_result: base.check_result,
    check_result_bool: ok,
    severity: base.severity,
    waived: !!applied,
    waiver_reason: applied ? applied.reason : null,
    waiver_who: applied ? applied.who : null,
    rationale: base.rationale,
    fix: base.fix,
    rule: base.rule,
    ...(base.sha256 ? { sha256: base.sha256 } : {}),
  };
}

/** Every rule that applies to `arch`, in the rules file's order. */
export function auditConfig(spec: AuditSpec, config: ReadonlyMap<string, string>, arch: string): AuditEntry[] {
  return spec.rules
    .filter((r) => r.arches.includes(arch))
    .map((r) =>
      entry(
        {
          option_name: r.option,
          type: 'kconfig',
          desired_val: desiredVal(r.desired),
          decision: r.source,
          reason: r.reason,
          check_result: evaluateRule(config, r),
          severity: r.severity,
          rationale: r.rationale,
          fix: r.fix,
          rule: r.at,
        },
        findWaiver(spec.waivers, (w) => w.option === r.option && w.desired !== undefined && desiredVal(w.desired) === desiredVal(r.desired)),
      ),
    );
}

/** Does the file end with the module signature magic? */
export async function hasSignatureMagic(path: string, magic: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const want = Buffer.from(magic, 'utf8');
    if (size < want.length) return false;
    const buf = Buffer.alloc(want.length);
    await fh.read(buf, 0, want.length, size - want.length);
    return buf.equals(want);
  } finally {
    await fh.close();
  }
}

/**
 * One module_signature entry per module file. `path` is how the entry names it
 * (build-relative); `sha256` is null when the file is missing.
 */
export async function auditModule(
  spec: AuditSpec,
  file: { path: string; abs: string; sha256: string | null },
): Promise<AuditEntry> {
  const m = spec.moduleSignature;
  const name = file.path.split('/').pop()!;
  let result: string;
  if (file.sha256 === null) result = 'FAIL: is not found';
  else result = (await hasSignatureMagic(file.abs, m.magic)) ? 'OK' : 'FAIL: no module signature';
  return entry(
    {
      option_name: file.path,
      type: 'module_signature',
      desired_val: JSON.stringify(m.magic.replace(/\n$/, '')),
      decision: m.source,
      reason: m.reason,
      check_result: result,
      severity: m.severity,
      rationale: m.rationale,
      fix: m.fix,
      rule: m.at,
      ...(file.sha256 ? { sha256: file.sha256 } : {}),
    },
    findWaiver(spec.waivers, (w) => w.module === name),
  );
}

export interface AuditSummary {
  total: number;
  ok: number;
  /** Failed and not waived, by severity. */
  failed: Record<Severity, number>;
  waived: number;
  /** Non-waived CRITICAL failures: these fail the audit. */
  blocking: AuditEntry[];
}

export function summarize(entries: readonly AuditEntry[]): AuditSummary {
  const failed: Record<Severity, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 };
  let ok = 0;
  let waived = 0;
  for (const e of entries) {
    if (e.check_result_bool) ok++;
    else if (e.waived) waived++;
    else failed[e.severity]++;
  }
  return { total: entries.length, ok, failed, waived, blocking: entries.filter((e) => !e.check_result_bool && !e.waived && e.severity === 'CRITICAL') };
}

/** "150 checks: 100 OK, 41 failed (0 CRITICAL, 5 HIGH, 26 MEDIUM, 10 LOW), 9 waived". */
export function summaryLine(s: AuditSummary): string {
  const nFailed = SEVERITIES.reduce((n, k) => n + s.failed[k], 0);
  return (
    `${s.total} checks: ${s.ok} OK, ${nFailed} failed (${SEVERITIES.map((k) => `${s.failed[k]} ${k}`).join(', ')}), ${s.waived} waived`
  );
}

/** One line per blocking failure: what, desired, found, and the rule. */
export function blockingLines(s: AuditSummary): string[] {
  return s.blocking.map((e) => `${e.option_name}: desired ${e.desired_val}, ${e.check_result} (${e.rule})`);
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The human summary next to the JSON. */
export function auditMarkdown(o: {
  arch: string;
  config: { path: string; sha256: string };
  rulesVersion: string;
  waiversVersion: string;
  entries: readonly AuditEntry[];
  verdict: 'PASS' | 'FAIL';
}): string {
  const s = summarize(o.entries);
  const out: string[] = [];
  out.push(`# Kernel config audit: ${o.arch}`, '');
  out.push(`**${o.verdict}**: ${summaryLine(s)}.`, '');
  out.push(
    `Config: \`${o.config.path}\` (sha256 \`${o.config.sha256}\`) · rules ${o.rulesVersion} · waivers ${o.waiversVersion}. ` +
      'A non-waived CRITICAL failure fails the audit; every other failure is listed here and in the security report (G-04).',
    '',
  );
  const failing = o.entries.filter((e) => !e.check_result_bool);
  for (const sev of SEVERITIES) {
    const rows = failing.filter((e) => e.severity === sev);
    if (!rows.length) continue;
    out.push(`## ${sev} (${rows.length})`, '', '| option | desired | result | source | waived | fix |', '|---|---|---|---|---|---|');
    for (const e of rows) {
      const w = e.waived ? `yes (${e.waiver_who}): ${e.waiver_reason}` : 'no';
      out.push(`| \`${cell(e.option_name)}\` | ${cell(e.desired_val)} | ${cell(e.check_result)} | ${e.decision} | ${cell(w)} | ${cell(e.fix)} |`);
    }
    out.push('');
  }
  const passed = o.entries.filter((e) => e.check_result_bool);
  out.push(`## Passed (${passed.length})`, '');
  out.push(passed.map((e) => `\`${e.option_name}\``).join(', ') || 'None.', '');
  return out.join('\n');
}
