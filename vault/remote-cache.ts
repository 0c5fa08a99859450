/**
 * A remote task cache speaking the Bazel remote-cache HTTP protocol: the action
 * result under /ac/<key>, content under /cas/<sha256>; any server of that
 * protocol that stores what it is given works (nginx with WebDAV PUT in the tests).
 *
 * - key: sha256 of "clawos-remote-action/1", the task instance and its fingerprint.
 * - /ac/<key>: a DSSE envelope (JCS) whose payload names the task, the fingerprint
 *   and every output (path, sha256, size), signed by a `builder` key. Read back, it
 *   is used only when a trusted builder key signed it and it names exactly the task
 *   and fingerprint asked for; output paths must stay inside the build dir.
 * - /cas/<sha256>: the bytes, hashed while they stream into the content store and
 *   kept only when they hash as claimed (a served object that does not is dropped).
 * - Push: every blob first (HEAD skips what the server has), the action last, so
 *   an upload cut short is never a hit: no action, or an action whose blobs 404.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpError, request, type HttpTarget } from '../lib/http-client.js';
import { canonicalBytes, parseJsonBytes } from './jcs.js';
import { envelopeBytes, parseEnvelope, signEnvelope, verifyEnvelope } from './dsse.js';
import type { Signer, TrustRoot } from './keys.js';
import { storeDir, storeHas, storePath } from './store.js';
import { sha256Hex } from '../lib/hash.js';

export const REMOTE_ACTION_PAYLOAD_TYPE = 'application/vnd.clawos.remote-action+json';
const HEX64 = /^[0-9a-f]{64}$/;

/** What a builder vouches for: a PASS of `task` with `fingerprint`, and its outputs. */
export type RemoteAction = {
  format: 'clawos-remote-action@1';
  task: string;
  fingerprint: string;
  status: 'PASS';
  message: string;
  outputs: { path: string; sha256: string; size: number }[];
  evidence?: { label: string; path: string; sha256: string }[];
  data?: unknown;
  started_at?: string;
  finished_at?: string;
  duration_ms: number;
  built_by: { run_id: string; clawos_version: string };
};

export function actionKey(task: string, fingerprint: string): string {
  return sha256Hex(`clawos-remote-action/1\0${task}\0${fingerprint}`);
}

export interface RemoteTimeouts {
  /** No byte for this long: the request is given up. */
  idleMs: number;
  /** Every request's budget: this much, plus the size at `minBytesPerSec`. */
  baseMs: number;
  minBytesPerSec: number;
}

export const DEFAULT_REMOTE_TIMEOUTS: RemoteTimeouts = { idleMs: 5_000, baseMs: 10_000, minBytesPerSec: 1 << 20 };

/** A request that could not be answered (down, slow), told apart from an answer that is no use. */
export type RemoteProblem = { kind: 'fault' | 'missing' | 'untrusted' | 'hash-mismatch' | 'refused'; detail: string };

export type ActionLookup = { ok: true; action: RemoteAction; key: string; builder: string } | ({ ok: false } & RemoteProblem);

/** A build-relative path that cannot leave the build dir. */
function safeRelPath(p: string): boolean {
  return p.length > 0 && !p.startsWith('/') && !p.split('/').some((s) => s === '..' || s === '.' || s === '') && !p.includes('\0');
}

function checkAction(v: unknown, task: string, fingerprint: string): string | null {
  const a = v as Partial<RemoteAction> | null;
  if (!a || typeof a !== 'object') return 'not an object';
  if (a.format !== 'clawos-remote-action@1') return `format ${JSON.stringify(a.format)} is not clawos-remote-action@1`;
  if (a.task !== task) return `it is the entry of ${String(a.task)}, not of ${task}`;
  if (a.fingerprint !== fingerprint) return `it names fingerprint ${String(a.fingerprint).slice(0, 16)}, not ${fingerprint.slice(0, 16)}`;
  if (a.status !== 'PASS') return `status ${String(a.status)} is not PASS`;
  if (typeof a.message !== 'string' || typeof a.duration_ms !== 'number' || !Array.isArray(a.outputs)) return 'message, duration_ms or outputs missing';
  for (const o of a.outputs) {
    if (!o || typeof o.path !== 'string' || !safeRelPath(o.path)) return `output path ${JSON.stringify(o?.path)} is not a plain relative path`;
    if (typeof o.sha256 !== 'string' || !HEX64.test(o.sha256) || typeof o.size !== 'number') return `output ${o.path}: sha256 or size missing`;
  }
  return null;
}

export class RemoteCacheClient {
  constructor(
    readonly target: HttpTarget,
    readonly timeouts: RemoteTimeouts = DEFAULT_REMOTE_TIMEOUTS,
    private readonly signal?: AbortSignal,
  ) {}

  private budget(bytes: number): { deadlineMs: number; idleMs: number } {
    return { deadlineMs: this.timeouts.baseMs + Math.ceil((bytes / this.timeouts.minBytesPerSec) * 1000), idleMs: this.timeouts.idleMs };
  }

  private opts() {
    return this.signal ? { signal: this.signal } : {};
  }

