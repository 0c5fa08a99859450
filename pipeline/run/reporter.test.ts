import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { formatDuration } from '../../lib/format.js';
import { chooseMode, createReporter, formatEvent, terminalVerdict } from './reporter.js';

describe('reporter', () => {
  it('chooses listr2 on a terminal, plain lines in CI or without a TTY, nothing but JSON with --json', () => {
    expect(chooseMode({ json: false, isTTY: true, ci: false })).toBe('tty');
    expect(chooseMode({ json: false, isTTY: true, ci: true })).toBe('plain');
    expect(chooseMode({ json: false, isTTY: false, ci: false })).toBe('plain');
    expect(chooseMode({ json: true, isTTY: true, ci: false })).toBe('json');
  });

  it('formats durations', () => {
    expect(formatDuration(450)).toBe('450 ms');
    expect(formatDuration(4200)).toBe('4.2 s');
    expect(formatDuration(125_000)).toBe('2m05s');
  });

  it('says why a task failed and where its log is, and what a gate blocked on', () => {
    expect(
      formatEvent({ type: 'task-end', id: 'A-01@x86_64', status: 'FAIL', reason: 'config-dropped', message: 'CONFIG_X: requested y, final not set', durationMs: 61_000, log: 'logs/agent-kernel-engineer-2026-11-21.log' }),
    ).toBe('A-01@x86_64 FAIL [config-dropped] in 1m01s: CONFIG_X: requested y, final not set (log: logs/agent-kernel-engineer-2026-11-21.log)');
    expect(formatEvent({ type: 'task-up-to-date', id: 'C-01', status: 'PASS', message: 'x' })).toBe('C-01 up to date (PASS)');
    expect(
      formatEvent({ type: 'gate', phase: 'P4', recommendation: 'NO-GO', blockers: ['G-06@aarch64: FAIL (boot-panic): …'], coverage: '3/18 passed', report: 'gates/P4/gate-report.md' }),
    ).toBe('== gate P4: NO-GO — 3/18 passed (report: gates/P4/gate-report.md)\n   blocker: G-06@aarch64: FAIL (boot-panic): …');
    expect(formatEvent({ type: 'task-heartbeat', id: 'A-01@aarch64', elapsedMs: 90_000, estimateMs: 720_000 })).toBe(
      'A-01@aarch64 still running: 1m30s elapsed, about 10m30s left (last PASS took 12m00s)',
    );
    expect(formatEvent({ type: 'task-heartbeat', id: 'A-01@aarch64', elapsedMs: 750_000, estimateMs: 720_000 })).toBe(
      'A-01@aarch64 still running: 12m30s elapsed, past the estimate by 30.0 s (last PASS took 12m00s)',
    );
    expect(formatEvent({ type: 'task-heartbeat', id: 'A-01@aarch64', elapsedMs: 30_000, estimateMs: null })).toBe('A-01@aarch64 still running: 30.0 s elapsed (no earlier PASS to estimate from)');
  });

  it('prints one line per event in plain mode and throttles per-file progress', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const r = createReporter('plain', out);
    r.sink({ type: 'task-start', id: 'A-01@x86_64', title: 'kernel', agent: 'kernel-engineer' });
    r.sink({ type: 'task-progress', id: 'A-01@x86_64', message: 'compile: CC a.o' });
    r.sink({ type: 'task-progress', id: 'A-01@x86_64', message: 'compile: CC b.o' });
    r.sink({ type: 'task-progress', id: 'A-01@x86_64', message: 'modules' });
    await r.finish();
    const lines = text.trim().split('\n').map((l) => l.replace(/^\[\d\d:\d\d:\d\d\] /, ''));
    expect(lines).toEqual(['A-01@x86_64 start: kernel', 'A-01@x86_64 compile: CC a.o', 'A-01@x86_64 modules']);
  });

  it('the terminal view shows BUILT as neutral and skipped with its message, like NOT_CONFIGURED, never as a red failure (issue 11)', () => {
    const i = { id: 'B-04', title: 'XDP filter' };
    expect(terminalVerdict(i, { status: 'BUILT', message: 'built; nothing proves it works (no validation_cmd)', durationMs: 900 })).toEqual({
      kind: 'skip',
      text: 'B-04 BUILT (unvalidated, not PASS): built; nothing proves it works (no validation_cmd)',
    });
    expect(terminalVerdict(i, { status: 'NOT_CONFIGURED', message: 'no step yet', durationMs: 0 })).toEqual({ kind: 'skip', text: 'B-04 NOT_CONFIGURED: no step yet' });
    expect(terminalVerdict(i, { status: 'PASS', message: 'ok', durationMs: 4200 })).toEqual({ kind: 'title', text: 'B-04 XDP filter (4.2 s)' });
    expect(terminalVerdict(i, { status: 'UP_TO_DATE', message: 'ok', durationMs: 0 })).toEqual({ kind: 'title', text: 'B-04 XDP filter (up to date)' });
    expect(terminalVerdict(i, { status: 'FAIL', message: 'exit 2', durationMs: 10 })).toEqual({ kind: 'fail', text: 'B-04 FAIL: exit 2' });
    expect(terminalVerdict(i, { status: 'BLOCKED', message: 'A-01 failed', durationMs: 0 })).toEqual({ kind: 'fail', text: 'B-04 BLOCKED: A-01 failed' });
    // The plain view names BUILT with its reason and no log pointer, as for any non-failure.
    expect(formatEvent({ type: 'task-end', id: 'B-04', status: 'BUILT', reason: 'unvalidated', message: 'built, unproven', durationMs: 900, log: 'logs/x.log' })).toBe(
      'B-04 BUILT [unvalidated] in 900 ms: built, unproven',
    );
  });

  it('prints nothing in json mode', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const r = createReporter('json', out);
    r.sink({ type: 'info', message: 'hello' });
    await r.finish();
    expect(text).toBe('');
  });
});
