/**
 * Crash safety through the BUILT binary: clawos-build is SIGKILLed at 12
 * different points of a real run (sandboxed `run:` tasks in a throwaway repo:
 * during a task's command, right after a task ends while the next one starts,
 * while a gate is decided, while outputs go into the content store, after the
 * last gate while the bundle is signed). After each kill:
 * - every JSON file in the build dir parses (state, gate reports, manifest, boot
 *   records, the store's metadata); no temp file of an atomic write is mistaken
 *   for one;
 * - every run's events.jsonl verifies as a chain; only a torn LAST line is
 *   allowed, and it is reported as an interrupted append;
 * - the next run re-runs no task the killed run had completed (state.json said
 *   PASS for its fingerprint): it says "up to date" instead.
 * At the end one run goes through unkilled and its bundle verifies (vault/verify.ts).
 * A SIGKILL cannot split one write() of a line, so the torn line a power cut
 * would leave is made by hand once (half a line appended) and the runs after it
 * must cope.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { appendFile, cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { makeTestRepo, taskYaml, type TestRepo, writeTestLock } from './helpers/test-repo.js';
import { repoRootDir } from '../lib/repo-root.js';
import { sha256Hex } from '../lib/hash.js';
import { addTrustEntry, initKey, loadTrust } from '../vault/keys.js';
import { FREEZE_FILE, freezeSpecs } from '../vault/freeze-specs.js';
import { splitLines, verifyChain, type VaultEvent } from '../vault/event-chain.js';
import { listRunIds } from '../vault/run-vault.js';
import { eventsPath } from '../vault/event-chain.js';
import { verifyBundle } from '../vault/verify.js';

const GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;

/** Seven tasks over four phases (a kernel, an initramfs and an ISO for the bundle); each command takes a moment so a kill can land inside it. */
const TASKS: { id: string; phase: string; agent: string; deps: string[]; out: string }[] = [
  { id: 'A-10', phase: 'P1', agent: 'build-engineer', deps: [], out: 'a10.txt' },
  { id: 'A-11', phase: 'P1', agent: 'kernel-engineer', deps: [], out: 'k/vmlinuz' },
  { id: 'B-10', phase: 'P2', agent: 'build-engineer', deps: ['A-10'], out: 'b10.txt' },
  { id: 'B-11', phase: 'P2', agent: 'kernel-engineer', deps: ['A-11'], out: 'b11.txt' },
  { id: 'C-10', phase: 'P3', agent: 'build-engineer', deps: ['B-10', 'B-11'], out: 'img/initramfs.cpio.gz' },
  { id: 'D-10', phase: 'P4', agent: 'build-engineer', deps: ['C-10'], out: 'img/clawos-test.iso' },
  { id: 'D-11', phase: 'P4', agent: 'kernel-engineer', deps: ['C-10'], out: 'd11.txt' },
];

type Trigger = { label: string; when: (events: VaultEvent[]) => boolean; delayMs: number };
const is = (type: string, task?: string) => (evs: VaultEvent[]) => evs.some((e) => e.type === type && (task === undefined || e.payload.task === task || e.payload.phase === task));

/** In build order, so each kill lands further into the build (the kinds: task, store, gate, bundle). */
const KILLS: Trigger[] = [
  { label: 'just after run-start (P1 tasks starting)', when: is('run-start'), delayMs: 0 },
  { label: 'during A-10 (its command is sleeping)', when: is('task-start', 'A-10'), delayMs: 150 },
  { label: 'during A-11 (its command is writing)', when: is('task-start', 'A-11'), delayMs: 250 },
  { label: 'right after an artifact went into the store', when: is('artifact'), delayMs: 0 },
  { label: 'while gate P1 is decided', when: (e) => is('task-end', 'A-10')(e) && is('task-end', 'A-11')(e) && !is('gate', 'P1')(e), delayMs: 0 },
  { label: 'right after gate P1 (P2 starting)', when: is('gate', 'P1'), delayMs: 0 },
  { label: 'during B-11', when: is('task-start', 'B-11'), delayMs: 200 },
  { label: 'while gate P2 is decided', when: (e) => is('task-end', 'B-10')(e) && is('task-end', 'B-11')(e), delayMs: 0 },
  { label: 'during C-10', when: is('task-start', 'C-10'), delayMs: 100 },
  { label: 'while gate P3 is decided', when: is('task-end', 'C-10'), delayMs: 0 },
  { label: 'during D-10 and D-11', when: is('task-start', 'D-11'), delayMs: 120 },
  { label: 'after gate P4 (run-end, bundle signing)', when: is('gate', 'P4'), delayMs: 0 },
];

