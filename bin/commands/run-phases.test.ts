import { describe, expect, it } from 'vitest';
import { EXIT } from '../exit.js';
import { runExitCode } from './run-phases.js';

describe('the exit code of p1..p4 and all', () => {
  const base = { aborted: false, nogo: 0, ranAll: true };
  it('0 when everything passed; 130 when interrupted', () => {
    expect(runExitCode({ ...base, bad: [] })).toBe(EXIT.ok);
    expect(runExitCode({ ...base, aborted: true, bad: [{ status: 'FAIL' }] })).toBe(EXIT.interrupted);
  });
  it('4 when only infrastructure failed (a locked input missing, a package that would download) and what it blocked', () => {
    expect(runExitCode({ ...base, nogo: 1, bad: [{ status: 'INFRA_ERROR' }, { status: 'BLOCKED' }, { status: 'BLOCKED' }] })).toBe(EXIT.infra);
  });
  it('1 when a task failed, timed out or is only BUILT, even beside an infrastructure error; 1 for a NO-GO alone', () => {
    expect(runExitCode({ ...base, nogo: 1, bad: [{ status: 'INFRA_ERROR' }, { status: 'FAIL' }] })).toBe(EXIT.failed);
    expect(runExitCode({ ...base, bad: [{ status: 'TIMEOUT' }] })).toBe(EXIT.failed);
    expect(runExitCode({ ...base, bad: [{ status: 'BUILT' }] })).toBe(EXIT.failed);
    expect(runExitCode({ ...base, nogo: 1, bad: [] })).toBe(EXIT.failed);
    expect(runExitCode({ ...base, ranAll: false, bad: [{ status: 'BLOCKED' }] })).toBe(EXIT.failed);
  });
});
