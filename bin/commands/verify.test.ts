/**
 * `clawos-build verify` through the built binary: a malformed option value is a
 * usage error (exit 2), not a bundle that failed (exit 1); a trust file whose
 * dates are not real dates is refused (exit 3), never read as "never expires".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeFixture, type Fixture } from '../../test/fixtures/vault/make-bundle.js';
import { runCli } from '../../test/helpers/cli.js';
import { trustDocument, type TrustKey } from '../../vault/keys.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture();
});
afterAll(() => fx.cleanup());

/** The fixture's trust file, with the release key's entry changed by `edit`. */
async function trustFile(name: string, edit: (k: TrustKey) => TrustKey = (k) => k): Promise<string> {
  const file = join(fx.root, name);
  const releaseId = fx.keys.release.keyid;
  await writeFile(file, JSON.stringify(trustDocument(fx.trustEntries.map((k) => (k.keyid === releaseId ? edit(k) : k)))));
  return file;
}

describe('verify --expect-min-release', () => {
  it('a value that is not a version is a usage error (exit 2), the bundle is not judged', async () => {
    const r = await runCli(['verify', fx.bundleDir, '--trust', await trustFile('keys.json'), '--expect-min-release', 'banana']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr[0]).toBe('clawos-build: --expect-min-release takes a semver version such as 1.2.0 or 1.2.0-rc.1, not "banana"');
  });

  it('a real version still judges the bundle: PASS at or below its release', async () => {
    const r = await runCli(['verify', fx.bundleDir, '--trust', await trustFile('keys.json'), '--expect-min-release', '0.1.0-alpha']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^PASS: run run-20251121T000000Z-a1b2 \(release 0\.1\.0-alpha\): /);
  });
});

describe('verify with a trust file whose dates are not real', () => {
  it('valid_until 2026-13-45 is INVALID_SCHEMA (exit 3), not a key that never expires', async () => {
    const file = await trustFile('bad-date.json', (k) => ({ ...k, valid_until: '2026-13-45T00:00:00Z' }));
    const r = await runCli(['verify', fx.bundleDir, '--trust', file, '--json']);
    expect(r.exitCode).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      code: 'INVALID_SCHEMA',
      detail: `trust file ${file}: key ${fx.keys.release.keyid}: valid_until "2026-13-45T00:00:00Z" is not a real date and time`,
    });
  });

  it('a real date in the past: the key has expired (KEY_REVOKED, exit 1)', async () => {
    const file = await trustFile('expired.json', (k) => ({ ...k, valid_until: '2025-06-01T00:00:00Z' }));
    const r = await runCli(['verify', fx.bundleDir, '--trust', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe(`FAIL KEY_REVOKED: manifest.dsse.json: key ${fx.keys.release.keyid} (release) expired at 2025-06-01T00:00:00Z\n`);
  });
});

describe('verify --ledger that cannot be written', () => {
  it('a missing folder is said before verifying (exit 3); /proc after a PASS says the run was not recorded (exit 3)', async () => {
    const trust = await trustFile('keys.json');
    const missing = join(fx.root, 'no-such-folder', 'ledger.txt');
    const r = await runCli(['verify', fx.bundleDir, '--trust', trust, '--ledger', missing]);
    expect(r).toEqual({ exitCode: 3, stdout: '', stderr: [`clawos-build: --ledger ${missing}: folder ${join(fx.root, 'no-such-folder')} does not exist`] });
    const p = await runCli(['verify', fx.bundleDir, '--trust', trust, '--ledger', '/proc/clawos-ledger.txt', '--json']);
    expect(p.exitCode).toBe(3);
    expect(JSON.parse(p.stdout)).toEqual({
      ok: false,
      code: 'INVALID_SCHEMA',
      detail: 'cannot write --ledger /proc/clawos-ledger.txt: no such file or directory (ENOENT); the bundle verified, but run run-20251121T000000Z-a1b2 was not recorded',
    });
  });
});
