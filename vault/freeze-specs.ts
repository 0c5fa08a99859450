/**
 * `clawos-build spec freeze` and what the scheduler checks against it.
 * - the frozen set is every specs/p1/*.yaml and specs/audit/*.yaml (path, sha256 of
 *   the bytes, version): the audit's rules and waivers change only with the same
 *   dual signature (security + core) as the P1 specs;
 * - the record is specs/p1/freeze.dsse.json, dual-signed (security + core) and
 *   committed; the public entries of its signers go into the committed trust
 *   root specs/trust/keys.json, which is what the scheduler verifies it with;
 * - a new freeze that changes a spec without a new major version is refused
 *   (freezeSuccessionProblems), as is a freeze with one role's key only.
 */
import { createPublicKey } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { yamlValue } from '../lib/yaml-source.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { sha256Hex } from '../lib/hash.js';
import { addTrustEntry, loadTrust, makeTrustEntry, type Signer, type TrustKey } from './keys.js';
import { checkFreezeCoverage, freezeRecord, freezeSuccessionProblems, verifyFreeze, type FreezePayload, type FrozenSpec } from './freeze.js';
import { defaultTrustFile, findSigner, listKeyFiles } from './key-dir.js';
import { parseJsonBytes } from './jcs.js';
import { compareUtf8 } from './paths.js';

export const P1_DIR = 'specs/p1';
/** Every directory whose YAML files the freeze covers. */
export const FROZEN_DIRS = [P1_DIR, 'specs/audit'] as const;
export const FREEZE_FILE = 'specs/p1/freeze.dsse.json';
export const REPO_TRUST_FILE = 'specs/trust/keys.json';

export interface SpecNow {
  path: string;
  sha256: string;
  version: string;
  spec_id?: string;
}

/** One P1 spec as it is now: sha256 of its bytes and the `version:` (and `spec_id:`) it declares. */
export async function readSpec(repoRoot: string, path: string): Promise<SpecNow | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(repoRoot, path));
  } catch {
    return undefined;
  }
  // Every run reads these (to check the freeze), so the two top-level scalars are taken
  // from their lines when they are plain; only an unusual spelling costs a full parse.
  const text = bytes.toString('utf8');
  const plain = (key: string) => new RegExp(`^${key}:[ \\t]*(?:"([^"\\n]*)"|'([^'\\n]*)'|([^\\s#"'][^\\s#]*))[ \\t]*(?:#.*)?$`, 'm').exec(text);
  const v = plain('version');
  const id = plain('spec_id');
  let doc: { version?: unknown; spec_id?: unknown } | null;
  if (v) {
    doc = { version: v[1] ?? v[2] ?? v[3], ...(id ? { spec_id: id[1] ?? id[2] ?? id[3] } : {}) };
  } else {
    try {
      doc = yamlValue(text, path) as { version?: unknown; spec_id?: unknown } | null;
    } catch {
      doc = null; // an unparsable spec has no version; spec-freeze (C-01 …) reports why
    }
  }
  return {
    path,
    sha256: sha256Hex(bytes),
    version: typeof doc?.version === 'string' ? doc.version : 'unknown',
    ...(typeof doc?.spec_id === 'string' ? { spec_id: doc.spec_id } : {}),
  };
}

/** Every frozen spec (specs/p1/*.yaml, specs/audit/*.yaml) as it is now, sorted by path. */
export async function currentP1Specs(repoRoot: string): Promise<SpecNow[]> {
  const out: SpecNow[] = [];
  for (const dir of FROZEN_DIRS) {
    const names = (await readdir(join(repoRoot, dir)).catch(() => [] as string[])).filter((n) => /\.ya?ml$/.test(n));
    for (const n of names) {
      const s = await readSpec(repoRoot, `${dir}/${n}`);
      if (s) out.push(s);
    }
  }
  return out.sort((a, b) => compareUtf8(a.path, b.path));
}

/** The payload of a record without checking its signatures (only to compare a new freeze with the last one). */
function unverifiedPayload(bytes: Buffer): FreezePayload | undefined {
  const env = parseJsonBytes(bytes);
  if (!env.ok) return undefined;
  const payload = (env.value as { payload?: unknown }).payload;
  if (typeof payload !== 'string') return undefined;
  const p = parseJsonBytes(Buffer.from(payload, 'base64'));
  const v = p.ok ? (p.value as FreezePayload) : undefined;
  return v && Array.isArray(v.specs) ? v : undefined;
}

export class FreezeRefused extends Error {
  override readonly name = 'FreezeRefused';
}

export interface FreezeResult {
  file: string;
  trustFile: string;
  payload: FreezePayload;
  signers: { role: string; keyid: string }[];
  /** Specs whose hash differs from the previous record. */
  changed: string[];
}

/**
 * Freeze every P1 spec with the security and core keys of `keyDir`: write the
 * record and add both public keys to the repo's trust root. Throws FreezeRefused
 * (nothing written) when a role's key is missing or a spec changed without a
 * new major version.
 */
