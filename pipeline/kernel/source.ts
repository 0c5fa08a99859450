/**
 * The kernel source as configuration (kernel-config/source.yaml): a local
 * tarball or a URL, pinned by sha256, verified before use and extracted once
 * into the shared cache.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import type { ArchSpec } from '../catalog/arch.js';
import { lockedFile, type DebContext } from '../inputs/debs.js';
import { loadLock } from '../catalog/input-lock.js';
import { fail, infra, type Outcome } from '../catalog/outcome.js';

export const SOURCE_YAML = 'kernel-config/source.yaml';

/** The default source and every selectable one (kernel-config/source-<name>.yaml), repo-relative, sorted. */
export async function kernelSourceFiles(repoRoot: string): Promise<string[]> {
  const dir = dirname(SOURCE_YAML);
  return (await readdir(join(repoRoot, dir)))
    .filter((f) => /^source(-[A-Za-z0-9._]+)?\.yaml$/.test(f))
    .sort()
    .map((f) => `${dir}/${f}`);
}

export interface KernelSourceConfig {
  /** The tarball inside a locked Debian package (deb: + member:); its sha256 is the lock's. */
  deb?: { package: string; member: string };
  /** Absolute path of a local tarball (tarball: or a path in CLAWOS_KERNEL_SOURCE). */
  tarball?: string;
  /** http(s):// or file:// URL (url: or a URL in CLAWOS_KERNEL_SOURCE). */
  url?: string;
  /** Lower-case hex; empty with deb: until the lock is read (prepareKernelSource). */
  sha256: string;
  /** The make target the config starts from (tinyconfig). */
  base: string;
  /** Repo-relative fragments merged in order before the arch fragment. */
  fragments: string[];
  /** Where the pin came from, for "how to change it" hints. */
  pinnedIn: string;
}

const SHA_RE = /^[0-9a-f]{64}$/;

/** Read source.yaml, applying the CLAWOS_KERNEL_SOURCE/CLAWOS_KERNEL_SHA256 override. Throws UserError. */
export async function loadKernelSourceConfig(
  repoRoot: string,
  env: Record<string, string | undefined> = process.env,
  /** Repo-relative; the kernel-build step's `source:` parameter. */
  file: string = SOURCE_YAML,
): Promise<KernelSourceConfig> {
  let text: string;
  try {
    text = await readFile(join(repoRoot, file), 'utf8');
  } catch {
    throw new UserError(`${file} not found in ${repoRoot}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new UserError(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UserError(`${file}: expected a mapping`);
  const d = doc as Record<string, unknown>;
  const known = new Set(['deb', 'member', 'tarball', 'url', 'sha256', 'base', 'fragments']);
  for (const k of Object.keys(d)) if (!known.has(k)) throw new UserError(`${file}: unknown key '${k}'`);
  const str = (k: string): string | undefined => {
    const v = d[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') throw new UserError(`${file}: '${k}' must be a non-empty string`);
    return v;
  };
  // YAML reads an all-digit hash as a number, which has lost digits by now.
  if (typeof d['sha256'] === 'number') throw new UserError(`${file}: quote the sha256 value ("...")`);
  let tarball = str('tarball');
  let url = str('url');
  let sha256 = str('sha256')?.toLowerCase();
  const debPkg = str('deb');
  const member = str('member');
  let deb: KernelSourceConfig['deb'];
  if (debPkg !== undefined || member !== undefined) {
    if (debPkg === undefined || member === undefined) throw new UserError(`${file}: 'deb' and 'member' go together (the package and the tarball inside it)`);
    // The lock pins the package and the tarball's sha256: one pin, in one place.
    if (sha256 !== undefined) throw new UserError(`${file}: with 'deb', the tarball's sha256 is pinned in inputs.lock.yaml (files:), not here`);
    deb = { package: debPkg, member: member.replace(/^\/+/, '') };
  }
  const base = str('base') ?? 'tinyconfig';
  const fragments = d['fragments'] ?? [];
  if (!Array.isArray(fragments) || !fragments.every((f) => typeof f === 'string' && f !== '')) {
    throw new UserError(`${file}: 'fragments' must be a list of repo-relative paths`);
  }
  let pinnedIn = file;

  const envSrc = env['CLAWOS_KERNEL_SOURCE'] || undefined;
  const envSha = env['CLAWOS_KERNEL_SHA256'] || undefined;
  if (envSrc !== undefined || envSha !== undefined) {
    // Both or neither: a source without its pin would build whatever it finds.
    if (envSrc === undefined || envSha === undefined) {
      throw new UserError('CLAWOS_KERNEL_SOURCE and CLAWOS_KERNEL_SHA256 must be set together');
    }
    tarball = url = undefined;
    deb = undefined;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(envSrc)) url = envSrc;
    else tarball = envSrc;
    sha256 = envSha.toLowerCase();
    pinnedIn = 'CLAWOS_KERNEL_SHA256';
  }
  if ([deb, tarball, url].filter((x) => x !== undefined).length !== 1) {
    throw new UserError(`${file}: give exactly one of 'deb' (with 'member'), 'tarball' and 'url'`);
  }
  if (deb) return { deb, sha256: '', base, fragments: fragments as string[], pinnedIn: 'inputs.lock.yaml' };
  if (!sha256 || !SHA_RE.test(sha256)) throw new UserError(`${pinnedIn}: 'sha256' must be 64 hex digits`);
  if (tarball !== undefined && !isAbsolute(tarball)) tarball = resolve(repoRoot, tarball);
  return { tarball, url, sha256, base, fragments: fragments as string[], pinnedIn };
}

