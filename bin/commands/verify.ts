/**
 * `clawos-build verify BUNDLE|TAR --trust FILE`: a bundle checked offline, {ok, code, detail}.
 * Kept to the verifier's own imports: it should start as fast as sha256sum.
 */
import { appendFile, lstat, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { VaultError } from '../../vault/codes.js';
import { loadTrust } from '../../vault/keys.js';
import { isSemver, verifyBundle } from '../../vault/verify.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT, UsageError } from '../exit.js';
import { outputFileArg, writingTo } from '../path-args.js';
import { UserError } from '../../lib/errors.js';

interface VerifyArgs {
  positionals: [string];
  trust: string;
  ledger?: string;
  expectMinRelease?: string;
  json: boolean;
}

async function readLedger(file: string): Promise<Set<string>> {
  try {
    return new Set((await readFile(file, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw e;
  }
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as VerifyArgs;
  const target = a.positionals[0];
  // A malformed minimum is the caller's mistake, not a bundle that failed.
  if (a.expectMinRelease !== undefined && !isSemver(a.expectMinRelease)) {
    throw new UsageError(`--expect-min-release takes a semver version such as 1.2.0 or 1.2.0-rc.1, not "${a.expectMinRelease}"`);
  }
  const bad = (code: string, detail: string): number => {
    if (a.json) printJson(io, { ok: false, code, detail });
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
    trust = await loadTrust(resolve(a.trust));
  } catch (e) {
    return bad(e instanceof VaultError ? e.code : 'INVALID_SCHEMA', `trust file ${e instanceof VaultError ? e.message : `${a.trust}: ${(e as Error).message}`}`);
  }
  let ledger: Set<string> | undefined;
  let ledgerFile: string | undefined;
  if (a.ledger) {
    try {
      // The ledger is written on a PASS: a folder that is not there is said now, before verifying.
      ledgerFile = await outputFileArg(a.ledger, '--ledger');
      ledger = await readLedger(ledgerFile);
    } catch (e) {
      return bad('INVALID_SCHEMA', e instanceof UserError ? e.message : `ledger ${a.ledger}: ${(e as Error).message}`);
    }
  }
  const minRelease = a.expectMinRelease;
  const r = await verifyBundle(resolve(target), trust, { ...(ledger ? { ledger } : {}), ...(minRelease ? { minRelease } : {}) });
  // The ledger is the caller's record of accepted runs: a PASS is added, so the same bundle again is a replay.
  if (r.ok && ledgerFile && r.run_id) {
    const file = ledgerFile;
    try {
      await writingTo(file, '--ledger', () => appendFile(file, `${r.run_id}\n`));
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      return bad('INVALID_SCHEMA', `${e.message}; the bundle verified, but run ${r.run_id} was not recorded`);
    }
  }
  if (a.json) printJson(io, { ok: r.ok, code: r.code, detail: r.detail, ...(r.run_id ? { run_id: r.run_id } : {}), ...(r.release ? { release: r.release } : {}) });
  else if (r.ok) io.print(`PASS: ${r.detail}\n`);
  else io.print(`FAIL ${r.code}: ${r.detail}\n`);
  return r.ok ? EXIT.ok : EXIT.failed;
}
