/**
 * The P1 spec checks: one machine-readable spec (YAML) against its JSON Schema
 * and its semantic rules, every problem as `file:line:col: message`. The
 * spec-freeze step (pipeline/steps/spec-freeze.ts) freezes what passes;
 * `clawos-build validate` runs the same checks through specFreezeDiagnostics.
 */
import { checkSeccompWhitelist } from '../security/seccomp-whitelist.js';
import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, join, posix, relative } from 'node:path';
import { compileSchema, errorsText } from '../../lib/data.js';
import { parseYaml, schemaDiagnostics, formatDiagnostic, type Diagnostic, type LocatedYaml } from '../../lib/yaml-source.js';
import type { LoadedTask } from '../catalog/task-spec.js';
import { sha256Hex } from '../../lib/hash.js';
import { InfraError, InternalError, UserError } from '../../lib/errors.js';
import { checkClawfs, checkEbpfEvents, checkIpcProtocol, checkPublicApi, type SpecCheckEnv, type SpecProblem } from './spec-rules.js';
import { checkWitIndex } from './wit-check.js';

export type { SpecCheckEnv, SpecProblem } from './spec-rules.js';

/** A rule the schema cannot express. Runs only on schema-valid documents. */
export type SemanticCheck = (spec: unknown, env: SpecCheckEnv) => SpecProblem[] | Promise<SpecProblem[]>;

export interface FreezeRecord {
  spec_id: string;
  version: string;
  /** Repo-relative path of the spec. */
  path: string;
  sha256: string;
  schema_sha256: string;
  /** ISO time from SOURCE_DATE_EPOCH, so freezing is reproducible. */
  frozen_at: string;
  /** Files the spec pins (P1.1's .wit), frozen with it. Absent when there are none. */
  attachments?: { path: string; sha256: string }[];
}

interface SliceQuota {
  pids_max: number | 'max';
  tokio_threads?: number;
  wasm_workers?: number;
  buffer?: number;
}

/**
 * P1.5 (plan C-06 / D-03): pids.max >= tokio threads + WASM workers + buffer,
 * for every slice that declares those inputs. pids.max "max" is unlimited.
 */
export function checkCgroupPids(spec: unknown): SpecProblem[] {
  const slices = (spec as { slices?: Record<string, SliceQuota> }).slices ?? {};
  const out: SpecProblem[] = [];
  for (const [name, s] of Object.entries(slices)) {
    const { tokio_threads: t, wasm_workers: w, buffer: b, pids_max: p } = s;
    if (t === undefined || w === undefined || b === undefined || p === 'max') continue;
    const need = t + w + b;
    if (p < need) {
      out.push({
        path: ['slices', name, 'pids_max'],
        message: `${name}: pids.max ${p} < tokio threads ${t} + WASM workers ${w} + buffer ${b} = ${need}`,
      });
    }
  }
  return out;
}

/** Semantic checks by spec_id. */
export const semanticChecks: ReadonlyMap<string, SemanticCheck> = new Map<string, SemanticCheck>([
  ['P1.1', checkWitIndex],
  ['P1.2', checkSeccompWhitelist],
  ['P1.3', checkEbpfEvents],
  ['P1.4', checkClawfs],
  ['P1.5', checkCgroupPids],
  ['P1.7', checkIpcProtocol],
  ['P1.8', checkPublicApi],
]);

/** Repo-relative files a (schema-valid) spec pins and that are frozen with it, by spec_id. */
export const specAttachments: ReadonlyMap<string, (spec: unknown) => string[]> = new Map([
  ['P1.1', (spec: unknown) => [(spec as { wit: { file: string } }).wit.file]],
]);

export type SpecCheckResult =
  | { ok: true; value: { spec_id: string; version: string } & Record<string, unknown> }
  | { ok: false; problems: Diagnostic[] };

type Checked =
  | { done: SpecCheckResult }
  | { src: LocatedYaml; value: { spec_id: string; version: string } & Record<string, unknown> };

/** Parse and schema-check: a result when that already fails, else the value for the semantic check. */
function parseAndValidate(text: string, file: string, schema: object): Checked {
  const src: LocatedYaml = parseYaml(text, file);
  if (src.errors.length) return { done: { ok: false, problems: src.errors } };
  const validate = compileSchema(schema);
  if (!validate(src.value)) {
    const problems = schemaDiagnostics(src, validate.errors ?? []);
    if (!problems.length) {
      // Only summary errors (oneOf/anyOf) were left: still say something.
      problems.push({ ...src.locate([]), message: `does not match the schema: ${errorsText(validate.errors)}` });
    }
    return { done: { ok: false, problems } };
  }
  return { src, value: src.value as { spec_id: string; version: string } & Record<string, unknown> };
}

