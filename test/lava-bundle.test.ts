/**
 * LAVA evidence end to end through a real pipeline run (test/fixtures/vault/pipeline-bundle.ts):
 * export vouches for the ISO with the run's signed bundle, the lab's result is
 * ingested for that ISO, and the next release bundle attests the verdict, the
 * job and LAVA's log beside the ISO; it still verifies.
 */
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { sha256File } from '../lib/hash.js';
import { makePipelineFixture, type PipelineFixture } from './fixtures/vault/pipeline-bundle.js';
import { runCli } from './helpers/cli.js';

let fx: PipelineFixture;
beforeAll(async () => {
  fx = await makePipelineFixture();
  await fx.run();
}, 600_000);
afterAll(() => fx.cleanup());

/** The real ClawOS x86_64 ISO of the x86_64-seabios-clawos recording (test/fixtures/lava/README.md). */
const RECORDED_ISO = '3710c6fd04d9d23204cc9e1269c91622c8cae681a09870b1d59131c690f19bb1';

describe('LAVA evidence in the vault and the bundle', () => {
  test('export vouched by the signed bundle; ingest for that ISO; the next bundle carries the LAVA records and verifies', { timeout: 900_000 }, async () => {
    const build = fx.repo.buildDir;
    const iso = join(build, 'build-engineer', 'x86_64', 'clawos-x86_64.iso');
    const isoSha = await sha256File(iso);
    const jobs = join(fx.repo.root, '..', 'lava-jobs');
    const ex = await runCli(['lava', 'export', '--arch', 'x86_64', '--trust', fx.trustFile, '--out', jobs, '--build-dir', build]);
    expect(ex.exitCode, ex.stderr.join('\n')).toBe(0);
    const job = await readFile(join(jobs, 'clawos-x86_64-seabios.yaml'), 'utf8');
    expect(job).toMatch(/\n {2}clawos\.iso_vouched_by: "?signed bundle .*\/vault\/bundles\/run-[^:]+: run run-[^,]+, release [^,]+, as artifacts\/build-engineer\/x86_64\/clawos-x86_64\.iso"?\n/);
    expect(job).toContain(`  clawos.iso_sha256: ${isoSha}\n`);

    // The recorded PASS (test/fixtures/lava) stands for the same job run against this ISO: its ISO's
    // sha256 (job metadata, and the deploy's check in LAVA's log) is replaced by this ISO's.
    const res = join(fx.repo.root, '..', 'lava-results', '4711');
    await cp(join(repoRootDir(), 'test', 'fixtures', 'lava', 'x86_64-seabios-clawos'), res, { recursive: true });
    for (const f of ['job.yaml', 'lava-log.yaml']) await writeFile(join(res, f), (await readFile(join(res, f), 'utf8')).replaceAll(RECORDED_ISO, isoSha));
    const ing = await runCli(['lava', 'ingest', res, '--lab', 'lab.example', '--arch', 'x86_64', '--build-dir', build]);
    expect(ing.exitCode, ing.stdout).toBe(0);
    expect(ing.stdout.split('\n')[0]).toBe('x86_64 seabios: PASS: CLAWOS-BOOT-OK, all 18 expected checks passed (LAVA job pass)');

    const st = await runCli(['status', '--build-dir', build]);
    // Beside the built-in lab's verdict on the same ISO (the fixture's G-06 replays a real SeaBIOS PASS).
    expect(st.stdout).toContain(`  x86_64 seabios ISO ${isoSha.slice(0, 12)}: clawos-build (G-06): PASS; lab.example job 4711, emulated: PASS\n`);

    const second = await fx.run();
    const dir = second.finish.bundle?.dir;
    expect(dir).toBeTruthy();
    const manifest = JSON.parse(await readFile(join(dir!, 'manifest.json'), 'utf8')) as { files: { path: string }[] };
    const lava = manifest.files.map((f) => f.path).filter((p) => p.includes('/lava/'));
    expect(lava.map((p) => p.replace(/run-[^/]+/, 'RUN'))).toEqual([
      'artifacts/lava/RUN/01-x86_64-seabios/job.yaml',
      'artifacts/lava/RUN/01-x86_64-seabios/lava-log.yaml',
      'artifacts/lava/RUN/01-x86_64-seabios/serial.log',
      'artifacts/lava/RUN/01-x86_64-seabios/verdict.json',
    ]);
    const v = await runCli(['verify', dir!, '--trust', fx.trustFile]);
    expect(v.exitCode, v.stdout).toBe(0);
    expect(await readdir(join(dir!, 'artifacts', 'lava'))).toHaveLength(1);
  });
});
