/** A StepContext for unit tests: real run(), logs and progress kept in arrays. */
import { fileURLToPath } from 'node:url';
import { join, isAbsolute } from 'node:path';
import { run } from '../../../lib/proc.js';
import type { ArchSpec } from '../../../pipeline/catalog/arch.js';
import type { StepContext } from '../../../pipeline/catalog/step.js';

/** The fake tree: pack it with `tar -cJf x.tar.xz -C FAKE_KERNEL_PARENT linux-fake`. */
export const FAKE_KERNEL_PARENT = fileURLToPath(new URL('.', import.meta.url));

export const fakeX86Arch: ArchSpec = {
  name: 'x86_64',
  debian_arch: 'amd64',
  kernel: {
    make_arch: 'x86_64',
    srcarch: 'x86',
    cross_compile: '',
    compiler_package: 'gcc',
    image: 'arch/x86/boot/bzImage',
    fragment: 'kernel-config/x86_64.config',
  },
  debs: [],
  rootfs: { busybox: '/bin/busybox' },
  iso: { uki: { stub: '/x.efi.stub', objcopy: 'objcopy', loader: 'BOOTX64.EFI' }, host_packages: [], console: 'ttyS0' },
  guest: { cpu_flags: [] },
  qemu: 'qemu/x86_64.yaml',
};

export interface FakeContext extends StepContext {
  logs: string[];
  progressLines: string[];
}

export function fakeStepContext(o: {
  repoRoot: string;
  buildDir: string;
  arch: ArchSpec | null;
  params?: Record<string, unknown>;
  jobs?: number;
  outDir?: string;
  moduleSigningKey?: string;
}): FakeContext {
  const logs: string[] = [];
  const progressLines: string[] = [];
  const controller = new AbortController();
  const outDir = o.outDir ?? join(o.buildDir, 'kernel-engineer', o.arch?.name ?? 'any');
  return {
    taskId: 'A-01',
    instanceId: o.arch ? `A-01@${o.arch.name}` : 'A-01',
    arch: o.arch,
    params: o.params ?? {},
    repoRoot: o.repoRoot,
    buildDir: o.buildDir,
    outDir,
    cacheDir: join(o.buildDir, 'cache'),
    ...(o.moduleSigningKey ? { moduleSigningKey: o.moduleSigningKey } : {}),
    buildPath: (rel: string) => (isAbsolute(rel) ? rel : join(o.buildDir, rel)),
    sourceDateEpoch: 1700000000,
    jobs: o.jobs ?? 2,
    log: (line: string) => void logs.push(line),
    progress: (m: string) => void progressLines.push(m),
    run: (argv, opts = {}) => run(argv, { sink: (_s, l) => void logs.push(l), ...opts }),
    signal: controller.signal,
    logs,
    progressLines,
  };
}
