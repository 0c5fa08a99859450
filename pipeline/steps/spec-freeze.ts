/**
 * spec-freeze: check one machine-readable P1 spec (YAML) against its JSON Schema
 * and its semantic rules, then freeze it: a byte-identical copy plus a
 * `<name>.freeze.json` record with the SHA-256 of the spec and of its schema
 * (plan Gate P1: "All spec documents SHA256-signed").
 *
 *   uses: spec-freeze
 *   with: { spec: specs/p1/cgroup-quotas.yaml, schema: specs/schemas/p1/cgroup-quotas.schema.json }
 *
 * A spec may pin other files (P1.1 pins its .wit file by sha256): they are
 * checked with it, copied beside it and listed with their sha256 in the record.
 *
 * Every problem is reported as `file:line:col: message`, all of them, one per line.
 * `clawos-build validate` runs the same checks through specFreezeDiagnostics.
 */
import { readFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import { sha256Hex } from '../../lib/hash.js';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { InfraError, InternalError, UserError } from '../../lib/errors.js';
import { checkSpec, checkSpecText, freezeRecordName, repoRelParam, specAttachments, type FreezeRecord, type SpecCheckResult } from '../p1-specs/spec-check.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';

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
    result = await checkSpec(specBytes.toString('utf8'), specRel, schema, { repoRoot: ctx.repoRoot });
  } catch (err) {
    if (err instanceof InfraError) return infra(`${err.message}${err.hint ? `; fix: ${err.hint}` : ''}`);
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
  const attached: { path: string; sha256: string; bytes: Buffer }[] = [];
  for (const rel of specAttachments.get(result.value.spec_id)?.(result.value) ?? []) {
    // The checks just read it; a failure here is a file changed under us.
    const bytes = await readFile(join(ctx.repoRoot, rel)).catch(() => null);
    if (!bytes) return fail('spec-invalid', `${specRel}: the file it pins, ${rel}, cannot be read`);
    attached.push({ path: rel, sha256: sha256Hex(bytes), bytes });
  }
  const record: FreezeRecord = {
    spec_id: result.value.spec_id,
    version: result.value.version,
    path: specRel,
    sha256,
    schema_sha256: sha256Hex(schemaBytes),
    frozen_at: new Date(ctx.sourceDateEpoch * 1000).toISOString(),
    ...(attached.length ? { attachments: attached.map(({ path, sha256: h }) => ({ path, sha256: h })) } : {}),
  };
  await writeFileAtomic(copyAbs, specBytes);
  for (const a of attached) await writeFileAtomic(join(ctx.outDir, basename(a.path)), a.bytes);
  await writeJsonAtomic(join(ctx.outDir, freezeRecordName(specRel)), record);
  ctx.log(`frozen ${record.spec_id} ${record.version} ${specRel} sha256 ${sha256}`);
  for (const a of attached) ctx.log(`frozen with it: ${a.path} sha256 ${a.sha256}`);
  return pass(`${record.spec_id} ${record.version} frozen (${specRel}, sha256 ${sha256.slice(0, 12)})`, {
    evidence: [
      { label: `frozen ${record.spec_id}`, path: relative(ctx.buildDir, copyAbs), sha256 },
      ...attached.map((a) => ({ label: `frozen ${record.spec_id} ${basename(a.path)}`, path: relative(ctx.buildDir, join(ctx.outDir, basename(a.path))), sha256: a.sha256 })),
    ],
    data: record,
  });
}

export const specFreezeStep: Step = {
  name: 'spec-freeze',
  version: 2,
  params: paramsSchema({ spec: P.path, schema: P.path }, ['spec', 'schema']),
  toolPackages: () => [],
  implicitInputs: (_arch, params) =>
    (['spec', 'schema'] as const).map((k) => params[k]).filter((v): v is string => typeof v === 'string'),
  run,
};