export async function freezeSpecs(o: { repoRoot: string; keyDir: string; keyTrustFile?: string; now?: Date }): Promise<FreezeResult> {
  const keyTrust = o.keyTrustFile ?? defaultTrustFile(o.keyDir);
  const security = await findSigner(o.keyDir, 'security', keyTrust);
  const core = await findSigner(o.keyDir, 'core', keyTrust);
  const missing = [...(security ? [] : ['security']), ...(core ? [] : ['core'])];
  if (missing.length) {
    throw new FreezeRefused(
      `spec freeze needs a security key and a core key (a frozen spec changes only with both reviews); ${o.keyDir} has no ${missing.join(' and no ')} key` +
        `\nhint: ${missing.map((r) => `clawos-build keys init --role ${r}`).join(' && ')}`,
    );
  }
  const specs = await currentP1Specs(o.repoRoot);
  let previous: FreezePayload | undefined;
  try {
    previous = unverifiedPayload(await readFile(join(o.repoRoot, FREEZE_FILE)));
  } catch {
    previous = undefined;
  }
  const frozen: FrozenSpec[] = specs.map((s) => ({ path: s.path, sha256: s.sha256, version: s.version }));
  const problems = freezeSuccessionProblems(previous, frozen);
  if (problems.length) throw new FreezeRefused(`spec freeze refused:\n${problems.join('\n')}`);
  const rec = freezeRecord(frozen, { security: security!, core: core! }, { frozenAt: o.now ?? new Date(), ...(previous ? { previous } : {}) });
  const trustFile = join(o.repoRoot, REPO_TRUST_FILE);
  for (const s of [security!, core!]) await addTrustEntry(trustFile, await publicEntry(o.keyDir, s, keyTrust));
  await writeFileAtomic(join(o.repoRoot, FREEZE_FILE), Buffer.concat([rec.bytes, Buffer.from('\n')]));
  const old = new Map((previous?.specs ?? []).map((s) => [s.path, s.sha256]));
  return {
    file: join(o.repoRoot, FREEZE_FILE),
    trustFile,
    payload: rec.payload,
    signers: [security!, core!].map((s) => ({ role: s.role, keyid: s.keyid })),
    changed: frozen.filter((s) => old.get(s.path) !== s.sha256).map((s) => s.path),
  };
}

/** The trust entry of a signer: the key dir's own entry (validity as created), else a fresh one from its public key. */
async function publicEntry(keyDir: string, s: Signer, keyTrust: string): Promise<TrustKey> {
  const k = (await listKeyFiles(keyDir, keyTrust)).find((f) => f.keyid === s.keyid);
  if (k?.trust) return k.trust;
  return makeTrustEntry(createPublicKey(s.privateKey), s.role);
}

export type FreezeState = { ok: true; payload: FreezePayload; frozen: Map<string, FrozenSpec> } | { ok: false; detail: string };

/** The committed record, verified with the committed trust root (both signatures required). */
export async function loadFreezeState(repoRoot: string, at: Date = new Date()): Promise<FreezeState> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(repoRoot, FREEZE_FILE));
  } catch {
    return { ok: false, detail: `there is no freeze record ${FREEZE_FILE}` };
  }
  let trust;
  try {
    trust = await loadTrust(join(repoRoot, REPO_TRUST_FILE));
  } catch (e) {
    return { ok: false, detail: `the freeze record cannot be checked: ${(e as Error).message}` };
  }
  const v = verifyFreeze(bytes, trust, at);
  if (!v.ok) return { ok: false, detail: `${FREEZE_FILE} does not verify against ${REPO_TRUST_FILE}: ${v.code}: ${v.detail}` };
  return { ok: true, payload: v.payload, frozen: new Map(v.payload.specs.map((s) => [s.path, s])) };
}

/** What makes a new freeze, for the message that stops a run. */
export const FREEZE_HINT = 'after review, give a changed spec a new major version, then `clawos-build spec freeze` with a security key and a core key';

/** A covered file as the run read it, with the record's hash it was checked against. */
export interface FrozenRead extends SpecNow {
  frozen_sha256: string;
}

export type FrozenFilesCheck =
  | { ok: true; freeze: Extract<FreezeState, { ok: true }>; read: FrozenRead[] }
  | { ok: false; message: string; hint: string };

/**
 * What every run checks before anything runs: the record verifies, and every file
 * it covers (FROZEN_DIRS), not only a task's frozen_spec_deps, hashes to it. On
 * success, the files as read (the bytes the build reads); else why the run stops.
 */
export async function checkFrozenFiles(repoRoot: string, at: Date = new Date()): Promise<FrozenFilesCheck> {
  const freeze = await loadFreezeState(repoRoot, at);
  if (!freeze.ok) return { ok: false, message: `the frozen specs cannot be checked, so the run stops before any task: ${freeze.detail}`, hint: FREEZE_HINT };
  const now = await currentP1Specs(repoRoot);
  const r = checkFreezeCoverage(now, freeze.payload);
  if (!r.ok) {
    return {
      ok: false,
      message: `${r.refusals.length} frozen spec${r.refusals.length === 1 ? '' : 's'} ${r.refusals.length === 1 ? 'does' : 'do'} not match ${FREEZE_FILE} (frozen_at ${freeze.payload.frozen_at}), so the run stops before any task:\n${r.message}`,
      hint: FREEZE_HINT,
    };
  }
  return { ok: true, freeze, read: now.map((s) => ({ ...s, frozen_sha256: freeze.frozen.get(s.path)!.sha256 })) };
}
