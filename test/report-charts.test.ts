import { describe, expect, it } from 'vitest';
import { buildGraph } from '../pipeline/catalog/graph.js';
import type { LoadedTask, Phase } from '../pipeline/catalog/task-spec.js';
import { InternalError } from '../lib/errors.js';
import { criticalPath, pathNodesFromGraph } from '../report/critical-path.js';
import { ganttSvg, timeAxis } from '../report/gantt-svg.js';
import { bootChartSvg, bootSegments, tickStep } from '../report/boot-chart-svg.js';
import { escapeHtml } from '../report/escape-html.js';

function task(id: string, phase: Phase, deps: string[], perArch = false): LoadedTask {
  return {
    spec: { task_id: id, title: id, phase, agent: 'build-engineer', per_arch: perArch, depends_on: deps, inputs: [], outputs: [], validation_cmd: null, rollback_cmd: null, timeout_minutes: 1, frozen_spec_deps: [] },
    file: `tasks/${id}.yaml`,
    sha256: '',
    locate: () => ({ file: `tasks/${id}.yaml`, line: 1, col: 1 }),
  };
}

describe('critical path', () => {
  // K -> A@arch -> B@arch -> C (C waits for both arches), K -> D@arch, E alone.
  const tasks = new Map(
    [task('K-01', 'P1', []), task('A-01', 'P2', ['K-01'], true), task('B-01', 'P3', ['A-01'], true), task('C-01', 'P4', ['B-01']), task('D-01', 'P2', ['K-01'], true), task('E-01', 'P2', [])].map((t) => [
      t.spec.task_id,
      t,
    ]),
  );
  const graph = buildGraph(tasks, ['x86_64', 'aarch64']);

  it('is the longest chain through the graph by recorded durations', () => {
    const durations = new Map(
      Object.entries({
        'K-01': 10,
        'A-01@x86_64': 100,
        'A-01@aarch64': 120,
        'B-01@x86_64': 50,
        'B-01@aarch64': 20,
        'C-01': 5,
        'D-01@x86_64': 100,
        'D-01@aarch64': 1,
        'E-01': 150,
      }),
    );
    // x86_64: 10+100+50+5 = 165; aarch64: 10+120+20+5 = 155; K->D@x86_64 = 110; E = 150.
    expect(criticalPath(pathNodesFromGraph(graph, durations))).toEqual({ ids: ['K-01', 'A-01@x86_64', 'B-01@x86_64', 'C-01'], total_ms: 165 });
    // The aarch64 kernel gets slower: the path moves to the other arch.
    durations.set('A-01@aarch64', 200);
    expect(criticalPath(pathNodesFromGraph(graph, durations))).toEqual({ ids: ['K-01', 'A-01@aarch64', 'B-01@aarch64', 'C-01'], total_ms: 235 });
  });

  it('leaves out instances with no record, and the dependencies on them', () => {
    const durations = new Map([
      ['A-01@x86_64', 100],
      ['B-01@x86_64', 50],
      ['E-01', 120],
    ]);
    const nodes = pathNodesFromGraph(graph, durations);
    expect(nodes.map((n) => n.id)).toEqual(['A-01@x86_64', 'E-01', 'B-01@x86_64']);
    expect(criticalPath(nodes)).toEqual({ ids: ['A-01@x86_64', 'B-01@x86_64'], total_ms: 150 });
  });

  it('breaks ties by the smaller id, so the same records give the same path', () => {
    expect(
      criticalPath([
        { id: 'Y', deps: [], duration_ms: 10 },
        { id: 'X', deps: [], duration_ms: 10 },
        { id: 'Z', deps: ['Y', 'X'], duration_ms: 1 },
        { id: 'W', deps: [], duration_ms: 11 },
      ]),
    ).toEqual({ ids: ['W'], total_ms: 11 });
    expect(
      criticalPath([
        { id: 'Y', deps: [], duration_ms: 10 },
        { id: 'X', deps: [], duration_ms: 10 },
        { id: 'Z', deps: ['Y', 'X'], duration_ms: 2 },
        { id: 'W', deps: [], duration_ms: 12 },
      ]),
    ).toEqual({ ids: ['W'], total_ms: 12 });
    expect(
      criticalPath([
        { id: 'Y', deps: [], duration_ms: 10 },
        { id: 'X', deps: [], duration_ms: 10 },
        { id: 'Z', deps: ['Y', 'X'], duration_ms: 3 },
        { id: 'W', deps: [], duration_ms: 12 },
      ]),
    ).toEqual({ ids: ['X', 'Z'], total_ms: 13 });
    expect(criticalPath([])).toEqual({ ids: [], total_ms: 0 });
  });

  it('refuses a cycle as a bug (the loader refuses cycles first)', () => {
    expect(() =>
      criticalPath([
        { id: 'A', deps: ['B'], duration_ms: 1 },
        { id: 'B', deps: ['A'], duration_ms: 1 },
      ]),
    ).toThrow(new InternalError('critical path: dependency cycle through A'));
  });
});

