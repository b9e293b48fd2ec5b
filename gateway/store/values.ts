/** Input checks, conversions and error helpers shared by both store backends. */
import { createHash, randomInt } from 'node:crypto';
import { OsciError, isOsciError } from '../../protocol/errors.ts';
import type { CertificateUsage, DialogRecord, JsonValue, MessageMeta, NewDialog, PartInput, ProcessCardInput } from './types.ts';

/** The one message a store-internal failure carries; the cause stays for the log (never on the wire). */
export function storeFailure(cause: unknown): OsciError {
  return isOsciError(cause) ? cause : new OsciError('ERR_INTERNAL', 'store failure', { cause });
}

export function misuse(message: string): OsciError {
  return new OsciError('ERR_USAGE', message);
}

export function notFound(what: string): OsciError {
  return new OsciError('ERR_NOT_FOUND', `${what} not found`);
}

/** 9801: MessageId not issued by this supplier, already used, or already stored. */
export function messageIdTaken(): OsciError {
  return new OsciError('ERR_MESSAGE_ID', 'MessageId not issued, already used or already stored');
}

/** How a writer may use its MessageId: issued to the client (consumed at commit), the client's own, or unchecked. */
export type MessageIdUse = { kind: 'issued'; to: string } | { kind: 'foreign' } | { kind: 'unchecked' };

/**
 * Decides a storeDelivery's MessageId from its issue record (`issued`: to whom, and whether consumed): issued to
 * this client and unused, or never issued and foreign ones accepted; ERR_MESSAGE_ID otherwise (9801).
 */
export function messageIdUse(issued: { clientFingerprint: string; consumed: boolean } | undefined, issuedTo: string | undefined, acceptForeign: boolean): MessageIdUse {
  if (issuedTo === undefined) return { kind: 'unchecked' };
  if (issued === undefined) {
    if (acceptForeign) return { kind: 'foreign' };
    throw messageIdTaken();
  }
  if (issued.clientFingerprint !== issuedTo || issued.consumed) throw messageIdTaken();
  return { kind: 'issued', to: issuedTo };
}

/** Runs `fn`, turning every non-OsciError into ERR_INTERNAL "store failure". */
export async function guarded<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw storeFailure(err);
  }
}

const MAX_ID = 1024;

export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID) {
    throw misuse(`${what} must be a non-empty string of at most ${MAX_ID} characters`);
  }
  return value;
}

export function checkOptionalText(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw misuse(`${what} must be a string`);
  return value;
}

export function checkDate(value: unknown, what: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw misuse(`${what} must be a valid Date`);
  return value;
}

export function checkFingerprint(value: unknown): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) {
    throw misuse('certificate fingerprint must be 64 hex digits (SHA-256)');
  }
  return value.toLowerCase();
}

export function checkUsage(value: unknown): CertificateUsage {
  if (value !== 'signature' && value !== 'cipher') throw misuse('certificate usage must be signature or cipher');
  return value;
}

export function checkLimit(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw misuse(`${what} must be a positive integer`);
  return value;
}

export function checkPartInput(meta: PartInput): PartInput {
  return { contentId: checkId(meta.contentId, 'contentId'), contentType: checkId(meta.contentType, 'contentType') };
}

/** ConversationId (XSD `Number`, `\d+`): 18 random decimal digits, so ids cannot be guessed. */
export function newConversationId(): string {
  return `${randomInt(1, 10)}${String(randomInt(0, 1e8)).padStart(8, '0')}${String(randomInt(0, 1e9)).padStart(9, '0')}`;
}

export function isConversationId(value: string): boolean {
  return /^\d{1,30}$/.test(value);
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export const toMs = (d: Date): number => d.getTime();
export const fromMs = (v: number | string | bigint): Date => new Date(Number(v));
export const optFromMs = (v: number | string | bigint | null | undefined): Date | undefined =>
  v === null || v === undefined ? undefined : fromMs(v);

export function toJsonText(value: JsonValue, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new OsciError('ERR_USAGE', `${what} must be JSON-serialisable`, { cause: err });
  }
  if (text === undefined) throw misuse(`${what} must be JSON-serialisable`);
  return text;
}

export function fromJsonText(text: string): JsonValue {
  return JSON.parse(text) as JsonValue;
}

/** Validates a dialog before it is written; returns the column values shared by both backends. */
export function dialogColumns(d: NewDialog): {
  clientFingerprint: string;
  sequenceNumber: number;
  challenge: string;
  open: boolean;
  created: number;
  lastActivity: number;
  pending: string;
  data: string;
} {
  if (!Number.isSafeInteger(d.sequenceNumber) || d.sequenceNumber < -1) throw misuse('sequenceNumber must be an integer ≥ -1 (-1: right after initDialog)');
  if (typeof d.challenge !== 'string') throw misuse('challenge must be a string');
  if (typeof d.open !== 'boolean') throw misuse('open must be a boolean');
  if (!Array.isArray(d.pendingReceptions) || d.pendingReceptions.some((m) => typeof m !== 'string')) {
    throw misuse('pendingReceptions must be an array of MessageIds');
  }
  return {
    clientFingerprint: checkId(d.clientFingerprint, 'clientFingerprint'),
    sequenceNumber: d.sequenceNumber,
    challenge: d.challenge,
    open: d.open,
    created: toMs(checkDate(d.created, 'created')),
    lastActivity: toMs(checkDate(d.lastActivity, 'lastActivity')),
    pending: toJsonText(d.pendingReceptions, 'pendingReceptions'),
    data: toJsonText(d.data, 'data'),
  };
}

export interface DialogRow {
  conversation_id: string;
  client_fingerprint: string;
  sequence_number: number | string;
  challenge: string;
  open: number | boolean;
  created: number | string;
  last_activity: number | string;
  pending_receptions: string;
  data: string;
}

export function dialogFromRow(r: DialogRow): DialogRecord {
  return {
    conversationId: r.conversation_id,
    clientFingerprint: r.client_fingerprint,
    sequenceNumber: Number(r.sequence_number),
    challenge: r.challenge,
    open: r.open === true || r.open === 1,
    created: fromMs(r.created),
    lastActivity: fromMs(r.last_activity),
    pendingReceptions: fromJsonText(r.pending_receptions) as string[],
    data: fromJsonText(r.data),
  };
}

/** The error `updateDialog` rethrows when `fn` changed the ConversationId. */
export function checkSameDialog(id: string, next: DialogRecord): void {
  if (next.conversationId !== id) throw misuse('updateDialog must not change the ConversationId');
}

/** Validated column values of a message row. */
export interface MessageInput {
  originatorId: string;
  addresseeId: string;
  subject: string | undefined;
  soapXml: Buffer;
  creation: number;
  inspections: string;
}

export function checkMessageInput(meta: MessageMeta, card: ProcessCardInput): MessageInput {
  if (!Buffer.isBuffer(meta.soapXml)) throw misuse('soapXml must be a Buffer');
  return {
    originatorId: checkId(meta.originatorId, 'originatorId'),
    addresseeId: checkId(meta.addresseeId, 'addresseeId'),
    subject: checkOptionalText(card.subject, 'subject'),
    soapXml: meta.soapXml,
    creation: toMs(checkDate(card.creation, 'creation')),
    inspections: toJsonText(card.inspections, 'inspections'),
  };
}
