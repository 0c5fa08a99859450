/** The task graph for a run: one instance per task, or per task and arch. */
import { InternalError } from '../../lib/errors.js';
import { PHASES, instanceId, type LoadedTask, type Phase, type TaskInstance } from './task-spec.js';

export interface TaskGraph {
  /** Instances in a valid execution order: by phase, then dependencies, then id. */
  order: TaskInstance[];
  byId: Map<string, TaskInstance>;
  arches: string[];
}

export function buildGraph(tasks: Map<string, LoadedTask>, arches: string[]): TaskGraph {
  const byId = new Map<string, TaskInstance>();
  const instancesOf = (t: LoadedTask): TaskInstance[] =>
    t.spec.per_arch ? arches.map((a) => byId.get(instanceId(t.spec.task_id, a))!) : [byId.get(t.spec.task_id)!];

  for (const t of tasks.values()) {
    const list = t.spec.per_arch ? arches : [null];
    for (const a of list) byId.set(instanceId(t.spec.task_id, a), { id: instanceId(t.spec.task_id, a), task: t, arch: a, deps: [] });
  }
  for (const inst of byId.values()) {
    for (const d of inst.task.spec.depends_on) {
      const dep = tasks.get(d);
      if (!dep) throw new InternalError(`graph: ${inst.id} depends on unknown ${d} (validate first)`);
      if (dep.spec.per_arch && inst.arch) inst.deps.push(instanceId(d, inst.arch));
      else inst.deps.push(...instancesOf(dep).map((x) => x.id));
    }
  }
  // Kahn's algorithm; ties broken by phase, then id, so the order is stable.
  const indeg = new Map<string, number>();
  const users = new Map<string, string[]>();
  for (const i of byId.values()) {
    indeg.set(i.id, i.deps.length);
    for (const d of i.deps) users.set(d, [...(users.get(d) ?? []), i.id]);
  }
  const key = (id: string) => {
    const i = byId.get(id)!;
    return `${PHASES.indexOf(i.task.spec.phase)}:${i.task.spec.task_id}:${i.arch === null ? 0 : arches.indexOf(i.arch) + 1}`;
  };
  const ready = [...byId.keys()].filter((id) => indeg.get(id) === 0);
  const order: TaskInstance[] = [];
  while (ready.length) {
    ready.sort((a, b) => key(a).localeCompare(key(b)));
    const id = ready.shift()!;
    order.push(byId.get(id)!);
    for (const u of users.get(id) ?? []) {
      const n = indeg.get(u)! - 1;
      indeg.set(u, n);
      if (n === 0) ready.push(u);
    }
  }
  if (order.length !== byId.size) throw new InternalError('graph: cycle survived validation');
  const pos = new Map(order.map((i, n) => [i.id, n]));
  order.sort((a, b) => PHASES.indexOf(a.task.spec.phase) - PHASES.indexOf(b.task.spec.phase) || pos.get(a.id)! - pos.get(b.id)!);
  return { order, byId, arches };
}

export function phaseInstances(g: TaskGraph, phase: Phase): TaskInstance[] {
  return g.order.filter((i) => i.task.spec.phase === phase);
}