export interface SourceContext extends DebContext {
  signal?: AbortSignal;
  /** The target arch (which Debian architecture's lock entry serves; the source package is arch: all). */
  arch: ArchSpec;
}

export type PreparedSource =
  | { ok: true; srcDir: string; tarball: string; sha256: string; extracted: boolean }
  | { ok: false; outcome: Outcome };

/** Directory name of an extracted tree in <cacheDir>/src. */
export function extractedDirName(sha256: string): string {
  return `linux-${sha256.slice(0, 16)}`;
}

/**
 * Verify the pinned tarball (downloading a URL first), then extract it once
 * into <cacheDir>/src/linux-<sha16>/. Extraction goes to a temp dir that is
 * renamed into place, so a half-extracted tree is never seen.
 */
export async function prepareKernelSource(cfg: KernelSourceConfig, ctx: SourceContext): Promise<PreparedSource> {
  let tarball: string;
  if (cfg.deb) {
    // Fetched by the lock: the host's copy serves only when its sha256 is the locked one.
    const got = await lockedFile(ctx, ctx.arch, cfg.deb.package, cfg.deb.member);
    ctx.log(`kernel source: ${got.path} (${got.from === 'host' ? 'the host copy matches the lock' : 'from the locked package'}), sha256 ${got.sha256}`);
    cfg = { ...cfg, sha256: got.sha256 };
    tarball = got.path;
  } else if (cfg.url !== undefined) {
    const got = await download(cfg.url, cfg.sha256, ctx);
    if (!got.ok) return got;
    tarball = got.path;
  } else {
    tarball = cfg.tarball!;
  }
  if (!existsSync(tarball)) {
    return {
      ok: false,
      outcome: infra(
        `kernel source ${tarball} not found (pinned in ${cfg.pinnedIn}); put the tarball there or name another one in ${cfg.pinnedIn}`,
      ),
    };
  }
  const actual = await sha256File(tarball);
  if (actual !== cfg.sha256) return { ok: false, outcome: mismatch(tarball, cfg, actual) };

  const srcRoot = join(ctx.cacheDir, 'src');
  const final = join(srcRoot, extractedDirName(cfg.sha256));
  if (existsSync(final)) return { ok: true, srcDir: final, tarball, sha256: actual, extracted: false };
  await mkdir(srcRoot, { recursive: true });
  const tmp = await mkdtemp(join(srcRoot, `.${extractedDirName(cfg.sha256)}.tmp-`));
  try {
    const r = await ctx.run(['tar', '-xf', tarball, '-C', tmp], { signal: ctx.signal, tailLines: 20 });
    if (!r.ok) {
      return {
        ok: false,
        outcome: fail('exit-non-zero', `extracting ${tarball} failed (exit ${r.exitCode ?? r.signal}):\n${r.tail.join('\n')}`),
      };
    }
    const top = await readdir(tmp);
    const only = top[0];
    if (top.length !== 1 || only === undefined || !(await stat(join(tmp, only))).isDirectory()) {
      return {
        ok: false,
        outcome: fail(
          'source-mismatch',
          `${tarball}: expected one top-level directory, found ${top.length === 0 ? 'none' : top.sort().join(', ')}`,
        ),
      };
    }
    try {
      await rename(join(tmp, only), final);
      ctx.log(`kernel source extracted to ${final}`);
    } catch (err) {
      // Another instance (the other arch) finished first: its tree is as good as ours.
      const code = (err as NodeJS.ErrnoException).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(final))) throw err;
    }
    return { ok: true, srcDir: final, tarball, sha256: actual, extracted: true };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