  /** The signed action of `task` at `fingerprint`, checked against `trust`; anything else is a miss with its reason. */
  async getAction(task: string, fingerprint: string, trust: TrustRoot): Promise<ActionLookup> {
    const key = actionKey(task, fingerprint);
    let res;
    try {
      res = await request(this.target, `ac/${key}`, { method: 'GET', maxBytes: 16 << 20, ...this.budget(0), ...this.opts() });
    } catch (e) {
      if (e instanceof HttpError) return { ok: false, kind: 'fault', detail: e.message };
      throw e;
    }
    if (res.status === 404) return { ok: false, kind: 'missing', detail: `no entry for ${task}` };
    if (res.status !== 200 || !res.body) return { ok: false, kind: 'fault', detail: `GET ac/${key.slice(0, 16)}…: HTTP ${res.status}` };
    const env = parseEnvelope(res.body, REMOTE_ACTION_PAYLOAD_TYPE, `ac/${key.slice(0, 16)}…`);
    if (!env.ok) return { ok: false, kind: 'untrusted', detail: env.detail };
    const v = verifyEnvelope(env, trust, ['builder'], `the entry of ${task}`);
    if (!v.ok) return { ok: false, kind: 'untrusted', detail: `${v.code}: ${v.detail}` };
    const p = parseJsonBytes(env.payload);
    if (!p.ok) return { ok: false, kind: 'untrusted', detail: `the entry of ${task}: payload is not JSON` };
    const bad = checkAction(p.value, task, fingerprint);
    if (bad) return { ok: false, kind: 'untrusted', detail: `the entry of ${task} is signed, but ${bad}` };
    return { ok: true, action: p.value as RemoteAction, key, builder: v.signers[0]!.keyid };
  }

  /**
   * Bring /cas/<sha256> into the local store, hashing while it streams; kept only
   * if it hashes as claimed. `fetched` false: the store had it already.
   */
  async fetchBlob(buildDir: string, sha256: string, size: number): Promise<{ ok: true; fetched: boolean } | ({ ok: false } & RemoteProblem)> {
    if (await storeHas(buildDir, sha256)) return { ok: true, fetched: false };
    const dir = storeDir(buildDir);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.remote-${process.pid}-${randomBytes(6).toString('hex')}`);
    const h = createHash('sha256');
    let got = 0;
    const tee = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        got += chunk.length;
        cb(null, chunk);
      },
    });
    // Resolves when the file has every byte the transform passed on.
    const written = pipeline(tee, createWriteStream(tmp, { mode: 0o444, flags: 'wx' }));
    written.catch(() => {});
    try {
      let res;
      try {
        res = await request(this.target, `cas/${sha256}`, { method: 'GET', sink: tee, ...this.budget(size), ...this.opts() });
      } catch (e) {
        if (e instanceof HttpError) return { ok: false, kind: 'fault', detail: e.message };
        throw e;
      }
      if (res.status === 404) return { ok: false, kind: 'missing', detail: `cas/${sha256.slice(0, 16)}… is not on the server` };
      if (res.status !== 200) return { ok: false, kind: 'fault', detail: `GET cas/${sha256.slice(0, 16)}…: HTTP ${res.status}` };
      await written;
      const actual = h.digest('hex');
      if (actual !== sha256) return { ok: false, kind: 'hash-mismatch', detail: `cas/${sha256.slice(0, 16)}… served ${got} bytes hashing to ${actual.slice(0, 16)}…, not the ${sha256.slice(0, 16)}… the entry claims` };
      await chmod(tmp, 0o444);
      await rename(tmp, storePath(buildDir, sha256));
      return { ok: true, fetched: true };
    } finally {
      if (!tee.writableFinished) tee.destroy();
      await unlink(tmp).catch(() => {});
    }
  }

  /** Upload the outputs (from the store) and then the signed action. */
  async push(buildDir: string, action: RemoteAction, signer: Signer): Promise<{ ok: true; uploaded: number; bytes: number; key: string } | ({ ok: false } & RemoteProblem)> {
    let uploaded = 0;
    let bytes = 0;
    try {
      for (const o of action.outputs) {
        const head = await request(this.target, `cas/${o.sha256}`, { method: 'HEAD', ...this.budget(0), ...this.opts() });
        if (head.status === 200) continue;
        const file = storePath(buildDir, o.sha256);
        const size = (await stat(file)).size;
        const put = await request(this.target, `cas/${o.sha256}`, { method: 'PUT', body: { length: size, open: () => createReadStream(file) }, ...this.budget(size), ...this.opts() });
        if (put.status < 200 || put.status > 299) return { ok: false, kind: 'refused', detail: `PUT cas/${o.sha256.slice(0, 16)}…: HTTP ${put.status}` };
        uploaded++;
        bytes += size;
      }
      const key = actionKey(action.task, action.fingerprint);
      const body = envelopeBytes(signEnvelope(canonicalBytes(action), REMOTE_ACTION_PAYLOAD_TYPE, [signer]));
      const put = await request(this.target, `ac/${key}`, { method: 'PUT', body, ...this.budget(body.length), ...this.opts() });
      if (put.status < 200 || put.status > 299) return { ok: false, kind: 'refused', detail: `PUT ac/${key.slice(0, 16)}…: HTTP ${put.status}` };
      return { ok: true, uploaded, bytes, key };
    } catch (e) {
      if (e instanceof HttpError) return { ok: false, kind: 'fault', detail: e.message };
      throw e;
    }
  }
}
