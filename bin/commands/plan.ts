/** `clawos-build plan [--json]`: the task graph in execution order. */
import { buildGraph } from '../../pipeline/catalog/graph.js';
import { loadValidCatalog, selectArches } from '../../pipeline/run/session.js';
import type { ParsedArgs } from '../args.js';
import { printJson, type CommandIo } from '../command-io.js';
import { EXIT } from '../exit.js';

function actionOf(spec: { uses?: string; run?: string; component?: string; pending?: string }): string {
  if (spec.uses) return `uses ${spec.uses}`;
  if (spec.run) return 'run';
  if (spec.component) return `component ${spec.component}`;
  return 'pending';
}

export async function run(a: ParsedArgs, io: CommandIo): Promise<number> {
  const catalog = await loadValidCatalog(io.repoRoot);
  const arches = await selectArches(io.repoRoot, a.arch as string[]);
  const g = buildGraph(catalog.tasks, [...arches.keys()]);
  const rows = g.order.map((i, n) => ({
    order: n + 1,
    id: i.id,
    task_id: i.task.spec.task_id,
    arch: i.arch,
    phase: i.task.spec.phase,
    agent: i.task.spec.agent,
    title: i.task.spec.title,
    action: actionOf(i.task.spec),
    depends_on: i.deps,
    optional: !!i.task.spec.optional,
  }));
  if (a.json) {
    printJson(io, { arches: g.arches, instances: rows });
    return EXIT.ok;
  }
  let phase = '';
  for (const r of rows) {
    if (r.phase !== phase) {
      phase = r.phase;
      io.print(`${phase}\n`);
    }
    io.print(
      `  ${String(r.order).padStart(3)}. ${r.id.padEnd(14)} ${r.agent.padEnd(16)} ${r.action.padEnd(24)} ${r.title}${
        r.depends_on.length ? `  <- ${r.depends_on.join(', ')}` : ''
      }\n`,
    );
  }
  io.print(`${rows.length} task instances for ${g.arches.join(', ')}\n`);
  return EXIT.ok;
}
