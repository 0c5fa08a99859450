import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../lib/errors.js';
import { run } from '../../lib/proc.js';
import { findModuleSigningKey, initModuleSigningKey } from './module-signing-key.js';

const runner = (argv: string[], o?: Parameters<typeof run>[1]) => run(argv, o);

describe('the managed module-signing key', () => {
  it('is made once by openssl as key + certificate, 0600, and found again with the certificate hash', async () => {
    const d = await dir({ unsafeCleanup: true });
    try {
      expect(await findModuleSigningKey(d.path)).toBeUndefined();
      const k = await initModuleSigningKey(join(d.path, 'keys'), runner);
      const pem = await readFile(k.path, 'utf8');
      expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
      expect((await stat(k.path)).mode & 0o777).toBe(0o600);
      expect(k.certSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(k.subject).toBe('O=ClawOS, CN=ClawOS module signing key');
      expect(await findModuleSigningKey(join(d.path, 'keys'))).toEqual(k);
      // Nothing else is left in the key dir (the openssl config and temp files are gone).
      const { readdir } = await import('node:fs/promises');
      expect(await readdir(join(d.path, 'keys'))).toEqual(['module-signing.pem']);
      // A second init would change every kernel: refused, the key kept.
      const again = await initModuleSigningKey(join(d.path, 'keys'), runner).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(UserError);
      expect((again as Error).message).toBe(`${k.path} exists: a new module-signing key would change every kernel built from now on`);
      expect(await readFile(k.path, 'utf8')).toBe(pem);
    } finally {
      await d.cleanup();
    }
  });

  it('refuses a key others can read, and a file that is not key + certificate', async () => {
    const d = await dir({ unsafeCleanup: true });
    try {
      const f = join(d.path, 'module-signing.pem');
      await writeFile(f, '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n');
      await chmod(f, 0o644);
      const open = await findModuleSigningKey(d.path).catch((e: unknown) => e);
      expect((open as UserError).message).toBe(`${f}: the module-signing key is readable by others (mode 0644)`);
      expect((open as UserError).hint).toBe(`chmod 600 ${f}`);
      await chmod(f, 0o600);
      const half = await findModuleSigningKey(d.path).catch((e: unknown) => e);
      expect((half as UserError).message).toBe(`${f}: not a module-signing key (a PEM with a private key and its X.509 certificate)`);
    } finally {
      await d.cleanup();
    }
  });
});
