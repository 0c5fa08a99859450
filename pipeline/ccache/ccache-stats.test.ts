import { describe, expect, it } from 'vitest';
import { formatCcacheStats, parseCcacheStatsLog } from './ccache-stats.js';

// As ccache 4.7 writes it (CCACHE_STATSLOG): one "# <source>" line per call, then its counters.
const LOG = `# kernel/fork.c
direct_cache_hit
local_storage_hit
local_storage_read_hit
# kernel/exit.c
direct_cache_hit
local_storage_miss
remote_storage_hit
remote_storage_read_hit
# kernel/sys.c
cache_miss
direct_cache_miss
local_storage_miss
preprocessed_cache_miss
remote_storage_error
# scripts/basic/fixdep.c
called_for_link
# 
no_input_file
# mm/slub.c
preprocessed_cache_hit
local_storage_hit
`;

describe('ccache stats log', () => {
  it('counts each call once: hits (local or remote), misses, passed through, remote errors', () => {
    expect(parseCcacheStatsLog(LOG)).toEqual({ cacheable: 4, hits: 3, localHits: 2, remoteHits: 1, misses: 1, uncacheable: 2, remoteErrors: 1 });
  });

  it('an empty log (nothing compiled) is all zeros', () => {
    expect(parseCcacheStatsLog('')).toEqual({ cacheable: 0, hits: 0, localHits: 0, remoteHits: 0, misses: 0, uncacheable: 0, remoteErrors: 0 });
  });

  it('says the hit rate in one line', () => {
    expect(formatCcacheStats(parseCcacheStatsLog(LOG))).toBe(
      'ccache: 3 of 4 compiles were hits (75%; 2 local, 1 remote), 2 calls not cacheable; remote storage did not answer 1 time',
    );
    expect(formatCcacheStats(parseCcacheStatsLog('# \nno_input_file\n'))).toBe('ccache: no cacheable compile (1 call passed through)');
  });
});
