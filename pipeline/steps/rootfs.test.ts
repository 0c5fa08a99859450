import { describe, expect, it } from 'vitest';
import { dir as tmpDir } from 'tmp-promise';
import { mkdir, readFile, writeFile, chmod, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { sha256Hex } from '../../lib/hash.js';
import { fakeStepContext, lockFor, makeDeb, testArch } from '../../test/helpers/debs-fixtures.js';
import { DEFAULT_OVERLAY, rootfsStep } from './rootfs.js';

const arch = { ...testArch, guest: { cpu_flags: ['smep', 'smap'] } };

async function setup(d: string) {
  const repo = join(d, 'repo');
  const overlay = join(repo, 'ov');
  await mkdir(join(overlay, 'usr', 'lib', 'clawos'), { recursive: true });
  await writeFile(join(overlay, 'init'), '#!/bin/busybox sh\necho init\n');
  await chmod(join(overlay, 'init'), 0o755);
  await writeFile(join(overlay, 'usr', 'lib', 'clawos', 'checks.sh'), 'true\n');
  await symlink('/bin/busybox', join(overlay, 'linuxrc'));
  await mkdir(join(repo, 'kernel-config'), { recursive: true });
  await writeFile(join(repo, 'kernel-config', 'common.config'), 'CONFIG_LSM="lockdown,yama,apparmor,bpf"\n');
  await writeFile(join(repo, 'f.config'), '# arch fragment\n');
  const build = join(d, 'build');
  await mkdir(join(build, 'kernel', 'modules'), { recursive: true });
  await writeFile(join(build, 'kernel', 'kernel.release'), '6.1.0-clawos\n');
  await writeFile(join(build, 'kernel', 'modules', 'clawos_canary.ko'), 'signed');
  await writeFile(join(build, 'kernel', 'modules', 'clawos_canary-unsigned.ko'), 'unsigned');
  const deb = await makeDeb(d, 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BUSYBOX' });
  return { repo, build, deb };
}

describe('rootfsStep', () => {
  it('writes the same initramfs bytes twice, with busybox, overlay, expect.env, modules and /dev/console', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build, deb } = await setup(d);
      const outs: Buffer[] = [];
      for (const n of [1, 2]) {
        const outDir = join(build, `out${n}`);
        const ctx = fakeStepContext({
          arch,
          repoRoot: repo,
          buildDir: build,
          outDir,
          params: { kernel_dir: 'kernel', overlay: 'ov' },
          debs: { 'busybox-static:arm64': deb },
        });
        const o = await rootfsStep.run(ctx);
        expect(o.status).toBe('PASS');
        expect(o.message).toMatch(/^rootfs: 25 entries, busybox-static 1:1\.35\.0-4, kernel 6\.1\.0-clawos, \d+ bytes$/);
        const img = await readFile(join(outDir, 'initramfs.cpio.gz'));
        expect(o.evidence?.[0]).toEqual({ label: 'initramfs', path: `out${n}/initramfs.cpio.gz`, sha256: sha256Hex(img) });
        expect(o.data).toEqual({
          debs: [{ package: 'busybox-static', version: '1:1.35.0-4', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }],
          kernelRelease: '6.1.0-clawos',
          missingModules: [],
        });
        outs.push(img);
      }
      expect(outs[0]!.equals(outs[1]!)).toBe(true);

      const man = await readFile(join(build, 'out1', 'rootfs-manifest.txt'), 'utf8');
      expect(man).toContain(`100755 0 0 7 ${sha256Hex('BUSYBOX')} /bin/busybox\n`);
      expect(man).toContain('020600 0 0 0 char:5,1 /dev/console\n');
      expect(man).toContain('041777 0 0 0 - /tmp\n');
      expect(man).toContain(`120777 0 0 12 ${sha256Hex('/bin/busybox')} /linuxrc -> /bin/busybox\n`);
      expect(man).toContain(`100755 0 0 28 ${sha256Hex('#!/bin/busybox sh\necho init\n')} /init\n`);

      const x = join(d, 'x');
      await mkdir(x);
      const r = await run(['sh', '-c', `zcat ${join(build, 'out1', 'initramfs.cpio.gz')} | cpio -id --quiet`], { cwd: x });
      expect(r.ok || !process.getuid?.()).toBe(true);
      expect(await readFile(join(x, 'etc', 'clawos', 'expect.env'), 'utf8')).toBe(
        "# Written by clawos-build (rootfs step): what the in-guest checks expect.\nARCH='testarch'\nKERNEL_RELEASE='6.1.0-clawos'\nLSMS='lockdown yama apparmor bpf'\nCPU_FLAGS='smep smap'\n",
      );
      expect(await readFile(join(x, 'lib', 'modules', 'clawos_canary-unsigned.ko'), 'utf8')).toBe('unsigned');
    } finally {
      await cleanup();
    }
  });

  it('fails with output-missing when the kernel build left no kernel.release', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build, deb } = await setup(d);
      const ctx = fakeStepContext({
        arch,
        repoRoot: repo,
        buildDir: build,
        outDir: join(build, 'out'),
        params: { kernel_dir: 'nokernel', overlay: 'ov' },
        debs: { 'busybox-static:arm64': deb },
      });
      expect(await rootfsStep.run(ctx)).toEqual({
        status: 'FAIL',
        reason: 'output-missing',
        message: 'rootfs: nokernel/kernel.release is missing or empty: the kernel build did not record its release',
      });
    } finally {
      await cleanup();
    }
  });

  it('is an INFRA_ERROR naming the fix when apt cannot deliver busybox-static', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build } = await setup(d);
      const locked = await lockFor({ 'busybox-static:arm64': await makeDeb(join(d, 'mirror'), 'busybox-static', '1:1.35.0-4', { 'bin/busybox': 'BB' }) });
      const ctx = fakeStepContext({
        arch,
        repoRoot: repo,
        buildDir: build,
        outDir: join(build, 'out'),
        params: { kernel_dir: 'kernel', overlay: 'ov' },
        debs: {},
        lock: async () => locked,
      });
      expect(await rootfsStep.run(ctx)).toEqual({
        status: 'INFRA_ERROR',
        reason: 'infra',
        message:
          'apt-get download busybox-static:arm64=1:1.35.0-4 failed: E: Unable to locate package busybox-static:arm64; fix: the apt lists do not know busybox-static:arm64: run `dpkg --add-architecture arm64 && apt-get update`',
      });
    } finally {
      await cleanup();
    }
  });

  it('declares its overlay and the LSM fragments as inputs and no host tool packages', () => {
    expect(rootfsStep.implicitInputs?.(arch, {})).toEqual([
      'buildroot-external/board/clawos/rootfs-overlay',
      'kernel-config/common.config',
      'f.config',
    ]);
    expect(rootfsStep.toolPackages(arch, {})).toEqual([]);
  });
});

