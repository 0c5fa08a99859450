import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { sha256Hex } from '../../lib/hash.js';
import { loadArches } from '../catalog/arch.js';
import { expandParams } from '../catalog/task-spec.js';
import { fakeStepContext } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { useTmpDirs } from '../../test/helpers/tmp-dirs.js';
import { ebpfBuildStep } from './ebpf-build.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TREE = join(REPO, 'test/fixtures/syscall-tables/linux-6.1');
const tmp = useTmpDirs();
// The host kernel's BTF (raw, which bpftool reads as it reads a vmlinux's .BTF) stands in for A-01's vmlinux.
const HOST_BTF = '/sys/kernel/btf/vmlinux';
const haveTools = await Promise.all([stat(HOST_BTF), stat('/usr/sbin/bpftool'), stat('/usr/bin/clang-14')]).then(() => true, () => false);

describe('ebpf-build (B-08)', () => {
  it.skipIf(!haveTools)('builds the three CO-RE objects and the static loader from the frozen P1.3 copy, the kernel BTF and the policy', async () => {
    const build = await tmp();
    const spec = await readFile(join(REPO, 'specs/p1/ebpf-events.yaml'), 'utf8');
    await mkdir(join(build, 'ebpf'), { recursive: true });
    await writeFile(join(build, 'ebpf/ebpf-events.yaml'), spec);
    await writeFile(
      join(build, 'ebpf/ebpf-events.freeze.json'),
      JSON.stringify({ spec_id: 'P1.3', version: '1.0.0', path: 'specs/p1/ebpf-events.yaml', sha256: sha256Hex(spec), schema_sha256: 'x', frozen_at: '2026-01-01T00:00:00.000Z' }),
    );
    const kdir = join(build, 'kernel-engineer/x86_64');
    await mkdir(join(kdir, 'obj'), { recursive: true });
    await copyFile(HOST_BTF, join(kdir, 'obj/vmlinux'));
    await writeFile(join(kdir, 'build-info.json'), JSON.stringify({ source: { srcDir: TREE, sha256: 'a'.repeat(64) } }));
    const task = parse(await readFile(join(REPO, 'tasks/B-08.yaml'), 'utf8')) as { with: Record<string, unknown> };
    const arch = (await loadArches(REPO)).get('x86_64')!;
    const ctx = fakeStepContext({ repoRoot: REPO, buildDir: build, arch, params: expandParams(task.with, 'x86_64') as Record<string, unknown>, outDir: join(build, 'ebpf/x86_64') });
    const r = await ebpfBuildStep.run(ctx);
    expect(r.message).toMatch(/^x86_64: clawos-lsm\.bpf\.o \d+ B, clawos-trace\.bpf\.o \d+ B, clawos-xdp\.bpf\.o \d+ B; clawos-ebpf static \d+ B; .* execve=59 openat=257$/);
    expect(r.status).toBe('PASS');
    const env = await readFile(join(build, 'ebpf/x86_64/image/ebpf.env'), 'utf8');
    expect(env).toContain('EBPF_NR_EXECVE=59\nEBPF_NR_OPENAT=257\n');
    const rec = JSON.parse(await readFile(join(build, 'ebpf/x86_64/ebpf-build.json'), 'utf8')) as { debs: { package: string }[]; commands: string[][] };
    // The loader links the locked target-arch packages, not the host's copies.
    expect(rec.debs.map((d) => d.package)).toEqual(['libbpf-dev', 'libelf-dev', 'zlib1g-dev']);
    expect(rec.commands.flat().join(' ')).not.toContain(build);
  }, 300_000);

  it('refuses an arch without an ebpf block, and a frozen copy that does not match its record', async () => {
    const build = await tmp();
    const arch = (await loadArches(REPO)).get('x86_64')!;
    const noEbpf = { ...arch, ebpf: undefined };
    const task = parse(await readFile(join(REPO, 'tasks/B-08.yaml'), 'utf8')) as { with: Record<string, unknown> };
    const params = expandParams(task.with, 'x86_64') as Record<string, unknown>;
    expect(await ebpfBuildStep.run(fakeStepContext({ repoRoot: REPO, buildDir: build, arch: noEbpf, params, outDir: join(build, 'ebpf/x86_64') }))).toMatchObject({
      status: 'FAIL',
      message: 'ebpf-build: specs/arch/x86_64.yaml has no ebpf block',
    });
    await mkdir(join(build, 'ebpf'), { recursive: true });
    await writeFile(join(build, 'ebpf/ebpf-events.yaml'), 'spec_id: P1.3\n');
    await writeFile(join(build, 'ebpf/ebpf-events.freeze.json'), JSON.stringify({ sha256: 'b'.repeat(64), path: 'specs/p1/ebpf-events.yaml' }));
    const r = await ebpfBuildStep.run(fakeStepContext({ repoRoot: REPO, buildDir: build, arch, params, outDir: join(build, 'ebpf/x86_64') }));
    expect(r).toMatchObject({ status: 'FAIL', reason: 'validation-failed' });
    expect(r.message).toBe(`ebpf-build: ebpf/ebpf-events.yaml has sha256 ${sha256Hex('spec_id: P1.3\n')}, its freeze record says ${'b'.repeat(64)}`);
  });
});
