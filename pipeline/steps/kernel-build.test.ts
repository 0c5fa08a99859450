import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/hash.js';
import { run } from '../../lib/proc.js';
import { FAKE_KERNEL_PARENT, fakeStepContext, fakeX86Arch } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { extractedDirName, kernelSourceFiles } from '../kernel/source.js';
import { COMMON_FRAGMENTS, KERNEL_OUTPUTS, PAHOLE_WRAPPER, diagnosticLines, kernelBuildStep, kernelImageFor } from './kernel-build.js';

const REPO = join(import.meta.dirname, '../..');

let tarDir: DirectoryResult;
let tarball: string;
let tarSha: string;
beforeAll(async () => {
  tarDir = await dir({ unsafeCleanup: true });
  tarball = join(tarDir.path, 'linux-fake.tar.xz');
  const r = await run(['tar', '-cJf', tarball, '-C', FAKE_KERNEL_PARENT, 'linux-fake']);
  expect(r.ok).toBe(true);
  tarSha = await sha256File(tarball);
});
afterAll(async () => {
  await tarDir.cleanup();
});

let work: DirectoryResult;
let repo: string;
let build: string;
beforeEach(async (t) => {
  work = await dir({ unsafeCleanup: true });
  t.onTestFinished(() => work.cleanup());
  repo = join(work.path, 'repo');
  build = join(work.path, 'build');
  await mkdir(join(repo, 'kernel-config'), { recursive: true });
  await cp(join(REPO, 'kernel-config/modules'), join(repo, 'kernel-config/modules'), { recursive: true });
  await writeFile(
    join(repo, 'kernel-config/source.yaml'),
    `tarball: ${tarball}\nsha256: ${tarSha}\nbase: tinyconfig\nfragments:\n  - kernel-config/common.config\n`,
  );
  await writeFile(join(repo, 'kernel-config/x86_64.config'), 'CONFIG_FAKE_X86_ONLY=y\n');
});

const common = (extra = '') =>
  writeFile(
    join(repo, 'kernel-config/common.config'),
    `# fake ClawOS fragment\nCONFIG_MODULES=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_LOCALVERSION="-clawos"\n${extra}`,
  );

