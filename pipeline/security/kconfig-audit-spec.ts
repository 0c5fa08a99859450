/**
 * The kernel config audit's data: rules (specs/audit/kconfig-rules.yaml) and
 * waivers (specs/audit/waivers.yaml), schema-checked and then checked for what
 * a schema cannot say. Every problem is a located diagnostic (file:line:col),
 * all of them at once, so `validate` and G-03 report the same lines.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseYaml, schemaDiagnostics, type Diagnostic, type LocatedYaml } from '../../lib/yaml-source.js';
import type { ErrorObject } from 'ajv';
import { compileSchema, errorsText } from '../../lib/data.js';

export const RULES_FILE = 'specs/audit/kconfig-rules.yaml';
export const WAIVERS_FILE = 'specs/audit/waivers.yaml';
export const RULES_SCHEMA = 'specs/schemas/audit/kconfig-rules.schema.json';
export const WAIVERS_SCHEMA = 'specs/schemas/audit/waivers.schema.json';

export type Severity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
export const SEVERITIES: readonly Severity[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

/** y | "is not set" | a literal .config value | at least a number or another option's value. */
export type Desired = string | { min: number | string };

export interface AuditRule {
  option: string;
  desired: Desired;
  alternatives?: { option: string; desired: Desired }[];
  arches: string[];
  source: string;
  reason: string;
  severity: Severity;
  rationale: string;
  /** What to change so the rule passes (not a mitigation: see specs/audit/mitigations.yaml). */
  fix: string;
  /** Where the rule is written, for diagnostics and the audit's findings. */
  at: string;
}

export interface ModuleSignatureRule {
  magic: string;
  source: string;
  reason: string;
  severity: Severity;
  rationale: string;
  /** What to change so the rule passes (not a mitigation: see specs/audit/mitigations.yaml). */
  fix: string;
  at: string;
}

export interface Waiver {
  option?: string;
  desired?: Desired;
  module?: string;
  reason: string;
  who: string;
  at: string;
}

export interface AuditSpec {
  rules: AuditRule[];
  moduleSignature: ModuleSignatureRule;
  waivers: Waiver[];
  rulesVersion: string;
  waiversVersion: string;
}

/** The desired value as kernel-hardening-checker prints it (`desired_val`). */
export function desiredVal(d: Desired): string {
  return typeof d === 'string' ? d : `>= ${d.min}`;
}

function schemaCheck(src: LocatedYaml, schema: object, keep: (e: ErrorObject) => boolean = () => true): Diagnostic[] {
  if (src.errors.length) return src.errors;
  const validate = compileSchema(schema);
  if (validate(src.value)) return [];
  const errors = (validate.errors ?? []).filter(keep);
  const out = schemaDiagnostics(src, errors);
  if (!out.length && errors.length) out.push({ ...src.locate([]), message: `does not match the schema: ${errorsText(errors)}` });
  return out;
}

const at = (src: LocatedYaml, path: (string | number)[], key = false): string => {
  const l = src.locate(path, key);
  return `${l.file}:${l.line}`;
};

/** How a rule or waiver is named in messages: CONFIG_X=y, CONFIG_X is not set, CONFIG_X >= 65536, module m.ko. */
export function ruleName(option: string, desired: Desired | undefined): string {
  if (desired === undefined) return option;
  const v = desiredVal(desired);
  return v === 'is not set' || v.startsWith('>=') ? `${option} ${v}` : `${option}=${v}`;
}

const waiverName = (w: { option?: unknown; desired?: unknown; module?: unknown }): string =>
  typeof w.module === 'string'
    ? `module ${w.module}`
    : ruleName(typeof w.option === 'string' ? w.option : '(no option)', w.desired as Desired | undefined);

/**
 * Parse and check both files' texts. `arches` are the known architecture
 * names (specs/arch/*.yaml); a rule naming another is an error.
 */
