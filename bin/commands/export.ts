/**
 * `clawos-build export [--bundle DIR] --out FILE.tar --trust FILE`: a bundle as one
 * deterministic tar, plus SHA256SUMS. The bundle is verified first: one that does
 * not verify is not exported (exit 1, nothing written).
 */
import { stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { UserError } from '../../lib/errors.js';
import { VaultError } from '../../vault/codes.js';
import { exportBundle } from '../../vault/export.js';
import { loadTrust } from '../../vault/keys.js';
import { bundlesDir, latestBundle } from '../../vault/release-bundle.js';
import { verifyBundle } from '../../vault/verify.js';
import { sourceDateEpoch } from '../../pipeline/run/session.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { buildDirArg, outputFileArg, writingTo } from '../path-args.js';

interface ExportArgs {
  out: string;
  bundle?: string;
  trust: string;
  buildDir: string;
  json: boolean;
}

/** --bundle, or the build dir's latest bundle. */
async function bundleToExport(a: ExportArgs): Promise<string> {
  if (!a.bundle) {
    const buildDir = await buildDirArg(a.buildDir);
    const id = await latestBundle(buildDir);
    if (!id) throw new UserError(`no bundle in ${bundlesDir(buildDir)} (no latest); give --bundle DIR`);
    return join(bundlesDir(buildDir), id);
  }
  const dir = resolve(a.bundle);
  const st = await stat(dir).catch(() => null);
  if (!st) throw new UserError(`--bundle ${a.bundle}: no such bundle directory`);
  if (!st.isDirectory()) throw new UserError(`--bundle ${a.bundle} is not a directory`);
  return dir;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as ExportArgs;
  const out = await outputFileArg(a.out, '--out');
  if (basename(out) === 'SHA256SUMS') throw new UserError(`--out ${a.out}: SHA256SUMS is the checksum file written beside the tar; give the tar another name`);
  const bundle = await bundleToExport(a);
  const rel = relative(bundle, out);
  if (!rel.startsWith('..') && !isAbsolute(rel)) throw new UserError(`--out ${a.out} is inside the bundle ${bundle}: writing there would change the bundle`);
  let trust;
  try {
    trust = await loadTrust(resolve(a.trust));
  } catch (e) {
    if (e instanceof VaultError) throw new UserError(`trust file ${e.message}`);
    throw e;
  }
  const v = await verifyBundle(bundle, trust);
  if (!v.ok) {
    if (a.json) printJson(io, { ok: false, bundle, code: v.code, detail: v.detail });
    else io.printErr(`clawos-build: ${bundle} does not verify, so it is not exported: ${v.code}: ${v.detail}\n`);
    return EXIT.failed;
  }
  const r = await writingTo(out, '--out', async () => exportBundle(bundle, out, { sourceDateEpoch: await sourceDateEpoch(io.repoRoot) }));
  if (a.json) printJson(io, { ok: true, bundle, verified: v.detail, tar: r.tarPath, sha256: r.sha256, size: r.size, sha256sums: r.sumsPath });
  else io.print(`verified: ${v.detail}\n${r.tarPath}: ${r.size} bytes, sha256 ${r.sha256}\n${r.sumsPath}: check with \`sha256sum -c SHA256SUMS\` in its directory\n`);
  return EXIT.ok;
}