function located(src: LocatedYaml, value: { spec_id: string; version: string } & Record<string, unknown>, problems: SpecProblem[]): SpecCheckResult {
  if (!problems.length) return { ok: true, value };
  return { ok: false, problems: problems.map((p) => ({ ...(p.at ?? src.locate(p.path, p.key)), message: p.message })) };
}

/**
 * Parse, schema-check and semantically check a spec's text. `file` is the name
 * used in diagnostics (the repo-relative path); `env` says where files the spec
 * names are read from. Throws InfraError only when a checker's tool (the WIT
 * parser) cannot be loaded.
 */
export async function checkSpec(text: string, file: string, schema: object, env: SpecCheckEnv): Promise<SpecCheckResult> {
  const c = parseAndValidate(text, file, schema);
  if ('done' in c) return c.done;
  const check = semanticChecks.get(c.value.spec_id);
  return located(c.src, c.value, check ? await check(c.value, env) : []);
}

/**
 * checkSpec for specs whose semantic check reads no other file (all but P1.1 and P1.8):
 * synchronous. A spec whose check is asynchronous (P1.1, P1.8) needs checkSpec.
 */
export function checkSpecText(text: string, file: string, schema: object, env: SpecCheckEnv = { repoRoot: process.cwd() }): SpecCheckResult {
  const c = parseAndValidate(text, file, schema);
  if ('done' in c) return c.done;
  const check = semanticChecks.get(c.value.spec_id);
  const problems = check ? check(c.value, env) : [];
  if (problems instanceof Promise) {
    // The check has started reading; let it finish quietly, and say which function to use.
    problems.catch(() => undefined);
    throw new InternalError(`checkSpecText: the ${c.value.spec_id} check reads other files; use checkSpec`);
  }
  return located(c.src, c.value, problems);
}

/** `name.yaml` -> `name.freeze.json`. */
export function freezeRecordName(specFile: string): string {
  return `${basename(specFile).replace(/\.ya?ml$/, '')}.freeze.json`;
}

/** A `with:` path parameter of a spec-freeze task, normalised; UserError when it leaves the repository. */
export function repoRelParam(params: Record<string, unknown>, key: 'spec' | 'schema'): string {
  const v = params[key];
  if (typeof v !== 'string' || v === '') throw new UserError(`spec-freeze: parameter "${key}" must be a repo-relative path`);
  const norm = posix.normalize(v.replace(/\\/g, '/'));
  if (isAbsolute(v) || norm.startsWith('../') || norm === '..') {
    throw new UserError(`spec-freeze: parameter "${key}" must be a path inside the repository, got ${JSON.stringify(v)}`);
  }
  return norm;
}

/**
 * Every spec a `uses: spec-freeze` task freezes, checked as the task would
 * check it, as located diagnostics: what `clawos-build validate` reports for
 * the P1 specs. A parameter or file that cannot be read is located on the task.
 */
export async function specFreezeDiagnostics(tasks: Iterable<LoadedTask>, repoRoot: string): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  for (const t of tasks) {
    if (t.spec.uses !== 'spec-freeze') continue;
    const params = t.spec.with ?? {};
    let specRel: string;
    let schemaRel: string;
    try {
      specRel = repoRelParam(params, 'spec');
      schemaRel = repoRelParam(params, 'schema');
    } catch (err) {
      out.push({ ...t.locate(['with']), message: (err as Error).message });
      continue;
    }
    let text: string;
    let schema: object;
    try {
      text = await readFile(join(repoRoot, specRel), 'utf8');
    } catch (err) {
      out.push({ ...t.locate(['with', 'spec']), message: `${specRel}: cannot read: ${(err as Error).message}` });
      continue;
    }
    try {
      schema = JSON.parse(await readFile(join(repoRoot, schemaRel), 'utf8')) as object;
    } catch (err) {
      out.push({ ...t.locate(['with', 'schema']), message: `${schemaRel}: cannot read as JSON: ${(err as Error).message}` });
      continue;
    }
    let r: SpecCheckResult;
    try {
      r = await checkSpec(text, specRel, schema, { repoRoot });
    } catch (err) {
      if (err instanceof InfraError) throw err;
      out.push({ ...t.locate(['with', 'schema']), message: `${schemaRel}: invalid JSON Schema: ${(err as Error).message}` });
      continue;
    }
    if (!r.ok) out.push(...r.problems);
  }
  return out;
}
