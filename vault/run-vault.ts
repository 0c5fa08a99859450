/**
 * One run's vault: its id, its event chain (<build>/vault/runs/<run_id>/events.jsonl)
 * and the content store the run puts its outputs and reports into. The scheduler
 * and the gates append through this; appends are serialized and fsync'd by
 * EventLog, so concurrent tasks get consecutive seq/prev and a crash leaves at
 * most a torn last line.
 */
import { randomBytes } from 'node:crypto';
import { lstat, open, readdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { EventLog, eventsPath, type EventType, type VaultEvent } from './event-chain.js';
import type { EventPayloads, StoredFile } from './event-payloads.js';
import { storeHas, storePath, storePut } from './store.js';

/** Sortable: UTC time to the millisecond (run-20251121T230512.123Z-…), then a random suffix so ids never collide. */
export function newRunId(now: Date = new Date()): string {
  return `run-${now.toISOString().replace(/[-:]/g, '')}-${randomBytes(4).toString('hex')}`;
}

export const RUN_ID_PATTERN = /^run-\d{8}T\d{6}(\.\d{3})?Z-[0-9a-f]+$/;

export function runsDir(buildDir: string): string {
  return join(buildDir, 'vault', 'runs');
}

/** Run ids with an events.jsonl, oldest first (the ids sort by time). */
export async function listRunIds(buildDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(runsDir(buildDir));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    if (!RUN_ID_PATTERN.test(n)) continue;
    if (await lstat(eventsPath(buildDir, n)).then((s) => s.isFile(), () => false)) out.push(n);
  }
  return out.sort();
}

export type { StoredFile };

export class RunVault {
  private constructor(
    readonly buildDir: string,
    readonly runId: string,
    readonly startedAt: Date,
    readonly log: EventLog,
  ) {}

  /** Applied to every payload before it is appended (lib/redact.ts Redactor.value). */
  redact: <T>(v: T) => T = (v) => v;

  static async open(buildDir: string, opts: { runId?: string; now?: () => Date } = {}): Promise<RunVault> {
    const now = opts.now ?? (() => new Date());
    const startedAt = now();
    const runId = opts.runId ?? newRunId(startedAt);
    const path = eventsPath(buildDir, runId);
    const log = await EventLog.open(path, runId, { now });
    // The new file's directory entry must survive a crash as well as its lines.
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return new RunVault(buildDir, runId, startedAt, log);
  }

  get eventsFile(): string {
    return this.log.path;
  }

  append<T extends EventType>(type: T, payload: EventPayloads[T], opts: { sync?: boolean } = {}): Promise<VaultEvent> {
    // Through JSON once: drops undefined fields, so step data is always JCS-serializable.
    return this.log.append(type, this.redact(JSON.parse(JSON.stringify(payload)) as Record<string, unknown>), opts);
  }

  storeRel(sha256: string): string {
    return relative(this.buildDir, storePath(this.buildDir, sha256));
  }

  /**
   * Put a build-relative file into the store unless an object of `expected` is
   * already there. Returns what was stored, and whether this call added it.
   */
  async store(path: string, expected?: string): Promise<StoredFile & { added: boolean }> {
    const abs = join(this.buildDir, path);
    const size = (await lstat(abs)).size;
    if (expected && (await storeHas(this.buildDir, expected))) {
      return { path, sha256: expected, size, store: this.storeRel(expected), added: false };
    }
    const sha256 = await storePut(this.buildDir, abs);
    return { path, sha256, size, store: this.storeRel(sha256), added: true };
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
