import { afterEach, describe, expect, it } from 'vitest';
import { appendFile, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestRepo, taskYaml, type TestRepo } from '../../test/helpers/test-repo.js';
import { openRun } from '../../pipeline/run/session.js';
import { runPhases } from '../../pipeline/run/phases.js';
import { loadGateSpecs } from '../../pipeline/run/gates.js';
import type { RunEvent } from '../../pipeline/run/events.js';
import type { Step } from '../../pipeline/catalog/step.js';
import { UserError } from '../../lib/errors.js';
import { closeMatches, explainCommand, type Explanation } from './explain.js';

const GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;

const copyStep: Step = {
  name: 'copy',
  version: 1,
  toolPackages: () => [],
  async run(ctx) {
    await writeFile(join(ctx.outDir, String(ctx.params.to)), await readFile(join(ctx.repoRoot, String(ctx.params.from))));
    return { status: 'PASS', message: `copied ${ctx.params.from}` };
  },
};
const steps = () => new Map([['copy', copyStep]]);

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

async function setUp(): Promise<TestRepo> {
  const r = await makeTestRepo(GATES);
  await r.write('frag/x86_64.config', 'CONFIG_X=y\n');
  await r.write('frag/aarch64.config', 'CONFIG_ARM=y\n');
  await r.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/a.txt'], action: 'run: echo a > "$CLAWOS_OUT/a.txt"' }));
  await r.writeTask('A-02', taskYaml({ id: 'A-02', phase: 'P2', perArch: true, deps: ['A-01'], inputs: ['frag/{arch}.config'], outputs: ['build-engineer/{arch}/arch.txt'], action: 'uses: copy\nwith: { from: "frag/{arch}.config", to: arch.txt }' }));
  await r.writeTask('A-03', taskYaml({ id: 'A-03', phase: 'P2', perArch: true, deps: ['A-02'], outputs: ['build-engineer/{arch}/done.txt'], action: 'run: cat "$CLAWOS_OUT/arch.txt" > "$CLAWOS_OUT/done.txt"' }));
  return r;
}

async function runAll(r: TestRepo) {
  const events: RunEvent[] = [];
  const rc = await openRun({ repoRoot: r.root, buildDir: r.buildDir, arches: ['x86_64', 'aarch64'], jobs: 2, emit: (e) => events.push(e), signal: new AbortController().signal, heartbeatMs: 0, steps: steps() });
  await runPhases(rc, ['P1', 'P2'], await loadGateSpecs(r.root));
  return events.filter((e) => e.type === 'task-start').map((e) => (e as { id: string }).id).sort();
}

async function explain(r: TestRepo, target: string, json = false) {
  let out = '';
  const code = await explainCommand({ repoRoot: r.root, buildDir: r.buildDir, positionals: [target], arch: ['x86_64', 'aarch64'], json, print: (s) => (out += s), printErr: () => {}, steps: steps() });
  return { code, out };
}
async function explainJson(r: TestRepo, target: string): Promise<Explanation[]> {
  return (JSON.parse((await explain(r, target, true)).out) as { instances: Explanation[] }).instances;
}

