/**
 * Retries for infrastructure failures only. A QEMU that did not start, a device
 * that was missing, a transient ENOSPC end as INFRA_ERROR and may go away; an
 * exit code, a panic, a failed check, a timeout are the task's own result and
 * would fail again, so they are never retried. Each attempt is reported through a
 * callback (the scheduler turns it into an event). Pure: the clock is injected.
 */
/** What is retried: a task's Outcome (pipeline/catalog/outcome.ts) or anything shaped like it. */
export interface Attempted {
  status: string;
  message: string;
  /** `input-missing`: an INFRA_ERROR no retry can cure. */
  reason?: string;
}

export interface RetryPolicy {
  /** Retries after the first attempt (0 = never retry). */
  retries: number;
  /** Wait before the first retry. */
  baseDelayMs: number;
  /** Each further wait is the previous one times this. */
  factor: number;
  /** No wait is longer than this. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ retries: 2, baseDelayMs: 5_000, factor: 2, maxDelayMs: 60_000 });

export interface AttemptReport<O extends Attempted = Attempted> {
  /** 1-based. */
  attempt: number;
  /** The most attempts this policy allows. */
  maxAttempts: number;
  outcome: O;
  /** Set when another attempt follows: how long it waits first. */
  retryInMs: number | null;
  /** Why it is, or is not, retried. */
  decision: string;
}

export interface RetryOptions<O extends Attempted = Attempted> {
  policy?: RetryPolicy;
  /** Told of every attempt's outcome, before any wait. */
  onAttempt?: (r: AttemptReport<O>) => void;
  /** Waits (injected in tests); resolves early when the signal aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** An aborted run or task is never retried. */
  signal?: AbortSignal;
}

/** The wait before retry number `n` (1-based). */
export function backoffMs(policy: RetryPolicy, n: number): number {
  return Math.min(policy.maxDelayMs, Math.round(policy.baseDelayMs * policy.factor ** (n - 1)));
}

/** Whether an outcome may be retried, and why in words. */
export function retryDecision(o: Attempted): { retry: boolean; why: string } {
  if (o.status !== 'INFRA_ERROR') {
    return { retry: false, why: o.status === 'PASS' || o.status === 'NOT_CONFIGURED' ? `${o.status}: done` : `${o.status} is deterministic: not retried` };
  }
  if (o.message === 'interrupted') return { retry: false, why: 'interrupted: not retried' };
  if (o.reason === 'input-missing') return { retry: false, why: 'a missing or wrong input: not retried' };
  return { retry: true, why: 'INFRA_ERROR may be transient' };
}

export function sleepMs(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Run `attempt` until it gives a result that is not a retryable INFRA_ERROR, or the policy's count is spent. */
export async function withRetries<O extends Attempted>(
  attempt: (n: number) => Promise<O>,
  opts: RetryOptions<O> = {},
): Promise<{ outcome: O; attempts: number }> {
  const policy = opts.policy ?? DEFAULT_RETRY;
  const sleep = opts.sleep ?? sleepMs;
  const maxAttempts = 1 + Math.max(0, Math.floor(policy.retries));
  for (let n = 1; ; n++) {
    const outcome = await attempt(n);
    const d = retryDecision(outcome);
    const aborted = !!opts.signal?.aborted;
    const again = d.retry && !aborted && n < maxAttempts;
    const retryInMs = again ? backoffMs(policy, n) : null;
    const decision = again
      ? `${d.why}: retry ${n}/${maxAttempts - 1} in ${(retryInMs! / 1000).toFixed(1)} s`
      : d.retry && aborted
        ? 'aborted: not retried'
        : d.retry
          ? `${d.why}, but ${maxAttempts} attempt(s) spent: giving up`
          : d.why;
    opts.onAttempt?.({ attempt: n, maxAttempts, outcome, retryInMs, decision });
    if (!again) return { outcome, attempts: n };
    await sleep(retryInMs!, opts.signal);
    if (opts.signal?.aborted) return { outcome, attempts: n };
  }
}