let repo: TestRepo;
let keyDir: string;
const cli = () => join(repo.root, 'bin', 'clawos-build.js');

beforeAll(async () => {
  const real = repoRootDir();
  if (!(await readFile(join(real, 'dist/bin/cli.js')).then(() => true, () => false))) throw new Error('dist/ is stale: run npm run build first');
  repo = await makeTestRepo(GATES);
  // The binary takes its repository from where it lives: a copy of dist/ and bin/ in the test repo.
  await cp(join(real, 'dist'), join(repo.root, 'dist'), { recursive: true });
  await mkdir(join(repo.root, 'bin'), { recursive: true });
  await cp(join(real, 'bin', 'clawos-build.js'), cli());
  await symlink(join(real, 'node_modules'), join(repo.root, 'node_modules'));
  keyDir = join(repo.root, '..', 'keys');
  for (const role of ['release', 'security', 'core'] as const) await addTrustEntry(join(keyDir, 'keys.json'), (await initKey(keyDir, role)).trustEntry);
  await rm(join(repo.root, FREEZE_FILE), { force: true });
  await freezeSpecs({ repoRoot: repo.root, keyDir });
  // The bundle's provenance names the kernel source (as test/fixtures/vault/pipeline-bundle.ts does).
  const tarball = join(repo.root, '..', 'linux-test.tar.xz');
  await writeFile(tarball, 'kernel source');
  await repo.write('kernel-config/source.yaml', `tarball: ${tarball}\nsha256: "${sha256Hex(Buffer.from('kernel source'))}"\nbase: tinyconfig\nfragments: []\n`);
  await writeTestLock(repo.root, { kernelTarball: tarball, kernelSha256: sha256Hex(Buffer.from('kernel source')) });
  for (const t of TASKS) {
    await repo.writeTask(
      t.id,
      taskYaml({
        id: t.id,
        phase: t.phase,
        agent: t.agent,
        deps: t.deps,
        outputs: [`${t.agent}/${t.out}`],
        validation: `test -s ${t.out}`,
        rollback: `rm -f ${t.out}`,
        action: `run: mkdir -p $(dirname ${t.out}) && sleep 0.3 && seq 1 20000 > ${t.out}.part && sleep 0.2 && mv ${t.out}.part ${t.out}`,
      }),
    );
  }
}, 120_000);
afterAll(() => repo?.cleanup());

async function chainOf(runId: string): Promise<{ events: VaultEvent[]; torn: boolean }> {
  const split = splitLines(await readFile(eventsPath(repo.buildDir, runId)));
  const v = verifyChain(split.lines, { runId });
  if (!v.ok) throw new Error(`run ${runId}: ${v.code}: ${v.detail}`);
  return { events: v.events, torn: !!split.torn };
}

