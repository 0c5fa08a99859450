/**
 * Garbage collection of the content store (<build>/vault/store/sha256/): an
 * object is removed only when nothing that is kept names it: not the event chain
 * of a kept run (the newest N), not the bundle of a kept run, not a released
 * bundle (one a release folder under <build>/release/ was made from), not the
 * newest bundle, not state.json (the scheduler's index of what is current). A
 * reference is any sha256 those files spell out, so the collector errs on keeping.
 * Event chains and bundles themselves are never touched: a bundle's files are
 * hard links, so even a dropped run's bundle keeps its bytes.
 */
import { lstat, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { eventsPath } from './event-chain.js';
import { listRunIds } from './run-vault.js';
import { storeDir } from './store.js';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX64_IN_TEXT = /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/g;
/** Temp files of an interrupted store write or pull, older than this, are debris. */
const STALE_TEMP_MS = 60 * 60 * 1000;

export interface GcResult {
  kept_runs: string[];
  dropped_runs: string[];
  /** Bundles whose references were kept: of kept runs, released, the newest. */
  kept_bundles: string[];
  referenced: number;
  kept_objects: number;
  removed: { sha256: string; size: number }[];
  freed_bytes: number;
  temp_removed: number;
  dry_run: boolean;
}

async function addRefsOf(file: string, refs: Set<string>): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return false;
  }
  for (const m of text.matchAll(HEX64_IN_TEXT)) refs.add(m[0]);
  // DSSE payloads are base64: their subjects' digests are inside.
  for (const m of text.matchAll(/"payload":"([A-Za-z0-9+/=]+)"/g)) {
    for (const h of Buffer.from(m[1]!, 'base64').toString('utf8').matchAll(HEX64_IN_TEXT)) refs.add(h[0]);
  }
  return true;
}

async function dirNames(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

/** Run ids that a release folder under <build>/release/ was made from (release.json's run_id). */
async function releasedRuns(buildDir: string): Promise<string[]> {
  const out: string[] = [];
  const root = join(buildDir, 'release');
  for (const d of await dirNames(root)) {
    try {
      const r = JSON.parse(await readFile(join(root, d, 'release.json'), 'utf8')) as { run_id?: unknown };
      if (typeof r.run_id === 'string') out.push(r.run_id);
    } catch {
      /* not a release folder */
    }
  }
  return out;
}

export async function collectGarbage(buildDir: string, o: { keepRuns: number; dryRun?: boolean; now?: number }): Promise<GcResult> {
  const runs = await listRunIds(buildDir);
  const kept = runs.slice(Math.max(0, runs.length - o.keepRuns));
  const dropped = runs.slice(0, runs.length - kept.length);
  const refs = new Set<string>();
  for (const r of kept) await addRefsOf(eventsPath(buildDir, r), refs);
  await addRefsOf(join(buildDir, 'state.json'), refs);
  const bundlesRoot = join(buildDir, 'vault', 'bundles');
  const bundles = (await dirNames(bundlesRoot)).filter((n) => n.startsWith('run-')).sort();
  const wanted = new Set([...kept, ...(await releasedRuns(buildDir)), ...(bundles.length ? [bundles.at(-1)!] : [])]);
  const keptBundles: string[] = [];
  for (const b of bundles) {
    if (!wanted.has(b)) continue;
    keptBundles.push(b);
    for (const f of ['manifest.json', 'events.jsonl', 'attestation.dsse.json', 'manifest.dsse.json']) await addRefsOf(join(bundlesRoot, b, f), refs);
  }
  const removed: GcResult['removed'] = [];
  let keptObjects = 0;
  let tempRemoved = 0;
  const dir = storeDir(buildDir);
  const now = o.now ?? Date.now();
  for (const name of (await dirNames(dir)).sort()) {
    const p = join(dir, name);
    if (!HEX64.test(name)) {
      // .in-*, .remote-*: a write that never finished.
      if (name.startsWith('.') && now - (await lstat(p)).mtimeMs > STALE_TEMP_MS) {
        if (!o.dryRun) await unlink(p);
        tempRemoved++;
      }
      continue;
    }
    if (refs.has(name)) {
      keptObjects++;
      continue;
    }
    const size = (await stat(p)).size;
    if (!o.dryRun) await unlink(p);
    removed.push({ sha256: name, size });
  }
  return {
    kept_runs: kept,
    dropped_runs: dropped,
    kept_bundles: keptBundles,
    referenced: refs.size,
    kept_objects: keptObjects,
    removed,
    freed_bytes: removed.reduce((n, r) => n + r.size, 0),
    temp_removed: tempRemoved,
    dry_run: !!o.dryRun,
  };
}
