/**
 * `clawos-build gc [--keep-runs N] [--dry-run]`: remove the content store's objects
 * that no kept run, no bundle of a kept run, no released bundle and not state.json
 * references (vault/gc.ts), and print what it freed. It takes the build lock, so
 * it never races a run that is putting objects into the store.
 */
import { formatBytes } from '../../lib/format.js';
import { acquireBuildLock } from '../../pipeline/run/build-lock.js';
import { collectGarbage } from '../../vault/gc.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { buildDirArg } from '../path-args.js';

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  const buildDir = await buildDirArg(a.buildDir as string);
  const release = await acquireBuildLock(buildDir);
  let r;
  try {
    r = await collectGarbage(buildDir, { keepRuns: a.keepRuns as number, dryRun: !!a.dryRun });
  } finally {
    await release();
  }
  if (a.json) {
    printJson(io, { build_dir: buildDir, ...r });
    return EXIT.ok;
  }
  const verb = r.dry_run ? 'would remove' : 'removed';
  for (const o of r.removed) io.print(`${verb} vault/store/sha256/${o.sha256} (${formatBytes(o.size)})\n`);
  io.print(
    `gc: kept ${r.kept_runs.length} run(s)${r.dropped_runs.length ? ` (the newest; ${r.dropped_runs.length} older run(s) no longer hold objects)` : ''} and ${r.kept_bundles.length} bundle(s); ` +
      `${r.kept_objects} object(s) still referenced; ${verb} ${r.removed.length} object(s), ${r.dry_run ? 'would free' : 'freed'} ${formatBytes(r.freed_bytes)}` +
      `${r.temp_removed ? `, and ${r.temp_removed} unfinished temp file(s)` : ''}\n`,
  );
  return EXIT.ok;
}
