/**
 * Runs due outbox jobs: claim (attempt + 1, lease), deliver through the job's adapter, then record the outcome —
 * done; retry later with exponential backoff and jitter; or parked as dead letter with the reason once the
 * adapter says the failure is permanent or the attempts are used up. A job whose worker died comes back when
 * its lease runs out; the adapters are idempotent per MessageId, so running it again imports nothing twice.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { describeFailure, dispositionOf, type DeliveryAdapter, type SpooledMessage } from '../delivery.ts';
import { backoffDelay, type RetryPolicy } from './backoff.ts';
import type { JobRecord, JobStore } from './types.ts';

/** A send job that is not finished although nothing failed (a sent message awaiting its reception). */
export interface Waiting {
  waitUntil: Date;
  detail: string;
}

/** Runs `send` jobs (outgoing folders); see hotfolder/import.ts. */
export interface SendRunner {
  send(job: JobRecord): Promise<string | Waiting>;
  parked?(job: JobRecord, reason: string): Promise<void>;
}

export interface OutboxWorkerOptions {
  store: JobStore;
  adapters: ReadonlyMap<string, DeliveryAdapter>;
  sender?: SendRunner;
  /** Where the received messages' folders are (the agent's spool). */
  spoolDir: string;
  retry: RetryPolicy;
  log: Logger;
  now?: () => Date;
  random?: () => number;
}

export interface JobOutcome {
  job: JobRecord;
  outcome: 'ok' | 'retry' | 'wait' | 'park';
  detail: string;
}

export class OutboxWorker {
  constructor(private readonly o: OutboxWorkerOptions) {}

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /** Runs the jobs due now (at most `limit`), one after the other. */
  async runDue(limit = 32): Promise<JobOutcome[]> {
    const jobs = await this.o.store.claimDue(this.now(), this.o.retry.leaseMs, limit);
    const out: JobOutcome[] = [];
    for (const job of jobs) out.push(await this.run(job));
    return out;
  }

  /** Runs the due jobs of one message now (the agent delivers a fetched message once before acknowledging it). */
  async runForMessage(messageId: string): Promise<JobOutcome[]> {
    const jobs = await this.o.store.claimDue(this.now(), this.o.retry.leaseMs, 64, messageId);
    const out: JobOutcome[] = [];
    for (const job of jobs) out.push(await this.run(job));
    return out;
  }

  /** Runs due jobs until none is due now (jobs backed off into the future stay queued). */
  async drain(maxRounds = 1000): Promise<JobOutcome[]> {
    const all: JobOutcome[] = [];
    for (let i = 0; i < maxRounds; i++) {
      const r = await this.runDue();
      if (r.length === 0) break;
      all.push(...r);
    }
    return all;
  }

  private async spooled(job: JobRecord): Promise<SpooledMessage> {
    const rec = job.messageId ? await this.o.store.getMessage(job.messageId) : undefined;
    if (!rec) throw new Error(`job ${job.id}: message ${job.messageId ?? '?'} is not in the store`);
    return { meta: rec.meta, mailbox: rec.mailbox, folderName: rec.folder, dir: join(this.o.spoolDir, rec.folder) };
  }

  private async locations(job: JobRecord, msg: SpooledMessage): Promise<string[]> {
    const others = job.messageId ? await this.o.store.list({ messageId: job.messageId, kind: 'deliver' }) : [];
    const out: string[] = [];
    for (const j of others) {
      if (j.id === job.id) continue;
      const a = this.o.adapters.get(j.adapter);
      const where = a?.location?.(msg);
      if (where) out.push(where);
    }
    return out;
  }

  private async run(job: JobRecord): Promise<JobOutcome> {
    const log = this.o.log.child({ jobId: job.id, kind: job.kind, adapter: job.adapter, messageId: job.messageId, attempt: job.attempts });
    let detail: string;
    try {
      if (job.kind === 'send') {
        if (!this.o.sender) throw new Error('no outgoing folders are configured');
        const r = await this.o.sender.send(job);
        if (typeof r !== 'string') {
          await this.o.store.wait(job.id, r.detail, r.waitUntil, this.now());
          log.info({ detail: r.detail, until: r.waitUntil.toISOString() }, 'job waiting');
          return { job, outcome: 'wait', detail: r.detail };
        }
        detail = r;
      } else {
        const adapter = this.o.adapters.get(job.adapter);
        if (!adapter) throw new Error(`no adapter named "${job.adapter}" in the configuration`);
        const msg = await this.spooled(job);
        detail = await adapter.deliver(msg, { jobId: job.id, attempt: job.attempts, locations: await this.locations(job, msg) });
      }
    } catch (e) {
      const reason = describeFailure(e);
      const exhausted = job.attempts >= job.maxAttempts;
      if (dispositionOf(e) === 'park' || exhausted) {
        const why = exhausted && dispositionOf(e) !== 'park' ? `${reason} (gave up after ${job.attempts} attempts)` : reason;
        await this.o.store.park(job.id, why, this.now());
        log.warn({ reason: why }, 'job parked as dead letter');
        if (job.kind === 'send') await this.o.sender?.parked?.({ ...job, state: 'dead', lastError: why }, why).catch((err: unknown) => log.error({ err: describeFailure(err) }, 'cannot write the failure result'));
        return { job, outcome: 'park', detail: why };
      }
      const delay = backoffDelay(this.o.retry, job.attempts, this.o.random);
      await this.o.store.retryLater(job.id, reason, new Date(this.now().getTime() + delay), this.now());
      log.info({ reason, delayMs: delay }, 'delivery failed; retrying later');
      return { job, outcome: 'retry', detail: reason };
    }
    await this.o.store.complete(job.id, detail, this.now());
    log.info({ detail }, 'job done');
    return { job, outcome: 'ok', detail };
  }
}
