/**
 * The report as one self-contained HTML file: inline CSS and inline SVG, no
 * script, no font, image or stylesheet from anywhere (a Content-Security-Policy
 * of default-src 'none' makes the browser refuse any that slipped in). Every
 * recorded string is escaped. A green mark appears only where the records
 * prove it: a GO gate, a PASS, a bundle that verified with the given trust file.
 */
import { formatDuration } from '../lib/format.js';
import { bootChartSvg } from './boot-chart-svg.js';
import { escapeHtml as h } from './escape-html.js';
import { ganttSvg, type GanttBar } from './gantt-svg.js';
import type { ReportModel } from './report-model.js';
import { tamperedHeadline } from '../vault/vault-history.js';

// BUILT (built, nothing proved it works) has its own neutral slate blue: not green, since it is no PASS; not red, since nothing failed.
const CSS = `
:root { --pass:#1a7f37; --fail:#cf222e; --warn:#9a6700; --muted:#57606a; --nc:#8c959f; --crit:#8250df; --built:#3e6e8e; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.meta, .note { color: var(--muted); } .note { margin: 4px 0 10px; }
table { border-collapse: collapse; margin: 6px 0 12px; } th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-weight: 600; color: #fff; background: var(--nc); white-space: nowrap; }
.badge.GO, .badge.PASS, .badge.pass, .badge.verified { background: var(--pass); }
.badge.NO-GO, .badge.FAIL, .badge.fail, .badge.failed, .badge.TIMEOUT, .badge.BLOCKED, .badge.INFRA_ERROR, .badge.CRITICAL, .badge.HIGH { background: var(--fail); }
.badge.not-verified, .badge.no-bundle, .badge.MEDIUM, .badge.none { background: var(--warn); }
.badge.BUILT { background: var(--built); }
ul.blockers { margin: 2px 0; padding-left: 18px; color: var(--fail); }
.problems { color: var(--fail); } .tampered { border: 2px solid var(--fail); border-radius: 6px; padding: 6px 12px; color: var(--fail); font-weight: 600; max-width: 1060px; } .detail { color: var(--muted); font-size: 12px; }
.vault-status { border: 2px solid var(--nc); border-radius: 6px; padding: 8px 12px; max-width: 1060px; }
.vault-status[data-state="verified"] { border-color: var(--pass); } .vault-status[data-state="failed"] { border-color: var(--fail); }
.vault-status[data-state="not-verified"], .vault-status[data-state="no-bundle"] { border-color: var(--warn); }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #1f2328; }
svg .row-label { text-anchor: end; } svg .tick { stroke: #d0d7de; stroke-width: 1; } svg .tick-label { fill: var(--muted); }
svg .tick-label.end { text-anchor: end; } svg .break-label { fill: var(--muted); text-anchor: middle; font-size: 9px; }
svg .axis-break { fill: #f6f8fa; stroke: #afb8c1; stroke-dasharray: 3 2; }
svg .bar { fill: var(--nc); } svg .bar.status-PASS { fill: #4ac26b; } svg .bar.status-FAIL, svg .bar.status-TIMEOUT, svg .bar.status-INFRA_ERROR, svg .bar.status-BLOCKED { fill: var(--fail); }
svg .bar.status-NOT_CONFIGURED { fill: #d0d7de; } svg .bar.status-BUILT { fill: #9ab6cc; }
svg .bar.critical { stroke: var(--crit); stroke-width: 3; } svg .row.critical .row-label { fill: var(--crit); font-weight: 700; }
svg .stage-firmware { fill: #54aeff; } svg .stage-kernel { fill: #8250df; } svg .stage-init { fill: #bf8700; } svg .stage-checks { fill: #4ac26b; } svg .stage-marker { fill: #1a7f37; }
svg .stage-unreached { fill: #ffebe9; stroke: var(--fail); stroke-dasharray: 4 2; } svg .verdict { font-weight: 700; } svg .end-label { fill: var(--muted); }
svg .boot-row:not(.verdict-PASS) .verdict { fill: var(--fail); } svg .boot-row.verdict-PASS .verdict { fill: var(--pass); }
`;

const badge = (text: string, cls = text) => `<span class="badge ${h(cls.replace(/[^A-Za-z0-9_-]/g, ''))}">${h(text)}</span>`;
const firstLine = (s: string) => s.split('\n')[0] ?? '';
const ms = (n: number | null | undefined) => (typeof n === 'number' ? formatDuration(n) : '–');

