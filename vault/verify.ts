/**
 * verifyBundle: offline, deterministic PASS/FAIL for a bundle dir or tar, with
 * one reason code, stopping at the first failure. The order of the checks:
 *  1. layout: lstat walk, no symlinks/specials, safe and case-distinct names  PATH_UNSAFE
 *  2. manifest.dsse.json: envelope, trusted release key, signature           INVALID_SCHEMA, UNKNOWN_KEY, KEY_REVOKED, INVALID_SIGNATURE
 *  3. the signed payload: canonical, version, algorithm, schema              NON_CANONICAL_JSON, UNSUPPORTED_VERSION, UNSUPPORTED_ALGORITHM, INVALID_SCHEMA
 *     manifest.json = those exact bytes                                       NON_CANONICAL_JSON, INVALID_SIGNATURE
 *  4. run id and replay (ledger, minimum release)                            RUN_ID_MISMATCH, REPLAY_DETECTED
 *  5. file list: safe paths, missing, unexpected, size + sha256              PATH_UNSAFE, FILE_MISSING, UNEXPECTED_FILE, HASH_MISMATCH
 *  6. attestation.dsse.json: as 2-3, then run id and subjects                …, RUN_ID_MISMATCH, SUBJECT_MISMATCH
 *  6b. the input lock: named, carried, and every resolved input agrees      FILE_MISSING, HASH_MISMATCH, INVALID_SCHEMA
 *  7. events.jsonl: every line canonical, chained; count/head/root as signed CHAIN_BROKEN, LOG_ROOT_MISMATCH
 * Signatures are checked over the bytes read from disk; nothing is
 * re-serialized before a signature or a hash is checked.
 */
import { readFileSync } from 'node:fs';
import { checkInputLock } from './verify-inputs.js';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, type Fail, type VerifyCode } from './codes.js';
import { isCanonical, parseJsonBytes } from './jcs.js';
import { INTOTO_PAYLOAD_TYPE, MANIFEST_PAYLOAD_TYPE, parseEnvelope, verifyEnvelope } from './dsse.js';
import type { TrustRoot } from './keys.js';
import { schemaError } from './schemas.js';
import { caseFoldDuplicate, compareUtf8, unsafePathReason } from './paths.js';
import { logRoot, splitLines, verifyChain } from './event-chain.js';
import { SLSA_PROVENANCE_V1, STATEMENT_TYPE, type Statement } from './attestation.js';
import { ARTIFACTS_DIR, ATTESTATION_FILE, EVENTS_FILE, MANIFEST_DSSE_FILE, MANIFEST_FILE, type BundleManifest } from './bundle.js';

export interface VerifyOptions {
  /** run_ids already accepted: seeing one again is REPLAY_DETECTED. */
  ledger?: ReadonlySet<string>;
  /** The oldest release acceptable (semver): an older bundle is REPLAY_DETECTED (rollback). */
  minRelease?: string;
  /** When the caller knows which run it expects. */
  expectRunId?: string;
  /** Time at which keys must be valid (default: now). */
  at?: Date;
}

export interface VerifyResult {
  ok: boolean;
  code: VerifyCode;
  detail: string;
  run_id?: string;
  release?: string;
  /** Bytes of bundle files hashed (for throughput). */
  bytes?: number;
}

type Step<T> = ({ ok: true } & T) | Fail;

async function walk(root: string, rel = '', out: string[] = []): Promise<Fail | string[]> {
  for (const name of await readdir(rel ? join(root, rel) : root)) {
    const r = rel ? `${rel}/${name}` : name;
    const why = unsafePathReason(r);
    if (why) return fail('PATH_UNSAFE', `${JSON.stringify(r)} ${why}`);
    const st = await lstat(join(root, r));
    if (st.isSymbolicLink()) return fail('PATH_UNSAFE', `${r} is a symlink`);
    if (st.isDirectory()) {
      const sub = await walk(root, r, out);
      if (!Array.isArray(sub)) return sub;
    } else if (st.isFile()) out.push(r);
    else return fail('PATH_UNSAFE', `${r} is not a regular file`);
  }
  return out;
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

function parseSemver(v: string): { core: number[]; pre: string[] } | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$/.exec(v);
  if (!m) return undefined;
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ? m[4].split('.') : [] };
}

