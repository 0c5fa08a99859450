/**
 * --icecream through the scheduler, with real bubblewrap: a step that declares
 * Step.icecream gets the run's setting and the host's network (icecc's client
 * connects to the daemons itself), every other step keeps its sandbox as it was;
 * without icecc the run stops before it starts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestRepo, OPEN_GATES as GATES, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { runCli } from './helpers/cli.js';
import { openRun } from '../pipeline/run/session.js';
import { runPhases } from '../pipeline/run/phases.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { RunEvent } from '../pipeline/run/events.js';
import type { Step } from '../pipeline/catalog/step.js';
import { pass } from '../pipeline/catalog/outcome.js';
import { readAllRuns } from '../vault/vault-history.js';
import { onPath } from '../pipeline/kernel/icecc.js';

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

/** Counts the network interfaces its sandbox sees (/proc/net/dev: the reader's namespace) and reports ctx.icecream. */
const probe = (name: string, icecream: boolean): Step => ({
  name,
  version: 1,
  icecream,
  toolPackages: () => [],
  async run(ctx) {
    const r = await ctx.run(['grep', '-c', ':', '/proc/net/dev'], { captureStdout: true });
    return pass(`${r.stdout.trim()} interface(s); icecream ${JSON.stringify(ctx.icecream ?? null)}`);
  },
});

/** P1 of the test repo with the two probe steps; `icecream` as --icecream gives it. */
async function runP1(r: TestRepo, icecream?: { on: boolean }): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  const rc = await openRun({
    repoRoot: r.root,
    buildDir: r.buildDir,
    arches: ['x86_64'],
    jobs: 2,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    heartbeatMs: 0,
    steps: new Map([
      ['ice', probe('ice', true)],
      ['plain', probe('plain', false)],
    ]),
    ...(icecream ? { icecream } : {}),
  });
  await runPhases(rc, ['P1'], await loadGateSpecs(r.root));
  return events;
}

describe.skipIf(!onPath('icecc', process.env.PATH))('--icecream and the sandbox', () => {
  it('gives a Step.icecream step the setting and the host network, says why in its log, and nothing to other steps', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'uses: ice' }));
    await repo.writeTask('A-02', taskYaml({ id: 'A-02', action: 'uses: plain' }));
    const events = await runP1(repo, { on: true });
    const ends = Object.fromEntries(events.filter((e) => e.type === 'task-end').map((e) => [(e as { id: string }).id, e])) as Record<string, { message: string }>;
    const hostIfaces = (await readFile('/proc/net/dev', 'utf8')).split('\n').filter((l) => l.includes(':')).length;
    expect(ends['A-01']!.message).toBe(`${hostIfaces} interface(s); icecream {"jobs":8}`);
    expect(ends['A-02']!.message).toBe('1 interface(s); icecream null');
    const vault = (await readAllRuns(repo.buildDir)).at(-1)!.events;
    expect(vault[0]!.payload.icecream).toEqual({ jobs: 8 });
    const sandboxOf = (id: string) => vault.find((e) => e.type === 'task-end' && e.payload.task === id)!.payload.sandbox;
    expect(sandboxOf('A-01')).toMatchObject({ sandbox: 'bwrap', network: true });
    expect(sandboxOf('A-02')).toMatchObject({ sandbox: 'bwrap', network: false });
    const log = await readFile(join(repo.buildDir, 'logs', `agent-build-engineer-${new Date().toISOString().slice(0, 10)}.log`), 'utf8');
    expect(log).toContain("; network the host's, for the icecream cluster (--icecream)");
    // One result with or without the cluster: a whole kernel through it is the local build's bytes (README Measured).
    const state = JSON.parse(await readFile(join(repo.buildDir, 'state.json'), 'utf8')) as { instances: Record<string, { fingerprint_parts: { compiled_by?: string } }> };
    expect(state.instances['A-01']!.fingerprint_parts.compiled_by).toBeUndefined();
    // Without --icecream, nothing runs again.
    const again = await runP1(repo);
    expect(again.filter((e) => e.type === 'task-start')).toEqual([]);
    expect(again.filter((e) => e.type === 'task-up-to-date').map((e) => (e as { id: string }).id).sort()).toEqual(['A-01', 'A-02']);
  });
});

describe('--icecream without icecc', () => {
  it('stops the run before it starts (exit 4, one line and the fix)', async () => {
    repo = await makeTestRepo(GATES);
    // A PATH with node and nothing else.
    const bin = join(repo.root, '..', 'bin');
    await mkdir(bin);
    await symlink(process.execPath, join(bin, 'node'));
    const r = await runCli(['p1', '--icecream', '--build-dir', repo.buildDir, '--no-sandbox'], { cwd: repo.root, env: { PATH: bin } });
    expect(r.exitCode).toBe(4);
    expect(r.stderr[0]).toBe('clawos-build: icecream: icecc is not on PATH');
  });
});