describe('rootfsStep cgroup_quotas', () => {
  const table = `spec_id: P1.5
version: 1.0.0
slices:
  clawos-worker.slice: { memory_max: 2147483648, cpu_max: "400000 100000", pids_max: 96 }
  clawos-agent.slice: { memory_max: max, cpu_max: "max 100000", pids_max: max }
`;

  it('renders the P1.5 table into /etc/clawos/cgroup-quotas.env, one slice per line, sorted', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build, deb } = await setup(d);
      await writeFile(join(repo, 'q.yaml'), table);
      const ctx = fakeStepContext({
        arch, repoRoot: repo, buildDir: build, outDir: join(build, 'out'),
        params: { kernel_dir: 'kernel', overlay: 'ov', cgroup_quotas: 'q.yaml' },
        debs: { 'busybox-static:arm64': deb },
      });
      const o = await rootfsStep.run(ctx);
      expect(o.status, o.message).toBe('PASS');
      const x = join(d, 'x');
      await mkdir(x);
      await run(['sh', '-c', `zcat ${join(build, 'out', 'initramfs.cpio.gz')} | cpio -id --quiet`], { cwd: x });
      const sha = sha256Hex(table);
      expect(await readFile(join(x, 'etc', 'clawos', 'cgroup-quotas.env'), 'utf8')).toBe(
        `# Written by clawos-build (rootfs step) from q.yaml (P1.5 1.0.0, sha256 ${sha}).\n` +
          '# CGROUP_SLICES: one slice per line: name memory.max cpu.max-quota cpu.max-period pids.max\n' +
          `CGROUP_QUOTAS_SPEC='P1.5 1.0.0 q.yaml sha256:${sha}'\n` +
          "CGROUP_SLICES='\nclawos-agent.slice max max 100000 max\nclawos-worker.slice 2147483648 400000 100000 96\n'\n",
      );
      // The guest reads it as the script does.
      const r = await run(['busybox', 'sh', '-c', `. ${join(x, 'etc', 'clawos', 'cgroup-quotas.env')}; echo "$CGROUP_SLICES" | while read -r n m q p x; do [ -n "$n" ] && echo "$n|$m|$q|$p|$x"; done`], { captureStdout: true });
      expect(r.stdout).toBe('clawos-agent.slice|max|max|100000|max\nclawos-worker.slice|2147483648|400000|100000|96\n');
      expect(rootfsStep.implicitInputs?.(arch, { cgroup_quotas: 'q.yaml' })).toContain('q.yaml');
    } finally {
      await cleanup();
    }
  });

  it('refuses a table that would put anything but numbers and slice names into the image, with file:line:col', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build, deb } = await setup(d);
      await writeFile(join(repo, 'q.yaml'), table.replace('pids_max: 96', "pids_max: '96; reboot'").replace('clawos-agent.slice:', "'agent slice':"));
      const ctx = fakeStepContext({
        arch, repoRoot: repo, buildDir: build, outDir: join(build, 'out'),
        params: { kernel_dir: 'kernel', overlay: 'ov', cgroup_quotas: 'q.yaml' },
        debs: { 'busybox-static:arm64': deb },
      });
      expect(await rootfsStep.run(ctx)).toEqual({
        status: 'FAIL',
        reason: 'spec-invalid',
        message: 'rootfs: cgroup_quotas:\nq.yaml:4:86: slices.clawos-worker.slice.pids_max: a count or "max"\nq.yaml:5:3: slices: "agent slice" is not [a-z0-9.-] ending in .slice',
      });
      const missing = await rootfsStep.run({ ...ctx, params: { ...ctx.params, cgroup_quotas: 'nope.yaml' } });
      expect(missing).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: 'rootfs: cgroup_quotas nope.yaml cannot be read in the repository' });
    } finally {
      await cleanup();
    }
  });
});

