import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { appendFile, cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { sha256File, sha256Hex } from '../../lib/hash.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { loadArches, type ArchSpec } from '../catalog/arch.js';
import { fakeStepContext } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { FAKE_BUILDROOT_DIR, FAKE_BUILDROOT_PARENT } from '../../test/fakes/fake-buildroot/fake-buildroot.js';
import { buildrootStep } from './buildroot.js';

const real = repoRootDir();
const arches = await loadArches(real);
const x86 = arches.get('x86_64')!;
const arm = arches.get('aarch64')!;
const ENV = ['CLAWOS_BUILDROOT', 'CLAWOS_BUILDROOT_SHA256', 'FAKE_BUILDROOT_FAIL', 'FAKE_BUILDROOT_DOWNLOADS'];
let saved: Record<string, string | undefined> = {};
beforeEach(() => {
  saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
  for (const k of ENV) delete process.env[k];
});
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/**
 * A repo with copies of the real buildroot-external/ and the offline spec, so tests may
 * edit them, and a build dir with what A-01 leaves for each arch (release, config, canaries)
 * and an external toolchain dir (the fake Buildroot only checks it is given).
 */
async function setup(d: string) {
  const repo = join(d, 'repo');
  const build = join(d, 'build');
  await cp(join(real, 'buildroot-external'), join(repo, 'buildroot-external'), { recursive: true });
  for (const f of ['specs/buildroot-offline.yaml', 'specs/schemas/buildroot-offline.schema.json']) await cp(join(real, f), join(repo, f));
  for (const a of ['x86_64', 'aarch64']) {
    const k = join(build, 'kernel-engineer', a);
    await mkdir(join(k, 'modules'), { recursive: true });
    await writeFile(join(k, 'kernel.release'), '6.1.192-clawos\n');
    await writeFile(join(k, 'config'), 'CONFIG_LSM="lockdown,yama,apparmor,bpf"\n');
    await writeFile(join(k, 'modules', 'clawos_canary.ko'), 'signed\n');
    await writeFile(join(k, 'modules', 'clawos_canary-unsigned.ko'), 'unsigned\n');
  }
  await mkdir(join(build, 'toolchain'), { recursive: true });
  return { repo, build };
}

function ctxFor(repo: string, build: string, arch: ArchSpec, params: Record<string, unknown>) {
  return fakeStepContext({
    repoRoot: repo,
    buildDir: build,
    arch,
    params: { kernel_dir: `kernel-engineer/${arch.name}`, toolchain_dir: 'toolchain', ...params },
    outDir: join(build, 'build-engineer', arch.name),
    jobs: 2,
  });
}

function parseDefconfigCount(text: string): number {
  return text.split('\n').filter((l) => /^BR2_\w+=|^# BR2_\w+ is not set/.test(l)).length;
}

async function defconfigLines(repo: string, name: string): Promise<number> {
  return (await readFile(join(repo, 'buildroot-external', 'configs', name), 'utf8')).split('\n').length;
}

describe('buildrootStep', () => {
  it("builds the userspace from a Buildroot dir for A-01's kernel: defconfig, savedefconfig, show-info, local.mk, make", async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const ctx = ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR });
      const o = await buildrootStep.run(ctx);
      const out = join(build, 'build-engineer', 'x86_64');
      const entries = (await readFile(join(out, 'rootfs-manifest.txt'), 'utf8')).split('\n').filter(Boolean).length;
      expect(o.message).toBe(
        `buildroot: clawos_x86_64_defconfig built: initramfs (${entries} entries) for A-01's kernel; 0 package(s) from another source than Buildroot's (buildroot-overrides.json)`,
      );
      expect(o.status).toBe('PASS');
      const obj = join(out, 'buildroot-x86_64');
      const ext = join(repo, 'buildroot-external');
      const dl = join(build, 'cache', 'buildroot-dl');
      const vars = `CLAWOS_TOOLCHAIN_DIR=${join(build, 'toolchain')} CLAWOS_KERNEL_DIR=${join(build, 'kernel-engineer', 'x86_64')}`;
      const makes = ctx.logs.filter((l) => l.startsWith('$ env SOURCE_DATE_EPOCH='));
      const env = '$ env SOURCE_DATE_EPOCH=1700000000 FORCE_UNSAFE_CONFIGURE=1';
      expect(makes).toEqual([
        `${env} make -C ${FAKE_BUILDROOT_DIR} O=${obj} BR2_EXTERNAL=${ext} ${vars} clawos_x86_64_defconfig`,
        expect.stringMatching(new RegExp(`^\\$ env SOURCE_DATE_EPOCH=1700000000 FORCE_UNSAFE_CONFIGURE=1 make -C \\S+ O=${obj} BR2_EXTERNAL=${ext} ${vars} BR2_DEFCONFIG=${obj}/\\.savedefconfig-\\w+/defconfig savedefconfig$`)),
        `${env} make -C ${FAKE_BUILDROOT_DIR} O=${obj} BR2_EXTERNAL=${ext} ${vars} -s show-info`,
        `${env} make -C ${FAKE_BUILDROOT_DIR} O=${obj} BR2_EXTERNAL=${ext} ${vars} BR2_DL_DIR=${dl} BR2_JLEVEL=2`,
      ]);
      expect(ctx.progressLines).toEqual(expect.arrayContaining(['busybox 1.36.1: Building', 'Finalizing target directory']));
      const n = parseDefconfigCount(await readFile(join(ext, 'configs', 'clawos_x86_64_defconfig'), 'utf8'));
      expect(ctx.logs).toContain(`buildroot: all ${n} symbols of buildroot-external/configs/clawos_x86_64_defconfig kept`);
      // local.mk: the host tool in place of host-fakeroot, whatever show-info lists.
      expect(await readFile(join(obj, 'local.mk'), 'utf8')).toContain('HOST_FAKEROOT_OVERRIDE_SRCDIR = ' + join(obj, 'clawos-empty-src'));

      expect((await readdir(out)).sort()).toEqual(['buildroot-overrides.json', 'buildroot-x86_64', 'buildroot.config', 'initramfs.cpio.gz', 'rootfs-manifest.txt']);
      const man = await readFile(join(out, 'rootfs-manifest.txt'), 'utf8');
      const init = await readFile(join(real, 'buildroot-external', 'board', 'clawos', 'rootfs-overlay', 'init'));
      expect(man).toContain(`100755 0 0 ${init.length} ${await sha256File(join(real, 'buildroot-external/board/clawos/rootfs-overlay/init'))} /init\n`);
      expect(man).toContain(`100644 0 0 7 ${sha256Hex('signed\n')} /lib/modules/clawos_canary.ko\n`);
      expect(man).toContain(`100644 0 0 9 ${sha256Hex('unsigned\n')} /lib/modules/clawos_canary-unsigned.ko\n`);
      expect(man).toContain('/etc/clawos/expect.env\n');
      expect(man).not.toContain('/linuxrc');
      expect(JSON.parse(await readFile(join(out, 'buildroot-overrides.json'), 'utf8'))).toEqual({
        buildroot: FAKE_BUILDROOT_DIR,
        buildrootSha256: null,
        packages: [],
        findings: [],
      });
      expect(o.evidence).toEqual([
        { label: 'initramfs', path: 'build-engineer/x86_64/initramfs.cpio.gz', sha256: await sha256File(join(out, 'initramfs.cpio.gz')) },
        { label: 'rootfs manifest', path: 'build-engineer/x86_64/rootfs-manifest.txt', sha256: await sha256File(join(out, 'rootfs-manifest.txt')) },
        { label: 'buildroot .config', path: 'build-engineer/x86_64/buildroot.config', sha256: await sha256File(join(out, 'buildroot.config')) },
        { label: 'buildroot overrides', path: 'build-engineer/x86_64/buildroot-overrides.json', sha256: await sha256File(join(out, 'buildroot-overrides.json')) },
      ]);
    } finally {
      await cleanup();
    }
  });

  it('stops before building when a package would download, naming it and what to do (INFRA_ERROR input-missing: never retried), and when A-01 has not run', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      process.env['FAKE_BUILDROOT_DOWNLOADS'] = 'host-zstd:1.5.7:zstd-1.5.7.tar.gz';
      const ctx = ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR });
      const o = await buildrootStep.run(ctx);
      expect(o).toMatchObject({ status: 'INFRA_ERROR', reason: 'input-missing' });
      expect(o.message).toBe(
        'buildroot: 1 package(s) would be downloaded, and this build is offline: host-zstd 1.5.7 (zstd-1.5.7.tar.gz); ' +
          'fix: map each to a Debian source package in specs/buildroot-offline.yaml sources (then `clawos-build lock --update NAME`) ' +
          'or to a host tool under host_tools, or turn it off in the defconfig',
      );
      expect(ctx.logs.some((l) => l.includes('BR2_DL_DIR='))).toBe(false);
      expect(existsSync(join(build, 'build-engineer', 'x86_64', 'initramfs.cpio.gz'))).toBe(false);

      // A source package that is not locked: named, with the command that locks it.
      process.env['FAKE_BUILDROOT_DOWNLOADS'] = 'host-tar:1.35:tar-1.35.cpio.gz';
      const c2 = ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR });
      c2.lock = async () => ({ lock: { lock_version: 1, distribution: 'd', debs: [], source_packages: [], host_tools: {} }, sha256: 'x', file: 'inputs.lock.yaml' });
      const o2 = await buildrootStep.run(c2);
      expect(o2).toMatchObject({ status: 'INFRA_ERROR' });
      expect(o2.message).toBe(
        'buildroot: Debian source package tar is not locked in inputs.lock.yaml (source_packages); fix: run `clawos-build lock --update tar` and commit inputs.lock.yaml',
      );
      expect(existsSync(join(build, 'build-engineer', 'x86_64', 'initramfs.cpio.gz'))).toBe(false);

      await rm(join(build, 'kernel-engineer', 'x86_64', 'kernel.release'));
      const o3 = await buildrootStep.run(ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR }));
      expect(o3).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'buildroot: kernel-engineer/x86_64/kernel.release does not exist (has A-01 run for x86_64?)' });
    } finally {
      await cleanup();
    }
  });

  it('builds from a verified tarball named by CLAWOS_BUILDROOT, extracted once (aarch64)', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const tarball = join(d, 'buildroot-2026.08-rc1.tar.gz');
      expect((await run(['tar', '-czf', tarball, '-C', FAKE_BUILDROOT_PARENT, 'buildroot-fake'])).ok).toBe(true);
      const sha = await sha256File(tarball);
      process.env['CLAWOS_BUILDROOT'] = tarball;
      process.env['CLAWOS_BUILDROOT_SHA256'] = sha;
      const ctx = ctxFor(repo, build, arm, {});
      const o = await buildrootStep.run(ctx);
      expect(o.message).toMatch(/^buildroot: clawos_aarch64_defconfig built: initramfs \(\d+ entries\) for A-01's kernel; 0 package/);
      expect(o.status).toBe('PASS');
      const src = join(build, 'cache', 'buildroot', `src-${sha.slice(0, 16)}`);
      expect(existsSync(join(src, 'Makefile'))).toBe(true);
      expect(ctx.logs).toContain(`buildroot: ${tarball} extracted to ${src}`);
      expect(o.data).toMatchObject({ buildroot: tarball, buildrootSha256: sha, defconfig: 'buildroot-external/configs/clawos_aarch64_defconfig' });
    } finally {
      await cleanup();
    }
  });

  it('fails config-dropped, naming each symbol Buildroot dropped from our defconfig', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const file = join(repo, 'buildroot-external', 'configs', 'clawos_aarch64_defconfig');
      const n = await defconfigLines(repo, 'clawos_aarch64_defconfig');
      await appendFile(file, 'BR2_PACKAGE_FAKE_NEEDS_GLIBC=y\nBR2_PACKAGE_FAKE_NEEDS_KERNEL=y\n');
      const ctx = ctxFor(repo, build, arm, { buildroot: FAKE_BUILDROOT_DIR });
      const o = await buildrootStep.run(ctx);
      expect(o.status).toBe('FAIL');
      expect(o.reason).toBe('config-dropped');
      expect(o.message).toBe(
        `buildroot: 2 symbol(s) of buildroot-external/configs/clawos_aarch64_defconfig dropped by Buildroot's Kconfig: ` +
          `BR2_PACKAGE_FAKE_NEEDS_GLIBC: requested y (buildroot-external/configs/clawos_aarch64_defconfig:${n}), final not set; ` +
          `BR2_PACKAGE_FAKE_NEEDS_KERNEL: requested y (buildroot-external/configs/clawos_aarch64_defconfig:${n + 1}), final not set`,
      );
      // Nothing was built.
      expect(ctx.logs.some((l) => l.includes('BR2_DL_DIR='))).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it('fails a package step with the package, the step and the error lines', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      process.env['FAKE_BUILDROOT_FAIL'] = 'busybox:Building';
      const ctx = ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR });
      const o = await buildrootStep.run(ctx);
      const obj = join(build, 'build-engineer', 'x86_64', 'buildroot-x86_64');
      expect(o.status).toBe('FAIL');
      expect(o.reason).toBe('exit-non-zero');
      expect(o.message).toBe(
        `buildroot: busybox 1.36.1: Building failed (exit 2): busybox/src/main.c:42:7: error: 'clawos' undeclared (first use in this function)` +
          ` | make[1]: *** [package/pkg-generic.mk:283: ${obj}/build/busybox-1.36.1/.stamp_built] Error 1` +
          ` | make: *** [Makefile:82: _all] Error 2 | make: *** [Makefile:7: all] Error 2`,
      );
      expect(o.data).toMatchObject({ package: 'busybox', version: '1.36.1', step: 'Building' });
      expect(existsSync(join(build, 'build-engineer', 'x86_64', 'initramfs.cpio.gz'))).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it('fails closed on a tarball sha256 mismatch, naming both hashes and extracting nothing', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const tarball = join(d, 'buildroot-2026.08-rc1.tar.gz');
      expect((await run(['tar', '-czf', tarball, '-C', FAKE_BUILDROOT_PARENT, 'buildroot-fake'])).ok).toBe(true);
      const actual = await sha256File(tarball);
      const fix =
        'fix: give the Buildroot tarball whose sha256 is pinned (specs/buildroot-offline.yaml buildroot.sha256, or --buildroot-sha256 for another release you have checked)';
      const pinned = '0'.repeat(64);
      const ctx = ctxFor(repo, build, x86, { buildroot: tarball, buildroot_sha256: pinned });
      const o = await buildrootStep.run(ctx);
      expect(o.status).toBe('INFRA_ERROR');
      expect(o.message).toBe(`buildroot: ${tarball} has sha256 ${actual}, but ${pinned} is pinned: refusing to extract it; ${fix}`);
      expect(existsSync(join(build, 'cache', 'buildroot'))).toBe(false);
      expect(ctx.logs.some((l) => l.startsWith('$ '))).toBe(false);

      // Without --buildroot-sha256, the release pinned in specs/buildroot-offline.yaml.
      const unpinned = await buildrootStep.run(ctxFor(repo, build, x86, { buildroot: tarball }));
      expect(unpinned.status).toBe('INFRA_ERROR');
      expect(unpinned.message).toBe(
        `buildroot: ${tarball} has sha256 ${actual}, but ffc14c9adaa13c1ba67c14de92b925b6b031a1a7a015d125c64e11ce5728d318 is pinned: refusing to extract it; ${fix}`,
      );
      expect(existsSync(join(build, 'cache', 'buildroot'))).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it('is NOT_CONFIGURED, saying what to set, when neither the parameter nor CLAWOS_BUILDROOT is set', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const ctx = ctxFor(repo, build, x86, {});
      const o = await buildrootStep.run(ctx);
      expect(o).toEqual({
        status: 'NOT_CONFIGURED',
        reason: 'not-configured',
        message:
          "buildroot: no Buildroot given: set the step parameter 'buildroot' (clawos-build --buildroot DIR|TARBALL, plus --buildroot-sha256 SHA256 for a tarball)" +
          ' or the environment variable CLAWOS_BUILDROOT (plus CLAWOS_BUILDROOT_SHA256 for a tarball)',
      });
      expect(await stat(join(build, 'build-engineer')).catch(() => null)).toBe(null);
    } finally {
      await cleanup();
    }
  });

  it('refuses an arch without a buildroot section and a dir that is not Buildroot', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const { buildroot: _, ...bare } = x86;
      const o1 = await buildrootStep.run(ctxFor(repo, build, bare, { buildroot: FAKE_BUILDROOT_DIR }));
      expect(o1.message).toBe('buildroot: specs/arch/x86_64.yaml has no buildroot: { defconfig } section');
      const o2 = await buildrootStep.run(ctxFor(repo, build, x86, { buildroot: d }));
      expect(o2.message).toBe(`buildroot: ${d} is not a Buildroot tree (no Makefile and Config.in at its top)`);
    } finally {
      await cleanup();
    }
  });
  it('puts the generated layers into the target as the busybox backend does: extras and the P1.5 quota table', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      await cp(join(real, 'specs', 'p1', 'cgroup-quotas.yaml'), join(repo, 'specs', 'p1', 'cgroup-quotas.yaml'), { recursive: true });
      await mkdir(join(build, 'security', 'x86_64', 'seccomp'), { recursive: true });
      await writeFile(join(build, 'security', 'x86_64', 'seccomp', 'seccomp-filter.bpf'), 'BPF');
      await mkdir(join(build, 'security', 'apparmor', 'policy'), { recursive: true });
      await writeFile(join(build, 'security', 'apparmor', 'policy', 'profiles.list'), 'clawos-agent\n');
      const params = {
        buildroot: FAKE_BUILDROOT_DIR,
        cgroup_quotas: 'specs/p1/cgroup-quotas.yaml',
        extras: [
          { from: 'security/x86_64/seccomp', to: 'usr/lib/clawos/seccomp' },
          { from: 'security/apparmor/policy', to: 'etc/apparmor/clawos' },
        ],
      };
      const o = await buildrootStep.run(ctxFor(repo, build, x86, params));
      expect(o.status).toBe('PASS');
      const man = await readFile(join(build, 'build-engineer', 'x86_64', 'rootfs-manifest.txt'), 'utf8');
      expect(man).toContain(`100644 0 0 3 ${sha256Hex('BPF')} /usr/lib/clawos/seccomp/seccomp-filter.bpf\n`);
      expect(man).toContain(' /etc/apparmor/clawos/profiles.list\n');
      const quota = man.split('\n').find((l) => l.endsWith(' /etc/clawos/cgroup-quotas.env'));
      expect(quota).toBeDefined();

      const missing = await buildrootStep.run(ctxFor(repo, build, x86, { ...params, extras: [{ from: 'security/nope', to: 'x' }] }));
      expect(missing).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'buildroot: extras entry security/nope does not exist in the build dir (the task that makes it has not run?)' });
    } finally {
      await cleanup();
    }
  });
});