describe('kernelBuildStep on the fake kernel', () => {
  it('takes the image the final .config makes: image_when (arm64 EFI zboot) when its symbol is =y, else kernel.image', async () => {
    const arch = { ...fakeX86Arch, kernel: { ...fakeX86Arch.kernel, image_when: [{ config: 'CONFIG_FAKE_ZBOOT', image: 'arch/x86/boot/vmlinuz.efi' }] } };
    await common('CONFIG_FAKE_ZBOOT=y\n');
    const zb = fakeStepContext({ repoRoot: repo, buildDir: build, arch });
    expect((await kernelBuildStep.run(zb)).status).toBe('PASS');
    expect(await readFile(join(zb.outDir, 'vmlinuz'), 'utf8')).toMatch(/^fake x86_64 compressed EFI image\n/);
    await common();
    const plain = fakeStepContext({ repoRoot: repo, buildDir: join(work.path, 'build2'), arch });
    expect((await kernelBuildStep.run(plain)).status).toBe('PASS');
    expect(await readFile(join(plain.outDir, 'vmlinuz'), 'utf8')).toMatch(/^fake x86_64 kernel image\n/);
    expect(kernelImageFor(arch, 'CONFIG_FAKE_ZBOOT=y\n')).toBe('arch/x86/boot/vmlinuz.efi');
    expect(kernelImageFor(arch, '# CONFIG_FAKE_ZBOOT is not set\nCONFIG_FAKE_ZBOOT_X=y\n')).toBe('arch/x86/boot/bzImage');
  });

  it('builds, checks, signs and writes every output', async () => {
    await common('CONFIG_FAKE_EVENTS=y\nCONFIG_FAKE_LSM=y\n');
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    const o = await kernelBuildStep.run(ctx);
    expect(o.message).toMatch(
      /^built Linux 6\.1\.0-fake-clawos for x86_64: 6 requested options confirmed, BTF present, clawos_canary signed with a key made by this build \(not reproducible: no module-signing key in the key dir, so the kernel made its own for this build \(make one with `clawos-build keys init --role module-signing`\)\) \(\d+ s\)$/,
    );
    expect(o.status).toBe('PASS');
    const out = ctx.outDir;
    for (const f of KERNEL_OUTPUTS) expect(existsSync(join(out, f)), f).toBe(true);
    expect(await readFile(join(out, 'vmlinuz'), 'utf8')).toMatch(/^fake x86_64 kernel image\nfake certificate [0-9a-f]{16}\n$/);
    expect(await readFile(join(out, 'kernel.release'), 'utf8')).toBe('6.1.0-fake-clawos\n');
    expect(await readFile(join(out, 'config'), 'utf8')).toContain('CONFIG_FAKE_LSM=y\n');
    const signed = await readFile(join(out, 'modules/clawos_canary.ko'), 'utf8');
    const unsigned = await readFile(join(out, 'modules/clawos_canary-unsigned.ko'), 'utf8');
    expect(unsigned).toBe('fake module clawos_canary\n');
    expect(signed).toBe('fake module clawos_canary\nfake-sha256-signature~Module signature appended~\n');
    // The private key never leaves obj/.
    expect(await readdir(out)).not.toContain('signing_key.pem');
    // Extracted once into the shared cache, built out of tree.
    const srcDir = join(build, 'cache/src', extractedDirName(tarSha));
    expect(existsSync(join(srcDir, '.config'))).toBe(false);
    expect(existsSync(join(out, 'obj/.config'))).toBe(true);

    const report = JSON.parse(await readFile(join(out, 'kconfig-report.json'), 'utf8'));
    expect(report.symbols).toContainEqual({
      symbol: 'CONFIG_FAKE_LSM', requested: 'y', final: 'y', ok: true,
      file: 'kernel-config/common.config', line: 6, at: 'kernel-config/common.config:6',
    });
    expect(report.symbols).toHaveLength(6);
    const info = JSON.parse(await readFile(join(out, 'build-info.json'), 'utf8'));
    expect(info.commands.map((c: { phase: string }) => c.phase)).toEqual([
      'configure', 'configure', 'configure', 'compile', 'compile', 'compile', 'modules', 'sign',
    ]);
    // The relative forms are the paths ccache's base_dir makes of the absolute ones (the same maps in every build).
    const maps =
      `-ffile-prefix-map=${srcDir}=/clawos/linux -ffile-prefix-map=${join(out, 'obj')}=/clawos/obj -ffile-prefix-map=${join(out, 'canary')}=/clawos/canary ` +
      `-ffile-prefix-map=../../../cache/src/${basename(srcDir)}=/clawos/linux -ffile-prefix-map=../canary=/clawos/canary`;
    expect(info.commands[0].command).toBe(
      `env $'KBUILD_BUILD_TIMESTAMP=Tue Nov 14 22:13:20 UTC 2023' KBUILD_BUILD_USER=clawos KBUILD_BUILD_HOST=clawos-build ` +
        `KBUILD_BUILD_VERSION=1 SOURCE_DATE_EPOCH=1700000000 LC_ALL=C make -C ${srcDir} O=${join(out, 'obj')} ARCH=x86_64 CROSS_COMPILE= ` +
        `PAHOLE=${join(out, 'obj/clawos-tools/pahole')} ` +
        `$'KCFLAGS=${maps}' $'KAFLAGS=${maps}' $'CC=gcc -gno-record-gcc-switches' tinyconfig`,
    );
    expect(info.commands[3].command).toMatch(/ -j2$/);
    expect(info.kernelRelease).toBe('6.1.0-fake-clawos');
    expect(ctx.progressLines.slice(0, 2)).toEqual(['source', 'configure']);
    expect(ctx.progressLines).toEqual(expect.arrayContaining(['compile', 'modules', 'sign']));
    expect(o.evidence?.map((e) => e.path)).toEqual([
      'kernel-engineer/x86_64/vmlinuz',
      'kernel-engineer/x86_64/config',
      'kernel-engineer/x86_64/modules/clawos_canary.ko',
      'kernel-engineer/x86_64/kconfig-report.json',
    ]);
  });

  it('fails config-dropped naming the symbol, values and depends-on line', async () => {
    await common('CONFIG_FAKE_LSM=y\n');
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    const o = await kernelBuildStep.run(ctx);
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe('config-dropped');
    expect(o.message).toBe(
      '1 requested kernel option not in the final .config:\n' +
        'CONFIG_FAKE_LSM: requested y (kernel-config/common.config:5), final not set; depends on FAKE_EVENTS (kernel/bpf/Kconfig:8)',
    );
    expect(o.data).toMatchObject({ dropped: [{ symbol: 'FAKE_LSM', requested: 'y', final: 'not set' }], unknown: [] });
    expect(existsSync(join(ctx.outDir, 'kconfig-report.json'))).toBe(true);
    expect(existsSync(join(ctx.outDir, 'vmlinuz'))).toBe(false);
  });

  it('lists every offending symbol, dropped and unknown', async () => {
    await common('CONFIG_FAKE_LSM=y\nCONFIG_MNT_NS=y\n');
    const o = await kernelBuildStep.run(fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch }));
    expect(o.reason).toBe('config-dropped');
    expect(o.message).toBe(
      '2 requested kernel options not in the final .config:\n' +
        'CONFIG_FAKE_LSM: requested y (kernel-config/common.config:5), final not set; depends on FAKE_EVENTS (kernel/bpf/Kconfig:8)\n' +
        'CONFIG_MNT_NS: requested y (kernel-config/common.config:6), but no Kconfig file of this kernel defines it',
    );
  });

  it('fails config-unknown-symbol for a symbol no Kconfig defines', async () => {
    await common('CONFIG_MNT_NS=y\n');
    const o = await kernelBuildStep.run(fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch }));
    expect(o).toMatchObject({ status: 'FAIL', reason: 'config-unknown-symbol' });
    expect(o.message).toBe(
      '1 requested kernel option not in the final .config:\n' +
        'CONFIG_MNT_NS: requested y (kernel-config/common.config:5), but no Kconfig file of this kernel defines it',
    );
  });

  it('fails closed on a sha256 mismatch and extracts nothing', async () => {
    await common();
    await writeFile(join(repo, 'kernel-config/source.yaml'), `tarball: ${tarball}\nsha256: "${'0'.repeat(64)}"\nfragments: [kernel-config/common.config]\n`);
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    const o = await kernelBuildStep.run(ctx);
    expect(o).toMatchObject({ status: 'FAIL', reason: 'source-mismatch' });
    expect(o.message).toBe(
      `kernel source ${tarball}: sha256 mismatch: expected ${'0'.repeat(64)}, actual ${tarSha}; ` +
        `if this is the source you want, set sha256: ${tarSha} in kernel-config/source.yaml`,
    );
    expect(existsSync(join(build, 'cache/src'))).toBe(false);
    expect(existsSync(join(ctx.outDir, 'obj'))).toBe(false);
  });

  it('reports the failing lines when make fails', async () => {
    await common('CONFIG_FAKE_BREAK_BUILD=y\n');
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    const o = await kernelBuildStep.run(ctx);
    expect(o).toMatchObject({ status: 'FAIL', reason: 'exit-non-zero' });
    const lines = o.message.split('\n');
    expect(lines[0]).toBe('make (kernel build) failed (exit 2):');
    expect(lines).toContain("fake/broken.c:3:1: error: expected ';' before '}' token");
    expect(lines).toContain('make[2]: *** [scripts/Makefile.build:250: fake/broken.o] Error 1');
    const info = JSON.parse(await readFile(join(ctx.outDir, 'build-info.json'), 'utf8'));
    expect(info.failed).toBe('make (kernel build)');
  });

  it('fails when vmlinux has no BTF', async () => {
    await writeFile(join(repo, 'kernel-config/common.config'), 'CONFIG_MODULES=y\n');
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    const o = await kernelBuildStep.run(ctx);
    expect(o).toMatchObject({ status: 'FAIL', reason: 'output-missing' });
    expect(o.message).toBe(
      `vmlinux has no .BTF section (CONFIG_DEBUG_INFO_BTF=y needs pahole from dwarves): ${join(ctx.outDir, 'obj/vmlinux')}`,
    );
  });

  it('takes source: from the task and rejects unknown parameters', async () => {
    await common();
    const bad = await kernelBuildStep.run(fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch, params: { source: 'kernel-config/other.yaml' } }));
    expect(bad).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: `kernel-config/other.yaml not found in ${repo}` });
    const odd = await kernelBuildStep.run(fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch, params: { jobs: 4 } }));
    expect(odd).toMatchObject({ status: 'FAIL', reason: 'spec-invalid', message: "kernel-build: unknown parameter 'jobs' (known: source)" });
  });

  it('needs an arch', async () => {
    const o = await kernelBuildStep.run(fakeStepContext({ repoRoot: repo, buildDir: build, arch: null }));
    expect(o).toMatchObject({ status: 'FAIL', reason: 'spec-invalid' });
  });
});

