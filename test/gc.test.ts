/**
 * `clawos-build gc` on a build made by the real pipeline (test/fixtures/vault/pipeline-bundle.ts):
 * build, rebuild twice with a changed kernel config (new kernels, new bundles),
 * collect keeping the newest run, then every kept bundle still verifies, nothing a
 * kept run or a released bundle names is gone, and the next run rebuilds nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makePipelineFixture, type PipelineFixture } from './fixtures/vault/pipeline-bundle.js';
import { NO_SANDBOX } from '../lib/sandbox.js';
import { loadTrust } from '../vault/keys.js';
import { verifyBundle } from '../vault/verify.js';
import { collectGarbage } from '../vault/gc.js';
import { storeHas } from '../vault/store.js';
import { readAllRuns } from '../vault/vault-history.js';
import { runCli } from './helpers/cli.js';

let fx: PipelineFixture | null = null;
afterEach(async () => {
  await fx?.cleanup();
  fx = null;
});

const storeNames = async (b: string) => (await readdir(join(b, 'vault/store/sha256'))).sort();

describe('gc of the content store', () => {
  it('build, rebuild, collect: only unreferenced objects go, every kept bundle verifies, and a released bundle keeps its objects', async () => {
    fx = await makePipelineFixture();
    const b = fx.repo.buildDir;
    const first = await fx.run({ sandbox: NO_SANDBOX });
    expect(first.finish.bundle).toBeDefined();
    await fx.repo.write('kernel-config/common.config', 'CONFIG_BPF_LSM=y\nCONFIG_SECOND=y\n');
    const second = await fx.run({ sandbox: NO_SANDBOX });
    await fx.repo.write('kernel-config/common.config', 'CONFIG_BPF_LSM=y\nCONFIG_THIRD=y\n');
    const third = await fx.run({ sandbox: NO_SANDBOX });
    const runs = [first, second, third].map((r) => r.finish.runId);
    // The first run's bundle was released (a release folder names its run).
    await mkdir(join(b, 'release', 'clawos-0.1.0-alpha'), { recursive: true });
    await writeFile(join(b, 'release', 'clawos-0.1.0-alpha', 'release.json'), JSON.stringify({ version: '0.1.0-alpha', run_id: runs[0] }));
    const before = await storeNames(b);

    const dry = await runCli(['gc', '--keep-runs', '1', '--dry-run', '--build-dir', b]);
    expect(dry.exitCode).toBe(0);
    expect(await storeNames(b)).toEqual(before);
    const cli = await runCli(['gc', '--keep-runs', '1', '--build-dir', b]);
    expect(cli.exitCode).toBe(0);
    const after = await storeNames(b);
    const removed = before.filter((n) => !after.includes(n));
    // Run 2's kernels (both arches' vmlinuz and config) were referenced by nothing kept.
    expect(removed.length).toBeGreaterThanOrEqual(4);
    const last = cli.stdout.trim().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^gc: kept 1 run\\(s\\) \\(the newest; 2 older run\\(s\\) no longer hold objects\\) and 2 bundle\\(s\\); \\d+ object\\(s\\) still referenced; removed ${removed.length} object\\(s\\), freed [\\d.]+ (kB|MB)$`));
    expect(cli.stdout.split('\n').filter((l) => l.startsWith('removed vault/store/sha256/'))).toHaveLength(removed.length);
    expect(dry.stdout.trim().split('\n').at(-1)).toBe(last.replace(`removed ${removed.length}`, `would remove ${removed.length}`).replace('freed', 'would free'));

    // Nothing the kept run or the released bundle names is gone.
    const trust = await loadTrust(fx.trustFile);
    for (const id of [runs[0]!, runs[2]!]) {
      const dir = join(b, 'vault/bundles', id);
      expect((await verifyBundle(dir, trust)).code).toBe('PASS');
      const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { files: { path: string; sha256: string }[] };
      // Every bundle file the store held before is still there (events.jsonl and the envelopes never were store objects).
      const held = manifest.files.filter((f) => before.includes(f.sha256));
      expect(held.length).toBeGreaterThan(5);
      for (const f of held) expect(after).toContain(f.sha256);
    }
    const kept = (await readAllRuns(b)).find((r) => r.runId === runs[2])!;
    for (const e of kept.events) {
      if (e.type !== 'task-end') continue;
      for (const o of (e.payload.outputs as { sha256: string }[]) ?? []) expect(await storeHas(b, o.sha256)).toBe(true);
    }
    // The dropped run's bundle still verifies too: its files are hard links, not the store's names.
    expect((await verifyBundle(join(b, 'vault/bundles', runs[1]!), trust)).code).toBe('PASS');
    // A second collection finds nothing more; the next run is up to date (nothing rebuilt).
    expect((await collectGarbage(b, { keepRuns: 1 })).removed).toEqual([]);
    const again = await fx.run({ sandbox: NO_SANDBOX });
    expect(again.events.filter((e) => e.type === 'task-start')).toEqual([]);
  });
});
