/**
 * Hot folder import (outgoing mail): the DMS drops a message folder into a mailbox's outgoing folder —
 * `send.json` ({"to": postbox id, "subject": text, "text"?: text, "files"?: [names]}) plus the files — and the
 * agent sends it over OSCI (storeDelivery, signed by the mailbox and end-to-end encrypted for the recipient),
 * then writes `<folder>.result.json` beside the folder: MessageId and process card, or the error.
 *
 * A folder is ready when its `send.json` exists (the DMS writes it last, or renames the whole folder into place);
 * names starting with "." and folders with a result file are skipped. Each ready folder becomes one durable job
 * (idempotency key: folder path + identity of its send.json), so it is sent once even when scanned again.
 * The MessageId is reserved and recorded in the job before the first storeDelivery: a retry after a lost answer
 * reuses it, the intermediary refuses the second copy (9801) and the process card of the first is used.
 *
 * After sending, the job stays open: it fetches the message's process card (fetchProcessCard, §4) every
 * `tracking.intervalMs` until the intermediary records the reception (the addressee fetched it), then rewrites the
 * result file with `status: "received"`, the reception time and the new process card; after `tracking.maxMs` it
 * stops with the last card it got. Tracking failures never turn a sent message into a failed one.
 */
import type { X509Certificate } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { OrderRefused, type KeyPair, type OsciClient } from '../osci/client.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import { toOsciError } from '../../protocol/errors.ts';
import type { ProcessCardBundle } from '../../protocol/processcard.ts';
import { DeliveryFailure } from '../delivery.ts';
import { courtSafeNameProblem, SEND_LIMITS, writeFileAtomic } from '../files.ts';
import { processCardXml, summariseCard } from '../inbox.ts';
import type { JobRecord, JobStore } from '../outbox/types.ts';
import type { Waiting } from '../outbox/worker.ts';

export const SEND_FILE = 'send.json';
export const RESULT_SUFFIX = '.result.json';

export interface OutgoingMailbox {
  mailbox: string;
  /** The folder the DMS drops message folders into. */
  dir: string;
  /** The mailbox's signature key: it signs the content as author. */
  author: KeyPair;
  /** The recipient postbox's cipher certificate (directory lookup, checked against our anchors). */
  /**
   * The recipient postbox's cipher certificate (configured, or from a directory checked against our anchors) and
   * the client for the intermediary its mailbox lives on (ours unless the recipient is configured elsewhere).
   */
  resolveRecipient(id: string): Promise<{ cert: X509Certificate; client: OsciClient }>;
}

export interface SendOrder {
  to: string;
  subject: string;
  text?: string;
  files: Array<{ name: string; path: string; size: number }>;
}

const ORDER_KEYS = new Set(['to', 'subject', 'text', 'files']);

function refuse(msg: string): never {
  throw new DeliveryFailure('park', msg, { code: 'ERR_USAGE' });
}

/** Reads and checks a dropped folder (court rules of §13: ≤ 1000 files, ≤ 200 MB, safe names; no links). */
export function readSendOrder(folder: string): SendOrder {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(folder, SEND_FILE), 'utf8'));
  } catch (e) {
    refuse(`${SEND_FILE} is not readable JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) refuse(`${SEND_FILE} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!ORDER_KEYS.has(k)) refuse(`${SEND_FILE}: unknown key "${k}"`);
  if (typeof o.to !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(o.to)) refuse(`${SEND_FILE}: "to" must be a postbox id`);
  if (typeof o.subject !== 'string' || o.subject.trim() === '' || o.subject.length > 255 || /\p{Cc}/u.test(o.subject)) refuse(`${SEND_FILE}: "subject" must be one line of 1 to 255 characters`);
  if (o.text !== undefined && typeof o.text !== 'string') refuse(`${SEND_FILE}: "text" must be a string`);
  let names: string[];
  if (o.files === undefined) {
    names = readdirSync(folder)
      .filter((n) => n !== SEND_FILE && !n.startsWith('.'))
      .sort();
  } else {
    if (!Array.isArray(o.files) || o.files.some((f) => typeof f !== 'string')) refuse(`${SEND_FILE}: "files" must be a list of file names`);
    names = o.files as string[];
  }
  if (names.length > SEND_LIMITS.maxFiles) refuse(`${names.length} files; at most ${SEND_LIMITS.maxFiles} per message`);
  const seen = new Set<string>();
  const files = names.map((name) => {
    const problem = courtSafeNameProblem(name);
    if (problem) refuse(`file name "${name}" would be refused by courts: ${problem}`);
    if (seen.has(name.toLowerCase())) refuse(`file "${name}" is listed twice`);
    seen.add(name.toLowerCase());
    const path = join(folder, name);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      refuse(`file "${name}" does not exist`);
    }
    if (!st.isFile()) refuse(`"${name}" is not a regular file (links and folders are not sent)`);
    return { name, path, size: st.size };
  });
  const total = files.reduce((a, f) => a + f.size, 0);
  if (total > SEND_LIMITS.maxTotalBytes) refuse(`files total ${total} bytes; at most ${SEND_LIMITS.maxTotalBytes}`);
  if (!o.text && files.length === 0) refuse('nothing to send: no text and no files');
  return { to: o.to, subject: o.subject, ...(typeof o.text === 'string' && o.text !== '' ? { text: o.text } : {}), files };
}

