/**
 * Row shapes and row → record mapping shared by both backends (same column names in both schemas;
 * PostgreSQL returns bigint columns as strings, SQLite as numbers).
 */
import type { CertificateRecord, CertificateUsage, MessageSummary, Participant, PartRecord, StoredMessage } from './types.ts';
import { fromJsonText, fromMs, optFromMs, type MessageInput } from './values.ts';

type Num = number | string;

export interface ParticipantRow {
  id: string;
  name: string | null;
  endpoint_url: string | null;
  created: Num;
}

export function participantFromRow(r: ParticipantRow): Participant {
  const p: Participant = { id: r.id, created: fromMs(r.created) };
  if (r.name !== null) p.name = r.name;
  if (r.endpoint_url !== null) p.endpointUrl = r.endpoint_url;
  return p;
}

export interface CertificateRow {
  fingerprint: string;
  participant_id: string;
  usage: string;
  der: Buffer | Uint8Array;
  not_before: Num;
  not_after: Num;
  added: Num;
  revoked: Num | null;
}

export function certificateFromRow(r: CertificateRow): CertificateRecord {
  const c: CertificateRecord = {
    fingerprint: r.fingerprint,
    participantId: r.participant_id,
    usage: r.usage as CertificateUsage,
    der: Buffer.from(r.der),
    notBefore: fromMs(r.not_before),
    notAfter: fromMs(r.not_after),
    added: fromMs(r.added),
  };
  const revoked = optFromMs(r.revoked);
  if (revoked !== undefined) c.revoked = revoked;
  return c;
}

/** Column list of a message summary (everything but the SOAP XML). */
export const SUMMARY_COLUMNS =
  'message_id, originator_id, addressee_id, subject, creation, forwarding, reception, recent_modification, inspections';

export interface SummaryRow {
  message_id: string;
  originator_id: string;
  addressee_id: string;
  subject: string | null;
  creation: Num;
  forwarding: Num | null;
  reception: Num | null;
  recent_modification: Num;
  inspections: string;
}

export interface MessageRow extends SummaryRow {
  soap_xml: Buffer | Uint8Array;
}

export interface PartRow {
  message_id: string;
  part_index: Num;
  content_id: string;
  content_type: string;
  size: Num;
  sha256: string;
}

export function partFromRow(r: PartRow): PartRecord {
  return { index: Number(r.part_index), contentId: r.content_id, contentType: r.content_type, size: Number(r.size), sha256Hex: r.sha256 };
}

export function summaryFromRow(r: SummaryRow, parts: PartRecord[]): MessageSummary {
  const m: MessageSummary = {
    messageId: r.message_id,
    originatorId: r.originator_id,
    addresseeId: r.addressee_id,
    creation: fromMs(r.creation),
    recentModification: fromMs(r.recent_modification),
    inspections: fromJsonText(r.inspections),
    parts,
  };
  if (r.subject !== null) m.subject = r.subject;
  const forwarding = optFromMs(r.forwarding);
  if (forwarding !== undefined) m.forwarding = forwarding;
  const reception = optFromMs(r.reception);
  if (reception !== undefined) m.reception = reception;
  return m;
}

export function messageFromRow(r: MessageRow, parts: PartRecord[]): StoredMessage {
  return { ...summaryFromRow(r, parts), soapXml: Buffer.from(r.soap_xml) };
}

/** The message as its rows read right after the commit that wrote them (no Forwarding, no Reception yet). */
export function committedMessage(messageId: string, m: MessageInput, parts: PartRecord[]): StoredMessage {
  const row: MessageRow = {
    message_id: messageId,
    originator_id: m.originatorId,
    addressee_id: m.addresseeId,
    subject: m.subject ?? null,
    creation: m.creation,
    forwarding: null,
    reception: null,
    recent_modification: m.creation,
    inspections: m.inspections,
    soap_xml: m.soapXml,
  };
  return messageFromRow(row, parts.map((p) => ({ ...p })));
}

/** Groups part rows by MessageId, each list ordered by index. */
export function groupParts(rows: PartRow[]): Map<string, PartRecord[]> {
  const byMessage = new Map<string, PartRecord[]>();
  for (const r of rows) {
    let list = byMessage.get(r.message_id);
    if (list === undefined) byMessage.set(r.message_id, (list = []));
    list.push(partFromRow(r));
  }
  for (const list of byMessage.values()) list.sort((a, b) => a.index - b.index);
  return byMessage;
}
