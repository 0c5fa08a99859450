/**
 * The vault's commands: keys, spec freeze, verify, export, and status (which
 * reads the vault's event chains, not state.json). bin/cli.ts dispatches here;
 * like it, this module prints and maps outcomes to exit codes, and nothing else does.
 * No private key material is ever printed: only key ids and file paths.
 */
import { appendFile, lstat, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { addTrustEntry, initKey, KEY_ROLES, loadTrust, type KeyRole } from '../../vault/keys.js';
import { defaultKeyDir, defaultTrustFile, listKeyFiles } from '../../vault/key-dir.js';
import { currentP1Specs, FREEZE_FILE, FreezeRefused, freezeSpecs, loadFreezeState, REPO_TRUST_FILE } from '../../vault/freeze-specs.js';
import { verifyBundle } from '../../vault/verify.js';
import { VaultError } from '../../vault/codes.js';
import { exportBundle } from '../../vault/export.js';
import { bundlesDir, latestBundle } from '../../vault/release-bundle.js';
import { vaultStatus } from '../../vault/vault-history.js';
import { sourceDateEpoch } from '../../pipeline/run/session.js';
import { formatDuration } from '../../lib/format.js';
import { PHASES } from '../../pipeline/catalog/task-spec.js';

export const VAULT_COMMANDS = ['keys', 'spec', 'verify', 'export', 'status'] as const;

export const VAULT_USAGE = `  keys init --role release|security|core [--key-dir DIR] [--trust FILE]
                      make an Ed25519 key pair (private key 0600, never printed) and add its public key to the trust file
  keys list           the key pairs in the key dir and whether the trust file lists them
  spec freeze         record the sha256 of every specs/p1/*.yaml in ${FREEZE_FILE}, signed by a security key AND a core key
  spec verify         check ${FREEZE_FILE} against ${REPO_TRUST_FILE} and the specs as they are now
  verify BUNDLE|TAR --trust FILE [--ledger FILE] [--expect-min-release V]
                      verify a bundle offline: {ok, code, detail}; exit 0 only for PASS
  export [--bundle DIR] --out FILE.tar
                      the bundle (default: the latest) as one deterministic tar, plus SHA256SUMS
vault options: --key-dir DIR (default $CLAWOS_KEY_DIR or ~/.config/clawos-build/keys) · --trust FILE (default <key-dir>/keys.json)`;

export interface VaultIo {
  repoRoot: string;
  print(s: string): void;
  printErr(s: string): void;
  env?: Record<string, string | undefined>;
}

class Usage extends Error {}

const EXIT = { ok: 0, failed: 1, usage: 2, invalidInput: 3, infra: 4 } as const;

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>, positionals: number) {
  let p;
  try {
    p = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...options, json: { type: 'boolean' }, 'build-dir': { type: 'string' } } });
  } catch (e) {
    throw new Usage((e as Error).message.replace(/\. To specify a positional argument.*$/, ''));
  }
  if (p.positionals.length > positionals) throw new Usage(`unexpected argument "${p.positionals[positionals]}"`);
  return { values: p.values as Record<string, string | boolean | undefined>, positionals: p.positionals };
}

const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

function json(io: VaultIo, v: unknown): void {
  io.print(JSON.stringify(v, null, 2) + '\n');
}

async function keysCommand(argv: string[], io: VaultIo): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parse(rest, { role: { type: 'string' }, 'key-dir': { type: 'string' }, trust: { type: 'string' } }, 0);
  const keyDir = resolve(str(values['key-dir']) ?? defaultKeyDir(io.env));
  const trustFile = resolve(str(values.trust) ?? defaultTrustFile(keyDir));
  if (sub === 'init') {
    const role = str(values.role);
    if (!role) throw new Usage('keys init needs --role release|security|core');
    if (!(KEY_ROLES as readonly string[]).includes(role)) throw new Usage(`--role must be release, security or core, not "${role}"`);
    const k = await initKey(keyDir, role as KeyRole);
    await addTrustEntry(trustFile, k.trustEntry);
    if (values.json) {
      json(io, { ok: true, role: k.role, keyid: k.keyid, private_key: k.privateKeyPath, public_key: k.publicKeyPath, trust: trustFile });
    } else {
      io.print(
        `created ${k.role} key ${k.keyid.slice(0, 16)} (ed25519, key id ${k.keyid})\n` +
          `  private key: ${k.privateKeyPath} (mode 0600; never printed, logged or bundled)\n` +
          `  public key:  ${k.publicKeyPath}\n` +
          `  trust file:  ${trustFile} (public entry added; give this file to verifiers)\n`,
      );
    }
    return EXIT.ok;
  }
  if (sub === 'list') {
    if (values.role) throw new Usage('--role goes with keys init');
    const keys = await listKeyFiles(keyDir, trustFile);
    const rows = [];
    for (const k of keys) {
      const mode = (await lstat(k.privateKeyPath)).mode & 0o777;
      rows.push({ role: k.role, keyid: k.keyid, private_key: k.privateKeyPath, mode: mode.toString(8).padStart(4, '0'), trusted: k.trust ? (k.trust.revoked ? 'revoked' : 'yes') : 'no' });
    }
    if (values.json) {
      json(io, { key_dir: keyDir, trust: trustFile, keys: rows });
      return EXIT.ok;
    }
    if (!rows.length) {
      io.print(`no keys in ${keyDir}; make one with \`clawos-build keys init --role release\`\n`);
      return EXIT.ok;
    }
    io.print(`keys in ${keyDir} (trust file ${trustFile}):\n`);
    for (const r of rows) io.print(`  ${r.role.padEnd(9)} ${r.keyid.slice(0, 16)}  mode ${r.mode}  trusted: ${r.trusted.padEnd(7)}  ${r.private_key}\n`);
    return EXIT.ok;
  }
  throw new Usage(sub ? `unknown keys subcommand "${sub}" (init or list)` : 'keys needs a subcommand: init or list');
}

