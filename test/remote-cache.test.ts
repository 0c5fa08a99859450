/**
 * The remote task cache through the real scheduler (openRun + runPhases) against
 * a real nginx (test/helpers/nginx-cache.ts): build dir A pushes, an empty build
 * dir B of another clone pulls every task and runs none, bit-identical; what is
 * not trusted (another builder's key, a tampered entry, content that does not hash
 * as signed) is a miss with one warning; a server down or silent costs one warning
 * and a count, never a hang; credentials never reach the build dir.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { explainCommand } from '../bin/commands/explain.js';
import { createServer, type Server } from 'node:net';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { makeTestRepo, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { freePort, randomToken, startNginxCache, type NginxCache } from './helpers/nginx-cache.js';
import { openRun } from '../pipeline/run/session.js';
import { runPhases, finishRun } from '../pipeline/run/phases.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { RunEvent } from '../pipeline/run/events.js';
import { NO_SANDBOX } from '../lib/sandbox.js';
import { readAllRuns } from '../vault/vault-history.js';
import { addTrustEntry, initKey } from '../vault/keys.js';
import { run } from '../lib/proc.js';
import { runCli } from './helpers/cli.js';
import type { RemoteTimeouts } from '../vault/remote-cache.js';

const GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A small real pipeline: a 2 MB "kernel", a task that reads it, a per-arch one. */
async function repoWithTasks(): Promise<TestRepo> {
  const repo = await makeTestRepo(GATES);
  cleanups.push(() => repo.cleanup());
  await repo.writeTask('A-01', taskYaml({ id: 'A-01', agent: 'kernel-engineer', outputs: ['kernel-engineer/vmlinuz'], validation: 'test -s vmlinuz', action: 'run: head -c 2000000 /dev/urandom > vmlinuz' }));
  await repo.writeTask('A-02', taskYaml({ id: 'A-02', deps: ['A-01'], outputs: ['build-engineer/sum.txt'], action: 'run: sha256sum "$CLAWOS_BUILD_DIR/kernel-engineer/vmlinuz" | cut -c1-64 > sum.txt' }));
  await repo.writeTask('A-03', taskYaml({ id: 'A-03', perArch: true, agent: 'qa', outputs: ['qa/{arch}/arch.txt'], action: 'run: echo "$CLAWOS_ARCH" > arch.txt' }));
  return repo;
}

async function builderKeys(name: string, root: string): Promise<string> {
  const keyDir = join(root, '..', name);
  const k = await initKey(keyDir, 'builder');
  await addTrustEntry(join(keyDir, 'keys.json'), k.trustEntry);
  return keyDir;
}

const FAST: RemoteTimeouts = { idleMs: 400, baseMs: 1500, minBytesPerSec: 1 << 20 };

async function runP1(root: string, buildDir: string, o: { url?: string; keyDir: string; readonly?: boolean; timeouts?: RemoteTimeouts; bwrap?: boolean; configFile?: string }) {
  const events: RunEvent[] = [];
  const rc = await openRun({
    repoRoot: root,
    buildDir,
    arches: ['x86_64'],
    jobs: 2,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    heartbeatMs: 0,
    steps: new Map(),
    // bwrap (probed) where explain must agree: a fingerprint covers the sandbox mode.
    ...(o.bwrap ? {} : { sandbox: NO_SANDBOX }),
    keyDir: o.keyDir,
    ...(o.configFile ? { configFile: o.configFile } : {}),
    remoteCache: { ...(o.url ? { url: o.url } : {}), ...(o.readonly ? { readonly: true } : {}), timeouts: o.timeouts ?? FAST },
  });
  const started = Date.now();
  const results = await runPhases(rc, ['P1'], await loadGateSpecs(root));
  await finishRun(rc, results, { keyDir: o.keyDir });
  const ms = Date.now() - started;
  const vault = (await readAllRuns(buildDir)).at(-1)!.events;
  const infos = events.filter((e) => e.type === 'info').map((e) => (e as { message: string }).message);
  const ran = events.filter((e) => e.type === 'task-start').map((e) => (e as { id: string }).id).sort();
  const ends = Object.fromEntries(results.flatMap((r) => r.records).map((r) => [r.id, r]));
  return { events, infos, ran, ends, vault, ms, stats: rc.remote!.stats };
}

