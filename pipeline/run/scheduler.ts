/**
 * Runs task instances with bounded concurrency, each after the instances it
 * depends on; what happens to one instance is instance.ts.
 */
import type { TaskInstance } from '../catalog/task-spec.js';
import type { RunContext } from './context.js';
import { runInstance } from './instance.js';
import type { InstanceRecord } from './state.js';

class Semaphore {
  private queue: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.queue.push(r));
  }
  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.free++;
  }
}

/** Run the given instances (dependencies outside the set must already be recorded). */
export async function runInstances(rc: RunContext, instances: TaskInstance[]): Promise<InstanceRecord[]> {
  const inRun = new Set(instances.map((i) => i.id));
  const sem = new Semaphore(Math.max(1, rc.jobs));
  const results = new Map<string, Promise<InstanceRecord>>();
  const schedule = (inst: TaskInstance): Promise<InstanceRecord> => {
    const existing = results.get(inst.id);
    if (existing) return existing;
    const p = (async () => {
      await Promise.all(inst.deps.filter((d) => inRun.has(d)).map((d) => schedule(rc.graph.byId.get(d)!)));
      await sem.acquire();
      try {
        return await runInstance(rc, inst);
      } finally {
        sem.release();
      }
    })();
    results.set(inst.id, p);
    return p;
  };
  const all = await Promise.all(instances.map(schedule));
  await rc.hashCache.save();
  return all;
}
