/**
 * The Buildroot backend's bad input through the real scheduler: a tarball that is
 * not the pinned one stops the task as INFRA_ERROR `input-missing`, once (no retry
 * can cure it), nothing is extracted, and the run's exit code is 4.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestRepo, OPEN_GATES as GATES, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { openRun } from '../pipeline/run/session.js';
import { runPhases } from '../pipeline/run/phases.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { RunEvent } from '../pipeline/run/events.js';
import { repoRootDir } from '../lib/repo-root.js';
import { sha256File } from '../lib/hash.js';
import { loadOfflineSpec } from '../pipeline/rootfs/buildroot-offline.js';
import { runExitCode } from '../bin/commands/run-phases.js';
import { builtinSteps } from '../pipeline/steps/index.js';

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

describe('Buildroot backend: a tarball that is not the pinned one', () => {
  it('is INFRA_ERROR input-missing after one attempt, extracts nothing, and the run exits 4', async () => {
    repo = await makeTestRepo(GATES);
    await cp(join(repoRootDir(), 'buildroot-external'), join(repo.root, 'buildroot-external'), { recursive: true });
    const tarball = join(repo.root, '..', 'buildroot-2026.08-rc1.tar.gz');
    await writeFile(tarball, 'not Buildroot\n');
    const actual = await sha256File(tarball);
    for (const f of ['kernel.release', 'config', 'modules/clawos_canary.ko', 'modules/clawos_canary-unsigned.ko']) {
      await mkdir(join(repo.buildDir, 'kernel', f, '..'), { recursive: true });
      await writeFile(join(repo.buildDir, 'kernel', f), 'x\n');
    }
    await repo.writeTask(
      'A-04',
      taskYaml({ id: 'A-04', perArch: true, outputs: ['build-engineer/{arch}/initramfs.cpio.gz'], action: `uses: buildroot\nwith:\n  buildroot: ${JSON.stringify(tarball)}\n  kernel_dir: kernel` }),
    );
    const events: RunEvent[] = [];
    const rc = await openRun({
      repoRoot: repo.root,
      buildDir: repo.buildDir,
      arches: ['x86_64'],
      jobs: 1,
      emit: (e) => events.push(e),
      signal: new AbortController().signal,
      heartbeatMs: 0,
      steps: builtinSteps(),
      retry: { retries: 2, baseDelayMs: 0, factor: 2, maxDelayMs: 0 },
    });
    const results = await runPhases(rc, ['P1'], await loadGateSpecs(repo.root));
    const pinned = (await loadOfflineSpec(repo.root)).buildroot.sha256;
    const end = events.find((e) => e.type === 'task-end') as { status: string; reason?: string; message: string } | undefined;
    expect(end).toMatchObject({ status: 'INFRA_ERROR', reason: 'input-missing' });
    expect(end!.message).toBe(
      `buildroot: ${tarball} has sha256 ${actual}, but ${pinned} is pinned: refusing to extract it; ` +
        'fix: give the Buildroot tarball whose sha256 is pinned (specs/buildroot-offline.yaml buildroot.sha256, or --buildroot-sha256 for another release you have checked)',
    );
    // One attempt: retrying a wrong input gives the same answer.
    expect(events.filter((e) => e.type === 'task-attempt')).toEqual([]);
    const cacheBuildroot = join(rc.cacheDir, 'buildroot');
    expect(existsSync(cacheBuildroot) ? await readdir(cacheBuildroot) : []).toEqual([]);
    const records = results.flatMap((r) => r.records);
    expect(runExitCode({ aborted: false, bad: records.filter((r) => r.status !== 'PASS'), nogo: results.filter((r) => r.gate.recommendation !== 'GO').length, ranAll: false })).toBe(4);
  });
});
