/**
 * The compile commands of the eBPF layer (B-08): clang's bpf target for the
 * programs, the arch's gcc -static for the loader. Deterministic: source and
 * generated-header dirs are mapped to fixed names in debug info, BTF line info
 * and __FILE__, no build id, SOURCE_DATE_EPOCH and LC_ALL fixed by the caller.
 */

export const LOADER_NAME = 'clawos-ebpf';
/** e_machine of a BPF ELF object. */
export const EM_BPF = 247;

export const BPF_CLANG = 'clang-14';
export const BPF_STRIP = 'llvm-strip-14';

const prefixMaps = (srcDir: string, genDir: string) => [`-ffile-prefix-map=${srcDir}=ebpf/src`, `-ffile-prefix-map=${genDir}=ebpf/include`];

export interface BpfCompile {
  /** libbpf's __TARGET_ARCH_<x> (specs/arch ebpf.target_arch). */
  targetArch: string;
  src: string;
  out: string;
  includes: string[];
  srcDir: string;
  genDir: string;
}

/** clang -target bpf, with BTF (-g) for CO-RE; warnings are errors. */
export function bpfCompileArgv(c: BpfCompile): string[] {
  return [
    BPF_CLANG,
    '-g',
    '-O2',
    '-Wall',
    '-Werror',
    '-target',
    'bpf',
    `-D__TARGET_ARCH_${c.targetArch}`,
    ...prefixMaps(c.srcDir, c.genDir),
    ...c.includes.map((i) => `-I${i}`),
    '-c',
    c.src,
    '-o',
    c.out,
  ];
}

/** Drop DWARF, keep .BTF and .BTF.ext (libbpf's CO-RE relocations need them). */
export function bpfStripArgv(src: string, out: string): string[] {
  return [BPF_STRIP, '-g', '-o', out, src];
}

export interface LoaderCompile {
  /** {kernel.cross_compile}gcc */
  cc: string;
  src: string;
  out: string;
  includes: string[];
  /** The unpacked target-arch dev packages' library dirs: libbpf.a, libelf.a, libz.a. */
  libDirs: string[];
  srcDir: string;
  genDir: string;
}

/** Static, so the loader runs in the busybox initramfs with no shared libraries. */
export function loaderCompileArgv(c: LoaderCompile): string[] {
  return [
    c.cc,
    '-static',
    '-O2',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-Wl,--build-id=none',
    ...prefixMaps(c.srcDir, c.genDir),
    ...c.includes.map((i) => `-I${i}`),
    '-o',
    c.out,
    c.src,
    ...c.libDirs.map((l) => `-L${l}`),
    '-lbpf',
    '-lelf',
    '-lz',
  ];
}
