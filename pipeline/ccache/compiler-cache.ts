/**
 * The shared compiler cache (issue 17): Debian's ccache in front of the kernel's
 * compilers, one local cache dir for every build dir of the user, and optionally
 * ccache's own remote storage on a redis server. What a run decides once (on or
 * off, where, which remote) and the environment a task's compiles get.
 *
 * Part of a fingerprint when on (compilerCacheOf, compiled_by: ccache): the build
 * paths are mapped away (baseDirPrefixMap in ccache-masquerade.ts), but base_dir
 * drops a '..' from -I paths in the debug info, so a kernel through the cache is
 * not the plain build's bytes (docs/decisions.md).
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import type { Runner } from '../../lib/proc.js';
import { parseRedisUrl, pingRedis } from '../../lib/redis-ping.js';
import type { CompilerCacheUse } from '../catalog/step.js';

/** `compiler_cache:` of clawos-build.config.yaml (specs/schemas/config.schema.json). */
export interface CompilerCacheConfig {
  enabled?: boolean;
  dir?: string;
  max_size?: string;
  remote?: string;
  remote_readonly?: boolean;
}

/** What the command line says: --compiler-cache, --no-compiler-cache, --compiler-cache-remote URL. */
export interface CompilerCacheFlags {
  on?: boolean;
  off?: boolean;
  remote?: string;
}

export type CompilerCacheChoice =
  | { on: false; reason: string }
  | {
      on: true;
      dir: string;
      maxSize: string | null;
      remote: { url: string; readonly: boolean } | null;
      /** Why it is on (a missing ccache is then an error, since someone asked for it). */
      asked: string;
    };

/** The cache a run compiles through. */
export interface CompilerCache {
  /** Absolute path of ccache. */
  ccache: string;
  /** "4.7.5" */
  version: string;
  dir: string;
  maxSize: string | null;
  /** shown: the URL without its password; network: a TCP server (the task's sandbox then keeps the network); socket: a unix socket's path (bound into the sandbox). */
  remote: { url: string; shown: string; readonly: boolean; network: boolean; socket?: string } | null;
}

/** ~/.cache/clawos-build/ccache ($XDG_CACHE_HOME honoured): shared by every build dir and clone of this user. */
export function defaultCompilerCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(base, 'clawos-build', 'ccache');
}

/** The URL as logs may show it: no user or password. */
export function shownRedisUrl(url: string): string {
  return url.replace(/^(redis(?:\+unix)?:\/\/)[^@/]*@/, '$1');
}

/** Why it is off when nobody said anything: not worth a line in every run's output. */
export const DEFAULT_OFF = 'the default; --compiler-cache turns it on';

/**
 * Off unless asked for: --compiler-cache or --compiler-cache-remote, or a `compiler_cache:`
 * section in the config file without `enabled: false`. A cold cache makes a kernel
 * build much slower (every miss is preprocessed once more to be hashed: docs/decisions.md),
 * which only machines that rebuild the same kernels in other folders win back.
 * The command line wins over the config file.
 */
export function chooseCompilerCache(config: CompilerCacheConfig | undefined, flags: CompilerCacheFlags, env: NodeJS.ProcessEnv = process.env): CompilerCacheChoice {
  if (flags.off) return { on: false, reason: '--no-compiler-cache' };
  const asked = flags.remote
    ? '--compiler-cache-remote'
    : flags.on
      ? '--compiler-cache'
      : config && config.enabled !== false
        ? 'compiler_cache in the config file'
        : null;
  if (!asked) {
    return { on: false, reason: config?.enabled === false ? 'compiler_cache.enabled is false in the config file' : DEFAULT_OFF };
  }
  const url = flags.remote ?? config?.remote;
  return {
    on: true,
    dir: config?.dir ? resolve(config.dir) : defaultCompilerCacheDir(env),
    maxSize: config?.max_size ?? null,
    remote: url ? { url, readonly: !!config?.remote_readonly } : null,
    asked,
  };
}

/**
 * Find ccache and make the cache dir; ask the remote once. A missing ccache stops the
 * run (exit 4: it was asked for); a remote that does not answer is left out of this
 * run with a warning, and the local cache stays.
 */
