/**
 * The Secure Boot signing key of the key dir: secureboot.key (PEM private key,
 * unencrypted, 0600, never bundled) and secureboot.crt (its X.509 certificate,
 * PEM) beside it. G-05 signs the UKI with it (sbsign) and checks the signature
 * against the certificate (sbverify); the release folder carries the certificate
 * as DER for `mokutil --import`.
 *
 * A key whose certificate is listed in specs/secureboot.yaml as a public test
 * certificate (Debian's OVMF "snakeoil" PK/KEK) is usable, and every place that
 * shows it says it is a public TEST key: anyone can sign for it.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InfraError, UserError } from '../../lib/errors.js';
import type { Runner } from '../../lib/proc.js';
import type { SecureBootKey } from '../catalog/step.js';

export const SECUREBOOT_KEY_FILE = 'secureboot.key';
export const SECUREBOOT_CERT_FILE = 'secureboot.crt';
export const MAKE_SECUREBOOT_KEY = 'clawos-build keys init --role secureboot';

export type { SecureBootKey };

export interface TestCert {
  name: string;
  sha256: string;
}

/** specs/secureboot.yaml: the public test certificates (anyone holds their keys). */
export async function loadTestCerts(repoRoot: string): Promise<TestCert[]> {
  const doc = parseYaml(await readFile(join(repoRoot, 'specs', 'secureboot.yaml'), 'utf8')) as { test_certs?: TestCert[] };
  return doc.test_certs ?? [];
}

/** What the user is told wherever a test key shows. */
export function testKeyWarning(k: Pick<SecureBootKey, 'testKey'>): string | null {
  return k.testKey ? `Secure Boot key is a public TEST key (${k.testKey}): anyone can sign for it; not for real hardware` : null;
}

const fixInit = `run \`${MAKE_SECUREBOOT_KEY}\` (or \`keys init --role secureboot --import KEY --cert CERT\`)`;

/** The key dir's Secure Boot key, or undefined when it has neither file. Anything wrong with it is an InfraError naming the fix. */
export async function findSecureBootKey(keyDir: string, testCerts: readonly TestCert[] = []): Promise<SecureBootKey | undefined> {
  const keyPath = join(keyDir, SECUREBOOT_KEY_FILE);
  const certPath = join(keyDir, SECUREBOOT_CERT_FILE);
  const exists = async (p: string) => stat(p).then(() => true, () => false);
  const [hasKey, hasCert] = [await exists(keyPath), await exists(certPath)];
  if (!hasKey && !hasCert) return undefined;
  if (!hasKey) throw new InfraError(`${certPath} has no private key beside it (${keyPath})`, `put the key there, or move the certificate aside and ${fixInit}`);
  if (!hasCert) throw new InfraError(`${keyPath} has no certificate beside it (${certPath})`, `put its certificate there, or move the key aside and ${fixInit}`);
  const mode = (await stat(keyPath)).mode & 0o777;
  if (mode & 0o077) throw new InfraError(`${keyPath}: the Secure Boot key is readable by others (mode ${mode.toString(8).padStart(4, '0')})`, `chmod 600 ${keyPath}`);
  let keyText: string;
  let certText: string;
  try {
    keyText = await readFile(keyPath, 'utf8');
    certText = await readFile(certPath, 'utf8');
  } catch (e) {
    throw new InfraError(`cannot read the Secure Boot key: ${(e as Error).message}`, `make ${keyPath} and ${certPath} readable by this user`);
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certText);
  } catch (e) {
    throw new InfraError(`${certPath}: not an X.509 certificate (${(e as Error).message})`, `move it aside and ${fixInit}`);
  }
  let pub: string;
  try {
    pub = createPublicKey(createPrivateKey(keyText)).export({ type: 'spki', format: 'der' }).toString('hex');
  } catch (e) {
    throw new InfraError(`${keyPath}: not an unencrypted PEM private key (${(e as Error).message})`, `import it with \`keys init --role secureboot --import KEY --cert CERT --passphrase PASS\`, which stores it decrypted (0600)`);
  }
  if (pub !== x509.publicKey.export({ type: 'spki', format: 'der' }).toString('hex')) {
    throw new InfraError(`${certPath} does not belong to ${keyPath} (their public keys differ)`, `put the key's own certificate there, or move both aside and ${fixInit}`);
  }
  const certSha256 = createHash('sha256').update(x509.raw).digest('hex');
  return { keyPath, certPath, certSha256, subject: x509.subject.replace(/\n/g, ', '), testKey: testCerts.find((t) => t.sha256 === certSha256)?.name ?? null };
}