async function cacheOf(): Promise<NginxCache> {
  const c = await startNginxCache();
  cleanups.push(() => c.stop());
  return c;
}

const OUTPUTS = ['kernel-engineer/vmlinuz', 'build-engineer/sum.txt', 'qa/x86_64/arch.txt'];

describe('remote task cache (Bazel HTTP protocol, real nginx)', () => {
  it('build dir A pushes; an empty build dir of another clone pulls every task, runs none, bit-identical, and its events and bundle data say remote', async () => {
    const cache = await cacheOf();
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    const a = await runP1(repo.root, repo.buildDir, { url: cache.url, keyDir, bwrap: true });
    expect(a.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    expect(a.stats).toMatchObject({ pushed: 3, pushed_objects: 3, hits: 0, misses: 3 });
    const files = await cache.files();
    expect(files.filter((f) => f.startsWith('ac/'))).toHaveLength(3);
    expect(files.filter((f) => f.startsWith('cas/'))).toHaveLength(3);

    // A second clone at another path, an empty build dir, the same trust file.
    const clone = join(repo.root, '..', 'clone');
    await cp(repo.root, clone, { recursive: true });
    const bDir = join(repo.root, '..', 'build-b');
    const b = await runP1(clone, bDir, { url: cache.url, keyDir, readonly: true, bwrap: true });
    expect(b.ran).toEqual([]);
    expect(b.stats).toMatchObject({ hits: 3, misses: 0, refused: 0, pulled_objects: 3, pulled_bytes: 2000000 + 65 + 7, pushed: 0 });
    for (const p of OUTPUTS) expect((await readFile(join(bDir, p))).equals(await readFile(join(repo.buildDir, p)))).toBe(true);
    for (const id of ['A-01', 'A-02', 'A-03@x86_64']) expect(b.ends[id]!.status).toBe('PASS');
    const end = b.vault.find((e) => e.type === 'task-end' && e.payload.task === 'A-01')!.payload;
    expect(end).toMatchObject({ up_to_date: true, restored: ['kernel-engineer/vmlinuz'], remote: { cache: cache.url, fetched: ['kernel-engineer/vmlinuz'], built_by_run: a.vault[0]!.run_id } });
    expect(String(end.restored_from)).toMatch(new RegExp(`^remote cache ${cache.url} \\(run ${a.vault[0]!.run_id}, builder key [0-9a-f]{16}\\)$`));
    // Each pulled object is an artifact of this build dir now.
    expect(b.vault.filter((e) => e.type === 'artifact').map((e) => e.payload.path).sort()).toEqual([...OUTPUTS].sort());
    expect(b.infos).toContain(`A-01: 1 output(s) restored from the remote cache ${cache.url} (1 object(s) pulled, run ${a.vault[0]!.run_id}), not rebuilt: kernel-engineer/vmlinuz`);
    expect(b.infos.at(-1)).toBe(`remote cache ${cache.url}: 3 hit(s), 0 miss(es), 3 object(s) pulled (2.0 MB)`);
    const runEnd = b.vault.find((e) => e.type === 'run-end')!.payload;
    expect(runEnd.remote_cache).toMatchObject({ cache: cache.url, readonly: true, stats: { hits: 3 } });
    // explain takes the same decision, read-only: in a fresh build dir it would pull, not rebuild.
    const out: string[] = [];
    const err: string[] = [];
    const cDir = join(repo.root, '..', 'build-c');
    await mkdir(cDir);
    const prevKeyDir = process.env.CLAWOS_KEY_DIR;
    process.env.CLAWOS_KEY_DIR = keyDir;
    try {
      await explainCommand({ repoRoot: clone, buildDir: cDir, positionals: ['A-01'], arch: ['x86_64'], json: false, remoteCache: cache.url, steps: new Map(), print: (x) => out.push(x), printErr: (x) => err.push(x) });
    } finally {
      if (prevKeyDir === undefined) delete process.env.CLAWOS_KEY_DIR;
      else process.env.CLAWOS_KEY_DIR = prevKeyDir;
    }
    const builder = String((end.remote as { builder_key: string }).builder_key);
    expect(out.join('')).toBe(
      'A-01: would not re-run, but restore outputs\n' +
        `  - no earlier result in ${cDir}/state.json\n` +
        '  - output kernel-engineer/vmlinuz missing\n' +
        `  - the remote cache holds a PASS with exactly these inputs (run ${a.vault[0]!.run_id}, signed by builder key ${builder.slice(0, 12)}): its outputs would be pulled, checked against their sha256 and restored, not rebuilt\n`,
    );
    expect(await readdir(cDir)).toEqual([]);
    // A third run is simply up to date: nothing asked of the cache.
    const c = await runP1(clone, bDir, { url: cache.url, keyDir, readonly: true, bwrap: true });
    expect(c.ran).toEqual([]);
    expect(c.stats.looked_up).toBe(0);
  });

  it('an entry signed by a builder key the trust file does not list is a miss with one warning: the task runs', async () => {
    const cache = await cacheOf();
    const repo = await repoWithTasks();
    const keyA = await builderKeys('keys-a', repo.root);
    await runP1(repo.root, repo.buildDir, { url: cache.url, keyDir: keyA });
    const keyB = await builderKeys('keys-b', repo.root);
    const b = await runP1(repo.root, join(repo.root, '..', 'build-b'), { url: cache.url, keyDir: keyB, readonly: true });
    expect(b.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    // A-02 then depends on a kernel B built itself: a plain miss.
    expect(b.stats).toMatchObject({ hits: 0, refused: 2, misses: 1 });
    const w = b.infos.filter((m) => m.startsWith('warning: A-01:'));
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^warning: A-01: remote cache entry not used \(untrusted\): UNKNOWN_KEY: the entry of A-01: no signature by a trusted builder key \(key [0-9a-f]{64} is not in the trust root\)$/);
    expect(b.vault.find((e) => e.type === 'task-start' && e.payload.task === 'A-01')!.payload.remote).toMatch(/^remote cache: entry not used: UNKNOWN_KEY/);
  });

  it('poisoning: the server serves a different kernel under the right key and entry: not trusted, rebuilt, the poison never enters the store', async () => {
    const cache = await cacheOf();
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    await runP1(repo.root, repo.buildDir, { url: cache.url, keyDir });
    const kernelSha = (await import('../lib/hash.js')).sha256Hex(await readFile(join(repo.buildDir, 'kernel-engineer/vmlinuz')));
    const evil = Buffer.alloc(2000000, 0x90);
    await writeFile(join(cache.dataDir, 'cas', kernelSha), evil);
    const bDir = join(repo.root, '..', 'build-b');
    const b = await runP1(repo.root, bDir, { url: cache.url, keyDir, readonly: true });
    expect(b.ran).toEqual(['A-01', 'A-02']);
    const evilSha = (await import('../lib/hash.js')).sha256Hex(evil);
    expect(b.infos.filter((m) => m.startsWith('warning:'))).toEqual([
      `warning: A-01: remote cache entry not used (hash-mismatch): cas/${kernelSha.slice(0, 16)}… served 2000000 bytes hashing to ${evilSha.slice(0, 16)}…, not the ${kernelSha.slice(0, 16)}… the entry claims`,
    ]);
    const store = await readdir(join(bDir, 'vault/store/sha256'));
    expect(store).not.toContain(evilSha);
    expect(store.filter((f) => f.startsWith('.'))).toEqual([]);
    // A-03 did not depend on the kernel: still a hit.
    expect(b.stats).toMatchObject({ hits: 1, refused: 1 });
  });

  it('a tampered entry (payload edited, signature kept) is refused as INVALID_SIGNATURE', async () => {
    const cache = await cacheOf();
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    await runP1(repo.root, repo.buildDir, { url: cache.url, keyDir });
    for (const f of (await cache.files()).filter((x) => x.startsWith('ac/'))) {
      const env = JSON.parse(await readFile(join(cache.dataDir, f), 'utf8')) as { payload: string };
      const payload = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { message: string };
      payload.message = 'edited';
      env.payload = Buffer.from(JSON.stringify(payload)).toString('base64');
      await writeFile(join(cache.dataDir, f), JSON.stringify(env));
    }
    const b = await runP1(repo.root, join(repo.root, '..', 'build-b'), { url: cache.url, keyDir, readonly: true });
    expect(b.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    expect(b.infos.filter((m) => m.startsWith('warning: A-01'))[0]).toMatch(/^warning: A-01: remote cache entry not used \(untrusted\): INVALID_SIGNATURE: the entry of A-01: the signature by key [0-9a-f]{64} \(builder\) does not verify$/);
  });

  it('an entry whose content is not on the server (an upload cut short before the action) is a miss, and the task runs', async () => {
    const cache = await cacheOf();
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    await runP1(repo.root, repo.buildDir, { url: cache.url, keyDir });
    for (const f of (await cache.files()).filter((x) => x.startsWith('cas/'))) await rm(join(cache.dataDir, f));
    const b = await runP1(repo.root, join(repo.root, '..', 'build-b'), { url: cache.url, keyDir, readonly: true });
    expect(b.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    expect(b.infos.filter((m) => m.startsWith('warning: A-01'))[0]).toMatch(/^warning: A-01: remote cache entry not used \(missing\): cas\/[0-9a-f]{16}… is not on the server$/);
  });

  it('nginx never shows a half-uploaded object: a PUT cut off mid-body leaves nothing under its name', async () => {
    const cache = await cacheOf();
    const name = 'a'.repeat(64);
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${cache.url}cas/${name}`, { method: 'PUT', headers: { 'content-length': 4_000_000 } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(1_000_000, 1), () => setTimeout(() => (req.destroy(), resolve()), 200));
    });
    await new Promise((r) => setTimeout(r, 300));
    const get = await fetch(`${cache.url}cas/${name}`);
    expect(get.status).toBe(404);
    expect(await cache.files()).toEqual([]);
  });

  it('a server that is down: one warning, the build goes on locally, and the summary counts what it missed', async () => {
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    const port = await freePort();
    const a = await runP1(repo.root, repo.buildDir, { url: `http://127.0.0.1:${port}/`, keyDir });
    expect(a.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    const warnings = a.infos.filter((m) => m.startsWith('warning:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^warning: remote cache http://127\\.0\\.0\\.1:${port}/ is not answering \\(GET http://127\\.0\\.0\\.1:${port}/ac/[0-9a-f]{64}: ECONNREFUSED\\): building locally, and not asking it again in this run$`));
    expect(a.infos.at(-1)).toMatch(new RegExp(`^remote cache http://127\\.0\\.0\\.1:${port}/: 0 hit\\(s\\), 0 miss\\(es\\), 6 lookup\\(s\\) or push\\(es\\) missed while it was down \\(GET .*ECONNREFUSED\\)$`));
    expect(a.vault.find((e) => e.type === 'run-end')!.payload.remote_cache).toMatchObject({ stats: { skipped_down: 6, hits: 0 } });
  });

  it('a server that accepts and never answers: bounded by the idle timeout, one warning, no hang', async () => {
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    const sockets: import('node:net').Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => (sockets.forEach((s) => s.destroy()), silent.close(r))));
    const port = (silent.address() as { port: number }).port;
    const a = await runP1(repo.root, repo.buildDir, { url: `http://127.0.0.1:${port}/`, keyDir, timeouts: { idleMs: 300, baseMs: 1000, minBytesPerSec: 1 << 20 } });
    expect(a.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    const warnings = a.infos.filter((m) => m.startsWith('warning:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/is not answering \(GET http:\/\/127\.0\.0\.1:\d+\/ac\/[0-9a-f]{64}: silent for 300 ms\): building locally/);
    // One timeout paid, not one per task.
    expect(a.ms).toBeLessThan(10_000);
  });

  it('credentials in the URL (Basic auth on nginx) work, and never reach a log, an event, the state or the summary', async () => {
    const password = `pw-${randomToken()}`;
    const cache = await startNginxCache({ auth: { user: 'ci', password } });
    cleanups.push(() => cache.stop());
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    const authed = cache.url.replace('http://', `http://ci:${password}@`);
    const a = await runP1(repo.root, repo.buildDir, { url: authed, keyDir });
    expect(a.stats.pushed).toBe(3);
    const bDir = join(repo.root, '..', 'build-b');
    const b = await runP1(repo.root, bDir, { url: authed, keyDir, readonly: true });
    expect(b.ran).toEqual([]);
    // Without them, the server refuses: a fault, one warning.
    const c = await runP1(repo.root, join(repo.root, '..', 'build-c'), { url: cache.url, keyDir, readonly: true });
    expect(c.ran).toEqual(['A-01', 'A-02', 'A-03@x86_64']);
    expect(c.infos.filter((m) => m.startsWith('warning:'))[0]).toMatch(/is not answering \(GET ac\/[0-9a-f]{16}…: HTTP 401\)/);
    const basic = Buffer.from(`ci:${password}`).toString('base64');
    for (const d of [repo.buildDir, bDir]) {
      const r = await run(['grep', '-r', '-l', '-F', '-e', password, '-e', basic, d], { captureStdout: true });
      expect(r.exitCode).toBe(1);
    }
    expect(JSON.stringify([a.events, b.events])).not.toContain(password);
  });

  it('a token header from the environment (remote_cache.header_env in the config file) works and is redacted from the whole build dir', async () => {
    const token = `tok-${randomToken()}`;
    const cache = await startNginxCache({ token });
    cleanups.push(() => cache.stop());
    const repo = await repoWithTasks();
    const keyDir = await builderKeys('keys-a', repo.root);
    const cfg = join(repo.root, '..', 'cache.yaml');
    await writeFile(cfg, `remote_cache:\n  url: ${cache.url}\n  header_env: CLAWOS_TEST_CACHE_HEADER\n`);
    process.env.CLAWOS_TEST_CACHE_HEADER = `X-Cache-Token: ${token}`;
    cleanups.push(async () => delete process.env.CLAWOS_TEST_CACHE_HEADER);
    const a = await runP1(repo.root, repo.buildDir, { keyDir, configFile: cfg });
    expect(a.stats.pushed).toBe(3);
    const b = await runP1(repo.root, join(repo.root, '..', 'build-b'), { keyDir, configFile: cfg, readonly: true });
    expect(b.ran).toEqual([]);
    expect(b.vault[0]!.payload.secrets).toEqual(['CLAWOS_TEST_CACHE_HEADER']);
    for (const d of [repo.buildDir, join(repo.root, '..', 'build-b')]) {
      const r = await run(['grep', '-r', '-l', '-F', '-e', token, d], { captureStdout: true });
      expect(r.exitCode).toBe(1);
    }
  });

  it('--remote-cache-readonly without a cache is refused before anything runs (exit 3, one line)', async () => {
    const repo = await repoWithTasks();
    const r = await runCli(['p1', '--remote-cache-readonly', '--build-dir', repo.buildDir, '--no-sandbox'], { cwd: repo.root });
    expect(r.exitCode).toBe(3);
    expect(r.stderr[0]).toBe('clawos-build: --remote-cache-readonly needs a cache: --remote-cache URL, or remote_cache.url in the config file');
  });
});
