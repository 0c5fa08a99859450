import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { run } from '../../lib/proc.js';
import { certDer, findSecureBootKey, importSecureBootKey, initSecureBootKey, loadTestCerts, testKeyWarning } from './secureboot-key.js';

const REPO = resolve(__dirname, '../..');
const SNAKEOIL = { key: '/usr/share/ovmf/PkKek-1-snakeoil.key', cert: '/usr/share/ovmf/PkKek-1-snakeoil.pem', passphrase: 'snakeoil' };
const runner = (argv: string[], o?: Parameters<typeof run>[1]) => run(argv, o);

describe('the Secure Boot key of the key dir', () => {
  it('is absent until made; a new one is 0600, its certificate matches, and it is not a test key', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      expect(await findSecureBootKey(d)).toBeUndefined();
      const k = await initSecureBootKey(d, runner, await loadTestCerts(REPO));
      expect(k.subject).toBe('O=ClawOS, CN=ClawOS Secure Boot signing key');
      expect(k.testKey).toBeNull();
      expect(testKeyWarning(k)).toBeNull();
      expect((await run(['stat', '-c', '%a', k.keyPath], { captureStdout: true })).stdout.trim()).toBe('600');
      expect(await findSecureBootKey(d)).toEqual({ ...k, testKey: null });
      await expect(initSecureBootKey(d, runner)).rejects.toThrow(`${join(d, 'secureboot.key')} exists: a new Secure Boot key would need enrolling again on every machine`);
    } finally {
      await cleanup();
    }
  });

  it('imports the snakeoil key with its passphrase and names it a public TEST key', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const tests = await loadTestCerts(REPO);
      await expect(importSecureBootKey(d, { key: SNAKEOIL.key, cert: SNAKEOIL.cert }, tests)).rejects.toMatchObject({
        name: 'InfraError',
        hint: 'give its passphrase with --passphrase PASS',
      });
      const k = await importSecureBootKey(d, SNAKEOIL, tests);
      expect(k.certSha256).toBe('282e8130b7070f107aaecc25d3992ca4440270860b09088792a5075fab0d13f8');
      expect(testKeyWarning(k)).toBe(
        "Secure Boot key is a public TEST key (Debian OVMF/AAVMF snakeoil PK/KEK (PkKek-1-snakeoil, passphrase 'snakeoil')): anyone can sign for it; not for real hardware",
      );
      // The DER for mokutil is the certificate itself.
      expect((await certDer(k)).length).toBeGreaterThan(500);
    } finally {
      await cleanup();
    }
  });

  it('refuses a certificate of another key, a key others can read, and a lone file, each with its fix (InfraError: exit 4)', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const a = join(d, 'a');
      const b = join(d, 'b');
      await initSecureBootKey(a, runner);
      await importSecureBootKey(b, SNAKEOIL);
      await copyFile(join(b, 'secureboot.crt'), join(a, 'secureboot.crt'));
      await expect(findSecureBootKey(a)).rejects.toMatchObject({
        name: 'InfraError',
        message: `${join(a, 'secureboot.crt')} does not belong to ${join(a, 'secureboot.key')} (their public keys differ)`,
      });
      await chmod(join(b, 'secureboot.key'), 0o644);
      await expect(findSecureBootKey(b)).rejects.toMatchObject({ message: `${join(b, 'secureboot.key')}: the Secure Boot key is readable by others (mode 0644)`, hint: `chmod 600 ${join(b, 'secureboot.key')}` });
      const c = join(d, 'c');
      await mkdir(c);
      await writeFile(join(c, 'secureboot.crt'), 'x');
      await expect(findSecureBootKey(c)).rejects.toMatchObject({ message: `${join(c, 'secureboot.crt')} has no private key beside it (${join(c, 'secureboot.key')})` });
      await expect(importSecureBootKey(join(d, 'e'), { key: join(a, 'secureboot.key'), cert: SNAKEOIL.cert })).rejects.toMatchObject({
        message: `${SNAKEOIL.cert} does not belong to ${join(a, 'secureboot.key')} (their public keys differ)`,
      });
    } finally {
      await cleanup();
    }
  });
});
