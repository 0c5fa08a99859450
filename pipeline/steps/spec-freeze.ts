/**
 * spec-freeze: check one machine-readable P1 spec (YAML) against its JSON Schema
 * and its semantic rules, then freeze it: a byte-identical copy plus a
 * `<name>.freeze.json` record with the SHA-256 of the spec and of its schema
 * (plan Gate P1: "All spec documents SHA256-signed").
 *
 *   uses: spec-freeze
 *   with: { spec: specs/p1/cgroup-quotas.yaml, schema: specs/schemas/p1/cgroup-quotas.schema.json }
 *
 * Every problem is reported as `file:line:col: message`, all of them, one per line.
 */
import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, join, posix, relative } from 'node:path';
import { Ajv } from 'ajv';
import type { Step, StepContext } from '../step.js';
import { fail, pass, type Outcome } from '../outcome.js';
import { parseYaml, schemaDiagnostics, formatDiagnostic, type Diagnostic, type LocatedYaml } from '../yaml-source.js';
import { sha256Hex } from '../../lib/hash.js';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { UserError } from '../../lib/errors.js';

/** A problem found by a semantic check, at a path inside the spec document. */
export interface SpecProblem {
  path: (string | number)[];
  message: string;
}

/** A rule the schema cannot express. Runs only on schema-valid documents. */
export type SemanticCheck = (spec: unknown) => SpecProblem[];

export interface FreezeRecord {
  spec_id: string;
  version: string;
  /** Repo-relative path of the spec. */
  path: string;
  sha256: string;
  schema_sha256: string;
  /** ISO time from SOURCE_DATE_EPOCH, so freezing is reproducible. */
  frozen_at: string;
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
  ['P1.5', checkCgroupPids],
]);

export type SpecCheckResult =
  | { ok: true; value: { spec_id: string; version: string } & Record<string, unknown> }
  | { ok: false; problems: Diagnostic[] };

/**
 * Parse, schema-check and semantically check a spec's text. `file` is the name
 * used in diagnostics (the repo-relative path).
 */
export function checkSpecText(text: string, file: string, schema: object): SpecCheckResult {
  const src: LocatedYaml = parseYaml(text, file);
  if (src.errors.length) return { ok: false, problems: src.errors };
  // A fresh Ajv per check: schemas carry an $id, and one instance refuses to
  // compile a second schema object with the same $id.
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, logger: false });
  const validate = ajv.compile(schema);
  if (!validate(src.value)) {
    const problems = schemaDiagnostics(src, validate.errors ?? []);
    if (!problems.length) {
      // Only summary errors (oneOf/anyOf) were left: still say something.
      problems.push({ ...src.locate([]), message: `does not match the schema: ${ajv.errorsText(validate.errors)}` });
    }
    return { ok: false, problems };
  }
  const value = src.value as { spec_id: string; version: string } & Record<string, unknown>;
  const check = semanticChecks.get(value.spec_id);
  const problems = (check ? check(value) : []).map((p) => ({ ...src.locate(p.path), message: p.message }));
  if (problems.length) return { ok: false, problems };
  return { ok: true, value };
}

/** `name.yaml` -> `name.freeze.json`. */
export function freezeRecordName(specFile: string): string {
  return `${basename(specFile).replace(/\.ya?ml$/, '')}.freeze.json`;
}

function repoRelParam(params: Record<string, unknown>, key: 'spec' | 'schema'): string {
  const v = params[key];
  if (typeof v !== 'string' || v === '') throw new UserError(`spec-freeze: parameter "${key}" must be a repo-relative path`);
  const norm = posix.normalize(v.replace(/\\/g, '/'));
  if (isAbsolute(v) || norm.startsWith('../') || norm === '..') {
    throw new UserError(`spec-freeze: parameter "${key}" must be a path inside the repository, got ${JSON.stringify(v)}`);
  }
  return norm;
}

async function run(ctx: StepContext): Promise<Outcome> {
  const specRel = repoRelParam(ctx.params, 'spec');
  const schemaRel = repoRelParam(ctx.params, 'schema');
  ctx.progress(`checking ${specRel}`);

  let specBytes: Buffer;
  let schemaBytes: Buffer;
  try {
    specBytes = await readFile(join(ctx.repoRoot, specRel));
  } catch (err) {
    return fail('spec-invalid', `${specRel}: cannot read: ${(err as Error).message}`);
  }
  try {
    schemaBytes = await readFile(join(ctx.repoRoot, schemaRel));
  } catch (err) {
    return fail('spec-invalid', `${schemaRel}: cannot read: ${(err as Error).message}`);
  }
  let schema: object;
  try {
    schema = JSON.parse(schemaBytes.toString('utf8')) as object;
  } catch (err) {
    return fail('spec-invalid', `${schemaRel}: not JSON: ${(err as Error).message}`);
  }

  let result: SpecCheckResult;
  try {
    result = checkSpecText(specBytes.toString('utf8'), specRel, schema);
  } catch (err) {
    // ajv.compile throws on a broken schema.
    return fail('spec-invalid', `${schemaRel}: invalid JSON Schema: ${(err as Error).message}`);
  }
  if (!result.ok) {
    const lines = result.problems.map(formatDiagnostic);
    for (const l of lines) ctx.log(l);
    const first = result.problems[0]!;
    return fail('spec-invalid', lines.join('\n'), {
      location: { file: first.file, line: first.line, col: first.col },
      data: { problems: result.problems },
    });
  }

  const copyAbs = join(ctx.outDir, basename(specRel));
  const sha256 = sha256Hex(specBytes);
  const record: FreezeRecord = {
    spec_id: result.value.spec_id,
    version: result.value.version,
    path: specRel,
    sha256,
    schema_sha256: sha256Hex(schemaBytes),
    frozen_at: new Date(ctx.sourceDateEpoch * 1000).toISOString(),
  };
  await writeFileAtomic(copyAbs, specBytes);
  await writeJsonAtomic(join(ctx.outDir, freezeRecordName(specRel)), record);
  ctx.log(`frozen ${record.spec_id} ${record.version} ${specRel} sha256 ${sha256}`);
  return pass(`${record.spec_id} ${record.version} frozen (${specRel}, sha256 ${sha256.slice(0, 12)})`, {
    evidence: [{ label: `frozen ${record.spec_id}`, path: relative(ctx.buildDir, copyAbs), sha256 }],
    data: record,
  });
}

export const specFreezeStep: Step = {
  name: 'spec-freeze',
  version: 1,
  toolPackages: () => [],
  implicitInputs: (_arch, params) =>
    (['spec', 'schema'] as const).map((k) => params[k]).filter((v): v is string => typeof v === 'string'),
  run,
};
