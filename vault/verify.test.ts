/**
 * The tamper suite: one real signed bundle, and for each way of tampering with
 * it, exactly one reason code. Cases that need the bundle to stay consistent
 * apart from the tampered part re-sign it with the trusted release key (an
 * insider or a compromised builder): that is what reaches the deeper checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { verifyBundle, verifyThroughput } from './verify.js';
import { ATTESTATION_FILE, EVENTS_FILE, MANIFEST_DSSE_FILE, MANIFEST_FILE } from './bundle.js';
import { parseTrust, trustDocument } from './keys.js';
import { exportBundle } from './export.js';
import { ARTIFACTS, copyBundle, EPOCH, makeFixture, rehash, RELEASE, resignAttestation, resignManifest, RUN_ID, type Fixture } from '../test/fixtures/vault/make-bundle.js';
import { bundleEntries, rawTar } from '../test/fixtures/vault/raw-tar.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture();
});
afterAll(async () => {
  await fx.cleanup();
});

async function flipByte(file: string, at = 7): Promise<void> {
  const b = await readFile(file);
  b[at % b.length] = b[at % b.length]! ^ 0x01;
  await writeFile(file, b);
}

async function lines(dir: string): Promise<string[]> {
  return (await readFile(join(dir, EVENTS_FILE), 'utf8')).split('\n').filter((l) => l !== '');
}

describe('verifyBundle on an untouched bundle', () => {
  it('passes a directory bundle', async () => {
    const r = await verifyBundle(fx.bundleDir, fx.trust);
    expect(r).toMatchObject({ ok: true, code: 'PASS', run_id: RUN_ID, release: RELEASE });
    expect(r.detail).toMatch(/^run run-20251121T000000Z-a1b2 \(release 0\.1\.0-alpha\): 7 files, 10 events, log root [A-Za-z0-9_-]{43}$/);
  });

  it('passes the exported tar, and reports throughput', async () => {
    const tar = join(fx.root, 'bundle.tar');
    await exportBundle(fx.bundleDir, tar, { sourceDateEpoch: EPOCH });
    expect((await verifyBundle(tar, fx.trust)).code).toBe('PASS');
    const t = await verifyThroughput(fx.bundleDir, fx.trust, { runs: 3 });
    expect(t.result.code).toBe('PASS');
    expect(t.bytes).toBeGreaterThan(460_000);
    expect(t.bytesPerSecond).toBeGreaterThan(0);
  });
});

describe('tamper suite: each case gives exactly its code', () => {
  it.each([...ARTIFACTS.map((a) => `artifacts/${a.path}`), EVENTS_FILE, ATTESTATION_FILE])('one flipped byte in %s: HASH_MISMATCH', async (p) => {
    const d = await copyBundle(fx);
    await flipByte(join(d, p), 100);
    const r = await verifyBundle(d, fx.trust);
    expect(r.code).toBe('HASH_MISMATCH');
    expect(r.detail).toMatch(new RegExp(`^${p.replace(/[.]/g, '\\.')}: sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}$`));
  });

  it('a truncated artifact: HASH_MISMATCH on size, before hashing', async () => {
    const d = await copyBundle(fx);
    await appendFile(join(d, 'artifacts/x86_64/vmlinuz'), 'x');
    expect(await verifyBundle(d, fx.trust)).toEqual({
      ok: false,
      code: 'HASH_MISMATCH',
      detail: 'artifacts/x86_64/vmlinuz: size 120001, manifest says 120000',
      run_id: RUN_ID,
      release: RELEASE,
    });
  });

  it('a deleted file: FILE_MISSING', async () => {
    const d = await copyBundle(fx);
    await rm(join(d, 'artifacts/x86_64/initramfs.cpio.gz'));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['FILE_MISSING', 'artifacts/x86_64/initramfs.cpio.gz is listed in the manifest but missing']);
    const d2 = await copyBundle(fx);
    await rm(join(d2, MANIFEST_DSSE_FILE));
    expect(await verifyBundle(d2, fx.trust)).toEqual({ ok: false, code: 'FILE_MISSING', detail: 'manifest.dsse.json is missing' });
  });

  it('an added file: UNEXPECTED_FILE', async () => {
    const d = await copyBundle(fx);
    await writeFile(join(d, 'artifacts/x86_64/backdoor.ko'), 'x');
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['UNEXPECTED_FILE', 'artifacts/x86_64/backdoor.ko is not in the manifest']);
  });

  it('reordered events without the release key: HASH_MISMATCH (events.jsonl is a listed file)', async () => {
    const d = await copyBundle(fx);
    const l = await lines(d);
    [l[3], l[4]] = [l[4]!, l[3]!];
    await writeFile(join(d, EVENTS_FILE), l.join('\n') + '\n');
    expect((await verifyBundle(d, fx.trust)).code).toBe('HASH_MISMATCH');
  });

  it('reordered events, manifest re-signed: CHAIN_BROKEN at the first moved event (its seq is not its position)', async () => {
    const d = await copyBundle(fx);
    const l = await lines(d);
    [l[3], l[4]] = [l[4]!, l[3]!];
    await writeFile(join(d, EVENTS_FILE), l.join('\n') + '\n');
    await rehash(d, fx.keys.release, EVENTS_FILE);
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['CHAIN_BROKEN', 'events.jsonl: event 3: seq is 4, expected 3']);
  });

  it('a dropped middle event, manifest re-signed: CHAIN_BROKEN (the next event\'s seq/prev no longer follow)', async () => {
    const d = await copyBundle(fx);
    const l = await lines(d);
    l.splice(5, 1);
    await writeFile(join(d, EVENTS_FILE), l.join('\n') + '\n');
    await rehash(d, fx.keys.release, EVENTS_FILE);
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['CHAIN_BROKEN', 'events.jsonl: event 5: seq is 6, expected 5']);
  });

  it('a dropped last event, manifest re-signed: LOG_ROOT_MISMATCH (the prefix is a valid chain; only the signed count/head/root show the truncation)', async () => {
    const d = await copyBundle(fx);
    const l = await lines(d);
    l.pop();
    await writeFile(join(d, EVENTS_FILE), l.join('\n') + '\n');
    await rehash(d, fx.keys.release, EVENTS_FILE);
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['LOG_ROOT_MISMATCH', 'events.jsonl: 9 events, the manifest signed 10']);
  });

  it('a truncated log whose manifest summary was also rewritten: LOG_ROOT_MISMATCH against the signed attestation', async () => {
    const d = await copyBundle(fx);
    const l = await lines(d);
    l.pop();
    await writeFile(join(d, EVENTS_FILE), l.join('\n') + '\n');
    const { logRoot, eventHash } = await import('./event-chain.js');
    const bufs = l.map((x) => Buffer.from(x));
    await rehash(d, fx.keys.release, EVENTS_FILE);
    await resignManifest(d, fx.keys.release, (m) => ({ ...m, events: { ...m.events, count: 9, log_root_b64u: logRoot(bufs), head_event_hash_b64u: eventHash(bufs[8]!) } }));
    const r = await verifyBundle(d, fx.trust);
    expect(r.code).toBe('LOG_ROOT_MISMATCH');
    expect(r.detail).toMatch(/^attestation\.dsse\.json: the attested event log \(root [A-Za-z0-9_-]{43}\) is not events\.jsonl \(root [A-Za-z0-9_-]{43}\)$/);
  });

  it('re-signed with an untrusted key: UNKNOWN_KEY', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.untrusted);
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual([
      'UNKNOWN_KEY',
      `manifest.dsse.json: no signature by a trusted release key (key ${fx.keys.untrusted.keyid} is not in the trust root)`,
    ]);
  });

  it('signed by a trusted key of another role: UNKNOWN_KEY', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.security);
    const r = await verifyBundle(d, fx.trust);
    expect(r.detail).toBe(`manifest.dsse.json: no signature by a trusted release key (key ${fx.keys.security.keyid} is trusted as security, not as release)`);
    expect(r.code).toBe('UNKNOWN_KEY');
  });

  it('signed with a revoked key: KEY_REVOKED', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.revoked);
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['KEY_REVOKED', `manifest.dsse.json: key ${fx.keys.revoked.keyid} (release) is revoked`]);
  });

  it('a key past valid_until: KEY_REVOKED', async () => {
    const entries = fx.trustEntries.map((e) => (e.keyid === fx.keys.release.keyid ? { ...e, valid_until: '2025-06-01T00:00:00.000Z' } : e));
    const r = await verifyBundle(fx.bundleDir, parseTrust(trustDocument(entries)));
    expect([r.code, r.detail]).toEqual(['KEY_REVOKED', `manifest.dsse.json: key ${fx.keys.release.keyid} (release) expired at 2025-06-01T00:00:00.000Z`]);
  });

  it('a corrupted signature: INVALID_SIGNATURE', async () => {
    const d = await copyBundle(fx);
    const env = JSON.parse(await readFile(join(d, MANIFEST_DSSE_FILE), 'utf8')) as { signatures: { sig: string }[] };
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    sig[10] = sig[10]! ^ 0xff;
    const { canonicalBytes } = await import('./jcs.js');
    await writeFile(join(d, MANIFEST_DSSE_FILE), canonicalBytes({ ...env, signatures: [{ ...env.signatures[0], sig: sig.toString('base64') }] }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['INVALID_SIGNATURE', `manifest.dsse.json: the signature by key ${fx.keys.release.keyid} (release) does not verify`]);
  });

  it('manifest.json edited (canonical) without re-signing: INVALID_SIGNATURE', async () => {
    const d = await copyBundle(fx);
    const { canonicalBytes } = await import('./jcs.js');
    const m = JSON.parse(await readFile(join(d, MANIFEST_FILE), 'utf8')) as { release: string };
    await writeFile(join(d, MANIFEST_FILE), canonicalBytes({ ...m, release: '9.9.9' }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['INVALID_SIGNATURE', 'manifest.json is not the manifest signed in manifest.dsse.json']);
  });

  it('manifest.json pretty-printed (same meaning): NON_CANONICAL_JSON', async () => {
    const d = await copyBundle(fx);
    const m = JSON.parse(await readFile(join(d, MANIFEST_FILE), 'utf8')) as unknown;
    await writeFile(join(d, MANIFEST_FILE), JSON.stringify(m, null, 2));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['NON_CANONICAL_JSON', 'manifest.json is not RFC 8785 canonical JSON']);
  });

  it('a validly signed but non-canonical manifest (keys reordered): NON_CANONICAL_JSON, not accepted by re-serializing', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.release, (m) => m, (m) => {
      const o = m as Record<string, unknown>;
      const rev = Object.fromEntries(Object.keys(o).reverse().map((k) => [k, o[k]]));
      return Buffer.from(JSON.stringify(rev));
    });
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['NON_CANONICAL_JSON', 'manifest.dsse.json: the signed payload is not RFC 8785 canonical JSON']);
  });

  it('an event line with the same meaning but another key order, manifest re-signed: NON_CANONICAL_JSON', async () => {
    const d = await copyBundle(fx);
    const l = await lines(d);
    const ev = JSON.parse(l[2]!) as Record<string, unknown>;
    l[2] = JSON.stringify(Object.fromEntries(Object.keys(ev).reverse().map((k) => [k, ev[k]])));
    await writeFile(join(d, EVENTS_FILE), l.join('\n') + '\n');
    await rehash(d, fx.keys.release, EVENTS_FILE);
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['NON_CANONICAL_JSON', 'events.jsonl: event 2: not in RFC 8785 canonical form']);
  });

  it('a tar with a path-traversal entry: PATH_UNSAFE, and nothing is written outside the temp dir', async () => {
    const escape = `clawos-escape-${randomBytes(4).toString('hex')}`;
    const tar = join(fx.root, 'evil-traversal.tar');
    await writeFile(tar, rawTar([...(await bundleEntries(fx.bundleDir)), { path: `../${escape}`, data: Buffer.from('pwned') }]));
    const r = await verifyBundle(tar, fx.trust);
    expect([r.code, r.detail]).toEqual(['PATH_UNSAFE', `tar entry "../${escape}" contains ".."`]);
    expect(existsSync(join(tmpdir(), escape))).toBe(false);
  });

  it('a tar with a symlink entry: PATH_UNSAFE', async () => {
    const tar = join(fx.root, 'evil-symlink.tar');
    await writeFile(tar, rawTar([{ path: 'artifacts/passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }, ...(await bundleEntries(fx.bundleDir))]));
    const r = await verifyBundle(tar, fx.trust);
    expect([r.code, r.detail]).toEqual(['PATH_UNSAFE', 'tar entry "artifacts/passwd" is a symlink']);
  });

  it.each([
    [{ path: '/etc/clawos-evil', data: Buffer.from('x') }, 'tar entry "/etc/clawos-evil" is absolute'],
    [{ path: 'artifacts/h', type: 'Link' as const, linkpath: 'events.jsonl' }, 'tar entry "artifacts/h" is a hardlink'],
    [{ path: 'events.jsonl', data: Buffer.from('x') }, 'tar entry "events.jsonl" appears twice'],
    [{ path: 'EVENTS.jsonl', data: Buffer.from('x') }, 'tar entries "events.jsonl" and "EVENTS.jsonl" differ only in case'],
    [{ path: 'a\\b', data: Buffer.from('x') }, 'tar entry "a\\\\b" contains a backslash'],
  ])('a tar with %o: PATH_UNSAFE', async (bad, detail) => {
    const tar = join(fx.root, `evil-${randomBytes(3).toString('hex')}.tar`);
    await writeFile(tar, rawTar([...(await bundleEntries(fx.bundleDir)), bad]));
    const r = await verifyBundle(tar, fx.trust);
    expect([r.code, r.detail]).toEqual(['PATH_UNSAFE', detail]);
  });

  it('a symlink inside a bundle directory: PATH_UNSAFE (never followed)', async () => {
    const d = await copyBundle(fx);
    await rm(join(d, 'artifacts/x86_64/vmlinuz'));
    await symlink(join(fx.bundleDir, 'artifacts/x86_64/vmlinuz'), join(d, 'artifacts/x86_64/vmlinuz'));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['PATH_UNSAFE', 'artifacts/x86_64/vmlinuz is a symlink']);
  });

  it('a file that differs from another only in case: PATH_UNSAFE', async () => {
    const d = await copyBundle(fx);
    await writeFile(join(d, 'Events.jsonl'), 'x');
    const r = await verifyBundle(d, fx.trust);
    expect(r.code).toBe('PATH_UNSAFE');
    expect(r.detail).toMatch(/^(Events\.jsonl and events\.jsonl|events\.jsonl and Events\.jsonl) differ only in case$/);
  });

  it('a manifest entry with "..", re-signed: PATH_UNSAFE', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.release, (m) => ({ ...m, files: [{ path: '../outside', size: 1, sha256: '0'.repeat(64) }, ...m.files] }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['PATH_UNSAFE', 'manifest.json: "../outside" contains ".."']);
  });

  it('a replayed bundle: REPLAY_DETECTED (run_id in the ledger, or an older release than expected)', async () => {
    const r = await verifyBundle(fx.bundleDir, fx.trust, { ledger: new Set([RUN_ID]) });
    expect([r.code, r.detail]).toEqual(['REPLAY_DETECTED', `run ${RUN_ID} is already in the ledger`]);
    const r2 = await verifyBundle(fx.bundleDir, fx.trust, { minRelease: '0.1.0' });
    expect([r2.code, r2.detail]).toEqual(['REPLAY_DETECTED', 'release 0.1.0-alpha is older than the expected 0.1.0']);
    expect((await verifyBundle(fx.bundleDir, fx.trust, { minRelease: '0.1.0-alpha', ledger: new Set(['other']) })).code).toBe('PASS');
  });

  it('an unknown manifest version: UNSUPPORTED_VERSION', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.release, (m) => ({ ...m, version: 2 }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['UNSUPPORTED_VERSION', 'manifest.json: version 2 is not supported (1)']);
  });

  it('an unknown statement type: UNSUPPORTED_VERSION', async () => {
    const d = await copyBundle(fx);
    await resignAttestation(d, fx.keys.release, (st) => ({ ...st, _type: 'https://in-toto.io/Statement/v0.1' }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['UNSUPPORTED_VERSION', 'attestation.dsse.json: _type "https://in-toto.io/Statement/v0.1" is not https://in-toto.io/Statement/v1']);
  });

  it('an unsupported hash algorithm: UNSUPPORTED_ALGORITHM', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.release, (m) => ({ ...m, hash_alg: 'sha1' }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['UNSUPPORTED_ALGORITHM', 'manifest.json: hash_alg "sha1"; only sha256 is accepted']);
    const d2 = await copyBundle(fx);
    await resignAttestation(d2, fx.keys.release, (st) => ({
      ...st,
      subject: (st.subject as { name: string; digest: Record<string, string> }[]).map((s) => ({ ...s, digest: { sha512: 'ab'.repeat(64) } })),
    }));
    const r2 = await verifyBundle(d2, fx.trust);
    expect(r2.code).toBe('UNSUPPORTED_ALGORITHM');
    expect(r2.detail).toBe('attestation.dsse.json: subject artifacts/gates/P4/gate-report.json has no sha256 digest (sha512); only sha256 is accepted');
  });

  it('an unknown field in the signed manifest: INVALID_SCHEMA', async () => {
    const d = await copyBundle(fx);
    await resignManifest(d, fx.keys.release, (m) => ({ ...m, note: 'hi' }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['INVALID_SCHEMA', 'manifest.json: bundle-manifest.schema.json: / must NOT have additional properties (note)']);
  });

  it('an attested subject that is not the file: SUBJECT_MISMATCH', async () => {
    const d = await copyBundle(fx);
    await resignAttestation(d, fx.keys.release, (st) => ({
      ...st,
      subject: (st.subject as { name: string; digest: Record<string, string> }[]).map((s, i) => (i === 0 ? { ...s, digest: { sha256: 'f'.repeat(64) } } : s)),
    }));
    const r = await verifyBundle(d, fx.trust);
    expect(r.code).toBe('SUBJECT_MISMATCH');
    expect(r.detail).toMatch(/^subject artifacts\/gates\/P4\/gate-report\.json: attested sha256 f{64}, file [0-9a-f]{64}$/);
  });

  it('an artifact left out of the attestation: SUBJECT_MISMATCH', async () => {
    const d = await copyBundle(fx);
    await resignAttestation(d, fx.keys.release, (st) => ({ ...st, subject: (st.subject as unknown[]).slice(1) }));
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['SUBJECT_MISMATCH', 'artifacts/gates/P4/gate-report.json is not a subject of the attestation']);
  });

  it('an attestation of another run: RUN_ID_MISMATCH; a bundle of another run than expected: RUN_ID_MISMATCH', async () => {
    const d = await copyBundle(fx);
    await resignAttestation(d, fx.keys.release, (st) => {
      const p = st.predicate as { runDetails: { metadata: Record<string, string> } };
      p.runDetails.metadata.invocationId = 'run-other';
      return st;
    });
    const r = await verifyBundle(d, fx.trust);
    expect([r.code, r.detail]).toEqual(['RUN_ID_MISMATCH', `attestation.dsse.json: invocationId run-other, manifest run_id ${RUN_ID}`]);
    const r2 = await verifyBundle(fx.bundleDir, fx.trust, { expectRunId: 'run-x' });
    expect([r2.code, r2.detail]).toEqual(['RUN_ID_MISMATCH', `bundle is run ${RUN_ID}, expected run-x`]);
  });

  it('a missing bundle path: FILE_MISSING; a symlinked bundle path: PATH_UNSAFE', async () => {
    expect((await verifyBundle(join(fx.root, 'nope'), fx.trust)).code).toBe('FILE_MISSING');
    const l = join(fx.root, 'bundle-link');
    await symlink(fx.bundleDir, l);
    expect((await verifyBundle(l, fx.trust)).code).toBe('PATH_UNSAFE');
  });
});