/** Is `v` a version compareSemver can order (MAJOR.MINOR.PATCH[-PRE])? */
export function isSemver(v: string): boolean {
  return parseSemver(v) !== undefined;
}

/** semver 2.0 precedence; undefined when either is not semver. */
export function compareSemver(a: string, b: string): number | undefined {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (!x || !y) return undefined;
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return x.core[i]! < y.core[i]! ? -1 : 1;
  if (x.pre.length === 0 || y.pre.length === 0) return x.pre.length === y.pre.length ? 0 : x.pre.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i]!;
    const q = y.pre[i]!;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) < Number(q) ? -1 : 1;
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return x.pre.length === y.pre.length ? 0 : x.pre.length < y.pre.length ? -1 : 1;
}

/** Envelope -> trusted signature -> canonical payload, for both signed files. */
async function signedPayload(
  root: string,
  file: string,
  payloadType: string,
  trust: TrustRoot,
  at: Date,
): Promise<Step<{ payload: Buffer; value: unknown; envelopeBytes: Buffer }>> {
  const envelopeBytes = await readFile(join(root, file));
  const env = parseEnvelope(envelopeBytes, payloadType, file);
  if (!env.ok) return env;
  const sig = verifyEnvelope(env, trust, ['release'], file, at);
  if (!sig.ok) return sig;
  if (!isCanonical(env.payload)) return fail('NON_CANONICAL_JSON', `${file}: the signed payload is not RFC 8785 canonical JSON`);
  if (!isCanonical(envelopeBytes)) return fail('NON_CANONICAL_JSON', `${file}: the envelope is not RFC 8785 canonical JSON`);
  const p = parseJsonBytes(env.payload);
  if (!p.ok) return fail('INVALID_SCHEMA', `${file}: payload: ${p.error}`);
  return { ok: true, payload: env.payload, value: p.value, envelopeBytes };
}

