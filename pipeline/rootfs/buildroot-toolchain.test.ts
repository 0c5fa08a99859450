import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fakeAptCtx, lockFor, makeDeb } from '../../test/helpers/debs-fixtures.js';
import { assembleToolchain } from './buildroot-toolchain.js';
import type { ToolchainSpec } from './buildroot-offline.js';

const T = 'x86_64-linux-gnu';
const spec: ToolchainSpec = {
  triplet: T,
  gcc_version: '12',
  host_arch: 'amd64',
  gcc_lib_dir: `usr/lib/gcc/${T}/12`,
  compiler_debs: ['gcc-12', 'binutils-x86-64-linux-gnu'],
  sysroot_debs: ['libc6-dev'],
};
const BINUTILS = ['ar', 'as', 'ld', 'ld.bfd', 'nm', 'objcopy', 'objdump', 'ranlib', 'readelf', 'size', 'strings', 'strip', 'addr2line', 'c++filt', 'elfedit'];

/** Tiny debs laid out as Debian's: gcc (with runtime files Buildroot refuses), binutils, a libc with ld.so.conf.d. */
async function debs(d: string): Promise<Record<string, string>> {
  const lib = `usr/lib/gcc/${T}/12`;
  const gcc = await makeDeb(d, 'gcc-12', '12.2.0-14', {
    [`usr/bin/${T}-gcc-12`]: 'gcc',
    [`usr/bin/${T}-cpp-12`]: 'cpp',
    [`usr/bin/${T}-gcc-ar-12`]: 'ar',
    [`usr/bin/${T}-gcc-nm-12`]: 'nm',
    [`usr/bin/${T}-gcc-ranlib-12`]: 'ranlib',
    [`${lib}/cc1`]: 'cc1',
    [`${lib}/libgcc.a`]: 'libgcc',
    [`${lib}/libgomp.so`]: 'omp',
    [`${lib}/libgomp.spec`]: 'omp',
    [`${lib}/libstdc++.so`]: 'c++',
    [`${lib}/libasan.a`]: 'asan',
  });
  const bin = await makeDeb(d, 'binutils-x86-64-linux-gnu', '2.40-2', Object.fromEntries(BINUTILS.map((b) => [`usr/bin/${T}-${b}`, b])));
  const libc = await makeDeb(d, 'libc6-dev', '2.36-9', { 'usr/include/stdio.h': 'h', 'etc/ld.so.conf.d/x86_64-linux-gnu.conf': '/lib' });
  return { 'gcc-12:amd64': gcc, 'binutils-x86-64-linux-gnu:amd64': bin, 'libc6-dev:amd64': libc };
}

describe('the external toolchain from locked debs', () => {
  it('relocates gcc and binutils, puts the libc debs in sysroot/, wraps gcc with --sysroot, and drops what Buildroot refuses', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const ctx = fakeAptCtx(join(d, 'cache'), await debs(d));
      const dest = join(d, 'tc');
      const tc = await assembleToolchain(ctx, spec, 'amd64', dest);
      expect(tc.prefix).toBe(T);
      expect(tc.debs.map((x) => `${x.name}:${x.arch}=${x.version}`)).toEqual(['gcc-12:amd64=12.2.0-14', 'binutils-x86-64-linux-gnu:amd64=2.40-2', 'libc6-dev:amd64=2.36-9']);
      expect(await readFile(join(dest, 'bin', `${T}-gcc`), 'utf8')).toBe(
        "#!/bin/sh\n# clawos-build: Debian's tool relocated into this toolchain (pipeline/rootfs/buildroot-toolchain.ts)\n" +
          `d=$(dirname "$(readlink -f "$0")")/..\n` +
          'if [ "$#" = 1 ] && [ "$1" = -v ]; then\n' +
          `\t"$d/usr/bin/${T}-gcc-12" --sysroot="$d/sysroot" -v 2>&1 | sed "s| --with-sysroot=/ | --with-sysroot=$d/sysroot |" >&2\n` +
          '\texit 0\nfi\n' +
          `exec "$d/usr/bin/${T}-gcc-12" --sysroot="$d/sysroot" "$@"\n`,
      );
      expect(await readFile(join(dest, 'bin', `${T}-ld`), 'utf8')).not.toContain('-v');
      expect((await readdir(join(dest, 'bin'))).sort()).toEqual([...['gcc', 'cpp', 'gcc-ar', 'gcc-nm', 'gcc-ranlib'], ...BINUTILS].map((n) => `${T}-${n}`).sort());
      const lib = join(dest, spec.gcc_lib_dir);
      expect((await readdir(lib)).sort()).toEqual(['as', 'cc1', 'ld', 'libgcc.a']);
      expect(await readlink(join(lib, 'as'))).toBe(`../../../../bin/${T}-as`);
      expect(existsSync(join(dest, 'sysroot', 'usr', 'include', 'stdio.h'))).toBe(true);
      expect(existsSync(join(dest, 'sysroot', 'etc', 'ld.so.conf.d'))).toBe(false);
      // Reused while its record names the same locked debs.
      const logs = ctx.logs.length;
      await assembleToolchain(ctx, spec, 'amd64', dest);
      expect(ctx.logs.slice(logs)).toEqual([`toolchain: reusing ${dest}`]);
    } finally {
      await cleanup();
    }
  });

  it('refuses a toolchain deb that is not locked, saying how to lock it, and leaves nothing behind', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const all = await debs(d);
      const { 'libc6-dev:amd64': _, ...some } = all;
      const ctx = fakeAptCtx(join(d, 'cache'), all, [], () => lockFor(some));
      await expect(assembleToolchain(ctx, spec, 'amd64', join(d, 'tc'))).rejects.toThrow(
        'libc6-dev:amd64 (Buildroot toolchain, specs/buildroot-offline.yaml) is not locked in inputs.lock.yaml; fix: run `clawos-build lock --update libc6-dev` and commit inputs.lock.yaml',
      );
      expect(existsSync(join(d, 'tc'))).toBe(false);
    } finally {
      await cleanup();
    }
  });
});
