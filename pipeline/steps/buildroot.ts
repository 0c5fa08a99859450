/**
 * `uses: buildroot` — the Buildroot backend: Buildroot builds the userspace
 * (static busybox, /init and the checks, the seccomp loader, the policies) from
 * buildroot-external/ (BR2_EXTERNAL name CLAWOS), offline; the kernel and the
 * canary modules are task A-01's (`kernel_dir`), so a release has one kernel
 * whichever backend assembled its rootfs, and G-05 packs them into the ISO as
 * with the busybox backend. Steps:
 *   the external toolchain from locked Debian debs (rootfs/buildroot-toolchain.ts)
 *   make -C BR O=<outDir>/buildroot-<arch> BR2_EXTERNAL=… CLAWOS_…=… <defconfig>
 *   make … savedefconfig BR2_DEFCONFIG=<tmp>   -> fail if a requested symbol was dropped
 *   make … show-info                           -> every package that would download is
 *     served from a locked Debian source package or a host tool (O/local.mk), or the
 *     step stops (INFRA_ERROR) naming it
 *   make …                                     -> `>>>` lines as progress
 *
 * Outputs in ctx.outDir, named as the busybox backend names them:
 * initramfs.cpio.gz, rootfs-manifest.txt, plus buildroot.config (the final
 * .config) and buildroot-overrides.json (each package built from another source
 * than Buildroot's: version wanted, version used, Buildroot patches not applied).
 *
 * Params: buildroot (dir or tarball; env CLAWOS_BUILDROOT), buildroot_sha256
 * (for a tarball; env CLAWOS_BUILDROOT_SHA256; default: the pin in
 * specs/buildroot-offline.yaml), kernel_dir (A-01's output dir), apparmor_dir
 * (F-06's compiled policy), toolchain_dir (an external toolchain to use instead
 * of the one made from the lock), dl_dir (default <cacheDir>/buildroot-dl),
 * external (default buildroot-external), extras, cgroup_quotas.
 */
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { InfraError } from '../../lib/errors.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { configMap, describeDrop, droppedSymbols, parseDefconfig } from '../rootfs/defconfig.js';
import { readNewcGz } from '../rootfs/cpio-manifest.js';
import { locateBuildroot } from '../rootfs/locate-buildroot.js';
import { describeStep, errorLines, parseStepLine, type BuildrootStepLine } from '../rootfs/make-progress.js';
import { loadOfflineSpec, overrideFindings, planOffline, renderLocalMk, type OfflineSpec, type ShowInfoPackage } from '../rootfs/buildroot-offline.js';
import { assembleToolchain } from '../rootfs/buildroot-toolchain.js';
import { fetchSourceTree, requireLockedSource } from '../inputs/source-packages.js';
import { fail, infra, inputMissing, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError } from '../catalog/step-params.js';
import { extrasOf, manifest, QUOTA_ENV_PATH, renderQuotaEnv } from '../rootfs/rootfs-layers.js';

export const DEFAULT_EXTERNAL = 'buildroot-external';
export const BUILDROOT_ENV = 'CLAWOS_BUILDROOT';
export const BUILDROOT_SHA256_ENV = 'CLAWOS_BUILDROOT_SHA256';
/** What A-01 leaves that the rootfs takes: expect.env's release and LSMs, and the canary pair. */
const KERNEL_FILES = ['kernel.release', 'config', 'modules/clawos_canary.ko', 'modules/clawos_canary-unsigned.ko'];


/**
 * Copy by temp file + rename: an earlier output may be a read-only hard link
 * into the vault's content store, which an in-place copy would overwrite.
 */
async function copyFileAtomic(src: string, dst: string): Promise<void> {
  const tmp = `${dst}.tmp-${process.pid}`;
  await copyFile(src, tmp);
  await rename(tmp, dst);
}

function optStr(params: Record<string, unknown>, key: string): string | null {
  const v = params[key];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') throw new StepParamError(`buildroot: parameter '${key}' must be a string`);
  return v;
}

