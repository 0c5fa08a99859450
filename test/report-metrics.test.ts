import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestRepo, type TestRepo } from './helpers/test-repo.js';
import { buildReportModel } from '../report/report-model.js';
import { metricsText, writeMetricsFile } from '../report/report-metrics.js';
import { formatPromText, parsePromText } from '../report/prom-text.js';
import { UserError } from '../lib/errors.js';
import type { BuildStateData, InstanceRecord } from '../pipeline/run/state.js';

const GATES = `gates:
  P1: { title: One, rule: r1, require_pass: [], require_arches: [] }
  P2: { title: Two, rule: r2, require_pass: [], require_arches: [] }
  P3: { title: Three, rule: r3, require_pass: [], require_arches: [] }
  P4: { title: Four, rule: r4, require_pass: [], require_arches: [] }
`;

function inst(id: string, phase: InstanceRecord['phase'], status: InstanceRecord['status'], ms: number, data?: unknown): InstanceRecord {
  const [task, arch] = id.split('@');
  return {
    id,
    task_id: task!,
    arch: arch ?? null,
    phase,
    agent: 'build-engineer',
    status,
    message: `${id} ${status}`,
    fingerprint: 'f',
    fingerprint_parts: {},
    outputs: {},
    ...(data ? { data } : {}),
    started_at: '2025-11-21T10:00:00.000Z',
    finished_at: new Date(Date.parse('2025-11-21T10:00:00.000Z') + ms).toISOString(),
    duration_ms: ms,
    log: 'logs/x.log',
  };
}

/** A state.json as the scheduler writes it (a build dir made before the vault recorded runs). */
function syntheticState(): BuildStateData {
  const boots = [
    { arch: 'x86_64', variant: 'seabios', verdict: 'PASS', stage_ms: { firmware: 247, kernel: 5563, init: 7675, checks: 8678, marker: 10503 }, duration_ms: 10687, checks: [] },
    { arch: 'x86_64', variant: 'ovmf', verdict: 'TIMEOUT', stage_ms: { firmware: 8500, kernel: null, init: null, checks: null, marker: null }, duration_ms: 120000, checks: [] },
  ];
  const gate = (phase: 'P1' | 'P4', rec: 'GO' | 'NO-GO') => ({
    phase,
    recommendation: rec,
    inputs_fingerprint: 'i',
    fingerprints: {},
    arches: ['x86_64'],
    decided_at: '2025-11-21T10:05:00.000Z',
    report_json: `gates/${phase}/gate-report.json`,
    report_md: `gates/${phase}/gate-report.md`,
    blockers: rec === 'GO' ? [] : ['G-06@x86_64 is TIMEOUT'],
  });
  return {
    format: 'clawos-build-state@1',
    instances: {
      'C-01': inst('C-01', 'P1', 'PASS', 168),
      'A-01@x86_64': inst('A-01@x86_64', 'P2', 'PASS', 103029),
      'B-01': inst('B-01', 'P2', 'NOT_CONFIGURED', 3),
      'G-06@x86_64': inst('G-06@x86_64', 'P4', 'TIMEOUT', 130700, boots),
    },
    gates: { P1: gate('P1', 'GO'), P4: gate('P4', 'NO-GO') },
  };
}

const EXPECTED = `# HELP clawos_task_duration_seconds Recorded duration of the latest result of each task instance.
# TYPE clawos_task_duration_seconds gauge
clawos_task_duration_seconds{task="A-01",arch="x86_64",phase="P2",status="PASS"} 103.029
clawos_task_duration_seconds{task="B-01",arch="",phase="P2",status="NOT_CONFIGURED"} 0.003
clawos_task_duration_seconds{task="C-01",arch="",phase="P1",status="PASS"} 0.168
clawos_task_duration_seconds{task="G-06",arch="x86_64",phase="P4",status="TIMEOUT"} 130.7
# HELP clawos_gate_go Latest decision of each phase gate: 1 GO, 0 NO-GO (absent: gate not run).
# TYPE clawos_gate_go gauge
clawos_gate_go{phase="P1"} 1
clawos_gate_go{phase="P4"} 0
# HELP clawos_boot_stage_seconds Time from QEMU start to the first console line of each boot stage, latest recorded boot per arch and firmware variant (absent: stage not reached).
# TYPE clawos_boot_stage_seconds gauge
clawos_boot_stage_seconds{arch="x86_64",variant="ovmf",stage="firmware"} 8.5
clawos_boot_stage_seconds{arch="x86_64",variant="seabios",stage="checks"} 8.678
clawos_boot_stage_seconds{arch="x86_64",variant="seabios",stage="firmware"} 0.247
clawos_boot_stage_seconds{arch="x86_64",variant="seabios",stage="init"} 7.675
clawos_boot_stage_seconds{arch="x86_64",variant="seabios",stage="kernel"} 5.563
clawos_boot_stage_seconds{arch="x86_64",variant="seabios",stage="marker"} 10.503
# HELP clawos_boot_verdicts Latest recorded boots per verdict.
# TYPE clawos_boot_verdicts gauge
clawos_boot_verdicts{verdict="PASS"} 1
clawos_boot_verdicts{verdict="FAIL"} 0
clawos_boot_verdicts{verdict="TIMEOUT"} 1
clawos_boot_verdicts{verdict="INFRA_ERROR"} 0
`;

