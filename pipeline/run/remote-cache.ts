/**
 * The run's side of the remote task cache (vault/remote-cache.ts speaks the
 * protocol): look an instance's fingerprint up, pull a hit's outputs into the
 * store, push a PASS. A server that is down or slow costs one warning: the first
 * fault marks it down, and every later lookup or push is skipped and counted, so
 * the build goes on locally and says at the end what it missed. An entry that is
 * not trusted, or content that does not hash as signed, is a miss with a warning
 * of its own, never used.
 */
import { displayUrl, httpTarget } from '../../lib/http-client.js';
import type { Redactor } from '../../lib/redact.js';
import { UserError } from '../../lib/errors.js';
import { defaultTrustFile, findSigner } from '../../vault/key-dir.js';
import { loadTrust, type Signer, type TrustRoot } from '../../vault/keys.js';
import { DEFAULT_REMOTE_TIMEOUTS, RemoteCacheClient, type RemoteAction, type RemoteProblem, type RemoteTimeouts } from '../../vault/remote-cache.js';
import type { EventSink } from './events.js';
import type { InstanceRecord } from './state.js';

export interface RemoteCacheSettings {
  /** May hold userinfo: it never reaches a log, an event or the bundle. */
  url: string;
  readonly: boolean;
  /** An environment variable holding one header line for every request ("Authorization: Bearer …"). */
  headerEnv?: string;
  timeouts?: RemoteTimeouts;
}

/** A trusted entry for an instance's fingerprint: what keptRecord and the restore use. */
export interface RemoteHit {
  action: RemoteAction;
  /** The /ac/ key. */
  key: string;
  /** The builder key that signed it. */
  builder: string;
}

export interface RemoteStats {
  looked_up: number;
  hits: number;
  misses: number;
  /** Entries refused: bad or untrusted signature, content not hashing as signed, a blob missing. */
  refused: number;
  /** Lookups and pushes not made because the server was down or slow. */
  skipped_down: number;
  pulled_objects: number;
  pulled_bytes: number;
  pushed: number;
  pushed_objects: number;
  pushed_bytes: number;
  push_failed: number;
  /** Time the run waited on the server (lookups, pulls, pushes): the most the cache can have added to a build. */
  busy_ms: number;
}

/** What a task-end records of a remote restore: where each output came from. */
export interface RemoteOrigin {
  cache: string;
  key: string;
  builder_key: string;
  built_by_run: string;
  /** Outputs whose bytes came over the network (the others were in the local store already). */
  fetched: string[];
}

export class RemoteTaskCache {
  readonly shown: string;
  readonly stats: RemoteStats = { looked_up: 0, hits: 0, misses: 0, refused: 0, skipped_down: 0, pulled_objects: 0, pulled_bytes: 0, pushed: 0, pushed_objects: 0, pushed_bytes: 0, push_failed: 0, busy_ms: 0 };
  /** Set at the first fault: the server is not asked again in this run. */
  private down: string | null = null;
  /** Why an instance's lookup or pull did not give a hit (for its task-start). */
  private readonly why = new Map<string, string>();
  private readonly restored = new Map<string, RemoteOrigin>();

  private constructor(
    private readonly client: RemoteCacheClient,
    readonly readonly: boolean,
    private readonly trust: TrustRoot | null,
    private readonly trustProblem: string | null,
    private readonly signer: Signer | null,
    private readonly emit: EventSink,
  ) {
    this.shown = displayUrl(client.target.base.href);
  }