async function specCommand(argv: string[], io: VaultIo): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parse(rest, { 'key-dir': { type: 'string' }, trust: { type: 'string' } }, 0);
  if (sub === 'freeze') {
    const keyDir = resolve(str(values['key-dir']) ?? defaultKeyDir(io.env));
    let r;
    try {
      r = await freezeSpecs({ repoRoot: io.repoRoot, keyDir, keyTrustFile: resolve(str(values.trust) ?? defaultTrustFile(keyDir)) });
    } catch (e) {
      if (!(e instanceof FreezeRefused)) throw e;
      if (values.json) json(io, { ok: false, error: e.message });
      else io.printErr(`clawos-build: ${e.message}\n`);
      return EXIT.invalidInput;
    }
    if (values.json) {
      json(io, { ok: true, file: r.file, trust: r.trustFile, frozen_at: r.payload.frozen_at, specs: r.payload.specs, signers: r.signers, changed: r.changed });
    } else {
      io.print(`froze ${r.payload.specs.length} P1 specs at ${r.payload.frozen_at}, signed by ${r.signers.map((s) => `${s.role} ${s.keyid.slice(0, 16)}`).join(' and ')}\n`);
      for (const s of r.payload.specs) io.print(`  ${s.path.padEnd(36)} ${s.version.padEnd(8)} sha256 ${s.sha256}${r.changed.includes(s.path) ? '  (changed)' : ''}\n`);
      io.print(`record: ${r.file}\ntrust:  ${r.trustFile} (public keys of both signers; commit both files)\n`);
    }
    return EXIT.ok;
  }
  if (sub === 'verify') {
    const st = await loadFreezeState(io.repoRoot);
    const problems: string[] = [];
    const specs = await currentP1Specs(io.repoRoot);
    if (st.ok) {
      for (const s of specs) {
        const f = st.frozen.get(s.path);
        if (!f) problems.push(`${s.path} is not in the freeze record`);
        else if (f.sha256 !== s.sha256) problems.push(`${s.path} changed: frozen sha256 ${f.sha256} (${f.version}), current sha256 ${s.sha256} (${s.version})`);
      }
    } else problems.push(st.detail);
    if (values.json) json(io, { ok: problems.length === 0, frozen_at: st.ok ? st.payload.frozen_at : null, problems });
    else if (problems.length) io.printErr(`${problems.map((p) => `clawos-build: ${p}`).join('\n')}\nhint: after review, \`clawos-build spec freeze\` with a security key and a core key\n`);
    else io.print(`${FREEZE_FILE}: signed by a security and a core key of ${REPO_TRUST_FILE}; all ${specs.length} P1 specs match (frozen ${st.ok ? st.payload.frozen_at : ''})\n`);
    return problems.length ? EXIT.failed : EXIT.ok;
  }
  throw new Usage(sub ? `unknown spec subcommand "${sub}" (freeze or verify)` : 'spec needs a subcommand: freeze or verify');
}

