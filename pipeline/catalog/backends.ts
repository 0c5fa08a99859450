/**
 * Run-wide backend choice (`clawos-build --rootfs-backend buildroot`). A task
 * may list alternatives to its own `uses:`/`with:` under `backends:`; choosing
 * a backend swaps them in before anything is scheduled, so the fingerprint,
 * the plan and the logs all show the step that really runs. The task's own
 * action is the backend named `default` (busybox for the rootfs). An
 * alternative may be a component instead of a step (B-08's eBPF programs built
 * by the aya-ebpf component: `--rootfs-backend aya`).
 */
import { UserError } from '../../lib/errors.js';
import type { Catalog } from './load-tasks.js';

export const DEFAULT_BACKEND = 'busybox';

/** Every backend name some task offers, plus the default. */
export function knownBackends(catalog: Catalog): string[] {
  const names = new Set([DEFAULT_BACKEND]);
  for (const t of catalog.tasks.values()) for (const b of Object.keys(t.spec.backends ?? {})) names.add(b);
  return [...names].sort();
}

/**
 * The catalog with `backend` swapped in where a task offers it. `params` are
 * merged into the chosen alternative's `with:` (CLI values such as --buildroot);
 * tasks without that backend keep their own action.
 */
export function applyBackend(catalog: Catalog, backend: string, params: Record<string, unknown> = {}): Catalog {
  const known = knownBackends(catalog);
  if (!known.includes(backend)) throw new UserError(`unknown rootfs backend "${backend}" (known: ${known.join(', ')})`);
  if (backend === DEFAULT_BACKEND) return catalog;
  const tasks = new Map(catalog.tasks);
  for (const [id, t] of catalog.tasks) {
    const alt = t.spec.backends?.[backend];
    if (!alt) continue;
    const spec = alt.component !== undefined ? { ...t.spec, component: alt.component } : { ...t.spec, uses: alt.uses, with: { ...(alt.with ?? {}), ...params } };
    if (alt.component !== undefined) {
      delete spec.uses;
      delete spec.with;
    }
    delete spec.backends;
    tasks.set(id, { ...t, spec });
  }
  return { ...catalog, tasks };
}
