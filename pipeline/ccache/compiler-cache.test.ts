import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../lib/proc.js';
import { ccacheEnv, chooseCompilerCache, defaultCompilerCacheDir, openCompilerCache, shownRedisUrl, statsLogPath, type CompilerCache } from './compiler-cache.js';

const ENV = { HOME: '/home/u' } as NodeJS.ProcessEnv;

describe('chooseCompilerCache', () => {
  it('is off by default; --compiler-cache turns it on in ~/.cache/clawos-build/ccache, local only', () => {
    expect(chooseCompilerCache(undefined, {}, ENV)).toEqual({ on: false, reason: 'the default; --compiler-cache turns it on' });
    expect(chooseCompilerCache(undefined, { on: true }, ENV)).toEqual({ on: true, dir: defaultCompilerCacheDir(ENV), maxSize: null, remote: null, asked: '--compiler-cache' });
    expect(defaultCompilerCacheDir({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/clawos-build/ccache');
  });

  it('a compiler_cache section turns it on; enabled: false turns it off, but not against --compiler-cache; --no-compiler-cache wins over everything', () => {
    expect(chooseCompilerCache({ dir: '/c' }, {}, ENV)).toMatchObject({ on: true, dir: '/c', asked: 'compiler_cache in the config file' });
    expect(chooseCompilerCache({ enabled: false }, {}, ENV)).toEqual({ on: false, reason: 'compiler_cache.enabled is false in the config file' });
    expect(chooseCompilerCache({ enabled: false }, { on: true }, ENV)).toMatchObject({ on: true, asked: '--compiler-cache' });
    expect(chooseCompilerCache({ enabled: true, remote: 'redis://h' }, { off: true }, ENV)).toEqual({ on: false, reason: '--no-compiler-cache' });
  });

  it('the command line remote turns it on and wins over the config file\'s', () => {
    expect(chooseCompilerCache({ dir: '/c', max_size: '20G', remote: 'redis://a:1', remote_readonly: true }, { remote: 'redis://b:2' }, ENV)).toEqual({
      on: true,
      dir: '/c',
      maxSize: '20G',
      remote: { url: 'redis://b:2', readonly: true },
      asked: '--compiler-cache-remote',
    });
    expect(chooseCompilerCache(undefined, { remote: 'redis://b:2' }, ENV)).toMatchObject({ on: true, remote: { url: 'redis://b:2', readonly: false } });
  });
});

describe('ccacheEnv', () => {
  const cache: CompilerCache = { ccache: '/usr/bin/ccache', version: '4.7.5', dir: '/c', maxSize: null, remote: null };
  it('points ccache at the shared dir, the build dir as base_dir, the task stats log; no remote overrides a ccache.conf one', () => {
    expect(ccacheEnv(cache, { baseDir: '/w/build', statsLog: '/c/clawos-stats/r1-A-01_x86_64.log' })).toEqual({
      CCACHE_DIR: '/c',
      CCACHE_BASEDIR: '/w/build',
      CCACHE_HASHDIR: '1',
      CCACHE_STATSLOG: '/c/clawos-stats/r1-A-01_x86_64.log',
      CCACHE_REMOTE_STORAGE: '',
    });
  });

  it('a read-only remote and a max size', () => {
    const env = ccacheEnv({ ...cache, maxSize: '20G', remote: { url: 'redis://pw@h:7', shown: 'redis://h:7', readonly: true, network: true } }, { baseDir: '/b', statsLog: '/s' });
    expect(env.CCACHE_REMOTE_STORAGE).toBe('redis://pw@h:7|read-only');
    expect(env.CCACHE_MAXSIZE).toBe('20G');
  });

  it('one stats log per run and task instance, in the cache dir', () => {
    expect(statsLogPath(cache, '20261206T1000Z-ab', 'A-01@x86_64')).toBe('/c/clawos-stats/20261206T1000Z-ab-A-01_x86_64.log');
  });
});

describe('shownRedisUrl', () => {
  it('drops user and password', () => {
    expect(shownRedisUrl('redis://s3cret@cache.example:6379/0')).toBe('redis://cache.example:6379/0');
    expect(shownRedisUrl('redis://u:s3cret@h')).toBe('redis://h');
    expect(shownRedisUrl('redis+unix://s3cret@localhost/run/redis.sock')).toBe('redis+unix://localhost/run/redis.sock');
    expect(shownRedisUrl('redis+unix:/run/redis.sock')).toBe('redis+unix:/run/redis.sock');
  });
});

describe('openCompilerCache', () => {
  // A PATH with no ccache in it: the real run() of a command that is not there.
  const noCcache = (argv: string[], o: Parameters<typeof run>[1] = {}) => run(argv, { ...o, env: { ...o.env, PATH: '/nonexistent' } });

  it('no ccache: an InfraError naming who asked for the cache, with the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cc-'));
    const choice = chooseCompilerCache({ dir }, {}, ENV);
    await expect(openCompilerCache(choice, { run: noCcache })).rejects.toThrow('compiler cache: ccache is not installed (asked for by compiler_cache in the config file)');
    await expect(openCompilerCache(chooseCompilerCache(undefined, { on: true }, ENV), { run: noCcache })).rejects.toThrow('compiler cache: ccache is not installed (asked for by --compiler-cache)');
  });

  it('off: one note saying why, none when it is off by default', async () => {
    expect(await openCompilerCache({ on: false, reason: '--no-compiler-cache' }, { run })).toEqual({ cache: null, notes: ['compiler cache: off (--no-compiler-cache)'] });
    expect(await openCompilerCache(chooseCompilerCache(undefined, {}, ENV), { run })).toEqual({ cache: null, notes: [] });
  });

  it('a remote that does not answer is left out with a warning; the local cache stays', async (t) => {
    const v = await run(['ccache', '--version'], { captureStdout: true });
    if (!v.ok) return t.skip('ccache is not installed (apt-get install ccache)');
    const dir = await mkdtemp(join(tmpdir(), 'cc-'));
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const r = await openCompilerCache(chooseCompilerCache({ dir, remote: 'redis://pw@127.0.0.1:1' }, {}, ENV), { run });
    expect(r.cache).toMatchObject({ dir, remote: null });
    expect(r.notes).toEqual([
      `compiler cache: ccache ${r.cache!.version} in ${dir}`,
      'warning: compiler cache: remote storage redis://127.0.0.1:1 is not answering (ECONNREFUSED): compiling with the local cache only in this run',
    ]);
  });
});
