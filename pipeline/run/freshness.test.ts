import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashCache } from '../../lib/hash-cache.js';
import { sha256Hex } from '../../lib/hash.js';
import { RunVault } from '../../vault/run-vault.js';
import { storePut } from '../../vault/store.js';
import { PassIndex } from '../../vault/vault-history.js';
import { decideFreshness } from './freshness.js';
import { StateStore, type InstanceRecord } from './state.js';

let dir: string | null = null;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

const OUT = 'agent/out.txt';

async function setUp(o: { status?: InstanceRecord['status']; fingerprint?: string; stored?: boolean; record?: boolean; pass?: string } = {}) {
  dir = await mkdtemp(join(tmpdir(), 'freshness-'));
  const buildDir = join(dir, 'build');
  await mkdir(join(buildDir, 'agent'), { recursive: true });
  await writeFile(join(buildDir, OUT), 'v1\n');
  const sha = sha256Hex('v1\n');
  if (o.stored) await storePut(buildDir, join(buildDir, OUT));
  const state = await StateStore.open(buildDir);
  if (o.record !== false) {
    await state.putInstance({
      id: 'T-01',
      task_id: 'T-01',
      arch: null,
      phase: 'P1',
      agent: 'agent',
      status: o.status ?? 'PASS',
      message: 'ok',
      fingerprint: o.fingerprint ?? 'f1',
      fingerprint_parts: {},
      outputs: o.status === 'PASS' || o.status === undefined ? { [OUT]: { sha256: sha, size: 3, mtimeMs: 0 } } : {},
      started_at: '2026-01-01T00:00:00.000Z',
      finished_at: '2026-01-01T00:00:01.000Z',
      duration_ms: 1000,
      log: 'logs/agent.log',
    });
  }
  if (o.pass) {
    const v = await RunVault.open(buildDir);
    await v.append('task-end', {
      task: 'T-01',
      task_id: 'T-01',
      arch: null,
      phase: 'P1',
      agent: 'agent',
      status: 'PASS',
      message: 'ok',
      fingerprint: o.pass,
      outputs: [{ path: OUT, sha256: sha, size: 3, store: v.storeRel(sha) }],
      duration_ms: 1000,
    });
    await v.close();
  }
  return { ctx: { buildDir, state, hashCache: await HashCache.open(null), passes: new PassIndex(buildDir) }, buildDir };
}

describe('decideFreshness: the one up-to-date / restore / run decision', () => {
  it('no record and no earlier pass: never run', async () => {
    const { ctx } = await setUp({ record: false });
    expect(await decideFreshness(ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'run', cause: 'never-run' });
  });

  it('same fingerprint, outputs intact: up to date', async () => {
    const { ctx } = await setUp();
    expect(await decideFreshness(ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'up-to-date' });
  });

  it('same fingerprint, an output changed: restore when the store holds it, else run', async () => {
    const stored = await setUp({ stored: true });
    await writeFile(join(stored.buildDir, OUT), 'v2\n');
    expect(await decideFreshness(stored.ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'restore', source: 'last-result', outputs: { missing: [], changed: [{ path: OUT }] } });
    await rm(dir!, { recursive: true, force: true });
    const lost = await setUp();
    await rm(join(lost.buildDir, OUT));
    expect(await decideFreshness(lost.ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'run', cause: 'outputs-not-stored', outputs: { missing: [OUT] } });
  });

  it('a changed fingerprint runs, unless an earlier run passed with exactly it and the store holds its outputs', async () => {
    const changed = await setUp({ stored: true });
    expect(await decideFreshness(changed.ctx, { id: 'T-01' }, 'f2')).toMatchObject({ verdict: 'run', cause: 'changed' });
    await rm(dir!, { recursive: true, force: true });
    const reverted = await setUp({ stored: true, fingerprint: 'f2', pass: 'f1' });
    const f = await decideFreshness(reverted.ctx, { id: 'T-01' }, 'f1');
    expect(f).toMatchObject({ verdict: 'restore', source: 'vault' });
    await rm(dir!, { recursive: true, force: true });
    const notStored = await setUp({ fingerprint: 'f2', pass: 'f1' });
    expect(await decideFreshness(notStored.ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'run', cause: 'changed' });
  });

  it('a last result that did not pass runs, unless an earlier run passed with the same fingerprint', async () => {
    const failed = await setUp({ status: 'FAIL', fingerprint: '' });
    expect(await decideFreshness(failed.ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'run', cause: 'last-not-passed' });
    await rm(dir!, { recursive: true, force: true });
    const flaky = await setUp({ status: 'FAIL', fingerprint: '', stored: true, pass: 'f1' });
    expect(await decideFreshness(flaky.ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'restore', source: 'vault', prev: { status: 'FAIL' } });
  });

  it('NOT_CONFIGURED counts as passed: kept while nothing changed', async () => {
    const { ctx } = await setUp({ status: 'NOT_CONFIGURED' });
    expect(await decideFreshness(ctx, { id: 'T-01' }, 'f1')).toMatchObject({ verdict: 'up-to-date' });
  });
});
