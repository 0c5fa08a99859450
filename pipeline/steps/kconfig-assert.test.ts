import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../lib/proc.js';
import { fakeStepContext, fakeX86Arch } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { kconfigAssertStep, parseKconfigAssertParams } from './kconfig-assert.js';

let tmp: DirectoryResult;
beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
  await mkdir(join(tmp.path, 'kernel-engineer/x86_64'), { recursive: true });
  await writeFile(
    join(tmp.path, 'kernel-engineer/x86_64/config'),
    'CONFIG_RANDOMIZE_BASE=y\nCONFIG_LSM="lockdown,yama,apparmor,bpf"\n# CONFIG_SLOB is not set\nCONFIG_BPF_LSM=y\n',
  );
});
afterEach(async () => {
  await tmp.cleanup();
});

const ctxWith = (params: Record<string, unknown>) =>
  fakeStepContext({ repoRoot: tmp.path, buildDir: tmp.path, arch: fakeX86Arch, params });

describe('kconfigAssertStep', () => {
  it('passes and lists what it confirmed', async () => {
    const o = await kconfigAssertStep.run(
      ctxWith({
        config: 'kernel-engineer/x86_64/config',
        symbols: { RANDOMIZE_BASE: 'y', CONFIG_LSM: '"lockdown,yama,apparmor,bpf"', SLOB: 'n', MNT_NS: 'not set' },
      }),
    );
    expect(o.status).toBe('PASS');
    expect(o.message).toBe(
      'confirmed in kernel-engineer/x86_64/config: CONFIG_RANDOMIZE_BASE=y, CONFIG_LSM="lockdown,yama,apparmor,bpf", CONFIG_SLOB=not set, CONFIG_MNT_NS=not set',
    );
    expect(o.evidence?.[0]?.path).toBe('kernel-engineer/x86_64/config');
  });

  it('writes the report the catalog names into its output dir', async () => {
    const ctx = ctxWith({ config: 'kernel-engineer/x86_64/config', symbols: { RANDOMIZE_BASE: 'y', STACKPROTECTOR: 'y' }, report: 'A-02-kconfig.json' });
    const o = await kconfigAssertStep.run(ctx);
    expect(o.status).toBe('FAIL');
    const report = JSON.parse(await readFile(join(ctx.outDir, 'A-02-kconfig.json'), 'utf8'));
    expect(report).toEqual({
      config: 'kernel-engineer/x86_64/config',
      ok: false,
      problems: ['CONFIG_STACKPROTECTOR: expected y, actual not set (kernel-engineer/x86_64/config)'],
      confirmed: ['CONFIG_RANDOMIZE_BASE=y'],
      mismatches: [{ symbol: 'CONFIG_STACKPROTECTOR', expected: 'y', actual: 'not set' }],
      btf: null,
    });
    expect(o.evidence?.map((e) => e.path)).toEqual(['kernel-engineer/x86_64/config', 'kernel-engineer/x86_64/A-02-kconfig.json']);
    expect(parseKconfigAssertParams({ config: 'c', symbols: { A: 'y' }, report: '../x.json' })).toBe(
      "kconfig-assert: 'report' must be a plain file name",
    );
  });

  it('fails config-dropped naming each mismatch with expected and actual', async () => {
    const o = await kconfigAssertStep.run(
      ctxWith({
        config: 'kernel-engineer/x86_64/config',
        symbols: { RANDOMIZE_BASE: 'y', SLAB_FREELIST_HARDENED: 'y', LSM: '"yama"', BPF_LSM: 'n' },
      }),
    );
    expect(o.status).toBe('FAIL');
    expect(o.reason).toBe('config-dropped');
    expect(o.message).toBe(
      '3 kernel option checks failed:\n' +
        'CONFIG_SLAB_FREELIST_HARDENED: expected y, actual not set (kernel-engineer/x86_64/config)\n' +
        'CONFIG_LSM: expected "yama", actual "lockdown,yama,apparmor,bpf" (kernel-engineer/x86_64/config)\n' +
        'CONFIG_BPF_LSM: expected not set, actual y (kernel-engineer/x86_64/config)',
    );
    expect(o.data).toMatchObject({ confirmed: ['CONFIG_RANDOMIZE_BASE=y'] });
  });

  it('reports a missing config as output-missing', async () => {
    const o = await kconfigAssertStep.run(ctxWith({ config: 'kernel-engineer/aarch64/config', symbols: { A: 'y' } }));
    expect(o).toMatchObject({
      status: 'FAIL',
      reason: 'output-missing',
      message: 'kconfig-assert: kernel-engineer/aarch64/config does not exist (was the kernel built?)',
    });
  });

  it('checks a vmlinux for .BTF when asked', async () => {
    const dirPath = join(tmp.path, 'kernel-engineer/x86_64/obj');
    await mkdir(dirPath, { recursive: true });
    await writeFile(join(tmp.path, 'btf.bin'), 'x');
    expect((await run(['objcopy', '--add-section', `.BTF=${join(tmp.path, 'btf.bin')}`, '/bin/true', join(dirPath, 'vmlinux')])).ok).toBe(true);
    await run(['cp', '/bin/true', join(dirPath, 'vmlinux-nobtf')]);
    const good = await kconfigAssertStep.run(
      ctxWith({ config: 'kernel-engineer/x86_64/config', symbols: { BPF_LSM: 'y' }, btf_vmlinux_from: 'kernel-engineer/x86_64/obj/vmlinux' }),
    );
    expect(good.message).toBe('confirmed in kernel-engineer/x86_64/config: CONFIG_BPF_LSM=y, .BTF in kernel-engineer/x86_64/obj/vmlinux');
    const bad = await kconfigAssertStep.run(
      ctxWith({ config: 'kernel-engineer/x86_64/config', symbols: { BPF_LSM: 'y' }, btf_vmlinux_from: 'kernel-engineer/x86_64/obj/vmlinux-nobtf' }),
    );
    expect(bad).toMatchObject({
      status: 'FAIL',
      reason: 'config-dropped',
      message: '1 kernel option check failed:\nkernel-engineer/x86_64/obj/vmlinux-nobtf: no .BTF section',
    });
  });

  it('validates its parameters', async () => {
    expect(parseKconfigAssertParams({ symbols: { A: 'y' } })).toBe("kconfig-assert: 'config' must be a build-relative path");
    expect(parseKconfigAssertParams({ config: 'c', symbols: {} })).toBe("kconfig-assert: 'symbols' must map SYMBOL to its expected value");
    expect(parseKconfigAssertParams({ config: 'c', symbols: { 'A-B': 'y' } })).toBe("kconfig-assert: 'A-B' is not a Kconfig symbol");
    expect(parseKconfigAssertParams({ config: 'c', symbols: { A: 'y' }, extra: 1 })).toBe("kconfig-assert: unknown parameter 'extra'");
    expect(parseKconfigAssertParams({ config: 'c', symbols: { CONFIG_A: true, NR: 16 } })).toEqual({
      config: 'c',
      symbols: { A: 'y', NR: '16' },
      btf_vmlinux_from: undefined,
      report: undefined,
    });
    const o = await kconfigAssertStep.run(ctxWith({ config: 'x' }));
    expect(o).toMatchObject({ status: 'FAIL', reason: 'spec-invalid' });
  });
});