export function notConfiguredOutcome(): Outcome {
  return {
    status: 'NOT_CONFIGURED',
    reason: 'not-configured',
    message:
      `buildroot: no Buildroot given: set the step parameter 'buildroot' (clawos-build --buildroot DIR|TARBALL, ` +
      `plus --buildroot-sha256 SHA256 for a tarball) or the environment variable ${BUILDROOT_ENV} ` +
      `(plus ${BUILDROOT_SHA256_ENV} for a tarball)`,
  };
}

/** A failed make: named after the last `>>>` package step when there is one. */
function makeFailure(what: string, r: RunResult, last: BuildrootStepLine | null): Outcome {
  const why = r.spawnError ?? errorLines(r.tail).join(' | ');
  const status = r.exitCode !== null ? `exit ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
  if (r.spawnError) return infra(`buildroot: ${what} could not run: ${why}; fix: apt-get install make`);
  if (last?.pkg) {
    return fail('exit-non-zero', `buildroot: ${describeStep(last)} failed (${status}): ${why}`, {
      data: { package: last.pkg, version: last.version, step: last.step, errors: errorLines(r.tail) },
    });
  }
  return fail('exit-non-zero', `buildroot: ${what} failed (${status})${last ? ` at '${last.step}'` : ''}: ${why}`, {
    data: { step: last?.step ?? null, errors: errorLines(r.tail) },
  });
}

async function runBuildroot(ctx: StepContext): Promise<Outcome> {
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'buildroot: this step builds for one arch; the task has none');
  const brSpec = arch.buildroot;
  if (!brSpec) return fail('spec-invalid', `buildroot: specs/arch/${arch.name}.yaml has no buildroot: { defconfig } section`);

  const given = optStr(ctx.params, 'buildroot') ?? (process.env[BUILDROOT_ENV] || null);
  if (!given) return notConfiguredOutcome();
  const offline = await loadOfflineSpec(ctx.repoRoot);
  const sha = optStr(ctx.params, 'buildroot_sha256') ?? (process.env[BUILDROOT_SHA256_ENV] || null) ?? offline.buildroot.sha256;
  const brPath = isAbsolute(given) ? given : join(process.cwd(), given);
  const externalRel = optStr(ctx.params, 'external') ?? DEFAULT_EXTERNAL;
  const external = join(ctx.repoRoot, externalRel);
  const dlDir = ((p) => (p ? ctx.buildPath(p) : join(ctx.cacheDir, 'buildroot-dl')))(optStr(ctx.params, 'dl_dir'));
  const defconfigRel = `${externalRel}/configs/${brSpec.defconfig}`;
  const ourDefconfig = await readFile(join(ctx.repoRoot, defconfigRel), 'utf8').catch(() => null);
  if (ourDefconfig === null) return fail('spec-invalid', `buildroot: ${defconfigRel} (specs/arch/${arch.name}.yaml buildroot.defconfig) does not exist`);

  // A-01's kernel: its release and config for expect.env, its signed canary pair.
  const kernelRel = optStr(ctx.params, 'kernel_dir');
  if (!kernelRel) return fail('spec-invalid', "buildroot: parameter 'kernel_dir' (A-01's output dir) is required: the rootfs ships A-01's kernel and canary modules");
  const kernelDir = ctx.buildPath(kernelRel);
  for (const f of KERNEL_FILES) {
    if (!(await stat(join(kernelDir, f)).catch(() => null))) return fail('output-missing', `buildroot: ${kernelRel}/${f} does not exist (has A-01 run for ${arch.name}?)`);
  }
  const apparmorRel = optStr(ctx.params, 'apparmor_dir');

  ctx.progress(`buildroot: locating ${brPath}`);
  const located = await locateBuildroot(brPath, sha, ctx);
  if (!located.ok) return located.outcome;
  const br = located.dir;

  // The external toolchain: Debian's gcc relocated, the target's libc debs as its sysroot.
  const tcSpec = offline.toolchain[arch.name];
  let toolchainDir = ((p) => (p ? ctx.buildPath(p) : null))(optStr(ctx.params, 'toolchain_dir'));
  if (!toolchainDir) {
    if (!tcSpec) return fail('spec-invalid', `buildroot: specs/buildroot-offline.yaml has no toolchain for ${arch.name}`);
    ctx.progress('buildroot: toolchain');
    // The sandbox lets a task write only its output dir and the build's cache: what the
    // run did not prefetch into the shared download cache is fetched into the latter.
    const dest = join(ctx.cacheDir, 'buildroot-toolchain', arch.name);
    toolchainDir = (await assembleToolchain(ctx, tcSpec, arch.debian_arch, dest, join(ctx.cacheDir, 'downloads'))).dir;
  }

  const obj = join(ctx.outDir, `buildroot-${arch.name}`);
  await mkdir(obj, { recursive: true });
  await mkdir(dlDir, { recursive: true });
  const base = [
    'make',
    '-C',
    br,
    `O=${obj}`,
    `BR2_EXTERNAL=${external}`,
    `CLAWOS_TOOLCHAIN_DIR=${toolchainDir}`,
    `CLAWOS_KERNEL_DIR=${kernelDir}`,
    ...(apparmorRel ? [`CLAWOS_POLICIES_APPARMOR_DIR=${ctx.buildPath(apparmorRel)}`] : []),
  ];
  // host-tar's configure refuses root without FORCE_UNSAFE_CONFIGURE (the sandbox runs as root).
  const env: Record<string, string> = { SOURCE_DATE_EPOCH: String(ctx.sourceDateEpoch), FORCE_UNSAFE_CONFIGURE: '1' };
  let last: BuildrootStepLine | null = null;
  const sink: RunOptions['sink'] = (_stream, line) => {
    ctx.log(line);
    const s = parseStepLine(line);
    if (s) {
      last = s;
      ctx.progress(describeStep(s));
    }
  };
  const make = (args: string[], what: string, extra: Partial<RunOptions> = {}) =>
    ctx.run([...base, ...args], { env, signal: ctx.signal, sink, tailLines: 200, ...extra }).then((r) => ({ r, what }));

  // 1. The defconfig, then what Kconfig made of it.
  ctx.progress(`buildroot: ${brSpec.defconfig}`);
  let { r } = await make([brSpec.defconfig], `make ${brSpec.defconfig}`);
  if (!r.ok) return makeFailure(`make ${brSpec.defconfig}`, r, last);
  const tmp = await mkdtemp(join(obj, '.savedefconfig-'));
  let saved: string;
  try {
    const savedPath = join(tmp, 'defconfig');
    ({ r } = await make([`BR2_DEFCONFIG=${savedPath}`, 'savedefconfig'], 'make savedefconfig'));
    if (!r.ok) return makeFailure('make savedefconfig', r, last);
    const text = await readFile(savedPath, 'utf8').catch(() => null);
    if (text === null) return fail('output-missing', `buildroot: make savedefconfig wrote no ${savedPath}`);
    saved = text;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const dotConfigText = await readFile(join(obj, '.config'), 'utf8').catch(() => null);
  if (dotConfigText === null) return fail('output-missing', `buildroot: make ${brSpec.defconfig} left no ${join(obj, '.config')}`);
  const requested = parseDefconfig(ourDefconfig);
  const dropped = droppedSymbols(requested, configMap(saved), configMap(dotConfigText));
  if (dropped.length) {
    return fail(
      'config-dropped',
      `buildroot: ${dropped.length} symbol(s) of ${defconfigRel} dropped by Buildroot's Kconfig: ` +
        dropped.map((d) => describeDrop(d, defconfigRel)).join('; '),
      { data: { dropped } },
    );
  }
  ctx.log(`buildroot: all ${requested.length} symbols of ${defconfigRel} kept`);

  // 2. Offline: every package that would download comes from a locked Debian
  // source package (Debian's patches applied) or a host tool, through O/local.mk
  // (Buildroot's default BR2_PACKAGE_OVERRIDE_FILE). Anything else stops here.
  ({ r } = await make(['-s', 'show-info'], 'make show-info', { captureStdout: true }));
  if (!r.ok) return makeFailure('make show-info', r, last);
  let info: Record<string, ShowInfoPackage>;
  try {
    info = JSON.parse(r.stdout) as Record<string, ShowInfoPackage>;
  } catch (err) {
    return fail('validation-failed', `buildroot: make show-info printed no JSON: ${(err as Error).message}`);
  }
  const versions = new Map<string, string>();
  const trees = new Map<string, string>();
  let plan: Awaited<ReturnType<typeof planOffline>>;
  try {
    plan = await planOffline(info, offline, versions, br);
    if (plan.needsDownload.length) return needsDownloadOutcome(plan.needsDownload);
    for (const row of plan.rows) {
      const src = offline.sources[row.package];
      if (!src) continue;
      const locked = await requireLockedSource(ctx, src.debian);
      versions.set(src.debian, locked.version);
      ctx.progress(`buildroot: source ${src.debian} ${locked.version}`);
      // Source packages are not prefetched: fetched and unpacked in the build's cache (writable in the sandbox).
      const srcCtx = { ...ctx, downloadCache: ctx.cacheDir };
      trees.set(row.package, (await fetchSourceTree(srcCtx, locked, { autoreconf: src.autoreconf, epoch: ctx.sourceDateEpoch })).dir);
    }
    plan = await planOffline(info, offline, versions, br);
  } catch (err) {
    if (err instanceof InfraError) return (err.transient ? infra : inputMissing)(`buildroot: ${err.message}`);
    throw err;
  }
  const empty = join(obj, 'clawos-empty-src');
  await mkdir(empty, { recursive: true });
  await writeFileAtomic(join(obj, 'local.mk'), renderLocalMk(trees, offline, empty));
  for (const row of plan.rows) ctx.log(`buildroot: ${row.package}: Buildroot wants ${row.wanted}, using ${row.used}`);

  // 3. The build. The generated layers go into the target as with the busybox backend:
  // board/clawos/post-build.sh copies what CLAWOS_EXTRAS lists.
  const extras = await stageExtras(ctx, obj);
  if ('outcome' in extras) return extras.outcome;
  if (extras.lines) env.CLAWOS_EXTRAS = extras.lines;
  ctx.progress('buildroot: make');
  last = null;
  ({ r } = await make([`BR2_DL_DIR=${dlDir}`, `BR2_JLEVEL=${ctx.jobs}`], 'make'));
  if (!r.ok) return makeFailure('make', r, last);

  // 4. Collect the rootfs under the busybox backend's names (copied only after a whole build).
  const rel = (p: string) => relative(ctx.buildDir, p);
  const cpioSrc = join(obj, 'images', 'rootfs.cpio.gz');
  if (!(await stat(cpioSrc).catch(() => null))) return fail('output-missing', `buildroot: the build left no images/rootfs.cpio.gz in ${obj}`);
  const cpioDst = join(ctx.outDir, 'initramfs.cpio.gz');
  const cfgDst = join(ctx.outDir, 'buildroot.config');
  const manDst = join(ctx.outDir, 'rootfs-manifest.txt');
  const ovDst = join(ctx.outDir, 'buildroot-overrides.json');
  let man: string;
  try {
    man = manifest(readNewcGz(await readFile(cpioSrc)));
  } catch (err) {
    return fail('validation-failed', `buildroot: images/rootfs.cpio.gz is not a gzip'd newc cpio: ${(err as Error).message}`);
  }
  await copyFileAtomic(cpioSrc, cpioDst);
  await writeFileAtomic(cfgDst, dotConfigText);
  await writeFileAtomic(manDst, man);
  const overrides = { buildroot: located.tarball ?? br, buildrootSha256: located.sha256, packages: plan.rows, findings: overrideFindings(plan.rows) };
  await writeJsonAtomic(ovDst, overrides);
  const evidence: Evidence[] = [
    { label: 'initramfs', path: rel(cpioDst), sha256: await sha256File(cpioDst) },
    { label: 'rootfs manifest', path: rel(manDst), sha256: sha256Hex(man) },
    { label: 'buildroot .config', path: rel(cfgDst), sha256: sha256Hex(dotConfigText) },
    { label: 'buildroot overrides', path: rel(ovDst), sha256: await sha256File(ovDst) },
  ];
  const entries = man.split('\n').filter(Boolean).length;
  const n = plan.rows.length;
  return pass(
    `buildroot: ${brSpec.defconfig} built: initramfs (${entries} entries) for A-01's kernel; ` +
      `${n} package(s) from another source than Buildroot's (buildroot-overrides.json)`,
    {
      evidence,
      data: {
        buildroot: located.tarball ?? br,
        buildrootSha256: located.sha256,
        defconfig: defconfigRel,
        outputDir: rel(obj),
        kernelDir: kernelRel,
        toolchainDir,
        dlDir,
        requestedSymbols: requested.length,
        overrides: plan.rows,
      },
    },
  );
}

