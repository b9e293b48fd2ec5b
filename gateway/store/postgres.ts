/**
 * Replicated store: everything in one PostgreSQL schema, payloads included (1 MiB bytea chunk rows), so
 * every server process sees the same postboxes, dialogs and payloads. A message's chunk, part and
 * message rows are written in one transaction on a dedicated connection; its COMMIT (with
 * synchronous_commit on, i.e. WAL flushed) is the visibility point, and a crash before it leaves nothing.
 */
import pg from 'pg';
import { Readable } from 'node:stream';
import { OsciError } from '../../protocol/errors.ts';
import { pgParams, processCardSelection, waitingSelection } from './queries.ts';
import {
  certificateFromRow,
  committedMessage,
  groupParts,
  messageFromRow,
  participantFromRow,
  summaryFromRow,
  SUMMARY_COLUMNS,
  type CertificateRow,
  type MessageRow,
  type ParticipantRow,
  type PartRow,
  type SummaryRow,
} from './rows.ts';
import { bytesOf, fixedChunks, type ByteSource } from './streams.ts';
import type {
  BeginMessageOptions,
  CertificateInput,
  CertificateRecord,
  CertificateUsage,
  DialogRecord,
  DialogUpdate,
  MessageMeta,
  MessageSummary,
  MessageWriter,
  NewDialog,
  Participant,
  ParticipantInput,
  PartInput,
  PartRecord,
  ProcessCardInput,
  ProcessCardSelection,
  Store,
  StoredMessage,
  WaitingSelection,
} from './types.ts';
import {
  checkDate,
  checkFingerprint,
  checkId,
  checkMessageInput,
  checkOptionalText,
  checkPartInput,
  checkSameDialog,
  checkUsage,
  dialogColumns,
  dialogFromRow,
  guarded,
  isConversationId,
  messageIdTaken,
  messageIdUse,
  type MessageIdUse,
  misuse,
  newConversationId,
  notFound,
  sha256Hex,
  storeFailure,
  toMs,
  type DialogRow,
} from './values.ts';
import { createHash } from 'node:crypto';

const SCHEMA_VERSION = '1';
/** Payload chunk size: bounds the memory of a writer and of a reader to about this much per part. */
export const CHUNK_BYTES = 1024 * 1024;

