/**
 * `clawos-build lava export|ingest` through the CLI: export refuses an ISO no
 * verified bundle vouches for; ingest of recorded lava-run results
 * (test/fixtures/lava) appends LAVA-sourced boot verdicts to the vault that
 * `status` and the report show, with disagreeing labs and flaky attempts as such,
 * and refuses results for another ISO.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { repoRootDir } from '../lib/repo-root.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp-dirs.js';

const tmp = useTmpDirs();
const FIX = join(repoRootDir(), 'test', 'fixtures', 'lava');
/** The real ClawOS x86_64 ISO of the x86_64-seabios-clawos recording (the stand-ins print only 14 of today's checks). */
const PASS_ISO = '3710c6fd04d9d23204cc9e1269c91622c8cae681a09870b1d59131c690f19bb1';
const OTHER_ISO = '5c97be4f4dc09089480dd00336c1dbddc92943614394160ba97a50e9a524d782';

describe('lava ingest', () => {
  test('a PASS from lava-run: appended as a LAVA-sourced boot verdict, shown by status and the report', async () => {
    const build = await tmp();
    const r = await runCli(['lava', 'ingest', join(FIX, 'x86_64-seabios-clawos'), '--sha256', PASS_ISO, '--lab', 'lab-a', '--arch', 'x86_64', '--build-dir', build]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('x86_64 seabios: PASS: CLAWOS-BOOT-OK, all 18 expected checks passed (LAVA job pass)');
    expect(lines[1]).toBe('flaky: none');
    expect(lines[2]).toMatch(/^vault: 1 LAVA boot verdict\(s\) appended as run run-\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$/);

    const st = await runCli(['status', '--build-dir', build]);
    expect(st.exitCode).toBe(0);
    expect(st.stdout).toContain('boots by lab (LAVA-sourced evidence beside the built-in boot lab):\n  x86_64 seabios ISO 3710c6fd04d9: lab-a job x86_64-seabios-clawos, emulated: PASS\n');

    const json = JSON.parse((await runCli(['status', '--json', '--build-dir', build])).stdout) as { lab_boots: { labs: { lab: string; latest: { verdict: string } }[] }[] };
    expect(json.lab_boots.map((b) => b.labs.map((l) => `${l.lab} ${l.latest.verdict}`))).toEqual([['lab-a PASS']]);

    const rep = JSON.parse((await runCli(['report', '--json', '--build-dir', build])).stdout) as { lab_boots: { arch: string; variant: string; iso_sha256: string; disagree: boolean }[] };
    expect(rep.lab_boots.map((b) => [b.arch, b.variant, b.iso_sha256, b.disagree])).toEqual([['x86_64', 'seabios', PASS_ISO, false]]);

    // The evidence is kept in the build dir and the content store: the job, LAVA's log, the console and the verdict.
    const [runDir] = await readdir(join(build, 'lava'));
    const kept = await readdir(join(build, 'lava', runDir!, '01-x86_64-seabios'));
    expect(kept.sort()).toEqual(['job.yaml', 'lava-log.yaml', 'serial.log', 'verdict.json']);
    expect(await readFile(join(build, 'lava', runDir!, '01-x86_64-seabios', 'serial.log'), 'utf8')).toContain('CLAWOS-BOOT-OK passed=18\n');
  });

  test('two labs that disagree are shown as disagreeing; a lab whose attempts differ is flaky', async () => {
    const build = await tmp();
    // lab-b: the same job's log cut short first (never a PASS), then the whole one: a retried boot.
    const b = await runCli(['lava', 'ingest', join(FIX, 'x86_64-seabios-clawos-truncated'), join(FIX, 'x86_64-seabios-clawos'), '--sha256', PASS_ISO, '--lab', 'lab-b', '--arch', 'x86_64', '--build-dir', build]);
    expect(b.exitCode).toBe(0);
    expect(b.stdout.split('\n').slice(0, 3)).toEqual([
      expect.stringMatching(/^x86_64 seabios: INFRA_ERROR \[lava-log-truncated\]: the LAVA log is truncated: /),
      'x86_64 seabios attempt 2: PASS: CLAWOS-BOOT-OK, all 18 expected checks passed (LAVA job pass)',
      'flaky: x86_64 seabios: INFRA_ERROR then PASS',
    ]);
    // lab-c: only the cut log.
    const c = await runCli(['lava', 'ingest', join(FIX, 'x86_64-seabios-clawos-truncated'), '--sha256', PASS_ISO, '--lab', 'lab-c', '--arch', 'x86_64', '--build-dir', build]);
    expect(c.exitCode).toBe(4);
    const st = await runCli(['status', '--build-dir', build]);
    expect(st.stdout).toContain(
      '  x86_64 seabios ISO 3710c6fd04d9: DISAGREE: lab-b job x86_64-seabios-clawos, emulated: PASS (attempts: INFRA_ERROR then PASS, flaky); lab-c job x86_64-seabios-clawos-truncated, emulated: INFRA_ERROR [lava-log-truncated]\n',
    );
  });

  test('results for another ISO are not ingested: exit 1, both sha256 named, nothing appended', async () => {
    const build = await tmp();
    const r = await runCli(['lava', 'ingest', join(FIX, 'x86_64-seabios-clawos'), '--sha256', OTHER_ISO, '--arch', 'x86_64', '--build-dir', build]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe(
      `x86_64 seabios: not ingested: the job was exported for ISO sha256 ${PASS_ISO}, not this ISO (${OTHER_ISO})\nflaky: none\nvault: nothing appended\n`,
    );
    expect(await readdir(build)).toEqual([]);
  });

  test('a failed check, a hang and a panic are FAIL, TIMEOUT and FAIL; exit 1', async () => {
    const build = await tmp();
    const shas: Record<string, string> = {
      'fail-check': OTHER_ISO,
      hang: 'f813bd57bf9aee81cc99b8bb98e6f087c880dd10f55128252063aebb03b5ef8a',
      panic: '36c52ed7a398715e3da0b3479f51536d98e228338e835315a978c75d03ad6ef6',
    };
    const got: string[] = [];
    for (const [name, sha] of Object.entries(shas)) {
      const r = await runCli(['lava', 'ingest', join(FIX, `x86_64-seabios-${name}`), '--sha256', sha, '--arch', 'x86_64', '--build-dir', build]);
      expect(r.exitCode).toBe(1);
      got.push(r.stdout.split('\n')[0]!.split(': ').slice(0, 2).join(': '));
    }
    expect(got).toEqual(['x86_64 seabios: FAIL [boot-check-failed]', 'x86_64 seabios: TIMEOUT [boot-timeout]', 'x86_64 seabios: FAIL [boot-panic]']);
  });

  test('bad input: no results there, or a job file clawos-build did not write: one line, exit 3', async () => {
    const build = await tmp();
    const empty = await tmp();
    const r = await runCli(['lava', 'ingest', empty, '--sha256', PASS_ISO, '--build-dir', build]);
    expect([r.exitCode, r.stderr[0]]).toEqual([3, `clawos-build: ${empty}: no LAVA results here (a folder holding job.yaml and lava-log.yaml, or folders of them)`]);
    await writeFile(join(empty, 'job.yaml'), 'job_name: other\ndevice_type: qemu\n');
    await writeFile(join(empty, 'lava-log.yaml'), '');
    const r2 = await runCli(['lava', 'ingest', empty, '--sha256', PASS_ISO, '--build-dir', build]);
    expect([r2.exitCode, r2.stderr[0]]).toEqual([3, `clawos-build: ${join(empty, 'job.yaml')}: not a job clawos-build lava export wrote: its metadata lacks clawos.arch, clawos.variant, clawos.iso_sha256`]);
  });
});

describe('lava export', () => {
  test('refuses an ISO no verified bundle vouches for; --allow-unverified exports one job per variant and says so in each', async () => {
    const build = await tmp();
    const iso = join(build, 'some.iso');
    await writeFile(iso, 'not a release\n');
    const r = await runCli(['lava', 'export', '--arch', 'x86_64', '--iso', iso, '--build-dir', build]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'clawos-build: lava export: no --trust keys.json given to verify a bundle with; export refuses an ISO no verified bundle vouches for (--allow-unverified exports it anyway, and the jobs say so)',
    );
    const out = join(build, 'jobs');
    // A key dir without a Secure Boot key: the Secure Boot variant gets no job (G-06's NOT_CONFIGURED rule), said on stderr.
    const ok = await runCli(['lava', 'export', '--arch', 'x86_64', '--iso', iso, '--allow-unverified', '--iso-url', 'https://lab.example/{arch}/{file}', '--out', out, '--build-dir', build], {
      env: { ...process.env, CLAWOS_KEY_DIR: join(build, 'no-keys') },
    });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toBe(`4 LAVA job(s) in ${out}\n`);
    expect(ok.stderr).toContain('lava: x86_64 ovmf-secureboot: NOT_CONFIGURED: no Secure Boot key in the key dir, so no signed UKI to boot; no LAVA job');
    expect((await readdir(out)).sort()).toEqual(
      ['ovmf', 'seabios', 'usb-bios', 'usb-uefi'].flatMap((v) => [`clawos-x86_64-${v}.device.yaml`, `clawos-x86_64-${v}.yaml`]).sort(),
    );
    const job = await readFile(join(out, 'clawos-x86_64-seabios.yaml'), 'utf8');
    expect(job).toContain('  clawos.iso_vouched_by: "unverified (--allow-unverified): no --trust keys.json given to verify a bundle with"\n');
    expect(job).toContain('          url: https://lab.example/x86_64/some.iso\n');
  });
  test('--firmware exports only the variants it names, as boot does; an unknown one is refused with the choices; ingest refuses it', async () => {
    const build = await tmp();
    const iso = join(build, 'some.iso');
    await writeFile(iso, 'not a release\n');
    const env = { ...process.env, CLAWOS_KEY_DIR: join(build, 'no-keys') };
    const out = join(build, 'bios');
    const bios = await runCli(['lava', 'export', '--arch', 'x86_64', '--iso', iso, '--allow-unverified', '--firmware', 'bios', '--out', out, '--build-dir', build], { env });
    expect([bios.exitCode, bios.stdout]).toEqual([0, `2 LAVA job(s) in ${out}\n`]);
    expect((await readdir(out)).filter((f) => !f.endsWith('.device.yaml')).sort()).toEqual(['clawos-x86_64-seabios.yaml', 'clawos-x86_64-usb-bios.yaml']);
    const one = await runCli(['lava', 'export', '--arch', 'x86_64', '--iso', iso, '--allow-unverified', '--firmware', 'usb-uefi', '--out', join(build, 'one'), '--build-dir', build], { env });
    expect([one.exitCode, (await readdir(join(build, 'one'))).sort()]).toEqual([0, ['clawos-x86_64-usb-uefi.device.yaml', 'clawos-x86_64-usb-uefi.yaml']]);
    const bad = await runCli(['lava', 'export', '--arch', 'x86_64', '--iso', iso, '--allow-unverified', '--firmware', 'uboot', '--out', join(build, 'bad'), '--build-dir', build], { env });
    expect([bad.exitCode, bad.stderr[0]]).toEqual([3, 'clawos-build: unknown --firmware uboot for x86_64']);
    const ing = await runCli(['lava', 'ingest', join(FIX, 'x86_64-seabios-clawos'), '--sha256', PASS_ISO, '--firmware', 'bios', '--build-dir', build]);
    expect([ing.exitCode, ing.stderr[0]]).toEqual([2, 'clawos-build: --firmware goes with lava export or run: ingest takes every result it is given']);
  });
});