/** Packages Buildroot would download, which this offline build cannot: the step stops before building. */
export function needsDownloadOutcome(list: { package: string; version: string; files: string[] }[]): Outcome {
  return inputMissing(
    `buildroot: ${list.length} package(s) would be downloaded, and this build is offline: ` +
      list.map((p) => `${p.package} ${p.version} (${p.files.join(', ')})`).join('; ') +
      '; fix: map each to a Debian source package in specs/buildroot-offline.yaml sources (then `clawos-build lock --update NAME`) ' +
      'or to a host tool under host_tools, or turn it off in the defconfig',
    { data: { needsDownload: list } },
  );
}

/**
 * The rootfs step's `extras` and `cgroup_quotas`, as "FROM<TAB>TO" lines for
 * post-build.sh (absolute FROM; TO relative to the target root).
 */
async function stageExtras(ctx: StepContext, obj: string): Promise<{ lines: string } | { outcome: Outcome }> {
  const lines: string[] = [];
  for (const x of extrasOf(ctx.params, 'buildroot')) {
    const from = ctx.buildPath(x.from);
    if (!(await stat(from).catch(() => null))) {
      return { outcome: fail('output-missing', `buildroot: extras entry ${x.from} does not exist in the build dir (the task that makes it has not run?)`) };
    }
    lines.push(`${from}\t${x.to}`);
  }
  if (ctx.params['cgroup_quotas'] !== undefined) {
    const q = await renderQuotaEnv(ctx.repoRoot, String(ctx.params['cgroup_quotas']), 'buildroot');
    if ('problem' in q) return { outcome: fail('spec-invalid', q.problem) };
    const file = join(obj, 'clawos-extras', 'cgroup-quotas.env');
    await mkdir(dirname(file), { recursive: true });
    await writeFileAtomic(file, q.data);
    lines.push(`${file}\t${QUOTA_ENV_PATH}`);
  }
  return { lines: lines.join('\n') };
}

