/** A throwaway repository (specs/ copied from the real one) with its own tasks and gates, for pipeline tests. */
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir } from 'tmp-promise';
import { repoRootDir } from '../../lib/repo-root.js';
import { LOCK_FILE, renderLock, type InputLock } from '../../pipeline/catalog/input-lock.js';
import { refreezeIfStale } from './test-freeze.js';

export interface TestRepo {
  root: string;
  buildDir: string;
  cleanup(): Promise<void>;
  writeTask(id: string, yaml: string): Promise<void>;
  write(rel: string, text: string): Promise<void>;
}

/** Four gates that require nothing: for tests about tasks, not gate rules. */
export const OPEN_GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;

export async function makeTestRepo(gates: string): Promise<TestRepo> {
  const d = await dir({ unsafeCleanup: true });
  const real = repoRootDir();
  await cp(join(real, 'specs'), join(d.path, 'repo', 'specs'), { recursive: true });
  await cp(join(real, 'package.json'), join(d.path, 'repo', 'package.json'));
  await cp(join(real, LOCK_FILE), join(d.path, 'repo', LOCK_FILE));
  await mkdir(join(d.path, 'repo', 'tasks'), { recursive: true });
  const root = join(d.path, 'repo');
  await writeFile(join(root, 'specs', 'gates.yaml'), gates);
  await refreezeIfStale(root);
  return {
    root,
    buildDir: join(d.path, 'build'),
    cleanup: () => d.cleanup(),
    writeTask: (id, yaml) => writeFile(join(root, 'tasks', `${id}.yaml`), yaml),
    write: async (rel, text) => {
      await mkdir(join(root, rel, '..'), { recursive: true });
      await writeFile(join(root, rel), text);
    },
  };
}

/** A task spec with defaults; `extra` is appended YAML. */
export function taskYaml(o: {
  id: string;
  phase?: string;
  agent?: string;
  deps?: string[];
  inputs?: string[];
  outputs?: string[];
  perArch?: boolean;
  timeout?: number;
  validation?: string | null;
  rollback?: string | null;
  action: string;
}): string {
  const list = (xs: string[] = []) => (xs.length ? `\n${xs.map((x) => `  - ${JSON.stringify(x)}`).join('\n')}` : ' []');
  return [
    `task_id: ${o.id}`,
    `title: test task ${o.id}`,
    `phase: ${o.phase ?? 'P1'}`,
    `agent: ${o.agent ?? 'build-engineer'}`,
    ...(o.perArch ? ['per_arch: true'] : []),
    `depends_on:${list(o.deps)}`,
    `inputs:${list(o.inputs)}`,
    `outputs:${list(o.outputs)}`,
    `validation_cmd: ${o.validation ? JSON.stringify(o.validation) : 'null'}`,
    `rollback_cmd: ${o.rollback ? JSON.stringify(o.rollback) : 'null'}`,
    `timeout_minutes: ${o.timeout ?? 1}`,
    'frozen_spec_deps: []',
    o.action,
    '',
  ].join('\n');
}

/**
 * An inputs.lock.yaml for a test repository: the stand-in kernel tarball (an
 * absolute path, pinned as a file the "host" has, so nothing is downloaded)
 * and the Debian packages the stand-in steps record.
 */
export async function writeTestLock(root: string, o: { kernelTarball: string; kernelSha256: string; debs?: { name: string; arch: string; version: string; sha256: string }[] }): Promise<void> {
  const lock: InputLock = {
    lock_version: 1,
    distribution: 'test',
    debs: [
      { name: 'linux-source-test', arch: 'all', version: '1', sha256: o.kernelSha256, size: 1, why: 'stand-in kernel source', files: { [o.kernelTarball.replace(/^\/+/, '')]: o.kernelSha256 } },
      ...(o.debs ?? []).map((d) => ({ ...d, size: 1, why: 'stand-in' })),
    ],
    host_tools: {},
  };
  await writeFile(join(root, LOCK_FILE), renderLock(lock));
}