describe('gantt chart', () => {
  it('cuts idle stretches longer than gapMs out of the time axis', () => {
    const a = timeAxis(
      [
        { start: 0, end: 1000 },
        { start: 500, end: 2000 },
        { start: 100_000, end: 101_000 },
      ],
      { width: 320, gapMs: 60_000, breakPx: 10, minPx: 5 },
    );
    // 320 px - one 10 px break - two 5 px minimums = 300 px for 3000 ms of work: 0.1 px/ms.
    expect(a.segments).toEqual([
      { start: 0, end: 2000, x: 0, width: 205 },
      { start: 100_000, end: 101_000, x: 215, width: 105 },
    ]);
    expect(a.breaks).toEqual([{ x: 205, gap_ms: 98_000 }]);
    expect([a.x(0), a.x(1500), a.x(2000), a.x(100_000), a.x(100_500)]).toEqual([0, 150, 200, 215, 265]);
    // A gap within gapMs stays on the axis.
    const b = timeAxis(
      [
        { start: 0, end: 1000 },
        { start: 31_000, end: 32_000 },
      ],
      { width: 320, gapMs: 60_000, breakPx: 10 },
    );
    expect(b.segments).toEqual([{ start: 0, end: 32_000, x: 0, width: 320 }]);
    expect(b.breaks).toEqual([]);
  });

  it('draws one bar per instance, marks the critical path and escapes every string', () => {
    const svg = ganttSvg(
      [
        { id: 'A-01@x86_64', phase: 'P2', status: 'PASS', start: Date.parse('2025-11-21T10:00:00Z'), end: Date.parse('2025-11-21T10:01:00Z'), critical: true, title: 'kernel built' },
        { id: 'B-01', phase: 'P2', status: 'NOT_CONFIGURED', start: Date.parse('2025-11-21T10:00:00Z'), end: Date.parse('2025-11-21T10:00:00.001Z'), critical: false, title: 'component <aya> & "x"' },
        { id: 'G-06@x86_64', phase: 'P4', status: 'FAIL', start: Date.parse('2025-11-21T12:00:00Z'), end: Date.parse('2025-11-21T12:00:30Z'), critical: false, title: '</title><script>alert(1)</script>' },
      ],
      { width: 1000 },
    );
    // 1000 px - 170 labels - 10 margin = 820 px; - one 14 px break - two 6 px segment minimums
    // = 794 px for 90 s of work. The second segment starts at 6 + 529.3 + 14 = 549.3 (+170).
    expect(svg.match(/<rect [^>]*class="bar [^"]*"/g)).toEqual([
      '<rect x="170" y="30" width="529.3" height="12" class="bar status-PASS critical"',
      '<rect x="170" y="48" width="2" height="12" class="bar status-NOT_CONFIGURED"',
      '<rect x="719.3" y="66" width="264.7" height="12" class="bar status-FAIL"',
    ]);
    expect(svg).toContain('<g class="row critical" data-task="A-01@x86_64">');
    expect(svg).toContain('<title>component &lt;aya&gt; &amp; &quot;x&quot;</title>');
    expect(svg).toContain('<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>');
    expect(svg).not.toContain('<script');
    // The two-hour idle stretch is cut and labelled.
    expect(svg).toContain('<text x="542.3" y="24" class="break-label">+119m00s</text>');
    expect(svg).toContain('<text x="2" y="12" class="tick-label">10:00:00</text>');
  });

  it('escapes text for HTML, attributes included, and control characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>\x07`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\uFFFD');
  });
});