function gatesSection(m: ReportModel): string {
  const rows = m.phases.map((p) => {
    const g = p.gate;
    const counts = Object.entries(p.counts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([s, n]) => `${n} ${s}`)
      .join(', ');
    return `<tr class="gate" data-phase="${p.phase}"><td>${p.phase}</td><td>${h(p.title ?? '')}</td><td>${g ? badge(g.recommendation) : badge('not run', 'none')}</td><td class="mono">${h(g?.decided_at ?? '')}</td><td>${h(counts || 'no task recorded')}</td><td>${h(g?.coverage ?? '')}${
      g?.blockers.length ? `<ul class="blockers">${g.blockers.map((b) => `<li>${h(b)}</li>`).join('')}</ul>` : ''
    }</td></tr>`;
  });
  return `<section id="gates"><h2>Phases and gates</h2>
<table class="gates"><thead><tr><th>phase</th><th>title</th><th>gate</th><th>decided</th><th>task instances</th><th>coverage and blockers</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></section>`;
}

function tasksTable(m: ReportModel): string {
  const rows = m.tasks.map(
    (t) =>
      `<tr class="task${t.critical ? ' critical' : ''}" data-task="${h(t.id)}"><td>${t.phase}</td><td class="mono">${h(t.id)}</td><td>${badge(t.status)}${t.reason ? ` <span class="mono">${h(t.reason)}</span>` : ''}</td><td class="num">${ms(t.duration_ms)}</td><td>${
        t.up_to_date ? 'up to date' : ''
      }</td><td>${h(firstLine(t.message))}</td></tr>`,
  );
  return `<details id="task-list"><summary>All ${m.tasks.length} task instances</summary>
<table class="tasks"><thead><tr><th>phase</th><th>instance</th><th>status</th><th>duration</th><th></th><th>message</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></details>`;
}

function timelineSection(m: ReportModel): string {
  const bars: GanttBar[] = m.tasks
    .filter((t) => Number.isFinite(Date.parse(t.started_at)) && Number.isFinite(Date.parse(t.finished_at)))
    .map((t) => ({
      id: t.id,
      phase: t.phase,
      status: t.status,
      start: Date.parse(t.started_at),
      end: Date.parse(t.finished_at),
      critical: t.critical,
      title: `${t.id} ${t.status} in ${formatDuration(t.duration_ms)} (${t.started_at} to ${t.finished_at})${t.run_id ? `, run ${t.run_id}` : ''}${t.critical ? ', on the critical path' : ''}: ${firstLine(t.message)}`,
    }));
  const cp = m.critical_path;
  const path = cp.ids.length
    ? `<p class="critical-path">Critical path (${h(cp.note)}): <b>${cp.ids.map(h).join(' → ')}</b>, ${formatDuration(cp.total_ms)} in all.</p>`
    : `<p class="critical-path note">Critical path: ${h(cp.note)}.</p>`;
  return `<section id="timeline"><h2>Task timeline</h2>
${path}
<p class="note">Each bar is the recorded execution of one task instance (its latest result; an up-to-date instance keeps the times of the run that built it). Idle stretches of more than a minute are cut from the axis and marked with their length.</p>
${bars.length ? ganttSvg(bars) : '<p class="note">No task has been recorded.</p>'}
${tasksTable(m)}</section>`;
}

function bootsSection(m: ReportModel): string {
  if (!m.boots.length) return `<section id="boots"><h2>Boot stage timings</h2><p class="note">No boot record: the boot task has not run.</p></section>`;
  const stages = ['firmware', 'kernel', 'init', 'checks', 'marker'] as const;
  const rows = m.boots.map(
    (b) =>
      `<tr class="boot" data-arch="${h(b.arch)}" data-variant="${h(b.variant)}"><td>${h(b.arch)}</td><td>${h(b.variant)}</td><td>${badge(b.verdict)}</td>${stages
        .map((s) => `<td class="num">${typeof b.stage_ms[s] === 'number' ? `${((b.stage_ms[s] as number) / 1000).toFixed(1)} s` : '–'}</td>`)
        .join('')}<td class="num">${ms(b.duration_ms)}</td><td>${h(b.accel ?? '')}</td><td>${h(b.verdict === 'PASS' ? '' : firstLine(b.message))}</td></tr>`,
  );
  return `<section id="boots"><h2>Boot stage timings</h2>
<p class="note">From the boot records of ${h([...new Set(m.boots.map((b) => b.task))].join(', '))}: time from QEMU's start to the first console line of each stage, per arch and firmware.</p>
${bootChartSvg(m.boots)}
<table class="boots"><thead><tr><th>arch</th><th>firmware</th><th>verdict</th>${stages.map((s) => `<th>to ${s}</th>`).join('')}<th>boot</th><th>accel</th><th>message</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></section>`;
}