  /**
   * Open the cache: the trust file says which builder keys an entry may be signed
   * by (none: nothing is pulled), the key dir's builder key signs what is pushed
   * (none, or --remote-cache-readonly: nothing is pushed). Secrets in the URL or
   * the header go into the run's redactor first.
   */
  static async open(s: RemoteCacheSettings, o: { keyDir: string; trustFile?: string; redact: Redactor; emit: EventSink; signal?: AbortSignal; env?: NodeJS.ProcessEnv }): Promise<RemoteTaskCache> {
    const env = o.env ?? process.env;
    let raw: URL;
    try {
      raw = new URL(s.url);
    } catch {
      throw new UserError(`--remote-cache: not a URL: ${displayUrl(s.url)}`, 'e.g. --remote-cache http://cache.example:8080/clawos/');
    }
    if (raw.password) o.redact.add('remote-cache-password', decodeURIComponent(raw.password));
    if (raw.username && raw.password) o.redact.add('remote-cache-userinfo', `${raw.username}:${raw.password}`);
    const headers: Record<string, string> = {};
    if (s.headerEnv) {
      const line = env[s.headerEnv];
      const m = line ? /^([A-Za-z0-9-]+):\s*(.+)$/.exec(line) : null;
      if (!m) throw new UserError(`remote cache: environment variable ${s.headerEnv} must hold one header line "Name: value"${line ? '' : ' (it is not set)'}`);
      o.redact.add(s.headerEnv, m[2]!);
      headers[m[1]!.toLowerCase()] = m[2]!;
    }
    let target;
    try {
      target = httpTarget(s.url, headers);
    } catch (e) {
      throw new UserError(`--remote-cache: ${(e as Error).message}`);
    }
    const trustFile = o.trustFile ?? defaultTrustFile(o.keyDir);
    let trust: TrustRoot | null = null;
    let trustProblem: string | null = null;
    try {
      trust = await loadTrust(trustFile);
      if (!trust.keys.some((k) => k.role === 'builder' && !k.revoked)) trustProblem = `${trustFile} lists no builder key`;
    } catch (e) {
      trustProblem = `no trust file: ${(e as Error).message}`;
    }
    const signer = s.readonly ? null : ((await findSigner(o.keyDir, 'builder', trustFile)) ?? null);
    const c = new RemoteTaskCache(new RemoteCacheClient(target, s.timeouts ?? DEFAULT_REMOTE_TIMEOUTS, o.signal), s.readonly, trust, trustProblem, signer, o.emit);
    const notes: string[] = [];
    if (trustProblem) notes.push(`nothing will be pulled (${trustProblem}; \`clawos-build keys init --role builder\`, or add the builders' public keys to it)`);
    if (!s.readonly && !signer) notes.push(`nothing will be pushed (no builder key in ${o.keyDir}; \`clawos-build keys init --role builder\`)`);
    o.emit({ type: 'info', message: `remote cache ${c.shown}${s.readonly ? ' (read-only)' : ''}${notes.length ? `: ${notes.join('; ')}` : ''}` });
    return c;
  }

  private fault(detail: string): void {
    if (this.down) return;
    this.down = detail;
    this.emit({ type: 'info', message: `warning: remote cache ${this.shown} is not answering (${detail}): building locally, and not asking it again in this run` });
  }

  private refuse(task: string, p: RemoteProblem): void {
    this.stats.refused++;
    this.why.set(task, `remote cache: entry not used: ${p.detail}`);
    this.emit({ type: 'info', message: `warning: ${task}: remote cache entry not used (${p.kind}): ${p.detail}` });
  }

  /** A trusted entry for this fingerprint, or null (a miss, counted; a refused entry, warned). */
  async lookup(task: string, fingerprint: string): Promise<RemoteHit | null> {
    if (!this.trust || this.trustProblem) return null;
    if (this.down) {
      this.stats.skipped_down++;
      return null;
    }
    this.stats.looked_up++;
    const r = await this.timed(() => this.client.getAction(task, fingerprint, this.trust!));
    if (r.ok) return { action: r.action, key: r.key, builder: r.builder };
    if (r.kind === 'fault') {
      this.fault(r.detail);
      this.stats.skipped_down++;
    } else if (r.kind === 'missing') {
      this.stats.misses++;
      this.why.set(task, 'remote cache: no entry for this fingerprint');
    } else this.refuse(task, r);
    return null;
  }

