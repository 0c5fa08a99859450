/**
 * `clawos-build reproduce` below the rebuild: the bundle read back, subjects
 * compared, an earlier build's kernels seeded, and the refusals before anything
 * is rebuilt. The rebuild itself is the real `all` (README and .ci/run run it).
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../lib/errors.js';
import { run } from '../lib/proc.js';
import { repoRootDir } from '../lib/repo-root.js';
import type { Catalog } from '../pipeline/catalog/load-tasks.js';
import { StateStore } from '../pipeline/run/state.js';
import { compareSubjects, reusedOutputs, readBundleBuild, seedInstances } from '../pipeline/run/reproduce.js';
import { storeHas } from '../vault/store.js';
import { ARCHES, makePipelineFixture, type PipelineFixture } from './fixtures/vault/pipeline-bundle.js';

const cli = join(repoRootDir(), 'bin', 'clawos-build.js');
let fx: PipelineFixture;
let bundle: string;
let catalog: Catalog;

beforeAll(async () => {
  if (!(await run(['test', '-f', join(repoRootDir(), 'dist/bin/commands/reproduce.js')])).ok) throw new Error('dist/ is stale: run npm run build first');
  fx = await makePipelineFixture();
  const { finish, rc } = await fx.run();
  bundle = finish.bundle!.dir;
  catalog = rc.catalog;
});
afterAll(() => fx.cleanup());

describe('reproduce: the bundle read back', () => {
  it('names the arches, SOURCE_DATE_EPOCH, source, signing certificate and every subject by its build path', async () => {
    const b = await readBundleBuild(bundle);
    expect(b.arches).toEqual(ARCHES);
    expect(b.sourceDateEpoch).toBe(1763683200);
    // The test repo is no git checkout: nothing to rebuild from.
    expect(b.source).toBeNull();
    expect(b.moduleSigningCert).toBeNull();
    // No Secure Boot key in the fixture's key dir: no signed UKI, and reproduce checks no Secure Boot key.
    expect(b.secureBootCert).toBeNull();
    expect(b.subjects.map((s) => s.path)).toContain('kernel-engineer/x86_64/vmlinuz');
    expect(b.subjects.find((s) => s.path === 'kernel-engineer/x86_64/vmlinuz')!.kind).toBe('kernel');
  });

  it('compares each subject with the rebuild: outputs must match, reports are run evidence, a reused file is named apart', async () => {
    const b = await readBundleBuild(bundle);
    const same = await compareSubjects(b.subjects, fx.repo.buildDir, new Set());
    expect(same.filter((c) => !c.same)).toEqual([]);
    const other = join(fx.repo.root, '..', 'rebuilt');
    await cp(fx.repo.buildDir, other, { recursive: true });
    await writeFile(join(other, 'build-engineer/aarch64/initramfs.cpio.gz'), 'not the same');
    const c = await compareSubjects(b.subjects, other, new Set(['kernel-engineer/x86_64/vmlinuz']));
    expect(c.filter((x) => !x.same).map((x) => [x.path, x.role])).toEqual([['build-engineer/aarch64/initramfs.cpio.gz', 'output']]);
    expect(c.find((x) => x.path === 'kernel-engineer/x86_64/vmlinuz')).toMatchObject({ reused: true, role: 'output', same: true });
    expect(c.find((x) => x.kind === 'report')!.role).toBe('evidence');
  });
});

describe('reproduce --reuse-kernel: seeding the kernels of an earlier build', () => {
  it('takes over the passed records, hard-links their outputs and stores them; a changed output is refused', async () => {
    const fresh = join(fx.repo.root, '..', 'fresh', 'build');
    await mkdir(fresh, { recursive: true });
    const seeded = await seedInstances(fx.repo.buildDir, fresh, catalog, ['stand-in-kernel'], ARCHES);
    // A-01 and what it was built from (C-06).
    expect(seeded.map((s) => s.id)).toEqual(['C-06', 'A-01@x86_64', 'A-01@aarch64']);
    const st = await StateStore.open(fresh);
    // Kept by the rebuild: its outputs were taken over. Run again (a new record): rebuilt, they count.
    const kept = reusedOutputs(seeded, (id) => st.instance(id));
    expect(kept.has('kernel-engineer/x86_64/vmlinuz')).toBe(true);
    const rerun = reusedOutputs(seeded, (id) => (id === 'A-01@x86_64' ? { ...st.instance(id)!, finished_at: 'later' } : st.instance(id)));
    expect(rerun.has('kernel-engineer/x86_64/vmlinuz')).toBe(false);
    expect(rerun.has('kernel-engineer/aarch64/vmlinuz')).toBe(true);
    const rec = st.instance('A-01@x86_64')!;
    expect(rec.status).toBe('PASS');
    for (const [p, o] of Object.entries(rec.outputs)) {
      expect(await readFile(join(fresh, p))).toEqual(await readFile(join(fx.repo.buildDir, p)));
      expect(await storeHas(fresh, o.sha256)).toBe(true);
    }

    await writeFile(join(fx.repo.buildDir, 'kernel-engineer/aarch64/config'), 'edited');
    const again = join(fx.repo.root, '..', 'fresh2', 'build');
    await mkdir(again, { recursive: true });
    const err = await seedInstances(fx.repo.buildDir, again, catalog, ['stand-in-kernel'], ARCHES).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`${join(fx.repo.buildDir, 'kernel-engineer/aarch64/config')}: changed since A-01@aarch64 recorded it`);
  });
});

describe('clawos-build reproduce: refusals before any rebuild', () => {
  const clawos = async (args: string[]) => {
    const r = await run(['node', cli, ...args], { captureStdout: true, tailLines: 50 });
    return { code: r.exitCode, err: r.tail.join('\n'), out: r.stdout };
  };

  it('a bundle that does not verify: exit 1, nothing rebuilt', async () => {
    const bad = join(fx.repo.root, '..', 'tampered-bundle');
    await cp(bundle, bad, { recursive: true });
    await writeFile(join(bad, 'artifacts/kernel-engineer/x86_64/vmlinuz'), 'tampered');
    const r = await clawos(['reproduce', bad, '--trust', fx.trustFile, '--out', join(fx.repo.root, '..', 'r1')]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('clawos-build: reproduce: the bundle does not verify (HASH_MISMATCH): artifacts/kernel-engineer/x86_64/vmlinuz: size 8, manifest says 65536');
  });

  it('a bundle that names no source commit: exit 3 with the reason', async () => {
    const b = await readBundleBuild(bundle);
    const r = await clawos(['reproduce', bundle, '--trust', fx.trustFile, '--out', join(fx.repo.root, '..', 'r2')]);
    expect(r.code).toBe(3);
    expect(r.err).toBe(
      `clawos-build: the bundle ${b.runId} names no source commit (it was built outside git, or before clawos-build recorded one): there is nothing to check out and rebuild`,
    );
  });

  it('a folder that is not a bundle: exit 3', async () => {
    const r = await clawos(['reproduce', fx.repo.root, '--trust', fx.trustFile]);
    expect(r.code).toBe(3);
    expect(r.err).toBe(
      `clawos-build: ${fx.repo.root}: not a bundle directory (no attestation.dsse.json)\nhint: give the bundle directory, e.g. build/vault/bundles/<run id>; unpack an exported tar first`,
    );
  });
});
