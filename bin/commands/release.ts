/**
 * `clawos-build release --trust keys.json [--version V] [--out DIR] [--json]`:
 * the versioned release folder (report/release-folder.ts). It parses
 * its own options (releaseMain), because its --version takes a value while the
 * top-level --version prints clawos-build's own version.
 * Exit codes: 0 written, 1 refused (gate P4 not GO, bundle missing or not
 * verifying, folder already there …), 2 usage.
 */
import { resolve } from 'node:path';
import { makeRelease, type ReleaseResult } from '../../report/release-folder.js';
import { parseCommandArgs, type CommandIo } from '../args.js';

export const RELEASE_USAGE = `  release --trust keys.json [--version V] [--out DIR]
                      the release folder DIR/clawos-V/ (default <build-dir>/release, V from specs/release.yaml):
                      ISOs, SHA256SUMS, the signed bundle as a tar, gate and security reports, CHANGELOG.md;
                      refused unless gate P4 is GO and the newest bundle verifies with the trust file`;

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
    o.print(JSON.stringify({ ...r, exit_code: r.ok ? 0 : 1 }, null, 2) + '\n');
    return r.ok ? 0 : 1;
  }
  if (!r.ok) {
    o.printErr(`clawos-build: release refused: ${r.detail}\n${r.hint ? `hint: ${r.hint}\n` : ''}`);
    return 1;
  }
  o.print(formatRelease(r));
  return 0;
}

/** argv after the word "release". */
export async function releaseMain(argv: string[], io: CommandIo): Promise<number> {
  const v = parseCommandArgs(argv, { trust: { type: 'string' }, version: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, 'build-dir': { type: 'string' } } as const, RELEASE_USAGE, io);
  if (!v) return 2;
  if (!v.trust) {
    io.printErr(`clawos-build: release needs --trust FILE: the trusted public keys the bundle must verify with (never taken from the build)\n\n${RELEASE_USAGE}\n`);
    return 2;
  }
  return releaseCommand({
    repoRoot: io.repoRoot,
    buildDir: v['build-dir'] ?? 'build',
    trust: v.trust,
    ...(v.version ? { version: v.version } : {}),
    ...(v.out ? { out: v.out } : {}),
    json: !!v.json,
    print: io.print,
    printErr: io.printErr,
  });
}
