/** Test helpers for steps that fetch Debian packages: a real tiny .deb and a fake apt-get. */
import { copyFile, mkdir, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../../lib/proc.js';
import type { DebContext } from '../../pipeline/inputs/debs.js';
import type { ArchSpec } from '../../pipeline/catalog/arch.js';
import type { StepContext } from '../../pipeline/catalog/step.js';

export const testArch: ArchSpec = {
  name: 'testarch',
  debian_arch: 'arm64',
  kernel: { make_arch: 'arm64', cross_compile: '', compiler_package: 'gcc', image: 'Image', fragment: 'f.config' },
  debs: ['busybox-static'],
  rootfs: { busybox: '{deb:busybox-static}/bin/busybox' },
  iso: { grub_mkrescue_args: [], grub_platform_dirs: ['/x'], host_packages: [], console: 'ttyAMA0', grub_serial: '' },
  guest: { cpu_flags: [] },
  qemu: 'qemu/x.yaml',
};

/** Build a tiny real .deb with dpkg-deb --build. */
export async function makeDeb(dir: string, pkg: string, version: string, files: Record<string, string>): Promise<string> {
  const tree = join(dir, `${pkg}-tree`);
  await mkdir(join(tree, 'DEBIAN'), { recursive: true });
  await writeFile(
    join(tree, 'DEBIAN', 'control'),
    `Package: ${pkg}\nVersion: ${version}\nArchitecture: arm64\nMaintainer: t <t@example.org>\nDescription: test\n`,
  );
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(tree, p, '..'), { recursive: true });
    await writeFile(join(tree, p), content);
    await chmod(join(tree, p), 0o755);
  }
  const deb = join(dir, `${pkg}_${version.replace(':', '%3a')}_arm64.deb`);
  const r = await run(['dpkg-deb', '--root-owner-group', '--build', tree, deb]);
  if (!r.ok) throw new Error(r.tail.join('\n'));
  return deb;
}

/** A ctx whose `apt-get download` copies prepared .debs into its cwd; every other command runs for real. */
export function fakeAptCtx(cacheDir: string, debs: Record<string, string>, calls: string[][] = []): DebContext & { logs: string[] } {
  const logs: string[] = [];
  return {
    cacheDir,
    logs,
    log: (l) => logs.push(l),
    async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
      calls.push(argv);
      if (argv[0] === 'apt-get') {
        const src = debs[argv[2]!];
        if (src) {
          await copyFile(src, join(opts.cwd!, src.split('/').pop()!));
          return { argv, reproducer: '', exitCode: 0, signal: null, timedOut: false, aborted: false, durationMs: 1, stdout: '', tail: [], ok: true };
        }
        return {
          argv,
          reproducer: '',
          exitCode: 100,
          signal: null,
          timedOut: false,
          aborted: false,
          durationMs: 1,
          stdout: '',
          tail: [`E: Unable to locate package ${argv[2]}`],
          ok: false,
        };
      }
      return run(argv, opts);
    },
  };
}


/** A StepContext for step tests: fake apt (see fakeAptCtx), real everything else. */
export function fakeStepContext(o: {
  arch: ArchSpec | null;
  repoRoot: string;
  buildDir: string;
  outDir: string;
  params: Record<string, unknown>;
  debs: Record<string, string>;
  /** Replace or wrap individual commands; return undefined to fall through. */
  intercept?: (argv: string[], opts: RunOptions) => Promise<RunResult | undefined>;
}): StepContext & { logs: string[]; calls: string[][] } {
  const calls: string[][] = [];
  const apt = fakeAptCtx(join(o.buildDir, 'cache'), o.debs, calls);
  return {
    taskId: 'T-01',
    instanceId: o.arch ? `T-01@${o.arch.name}` : 'T-01',
    arch: o.arch,
    params: o.params,
    repoRoot: o.repoRoot,
    buildDir: o.buildDir,
    outDir: o.outDir,
    cacheDir: apt.cacheDir,
    buildPath: (rel: string) => join(o.buildDir, rel),
    sourceDateEpoch: 1700000000,
    jobs: 1,
    log: apt.log,
    logs: apt.logs,
    calls,
    progress: () => {},
    async run(argv: string[], opts: RunOptions = {}) {
      const r = await o.intercept?.(argv, opts);
      if (r) {
        calls.push(argv);
        return r;
      }
      return apt.run(argv, opts);
    },
    signal: new AbortController().signal,
  };
}

/** A RunResult for a faked command. */
export function fakeResult(argv: string[], exitCode: number, tail: string[] = [], stdout = ''): RunResult {
  return { argv, reproducer: argv.join(' '), exitCode, signal: null, timedOut: false, aborted: false, durationMs: 1, stdout, tail, ok: exitCode === 0 };
}
