/**
 * Spec freeze records. A frozen P1 spec changes only with both reviews
 * (RULE-003), so a freeze record is one DSSE envelope over
 * `{format: "clawos-spec-freeze", version: 1, frozen_at, specs: [{path, sha256, version}]}`
 * (JCS, sorted by path) carrying a signature by a security key AND one by a core
 * key; one role alone is refused. A task whose frozen_spec_deps do not hash to
 * the record is refused, naming the spec and both hashes; a new freeze that
 * changes a spec's content without a new major version (RULE-004) is refused.
 */
import { canonicalBytes } from './jcs.js';
import { fail, type Fail } from './codes.js';
import { envelopeBytes, FREEZE_PAYLOAD_TYPE, parseEnvelope, signEnvelope, verifyEnvelope, type DsseEnvelope } from './dsse.js';
import type { Signer, TrustRoot } from './keys.js';
import { schemaError } from './schemas.js';
import { compareUtf8 } from './paths.js';

export interface FrozenSpec {
  path: string;
  sha256: string;
  version: string;
}

export interface FreezePayload {
  format: 'clawos-spec-freeze';
  version: 1;
  frozen_at: string;
  specs: FrozenSpec[];
}

function major(v: string): number {
  return Number(/^(\d+)\./.exec(v)?.[1] ?? NaN);
}

/**
 * Changes from `previous` to `next` that the rules refuse: a spec whose sha256
 * changed while its major version did not grow. Returns one message per spec.
 */
export function freezeSuccessionProblems(previous: FreezePayload | undefined, next: readonly FrozenSpec[]): string[] {
  if (!previous) return [];
  const old = new Map(previous.specs.map((s) => [s.path, s]));
  const out: string[] = [];
  for (const s of next) {
    const o = old.get(s.path);
    if (o && o.sha256 !== s.sha256 && !(major(s.version) > major(o.version))) {
      out.push(`${s.path}: content changed (sha256 ${o.sha256} -> ${s.sha256}) but version ${s.version} keeps major ${major(o.version)} of frozen ${o.version}; a frozen spec changes only with a new major version`);
    }
  }
  return out;
}

/**
 * Make a freeze record signed by one security and one core signer. With
 * `previous`, refuses content changes without a major bump (throws).
 */
export function freezeRecord(
  specs: readonly FrozenSpec[],
  signers: { security: Signer; core: Signer },
  opts: { frozenAt?: Date; previous?: FreezePayload } = {},
): { envelope: DsseEnvelope; bytes: Buffer; payload: FreezePayload } {
  if (signers.security.role !== 'security') throw new Error(`freezeRecord: the security signer has role ${signers.security.role}`);
  if (signers.core.role !== 'core') throw new Error(`freezeRecord: the core signer has role ${signers.core.role}`);
  const problems = freezeSuccessionProblems(opts.previous, specs);
  if (problems.length) throw new Error(`spec freeze refused:\n${problems.join('\n')}`);
  const payload: FreezePayload = {
    format: 'clawos-spec-freeze',
    version: 1,
    frozen_at: (opts.frozenAt ?? new Date()).toISOString(),
    specs: [...specs].map((s) => ({ path: s.path, sha256: s.sha256, version: s.version })).sort((a, b) => compareUtf8(a.path, b.path)),
  };
  const err = schemaError('spec-freeze', payload);
  if (err) throw new Error(`freezeRecord: ${err}`);
  const envelope = signEnvelope(canonicalBytes(payload), FREEZE_PAYLOAD_TYPE, [signers.security, signers.core]);
  return { envelope, bytes: envelopeBytes(envelope), payload };
}

/** Verify a freeze record file's bytes: both roles must have signed, with trusted keys. */
export function verifyFreeze(record: Uint8Array, trust: TrustRoot, at: Date = new Date()): { ok: true; payload: FreezePayload } | Fail {
  const env = parseEnvelope(record, FREEZE_PAYLOAD_TYPE, 'freeze record');
  if (!env.ok) return env;
  const sig = verifyEnvelope(env, trust, ['security', 'core'], 'freeze record', at);
  if (!sig.ok) return sig;
  const roles = new Set(sig.signers.map((s) => s.role));
  if (!roles.has('security') || !roles.has('core')) {
    const have = sig.signers.map((s) => `${s.role} ${s.keyid.slice(0, 16)}`).join(', ');
    const missing = roles.has('security') ? 'core' : 'security';
    return fail('UNKNOWN_KEY', `freeze record is not signed by both a security key and a core key: missing ${missing} (signed by: ${have})`);
  }
  const p = JSON.parse(env.payload.toString('utf8')) as FreezePayload;
  if (p.version !== 1) return fail('UNSUPPORTED_VERSION', `freeze record version ${JSON.stringify(p.version)} is not supported (1)`);
  const err = schemaError('spec-freeze', p);
  if (err) return fail('INVALID_SCHEMA', `freeze record: ${err}`);
  if (!canonicalBytes(p).equals(env.payload)) return fail('NON_CANONICAL_JSON', 'freeze record: the signed payload is not RFC 8785 canonical JSON');
  return { ok: true, payload: p };
}

export interface FrozenDepRefusal {
  path: string;
  message: string;
}

/**
 * A task's frozen_spec_deps against the freeze record and the specs' current
 * content. Every problem is reported (one line per spec), not just the first.
 */
export function checkFrozenDeps(
  deps: readonly { path: string }[],
  current: ReadonlyMap<string, { sha256: string; version: string }> | Record<string, { sha256: string; version: string }>,
  freeze: FreezePayload,
): { ok: true } | { ok: false; refusals: FrozenDepRefusal[]; message: string } {
  const cur = current instanceof Map ? current : new Map(Object.entries(current));
  const frozen = new Map(freeze.specs.map((s) => [s.path, s]));
  const refusals: FrozenDepRefusal[] = [];
  for (const d of deps) {
    const f = frozen.get(d.path);
    const c = cur.get(d.path);
    if (!f) {
      refusals.push({ path: d.path, message: `frozen spec ${d.path} is not in the freeze record (frozen_at ${freeze.frozen_at}); freeze it first` });
    } else if (!c) {
      refusals.push({ path: d.path, message: `frozen spec ${d.path} is missing (frozen sha256 ${f.sha256})` });
    } else if (c.sha256 !== f.sha256) {
      const why =
        major(c.version) > major(f.version)
          ? `version ${c.version} is a new major over frozen ${f.version} but has no new freeze (security + core)`
          : `version ${c.version} keeps major ${major(f.version)} of frozen ${f.version}; a frozen spec changes only with a new major version and a new freeze`;
      refusals.push({ path: d.path, message: `frozen spec ${d.path} changed: frozen sha256 ${f.sha256}, current sha256 ${c.sha256}; ${why}` });
    }
  }
  if (refusals.length === 0) return { ok: true };
  return { ok: false, refusals, message: refusals.map((r) => r.message).join('\n') };
}

/**
 * Every file the freeze covers, as read now, against the record: one refusal per
 * file that changed, that the record lists but is gone, or that is new and not in
 * the record. A run checks this before anything runs, whatever its tasks declare.
 */
export function checkFreezeCoverage(
  current: readonly { path: string; sha256: string; version: string }[],
  freeze: FreezePayload,
): { ok: true } | { ok: false; refusals: FrozenDepRefusal[]; message: string } {
  const paths = [...new Set([...current.map((s) => s.path), ...freeze.specs.map((s) => s.path)])].sort(compareUtf8);
  return checkFrozenDeps(
    paths.map((path) => ({ path })),
    new Map(current.map((s) => [s.path, s])),
    freeze,
  );
}
