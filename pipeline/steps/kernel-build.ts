/**
 * kernel-build: the ClawOS kernel for one arch, out of tree in <outDir>/obj.
 * tinyconfig + fragments -> olddefconfig -> every requested option checked ->
 * make -jN -> BTF check -> the clawos_canary module built and signed.
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, open, readFile, rm, stat, utimes } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../lib/atomic-write.js';
import { UserError } from '../../lib/errors.js';
import { sha256File } from '../../lib/hash.js';
import type { RunOptions, RunResult } from '../../lib/proc.js';
import type { ArchSpec } from '../catalog/arch.js';
import { expandArch } from '../catalog/task-spec.js';
import { kbuildCompiler, kbuildEnv } from '../kernel/build-env.js';
import { baseDirPrefixMap, ccacheMasquerade } from '../ccache/ccache-masquerade.js';
import { describeJobs, prepareKernelIcecc } from '../kernel/icecc.js';
import { checkRequested, openKconfigIndex, parseConfig, parseFragment, type ConfigRequest } from '../kernel/kconfig.js';
import { SOURCE_YAML, loadKernelSourceConfig, prepareKernelSource } from '../kernel/source.js';
import { MAKE_MODULE_SIGNING_KEY } from '../kernel/module-signing-key.js';
import { fail, infra, pass, type Evidence, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema } from '../catalog/step-params.js';

export const CANARY_DIR = 'kernel-config/modules/clawos_canary';
const CANARY = 'clawos_canary';
const SIG_MAGIC = '~Module signature appended~\n';

/** Files kernel-build leaves in ctx.outDir (besides obj/ and canary/). */
export const KERNEL_OUTPUTS = [
  'vmlinuz',
  'config',
  'kernel.release',
  'System.map',
  `modules/${CANARY}.ko`,
  `modules/${CANARY}-unsigned.ko`,
  'signing_key.x509',
  'kconfig-report.json',
  'build-info.json',
] as const;

/**
 * The version-neutral fragments every kernel-config/source*.yaml lists first. implicitInputs() is synchronous and
 * gets no repo root, so it cannot read source.yaml; a test keeps the two in step.
 */
export const COMMON_FRAGMENTS = ['kernel-config/common.config', 'kernel-config/boot.config'];

interface CommandRecord {
  phase: string;
  command: string;
  durationMs: number;
  exitCode: number | null;
}

// Kbuild's short progress lines: "  CC      mm/slub.o", "  CC [M]  /x/canary.o".
const KBUILD_LINE = /^\s{2}([A-Z][A-Z0-9_]*(?: \[M\])?)\s+(\S+)/;

/** Where the managed module-signing key is copied for the build: a path relative to the object tree, the same in every build. */
export const MANAGED_KEY_IN_OBJ = 'certs/clawos-module-signing.pem';

/**
 * pahole -j encodes BTF from several threads and (dwarves before 1.26) the type
 * order then varies between runs, so vmlinux's .BTF and with it the image differ
 * from build to build. Kbuild adds -j itself; this wrapper, given as PAHOLE=,
 * drops it. Everything else goes to the real pahole unchanged.
 */
export const PAHOLE_WRAPPER = `#!/bin/sh
# clawos-build: pahole without -j, so BTF comes out the same in every build.
for a; do
  shift
  case "$a" in -j|-j[0-9]*|--jobs|--jobs=*) ;; *) set -- "$@" "$a" ;; esac
done
exec pahole "$@"
`;

/**
 * Build paths mapped to fixed names in debug info and __FILE__, so two build
 * folders give the same objects (the unsigned module differed by 24 bytes).
 * Given to C (KCFLAGS) and to assembly (KAFLAGS): the .S files' debug line
 * info named the source tree, and through the build-id note it changed vmlinuz.
 */
export function prefixMapFlags(map: Record<string, string>): string {
  return Object.entries(map)
    .map(([from, to]) => `-ffile-prefix-map=${from}=${to}`)
    .join(' ');
}

/**
 * The image Kbuild made for this config, relative to O=: the first `image_when`
 * entry whose symbol is =y in the final .config (arm64 with CONFIG_EFI_ZBOOT:
 * the compressed EFI application vmlinuz.efi), else `kernel.image`.
 */
export function kernelImageFor(arch: ArchSpec, finalConfig: string): string {
  const on = (sym: string) => new RegExp(`^${sym}=y$`, 'm').test(finalConfig);
  return arch.kernel.image_when?.find((w) => on(w.config))?.image ?? arch.kernel.image;
}

