/**
 * `clawos-build validate` on a throwaway repository (the CLI finds its repo
 * from its own location, so the repo gets a copy of dist/): a misspelt step
 * parameter and a schema-invalid gates.yaml are file:line:col errors, exit 3.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cp, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';
import { makeTestRepo, OPEN_GATES as GATES, taskYaml, type TestRepo } from './helpers/test-repo.js';

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

async function repoWithCli(gates: string): Promise<TestRepo> {
  const real = repoRootDir();
  repo = await makeTestRepo(gates);
  await cp(join(real, 'dist'), join(repo.root, 'dist'), { recursive: true });
  await mkdir(join(repo.root, 'bin'), { recursive: true });
  await cp(join(real, 'bin', 'clawos-build.js'), join(repo.root, 'bin', 'clawos-build.js'));
  await symlink(join(real, 'node_modules'), join(repo.root, 'node_modules'));
  return repo;
}

const kernelTask = (withBlock: string) =>
  taskYaml({ id: 'A-01', phase: 'P2', agent: 'kernel-engineer', outputs: ['kernel-engineer/k'], action: `uses: kernel-build\nwith:\n${withBlock}` });

async function validate(r: TestRepo) {
  return run(['node', join(r.root, 'bin', 'clawos-build.js'), 'validate'], { tailLines: 100 });
}

describe('clawos-build validate checks the data', () => {
  it('passes a task with a correct `with:`', async () => {
    const r = await repoWithCli(GATES);
    await r.writeTask('A-01', kernelTask('  source: kernel-config/source.yaml'));
    const out = await validate(r);
    expect(out.tail).toContain('1 task specs valid (1 required, 0 optional)');
    expect(out.exitCode).toBe(0);
  });

  it('a misspelt step parameter: file:line:col, exit 3', async () => {
    const r = await repoWithCli(GATES);
    await r.writeTask('A-01', kernelTask('  srouce: kernel-config/source.yaml'));
    const out = await validate(r);
    expect(out.tail).toContain('tasks/A-01.yaml:15:3: kernel-build: unknown parameter "srouce" in with (known: source)');
    expect(out.exitCode).toBe(3);
  });

  it('a schema-invalid gates.yaml: file:line:col, exit 3', async () => {
    const r = await repoWithCli(GATES.replace('require_arches: [] }\n  P2', 'require_arch: [] }\n  P2'));
    await r.writeTask('A-01', kernelTask('  source: kernel-config/source.yaml'));
    const out = await validate(r);
    expect(out.tail).toContain('specs/gates.yaml:2:7: missing required field "require_arches" in gates.P1');
    expect(out.tail).toContain('specs/gates.yaml:2:49: unknown field "require_arch" in gates.P1');
    expect(out.exitCode).toBe(3);
  });
});
