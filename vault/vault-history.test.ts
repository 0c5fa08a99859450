import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFile, link, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { listRunIds, newRunId, RunVault, RUN_ID_PATTERN } from './run-vault.js';
import { PassIndex, vaultStatus } from './vault-history.js';
import { globToRegExp } from './release-bundle.js';
import { detach, storePath, storePut } from './store.js';

let tmp: DirectoryResult;
beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterEach(() => tmp.cleanup());

async function runWith(buildDir: string, at: string, ends: Record<string, unknown>[]): Promise<RunVault> {
  const v = await RunVault.open(buildDir, { runId: newRunId(new Date(at)), now: () => new Date(at) });
  await v.append('run-start', {});
  for (const e of ends) await v.append('task-end', e);
  await v.append('run-end', { status: 'passed' });
  await v.close();
  return v;
}

describe('run ids', () => {
  it('sort by time to the millisecond and never collide', () => {
    const a = newRunId(new Date('2025-11-21T23:05:12.123Z'));
    const b = newRunId(new Date('2025-11-21T23:05:12.123Z'));
    const c = newRunId(new Date('2025-11-21T23:05:12.124Z'));
    expect(a).toMatch(/^run-20251121T230512\.123Z-[0-9a-f]{8}$/);
    expect(a).toMatch(RUN_ID_PATTERN);
    expect(a).not.toBe(b);
    expect([c, a].sort()[1]).toBe(c);
  });
});

describe('vault status and history', () => {
  it('folds every run: the newest task-end wins; a tampered chain is reported and only its verified prefix is used', async () => {
    const b = tmp.path;
    const t = (task: string, status: string, message: string) => ({ task, status, message, fingerprint: `${task}-${message}`, phase: 'P1', outputs: [], duration_ms: 1 });
    const r1 = await runWith(b, '2025-11-21T10:00:00.000Z', [t('A-01', 'PASS', 'one'), t('C-01', 'PASS', 'one')]);
    const r2 = await runWith(b, '2025-11-21T11:00:00.000Z', [t('A-01', 'FAIL', 'two')]);
    const r3 = await runWith(b, '2025-11-21T12:00:00.000Z', [t('A-01', 'PASS', 'three')]);
    expect(await listRunIds(b)).toEqual([r1.runId, r2.runId, r3.runId]);
    let s = await vaultStatus(b);
    expect(s.problems).toEqual([]);
    expect([s.instances['A-01']!.message, s.instances['A-01']!.run_id, s.instances['C-01']!.message]).toEqual(['three', r3.runId, 'one']);

    // Someone rewrites the third run's task-end: only what a later line vouches for (run-start) still counts.
    const lines = (await readFile(r3.eventsFile, 'utf8')).split('\n');
    lines[1] = lines[1]!.replace('"three"', '"forged"');
    await writeFile(r3.eventsFile, lines.join('\n'));
    s = await vaultStatus(b);
    expect(s.problems).toHaveLength(1);
    expect(s.problems[0]).toMatch(
      new RegExp(`^run ${r3.runId.replace('.', '\\.')}: TAMPERED: CHAIN_BROKEN: event 2: prev is [A-Za-z0-9_-]{43}, expected [A-Za-z0-9_-]{43} \\(the hash of event 1\\); only its first 1 of 3 events verify and are used$`),
    );
    expect(s.tampered).toEqual([r3.runId]);
    expect(s.runs[2]).toMatchObject({ run_id: r3.runId, events: 1, tampered: { code: 'CHAIN_BROKEN', verified: 1, total: 3 } });
    expect(s.instances['A-01']).toMatchObject({ message: 'two', status: 'FAIL', run_id: r2.runId });

    // A torn last line (an interrupted append) keeps the verified prefix.
    await appendFile(r2.eventsFile, '{"run_id":"x"');
    s = await vaultStatus(b);
    expect(s.problems[0]).toBe(`run ${r2.runId}: the last line is torn (13 bytes): an append was interrupted`);
    expect(s.instances['A-01']!.message).toBe('two');

    const passes = new PassIndex(b);
    expect(await passes.find('A-01', 'A-01-one')).toMatchObject({ message: 'one', run_id: r1.runId });
    expect(await passes.find('A-01', 'A-01-two')).toBeUndefined();
  });
});

describe('bundle subject globs', () => {
  it('* matches within one path segment only', () => {
    const re = globToRegExp('build-engineer/*/clawos-*.iso');
    expect(re.test('build-engineer/x86_64/clawos-x86_64.iso')).toBe(true);
    expect(re.test('build-engineer/x86_64/sub/clawos-x86_64.iso')).toBe(false);
    expect(re.test('build-engineer/x86_64/clawos-x86_64.iso.bak')).toBe(false);
    expect(globToRegExp('gates/*/gate-report.json').test('gates/P1/gate-report+json')).toBe(false);
  });
});

describe('detach', () => {
  it('gives a restored output its own inode, so writing it in place cannot reach the store', async () => {
    const b = tmp.path;
    const f = join(b, 'out.bin');
    await writeFile(f, 'v1');
    const sha = await storePut(b, f);
    const linked = join(b, 'linked.bin');
    await link(storePath(b, sha), linked);
    expect(await detach(linked)).toBe(true);
    expect((await stat(linked)).nlink).toBe(1);
    expect((await stat(linked)).mode & 0o777).toBe(0o644);
    await writeFile(linked, 'v2');
    expect(await readFile(storePath(b, sha), 'utf8')).toBe('v1');
    expect(await detach(linked)).toBe(false);
  });
});
