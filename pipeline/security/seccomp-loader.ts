/**
 * The static loader clawos-seccomp-exec, compiled for an arch from the source
 * the Buildroot package uses too (buildroot-external/package/
 * clawos-seccomp-loader/src). The compiler is the arch's kernel cross prefix
 * + gcc (specs/arch/*.yaml). Deterministic: the source dir is mapped to "."
 * in debug info and __FILE__, no build id, SOURCE_DATE_EPOCH and LC_ALL fixed,
 * so the same compiler and libc give the same bytes from any checkout path.
 */
import { dirname } from 'node:path';
import type { ArchSpec } from '../catalog/arch.js';

export const LOADER_SOURCE = 'buildroot-external/package/clawos-seccomp-loader/src/clawos-seccomp-exec.c';
export const LOADER_NAME = 'clawos-seccomp-exec';

export function loaderCompiler(arch: ArchSpec): string {
  return `${arch.kernel.cross_compile}gcc`;
}

/** Flags besides the path mapping and the files: the same in the Buildroot package's .mk. */
export const LOADER_FLAGS = ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-Wl,--build-id=none'];

/** argv of the compile. `srcAbs` is the C file, `outAbs` the binary. */
export function loaderCompileArgv(arch: ArchSpec, srcAbs: string, outAbs: string): string[] {
  return [loaderCompiler(arch), ...LOADER_FLAGS, `-ffile-prefix-map=${dirname(srcAbs)}=.`, '-o', outAbs, srcAbs];
}

/** The same command as a record that does not depend on where the checkout or build dir is. */
export function loaderCompileRecord(arch: ArchSpec, srcRel: string): string[] {
  return [loaderCompiler(arch), ...LOADER_FLAGS, '-ffile-prefix-map=<source dir>=.', '-o', LOADER_NAME, srcRel];
}

export function loaderCompileEnv(sourceDateEpoch: number): Record<string, string> {
  return { SOURCE_DATE_EPOCH: String(sourceDateEpoch), LC_ALL: 'C' };
}

/** e_machine of an ELF file's header (little- or big-endian), or null if it is not ELF. */
export function elfMachine(buf: Uint8Array): number | null {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return null;
  return b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18);
}
