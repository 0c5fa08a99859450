/**
 * The one loader of data files: read a YAML (or JSON) file, parse it with
 * source locations, check it against a JSON Schema from the one schema
 * registry, and return the value or file:line:col diagnostics.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { UserError } from './errors.js';
import { formatDiagnostic, parseYaml, schemaDiagnostics, type Diagnostic, type LocatedYaml } from './yaml-source.js';

export type { Diagnostic, LocatedYaml } from './yaml-source.js';

// The one Ajv. Schemas carry an $id and ajv refuses a second, different schema
// under the same $id (a test repo may carry an edited copy): the newest one
// compiled owns the $id; validators compiled before keep working.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, logger: false });
const byText = new Map<string, { schema: object; validate: ValidateFunction }>();
const byPath = new Map<string, object>();

function idOf(schema: object): string | undefined {
  const id = (schema as { $id?: unknown }).$id;
  return typeof id === 'string' ? id : undefined;
}

/**
 * The compiled validator of a schema object; compiled once per distinct schema
 * text. `refs`: the schemas its $refs name (compile those first), part of the key.
 */
export function compileSchema(schema: object, refs: readonly object[] = []): ValidateFunction {
  const key = refs.length ? JSON.stringify([schema, ...refs]) : JSON.stringify(schema);
  const id = idOf(schema);
  const hit = byText.get(key);
  if (hit) {
    // Another schema took the $id since: give it back, later $refs resolve against this one.
    if (id && ajv.getSchema(id)?.schema !== hit.schema) {
      ajv.removeSchema(id);
      ajv.addSchema(hit.schema);
    }
    return hit.validate;
  }
  if (id && ajv.getSchema(id)) ajv.removeSchema(id);
  const copy = JSON.parse(JSON.stringify(schema)) as object;
  const validate = ajv.compile(copy);
  byText.set(key, { schema: copy, validate });
  return validate;
}

/** A schema file, read once per absolute path (lazily, on first use). */
export function schemaAt(abs: string): object {
  let s = byPath.get(abs);
  if (!s) {
    s = JSON.parse(readFileSync(abs, 'utf8')) as object;
    byPath.set(abs, s);
  }
  return s;
}

/** ajv's own one-line summary, for when no located diagnostic says more. */
export function errorsText(errors: ErrorObject[] | null | undefined): string {
  return ajv.errorsText(errors);
}

/** Schema-check an already parsed file; parse errors come first and stop the check. */
export function validateLocated(src: LocatedYaml, schema: object): Diagnostic[] {
  if (src.errors.length) return src.errors;
  const validate = compileSchema(schema);
  if (validate(src.value)) return [];
  return schemaDiagnostics(src, validate.errors ?? []);
}

export interface DataCheck<T> {
  src: LocatedYaml;
  /** Meaningful only when diagnostics is empty. */
  value: T;
  diagnostics: Diagnostic[];
}

/** Parse `text` (YAML or JSON, shown as `display`) and check it against `schema`. */
export function checkDataText<T>(text: string, display: string, schema: object): DataCheck<T> {
  const src = parseYaml(text, display);
  const diagnostics = validateLocated(src, schema);
  return { src, value: src.value as T, diagnostics };
}

/**
 * Check the repo's data file `rel` against the schema file `schemaRel` (both
 * repo-relative); a file that cannot be read is one diagnostic at 1:1.
 */
export async function checkData<T>(repoRoot: string, rel: string, schemaRel: string): Promise<DataCheck<T>> {
  let text: string;
  try {
    text = await readFile(join(repoRoot, rel), 'utf8');
  } catch (err) {
    const src = parseYaml('', rel);
    return { src, value: undefined as T, diagnostics: [{ file: rel, line: 1, col: 1, message: `cannot read: ${(err as Error).message}` }] };
  }
  return checkDataText<T>(text, rel, schemaAt(join(repoRoot, schemaRel)));
}

function invalid(display: string, diags: Diagnostic[]): UserError {
  return new UserError(`invalid data file ${display}:\n${diags.map(formatDiagnostic).join('\n')}`, undefined, diags[0]);
}

/** Load the repo's data file `rel`, checked against `schemaRel`; throws a UserError listing every problem. */
export async function loadData<T>(repoRoot: string, rel: string, schemaRel: string): Promise<T> {
  const r = await checkData<T>(repoRoot, rel, schemaRel);
  if (r.diagnostics.length) throw invalid(rel, r.diagnostics);
  return r.value;
}

/** Read, parse and schema-check one data file at an absolute path; throws a UserError listing every problem. */
export async function loadYamlDocument(abs: string, display: string, schema: object): Promise<unknown> {
  const r = checkDataText<unknown>(await readFile(abs, 'utf8'), display, schema);
  if (r.diagnostics.length) throw invalid(display, r.diagnostics);
  return r.value;
}

/** specs/release.yaml: the release being built. */
export interface ReleaseSpec {
  name: string;
  version: string;
  source_date_epoch: number;
}

export const RELEASE_FILE = 'specs/release.yaml';
export const RELEASE_SCHEMA = 'specs/schemas/release.schema.json';

/** specs/release.yaml, schema-checked: the one place it is read. */
export function loadRelease(repoRoot: string): Promise<ReleaseSpec> {
  return loadData<ReleaseSpec>(repoRoot, RELEASE_FILE, RELEASE_SCHEMA);
}
