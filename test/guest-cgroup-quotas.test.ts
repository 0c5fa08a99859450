// checks.d/cgroup-quotas.sh run on the build host (busybox sh) against a fake
// cgroup tree: plain files read back what was written, so the slice part
// passes and names what it set, and every way it can fail says so. The pids
// refusal needs a real kernel: on a fake tree nothing refuses the fork, which
// shows that the check fails when pids.max is not enforced. The real runs are
// the boots (G-06), whose serial logs carry the CLAWOS-CHECK line.
import { describe, expect, it, afterEach } from 'vitest';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lib/proc.js';
import { DEFAULT_OVERLAY } from '../pipeline/steps/rootfs.js';

const lib = join(process.cwd(), DEFAULT_OVERLAY, 'usr/lib/clawos');

const cleanups: DirectoryResult[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await d.cleanup();
});

const ENV = `CGROUP_QUOTAS_SPEC='P1.5 1.0.0 t'
CGROUP_SLICES='
a.slice 268435456 max 100000 256
b.slice max 200000 100000 128
'
`;

/** A fake cgroup root with the given slices' cgroup.controllers. */
async function fakeTree(controllers: Record<string, string> = { 'a.slice': 'cpu memory pids', 'b.slice': 'cpu memory pids' }) {
  const d = await tmpDir({ unsafeCleanup: true });
  cleanups.push(d);
  const root = join(d.path, 'cg');
  await mkdir(root);
  await writeFile(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
  for (const [s, c] of Object.entries(controllers)) {
    await mkdir(join(root, s));
    await writeFile(join(root, s, 'cgroup.controllers'), `${c}\n`);
  }
  await writeFile(join(d.path, 'q.env'), ENV);
  return { root, env: join(d.path, 'q.env') };
}

/** Source checks.sh and the script (its run_check stubbed), then run `script`. */
async function sh(script: string, env: Record<string, string>): Promise<string> {
  const r = await run(['busybox', 'sh', '-c', `run_check() { :; }; . ${lib}/checks.sh; . ${lib}/checks.d/cgroup-quotas.sh; ${script}`], {
    captureStdout: true,
    env: { CGQ_SLEEP: '1', ...env },
  });
  return r.stdout.trimEnd();
}

describe('checks.d/cgroup-quotas.sh on a fake tree', () => {
  it('enables the controllers, writes every slice of the table and reads it back', async () => {
    const t = await fakeTree();
    expect(await sh('cgq_slices; echo "$? [$CGQ_OK] [$CGQ_BAD] page=$PAGE"', { CGROUP_ROOT: t.root, CGROUP_QUOTAS_ENV: t.env })).toBe(
      '0 [ a.slice=268435456,max/100000,256 b.slice=max,200000/100000,128] [] page=1',
    );
    expect(await readFile(join(t.root, 'cgroup.subtree_control'), 'utf8')).toBe('+memory +cpu +pids\n');
    expect(await readFile(join(t.root, 'a.slice', 'cpu.max'), 'utf8')).toBe('max 100000\n');
    expect(await readFile(join(t.root, 'b.slice', 'pids.max'), 'utf8')).toBe('128\n');
  });

  it('fails a slice whose controllers are missing, and names it', async () => {
    const t = await fakeTree({ 'a.slice': 'cpu memory pids', 'b.slice': 'cpu memory' });
    expect(await sh('cgq_slices; echo "$? [$CGQ_OK] [$CGQ_BAD]"', { CGROUP_ROOT: t.root, CGROUP_QUOTAS_ENV: t.env })).toBe(
      '1 [ a.slice=268435456,max/100000,256] [ b.slice:controllers=cpu memory(missing pids)]',
    );
  });

  it('fails a limit that cannot be written or read back', async () => {
    const t = await fakeTree();
    // A tree whose memory.max files cannot be written (a directory in the way): read back fails.
    await mkdir(join(t.root, 'a.slice', 'memory.max'));
    expect(await sh('cgq_slices; echo "$? [$CGQ_BAD]"', { CGROUP_ROOT: t.root, CGROUP_QUOTAS_ENV: t.env })).toBe(
      '1 [ a.slice:memory.max:write-refused memory.max=unreadable(want 268435456)]',
    );
  });

  it('fails without the table, and refuses to touch a directory that is not a cgroup2 tree', async () => {
    const t = await fakeTree();
    expect(await sh('check_cgroup_quotas; echo "$? $VALUE"', { CGROUP_ROOT: t.root, CGROUP_QUOTAS_ENV: '/nonexistent.env' })).toMatch(
      /^1 slices \(memory\.max in \?-byte pages\): none; FAILED:\/nonexistent\.env missing \(rootfs step without cgroup_quotas\); pids: /,
    );
    const d = await tmpDir({ unsafeCleanup: true });
    cleanups.push(d);
    expect(await sh('check_cgroup_quotas; echo "$? $VALUE"', { CGROUP_ROOT: d.path, CGROUP_QUOTAS_ENV: t.env })).toBe(
      `1 ${d.path} is not a cgroup2 tree (no cgroup.controllers)`,
    );
  });

  it('fails when pids.max is not enforced: every fork succeeds on a fake tree', async () => {
    const t = await fakeTree();
    expect(await sh('cgq_pids_refusal; echo "$? $CGQ_PIDS"', { CGROUP_ROOT: t.root, CGQ_PIDS_MAX: '3' })).toBe(
      '1 pids.max=3 not enforced: the shell forked 4 children (limit allows 2)',
    );
    expect(await readFile(join(t.root, 'clawos-pids-test', 'pids.max'), 'utf8')).toBe('3\n');
  });
});
