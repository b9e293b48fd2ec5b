/**
 * The mailbox agent (adapters/README.md): for each municipal mailbox whose cipher key this gateway holds it
 * fetches waiting messages from the intermediary as the mailbox owner (fetchDelivery in an explicit dialog),
 * decrypts and verifies them into its spool, routes them, and commits the message row and one delivery job per
 * routed adapter in one transaction of its job store. Only then does the dialog continue: the next request
 * (the next fetchDelivery or exitDialog) acknowledges the reception (osci-protocol.md §2). After any failure the
 * dialog is abandoned without a further request, so nothing is acknowledged that is not durably queued.
 *
 * A message fetched again (its acknowledgement was lost, or the agent died before it) is recognised by its
 * MessageId and not queued again.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { OsciError } from '../protocol/errors.ts';
import { describeFailure, type DeliveryAdapter } from './delivery.ts';
import type { HotFolderImport } from './hotfolder/import.ts';
import { writeDeliveryFolder } from './inbox.ts';
import type { OsciClient } from './osci/client.ts';
import { backoffDelay, type RetryPolicy } from './outbox/backoff.ts';
import type { JobStore, NewJob } from './outbox/types.ts';
import { OutboxWorker, type JobOutcome } from './outbox/worker.ts';
import { factsOf, type Router } from './routing.ts';

export interface AgentMailbox {
  /** Mailbox (postbox) id, as routes name it. */
  id: string;
  /** The intermediary it lives on (a name of the configuration, or the `server` URL), for logs and metrics. */
  via: string;
  /** OSCI client signing as the mailbox owner, pinned to that intermediary. */
  client: OsciClient;
  /** Time between polls while the intermediary answers. */
  pollIntervalMs: number;
  /** The mailbox's routing view (configuration `mailboxes[].routes` / `defaultRoute`). */
  routing?: { rules?: string[]; default?: string[] };
  /** The mailbox's cipher keys (several during rotation). */
  readerKeys: KeyObject[];
  /** Anchors for the authors' signature certificates (checked and recorded). */
  anchors: X509Certificate[];
}

/** Observation points (metrics, tests); awaited, so they must be quick. */
export interface AgentHooks {
  /** A delivery was fetched and is about to be stored (not acknowledged yet). */
  afterFetch?(messageId: string, mailbox: string): Promise<void> | void;
  /** The message and its jobs are committed; the next request will acknowledge it. */
  afterCommit?(messageId: string, mailbox: string): Promise<void> | void;
  /** After every poll of a mailbox (metrics): its report, how many polls in a row failed, when the next one is due. */
  afterPoll?(report: PollReport, state: { failures: number; nextPollInMs: number; durationMs: number }): void;
}

export interface MailboxAgentOptions {
  store: JobStore;
  /** Agent data folder: spool/ (message folders) and tmp/ live here. */
  dataDir: string;
  mailboxes: AgentMailbox[];
  router: Router;
  adapters: ReadonlyMap<string, DeliveryAdapter>;
  outgoing?: HotFolderImport;
  retry: RetryPolicy;
  /** Upper bound of the back-off between polls of a mailbox whose intermediary fails (default 15 min). */
  pollBackoffMaxMs?: number;
  log: Logger;
  hooks?: AgentHooks;
  now?: () => Date;
  random?: () => number;
}

export interface PollReport {
  mailbox: string;
  via: string;
  /** Newly stored and queued. */
  stored: string[];
  /** Fetched again although already stored (acknowledged now, not queued again). */
  duplicates: string[];
  error?: string;
}

export class MailboxAgent {
  readonly spoolDir: string;
  readonly tmpDir: string;
  readonly worker: OutboxWorker;
  /** Job outcomes of the deliveries run before acknowledgements (reported by runOnce). */
  private ranDuringPolls: JobOutcome[] = [];