export const kernelBuildStep: Step = {
  name: 'kernel-build',
  lockedInputs: true,
  moduleSigningKey: true,
  // The shared compiler cache (issue 17): the same kernel, byte for byte, with and without it.
  compilerCache: true,
  // 2: managed module-signing key, pahole without -j, build paths mapped away (reproducible kernels).
  // 3: the paths mapped in assembly too (KAFLAGS).
  // 4: CC=<cross>gcc -gno-record-gcc-switches: DW_AT_producer the same wherever the compiler ran (--icecream).
  version: 4,
  params: paramsSchema({ source: P.path }),
  // The kernel source is unpacked into the shared cache.
  sandbox: { cache: true },
  // --icecream: the compiles fan out to the cluster (pipeline/kernel/icecc.ts), the same bytes as here (docs/decisions.md).
  icecream: true,
  toolPackages(arch: ArchSpec | null): string[] {
    return [arch?.kernel.compiler_package ?? 'gcc', 'make', 'flex', 'bison', 'bc', 'dwarves', 'libelf-dev', 'libssl-dev', 'kmod'];
  },
  implicitInputs(arch: ArchSpec | null, params: Record<string, unknown>): string[] {
    const src = typeof params['source'] === 'string' ? params['source'] : SOURCE_YAML;
    return [src, ...COMMON_FRAGMENTS, ...(arch ? [arch.kernel.fragment] : []), CANARY_DIR];
  },
  run: runKernelBuild,
};

async function runKernelBuild(ctx: StepContext): Promise<Outcome> {
  try {
    return await buildKernel(ctx);
  } finally {
    // The private key lives in the key dir only: the copy made for this build goes, whatever happened.
    await rm(join(ctx.outDir, 'obj', MANAGED_KEY_IN_OBJ), { force: true });
  }
}

