/**
 * `clawos-build release --trust keys.json [--version V] [--out DIR] [--json]`:
 * the versioned release folder (report/release-folder.ts). Its --version takes a
 * value; everywhere else --version prints clawos-build's own version.
 * Exit codes: 0 written, 1 refused (the run's event chain in the build dir TAMPERED or
 * not the one its bundle signed, gate P4 not GO, bundle missing or not
 * verifying, folder already there …), 2 usage.
 */
import { resolve } from 'node:path';
import { makeRelease, type ReleaseResult } from '../../report/release-folder.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';

export interface ReleaseCommandOptions {
  repoRoot: string;
  buildDir: string;
  trust: string;
  version?: string;
  out?: string;
  json: boolean;
  print(s: string): void;
  printErr(s: string): void;
  now?: () => Date;
}

export function formatRelease(r: Extract<ReleaseResult, { ok: true }>): string {
  const lines = [`release ${r.version}: ${r.dir}`, `  run ${r.run_id}; bundle verified: ${r.verify_detail}`];
  for (const f of r.files) lines.push(`  ${f.sha256.slice(0, 16)}  ${String(f.size).padStart(12)}  ${f.path}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(`check: cd ${r.dir} && sha256sum -c SHA256SUMS`);
  return lines.join('\n') + '\n';
}

export async function releaseCommand(o: ReleaseCommandOptions): Promise<number> {
  const r = await makeRelease({
    repoRoot: o.repoRoot,
    buildDir: resolve(o.buildDir),
    trust: o.trust,
    ...(o.version ? { version: o.version } : {}),
    ...(o.out ? { outDir: o.out } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
  if (o.json) {
    const code = r.ok ? EXIT.ok : EXIT.failed;
    printJson(o, { ...r, exit_code: code });
    return code;
  }
  if (!r.ok) {
    o.printErr(`clawos-build: release refused: ${r.detail}\n${r.hint ? `hint: ${r.hint}\n` : ''}`);
    return EXIT.failed;
  }
  o.print(formatRelease(r));
  return EXIT.ok;
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  return releaseCommand({
    repoRoot: io.repoRoot,
    buildDir: a.buildDir as string,
    trust: a.trust as string,
    ...(a.version ? { version: a.version as string } : {}),
    ...(a.out ? { out: a.out as string } : {}),
    json: !!a.json,
    print: io.print,
    printErr: io.printErr,
  });
}
