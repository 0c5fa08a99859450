/**
 * The JSON Schemas of the bundle files (specs/schemas/vault/*.schema.json),
 * compiled once. Unknown fields are refused everywhere (fail closed).
 */
import { join } from 'node:path';
import type { ValidateFunction } from 'ajv';
import { compileSchema, schemaAt } from '../lib/data.js';
import { repoRootDir } from '../lib/repo-root.js';

export type VaultSchema = 'event' | 'dsse-envelope' | 'trust-root' | 'bundle-manifest' | 'spec-freeze' | 'statement' | 'bundle-config';

const cache = new Map<VaultSchema, ValidateFunction>();

export function schemaPath(name: VaultSchema): string {
  return join(repoRootDir(), 'specs', 'schemas', 'vault', `${name}.schema.json`);
}

function validator(name: VaultSchema): ValidateFunction {
  let v = cache.get(name);
  if (!v) {
    v = compileSchema(schemaAt(schemaPath(name)));
    cache.set(name, v);
  }
  return v;
}

/** undefined when valid, else the first error as "<pointer> <message>". */
export function schemaError(name: VaultSchema, value: unknown): string | undefined {
  const v = validator(name);
  if (v(value)) return undefined;
  const e = v.errors?.[0];
  if (!e) return `does not match ${name}.schema.json`;
  const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
  return `${name}.schema.json: ${e.instancePath || '/'} ${e.message ?? 'is invalid'}${extra}`;
}
