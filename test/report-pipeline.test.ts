/**
 * The report on what a real pipeline run records (openRun -> runPhases ->
 * finishRun with stand-in steps), not on hand-written events: the payloads the
 * scheduler and the gates really append are what the report reads.
 */
import { bootReportsOf } from '../pipeline/boot/boot-reports.js';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestRepo, taskYaml, type TestRepo } from './helpers/test-repo.js';
import { openRun } from '../pipeline/run/session.js';
import { finishRun, runPhases } from '../pipeline/run/phases.js';
import { loadGateSpecs } from '../pipeline/run/gates.js';
import type { Step } from '../pipeline/catalog/step.js';
import { buildReportModel } from '../report/report-model.js';
import { metricsText } from '../report/report-metrics.js';
import { parsePromText } from '../report/prom-text.js';
import { renderReportHtml } from '../report/render-report-html.js';

const GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [G-06], require_arches: [] }
`;

/** Sleeps `ms`, then writes its output. */
const workStep: Step = {
  name: 'work',
  version: 1,
  toolPackages: () => [],
  async run(ctx) {
    await new Promise((r) => setTimeout(r, Number(ctx.params.ms)));
    await writeFile(join(ctx.outDir, String(ctx.params.to)), `${ctx.instanceId}\n`);
    return { status: 'PASS', message: `worked ${ctx.params.ms} ms <ok>` };
  },
};

/** Reports one boot record per variant, as the qemu-boot step's data does. */
const bootStep: Step = {
  name: 'boot',
  version: 1,
  toolPackages: () => [],
  bootReports: bootReportsOf,
  async run(ctx) {
    await mkdir(join(ctx.outDir, 'boot'), { recursive: true });
    await writeFile(join(ctx.outDir, 'boot', 'seabios.json'), '{}\n');
    const data = [
      {
        verdict: 'PASS',
        reason: null,
        stage: 'marker',
        stage_ms: { firmware: 100, kernel: 2000, init: 3000, checks: 3500, marker: 4000 },
        checks: [{ name: 'lockdown', result: 'pass', value: '[confidentiality]' }],
        failed_checks: [],
        missing_checks: [],
        message: 'CLAWOS-BOOT-OK',
        arch: ctx.arch!.name,
        variant: 'seabios',
        accel: 'tcg',
        duration_ms: 4100,
        serial_log: 'seabios.serial.log',
      },
    ];
    return { status: 'PASS', message: 'all 1 boots passed', data };
  },
};

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

describe('report on a real pipeline run', () => {
  it('reads the tasks, gates, boots and run of the vault chain the run wrote', async () => {
    repo = await makeTestRepo(GATES);
    await repo.writeTask('A-01', taskYaml({ id: 'A-01', outputs: ['build-engineer/a.txt'], action: 'uses: work\nwith: { ms: 10, to: a.txt }' }));
    await repo.writeTask('B-01', taskYaml({ id: 'B-01', phase: 'P2', deps: ['A-01'], outputs: ['build-engineer/b.txt'], action: 'uses: work\nwith: { ms: 300, to: b.txt }' }));
    await repo.writeTask('C-01', taskYaml({ id: 'C-01', phase: 'P2', deps: ['A-01'], outputs: ['build-engineer/c.txt'], action: 'uses: work\nwith: { ms: 10, to: c.txt }' }));
    await repo.writeTask('D-01', taskYaml({ id: 'D-01', phase: 'P3', deps: ['C-01'], action: 'pending: not yet' }));
    await repo.writeTask('G-06', taskYaml({ id: 'G-06', phase: 'P4', perArch: true, deps: ['B-01'], outputs: ['build-engineer/{arch}/boot/seabios.json'], action: 'uses: boot' }));
    const steps = new Map([
      ['work', workStep],
      ['boot', bootStep],
    ]);
    const rc = await openRun({
      repoRoot: repo.root,
      buildDir: repo.buildDir,
      arches: ['x86_64'],
      jobs: 2,
      emit: () => {},
      signal: new AbortController().signal,
      heartbeatMs: 0,
      steps,
    });
    const results = await runPhases(rc, ['P1', 'P2', 'P3', 'P4'], await loadGateSpecs(repo.root));
    await finishRun(rc, results, { keyDir: join(repo.buildDir, '..', 'no-keys') });

    const m = await buildReportModel({ repoRoot: repo.root, buildDir: repo.buildDir, steps });
    expect(m.source.kind).toBe('vault');
    expect(m.source.problems).toEqual([]);
    expect(m.phases.map((p) => [p.phase, p.gate?.recommendation])).toEqual([
      ['P1', 'GO'],
      ['P2', 'GO'],
      ['P3', 'GO'],
      ['P4', 'GO'],
    ]);
    expect(m.tasks.map((t) => [t.id, t.status, t.run_id === rc.vault.runId])).toEqual([
      ['A-01', 'PASS', true],
      ['B-01', 'PASS', true],
      ['C-01', 'PASS', true],
      ['D-01', 'NOT_CONFIGURED', true],
      ['G-06@x86_64', 'PASS', true],
    ]);
    // B-01 sleeps 300 ms, C-01 10 ms: the path goes through B-01.
    expect(m.critical_path.ids).toEqual(['A-01', 'B-01', 'G-06@x86_64']);
    expect(m.tasks.find((t) => t.id === 'B-01')!.duration_ms).toBeGreaterThanOrEqual(300);
    expect(m.boots.map((b) => [b.task, b.arch, b.variant, b.verdict, b.stage_ms.marker])).toEqual([['G-06@x86_64', 'x86_64', 'seabios', 'PASS', 4000]]);
    expect(m.runs).toHaveLength(1);
    expect(m.runs[0]!.boots).toEqual([{ task: 'G-06@x86_64', arch: 'x86_64', variant: 'seabios', verdict: 'PASS', reason: null, duration_ms: 4100, up_to_date: false }]);
    expect(m.runs[0]!.first_builds).toEqual(['A-01', 'B-01', 'C-01', 'D-01', 'G-06@x86_64']);
    expect(m.vault.state).toBe('no-bundle');
    expect(m.vault.note).toMatch(new RegExp(`^the latest run ${rc.vault.runId} ended without a bundle: `));
    expect(renderReportHtml(m)).toContain('worked 300 ms &lt;ok&gt;');
    expect(parsePromText(metricsText(m)).errors).toEqual([]);
  });
});