function labBootsSection(m: ReportModel): string {
  if (!m.lab_boots.length) return '';
  const rows = m.lab_boots.flatMap((e) =>
    e.labs.map(
      (l, i) =>
        `<tr class="lab-boot" data-arch="${h(e.arch)}" data-variant="${h(e.variant)}" data-lab="${h(l.lab)}">${i === 0 ? `<td rowspan="${e.labs.length}">${h(e.arch)}</td><td rowspan="${e.labs.length}">${h(e.variant)}</td><td rowspan="${e.labs.length}" class="mono">${h(e.iso_sha256.slice(0, 12))}</td><td rowspan="${e.labs.length}">${e.disagree ? badge('DISAGREE', 'FAIL') : 'agree'}</td>` : ''}<td>${h(l.lab)}${l.kind === 'lava' ? ` (LAVA${l.latest.device_kind ? `, ${h(l.latest.device_kind)}` : ''}${l.latest.job_id ? `, job ${h(l.latest.job_id)}` : ''})` : ''}</td><td>${badge(l.latest.verdict)}</td><td>${h(l.attempts.map((a) => a.verdict).join(' then '))}${l.flaky ? ' (flaky)' : ''}</td><td>${h(l.latest.verdict === 'PASS' ? '' : firstLine(l.latest.message))}</td></tr>`,
    ),
  );
  return `<section id="lab-boots"><h2>Boots by lab (LAVA)</h2>
<p class="note">Boot verdicts LAVA labs returned (clawos-build lava run / lava ingest), beside the built-in boot lab's for the same ISO; labs that disagree are shown as disagreeing, a lab whose attempts differ as flaky.</p>
<table class="lab-boots"><thead><tr><th>arch</th><th>firmware</th><th>ISO sha256</th><th>labs</th><th>lab</th><th>verdict</th><th>attempts</th><th>message</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></section>`;
}

function securitySection(m: ReportModel): string {
  const s = m.security;
  const list = (c: Record<string, number>, cls?: string) =>
    Object.entries(c)
      .map(([k, n]) => `${badge(k, cls ?? k)} ${n}`)
      .join(' ');
  // Open and waived apart: a waived finding never shows as an open (red) one.
  const counts =
    s.source === 'security-report'
      ? `<span class="open-counts">open: ${list(s.counts) || 'none'}</span>${Object.keys(s.waived).length ? ` · <span class="waived-counts">waived: ${list(s.waived, 'waived')}</span>` : ''}`
      : list(s.counts);
  const rows = s.findings.map(
    (f) =>
      `<tr class="finding" data-id="${h(f.id)}"><td class="mono">${h(f.id)}</td><td>${h(f.layer)}</td><td>${f.severity ? badge(f.severity, f.status === 'waived' ? 'waived' : f.severity) : 'not rated'}</td><td>${badge(f.status)}</td><td>${h(f.title)}${f.detail ? `<div class="detail">${h(f.detail)}</div>` : ''}</td><td>${h(f.mitigation)}</td><td class="mono">${f.evidence.map(h).join('<br>')}</td></tr>`,
  );
  return `<section id="security" data-source="${s.source}"><h2>Security findings</h2>
<p class="note">${h(s.note)}</p>${s.verdict ? `<p class="security-verdict">Security report verdict: ${badge(s.verdict)}</p>` : ''}${
  s.blocking.length ? `<ul class="blockers">${s.blocking.map((b) => `<li>${h(b)}</li>`).join('')}</ul>` : ''
}${counts ? `<p>${counts}</p>` : ''}
${
  s.findings.length
    ? `<table class="findings"><thead><tr><th>id</th><th>layer</th><th>severity</th><th>status</th><th>finding</th><th>mitigation</th><th>evidence</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`
    : ''
}</section>`;
}

