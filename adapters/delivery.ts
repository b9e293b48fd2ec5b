/**
 * The narrow contract every delivery adapter implements (hot folder, HTTP DMS, SMTP): deliver one spooled
 * message, idempotently. Success resolves with a short detail for the job record; failure throws. A
 * `DeliveryFailure` says whether the job is retried (transient: 5xx, timeout, network) or parked at once
 * (permanent: 4xx, refused recipient, misconfiguration); any other error counts as transient.
 */
import { OsciError, type ErrorCode } from '../protocol/errors.ts';
import type { MessageMeta } from './inbox.ts';

export interface SpooledMessage {
  meta: MessageMeta;
  mailbox: string;
  /** Folder name (messageFolderName of the MessageId), also the name of the exported folder. */
  folderName: string;
  /** Absolute path of the spool folder holding message.json, the XJustiz record, attachments, process card. */
  dir: string;
}

export interface DeliveryContext {
  jobId: number;
  /** 1-based attempt number. */
  attempt: number;
  /** Where the message's other destinations put it (for a notification's "where to find it"). */
  locations: string[];
}

export interface DeliveryAdapter {
  readonly name: string;
  readonly type: string;
  /** Delivers; must be idempotent for the same MessageId (a job may run again after a crash or a lost answer). */
  deliver(msg: SpooledMessage, ctx: DeliveryContext): Promise<string>;
  /** Where staff find a message this adapter delivered. */
  location?(msg: SpooledMessage): string;
  close?(): Promise<void>;
}

export type Disposition = 'retry' | 'park';

export class DeliveryFailure extends OsciError {
  constructor(
    readonly disposition: Disposition,
    message: string,
    options?: { cause?: unknown; code?: ErrorCode },
  ) {
    super(options?.code ?? (disposition === 'park' ? 'ERR_RECIPIENT_REFUSED' : 'ERR_REMOTE'), message, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

export function dispositionOf(e: unknown): Disposition {
  return e instanceof DeliveryFailure ? e.disposition : 'retry';
}

/** One line for the job record: the error's code and message, never stack traces or content. */
export function describeFailure(e: unknown): string {
  if (e instanceof OsciError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return `${(e as NodeJS.ErrnoException).code ?? e.name}: ${e.message}`;
  return String(e);
}
