import { describe, expect, it } from 'vitest';
import { backoffMs, DEFAULT_RETRY, retryDecision, sleepMs, withRetries, type AttemptReport, type RetryPolicy } from './retry.js';
import { fail, infra, inputMissing, pass, type Outcome } from '../pipeline/catalog/outcome.js';

const policy: RetryPolicy = { retries: 3, baseDelayMs: 1000, factor: 2, maxDelayMs: 3000 };

/** Replays the given outcomes in order, recording waits instead of sleeping. */
function script(outcomes: Outcome[]) {
  const waits: number[] = [];
  const reports: AttemptReport<Outcome>[] = [];
  let calls = 0;
  return {
    waits,
    reports,
    get calls() {
      return calls;
    },
    attempt: async () => outcomes[calls++]!,
    opts: {
      policy,
      sleep: async (ms: number) => {
        waits.push(ms);
      },
      onAttempt: (r: AttemptReport<Outcome>) => reports.push(r),
    },
  };
}

// Outcomes shaped like the qemu-boot step's INFRA_ERROR and a step's thrown ENOSPC.
const QEMU_START = infra("seabios: INFRA_ERROR at stage none: qemu-system-x86_64: -drive file=clawos-x86_64.iso: Could not open 'clawos-x86_64.iso': No such file or directory");
const ENOSPC = infra('ENOSPC: no space left on device, write');

describe('retry policy', () => {
  it('retries an INFRA_ERROR with exponential backoff until it passes, reporting each attempt', async () => {
    const s = script([QEMU_START, ENOSPC, pass('booted')]);
    const r = await withRetries(s.attempt, s.opts);
    expect(r).toEqual({ outcome: pass('booted'), attempts: 3 });
    expect(s.waits).toEqual([1000, 2000]);
    expect(s.reports.map((x) => [x.attempt, x.maxAttempts, x.outcome.status, x.retryInMs, x.decision])).toEqual([
      [1, 4, 'INFRA_ERROR', 1000, 'INFRA_ERROR may be transient: retry 1/3 in 1.0 s'],
      [2, 4, 'INFRA_ERROR', 2000, 'INFRA_ERROR may be transient: retry 2/3 in 2.0 s'],
      [3, 4, 'PASS', null, 'PASS: done'],
    ]);
  });

  it('gives up after the configured count, with the waits capped', async () => {
    const s = script([QEMU_START, QEMU_START, QEMU_START, QEMU_START, pass('never reached')]);
    const r = await withRetries(s.attempt, s.opts);
    expect(r.attempts).toBe(4);
    expect(r.outcome).toBe(QEMU_START);
    expect(s.calls).toBe(4);
    expect(s.waits).toEqual([1000, 2000, 3000]);
    expect(s.reports.at(-1)!.decision).toBe('INFRA_ERROR may be transient, but 4 attempt(s) spent: giving up');
  });

  it('never retries a deterministic failure: exit code, panic, failed check, timeout', async () => {
    for (const o of [
      fail('exit-non-zero', 'run: command exited 2: make: *** [Makefile:3: all] Error 2'),
      fail('boot-panic', 'x86_64 seabios: Kernel panic - not syncing: VFS: Unable to mount root fs'),
      fail('validation-failed', 'validation_cmd exited 1: grep -q good x.txt'),
      { status: 'TIMEOUT', reason: 'timeout', message: 'timed out after 30 min; its process group was killed' } as Outcome,
    ]) {
      const s = script([o, pass('must not be reached')]);
      const r = await withRetries(s.attempt, s.opts);
      expect(r).toEqual({ outcome: o, attempts: 1 });
      expect(s.waits).toEqual([]);
      expect(s.reports).toHaveLength(1);
      expect(s.reports[0]!.decision).toBe(`${o.status} is deterministic: not retried`);
    }
  });

  it('never retries an INFRA_ERROR from a missing or wrong input: it would fail the same way', async () => {
    // The Buildroot step's outcome for a tarball that is not the pinned one (pipeline/rootfs/locate-buildroot.ts).
    const wrongTree = inputMissing('buildroot: /tmp/br.tar.gz has sha256 00ff, but ffc1 is pinned: refusing to extract it; fix: give the Buildroot tarball whose sha256 is pinned');
    const s = script([wrongTree, pass('must not be reached')]);
    expect(await withRetries(s.attempt, s.opts)).toEqual({ outcome: wrongTree, attempts: 1 });
    expect(s.waits).toEqual([]);
    expect(s.reports.map((x) => x.decision)).toEqual(['a missing or wrong input: not retried']);
  });

  it('does not retry an interrupted run, nor once the signal is aborted', async () => {
    const s = script([infra('interrupted'), pass('no')]);
    expect((await withRetries(s.attempt, s.opts)).attempts).toBe(1);
    expect(s.reports[0]!.decision).toBe('interrupted: not retried');

    const ac = new AbortController();
    const t = script([QEMU_START, pass('no')]);
    const r = await withRetries(
      async (n) => {
        ac.abort();
        expect(n).toBe(1);
        return t.attempt();
      },
      { ...t.opts, signal: ac.signal },
    );
    expect(r.attempts).toBe(1);
    expect(t.reports[0]!.decision).toBe('aborted: not retried');
  });

  it('retries: 0 runs once', async () => {
    const s = script([QEMU_START, pass('no')]);
    const r = await withRetries(s.attempt, { ...s.opts, policy: { ...policy, retries: 0 } });
    expect(r.attempts).toBe(1);
    expect(s.reports[0]!.maxAttempts).toBe(1);
  });

  it('backoff grows by the factor and is capped; the default policy is 2 retries from 5 s', () => {
    expect([1, 2, 3, 4].map((n) => backoffMs(policy, n))).toEqual([1000, 2000, 3000, 3000]);
    expect([1, 2].map((n) => backoffMs(DEFAULT_RETRY, n))).toEqual([5000, 10000]);
    expect(retryDecision(pass('x'))).toEqual({ retry: false, why: 'PASS: done' });
    expect(retryDecision({ status: 'NOT_CONFIGURED', reason: 'not-configured', message: 'x' })).toEqual({ retry: false, why: 'NOT_CONFIGURED: done' });
  });

  it('the real sleep resolves early when the signal aborts', async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 50);
    await sleepMs(10_000, ac.signal);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
