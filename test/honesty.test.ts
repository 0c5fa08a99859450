/**
 * The honesty suite (issue 11): every known way of faking a result, applied to a
 * real pipeline run (openRun, the scheduler, the gates, finishRun: the pipeline
 * fixture's stand-in kernel, rootfs and ISO steps and replayed serial consoles),
 * one case per way. Each must end in FAIL, NO-GO, a re-run, a refused run or a
 * failed verification, and each case asserts the exact reason and text it ends in.
 *
 * A new hole gets a new row in CASES: `item` (where it was reported), `name`
 * (the way of faking), `fixture` ('fresh': a pipeline fixture of its own, for a
 * case that edits the repository or re-runs; 'shared': the one run every
 * read-only case copies from), `tamper` (do the faking, return what the build
 * said) and `expect` (what it must say).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { makePipelineFixture, replayBootTask, VARIANTS, type PipelineFixture } from './fixtures/vault/pipeline-bundle.js';
import { taskYaml } from './helpers/test-repo.js';
import { fakeStepContext, testArch } from './helpers/debs-fixtures.js';
import { realInputs, todayConfig } from './helpers/security-inputs.js';
import { scanKernelLog } from './helpers/kernel-log-scan.js';
import type { RunEvent } from '../pipeline/run/events.js';
import type { PhaseResult, RunFinish } from '../pipeline/run/phases.js';
import { guestCheckStep } from '../pipeline/steps/guest-check.js';
import { computeSecurityReport } from '../pipeline/security/security-report.js';
import { UserError } from '../lib/errors.js';
import { NO_SANDBOX } from '../lib/sandbox.js';
import { run } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';
import { sha256File, sha256Hex } from '../lib/hash.js';
import { readAllRuns } from '../vault/vault-history.js';
import { eventHash, eventsPath } from '../vault/event-chain.js';
import { loadTrust } from '../vault/keys.js';
import { verifyBundle } from '../vault/verify.js';
import { FREEZE_FILE, loadFreezeState, readSpec } from '../vault/freeze-specs.js';
import { makeRelease } from '../report/release-folder.js';
import { main } from '../bin/cli.js';

const ROOT = repoRootDir();
const SERIAL = join(ROOT, 'test', 'fixtures', 'serial-logs');
const CANARY = join(ROOT, 'test/fixtures/components/canary-hello');

/** What the build said: a task's end (status, reason, message), a gate, a re-run, a refusal, a verification, an exit. */
interface Said {
  kind: string;
  reason: string;
  text: string;
}

interface Ctx {
  fx: PipelineFixture;
  tmp: string;
}

interface Case {
  item: string;
  name: string;
  fixture: 'fresh' | 'shared';
  tamper(c: Ctx): Promise<Said>;
  expect(c: Ctx): Said | Promise<Said>;
}

type Ran = { events: RunEvent[]; results: PhaseResult[]; finish: RunFinish };

function ended(r: Ran, id: string): Said {
  const e = r.events.find((x) => x.type === 'task-end' && x.id === id);
  if (!e || e.type !== 'task-end') throw new Error(`${id} did not end in this run`);
  return { kind: e.status, reason: e.reason ?? '', text: e.message };
}

function gate(r: Ran, phase: string): Said {
  const g = r.results.find((x) => x.phase === phase)!.gate;
  return { kind: g.recommendation, reason: `gate ${phase}`, text: g.blockers.join('\n') };
}

async function refused(p: Promise<unknown>): Promise<Said> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  if (!(e instanceof UserError)) throw new Error(`the run was not refused: ${String(e)}`);
  return { kind: 'refused', reason: 'UserError (exit 3)', text: e.message };
}

/** A P1 task with a `run:` command, added to the fixture's catalog (phase P1 runs it with C-06). */
const runTask = (o: { action: string; validation?: string; rollback?: string; timeout?: number }) =>
  taskYaml({
    id: 'D-09',
    outputs: ['build-engineer/honest.txt'],
    ...(o.validation ? { validation: o.validation } : {}),
    ...(o.rollback ? { rollback: o.rollback } : {}),
    ...(o.timeout ? { timeout: o.timeout } : {}),
    action: `run: ${o.action}`,
  });