export function resultPath(folder: string): string {
  return join(dirname(folder), `${basename(folder)}${RESULT_SUFFIX}`);
}

/** `<folder>.result.json`: what the DMS reads. status sent → received (reception recorded) or failed. */
export interface SendResult {
  status: 'sent' | 'received' | 'failed';
  messageId?: string;
  to?: string;
  subject?: string;
  files?: string[];
  sentAt?: string;
  /** The intermediary's Reception time (the addressee fetched the message); null while it has not. */
  receivedAt?: string | null;
  processCard?: ReturnType<typeof summariseCard>;
  processCardXml?: string;
  /** Set when tracking ended without a reception (receptionTracking.maxDays). */
  trackingEndedAt?: string;
  error?: string;
}

function readResult(folder: string): SendResult | undefined {
  try {
    return JSON.parse(readFileSync(resultPath(folder), 'utf8')) as SendResult;
  } catch {
    return undefined;
  }
}

function writeResult(folder: string, r: SendResult): void {
  writeFileAtomic(resultPath(folder), JSON.stringify(r, null, 2));
}

export interface ReceptionTracking {
  intervalMs: number;
  /** 0: no tracking (the job ends once sent). */
  maxMs: number;
}

export class HotFolderImport {
  private readonly byMailbox: Map<string, OutgoingMailbox>;
  private readonly tracking: ReceptionTracking;

