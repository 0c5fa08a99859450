/** `clawos-build validate`: every task spec, audit rule, waiver, security layer and frozen P1 spec, each error as file:line:col. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCK_FILE, lockDiagnostics } from '../../pipeline/catalog/input-lock.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import { loadTasks } from '../../pipeline/catalog/load-tasks.js';
import { specFreezeDiagnostics } from '../../pipeline/p1-specs/spec-check.js';
import { selectArches } from '../../pipeline/run/session.js';
import { auditSpecDiagnostics } from '../../pipeline/security/kconfig-audit-spec.js';
import { securityLayersDiagnostics } from '../../pipeline/security/security-report.js';
import { builtinSteps } from '../../pipeline/steps/index.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  const repoRoot = io.repoRoot;
  const steps = builtinSteps();
  const { catalog, diagnostics } = await loadTasks({ repoRoot, stepNames: new Set(steps.keys()), steps });
  await selectArches(repoRoot, a.arch as string[]);
  // The audit rules, waivers and security layers are data too: checked here, with file:line:col.
  const allArches = [...(await selectArches(repoRoot, null)).keys()];
  diagnostics.push(...(await auditSpecDiagnostics(repoRoot, allArches)), ...(await securityLayersDiagnostics(repoRoot)));
  // The input lock: schema, and each package once.
  const lockText = await readFile(join(repoRoot, LOCK_FILE), 'utf8').catch(() => null);
  if (lockText === null) diagnostics.push({ file: LOCK_FILE, line: 1, col: 1, message: `missing: make it with \`clawos-build lock --update\`` });
  else diagnostics.push(...(await lockDiagnostics(repoRoot, lockText)));
  // The P1 specs the freeze tasks name: schema and spec-level rules (a clean catalog only: they need its tasks).
  if (!diagnostics.length) diagnostics.push(...(await specFreezeDiagnostics(catalog.tasks.values(), repoRoot)));
  if (a.json) {
    printJson(io, { ok: diagnostics.length === 0, tasks: catalog.tasks.size, errors: diagnostics });
  } else {
    for (const d of diagnostics) io.printErr(`${formatDiagnostic(d)}\n`);
    const required = [...catalog.tasks.values()].filter((t) => !t.spec.optional).length;
    io.printErr(
      diagnostics.length
        ? `${diagnostics.length} error(s) in ${catalog.tasks.size} valid task spec(s)\n`
        : `${catalog.tasks.size} task specs valid (${required} required, ${catalog.tasks.size - required} optional)\n`,
    );
  }
  return diagnostics.length ? EXIT.invalidInput : EXIT.ok;
}
