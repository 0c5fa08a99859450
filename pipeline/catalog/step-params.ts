/**
 * Every task's `with:` (and each `backends:` alternative's) checked against
 * its step's parameter schema when the catalog loads, so a misspelt or
 * mistyped parameter is a file:line:col diagnostic of `validate`, not a
 * failure an hour into a run.
 */
import type { ErrorObject } from 'ajv';
import { compileSchema } from '../../lib/data.js';
import { schemaDiagnostics, type Diagnostic } from '../../lib/yaml-source.js';
import type { ParamsSchema, Step } from './step.js';
import type { LoadedTask } from './task-spec.js';

export type StepSchemas = ReadonlyMap<string, Pick<Step, 'params'>>;

const pointer = (path: string[]): string => path.map((s) => `/${s.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

/** One action (`uses:` + `with:`) of a task, found at `path` in its file. */
function checkAction(t: LoadedTask, uses: string, params: unknown, path: string[], schema: ParamsSchema): Diagnostic[] {
  const validate = compileSchema(schema);
  if (validate(params ?? {})) return [];
  const prefix = pointer(path);
  const errors: ErrorObject[] = (validate.errors ?? []).map((e) => ({ ...e, instancePath: prefix + e.instancePath }));
  // An absent `with:` with required parameters: point at `uses:`.
  const src = { file: t.file, value: t.spec, errors: [], locate: params === undefined ? () => t.locate([...path.slice(0, -1), 'uses']) : t.locate };
  const known = Object.keys(schema.properties).join(', ');
  return errors.flatMap((e) => {
    if (e.keyword === 'additionalProperties' && e.instancePath === prefix) {
      const prop = String((e.params as { additionalProperty: string }).additionalProperty);
      return [{ ...t.locate([...path, prop], true), message: `${uses}: unknown parameter "${prop}" in ${path.join('.')} (known: ${known})` }];
    }
    return schemaDiagnostics(src, [e]).map((d) => ({ ...d, message: `${uses}: ${d.message}` }));
  });
}

/** The parameter diagnostics of one task; steps without a schema (test doubles) are not checked. */
export function stepParamsDiagnostics(t: LoadedTask, steps: StepSchemas): Diagnostic[] {
  const out: Diagnostic[] = [];
  const s = t.spec;
  const check = (uses: string | undefined, params: unknown, path: string[]) => {
    const schema = uses ? steps.get(uses)?.params : undefined;
    if (uses && schema) out.push(...checkAction(t, uses, params, path, schema));
  };
  check(s.uses, s.with, ['with']);
  for (const [name, b] of Object.entries(s.backends ?? {})) check(b.uses, b.with, ['backends', name, 'with']);
  return out;
}

/** A step's `with:` schema: the named parameters and no others. */
export function paramsSchema(properties: Record<string, object>, required: string[] = []): ParamsSchema {
  return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false };
}

/** The parameter types steps share. */
export const P = {
  path: { type: 'string', minLength: 1 },
  paths: { type: 'array', items: { type: 'string', minLength: 1 } },
  /** Absent when empty or null (the CLI fills it in). */
  optionalPath: { type: ['string', 'null'] },
  number: { type: 'number' },
  /** `extras: [{from, to}]` of the rootfs step and its Buildroot backend. */
  extras: {
    type: 'array',
    items: { type: 'object', additionalProperties: false, required: ['from', 'to'], properties: { from: { type: 'string' }, to: { type: 'string' } } },
  },
} as const;

/** A `with:` parameter a step cannot use; the step's run turns it into a spec-invalid outcome. */
export class StepParamError extends Error {}

/** The non-empty string parameter `key` (or its default), for steps whose message is "<step>: parameter '<key>' must be a non-empty string". */
export function stringParam(params: Record<string, unknown>, key: string, step: string, dflt?: string): string {
  const v = params[key] ?? dflt;
  if (typeof v !== 'string' || v === '') throw new StepParamError(`${step}: parameter '${key}' must be a non-empty string`);
  return v;
}