/** The certificate as DER, for `mokutil --import` (the release folder's copy). */
export async function certDer(k: Pick<SecureBootKey, 'certPath'>): Promise<Buffer> {
  return Buffer.from(new X509Certificate(await readFile(k.certPath)).raw);
}

async function install(keyDir: string, keyPem: string, certPem: string): Promise<void> {
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const tmp = await mkdtemp(join(keyDir, '.secureboot-'));
  try {
    await chmod(tmp, 0o700);
    await writeFile(join(tmp, 'k'), keyPem, { mode: 0o600 });
    await chmod(join(tmp, 'k'), 0o600);
    await writeFile(join(tmp, 'c'), certPem, { mode: 0o644 });
    await rename(join(tmp, 'c'), join(keyDir, SECUREBOOT_CERT_FILE));
    await rename(join(tmp, 'k'), join(keyDir, SECUREBOOT_KEY_FILE));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function refuseExisting(keyDir: string): Promise<void> {
  for (const f of [SECUREBOOT_KEY_FILE, SECUREBOOT_CERT_FILE]) {
    if (await stat(join(keyDir, f)).then(() => true, () => false)) {
      throw new UserError(`${join(keyDir, f)} exists: a new Secure Boot key would need enrolling again on every machine`, 'move secureboot.key and secureboot.crt aside first if that is what you want');
    }
  }
}

/** A new RSA 2048 key and a self-signed certificate with code-signing usage (what shim/MOK and UEFI db accept). */
export async function initSecureBootKey(keyDir: string, run: Runner, testCerts: readonly TestCert[] = []): Promise<SecureBootKey> {
  await refuseExisting(keyDir);
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const tmp = await mkdtemp(join(keyDir, '.secureboot-new-'));
  try {
    await chmod(tmp, 0o700);
    const r = await run(
      ['openssl', 'req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650', '-subj', '/O=ClawOS/CN=ClawOS Secure Boot signing key',
        '-addext', 'extendedKeyUsage=codeSigning', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem')],
      { tailLines: 20 },
    );
    if (!r.ok) throw new InfraError(`openssl req could not make the Secure Boot key: ${r.spawnError ?? r.tail.slice(-3).join(' / ')}`, 'apt-get install openssl');
    await install(keyDir, await readFile(join(tmp, 'key.pem'), 'utf8'), await readFile(join(tmp, 'cert.pem'), 'utf8'));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const k = await findSecureBootKey(keyDir, testCerts);
  if (!k) throw new InfraError(`${join(keyDir, SECUREBOOT_KEY_FILE)} was not written`);
  return k;
}

/** Import an existing key (decrypted with `passphrase` when it is encrypted) and its certificate; refused unless they belong together. */
export async function importSecureBootKey(keyDir: string, from: { key: string; cert: string; passphrase?: string }, testCerts: readonly TestCert[] = []): Promise<SecureBootKey> {
  await refuseExisting(keyDir);
  let keyPem: string;
  let certPem: string;
  try {
    const raw = await readFile(from.key, 'utf8');
    keyPem = createPrivateKey({ key: raw, format: 'pem', ...(from.passphrase !== undefined ? { passphrase: from.passphrase } : {}) })
      .export({ type: 'pkcs8', format: 'pem' })
      .toString();
  } catch (e) {
    const msg = (e as Error).message;
    throw new InfraError(`${from.key}: cannot read the private key (${msg})`, from.passphrase === undefined ? 'give its passphrase with --passphrase PASS' : 'check the file and the passphrase');
  }
  try {
    certPem = new X509Certificate(await readFile(from.cert)).toString();
  } catch (e) {
    throw new InfraError(`${from.cert}: not an X.509 certificate (${(e as Error).message})`, 'give the key\'s certificate (PEM or DER) with --cert');
  }
  const pub = createPublicKey(keyPem).export({ type: 'spki', format: 'der' }).toString('hex');
  if (pub !== new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).toString('hex')) {
    throw new InfraError(`${from.cert} does not belong to ${from.key} (their public keys differ)`, 'give the certificate of that key');
  }
  await install(keyDir, keyPem, certPem);
  const k = await findSecureBootKey(keyDir, testCerts);
  if (!k) throw new InfraError(`${join(keyDir, SECUREBOOT_KEY_FILE)} was not written`);
  return k;
}
