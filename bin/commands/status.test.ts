import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { RunVault } from '../../vault/run-vault.js';
import { main } from '../cli.js';

let tmp: DirectoryResult;
beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterEach(() => tmp.cleanup());

const end = (task: string, message: string, duration_ms: number) => ({ task, status: 'PASS', message, fingerprint: `${task}-${message}`, phase: 'P1', outputs: [], duration_ms });

async function runWith(buildDir: string, runId: string, at: string, events: [string, Record<string, unknown>][]): Promise<RunVault> {
  const v = await RunVault.open(buildDir, { runId, now: () => new Date(at) });
  for (const [type, payload] of events) await v.append(type as 'task-end', payload);
  await v.close();
  return v;
}

async function status(buildDir: string, ...extra: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['status', '--build-dir', buildDir, ...extra], { repoRoot: process.cwd(), print: (s) => out.push(s), printErr: (s) => err.push(s) });
  return { code, out: out.join(''), err: err.join('') };
}

describe('clawos-build status', () => {
  it('an edited event in the latest run: the verified prefix of that run is shown, the run is marked TAMPERED, exit 1', async () => {
    const b = tmp.path;
    const R1 = 'run-20251121T100000.000Z-00000001';
    const R2 = 'run-20251121T110000.000Z-00000002';
    await runWith(b, R1, '2025-11-21T10:00:00.000Z', [
      ['run-start', {}],
      ['task-end', end('A-01', 'old kernel', 60_000)],
      ['task-end', end('C-01', 'old checks', 2_000)],
      ['run-end', { status: 'passed' }],
    ]);
    const r2 = await runWith(b, R2, '2025-11-21T11:00:00.000Z', [
      ['run-start', {}],
      ['task-end', end('A-01', 'new kernel', 30_000)],
      ['task-end', end('C-01', 'new checks', 1_000)],
      ['run-end', { status: 'passed' }],
    ]);
    const lines = (await readFile(r2.eventsFile, 'utf8')).split('\n');
    lines[2] = lines[2]!.replace('"new checks"', '"forged checks"');
    await writeFile(r2.eventsFile, lines.join('\n'));

    const plain = await status(b);
    expect(plain.code).toBe(1);
    expect(plain.err).toMatch(
      new RegExp(`^clawos-build: vault: run ${R2.replace('.', '\\.')}: TAMPERED: CHAIN_BROKEN: event 3: prev is \\S{43}, expected \\S{43} \\(the hash of event 2\\); only its first 2 of 4 events verify and are used\n$`),
    );
    // A-01 comes from run 2's verified prefix; C-01's edited result is not used, its run-1 result is.
    expect(plain.out).toBe(
      [
        `from the vault: 2 run(s) in ${join(b, 'vault', 'runs')}, latest ${R2} (TAMPERED: 2 of 4 events verified)`,
        'P1: gate not run',
        '  A-01           PASS             30.0 s  new kernel',
        '  C-01           PASS              2.0 s  old checks',
        'P2: gate not run',
        'P3: gate not run',
        'P4: gate not run',
        `TAMPERED: the event chain of run ${R2} fails verification: the build's evidence is not intact; only the verified events before the damage are shown`,
        '',
      ].join('\n'),
    );

    const json = await status(b, '--json');
    expect(json.code).toBe(1);
    const s = JSON.parse(json.out) as { tampered: string[]; runs: { run_id: string; events: number; tampered?: unknown }[]; instances: Record<string, { message: string; run_id: string }> };
    expect(s.tampered).toEqual([R2]);
    expect(s.runs.map((r) => [r.run_id, r.events, r.tampered ?? null])).toEqual([
      [R1, 4, null],
      [R2, 2, { code: 'CHAIN_BROKEN', detail: expect.stringMatching(/^event 3: prev is /), verified: 2, total: 4 }],
    ]);
    expect([s.instances['A-01']!.message, s.instances['A-01']!.run_id, s.instances['C-01']!.run_id]).toEqual(['new kernel', R2, R1]);
  });

  it('a damaged state.json is named with the mv command that moves it aside; the results still come from the vault, exit 3', async () => {
    const b = tmp.path;
    const R1 = 'run-20251121T100000.000Z-00000001';
    await runWith(b, R1, '2025-11-21T10:00:00.000Z', [
      ['run-start', {}],
      ['task-end', end('A-01', 'kernel', 60_000)],
      ['run-end', { status: 'passed' }],
    ]);
    const state = join(b, 'state.json');
    await writeFile(state, '{"format":"clawos-build-state@1","instan');
    await writeFile(`${state}.damaged`, 'an earlier one, kept');
    const plain = await status(b);
    expect(plain.code).toBe(3);
    const fix = `move it aside, and keep the build dir (the vault holds every result; the next run rebuilds the index from it and rebuilds nothing whose outputs it holds): mv ${state} ${state}.damaged-2`;
    expect(plain.err.split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^clawos-build: ${state.replace(/[.]/g, '\\.')} is damaged: not valid JSON \\(.+\\); a run refuses it until it is moved aside \\(the results below come from the vault\\)$`)),
      `hint: ${fix}`,
      '',
    ]);
    expect(plain.out.split('\n')[2]).toBe('  A-01           PASS              1m00s  kernel');
    const json = await status(b, '--json');
    expect(json.code).toBe(3);
    expect(JSON.parse(json.out).state).toEqual({ path: state, ok: false, problem: expect.stringMatching(/ is damaged: not valid JSON /), fix, command: `mv ${state} ${state}.damaged-2` });
    await writeFile(state, '[]');
    expect((await status(b)).err).toBe(`clawos-build: ${state} is damaged: not a JSON object; a run refuses it until it is moved aside (the results below come from the vault)\nhint: ${fix}\n`);
  });
});
