/** `clawos-build export [--bundle DIR] --out FILE.tar`: a bundle as one deterministic tar, plus SHA256SUMS. */
import { join, resolve } from 'node:path';
import { exportBundle } from '../../vault/export.js';
import { bundlesDir, latestBundle } from '../../vault/release-bundle.js';
import { sourceDateEpoch } from '../../pipeline/run/session.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';

interface ExportArgs {
  out: string;
  bundle?: string;
  buildDir: string;
  json: boolean;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as ExportArgs;
  const buildDir = resolve(a.buildDir);
  let bundle = a.bundle;
  if (!bundle) {
    const id = await latestBundle(buildDir);
    if (!id) {
      io.printErr(`clawos-build: no bundle in ${bundlesDir(buildDir)} (no latest); give --bundle DIR\n`);
      return EXIT.invalidInput;
    }
    bundle = join(bundlesDir(buildDir), id);
  }
  const r = await exportBundle(resolve(bundle), resolve(a.out), { sourceDateEpoch: await sourceDateEpoch(io.repoRoot) });
  if (a.json) printJson(io, { ok: true, bundle: resolve(bundle), tar: r.tarPath, sha256: r.sha256, size: r.size, sha256sums: r.sumsPath });
  else io.print(`${r.tarPath}: ${r.size} bytes, sha256 ${r.sha256}\n${r.sumsPath}: check with \`sha256sum -c SHA256SUMS\` in its directory\n`);
  return EXIT.ok;
}