async function readLedger(file: string): Promise<Set<string>> {
  try {
    return new Set((await readFile(file, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw e;
  }
}

async function verifyCommand(argv: string[], io: VaultIo): Promise<number> {
  const { values, positionals } = parse(argv, { trust: { type: 'string' }, ledger: { type: 'string' }, 'expect-min-release': { type: 'string' } }, 1);
  const target = positionals[0];
  if (!target) throw new Usage('verify needs a bundle directory or tar');
  const trustFile = str(values.trust);
  if (!trustFile) throw new Usage('verify needs --trust FILE (the trusted public keys; never taken from the bundle)');
  const bad = (code: string, detail: string): number => {
    if (values.json) json(io, { ok: false, code, detail });
    else io.printErr(`clawos-build: ${detail}\n`);
    return EXIT.invalidInput;
  };
  try {
    await lstat(target);
  } catch {
    return bad('FILE_MISSING', `${target}: no such bundle directory or tar`);
  }
  let trust;
  try {
    trust = await loadTrust(resolve(trustFile));
  } catch (e) {
    return bad(e instanceof VaultError ? e.code : 'INVALID_SCHEMA', `trust file ${e instanceof VaultError ? e.message : `${trustFile}: ${(e as Error).message}`}`);
  }
  const ledgerFile = str(values.ledger);
  let ledger: Set<string> | undefined;
  if (ledgerFile) {
    try {
      ledger = await readLedger(ledgerFile);
    } catch (e) {
      return bad('INVALID_SCHEMA', `ledger ${ledgerFile}: ${(e as Error).message}`);
    }
  }
  const minRelease = str(values['expect-min-release']);
  const r = await verifyBundle(resolve(target), trust, { ...(ledger ? { ledger } : {}), ...(minRelease ? { minRelease } : {}) });
  // The ledger is the caller's record of accepted runs: a PASS is added, so the same bundle again is a replay.
  if (r.ok && ledgerFile && r.run_id) await appendFile(ledgerFile, `${r.run_id}\n`);
  if (values.json) json(io, { ok: r.ok, code: r.code, detail: r.detail, ...(r.run_id ? { run_id: r.run_id } : {}), ...(r.release ? { release: r.release } : {}) });
  else if (r.ok) io.print(`PASS: ${r.detail}\n`);
  else io.print(`FAIL ${r.code}: ${r.detail}\n`);
  return r.ok ? EXIT.ok : EXIT.failed;
}

async function exportCommand(argv: string[], io: VaultIo): Promise<number> {
  const { values } = parse(argv, { bundle: { type: 'string' }, out: { type: 'string' } }, 0);
  const out = str(values.out);
  if (!out) throw new Usage('export needs --out FILE.tar');
  const buildDir = resolve(str(values['build-dir']) ?? 'build');
  let bundle = str(values.bundle);
  if (!bundle) {
    const id = await latestBundle(buildDir);
    if (!id) {
      io.printErr(`clawos-build: no bundle in ${bundlesDir(buildDir)} (no latest); give --bundle DIR\n`);
      return EXIT.invalidInput;
    }
    bundle = join(bundlesDir(buildDir), id);
  }
  const r = await exportBundle(resolve(bundle), resolve(out), { sourceDateEpoch: await sourceDateEpoch(io.repoRoot) });
  if (values.json) json(io, { ok: true, bundle: resolve(bundle), tar: r.tarPath, sha256: r.sha256, size: r.size, sha256sums: r.sumsPath });
  else io.print(`${r.tarPath}: ${r.size} bytes, sha256 ${r.sha256}\n${r.sumsPath}: check with \`sha256sum -c SHA256SUMS\` in its directory\n`);
  return EXIT.ok;
}

/** `status`: the latest task-end and gate events of the vault's chains. */
async function statusCommand(argv: string[], io: VaultIo): Promise<number> {
  const { values } = parse(argv, {}, 0);
  const buildDir = resolve(str(values['build-dir']) ?? 'build');
  const s = await vaultStatus(buildDir);
  if (values.json) {
    json(io, s);
    return s.problems.length ? EXIT.failed : EXIT.ok;
  }
  for (const p of s.problems) io.printErr(`clawos-build: vault: ${p} (its events are not used)\n`);
  const recs = Object.values(s.instances).sort((a, b) => a.phase.localeCompare(b.phase) || a.task.localeCompare(b.task));
  if (!recs.length) {
    io.print(`nothing recorded in the vault of ${buildDir} yet\n`);
    return s.problems.length ? EXIT.failed : EXIT.ok;
  }
  const last = s.runs.at(-1)!;
  io.print(`from the vault: ${s.runs.length} run(s) in ${join(buildDir, 'vault', 'runs')}, latest ${last.run_id} (${last.events} events)\n`);
  for (const phase of PHASES) {
    const g = s.gates[phase];
    io.print(`${phase}: gate ${g ? `${g.recommendation} (${g.decided_at}, run ${g.run_id} event ${g.seq})` : 'not run'}\n`);
    for (const r of recs.filter((x) => x.phase === phase)) {
      io.print(`  ${r.task.padEnd(14)} ${r.status.padEnd(14)} ${formatDuration(r.duration_ms).padStart(8)}  ${r.message.split('\n')[0]}\n`);
    }
    for (const b of g?.blockers ?? []) io.print(`  blocker: ${b}\n`);
  }
  return s.problems.length ? EXIT.failed : EXIT.ok;
}

/** Run a vault command; argv starts with its name. */
export async function vaultCommand(argv: string[], io: VaultIo): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'keys':
        return await keysCommand(rest, io);
      case 'spec':
        return await specCommand(rest, io);
      case 'verify':
        return await verifyCommand(rest, io);
      case 'export':
        return await exportCommand(rest, io);
      case 'status':
        return await statusCommand(rest, io);
      default:
        throw new Usage(`unknown command "${String(cmd)}"`);
    }
  } catch (e) {
    if (e instanceof Usage) {
      io.printErr(`clawos-build: ${e.message}\n\n${VAULT_USAGE}\n`);
      return EXIT.usage;
    }
    if (e instanceof VaultError) {
      io.printErr(`clawos-build: ${e.code}: ${e.message}\n`);
      return EXIT.invalidInput;
    }
    throw e;
  }
}