function hardwareSection(m: ReportModel): string {
  const hw = m.hardware;
  const rows = hw.machines.map(
    (r) =>
      `<tr class="machine" data-record="${h(r.record)}"${r.not_counted ? ' data-not-counted="1"' : ''}><td>${h(r.arch)}</td><td class="mono">${h(r.iso_sha256.slice(0, 16))}…</td><td>${h(r.vendor)}</td><td>${h(r.product)}</td><td>${h(r.firmware)}</td><td>${h(r.boot_path)}</td><td>${h(r.secure_boot)}</td><td>${badge(r.verdict)}${r.failed_checks.length ? `<div class="detail">${h(r.failed_checks.join(', '))}</div>` : ''}</td><td>${h(r.tester)}</td><td>${h(r.recorded_at)}</td><td>${r.not_counted ? `${badge('NOT COUNTED', 'fail')} ${h(r.not_counted)}` : 'counted'}</td></tr>`,
  );
  return `<section id="hardware"><h2>Hardware (G-07)</h2>
<p>${hw.status ? badge(hw.status) : ''} ${h(hw.message)}</p>
${
  rows.length
    ? `<table class="machines"><thead><tr><th>arch</th><th>ISO</th><th>vendor</th><th>product</th><th>firmware</th><th>boot</th><th>Secure Boot</th><th>verdict</th><th>tester</th><th>recorded</th><th>counts</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`
    : '<p class="note">No signed hardware record: flash the ISO, boot a real machine from the stick, then <code>clawos-build hw record DEVICE</code>.</p>'
}</section>`;
}

function vaultSection(m: ReportModel): string {
  const v = m.vault;
  const facts = [
    v.bundle ? `<li>bundle: <code>${h(v.bundle.dir)}</code> (run ${h(v.bundle.run_id)}${v.bundle.release ? `, release ${h(v.bundle.release)}` : ''}${v.bundle.files !== null ? `, ${v.bundle.files} files` : ''}${v.state === 'verified' ? '' : '; as the unverified manifest says'})</li>` : '',
    v.trust ? `<li>trust file: <code>${h(v.trust)}</code></li>` : '',
    v.code && v.state !== 'verified' ? `<li>code: <code>${h(v.code)}</code></li>` : '',
    v.note ? `<li>${h(v.note)}</li>` : '',
  ].join('');
  return `<section id="vault"><h2>Vault verification</h2>
<div class="vault-status" data-state="${v.state}"><p>${badge(v.state === 'verified' ? '✓ verified' : v.state, v.state)} ${h(v.headline)}</p>${facts ? `<ul>${facts}</ul>` : ''}</div></section>`;
}

function runsSection(m: ReportModel): string {
  if (!m.runs.length) return '';
  const rows = [...m.runs].reverse().map(
    (r) =>
      `<tr${r.tampered ? ' class="tampered-run"' : ''}><td class="mono">${h(r.run_id)}</td><td>${r.tampered ? `${badge('TAMPERED', 'fail')} ` : ''}${h(r.status ?? 'no run-end')}</td><td>${h(r.gates.map((g) => `${g.phase} ${g.recommendation}`).join(', '))}</td><td class="num">${r.ran.length}</td><td class="num">${r.up_to_date}</td><td>${h(
        r.boots.map((b) => `${b.arch} ${b.variant} ${b.verdict}${b.up_to_date ? ' (up to date)' : ''}`).join(', '),
      )}</td><td>${r.bundle.signed ? 'signed' : h(`none (${r.bundle.reason ?? ''})`)}</td></tr>`,
  );
  return `<section id="runs"><h2>Runs</h2><table class="runs"><thead><tr><th>run</th><th>status</th><th>gates</th><th>ran</th><th>up to date</th><th>boots</th><th>bundle</th></tr></thead><tbody>${rows.join('\n')}</tbody></table></section>`;
}

export function renderReportHtml(m: ReportModel): string {
  const problems = m.source.problems.length ? `<ul class="problems">${m.source.problems.map((p) => `<li>${h(p)}</li>`).join('')}</ul>` : '';
  const tampered = m.source.tampered.length ? `<p class="tampered">${h(tamperedHeadline(m.source.tampered.map((t) => t.run_id)))}</p>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(`ClawOS ${m.release ?? ''} build report`)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${h(`ClawOS ${m.release ?? '(no release version)'}: build report`)}</h1>
<p class="meta">Generated ${h(m.generated_at)} from ${h(m.source.detail)}. Build dir <code>${h(m.build_dir)}</code>.</p>${tampered}${problems}</header>
${gatesSection(m)}
${timelineSection(m)}
${bootsSection(m)}
${labBootsSection(m)}
${securitySection(m)}
${hardwareSection(m)}
${vaultSection(m)}
${runsSection(m)}
</body>
</html>
`;
}
