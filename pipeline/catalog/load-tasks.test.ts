import { describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { loadTasks } from './load-tasks.js';
import { formatDiagnostic } from '../../lib/yaml-source.js';
import { repoRootDir } from '../../lib/repo-root.js';
import { readdir } from 'node:fs/promises';
import { builtinSteps } from '../steps/index.js';

const repoRoot = repoRootDir();
const stepNames = new Set(['kernel-build', 'spec-freeze', 'rootfs', 'iso', 'qemu-boot', 'guest-check', 'kconfig-assert']);

const base = (id: string, extra = '') => `task_id: ${id}
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

async function withTasks(files: Record<string, string>) {
  const d = await dir({ unsafeCleanup: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(d.path, name), text);
  const r = await loadTasks({ repoRoot, tasksDir: d.path, stepNames });
  await d.cleanup();
  return r.diagnostics.map((x) => formatDiagnostic(x).replaceAll(`${d.path}/`, ''));
}

describe('loadTasks on the real catalog', () => {
  it('loads every task spec of tasks/ (the 48 of the ClawOS catalog and any beyond it) without a diagnostic', async () => {
    const { catalog, diagnostics } = await loadTasks({ repoRoot, stepNames: new Set(builtinSteps().keys()) });
    expect(diagnostics.map(formatDiagnostic)).toEqual([]);
    const files = (await readdir(join(repoRoot, 'tasks'))).filter((f) => f.endsWith('.yaml'));
    expect(catalog.tasks.size).toBe(files.length);
    const catalogIds = [...'ABCDEFG'].flatMap((d) => Array.from({ length: 9 }, (_, i) => `${d}-0${i + 1}`));
    const present = catalogIds.filter((id) => catalog.tasks.has(id));
    expect(present.length).toBeGreaterThanOrEqual(48);
    expect(catalog.tasks.get('F-04')!.spec.optional).toBe(true);
    const ids = [...catalog.tasks.keys()].sort();
    expect(ids[0]).toBe('A-01');
    expect(ids.at(-1)).toBe('G-09');
  });

  it('reports an unknown step in a backend alternative where it is', async () => {
    const d = await withTasks({
      'A-04.yaml': base('A-04', 'uses: rootfs\nbackends:\n  buildroot:\n    uses: nope\n'),
    });
    expect(d).toEqual([
      'A-04.yaml:15:11: unknown built-in step "nope" (known: guest-check, iso, kconfig-assert, kernel-build, qemu-boot, rootfs, spec-freeze)',
    ]);
  });
});

describe('loadTasks diagnostics', () => {
  it('reports an unknown field and a missing field with line and column', async () => {
    const d = await withTasks({
      'A-01.yaml': base('A-01', 'uses: kernel-build\nbogus: 1\n'),
      'A-02.yaml': base('A-02', 'uses: kernel-build\n').replace('timeout_minutes: 1\n', ''),
    });
    expect(d).toEqual(['A-01.yaml:13:1: unknown field "bogus"', 'A-02.yaml:1:1: missing required field "timeout_minutes"']);
  });

  it('reports a malformed task_id and YAML that does not parse', async () => {
    const d = await withTasks({
      'A-1.yaml': base('A-1', 'uses: kernel-build\n'),
      'B-01.yaml': 'task_id: B-01\ntitle: [unclosed\n',
    });
    expect(d).toEqual([
      'A-1.yaml:1:10: task_id: "A-1" does not match ^[A-G]-[0-9]{2}$',
      expect.stringMatching(/^B-01\.yaml:3:1: /),
    ]);
  });

  it('reports a duplicate id, and a malformed id inside depends_on', async () => {
    const d = await withTasks({
      'A-01.yaml': base('A-01', 'uses: kernel-build\n'),
      'A-02.yaml': base('A-01', 'uses: kernel-build\n'),
      'A-03.yaml': base('A-03', 'uses: kernel-build\n').replace('depends_on: []', 'depends_on: [Z-99]'),
    });
    expect(d).toEqual([
      'A-02.yaml:1:10: duplicate task_id A-01: already defined in A-01.yaml',
      'A-03.yaml:5:14: depends_on.0: "Z-99" does not match ^[A-G]-[0-9]{2}$',
    ]);
  });

  it('names a dangling dependency and a later-phase dependency at the list item', async () => {
    const d = await withTasks({
      'A-01.yaml': base('A-01', 'uses: kernel-build\n').replace('depends_on: []', 'depends_on:\n  - G-09\n  - A-03'),
      'A-03.yaml': base('A-03', 'uses: kernel-build\n').replace('phase: P2', 'phase: P3'),
    });
    expect(d).toEqual([
      'A-01.yaml:6:5: depends_on names no task: G-09',
      'A-01.yaml:7:5: A-01 (phase P2) depends on A-03 of the later phase P3',
    ]);
  });

  it('prints the whole path of a cycle', async () => {
    const d = await withTasks({
      'A-01.yaml': base('A-01', 'uses: kernel-build\n').replace('depends_on: []', 'depends_on: [A-03]'),
      'A-02.yaml': base('A-02', 'uses: kernel-build\n').replace('depends_on: []', 'depends_on: [A-01]'),
      'A-03.yaml': base('A-03', 'uses: kernel-build\n').replace('depends_on: []', 'depends_on: [A-02]'),
    });
    expect(d).toEqual(['A-02.yaml:5:14: dependency cycle: A-01 -> A-03 -> A-02 -> A-01']);
  });

  it('reports two tasks claiming the same output, and an output outside the agent directory', async () => {
    const d = await withTasks({
      'A-01.yaml': base('A-01', 'uses: kernel-build\n').replace('outputs: []', 'outputs: [kernel-engineer/x/vmlinuz]'),
      'A-02.yaml': base('A-02', 'uses: kernel-build\n').replace('outputs: []', 'outputs:\n  - kernel-engineer/x\n  - security/y'),
    });
    expect(d).toEqual([
      'A-02.yaml:8:5: output kernel-engineer/x is also claimed by A-01 (A-01.yaml: kernel-engineer/x/vmlinuz)',
      'A-02.yaml:9:5: output security/y lies outside the directory of agent kernel-engineer (kernel-engineer/): each agent writes only its own directory (RULE-001)',
    ]);
  });

  it('refuses a spec with two actions, an unknown step and an unknown agent', async () => {
    const d = await withTasks({
      'A-01.yaml': base('A-01', 'uses: kernel-build\nrun: "true"\n'),
      'A-02.yaml': base('A-02', 'uses: kernel-bild\n').replace('agent: kernel-engineer', 'agent: kernel-wizard'),
    });
    expect(d).toContain('A-02.yaml:4:8: unknown agent "kernel-wizard" (known: kernel-engineer, build-engineer, devops, security, ebpf, core-dev, wasm, fs-engineer, observability, analysis, infra, network, qa, release)');
    expect(d).toContain('A-02.yaml:12:7: unknown built-in step "kernel-bild" (known: guest-check, iso, kconfig-assert, kernel-build, qemu-boot, rootfs, spec-freeze)');
    expect(d).toContain('A-01.yaml:12:1: a task has exactly one action (run, uses, component or pending); this one has run and uses');
  });
});