  constructor(private readonly o: MailboxAgentOptions) {
    this.spoolDir = join(resolve(o.dataDir), 'spool');
    this.tmpDir = join(resolve(o.dataDir), 'tmp');
    this.worker = new OutboxWorker({
      store: o.store,
      adapters: o.adapters,
      ...(o.outgoing ? { sender: o.outgoing } : {}),
      spoolDir: this.spoolDir,
      retry: o.retry,
      log: o.log,
      ...(o.now ? { now: o.now } : {}),
      ...(o.random ? { random: o.random } : {}),
    });
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /**
   * Crash recovery before the first poll: spool folders without a committed message row (a crash between
   * writing and commit) and half-written folders are removed; their messages were not acknowledged and come again.
   */
  async recover(): Promise<string[]> {
    await this.o.store.migrate();
    mkdirSync(this.spoolDir, { recursive: true });
    rmSync(this.tmpDir, { recursive: true, force: true });
    mkdirSync(this.tmpDir, { recursive: true });
    const committed = await this.o.store.messageFolders();
    const removed: string[] = [];
    for (const name of readdirSync(this.spoolDir)) {
      if (committed.has(name)) continue;
      rmSync(join(this.spoolDir, name), { recursive: true, force: true });
      removed.push(name);
    }
    if (removed.length) this.o.log.info({ removed }, 'removed uncommitted spool folders');
    return removed;
  }

  private jobsFor(mailbox: string, messageId: string, adapters: string[]): NewJob[] {
    return adapters.map((a) => ({ kind: 'deliver', adapter: a, mailbox, messageId, idempotencyKey: `deliver:${a}:${messageId}`, maxAttempts: this.o.retry.maxAttempts }));
  }

  /** Fetches every waiting message of one mailbox in one explicit dialog. */
  async poll(mb: AgentMailbox): Promise<PollReport> {
    const report: PollReport = { mailbox: mb.id, via: mb.via, stored: [], duplicates: [] };
    const hooks = this.o.hooks;
    const dialog = await mb.client.openDialog();
    let clean = false;
    try {
      for (;;) {
        const got = await dialog.fetchDelivery();
        if (!got) break;
        try {
          const messageId = got.response.processCardBundle?.messageId;
          if (!messageId) throw new OsciError('ERR_SOAP_MALFORMED', 'responseToFetchDelivery without MessageId');
          await hooks?.afterFetch?.(messageId, mb.id);
          if (await this.o.store.hasMessage(messageId)) {
            // Stored before, its acknowledgement was lost: the next request acknowledges it; nothing is queued twice.
            report.duplicates.push(messageId);
            this.o.log.info({ mailbox: mb.id, messageId }, 'message fetched again; already stored');
            continue;
          }
          let adapters: string[] = [];
          const written = await writeDeliveryFolder({
            parent: this.spoolDir,
            response: got.response,
            decoded: got.decoded,
            readerKeys: mb.readerKeys,
            anchors: mb.anchors,
            tmpDir: this.tmpDir,
            mailbox: mb.id,
            now: this.now(),
            keepUnopenable: true,
            annotate: (meta) => {
              const d = this.o.router.route(factsOf(mb.id, meta), mb.routing);
              adapters = d.adapters;
              meta.route = { rule: d.rule, adapters: d.adapters };
            },
          });
          const committed = await this.o.store.commitMessage(
            { messageId, mailbox: mb.id, folder: written.name, fetchedAt: this.now(), meta: written.meta },
            this.jobsFor(mb.id, messageId, adapters),
          );
          if (!committed) report.duplicates.push(messageId);
          else report.stored.push(messageId);
          this.o.log.info({ mailbox: mb.id, via: mb.via, messageId, route: written.meta.route?.rule, adapters }, 'message stored and queued');
          await hooks?.afterCommit?.(messageId, mb.id);
          // One delivery attempt before the acknowledgement, so staff normally have the message when the sender's
          // process card shows its reception; a failed attempt is retried from the outbox (the message is durable here).
          if (committed) {
            const ran = await this.worker.runForMessage(messageId).catch((e: unknown) => {
              this.o.log.error({ messageId, err: describeFailure(e) }, 'delivery run failed');
              return [];
            });
            this.ranDuringPolls.push(...ran);
          }
        } finally {
          await got.decoded.dispose();
        }
      }
      clean = true;
    } catch (e) {
      report.error = describeFailure(e);
      this.o.log.error({ mailbox: mb.id, err: report.error }, 'poll failed; dialog abandoned without acknowledging');
    } finally {
      // exitDialog acknowledges the last fetched message (§2): only when it is stored.
      if (clean) {
        await dialog.close().catch((e: unknown) => {
          report.error = describeFailure(e);
          this.o.log.warn({ mailbox: mb.id, err: report.error }, 'exitDialog failed; the last message will be fetched again');
        });
      }
    }
    return report;
  }

  /** Polls one mailbox; a dialog that cannot be opened (intermediary unreachable) is reported, not thrown. */
  private async pollSafe(mb: AgentMailbox): Promise<PollReport> {
    try {
      return await this.poll(mb);
    } catch (e) {
      const error = describeFailure(e);
      this.o.log.error({ mailbox: mb.id, via: mb.via, err: error }, 'cannot open a dialog');
      return { mailbox: mb.id, via: mb.via, stored: [], duplicates: [], error };
    }
  }

  async pollAll(): Promise<PollReport[]> {
    const out: PollReport[] = [];
    for (const mb of this.o.mailboxes) out.push(await this.pollSafe(mb));
    return out;
  }

  /** One round: fetch every mailbox, pick up outgoing folders, run every job due now. */
  async runOnce(): Promise<{ polls: PollReport[]; queuedOutgoing: number; jobs: JobOutcome[] }> {
    this.ranDuringPolls = [];
    const polls = await this.pollAll();
    const queuedOutgoing = this.o.outgoing ? await this.o.outgoing.scan() : 0;
    const jobs = [...this.ranDuringPolls, ...(await this.worker.drain())];
    this.ranDuringPolls = [];
    return { polls, queuedOutgoing, jobs };
  }

  /**
   * Runs until `signal` aborts. Each mailbox is polled every `pollIntervalMs`; after a failed poll the next one
   * backs off exponentially with jitter (interval·2^(n−1), at most pollBackoffMaxMs) and returns to the interval
   * after the first success. Outgoing folders are scanned and due jobs run every `tickMs`.
   */
  async run(signal: AbortSignal, tickMs = 1000): Promise<void> {
    const maxBackoff = this.o.pollBackoffMaxMs ?? 15 * 60_000;
    const schedule = new Map(this.o.mailboxes.map((mb) => [mb.id, { nextAt: 0, failures: 0 }]));
    const tick = Math.min(tickMs, ...this.o.mailboxes.map((m) => m.pollIntervalMs));
    while (!signal.aborted) {
      for (const mb of this.o.mailboxes) {
        const s = schedule.get(mb.id) ?? { nextAt: 0, failures: 0 };
        if (Date.now() < s.nextAt || signal.aborted) continue;
        const started = Date.now();
        const report = await this.pollSafe(mb);
        s.failures = report.error ? s.failures + 1 : 0;
        const wait = s.failures === 0 ? mb.pollIntervalMs : backoffDelay({ maxAttempts: 1, baseDelayMs: mb.pollIntervalMs, maxDelayMs: Math.max(maxBackoff, mb.pollIntervalMs), leaseMs: 0 }, s.failures, this.o.random);
        s.nextAt = Date.now() + wait;
        schedule.set(mb.id, s);
        const state = { failures: s.failures, nextPollInMs: wait, durationMs: Date.now() - started };
        this.o.log[report.error ? 'warn' : 'info'](
          { mailbox: mb.id, via: mb.via, stored: report.stored.length, duplicates: report.duplicates.length, failures: s.failures, nextPollInMs: wait, durationMs: state.durationMs, ...(report.error ? { err: report.error } : {}) },
          report.error ? 'poll failed; backing off' : 'poll done',
        );
        this.o.hooks?.afterPoll?.(report, state);
      }
      this.ranDuringPolls = [];
      if (this.o.outgoing) await this.o.outgoing.scan().catch((e: unknown) => this.o.log.error({ err: describeFailure(e) }, 'outgoing scan failed'));
      await this.worker.drain().catch((e: unknown) => this.o.log.error({ err: describeFailure(e) }, 'outbox run failed'));
      await sleep(tick, undefined, { signal }).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    for (const a of this.o.adapters.values()) await a.close?.();
    await this.o.store.close();
    if (existsSync(this.tmpDir)) rmSync(this.tmpDir, { recursive: true, force: true });
  }
}