let repo: TestRepo | null = null;
afterEach(async () => {
  await repo?.cleanup();
  repo = null;
});

async function stateBuild(): Promise<TestRepo> {
  const r = await makeTestRepo(GATES);
  await mkdir(r.buildDir, { recursive: true });
  await writeFile(join(r.buildDir, 'state.json'), JSON.stringify(syntheticState(), null, 2));
  return r;
}

describe('metrics textfile', () => {
  it('gives task durations, gate results, boot stage times and verdict counts, in base units', async () => {
    repo = await stateBuild();
    const model = await buildReportModel({ repoRoot: repo.root, buildDir: repo.buildDir });
    expect(model.source.kind).toBe('state');
    expect(metricsText(model)).toBe(EXPECTED);
  });

  it('parses back under the exposition format rules', () => {
    const p = parsePromText(EXPECTED);
    expect(p.errors).toEqual([]);
    expect(p.families.map((f) => [f.name, f.type, f.samples.length])).toEqual([
      ['clawos_task_duration_seconds', 'gauge', 4],
      ['clawos_gate_go', 'gauge', 2],
      ['clawos_boot_stage_seconds', 'gauge', 6],
      ['clawos_boot_verdicts', 'gauge', 4],
    ]);
    expect(p.families[0]!.samples[1]).toEqual({ labels: { task: 'B-01', arch: '', phase: 'P2', status: 'NOT_CONFIGURED' }, value: 0.003 });
  });

  it('escapes label values and help text, and reads them back unchanged', () => {
    const text = formatPromText([{ name: 'clawos_x', help: 'a \\ b\nc', type: 'gauge', samples: [{ labels: { msg: 'say "hi"\\now\nnext' }, value: -Infinity }] }]);
    expect(text).toBe('# HELP clawos_x a \\\\ b\\nc\n# TYPE clawos_x gauge\nclawos_x{msg="say \\"hi\\"\\\\now\\nnext"} -Inf\n');
    const p = parsePromText(text);
    expect(p.errors).toEqual([]);
    expect(p.families).toEqual([{ name: 'clawos_x', help: 'a \\ b\nc', type: 'gauge', samples: [{ labels: { msg: 'say "hi"\\now\nnext' }, value: -Infinity }] }]);
  });

  it('the parser rejects what node_exporter would reject', () => {
    const bad = (t: string) => parsePromText(t).errors;
    expect(bad('a 1')).toEqual(['the last line does not end with a line feed']);
    expect(bad('a 1\n# TYPE a gauge\n')).toEqual(['line 2: TYPE for a after its samples']);
    expect(bad('a{x="1"} 1\nb 2\na{x="2"} 3\n')).toEqual(['line 3: a: its lines are not in one group']);
    expect(bad('a{x="1"} 1\na{x="1"} 2\n')).toEqual(['line 2: duplicate series a{x="1"}']);
    expect(bad('a{x="\\t"} 1\n')).toEqual(['line 1: label x: invalid escape \\t']);
    expect(bad('a{x="1",x="2"} 1\n')).toEqual(['line 1: label x given twice']);
    expect(bad('a 1 1700000000000\n')).toEqual(['line 1: timestamps are not allowed in a textfile collector file']);
    expect(bad('a one\n')).toEqual(['line 1: value "one" is not a number']);
    expect(bad('# HELP a x\n# HELP a y\na 1\n')).toEqual(['line 2: second HELP for a']);
    expect(bad('# TYPE a gauges\na 1\n')).toEqual(['line 1: unknown type "gauges" for a']);
    expect(bad('9a 1\n')).toEqual(['line 1: a sample must start with a metric name']);
  });

  it('is written atomically, replacing the old file, and only as *.prom', async () => {
    repo = await stateBuild();
    const model = await buildReportModel({ repoRoot: repo.root, buildDir: repo.buildDir });
    const dir = join(repo.buildDir, 'textfile');
    await mkdir(dir);
    await writeFile(join(dir, 'clawos.prom'), 'old 1\n');
    await writeMetricsFile(join(dir, 'clawos.prom'), model);
    expect(await readFile(join(dir, 'clawos.prom'), 'utf8')).toBe(EXPECTED);
    // The temp file was renamed, not left behind for node_exporter to find.
    expect(await readdir(dir)).toEqual(['clawos.prom']);
    await expect(writeMetricsFile(join(dir, 'clawos.txt'), model)).rejects.toThrow(new UserError(`--metrics ${join(dir, 'clawos.txt')}: the name must end in .prom`, "node_exporter's textfile collector reads only *.prom files"));
  });
});
