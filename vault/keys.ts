/**
 * Ed25519 keys and the trust root.
 * - key id: lowercase hex sha256 of the raw 32-byte public key (same for anyone
 *   who holds the public key, whatever its encoding).
 * - private key: PKCS#8 PEM, created with O_EXCL and mode 0600; it is never
 *   printed, logged, returned as text or put in a bundle. A group/world-readable
 *   private key is refused on load, as ssh does.
 * - trust root (keys.json): `{format: "clawos-trust-root", version: 1, keys: [...]}`
 *   (a versioned wrapper around the entry list, so a future format fails closed),
 *   each entry `{keyid, role, algorithm: "ed25519", public_key (base64 of the raw
 *   32 bytes), valid_from, valid_until (null = open), revoked}`. It is given to the
 *   verifier by the caller and never read from a bundle.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { canonicalize } from './jcs.js';
import { fail, VaultError, type Fail } from './codes.js';
import { schemaError } from './schemas.js';

/** builder: signs remote-cache entries (`--remote-cache`). tester: a hardware tester who signs the records of machines booted from a stick (`hw record`), with the tester's name. */
export const KEY_ROLES = ['release', 'security', 'core', 'tester', 'builder'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export interface TrustKey {
  keyid: string;
  role: KeyRole;
  algorithm: 'ed25519';
  public_key: string;
  valid_from: string;
  valid_until: string | null;
  revoked: boolean;
  comment?: string;
  /** Who holds the key (a tester's name: every hardware record shows it). */
  name?: string;
}

export interface TrustRoot {
  keys: TrustKey[];
  byId: Map<string, { entry: TrustKey; key: KeyObject }>;
}

/** What signs: the private key stays a KeyObject (its inspect/JSON show no material). */
export interface Signer {
  keyid: string;
  role: KeyRole;
  privateKey: KeyObject;
}

export function rawPublicKey(publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new VaultError('UNSUPPORTED_ALGORITHM', `not an ed25519 key: ${publicKey.asymmetricKeyType}`);
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url');
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex');
}

export function makeTrustEntry(
  publicKey: KeyObject,
  role: KeyRole,
  opts: { validFrom?: Date; validUntil?: Date | null; revoked?: boolean; comment?: string; name?: string } = {},
): TrustKey {
  const e: TrustKey = {
    keyid: keyIdOf(publicKey),
    role,
    algorithm: 'ed25519',
    public_key: rawPublicKey(publicKey).toString('base64'),
    valid_from: (opts.validFrom ?? new Date()).toISOString(),
    valid_until: opts.validUntil ? opts.validUntil.toISOString() : null,
    revoked: opts.revoked ?? false,
  };
  if (opts.comment !== undefined) e.comment = opts.comment;
  if (opts.name !== undefined) e.name = opts.name;
  return e;
}

export interface InitKeyResult {
  keyid: string;
  role: KeyRole;
  privateKeyPath: string;
  publicKeyPath: string;
  /** The entry to add to keys.json (see addTrustEntry). */
  trustEntry: TrustKey;
}

/**
 * Write a new Ed25519 pair into `dir` (created 0700): `<role>-<keyid[0:16]>.key`
 * (PKCS#8 PEM, 0600, never overwritten) and `.pub` (SPKI PEM).
 */
export async function initKey(
  dir: string,
  role: KeyRole,
  opts: { validFrom?: Date; validUntil?: Date | null; comment?: string; name?: string } = {},
): Promise<InitKeyResult> {
  if (!KEY_ROLES.includes(role)) throw new VaultError('INVALID_SCHEMA', `unknown key role "${String(role)}" (${KEY_ROLES.join(', ')})`);
  // A hardware record names who booted the machine: a tester key without a name would sign anonymously.
  if (role === 'tester' && !opts.name?.trim()) throw new VaultError('INVALID_SCHEMA', 'a tester key needs the tester\'s name');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyid = keyIdOf(publicKey);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const base = join(dir, `${role}-${keyid.slice(0, 16)}`);
  const privateKeyPath = `${base}.key`;
  const publicKeyPath = `${base}.pub`;
  // 'wx' = O_CREAT|O_EXCL: never clobber a key; the mode is set at creation so the
  // secret is never readable by others, even for an instant (fchmod covers umask).
  let fh;
  try {
    fh = await open(privateKeyPath, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new VaultError('EXISTS', `refusing to overwrite ${privateKeyPath}`);
    throw e;
  }
  try {
    await fh.chmod(0o600);
    await fh.writeFile(privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await writeFileAtomic(publicKeyPath, publicKey.export({ format: 'pem', type: 'spki' }));
  return { keyid, role, privateKeyPath, publicKeyPath, trustEntry: makeTrustEntry(publicKey, role, opts) };
}

/** Load a private key for signing; refuses a key file others can read. */
export async function loadSigner(privateKeyPath: string, role: KeyRole): Promise<Signer> {
  const st = await stat(privateKeyPath);
  if ((st.mode & 0o077) !== 0) {
    throw new VaultError('KEY_MODE', `${privateKeyPath}: private key is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
  const privateKey = createPrivateKey(await readFile(privateKeyPath));
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new VaultError('UNSUPPORTED_ALGORITHM', `${privateKeyPath}: not an ed25519 key`);
  return { keyid: keyIdOf(createPublicKey(privateKey)), role, privateKey };
}

const UTC_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;

/**
 * Is `s` (already matching the schema's pattern) a real instant? Date would read
 * 2026-13-45 as NaN, which no comparison is ever true of (a key that never
 * expires), and 2026-02-30 as 2 March: every field must survive the round trip.
 */
export function isRealTimestamp(s: string): boolean {
  const m = UTC_TIMESTAMP.exec(s);
  if (!m || Number.isNaN(Date.parse(s))) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, sec, 0);
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d && t.getUTCHours() === h && t.getUTCMinutes() === mi && t.getUTCSeconds() === sec;
}

/** Validate a trust root document; throws VaultError with the verifier's codes. */
export function parseTrust(doc: unknown, source = 'keys.json'): TrustRoot {
  const d = doc as { format?: unknown; version?: unknown; keys?: unknown };
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new VaultError('INVALID_SCHEMA', `${source}: not a trust root object`);
  if (d.format === 'clawos-trust-root' && d.version !== 1) throw new VaultError('UNSUPPORTED_VERSION', `${source}: trust root version ${JSON.stringify(d.version)} is not supported (1)`);
  if (Array.isArray(d.keys)) {
    for (const k of d.keys as { algorithm?: unknown; keyid?: unknown }[]) {
      if (k && typeof k === 'object' && typeof k.algorithm === 'string' && k.algorithm !== 'ed25519') {
        throw new VaultError('UNSUPPORTED_ALGORITHM', `${source}: key ${String(k.keyid)} uses ${k.algorithm}; only ed25519 is accepted`);
      }
    }
  }
  const err = schemaError('trust-root', doc);
  if (err) throw new VaultError('INVALID_SCHEMA', `${source}: ${err}`);
  const keys = (doc as { keys: TrustKey[] }).keys;
  const byId = new Map<string, { entry: TrustKey; key: KeyObject }>();
  for (const entry of keys) {
    const raw = Buffer.from(entry.public_key, 'base64');
    if (raw.length !== 32) throw new VaultError('INVALID_SCHEMA', `${source}: key ${entry.keyid}: public_key is not 32 bytes`);
    const id = createHash('sha256').update(raw).digest('hex');
    if (id !== entry.keyid) throw new VaultError('INVALID_SCHEMA', `${source}: key ${entry.keyid}: keyid is not sha256 of public_key (${id})`);
    if (byId.has(id)) throw new VaultError('INVALID_SCHEMA', `${source}: key ${id} listed twice`);
    // Fail closed: a date that is not a real instant would make the key valid forever.
    for (const field of ['valid_from', 'valid_until'] as const) {
      const v = entry[field];
      if (v !== null && !isRealTimestamp(v)) throw new VaultError('INVALID_SCHEMA', `${source}: key ${entry.keyid}: ${field} ${JSON.stringify(v)} is not a real date and time`);
    }
    byId.set(id, { entry, key: publicKeyFromRaw(raw) });
  }
  return { keys, byId };
}

export async function loadTrust(file: string): Promise<TrustRoot> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new VaultError('INVALID_SCHEMA', `${file}: ${(e as Error).message}`);
  }
  return parseTrust(doc, file);
}

export function trustDocument(entries: TrustKey[]): { format: 'clawos-trust-root'; version: 1; keys: TrustKey[] } {
  return { format: 'clawos-trust-root', version: 1, keys: [...entries].sort((a, b) => (a.keyid < b.keyid ? -1 : a.keyid > b.keyid ? 1 : 0)) };
}

/** Add (or replace, by keyid) an entry in keys.json, written atomically. */
export async function addTrustEntry(file: string, entry: TrustKey): Promise<void> {
  let entries: TrustKey[] = [];
  try {
    entries = parseTrust(JSON.parse(await readFile(file, 'utf8')), file).keys;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const next = trustDocument([...entries.filter((k) => k.keyid !== entry.keyid), entry]);
  parseTrust(next, file);
  await writeFileAtomic(file, JSON.stringify(JSON.parse(canonicalize(next)), null, 2) + '\n');
  await chmod(file, 0o644);
}

/**
 * Is `keyid` a key the caller trusts for one of `roles` at time `at`?
 * Unknown, or known only for another role: UNKNOWN_KEY. Revoked, or outside
 * valid_from..valid_until: KEY_REVOKED (the key is known but not trusted now).
 */
export function trustedKey(
  trust: TrustRoot,
  keyid: string,
  roles: readonly KeyRole[],
  at: Date,
): { ok: true; entry: TrustKey; key: KeyObject } | Fail {
  const k = trust.byId.get(keyid);
  if (!k) return fail('UNKNOWN_KEY', `key ${keyid} is not in the trust root`);
  if (!roles.includes(k.entry.role)) return fail('UNKNOWN_KEY', `key ${keyid} is trusted as ${k.entry.role}, not as ${roles.join(' or ')}`);
  if (k.entry.revoked) return fail('KEY_REVOKED', `key ${keyid} (${k.entry.role}) is revoked`);
  if (at < new Date(k.entry.valid_from)) return fail('KEY_REVOKED', `key ${keyid} (${k.entry.role}) is not valid before ${k.entry.valid_from}`);
  if (k.entry.valid_until !== null && at > new Date(k.entry.valid_until)) {
    return fail('KEY_REVOKED', `key ${keyid} (${k.entry.role}) expired at ${k.entry.valid_until}`);
  }
  return { ok: true, entry: k.entry, key: k.key };
}