async function verifyDir(root: string, trust: TrustRoot, opts: VerifyOptions): Promise<VerifyResult> {
  const at = opts.at ?? new Date();
  // 1. layout
  const listed = await walk(root);
  if (!Array.isArray(listed)) return listed;
  const dupOnDisk = caseFoldDuplicate(listed);
  if (dupOnDisk) return fail('PATH_UNSAFE', `${dupOnDisk[0]} and ${dupOnDisk[1]} differ only in case`);
  const onDisk = new Set(listed);
  for (const f of [MANIFEST_DSSE_FILE, MANIFEST_FILE]) if (!onDisk.has(f)) return fail('FILE_MISSING', `${f} is missing`);

  // 2-3. the signed manifest
  const m = await signedPayload(root, MANIFEST_DSSE_FILE, MANIFEST_PAYLOAD_TYPE, trust, at);
  if (!m.ok) return m;
  const mv = m.value as Partial<BundleManifest>;
  if (typeof mv !== 'object' || mv === null || mv.format !== 'clawos-bundle-manifest') return fail('INVALID_SCHEMA', `${MANIFEST_FILE}: format is not "clawos-bundle-manifest"`);
  if (mv.version !== 1) return fail('UNSUPPORTED_VERSION', `${MANIFEST_FILE}: version ${JSON.stringify(mv.version)} is not supported (1)`);
  if (mv.hash_alg !== 'sha256') return fail('UNSUPPORTED_ALGORITHM', `${MANIFEST_FILE}: hash_alg ${JSON.stringify(mv.hash_alg)}; only sha256 is accepted`);
  const err = schemaError('bundle-manifest', mv);
  if (err) return fail('INVALID_SCHEMA', `${MANIFEST_FILE}: ${err}`);
  const manifest = mv as BundleManifest;
  const mFile = await readFile(join(root, MANIFEST_FILE));
  if (!isCanonical(mFile)) return fail('NON_CANONICAL_JSON', `${MANIFEST_FILE} is not RFC 8785 canonical JSON`);
  if (!mFile.equals(m.payload)) return fail('INVALID_SIGNATURE', `${MANIFEST_FILE} is not the manifest signed in ${MANIFEST_DSSE_FILE}`);
  const ids = { run_id: manifest.run_id, release: manifest.release };

  // 4. which run
  if (opts.expectRunId !== undefined && manifest.run_id !== opts.expectRunId) {
    return { ...fail('RUN_ID_MISMATCH', `bundle is run ${manifest.run_id}, expected ${opts.expectRunId}`), ...ids };
  }
  if (opts.ledger?.has(manifest.run_id)) return { ...fail('REPLAY_DETECTED', `run ${manifest.run_id} is already in the ledger`), ...ids };
  if (opts.minRelease !== undefined) {
    const c = compareSemver(manifest.release, opts.minRelease);
    if (c === undefined) return { ...fail('INVALID_SCHEMA', `release ${manifest.release} or minimum ${opts.minRelease} is not semver`), ...ids };
    if (c < 0) return { ...fail('REPLAY_DETECTED', `release ${manifest.release} is older than the expected ${opts.minRelease}`), ...ids };
  }

  // 5. files
  const paths = manifest.files.map((f) => f.path);
  for (const p of paths) {
    const why = unsafePathReason(p);
    if (why) return { ...fail('PATH_UNSAFE', `${MANIFEST_FILE}: ${JSON.stringify(p)} ${why}`), ...ids };
  }
  const dup = caseFoldDuplicate(paths);
  if (dup) return { ...fail('PATH_UNSAFE', `${MANIFEST_FILE}: ${dup[0]} and ${dup[1]} collide (same path ignoring case)`), ...ids };
  for (let i = 1; i < paths.length; i++) {
    if (compareUtf8(paths[i - 1]!, paths[i]!) >= 0) return { ...fail('INVALID_SCHEMA', `${MANIFEST_FILE}: files are not sorted by path (${paths[i - 1]}, ${paths[i]})`), ...ids };
  }
  const inManifest = new Map(manifest.files.map((f) => [f.path, f]));
  for (const reserved of [MANIFEST_FILE, MANIFEST_DSSE_FILE]) {
    if (inManifest.has(reserved)) return { ...fail('INVALID_SCHEMA', `${MANIFEST_FILE}: lists ${reserved}, which cannot hash itself`), ...ids };
  }
  for (const required of [EVENTS_FILE, ATTESTATION_FILE]) {
    if (!inManifest.has(required)) return { ...fail('INVALID_SCHEMA', `${MANIFEST_FILE}: does not list ${required}`), ...ids };
  }
  for (const p of paths) if (!onDisk.has(p)) return { ...fail('FILE_MISSING', `${p} is listed in the manifest but missing`), ...ids };
  for (const p of [...onDisk].sort(compareUtf8)) {
    if (p !== MANIFEST_FILE && p !== MANIFEST_DSSE_FILE && !inManifest.has(p)) return { ...fail('UNEXPECTED_FILE', `${p} is not in the manifest`), ...ids };
  }
  let bytes = 0;
  for (const f of manifest.files) {
    const st = await lstat(join(root, f.path));
    if (st.size !== f.size) return { ...fail('HASH_MISMATCH', `${f.path}: size ${st.size}, manifest says ${f.size}`), ...ids };
  }
  for (const f of manifest.files) {
    const h = await hashFile(join(root, f.path));
    bytes += f.size;
    if (h !== f.sha256) return { ...fail('HASH_MISMATCH', `${f.path}: sha256 ${h}, manifest says ${f.sha256}`), ...ids, bytes };
  }
  if (inManifest.get(ATTESTATION_FILE)!.sha256 !== manifest.attestation.sha256) {
    return { ...fail('HASH_MISMATCH', `${ATTESTATION_FILE}: the manifest's attestation hash differs from its file entry`), ...ids, bytes };
  }

  // 6. attestation
  const a = await signedPayload(root, ATTESTATION_FILE, INTOTO_PAYLOAD_TYPE, trust, at);
  if (!a.ok) return { ...a, ...ids, bytes };
  const sv = a.value as Partial<Statement>;
  if (typeof sv !== 'object' || sv === null || sv._type !== STATEMENT_TYPE) {
    return { ...fail('UNSUPPORTED_VERSION', `${ATTESTATION_FILE}: _type ${JSON.stringify(sv?._type)} is not ${STATEMENT_TYPE}`), ...ids, bytes };
  }
  if (sv.predicateType !== SLSA_PROVENANCE_V1) {
    return { ...fail('UNSUPPORTED_VERSION', `${ATTESTATION_FILE}: predicateType ${JSON.stringify(sv.predicateType)} is not ${SLSA_PROVENANCE_V1}`), ...ids, bytes };
  }
  for (const s of Array.isArray(sv.subject) ? sv.subject : []) {
    const d = (s as { digest?: unknown }).digest;
    if (d && typeof d === 'object' && !('sha256' in d)) {
      return { ...fail('UNSUPPORTED_ALGORITHM', `${ATTESTATION_FILE}: subject ${String((s as { name?: unknown }).name)} has no sha256 digest (${Object.keys(d).join(', ')}); only sha256 is accepted`), ...ids, bytes };
    }
  }
  const serr = schemaError('statement', sv);
  if (serr) return { ...fail('INVALID_SCHEMA', `${ATTESTATION_FILE}: ${serr}`), ...ids, bytes };
  const st = sv as Statement;
  if (st.predicate.runDetails.metadata.invocationId !== manifest.run_id) {
    return { ...fail('RUN_ID_MISMATCH', `${ATTESTATION_FILE}: invocationId ${st.predicate.runDetails.metadata.invocationId}, manifest run_id ${manifest.run_id}`), ...ids, bytes };
  }
  const subjects = new Map<string, string>();
  for (const s of st.subject) {
    if (subjects.has(s.name)) return { ...fail('SUBJECT_MISMATCH', `subject ${s.name} is listed twice`), ...ids, bytes };
    subjects.set(s.name, s.digest.sha256 ?? '');
    const f = inManifest.get(s.name);
    if (!f) return { ...fail('SUBJECT_MISMATCH', `subject ${s.name} is not a file of the bundle`), ...ids, bytes };
    if (f.sha256 !== s.digest.sha256) return { ...fail('SUBJECT_MISMATCH', `subject ${s.name}: attested sha256 ${s.digest.sha256}, file ${f.sha256}`), ...ids, bytes };
  }
  for (const p of paths) {
    if (p.startsWith(`${ARTIFACTS_DIR}/`) && !subjects.has(p)) return { ...fail('SUBJECT_MISMATCH', `${p} is not a subject of the attestation`), ...ids, bytes };
  }

  // 6b. the input lock, and the resolved inputs against it
  const bad = checkInputLock(st, inManifest, (p) => readFileSync(join(root, p), 'utf8'));
  if (bad) return { ...bad, ...ids, bytes };

  // 7. events
  const split = splitLines(await readFile(join(root, EVENTS_FILE)));
  if (split.torn) return { ...fail('CHAIN_BROKEN', `${EVENTS_FILE}: the last line is torn (no newline)`), ...ids, bytes };
  const chain = verifyChain(split.lines, { runId: manifest.run_id });
  if (!chain.ok) return { ok: false, code: chain.code, detail: `${EVENTS_FILE}: ${chain.detail}`, ...ids, bytes };
  const rootB64u = logRoot(split.lines);
  const want = manifest.events;
  if (chain.count !== want.count) return { ...fail('LOG_ROOT_MISMATCH', `${EVENTS_FILE}: ${chain.count} events, the manifest signed ${want.count}`), ...ids, bytes };
  if (chain.head !== want.head_event_hash_b64u) return { ...fail('LOG_ROOT_MISMATCH', `${EVENTS_FILE}: head event hash ${chain.head}, the manifest signed ${want.head_event_hash_b64u}`), ...ids, bytes };
  if (rootB64u !== want.log_root_b64u) return { ...fail('LOG_ROOT_MISMATCH', `${EVENTS_FILE}: log root ${rootB64u}, the manifest signed ${want.log_root_b64u}`), ...ids, bytes };
  const byp = (st.predicate.runDetails.byproducts ?? []).find((b) => b.name === EVENTS_FILE);
  const ann = (byp?.annotations ?? {}) as { log_root_b64u?: unknown; count?: unknown };
  if (!byp || ann.log_root_b64u !== rootB64u || ann.count !== chain.count) {
    return { ...fail('LOG_ROOT_MISMATCH', `${ATTESTATION_FILE}: the attested event log (root ${String(ann.log_root_b64u)}) is not ${EVENTS_FILE} (root ${rootB64u})`), ...ids, bytes };
  }
  return { ok: true, code: 'PASS', detail: `run ${manifest.run_id} (release ${manifest.release}): ${manifest.files.length} files, ${chain.count} events, log root ${rootB64u}`, ...ids, bytes };
}