async function buildKernel(ctx: StepContext): Promise<Outcome> {
  const started = Date.now();
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'kernel-build builds for one architecture; give the task an arch');

  for (const k of Object.keys(ctx.params)) {
    if (k !== 'source') return fail('spec-invalid', `kernel-build: unknown parameter '${k}' (known: source)`);
  }
  const sourceParam = ctx.params['source'] ?? SOURCE_YAML;
  if (typeof sourceParam !== 'string') return fail('spec-invalid', "kernel-build: 'source' must be a repo-relative path");
  let cfg;
  try {
    cfg = await loadKernelSourceConfig(ctx.repoRoot, process.env, sourceParam);
  } catch (err) {
    if (err instanceof UserError) return fail('spec-invalid', err.message);
    throw err;
  }
  // {arch} in a source's fragment names its kernel-version-specific arch fragment.
  const fragments = [...cfg.fragments.map((f) => expandArch(f, arch.name)), arch.kernel.fragment];
  for (const f of [...fragments, CANARY_DIR]) {
    if (!existsSync(join(ctx.repoRoot, f))) return fail('spec-invalid', `kernel-build: ${f} not found in ${ctx.repoRoot}`);
  }

  const out = ctx.outDir;
  // A failed run must not leave the previous run's kernel looking current.
  await Promise.all(KERNEL_OUTPUTS.map((f) => rm(join(out, f), { force: true })));

  ctx.progress('source');
  const src = await prepareKernelSource(cfg, { cacheDir: ctx.cacheDir, log: ctx.log, run: ctx.run, signal: ctx.signal, arch, repoRoot: ctx.repoRoot });
  if (!src.ok) return src.outcome;
  const srcDir = src.srcDir;

  const obj = join(out, 'obj');
  await mkdir(join(obj, 'certs'), { recursive: true });
  const canary = join(out, 'canary');

  // The managed key, copied with its own mtime (a fresh mtime would relink vmlinux every time),
  // and named by a fragment of its own after the repo's: the same relative path in every build.
  const managedKey = ctx.moduleSigningKey;
  const keyFragment = join(obj, 'clawos-module-signing.config');
  const keyInObj = join(obj, MANAGED_KEY_IN_OBJ);
  if (managedKey) {
    await copyFile(managedKey, keyInObj);
    await chmod(keyInObj, 0o600);
    const st = await stat(managedKey);
    await utimes(keyInObj, st.atime, st.mtime);
    await writeFileAtomic(keyFragment, `CONFIG_MODULE_SIG_KEY="${MANAGED_KEY_IN_OBJ}"\n`);
  } else {
    await rm(keyFragment, { force: true });
    await rm(keyInObj, { force: true });
  }
  const notReproducible = managedKey
    ? null
    : `not reproducible: no module-signing key in the key dir, so the kernel made its own for this build (make one with \`${MAKE_MODULE_SIGNING_KEY}\`)`;
  if (notReproducible) ctx.log(`kernel-build: ${notReproducible}`);

  const tools = join(obj, 'clawos-tools');
  await mkdir(tools, { recursive: true });
  await writeFileAtomic(join(tools, 'pahole'), PAHOLE_WRAPPER);
  await chmod(join(tools, 'pahole'), 0o755);

  const ice = ctx.icecream
    ? await prepareKernelIcecc({ arch: arch.name, crossCompile: arch.kernel.cross_compile, cacheDir: ctx.cacheDir, obj, run: ctx.run, log: ctx.log })
    : null;
  if (ice && !ice.ok) return ice.outcome;
  const icecc = ice?.build ?? null;
  const env = { ...kbuildEnv(ctx.sourceDateEpoch), ...icecc?.clientEnv };
  const paths = { [srcDir]: '/clawos/linux', [obj]: '/clawos/obj', [canary]: '/clawos/canary' };
  // Also the relative paths ccache's base_dir makes of them; in every build, so no command depends on the cache.
  const prefixMap = prefixMapFlags({ ...paths, ...baseDirPrefixMap(paths, obj) });
  // ccache in front of the target and host gcc, Kbuild's commands unchanged (pipeline/ccache/). Not with
  // --icecream: the pair is unmeasured (docs/decisions.md).
  if (ctx.compilerCache && icecc) ctx.log('compiler cache: not used with --icecream (the compiles go to the cluster)');
  const cache = icecc ? undefined : ctx.compilerCache;
  const runEnv = cache ? { ...env, ...(await ccacheMasquerade(cache, join(tools, 'ccache'), [`${arch.kernel.cross_compile}gcc`, 'gcc'])) } : env;
  const kbuild = [
    'make',
    '-C',
    srcDir,
    `O=${obj}`,
    `ARCH=${arch.kernel.make_arch}`,
    `CROSS_COMPILE=${arch.kernel.cross_compile}`,
    `PAHOLE=${join(tools, 'pahole')}`,
    `KCFLAGS=${prefixMap}`,
    `KAFLAGS=${prefixMap}`,
    // gcc with -gno-record-gcc-switches (build-env.ts); through icecc under --icecream.
    ...(icecc?.makeVars ?? [kbuildCompiler(arch.kernel.cross_compile)]),
  ];
  const makeJobs = `-j${Math.max(1, ctx.icecream?.jobs ?? ctx.jobs)}`;
  const commands: CommandRecord[] = [];
  const buildInfo = (extra: Record<string, unknown> = {}) => ({
    arch: arch.name,
    source: { deb: cfg.deb, tarball: src.tarball, url: cfg.url, sha256: src.sha256, srcDir },
    base: cfg.base,
    fragments,
    jobs: ctx.jobs,
    sourceDateEpoch: ctx.sourceDateEpoch,
    env,
    commands,
    ...(icecc ? { icecream: icecc.record() } : {}),
    totalMs: Date.now() - started,
    ...extra,
  });

  let phase = 'configure';
  let lastProgress = 0;
  const sink: RunOptions['sink'] = (stream, line) => {
    ctx.log(stream === 'stderr' ? `! ${line}` : line);
    const m = KBUILD_LINE.exec(line);
    if (m && Date.now() - lastProgress > 1000) {
      lastProgress = Date.now();
      ctx.progress(`${phase}: ${m[1]} ${m[2]}`);
    }
  };
  const step = async (argv: string[], opts: RunOptions = {}): Promise<RunResult> => {
    const r = await ctx.run(argv, { env: runEnv, signal: ctx.signal, sink, tailLines: 200, ...opts });
    commands.push({ phase, command: r.reproducer, durationMs: r.durationMs, exitCode: r.exitCode });
    return r;
  };
  const failed = async (what: string, r: RunResult): Promise<Outcome> => {
    await writeJsonAtomic(join(out, 'build-info.json'), buildInfo({ failed: what }));
    if (r.timedOut || r.aborted) {
      return { status: 'TIMEOUT', reason: 'timeout', message: `${what} ${r.timedOut ? 'timed out' : 'was interrupted'}` };
    }
    if (r.spawnError) return infra(`${what}: ${r.spawnError}`);
    return fail('exit-non-zero', `${what} failed (exit ${r.exitCode ?? r.signal}):\n${diagnosticLines(r.tail).join('\n')}`, {
      data: { command: r.reproducer },
    });
  };

  // ---- configure
  ctx.progress('configure');
  let r = await step([...kbuild, cfg.base]);
  if (!r.ok) return failed(`make ${cfg.base}`, r);
  // merge_config.sh makes its temp files in the current directory.
  r = await step(
    [join(srcDir, 'scripts/kconfig/merge_config.sh'), '-m', '-O', obj, join(obj, '.config'), ...fragments.map((f) => join(ctx.repoRoot, f)), ...(managedKey ? [keyFragment] : [])],
    { cwd: obj },
  );
  if (!r.ok) return failed('merge_config.sh', r);
  r = await step([...kbuild, 'olddefconfig']);
  if (!r.ok) return failed('make olddefconfig', r);

  // ---- every requested option must have survived olddefconfig
  const requests: ConfigRequest[] = [];
  for (const f of fragments) requests.push(...parseFragment(await readFile(join(ctx.repoRoot, f), 'utf8'), f));
  const finalConfigText = await readFile(join(obj, '.config'), 'utf8');
  if (managedKey && !finalConfigText.includes(`CONFIG_MODULE_SIG_KEY="${MANAGED_KEY_IN_OBJ}"\n`)) {
    await writeJsonAtomic(join(out, 'build-info.json'), buildInfo({ failed: 'module-signing key' }));
    return fail('config-dropped', `CONFIG_MODULE_SIG_KEY="${MANAGED_KEY_IN_OBJ}" (the managed module-signing key) is not in the final .config: is CONFIG_MODULE_SIG=y?`);
  }
  const check = checkRequested(requests, parseConfig(finalConfigText), openKconfigIndex(srcDir, arch.kernel));
  const report = {
    arch: arch.name,
    fragments,
    symbols: check.results.map((s) => ({ ...s, symbol: `CONFIG_${s.symbol}`, at: `${s.file}:${s.line}` })),
    dropped: check.dropped,
    unknown: check.unknown,
  };
  await writeJsonAtomic(join(out, 'kconfig-report.json'), report);
  if (check.dropped.length > 0 || check.unknown.length > 0) {
    await writeJsonAtomic(join(out, 'build-info.json'), buildInfo({ failed: 'kconfig check' }));
    const n = check.dropped.length + check.unknown.length;
    const lines = [...check.dropped.map((d) => d.message), ...check.unknown.map((u) => u.message)];
    return fail(
      check.dropped.length > 0 ? 'config-dropped' : 'config-unknown-symbol',
      `${n} requested kernel option${n === 1 ? '' : 's'} not in the final .config:\n${lines.join('\n')}`,
      { data: { dropped: check.dropped, unknown: check.unknown } },
    );
  }

  // ---- compile
  phase = 'compile';
  ctx.progress('compile');
  r = await step([...kbuild, makeJobs]);
  await icecc?.takeJobs();
  if (!r.ok) return failed('make (kernel build)', r);
  const image = join(obj, kernelImageFor(arch, finalConfigText));
  for (const f of [image, join(obj, 'vmlinux'), join(obj, 'System.map')]) {
    if (!existsSync(f)) return fail('output-missing', `make succeeded but ${relative(obj, f)} is missing in ${obj}`);
  }
  r = await step([`${arch.kernel.cross_compile}readelf`, '-S', '--wide', join(obj, 'vmlinux')], { captureStdout: true });
  if (!r.ok) return failed('readelf -S vmlinux', r);
  if (!/\s\.BTF\s/.test(r.stdout)) {
    return fail('output-missing', `vmlinux has no .BTF section (CONFIG_DEBUG_INFO_BTF=y needs pahole from dwarves): ${join(obj, 'vmlinux')}`);
  }
  r = await step([...kbuild, '-s', 'kernelrelease'], { captureStdout: true });
  if (!r.ok) return failed('make kernelrelease', r);
  const release = r.stdout.split('\n').map((l) => l.trim()).filter((l) => /^\d/.test(l)).pop();
  if (!release) return fail('output-missing', `make kernelrelease printed no release:\n${r.tail.join('\n')}`);

  // ---- the canary module, built against this tree
  phase = 'modules';
  ctx.progress('modules');
  await rm(canary, { recursive: true, force: true });
  await cp(join(ctx.repoRoot, CANARY_DIR), canary, { recursive: true });
  r = await step([...kbuild, `M=${canary}`, 'modules']);
  // Where the jobs went (or why none left this machine): said once, after the last compile.
  if (icecc) ctx.log(describeJobs(await icecc.takeJobs()));
  if (!r.ok) return failed(`make M=${canary} modules`, r);
  const unsignedKo = join(canary, `${CANARY}.ko`);
  if (!existsSync(unsignedKo)) return fail('output-missing', `make M=${canary} modules built no ${CANARY}.ko`);

  // ---- sign a copy with the kernel's own key (MODULE_SIG_FORCE refuses anything else)
  phase = 'sign';
  ctx.progress('sign');
  const signFile = join(obj, 'scripts/sign-file');
  const key = managedKey ? keyInObj : join(obj, 'certs/signing_key.pem');
  const x509 = join(obj, 'certs/signing_key.x509');
  for (const f of [signFile, key, x509]) {
    if (!existsSync(f)) return fail('output-missing', `${relative(obj, f)} is missing in ${obj} (is CONFIG_MODULE_SIG=y?)`);
  }
  const signedKo = join(canary, `${CANARY}.signed.ko`);
  // The hash the kernel itself uses for module signatures (CONFIG_MODULE_SIG_HASH).
  const sigHash = /^CONFIG_MODULE_SIG_HASH="([^"]+)"$/m.exec(await readFile(join(obj, '.config'), 'utf8'))?.[1] ?? 'sha256';
  r = await step([signFile, sigHash, key, x509, unsignedKo, signedKo]);
  if (!r.ok) return failed('sign-file', r);
  if (!(await endsWith(signedKo, SIG_MAGIC))) {
    return fail('validation-failed', `${signedKo} does not end with the module signature magic after sign-file`);
  }
  if (await endsWith(unsignedKo, SIG_MAGIC)) {
    return fail('validation-failed', `${unsignedKo} is already signed; the unsigned canary must stay unsigned`);
  }

  // ---- outputs, each copied atomically
  const copies: [string, string][] = [
    [image, 'vmlinuz'],
    [join(obj, '.config'), 'config'],
    [join(obj, 'System.map'), 'System.map'],
    [signedKo, `modules/${CANARY}.ko`],
    [unsignedKo, `modules/${CANARY}-unsigned.ko`],
    [x509, 'signing_key.x509'],
  ];
  for (const [from, to] of copies) await writeFileAtomic(join(out, to), await readFile(from));
  await writeFileAtomic(join(out, 'kernel.release'), release + '\n');
  await writeJsonAtomic(
    join(out, 'build-info.json'),
    buildInfo({ kernelRelease: release, moduleSigning: managedKey ? 'managed key (key dir)' : 'made by this build', reproducible: !notReproducible }),
  );

  const evidence: Evidence[] = [];
  for (const f of ['vmlinuz', 'config', `modules/${CANARY}.ko`, 'kconfig-report.json']) {
    evidence.push({ label: f, path: relative(ctx.buildDir, join(out, f)), sha256: await sha256File(join(out, f)) });
  }
  const secs = Math.round((Date.now() - started) / 1000);
  return pass(
    `built Linux ${release} for ${arch.name}: ${check.results.length} requested options confirmed, BTF present, ${CANARY} signed ` +
      `${managedKey ? 'with the managed module-signing key' : `with a key made by this build (${notReproducible})`} (${secs} s)` +
      (icecc ? `; ${describeJobs(icecc.counts)}` : ''),
    {
      evidence,
      // Through ccache a plain rebuild gives other bytes (docs/decisions.md): `reproduce` compiles without it.
      data: { kernelRelease: release, srcDir, sha256: src.sha256, outputs: [...KERNEL_OUTPUTS], reproducible: !notReproducible && !cache, ...(icecc ? { icecream: icecc.record() } : {}) },
    },
  );
}

/** The error lines (they scroll away under -j) followed by the last lines. */
export function diagnosticLines(tail: string[], last = 15): string[] {
  const lastLines = tail.slice(-last);
  const errors = tail
    .slice(0, -last)
    .filter((l) => /\berror\b|\*\*\*|Error \d/i.test(l))
    .slice(-10);
  return [...errors, ...lastLines];
}

async function endsWith(path: string, magic: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const n = Buffer.byteLength(magic);
    if (size < n) return false;
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, size - n);
    return buf.toString('utf8') === magic;
  } finally {
    await fh.close();
  }
}

