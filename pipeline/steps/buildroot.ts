/**
 * `uses: buildroot` — the Buildroot backend: the ClawOS kernel, a musl rootfs
 * and the ISO, built by Buildroot from buildroot-external/ (BR2_EXTERNAL name
 * CLAWOS). Steps:
 *   make -C BR O=<outDir>/buildroot-<arch> BR2_EXTERNAL=… <arch.buildroot.defconfig>
 *   make … savedefconfig BR2_DEFCONFIG=<tmp>   -> fail if a requested symbol was dropped
 *   make … BR2_DL_DIR=<dl_dir>                 -> `>>>` lines as progress
 * then every requested kernel fragment symbol is checked in the final kernel
 * .config, as the kernel-build step does.
 *
 * Outputs in ctx.outDir, named as the busybox backend names them:
 * initramfs.cpio.gz, rootfs-manifest.txt, plus buildroot.config (the final
 * .config), buildroot/vmlinuz (Buildroot's kernel, which signed the rootfs's
 * modules) and buildroot/clawos-<arch>.iso (Buildroot's own image).
 *
 * Params: buildroot (dir or tarball; env CLAWOS_BUILDROOT), buildroot_sha256
 * (required for a tarball; env CLAWOS_BUILDROOT_SHA256), dl_dir (default
 * <cacheDir>/buildroot-dl), external (default buildroot-external).
 */
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import { configMap, describeDrop, droppedSymbols, parseDefconfig } from '../rootfs/defconfig.js';
import { readNewcGz } from '../rootfs/cpio-manifest.js';
import { locateBuildroot } from '../rootfs/locate-buildroot.js';
import { describeStep, errorLines, parseStepLine, type BuildrootStepLine } from '../rootfs/make-progress.js';
import { effectiveRequests, parseConfig, parseFragment } from '../kernel/kconfig.js';
import { fail, infra, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError } from '../catalog/step-params.js';
import { extrasOf, manifest, QUOTA_ENV_PATH, renderQuotaEnv } from '../rootfs/rootfs-layers.js';

export const DEFAULT_EXTERNAL = 'buildroot-external';
export const BUILDROOT_ENV = 'CLAWOS_BUILDROOT';
export const BUILDROOT_SHA256_ENV = 'CLAWOS_BUILDROOT_SHA256';
/** Buildroot's dir for a kernel from BR2_LINUX_KERNEL_CUSTOM_TARBALL. */
const LINUX_BUILD_DIR = 'build/linux-custom';
const EXTERNAL_PATH_VAR = '$(BR2_EXTERNAL_CLAWOS_PATH)';


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
  if (!brSpec) return fail('spec-invalid', `buildroot: specs/arch/${arch.name}.yaml has no buildroot: { defconfig, iso } section`);

  const given = optStr(ctx.params, 'buildroot') ?? (process.env[BUILDROOT_ENV] || null);
  if (!given) return notConfiguredOutcome();
  const sha = optStr(ctx.params, 'buildroot_sha256') ?? (process.env[BUILDROOT_SHA256_ENV] || null);
  const brPath = isAbsolute(given) ? given : join(process.cwd(), given);
  const externalRel = optStr(ctx.params, 'external') ?? DEFAULT_EXTERNAL;
  const external = join(ctx.repoRoot, externalRel);
  const dlDir = ((p) => (p ? ctx.buildPath(p) : join(ctx.cacheDir, 'buildroot-dl')))(optStr(ctx.params, 'dl_dir'));
  const defconfigRel = `${externalRel}/configs/${brSpec.defconfig}`;
  const ourDefconfig = await readFile(join(ctx.repoRoot, defconfigRel), 'utf8').catch(() => null);
  if (ourDefconfig === null) return fail('spec-invalid', `buildroot: ${defconfigRel} (specs/arch/${arch.name}.yaml buildroot.defconfig) does not exist`);

  ctx.progress(`buildroot: locating ${brPath}`);
  const located = await locateBuildroot(brPath, sha, ctx);
  if (!located.ok) return located.outcome;
  const br = located.dir;

  const obj = join(ctx.outDir, `buildroot-${arch.name}`);
  await mkdir(obj, { recursive: true });
  await mkdir(dlDir, { recursive: true });
  const base = ['make', '-C', br, `O=${obj}`, `BR2_EXTERNAL=${external}`];
  const env: Record<string, string> = { SOURCE_DATE_EPOCH: String(ctx.sourceDateEpoch) };
  let last: BuildrootStepLine | null = null;
  const sink: RunOptions['sink'] = (_stream, line) => {
    ctx.log(line);
    const s = parseStepLine(line);
    if (s) {
      last = s;
      ctx.progress(describeStep(s));
    }
  };
  const make = (args: string[], what: string) =>
    ctx.run([...base, ...args], { env, signal: ctx.signal, sink, tailLines: 200 }).then((r) => ({ r, what }));

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

  // 2. The build. The generated layers go into the target as with the busybox backend:
  // board/clawos/post-build.sh copies what CLAWOS_EXTRAS lists.
  const extras = await stageExtras(ctx, obj);
  if ('outcome' in extras) return extras.outcome;
  if (extras.lines) env.CLAWOS_EXTRAS = extras.lines;
  ctx.progress('buildroot: make');
  last = null;
  ({ r } = await make([`BR2_DL_DIR=${dlDir}`, `BR2_JLEVEL=${ctx.jobs}`], 'make'));
  if (!r.ok) return makeFailure('make', r, last);

  // 3. The kernel: every fragment symbol must be in the final .config.
  const kernelCheck = await checkKernelFragments(ctx, obj, external, configMap(dotConfigText));
  if (kernelCheck) return kernelCheck;

  // 4. Collect the images under the busybox backend's names.
  const rel = (p: string) => relative(ctx.buildDir, p);
  const cpioSrc = join(obj, 'images', 'rootfs.cpio.gz');
  const isoSrc = join(obj, brSpec.iso);
  const kernelSrc = join(obj, brSpec.kernel);
  const isoName = `clawos-${arch.name}.iso`;
  for (const p of [cpioSrc, isoSrc, kernelSrc]) {
    if (!(await readFile(p).then(() => true, () => false))) return fail('output-missing', `buildroot: the build left no ${relative(obj, p)} in ${obj}`);
  }
  // Buildroot's kernel signed the canary modules in its rootfs, so the ISO task
  // packs that kernel (buildroot/vmlinuz) with this initramfs; Buildroot's own ISO
  // is kept beside it for those who want the image exactly as Buildroot made it.
  const cpioDst = join(ctx.outDir, 'initramfs.cpio.gz');
  const isoDst = join(ctx.outDir, 'buildroot', isoName);
  const kernelDst = join(ctx.outDir, 'buildroot', 'vmlinuz');
  const cfgDst = join(ctx.outDir, 'buildroot.config');
  const manDst = join(ctx.outDir, 'rootfs-manifest.txt');
  await mkdir(join(ctx.outDir, 'buildroot'), { recursive: true });
  await copyFileAtomic(cpioSrc, cpioDst);
  await copyFileAtomic(isoSrc, isoDst);
  await copyFileAtomic(kernelSrc, kernelDst);
  await writeFileAtomic(cfgDst, dotConfigText);
  let man: string;
  try {
    man = manifest(readNewcGz(await readFile(cpioDst)));
  } catch (err) {
    return fail('validation-failed', `buildroot: images/rootfs.cpio.gz is not a gzip'd newc cpio: ${(err as Error).message}`);
  }
  await writeFileAtomic(manDst, man);
  const evidence: Evidence[] = [
    { label: 'initramfs', path: rel(cpioDst), sha256: await sha256File(cpioDst) },
    { label: 'rootfs manifest', path: rel(manDst), sha256: sha256Hex(man) },
    { label: 'iso', path: rel(isoDst), sha256: await sha256File(isoDst) },
    { label: 'kernel', path: rel(kernelDst), sha256: await sha256File(kernelDst) },
    { label: 'buildroot .config', path: rel(cfgDst), sha256: sha256Hex(dotConfigText) },
  ];
  const entries = man.split('\n').filter(Boolean).length;
  return pass(`buildroot: ${brSpec.defconfig} built: initramfs (${entries} entries), kernel and buildroot/${isoName}`, {
    evidence,
    data: {
      buildroot: located.tarball ?? br,
      buildrootSha256: located.sha256,
      defconfig: defconfigRel,
      outputDir: rel(obj),
      dlDir,
      requestedSymbols: requested.length,
    },
  });
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