function schemaSql(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.participants (id text PRIMARY KEY, name text, endpoint_url text, created bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.certificates (
  seq bigserial NOT NULL,
  fingerprint text PRIMARY KEY,
  participant_id text NOT NULL REFERENCES ${s}.participants(id),
  usage text NOT NULL CHECK (usage IN ('signature', 'cipher')),
  der bytea NOT NULL, not_before bigint NOT NULL, not_after bigint NOT NULL, added bigint NOT NULL, revoked bigint);
CREATE INDEX IF NOT EXISTS certificates_owner ON ${s}.certificates(participant_id, usage);
CREATE TABLE IF NOT EXISTS ${s}.dialogs (
  conversation_id text PRIMARY KEY, client_fingerprint text NOT NULL, sequence_number bigint NOT NULL,
  challenge text NOT NULL, open boolean NOT NULL, created bigint NOT NULL, last_activity bigint NOT NULL,
  pending_receptions text NOT NULL, data text NOT NULL);
CREATE INDEX IF NOT EXISTS dialogs_last_activity ON ${s}.dialogs(last_activity);
CREATE TABLE IF NOT EXISTS ${s}.issued_message_ids (
  message_id text PRIMARY KEY, client_fingerprint text NOT NULL, issued bigint NOT NULL, consumed bigint);
CREATE TABLE IF NOT EXISTS ${s}.messages (
  seq bigserial NOT NULL,
  message_id text PRIMARY KEY, originator_id text NOT NULL, addressee_id text NOT NULL, subject text,
  soap_xml bytea NOT NULL, creation bigint NOT NULL, forwarding bigint, reception bigint,
  recent_modification bigint NOT NULL, inspections text NOT NULL);
CREATE INDEX IF NOT EXISTS messages_waiting ON ${s}.messages(addressee_id, reception, creation);
CREATE INDEX IF NOT EXISTS messages_originator ON ${s}.messages(originator_id, creation);
CREATE INDEX IF NOT EXISTS messages_modified ON ${s}.messages(recent_modification);
CREATE TABLE IF NOT EXISTS ${s}.message_parts (
  message_id text NOT NULL REFERENCES ${s}.messages(message_id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  part_index integer NOT NULL, content_id text NOT NULL, content_type text NOT NULL,
  size bigint NOT NULL, sha256 text NOT NULL, PRIMARY KEY (message_id, part_index));
CREATE TABLE IF NOT EXISTS ${s}.message_part_chunks (
  message_id text NOT NULL, part_index integer NOT NULL, seq integer NOT NULL, data bytea NOT NULL,
  PRIMARY KEY (message_id, part_index, seq),
  FOREIGN KEY (message_id, part_index) REFERENCES ${s}.message_parts(message_id, part_index) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
-- payloads arrive encrypted: compressing them only costs CPU
ALTER TABLE ${s}.message_part_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
`;
}

const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** 64-bit advisory lock key of a MessageId, held by its writer's transaction. */
function writerLockKey(schema: string, messageId: string): string {
  return createHash('sha256').update(`${schema}\0${messageId}`, 'utf8').digest().readBigInt64BE(0).toString();
}

export interface PgStoreOptions {
  connectionString: string;
  /** Schema holding the tables (created by `migrate`); lower-case identifier. */
  schema: string;
  /** Pool size; each open message writer and running dialog update holds one connection. */
  maxConnections?: number;
}

type Queryable = pg.Pool | pg.PoolClient;

export class PgStore implements Store {
  readonly kind = 'postgres' as const;
  readonly keepsPartFiles = false;
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly s: string;
  private closed = false;

  constructor(opts: PgStoreOptions) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) throw misuse('schema must be a lower-case SQL identifier');
    this.schema = opts.schema;
    this.s = `"${opts.schema}"`;
    this.pool = new pg.Pool({ connectionString: opts.connectionString, max: opts.maxConnections ?? 10 });
    // An idle client losing its connection must not crash the process; the next query reports it.
    this.pool.on('error', () => undefined);
    // Nor a checked-out one: pg-pool removes its listener on checkout, and a connection lost between two queries
    // (PostgreSQL restarted while a writer holds its transaction) would be an uncaught 'error' ending the process.
    // The next query on that client fails instead, and it is released as broken.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** Table name qualified with the schema. */
  t(name: string): string {
    return `${this.s}.${name}`;
  }

  private async q<R extends pg.QueryResultRow>(sql: string, values: unknown[] = [], db: Queryable = this.pool): Promise<pg.QueryResult<R>> {
    return db.query<R>(sql, values);
  }

  /** Runs `fn` in a transaction on a dedicated client; rolls back on any error and rethrows it. */
  async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async migrate(): Promise<void> {
    await guarded(() =>
      this.tx(async (c) => {
        // Serialises concurrent migrations (two processes starting at once).
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`amtsbote:migrate:${this.schema}`]);
        const current = async (): Promise<string | undefined> => {
          const exists = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [this.t('meta')]);
          if (exists.rows[0]?.t === null) return undefined;
          return (await c.query<{ value: string }>(`SELECT value FROM ${this.t('meta')} WHERE key = 'schema_version'`)).rows[0]?.value;
        };
        const version = await current();
        if (version === SCHEMA_VERSION) return; // no DDL on a live schema: it would lock tables that running writers use
        if (version !== undefined) throw new OsciError('ERR_INTERNAL', 'store schema version is not supported');
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.s}`);
        await c.query(schemaSql(this.s));
        await c.query(`INSERT INTO ${this.t('meta')} (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO NOTHING`, [SCHEMA_VERSION]);
      }),
    );
    await this.recover();
  }

  /** Nothing to clean: an unfinished writer's rows die with its transaction (deferred foreign keys keep chunks from outliving it). */
  async recover(): Promise<void> {
    await guarded(() => this.q('SELECT 1'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await guarded(() => this.pool.end());
  }

  // participants and certificates

  async upsertParticipant(p: ParticipantInput): Promise<void> {
    const id = checkId(p.id, 'participant id');
    const name = checkOptionalText(p.name, 'name');
    const endpointUrl = checkOptionalText(p.endpointUrl, 'endpointUrl');
    await guarded(() =>
      this.q(
        `INSERT INTO ${this.t('participants')} AS p (id, name, endpoint_url, created) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET name = COALESCE(excluded.name, p.name), endpoint_url = COALESCE(excluded.endpoint_url, p.endpoint_url)`,
        [id, name ?? null, endpointUrl ?? null, Date.now()],
      ),
    );
  }

  async getParticipant(id: string): Promise<Participant | undefined> {
    checkId(id, 'participant id');
    return guarded(async () => {
      const row = (await this.q<ParticipantRow>(`SELECT * FROM ${this.t('participants')} WHERE id = $1`, [id])).rows[0];
      return row === undefined ? undefined : participantFromRow(row);
    });
  }

  async listParticipants(): Promise<Participant[]> {
    return guarded(async () => (await this.q<ParticipantRow>(`SELECT * FROM ${this.t('participants')} ORDER BY id COLLATE "C"`)).rows.map(participantFromRow));
  }

  async addCertificate(c: CertificateInput): Promise<CertificateRecord> {
    const participantId = checkId(c.participantId, 'participantId');
    const usage = checkUsage(c.usage);
    if (!Buffer.isBuffer(c.der) || c.der.length === 0) throw misuse('der must be a non-empty Buffer');
    const notBefore = toMs(checkDate(c.notBefore, 'notBefore'));
    const notAfter = toMs(checkDate(c.notAfter, 'notAfter'));
    if (notAfter < notBefore) throw misuse('notAfter lies before notBefore');
    const fingerprint = sha256Hex(c.der);
    return guarded(async () => {
      let inserted: CertificateRow | undefined;
      try {
        inserted = (
          await this.q<CertificateRow>(
            `INSERT INTO ${this.t('certificates')} (fingerprint, participant_id, usage, der, not_before, not_after, added)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (fingerprint) DO NOTHING RETURNING *`,
            [fingerprint, participantId, usage, c.der, notBefore, notAfter, Date.now()],
          )
        ).rows[0];
      } catch (err) {
        if (pgCode(err) === FOREIGN_KEY_VIOLATION) throw notFound('participant');
        throw err;
      }
      if (inserted !== undefined) return certificateFromRow(inserted);
      const existing = (await this.q<CertificateRow>(`SELECT * FROM ${this.t('certificates')} WHERE fingerprint = $1`, [fingerprint])).rows[0];
      if (existing === undefined) throw storeFailure(new Error('certificate vanished during insert'));
      if (existing.participant_id !== participantId || existing.usage !== usage) {
        throw misuse('certificate is already registered for another participant or usage');
      }
      return certificateFromRow(existing);
    });
  }

  async findCertificate(fingerprintHex: string): Promise<CertificateRecord | undefined> {
    const fp = checkFingerprint(fingerprintHex);
    return guarded(async () => {
      const row = (await this.q<CertificateRow>(`SELECT * FROM ${this.t('certificates')} WHERE fingerprint = $1`, [fp])).rows[0];
      return row === undefined ? undefined : certificateFromRow(row);
    });
  }

  async certificatesOf(participantId: string, usage: CertificateUsage, at?: Date): Promise<CertificateRecord[]> {
    checkId(participantId, 'participantId');
    checkUsage(usage);
    const when = at === undefined ? undefined : toMs(checkDate(at, 'at'));
    return guarded(async () => {
      const r =
        when === undefined
          ? await this.q<CertificateRow>(
              `SELECT * FROM ${this.t('certificates')} WHERE participant_id = $1 AND usage = $2 ORDER BY not_before DESC, seq DESC`,
              [participantId, usage],
            )
          : await this.q<CertificateRow>(
              `SELECT * FROM ${this.t('certificates')} WHERE participant_id = $1 AND usage = $2 AND not_before <= $3 AND not_after >= $3
               AND (revoked IS NULL OR revoked > $3) ORDER BY not_before DESC, seq DESC`,
              [participantId, usage, when],
            );
      return r.rows.map(certificateFromRow);
    });
  }

  async revokeCertificate(fingerprintHex: string, at: Date): Promise<void> {
    const fp = checkFingerprint(fingerprintHex);
    const when = toMs(checkDate(at, 'at'));
    await guarded(async () => {
      const r = await this.q(`UPDATE ${this.t('certificates')} SET revoked = LEAST(COALESCE(revoked, $1), $1) WHERE fingerprint = $2`, [when, fp]);
      if (r.rowCount === 0) throw notFound('certificate');
    });
  }

  // dialogs

  async createDialog(d: NewDialog): Promise<string> {
    const c = dialogColumns(d);
    return guarded(async () => {
      for (;;) {
        const id = newConversationId();
        const r = await this.q(
          `INSERT INTO ${this.t('dialogs')} (conversation_id, client_fingerprint, sequence_number, challenge, open, created, last_activity, pending_receptions, data)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (conversation_id) DO NOTHING`,
          [id, c.clientFingerprint, c.sequenceNumber, c.challenge, c.open, c.created, c.lastActivity, c.pending, c.data],
        );
        if (r.rowCount === 1) return id;
      }
    });
  }

  async getDialog(conversationId: string): Promise<DialogRecord | undefined> {
    if (!isConversationId(conversationId)) return undefined;
    return guarded(async () => {
      const row = (await this.q<DialogRow>(`SELECT * FROM ${this.t('dialogs')} WHERE conversation_id = $1`, [conversationId])).rows[0];
      return row === undefined ? undefined : dialogFromRow(row);
    });
  }

  async updateDialog<T>(conversationId: string, fn: (d: DialogRecord) => DialogUpdate<T>): Promise<T> {
    if (!isConversationId(conversationId)) throw new OsciError('ERR_DIALOG_UNKNOWN', 'unknown dialog');
    // fn's own error is rethrown unchanged; only the store's own failures become "store failure".
    let fnError: { err: unknown } | undefined;
    try {
      return await this.tx(async (c) => {
        const row = (await c.query<DialogRow>(`SELECT * FROM ${this.t('dialogs')} WHERE conversation_id = $1 FOR UPDATE`, [conversationId])).rows[0];
        if (row === undefined) throw new OsciError('ERR_DIALOG_UNKNOWN', 'unknown dialog');
        let update: DialogUpdate<T>;
        try {
          update = fn(dialogFromRow(row));
          checkSameDialog(conversationId, update.next);
        } catch (err) {
          fnError = { err };
          throw err;
        }
        const d = dialogColumns(update.next);
        await c.query(
          `UPDATE ${this.t('dialogs')} SET client_fingerprint = $1, sequence_number = $2, challenge = $3, open = $4, created = $5,
           last_activity = $6, pending_receptions = $7, data = $8 WHERE conversation_id = $9`,
          [d.clientFingerprint, d.sequenceNumber, d.challenge, d.open, d.created, d.lastActivity, d.pending, d.data, conversationId],
        );
        if (update.acknowledge !== undefined) await this.receptionIn(c, update.acknowledge.messageIds, update.acknowledge.at);
        if (update.forwarded !== undefined) await this.forwardingIn(c, update.forwarded.messageId, update.forwarded.at);
        return update.result;
      });
    } catch (err) {
      if (fnError !== undefined) throw fnError.err;
      throw storeFailure(err);
    }
  }

  async pruneDialogs(before: Date): Promise<number> {
    const when = toMs(checkDate(before, 'before'));
    return guarded(async () => (await this.q(`DELETE FROM ${this.t('dialogs')} WHERE last_activity < $1`, [when])).rowCount ?? 0);
  }

  // MessageIds (getMessageId → storeDelivery)

  async issueMessageId(messageId: string, clientFingerprint: string, at: Date): Promise<void> {
    checkId(messageId, 'messageId');
    checkId(clientFingerprint, 'clientFingerprint');
    const when = toMs(checkDate(at, 'at'));
    await guarded(async () => {
      const r = await this.q(
        `INSERT INTO ${this.t('issued_message_ids')} (message_id, client_fingerprint, issued) VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING`,
        [messageId, clientFingerprint, when],
      );
      if (r.rowCount === 0) throw messageIdTaken();
    });
  }

  async consumeMessageId(messageId: string, clientFingerprint?: string): Promise<boolean> {
    checkId(messageId, 'messageId');
    if (clientFingerprint !== undefined) checkId(clientFingerprint, 'clientFingerprint');
    return guarded(() => this.consumeIn(this.pool, messageId, clientFingerprint));
  }

  async consumeIn(db: Queryable, messageId: string, clientFingerprint: string | undefined): Promise<boolean> {
    const r =
      clientFingerprint === undefined
        ? await this.q(`UPDATE ${this.t('issued_message_ids')} SET consumed = $1 WHERE message_id = $2 AND consumed IS NULL`, [Date.now(), messageId], db)
        : await this.q(
            `UPDATE ${this.t('issued_message_ids')} SET consumed = $1 WHERE message_id = $2 AND client_fingerprint = $3 AND consumed IS NULL`,
            [Date.now(), messageId, clientFingerprint],
            db,
          );
    return r.rowCount === 1;
  }

  // messages

  async beginMessage(messageId: string, opts: BeginMessageOptions = {}): Promise<MessageWriter> {
    checkId(messageId, 'messageId');
    const issuedTo = opts.issuedTo === undefined ? undefined : checkId(opts.issuedTo, 'issuedTo');
    return guarded(async () => {
      const c = await this.pool.connect();
      let use: MessageIdUse;
      try {
        await c.query('BEGIN');
        // The receipt promises durability: never let a server-wide synchronous_commit=off weaken it.
        await c.query('SET LOCAL synchronous_commit = on');
        // One writer per MessageId across all processes; a second one fails at once instead of waiting.
        const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [writerLockKey(this.schema, messageId)]);
        if (lock.rows[0]?.ok !== true) throw messageIdTaken();
        if ((await c.query(`SELECT 1 FROM ${this.t('messages')} WHERE message_id = $1`, [messageId])).rowCount !== 0) throw messageIdTaken();
        use = messageIdUse(issuedTo === undefined ? undefined : await this.issueOf(c, messageId), issuedTo, opts.acceptForeign === true);
      } catch (err) {
        let broken = false;
        await c.query('ROLLBACK').catch(() => (broken = true));
        c.release(broken);
        throw err;
      }
      return new PgWriter(this, c, messageId, use);
    });
  }

  async issueOf(db: Queryable, messageId: string): Promise<{ clientFingerprint: string; consumed: boolean } | undefined> {
    const r = await this.q<{ client_fingerprint: string; consumed: unknown }>(
      `SELECT client_fingerprint, consumed FROM ${this.t('issued_message_ids')} WHERE message_id = $1`,
      [messageId],
      db,
    );
    const row = r.rows[0];
    return row === undefined ? undefined : { clientFingerprint: row.client_fingerprint, consumed: row.consumed !== null };
  }

  private async partsOf(messageIds: string[]): Promise<Map<string, PartRecord[]>> {
    if (messageIds.length === 0) return new Map();
    const r = await this.q<PartRow>(`SELECT * FROM ${this.t('message_parts')} WHERE message_id = ANY($1) ORDER BY message_id, part_index`, [messageIds]);
    return groupParts(r.rows);
  }

  async getMessage(messageId: string): Promise<StoredMessage | undefined> {
    checkId(messageId, 'messageId');
    return guarded(async () => {
      const row = (await this.q<MessageRow>(`SELECT ${SUMMARY_COLUMNS}, soap_xml FROM ${this.t('messages')} WHERE message_id = $1`, [messageId])).rows[0];
      return row === undefined ? undefined : messageFromRow(row, (await this.partsOf([messageId])).get(messageId) ?? []);
    });
  }

  async openPart(messageId: string, index: number): Promise<Readable> {
    checkId(messageId, 'messageId');
    if (!Number.isSafeInteger(index) || index < 0) throw notFound('part');
    const found = await guarded(async () => (await this.q(`SELECT 1 FROM ${this.t('message_parts')} WHERE message_id = $1 AND part_index = $2`, [messageId, index])).rowCount);
    if (found === 0) throw notFound('part');
    const chunkSql = `SELECT data FROM ${this.t('message_part_chunks')} WHERE message_id = $1 AND part_index = $2 AND seq = $3`;
    // Committed chunks never change, so one query per chunk needs no long-lived transaction or cursor.
    const pool = this.pool;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let seq = 0; ; seq++) {
        let row: { data: Buffer } | undefined;
        try {
          // Text format (hex bytea): pg 8 decodes binary-format fields as UTF-8 text, which corrupts bytes.
          row = (await pool.query<{ data: Buffer }>(chunkSql, [messageId, index, seq])).rows[0];
        } catch (err) {
          throw storeFailure(err);
        }
        if (row === undefined) return;
        yield row.data;
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: CHUNK_BYTES });
  }

  async listWaiting(addresseeId: string, opts: WaitingSelection = {}): Promise<StoredMessage[]> {
    const p = pgParams();
    const sel = waitingSelection(addresseeId, opts, p);
    return guarded(async () => {
      const limit = sel.limit === undefined ? '' : ` LIMIT ${sel.limit}`;
      const rows = (await this.q<MessageRow>(`SELECT ${SUMMARY_COLUMNS}, soap_xml FROM ${this.t('messages')} WHERE ${sel.where} ORDER BY ${sel.orderBy}${limit}`, p.values)).rows;
      const parts = await this.partsOf(rows.map((r) => r.message_id));
      return rows.map((r) => messageFromRow(r, parts.get(r.message_id) ?? []));
    });
  }

  private async receptionIn(db: Queryable, messageIds: string[], at: Date): Promise<void> {
    if (!Array.isArray(messageIds)) throw misuse('messageIds must be an array');
    const ids = messageIds.map((id) => checkId(id, 'messageId'));
    const when = toMs(checkDate(at, 'at'));
    if (ids.length === 0) return;
    await this.q(
      `UPDATE ${this.t('messages')} SET reception = $1, recent_modification = GREATEST(recent_modification, $1)
       WHERE message_id = ANY($2) AND reception IS NULL`,
      [when, ids],
      db,
    );
  }

  async recordReception(messageIds: string[], at: Date): Promise<void> {
    await guarded(() => this.receptionIn(this.pool, messageIds, at));
  }

  async recordForwarding(messageId: string, at: Date): Promise<void> {
    await guarded(() => this.forwardingIn(this.pool, messageId, at));
  }

  /** Forwarding (first time wins) and RecentModification; unknown id → ERR_NOT_FOUND. */
  private async forwardingIn(db: Queryable, messageId: string, at: Date): Promise<void> {
    const when = toMs(checkDate(at, 'at'));
    if ((await this.q(`SELECT 1 FROM ${this.t('messages')} WHERE message_id = $1`, [checkId(messageId, 'messageId')], db)).rowCount === 0) throw notFound('message');
    await this.q(
      `UPDATE ${this.t('messages')} SET forwarding = $1, recent_modification = GREATEST(recent_modification, $1) WHERE message_id = $2 AND forwarding IS NULL`,
      [when, messageId],
      db,
    );
  }

  async listProcessCards(participantId: string, sel: ProcessCardSelection): Promise<MessageSummary[]> {
    const p = pgParams();
    const s = processCardSelection(participantId, sel, p);
    return guarded(async () => {
      const limit = s.limit === undefined ? '' : ` LIMIT ${s.limit}`;
      const rows = (await this.q<SummaryRow>(`SELECT ${SUMMARY_COLUMNS} FROM ${this.t('messages')} WHERE ${s.where} ORDER BY ${s.orderBy}${limit}`, p.values)).rows;
      const parts = await this.partsOf(rows.map((r) => r.message_id));
      return rows.map((r) => summaryFromRow(r, parts.get(r.message_id) ?? []));
    });
  }
}

