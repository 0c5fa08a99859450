import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dir, type DirectoryResult } from 'tmp-promise';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/hash.js';
import { run } from '../../lib/proc.js';
import { extractedDirName, kernelSourceFiles, loadKernelSourceConfig, loadPinnedKernelSource, prepareKernelSource, type KernelSourceConfig } from './source.js';

let tmp: DirectoryResult;
beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterEach(async () => {
  await tmp.cleanup();
});

const ctxFor = (cacheDir: string) => ({ cacheDir, log: () => {}, run: (a: string[], o = {}) => run(a, o) });

async function makeTarball(root: string, tops: string[]): Promise<{ path: string; sha256: string }> {
  const stage = join(root, 'stage');
  for (const t of tops) {
    await mkdir(join(stage, t), { recursive: true });
    await writeFile(join(stage, t, 'Makefile'), `# ${t}\n`);
  }
  const path = join(root, 'linux-test.tar.xz');
  const r = await run(['tar', '-cJf', path, '-C', stage, ...tops]);
  expect(r.ok).toBe(true);
  return { path, sha256: await sha256File(path) };
}

async function writeSourceYaml(repo: string, body: string): Promise<void> {
  await mkdir(join(repo, 'kernel-config'), { recursive: true });
  await writeFile(join(repo, 'kernel-config/source.yaml'), body);
}

const SHA_A = 'a'.repeat(64);

describe('loadKernelSourceConfig', () => {
  it('reads source.yaml and resolves a relative tarball against the repo', async () => {
    await writeSourceYaml(tmp.path, `tarball: src/linux.tar.xz\nsha256: ${SHA_A}\nbase: tinyconfig\nfragments: [kernel-config/common.config]\n`);
    expect(await loadKernelSourceConfig(tmp.path, {})).toEqual({
      tarball: join(tmp.path, 'src/linux.tar.xz'),
      url: undefined,
      sha256: SHA_A,
      base: 'tinyconfig',
      fragments: ['kernel-config/common.config'],
      pinnedIn: 'kernel-config/source.yaml',
    });
  });

  it('takes CLAWOS_KERNEL_SOURCE + CLAWOS_KERNEL_SHA256 together, and refuses one alone', async () => {
    await writeSourceYaml(tmp.path, `tarball: /x.tar.xz\nsha256: ${SHA_A}\nfragments: []\n`);
    const cfg = await loadKernelSourceConfig(tmp.path, {
      CLAWOS_KERNEL_SOURCE: 'https://example.org/linux.tar.xz',
      CLAWOS_KERNEL_SHA256: 'B'.repeat(64),
    });
    expect(cfg).toMatchObject({ url: 'https://example.org/linux.tar.xz', tarball: undefined, sha256: 'b'.repeat(64) });
    expect(cfg.pinnedIn).toBe('CLAWOS_KERNEL_SHA256');
    await expect(loadKernelSourceConfig(tmp.path, { CLAWOS_KERNEL_SOURCE: '/y.tar.xz' })).rejects.toThrow(
      'CLAWOS_KERNEL_SOURCE and CLAWOS_KERNEL_SHA256 must be set together',
    );
  });

  it('rejects a missing pin and a file with both tarball and url', async () => {
    await writeSourceYaml(tmp.path, 'tarball: /x.tar.xz\n');
    await expect(loadKernelSourceConfig(tmp.path, {})).rejects.toThrow("kernel-config/source.yaml: 'sha256' must be 64 hex digits");
    await writeSourceYaml(tmp.path, `tarball: /x\nsha256: ${'1'.repeat(64)}\n`);
    await expect(loadKernelSourceConfig(tmp.path, {})).rejects.toThrow('kernel-config/source.yaml: quote the sha256 value ("...")');
    await writeSourceYaml(tmp.path, `tarball: /x\nurl: http://x/y\nsha256: ${SHA_A}\n`);
    await expect(loadKernelSourceConfig(tmp.path, {})).rejects.toThrow(
      "kernel-config/source.yaml: give exactly one of 'deb' (with 'member'), 'tarball' and 'url'",
    );
    await writeSourceYaml(tmp.path, 'deb: linux-source-6.1\n');
    await expect(loadKernelSourceConfig(tmp.path, {})).rejects.toThrow("kernel-config/source.yaml: 'deb' and 'member' go together (the package and the tarball inside it)");
    await writeSourceYaml(tmp.path, `deb: linux-source-6.1\nmember: usr/src/linux-source-6.1.tar.xz\nsha256: "${SHA_A}"\n`);
    await expect(loadKernelSourceConfig(tmp.path, {})).rejects.toThrow(
      "kernel-config/source.yaml: with 'deb', the tarball's sha256 is pinned in inputs.lock.yaml (files:), not here",
    );
  });

  it('the repository pin: Linux 6.12 by default, 6.1 selectable, each the tarball in a locked Debian package', async () => {
    const root = join(import.meta.dirname, '../..');
    expect(await kernelSourceFiles(root)).toEqual(['kernel-config/source-6.1.yaml', 'kernel-config/source.yaml']);
    const cfg = await loadKernelSourceConfig(root, {});
    expect(cfg).toEqual({
      deb: { package: 'linux-source-6.12', member: 'usr/src/linux-source-6.12.tar.xz' },
      sha256: '',
      base: 'tinyconfig',
      fragments: ['kernel-config/common.config', 'kernel-config/boot.config', 'kernel-config/linux-6.12/common.config', 'kernel-config/linux-6.12/{arch}.config'],
      pinnedIn: 'inputs.lock.yaml',
    });
    expect(await loadPinnedKernelSource(root, {})).toMatchObject({
      tarball: '/usr/src/linux-source-6.12.tar.xz',
      sha256: 'c93391b6a4884e6428ffbfbb8ce6340229ad28dc421e9f19bc081740b1ab34b2',
    });
    expect(await loadPinnedKernelSource(root, {}, 'kernel-config/source-6.1.yaml')).toMatchObject({
      deb: { package: 'linux-source-6.1', member: 'usr/src/linux-source-6.1.tar.xz' },
      fragments: ['kernel-config/common.config', 'kernel-config/boot.config', 'kernel-config/linux-6.1/common.config', 'kernel-config/linux-6.1/{arch}.config'],
      tarball: '/usr/src/linux-source-6.1.tar.xz',
      sha256: '4d415b3d364834fd818270e88813e90323bbfce4f519a0e6bd4940ddcd7df693',
    });
  });
});

