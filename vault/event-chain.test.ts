import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import { EventLog, eventHash, eventsPath, GENESIS_PREV, logRoot, splitLines, verifiedPrefix, verifyChain } from './event-chain.js';
import { isCanonical } from './jcs.js';
import { merkleRoot } from './merkle.js';

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await tmpDir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

const fixed = () => new Date('2025-11-21T00:00:00Z');

describe('event chain', () => {
  it('the genesis prev is base64url of 32 zero bytes', () => {
    expect(GENESIS_PREV).toBe('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  });

  it('appends JCS lines with seq and prev, concurrently and in order, and verifies', async () => {
    const path = eventsPath(tmp.path, 'run-1');
    expect(path).toBe(join(tmp.path, 'vault/runs/run-1/events.jsonl'));
    const log = await EventLog.open(path, 'run-1', { now: fixed });
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append('task-end', { task: `T-${i}` })));
    await log.close();
    const raw = await readFile(path);
    const { lines, torn } = splitLines(raw);
    expect(torn).toBeUndefined();
    expect(lines).toHaveLength(20);
    expect(lines.every((l) => isCanonical(l))).toBe(true);
    expect(lines[0]!.toString()).toBe(`{"payload":{"task":"T-0"},"prev":"${GENESIS_PREV}","run_id":"run-1","seq":0,"time":"2025-11-21T00:00:00.000Z","type":"task-end"}`);
    expect(JSON.parse(lines[1]!.toString()).prev).toBe(eventHash(lines[0]!));
    const v = verifyChain(lines, { runId: 'run-1' });
    expect(v).toMatchObject({ ok: true, count: 20, head: eventHash(lines[19]!) });
    expect(logRoot(lines)).toBe(merkleRoot(lines).toString('base64url'));
    if (v.ok) expect(logRoot(v.events)).toBe(logRoot(lines));

    const again = await EventLog.open(path, 'run-1', { now: fixed });
    expect(again.count).toBe(20);
    expect((await again.append('run-end', {})).seq).toBe(20);
    expect(again.root()).toBe(logRoot(again.eventBytes()));
    await again.close();
  });

  it('verifyChain names the seq of the first bad event', () => {
    const mk = (seq: number, prev: string) => JSON.stringify({ payload: {}, prev, run_id: 'r', seq, time: '2025-11-21T00:00:00Z', type: 'gate' });
    const e0 = mk(0, GENESIS_PREV);
    const e1 = mk(1, eventHash(Buffer.from(e0)));
    const e2 = mk(2, eventHash(Buffer.from(e1)));
    expect(verifyChain([e0, e1, e2]).ok).toBe(true);
    expect(verifyChain([e0, e2])).toEqual({ ok: false, code: 'CHAIN_BROKEN', detail: 'event 1: seq is 2, expected 1', seq: 1 });
    const forged = mk(1, GENESIS_PREV);
    expect(verifyChain([e0, forged])).toEqual({
      ok: false,
      code: 'CHAIN_BROKEN',
      detail: `event 1: prev is ${GENESIS_PREV}, expected ${eventHash(Buffer.from(e0))} (the hash of event 0)`,
      seq: 1,
    });
    expect(verifyChain([e0], { runId: 'other' })).toMatchObject({ code: 'RUN_ID_MISMATCH', seq: 0 });
    expect(verifyChain([e0.replace('"gate"', '"bogus"')])).toMatchObject({ code: 'INVALID_SCHEMA', seq: 0 });
  });

  it('verifiedPrefix keeps only the events a later line vouches for', () => {
    const mk = (seq: number, prev: string, task = 'T') => JSON.stringify({ payload: { task }, prev, run_id: 'r', seq, time: '2025-11-21T00:00:00Z', type: 'task-end' });
    const e0 = mk(0, GENESIS_PREV);
    const e1 = mk(1, eventHash(Buffer.from(e0)));
    const e2 = mk(2, eventHash(Buffer.from(e1)));
    const e3 = mk(3, eventHash(Buffer.from(e2)));
    const prefix = (lines: string[]) => {
      const v = verifyChain(lines);
      if (v.ok) throw new Error('expected a broken chain');
      return verifiedPrefix(lines, v).map((e) => e.seq);
    };
    // Event 2 edited: event 3's prev no longer matches, and event 2 itself is not vouched for.
    expect(prefix([e0, e1, e2.replace('"T"', '"forged"'), e3])).toEqual([0, 1]);
    // Event 3 unreadable: nothing vouches for event 2.
    expect(prefix([e0, e1, e2, '{not json'])).toEqual([0, 1]);
    // Event 3 has a wrong seq but the right prev: event 2 is vouched for.
    expect(prefix([e0, e1, e2, mk(7, eventHash(Buffer.from(e2)))])).toEqual([0, 1, 2]);
    // The first event edited: nothing stands.
    expect(prefix([e0.replace('"T"', '"forged"'), e1])).toEqual([]);
  });

  it('detects a torn last line on open, and drops it only when asked', async () => {
    const path = eventsPath(tmp.path, 'run-2');
    const log = await EventLog.open(path, 'run-2', { now: fixed });
    await log.append('run-start', {});
    await log.close();
    const size = (await readFile(path)).length;
    await appendFile(path, '{"payload":{},"prev":"');
    await expect(EventLog.open(path, 'run-2')).rejects.toThrow(
      `${path}: the last line is torn (22 bytes without a newline at offset ${size}); an append was interrupted. Open with repairTorn to drop it`,
    );
    const repaired = await EventLog.open(path, 'run-2', { repairTorn: true, now: fixed });
    expect(repaired.repairedBytes).toBe(22);
    expect((await repaired.append('run-end', {})).seq).toBe(1);
    await repaired.close();
    expect(verifyChain(splitLines(await readFile(path)).lines).ok).toBe(true);
  });

  it('refuses to open a log whose chain is broken', async () => {
    const path = join(tmp.path, 'broken.jsonl');
    await writeFile(path, '{"payload":{},"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","run_id":"r","seq":1,"time":"2025-11-21T00:00:00Z","type":"gate"}\n');
    await expect(EventLog.open(path, 'r')).rejects.toMatchObject({ code: 'CHAIN_BROKEN', message: `${path}: event 0: seq is 1, expected 0` });
  });
});