export async function openCompilerCache(choice: CompilerCacheChoice, o: { run: Runner; pingTimeoutMs?: number }): Promise<{ cache: CompilerCache | null; notes: string[] }> {
  if (!choice.on) return { cache: null, notes: choice.reason === DEFAULT_OFF ? [] : [`compiler cache: off (${choice.reason})`] };
  const v = await o.run(['ccache', '--version'], { captureStdout: true, timeoutMs: 15_000 });
  const version = /ccache version (\S+)/.exec(v.stdout)?.[1];
  if (!v.ok || !version) {
    const why = v.spawnError || v.exitCode === 127 ? 'ccache is not installed' : `ccache --version failed (exit ${v.exitCode ?? v.signal})`;
    throw new InfraError(`compiler cache: ${why} (asked for by ${choice.asked})`, 'apt-get install ccache (it is in specs/host-packages.txt, so bin/bootstrap installs it), or run with --no-compiler-cache');
  }
  const which = await o.run(['sh', '-c', 'command -v ccache'], { captureStdout: true, timeoutMs: 15_000 });
  const ccache = which.stdout.trim() || 'ccache';
  await mkdir(join(choice.dir, 'clawos-stats'), { recursive: true });
  const notes: string[] = [];
  let remote: CompilerCache['remote'] = null;
  if (choice.remote) {
    const target = parseRedisUrl(choice.remote.url);
    const shown = shownRedisUrl(choice.remote.url);
    if (!target) throw new InfraError(`compiler cache: ${shown} is not a redis URL`, 'redis://HOST:PORT, redis://PASSWORD@HOST:PORT or redis+unix:/path/to/socket');
    const ping = await pingRedis(target, o.pingTimeoutMs ?? 2000);
    if (ping.ok) remote = { url: choice.remote.url, shown, readonly: choice.remote.readonly, network: target.kind === 'tcp', ...(target.kind === 'unix' ? { socket: target.path } : {}) };
    else notes.push(`warning: compiler cache: remote storage ${shown} is not answering (${ping.detail}): compiling with the local cache only in this run`);
  }
  const cache: CompilerCache = { ccache, version, dir: choice.dir, maxSize: choice.maxSize, remote };
  notes.unshift(`compiler cache: ccache ${version} in ${choice.dir}${remote ? `, remote storage ${remote.shown}${remote.readonly ? ' (read-only)' : ''}` : ''}`);
  return { cache, notes };
}

/**
 * ccache's settings for one task, as environment (it wins over any ccache.conf):
 * the shared dir, base_dir at the build dir (absolute paths below it become relative,
 * so two build dirs hash alike), the working dir still hashed (hash_dir: a compile whose
 * debug info names it unmapped, a host tool's, is never shared across folders), its own
 * stats log, and the remote storage.
 */
export function ccacheEnv(cache: CompilerCache, o: { baseDir: string; statsLog: string }): Record<string, string> {
  return {
    CCACHE_DIR: cache.dir,
    CCACHE_BASEDIR: o.baseDir,
    CCACHE_HASHDIR: '1',
    CCACHE_STATSLOG: o.statsLog,
    ...(cache.maxSize ? { CCACHE_MAXSIZE: cache.maxSize } : {}),
    ...(cache.remote ? { CCACHE_REMOTE_STORAGE: `${cache.remote.url}${cache.remote.readonly ? '|read-only' : ''}` } : { CCACHE_REMOTE_STORAGE: '' }),
  };
}

/** What a step with Step.compilerCache gets (StepContext.compilerCache). */
export function compilerCacheUse(cache: CompilerCache, o: { baseDir: string; statsLog: string }): CompilerCacheUse {
  return { ccache: cache.ccache, env: ccacheEnv(cache, o) };
}

/** The per-task stats log: in the cache dir, which the task's sandbox may write. */
export function statsLogPath(cache: CompilerCache, runId: string, instanceId: string): string {
  return join(cache.dir, 'clawos-stats', `${runId}-${instanceId.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`);
}