/**
 * The kernel fragments named in BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES against
 * Buildroot's final kernel .config. Returns a FAIL, or null when all are kept.
 */
async function checkKernelFragments(ctx: StepContext, obj: string, external: string, brConfig: Map<string, string>): Promise<Outcome | null> {
  const files = brConfig.get('BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES');
  if (!files) return null;
  const paths = files
    .replace(/^"|"$/g, '')
    .split(/\s+/)
    .filter(Boolean)
    .map((f) => f.split(EXTERNAL_PATH_VAR).join(external));
  const requests = [];
  for (const p of paths) {
    const text = await readFile(p, 'utf8').catch(() => null);
    if (text === null) return fail('spec-invalid', `buildroot: kernel fragment ${p} (BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES) does not exist`);
    requests.push(...parseFragment(text, relative(ctx.repoRoot, p)));
  }
  const configPath = join(obj, LINUX_BUILD_DIR, '.config');
  const text = await readFile(configPath, 'utf8').catch(() => null);
  if (text === null) return fail('output-missing', `buildroot: the build left no kernel config ${relative(ctx.buildDir, configPath)}`);
  const final = parseConfig(text);
  const bad: string[] = [];
  for (const r of effectiveRequests(requests)) {
    const got = final.get(r.symbol);
    const kept = r.value === 'n' ? got === undefined || got === 'n' : got === r.value;
    if (!kept) {
      const shown = got === undefined || got === 'n' ? 'not set' : got;
      bad.push(`CONFIG_${r.symbol}: requested ${r.value === 'n' ? 'not set' : r.value} (${r.file}:${r.line}), final ${shown}`);
    }
  }
  if (bad.length) {
    return fail('config-dropped', `buildroot: ${bad.length} kernel symbol(s) dropped in ${relative(ctx.buildDir, configPath)}: ${bad.join('; ')}`, {
      data: { kernelDropped: bad },
    });
  }
  ctx.log(`buildroot: all ${effectiveRequests(requests).length} kernel fragment symbols kept`);
  return null;
}

export const buildrootStep: Step = {
  name: 'buildroot',
  version: 2,
  params: paramsSchema({ buildroot: P.optionalPath, buildroot_sha256: P.optionalPath, external: P.optionalPath, dl_dir: P.optionalPath, extras: P.extras, cgroup_quotas: P.path }),
  // Buildroot's download dir is in the shared cache.
  sandbox: { cache: true },
  // Buildroot builds its own toolchain and host tools; the host needs make and a C compiler.
  toolPackages: () => ['make', 'gcc'],
  implicitInputs: (arch, params) => [
    typeof params['external'] === 'string' ? params['external'] : DEFAULT_EXTERNAL,
    'kernel-config',
    'specs/p1',
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
