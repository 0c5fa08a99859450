/** `clawos-build status`: the latest task-end and gate events of the vault's event chains (not state.json). */
import { join } from 'node:path';
import { formatDuration } from '../../lib/format.js';
import { PHASES } from '../../pipeline/catalog/task-spec.js';
import { stateDamage } from '../../pipeline/run/state.js';
import { foldStatus, readAllRuns, tamperedHeadline } from '../../vault/vault-history.js';
import { bootEvidenceLines, foldBootEvidence } from '../../vault/lava-evidence.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';
import { buildDirArg } from '../path-args.js';

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  const buildDir = await buildDirArg(a.buildDir as string);
  const runs = await readAllRuns(buildDir);
  const s = foldStatus(buildDir, runs);
  // Boots other labs ran (LAVA), beside the built-in boot lab's verdicts for the same ISO.
  const boots = foldBootEvidence(runs);
  // The scheduler's index, not the record: shown from the vault all the same, but a run would refuse it.
  const damage = await stateDamage(buildDir);
  const code = s.problems.length ? EXIT.failed : damage ? EXIT.invalidInput : EXIT.ok;
  if (a.json) {
    printJson(io, { ...s, lab_boots: boots, state: damage ? { path: damage.path, ok: false, problem: damage.problem, fix: damage.fix, command: damage.command } : { path: join(buildDir, 'state.json'), ok: true } });
    return code;
  }
  for (const p of s.problems) io.printErr(`clawos-build: vault: ${p}\n`);
  if (damage) io.printErr(`clawos-build: ${damage.problem}; a run refuses it until it is moved aside (the results below come from the vault)\nhint: ${damage.fix}\n`);
  const recs = Object.values(s.instances).sort((x, y) => x.phase.localeCompare(y.phase) || x.task.localeCompare(y.task));
  const labLines = () => {
    if (!boots.length) return;
    io.print('boots by lab (LAVA-sourced evidence beside the built-in boot lab):\n');
    for (const l of bootEvidenceLines(boots)) io.print(`  ${l}\n`);
  };
  if (!recs.length) {
    io.print(`nothing recorded in the vault of ${buildDir} yet\n`);
    labLines();
    if (s.tampered.length) io.print(`${tamperedHeadline(s.tampered)}\n`);
    return code;
  }
  const last = s.runs.at(-1)!;
  const events = last.tampered ? `TAMPERED: ${last.tampered.verified} of ${last.tampered.total} events verified` : `${last.events} events`;
  io.print(`from the vault: ${s.runs.length} run(s) in ${join(buildDir, 'vault', 'runs')}, latest ${last.run_id} (${events})\n`);
  for (const phase of PHASES) {
    const g = s.gates[phase];
    io.print(`${phase}: gate ${g ? `${g.recommendation} (${g.decided_at}, run ${g.run_id} event ${g.seq})` : 'not run'}\n`);
    for (const r of recs.filter((x) => x.phase === phase)) {
      io.print(`  ${r.task.padEnd(14)} ${r.status.padEnd(14)} ${formatDuration(r.duration_ms).padStart(8)}  ${r.message.split('\n')[0]}\n`);
    }
    for (const b of g?.blockers ?? []) io.print(`  blocker: ${b}\n`);
  }
  labLines();
  if (s.tampered.length) io.print(`${tamperedHeadline(s.tampered)}\n`);
  return code;
}