function mismatch(file: string, cfg: KernelSourceConfig, actual: string): Outcome {
  const how =
    cfg.pinnedIn !== 'CLAWOS_KERNEL_SHA256'
      ? `if this is the source you want, set sha256: ${actual} in ${cfg.pinnedIn}`
      : `if this is the source you want, set CLAWOS_KERNEL_SHA256=${actual}`;
  return fail('source-mismatch', `kernel source ${file}: sha256 mismatch: expected ${cfg.sha256}, actual ${actual}; ${how}`, {
    data: { file, expected: cfg.sha256, actual },
  });
}

/** Download into <cacheDir>/downloads/<sha256>-<name>; a verified file there is reused. */
async function download(
  url: string,
  sha256: string,
  ctx: SourceContext,
): Promise<{ ok: true; path: string } | { ok: false; outcome: Outcome }> {
  const dir = join(ctx.cacheDir, 'downloads');
  await mkdir(dir, { recursive: true });
  const name = basename(new URL(url).pathname) || 'kernel-source.tar';
  const dest = join(dir, `${sha256.slice(0, 16)}-${name}`);
  if (existsSync(dest) && (await sha256File(dest)) === sha256) return { ok: true, path: dest };
  const part = `${dest}.${process.pid}.part`;
  try {
    if (url.startsWith('file:')) {
      await copyFile(fileURLToPath(url), part);
    } else {
      ctx.log(`downloading ${url}`);
      const res = await fetch(url, { signal: ctx.signal });
      if (!res.ok || !res.body) {
        return { ok: false, outcome: infra(`downloading ${url} failed: HTTP ${res.status} ${res.statusText}`) };
      }
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(part));
    }
    // Renamed into place before verification; the caller verifies and fails closed.
    await rename(part, dest);
    return { ok: true, path: dest };
  } catch (err) {
    return { ok: false, outcome: infra(`downloading ${url} failed: ${err instanceof Error ? err.message : String(err)}`) };
  } finally {
    await rm(part, { force: true });
  }
}

/**
 * The source config with its pin filled in from the lock (deb: mode): sha256 of
 * the tarball and `tarball` as the member's host path, for the readers that
 * name the tarball (the Buildroot tree's linux.hash, doctor, the bundle).
 */
export async function loadPinnedKernelSource(repoRoot: string, env: Record<string, string | undefined> = process.env, file: string = SOURCE_YAML): Promise<KernelSourceConfig> {
  const cfg = await loadKernelSourceConfig(repoRoot, env, file);
  if (!cfg.deb) return cfg;
  const loaded = await loadLock(repoRoot);
  const d = loaded.lock.debs.find((x) => x.name === cfg.deb!.package);
  const sha = d?.files?.[cfg.deb.member];
  if (!d || !sha) throw new UserError(`${loaded.file}: ${cfg.deb.package} with files: ${cfg.deb.member} is not locked (${file} names it); run \`clawos-build lock --update ${cfg.deb.package}\``);
  return { ...cfg, sha256: sha, tarball: `/${cfg.deb.member}` };
}
