/**
 * `clawos-build keys init|list`: the Ed25519 key pairs of the key dir and the trust file.
 * No private key material is ever printed: only key ids and file paths.
 */
import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { addTrustEntry, initKey, KEY_ROLES, type KeyRole } from '../../vault/keys.js';
import { defaultKeyDir, defaultTrustFile, listKeyFiles } from '../../vault/key-dir.js';
import { run as runProcess } from '../../lib/proc.js';
import { findModuleSigningKey, initModuleSigningKey } from '../../pipeline/kernel/module-signing-key.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT, UsageError } from '../exit.js';

interface KeysArgs {
  positionals: string[];
  role?: string;
  name?: string;
  keyDir?: string;
  trust?: string;
  json: boolean;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as KeysArgs;
  const sub = a.positionals[0];
  const keyDir = resolve(a.keyDir ?? defaultKeyDir(io.env));
  const trustFile = resolve(a.trust ?? defaultTrustFile(keyDir));
  if (sub === 'init') {
    const role = a.role;
    if (!role) throw new UsageError('keys init needs --role release|security|core|tester|builder|module-signing');
    if (a.name !== undefined && role !== 'tester') throw new UsageError('--name goes with --role tester');
    if (role === 'tester' && !a.name?.trim()) throw new UsageError('keys init --role tester needs --name "the tester\'s name" (every hardware record shows it)');
    if (role === 'module-signing') {
      // The kernel's module-signing key (RSA + X.509, as CONFIG_MODULE_SIG_KEY takes it): not a vault key, never in the trust file.
      const k = await initModuleSigningKey(keyDir, (argv, o) => runProcess(argv, o));
      if (a.json) printJson(io, { ok: true, role: 'module-signing', private_key: k.path, cert_sha256: k.certSha256, subject: k.subject });
      else {
        io.print(
          `created the module-signing key (RSA 4096 + X.509 certificate, ${k.subject})\n` +
            `  key:         ${k.path} (mode 0600; never printed, logged or bundled)\n` +
            `  certificate: sha256 ${k.certSha256} (compiled into every kernel built with it)\n` +
            `  kernels built from the same commit with this key are bit-identical; share it as you share the release key\n`,
        );
      }
      return EXIT.ok;
    }
    if (!(KEY_ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be release, security, core, tester, builder or module-signing, not "${role}"`);
    const k = await initKey(keyDir, role as KeyRole, a.name !== undefined ? { name: a.name.trim() } : {});
    await addTrustEntry(trustFile, k.trustEntry);
    if (a.json) {
      printJson(io, { ok: true, role: k.role, keyid: k.keyid, ...(k.trustEntry.name ? { name: k.trustEntry.name } : {}), private_key: k.privateKeyPath, public_key: k.publicKeyPath, trust: trustFile });
    } else {
      io.print(
        `created ${k.role} key ${k.keyid.slice(0, 16)}${k.trustEntry.name ? ` for ${k.trustEntry.name}` : ''} (ed25519, key id ${k.keyid})\n` +
          `  private key: ${k.privateKeyPath} (mode 0600; never printed, logged or bundled)\n` +
          `  public key:  ${k.publicKeyPath}\n` +
          `  trust file:  ${trustFile} (public entry added; give this file to verifiers)\n`,
      );
    }
    return EXIT.ok;
  }
  if (sub === 'list') {
    if (a.role) throw new UsageError('--role goes with keys init');
    const keys = await listKeyFiles(keyDir, trustFile);
    const msk = await findModuleSigningKey(keyDir);
    const rows = [];
    for (const k of keys) {
      const mode = (await lstat(k.privateKeyPath)).mode & 0o777;
      rows.push({ role: k.role, keyid: k.keyid, private_key: k.privateKeyPath, mode: mode.toString(8).padStart(4, '0'), trusted: k.trust ? (k.trust.revoked ? 'revoked' : 'yes') : 'no' });
    }
    if (a.json) {
      printJson(io, { key_dir: keyDir, trust: trustFile, keys: rows, module_signing: msk ? { private_key: msk.path, cert_sha256: msk.certSha256 } : null });
      return EXIT.ok;
    }
    if (!rows.length && !msk) {
      io.print(`no keys in ${keyDir}; make one with \`clawos-build keys init --role release\`\n`);
      return EXIT.ok;
    }
    io.print(`keys in ${keyDir} (trust file ${trustFile}):\n`);
    for (const r of rows) io.print(`  ${r.role.padEnd(9)} ${r.keyid.slice(0, 16)}  mode ${r.mode}  trusted: ${r.trusted.padEnd(7)}  ${r.private_key}\n`);
    io.print(
      msk
        ? `  module-signing certificate sha256 ${msk.certSha256.slice(0, 16)}  mode 0600  ${msk.path}\n`
        : `  no module-signing key: kernels make their own per build and are not reproducible (\`clawos-build keys init --role module-signing\`)\n`,
    );
    return EXIT.ok;
  }
  throw new UsageError(sub ? `unknown keys subcommand "${sub}" (init or list)` : 'keys needs a subcommand: init or list');
}
