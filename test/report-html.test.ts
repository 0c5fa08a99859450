import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { access, constants, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { dir as tmpDir } from 'tmp-promise';
import { run } from '../lib/proc.js';
import { buildReportModel, type ReportModel } from '../report/report-model.js';
import { renderReportHtml } from '../report/render-report-html.js';
import { changelogMarkdown } from '../report/changelog.js';
import { reportCommand } from '../bin/commands/report.js';
import { main } from '../bin/cli.js';
import type { CommandIo } from '../bin/command-io.js';

/** `clawos-build report ARGV`, through the command table (parsing, usage errors, exit codes). */
const reportMain = (argv: string[], io: CommandIo) => main(['report', ...argv], io);
import { makeReportBuild, RUN1, RUN2, type ReportBuild } from './report-fixture.js';

const NOW = () => new Date('2025-11-22T00:00:00.000Z');

async function onPath(cmd: string): Promise<string | null> {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(d, cmd);
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return null;
}
const chromium = await onPath('chromium');

let fx: ReportBuild;
let model: ReportModel;
beforeAll(async () => {
  fx = await makeReportBuild();
  model = await buildReportModel({ repoRoot: fx.repo.root, buildDir: fx.buildDir, trust: fx.trustFile, now: NOW });
});
afterAll(async () => fx.cleanup());

describe('report data model', () => {
  it('is computed from the verified event chains: latest results, gates, critical path, boots', () => {
    expect(model.source).toEqual({ kind: 'vault', detail: `the vault's event chains: 2 run(s) in ${join(fx.buildDir, 'vault/runs')}`, problems: [], tampered: [] });
    expect(model.release).toBe('0.1.0-alpha');
    expect(model.phases.map((p) => [p.phase, p.title, p.gate?.recommendation, p.gate?.run_id, p.counts])).toEqual([
      ['P1', 'Build standards', 'GO', RUN2, { PASS: 1 }],
      ['P2', 'Build engine', 'GO', RUN2, { PASS: 2, NOT_CONFIGURED: 1 }],
      ['P3', 'Fill data', 'GO', RUN2, { PASS: 2 }],
      ['P4', 'Calibrate', 'GO', RUN2, { PASS: 4, NOT_CONFIGURED: 1 }],
    ]);
    // Run 2 rebuilt the x86_64 chain with a 30 s kernel: the aarch64 chain is now the longest.
    expect(model.critical_path).toEqual({
      ids: ['C-01', 'A-01@aarch64', 'A-04@aarch64', 'G-05@aarch64', 'G-06@aarch64', 'G-04'],
      total_ms: 79_110,
      note: 'the longest chain through the task dependency graph by recorded durations',
    });
    const a01 = model.tasks.find((t) => t.id === 'A-01@x86_64')!;
    expect([a01.duration_ms, a01.run_id, a01.up_to_date, a01.critical]).toEqual([30_000, RUN2, false, false]);
    const c01 = model.tasks.find((t) => t.id === 'C-01')!;
    expect([c01.run_id, c01.up_to_date, c01.critical, c01.started_at]).toEqual([RUN2, true, true, '2025-11-21T10:00:01.000Z']);
    expect(model.boots.map((b) => [b.task, b.arch, b.variant, b.verdict, b.stage_ms.marker, b.accel])).toEqual([
      ['G-06@aarch64', 'aarch64', 'uefi-acpi', 'PASS', 12900, 'tcg'],
      ['G-06@aarch64', 'aarch64', 'uefi-dt', 'PASS', 13200, 'tcg'],
      ['G-06@x86_64', 'x86_64', 'seabios', 'PASS', 10500, 'tcg'],
      ['G-06@x86_64', 'x86_64', 'ovmf', 'PASS', 18400, 'tcg'],
    ]);
    expect(model.runs.map((r) => [r.run_id, r.status, r.ran.length, r.up_to_date, r.bundle.signed])).toEqual([
      [RUN1, 'passed', 11, 0, false],
      [RUN2, 'passed', 4, 7, true],
    ]);
  });

  it('shows the in-guest checks, labelled as such, while G-04 has produced no security report', () => {
    expect(model.security.source).toBe('in-guest-checks');
    expect(model.security.note).toBe(
      'The security report is not produced yet (G-04 is NOT_CONFIGURED: Not implemented yet: the security report comes with issue "Security layers"). Shown instead: the in-guest check results of 4 recorded boot(s) (G-06@aarch64, G-06@x86_64); these are evidence, not the security report\'s findings.',
    );
    expect(model.security.findings.map((f) => [f.id, f.status, f.title])).toEqual([
      ['cpu-flags', 'pass', 'pass in 2 boot(s): x86_64 seabios, x86_64 ovmf; not expected on 2 other boot(s)'],
      ['kernel', 'pass', 'pass in 4 boot(s): aarch64 uefi-acpi, aarch64 uefi-dt, x86_64 seabios, x86_64 ovmf'],
      ['lockdown', 'pass', 'pass in 4 boot(s): aarch64 uefi-acpi, aarch64 uefi-dt, x86_64 seabios, x86_64 ovmf'],
    ]);
    expect(model.security.findings[0]!.evidence).toEqual(['build-engineer/x86_64/boot/seabios.json', 'build-engineer/x86_64/boot/ovmf.json']);
  });

  it('verifies the newest bundle with the given trust file, and says plainly when it cannot', async () => {
    expect(model.vault.state).toBe('verified');
    expect(model.vault.headline).toBe(`PASS: bundle of run ${RUN2} verified with ${fx.trustFile}`);
    const none = await buildReportModel({ repoRoot: fx.repo.root, buildDir: fx.buildDir, now: NOW });
    expect([none.vault.state, none.vault.headline]).toEqual(['not-verified', `not verified: no --trust given (bundle of run ${RUN2} present, unchecked)`]);
    expect(renderReportHtml(none)).not.toContain('✓');
    const other = await buildReportModel({ repoRoot: fx.repo.root, buildDir: fx.buildDir, trust: fx.otherTrustFile, now: NOW });
    expect([other.vault.state, other.vault.code]).toEqual(['failed', 'UNKNOWN_KEY']);
    expect(other.vault.headline).toMatch(/^FAIL UNKNOWN_KEY: manifest\.dsse\.json: /);
    expect(renderReportHtml(other)).not.toContain('✓');
  });

  it('says "no bundle" and why, when no run wrote one', async () => {
    const b = await makeReportBuild({ bundle: false });
    try {
      const m = await buildReportModel({ repoRoot: b.repo.root, buildDir: b.buildDir, trust: b.trustFile, now: NOW });
      expect(m.vault).toEqual({
        state: 'no-bundle',
        headline: `no bundle: nothing signed in ${join(b.buildDir, 'vault/bundles')}`,
        bundle: null,
        code: null,
        detail: null,
        trust: b.trustFile,
        note: `the latest run ${RUN2} ended without a bundle: no release key in /keys: bundle not signed`,
      });
      expect(renderReportHtml(m)).toContain('<div class="vault-status" data-state="no-bundle">');
    } finally {
      await b.cleanup();
    }
  });

  it('takes the findings from the security report when G-04 recorded one, and refuses a changed one', async () => {
    const b = await makeReportBuild({ securityReport: true });
    try {
      const m = await buildReportModel({ repoRoot: b.repo.root, buildDir: b.buildDir, now: NOW });
      expect(m.security.source).toBe('security-report');
      expect(m.security.report?.path).toBe('observability/security-report.json');
      // Open and waived apart: the waived HIGH is not counted, nor shown red, as an open one.
      expect([m.security.counts, m.security.waived]).toEqual([{ MEDIUM: 1 }, { HIGH: 1 }]);
      expect([m.security.verdict, m.security.blocking]).toEqual(['PASS', []]);
      expect(m.security.findings).toEqual([
        {
          id: 'KCONF-USER_NS',
          layer: 'kernel config',
          severity: 'HIGH',
          status: 'waived',
          title: 'CONFIG_USER_NS=y <needed> & "waived"',
          detail: 'kernel-hardening-checker: is not set · rests on: the G-03 audit of x86_64 · waived by security: the sandbox needs user namespaces',
          mitigation: 'seccomp refuses unshare',
          evidence: ['qa/x86_64/audit.json'],
        },
        { id: 'GUEST-lockdown', layer: 'in-guest', severity: 'MEDIUM', status: 'open', title: 'lockdown is confidentiality', detail: 'rests on: boot records', mitigation: '', evidence: [] },
      ]);
      const html = renderReportHtml(m);
      expect(html).toContain('<td>CONFIG_USER_NS=y &lt;needed&gt; &amp; &quot;waived&quot;<div class="detail">kernel-hardening-checker: is not set');
      expect(html).toContain(
        '<p><span class="open-counts">open: <span class="badge MEDIUM">MEDIUM</span> 1</span> · <span class="waived-counts">waived: <span class="badge waived">HIGH</span> 1</span></p>',
      );
      expect(html).toContain('<td>kernel config</td><td><span class="badge waived">HIGH</span></td><td><span class="badge waived">waived</span></td>');
      await writeFile(join(b.buildDir, 'observability/security-report.json'), '{"findings": []}\n');
      const changed = await buildReportModel({ repoRoot: b.repo.root, buildDir: b.buildDir, now: NOW });
      expect(changed.security.source).toBe('in-guest-checks');
      expect(changed.security.missing).toMatch(/^observability\/security-report\.json changed since G-04 recorded it \(sha256 [0-9a-f]{64}, recorded [0-9a-f]{64}\): not used$/);
    } finally {
      await b.cleanup();
    }
  });
});

describe('report sources', () => {
  it('uses only the verified prefix of a chain that does not verify (not the edited event), and marks the run TAMPERED', async () => {
    const b = await makeReportBuild({ bundle: false });
    try {
      const file = join(b.buildDir, 'vault/runs', RUN1, 'events.jsonl');
      const lines = (await readFile(file, 'utf8')).split('\n');
      // Event 2 is C-01's task-end: claim it failed. Its bytes change, so event 3's prev no longer matches.
      expect(lines[2]).toContain('"status":"PASS"');
      lines[2] = lines[2]!.replace('"status":"PASS"', '"status":"FAIL"');
      await writeFile(file, lines.join('\n'));
      const m = await buildReportModel({ repoRoot: b.repo.root, buildDir: b.buildDir, now: NOW });
      expect(m.source.problems).toHaveLength(1);
      expect(m.source.problems[0]).toMatch(
        new RegExp(`^run ${RUN1}: TAMPERED: CHAIN_BROKEN: event 3: prev is \\S+, expected \\S+ \\(the hash of event 2\\); only its first 2 of 32 events verify and are used$`),
      );
      expect(m.source.tampered).toEqual([{ run_id: RUN1, text: m.source.problems[0] }]);
      expect(m.source.detail).toBe(`the vault's event chains: 2 run(s) in ${join(b.buildDir, 'vault/runs')} (1 TAMPERED: only the verified prefix of its chain is used)`);
      // Run 1's verified prefix: run-start and C-01's task-start; the edited task-end is not used.
      expect(m.runs.map((r) => [r.run_id, r.ran.length, r.tampered ?? false])).toEqual([
        [RUN1, 1, true],
        [RUN2, 4, false],
      ]);
      const html = renderReportHtml(m);
      expect(html).toContain(`<ul class="problems"><li>run ${RUN1}: TAMPERED: CHAIN_BROKEN: event 3: prev is`);
      expect(html).toContain(`<tr class="tampered-run"><td class="mono">${RUN1}</td><td><span class="badge fail">TAMPERED</span> no run-end</td>`);
      expect(m.runs[0]!.status).toBeNull();
      // The release's CHANGELOG.md marks it too.
      const md = changelogMarkdown({ version: '0.1.0', releaseRun: null, buildDir: b.buildDir, summaries: m.runs }).split('\n');
      expect(md.slice(md.indexOf(`## ${RUN1}: TAMPERED, no run-end`), md.indexOf(`## ${RUN1}: TAMPERED, no run-end`) + 4)).toEqual([
        `## ${RUN1}: TAMPERED, no run-end`,
        '',
        '- time: 2025-11-21 10:00:00Z to ?',
        `- chain: ${m.source.problems[0]!.slice(`run ${RUN1}: `.length)}`,
      ]);
    } finally {
      await b.cleanup();
    }
  });

  it('an edited event in the latest run: its verified prefix is shown, the report says TAMPERED and exits 1', async () => {
    const b = await makeReportBuild({ bundle: false });
    try {
      const file = join(b.buildDir, 'vault/runs', RUN2, 'events.jsonl');
      const lines = (await readFile(file, 'utf8')).split('\n');
      // Event 13 is G-05@x86_64's task-end in run 2; events 0-12 (A-01@x86_64's rebuild, gates P1-P3) stand.
      expect(lines[13]).toContain('"type":"task-end"');
      expect(lines[13]).toContain('"task":"G-05@x86_64"');
      lines[13] = lines[13]!.replace('"status":"PASS"', '"status":"FAIL"');
      await writeFile(file, lines.join('\n'));
      const m = await buildReportModel({ repoRoot: b.repo.root, buildDir: b.buildDir, now: NOW });
      const headline = `TAMPERED: the event chain of run ${RUN2} fails verification: the build's evidence is not intact; only the verified events before the damage are shown`;
      expect(m.source.problems[0]).toMatch(new RegExp(`^run ${RUN2}: TAMPERED: CHAIN_BROKEN: event 14: .*; only its first 13 of 25 events verify and are used$`));
      const a01 = m.tasks.find((t) => t.id === 'A-01@x86_64')!;
      expect([a01.run_id, a01.duration_ms]).toEqual([RUN2, 30_000]);
      expect(m.tasks.find((t) => t.id === 'G-05@x86_64')!.run_id).toBe(RUN1);
      expect(m.phases.map((p) => [p.phase, p.gate?.run_id])).toEqual([
        ['P1', RUN2],
        ['P2', RUN2],
        ['P3', RUN2],
        ['P4', RUN1],
      ]);
      expect(renderReportHtml(m)).toContain(`</p><p class="tampered">${headline.replace("'", '&#39;')}</p><ul class="problems">`);

      const out: string[] = [];
      const io = { json: false, print: (s: string) => out.push(s), printErr: (s: string) => out.push(s), now: NOW };
      expect(await reportCommand({ repoRoot: b.repo.root, buildDir: b.buildDir, ...io })).toBe(1);
      expect(out.join('').split('\n').slice(0, 4)).toEqual([`report: ${join(b.buildDir, 'report.html')}`, headline, expect.stringMatching(/^records: .* \(1 TAMPERED: only the verified prefix of its chain is used\)$/), expect.stringMatching(`^problem: run ${RUN2}: TAMPERED: `)]);
      out.length = 0;
      expect(await reportCommand({ repoRoot: b.repo.root, buildDir: b.buildDir, ...io, json: true })).toBe(1);
      expect(JSON.parse(out.join('')).source.tampered).toEqual([{ run_id: RUN2, text: m.source.problems[0] }]);
    } finally {
      await b.cleanup();
    }
  });

  it('says so when nothing has been recorded', async () => {
    const t = await tmpDir({ unsafeCleanup: true });
    try {
      const m = await buildReportModel({ repoRoot: fx.repo.root, buildDir: t.path, now: NOW });
      expect([m.source.kind, m.source.detail, m.tasks, m.boots, m.vault.state, m.security.source]).toEqual(['none', `nothing recorded in ${t.path} yet (no vault event chain, no state.json)`, [], [], 'no-bundle', 'none']);
      const html = renderReportHtml(m);
      expect(html).toContain('<p class="note">No task has been recorded.</p>');
      expect(html).toContain('<p class="note">No boot record: the boot task has not run.</p>');
    } finally {
      await t.cleanup();
    }
  });
});

describe('security report of a G-04 that FAILed', () => {
  it('is read from the evidence of the failed task, with its verdict and blocking findings', async () => {
    const b = await makeReportBuild({ securityReport: 'fail' });
    try {
      const m = await buildReportModel({ repoRoot: b.repo.root, buildDir: b.buildDir, now: NOW });
      expect([m.security.source, m.security.report?.task_status, m.security.verdict, m.security.blocking]).toEqual([
        'security-report',
        'FAIL',
        'FAIL',
        ['GUEST-lockdown: open MEDIUM <x> treated as blocking'],
      ]);
      const html = renderReportHtml(m);
      expect(html).toContain('<p class="security-verdict">Security report verdict: <span class="badge FAIL">FAIL</span></p><ul class="blockers"><li>GUEST-lockdown: open MEDIUM &lt;x&gt; treated as blocking</li></ul>');
    } finally {
      await b.cleanup();
    }
  });
});

describe('report HTML', () => {
  it('is one self-contained file: no script, no external resource, every string escaped', () => {
    const html = renderReportHtml(model);
    for (const banned of ['<script', '<link', '<img', '<iframe', 'http://', 'https://', 'url(', '@import', ' src=']) expect(html).not.toContain(banned);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
    expect(html).toContain('component &lt;aya-ebpf&gt; &amp; friends is &quot;not configured&quot;');
    expect(html).not.toContain('<aya-ebpf>');
    expect(html).toContain('Critical path (the longest chain through the task dependency graph by recorded durations): <b>C-01 → A-01@aarch64 → A-04@aarch64 → G-05@aarch64 → G-06@aarch64 → G-04</b>, 1m19s in all.');
  });

  it('a BUILT task has its own neutral badge and bar colour, neither the green of PASS nor the red of a failure (issue 11)', () => {
    const t = model.tasks.find((x) => x.status === 'PASS' && !x.critical)!;
    const html = renderReportHtml({ ...model, tasks: model.tasks.map((x) => (x === t ? { ...x, status: 'BUILT', reason: 'unvalidated' } : x)) });
    expect(html).toContain(`<td class="mono">${t.id}</td><td><span class="badge BUILT">BUILT</span> <span class="mono">unvalidated</span></td>`);
    expect(html).toContain('.badge.BUILT { background: var(--built); }');
    expect(html).toContain('--built:#3e6e8e;');
    expect(html).toMatch(new RegExp(`<rect [^>]*class="bar status-BUILT"><title>${t.id} BUILT in `));
    expect(html).toContain('svg .bar.status-BUILT { fill: #9ab6cc; }');
    // Not listed with the green or the red rules.
    for (const rule of html.split('\n').filter((l) => l.includes('var(--pass)') || l.includes('var(--fail)') || l.includes('#4ac26b'))) expect(rule).not.toContain('BUILT');
  });

  // chromium is in specs/host-packages.txt, so the README's setup installs it: without it this fails, never skips.
  it('renders in headless Chromium: screenshot and DOM have the gate table, gantt with critical path, boot chart, findings and vault status', async () => {
    const t = await tmpDir({ unsafeCleanup: true });
    try {
      const file = join(t.path, 'report.html');
      await writeFile(file, renderReportHtml(model));
      if (!chromium) throw new Error('chromium is not installed: run bin/bootstrap deps (it is in specs/host-packages.txt)');
      const base = [chromium, '--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${join(t.path, 'profile')}`];
      const shot = join(t.path, 'shot.png');
      const r = await run([...base, `--screenshot=${shot}`, '--window-size=1400,2400', `file://${file}`], { timeoutMs: 120_000 });
      expect(r.ok, r.tail.join('\n')).toBe(true);
      const png = await readFile(shot);
      expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
      expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1400, 2400]);
      expect(png.length).toBeGreaterThan(40_000);
      // Not a blank page: the decoded pixels take many values (a white page has a handful).
      const idat: Buffer[] = [];
      for (let off = 8; off < png.length; ) {
        const len = png.readUInt32BE(off);
        if (png.subarray(off + 4, off + 8).toString('latin1') === 'IDAT') idat.push(png.subarray(off + 8, off + 8 + len));
        off += 12 + len;
      }
      expect(new Set(inflateSync(Buffer.concat(idat))).size).toBeGreaterThan(100);

      const d = await run([...base, '--dump-dom', `file://${file}`], { timeoutMs: 120_000, captureStdout: true });
      expect(d.ok, d.tail.join('\n')).toBe(true);
      const dom = d.stdout;
      expect(dom).toContain('<table class="gates">');
      expect(dom.match(/<tr class="gate" data-phase="P\d">/g)).toHaveLength(4);
      expect(dom).toContain('<svg class="gantt"');
      expect(dom.match(/class="bar status-PASS critical"/g)).toHaveLength(5);
      expect(dom).toContain('class="bar status-NOT_CONFIGURED critical"');
      expect(dom).toContain('<svg class="boot-chart"');
      expect(dom.match(/<g class="boot-row verdict-PASS"/g)).toHaveLength(4);
      expect(dom).toContain('<table class="findings">');
      expect(dom.match(/<tr class="finding"/g)).toHaveLength(3);
      expect(dom).toContain('<div class="vault-status" data-state="verified">');
      expect(dom).toContain('component &lt;aya-ebpf&gt; &amp; friends is "not configured"');
    } finally {
      await t.cleanup();
    }
  });
});

