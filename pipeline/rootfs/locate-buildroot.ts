/**
 * Find the Buildroot to build with: a directory, or a release tarball pinned
 * by sha256. A tarball is verified before anything is extracted; a mismatch
 * fails closed. A verified tarball is extracted once into
 * <cacheDir>/buildroot/src-<sha16>/ through a temp dir renamed into place.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../../lib/hash.js';
import { fail, inputMissing, type Outcome } from '../catalog/outcome.js';
import type { StepContext } from '../catalog/step.js';

export type LocatedBuildroot =
  | { ok: true; dir: string; tarball: string | null; sha256: string | null; extracted: boolean }
  | { ok: false; outcome: Outcome };

type Ctx = Pick<StepContext, 'cacheDir' | 'log' | 'run' | 'signal'>;

export async function locateBuildroot(path: string, sha256: string | null, ctx: Ctx): Promise<LocatedBuildroot> {
  const st = await stat(path).catch(() => null);
  if (!st) return { ok: false, outcome: fail('spec-invalid', `buildroot: ${path} does not exist (want a Buildroot directory or release tarball)`) };
  if (st.isDirectory()) {
    if (!existsSync(join(path, 'Makefile')) || !existsSync(join(path, 'Config.in'))) {
      return { ok: false, outcome: fail('spec-invalid', `buildroot: ${path} is not a Buildroot tree (no Makefile and Config.in at its top)`) };
    }
    return { ok: true, dir: path, tarball: null, sha256: null, extracted: false };
  }
  if (!sha256) {
    return {
      ok: false,
      outcome: fail('source-mismatch', `buildroot: ${path} is a tarball but no sha256 is pinned: set buildroot_sha256 (--buildroot-sha256, or CLAWOS_BUILDROOT_SHA256)`),
    };
  }
  const actual = await sha256File(path);
  if (actual !== sha256.toLowerCase()) {
    return {
      ok: false,
      // Not a bug in the build: the wrong input was given. Nothing is extracted or used.
      outcome: inputMissing(
        `buildroot: ${path} has sha256 ${actual}, but ${sha256} is pinned: refusing to extract it; ` +
          'fix: give the Buildroot tarball whose sha256 is pinned (specs/buildroot-offline.yaml buildroot.sha256, or --buildroot-sha256 for another release you have checked)',
        { data: { file: path, expected: sha256, actual } },
      ),
    };
  }
  const root = join(ctx.cacheDir, 'buildroot');
  const final = join(root, `src-${actual.slice(0, 16)}`);
  if (existsSync(final)) return { ok: true, dir: final, tarball: path, sha256: actual, extracted: false };
  await mkdir(root, { recursive: true });
  const tmp = await mkdtemp(join(root, `.src-${actual.slice(0, 16)}.tmp-`));
  try {
    const r = await ctx.run(['tar', '-xf', path, '-C', tmp], { signal: ctx.signal, tailLines: 20 });
    if (!r.ok) return { ok: false, outcome: fail('exit-non-zero', `buildroot: extracting ${path} failed: ${r.spawnError ?? r.tail.slice(-3).join(' | ')}`) };
    const top = await readdir(tmp);
    const only = top[0];
    if (top.length !== 1 || only === undefined || !(await stat(join(tmp, only))).isDirectory()) {
      return { ok: false, outcome: fail('source-mismatch', `buildroot: ${path}: expected one top-level directory, found ${top.length ? top.sort().join(', ') : 'none'}`) };
    }
    try {
      await rename(join(tmp, only), final);
      ctx.log(`buildroot: ${path} extracted to ${final}`);
    } catch (err) {
      // The other arch's instance extracted the same verified tarball first.
      const code = (err as NodeJS.ErrnoException).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(final))) throw err;
    }
    return { ok: true, dir: final, tarball: path, sha256: actual, extracted: true };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