  constructor(
    private readonly o: { store: JobStore; mailboxes: OutgoingMailbox[]; maxAttempts: number; log: Logger; tmpDir: string; now?: () => Date; tracking?: ReceptionTracking },
  ) {
    this.tracking = o.tracking ?? { intervalMs: 300_000, maxMs: 14 * 86_400_000 };
    this.byMailbox = new Map(o.mailboxes.map((m) => [m.mailbox, m]));
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /** Queues a job for every ready folder not seen before; returns the number of new jobs. */
  async scan(): Promise<number> {
    let added = 0;
    for (const m of this.o.mailboxes) {
      if (!existsSync(m.dir)) continue;
      for (const e of readdirSync(m.dir, { withFileTypes: true })) {
        if (!e.isDirectory() || e.name.startsWith('.')) continue;
        const folder = join(m.dir, e.name);
        const order = join(folder, SEND_FILE);
        if (existsSync(resultPath(folder))) continue;
        let st;
        try {
          st = statSync(order);
        } catch {
          continue; // not ready yet
        }
        const job = await this.o.store.enqueue(
          { kind: 'send', adapter: 'osci', mailbox: m.mailbox, source: folder, idempotencyKey: `send:${folder}:${st.ino}:${st.mtimeMs}`, maxAttempts: this.o.maxAttempts },
          this.now(),
        );
        if (job) {
          added++;
          this.o.log.info({ jobId: job.id, mailbox: m.mailbox, folder }, 'outgoing folder queued');
        }
      }
    }
    return added;
  }

  /** Runs one send job (send, then track the reception); throws DeliveryFailure / other errors for the worker to classify. */
  async send(job: JobRecord): Promise<string | Waiting> {
    const m = this.byMailbox.get(job.mailbox);
    if (!m) throw new DeliveryFailure('park', `no outgoing folder is configured for mailbox ${job.mailbox}`, { code: 'ERR_USAGE' });
    const folder = job.source;
    if (!folder) throw new DeliveryFailure('park', 'send job without folder', { code: 'ERR_USAGE' });
    const prior = job.messageId ? readResult(folder) : undefined;
    if (prior?.status === 'sent' && prior.messageId === job.messageId) return this.track(m, folder, prior);
    if (!existsSync(folder)) throw new DeliveryFailure('park', `outgoing folder ${folder} is gone`, { code: 'ERR_USAGE' });
    const order = readSendOrder(folder);
    let recipient: X509Certificate;
    let client: OsciClient;
    try {
      ({ cert: recipient, client } = await m.resolveRecipient(order.to));
    } catch (e) {
      const err = toOsciError(e);
      // An unreachable directory is transient; an unknown postbox or an untrusted certificate is not.
      throw new DeliveryFailure(err.code === 'ERR_REMOTE' ? 'retry' : 'park', `recipient ${order.to}: ${err.code}: ${err.message}`, { cause: e, code: err.code });
    }
    const reserved = job.messageId;
    const messageId = reserved ?? (await client.getMessageId());
    if (!reserved) await this.o.store.setMessageId(job.id, messageId, this.now());
    let card: ProcessCardBundle | undefined;
    const sealed = await sealContent({
      author: m.author,
      readers: [recipient],
      tmpDir: this.o.tmpDir,
      contents: [
        ...(order.text ? [{ base64Content: Buffer.from(order.text, 'utf8') }] : []),
        ...order.files.map((f) => ({ attachment: { contentId: f.name, size: f.size, open: () => createReadStream(f.path) } })),
      ],
    });
    try {
      const r = await client.storeDelivery({
        messageId,
        addresseeCipher: recipient,
        subject: order.subject,
        contentPackage: sealed.contentPackage,
        certificates: sealed.certificates,
        attachments: sealed.attachments,
      });
      card = r.processCardBundle;
    } catch (e) {
      // 9801 for a MessageId we used before: the earlier attempt was stored and only its answer got lost.
      if (reserved && e instanceof OrderRefused && e.feedback0.code === '9801') card = await this.storedCard(client, messageId);
      if (!card) throw classifyOsci(e);
    } finally {
      await sealed.dispose();
    }
    const result: SendResult = { status: 'sent', messageId, to: order.to, subject: order.subject, files: order.files.map((f) => f.name), sentAt: this.now().toISOString(), receivedAt: null };
    this.o.log.info({ mailbox: m.mailbox, messageId, to: order.to }, 'outgoing message sent');
    return this.recordCard(folder, result, card, `sent to ${order.to} as ${messageId}`);
  }

  /** Writes the result with `card`; done once the reception is on it (or tracking is over), else waits for the next look. */
  private recordCard(folder: string, prior: SendResult, card: ProcessCardBundle | undefined, what: string): string | Waiting {
    const summary = summariseCard(card) ?? prior.processCard;
    const next: SendResult = { ...prior, processCard: summary, processCardXml: card ? processCardXml(card, 'any') : prior.processCardXml };
    const now = this.now();
    if (summary?.reception) {
      writeResult(folder, { ...next, status: 'received', receivedAt: summary.reception });
      return `${what}; received at ${summary.reception}`;
    }
    const sentAt = Date.parse(prior.sentAt ?? '') || now.getTime();
    if (now.getTime() - sentAt >= this.tracking.maxMs) {
      writeResult(folder, { ...next, trackingEndedAt: now.toISOString() });
      return `${what}; no reception recorded within ${Math.round(this.tracking.maxMs / 86_400_000)} days, tracking ended`;
    }
    writeResult(folder, next);
    return { waitUntil: new Date(now.getTime() + this.tracking.intervalMs), detail: `${what}; waiting for the reception` };
  }

  /** Looks up the process card of a sent message; a failed look is tried again at the next interval. */
  private async track(m: OutgoingMailbox, folder: string, prior: SendResult): Promise<string | Waiting> {
    const messageId = prior.messageId as string;
    let card: ProcessCardBundle | undefined;
    try {
      card = await this.storedCard((await m.resolveRecipient(prior.to ?? '')).client, messageId);
    } catch (e) {
      const err = toOsciError(e);
      this.o.log.warn({ mailbox: m.mailbox, messageId, err: `${err.code}: ${err.message}` }, 'process card lookup failed; trying again later');
      card = undefined;
    }
    return this.recordCard(folder, prior, card, `sent to ${prior.to ?? '?'} as ${messageId}`);
  }

  private async storedCard(client: OsciClient, messageId: string): Promise<ProcessCardBundle | undefined> {
    const d = await client.openDialog();
    try {
      return (await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] }))[0];
    } finally {
      await d.close();
    }
  }

  /** A parked send job: the DMS gets the error beside its folder (a sent message's result is never overwritten). */
  async parked(job: JobRecord, reason: string): Promise<void> {
    if (!job.source || !existsSync(job.source)) return;
    const prior = readResult(job.source);
    if (prior && prior.status !== 'failed') return;
    writeFileAtomic(resultPath(job.source), JSON.stringify({ status: 'failed', error: reason, attempts: job.attempts, messageId: job.messageId, failedAt: this.now().toISOString(), job: job.id }, null, 2));
  }
}

/** Network trouble and intermediary-internal errors are retried; refusals (98xx), bad certificates and usage errors park. */
function classifyOsci(e: unknown): DeliveryFailure {
  if (e instanceof DeliveryFailure) return e;
  const err = toOsciError(e);
  const retry = err.code === 'ERR_REMOTE' || err.code === 'ERR_INTERNAL' || err.code === 'ERR_ORDER_INTERNAL' || err.code === 'ERR_CONTROLBLOCK';
  return new DeliveryFailure(retry ? 'retry' : 'park', `${err.code}: ${err.message}`, { cause: e, code: err.code });
}

