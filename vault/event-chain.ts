/**
 * The run's append-only event chain, <build>/vault/runs/<run_id>/events.jsonl.
 * - one event per line: its RFC 8785 JCS bytes, then LF;
 * - fields: run_id, seq (0, 1, 2 …), type, time, payload, prev;
 * - prev = base64url(sha256(JCS bytes of the previous event)); the first event's
 *   prev is GENESIS_PREV, base64url of 32 zero bytes (a fixed value that no real
 *   event hashes to, so "first event" is explicit rather than a missing field);
 * - each append is one write of the whole line, then fsync: a crash leaves at most
 *   a torn last line (no LF), which open() detects and reports (or drops on request);
 * - the log root is the RFC 6962 Merkle root over the events' JCS bytes (no LF).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { canonicalBytes, isCanonical, parseJsonBytes } from './jcs.js';
import { merkleRoot } from './merkle.js';
import { fail, VaultError, type Fail } from './codes.js';
import { schemaError } from './schemas.js';

export const EVENT_TYPES = ['run-start', 'run-end', 'task-start', 'task-end', 'gate', 'boot-verdict', 'artifact', 'spec-freeze', 'rollback', 'task-attempt'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface VaultEvent {
  run_id: string;
  seq: number;
  type: EventType;
  time: string;
  payload: Record<string, unknown>;
  prev: string;
}

export const GENESIS_PREV = Buffer.alloc(32).toString('base64url');

export function sha256B64u(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

/** The hash that the next event's prev carries. */
export function eventHash(jcsBytes: Uint8Array): string {
  return sha256B64u(jcsBytes);
}

export function eventsPath(buildDir: string, runId: string): string {
  return join(buildDir, 'vault', 'runs', runId, 'events.jsonl');
}

/** Split file bytes into lines (without LF); `torn` is what follows the last LF, if anything. */
export function splitLines(bytes: Buffer): { lines: Buffer[]; torn?: Buffer; tornOffset?: number } {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, start)) {
    lines.push(bytes.subarray(start, i));
    start = i + 1;
  }
  if (start < bytes.length) return { lines, torn: bytes.subarray(start), tornOffset: start };
  return { lines };
}

export type ChainFail = Fail & { seq: number };

/**
 * Check a chain line by line, stopping at the first bad line. Each line must be
 * canonical (NON_CANONICAL_JSON), match the event schema (INVALID_SCHEMA), carry
 * the expected run_id (RUN_ID_MISMATCH), seq = its position and prev = the hash of
 * the line before (CHAIN_BROKEN). `seq` in a failure is the position of the bad line.
 */
export function verifyChain(
  lines: readonly (Uint8Array | string)[],
  opts: { runId?: string } = {},
): { ok: true; count: number; head: string; events: VaultEvent[] } | ChainFail {
  const events: VaultEvent[] = [];
  let prev = GENESIS_PREV;
  let runId = opts.runId;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    const at = (code: Fail['code'], detail: string): ChainFail => ({ ...fail(code, `event ${i}: ${detail}`), seq: i });
    const p = parseJsonBytes(bytes);
    if (!p.ok) return at('INVALID_SCHEMA', `not JSON: ${p.error}`);
    if (!isCanonical(bytes)) return at('NON_CANONICAL_JSON', 'not in RFC 8785 canonical form');
    const err = schemaError('event', p.value);
    if (err) return at('INVALID_SCHEMA', err);
    const ev = p.value as VaultEvent;
    runId ??= ev.run_id;
    if (ev.run_id !== runId) return at('RUN_ID_MISMATCH', `run_id is "${ev.run_id}", expected "${runId}"`);
    if (ev.seq !== i) return at('CHAIN_BROKEN', `seq is ${ev.seq}, expected ${i}`);
    if (ev.prev !== prev) return at('CHAIN_BROKEN', `prev is ${ev.prev}, expected ${prev} (the hash of event ${i - 1 < 0 ? 'genesis' : i - 1})`);
    prev = eventHash(bytes);
    events.push(ev);
  }
  return { ok: true, count: lines.length, head: prev, events };
}

/**
 * What a chain that fails verifyChain still proves: the events before the first
 * bad line whose hash the next line's prev confirms. An edited event k makes line
 * k+1 fail (its prev no longer matches), so event k itself is dropped with it:
 * only events that a later line vouches for are kept.
 */
