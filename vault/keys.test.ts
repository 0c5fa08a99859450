import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createHash, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { addTrustEntry, initKey, isRealTimestamp, keyIdOf, loadSigner, loadTrust, parseTrust, trustDocument } from './keys.js';
import { VaultError } from './codes.js';

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

describe('keys', () => {
  it('initKey writes a 0600 PKCS#8 private key and a public key; keyid = hex sha256 of the raw public key', async () => {
    const old = process.umask(0o000);
    try {
      const k = await initKey(join(tmp.path, 'k1'), 'release');
      expect((await stat(k.privateKeyPath)).mode & 0o777).toBe(0o600);
      expect((await stat(join(tmp.path, 'k1'))).mode & 0o777).toBe(0o700);
      expect(await readFile(k.privateKeyPath, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      const pub = createPublicKey(await readFile(k.publicKeyPath));
      const raw = Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
      expect(k.keyid).toBe(createHash('sha256').update(raw).digest('hex'));
      expect(keyIdOf(pub)).toBe(k.keyid);
      expect(k.trustEntry).toMatchObject({ keyid: k.keyid, role: 'release', algorithm: 'ed25519', public_key: raw.toString('base64'), revoked: false, valid_until: null });
      expect(JSON.stringify(k)).not.toContain('PRIVATE');
      const s = await loadSigner(k.privateKeyPath, 'release');
      expect(s.keyid).toBe(k.keyid);
      expect(JSON.stringify(s)).not.toMatch(/PRIVATE|"d":/);
    } finally {
      process.umask(old);
    }
  });

  it('refuses to load a private key others can read', async () => {
    const k = await initKey(join(tmp.path, 'k2'), 'core');
    await chmod(k.privateKeyPath, 0o644);
    await expect(loadSigner(k.privateKeyPath, 'core')).rejects.toThrow(
      `${k.privateKeyPath}: private key is readable by group or others (mode 644); run chmod 600 on it`,
    );
  });

  it('never overwrites a key', async () => {
    const dir = join(tmp.path, 'k3');
    const k = await initKey(dir, 'security');
    expect(await readdir(dir)).toEqual([`security-${k.keyid.slice(0, 16)}.key`, `security-${k.keyid.slice(0, 16)}.pub`].sort());
  });

  it('addTrustEntry + loadTrust round-trip; malformed trust roots fail with the verifier codes', async () => {
    const file = join(tmp.path, 'keys.json');
    const a = await initKey(join(tmp.path, 'k4'), 'release');
    const b = await initKey(join(tmp.path, 'k4'), 'security');
    await addTrustEntry(file, a.trustEntry);
    await addTrustEntry(file, b.trustEntry);
    const t = await loadTrust(file);
    expect(t.keys.map((k) => k.keyid).sort()).toEqual([a.keyid, b.keyid].sort());
    expect(t.byId.get(a.keyid)?.entry.role).toBe('release');

    const bad = async (doc: unknown): Promise<VaultError> => {
      await writeFile(file, JSON.stringify(doc));
      return loadTrust(file).then(
        () => {
          throw new Error('accepted');
        },
        (e: VaultError) => e,
      );
    };
    const e1 = await bad({ ...trustDocument([a.trustEntry]), version: 2 });
    expect([e1.code, e1.message]).toEqual(['UNSUPPORTED_VERSION', `${file}: trust root version 2 is not supported (1)`]);
    const e2 = await bad(trustDocument([{ ...a.trustEntry, algorithm: 'rsa' as 'ed25519' }]));
    expect([e2.code, e2.message]).toEqual(['UNSUPPORTED_ALGORITHM', `${file}: key ${a.keyid} uses rsa; only ed25519 is accepted`]);
    const e3 = await bad(trustDocument([{ ...a.trustEntry, keyid: b.keyid }]));
    expect([e3.code, e3.message]).toEqual(['INVALID_SCHEMA', `${file}: key ${b.keyid}: keyid is not sha256 of public_key (${a.keyid})`]);
    const e4 = await bad({ ...trustDocument([a.trustEntry]), extra: 1 });
    expect([e4.code, e4.message]).toEqual(['INVALID_SCHEMA', `${file}: trust-root.schema.json: / must NOT have additional properties (extra)`]);
  });
});

describe('trust file dates (fail closed)', () => {
  it('a date that matches the pattern but is not a real instant makes the trust file INVALID_SCHEMA', async () => {
    const k = await initKey(join(tmp.path, 'k5'), 'release');
    const refused = (entry: Partial<typeof k.trustEntry>): [string, string] => {
      try {
        parseTrust(trustDocument([{ ...k.trustEntry, ...entry }]), 'keys.json');
      } catch (e) {
        return [(e as VaultError).code, (e as VaultError).message];
      }
      return ['accepted', ''];
    };
    // Date reads this as NaN: no "expired" comparison is ever true, so the key would never expire.
    expect(refused({ valid_until: '2026-13-45T00:00:00Z' })).toEqual(['INVALID_SCHEMA', `keys.json: key ${k.keyid}: valid_until "2026-13-45T00:00:00Z" is not a real date and time`]);
    expect(refused({ valid_from: '2026-02-30T00:00:00Z' })).toEqual(['INVALID_SCHEMA', `keys.json: key ${k.keyid}: valid_from "2026-02-30T00:00:00Z" is not a real date and time`]);
    expect(refused({ valid_until: '2026-06-01T24:00:00Z' })[0]).toBe('INVALID_SCHEMA');
    expect(refused({ valid_until: '2026-06-01T23:59:60Z' })[0]).toBe('INVALID_SCHEMA');
    expect(refused({ valid_until: '2027-02-29T00:00:00Z' })[0]).toBe('INVALID_SCHEMA');
    expect(refused({ valid_from: '2028-02-29T23:59:59.123456789Z', valid_until: null })).toEqual(['accepted', '']);
  });

  it('isRealTimestamp: every field survives the round trip', () => {
    expect(['2026-11-22T00:37:31.157Z', '2028-02-29T00:00:00Z', '0050-01-01T00:00:00Z'].map(isRealTimestamp)).toEqual([true, true, true]);
    expect(['2026-13-45T00:00:00Z', '2026-04-31T00:00:00Z', '2026-01-01T00:60:00Z', '2026-01-01', '2026-01-01T00:00:00+01:00'].map(isRealTimestamp)).toEqual([false, false, false, false, false]);
  });
});
