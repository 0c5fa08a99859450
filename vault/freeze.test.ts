import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFreezeCoverage, checkFrozenDeps, freezeRecord, verifyFreeze } from './freeze.js';
import { envelopeBytes, FREEZE_PAYLOAD_TYPE, signEnvelope } from './dsse.js';
import { canonicalBytes } from './jcs.js';
import { makeFixture, type Fixture } from '../test/fixtures/vault/make-bundle.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture();
});
afterAll(() => fx.cleanup());

const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);
const SECCOMP = 'specs/p1/seccomp-whitelist.yaml';
const specs = [
  { path: SECCOMP, sha256: H1, version: '1.0.0' },
  { path: 'specs/p1/cgroup-quotas.yaml', sha256: '3'.repeat(64), version: '1.0.0' },
];
const at = new Date('2025-11-21T00:00:00Z');

describe('spec freeze', () => {
  it('a record signed by a security key and a core key verifies', () => {
    const rec = freezeRecord(specs, { security: fx.keys.security, core: fx.keys.core }, { frozenAt: at });
    expect(rec.envelope.signatures.map((s) => s.keyid)).toEqual([fx.keys.security.keyid, fx.keys.core.keyid]);
    expect(rec.payload.specs.map((s) => s.path)).toEqual(['specs/p1/cgroup-quotas.yaml', SECCOMP]);
    const v = verifyFreeze(rec.bytes, fx.trust);
    expect(v).toEqual({ ok: true, payload: rec.payload });
  });

  it('one role\'s signature only is refused', () => {
    const payload = canonicalBytes(freezeRecord(specs, { security: fx.keys.security, core: fx.keys.core }, { frozenAt: at }).payload);
    const onlySecurity = envelopeBytes(signEnvelope(payload, FREEZE_PAYLOAD_TYPE, [fx.keys.security]));
    expect(verifyFreeze(onlySecurity, fx.trust)).toEqual({
      ok: false,
      code: 'UNKNOWN_KEY',
      detail: `freeze record is not signed by both a security key and a core key: missing core (signed by: security ${fx.keys.security.keyid.slice(0, 16)})`,
    });
    const twoSecurity = envelopeBytes(signEnvelope(payload, FREEZE_PAYLOAD_TYPE, [fx.keys.security, fx.keys.security2]));
    expect(verifyFreeze(twoSecurity, fx.trust)).toMatchObject({ ok: false, code: 'UNKNOWN_KEY' });
    const onlyCore = envelopeBytes(signEnvelope(payload, FREEZE_PAYLOAD_TYPE, [fx.keys.core]));
    expect(verifyFreeze(onlyCore, fx.trust)).toEqual({
      ok: false,
      code: 'UNKNOWN_KEY',
      detail: `freeze record is not signed by both a security key and a core key: missing security (signed by: core ${fx.keys.core.keyid.slice(0, 16)})`,
    });
    // A release key is no substitute for either review.
    const withRelease = envelopeBytes(signEnvelope(payload, FREEZE_PAYLOAD_TYPE, [fx.keys.security, fx.keys.release]));
    expect(verifyFreeze(withRelease, fx.trust)).toMatchObject({ ok: false, code: 'UNKNOWN_KEY' });
  });

  it('a stale frozen_spec_deps entry is refused, naming the spec and both hashes', () => {
    const rec = freezeRecord(specs, { security: fx.keys.security, core: fx.keys.core }, { frozenAt: at });
    expect(checkFrozenDeps([{ path: SECCOMP }], { [SECCOMP]: { sha256: H1, version: '1.0.0' } }, rec.payload)).toEqual({ ok: true });
    const r = checkFrozenDeps([{ path: SECCOMP }], new Map([[SECCOMP, { sha256: H2, version: '1.0.1' }]]), rec.payload);
    const msg = `frozen spec ${SECCOMP} changed: frozen sha256 ${H1}, current sha256 ${H2}; version 1.0.1 keeps major 1 of frozen 1.0.0; a frozen spec changes only with a new major version and a new freeze`;
    expect(r).toEqual({ ok: false, refusals: [{ path: SECCOMP, message: msg }], message: msg });
    const r2 = checkFrozenDeps([{ path: SECCOMP }], { [SECCOMP]: { sha256: H2, version: '2.0.0' } }, rec.payload);
    expect(r2).toMatchObject({
      ok: false,
      message: `frozen spec ${SECCOMP} changed: frozen sha256 ${H1}, current sha256 ${H2}; version 2.0.0 is a new major over frozen 1.0.0 but has no new freeze (security + core)`,
    });
    const r3 = checkFrozenDeps([{ path: 'specs/p1/clawfs.yaml' }], {}, rec.payload);
    expect(r3).toMatchObject({ ok: false, message: 'frozen spec specs/p1/clawfs.yaml is not in the freeze record (frozen_at 2025-11-21T00:00:00.000Z); freeze it first' });
  });

  it('a new freeze that changes a spec without a new major version is refused; with one it is accepted', () => {
    const prev = freezeRecord(specs, { security: fx.keys.security, core: fx.keys.core }, { frozenAt: at }).payload;
    const signers = { security: fx.keys.security, core: fx.keys.core };
    expect(() => freezeRecord([{ path: SECCOMP, sha256: H2, version: '1.1.0' }], signers, { previous: prev })).toThrow(
      `spec freeze refused:\n${SECCOMP}: content changed (sha256 ${H1} -> ${H2}) but version 1.1.0 keeps major 1 of frozen 1.0.0; a frozen spec changes only with a new major version`,
    );
    const next = freezeRecord([{ path: SECCOMP, sha256: H2, version: '2.0.0' }], signers, { previous: prev, frozenAt: at });
    expect(verifyFreeze(next.bytes, fx.trust).ok).toBe(true);
    expect(checkFrozenDeps([{ path: SECCOMP }], { [SECCOMP]: { sha256: H2, version: '2.0.0' } }, next.payload)).toEqual({ ok: true });
  });

  it('a revoked or tampered signature fails the record', () => {
    const rec = freezeRecord(specs, { security: fx.keys.security, core: fx.keys.core }, { frozenAt: at });
    const env = { ...rec.envelope, payload: Buffer.from(canonicalBytes({ ...rec.payload, frozen_at: '2030-01-01T00:00:00.000Z' })).toString('base64') };
    expect(verifyFreeze(envelopeBytes(env), fx.trust)).toMatchObject({ ok: false, code: 'INVALID_SIGNATURE' });
  });

  it('coverage: every covered file against the record, not only the ones a task lists', () => {
    const rec = freezeRecord(specs, { security: fx.keys.security, core: fx.keys.core }, { frozenAt: at });
    expect(checkFreezeCoverage(specs, rec.payload)).toEqual({ ok: true });
    const r = checkFreezeCoverage(
      [
        { path: SECCOMP, sha256: H2, version: '1.0.0' },
        { path: 'specs/audit/new.yaml', sha256: H1, version: '1.0.0' },
      ],
      rec.payload,
    );
    expect(r.ok ? [] : r.message.split('\n')).toEqual([
      'frozen spec specs/audit/new.yaml is not in the freeze record (frozen_at 2025-11-21T00:00:00.000Z); freeze it first',
      `frozen spec specs/p1/cgroup-quotas.yaml is missing (frozen sha256 ${'3'.repeat(64)})`,
      `frozen spec ${SECCOMP} changed: frozen sha256 ${H1}, current sha256 ${H2}; version 1.0.0 keeps major 1 of frozen 1.0.0; a frozen spec changes only with a new major version and a new freeze`,
    ]);
  });
});
