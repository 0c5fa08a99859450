/**
 * The Buildroot backend's external toolchain, made from locked Debian debs
 * (specs/buildroot-offline.yaml toolchain:): a relocated copy of Debian's gcc
 * and binutils, a sysroot of the target arch's libc debs, and wrappers in bin/
 * that add --sysroot. Buildroot's external-toolchain checks then pass: no
 * etc/ld.so.conf.d in the sysroot, no OpenMP/C++/itm/quadmath/atomic/sanitizer
 * runtime files, gcc-ar/nm/ranlib present. The tree is published by a rename
 * and reused while its record names the same locked debs.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeJsonAtomic } from '../../lib/atomic-write.js';
import { InfraError } from '../../lib/errors.js';
import { findLocked, LOCK_FILE, type LockedDeb } from '../catalog/input-lock.js';
import { cachedDebPath, downloadCacheDir, fetchLockedDebFile, lockOf, type DebContext } from '../inputs/debs.js';
import type { ToolchainSpec } from './buildroot-offline.js';

/** Runtime files Buildroot refuses to find in an external toolchain that does not declare them. */
const REFUSED_RUNTIME = /^lib(gomp|itm|quadmath|atomic|asan|tsan|lsan|ubsan|hwasan|stdc\+\+|supc\+\+|cc1)[._]/;
const GCC_TOOLS = ['gcc', 'cpp'];
const GCC_AUX = ['gcc-ar', 'gcc-nm', 'gcc-ranlib'];
const BINUTILS = ['ar', 'as', 'ld', 'ld.bfd', 'nm', 'objcopy', 'objdump', 'ranlib', 'readelf', 'size', 'strings', 'strip', 'addr2line', 'c++filt', 'elfedit'];

export interface Toolchain {
  /** BR2_TOOLCHAIN_EXTERNAL_PATH. */
  dir: string;
  /** BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX. */
  prefix: string;
  debs: Pick<LockedDeb, 'name' | 'arch' | 'version' | 'sha256'>[];
}

function locked(lock: Awaited<ReturnType<typeof lockOf>>, name: string, arch: string): LockedDeb {
  const d = findLocked(lock.lock, name, arch);
  if (!d) {
    const fix = `run \`clawos-build lock --update ${name}\` and commit ${LOCK_FILE}`;
    throw new InfraError(`${name}:${arch} (Buildroot toolchain, specs/buildroot-offline.yaml) is not locked in ${LOCK_FILE}; fix: ${fix}`, fix, { transient: false });
  }
  return d;
}

/**
 * A wrapper that runs the relocated tool with the toolchain's own paths (found
 * from its location). For the compiler (`sysroot`), `-v` alone reports the
 * sysroot the wrapper really uses: Debian's cross gcc says it was configured
 * --with-sysroot=/, which Buildroot rightly refuses in a toolchain used in place.
 */
export function wrapper(target: string, extra: string, sysroot = false): string {
  return [
    '#!/bin/sh',
    '# clawos-build: Debian\'s tool relocated into this toolchain (pipeline/rootfs/buildroot-toolchain.ts)',
    'd=$(dirname "$(readlink -f "$0")")/..',
    ...(sysroot
      ? [
          'if [ "$#" = 1 ] && [ "$1" = -v ]; then',
          `\t"$d/${target}"${extra ? ` ${extra}` : ''} -v 2>&1 | sed "s| --with-sysroot=/ | --with-sysroot=$d/sysroot |" >&2`,
          '\texit 0',
          'fi',
        ]
      : []),
    `exec "$d/${target}"${extra ? ` ${extra}` : ''} "$@"`,
    '',
  ].join('\n');
}

/**
 * `fallbackCache`: where a deb the shared download cache lacks is fetched to. Tasks
 * run sandboxed, with the shared cache read-only (the run prefetches into it: the
 * host arch's compiler debs are missing there only in a run without that arch).
 */
