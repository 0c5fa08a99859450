/**
 * How a step puts ccache in front of its compilers without changing one command
 * line: a directory of symlinks named like the compilers (gcc, aarch64-linux-gnu-gcc)
 * pointing at ccache, first in PATH. ccache, called by a compiler's name, runs the
 * next compiler of that name in PATH. Kbuild's recorded commands (.cmd files) stay
 * the same with and without the cache, so turning it on or off rebuilds nothing.
 */
import { mkdir, readlink, rm, symlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { CompilerCacheUse } from '../catalog/step.js';

/** Symlinks in `dir` for each compiler; the environment that sends the compiles through them. */
export async function ccacheMasquerade(use: CompilerCacheUse, dir: string, compilers: string[], basePath: string = process.env.PATH ?? '/usr/bin:/bin'): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  for (const c of new Set(compilers)) {
    const link = join(dir, c);
    if ((await readlink(link).catch(() => null)) === use.ccache) continue;
    await rm(link, { force: true });
    await symlink(use.ccache, link);
  }
  return { ...use.env, PATH: `${dir}:${basePath}` };
}

/**
 * ccache's base_dir makes absolute paths under it relative to the compile's working
 * dir, in the command it runs, not only in what it hashes: the compiler then sees
 * `../../../cache/src/linux-…/kernel/fork.c`, and __FILE__ and the debug info would
 * name that. The same map, given for the relative form of each path too, keeps the
 * objects byte for byte those of a build without the cache. `cwd` is where the
 * compiles run (Kbuild: the object dir). Without the cache no path takes that form,
 * so the extra maps change nothing.
 */
export function baseDirPrefixMap(map: Record<string, string>, cwd: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [from, to] of Object.entries(map)) {
    const rel = relative(cwd, from);
    // Only paths outside cwd: a bare prefix like "canary" would also match paths it should not.
    if (rel.startsWith('..')) out[rel] = to;
  }
  return out;
}