export function checkAuditSpecTexts(o: {
  rulesText: string;
  waiversText: string;
  rulesSchema: object;
  waiversSchema: object;
  arches: readonly string[];
  rulesFile?: string;
  waiversFile?: string;
}): { ok: true; spec: AuditSpec } | { ok: false; problems: Diagnostic[] } {
  const rulesSrc = parseYaml(o.rulesText, o.rulesFile ?? RULES_FILE);
  const waiversSrc = parseYaml(o.waiversText, o.waiversFile ?? WAIVERS_FILE);
  const problems: Diagnostic[] = [];
  const ruleDiags = schemaCheck(rulesSrc, o.rulesSchema);
  problems.push(...ruleDiags);
  // A missing or blank reason gets one message naming the waiver (below), not ajv's.
  const isReasonError = (e: ErrorObject): boolean =>
    (e.keyword === 'required' && (e.params as { missingProperty?: string }).missingProperty === 'reason') ||
    /^\/waivers\/\d+\/reason$/.test(e.instancePath);
  const waiverDiags = schemaCheck(waiversSrc, o.waiversSchema, (e) => !isReasonError(e));
  problems.push(...waiverDiags);

  const rulesDoc = rulesSrc.value as { version?: string; rules?: Omit<AuditRule, 'at'>[]; module_signature?: Omit<ModuleSignatureRule, 'at'> } | undefined;
  const rules: AuditRule[] = [];
  if (!ruleDiags.length && rulesDoc?.rules) {
    const seen = new Map<string, number>();
    rulesDoc.rules.forEach((r, i) => {
      for (const a of r.arches) {
        if (!o.arches.includes(a)) {
          problems.push({ ...rulesSrc.locate(['rules', i, 'arches', r.arches.indexOf(a)]), message: `rules.${i} (${r.option}): unknown architecture "${a}" (known: ${o.arches.join(', ')})` });
        }
        const key = `${r.option} ${desiredVal(r.desired)} ${a}`;
        const prev = seen.get(key);
        if (prev !== undefined) {
          problems.push({ ...rulesSrc.locate(['rules', i]), message: `rules.${i}: ${ruleName(r.option, r.desired)} for ${a} is already rules.${prev}` });
        } else seen.set(key, i);
      }
      rules.push({ ...r, at: at(rulesSrc, ['rules', i]) });
    });
  }

  const waiversDoc = waiversSrc.value as { version?: string; waivers?: Record<string, unknown>[] } | undefined;
  const waivers: Waiver[] = [];
  if (!waiversSrc.errors.length && Array.isArray(waiversDoc?.waivers)) {
    waiversDoc!.waivers!.forEach((w, i) => {
      if (!w || typeof w !== 'object') return;
      const loc = waiversSrc.locate(['waivers', i]);
      const name = waiverName(w);
      if (typeof w.reason !== 'string' || w.reason.trim() === '') {
        problems.push({ ...loc, message: `waivers.${i} (${name}): a waiver needs a written reason` });
      }
      const hasOption = w.option !== undefined;
      const hasModule = w.module !== undefined;
      if (hasOption === hasModule) {
        problems.push({ ...loc, message: `waivers.${i} (${name}): name either an option (with the desired value it waives) or a module, not ${hasOption ? 'both' : 'neither'}` });
      } else if (hasOption && w.desired === undefined) {
        problems.push({ ...loc, message: `waivers.${i} (${name}): say which desired value is waived (desired:), since one option may have several rules` });
      } else if (hasOption && !ruleDiags.length && typeof w.option === 'string') {
        const dv = desiredVal(w.desired as Desired);
        if (!rules.some((r) => r.option === w.option && desiredVal(r.desired) === dv)) {
          problems.push({ ...loc, message: `waivers.${i} (${name}): matches no rule in ${rulesSrc.file}` });
        }
      }
      waivers.push({
        ...(hasOption ? { option: w.option as string, desired: w.desired as Desired } : {}),
        ...(hasModule ? { module: w.module as string } : {}),
        reason: typeof w.reason === 'string' ? w.reason : '',
        who: String(w.who ?? ''),
        at: `${loc.file}:${loc.line}`,
      });
    });
  }
  if (problems.length) {
    problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
    return { ok: false, problems };
  }
  return {
    ok: true,
    spec: {
      rules,
      moduleSignature: { ...rulesDoc!.module_signature!, at: at(rulesSrc, ['module_signature'], true) },
      waivers,
      rulesVersion: rulesDoc!.version!,
      waiversVersion: waiversDoc!.version!,
    },
  };
}

/** Read both files and their schemas from the repository and check them. */
export async function loadAuditSpec(
  repoRoot: string,
  arches: readonly string[],
  files: { rules?: string; waivers?: string } = {},
): Promise<{ ok: true; spec: AuditSpec } | { ok: false; problems: Diagnostic[] }> {
  const rulesFile = files.rules ?? RULES_FILE;
  const waiversFile = files.waivers ?? WAIVERS_FILE;
  const read = (p: string) => readFile(join(repoRoot, p), 'utf8');
  return checkAuditSpecTexts({
    rulesText: await read(rulesFile),
    waiversText: await read(waiversFile),
    rulesSchema: JSON.parse(await read(RULES_SCHEMA)) as object,
    waiversSchema: JSON.parse(await read(WAIVERS_SCHEMA)) as object,
    arches,
    rulesFile,
    waiversFile,
  });
}

/** For `clawos-build validate`: the audit data's problems, [] when it is valid. */
export async function auditSpecDiagnostics(repoRoot: string, arches: readonly string[]): Promise<Diagnostic[]> {
  const r = await loadAuditSpec(repoRoot, arches);
  return r.ok ? [] : r.problems;
}