export async function assembleToolchain(ctx: DebContext, spec: ToolchainSpec, targetDebArch: string, dest: string, fallbackCache?: string): Promise<Toolchain> {
  const lock = await lockOf(ctx);
  const compiler = spec.compiler_debs.map((n) => locked(lock, n, spec.host_arch));
  const sysroot = spec.sysroot_debs.map((n) => locked(lock, n, targetDebArch));
  const debs = [...compiler, ...sysroot].map(({ name, arch, version, sha256 }) => ({ name, arch, version, sha256 }));
  const out: Toolchain = { dir: dest, prefix: spec.triplet, debs };
  const recordPath = `${dest}.json`;
  if (existsSync(dest)) {
    const rec = await readFile(recordPath, 'utf8').then((t) => JSON.parse(t) as Toolchain, () => null);
    if (rec && JSON.stringify(rec.debs) === JSON.stringify(debs) && rec.prefix === out.prefix) {
      ctx.log(`toolchain: reusing ${dest}`);
      return out;
    }
  }
  const parent = join(dest, '..');
  await mkdir(parent, { recursive: true });
  const tmp = await mkdtemp(join(parent, '.toolchain-'));
  try {
    const tc = join(tmp, 'tc');
    const shared = ctx.downloadCache ?? downloadCacheDir();
    const unpack = async (d: LockedDeb, into: string) => {
      const cache = fallbackCache && !existsSync(cachedDebPath(shared, d)) ? fallbackCache : shared;
      const deb = await fetchLockedDebFile({ ...ctx, downloadCache: cache }, d);
      const x = await ctx.run(['dpkg-deb', '-x', deb, into]);
      if (!x.ok) throw new InfraError(`dpkg-deb -x ${deb} failed: ${x.spawnError ?? x.tail.slice(-2).join(' / ')}; fix: delete ${deb} and run again`);
    };
    for (const d of compiler) await unpack(d, tc);
    for (const d of sysroot) await unpack(d, join(tc, 'sysroot'));
    await rm(join(tc, 'sysroot', 'etc', 'ld.so.conf.d'), { recursive: true, force: true });
    await rm(join(tc, 'usr', 'share'), { recursive: true, force: true });
    const lib = join(tc, spec.gcc_lib_dir);
    if (!existsSync(join(lib, 'cc1'))) {
      throw new InfraError(`toolchain: ${spec.gcc_lib_dir}/cc1 is not in ${spec.compiler_debs.join(', ')}; fix: correct gcc_lib_dir in specs/buildroot-offline.yaml`);
    }
    for (const f of await readdir(lib)) if (REFUSED_RUNTIME.test(f) || f === 'libgomp.spec') await rm(join(lib, f), { recursive: true, force: true });
    // gcc and collect2 look for as and ld beside cc1 before PATH: the relocated binutils, never the host's.
    const T = spec.triplet;
    for (const t of ['as', 'ld']) await symlink(relative(lib, join(tc, 'usr', 'bin', `${T}-${t}`)), join(lib, t));
    await mkdir(join(tc, 'bin'));
    const put = async (name: string, target: string, extra: string) => {
      if (!existsSync(join(tc, target))) throw new InfraError(`toolchain: ${target} is not in the toolchain debs (${spec.compiler_debs.join(', ')})`);
      await writeFile(join(tc, 'bin', `${T}-${name}`), wrapper(target, extra, extra.includes('--sysroot')));
      await chmod(join(tc, 'bin', `${T}-${name}`), 0o755);
    };
    for (const n of GCC_TOOLS) await put(n, `usr/bin/${T}-${n}-${spec.gcc_version}`, '--sysroot="$d/sysroot"');
    for (const n of GCC_AUX) await put(n, `usr/bin/${T}-${n}-${spec.gcc_version}`, '');
    for (const n of BINUTILS) await put(n, `usr/bin/${T}-${n}`, '');
    await rm(dest, { recursive: true, force: true });
    await rename(tc, dest);
    await writeJsonAtomic(recordPath, out);
    ctx.log(`toolchain: ${T} from ${debs.map((d) => `${d.name}:${d.arch}=${d.version}`).join(', ')} at ${dest}`);
    return out;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