describe('boot chart', () => {
  const pass = { arch: 'x86_64', variant: 'seabios', verdict: 'PASS', stage_ms: { firmware: 200, kernel: 5500, init: 7600, checks: 8600, marker: 10500 }, duration_ms: 10700, task: 'G-06@x86_64' };
  const panic = { arch: 'aarch64', variant: 'uefi-dt', verdict: 'FAIL', stage_ms: { firmware: 100, kernel: 8100, init: null, checks: null, marker: null }, duration_ms: 12000, task: 'G-06@aarch64' };

  it('turns the time to each stage into segments, with the unreached tail of a failed boot', () => {
    expect(bootSegments(pass)).toEqual([
      { stage: 'firmware', from_ms: 0, to_ms: 200 },
      { stage: 'kernel', from_ms: 200, to_ms: 5500 },
      { stage: 'init', from_ms: 5500, to_ms: 7600 },
      { stage: 'checks', from_ms: 7600, to_ms: 8600 },
      { stage: 'marker', from_ms: 8600, to_ms: 10500 },
    ]);
    expect(bootSegments(panic)).toEqual([
      { stage: 'firmware', from_ms: 0, to_ms: 100 },
      { stage: 'kernel', from_ms: 100, to_ms: 8100 },
      { stage: 'unreached', from_ms: 8100, to_ms: 12000 },
    ]);
    expect([tickStep(1000), tickStep(10_500), tickStep(18_600), tickStep(95_000)]).toEqual([1, 2, 2, 10]);
  });

  it('draws one row per arch and firmware on a common scale', () => {
    const svg = bootChartSvg([pass, panic], { width: 850 });
    // 850 - 190 label - 60 margin = 600 px for 12 s: 0.05 px/ms.
    expect(svg.match(/<rect [^>]*class="stage stage-[a-z]+"><title>[^<]*/g)).toEqual([
      '<rect x="190" y="26" width="10" height="16" class="stage stage-firmware"><title>x86_64 seabios: firmware reached at 0.2 s (+0.2 s)',
      '<rect x="200" y="26" width="265" height="16" class="stage stage-kernel"><title>x86_64 seabios: kernel reached at 5.5 s (+5.3 s)',
      '<rect x="465" y="26" width="105" height="16" class="stage stage-init"><title>x86_64 seabios: init reached at 7.6 s (+2.1 s)',
      '<rect x="570" y="26" width="50" height="16" class="stage stage-checks"><title>x86_64 seabios: checks reached at 8.6 s (+1.0 s)',
      '<rect x="620" y="26" width="95" height="16" class="stage stage-marker"><title>x86_64 seabios: marker reached at 10.5 s (+1.9 s)',
      '<rect x="190" y="52" width="5" height="16" class="stage stage-firmware"><title>aarch64 uefi-dt: firmware reached at 0.1 s (+0.1 s)',
      '<rect x="195" y="52" width="400" height="16" class="stage stage-kernel"><title>aarch64 uefi-dt: kernel reached at 8.1 s (+8.0 s)',
      '<rect x="595" y="52" width="195" height="16" class="stage stage-unreached"><title>aarch64 uefi-dt: no further stage; the boot ended at 12.0 s',
    ]);
    expect(svg).toContain('<g class="boot-row verdict-FAIL" data-arch="aarch64" data-variant="uefi-dt">');
    expect(svg).toContain('<text x="184" y="39" class="row-label">x86_64 seabios <tspan class="verdict">PASS</tspan></text>');
  });
});