/** Every file under dir with its size and mtime: what explain must leave untouched. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    const s = await stat(p);
    out.push(`${p} ${s.size} ${s.mtimeMs}`);
  }
  return out.sort();
}

describe('clawos-build explain', () => {
  it('before any run: every instance would run, never run', async () => {
    repo = await setUp();
    const { code, out } = await explain(repo, 'A-01');
    expect(code).toBe(0);
    expect(out).toBe(`A-01: would re-run\n  - never run: no earlier result in ${join(repo.buildDir, 'state.json')}\n`);
  });

  it('after a run: up to date; a changed input names the file; the next run agrees', async () => {
    repo = await setUp();
    await runAll(repo);
    const before = await snapshot(repo.buildDir);
    const first = await explain(repo, 'A-02@x86_64');
    expect(first.out).toMatch(/^A-02@x86_64: up to date: would not re-run \(PASS at \S+, fingerprint [0-9a-f]{12}\)\n$/);
    expect(await snapshot(repo.buildDir)).toEqual(before); // read-only

    await repo.write('frag/x86_64.config', 'CONFIG_X=y\nCONFIG_Y=y\n');
    const changed = await explain(repo, 'A-02');
    expect(changed.out).toMatch(/^A-02@x86_64: would re-run\n  - input frag\/x86_64\.config changed\nA-02@aarch64: up to date: would not re-run \(PASS at \S+, fingerprint [0-9a-f]{12}\)\n$/);
    const dependant = await explainJson(repo, 'A-03@x86_64');
    expect(dependant).toHaveLength(1);
    expect(dependant[0]).toMatchObject({ id: 'A-03@x86_64', verdict: 'up-to-date', would_run: false, after: ['A-02@x86_64'] });
    expect((await explain(repo, 'A-03@x86_64')).out).toMatch(/\n  - but it may re-run after A-02@x86_64, which would re-run and may change its outputs\n$/);

    // What explain said is what the scheduler does: A-02@x86_64 and (its output changed) A-03@x86_64.
    expect(await runAll(repo)).toEqual(['A-02@x86_64', 'A-03@x86_64']);
  });

  it('a changed spec and a failed last result are named', async () => {
    repo = await setUp();
    await runAll(repo);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/a.txt'], timeout: 2, action: 'run: echo a > "$CLAWOS_OUT/a.txt"' }));
    expect((await explain(repo, 'a-01')).out).toBe('A-01: would re-run\n  - task spec changed (timeout_minutes)\n');

    await repo.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/a.txt'], action: 'run: exit 3' }));
    await runAll(repo);
    const [e] = await explainJson(repo, 'A-01');
    expect(e!.verdict).toBe('re-run');
    expect(e!.reasons).toEqual(['last result FAIL (exit-non-zero): run: command exited 3: ', 'nothing it depends on changed since']);
    // A dependant that was BLOCKED has nothing to compare with: its last result is the reason.
    await repo.writeTask('A-05', taskYaml({ id: 'A-05', deps: ['A-01'], action: 'run: "true"' }));
    await runAll(repo);
    expect((await explain(repo, 'A-05')).out).toBe('A-05: would re-run\n  - last result BLOCKED (dependency-failed): not run: dependency A-01 is FAIL\n  - after A-01, which would re-run\n');
  });

  it('a changed or missing output is named, and says whether the store restores it', async () => {
    repo = await setUp();
    await runAll(repo);
    await writeFile(join(repo.buildDir, 'build-engineer/x86_64/done.txt'), 'tampered\n');
    const [e] = await explainJson(repo, 'A-03@x86_64');
    expect(e!.outputs.missing).toEqual([]);
    expect(e!.outputs.changed.map((c) => c.path)).toEqual(['build-engineer/x86_64/done.txt']);
    const text = (await explain(repo, 'A-03@x86_64')).out.split('\n');
    expect(text[1]).toMatch(/^  - output build-engineer\/x86_64\/done\.txt changed since it was recorded \(recorded [0-9a-f]{12}, now [0-9a-f]{12}\)$/);
    expect(e!.verdict).toBe('restore');
    expect(text[2]).toBe('  - inputs unchanged: the recorded outputs would be restored from the vault store, not rebuilt');
    await writeFile(join(repo.buildDir, 'build-engineer/x86_64/arch.txt'), '');
    await rm(join(repo.buildDir, 'build-engineer/a.txt'));
    const [a1] = await explainJson(repo, 'A-01');
    expect(a1!.outputs).toEqual({ missing: ['build-engineer/a.txt'], changed: [] });
    expect(a1!.verdict).toBe('restore');
    // The scheduler does what explain said: restores from the store, runs nothing.
    expect(await runAll(repo)).toEqual([]);
    expect(await readFile(join(repo.buildDir, 'build-engineer/x86_64/done.txt'), 'utf8')).toBe('CONFIG_X=y\n');
    expect(await readFile(join(repo.buildDir, 'build-engineer/a.txt'), 'utf8')).toBe('a\n');
    expect((await explain(repo, 'A-03@x86_64')).out).toMatch(/^A-03@x86_64: up to date: would not re-run/);
  });

  it('a failed last result whose inputs an earlier run passed with: explain says restore, and the run restores', async () => {
    repo = await setUp();
    await repo.write('in.txt', 'one\n');
    // fail-flag is not an input: it makes the same inputs fail once, like a flaky host.
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', inputs: ['in.txt'], outputs: ['build-engineer/a.txt'], action: 'run: test ! -e "$CLAWOS_REPO/fail-flag" && cp "$CLAWOS_REPO/in.txt" "$CLAWOS_OUT/a.txt"' }));
    await runAll(repo);
    await repo.write('in.txt', 'two\n');
    await repo.write('fail-flag', '');
    await runAll(repo);
    await repo.write('in.txt', 'one\n');
    // The failed phase was put back to its gate checkpoint (RULE-005): a.txt is the PASS's again, nothing to restore.
    const [intact] = await explainJson(repo, 'A-01');
    expect(intact!.verdict).toBe('up-to-date');
    expect(intact!.reasons[0]).toMatch(/^up to date: would not re-run \(run run-\S+ passed with exactly these inputs and its outputs are intact\)$/);
    expect(intact!.reasons[1]).toMatch(/^last result FAIL \(exit-non-zero\): /);
    await rm(join(repo.buildDir, 'build-engineer/a.txt'));
    const [e] = await explainJson(repo, 'A-01');
    expect(e!.verdict).toBe('restore');
    expect(e!.reasons[0]).toMatch(/^last result FAIL \(exit-non-zero\): /);
    expect(e!.outputs).toEqual({ missing: ['build-engineer/a.txt'], changed: [] });
    expect(e!.reasons.at(-1)).toMatch(/^run run-\S+ passed with exactly these inputs: its outputs would be restored from the vault store, not rebuilt$/);
    expect((await explain(repo, 'A-01')).out.split('\n')[0]).toBe('A-01: would not re-run, but restore outputs');
    // The flag is still there: had the scheduler run A-01, it would fail.
    expect((await runAll(repo)).filter((id) => id === 'A-01')).toEqual([]);
    expect(await readFile(join(repo.buildDir, 'build-engineer/a.txt'), 'utf8')).toBe('one\n');
    expect((await explain(repo, 'A-01')).out).toMatch(/^A-01: up to date: would not re-run/);
  });

  it('a damaged state.json: explain and a run refuse it with the same mv command; moved aside, explain decides as the scheduler does', async () => {
    repo = await setUp();
    await runAll(repo);
    const state = join(repo.buildDir, 'state.json');
    const text = await readFile(state, 'utf8');
    await writeFile(state, text.slice(0, Math.floor(text.length / 2)));
    const refusal = async (p: Promise<unknown>) => {
      const e = (await p.then(() => null, (err: unknown) => err)) as UserError;
      expect(e).toBeInstanceOf(UserError);
      return [e.message.replace(/\(.*\)$/, '(…)'), e.hint];
    };
    const expected = [
      `${state} is damaged: not valid JSON (…)`,
      `move it aside, and keep the build dir (the vault holds every result; the next run rebuilds the index from it and rebuilds nothing whose outputs it holds): mv ${state} ${state}.damaged`,
    ];
    expect(await refusal(explain(repo, 'A-01'))).toEqual(expected);
    expect(await refusal(runAll(repo))).toEqual(expected);

    await rename(state, `${state}.damaged`);
    // No index now, every result only in the vault: A-02's fingerprint takes in A-01's record, which exists only
    // once the scheduler has taken A-01 over from the vault. Explain assumes the same record, so it agrees.
    const said = await explainJson(repo, 'A-03');
    expect(said.map((e) => [e.id, e.verdict, e.after])).toEqual([
      ['A-03@x86_64', 'up-to-date', []],
      ['A-03@aarch64', 'up-to-date', []],
    ]);
    expect(said[0]!.reasons[0]).toMatch(/^up to date: would not re-run \(run run-\S+ passed with exactly these inputs and its outputs are intact\)$/);
    expect((await explainJson(repo, 'A-02')).map((e) => e.verdict)).toEqual(['up-to-date', 'up-to-date']);
    expect(await runAll(repo)).toEqual([]);
    expect((await explain(repo, 'A-03@x86_64')).out).toMatch(/^A-03@x86_64: up to date: would not re-run \(PASS at /);
  });

  it('a frozen spec edited after a PASS: explain refuses with the very message the run stops with, before any task', async () => {
    repo = await setUp();
    const frozen = (yaml: string) => yaml.replace('frozen_spec_deps: []', 'frozen_spec_deps:\n  - specs/p1/cgroup-quotas.yaml');
    await repo.writeTask('A-01', frozen(taskYaml({ id: 'A-01', outputs: ['build-engineer/a.txt'], action: 'run: echo a > "$CLAWOS_OUT/a.txt"' })));
    await runAll(repo);
    expect((await explain(repo, 'A-01')).out).toMatch(/^A-01: up to date: would not re-run/);
    // An unreviewed edit: the freeze record no longer matches, so no task may run at all.
    await appendFile(join(repo.root, 'specs/p1/cgroup-quotas.yaml'), '# an unreviewed edit\n');
    const said = (await explain(repo, 'A-01').catch((e: unknown) => e)) as UserError;
    expect(said).toBeInstanceOf(UserError);
    expect(said.message).toMatch(
      /^1 frozen spec does not match specs\/p1\/freeze\.dsse\.json \(frozen_at [^)]+\), so the run stops before any task:\nfrozen spec specs\/p1\/cgroup-quotas\.yaml changed: frozen sha256 [0-9a-f]{64}, current sha256 [0-9a-f]{64}; /,
    );
    // The scheduler: the same message, and no task starts.
    const events: RunEvent[] = [];
    const ran = (await openRun({ repoRoot: repo.root, buildDir: repo.buildDir, arches: ['x86_64', 'aarch64'], jobs: 2, emit: (e) => events.push(e), signal: new AbortController().signal, heartbeatMs: 0, steps: steps() }).catch((e: unknown) => e)) as UserError;
    expect(ran.message).toBe(said.message);
    expect(ran.hint).toBe(said.hint);
    expect(events.filter((e) => e.type === 'task-start')).toEqual([]);
  });

  it('an unknown task is a UserError listing close matches; TASK@ARCH only for per-arch tasks', async () => {
    repo = await setUp();
    const err = await explain(repo, 'A-1').catch((x: unknown) => x);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe('unknown task "A-1"; close matches: A-01, A-02, A-03');
    expect((err as UserError).hint).toBe('`clawos-build plan` lists every task instance');
    const notPerArch = await explain(repo, 'A-01@x86_64').catch((x: unknown) => x);
    expect((notPerArch as UserError).message).toBe('A-01 is not per-arch: it has one instance, A-01');
    const badArch = await explain(repo, 'A-02@riscv').catch((x: unknown) => x);
    expect((badArch as UserError).message).toBe('unknown architecture "riscv"');
  });

  it('closeMatches ranks by edit distance and prefix', () => {
    expect(closeMatches('G-6', ['G-06', 'G-05', 'A-01', 'G-60'])).toEqual(['G-06', 'G-60', 'G-05']);
    expect(closeMatches('Z-99', ['A-01'])).toEqual([]);
  });
});
