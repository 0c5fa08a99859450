/**
 * Hermetic execution through the scheduler (openRun + runPhases), with REAL
 * bubblewrap: the rules are enforced on task commands, recorded in the vault
 * events, secrets never reach the build dir, INFRA_ERRORs are retried, and a
 * timeout leaves no process behind.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeTestRepo, OPEN_GATES as GATES, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { openRun } from '../pipeline/run/session.js';
import { runPhases } from '../pipeline/run/phases.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { RunEvent } from '../pipeline/run/events.js';
import type { Step } from '../pipeline/catalog/step.js';
import { fail, infra, pass } from '../pipeline/catalog/outcome.js';
import { run } from '../lib/proc.js';
import { NO_SANDBOX, type SandboxMode } from '../lib/sandbox.js';
import { readAllRuns } from '../vault/vault-history.js';
import { repoRootDir } from '../lib/repo-root.js';

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
  delete process.env.CLAWOS_TEST_TOKEN;
});

async function runP1(r: TestRepo, o: { sandbox?: SandboxMode; steps?: Map<string, Step>; secretEnv?: string[] } = {}) {
  const events: RunEvent[] = [];
  const rc = await openRun({
    repoRoot: r.root,
    buildDir: r.buildDir,
    arches: ['x86_64'],
    jobs: 2,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    heartbeatMs: 0,
    steps: o.steps ?? new Map(),
    sandbox: o.sandbox,
    secretEnv: o.secretEnv,
    retry: { retries: 2, baseDelayMs: 0, factor: 2, maxDelayMs: 0 },
  });
  const results = await runPhases(rc, ['P1'], await loadGateSpecs(r.root));
  const ends = Object.fromEntries(events.filter((e) => e.type === 'task-end').map((e) => [(e as { id: string }).id, e])) as Record<string, { status: string; reason?: string; message: string }>;
  const vault = (await readAllRuns(r.buildDir)).at(-1)!.events;
  return { events, ends, results, vault };
}

describe('hermetic execution through the scheduler', () => {
  it('RULE-001 and RULE-006 are enforced on run: tasks, and the sandbox is recorded in each task event', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: touch "$CLAWOS_BUILD_DIR/planted"' }));
    await repo.writeTask('A-02', taskYaml({ id: 'A-02', action: 'run: exec 3<>/dev/tcp/1.1.1.1/53' }));
    await repo.writeTask('A-03', taskYaml({ id: 'A-03', outputs: ['build-engineer/ifaces.txt'], action: 'run: grep -c ":" /proc/net/dev > ifaces.txt\nnetwork: true' }));
    await repo.writeTask('A-04', taskYaml({ id: 'A-04', outputs: ['build-engineer/ok.txt'], validation: 'test -s ok.txt', action: 'run: echo ok > ok.txt' }));
    const { ends, vault } = await runP1(repo);
    const b = repo.buildDir;
    expect(ends['A-01']).toMatchObject({
      status: 'FAIL',
      reason: 'rule-001-write-outside',
      message: `RULE-001: A-01 wrote outside its output directory: ${b}/planted (only ${b}/build-engineer and a private /tmp are writable)`,
    });
    expect(ends['A-02']).toMatchObject({
      status: 'FAIL',
      reason: 'rule-006-network-undeclared',
      message: 'RULE-006: A-02 reached for the network, but network: true is not declared in tasks/A-02.yaml, so its sandbox has none: bash: connect: Network is unreachable',
    });
    expect(ends['A-03']!.status).toBe('PASS');
    expect(Number(await readFile(join(b, 'build-engineer/ifaces.txt'), 'utf8'))).toBeGreaterThan(1);
    expect(ends['A-04']!.status).toBe('PASS');
    const taskEnd = (id: string) => vault.find((e) => e.type === 'task-end' && e.payload.task === id)!.payload;
    expect(taskEnd('A-02').sandbox).toMatchObject({ sandbox: 'bwrap', network: false, writable: [`${b}/build-engineer`] });
    expect(taskEnd('A-03').sandbox).toMatchObject({ sandbox: 'bwrap', network: true });
    expect(vault.find((e) => e.type === 'task-start' && e.payload.task === 'A-03')!.payload.sandbox).toMatchObject({ network: true });
    expect(vault[0]!.payload.sandbox).toMatchObject({ kind: 'bwrap' });
  });

  it('--no-sandbox runs unconfined and says so in every task event', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: touch "$CLAWOS_BUILD_DIR/planted"' }));
    const { ends, vault } = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(ends['A-01']!.status).toBe('PASS');
    expect(vault[0]!.payload.sandbox).toEqual({ kind: 'off', reason: '--no-sandbox' });
    expect(vault.find((e) => e.type === 'task-end')!.payload.sandbox).toMatchObject({ sandbox: 'off', sandbox_detail: '--no-sandbox' });
  });

  it('a PASS earned under --no-sandbox is not reused by a sandboxed run: the task runs again, and explain says why (issue 11)', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: echo ok > "$CLAWOS_OUT/a.txt"', outputs: ['build-engineer/a.txt'] }));
    const off = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(off.ends['A-01']!.status).toBe('PASS');
    const again = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(again.events.some((e) => e.type === 'task-start' && (e as { id: string }).id === 'A-01')).toBe(false);
    const on = await runP1(repo);
    expect(on.events.some((e) => e.type === 'task-start' && (e as { id: string }).id === 'A-01')).toBe(true);
    expect(on.ends['A-01']!.status).toBe('PASS');
    const start = on.vault.find((e) => e.type === 'task-start' && e.payload.task === 'A-01')!;
    expect(start.payload.why).toContain('sandbox mode changed (off -> bwrap)');
  });

  it('a sandbox violation the command ignored (|| true) still fails the task with the rule and the path (issue 11)', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: echo x > "$CLAWOS_BUILD_DIR/planted" || true; echo ok > "$CLAWOS_OUT/a.txt"', outputs: ['build-engineer/a.txt'] }));
    const { ends } = await runP1(repo);
    expect(ends['A-01']!.status).toBe('FAIL');
    expect(ends['A-01']!.reason).toBe('rule-001-write-outside');
    const b = repo.buildDir;
    expect(ends['A-01']!.message).toBe(`RULE-001: A-01 wrote outside its output directory: ${b}/planted (only ${b}/build-engineer and a private /tmp are writable)`);
  });

  it('stale outputs are not evidence: a task that now writes nothing fails, it does not pass on the last run\'s file (issue 11)', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: echo ok > "$CLAWOS_OUT/a.txt"', outputs: ['build-engineer/a.txt'] }));
    expect((await runP1(repo, { sandbox: NO_SANDBOX })).ends['A-01']!.status).toBe('PASS');
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: "true"', outputs: ['build-engineer/a.txt'] }));
    const { ends } = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(ends['A-01']).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'declared output missing: build-engineer/a.txt' });
  });

  it('validation_cmd runs inside the task timeout: a hanging validation makes the task TIMEOUT, not wait for it (issue 11)', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', timeout: 0.03, validation: 'sleep 60', action: 'run: echo ok > "$CLAWOS_OUT/a.txt"', outputs: ['build-engineer/a.txt'] }));
    const { ends } = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(ends['A-01']).toMatchObject({ status: 'TIMEOUT', reason: 'timeout', message: 'timed out after 0.03 min (in validation_cmd); its process group was killed' });
  });

  it('a kept gate follows its rule: an arch added to require_arches after a GO is judged again, and NO-GO without it (issue 11)', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: echo ok > "$CLAWOS_OUT/a.txt"', outputs: ['build-engineer/a.txt'] }));
    const first = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(first.results[0]!.gate.recommendation).toBe('GO');
    // Same tasks, same fingerprints; only the rule changes: P1 now requires aarch64, which this run does not build.
    await repo.write('specs/gates.yaml', GATES.replace('P1: { title: One, rule: r1, require_pass: [], require_arches: [] }', 'P1: { title: One, rule: r1, require_pass: [], require_arches: [aarch64] }'));
    const second = await runP1(repo, { sandbox: NO_SANDBOX });
    expect(second.events.some((e) => e.type === 'task-start')).toBe(false);
    expect(second.results[0]!.gate.recommendation).toBe('NO-GO');
  });

  it('a planted secret is nowhere in the build dir: logs, state, vault events, gate reports', async () => {
    repo = await makeTestRepo(GATES);
    const token = `tok-${randomBytes(16).toString('hex')}`;
    process.env.CLAWOS_TEST_TOKEN = token;
    const sign: Step = {
      name: 'sign',
      version: 1,
      toolPackages: () => [],
      async run(ctx) {
        const r = await ctx.run(['bash', '-c', 'echo "signing with $T"; echo "$T" | base64; echo "bad key $T" >&2; exit 1'], { env: { T: process.env.CLAWOS_TEST_TOKEN } });
        return fail('exit-non-zero', `signing failed: ${r.tail.join(' | ')} (token ${process.env.CLAWOS_TEST_TOKEN})`, { data: { token: process.env.CLAWOS_TEST_TOKEN } });
      },
    };
    await repo.writeTask('F-01', taskYaml({ id: 'F-01', agent: 'security', action: 'uses: sign' }));
    const { ends } = await runP1(repo, { steps: new Map([['sign', sign]]), secretEnv: ['CLAWOS_TEST_TOKEN'] });
    expect(ends['F-01']!.message).toContain('[REDACTED:CLAWOS_TEST_TOKEN]');
    const g = await run(['grep', '-r', '-F', '-e', token, '-e', Buffer.from(token).toString('base64').slice(0, 40), repo.buildDir], { captureStdout: true });
    expect(g.exitCode).toBe(1);
    const log = await readFile(join(repo.buildDir, 'logs', `agent-security-${new Date().toISOString().slice(0, 10)}.log`), 'utf8');
    expect(log).toContain('signing with [REDACTED:CLAWOS_TEST_TOKEN]');
    // Without naming it a secret, the same run leaks it everywhere (so the grep above can fail).
    await repo.writeTask('F-01', taskYaml({ id: 'F-01', agent: 'security', timeout: 2, action: 'uses: sign' }));
    await runP1(repo, { steps: new Map([['sign', sign]]) });
    const leak = await run(['grep', '-r', '-l', '-F', '-e', token, repo.buildDir], { captureStdout: true });
    expect(leak.stdout.split('\n').filter(Boolean).map((f) => f.slice(repo!.buildDir.length + 1).replace(/run-[^/]+/, 'RUN').replace(/store\/sha256\/[0-9a-f]{64}/, 'store/OBJECT').replace(/\d{4}-\d{2}-\d{2}/, 'DATE')).sort()).toEqual([
      'gates/P1/gate-report.json',
      'gates/P1/gate-report.md',
      'logs/agent-security-DATE.log',
      'state.json',
      'vault/runs/RUN/events.jsonl',
      'vault/store/OBJECT', // the gate reports, stored
      'vault/store/OBJECT',
    ]);
  });

  it('an INFRA_ERROR is retried and each attempt is an event; a FAIL is not retried', async () => {
    repo = await makeTestRepo(GATES);
    let calls = 0;
    const flaky: Step = { name: 'flaky', version: 1, toolPackages: () => [], run: async () => (++calls < 3 ? infra(`qemu failed to start (attempt ${calls})`) : pass('booted')) };
    let failCalls = 0;
    const broken: Step = { name: 'broken', version: 1, toolPackages: () => [], run: async () => (failCalls++, fail('exit-non-zero', 'make exited 2')) };
    await repo.writeTask('G-06', taskYaml({ id: 'G-06', action: 'uses: flaky' }));
    await repo.writeTask('G-05', taskYaml({ id: 'G-05', action: 'uses: broken' }));
    const { events, ends, vault } = await runP1(repo, { steps: new Map([['flaky', flaky], ['broken', broken]]) });
    expect(ends['G-06']!.status).toBe('PASS');
    expect(ends['G-05']!.status).toBe('FAIL');
    expect(failCalls).toBe(1);
    expect(events.filter((e) => e.type === 'task-attempt').map((e) => [(e as { attempt: number }).attempt, (e as { status: string }).status])).toEqual([
      [1, 'INFRA_ERROR'],
      [2, 'INFRA_ERROR'],
      [3, 'PASS'],
    ]);
    expect(vault.filter((e) => e.type === 'task-attempt').map((e) => e.payload.decision)).toEqual([
      'INFRA_ERROR may be transient: retry 1/2 in 0.0 s',
      'INFRA_ERROR may be transient: retry 2/2 in 0.0 s',
      'PASS: done',
    ]);
    expect(vault.find((e) => e.type === 'task-end' && e.payload.task === 'G-06')!.payload.attempts).toBe(3);
  });

  it('a sandboxed task that times out leaves no process, even one that called setsid', async () => {
    repo = await makeTestRepo(GATES);
    const s = 200_000 + (process.pid % 50_000);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', timeout: 0.02, action: `run: "setsid sleep ${s} & sleep ${s} & wait"` }));
    const { ends } = await runP1(repo);
    expect(ends['A-01']).toMatchObject({ status: 'TIMEOUT', message: 'timed out after 0.02 min; its process group was killed' });
    let left: string[] = [];
    for (let i = 0; i < 20; i++) {
      const ps = await run(['ps', '-eo', 'pid,pgid,args'], { captureStdout: true });
      left = ps.stdout.split('\n').filter((l) => l.includes(`sleep ${s}`));
      if (!left.length) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(left).toEqual([]);
  });

  it('secrets named in clawos-build.config.yaml are redacted like --secret-env ones, and recorded by name in run-start', async () => {
    repo = await makeTestRepo(GATES);
    const token = `cfg-${randomBytes(12).toString('hex')}`;
    process.env.CLAWOS_TEST_TOKEN = token;
    await repo.write('clawos-build.config.yaml', 'secrets:\n  env: [CLAWOS_TEST_TOKEN]\n');
    // The sandbox does not pass the variable on; the task prints the value from a file instead, into its log and its failure.
    await repo.write('leak.txt', `${token}\n`);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', action: 'run: echo "token is $(cat "$CLAWOS_REPO/leak.txt")"; exit 1' }));
    const rc = await openRun({
      repoRoot: repo.root,
      buildDir: repo.buildDir,
      arches: ['x86_64'],
      jobs: 1,
      emit: () => {},
      signal: new AbortController().signal,
      heartbeatMs: 0,
      steps: new Map(),
    });
    expect(rc.redact.secretNames).toEqual(['CLAWOS_TEST_TOKEN']);
    expect(rc.redact.text(`x ${token} y`)).toBe('x [REDACTED:CLAWOS_TEST_TOKEN] y');
    await runPhases(rc, ['P1'], await loadGateSpecs(repo.root));
    const vault = (await readAllRuns(repo.buildDir)).at(-1)!.events;
    expect(vault[0]!.payload.secrets).toEqual(['CLAWOS_TEST_TOKEN']);
    expect((await run(['grep', '-r', '-l', '-F', token, repo.buildDir], { captureStdout: true })).exitCode).toBe(1);
    const log = await readFile(join(repo.buildDir, 'logs', `agent-build-engineer-${new Date().toISOString().slice(0, 10)}.log`), 'utf8');
    expect(log).toContain('token is [REDACTED:CLAWOS_TEST_TOKEN]');
  });

  it('the built binary fails closed without bubblewrap (exit 4, the fix printed); --no-sandbox runs and is recorded', async () => {
    repo = await makeTestRepo(GATES);
    // A PATH with node and bash but no bwrap; the binary runs the real repository's P1 into a scratch build dir.
    const bin = join(repo.root, '..', 'path-without-bwrap');
    await run(['mkdir', '-p', bin]);
    await run(['ln', '-s', process.execPath, join(bin, 'node')]);
    await run(['ln', '-s', '/bin/bash', join(bin, 'bash')]);
    const cli = join(repoRootDir(), 'bin', 'clawos-build.js');
    const build = join(repo.root, '..', 'cli-build');
    const r = await run([process.execPath, cli, 'p1', '--build-dir', build], { env: { PATH: bin } });
    expect(r.exitCode).toBe(4);
    expect(r.tail).toEqual([
      'clawos-build: bubblewrap is not installed (bwrap not found); every task runs under it',
      'hint: apt-get install bubblewrap (it is in specs/host-packages.txt, so bin/bootstrap installs it); or, to run unconfined, pass --no-sandbox (recorded in every task event)',
    ]);
    const off = await run([process.execPath, cli, 'p1', '--no-sandbox', '--build-dir', build], { env: { PATH: bin } });
    expect(off.spawnError).toBeUndefined();
    const vault = (await readAllRuns(build)).at(-1)!.events;
    expect(vault[0]!.payload.sandbox).toEqual({ kind: 'off', reason: '--no-sandbox' });
    const taskEvents = vault.filter((e) => e.type === 'task-start' || e.type === 'task-end');
    expect(taskEvents.length).toBeGreaterThan(0);
    for (const e of taskEvents) expect(e.payload.sandbox).toMatchObject({ sandbox: 'off', sandbox_detail: '--no-sandbox' });
  }, 120_000);
});
