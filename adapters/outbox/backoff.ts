/** Retry policy of the outbox: exponential backoff with jitter, a bounded number of attempts, then dead letter. */
import { OsciError } from '../../protocol/errors.ts';

export interface RetryPolicy {
  /** Attempts before a job is parked (first try included). */
  maxAttempts: number;
  /** Delay after the first failure; doubles with every further failure. */
  baseDelayMs: number;
  /** Upper bound of the delay. */
  maxDelayMs: number;
  /** How long a claimed job may run before another claim may take it (a crashed worker's job comes back). */
  leaseMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({ maxAttempts: 8, baseDelayMs: 30_000, maxDelayMs: 3_600_000, leaseMs: 10 * 60_000 });

export function checkRetryPolicy(p: RetryPolicy): RetryPolicy {
  const pos = (v: number, what: string) => {
    if (!Number.isFinite(v) || v < 0) throw new OsciError('ERR_USAGE', `retry: ${what} must be a non-negative number`);
  };
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1 || p.maxAttempts > 1000) throw new OsciError('ERR_USAGE', 'retry: maxAttempts must be an integer from 1 to 1000');
  pos(p.baseDelayMs, 'baseDelay');
  pos(p.maxDelayMs, 'maxDelay');
  pos(p.leaseMs, 'lease');
  if (p.maxDelayMs < p.baseDelayMs) throw new OsciError('ERR_USAGE', 'retry: maxDelay must not be smaller than baseDelay');
  return p;
}

/**
 * Delay after the `attempt`-th failed attempt (1-based): d = min(max, base·2^(attempt−1)), then "equal jitter"
 * d/2 + random·d/2, so retries of many jobs spread out but never come sooner than half the nominal delay.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 52));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(exp / 2 + (r * exp) / 2);
}
