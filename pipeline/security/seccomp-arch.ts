/**
 * The seccomp facts of an architecture: the `seccomp:` block of
 * specs/arch/<arch>.yaml (schema: specs/schemas/arch.schema.json). Code reads
 * these and never branches on an arch name.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ArchSpec } from '../catalog/arch.js';

/** Where the kernel tree keeps this ABI's syscall numbers, and in which format. */
export type SyscallTableSpec =
  | {
      /** arch/x86/entry/syscalls/syscall_64.tbl style: "<nr> <abi> <name> [<entry>]" rows. */
      kind: 'syscall-tbl';
      path: string;
      /** The rows' ABIs that belong to this ABI (x86_64: common and 64, not x32). */
      abis: string[];
    }
  | {
      /** include/uapi/asm-generic/unistd.h: `#define __NR_name nr` under #if blocks. */
      kind: 'asm-generic-unistd';
      path: string;
      /** The arch header including it; its `#define __ARCH_WANT_*` lines select optional syscalls. */
      arch_header: string;
      /** __BITS_PER_LONG of the ABI (picks the __NR3264_* names: newfstatat, not fstatat64). */
      bits_per_long: number;
    };

export interface SeccompArch {
  /** seccomp_data.arch of this ABI, "0x…" (AUDIT_ARCH_* in include/uapi/linux/audit.h). */
  audit_arch: string;
  /** Syscall numbers with this bit belong to another ABI on the same entry (x86's x32): refused. */
  x32_bit?: string;
  /** Byte order of struct sock_filter in the filter file (the target's). */
  byte_order: 'little' | 'big';
  /** One table, or alternatives in order: the first whose files are all in the tree (kernels move them). */
  table: SyscallTableSpec | SyscallTableSpec[];
  /** Debian packages the static loader is compiled with (part of the fingerprint). */
  loader_packages: string[];
}

/** The table's alternatives, in the order they are tried. */
export function tableAlternatives(sec: SeccompArch): SyscallTableSpec[] {
  return Array.isArray(sec.table) ? sec.table : [sec.table];
}

/** The first of the arch's table alternatives whose files are all in `tree`; undefined if none is. */
export function tableInTree(sec: SeccompArch, tree: string): SyscallTableSpec | undefined {
  return tableAlternatives(sec).find((t) => tableFiles(t).every((f) => existsSync(join(tree, f))));
}

/** The files of the kernel tree one table is read from. */
export function tableFiles(t: SyscallTableSpec): string[] {
  return [t.path, ...(t.kind === 'asm-generic-unistd' ? [t.arch_header] : [])];
}

/** The arch's seccomp block, or null when the arch has none. */
export function seccompOf(arch: ArchSpec): SeccompArch | null {
  return (arch as ArchSpec & { seccomp?: SeccompArch }).seccomp ?? null;
}

/** "0xc000003e" -> 3221225534; null if it is not a 32-bit hex number. */
export function parseHex32(s: string | undefined): number | null {
  if (s === undefined || !/^0x[0-9a-fA-F]{1,8}$/.test(s)) return null;
  return Number.parseInt(s.slice(2), 16);
}

export const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
