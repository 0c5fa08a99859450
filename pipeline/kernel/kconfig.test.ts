import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAKE_KERNEL_PARENT } from '../../test/fakes/fake-kernel/fake-step-context.js';
import { repoRootDir } from '../../lib/repo-root.js';
import {
  checkRequested,
  effectiveRequests,
  evalKconfigExpr,
  openKconfigIndex,
  parseConfig,
  parseFragment,
} from './kconfig.js';
import { extractedDirName, loadPinnedKernelSource } from './source.js';

const FAKE = join(FAKE_KERNEL_PARENT, 'linux-fake');
// The real Linux tree of the default kernel (kernel-config/source.yaml, 6.12) for the
// Kconfig tests: CLAWOS_TEST_KERNEL_SRC, or the one a previous `clawos-build all`
// unpacked into build/cache/src (named by the locked tarball's sha256). Without one
// these tests are skipped (and say so); .ci/run runs them after its real build.
const REAL = await (async () => {
  if (process.env.CLAWOS_TEST_KERNEL_SRC) return process.env.CLAWOS_TEST_KERNEL_SRC;
  const pinned = await loadPinnedKernelSource(repoRootDir(), {});
  return join(repoRootDir(), 'build', 'cache', 'src', extractedDirName(pinned.sha256));
})();

describe('parseFragment / parseConfig', () => {
  it('reads set and unset lines with file and line', () => {
    const text = '# comment\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_LSM="lockdown,yama"\nCONFIG_X = y\n';
    expect(parseFragment(text, 'f.config')).toEqual([
      { symbol: 'A', value: 'y', file: 'f.config', line: 2 },
      { symbol: 'B', value: 'n', file: 'f.config', line: 4 },
      { symbol: 'LSM', value: '"lockdown,yama"', file: 'f.config', line: 5 },
    ]);
    const cfg = parseConfig('CONFIG_A=m\n# CONFIG_B is not set\n');
    expect([...cfg]).toEqual([
      ['A', 'm'],
      ['B', 'n'],
    ]);
  });

  it('lets a later fragment override an earlier one, like merge_config.sh', () => {
    const reqs = [...parseFragment('CONFIG_A=y\nCONFIG_B=y\n', 'one'), ...parseFragment('# CONFIG_A is not set\n', 'two')];
    expect(effectiveRequests(reqs)).toEqual([
      { symbol: 'B', value: 'y', file: 'one', line: 2 },
      { symbol: 'A', value: 'n', file: 'two', line: 1 },
    ]);
  });
});

describe('evalKconfigExpr', () => {
  const cfg = parseConfig('CONFIG_A=y\nCONFIG_M=m\nCONFIG_S="x"\nCONFIG_N=16\n# CONFIG_B is not set\n');
  it.each([
    ['A', 2],
    ['B', 0],
    ['M', 1],
    ['!B', 2],
    ['A && B', 0],
    ['A || B', 2],
    ['A && (B || M)', 1],
    ['S = "x"', 2],
    ['S != "x"', 0],
    ['N >= 8', 2],
    ['UNDEFINED', 0],
    ['$(cc-option,-foo)', undefined],
    ['$(cc-option,-foo) && B', 0],
  ] as const)('%s -> %s', (expr, want) => {
    expect(evalKconfigExpr(expr, cfg)).toBe(want);
  });
});

describe('checkRequested on the fake tree', () => {
  const index = openKconfigIndex(FAKE, { make_arch: 'x86_64', srcarch: 'x86' });

  it('explains a drop with the unmet depends-on line', () => {
    const reqs = parseFragment('CONFIG_MODULES=y\nCONFIG_FAKE_LSM=y\n', 'kernel-config/common.config');
    const final = parseConfig('CONFIG_MODULES=y\n# CONFIG_FAKE_EVENTS is not set\n# CONFIG_FAKE_LSM is not set\n');
    const r = checkRequested(reqs, final, index);
    expect(r.unknown).toEqual([]);
    expect(r.dropped.map((d) => d.message)).toEqual([
      'CONFIG_FAKE_LSM: requested y (kernel-config/common.config:2), final not set; depends on FAKE_EVENTS (kernel/bpf/Kconfig:8)',
    ]);
    expect(r.dropped[0]!.dependsOn).toEqual([
      { kind: 'depends on', expr: 'FAKE_EVENTS', file: 'kernel/bpf/Kconfig', line: 8, met: false },
    ]);
    expect(r.results).toEqual([
      { symbol: 'MODULES', requested: 'y', final: 'y', ok: true, file: 'kernel-config/common.config', line: 1 },
      { symbol: 'FAKE_LSM', requested: 'y', final: 'not set', ok: false, file: 'kernel-config/common.config', line: 2 },
    ]);
  });

  it('names the enclosing if when that is what is unmet', () => {
    const reqs = parseFragment('CONFIG_FAKE_LSM=y\n', 'c');
    const r = checkRequested(reqs, parseConfig('CONFIG_FAKE_EVENTS=y\n'), index);
    expect(r.dropped.map((d) => d.message)).toEqual([
      'CONFIG_FAKE_LSM: requested y (c:1), final not set; inside if MODULES (kernel/bpf/Kconfig:4)',
    ]);
  });

  it('reports a symbol no Kconfig defines as unknown, and one of another arch as dropped', () => {
    const reqs = parseFragment('CONFIG_MNT_NS=y\nCONFIG_FAKE_ARM64_ONLY=y\nCONFIG_FAKE_X86_ONLY=y\n', 'c');
    const r = checkRequested(reqs, parseConfig('CONFIG_FAKE_X86_ONLY=y\n'), index);
    expect(r.unknown.map((u) => u.message)).toEqual([
      'CONFIG_MNT_NS: requested y (c:1), but no Kconfig file of this kernel defines it',
    ]);
    expect(r.dropped.map((d) => d.message)).toEqual([
      'CONFIG_FAKE_ARM64_ONLY: requested y (c:2), final not set; defined only in arch/arm64/Kconfig:1, which this architecture does not read',
    ]);
  });

  it('accepts a "not set" request that is absent or not set', () => {
    const reqs = parseFragment('# CONFIG_FAKE_EVENTS is not set\n# CONFIG_FAKE_LSM is not set\n', 'c');
    const r = checkRequested(reqs, parseConfig('# CONFIG_FAKE_EVENTS is not set\n'), index);
    expect(r.dropped).toEqual([]);
    expect(r.unknown).toEqual([]);
    expect(r.results.every((x) => x.ok)).toBe(true);
  });

  it('does not parse help text as statements', () => {
    // The fake Kconfig has "if set, ..." inside FAKE_BREAK_BUILD's help.
    const look = index.lookup('DEBUG_INFO_BTF');
    expect(look.definitions).toEqual([{ symbol: 'DEBUG_INFO_BTF', file: 'Kconfig', line: 19, conditions: [] }]);
  });
});

