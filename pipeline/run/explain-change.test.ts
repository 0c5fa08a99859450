import { describe, expect, it } from 'vitest';
import { describeChange } from './explain-change.js';

const base = {
  spec: { task_id: 'A-01', timeout_minutes: 30, inputs: ['kernel-config/common.config'] },
  arch: { name: 'x86_64' },
  step: { name: 'kernel-build', version: 3 },
  inputs: { 'kernel-config/common.config': 'aaa', 'kernel-config/x86_64.config': 'bbb' },
  frozen_specs: { 'specs/p1/cgroup-quotas.yaml': 'ccc' },
  deps: { 'C-06': { status: 'PASS', outputs: { 'security/cgroup-quotas.json': 'ddd' } } },
  tools: { 'gcc-12': '12.2.0-14' },
  component: null,
  source_date_epoch: 1700000000,
};

describe('describeChange', () => {
  it('names a locked package whose version or hash moved (a step that consumes the lock)', () => {
    const before = { ...base, locked: { 'linux-source-6.1:all': `6.1.192-2 ${'a'.repeat(64)}`, 'ovmf:all': `2022.11-6 ${'b'.repeat(64)}` } };
    const after = { ...base, locked: { 'linux-source-6.1:all': `6.1.192-3 ${'c'.repeat(64)}`, 'ovmf:all': `2022.11-6 ${'b'.repeat(64)}` } };
    expect(describeChange(before, after)).toEqual(['locked package linux-source-6.1:all changed']);
  });

  it('names a module-signing key that was made, replaced or dropped (a step that signs modules)', () => {
    const made = { ...base, module_signing_cert: null };
    const managed = { ...base, module_signing_cert: 'e'.repeat(64) };
    expect(describeChange(made, managed)).toEqual([`module-signing key changed (a key made per build -> certificate ${'e'.repeat(16)})`]);
    expect(describeChange(managed, { ...base, module_signing_cert: 'f'.repeat(64) })).toEqual([
      `module-signing key changed (certificate ${'e'.repeat(16)} -> certificate ${'f'.repeat(16)})`,
    ]);
  });

  it('names a build through the icecream cluster, and back (its kernel is not the local bytes)', () => {
    expect(describeChange(base, { ...base, compiled_by: 'icecream' })).toEqual(['compiled through the icecream cluster (--icecream) now, locally without a compiler cache before']);
    expect(describeChange({ ...base, compiled_by: 'icecream' }, base)).toEqual(['compiled locally without a compiler cache now, through the icecream cluster (--icecream) before']);
    expect(describeChange(base, { ...base, compiled_by: 'ccache' })).toEqual(['compiled through the compiler cache (ccache) now, locally without a compiler cache before']);
  });

  it('no earlier result', () => {
    expect(describeChange(undefined, base)).toEqual(['no earlier result']);
    expect(describeChange({}, base)).toEqual(['no earlier result']);
  });

  it('names each changed part', () => {
    const after = {
      ...base,
      spec: { ...base.spec, timeout_minutes: 60, network: true },
      step: { name: 'kernel-build', version: 4 },
      inputs: { 'kernel-config/common.config': 'AAA', 'kernel-config/aarch64.config': 'eee' },
      frozen_specs: { 'specs/p1/cgroup-quotas.yaml': 'CCC' },
      deps: { 'C-06': { status: 'PASS', outputs: { 'security/cgroup-quotas.json': 'DDD' } } },
      tools: { 'gcc-12': '12.2.0-15' },
      source_date_epoch: 1700000001,
    };
    expect(describeChange(base, after)).toEqual([
      'task spec changed (network, timeout_minutes)',
      'step implementation changed (kernel-build v3 -> kernel-build v4)',
      'input kernel-config/aarch64.config added',
      'input kernel-config/common.config (aaa -> AAA)',
      'input kernel-config/x86_64.config removed',
      'frozen spec specs/p1/cgroup-quotas.yaml (ccc -> CCC)',
      'tool gcc-12 (12.2.0-14 -> 12.2.0-15)',
      'outputs of C-06 changed (security/cgroup-quotas.json)',
      'SOURCE_DATE_EPOCH changed',
    ]);
  });

  it('a dependency whose status changed, added or removed', () => {
    expect(describeChange(base, { ...base, deps: { 'C-06': { status: 'NOT_CONFIGURED', outputs: {} } } })).toEqual(['dependency C-06 is now NOT_CONFIGURED (was PASS)']);
    expect(describeChange(base, { ...base, deps: {} })).toEqual(['dependency C-06 removed']);
  });

  it('many changed dependency outputs are counted, not all listed', () => {
    const outs = (v: string) => Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((f) => [`kernel-engineer/x86_64/${f}`, v]));
    expect(describeChange({ ...base, deps: { 'A-01@x86_64': { status: 'PASS', outputs: outs('1') } } }, { ...base, deps: { 'A-01@x86_64': { status: 'PASS', outputs: outs('2') } } })).toEqual([
      'outputs of A-01@x86_64 changed (kernel-engineer/x86_64/a, kernel-engineer/x86_64/b, kernel-engineer/x86_64/c +2 more)',
    ]);
  });

  it('nothing recorded differs: the clawos-build version did', () => {
    expect(describeChange(base, { ...base })).toEqual(['clawos-build version changed']);
  });
});
