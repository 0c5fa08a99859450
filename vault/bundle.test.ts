import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, readdir, stat } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { listFiles, readBundleManifest, storePath, writeBundle } from './bundle.js';
import { eventsPath } from './event-chain.js';
import { isCanonical } from './jcs.js';
import { verifyBundle } from './verify.js';
import { makeFixture, RUN_ID, type Fixture } from '../test/fixtures/vault/make-bundle.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture();
});
afterAll(() => fx.cleanup());

describe('writeBundle', () => {
  it('lays out artifacts, events, attestation and the signed manifest; nothing else', async () => {
    expect(await listFiles(fx.bundleDir)).toEqual([
      'artifacts/gates/P4/gate-report.json',
      'artifacts/x86_64/clawos-x86_64.iso',
      'artifacts/x86_64/initramfs.cpio.gz',
      'artifacts/x86_64/vmlinuz',
      'attestation.dsse.json',
      'events.jsonl',
      'inputs.lock.yaml',
      'manifest.dsse.json',
      'manifest.json',
    ]);
    const m = await readBundleManifest(fx.bundleDir);
    expect(m.files.map((f) => f.path)).toEqual([
      'artifacts/gates/P4/gate-report.json',
      'artifacts/x86_64/clawos-x86_64.iso',
      'artifacts/x86_64/initramfs.cpio.gz',
      'artifacts/x86_64/vmlinuz',
      'attestation.dsse.json',
      'events.jsonl',
      'inputs.lock.yaml',
    ]);
    for (const f of ['manifest.json', 'manifest.dsse.json', 'attestation.dsse.json']) expect(isCanonical(await readFile(join(fx.bundleDir, f)))).toBe(true);
    expect(await readFile(join(fx.bundleDir, 'events.jsonl'))).toEqual(await readFile(eventsPath(fx.buildDir, RUN_ID)));
    const all = Buffer.concat(await Promise.all((await listFiles(fx.bundleDir)).map((p) => readFile(join(fx.bundleDir, p)))));
    expect(all.includes(Buffer.from('PRIVATE KEY'))).toBe(false);
    expect((await readdir(fx.root)).some((n) => n.includes('.partial-'))).toBe(false);
  });

  it('links artifacts to the store instead of copying them', async () => {
    const m = await readBundleManifest(fx.bundleDir);
    const iso = m.files.find((f) => f.path.endsWith('.iso'))!;
    expect((await stat(join(fx.bundleDir, iso.path))).ino).toBe((await stat(storePath(fx.buildDir, iso.sha256))).ino);
  });

  it('refuses to write over an existing bundle', async () => {
    await expect(
      writeBundle({
        buildDir: fx.buildDir,
        outDir: fx.bundleDir,
        runId: RUN_ID,
        release: '0.1.0',
        builderId: 'b',
        artifacts: [],
        eventsFile: eventsPath(fx.buildDir, RUN_ID),
        provenance: { kernelSource: { name: 'k', sha256: 'a'.repeat(64) }, debianPackages: [], frozenSpecs: [], startedOn: new Date(), finishedOn: new Date() },
        releaseKey: fx.keys.release,
      }),
    ).rejects.toMatchObject({ code: 'EXISTS', message: `${fx.bundleDir} already exists; a bundle is written once` });
  });

  it('a tar made by GNU tar -C bundle . verifies too', async () => {
    const t = join(fx.root, 'gnu.tar');
    execFileSync('tar', ['-cf', t, '-C', fx.bundleDir, '.']);
    expect((await verifyBundle(t, fx.trust)).code).toBe('PASS');
  });
});
