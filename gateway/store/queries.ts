/**
 * WHERE/ORDER clauses of the selection queries (fetchDelivery and fetchProcessCard SelectionRule,
 * osci-protocol.md §1), shared by both backends. Values never enter the SQL text: `Params.add` returns
 * the backend's placeholder.
 */
import type { ProcessCardSelection, WaitingSelection } from './types.ts';
import { checkDate, checkId, checkLimit, misuse, toMs } from './values.ts';

export interface Params {
  readonly values: unknown[];
  /** Adds a value and returns its placeholder (`?` for SQLite, `$n` for PostgreSQL). */
  add(value: unknown): string;
}

export function sqliteParams(): Params {
  const values: unknown[] = [];
  return { values, add: (v) => (values.push(v), '?') };
}

export function pgParams(): Params {
  const values: unknown[] = [];
  return { values, add: (v) => `$${values.push(v)}` };
}

export interface Selection {
  where: string;
  orderBy: string;
  limit: number | undefined;
}

/** Deliveries waiting for an addressee: no Reception yet, oldest first. */
export function waitingSelection(addresseeId: string, opts: WaitingSelection, p: Params): Selection {
  const where = [`addressee_id = ${p.add(checkId(addresseeId, 'addresseeId'))}`, 'reception IS NULL'];
  if (opts.messageId !== undefined) where.push(`message_id = ${p.add(checkId(opts.messageId, 'messageId'))}`);
  if (opts.receivedAfter !== undefined) where.push(`creation > ${p.add(toMs(checkDate(opts.receivedAfter, 'receivedAfter')))}`);
  return { where: where.join(' AND '), orderBy: 'creation, seq', limit: checkLimit(opts.limit, 'limit') };
}

export function processCardSelection(participantId: string, sel: ProcessCardSelection, p: Params): Selection {
  const id = checkId(participantId, 'participantId');
  const where: string[] = [];
  switch (sel.role) {
    case undefined:
      where.push(`(originator_id = ${p.add(id)} OR addressee_id = ${p.add(id)})`);
      break;
    case 'originator':
      where.push(`originator_id = ${p.add(id)}`);
      break;
    case 'addressee':
      where.push(`addressee_id = ${p.add(id)}`);
      break;
    default:
      throw misuse('role must be originator or addressee');
  }
  if (sel.messageIds !== undefined) {
    if (!Array.isArray(sel.messageIds) || sel.messageIds.length === 0) throw misuse('messageIds must be a non-empty array');
    where.push(`message_id IN (${sel.messageIds.map((m) => p.add(checkId(m, 'messageId'))).join(', ')})`);
  }
  if (sel.receivedFrom !== undefined) where.push(`creation >= ${p.add(toMs(checkDate(sel.receivedFrom, 'receivedFrom')))}`);
  if (sel.receivedTo !== undefined) where.push(`creation < ${p.add(toMs(checkDate(sel.receivedTo, 'receivedTo')))}`);
  if (sel.modifiedSince !== undefined) {
    where.push(`recent_modification > ${p.add(toMs(checkDate(sel.modifiedSince, 'modifiedSince')))}`);
  }
  if (sel.noReception === true) where.push('reception IS NULL');
  return {
    where: where.join(' AND '),
    orderBy: sel.modifiedSince !== undefined ? 'recent_modification, seq' : 'creation, seq',
    limit: checkLimit(sel.quantity, 'quantity'),
  };
}
