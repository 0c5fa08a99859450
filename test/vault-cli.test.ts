/**
 * The vault's command line, through the built binary: keys init (modes, nothing
 * secret printed), verify (exit 0 only for PASS, 1 for a failed check, 3 for
 * unreadable arguments, 2 for usage), the ledger, export + sha256sum -c, status
 * from the vault, and a scan proving no private key material reaches a bundle,
 * a log, an event or stdout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, readdir, readFile, stat, writeFile, lstat } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { run, type RunResult } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';
import { makePipelineFixture, type PipelineFixture } from './fixtures/vault/pipeline-bundle.js';
import type { RunFinish } from '../pipeline/run/phases.js';
import { FREEZE_FILE } from '../vault/freeze-specs.js';

const cli = join(repoRootDir(), 'bin', 'clawos-build.js');
let fx: PipelineFixture;
let finish: RunFinish;
const outputs: string[] = [];

async function clawos(args: string[], env: Record<string, string> = {}): Promise<RunResult & { all: string }> {
  const r = await run(['node', cli, ...args], { captureStdout: true, env, tailLines: 200 });
  const all = `${r.stdout}\n${r.tail.join('\n')}`;
  outputs.push(all);
  return { ...r, all };
}

beforeAll(async () => {
  if (!(await run(['test', '-f', join(repoRootDir(), 'dist/bin/commands/verify.js')])).ok) throw new Error('dist/ is stale: run npm run build first');
  fx = await makePipelineFixture();
  finish = (await fx.run()).finish;
});
afterAll(() => fx.cleanup());

describe('clawos-build keys', () => {
  it('keys init writes a 0600 private key, adds the public key to the trust file, and prints no secret', async () => {
    const dir = join(fx.repo.root, '..', 'cli-keys');
    const r = await clawos(['keys', 'init', '--role', 'release'], { CLAWOS_KEY_DIR: dir });
    expect(r.exitCode).toBe(0);
    const names = (await readdir(dir)).sort();
    const key = names.find((n) => n.endsWith('.key'))!;
    expect(key).toMatch(/^release-[0-9a-f]{16}\.key$/);
    expect(names).toEqual([key, key.replace(/\.key$/, '.pub'), 'keys.json'].sort());
    expect((await stat(join(dir, key))).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const trust = JSON.parse(await readFile(join(dir, 'keys.json'), 'utf8')) as { keys: { role: string; keyid: string; revoked: boolean }[] };
    expect(trust.keys).toHaveLength(1);
    expect(trust.keys[0]).toMatchObject({ role: 'release', revoked: false });
    expect(r.stdout.split('\n')[0]).toBe(`created release key ${trust.keys[0]!.keyid.slice(0, 16)} (ed25519, key id ${trust.keys[0]!.keyid})`);
    expect(r.stdout).toContain(`private key: ${join(dir, key)} (mode 0600; never printed, logged or bundled)`);

    const list = await clawos(['keys', 'list', '--json'], { CLAWOS_KEY_DIR: dir });
    expect(JSON.parse(list.stdout)).toMatchObject({ key_dir: dir, keys: [{ role: 'release', keyid: trust.keys[0]!.keyid, mode: '0600', trusted: 'yes' }] });
  });

  it('keys init refuses an unknown role and a missing role as usage errors (exit 2)', async () => {
    const bad = await clawos(['keys', 'init', '--role', 'admin'], { CLAWOS_KEY_DIR: join(fx.repo.root, '..', 'x') });
    expect(bad.exitCode).toBe(2);
    expect(bad.tail[0]).toBe('clawos-build: --role must be release, security, core, tester, builder, module-signing or secureboot, not "admin"');
    expect((await clawos(['keys', 'init'])).tail[0]).toBe('clawos-build: keys init needs --role release|security|core|tester|builder|module-signing|secureboot');
  });
});

describe('clawos-build verify', () => {
  it('PASS: exit 0, one {ok, code, detail} document with --json, one line without', async () => {
    const r = await clawos(['verify', finish.bundle!.dir, '--trust', fx.trustFile, '--json']);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, code: 'PASS', detail: expect.stringMatching(new RegExp(`^run ${finish.runId} \\(release 0\\.1\\.0-alpha\\): 29 files, \\d+ events, log root [A-Za-z0-9_-]{43}$`)), run_id: finish.runId, release: '0.1.0-alpha' });
    const plain = await clawos(['verify', finish.bundle!.dir, '--trust', fx.trustFile]);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toMatch(/^PASS: run run-\S+ \(release 0\.1\.0-alpha\): 29 files/);
  });

  it('a tampered bundle: exit 1 with its code', async () => {
    const d = join(fx.repo.root, '..', 'cli-tampered');
    await cp(finish.bundle!.dir, d, { recursive: true });
    await writeFile(join(d, 'artifacts/kernel-engineer/x86_64/vmlinuz'), 'not the kernel');
    const r = await clawos(['verify', d, '--trust', fx.trustFile]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout.trim()).toBe('FAIL HASH_MISMATCH: artifacts/kernel-engineer/x86_64/vmlinuz: size 14, manifest says 65536');
  });

  it('unreadable arguments exit 3 (no bundle, a broken trust file); no --trust is a usage error (exit 2)', async () => {
    const missing = join(fx.repo.root, '..', 'no-such-bundle');
    const r = await clawos(['verify', missing, '--trust', fx.trustFile, '--json']);
    expect(r.exitCode).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, code: 'FILE_MISSING', detail: `${missing}: no such bundle directory or tar` });
    const broken = join(fx.repo.root, '..', 'broken-keys.json');
    await writeFile(broken, '{"format": "clawos-trust-root", "version": 7, "keys": []}');
    const t = await clawos(['verify', finish.bundle!.dir, '--trust', broken]);
    expect(t.exitCode).toBe(3);
    expect(t.tail[0]).toBe(`clawos-build: trust file ${broken}: trust root version 7 is not supported (1)`);
    const u = await clawos(['verify', finish.bundle!.dir]);
    expect(u.exitCode).toBe(2);
    expect(u.tail[0]).toBe('clawos-build: verify needs --trust FILE (the trusted public keys; never taken from the bundle)');
  });

  it('a ledger: the first verify records the run, the same bundle again is REPLAY_DETECTED; an older release than expected too', async () => {
    const ledger = join(fx.repo.root, '..', 'ledger.txt');
    expect((await clawos(['verify', finish.bundle!.dir, '--trust', fx.trustFile, '--ledger', ledger])).exitCode).toBe(0);
    expect(await readFile(ledger, 'utf8')).toBe(`${finish.runId}\n`);
    const again = await clawos(['verify', finish.bundle!.dir, '--trust', fx.trustFile, '--ledger', ledger, '--json']);
    expect(again.exitCode).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: false, code: 'REPLAY_DETECTED', detail: `run ${finish.runId} is already in the ledger` });
    const old = await clawos(['verify', finish.bundle!.dir, '--trust', fx.trustFile, '--expect-min-release', '1.0.0']);
    expect(old.exitCode).toBe(1);
    expect(old.stdout.trim()).toBe('FAIL REPLAY_DETECTED: release 0.1.0-alpha is older than the expected 1.0.0');
  });
});

describe('clawos-build export and status', () => {
  it('export writes a deterministic tar of the latest bundle and a SHA256SUMS that sha256sum -c accepts; the tar verifies', async () => {
    const out = join(fx.repo.root, '..', 'export');
    await run(['mkdir', '-p', out]);
    const r = await clawos(['export', '--build-dir', fx.repo.buildDir, '--out', join(out, 'clawos-bundle.tar'), '--trust', fx.trustFile, '--json']);
    expect(r.exitCode).toBe(0);
    const res = JSON.parse(r.stdout) as { bundle: string; sha256: string };
    expect(res.bundle).toBe(finish.bundle!.dir);
    const sums = await readFile(join(out, 'SHA256SUMS'), 'utf8');
    expect(sums).toBe(`${res.sha256}  clawos-bundle.tar\n`);
    const check = await run(['sha256sum', '-c', 'SHA256SUMS'], { cwd: out, captureStdout: true });
    expect(check.exitCode).toBe(0);
    expect(check.stdout.trim()).toBe('clawos-bundle.tar: OK');
    expect((await clawos(['verify', join(out, 'clawos-bundle.tar'), '--trust', fx.trustFile])).exitCode).toBe(0);
  });

  it('status reads the vault: the latest task-end and gate events', async () => {
    const r = await clawos(['status', '--build-dir', fx.repo.buildDir, '--json']);
    expect(r.exitCode).toBe(0);
    const s = JSON.parse(r.stdout) as { instances: Record<string, { status: string; run_id: string }>; gates: Record<string, { recommendation: string }> };
    expect(s.instances['G-05@x86_64']).toMatchObject({ status: 'PASS', run_id: finish.runId });
    expect(s.gates['P4']!.recommendation).toBe('GO');
    const plain = await clawos(['status', '--build-dir', fx.repo.buildDir]);
    expect(plain.stdout.split('\n')[0]).toMatch(new RegExp(`^from the vault: 1 run\\(s\\) in .*/vault/runs, latest ${finish.runId} \\(\\d+ events\\)$`));
  });
});

describe('spec freeze through the CLI', () => {
  it('refuses with only a security key (exit 3) and writes nothing', async () => {
    const dir = join(fx.repo.root, '..', 'cli-security-only');
    expect((await clawos(['keys', 'init', '--role', 'security'], { CLAWOS_KEY_DIR: dir })).exitCode).toBe(0);
    const before = await readFile(join(repoRootDir(), FREEZE_FILE)).catch(() => null);
    const r = await clawos(['spec', 'freeze'], { CLAWOS_KEY_DIR: dir });
    expect(r.exitCode).toBe(3);
    expect(r.tail.slice(0, 2)).toEqual([
      `clawos-build: spec freeze needs a security key and a core key (a frozen spec changes only with both reviews); ${dir} has no core key`,
      'hint: clawos-build keys init --role core',
    ]);
    expect(await readFile(join(repoRootDir(), FREEZE_FILE)).catch(() => null)).toEqual(before);
  });
});

describe('no private key material leaves the key dir', () => {
  it('is not in the bundle, the build dir (logs, events, store, reports) or anything the CLI printed', async () => {
    const secrets: string[] = [];
    const keyFiles = [fx.keys.release, fx.keys.security, fx.keys.core].map((k) => k.privateKeyPath);
    const cliKeys = join(fx.repo.root, '..', 'cli-keys');
    for (const n of await readdir(cliKeys)) if (n.endsWith('.key')) keyFiles.push(join(cliKeys, n));
    for (const f of keyFiles) {
      const pem = await readFile(f, 'utf8');
      const d = createPrivateKey(pem).export({ format: 'jwk' }).d!;
      const seed = Buffer.from(d, 'base64url');
      secrets.push(pem.split('\n')[1]!, d, seed.toString('base64'), seed.toString('hex'));
    }
    expect(secrets.every((s) => s.length >= 40)).toBe(true);
    const files: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const n of await readdir(dir)) {
        const p = join(dir, n);
        const st = await lstat(p);
        if (st.isDirectory()) await walk(p);
        else if (st.isFile()) files.push(p);
      }
    };
    await walk(fx.repo.buildDir);
    expect(files.some((f) => f.startsWith(finish.bundle!.dir))).toBe(true);
    expect(files.some((f) => f.includes('/logs/'))).toBe(true);
    expect(files.some((f) => f.endsWith('events.jsonl'))).toBe(true);
    const leaks: string[] = [];
    for (const f of files) {
      const text = (await readFile(f)).toString('latin1');
      for (const s of secrets) if (text.includes(s)) leaks.push(f);
    }
    for (const o of outputs) for (const s of secrets) if (o.includes(s)) leaks.push('CLI output');
    expect(outputs.length).toBeGreaterThan(10);
    expect(leaks).toEqual([]);
  });
});