describe('prepareKernelSource', () => {
  const cfgFor = (tarball: string, sha256: string): KernelSourceConfig => ({
    tarball,
    sha256,
    base: 'tinyconfig',
    fragments: [],
    pinnedIn: 'kernel-config/source.yaml',
  });

  it('verifies, extracts the single top-level dir once, then reuses it', async () => {
    const t = await makeTarball(tmp.path, ['linux-9.9']);
    const cache = join(tmp.path, 'cache');
    const first = await prepareKernelSource(cfgFor(t.path, t.sha256), ctxFor(cache));
    const srcDir = join(cache, 'src', extractedDirName(t.sha256));
    expect(first).toEqual({ ok: true, srcDir, tarball: t.path, sha256: t.sha256, extracted: true });
    expect(await readFile(join(srcDir, 'Makefile'), 'utf8')).toBe('# linux-9.9\n');
    expect(await readdir(join(cache, 'src'))).toEqual([extractedDirName(t.sha256)]);
    const again = await prepareKernelSource(cfgFor(t.path, t.sha256), ctxFor(cache));
    expect(again).toMatchObject({ ok: true, srcDir, extracted: false });
  });

  it('fails closed on a sha256 mismatch, extracting nothing', async () => {
    const t = await makeTarball(tmp.path, ['linux-9.9']);
    const cache = join(tmp.path, 'cache');
    const r = await prepareKernelSource(cfgFor(t.path, SHA_A), ctxFor(cache));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.outcome.status).toBe('FAIL');
    expect(r.outcome.reason).toBe('source-mismatch');
    expect(r.outcome.message).toBe(
      `kernel source ${t.path}: sha256 mismatch: expected ${SHA_A}, actual ${t.sha256}; ` +
        `if this is the source you want, set sha256: ${t.sha256} in kernel-config/source.yaml`,
    );
    expect(existsSync(join(cache, 'src'))).toBe(false);
  });

  it('reports a missing tarball as an infrastructure error naming the package', async () => {
    const r = await prepareKernelSource(cfgFor('/nonexistent/linux.tar.xz', SHA_A), ctxFor(join(tmp.path, 'cache')));
    expect(r).toEqual({
      ok: false,
      outcome: {
        status: 'INFRA_ERROR',
        reason: 'infra',
        message:
          'kernel source /nonexistent/linux.tar.xz not found (pinned in kernel-config/source.yaml); put the tarball there or name another one in kernel-config/source.yaml',
      },
    });
  });

  it('refuses a tarball without exactly one top-level directory and leaves no tree behind', async () => {
    const t = await makeTarball(tmp.path, ['a', 'b']);
    const cache = join(tmp.path, 'cache');
    const r = await prepareKernelSource(cfgFor(t.path, t.sha256), ctxFor(cache));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.outcome.message).toBe(`${t.path}: expected one top-level directory, found a, b`);
    expect(await readdir(join(cache, 'src'))).toEqual([]);
  });

  it('downloads a URL into the cache (local http server and file://), then verifies it', async () => {
    const t = await makeTarball(tmp.path, ['linux-9.9']);
    const body = await readFile(t.path);
    const server = createServer((req, res) => {
      if (req.url === '/linux.tar.xz') res.end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const port = (server.address() as AddressInfo).port;
      const url = `http://127.0.0.1:${port}/linux.tar.xz`;
      const cache = join(tmp.path, 'cache');
      const base = { sha256: t.sha256, base: 'tinyconfig', fragments: [], pinnedIn: 'CLAWOS_KERNEL_SHA256' };
      const r = await prepareKernelSource({ ...base, url }, ctxFor(cache));
      expect(r).toMatchObject({ ok: true, tarball: join(cache, 'downloads', `${t.sha256.slice(0, 16)}-linux.tar.xz`) });
      const missing = await prepareKernelSource({ ...base, url: `http://127.0.0.1:${port}/nope.tar.xz` }, ctxFor(cache));
      expect(missing).toMatchObject({ ok: false, outcome: { status: 'INFRA_ERROR' } });
      if (!missing.ok) expect(missing.outcome.message).toBe(`downloading http://127.0.0.1:${port}/nope.tar.xz failed: HTTP 404 Not Found`);
      const bad = await prepareKernelSource({ ...base, sha256: SHA_A, url: pathToFileURL(t.path).href }, ctxFor(join(tmp.path, 'c2')));
      expect(bad).toMatchObject({ ok: false, outcome: { reason: 'source-mismatch' } });
      if (!bad.ok) expect(bad.outcome.message).toContain('set CLAWOS_KERNEL_SHA256=' + t.sha256);
    } finally {
      server.close();
    }
  });
});