  /** Bring a hit's outputs into the local store; false (warned, counted) when any is missing or does not hash as signed. */
  async pull(task: string, hit: RemoteHit, buildDir: string): Promise<boolean> {
    const fetched: string[] = [];
    for (const o of hit.action.outputs) {
      if (this.down) {
        this.stats.skipped_down++;
        return false;
      }
      const r = await this.timed(() => this.client.fetchBlob(buildDir, o.sha256, o.size));
      if (!r.ok) {
        if (r.kind === 'fault') {
          this.fault(r.detail);
          this.stats.skipped_down++;
        } else this.refuse(task, r);
        return false;
      }
      if (r.fetched) {
        fetched.push(o.path);
        this.stats.pulled_objects++;
        this.stats.pulled_bytes += o.size;
      }
    }
    this.stats.hits++;
    this.restored.set(task, { cache: this.shown, key: hit.key, builder_key: hit.builder, built_by_run: hit.action.built_by.run_id, fetched: fetched.sort() });
    return true;
  }

  origin(task: string): RemoteOrigin | undefined {
    return this.restored.get(task);
  }

  /** Why the instance's lookup gave no hit, when there is something to say. */
  missReason(task: string): string | undefined {
    return this.why.get(task);
  }

  /** Every instance restored from the cache in this run, with where its outputs came from. */
  restoredAll(): Record<string, RemoteOrigin> {
    return Object.fromEntries([...this.restored.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  get canPull(): boolean {
    return this.trust !== null && this.trustProblem === null;
  }

  get canPush(): boolean {
    return !this.readonly && this.signer !== null;
  }

  /** Push a recorded PASS (its outputs are in the store by now); a failure is a warning, never the task's. */
  async push(rec: InstanceRecord, buildDir: string, built: { run_id: string; clawos_version: string }): Promise<string | null> {
    if (!this.signer || this.readonly) return null;
    if (this.down) {
      this.stats.skipped_down++;
      return null;
    }
    const action: RemoteAction = {
      format: 'clawos-remote-action@1',
      task: rec.id,
      fingerprint: rec.fingerprint,
      status: 'PASS',
      message: rec.message,
      outputs: Object.entries(rec.outputs)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([path, o]) => ({ path, sha256: o.sha256, size: o.size })),
      ...(rec.evidence ? { evidence: rec.evidence } : {}),
      ...(rec.data !== undefined ? { data: JSON.parse(JSON.stringify(rec.data)) as unknown } : {}),
      started_at: rec.started_at,
      finished_at: rec.finished_at,
      duration_ms: rec.duration_ms,
      built_by: built,
    };
    const signer = this.signer;
    const r = await this.timed(() => this.client.push(buildDir, action, signer));
    if (!r.ok) {
      this.stats.push_failed++;
      if (r.kind === 'fault') this.fault(r.detail);
      else this.emit({ type: 'info', message: `warning: ${rec.id}: not pushed to the remote cache: ${r.detail}` });
      return null;
    }
    this.stats.pushed++;
    this.stats.pushed_objects += r.uploaded;
    this.stats.pushed_bytes += r.bytes;
    return r.key;
  }

  private async timed<T>(f: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await f();
    } finally {
      this.stats.busy_ms += Math.round(performance.now() - t);
    }
  }

  /** The run's last word on the cache: what it gave, and what it missed while down. */
  summary(): string {
    const s = this.stats;
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const parts = [`${s.hits} hit(s)`, `${s.misses} miss(es)`];
    if (s.refused) parts.push(`${s.refused} entr${s.refused === 1 ? 'y' : 'ies'} refused`);
    if (s.pulled_objects) parts.push(`${s.pulled_objects} object(s) pulled (${mb(s.pulled_bytes)})`);
    if (s.pushed) parts.push(`${s.pushed} pushed (${s.pushed_objects} object(s), ${mb(s.pushed_bytes)})`);
    if (s.push_failed) parts.push(`${s.push_failed} push(es) failed`);
    if (this.down) parts.push(`${s.skipped_down} lookup(s) or push(es) missed while it was down (${this.down})`);
    return `remote cache ${this.shown}: ${parts.join(', ')}`;
  }

  get downReason(): string | null {
    return this.down;
  }
}