const WRITES = 'echo ok > "$CLAWOS_OUT/honest.txt"';

/** A component task of the catalog's shape (core-dev), built from the local canary component. */
const componentTask = (extra = '') => taskYaml({ id: 'D-01', agent: 'core-dev', action: `${extra}component: canary-hello` });
async function componentConfig(c: Ctx, source: string): Promise<string> {
  const cfg = join(c.tmp, 'local.yaml');
  await writeFile(cfg, `components:\n  canary-hello:\n    source: ${source}\n    build: make hello\n    outputs: [hello]\n`);
  return cfg;
}
const gatesRequiring = async (c: Ctx, phase: string, ids: string[]) => {
  const file = join(c.fx.repo.root, 'specs/gates.yaml');
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace(new RegExp(`(${phase}: \\{[^}]*require_pass: )\\[\\]`), `$1[${ids.join(', ')}]`));
};

/** G-06@x86_64's seabios boot replays `log` instead of the recorded console: the rest of the run is the fixture's. */
async function bootWith(c: Ctx, log: string): Promise<Ran> {
  await c.fx.run();
  const file = join(c.tmp, 'x86_64-seabios-tampered.log');
  await writeFile(file, log);
  await c.fx.repo.writeTask('G-06', replayBootTask({ ...VARIANTS, x86_64: { ...VARIANTS.x86_64, seabios: relative(SERIAL, file) } }));
  return c.fx.run({ phases: ['P4'] });
}
/** G-06@x86_64's end, with the seabios boot's verdict as the run recorded it in the vault (the classifier's message). */
async function bootSaid(c: Ctx, r: Ran): Promise<Said> {
  const end = ended(r, 'G-06@x86_64');
  const v = (await readAllRuns(c.fx.repo.buildDir)).at(-1)!.events.find((e) => e.type === 'boot-verdict' && e.payload.arch === 'x86_64' && e.payload.variant === 'seabios')!;
  return { ...end, text: `${end.text}; boot-verdict seabios: ${String(v.payload.verdict)}: ${String(v.payload.message)}` };
}
const SEABIOS = () => readFile(join(SERIAL, VARIANTS.x86_64!.seabios!), 'utf8');

/** The `node -e` check of .ci/run that reads `json`, run on a vitest JSON report in a folder of its own. */
async function ciCheck(c: Ctx, json: string, files: { name: string; tests: [string, string][] }[]): Promise<Said> {
  const script = await readFile(join(ROOT, '.ci/run'), 'utf8');
  const m = [...script.matchAll(/node -e '\n([\s\S]*?)\n'/g)].find((x) => x[1]!.includes(`build/ci/${json}`));
  if (!m) throw new Error(`.ci/run has no check of build/ci/${json}`);
  const cwd = join(c.tmp, 'ci');
  await mkdir(join(cwd, 'build/ci'), { recursive: true });
  await writeFile(join(cwd, 'build/ci', json), JSON.stringify(vitestReport(cwd, files)));
  const r = await run(['node', '-e', m[1]!], { cwd, captureStdout: true });
  return { kind: 'CI', reason: `exit ${r.exitCode}`, text: r.stdout.trimEnd() };
}
/** A vitest JSON report (the fields .ci/run reads) of files under `cwd`. */
const vitestReport = (cwd: string, files: { name: string; tests: [string, string][] }[]) => {
  const all = files.flatMap((f) => f.tests);
  return {
    numTotalTests: all.length,
    numPassedTests: all.filter(([, s]) => s === 'passed').length,
    numFailedTests: all.filter(([, s]) => s === 'failed').length,
    numPendingTests: all.filter(([, s]) => s === 'skipped' || s === 'pending').length,
    numTodoTests: all.filter(([, s]) => s === 'todo').length,
    testResults: files.map((f) => ({ name: `${cwd}/${f.name}`, assertionResults: f.tests.map(([fullName, status]) => ({ fullName, status })) })),
  };
};

/** A copy of the shared run's build dir, to damage. */
async function buildCopy(c: Ctx): Promise<string> {
  const d = join(c.tmp, 'build-copy');
  await cp(c.fx.repo.buildDir, d, { recursive: true });
  return d;
}
let shared: { fx: PipelineFixture; first: Ran };

