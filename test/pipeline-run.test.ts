import { afterEach, describe, expect, it } from 'vitest';
import { readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestRepo, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { openRun } from '../pipeline/run/session.js';
import { finishRun, runPhases } from '../pipeline/run/phases.js';
import { readAllRuns } from '../vault/vault-history.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { RunEvent } from '../pipeline/run/events.js';
import type { Step } from '../pipeline/catalog/step.js';
import { UserError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';
import { formatEvent } from '../pipeline/run/reporter.js';

const GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;

/** A step standing in for the kernel build: copies its input into its out dir. */
const copyStep: Step = {
  name: 'copy',
  version: 1,
  toolPackages: () => [],
  async run(ctx) {
    const from = join(ctx.repoRoot, String(ctx.params.from));
    await writeFile(join(ctx.outDir, String(ctx.params.to)), await readFile(from));
    return { status: 'PASS', message: `copied ${ctx.params.from}` };
  },
};

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

async function runAll(r: TestRepo, opts: { arches?: string[]; phases?: ('P1' | 'P2' | 'P3' | 'P4')[]; config?: string; heartbeatMs?: number } = {}) {
  const events: RunEvent[] = [];
  const rc = await openRun({
    repoRoot: r.root,
    buildDir: r.buildDir,
    arches: opts.arches ?? ['x86_64'],
    jobs: 2,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    heartbeatMs: opts.heartbeatMs ?? 0,
    configFile: opts.config,
    steps: new Map([['copy', copyStep]]),
  });
  let results: Awaited<ReturnType<typeof runPhases>> = [];
  let error: string | undefined;
  try {
    results = await runPhases(rc, opts.phases ?? ['P1', 'P2'], await loadGateSpecs(r.root));
  } catch (e) {
    error = (e as Error).message;
    throw e;
  } finally {
    // Ends the run's vault chain (no key dir: no bundle is signed here).
    await finishRun(rc, results, { keyDir: join(r.root, 'no-keys'), ...(error ? { error } : {}) });
  }
  return { events, results, rc };
}

const ran = (events: RunEvent[]) => events.filter((e) => e.type === 'task-start').map((e) => (e as { id: string }).id).sort();
const upToDate = (events: RunEvent[]) => events.filter((e) => e.type === 'task-up-to-date').map((e) => (e as { id: string }).id).sort();

describe('scheduler, fingerprints and gates', () => {
  it('runs the graph, writes gate reports and the vault manifest, then re-runs nothing', async () => {
    repo = await makeTestRepo(GATES);
    await repo.write('frag/common.config', 'CONFIG_A=y\n');
    await repo.write('frag/x86_64.config', 'CONFIG_X=y\n');
    await repo.write('frag/aarch64.config', 'CONFIG_ARM=y\n');
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', inputs: ['frag/common.config'], outputs: ['build-engineer/common.txt'], action: 'uses: copy\nwith: { from: frag/common.config, to: common.txt }' }));
    await repo.writeTask('A-02', taskYaml({ id: 'A-02', phase: 'P2', perArch: true, deps: ['A-01'], inputs: ['frag/{arch}.config'], outputs: ['build-engineer/{arch}/arch.txt'], action: 'uses: copy\nwith: { from: "frag/{arch}.config", to: arch.txt }' }));
    await repo.writeTask('A-03', taskYaml({ id: 'A-03', phase: 'P2', perArch: true, deps: ['A-02'], outputs: ['build-engineer/{arch}/done.txt'], validation: 'test -s done.txt', action: 'run: cat "$CLAWOS_OUT/arch.txt" > "$CLAWOS_OUT/done.txt"' }));
    await repo.writeTask('B-01', taskYaml({ id: 'B-01', phase: 'P2', agent: 'ebpf', action: 'component: aya-ebpf' }));

    const first = await runAll(repo, { arches: ['x86_64', 'aarch64'] });
    expect(ran(first.events)).toEqual(['A-01', 'A-02@aarch64', 'A-02@x86_64', 'A-03@aarch64', 'A-03@x86_64', 'B-01']);
    expect(first.results.map((r) => r.gate.recommendation)).toEqual(['GO', 'GO']);
    const gate = JSON.parse(await readFile(join(repo.buildDir, 'gates/P2/gate-report.json'), 'utf8'));
    expect(gate.coverage.line).toBe('4/5 task instances passed; NOT_CONFIGURED (not built, not counted as passed): B-01');
    const ev = gate.checks.find((c: { id: string }) => c.id === 'A-03@x86_64').evidence;
    expect(ev).toHaveLength(1);
    expect(ev[0].path).toBe('build-engineer/x86_64/done.txt');
    expect(ev[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await readFile(join(repo.buildDir, 'gates/P2/gate-report.md'), 'utf8')).toContain('**Recommendation: GO**');
    const manifest = JSON.parse(await readFile(join(repo.buildDir, 'vault/manifest.json'), 'utf8'));
    expect(manifest.entries.map((e: { path: string }) => e.path)).toEqual([
      'build-engineer/aarch64/arch.txt',
      'build-engineer/aarch64/done.txt',
      'build-engineer/common.txt',
      'build-engineer/x86_64/arch.txt',
      'build-engineer/x86_64/done.txt',
      'gates/P1/gate-report.json',
      'gates/P1/gate-report.md',
      'gates/P2/gate-report.json',
      'gates/P2/gate-report.md',
    ]);
    const log = await readFile(join(repo.buildDir, 'logs', `agent-build-engineer-${new Date().toISOString().slice(0, 10)}.log`), 'utf8');
    expect(log).toMatch(/\[A-03@x86_64\] \$ cd \S+ && bwrap .* -- bash -c/);

    const second = await runAll(repo, { arches: ['x86_64', 'aarch64'] });
    expect(ran(second.events)).toEqual([]);
    expect(upToDate(second.events)).toEqual(['A-01', 'A-02@aarch64', 'A-02@x86_64', 'A-03@aarch64', 'A-03@x86_64', 'B-01']);

    // Changing one arch's fragment re-runs only what depends on it.
    await repo.write('frag/x86_64.config', 'CONFIG_X=y\nCONFIG_Y=y\n');
    const third = await runAll(repo, { arches: ['x86_64', 'aarch64'] });
    expect(ran(third.events)).toEqual(['A-02@x86_64', 'A-03@x86_64']);
  });

  it("the heartbeat estimates from the instance's last PASS, not from a failed run after it", async () => {
    repo = await makeTestRepo(GATES);
    const task = (mode: string) => taskYaml({ id: 'A-01', inputs: ['mode.txt'], outputs: ['build-engineer/out.txt'], action: `run: ${JSON.stringify(mode)}` });
    await repo.write('mode.txt', 'slow\n');
    await repo.writeTask('A-01', task('sleep 0.6; echo ok > out.txt'));
    await runAll(repo, { phases: ['P1'] });
    const passed = (await readAllRuns(repo.buildDir))[0]!.events.find((e) => e.type === 'task-end')!.payload;
    expect(passed).toMatchObject({ status: 'PASS' });
    // The next run fails at once: the last result is a FAIL of a few ms.
    await repo.write('mode.txt', 'fail\n');
    await repo.writeTask('A-01', task('exit 1'));
    const failed = await runAll(repo, { phases: ['P1'] });
    expect(failed.events.find((e) => e.type === 'task-end')).toMatchObject({ status: 'FAIL' });
    // A long run again: every heartbeat estimates from the PASS, and says so.
    await repo.write('mode.txt', 'slow again\n');
    await repo.writeTask('A-01', task('sleep 1.5; echo ok > out.txt'));
    const slow = await runAll(repo, { phases: ['P1'], heartbeatMs: 100 });
    const beats = slow.events.filter((e): e is Extract<RunEvent, { type: 'task-heartbeat' }> => e.type === 'task-heartbeat');
    expect(beats.length).toBeGreaterThan(0);
    expect(new Set(beats.map((b) => b.estimateMs))).toEqual(new Set([passed.duration_ms]));
    const past = beats.find((b) => b.elapsedMs > (passed.duration_ms as number))!;
    expect(formatEvent(past)).toMatch(/^A-01 still running: [\d.]+ m?s elapsed, past the estimate by [\d.]+ m?s \(last PASS took [\d.]+ m?s\)$/);
  });

  it('refuses to start a phase whose previous gate has not passed on the same inputs', async () => {
    repo = await makeTestRepo(GATES);
    await repo.write('in.txt', 'one\n');
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', inputs: ['in.txt'], outputs: ['build-engineer/in.txt'], action: 'uses: copy\nwith: { from: in.txt, to: in.txt }' }));
    await repo.writeTask('A-02', taskYaml({ id: 'A-02', phase: 'P2', deps: ['A-01'], action: 'run: "true"' }));
    await expect(runAll(repo, { phases: ['P2'] })).rejects.toThrow(`phase P2 cannot start: gate P1 has not been run in ${repo.buildDir}`);
    // The refused run still ends its vault chain, saying why.
    const [refused] = await readAllRuns(repo.buildDir);
    expect(refused!.events.map((e) => e.type)).toEqual(['run-start', 'run-end']);
    expect(refused!.events[1]!.payload).toMatchObject({ status: 'error', error: `phase P2 cannot start: gate P1 has not been run in ${repo.buildDir}` });
    await runAll(repo, { phases: ['P1'] });
    await repo.write('in.txt', 'two\n');
    const err = await runAll(repo, { phases: ['P2'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe('phase P2 cannot start: gate P1 passed on other inputs; changed since: A-01 (input in.txt changed)');
  });

  it('fails a task whose output is missing or whose validation fails, runs its rollback, and says NO-GO', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/never.txt'], action: 'run: "true"' }));
    await repo.writeTask('A-02', taskYaml({ id: 'A-02', outputs: ['build-engineer/x.txt'], validation: 'grep -q good x.txt', rollback: 'echo rolled-back > rollback.txt', action: 'run: echo bad > "$CLAWOS_OUT/x.txt"' }));
    await repo.writeTask('A-03', taskYaml({ id: 'A-03', deps: ['A-02'], action: 'run: "true"' }));
    const { events, results } = await runAll(repo, { phases: ['P1', 'P2'] });
    const ends = Object.fromEntries(events.filter((e) => e.type === 'task-end').map((e) => [(e as { id: string }).id, e]));
    expect(ends['A-01']).toMatchObject({ status: 'FAIL', reason: 'output-missing', message: 'declared output missing: build-engineer/never.txt' });
    expect(ends['A-02']).toMatchObject({ status: 'FAIL', reason: 'validation-failed', message: 'validation_cmd exited 1: grep -q good x.txt' });
    expect(ends['A-03']).toMatchObject({ status: 'BLOCKED', reason: 'dependency-failed', message: 'not run: dependency A-02 is FAIL' });
    expect(await readFile(join(repo.buildDir, 'build-engineer/rollback.txt'), 'utf8')).toBe('rolled-back\n');
    expect(results).toHaveLength(1);
    expect(results[0]!.gate.recommendation).toBe('NO-GO');
    expect(results[0]!.gate.blockers).toEqual([
      'A-01: FAIL (output-missing): declared output missing: build-engineer/never.txt',
      'A-02: FAIL (validation-failed): validation_cmd exited 1: grep -q good x.txt',
      'A-03: BLOCKED (dependency-failed): not run: dependency A-02 is FAIL',
    ]);
  });

  it('RULE-005: a failed phase is put back to its last passed gate checkpoint from the store, reported, and re-runs after a fix without a clean build', async () => {
    repo = await makeTestRepo(GATES);
    await repo.write('src/gen.txt', 'good v1\n');
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/one.txt'], action: 'run: echo one > one.txt' }));
    // B-01 fails on a "bad" input after writing its outputs; B-02 passes with whatever it reads.
    await repo.writeTask(
      'B-01',
      taskYaml({ id: 'B-01', phase: 'P2', agent: 'kernel-engineer', deps: ['A-01'], inputs: ['src'], outputs: ['kernel-engineer/out.txt'], rollback: 'rm -f out.txt', action: 'run: cp "$CLAWOS_REPO/src/gen.txt" out.txt && grep -q good out.txt' }),
    );
    await repo.writeTask('B-02', taskYaml({ id: 'B-02', phase: 'P2', deps: ['A-01'], inputs: ['src'], outputs: ['build-engineer/b.txt'], action: 'run: cp "$CLAWOS_REPO/src/gen.txt" b.txt' }));
    const b = repo.buildDir;
    const first = await runAll(repo);
    expect(first.results.map((r) => r.gate.recommendation)).toEqual(['GO', 'GO']);

    await repo.write('src/gen.txt', 'bad v2\n');
    const second = await runAll(repo);
    expect(second.results[1]!.gate.recommendation).toBe('NO-GO');
    // B-02 passed on the bad input, but the phase failed: its output goes back too; B-01's rollback_cmd removed
    // its half-made output and its own last PASS came back from the store.
    expect(await readFile(join(b, 'build-engineer/b.txt'), 'utf8')).toBe('good v1\n');
    expect(await readFile(join(b, 'kernel-engineer/out.txt'), 'utf8')).toBe('good v1\n');
    const rb = second.events.find((e) => e.type === 'phase-rollback')!;
    const gateEvent = (await readAllRuns(b))[0]!.events.find((e) => e.type === 'gate' && e.payload.phase === 'P2')!;
    const checkpoint = `gate P2 GO of ${String(gateEvent.payload.decided_at)} (run ${gateEvent.run_id}, event ${gateEvent.seq})`;
    expect(rb).toEqual({ type: 'phase-rollback', phase: 'P2', checkpoint, restored: ['build-engineer/b.txt'], missing: [] });
    expect(formatEvent(rb)).toBe(`== P2 rollback (RULE-005) to ${checkpoint}: 1 output(s) restored from the vault store: build-engineer/b.txt`);
    const vault = (await readAllRuns(b)).at(-1)!.events;
    const phaseRb = vault.find((e) => e.type === 'rollback' && e.payload.phase === 'P2')!;
    expect(phaseRb.payload).toMatchObject({ checkpoint: { run_id: gateEvent.run_id, seq: gateEvent.seq }, restored: [{ task: 'B-02', path: 'build-engineer/b.txt' }], not_restored: [] });
    // The rollback follows the failed task's end and precedes the NO-GO decision.
    const order = vault.map((e) => `${e.type}:${String(e.payload.task ?? e.payload.phase ?? '')}`);
    expect(order.indexOf('rollback:P2')).toBeGreaterThan(order.indexOf('task-end:B-01'));
    expect(order.indexOf('rollback:P2')).toBeLessThan(order.indexOf('gate:P2'));

    await repo.write('src/gen.txt', 'good v3\n');
    const third = await runAll(repo);
    expect(third.results.map((r) => r.gate.recommendation)).toEqual(['GO', 'GO']);
    expect(ran(third.events)).toEqual(['B-01', 'B-02']);
    expect(upToDate(third.events)).toEqual(['A-01']);
    expect(await readFile(join(b, 'build-engineer/b.txt'), 'utf8')).toBe('good v3\n');
    expect(third.events.some((e) => e.type === 'phase-rollback')).toBe(false);
  });

  it('RULE-005 with no passed gate yet: the rollback says there is no checkpoint', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/x.txt'], action: 'run: exit 3' }));
    const { events, rc } = await runAll(repo, { phases: ['P1'] });
    const rb = events.find((e) => e.type === 'phase-rollback')!;
    expect(rb).toEqual({ type: 'phase-rollback', phase: 'P1', checkpoint: null, restored: [], missing: [] });
    expect(formatEvent(rb)).toBe("== P1 rollback (RULE-005): no passed gate P1 to roll back to; outputs left as the failed tasks' rollback_cmd left them");
    expect(rc.vault.runId).toMatch(/^run-/);
  });

  it('kills the whole process group when a task times out, leaving no orphan', async () => {
    repo = await makeTestRepo(GATES);
    const marker = `clawos-timeout-test-${process.pid}`;
    // A sleep length unique to this test process, so another run on the machine cannot confuse the ps check.
    const secs = 1000 + (process.pid % 50000);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', timeout: 0.02, action: `run: "sleep ${secs} & sleep ${secs}; echo ${marker}"` }));
    const started = Date.now();
    const { events } = await runAll(repo, { phases: ['P1'] });
    expect(Date.now() - started).toBeLessThan(15_000);
    const end = events.find((e) => e.type === 'task-end') as { status: string; message: string };
    expect(end).toMatchObject({ status: 'TIMEOUT', message: 'timed out after 0.02 min; its process group was killed' });
    const ps = await run(['ps', '-eo', 'pid,args'], { captureStdout: true });
    expect(ps.stdout.split('\n').filter((l) => l.includes(marker) && !l.includes('ps -eo'))).toEqual([]);
    expect(ps.stdout.split('\n').filter((l) => l.includes(`sleep ${secs}`))).toEqual([]);
  });

  it('reports an unconfigured component as NOT_CONFIGURED, and builds and hashes it once configured (BUILT)', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('D-01', taskYaml({ id: 'D-01', agent: 'core-dev', action: 'component: canary-hello' }));
    const a = await runAll(repo, { phases: ['P1'] });
    const endA = a.events.find((e) => e.type === 'task-end') as { status: string; message: string };
    expect(endA.status).toBe('NOT_CONFIGURED');
    expect(endA.message).toBe('component canary-hello is not configured (A C compiler.): set components.canary-hello.source, .build and .outputs in clawos-build.config.yaml');
    expect(a.results[0]!.gate.coverage.line).toBe('0/1 task instances passed; NOT_CONFIGURED (not built, not counted as passed): D-01');

    const cfg = join(repo.root, 'local.yaml');
    await writeFile(cfg, `components:\n  canary-hello:\n    source: { path: ${join(repoRootDir(), 'test/fixtures/components/canary-hello')} }\n    build: make hello\n    outputs: [hello]\n`);
    const b = await runAll(repo, { phases: ['P1'], config: cfg });
    const endB = b.events.find((e) => e.type === 'task-end') as { status: string; message: string };
    // Built, but nothing proves it works: BUILT, not PASS (test/component-tasks.test.ts has the rest).
    expect(endB).toMatchObject({ status: 'BUILT', reason: 'unvalidated' });
    const st = await stat(join(repo.buildDir, 'core-dev/hello'));
    expect(st.mode & 0o111).not.toBe(0);
    const out = await run([join(repo.buildDir, 'core-dev/hello')], { captureStdout: true });
    expect(out.stdout).toBe('hello from the canary-hello component\n');
    const rec = b.rc.state.instance('D-01')!;
    expect(Object.keys(rec.outputs)).toEqual(['core-dev/hello']);
    expect(b.results[0]!.gate.coverage.line).toBe('0/1 task instances passed; none NOT_CONFIGURED; BUILT (built, not validated, not counted as passed): D-01');
  });
});
