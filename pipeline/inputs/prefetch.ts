/**
 * Before any task runs: every locked package the selected arches need is put
 * into the shared download cache (like Buildroot's `make source` or Yocto's
 * do_fetch), verified against the lock. Tasks then never need the network for
 * their inputs, and a mirror problem stops the run before anything is built
 * (exit 4, naming the package). A package used only through pinned files
 * (the kernel tarball, firmware) is not downloaded when the host's copies
 * already have the locked sha256, nor one only another rootfs backend uses.
 */
import { stat } from 'node:fs/promises';
import { sha256File } from '../../lib/hash.js';
import { fetchLockedDebFile, type DebContext } from './debs.js';
import type { LockedDeb, LoadedLock } from '../catalog/input-lock.js';

export interface PrefetchResult {
  fetched: string[];
  cached: string[];
  host: string[];
  /** Locked for another rootfs backend than this run's: not fetched. */
  skipped: string[];
}

async function hostHasFiles(d: LockedDeb): Promise<boolean> {
  const files = Object.entries(d.files ?? {});
  if (!files.length || d.alias) return false;
  for (const [p, want] of files) {
    const host = `/${p}`;
    if (!(await stat(host).then((s) => s.isFile(), () => false))) return false;
    if ((await sha256File(host)) !== want) return false;
  }
  return true;
}

/**
 * Fetch what the lock pins for these Debian architectures (and `all`), except
 * the packages only another rootfs backend needs (`otherBackend`: name:arch keys;
 * see wantedInputs): a busybox build does not download the Buildroot toolchain.
 */
export async function prefetchLocked(ctx: DebContext, loaded: LoadedLock, debianArches: Iterable<string>, otherBackend: ReadonlySet<string> = new Set()): Promise<PrefetchResult> {
  const want = new Set(['all', ...debianArches]);
  const out: PrefetchResult = { fetched: [], cached: [], host: [], skipped: [] };
  for (const d of loaded.lock.debs) {
    if (!want.has(d.arch)) continue;
    const id = `${d.name}:${d.arch} ${d.version}`;
    if (otherBackend.has(`${d.name}:${d.arch}`)) {
      out.skipped.push(id);
      continue;
    }
    if (await hostHasFiles(d)) {
      out.host.push(id);
      continue;
    }
    const logs: string[] = [];
    await fetchLockedDebFile({ ...ctx, log: (l) => logs.push(l) }, d);
    (logs.some((l) => l.includes('fetched')) ? out.fetched : out.cached).push(id);
    for (const l of logs) ctx.log(l);
  }
  return out;
}
