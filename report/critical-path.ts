/**
 * The critical path of a build: the chain through the task dependency graph
 * whose recorded durations add up to the most. Nothing that chain holds can
 * start before its predecessor ends, so no amount of -j makes the build shorter
 * than its total. Ties are broken by instance id (the smaller wins), so the
 * same records always give the same path.
 */
import { InternalError } from '../lib/errors.js';
import type { TaskGraph } from '../pipeline/catalog/graph.js';

export interface PathNode {
  id: string;
  /** Ids this node waits for; ids not among the nodes are ignored. */
  deps: readonly string[];
  duration_ms: number;
}

export interface CriticalPath {
  /** First to last. */
  ids: string[];
  total_ms: number;
}

export function criticalPath(nodes: readonly PathNode[]): CriticalPath {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  // finish[id] = the longest chain ending with id, including id's own duration.
  const finish = new Map<string, number>();
  const pred = new Map<string, string | null>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const done = finish.get(id);
    if (done !== undefined) return done;
    if (visiting.has(id)) throw new InternalError(`critical path: dependency cycle through ${id}`);
    visiting.add(id);
    const n = byId.get(id)!;
    let best: string | null = null;
    let bestMs = 0;
    for (const d of [...new Set(n.deps)].filter((x) => byId.has(x)).sort()) {
      const ms = visit(d);
      if (best === null || ms > bestMs) {
        best = d;
        bestMs = ms;
      }
    }
    visiting.delete(id);
    const total = bestMs + Math.max(0, n.duration_ms);
    finish.set(id, total);
    pred.set(id, best);
    return total;
  };
  let end: string | null = null;
  let endMs = -1;
  for (const id of [...byId.keys()].sort()) {
    const ms = visit(id);
    if (ms > endMs) {
      end = id;
      endMs = ms;
    }
  }
  if (end === null) return { ids: [], total_ms: 0 };
  const ids: string[] = [];
  for (let at: string | null = end; at !== null; at = pred.get(at) ?? null) ids.unshift(at);
  return { ids, total_ms: endMs };
}

/** The nodes for criticalPath from the task graph and the recorded durations (instances without a record are left out). */
export function pathNodesFromGraph(graph: Pick<TaskGraph, 'order'>, durations: ReadonlyMap<string, number>): PathNode[] {
  return graph.order.filter((i) => durations.has(i.id)).map((i) => ({ id: i.id, deps: i.deps, duration_ms: durations.get(i.id)! }));
}
