/**
 * One task's compiler-cache figures, read from the ccache stats log it wrote
 * (CCACHE_STATSLOG: a "# <source>" line per ccache call, then the counters that
 * call moved). A per-task file, not a delta of `ccache --print-stats`: the cache
 * dir is shared by every build dir and both arches compile at once.
 */

export interface CcacheStats {
  /** Calls ccache could cache (a hit or a miss). */
  cacheable: number;
  /** Results found: in the local cache, or in remote storage (then copied to the local one). */
  hits: number;
  localHits: number;
  remoteHits: number;
  /** Compiled, then stored. */
  misses: number;
  /** Calls ccache passed through: links, -E, no input file, a failed compile, an unsupported option. */
  uncacheable: number;
  /** Remote storage did not answer (ccache went on without it). */
  remoteErrors: number;
}

const HIT = new Set(['direct_cache_hit', 'preprocessed_cache_hit']);

export function parseCcacheStatsLog(text: string): CcacheStats {
  const s: CcacheStats = { cacheable: 0, hits: 0, localHits: 0, remoteHits: 0, misses: 0, uncacheable: 0, remoteErrors: 0 };
  const calls: string[][] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) calls.push([]);
    else if (line.trim() && calls.length) calls[calls.length - 1]!.push(line.trim());
  }
  for (const counters of calls) {
    const has = (c: string) => counters.includes(c);
    if (counters.some((c) => HIT.has(c))) {
      s.hits++;
      if (has('remote_storage_hit')) s.remoteHits++;
      else s.localHits++;
    } else if (has('cache_miss')) s.misses++;
    else s.uncacheable++;
    if (has('remote_storage_error') || has('remote_storage_timeout')) s.remoteErrors++;
  }
  s.cacheable = s.hits + s.misses;
  return s;
}

/** "ccache: 2950 of 3010 compiles were hits (98%; 2950 local, 0 remote), 612 calls not cacheable". */
export function formatCcacheStats(s: CcacheStats): string {
  if (!s.cacheable) return `ccache: no cacheable compile (${s.uncacheable} call${s.uncacheable === 1 ? '' : 's'} passed through)`;
  const pct = Math.floor((s.hits / s.cacheable) * 100);
  const errors = s.remoteErrors ? `; remote storage did not answer ${s.remoteErrors} time${s.remoteErrors === 1 ? '' : 's'}` : '';
  return `ccache: ${s.hits} of ${s.cacheable} compiles were hits (${pct}%; ${s.localHits} local, ${s.remoteHits} remote), ${s.uncacheable} calls not cacheable${errors}`;
}
