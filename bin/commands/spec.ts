/** `clawos-build spec freeze|verify`: the signed record of the P1 specs' sha256 (vault/freeze-specs.ts). */
import { resolve } from 'node:path';
import { currentP1Specs, FREEZE_FILE, FreezeRefused, freezeSpecs, loadFreezeState, REPO_TRUST_FILE } from '../../vault/freeze-specs.js';
import { defaultKeyDir, defaultTrustFile } from '../../vault/key-dir.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT, UsageError } from '../exit.js';

interface SpecArgs {
  positionals: string[];
  keyDir?: string;
  trust?: string;
  json: boolean;
}

export async function run(args: ParsedArgs, io: CommandIo): Promise<number> {
  const a = args as unknown as SpecArgs;
  const sub = a.positionals[0];
  if (sub === 'freeze') {
    const keyDir = resolve(a.keyDir ?? defaultKeyDir(io.env));
    let r;
    try {
      r = await freezeSpecs({ repoRoot: io.repoRoot, keyDir, keyTrustFile: resolve(a.trust ?? defaultTrustFile(keyDir)) });
    } catch (e) {
      if (!(e instanceof FreezeRefused)) throw e;
      if (a.json) printJson(io, { ok: false, error: e.message });
      else io.printErr(`clawos-build: ${e.message}\n`);
      return EXIT.invalidInput;
    }
    if (a.json) {
      printJson(io, { ok: true, file: r.file, trust: r.trustFile, frozen_at: r.payload.frozen_at, specs: r.payload.specs, signers: r.signers, changed: r.changed });
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
    if (a.json) printJson(io, { ok: problems.length === 0, frozen_at: st.ok ? st.payload.frozen_at : null, problems });
    else if (problems.length) io.printErr(`${problems.map((p) => `clawos-build: ${p}`).join('\n')}\nhint: after review, \`clawos-build spec freeze\` with a security key and a core key\n`);
    else io.print(`${FREEZE_FILE}: signed by a security and a core key of ${REPO_TRUST_FILE}; all ${specs.length} P1 specs match (frozen ${st.ok ? st.payload.frozen_at : ''})\n`);
    return problems.length ? EXIT.failed : EXIT.ok;
  }
  throw new UsageError(sub ? `unknown spec subcommand "${sub}" (freeze or verify)` : 'spec needs a subcommand: freeze or verify');
}
