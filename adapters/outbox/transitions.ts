/**
 * Job state transitions of the outbox (adapters/README.md "Delivery guarantees"), as column changes both job
 * stores (SQLite, PostgreSQL) apply to a locked row: one place for what complete / retry / wait / park / re-drive mean.
 */
import { OsciError } from '../../protocol/errors.ts';
import type { AttemptRecord, JobRecord, JobState } from './types.ts';

/** Columns a transition may change. */
export type JobChange = Partial<{ state: JobState; next_at: number; last_error: string | null; result: string | null; attempts: number; message_id: string; history: AttemptRecord[] }>;

/** History entries kept per job (the newest); older ones are summarised away. */
export const MAX_HISTORY = 50;

export function appendHistory(history: AttemptRecord[], entry: AttemptRecord): AttemptRecord[] {
  const next = [...history, entry];
  return next.length > MAX_HISTORY ? next.slice(next.length - MAX_HISTORY) : next;
}

/** Repeated waits keep one record (the latest), so a long wait does not push the real attempts out of the history. */
function appendWait(history: AttemptRecord[], entry: AttemptRecord): AttemptRecord[] {
  return history.at(-1)?.outcome === 'wait' ? [...history.slice(0, -1), entry] : appendHistory(history, entry);
}

type Transition = (j: JobRecord) => JobChange;

const entry = (j: JobRecord, now: Date, outcome: AttemptRecord['outcome'], detail: string): AttemptRecord => ({ at: now.toISOString(), outcome, attempt: j.attempts, detail });

export const transition = {
  complete: (result: string, now: Date): Transition => (j) => ({ state: 'done', result, history: appendHistory(j.history, entry(j, now, 'ok', result)) }),
  /** Transient failure: back to queued at `nextAt`. */
  retry: (reason: string, nextAt: Date, now: Date): Transition => (j) => ({ state: 'queued', next_at: nextAt.getTime(), last_error: reason, history: appendHistory(j.history, entry(j, now, 'retry', reason)) }),
  /** Nothing failed: looked at again at `nextAt`, the claim's attempt given back. */
  wait: (detail: string, nextAt: Date, now: Date): Transition => (j) => ({ state: 'queued', next_at: nextAt.getTime(), attempts: Math.max(0, j.attempts - 1), result: detail, history: appendWait(j.history, entry(j, now, 'wait', detail)) }),
  park: (reason: string, now: Date): Transition => (j) => ({ state: 'dead', last_error: reason, history: appendHistory(j.history, entry(j, now, 'park', reason)) }),
  setMessageId: (messageId: string): Transition => () => ({ message_id: messageId }),
  redrive: (now: Date): Transition => (j) => {
    if (j.state === 'done') throw new OsciError('ERR_USAGE', `job ${j.id} is done; nothing to re-drive`);
    return { state: 'queued', attempts: 0, next_at: now.getTime(), history: appendHistory(j.history, entry(j, now, 'redrive', `re-driven by an administrator (was ${j.state})`)) };
  },
};