describe('report command', () => {
  it('writes <build>/report.html and prints where, and what it found', async () => {
    const out: string[] = [];
    const code = await reportCommand({ repoRoot: fx.repo.root, buildDir: fx.buildDir, trust: fx.trustFile, json: false, print: (s) => out.push(s), printErr: (s) => out.push(s), now: NOW });
    expect(code).toBe(0);
    const file = join(fx.buildDir, 'report.html');
    expect(await readFile(file, 'utf8')).toBe(renderReportHtml(model));
    expect(out.join('')).toBe(
      [
        `report: ${file}`,
        `records: the vault's event chains: 2 run(s) in ${join(fx.buildDir, 'vault/runs')}`,
        'gates: P1 GO, P2 GO, P3 GO, P4 GO; 11 task instances',
        'critical path: C-01 -> A-01@aarch64 -> A-04@aarch64 -> G-05@aarch64 -> G-06@aarch64 -> G-04 (1m19s)',
        'boots: 4 (4 PASS)',
        `security: ${model.security.note}`,
        `vault: PASS: bundle of run ${RUN2} verified with ${fx.trustFile}`,
        '',
      ].join('\n'),
    );
    await rm(file);
  });

  it('--json prints the data model and writes no HTML; bad options are usage errors', async () => {
    const out: string[] = [];
    const io = { repoRoot: fx.repo.root, print: (s: string) => out.push(s), printErr: (s: string) => out.push(s) };
    expect(await reportMain(['--json', '--build-dir', fx.buildDir], io)).toBe(0);
    const m = JSON.parse(out.join('')) as ReportModel;
    expect([m.format, m.vault.state, m.critical_path.total_ms]).toEqual(['clawos-build-report@1', 'not-verified', 79_110]);
    await expect(access(join(fx.buildDir, 'report.html'))).rejects.toThrow();
    out.length = 0;
    expect(await reportMain(['--json', '--out', 'x.html'], io)).toBe(2);
    expect(out.join('')).toMatch(/^clawos-build: --out and --json do not go together: --json prints the report's data instead of writing the HTML\n\n  report \[--out FILE\]/);
    out.length = 0;
    expect(await reportMain(['--bogus'], io)).toBe(2);
    expect(out.join('')).toMatch(/^clawos-build: Unknown option '--bogus'/);
  });
});
