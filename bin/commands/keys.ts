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
import { findSecureBootKey, importSecureBootKey, initSecureBootKey, loadTestCerts, testKeyWarning } from '../../pipeline/boot/secureboot-key.js';
import { findRepoRoot } from '../../qemu/machine.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT, UsageError } from '../exit.js';

interface KeysArgs {
  positionals: string[];
  role?: string;
  name?: string;
  import?: string;
  cert?: string;
  passphrase?: string;
  keyDir?: string;
  trust?: string;
  json: boolean;
}

function repoRoot(): string {
  const r = findRepoRoot();
  if (!r) throw new Error('cannot find the repository root (specs/schemas) from the program');
  return r;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as KeysArgs;
  const sub = a.positionals[0];
  const keyDir = resolve(a.keyDir ?? defaultKeyDir(io.env));
  const trustFile = resolve(a.trust ?? defaultTrustFile(keyDir));
  if (sub === 'init') {
    const role = a.role;
    if (!role) throw new UsageError('keys init needs --role release|security|core|tester|builder|module-signing|secureboot');
    if (a.name !== undefined && role !== 'tester') throw new UsageError('--name goes with --role tester');
    if (role === 'tester' && !a.name?.trim()) throw new UsageError('keys init --role tester needs --name "the tester\'s name" (every hardware record shows it)');
    if (role !== 'secureboot' && (a.import || a.cert || a.passphrase !== undefined)) throw new UsageError('--import, --cert and --passphrase go with keys init --role secureboot');
    if (role === 'secureboot') {
      // The UKI's Secure Boot signing key (RSA + X.509, what sbsign takes): not a vault key, never in the trust file.
      if (Boolean(a.import) !== Boolean(a.cert)) throw new UsageError('keys init --role secureboot --import KEY needs --cert CERT (and CERT needs --import KEY)');
      if (a.passphrase !== undefined && !a.import) throw new UsageError('--passphrase goes with --import');
      const tests = await loadTestCerts(repoRoot());
      const k = a.import
        ? await importSecureBootKey(keyDir, { key: resolve(a.import), cert: resolve(a.cert!), ...(a.passphrase !== undefined ? { passphrase: a.passphrase } : {}) }, tests)
        : await initSecureBootKey(keyDir, (argv, o) => runProcess(argv, o), tests);
      const warn = testKeyWarning(k);
      if (a.json) printJson(io, { ok: true, role: 'secureboot', private_key: k.keyPath, certificate: k.certPath, cert_sha256: k.certSha256, subject: k.subject, test_key: k.testKey });
      else {
        io.print(
          `${a.import ? 'imported' : 'created'} the Secure Boot key (${k.subject})\n` +
            `  key:         ${k.keyPath} (mode 0600; never printed, logged or bundled)\n` +
            `  certificate: ${k.certPath} (sha256 ${k.certSha256}; the release folder carries it as DER for mokutil --import)\n` +
            (warn ? `  WARNING: ${warn}\n` : ''),
        );
      }
      return EXIT.ok;
    }
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
    if (!(KEY_ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be release, security, core, tester, builder, module-signing or secureboot, not "${role}"`);
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
    const sbk = await findSecureBootKey(keyDir, await loadTestCerts(repoRoot()));
    const rows = [];
    for (const k of keys) {
      const mode = (await lstat(k.privateKeyPath)).mode & 0o777;
      rows.push({ role: k.role, keyid: k.keyid, private_key: k.privateKeyPath, mode: mode.toString(8).padStart(4, '0'), trusted: k.trust ? (k.trust.revoked ? 'revoked' : 'yes') : 'no' });
    }
    if (a.json) {
      printJson(io, {
        key_dir: keyDir,
        trust: trustFile,
        keys: rows,
        module_signing: msk ? { private_key: msk.path, cert_sha256: msk.certSha256 } : null,
        secureboot: sbk ? { private_key: sbk.keyPath, certificate: sbk.certPath, cert_sha256: sbk.certSha256, test_key: sbk.testKey } : null,
      });
      return EXIT.ok;
    }
    if (!rows.length && !msk && !sbk) {
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
    io.print(
      sbk
        ? `  secureboot certificate sha256 ${sbk.certSha256.slice(0, 16)}  mode 0600  ${sbk.keyPath}${sbk.testKey ? `  (public TEST key: ${sbk.testKey})` : ''}\n`
        : `  no Secure Boot key: G-05 cannot sign the UKI (\`clawos-build keys init --role secureboot\`)\n`,
    );
    return EXIT.ok;
  }
  throw new UsageError(sub ? `unknown keys subcommand "${sub}" (init or list)` : 'keys needs a subcommand: init or list');
}