const CASES: Case[] = [
  {
    item: '1',
    name: 'a kept gate ignores its rule: a task added to require_pass after a GO',
    fixture: 'fresh',
    async tamper(c) {
      // D-01 is a component nobody configured: NOT_CONFIGURED, which no gate counts as passed.
      await c.fx.repo.writeTask('D-01', componentTask());
      expect(gate(await c.fx.run({ phases: ['P1'] }), 'P1').kind).toBe('GO');
      await gatesRequiring(c, 'P1', ['D-01']);
      const again = await c.fx.run({ phases: ['P1'] });
      // Nothing re-ran: the tasks' fingerprints are the same; only the rule changed.
      expect(again.events.filter((e) => e.type === 'task-start')).toEqual([]);
      return gate(again, 'P1');
    },
    expect: (c) => ({
      kind: 'NO-GO',
      reason: 'gate P1',
      text: `D-01: required to PASS for gate P1, but NOT_CONFIGURED: component canary-hello is not configured (A C compiler.): set components.canary-hello.source, .build and .outputs in clawos-build.config.yaml`,
    }),
  },
  {
    item: '2',
    name: 'a frozen spec no task lists (specs/p1/ipc-protocol.yaml) edited under the same version',
    fixture: 'fresh',
    async tamper(c) {
      await appendFile(join(c.fx.repo.root, 'specs/p1/ipc-protocol.yaml'), '# an unreviewed edit\n');
      return refused(c.fx.run());
    },
    async expect(c) {
      const spec = join(c.fx.repo.root, 'specs/p1/ipc-protocol.yaml');
      const st = await loadFreezeState(c.fx.repo.root);
      if (!st.ok) throw new Error(st.detail);
      const frozen = st.payload.specs.find((s: { path: string }) => s.path === 'specs/p1/ipc-protocol.yaml') as { sha256: string };
      const { version } = (await readSpec(c.fx.repo.root, 'specs/p1/ipc-protocol.yaml'))!;
      return {
        kind: 'refused',
        reason: 'UserError (exit 3)',
        text:
          `1 frozen spec does not match ${FREEZE_FILE} (frozen_at ${st.payload.frozen_at}), so the run stops before any task:\n` +
          `frozen spec specs/p1/ipc-protocol.yaml changed: frozen sha256 ${frozen.sha256}, current sha256 ${await sha256File(spec)}; version ${version} keeps major ${version.split('.')[0]} of frozen ${version}; a frozen spec changes only with a new major version and a new freeze`,
      };
    },
  },
  {
    item: '2',
    name: 'a frozen audit file (specs/audit/waivers.yaml) edited: the freeze covers specs/audit/ too',
    fixture: 'fresh',
    async tamper(c) {
      await appendFile(join(c.fx.repo.root, 'specs/audit/waivers.yaml'), '# an unreviewed waiver\n');
      const r = await refused(c.fx.run());
      return { ...r, text: r.text.split('\n').slice(1).join('\n').replace(/sha256 [0-9a-f]{64}/g, 'sha256 H') };
    },
    expect: () => ({
      kind: 'refused',
      reason: 'UserError (exit 3)',
      text: 'frozen spec specs/audit/waivers.yaml changed: frozen sha256 H, current sha256 H; version 2.0.0 keeps major 2 of frozen 2.0.0; a frozen spec changes only with a new major version and a new freeze',
    }),
  },
  {
    item: '3',
    name: 'G-04: an open HIGH audit finding whose rule has only a fix (CONFIG_VMAP_STACK off on x86_64)',
    fixture: 'shared',
    async tamper() {
      // Today's config without VMAP_STACK (the recorded config before the audit fixes did not set it).
      const x86 = await todayConfig('x86_64');
      expect(x86.get('VMAP_STACK')).toBe('y');
      x86.delete('VMAP_STACK');
      const r = computeSecurityReport(await realInputs({ aarch64: await todayConfig('aarch64'), x86_64: x86 }));
      const f = r.findings.find((x) => x.id === 'KCONFIG@x86_64:CONFIG_VMAP_STACK')!;
      // The rule's fix is there; it is not a mitigation.
      expect([f.fix, f.mitigation]).toEqual(['Set CONFIG_VMAP_STACK=y (tinyconfig turns it off).', null]);
      return { kind: r.verdict, reason: 'G-04 blocking', text: r.blocking.join('\n') };
    },
    expect: () => ({
      kind: 'FAIL',
      reason: 'G-04 blocking',
      text: 'KCONFIG@x86_64:CONFIG_VMAP_STACK: HIGH without a proven mitigation: CONFIG_VMAP_STACK=y (defconfig): FAIL: is not found',
    }),
  },
  {
    item: '4',
    name: 'a PASS earned under --no-sandbox reused by a sandboxed run',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-09', runTask({ action: WRITES }));
      expect(ended(await c.fx.run({ phases: ['P1'], sandbox: NO_SANDBOX }), 'D-09').kind).toBe('PASS');
      const r = await c.fx.run({ phases: ['P1'] });
      expect(ended(r, 'D-09').kind).toBe('PASS');
      const start = (await readAllRuns(c.fx.repo.buildDir)).at(-1)!.events.find((e) => e.type === 'task-start' && e.payload.task === 'D-09')!;
      return { kind: 're-run', reason: 'D-09', text: String(start.payload.why) };
    },
    expect: () => ({ kind: 're-run', reason: 'D-09', text: 'sandbox mode changed (off -> bwrap)' }),
  },
  {
    item: '5',
    name: "stale outputs: a task that now writes nothing, with last run's file still there",
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-09', runTask({ action: WRITES }));
      expect(ended(await c.fx.run({ phases: ['P1'] }), 'D-09').kind).toBe('PASS');
      await c.fx.repo.writeTask('D-09', runTask({ action: '"true"' }));
      return ended(await c.fx.run({ phases: ['P1'] }), 'D-09');
    },
    expect: () => ({ kind: 'FAIL', reason: 'output-missing', text: 'declared output missing: build-engineer/honest.txt' }),
  },
  {
    item: '6',
    name: 'a configured component that only compiled, required by its gate',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-01', componentTask());
      await gatesRequiring(c, 'P1', ['D-01']);
      const r = await c.fx.run({ phases: ['P1'], configFile: await componentConfig(c, `{ path: ${CANARY} }`) });
      expect(ended(r, 'D-01')).toEqual({ kind: 'BUILT', reason: 'unvalidated', text: BUILT_MESSAGE });
      return gate(r, 'P1');
    },
    expect: () => ({
      kind: 'NO-GO',
      reason: 'gate P1',
      text: `D-01: required to PASS for gate P1, but only BUILT (built, not validated: no validation_cmd or in-guest check proves it): ${BUILT_MESSAGE}`,
    }),
  },
  {
    item: '6',
    name: 'a component download outside the sandbox: a URL source without network: true',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-01', componentTask());
      const r = await c.fx.run({ phases: ['P1'], configFile: await componentConfig(c, `{ url: "http://127.0.0.1:9/canary.tar.gz", sha256: ${'a'.repeat(64)} }`) });
      return ended(r, 'D-01');
    },
    expect: () => ({
      kind: 'FAIL',
      reason: 'rule-006-network-undeclared',
      text: 'RULE-006: component canary-hello: source http://127.0.0.1:9/canary.tar.gz must be downloaded, but network: true is not declared in tasks/D-01.yaml, so its sandbox has none: declare it there, or set components.canary-hello.source to a local path or a file:// tarball',
    }),
  },
  {
    item: '7',
    name: 'a qemu-boot task without an expected-checks file',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('G-06', taskYaml({ id: 'G-06', phase: 'P4', perArch: true, deps: ['G-05'], outputs: ['build-engineer/{arch}/boot'], action: 'uses: qemu-boot\nwith:\n  iso: build-engineer/{arch}/clawos-{arch}.iso' }));
      return refused(c.fx.run());
    },
    expect: (c) => ({
      kind: 'refused',
      reason: 'UserError (exit 3)',
      text: `1 error(s) in the task specs:\ntasks/G-06.yaml:17:3: qemu-boot: missing required field "expected_checks_file" in with`,
    }),
  },
  {
    item: '7',
    name: 'a guest-check task with no checks',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('C-03', taskYaml({ id: 'C-03', phase: 'P4', perArch: true, deps: ['G-06'], action: 'uses: guest-check\nwith:\n  boot_dir: build-engineer/{arch}/boot\n  checks: []' }));
      return refused(c.fx.run());
    },
    expect: (c) => ({
      kind: 'refused',
      reason: 'UserError (exit 3)',
      text: `1 error(s) in the task specs:\ntasks/C-03.yaml:17:11: guest-check: with.checks: must NOT have fewer than 1 items`,
    }),
  },
  {
    item: '7',
    name: "guest-check on the run's boot records with one it cannot parse",
    fixture: 'shared',
    async tamper(c) {
      const build = join(c.tmp, 'build');
      await cp(join(c.fx.repo.buildDir, 'build-engineer/x86_64/boot'), join(build, 'boot'), { recursive: true });
      // The other boot reported lsm passing (a record of today's protocol); seabios.json is cut short.
      const good = join(build, 'boot/ovmf.json');
      await writeFile(good, JSON.stringify({ ...JSON.parse(await readFile(good, 'utf8')), checks: [{ name: 'lsm', result: 'pass', value: 'lockdown,capability,yama,apparmor,bpf' }] }));
      const rec = join(build, 'boot/seabios.json');
      await writeFile(rec, (await readFile(rec, 'utf8')).slice(0, 40));
      const o = await guestCheckStep.run(fakeStepContext({ arch: testArch, repoRoot: c.fx.repo.root, buildDir: build, outDir: join(build, 'out'), params: { boot_dir: 'boot', checks: ['lsm'] }, debs: {} }));
      return { kind: o.status, reason: o.reason ?? '', text: o.message.replace(/\(.*\)$/, '(…)') };
    },
    expect: () => ({ kind: 'FAIL', reason: 'boot-check-failed', text: 'boot/seabios.json: not a boot record (…)' }),
  },
  {
    item: '8',
    name: "a kernel BUG in the guest's dmesg: the guest's kernel-log check reports it, and the boot fails",
    fixture: 'fresh',
    async tamper(c) {
      const log = await SEABIOS();
      const dmesg = join(c.tmp, 'dmesg.txt');
      await writeFile(dmesg, `${log}BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n`);
      const { line } = await scanKernelLog(dmesg, { tmpDir: c.tmp });
      // The marker is left as it was: a failed check line is enough to fail the boot.
      return bootSaid(c, await bootWith(c, log.replace('CLAWOS-BOOT-OK', `${line}\nCLAWOS-BOOT-OK`)));
    },
    expect: () => ({
      kind: 'FAIL',
      reason: 'boot-check-failed',
      text: 'seabios: FAIL; boot-verdict seabios: FAIL: CLAWOS-BOOT-OK but kernel-log failed (dmesg: BUG: sleeping function called from invalid context at kernel/locking/mut…)',
    }),
  },
  {
    item: '8',
    name: 'a kernel panic glued by the console onto a CLAWOS-CHECK line',
    fixture: 'fresh',
    async tamper(c) {
      const log = await SEABIOS();
      const check = log.split('\n').find((l) => l.startsWith('CLAWOS-CHECK'))!;
      return bootSaid(c, await bootWith(c, log.replace(check, `${check}[    2.345678] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b`)));
    },
    expect: () => ({ kind: 'FAIL', reason: 'boot-panic', text: 'seabios: FAIL; boot-verdict seabios: FAIL: kernel panic: Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b' }),
  },
  {
    item: '8',
    name: 'CLAWOS-BOOT-FAILED after CLAWOS-BOOT-OK',
    fixture: 'fresh',
    async tamper(c) {
      const log = await SEABIOS();
      return bootSaid(c, await bootWith(c, log.replace('CLAWOS-BOOT-OK', 'CLAWOS-BOOT-OK\nCLAWOS-BOOT-FAILED failed=lsm')));
    },
    expect: () => ({ kind: 'FAIL', reason: 'boot-check-failed', text: 'seabios: FAIL; boot-verdict seabios: FAIL: CLAWOS-BOOT-FAILED failed=lsm' }),
  },
  {
    item: '9',
    name: 'a sandbox violation the command ignored (|| true)',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-09', runTask({ action: `echo x > "$CLAWOS_BUILD_DIR/planted" || true; ${WRITES}` }));
      return ended(await c.fx.run({ phases: ['P1'] }), 'D-09');
    },
    expect: (c) => {
      const b = c.fx.repo.buildDir;
      return { kind: 'FAIL', reason: 'rule-001-write-outside', text: `RULE-001: D-09 wrote outside its output directory: ${b}/planted (only ${b}/build-engineer and a private /tmp are writable)` };
    },
  },
  {
    item: '10',
    name: 'a validation_cmd that runs past the task timeout',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-09', runTask({ action: WRITES, validation: 'sleep 60', timeout: 0.03 }));
      return ended(await c.fx.run({ phases: ['P1'] }), 'D-09');
    },
    expect: () => ({ kind: 'TIMEOUT', reason: 'timeout', text: 'timed out after 0.03 min (in validation_cmd); its process group was killed' }),
  },
  {
    item: '10',
    name: 'a rollback_cmd that hangs after a failure',
    fixture: 'fresh',
    async tamper(c) {
      await c.fx.repo.writeTask('D-09', runTask({ action: 'exit 3', rollback: 'sleep 60', timeout: 0.01 }));
      const t0 = Date.now();
      const r = await c.fx.run({ phases: ['P1'] });
      // Bounded by one task timeout of its own (at least a second), never the 60 s it asked for.
      expect(Date.now() - t0).toBeLessThan(20_000);
      const e = r.events.find((x) => x.type === 'task-end' && x.id === 'D-09');
      const log = e?.type === 'task-end' ? await readFile(join(c.fx.repo.buildDir, e.log), 'utf8') : '';
      const end = ended(r, 'D-09');
      return { ...end, text: `${end.text}; ${log.split('\n').find((l) => l.includes('rollback_cmd exited'))?.replace(/^.*?rollback_cmd/, 'rollback_cmd')}` };
    },
    expect: () => ({ kind: 'FAIL', reason: 'exit-non-zero', text: 'run: command exited 3: ; rollback_cmd exited SIGTERM' }),
  },
  {
    item: '11',
    name: 'CI: a skipped test outside the groups that wait for the kernel tree',
    fixture: 'shared',
    tamper: (c) =>
      ciCheck(
        c,
        'vitest.json',
        [
          { name: 'test/cli.test.ts', tests: [['cli works', 'passed']] },
          { name: 'test/report-html.test.ts', tests: [['report renders in Chromium', 'skipped']] },
          { name: 'pipeline/kernel/kconfig.test.ts', tests: [['the real tree', 'skipped']] },
        ],
      ),
    expect: () => ({ kind: 'CI', reason: 'exit 1', text: 'vitest: 1 passed, 0 failed, 2 skipped\nunexpected skip: test/report-html.test.ts: report renders in Chromium' }),
  },
  {
    item: '11',
    name: 'CI: the real-kernel-tree groups after the build, all skipped (tree not found)',
    fixture: 'shared',
    tamper: (c) =>
      ciCheck(
        c,
        'vitest-kernel.json',
        [
          { name: 'pipeline/kernel/kconfig.test.ts', tests: [['the real tree', 'skipped']] },
          { name: 'pipeline/security/seccomp-tables.test.ts', tests: [['the syscall tables', 'skipped']] },
        ],
      ),
    expect: () => ({ kind: 'CI', reason: 'exit 1', text: 'kernel-tree tests: 0 passed, 0 failed, 2 skipped' }),
  },
  {
    item: 'damaged state',
    name: "one edited event in the run's events.jsonl: status",
    fixture: 'shared',
    async tamper(c) {
      const b = await buildCopy(c);
      await editEvent(b, shared.first.finish.runId, 3);
      const r = await cli(['status', '--build-dir', b]);
      return { kind: `exit ${r.code}`, reason: 'stderr', text: r.err };
    },
    expect: async (c) => ({ kind: 'exit 1', reason: 'stderr', text: `clawos-build: vault: run ${shared.first.finish.runId}: ${await chainBreak(c, 3)}` }),
  },
  {
    item: 'damaged state',
    name: "one edited event in the run's events.jsonl: report",
    fixture: 'shared',
    async tamper(c) {
      const b = await buildCopy(c);
      await editEvent(b, shared.first.finish.runId, 3);
      const r = await cli(['report', '--build-dir', b, '--out', join(c.tmp, 'report.html')]);
      return { kind: `exit ${r.code}`, reason: 'stdout', text: r.out.split('\n').filter((l) => l.includes('TAMPERED')).join('\n') };
    },
    expect: async (c) => ({
      kind: 'exit 1',
      reason: 'stdout',
      text: [
        `TAMPERED: the event chain of run ${shared.first.finish.runId} fails verification: the build's evidence is not intact; only the verified events before the damage are shown`,
        `records: the vault's event chains: 1 run(s) in ${join(c.tmp, 'build-copy', 'vault/runs')} (1 TAMPERED: only the verified prefix of its chain is used)`,
        `problem: run ${shared.first.finish.runId}: ${await chainBreak(c, 3)}`,
      ].join('\n'),
    }),
  },
  {
    item: 'damaged state',
    name: "one edited event in the run's events.jsonl: release",
    fixture: 'shared',
    async tamper(c) {
      const b = await buildCopy(c);
      await editEvent(b, shared.first.finish.runId, 3);
      const r = await makeRelease({ repoRoot: c.fx.repo.root, buildDir: b, trust: c.fx.trustFile, outDir: join(c.tmp, 'release') });
      return r.ok ? { kind: 'released', reason: '', text: r.dir } : { kind: 'refused', reason: r.reason, text: r.detail };
    },
    expect: async (c) => ({ kind: 'refused', reason: 'chain-tampered', text: `run ${shared.first.finish.runId}: ${await chainBreak(c, 3)}` }),
  },
  {
    item: 'found here',
    name: "the run's LAST event (run-end) edited, which no later line vouches for: release",
    fixture: 'shared',
    async tamper(c) {
      const b = await buildCopy(c);
      // Untouched, the copy releases: the build dir's chain is byte for byte the one the bundle signed.
      expect(await makeRelease({ repoRoot: c.fx.repo.root, buildDir: b, trust: c.fx.trustFile, outDir: join(c.tmp, 'release-intact') })).toMatchObject({ ok: true });
      const file = eventsPath(b, shared.first.finish.runId);
      const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
      lines[lines.length - 1] = lines.at(-1)!.replace('"status":"passed"', '"status":"failed"');
      await writeFile(file, lines.join('\n') + '\n');
      const r = await makeRelease({ repoRoot: c.fx.repo.root, buildDir: b, trust: c.fx.trustFile, outDir: join(c.tmp, 'release') });
      return r.ok ? { kind: 'released', reason: '', text: r.dir } : { kind: 'refused', reason: r.reason, text: r.detail };
    },
    expect: async (c) => {
      const n = (await readFile(shared.first.finish.eventsFile, 'utf8')).split('\n').filter(Boolean).length;
      const id = shared.first.finish.runId;
      return {
        kind: 'refused',
        reason: 'chain-tampered',
        text: `run ${id}: TAMPERED: CHAIN_BROKEN: event ${n - 1} differs from the copy the run's signed bundle holds (vault/bundles/${id}/events.jsonl); only its first ${n - 1} of ${n} events verify and are used`,
      };
    },
  },
  {
    item: 'found here',
    name: "the run's LAST event (run-end) edited: status compares the chain with the copy the run's signed bundle holds",
    fixture: 'shared',
    async tamper(c) {
      const b = await buildCopy(c);
      const file = eventsPath(b, shared.first.finish.runId);
      const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
      lines[lines.length - 1] = lines.at(-1)!.replace('"status":"passed"', '"status":"failed"');
      await writeFile(file, lines.join('\n') + '\n');
      const r = await cli(['status', '--build-dir', b]);
      return { kind: `exit ${r.code}`, reason: 'stderr', text: r.err };
    },
    expect: async () => {
      const n = (await readFile(shared.first.finish.eventsFile, 'utf8')).split('\n').filter(Boolean).length;
      const id = shared.first.finish.runId;
      return {
        kind: 'exit 1',
        reason: 'stderr',
        text: `clawos-build: vault: run ${id}: TAMPERED: CHAIN_BROKEN: event ${n - 1} differs from the copy the run's signed bundle holds (vault/bundles/${id}/events.jsonl); only its first ${n - 1} of ${n} events verify and are used`,
      };
    },
  },
  {
    item: 'damaged state',
    name: 'one flipped byte in an ISO of the signed bundle: verify',
    fixture: 'shared',
    async tamper(c) {
      const d = join(c.tmp, 'bundle');
      await cp(shared.first.finish.bundle!.dir, d, { recursive: true });
      const iso = join(d, 'artifacts/build-engineer/x86_64/clawos-x86_64.iso');
      const bytes = await readFile(iso);
      bytes[1000] = bytes[1000]! ^ 1;
      await rm(iso);
      await writeFile(iso, bytes);
      const v = await verifyBundle(d, await loadTrust(c.fx.trustFile));
      return { kind: 'verify', reason: v.code, text: v.detail };
    },
    async expect() {
      const iso = await readFile(join(shared.first.finish.bundle!.dir, 'artifacts/build-engineer/x86_64/clawos-x86_64.iso'));
      const flipped = Buffer.from(iso);
      flipped[1000] = flipped[1000]! ^ 1;
      return { kind: 'verify', reason: 'HASH_MISMATCH', text: `artifacts/build-engineer/x86_64/clawos-x86_64.iso: sha256 ${sha256Hex(flipped)}, manifest says ${sha256Hex(iso)}` };
    },
  },
];

