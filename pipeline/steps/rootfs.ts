/**
 * `uses: rootfs` — the ClawOS initramfs: the target-arch busybox-static, the
 * overlay (/init and the checks), /etc/clawos/expect.env, the kernel build's
 * canary modules and /dev/console, packed by lib/cpio.ts so the same inputs
 * give the same bytes.
 *
 * With `cgroup_quotas: specs/p1/cgroup-quotas.yaml` (P1.5, frozen by C-06) it
 * also writes /etc/clawos/cgroup-quotas.env, the quota table as the guest's
 * checks.d/cgroup-quotas.sh reads it: one line per slice.
 *
 * Outputs in ctx.outDir: initramfs.cpio.gz, rootfs-manifest.txt.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { InfraError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/atomic-write.js';
import { sha256Hex } from '../../lib/hash.js';
import { initramfs, type CpioEntry } from '../../lib/cpio.js';
import { expandArchPath, type ArchSpec } from '../catalog/arch.js';
import { formatDiagnostic, parseYaml } from '../../lib/yaml-source.js';
import { debsReferenced, fetchDebs } from '../inputs/debs.js';
import { extrasOf, manifest, QUOTA_ENV_PATH, renderQuotaEnv, shq } from '../rootfs/rootfs-layers.js';
import { fail, infra, pass, type Outcome } from '../catalog/outcome.js';
import type { Step, StepContext } from '../catalog/step.js';
import { P, paramsSchema, StepParamError, stringParam } from '../catalog/step-params.js';

export const DEFAULT_OVERLAY = 'buildroot-external/board/clawos/rootfs-overlay';
/** Kernel config fragments CONFIG_LSM is read from (later ones win) when `lsms` is not given. */
const LSM_SOURCES = (arch: ArchSpec) => ['kernel-config/common.config', arch.kernel.fragment];
const MODULES = ['clawos_canary.ko', 'clawos_canary-unsigned.ko'];
/** Mount points and the dirs `busybox --install -s` writes its applet links into. */
const BASE_DIRS: Array<[string, number]> = [
  ['bin', 0o755],
  ['dev', 0o755],
  ['etc', 0o755],
  ['etc/clawos', 0o755],
  ['lib', 0o755],
  ['lib/modules', 0o755],
  ['proc', 0o555],
  ['root', 0o700],
  ['run', 0o755],
  ['sbin', 0o755],
  // sysfs provides sys/kernel/security and sys/fs/cgroup once mounted.
  ['sys', 0o555],
  ['tmp', 0o1777],
  ['usr', 0o755],
  ['usr/bin', 0o755],
  ['usr/lib', 0o755],
  ['usr/sbin', 0o755],
];

const str = (params: Record<string, unknown>, key: string, dflt?: string): string => stringParam(params, key, 'rootfs', dflt);
/** "a/b/c" -> ["a", "a/b"]. */
function parentsOf(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

async function readOverlay(root: string, rel: string, out: Map<string, CpioEntry>): Promise<void> {
  for (const name of (await readdir(rel ? join(root, rel) : root)).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const abs = join(root, path);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) out.set(path, { type: 'symlink', path, target: await readlink(abs) });
    else if (st.isDirectory()) {
      if (!out.has(path)) out.set(path, { type: 'dir', path, mode: 0o755 });
      await readOverlay(root, path, out);
    } else if (st.isFile()) {
      // Only the executable bit survives a git checkout, so only it counts.
      out.set(path, { type: 'file', path, mode: st.mode & 0o111 ? 0o755 : 0o644, data: await readFile(abs) });
    }
  }
}

/** CONFIG_LSM="a,b,c" from the fragments, last one wins. */
async function lsmsFromConfig(repoRoot: string, files: string[]): Promise<string[] | null> {
  let found: string[] | null = null;
  for (const f of files) {
    const text = await readFile(join(repoRoot, f), 'utf8').catch(() => '');
    for (const m of text.matchAll(/^CONFIG_LSM="([^"]*)"/gm)) found = m[1]!.split(',').filter(Boolean);
  }
  return found;
}

