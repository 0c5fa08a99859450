import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { appendFile, cp, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
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
const ENV = ['CLAWOS_BUILDROOT', 'CLAWOS_BUILDROOT_SHA256', 'FAKE_BUILDROOT_FAIL', 'FAKE_BUILDROOT_KERNEL_DROP'];
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

/** A repo with copies of the real buildroot-external/ and kernel-config/, so tests may edit them. */
async function setup(d: string) {
  const repo = join(d, 'repo');
  await cp(join(real, 'buildroot-external'), join(repo, 'buildroot-external'), { recursive: true });
  await cp(join(real, 'kernel-config'), join(repo, 'kernel-config'), { recursive: true });
  return { repo, build: join(d, 'build') };
}

function ctxFor(repo: string, build: string, arch: ArchSpec, params: Record<string, unknown>) {
  return fakeStepContext({ repoRoot: repo, buildDir: build, arch, params, outDir: join(build, 'build-engineer', arch.name), jobs: 2 });
}

async function defconfigLines(repo: string, name: string): Promise<number> {
  return (await readFile(join(repo, 'buildroot-external', 'configs', name), 'utf8')).split('\n').length;
}

describe('buildrootStep', () => {
  it('builds from a Buildroot dir: defconfig, savedefconfig, make; collects the images under the busybox backend names', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const ctx = ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR });
      const o = await buildrootStep.run(ctx);
      const out = join(build, 'build-engineer', 'x86_64');
      const entries = (await readFile(join(out, 'rootfs-manifest.txt'), 'utf8')).split('\n').filter(Boolean).length;
      expect(o.message).toBe(`buildroot: clawos_x86_64_defconfig built: initramfs (${entries} entries), kernel and buildroot/clawos-x86_64.iso`);
      expect(o.status).toBe('PASS');
      const obj = join(out, 'buildroot-x86_64');
      const ext = join(repo, 'buildroot-external');
      const dl = join(build, 'cache', 'buildroot-dl');
      const makes = ctx.logs.filter((l) => l.startsWith('$ env SOURCE_DATE_EPOCH='));
      expect(makes).toEqual([
        `$ env SOURCE_DATE_EPOCH=1700000000 make -C ${FAKE_BUILDROOT_DIR} O=${obj} BR2_EXTERNAL=${ext} clawos_x86_64_defconfig`,
        expect.stringMatching(new RegExp(`^\\$ env SOURCE_DATE_EPOCH=1700000000 make -C \\S+ O=${obj} BR2_EXTERNAL=${ext} BR2_DEFCONFIG=${obj}/\\.savedefconfig-\\w+/defconfig savedefconfig$`)),
        `$ env SOURCE_DATE_EPOCH=1700000000 make -C ${FAKE_BUILDROOT_DIR} O=${obj} BR2_EXTERNAL=${ext} BR2_DL_DIR=${dl} BR2_JLEVEL=2`,
      ]);
      expect(ctx.logs).toContain('>>> busybox 1.36.1 Building');
      expect(ctx.progressLines).toEqual(
        expect.arrayContaining(['toolchain-buildroot: Building', 'busybox 1.36.1: Building', 'linux custom: Configuring', 'Finalizing target directory']),
      );
      // BR2_PACKAGE_BUSYBOX=y is a default savedefconfig leaves out: .config still shows it kept.
      expect(ctx.logs).toContain(`buildroot: all 46 symbols of buildroot-external/configs/clawos_x86_64_defconfig kept`);
      expect(ctx.logs.some((l) => /^buildroot: all (\d+) kernel fragment symbols kept$/.test(l) && Number(/\d+/.exec(l)![0]) >= 90)).toBe(true);
      expect(existsSync(join(dl, 'busybox', 'busybox-1.36.1.tar.bz2'))).toBe(true);

      expect((await readdir(out)).sort()).toEqual(['buildroot', 'buildroot-x86_64', 'buildroot.config', 'initramfs.cpio.gz', 'rootfs-manifest.txt']);
      expect((await readdir(join(out, 'buildroot'))).sort()).toEqual(['clawos-x86_64.iso', 'vmlinuz']);
      expect(await readFile(join(out, 'buildroot', 'clawos-x86_64.iso'), 'utf8')).toBe(`FAKE ISO9660 ${ext}/board/clawos/grub-x86_64.cfg\n`);
      expect(await readFile(join(out, 'buildroot', 'vmlinuz'), 'utf8')).toBe('FAKE bzImage\n');
      const man = await readFile(join(out, 'rootfs-manifest.txt'), 'utf8');
      const init = await readFile(join(real, 'buildroot-external', 'board', 'clawos', 'rootfs-overlay', 'init'));
      expect(man).toContain(`100755 0 0 ${init.length} ${await sha256File(join(real, 'buildroot-external/board/clawos/rootfs-overlay/init'))} /init\n`);
      expect(man).toContain('/etc/clawos/expect.env\n');
      expect(man).toContain('/lib/modules/clawos_canary-unsigned.ko\n');
      expect(man).not.toContain('/linuxrc');
      expect(o.evidence).toEqual([
        { label: 'initramfs', path: 'build-engineer/x86_64/initramfs.cpio.gz', sha256: await sha256File(join(out, 'initramfs.cpio.gz')) },
        { label: 'rootfs manifest', path: 'build-engineer/x86_64/rootfs-manifest.txt', sha256: await sha256File(join(out, 'rootfs-manifest.txt')) },
        { label: 'iso', path: 'build-engineer/x86_64/buildroot/clawos-x86_64.iso', sha256: await sha256File(join(out, 'buildroot', 'clawos-x86_64.iso')) },
        { label: 'kernel', path: 'build-engineer/x86_64/buildroot/vmlinuz', sha256: await sha256File(join(out, 'buildroot', 'vmlinuz')) },
        { label: 'buildroot .config', path: 'build-engineer/x86_64/buildroot.config', sha256: await sha256File(join(out, 'buildroot.config')) },
      ]);
    } finally {
      await cleanup();
    }
  });

  it('builds from a verified tarball named by CLAWOS_BUILDROOT, extracted once, and takes the ISO post-image made (aarch64)', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const tarball = join(d, 'buildroot-2024.11.tar.gz');
      expect((await run(['tar', '-czf', tarball, '-C', FAKE_BUILDROOT_PARENT, 'buildroot-fake'])).ok).toBe(true);
      const sha = await sha256File(tarball);
      process.env['CLAWOS_BUILDROOT'] = tarball;
      process.env['CLAWOS_BUILDROOT_SHA256'] = sha;
      const ctx = ctxFor(repo, build, arm, {});
      const o = await buildrootStep.run(ctx);
      expect(o.message).toMatch(/^buildroot: clawos_aarch64_defconfig built: initramfs \(\d+ entries\), kernel and buildroot\/clawos-aarch64\.iso$/);
      expect(o.status).toBe('PASS');
      const src = join(build, 'cache', 'buildroot', `src-${sha.slice(0, 16)}`);
      expect(existsSync(join(src, 'Makefile'))).toBe(true);
      expect(ctx.logs).toContain(`buildroot: ${tarball} extracted to ${src}`);
      expect(await readFile(join(build, 'build-engineer', 'aarch64', 'buildroot', 'clawos-aarch64.iso'), 'utf8')).toBe('FAKE UEFI ISO\n');
      expect(await readFile(join(build, 'build-engineer', 'aarch64', 'buildroot', 'vmlinuz'), 'utf8')).toBe('FAKE Image\n');
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
      await appendFile(file, 'BR2_PACKAGE_FAKE_NEEDS_GLIBC=y\nBR2_TARGET_ROOTFS_ISO9660=y\n');
      const ctx = ctxFor(repo, build, arm, { buildroot: FAKE_BUILDROOT_DIR });
      const o = await buildrootStep.run(ctx);
      expect(o.status).toBe('FAIL');
      expect(o.reason).toBe('config-dropped');
      expect(o.message).toBe(
        `buildroot: 2 symbol(s) of buildroot-external/configs/clawos_aarch64_defconfig dropped by Buildroot's Kconfig: ` +
          `BR2_PACKAGE_FAKE_NEEDS_GLIBC: requested y (buildroot-external/configs/clawos_aarch64_defconfig:${n}), final not set; ` +
          `BR2_TARGET_ROOTFS_ISO9660: requested y (buildroot-external/configs/clawos_aarch64_defconfig:${n + 1}), final not set`,
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

  it('fails config-dropped when the kernel .config lost a fragment symbol', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      process.env['FAKE_BUILDROOT_KERNEL_DROP'] = 'CONFIG_BPF_LSM';
      const line = (await readFile(join(repo, 'kernel-config', 'common.config'), 'utf8')).split('\n').indexOf('CONFIG_BPF_LSM=y') + 1;
      const o = await buildrootStep.run(ctxFor(repo, build, x86, { buildroot: FAKE_BUILDROOT_DIR }));
      expect(o.reason).toBe('config-dropped');
      expect(o.message).toBe(
        `buildroot: 1 kernel symbol(s) dropped in build-engineer/x86_64/buildroot-x86_64/build/linux-custom/.config: ` +
          `CONFIG_BPF_LSM: requested y (kernel-config/common.config:${line}), final not set`,
      );
    } finally {
      await cleanup();
    }
  });

  it('fails closed on a tarball sha256 mismatch, naming both hashes and extracting nothing', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const tarball = join(d, 'buildroot-2024.11.tar.gz');
      expect((await run(['tar', '-czf', tarball, '-C', FAKE_BUILDROOT_PARENT, 'buildroot-fake'])).ok).toBe(true);
      const actual = await sha256File(tarball);
      const pinned = '0'.repeat(64);
      const ctx = ctxFor(repo, build, x86, { buildroot: tarball, buildroot_sha256: pinned });
      const o = await buildrootStep.run(ctx);
      expect(o.status).toBe('FAIL');
      expect(o.reason).toBe('source-mismatch');
      expect(o.message).toBe(`buildroot: ${tarball} has sha256 ${actual}, but ${pinned} is pinned: refusing to extract it`);
      expect(existsSync(join(build, 'cache', 'buildroot'))).toBe(false);
      expect(ctx.logs.some((l) => l.startsWith('$ '))).toBe(false);

      const unpinned = await buildrootStep.run(ctxFor(repo, build, x86, { buildroot: tarball }));
      expect(unpinned.reason).toBe('source-mismatch');
      expect(unpinned.message).toBe(
        `buildroot: ${tarball} is a tarball but no sha256 is pinned: set buildroot_sha256 (--buildroot-sha256, or CLAWOS_BUILDROOT_SHA256)`,
      );
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
      expect(o1.message).toBe('buildroot: specs/arch/x86_64.yaml has no buildroot: { defconfig, iso } section');
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

      const missing = await buildrootStep.run(ctxFor(repo, join(d, 'build2'), x86, { ...params, extras: [{ from: 'security/nope', to: 'x' }] }));
      expect(missing).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'buildroot: extras entry security/nope does not exist in the build dir (the task that makes it has not run?)' });
    } finally {
      await cleanup();
    }
  });
});