/** Verify a bundle directory or a bundle tar against the caller's trust root. */
export async function verifyBundle(dirOrTar: string, trust: TrustRoot, opts: VerifyOptions = {}): Promise<VerifyResult> {
  let st;
  try {
    st = await lstat(dirOrTar);
  } catch {
    return fail('FILE_MISSING', `${dirOrTar} does not exist`);
  }
  if (st.isSymbolicLink()) return fail('PATH_UNSAFE', `${dirOrTar} is a symlink; give the bundle itself`);
  if (st.isDirectory()) return verifyDir(dirOrTar, trust, opts);
  if (!st.isFile()) return fail('PATH_UNSAFE', `${dirOrTar} is neither a directory nor a tar file`);
  // Only a tar needs tar and a temp dir: loaded here so verifying a directory starts faster.
  const [{ dir: tmpDir }, { extractTarSafely }] = await Promise.all([import('tmp-promise'), import('./tar-read.js')]);
  const tmp = await tmpDir({ prefix: 'clawos-verify-', unsafeCleanup: true });
  try {
    const bad = await extractTarSafely(dirOrTar, tmp.path);
    if (bad) return bad;
    return await verifyDir(tmp.path, trust, opts);
  } finally {
    await tmp.cleanup();
  }
}

/**
 * Verify throughput for the bench script: bytes of bundle files hashed per second
 * of a full verify (same files sha256sum would read). Prints nothing.
 */
export async function verifyThroughput(
  bundle: string,
  trust: TrustRoot,
  opts: VerifyOptions & { runs?: number } = {},
): Promise<{ result: VerifyResult; bytes: number; seconds: number; bytesPerSecond: number }> {
  const runs = Math.max(1, opts.runs ?? 1);
  const times: number[] = [];
  let result: VerifyResult = fail('INVALID_SCHEMA', 'not run');
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    result = await verifyBundle(bundle, trust, opts);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((x, y) => x - y);
  const seconds = times[Math.floor(times.length / 2)]!;
  const bytes = result.bytes ?? 0;
  return { result, bytes, seconds, bytesPerSecond: seconds > 0 ? bytes / seconds : 0 };
}