async function runRootfs(ctx: StepContext): Promise<Outcome> {
  const arch = ctx.arch;
  if (!arch) return fail('spec-invalid', 'rootfs: this step builds for one arch; the task has none');
  const kernelDir = ctx.buildPath(str(ctx.params, 'kernel_dir'));
  const overlayRel = str(ctx.params, 'overlay', DEFAULT_OVERLAY);
  const overlay = join(ctx.repoRoot, overlayRel);

  const releasePath = join(kernelDir, 'kernel.release');
  const release = (await readFile(releasePath, 'utf8').catch(() => '')).trim();
  if (!release) {
    return fail('output-missing', `rootfs: ${relative(ctx.buildDir, releasePath)} is missing or empty: the kernel build did not record its release`);
  }
  const lsms = Array.isArray(ctx.params['lsms'])
    ? (ctx.params['lsms'] as unknown[]).map(String)
    : await lsmsFromConfig(ctx.repoRoot, LSM_SOURCES(arch));
  if (!lsms || lsms.length === 0) {
    return fail('spec-invalid', `rootfs: no CONFIG_LSM="…" in ${LSM_SOURCES(arch).join(', ')} and no 'lsms' parameter`);
  }

  ctx.progress(`fetching busybox-static:${arch.debian_arch}`);
  const debs = await fetchDebs(ctx, arch, debsReferenced([arch.rootfs.busybox]));
  const busyboxPath = expandArchPath(arch.rootfs.busybox, ctx.cacheDir, arch);
  const busybox = await readFile(busyboxPath).catch(() => null);
  if (!busybox) return infra(`rootfs: ${busyboxPath} (arch rootfs.busybox) is missing from the unpacked package`);

  ctx.progress('laying out the initramfs');
  const entries = new Map<string, CpioEntry>();
  for (const [path, mode] of BASE_DIRS) entries.set(path, { type: 'dir', path, mode });
  const overlayOk = await lstat(overlay).then((s) => s.isDirectory(), () => false);
  if (!overlayOk) return fail('spec-invalid', `rootfs: overlay ${overlayRel} is not a directory in the repository`);
  await readOverlay(overlay, '', entries);
  if (entries.get('init')?.type !== 'file') return fail('spec-invalid', `rootfs: overlay ${overlayRel} has no init file`);

  entries.set('bin/busybox', { type: 'file', path: 'bin/busybox', mode: 0o755, data: busybox });
  // The kernel opens /dev/console for init before devtmpfs is mounted.
  entries.set('dev/console', { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 });
  const env =
    [
      '# Written by clawos-build (rootfs step): what the in-guest checks expect.',
      `ARCH=${shq(arch.name)}`,
      `KERNEL_RELEASE=${shq(release)}`,
      `LSMS=${shq(lsms.join(' '))}`,
      `CPU_FLAGS=${shq(arch.guest.cpu_flags.join(' '))}`,
    ].join('\n') + '\n';
  entries.set('etc/clawos/expect.env', { type: 'file', path: 'etc/clawos/expect.env', mode: 0o644, data: Buffer.from(env) });
  if (ctx.params['cgroup_quotas'] !== undefined) {
    const q = await renderQuotaEnv(ctx.repoRoot, str(ctx.params, 'cgroup_quotas'), 'rootfs');
    if ('problem' in q) return fail('spec-invalid', q.problem);
    entries.set(QUOTA_ENV_PATH, { type: 'file', path: QUOTA_ENV_PATH, mode: 0o644, data: q.data });
  }
  const missingModules: string[] = [];
  for (const m of MODULES) {
    const data = await readFile(join(kernelDir, 'modules', m)).catch(() => null);
    // Absent modules are not fatal here: the guest's module-sig check reports them.
    if (data) entries.set(`lib/modules/${m}`, { type: 'file', path: `lib/modules/${m}`, mode: 0o644, data });
    else missingModules.push(m);
  }
  if (missingModules.length) ctx.log(`rootfs: kernel_dir has no modules/${missingModules.join(', modules/')}: module-sig will fail in the guest`);

  // Generated policies and tools from other tasks (seccomp filters, AppArmor policy …):
  // `extras: [{from: <build-relative file or dir>, to: <path in the image>}]`.
  for (const x of extrasOf(ctx.params)) {
    const from = ctx.buildPath(x.from);
    const st = await lstat(from).catch(() => null);
    if (!st) return fail('output-missing', `rootfs: extras entry ${x.from} does not exist in the build dir (the task that makes it has not run?)`);
    for (const parent of parentsOf(x.to)) if (!entries.has(parent)) entries.set(parent, { type: 'dir', path: parent, mode: 0o755 });
    if (st.isDirectory()) {
      if (!entries.has(x.to)) entries.set(x.to, { type: 'dir', path: x.to, mode: 0o755 });
      const sub = new Map<string, CpioEntry>();
      await readOverlay(from, '', sub);
      for (const e of sub.values()) entries.set(`${x.to}/${e.path}`, { ...e, path: `${x.to}/${e.path}` });
    } else {
      entries.set(x.to, { type: 'file', path: x.to, mode: st.mode & 0o111 ? 0o755 : 0o644, data: await readFile(from) });
    }
  }

  const list = [...entries.values()];
  const image = initramfs(list, ctx.sourceDateEpoch);
  const man = manifest(list);
  const imagePath = join(ctx.outDir, 'initramfs.cpio.gz');
  const manPath = join(ctx.outDir, 'rootfs-manifest.txt');
  await writeFileAtomic(imagePath, image);
  await writeFileAtomic(manPath, man);
  const rel = (p: string) => relative(ctx.buildDir, p);
  return pass(
    `rootfs: ${list.length} entries, busybox-static ${debs.map((d) => d.version).join(', ')}, kernel ${release}, ${image.length} bytes` +
      (missingModules.length ? ` (no canary modules)` : ''),
    {
      evidence: [
        { label: 'initramfs', path: rel(imagePath), sha256: sha256Hex(image) },
        { label: 'rootfs manifest', path: rel(manPath), sha256: sha256Hex(man) },
      ],
      data: {
        debs: debs.map((d) => ({ package: d.package, version: d.version, sha256: d.sha256 })),
        kernelRelease: release,
        missingModules,
      },
    },
  );
}

export const rootfsStep: Step = {
  name: 'rootfs',
  lockedInputs: true,
  version: 2,
  params: paramsSchema({ kernel_dir: P.path, overlay: P.path, cgroup_quotas: P.path, extras: P.extras, lsms: { type: 'array', items: { type: 'string' } } }, ['kernel_dir']),
  // busybox and friends come from .debs unpacked into the shared cache.
  sandbox: { cache: true },
  // busybox-static is fetched for the target arch, not a host tool: its version is in data.debs.
  toolPackages: () => [],
  implicitInputs: (arch, params) => [
    typeof params['overlay'] === 'string' ? params['overlay'] : DEFAULT_OVERLAY,
    ...(arch && !Array.isArray(params['lsms']) ? LSM_SOURCES(arch) : []),
    ...(typeof params['cgroup_quotas'] === 'string' ? [params['cgroup_quotas']] : []),
  ],
  async run(ctx) {
    try {
      return await runRootfs(ctx);
    } catch (err) {
      if (err instanceof InfraError) return infra(err.message);
      if (err instanceof StepParamError) return fail('spec-invalid', err.message);
      throw err;
    }
  },
};