// The guest's check functions run on the build host too (busybox sh), which
// shows each of them can fail and what it then says.
describe('guest checks.sh', () => {
  const checks = join(process.cwd(), DEFAULT_OVERLAY, 'usr/lib/clawos/checks.sh');
  const sh = async (script: string, env: Record<string, string> = {}) => {
    const r = await run(['busybox', 'sh', '-c', `. ${checks}; ${script}`], { captureStdout: true, env });
    return r.stdout.trimEnd();
  };

  it('check_kernel fails on a release mismatch and on a missing expectation', async () => {
    const release = (await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim();
    expect(await sh('check_kernel; echo "$? $VALUE"', { KERNEL_RELEASE: '0.0-wrong' })).toBe(`1 uname -r=${release} expected 0.0-wrong`);
    expect(await sh('check_kernel; echo "$? $VALUE"', { KERNEL_RELEASE: '' })).toBe(
      `1 uname -r=${release} but no KERNEL_RELEASE in /etc/clawos/expect.env`,
    );
    expect(await sh('check_kernel; echo "$? $VALUE"', { KERNEL_RELEASE: release })).toBe(`0 ${release}`);
  });

  it('missing_words compares comma- or space-separated words exactly', async () => {
    expect(await sh('missing_words "lockdown,capability,yama,bpf" lockdown yama apparmor bpf; echo "[$MISSING]"')).toBe('[apparmor]');
    // "cpuset" must not count as "cpu".
    expect(await sh('missing_words "cpuset io memory pids" memory pids cpu; echo "[$MISSING]"')).toBe('[cpu]');
  });

  it('check_cpu_flags fails on a flag the CPU does not have', async () => {
    expect(await sh('check_cpu_flags; echo "$? $VALUE"', { CPU_FLAGS: 'no_such_flag' })).toBe('1 missing=no_such_flag');
  });

  it('check_module_sig fails when the canary modules are absent', async () => {
    expect(await sh('check_module_sig; echo "$? $VALUE"')).toBe(
      '1 missing: /lib/modules/clawos_canary-unsigned.ko /lib/modules/clawos_canary.ko',
    );
  });
  it('adds generated files and directories from the build dir with `extras`, and names a missing one', async () => {
    const { path: d, cleanup } = await tmpDir({ unsafeCleanup: true });
    try {
      const { repo, build, deb } = await setup(d);
      await mkdir(join(build, 'security', 'seccomp'), { recursive: true });
      await writeFile(join(build, 'security', 'seccomp', 'filter.bpf'), 'BPF');
      await writeFile(join(build, 'security', 'seccomp', 'loader'), 'ELF');
      await chmod(join(build, 'security', 'seccomp', 'loader'), 0o755);
      await writeFile(join(build, 'security', 'policy.bin'), 'AA');
      const params = {
        kernel_dir: 'kernel',
        overlay: 'ov',
        extras: [
          { from: 'security/seccomp', to: 'usr/lib/clawos/seccomp' },
          { from: 'security/policy.bin', to: 'etc/apparmor/clawos.bin' },
        ],
      };
      const ctx = fakeStepContext({ arch, repoRoot: repo, buildDir: build, outDir: join(build, 'out'), params, debs: { 'busybox-static:arm64': deb } });
      expect((await rootfsStep.run(ctx)).status).toBe('PASS');
      const man = await readFile(join(build, 'out', 'rootfs-manifest.txt'), 'utf8');
      expect(man).toContain(`100644 0 0 3 ${sha256Hex('BPF')} /usr/lib/clawos/seccomp/filter.bpf\n`);
      expect(man).toContain(`100755 0 0 3 ${sha256Hex('ELF')} /usr/lib/clawos/seccomp/loader\n`);
      expect(man).toContain('040755 0 0 0 - /etc/apparmor\n');
      expect(man).toContain(`100644 0 0 2 ${sha256Hex('AA')} /etc/apparmor/clawos.bin\n`);

      const missing = { ...params, extras: [{ from: 'security/nope', to: 'x' }] };
      const o = await rootfsStep.run(fakeStepContext({ arch, repoRoot: repo, buildDir: build, outDir: join(build, 'out2'), params: missing, debs: { 'busybox-static:arm64': deb } }));
      expect(o).toMatchObject({
        status: 'FAIL',
        reason: 'output-missing',
        message: 'rootfs: extras entry security/nope does not exist in the build dir (the task that makes it has not run?)',
      });
      const bad = await rootfsStep.run(fakeStepContext({ arch, repoRoot: repo, buildDir: build, outDir: join(build, 'out3'), params: { ...params, extras: [{ from: 'a', to: '../etc' }] }, debs: { 'busybox-static:arm64': deb } }));
      expect(bad).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: "rootfs: extras[0] needs 'from' (build-relative path) and 'to' (a relative path in the image without ..)" });
    } finally {
      await cleanup();
    }
  });
});