export const buildrootStep: Step = {
  name: 'buildroot',
  version: 3,
  params: paramsSchema({
    buildroot: P.optionalPath,
    buildroot_sha256: P.optionalPath,
    external: P.optionalPath,
    dl_dir: P.optionalPath,
    kernel_dir: P.path,
    apparmor_dir: P.optionalPath,
    toolchain_dir: P.optionalPath,
    extras: P.extras,
    cgroup_quotas: P.path,
  }),
  // Buildroot's download dir is in the shared cache.
  sandbox: { cache: true },
  // Buildroot's host requirements, the host fakeroot, and what unpacks the Debian sources.
  toolPackages: () => ['make', 'gcc', 'rsync', 'fakeroot', 'dpkg-dev', 'autoconf', 'automake', 'libtool'],
  implicitInputs: (arch, params) => [
    typeof params['external'] === 'string' ? params['external'] : DEFAULT_EXTERNAL,
    'specs/p1',
    'specs/buildroot-offline.yaml',
    'inputs.lock.yaml',
    ...(arch ? [`specs/arch/${arch.name}.yaml`] : []),
  ],
  async run(ctx) {
    try {
      return await runBuildroot(ctx);
    } catch (err) {
      if (err instanceof StepParamError) return fail('spec-invalid', err.message);
      throw err;
    }
  },
};
