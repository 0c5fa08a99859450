/**
 * The managed module-signing key: one PEM file in the key dir holding an RSA
 * private key and its self-signed X.509 certificate, the form the kernel's
 * CONFIG_MODULE_SIG_KEY takes. Without it Kbuild makes a fresh key in every
 * build, so the certificate compiled into the kernel (and every module
 * signature) differs from build to build and no two kernels are bit-identical.
 * The file is 0600, never bundled, never printed; only its certificate's
 * sha256 leaves this module (fingerprints, the bundle's parameters).
 */
import { X509Certificate, createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InfraError, UserError } from '../../lib/errors.js';
import type { Runner } from '../../lib/proc.js';

export const MODULE_SIGNING_KEY_FILE = 'module-signing.pem';

export interface ModuleSigningKey {
  /** Absolute path of the PEM (private key + certificate). */
  path: string;
  /** sha256 of the certificate (DER): what is compiled into the kernel. */
  certSha256: string;
  /** The certificate's subject, for messages. */
  subject: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const KEY_BLOCK = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/;

/** How to make one: the message of every "no key" diagnosis. */
export const MAKE_MODULE_SIGNING_KEY = 'clawos-build keys init --role module-signing';

/** The key dir's module-signing key, or undefined when it has none. A key that is not 0600 or not a key+certificate PEM is refused. */
export async function findModuleSigningKey(keyDir: string): Promise<ModuleSigningKey | undefined> {
  const path = join(keyDir, MODULE_SIGNING_KEY_FILE);
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (mode & 0o077) {
    throw new UserError(`${path}: the module-signing key is readable by others (mode ${mode.toString(8).padStart(4, '0')})`, `chmod 600 ${path}`);
  }
  const text = await readFile(path, 'utf8');
  const cert = CERT_BLOCK.exec(text)?.[0];
  if (!cert || !KEY_BLOCK.test(text)) {
    throw new UserError(
      `${path}: not a module-signing key (a PEM with a private key and its X.509 certificate)`,
      `move it aside and run \`${MAKE_MODULE_SIGNING_KEY}\``,
    );
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new UserError(`${path}: its certificate does not parse (${(e as Error).message})`, `move it aside and run \`${MAKE_MODULE_SIGNING_KEY}\``);
  }
  return { path, certSha256: createHash('sha256').update(x509.raw).digest('hex'), subject: x509.subject.replace(/\n/g, ', ') };
}

/**
 * The kernel's own default_x509.genkey, with ClawOS names: RSA 4096, sha256,
 * the key usages module signing needs.
 */
const GENKEY = `[ req ]
default_bits = 4096
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = myexts

[ req_distinguished_name ]
O = ClawOS
CN = ClawOS module signing key

[ myexts ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
`;

/**
 * Makes <keyDir>/module-signing.pem with openssl (as Kbuild would, once) and
 * returns it. Refuses to replace an existing key: a new key changes every kernel.
 */
export async function initModuleSigningKey(keyDir: string, run: Runner): Promise<ModuleSigningKey> {
  const path = join(keyDir, MODULE_SIGNING_KEY_FILE);
  if (await findModuleSigningKey(keyDir)) {
    throw new UserError(`${path} exists: a new module-signing key would change every kernel built from now on`, 'move the old one aside first if that is what you want');
  }
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const tmp = await mkdtemp(join(keyDir, '.module-signing-'));
  try {
    await chmod(tmp, 0o700);
    await writeFile(join(tmp, 'x509.genkey'), GENKEY);
    const keyOut = join(tmp, 'key.pem');
    const certOut = join(tmp, 'cert.pem');
    const r = await run(
      ['openssl', 'req', '-new', '-nodes', '-utf8', '-sha256', '-days', '36500', '-batch', '-x509', '-config', join(tmp, 'x509.genkey'), '-outform', 'PEM', '-out', certOut, '-keyout', keyOut],
      { tailLines: 20 },
    );
    if (!r.ok) throw new InfraError(`openssl req could not make the module-signing key: ${r.spawnError ?? r.tail.slice(-3).join(' / ')}`);
    const pem = (await readFile(keyOut, 'utf8')) + (await readFile(certOut, 'utf8'));
    const staged = join(tmp, MODULE_SIGNING_KEY_FILE);
    await writeFile(staged, pem, { mode: 0o600 });
    await chmod(staged, 0o600);
    await rename(staged, path);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const k = await findModuleSigningKey(keyDir);
  if (!k) throw new InfraError(`${path} was not written`);
  return k;
}
