/**
 * A timeout kills the whole process tree, sandboxed or not, checked with ps.
 * Each test uses a sleep length unique to this test process, so other runs on the
 * machine cannot confuse the ps check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { run } from '../lib/proc.js';
import { probeSandbox, sandboxWrapper, type SandboxMode, type SandboxPolicy } from '../lib/sandbox.js';

let tmp: DirectoryResult;
let mode: SandboxMode;
let policy: SandboxPolicy;

beforeAll(async () => {
  mode = await probeSandbox();
  tmp = await tmpDir({ unsafeCleanup: true });
  const outDir = join(tmp.path, 'build', 'build-engineer');
  await mkdir(outDir, { recursive: true });
  policy = { task: 'A-01', outDir, network: false, readOnly: [join(tmp.path, 'build')] };
});
afterAll(async () => {
  await tmp?.cleanup();
});

let serial = 0;
/** A sleep length no other process on the machine uses. */
function uniqueSeconds(): number {
  serial += 1;
  return 100_000 + (process.pid % 50_000) * 10 + serial;
}

/** ps lines (pid pgid args) of processes whose command line contains `needle`. */
async function survivors(needle: string): Promise<string[]> {
  const ps = await run(['ps', '-eo', 'pid,pgid,args'], { captureStdout: true });
  return ps.stdout.split('\n').filter((l) => l.includes(needle) && !l.includes('ps -eo'));
}

/** Survivors after the kernel has had a moment to tear down a killed pid namespace. */
async function settledSurvivors(needle: string): Promise<string[]> {
  let left = await survivors(needle);
  for (let i = 0; i < 20 && left.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = await survivors(needle);
  }
  return left;
}

async function killPids(lines: string[]): Promise<void> {
  for (const l of lines) {
    const pid = Number(l.trim().split(/\s+/)[0]);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

describe('timeouts kill the whole process tree', () => {
  for (const sandboxed of [false, true]) {
    it(`${sandboxed ? 'sandboxed' : 'unsandboxed'}: bash with two background sleeps leaves no survivor`, async () => {
      const s = uniqueSeconds();
      const script = `sleep ${s} & sleep ${s} & wait`;
      const started = Date.now();
      const runP = run(['bash', '-c', script], { timeoutMs: 1500, killGraceMs: 1000, cwd: policy.outDir, wrap: sandboxed ? sandboxWrapper(mode, policy) : undefined });
      // While it runs, the tree is really there.
      await new Promise((r) => setTimeout(r, 700));
      expect((await survivors(`sleep ${s}`)).length).toBeGreaterThanOrEqual(2);
      const r = await runP;
      expect(r.timedOut).toBe(true);
      expect(r.ok).toBe(false);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await settledSurvivors(`sleep ${s}`)).toEqual([]);
    });
  }

  it('unsandboxed, a child that calls setsid() leaves the process group and survives: the limit of a group kill', async () => {
    const s = uniqueSeconds();
    const r = await run(['bash', '-c', `setsid sleep ${s} & sleep ${s} & wait`], { timeoutMs: 1000, killGraceMs: 500 });
    expect(r.timedOut).toBe(true);
    await new Promise((res) => setTimeout(res, 300));
    const left = await survivors(`sleep ${s}`);
    try {
      // Exactly the setsid'd sleep is left: its pgid is its own pid.
      expect(left).toHaveLength(1);
      const [pid, pgid] = left[0]!.trim().split(/\s+/);
      expect(pgid).toBe(pid);
    } finally {
      await killPids(left);
    }
  });

  it('sandboxed, even a setsid() child dies: the pid namespace goes with bwrap', async () => {
    const s = uniqueSeconds();
    const runP = run(['bash', '-c', `setsid sleep ${s} & setsid bash -c "sleep ${s} & wait" & sleep ${s} & wait`], {
      timeoutMs: 1500,
      killGraceMs: 500,
      cwd: policy.outDir,
      wrap: sandboxWrapper(mode, policy),
    });
    await new Promise((res) => setTimeout(res, 700));
    expect((await survivors(`sleep ${s}`)).filter((l) => / sleep \d+$/.test(l)).length).toBe(3);
    const r = await runP;
    expect(r.timedOut).toBe(true);
    const left = await settledSurvivors(`sleep ${s}`);
    await killPids(left);
    expect(left).toEqual([]);
  });

  it('an abort (SIGINT of the run) kills a sandboxed tree the same way', async () => {
    const s = uniqueSeconds();
    const ac = new AbortController();
    const runP = run(['bash', '-c', `sleep ${s} & sleep ${s} & wait`], { signal: ac.signal, killGraceMs: 500, cwd: policy.outDir, wrap: sandboxWrapper(mode, policy) });
    await new Promise((res) => setTimeout(res, 700));
    expect((await survivors(`sleep ${s}`)).length).toBeGreaterThanOrEqual(2);
    ac.abort();
    const r = await runP;
    expect(r.aborted).toBe(true);
    expect(await settledSurvivors(`sleep ${s}`)).toEqual([]);
  });
});