/** Holds one connection with an open transaction from begin to commit/abort. */
class PgWriter implements MessageWriter {
  private readonly parts: PartRecord[] = [];
  private state: 'open' | 'busy' | 'failed' | 'done' = 'open';

  constructor(
    private readonly store: PgStore,
    private readonly client: pg.PoolClient,
    readonly messageId: string,
    private readonly use: MessageIdUse,
  ) {}

  private enter(): void {
    if (this.state === 'busy') throw misuse('message writer is busy with another part');
    if (this.state === 'failed') throw misuse('message writer failed; abort it');
    if (this.state === 'done') throw misuse('message writer is finished');
    this.state = 'busy';
  }

  async addPart(meta: PartInput, data: ByteSource): Promise<PartRecord> {
    const m = checkPartInput(meta);
    this.enter();
    const index = this.parts.length;
    try {
      const hash = createHash('sha256');
      let size = 0;
      let seq = 0;
      const insert = `INSERT INTO ${this.store.t('message_part_chunks')} (message_id, part_index, seq, data) VALUES ($1, $2, $3, $4)`;
      for await (const chunk of fixedChunks(bytesOf(data), CHUNK_BYTES)) {
        hash.update(chunk);
        size += chunk.length;
        await this.client.query(insert, [this.messageId, index, seq++, chunk]);
      }
      const part: PartRecord = { index, ...m, size, sha256Hex: hash.digest('hex') };
      await this.client.query(
        `INSERT INTO ${this.store.t('message_parts')} (message_id, part_index, content_id, content_type, size, sha256) VALUES ($1, $2, $3, $4, $5, $6)`,
        [this.messageId, index, part.contentId, part.contentType, part.size, part.sha256Hex],
      );
      this.parts.push(part);
      this.state = 'open';
      return { ...part };
    } catch (err) {
      // The transaction may be aborted; only abort() is left.
      this.state = 'failed';
      throw storeFailure(err);
    }
  }

