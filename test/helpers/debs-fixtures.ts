/** Test helpers for steps that fetch Debian packages: a real tiny .deb and a fake apt-get. */
import { copyFile, mkdir, writeFile, chmod, stat } from 'node:fs/promises';
import { sha256File } from '../../lib/hash.js';
import type { LoadedLock, LockedDeb } from '../../pipeline/catalog/input-lock.js';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../../lib/proc.js';
import type { DebContext } from '../../pipeline/inputs/debs.js';
import type { ArchSpec } from '../../pipeline/catalog/arch.js';
import type { StepContext } from '../../pipeline/catalog/step.js';

export const testArch: ArchSpec = {
  name: 'testarch',
  debian_arch: 'arm64',
  kernel: { make_arch: 'arm64', srcarch: 'arm64', cross_compile: '', compiler_package: 'gcc', image: 'Image', fragment: 'f.config' },
  debs: ['busybox-static'],
  rootfs: { busybox: '{deb:busybox-static}/bin/busybox' },
  iso: { uki: { stub: '/x', objcopy: 'objcopy', loader: 'BOOTAA64.EFI' }, host_packages: [], console: 'ttyAMA0' },
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

/**
 * The lock a set of prepared .debs ("name:arch" -> file) stands for: each at the
 * version and sha256 of its file, as `clawos-build lock --update` would write it.
 */
export async function lockFor(debs: Record<string, string>): Promise<LoadedLock> {
  const out: LockedDeb[] = [];
  for (const [key, file] of Object.entries(debs)) {
    const [name, arch] = key.split('=')[0]!.split(':') as [string, string | undefined];
    const v = await run(['dpkg-deb', '-f', file, 'Version'], { captureStdout: true });
    out.push({ name, arch: arch ?? 'all', version: v.stdout.trim(), sha256: await sha256File(file), size: (await stat(file)).size, why: 'test' });
  }
  return { lock: { lock_version: 1, distribution: 'test', debs: out, host_tools: {} }, sha256: '0'.repeat(64), file: 'inputs.lock.yaml' };
}

/**
 * A ctx whose `apt-get download NAME:ARCH=VERSION` copies a prepared .deb into
 * its cwd when that .deb has that version (else apt's own "not found" line);
 * every other command runs for real. The lock defaults to lockFor(debs).
 */
export function fakeAptCtx(cacheDir: string, debs: Record<string, string>, calls: string[][] = [], lock?: () => Promise<LoadedLock>): DebContext & { logs: string[] } {
  const logs: string[] = [];
  let cached: Promise<LoadedLock> | undefined;
  return {
    cacheDir,
    logs,
    log: (l) => logs.push(l),
    downloadCache: join(cacheDir, 'downloads'),
    lock: lock ?? (() => (cached ??= lockFor(debs))),
    async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
      calls.push(argv);
      if (argv[0] === 'apt-get') {
        const spec = argv[2]!;
        const [nameArch, version] = spec.split('=') as [string, string | undefined];
        const name = nameArch.split(':')[0]!;
        const src = debs[spec] ?? debs[nameArch] ?? debs[`${name}:all`];
        const ok = (r: Partial<RunResult>): RunResult => ({ argv, reproducer: '', exitCode: 0, signal: null, timedOut: false, aborted: false, durationMs: 1, stdout: '', tail: [], ok: true, ...r });
        if (src) {
          const have = (await run(['dpkg-deb', '-f', src, 'Version'], { captureStdout: true })).stdout.trim();
          if (version === undefined || version === have) {
            await copyFile(src, join(opts.cwd!, src.split('/').pop()!));
            return ok({});
          }
          return ok({ exitCode: 100, ok: false, tail: [`E: Version '${version}' for '${name}' was not found`] });
        }
        return ok({ exitCode: 100, ok: false, tail: [`E: Unable to locate package ${nameArch}`] });
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
  /** The lock to fetch by (default: one that pins exactly `debs`). */
  lock?: () => Promise<LoadedLock>;
  /** Replace or wrap individual commands; return undefined to fall through. */
  intercept?: (argv: string[], opts: RunOptions) => Promise<RunResult | undefined>;
}): StepContext & { logs: string[]; calls: string[][] } {
  const calls: string[][] = [];
  const apt = fakeAptCtx(join(o.buildDir, 'cache'), o.debs, calls, o.lock);
  return {
    taskId: 'T-01',
    instanceId: o.arch ? `T-01@${o.arch.name}` : 'T-01',
    arch: o.arch,
    params: o.params,
    repoRoot: o.repoRoot,
    buildDir: o.buildDir,
    outDir: o.outDir,
    cacheDir: apt.cacheDir,
    lock: apt.lock,
    downloadCache: apt.downloadCache,
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
