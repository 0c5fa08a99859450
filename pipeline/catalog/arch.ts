/** Architecture definitions: data in specs/arch/<name>.yaml, schema-checked. */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadYamlDocument } from '../../lib/data.js';

export interface ArchSpec {
  name: string;
  debian_arch: string;
  kernel: {
    make_arch: string;
    /** Linux's SRCARCH for make_arch: the arch/<dir> its Kconfig and sources live in. */
    srcarch: string;
    cross_compile: string;
    compiler_package: string;
    image: string;
    /** Another image when the final .config has CONFIG symbol =y (the first match wins), e.g. arm64's EFI zboot vmlinuz.efi. */
    image_when?: { config: string; image: string }[];
    fragment: string;
  };
  debs: string[];
  rootfs: { busybox: string };
  iso: {
    /** The UEFI path: a signed Unified Kernel Image as EFI/BOOT/<loader> (pipeline/boot/uki.ts). */
    uki: { stub: string; objcopy: string; loader: string };
    /** Legacy BIOS: GRUB i386-pc core image with just these modules (absent: UEFI only). */
    bios_grub?: { dir: string; modules: string[]; serial: string };
    host_packages: string[];
    console: string;
    /** Kernel command line words after console= and panic=-1. */
    cmdline?: string[];
    /** El Torito platforms the ISO must carry, as xorriso names them in lower case: bios, uefi. */
    expect_boot?: string[];
  };
  guest: { cpu_flags: string[] };
  qemu: string;
  /** B-08: how the eBPF programs and their static loader are built (pipeline/steps/ebpf-build.ts). */
  ebpf?: {
    /** libbpf's __TARGET_ARCH_<x>: bpf_tracing.h's register names for this arch. */
    target_arch: string;
    /** Target-arch dev packages (locked) holding the loader's static libraries and headers. */
    debs: string[];
    /** Where the unpacked debs keep the static libraries, e.g. usr/lib/x86_64-linux-gnu. */
    lib_dir: string;
    /** Host packages the step runs: part of the fingerprint. */
    tool_packages: string[];
  };
  /** G-08: Debian's stock kernel booted with the same initramfs for comparison (pipeline/bench/stock-bench.ts). */
  baseline?: {
    /** The meta package naming the current versioned kernel package, e.g. linux-image-amd64. */
    kernel_package: string;
    /** The qemu/<arch>.yaml variant both kernels boot in (direct -kernel boot). */
    variant: string;
  };
  /** The Buildroot backend (pipeline/steps/buildroot.ts); absent: the arch has no Buildroot build. */
  buildroot?: {
    /** configs/<defconfig> in buildroot-external/, as `make <defconfig>` takes it. */
    defconfig: string;
  };
}

/** Where `apt-get download` + `dpkg-deb -x` unpack a target-arch package. */
export function debRoot(cacheDir: string, arch: ArchSpec, pkg: string): string {
  return join(cacheDir, 'debs', arch.debian_arch, pkg, 'root');
}

/** Expand {deb:NAME} in an arch path. */
export function expandArchPath(template: string, cacheDir: string, arch: ArchSpec): string {
  return template.replace(/\{deb:([a-z0-9][a-z0-9+.-]+)\}/g, (_, pkg: string) => debRoot(cacheDir, arch, pkg));
}

export async function loadArches(repoRoot: string): Promise<Map<string, ArchSpec>> {
  const dir = join(repoRoot, 'specs', 'arch');
  const schema = JSON.parse(await readFile(join(repoRoot, 'specs', 'schemas', 'arch.schema.json'), 'utf8'));
  const out = new Map<string, ArchSpec>();
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.yaml')).sort()) {
    const doc = await loadYamlDocument(join(dir, f), `specs/arch/${f}`, schema);
    const spec = doc as ArchSpec;
    out.set(spec.name, spec);
  }
  return out;
}