/** Run the binary; SIGKILL it when `kill` fires on the new run's verified events. */
async function runCli(kill?: Trigger): Promise<{ killed: boolean; code: number | null; out: string; runId: string; lastEvent: string }> {
  const before = new Set(await listRunIds(repo.buildDir));
  const child = spawn('node', [cli(), 'all', '--arch', 'x86_64', '-j', '2', '--build-dir', repo.buildDir], {
    env: { ...process.env, CI: 'true', CLAWOS_KEY_DIR: keyDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  let runId = '';
  let lastEvent = '';
  if (kill) {
    // Poll the new run's chain (as the crash would find it) until the trigger fires.
    while (!done) {
      const ids = (await listRunIds(repo.buildDir)).filter((id) => !before.has(id));
      if (ids.length) {
        runId = ids[0]!;
        const split = splitLines(await readFile(eventsPath(repo.buildDir, runId)));
        const v = verifyChain(split.lines, { runId });
        if (v.ok && kill.when(v.events)) {
          if (kill.delayMs) await new Promise((r) => setTimeout(r, kill.delayMs));
          lastEvent = `${v.events.at(-1)?.type} ${String(v.events.at(-1)?.payload.task ?? v.events.at(-1)?.payload.phase ?? '')}`.trim();
          child.kill('SIGKILL');
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  const r = await exited;
  if (!runId) runId = (await listRunIds(repo.buildDir)).filter((id) => !before.has(id))[0] ?? '';
  return { killed: r.signal === 'SIGKILL', code: r.code, out, runId, lastEvent };
}

async function jsonFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.json')) out.push(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  }
  return out;
}

async function statePasses(): Promise<Record<string, string>> {
  const text = await readFile(join(repo.buildDir, 'state.json'), 'utf8').catch(() => null);
  if (text === null) return {};
  const s = JSON.parse(text) as { instances: Record<string, { status: string; fingerprint: string }> };
  return Object.fromEntries(Object.entries(s.instances).filter(([, r]) => r.status === 'PASS').map(([id, r]) => [id, r.fingerprint]));
}

describe('SIGKILL at 12 points of a real run', () => {
  it('each next run continues from the last completed task, nothing is corrupt, and the final bundle verifies', async () => {
    const log: string[] = [];
    let kills = 0;
    let tornMade = false;
    for (const k of KILLS) {
      // What the runs so far completed: this run must not run any of it again.
      const done = await statePasses();
      const r = await runCli(k);
      log.push(`${k.label}: ${r.killed ? `killed after "${r.lastEvent}"` : `exited ${r.code} before the trigger`}`);
      if (r.killed) kills++;

      // 1. Every JSON file parses (atomic writes: temp, fsync, rename).
      for (const f of await jsonFiles(repo.buildDir)) {
        const text = await readFile(f, 'utf8');
        expect(() => JSON.parse(text), `${relative(repo.buildDir, f)} after a kill ${k.label}`).not.toThrow();
      }
      // 2. Every chain verifies (a torn last line is tolerated and reported).
      for (const id of await listRunIds(repo.buildDir)) await chainOf(id);
      // 3. Nothing completed earlier ran again; what it reached is up to date.
      const { events } = await chainOf(r.runId);
      const started = events.filter((e) => e.type === 'task-start').map((e) => String(e.payload.task));
      expect(started.filter((id) => id in done), `re-run during "${k.label}"`).toEqual([]);
      for (const id of Object.keys(done)) {
        const end = events.find((e) => e.type === 'task-end' && e.payload.task === id);
        if (end) expect(end.payload.up_to_date, `${id} during "${k.label}"`).toBe(true);
      }
      // Once: the torn line a power cut leaves (half a line, no newline).
      if (r.killed && !tornMade) {
        await appendFile(eventsPath(repo.buildDir, r.runId), `{"run_id":"${r.runId}","seq":99,"type":"task-e`);
        expect((await chainOf(r.runId)).torn).toBe(true);
        tornMade = true;
      }
    }
    console.log(log.join('\n'));
    expect(kills).toBeGreaterThanOrEqual(10);

    // 4. A run to the end: every task PASS, and the bundle verifies.
    const done = await statePasses();
    const final = await runCli();
    expect(final.code, final.out).toBe(0);
    const { events } = await chainOf(final.runId);
    expect(events.filter((e) => e.type === 'task-start' && String(e.payload.task) in done)).toEqual([]);
    const end = events.find((e) => e.type === 'run-end')!;
    expect(end.payload).toMatchObject({ status: 'passed', tasks: { total: 7, passed: 7 } });
    const bundle = (end.payload.bundle as { dir: string }).dir;
    const v = await verifyBundle(join(repo.buildDir, bundle), await loadTrust(join(keyDir, 'keys.json')));
    expect(v).toMatchObject({ ok: true, code: 'PASS' });
  }, 600_000);
});