  async commit(meta: MessageMeta, card: ProcessCardInput): Promise<StoredMessage> {
    const m = checkMessageInput(meta, card);
    this.enter();
    try {
      if (this.use.kind === 'issued' && !(await this.store.consumeIn(this.client, this.messageId, this.use.to))) throw messageIdTaken();
      if (this.use.kind === 'foreign' && (await this.store.issueOf(this.client, this.messageId)) !== undefined) throw messageIdTaken();
      await this.client.query(
        `INSERT INTO ${this.store.t('messages')} (message_id, originator_id, addressee_id, subject, soap_xml, creation, recent_modification, inspections)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`,
        [this.messageId, m.originatorId, m.addresseeId, m.subject ?? null, m.soapXml, m.creation, m.inspections],
      );
      await this.client.query('COMMIT');
    } catch (err) {
      this.state = 'failed';
      await this.abort().catch(() => undefined);
      throw pgCode(err) === UNIQUE_VIOLATION ? messageIdTaken() : storeFailure(err);
    }
    this.state = 'done';
    this.client.release();
    return committedMessage(this.messageId, m, this.parts);
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    let broken = false;
    try {
      await this.client.query('ROLLBACK');
    } catch {
      broken = true;
    } finally {
      this.client.release(broken);
    }
  }
}
