/**
 * `clawos-build lock [--json]`: what the mirror would change in inputs.lock.yaml
 * (package, locked version, version served now); exit 1 when anything differs,
 * exit 4 when a locked version is no longer served (naming it and the command to run).
 * `clawos-build lock --update [NAME[=VERSION]…]`: re-resolve (everything, or the
 * named packages, optionally at an exact version), print the diff, and rewrite
 * the lock atomically.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { InfraError, UserError } from '../../lib/errors.js';
import { run as runProcess } from '../../lib/proc.js';
import type { ParsedArgs } from '../args.js';
import type { CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { downloadCacheDir } from '../../pipeline/inputs/debs.js';
import { diffLock, LOCK_FILE, loadLock, lockKey, renderLock, type InputLock } from '../../pipeline/catalog/input-lock.js';
import { candidates, resolveLock, stillServed, type ResolveContext } from '../../pipeline/inputs/lock-resolve.js';

export interface LockCommandIo {
  print(s: string): void;
  printErr(s: string): void;
  /** Tests: a fake apt-cache / apt-get. */
  resolve?: Partial<ResolveContext>;
}

export const LOCK_USAGE = 'usage: clawos-build lock [--json] | lock --update [NAME[=VERSION] ...] [--json]';

/** The table's entry point (bin/cli.ts): options already parsed. */
export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return lockCommand({ update: !!a.update, names: a.positionals, json: !!a.json }, io.repoRoot, io);
}

export async function lockCommand(o: { update: boolean; names: string[]; json: boolean }, repoRoot: string, io: LockCommandIo): Promise<number> {
  if (o.names.length && !o.update) {
    io.printErr(`clawos-build: package names go with --update\n${LOCK_USAGE}\n`);
    return EXIT.usage;
  }
  const ctx: ResolveContext = {
    run: (argv, opts) => runProcess(argv, opts),
    log: (l) => (o.json ? undefined : io.printErr(`${l}\n`)),
    downloadCache: downloadCacheDir(),
    ...io.resolve,
  };
  return o.update ? update(repoRoot, o.names, ctx, io, o.json) : check(repoRoot, ctx, io, o.json);
}

async function check(repoRoot: string, ctx: ResolveContext, io: LockCommandIo, json: boolean): Promise<number> {
  const loaded = await loadLock(repoRoot);
  const now = await candidates(ctx, repoRoot);
  const rows: { package: string; locked: string; available: string; served: boolean }[] = [];
  for (const d of loaded.lock.debs) {
    const key = lockKey(d.name, d.arch);
    const viaAlias = d.alias ? now.get(`alias:${d.alias}:${d.arch}`) : undefined;
    const cand = now.get(viaAlias ?? key);
    const [version, sha] = cand ? cand.split(' ') : ['(not served)', ''];
    const served = cand !== undefined && version === d.version && sha === d.sha256 ? true : await stillServed(ctx, d);
    const label = viaAlias && viaAlias !== key ? `${key} (${d.alias} now names ${viaAlias.split(':')[0]})` : key;
    rows.push({ package: label, locked: d.version, available: version!, served });
  }
  const differ = rows.filter((r) => r.locked !== r.available || r.package.includes(' now names '));
  const gone = rows.filter((r) => !r.served);
  if (json) {
    io.print(JSON.stringify({ ok: !differ.length && !gone.length, lock: loaded.file, sha256: loaded.sha256, packages: rows, differ: differ.length, not_served: gone.map((r) => r.package) }, null, 2) + '\n');
  } else {
    const w = Math.max(...rows.map((r) => r.package.length), 7);
    const v = Math.max(...rows.map((r) => r.locked.length), 6);
    io.print(`${loaded.file} (sha256 ${loaded.sha256}): ${rows.length} packages locked\n`);
    io.print(`${'package'.padEnd(w)}  ${'locked'.padEnd(v)}  mirror now\n`);
    for (const r of rows) io.print(`${r.package.padEnd(w)}  ${r.locked.padEnd(v)}  ${r.locked === r.available ? '=' : r.available}${r.served ? '' : '  (locked version NOT served)'}\n`);
    io.print(differ.length ? `${differ.length} package(s) differ from the mirror: \`clawos-build lock --update [NAME ...]\` re-locks them\n` : 'the mirror serves exactly the locked versions\n');
  }
  if (gone.length) {
    const g = gone[0]!;
    throw new InfraError(
      `${g.package} ${g.locked} is locked in ${LOCK_FILE} but the mirror no longer serves it${gone.length > 1 ? ` (and ${gone.length - 1} more)` : ''}; fix: run \`apt-get update\`; if it is still missing, \`clawos-build lock --update ${g.package.split(':')[0]}\` and commit ${LOCK_FILE}`,
    );
  }
  return differ.length ? EXIT.failed : EXIT.ok;
}

async function update(repoRoot: string, names: string[], ctx: ResolveContext, io: LockCommandIo, json: boolean): Promise<number> {
  let old: InputLock | null = null;
  try {
    old = (await loadLock(repoRoot)).lock;
  } catch (err) {
    // A missing lock is made from nothing; a broken one is the user's to fix first.
    if (!(err instanceof UserError && /not found/.test(err.message))) throw err;
  }
  const next = await resolveLock(ctx, repoRoot, old, { only: names });
  const changes = diffLock(old ?? { lock_version: 1, distribution: next.distribution, debs: [], host_tools: {} }, next);
  const text = renderLock(next);
  await writeFileAtomic(join(repoRoot, LOCK_FILE), text);
  if (json) io.print(JSON.stringify({ ok: true, lock: LOCK_FILE, changes }, null, 2) + '\n');
  else {
    for (const c of changes) io.print(`${c.key}: ${c.locked ?? '(new)'} -> ${c.available ?? '(removed)'}\n`);
    io.print(changes.length ? `${LOCK_FILE}: ${changes.length} package(s) changed; review the diff and commit it\n` : `${LOCK_FILE}: unchanged\n`);
  }
  return EXIT.ok;
}
