/**
 * The agent's durable job store (adapters/README.md "Delivery guarantees"). One row per received message (its
 * plaintext folder in the spool is durable before the row commits) and one job per (message, adapter) or per
 * outgoing folder. The row and its jobs commit in one transaction: that commit is the point after which the
 * OSCI dialog may acknowledge reception.
 */
import type { MessageMeta } from '../inbox.ts';

export type JobKind = 'deliver' | 'send';
/** queued: waiting for `nextAt` (also while running: a claim pushes `nextAt` by the lease); done; dead: parked. */
export type JobState = 'queued' | 'done' | 'dead';
export const JOB_STATES: readonly JobState[] = ['queued', 'done', 'dead'];

export interface AttemptRecord {
  at: string;
  /** ok | retry (transient failure, backed off) | wait (nothing failed, checked again later) | park (dead letter) | redrive (admin) */
  outcome: 'ok' | 'retry' | 'wait' | 'park' | 'redrive';
  attempt: number;
  detail: string;
}

export interface JobRecord {
  id: number;
  kind: JobKind;
  /** Adapter name (deliver) or 'osci' (send). */
  adapter: string;
  mailbox: string;
  /** deliver: the message; send: the MessageId reserved for the outgoing message (set before the first storeDelivery). */
  messageId?: string;
  /** send: the outgoing folder. */
  source?: string;
  /** Unique per job: deliver:<adapter>:<MessageId> / send:<folder>:<identity of send.json>. */
  idempotencyKey: string;
  state: JobState;
  attempts: number;
  maxAttempts: number;
  nextAt: Date;
  created: Date;
  updated: Date;
  /** Reason of the last failure (kept when parked). */
  lastError?: string;
  /** What the adapter reported on success (e.g. folder, HTTP status). */
  result?: string;
  history: AttemptRecord[];
}

export interface NewJob {
  kind: JobKind;
  adapter: string;
  mailbox: string;
  messageId?: string;
  source?: string;
  idempotencyKey: string;
  maxAttempts: number;
}

export interface MessageRecord {
  messageId: string;
  mailbox: string;
  /** Folder name under the spool. */
  folder: string;
  fetchedAt: Date;
  meta: MessageMeta;
}

export interface JobFilter {
  state?: JobState;
  kind?: JobKind;
  messageId?: string;
  limit?: number;
}

export interface JobStore {
  /** Creates tables; idempotent. */
  migrate(): Promise<void>;
  hasMessage(messageId: string): Promise<boolean>;
  getMessage(messageId: string): Promise<MessageRecord | undefined>;
  /**
   * Records a received message and its delivery jobs in one transaction. Returns false (and changes nothing)
   * when the MessageId is already recorded: a re-delivered message is never imported twice.
   */
  commitMessage(message: MessageRecord, jobs: NewJob[]): Promise<boolean>;
  /** Adds a job unless one with the same idempotency key exists; returns the new job or undefined. */
  enqueue(job: NewJob, now: Date): Promise<JobRecord | undefined>;
  /**
   * Jobs due at `now` (oldest first), optionally only those of one message: each gets attempts + 1 and
   * `nextAt = now + leaseMs` before it is returned.
   */
  claimDue(now: Date, leaseMs: number, limit: number, messageId?: string): Promise<JobRecord[]>;
  complete(id: number, result: string, now: Date): Promise<void>;
  /** Transient failure: back to queued at `nextAt`. */
  retryLater(id: number, reason: string, nextAt: Date, now: Date): Promise<void>;
  /** Nothing failed, the job is to be looked at again at `nextAt` (e.g. a sent message awaiting reception): the claim's attempt is given back. */
  wait(id: number, detail: string, nextAt: Date, now: Date): Promise<void>;
  /** Dead letter with the reason. */
  park(id: number, reason: string, now: Date): Promise<void>;
  /** The MessageId reserved for an outgoing job (durable before it is used on the wire). */
  setMessageId(id: number, messageId: string, now: Date): Promise<void>;
  /** Admin re-drive: a parked (or waiting) job is queued for now with a fresh attempt budget. */
  redrive(id: number, now: Date): Promise<JobRecord>;
  get(id: number): Promise<JobRecord | undefined>;
  list(filter?: JobFilter): Promise<JobRecord[]>;
  /** Earliest `nextAt` of a queued job. */
  nextDue(): Promise<Date | undefined>;
  /** Spool folder names that have a message row (for crash recovery of the spool). */
  messageFolders(): Promise<Set<string>>;
  close(): Promise<void>;
}
