/**
 * The signing keys of this machine: a directory of `<role>-<keyid16>.key` (PKCS#8,
 * 0600) + `.pub` files made by `clawos-build keys init`, and the trust root next
 * to them (<key-dir>/keys.json) that lists their public halves. Default dir:
 * $CLAWOS_KEY_DIR, else ~/.config/clawos-build/keys. Only paths and key ids
 * leave this module; private material stays inside KeyObjects.
 */
import { createPublicKey } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { keyIdOf, KEY_ROLES, loadSigner, loadTrust, type KeyRole, type Signer, type TrustKey } from './keys.js';
import { VaultError } from './codes.js';

export function defaultKeyDir(env: Record<string, string | undefined> = process.env): string {
  return env['CLAWOS_KEY_DIR'] || join(homedir(), '.config', 'clawos-build', 'keys');
}

export function defaultTrustFile(keyDir: string): string {
  return join(keyDir, 'keys.json');
}

export interface KeyFile {
  role: KeyRole;
  keyid: string;
  privateKeyPath: string;
  publicKeyPath: string;
  /** The entry of the key dir's trust file, if it lists this key. */
  trust?: TrustKey;
  createdMs: number;
}

const KEY_NAME = new RegExp(`^(${KEY_ROLES.join('|')})-[0-9a-f]{16}\\.key$`);

/** Every key pair in `keyDir` (none when the dir does not exist), oldest first. */
export async function listKeyFiles(keyDir: string, trustFile = defaultTrustFile(keyDir)): Promise<KeyFile[]> {
  let names: string[];
  try {
    names = await readdir(keyDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  let trusted: TrustKey[] = [];
  try {
    trusted = (await loadTrust(trustFile)).keys;
  } catch (e) {
    // No trust file yet is fine; a broken one is not.
    if (!(e instanceof VaultError) || !/ENOENT/.test(e.message)) throw e;
  }
  const out: KeyFile[] = [];
  for (const name of names.sort()) {
    const m = KEY_NAME.exec(name);
    if (!m) continue;
    const privateKeyPath = join(keyDir, name);
    const publicKeyPath = privateKeyPath.replace(/\.key$/, '.pub');
    // The key id comes from the public half: listing never reads a private key.
    let keyid: string;
    try {
      keyid = keyIdOf(createPublicKey(await readFile(publicKeyPath)));
    } catch {
      continue;
    }
    const trust = trusted.find((t) => t.keyid === keyid);
    out.push({ role: m[1] as KeyRole, keyid, privateKeyPath, publicKeyPath, ...(trust ? { trust } : {}), createdMs: (await stat(privateKeyPath)).mtimeMs });
  }
  return out.sort((a, b) => a.createdMs - b.createdMs || (a.keyid < b.keyid ? -1 : 1));
}

/**
 * The key of `role` to sign with: among the pairs in the dir, the newest one the
 * dir's trust file lists as not revoked (else the newest pair, if the trust file
 * lists none of them). undefined when the dir has no key of that role.
 */
export async function findSigner(keyDir: string, role: KeyRole, trustFile?: string): Promise<Signer | undefined> {
  const keys = (await listKeyFiles(keyDir, trustFile)).filter((k) => k.role === role);
  const usable = keys.filter((k) => k.trust && !k.trust.revoked);
  const pick = (usable.length ? usable : keys.filter((k) => !k.trust?.revoked)).at(-1);
  if (!pick) return undefined;
  const s = await loadSigner(pick.privateKeyPath, role);
  if (s.keyid !== pick.keyid) throw new VaultError('INVALID_SCHEMA', `${pick.privateKeyPath} does not match ${pick.publicKeyPath}`);
  return s;
}
