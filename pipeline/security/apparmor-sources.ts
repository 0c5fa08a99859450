/**
 * What the AppArmor generator (F-06) compiles: the P1.6 profiles as F-01 froze
 * them (the frozen copy in the build dir, checked against its freeze record),
 * then the test-only profiles of specs/apparmor/selftest-profiles.yaml, each
 * checked against P1.6's profile schema. Every problem is a located diagnostic.
 */
import { readFile } from 'node:fs/promises';
import type { ValidateFunction } from 'ajv';
import { compileSchema } from '../../lib/data.js';
import { sha256Hex } from '../../lib/hash.js';
import { parseYaml, schemaDiagnostics, type Diagnostic, type LocatedYaml } from '../../lib/yaml-source.js';
import type { ApparmorProfileSpec, SpecPath } from './apparmor-profile-text.js';

/** One YAML document profiles come from. */
export interface SourceDoc {
  /** Repo-relative path named in messages (the frozen copy is named by its spec's path). */
  file: string;
  sha256: string;
  /** "P1.6 1.0.0" or "test-only". */
  label: string;
  located: LocatedYaml;
}

export interface ProfileSource {
  profile: ApparmorProfileSpec;
  kind: 'spec' | 'selftest';
  doc: SourceDoc;
  /** ["profiles", i] in doc. */
  at: SpecPath;
}

export interface ApparmorProbe {
  profile: string;
  read: string;
  deny?: string;
}

export interface ApparmorSources {
  spec: { spec_id: string; version: string; path: string; sha256: string };
  selftest: { path: string; sha256: string };
  profiles: ProfileSource[];
  probe: ApparmorProbe;
}

export interface SourcePaths {
  /** Absolute path of F-01's frozen copy and its freeze record. */
  frozenSpec: string;
  freezeRecord: string;
  /** Build-relative names of those two, for messages. */
  frozenSpecRel: string;
  freezeRecordRel: string;
  /** Absolute path + repo-relative name of the P1.6 schema, the selftest file and its schema. */
  specSchema: { abs: string; rel: string };
  selftest: { abs: string; rel: string };
  selftestSchema: { abs: string; rel: string };
}

type Result = { ok: true; value: ApparmorSources } | { ok: false; problems: Diagnostic[] };

interface FreezeRecordLike {
  spec_id?: unknown;
  version?: unknown;
  path?: unknown;
  sha256?: unknown;
}

async function readText(abs: string, rel: string): Promise<string | Diagnostic> {
  try {
    return await readFile(abs, 'utf8');
  } catch (err) {
    return { file: rel, line: 1, col: 1, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

const isDiag = (x: unknown): x is Diagnostic => typeof x === 'object' && x !== null && 'message' in x;

export async function loadApparmorSources(p: SourcePaths): Promise<Result> {
  const texts = await Promise.all([
    readText(p.frozenSpec, p.frozenSpecRel),
    readText(p.freezeRecord, p.freezeRecordRel),
    readText(p.specSchema.abs, p.specSchema.rel),
    readText(p.selftest.abs, p.selftest.rel),
    readText(p.selftestSchema.abs, p.selftestSchema.rel),
  ]);
  const missing = texts.filter(isDiag);
  if (missing.length) return { ok: false, problems: missing };
  const [specText, recordText, specSchemaText, selftestText, selftestSchemaText] = texts as string[];

  const json = [
    [recordText!, p.freezeRecordRel],
    [specSchemaText!, p.specSchema.rel],
    [selftestSchemaText!, p.selftestSchema.rel],
  ].map(([text, rel]) => {
    try {
      return JSON.parse(text!) as object;
    } catch (err) {
      return { file: rel!, line: 1, col: 1, message: `not JSON: ${(err as Error).message}` } satisfies Diagnostic;
    }
  });
  const badJson = json.filter(isDiag);
  if (badJson.length) return { ok: false, problems: badJson };
  const [record, specSchema, selftestSchema] = json as [FreezeRecordLike, object, object];
  const specSha = sha256Hex(specText!);
  if (typeof record.path !== 'string' || typeof record.version !== 'string' || typeof record.spec_id !== 'string') {
    return { ok: false, problems: [{ file: p.freezeRecordRel, line: 1, col: 1, message: 'not a freeze record (spec_id, version, path, sha256)' }] };
  }
  if (record.sha256 !== specSha) {
    return {
      ok: false,
      problems: [
        {
          file: p.frozenSpecRel,
          line: 1,
          col: 1,
          message: `sha256 ${specSha} differs from its freeze record ${p.freezeRecordRel} (${String(record.sha256)}): the frozen copy was changed after F-01`,
        },
      ],
    };
  }

  let validateSpec: ValidateFunction;
  let validateSelftest: ValidateFunction;
  try {
    // Compiling P1.6 first registers its $id, which the selftest schema refers to.
    validateSpec = compileSchema(specSchema);
    validateSelftest = compileSchema(selftestSchema, [specSchema]);
  } catch (err) {
    return { ok: false, problems: [{ file: p.selftestSchema.rel, line: 1, col: 1, message: `invalid JSON Schema: ${(err as Error).message}` }] };
  }

  const problems: Diagnostic[] = [];
  // The frozen copy is byte-identical to the spec: its lines are the spec's lines.
  const specDoc: SourceDoc = { file: record.path, sha256: specSha, label: `${record.spec_id} ${record.version}`, located: parseYaml(specText!, record.path) };
  const selftestDoc: SourceDoc = { file: p.selftest.rel, sha256: sha256Hex(selftestText!), label: 'test-only', located: parseYaml(selftestText!, p.selftest.rel) };
  for (const [doc, validate] of [
    [specDoc, validateSpec],
    [selftestDoc, validateSelftest],
  ] as const) {
    if (doc.located.errors.length) problems.push(...doc.located.errors);
    else if (!validate(doc.located.value)) problems.push(...schemaDiagnostics(doc.located, validate.errors ?? []));
  }
  if (problems.length) return { ok: false, problems };

  const profiles: ProfileSource[] = [];
  const seen = new Map<string, ProfileSource>();
  for (const [doc, kind] of [
    [specDoc, 'spec'],
    [selftestDoc, 'selftest'],
  ] as const) {
    const list = (doc.located.value as { profiles: ApparmorProfileSpec[] }).profiles;
    list.forEach((profile, i) => {
      const src: ProfileSource = { profile, kind, doc, at: ['profiles', i] };
      const first = seen.get(profile.name);
      if (first) {
        const a = first.doc.located.locate([...first.at, 'name']);
        problems.push({ ...doc.located.locate([...src.at, 'name']), message: `profile ${profile.name} is already defined at ${a.file}:${a.line}:${a.col}` });
      } else {
        seen.set(profile.name, src);
        profiles.push(src);
      }
    });
  }
  const probe = (selftestDoc.located.value as { probe: ApparmorProbe }).probe;
  if (seen.get(probe.profile)?.kind !== 'selftest') {
    problems.push({ ...selftestDoc.located.locate(['probe', 'profile']), message: `probe.profile ${probe.profile} is not one of the test-only profiles in this file` });
  }
  if (problems.length) return { ok: false, problems };
  return {
    ok: true,
    value: {
      spec: { spec_id: record.spec_id, version: record.version, path: record.path, sha256: specSha },
      selftest: { path: selftestDoc.file, sha256: selftestDoc.sha256 },
      profiles,
      probe,
    },
  };
}
