/**
 * DSSE envelopes (secure-systems-lab/dsse v1.0) with Ed25519 from node:crypto.
 * The signature covers PAE(payloadType, payload bytes); verification works on the
 * payload bytes decoded from the envelope, never on a re-serialized object.
 * Envelopes are written as JCS; payload and sig are standard base64 (the only
 * spelling accepted on read, so one envelope has one byte form).
 */
import { sign as edSign, verify as edVerify } from 'node:crypto';
import { canonicalBytes, parseJsonBytes } from './jcs.js';
import { fail, type Fail } from './codes.js';
import { schemaError } from './schemas.js';
import { trustedKey, type KeyRole, type Signer, type TrustKey, type TrustRoot } from './keys.js';

export const INTOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const MANIFEST_PAYLOAD_TYPE = 'application/vnd.clawos.bundle-manifest+json';
export const FREEZE_PAYLOAD_TYPE = 'application/vnd.clawos.spec-freeze+json';

export interface DsseSignature {
  keyid: string;
  sig: string;
}

export interface DsseEnvelope {
  payloadType: string;
  payload: string;
  signatures: DsseSignature[];
}

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in bytes, ASCII decimal. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export function signEnvelope(payload: Uint8Array, payloadType: string, signers: readonly Signer[]): DsseEnvelope {
  if (signers.length === 0) throw new Error('signEnvelope: no signer');
  const msg = pae(payloadType, payload);
  return {
    payloadType,
    payload: Buffer.from(payload).toString('base64'),
    signatures: signers.map((s) => ({ keyid: s.keyid, sig: edSign(null, msg, s.privateKey).toString('base64') })),
  };
}

/** The envelope file's bytes (JCS). */
export function envelopeBytes(env: DsseEnvelope): Buffer {
  return canonicalBytes(env);
}

function strictBase64(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

export interface ParsedEnvelope {
  envelope: DsseEnvelope;
  /** The exact payload bytes that were signed. */
  payload: Buffer;
}

/** Parse an envelope file; INVALID_SCHEMA when it is not a DSSE envelope of `payloadType`. */
export function parseEnvelope(bytes: Uint8Array, payloadType: string, name: string): ({ ok: true } & ParsedEnvelope) | Fail {
  const p = parseJsonBytes(bytes);
  if (!p.ok) return fail('INVALID_SCHEMA', `${name}: not JSON: ${p.error}`);
  const err = schemaError('dsse-envelope', p.value);
  if (err) return fail('INVALID_SCHEMA', `${name}: ${err}`);
  const envelope = p.value as DsseEnvelope;
  if (envelope.payloadType !== payloadType) return fail('INVALID_SCHEMA', `${name}: payloadType is "${envelope.payloadType}", expected "${payloadType}"`);
  const payload = strictBase64(envelope.payload);
  if (!payload) return fail('INVALID_SCHEMA', `${name}: payload is not canonical standard base64`);
  return { ok: true, envelope, payload };
}

/**
 * Check the signatures of a parsed envelope against the trust root, for keys of
 * `roles`. Any signature by a trusted key that does not verify, or by a revoked
 * key, fails the envelope (fail closed); signatures by keys the caller does not
 * trust are ignored, and at least one good one is required (else UNKNOWN_KEY).
 */
export function verifyEnvelope(
  parsed: ParsedEnvelope,
  trust: TrustRoot,
  roles: readonly KeyRole[],
  name: string,
  at: Date = new Date(),
): { ok: true; signers: TrustKey[] } | Fail {
  const msg = pae(parsed.envelope.payloadType, parsed.payload);
  const good: TrustKey[] = [];
  const untrusted: string[] = [];
  for (const s of parsed.envelope.signatures) {
    const k = trustedKey(trust, s.keyid, roles, at);
    if (!k.ok) {
      if (k.code !== 'UNKNOWN_KEY') return fail(k.code, `${name}: ${k.detail}`);
      untrusted.push(k.detail);
      continue;
    }
    const sig = strictBase64(s.sig);
    if (!sig || sig.length !== 64 || !edVerify(null, msg, k.key, sig)) {
      return fail('INVALID_SIGNATURE', `${name}: the signature by key ${s.keyid} (${k.entry.role}) does not verify`);
    }
    if (!good.some((g) => g.keyid === k.entry.keyid)) good.push(k.entry);
  }
  if (good.length === 0) return fail('UNKNOWN_KEY', `${name}: no signature by a trusted ${roles.join(' or ')} key (${untrusted.join('; ')})`);
  return { ok: true, signers: good };
}
