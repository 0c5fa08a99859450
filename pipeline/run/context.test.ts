/**
 * toolPackagesOf hands out a copy. ebpf-build returns the arch data's own
 * `ebpf.tool_packages` list; computeFingerprint sorts what it gets, and when
 * that was the list itself the arch data changed under the run: every
 * instance of that arch hashed differently afterwards, and a fresh `all`
 * stopped before P3 ("gate P2 passed on other inputs", 2026-12-06).
 */
import { describe, expect, it } from 'vitest';
import { realpathSync } from 'node:fs';
import type { ArchSpec } from '../catalog/arch.js';
import type { Step } from '../catalog/step.js';
import type { TaskInstance } from '../catalog/task-spec.js';
import { builtinSteps } from '../steps/index.js';
import { loadArches } from '../catalog/arch.js';
import { toolPackagesOf } from './context.js';

describe('toolPackagesOf', () => {
  it('returns a copy of the arch data: sorting it leaves specs/arch as loaded', async () => {
    const arches = await loadArches(realpathSync('.'));
    const arch = arches.get('x86_64') as ArchSpec & { ebpf: { tool_packages: string[] } };
    const before = [...arch.ebpf.tool_packages];
    expect(before).not.toEqual([...before].sort());
    const steps = builtinSteps() as Map<string, Step>;
    const inst = { id: 'B-08@x86_64', arch: 'x86_64', deps: [], task: { spec: { uses: 'ebpf-build', with: {} } } } as unknown as TaskInstance;
    const got = toolPackagesOf({ steps, arches }, inst);
    expect(got).toEqual(before);
    got.sort();
    expect(arch.ebpf.tool_packages).toEqual(before);
  });
});
