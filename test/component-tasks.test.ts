// Component tasks (issue 11, item 6): building is not proving. A configured
// component that compiles is BUILT, never PASS, unless the task's validation_cmd
// passes; a gate never counts BUILT as passed and says NO-GO when it requires the
// task. The download of a URL source runs in the task's sandbox and obeys its
// `network:` declaration like every other command (RULE-006).
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { makeTestRepo, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { openRun } from '../pipeline/run/session.js';
import { finishRun, runPhases } from '../pipeline/run/phases.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { RunEvent } from '../pipeline/run/events.js';
import { readAllRuns } from '../vault/vault-history.js';
import { sha256File } from '../lib/hash.js';
import { run } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';

const gates = (requireP1: string[] = []) => `gates:
  P1: { title: One, rule: r1, require_pass: [${requireP1.join(', ')}], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;
const CANARY = join(repoRootDir(), 'test/fixtures/components/canary-hello');

let repo: TestRepo | null = null;
let server: Server | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

async function runP1(r: TestRepo, config: string) {
  const events: RunEvent[] = [];
  const rc = await openRun({
    repoRoot: r.root,
    buildDir: r.buildDir,
    arches: ['x86_64'],
    jobs: 1,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    heartbeatMs: 0,
    configFile: config,
  });
  let results: Awaited<ReturnType<typeof runPhases>> = [];
  try {
    results = await runPhases(rc, ['P1'], await loadGateSpecs(r.root));
  } finally {
    await finishRun(rc, results, { keyDir: join(r.root, 'no-keys') });
  }
  const end = events.find((e) => e.type === 'task-end') as { status: string; reason?: string; message: string };
  return { end, gate: results[0]!.gate, rc };
}

async function configure(r: TestRepo, source: string): Promise<string> {
  const cfg = join(r.root, 'local.yaml');
  await writeFile(cfg, `components:\n  canary-hello:\n    source: ${source}\n    build: make hello\n    outputs: [hello]\n`);
  return cfg;
}

const componentTask = (extra: { validation?: string; network?: boolean } = {}) =>
  taskYaml({ id: 'D-01', agent: 'core-dev', validation: extra.validation ?? null, action: `${extra.network ? 'network: true\n' : ''}component: canary-hello` });

const BUILT_MESSAGE =
  'component canary-hello built: hello; BUILT, not PASS: nothing proves it works (tasks/D-01.yaml has no validation_cmd, and no in-guest check covers it)';

describe('a component task that only compiled', () => {
  it('is BUILT, not PASS: in the task end, the state, the vault event, the run-end count and the gate coverage', async () => {
    repo = await makeTestRepo(gates());
    await repo.writeTask('D-01', componentTask());
    const { end, gate, rc } = await runP1(repo, await configure(repo, `{ path: ${CANARY} }`));
    expect(end).toMatchObject({ status: 'BUILT', reason: 'unvalidated', message: BUILT_MESSAGE });
    // Its outputs are still recorded and hashed: BUILT is honest about what exists.
    const rec = rc.state.instance('D-01')!;
    expect(rec.status).toBe('BUILT');
    expect(rec.outputs['core-dev/hello']!.sha256).toBe(await sha256File(join(repo.buildDir, 'core-dev/hello')));
    expect(gate.recommendation).toBe('GO');
    expect(gate.coverage.passed).toEqual([]);
    expect(gate.coverage.built).toEqual(['D-01']);
    expect(gate.coverage.line).toBe('0/1 task instances passed; none NOT_CONFIGURED; BUILT (built, not validated, not counted as passed): D-01');
    expect(gate.checks[0]).toMatchObject({ id: 'D-01', status: 'built', detail: BUILT_MESSAGE });
    const md = await readFile(join(repo.buildDir, 'gates/P1/gate-report.md'), 'utf8');
    expect(md).toContain(`| D-01 test task D-01 | BUILT | ${BUILT_MESSAGE} |`);
    const events = (await readAllRuns(repo.buildDir))[0]!.events;
    expect(events.find((e) => e.type === 'task-end')!.payload).toMatchObject({ task: 'D-01', status: 'BUILT', reason: 'unvalidated' });
    expect(events.find((e) => e.type === 'run-end')!.payload).toMatchObject({ tasks: { total: 1, passed: 0, built: 1, not_configured: 0, other: 0 } });
  });

  it('makes a gate that requires the task NO-GO, naming it', async () => {
    repo = await makeTestRepo(gates(['D-01']));
    await repo.writeTask('D-01', componentTask());
    const { gate } = await runP1(repo, await configure(repo, `{ path: ${CANARY} }`));
    expect(gate.recommendation).toBe('NO-GO');
    expect(gate.blockers).toEqual([
      `D-01: required to PASS for gate P1, but only BUILT (built, not validated: no validation_cmd or in-guest check proves it): ${BUILT_MESSAGE}`,
    ]);
  });

  it('is PASS once its validation_cmd proves the output works, and FAIL when it does not', async () => {
    repo = await makeTestRepo(gates(['D-01']));
    await repo.writeTask('D-01', componentTask({ validation: 'test "$(./hello)" = "hello from the canary-hello component"' }));
    const cfg = await configure(repo, `{ path: ${CANARY} }`);
    const ok = await runP1(repo, cfg);
    expect(ok.end).toEqual(expect.objectContaining({ status: 'PASS', message: 'component canary-hello built: hello; validated: validation_cmd passed' }));
    expect(ok.end.reason).toBeUndefined();
    expect(ok.gate.recommendation).toBe('GO');
    expect(ok.gate.coverage.line).toBe('1/1 task instances passed; none NOT_CONFIGURED');

    await repo.writeTask('D-01', componentTask({ validation: 'test "$(./hello)" = "something else"' }));
    const bad = await runP1(repo, cfg);
    expect(bad.end).toMatchObject({ status: 'FAIL', reason: 'validation-failed', message: 'validation_cmd exited 1: test "$(./hello)" = "something else"' });
  });
});

describe("a component's download", () => {
  /** The canary's sources as a tarball, served on 127.0.0.1. */
  async function serveTarball(r: TestRepo): Promise<{ url: string; sha256: string; hits: () => number }> {
    const tar = join(r.root, 'canary.tar');
    const t = await run(['tar', '-cf', tar, '-C', CANARY, '.']);
    expect(t.ok).toBe(true);
    const body = await readFile(tar);
    let hits = 0;
    server = createServer((_req, res) => {
      hits++;
      res.end(body);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}/canary.tar`, sha256: await sha256File(tar), hits: () => hits };
  }

  it('is refused without network: true in the task (RULE-006), and reaches nothing', async () => {
    repo = await makeTestRepo(gates());
    await repo.writeTask('D-01', componentTask());
    const src = await serveTarball(repo);
    const { end } = await runP1(repo, await configure(repo, `{ url: "${src.url}", sha256: ${src.sha256} }`));
    expect(end).toMatchObject({
      status: 'FAIL',
      reason: 'rule-006-network-undeclared',
      message: `RULE-006: component canary-hello: source ${src.url} must be downloaded, but network: true is not declared in tasks/D-01.yaml, so its sandbox has none: declare it there, or set components.canary-hello.source to a local path or a file:// tarball`,
    });
    expect(src.hits()).toBe(0);
  });

  it('runs in the task sandbox when network: true is declared, then is kept in the task dir and not fetched again', async () => {
    repo = await makeTestRepo(gates());
    await repo.writeTask('D-01', componentTask({ network: true }));
    const src = await serveTarball(repo);
    const cfg = await configure(repo, `{ url: "${src.url}", sha256: ${src.sha256} }`);
    const { end } = await runP1(repo, cfg);
    expect(end).toMatchObject({ status: 'BUILT', message: BUILT_MESSAGE });
    expect(src.hits()).toBe(1);
    // The agent log shows the download as a sandboxed command (bwrap … -- node -e … URL).
    const logs = await run(['bash', '-c', `cat "${repo.buildDir}"/logs/agent-core-dev-*.log`], { captureStdout: true });
    const line = logs.stdout.split('\n').find((l) => l.includes(src.url) && l.includes(' -e '));
    expect(line).toMatch(/bwrap .* -- \S*node -e /);
    expect(line).not.toContain('--unshare-net');
    expect(await sha256File(join(repo.buildDir, `core-dev/downloads/canary-hello-${src.sha256.slice(0, 16)}.tar`))).toBe(src.sha256);

    // A changed build command re-runs the task; the pinned tarball is already there.
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('make hello', 'make hello && true'));
    const again = await runP1(repo, cfg);
    expect(again.end.status).toBe('BUILT');
    expect(src.hits()).toBe(1);
  });
});