describe.skipIf(!existsSync(join(REAL, 'Kconfig')))('checkRequested on the real Linux 6.12 Kconfig', () => {
  it('explains BPF_LSM, RANDOMIZE_BASE (x86) and SLAB_FREELIST_HARDENED', () => {
    const index = openKconfigIndex(REAL, { make_arch: 'x86_64', srcarch: 'x86' });
    const reqs = parseFragment(
      'CONFIG_BPF_LSM=y\nCONFIG_RANDOMIZE_BASE=y\nCONFIG_SLAB_FREELIST_HARDENED=y\nCONFIG_MNT_NS=y\n',
      'kernel-config/common.config',
    );
    const final = parseConfig('CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\nCONFIG_SECURITY=y\nCONFIG_SLUB_TINY=y\n');
    const r = checkRequested(reqs, final, index);
    expect(r.dropped.map((d) => d.message)).toEqual([
      'CONFIG_BPF_LSM: requested y (kernel-config/common.config:1), final not set; depends on BPF_EVENTS (kernel/bpf/Kconfig:94)',
      'CONFIG_RANDOMIZE_BASE: requested y (kernel-config/common.config:2), final not set; depends on RELOCATABLE (arch/x86/Kconfig:2157)',
      'CONFIG_SLAB_FREELIST_HARDENED: requested y (kernel-config/common.config:3), final not set; depends on !SLUB_TINY (mm/Kconfig:282)',
    ]);
    expect(r.unknown.map((u) => u.symbol)).toEqual(['MNT_NS']);
  });

  it('reports the 6.1 spellings 6.12 no longer defines (the symbols kernel-config/linux-6.1/ keeps)', () => {
    const index = openKconfigIndex(REAL, { make_arch: 'x86_64', srcarch: 'x86' });
    const reqs = parseFragment('CONFIG_PAGE_TABLE_ISOLATION=y\nCONFIG_RETPOLINE=y\n# CONFIG_SLOB is not set\nCONFIG_MITIGATION_RETPOLINE=y\n', 'kernel-config/x86_64.config');
    const r = checkRequested(reqs, parseConfig('CONFIG_MITIGATION_RETPOLINE=y\n'), index);
    expect(r.unknown.map((u) => u.symbol)).toEqual(['PAGE_TABLE_ISOLATION', 'RETPOLINE', 'SLOB']);
    expect(r.dropped).toEqual([]);
  });

  it('reads arm64 RANDOMIZE_BASE for ARCH=arm64', () => {
    const look = openKconfigIndex(REAL, { make_arch: 'arm64', srcarch: 'arm64' }).lookup('RANDOMIZE_BASE');
    expect(look.definitions.map((d) => d.file)).toEqual(['arch/arm64/Kconfig']);
  });

  it('explains arm64 CMDLINE_FROM_BOOTLOADER, hidden while CMDLINE is empty', () => {
    const index = openKconfigIndex(REAL, { make_arch: 'arm64', srcarch: 'arm64' });
    const reqs = parseFragment('CONFIG_CMDLINE_FROM_BOOTLOADER=y\n', 'kernel-config/aarch64.config');
    const r = checkRequested(reqs, parseConfig('CONFIG_CMDLINE=""\n'), index);
    expect(r.dropped.map((d) => d.message)).toEqual([
      'CONFIG_CMDLINE_FROM_BOOTLOADER: requested y (kernel-config/aarch64.config:1), final not set; depends on CMDLINE != "" (arch/arm64/Kconfig:2444)',
    ]);
  });

});

describe('SRCARCH', () => {
  it('takes SRCARCH from the arch data, not from the arch name', async () => {
    const { loadArches } = await import('../catalog/arch.js');
    const arches = await loadArches(join(import.meta.dirname, '..', '..'));
    expect([...arches.values()].map((a) => [a.kernel.make_arch, a.kernel.srcarch])).toEqual([
      ['arm64', 'arm64'],
      ['x86_64', 'x86'],
    ]);
  });
});