describe('kernelBuildStep metadata', () => {
  it('fingerprints the tools and the config inputs', () => {
    expect(kernelBuildStep.name).toBe('kernel-build');
    expect(kernelBuildStep.toolPackages(fakeX86Arch, {})).toEqual([
      'gcc', 'make', 'flex', 'bison', 'bc', 'dwarves', 'libelf-dev', 'libssl-dev', 'kmod',
    ]);
    expect(kernelBuildStep.implicitInputs?.(fakeX86Arch, {})).toEqual([
      'kernel-config/source.yaml',
      'kernel-config/common.config',
      'kernel-config/boot.config',
      'kernel-config/x86_64.config',
      'kernel-config/modules/clawos_canary',
    ]);
  });

  it('keeps COMMON_FRAGMENTS in step with every kernel-config/source*.yaml (then its version fragments)', async () => {
    const files = await kernelSourceFiles(REPO);
    expect(files).toEqual(['kernel-config/source-6.1.yaml', 'kernel-config/source.yaml']);
    for (const f of files) {
      const doc = parseYaml(await readFile(join(REPO, f), 'utf8'));
      expect(doc.fragments.slice(0, COMMON_FRAGMENTS.length), f).toEqual(COMMON_FRAGMENTS);
      // The rest is one kernel version's: an input through the task's `inputs: [kernel-config]`.
      for (const rest of doc.fragments.slice(COMMON_FRAGMENTS.length)) expect(rest, f).toMatch(/^kernel-config\/linux-[0-9.]+\//);
    }
  });

  it('puts error lines that scrolled away before the last lines', () => {
    const tail = ['a: error: x', ...Array.from({ length: 20 }, (_, i) => `l${i}`)];
    expect(diagnosticLines(tail, 3)).toEqual(['a: error: x', 'l17', 'l18', 'l19']);
  });
});

describe('kernelBuildStep: reproducible kernels need the managed module-signing key', () => {
  const build2 = () => join(work.path, 'out');
  const keyPem = '-----BEGIN PRIVATE KEY-----\nfake\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n';

  it('with no key: the kernel makes its own per build tree, so two folders give two kernels, and the result says so', async () => {
    await common();
    const a = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch });
    const b = fakeStepContext({ repoRoot: repo, buildDir: build2(), arch: fakeX86Arch });
    const [oa, ob] = [await kernelBuildStep.run(a), await kernelBuildStep.run(b)];
    expect([oa.status, ob.status]).toEqual(['PASS', 'PASS']);
    expect(await sha256File(join(a.outDir, 'vmlinuz'))).not.toBe(await sha256File(join(b.outDir, 'vmlinuz')));
    expect(oa.data).toMatchObject({ reproducible: false });
    expect(a.logs).toContain(
      'kernel-build: not reproducible: no module-signing key in the key dir, so the kernel made its own for this build (make one with `clawos-build keys init --role module-signing`)',
    );
    const info = JSON.parse(await readFile(join(a.outDir, 'build-info.json'), 'utf8'));
    expect(info).toMatchObject({ moduleSigning: 'made by this build', reproducible: false });
  });

  it('with the managed key: two folders give the same kernel and signed module, the key is named by a fragment, and its copy is gone afterwards', async () => {
    await common();
    const key = join(work.path, 'keys/module-signing.pem');
    await mkdir(join(work.path, 'keys'), { recursive: true });
    await writeFile(key, keyPem, { mode: 0o600 });
    const a = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch, moduleSigningKey: key });
    const b = fakeStepContext({ repoRoot: repo, buildDir: build2(), arch: fakeX86Arch, moduleSigningKey: key });
    const oa = await kernelBuildStep.run(a);
    const ob = await kernelBuildStep.run(b);
    expect(oa.message).toMatch(/clawos_canary signed with the managed module-signing key \(\d+ s\)$/);
    expect([oa.status, ob.status]).toEqual(['PASS', 'PASS']);
    for (const f of ['vmlinuz', 'config', 'signing_key.x509', 'modules/clawos_canary.ko']) {
      expect(await sha256File(join(a.outDir, f)), f).toBe(await sha256File(join(b.outDir, f)));
    }
    expect(await readFile(join(a.outDir, 'config'), 'utf8')).toContain('CONFIG_MODULE_SIG_KEY="certs/clawos-module-signing.pem"\n');
    expect(existsSync(join(a.outDir, 'obj/certs/clawos-module-signing.pem'))).toBe(false);
    expect(oa.data).toMatchObject({ reproducible: true });
  });

  it('fails config-dropped when the kernel forgets CONFIG_MODULE_SIG_KEY (no MODULE_SIG), and removes the key copy', async () => {
    await common();
    // A tree whose Kconfig has no MODULE_SIG_KEY: olddefconfig drops the managed key's fragment.
    const kconfig = join(build, 'cache/src');
    const key = join(work.path, 'module-signing.pem');
    await writeFile(key, keyPem, { mode: 0o600 });
    const ctx = fakeStepContext({ repoRoot: repo, buildDir: build, arch: fakeX86Arch, moduleSigningKey: key });
    // Prepare the source once, then strip the symbol from its Kconfig.
    await kernelBuildStep.run(ctx);
    const src = join(kconfig, extractedDirName(tarSha), 'Kconfig');
    await writeFile(src, (await readFile(src, 'utf8')).replace(/config MODULE_SIG_KEY\n[^\n]*\n/, ''));
    const o = await kernelBuildStep.run(ctx);
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe('config-dropped');
    expect(o.message).toBe('CONFIG_MODULE_SIG_KEY="certs/clawos-module-signing.pem" (the managed module-signing key) is not in the final .config: is CONFIG_MODULE_SIG=y?');
    expect(existsSync(join(ctx.outDir, 'obj/certs/clawos-module-signing.pem'))).toBe(false);
  });

  it('the pahole wrapper drops -j in every spelling and passes the rest on', async () => {
    const bin = join(work.path, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'pahole'), '#!/bin/sh\nfor a; do printf "[%s]" "$a"; done\n', { mode: 0o755 });
    await writeFile(join(work.path, 'wrapper'), PAHOLE_WRAPPER, { mode: 0o755 });
    const r = await run([join(work.path, 'wrapper'), '-J', '-j', '--btf_gen_floats', '-j4', '--jobs=2', '--lang_exclude=rust', 'a b'], {
      captureStdout: true,
      env: { PATH: `${bin}:/usr/bin:/bin` },
    });
    expect(r.stdout.trimEnd()).toBe('[-J][--btf_gen_floats][--lang_exclude=rust][a b]');
  });
});
