import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { envelopeBytes, INTOTO_PAYLOAD_TYPE, pae, parseEnvelope, signEnvelope, verifyEnvelope } from './dsse.js';
import { initKey, loadSigner, parseTrust, trustDocument, type Signer, type TrustRoot } from './keys.js';

let tmp: DirectoryResult;
let release: Signer;
let trust: TrustRoot;
beforeAll(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
  const k = await initKey(tmp.path, 'release', { validFrom: new Date('2025-01-01T00:00:00Z') });
  release = await loadSigner(k.privateKeyPath, 'release');
  trust = parseTrust(trustDocument([k.trustEntry]));
});
afterAll(() => tmp.cleanup());

describe('DSSE', () => {
  it('PAE matches the DSSE spec vector', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it('PAE counts bytes, not characters', () => {
    expect(pae('t', Buffer.from('é')).toString()).toBe('DSSEv1 1 t 2 é');
  });

  it('signs with Ed25519 and verifies over the exact payload bytes', () => {
    // Deliberately non-canonical bytes: the signature must hold for the bytes as they are.
    const payload = Buffer.from('{ "b": 1,  "a": 2 }');
    const bytes = envelopeBytes(signEnvelope(payload, INTOTO_PAYLOAD_TYPE, [release]));
    const env = parseEnvelope(bytes, INTOTO_PAYLOAD_TYPE, 'x');
    expect(env.ok).toBe(true);
    if (!env.ok) return;
    expect(env.payload.equals(payload)).toBe(true);
    expect(env.envelope.signatures).toHaveLength(1);
    expect(env.envelope.signatures[0]!.keyid).toBe(release.keyid);
    expect(verifyEnvelope(env, trust, ['release'], 'x')).toMatchObject({ ok: true });
    const changed = { ...env, payload: Buffer.from('{"a":2,"b":1}') };
    expect(verifyEnvelope(changed, trust, ['release'], 'x')).toEqual({
      ok: false,
      code: 'INVALID_SIGNATURE',
      detail: `x: the signature by key ${release.keyid} (release) does not verify`,
    });
    const otherType = { ...env, envelope: { ...env.envelope, payloadType: 'application/json' } };
    expect(verifyEnvelope(otherType, trust, ['release'], 'x')).toMatchObject({ ok: false, code: 'INVALID_SIGNATURE' });
  });

  it('refuses malformed envelopes as INVALID_SCHEMA', () => {
    expect(parseEnvelope(Buffer.from('nope'), INTOTO_PAYLOAD_TYPE, 'x')).toMatchObject({ ok: false, code: 'INVALID_SCHEMA' });
    expect(parseEnvelope(Buffer.from('{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[]}'), INTOTO_PAYLOAD_TYPE, 'x')).toEqual({
      ok: false,
      code: 'INVALID_SCHEMA',
      detail: 'x: dsse-envelope.schema.json: /signatures must NOT have fewer than 1 items',
    });
    const good = signEnvelope(Buffer.from('{}'), INTOTO_PAYLOAD_TYPE, [release]);
    expect(parseEnvelope(envelopeBytes(good), 'application/other', 'x')).toEqual({
      ok: false,
      code: 'INVALID_SCHEMA',
      detail: 'x: payloadType is "application/vnd.in-toto+json", expected "application/other"',
    });
    // "e30" is "{}" without padding: a second spelling of the same bytes is refused.
    expect(parseEnvelope(envelopeBytes({ ...good, payload: 'e30' }), INTOTO_PAYLOAD_TYPE, 'x')).toEqual({
      ok: false,
      code: 'INVALID_SCHEMA',
      detail: 'x: payload is not canonical standard base64',
    });
  });
});
