import { describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { compileSchema } from '../../lib/data.js';
import { loadTasks } from './load-tasks.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { builtinSteps } from '../steps/index.js';

const repoRoot = repoRootDir();
const steps = builtinSteps();

const base = (id: string, extra: string) => `task_id: ${id}
title: Test task ${id}
phase: P2
agent: kernel-engineer
depends_on: []
inputs: []
outputs: []
validation_cmd: null
rollback_cmd: null
timeout_minutes: 1
frozen_spec_deps: []
${extra}`;

async function diagnosticsOf(files: Record<string, string>): Promise<string[]> {
  const d = await dir({ unsafeCleanup: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(d.path, name), text);
  const r = await loadTasks({ repoRoot, tasksDir: d.path, stepNames: new Set(steps.keys()), steps });
  await d.cleanup();
  return r.diagnostics.map((x) => formatDiagnostic(x).replaceAll(`${d.path}/`, ''));
}

describe('step parameters', () => {
  it('every built-in step declares a strict schema for its `with:`', () => {
    for (const s of steps.values()) {
      expect(s.params, s.name).toBeDefined();
      expect(s.params!.additionalProperties, s.name).toBe(false);
      expect(() => compileSchema(s.params!), s.name).not.toThrow();
    }
  });

  it('a misspelt parameter is reported where it is, with the known ones', async () => {
    expect(await diagnosticsOf({ 'A-01.yaml': base('A-01', 'uses: kernel-build\nwith:\n  srouce: kernel-config/source.yaml\n') })).toEqual([
      'A-01.yaml:14:3: kernel-build: unknown parameter "srouce" in with (known: source)',
    ]);
  });

  it('checks each backend alternative against its own step, and the parameter types', async () => {
    const d = await diagnosticsOf({
      'A-04.yaml': base(
        'A-04',
        'uses: rootfs\nwith:\n  kernel_dir: k\n  lsms: yes\nbackends:\n  buildroot:\n    uses: buildroot\n    with:\n      extras:\n        - { from: a, too: b }\n',
      ),
    });
    expect(d).toEqual([
      'A-04.yaml:15:9: rootfs: with.lsms: must be array',
      'A-04.yaml:21:11: buildroot: missing required field "to" in backends.buildroot.with.extras.0',
      'A-04.yaml:21:22: buildroot: unknown field "too" in backends.buildroot.with.extras.0',
    ]);
  });

  it('a step with required parameters and no `with:` is reported at its `uses:`', async () => {
    expect(await diagnosticsOf({ 'A-03.yaml': base('A-03', 'uses: iso\n') })).toEqual([
      'A-03.yaml:12:7: iso: missing required field "kernel" in with',
      'A-03.yaml:12:7: iso: missing required field "initramfs" in with',
    ]);
  });

  it('a boot with no expected checks, or a guest check with none, is invalid: nothing would be checked (issue 11)', async () => {
    expect(
      await diagnosticsOf({
        'G-06.yaml': base('G-06', 'uses: qemu-boot\nwith:\n  iso: build-engineer/x86_64/clawos-x86_64.iso\n'),
        'C-03.yaml': base('C-03', 'uses: guest-check\nwith:\n  boot_dir: b\n  checks: []\n'),
        'C-04.yaml': base('C-04', 'uses: guest-check\nwith:\n  boot_dir: b\n'),
      }),
    ).toEqual([
      'C-03.yaml:15:11: guest-check: with.checks: must NOT have fewer than 1 items',
      'C-04.yaml:14:3: guest-check: missing required field "checks" in with',
      'G-06.yaml:14:3: qemu-boot: missing required field "expected_checks_file" in with',
    ]);
  });
});