export function verifiedPrefix(lines: readonly (Uint8Array | string)[], broken: ChainFail, opts: { runId?: string } = {}): VaultEvent[] {
  const before = verifyChain(lines.slice(0, broken.seq), opts);
  if (!before.ok || !before.events.length) return [];
  const bad = lines[broken.seq]!;
  const p = parseJsonBytes(typeof bad === 'string' ? Buffer.from(bad, 'utf8') : bad);
  const vouched = p.ok && typeof p.value === 'object' && p.value !== null && (p.value as { prev?: unknown }).prev === before.head;
  return vouched ? before.events : before.events.slice(0, -1);
}

/** RFC 6962 root over the events' JCS bytes, base64url. Accepts the lines or the events. */
export function logRoot(events: readonly (Uint8Array | VaultEvent)[]): string {
  return merkleRoot(events.map((e) => (e instanceof Uint8Array ? e : canonicalBytes(e)))).toString('base64url');
}

export interface OpenOptions {
  /** Drop a torn last line (truncate) instead of refusing to open. */
  repairTorn?: boolean;
  /** Clock for event times (tests). */
  now?: () => Date;
}

/**
 * An open events.jsonl. Appends are serialized (the scheduler runs tasks in
 * parallel) so seq and prev are always consecutive.
 */
export class EventLog {
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(
    readonly path: string,
    readonly runId: string,
    private fh: FileHandle,
    private lines: Buffer[],
    private headHash: string,
    private readonly now: () => Date,
    /** Bytes of a torn last line dropped on open (repairTorn), 0 if none. */
    readonly repairedBytes: number,
  ) {}

  /** Open (or create) the log of `runId`; verifies what is there (throws VaultError with the chain's code). */
  static async open(path: string, runId: string, opts: OpenOptions = {}): Promise<EventLog> {
    await mkdir(dirname(path), { recursive: true });
    let bytes = Buffer.alloc(0);
    try {
      bytes = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const split = splitLines(bytes);
    let repaired = 0;
    if (split.torn) {
      if (!opts.repairTorn) {
        throw new VaultError(
          'TORN_TAIL',
          `${path}: the last line is torn (${split.torn.length} bytes without a newline at offset ${split.tornOffset}); an append was interrupted. Open with repairTorn to drop it`,
        );
      }
      await truncate(path, split.tornOffset);
      repaired = split.torn.length;
    }
    const v = verifyChain(split.lines, { runId });
    if (!v.ok) throw new VaultError(v.code, `${path}: ${v.detail}`);
    const fh = await open(path, 'a', 0o644);
    return new EventLog(path, runId, fh, split.lines, v.head, opts.now ?? (() => new Date()), repaired);
  }

  get count(): number {
    return this.lines.length;
  }

  /** base64url sha256 of the last event's JCS bytes (GENESIS_PREV when empty). */
  get head(): string {
    return this.headHash;
  }

  /** The JCS bytes of every event so far. */
  eventBytes(): Buffer[] {
    return [...this.lines];
  }

  root(): string {
    return logRoot(this.lines);
  }

  /**
   * `sync: false` (an up-to-date task's event, which says nothing new) skips the
   * fsync: the next synced append or close() makes it durable with the rest. A
   * crash before then loses it cleanly (a shorter valid chain, or a torn tail).
   */
  append(type: EventType, payload: Record<string, unknown>, opts: { sync?: boolean } = {}): Promise<VaultEvent> {
    const next = this.queue.then(() => this.appendNow(type, payload, opts.sync !== false));
    this.queue = next.catch(() => {});
    return next;
  }

  private unsynced = false;

  private async appendNow(type: EventType, payload: Record<string, unknown>, sync: boolean): Promise<VaultEvent> {
    const ev: VaultEvent = { run_id: this.runId, seq: this.lines.length, type, time: this.now().toISOString(), payload, prev: this.headHash };
    const bytes = canonicalBytes(ev);
    const err = schemaError('event', ev);
    if (err) throw new VaultError('INVALID_SCHEMA', `event ${ev.seq}: ${err}`);
    // One buffer for the whole line; O_APPEND; loop only if the kernel wrote part of it.
    const line = Buffer.concat([bytes, Buffer.from('\n')]);
    let off = 0;
    while (off < line.length) off += (await this.fh.write(line, off, line.length - off)).bytesWritten;
    if (sync) await this.fh.sync();
    this.unsynced = !sync;
    this.lines.push(bytes);
    this.headHash = eventHash(bytes);
    return ev;
  }

  async close(): Promise<void> {
    await this.queue;
    if (this.unsynced) await this.fh.sync();
    await this.fh.close();
  }
}
