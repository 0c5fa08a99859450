import { describe, expect, it } from 'vitest';
import { UserError } from '../../lib/errors.js';
import type { Catalog } from './load-tasks.js';
import type { LoadedTask, TaskSpec } from './task-spec.js';
import { applyBackend, knownBackends } from './backends.js';
import { loadValidCatalog } from '../run/session.js';
import { repoRootDir } from '../../lib/repo-root.js';

function task(spec: Partial<TaskSpec> & { task_id: string }): LoadedTask {
  return {
    spec: { title: spec.task_id, phase: 'P3', agent: 'build-engineer', depends_on: [], inputs: [], outputs: [], validation_cmd: null, rollback_cmd: null, timeout_minutes: 1, frozen_spec_deps: [], ...spec },
    file: `tasks/${spec.task_id}.yaml`,
    sha256: '0'.repeat(64),
    locate: () => ({ file: `tasks/${spec.task_id}.yaml`, line: 1, col: 1 }),
  };
}

const catalog = (): Catalog => ({
  tasks: new Map([
    ['A-04', task({ task_id: 'A-04', uses: 'rootfs', with: { overlay: 'ov' }, backends: { buildroot: { uses: 'buildroot', with: { iso_name: 'buildroot/x.iso' } } } })],
    ['G-05', task({ task_id: 'G-05', uses: 'iso', with: { name: 'x.iso' } })],
  ]),
  agents: new Map(),
  components: new Map(),
});

describe('applyBackend', () => {
  it('lists the default backend and every alternative a task offers', () => {
    expect(knownBackends(catalog())).toEqual(['buildroot', 'busybox']);
  });

  it('keeps the catalog as it is for the default backend', () => {
    const c = catalog();
    expect(applyBackend(c, 'busybox', { buildroot: '/br' })).toBe(c);
  });

  it('swaps in the alternative step with the run parameters, and leaves other tasks alone', () => {
    const c = catalog();
    const b = applyBackend(c, 'buildroot', { buildroot: '/opt/buildroot-2024.02.tar.gz', buildroot_sha256: 'ab'.repeat(32) });
    expect(b.tasks.get('A-04')!.spec).toMatchObject({
      uses: 'buildroot',
      with: { iso_name: 'buildroot/x.iso', buildroot: '/opt/buildroot-2024.02.tar.gz', buildroot_sha256: 'ab'.repeat(32) },
    });
    expect(b.tasks.get('A-04')!.spec.backends).toBeUndefined();
    expect(b.tasks.get('G-05')).toBe(c.tasks.get('G-05'));
    // The loaded catalog itself is not changed.
    expect(c.tasks.get('A-04')!.spec.uses).toBe('rootfs');
  });

  it('refuses a backend no task offers, naming the known ones', () => {
    expect(() => applyBackend(catalog(), 'yocto')).toThrow(new UserError('unknown rootfs backend "yocto" (known: buildroot, busybox)'));
  });

  it("on the real catalog: A-04 builds with Buildroot (same extras and quota table, A-01's kernel), G-05 packs A-01's kernel", async () => {
    const c = applyBackend(await loadValidCatalog(repoRootDir()), 'buildroot', { buildroot: '/opt/br' });
    const a04 = c.tasks.get('A-04')!.spec;
    expect(a04.uses).toBe('buildroot');
    expect(a04.with).toMatchObject({
      buildroot: '/opt/br',
      kernel_dir: 'kernel-engineer/{arch}',
      cgroup_quotas: 'specs/p1/cgroup-quotas.yaml',
      extras: [
        { from: 'security/{arch}/seccomp', to: 'usr/lib/clawos/seccomp' },
        { from: 'security/apparmor/policy', to: 'etc/apparmor/clawos' },
        { from: 'ebpf/{arch}/image', to: 'usr/lib/clawos/ebpf' },
      ],
    });
    // One kernel per release, whichever backend assembled the rootfs.
    expect(c.tasks.get('G-05')!.spec).toMatchObject({ uses: 'iso', with: { kernel: 'kernel-engineer/{arch}/vmlinuz' } });
    expect(c.tasks.get('A-01')!.spec.uses).toBe('kernel-build');
  });

  it('on the real catalog: aya swaps B-08 (the C programs) for the aya-ebpf component and leaves the rest alone', async () => {
    const loaded = await loadValidCatalog(repoRootDir());
    expect(knownBackends(loaded)).toEqual(['aya', 'buildroot', 'busybox']);
    const b08 = applyBackend(loaded, 'aya').tasks.get('B-08')!.spec;
    expect(b08.component).toBe('aya-ebpf');
    expect(b08.uses).toBeUndefined();
    expect(b08.with).toBeUndefined();
    expect(b08.backends).toBeUndefined();
    expect(applyBackend(loaded, 'aya').tasks.get('A-04')!.spec.uses).toBe('rootfs');
    expect(loaded.tasks.get('B-08')!.spec.uses).toBe('ebpf-build');
  });
});
