/** A task's output files in the build dir: found, hashed, put back from the vault's store. */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { HashCache } from '../../lib/hash-cache.js';
import { restore, storeHas } from '../../vault/store.js';
import type { OutputRecord } from './state.js';

/** Every file under a declared output (a directory output counts file by file); null when absent. */
export async function expandOutputFiles(buildDir: string, rel: string): Promise<string[] | null> {
  const abs = join(buildDir, rel);
  const st = await stat(abs).catch(() => null);
  if (!st) return null;
  if (st.isFile()) return [rel];
  const out: string[] = [];
  for (const e of (await readdir(abs, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const sub = await expandOutputFiles(buildDir, `${rel}/${e.name}`);
    if (sub) out.push(...sub);
  }
  return out;
}

export async function hashOutputs(buildDir: string, files: string[], cache: HashCache): Promise<Record<string, OutputRecord>> {
  const out: Record<string, OutputRecord> = {};
  for (const f of files) {
    const e = await cache.file(join(buildDir, f));
    out[f] = { sha256: e.sha256, size: e.size, mtimeMs: e.mtimeMs };
  }
  return out;
}

/**
 * Make the recorded outputs present again from the store: each one whose content
 * differs (or is gone) becomes a hard link to its stored object. Returns the
 * restored paths, or null (nothing touched) when an object is not in the store.
 */
export async function restoreOutputs(buildDir: string, cache: HashCache, outputs: Record<string, { sha256: string }>): Promise<string[] | null> {
  for (const o of Object.values(outputs)) if (!(await storeHas(buildDir, o.sha256))) return null;
  const restored: string[] = [];
  for (const [rel, o] of Object.entries(outputs)) {
    const now = await cache.file(join(buildDir, rel)).catch(() => null);
    if (now?.sha256 === o.sha256) continue;
    await restore(buildDir, o.sha256, join(buildDir, rel));
    restored.push(rel);
  }
  return restored.sort();
}