const BUILT_MESSAGE =
  'component canary-hello built: hello; BUILT, not PASS: nothing proves it works (tasks/D-01.yaml has no validation_cmd, and no in-guest check covers it)';

/** Edit event `seq` of a run's chain (its time, a valid value): the next line's prev no longer matches. */
async function editEvent(buildDir: string, runId: string, seq: number): Promise<void> {
  const file = eventsPath(buildDir, runId);
  const lines = (await readFile(file, 'utf8')).split('\n');
  lines[seq] = lines[seq]!.replace(/"time":"\d{4}/, '"time":"2024');
  await writeFile(file, lines.join('\n'));
}

/** The TAMPERED line for the shared run with event `seq` edited as editEvent does. */
async function chainBreak(_c: Ctx, seq: number): Promise<string> {
  const lines = (await readFile(shared.first.finish.eventsFile, 'utf8')).split('\n').filter(Boolean);
  const edited = lines[seq]!.replace(/"time":"\d{4}/, '"time":"2024');
  return `TAMPERED: CHAIN_BROKEN: event ${seq + 1}: prev is ${eventHash(Buffer.from(lines[seq]!))}, expected ${eventHash(Buffer.from(edited))} (the hash of event ${seq}); only its first ${seq} of ${lines.length} events verify and are used`;
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { repoRoot: shared.fx.repo.root, print: (s) => out.push(s), printErr: (s) => err.push(s) });
  return { code, out: out.join(''), err: err.join('').trimEnd() };
}

const temps: DirectoryResult[] = [];
beforeAll(async () => {
  const fx = await makePipelineFixture();
  shared = { fx, first: await fx.run() };
  expect(shared.first.results.map((r) => r.gate.recommendation)).toEqual(['GO', 'GO', 'GO', 'GO']);
  expect(shared.first.finish.bundle).toBeDefined();
}, 120_000);
afterAll(async () => {
  await shared?.fx.cleanup();
  for (const t of temps) await t.cleanup();
});

describe('the honesty suite: every way of faking a result ends in FAIL, NO-GO, a re-run, a refusal or a failed verification', () => {
  it.each(CASES.map((c) => [`${c.item}: ${c.name}`, c] as const))('%s', async (_n, c) => {
    const t = await tmpDir({ unsafeCleanup: true });
    temps.push(t);
    const fx = c.fixture === 'fresh' ? await makePipelineFixture() : shared.fx;
    try {
      const ctx = { fx, tmp: t.path };
      const said = await c.tamper(ctx);
      expect(said).toEqual(await c.expect(ctx));
      expect(['PASS', 'GO', 'released', 'verify PASS', 'exit 0']).not.toContain(said.kind);
    } finally {
      if (c.fixture === 'fresh') await fx.cleanup();
    }
  }, 60_000);

  it('the table has a case for each of issue 11 items 1 to 11 and for the damaged state', () => {
    const items = new Set(CASES.map((c) => c.item));
    for (const i of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', 'damaged state']) expect(items, `item ${i}`).toContain(i);
  });
});
