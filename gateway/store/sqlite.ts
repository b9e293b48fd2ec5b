/**
 * Embedded store: SQLite (WAL, synchronous=NORMAL plus a group-committed fdatasync of the WAL after every write,
 * wal-sync.ts) at `<dataDir>/amtsbote.sqlite`, payload files under `<dataDir>/payloads/` (payloads.ts).
 * better-sqlite3 is synchronous, so every transaction here is short and never spans an await; payload I/O and
 * the WAL flush happen outside transactions, and no write method resolves before its commit is on disk.
 */
import Database from 'better-sqlite3';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { OsciError } from '../../protocol/errors.ts';
import { PayloadFiles } from './payloads.ts';
import { WalSync } from './wal-sync.ts';
import { processCardSelection, sqliteParams, waitingSelection } from './queries.ts';
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
import type { ByteSource } from './streams.ts';
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
  PartFile,
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
  type MessageInput,
} from './values.ts';

const SCHEMA_VERSION = '1';
const DB_FILE = 'amtsbote.sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
  id TEXT PRIMARY KEY, name TEXT, endpoint_url TEXT, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
  fingerprint TEXT PRIMARY KEY,
  participant_id TEXT NOT NULL REFERENCES participants(id),
  usage TEXT NOT NULL CHECK (usage IN ('signature', 'cipher')),
  der BLOB NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,
  added INTEGER NOT NULL, revoked INTEGER);
CREATE INDEX IF NOT EXISTS certificates_owner ON certificates(participant_id, usage);
CREATE TABLE IF NOT EXISTS dialogs (
  conversation_id TEXT PRIMARY KEY, client_fingerprint TEXT NOT NULL, sequence_number INTEGER NOT NULL,
  challenge TEXT NOT NULL, open INTEGER NOT NULL, created INTEGER NOT NULL, last_activity INTEGER NOT NULL,
  pending_receptions TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dialogs_last_activity ON dialogs(last_activity);
CREATE TABLE IF NOT EXISTS issued_message_ids (
  message_id TEXT PRIMARY KEY, client_fingerprint TEXT NOT NULL, issued INTEGER NOT NULL, consumed INTEGER);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE, originator_id TEXT NOT NULL, addressee_id TEXT NOT NULL, subject TEXT,
  soap_xml BLOB NOT NULL, creation INTEGER NOT NULL, forwarding INTEGER, reception INTEGER,
  recent_modification INTEGER NOT NULL, inspections TEXT NOT NULL, payload_dir TEXT NOT NULL UNIQUE);
CREATE INDEX IF NOT EXISTS messages_waiting ON messages(addressee_id, reception, creation);
CREATE INDEX IF NOT EXISTS messages_originator ON messages(originator_id, creation);
CREATE INDEX IF NOT EXISTS messages_modified ON messages(recent_modification);
CREATE TABLE IF NOT EXISTS message_parts (
  message_id TEXT NOT NULL REFERENCES messages(message_id) ON DELETE CASCADE,
  part_index INTEGER NOT NULL, content_id TEXT NOT NULL, content_type TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (message_id, part_index));
`;

/** MessageIds held by live writers of this process, per database file (no double store, §1 storeDelivery). */
const claims = new Set<string>();

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly keepsPartFiles = true;
  readonly dataDir: string;
  readonly payloads: PayloadFiles;
  private readonly db: Database.Database;
  private readonly wal: WalSync;
  private closed = false;

  private constructor(dataDir: string, db: Database.Database) {
    this.dataDir = dataDir;
    this.db = db;
    this.wal = new WalSync(join(dataDir, `${DB_FILE}-wal`));
    this.payloads = new PayloadFiles(join(dataDir, 'payloads'));
  }

  /** Opens (creating the directory and file if needed) the store in `dataDir`; call `migrate()` next. */
  static async open(dataDir: string): Promise<SqliteStore> {
    return guarded(async () => {
      const dir = resolve(dataDir);
      await mkdir(dir, { recursive: true });
      const db = new Database(join(dir, DB_FILE));
      try {
        db.pragma('journal_mode = WAL');
        // NORMAL: a commit does not fsync the WAL on the event loop; every write method awaits `durable()` (one
        // fdatasync of the WAL on the libuv pool for all commits before it), so a resolved write survives power loss.
        db.pragma('synchronous = NORMAL');
        db.pragma('foreign_keys = ON');
        db.pragma('busy_timeout = 10000');
      } catch (err) {
        db.close();
        throw err;
      }
      const store = new SqliteStore(dir, db);
      await store.payloads.init();
      return store;
    });
  }

  /** Prepared statements by SQL text: compiling one costs more than running it (cleared when full). */
  private readonly statements = new Map<string, Database.Statement>();

  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (st === undefined) {
      if (this.statements.size >= 200) this.statements.clear();
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** Resolves once every commit made before the call is on disk (group commit, wal-sync.ts). */
  durable(): Promise<void> {
    return guarded(() => this.wal.sync());
  }

  /** WAL flushes this store started (each covers every commit before it). */
  get walFlushes(): number {
    return this.wal.flushes;
  }

  /** A write (one statement or one transaction), resolved once it is on disk. */
  private async written<T>(fn: () => T): Promise<T> {
    const result = await guarded(fn);
    await this.durable();
    return result;
  }

  private claimKey(messageId: string): string {
    return `${this.dataDir}\0${messageId}`;
  }

  async migrate(): Promise<void> {
    await this.written(() => {
      this.db.transaction(() => {
        this.db.exec(SCHEMA);
        const row = this.stmt('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined;
        if (row === undefined) this.stmt('INSERT INTO meta (key, value) VALUES (?, ?)').run('schema_version', SCHEMA_VERSION);
        else if (row.value !== SCHEMA_VERSION) throw new OsciError('ERR_INTERNAL', 'store schema version is not supported');
      }).immediate();
    });
    await this.recover();
  }

  async recover(): Promise<void> {
    await guarded(async () => {
      const committed = new Set(
        (this.stmt('SELECT payload_dir FROM messages').all() as { payload_dir: string }[]).map((r) => r.payload_dir),
      );
      await this.payloads.recover((name) => committed.has(name));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await guarded(async () => {
      await this.wal.close();
      this.db.close();
    });
  }

  // participants and certificates

  async upsertParticipant(p: ParticipantInput): Promise<void> {
    const id = checkId(p.id, 'participant id');
    const name = checkOptionalText(p.name, 'name');
    const endpointUrl = checkOptionalText(p.endpointUrl, 'endpointUrl');
    await this.written(() => {
      this.stmt(
        `INSERT INTO participants (id, name, endpoint_url, created) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = COALESCE(excluded.name, name), endpoint_url = COALESCE(excluded.endpoint_url, endpoint_url)`,
      ).run(id, name ?? null, endpointUrl ?? null, Date.now());
    });
  }

  async getParticipant(id: string): Promise<Participant | undefined> {
    checkId(id, 'participant id');
    return guarded(() => {
      const row = this.stmt('SELECT * FROM participants WHERE id = ?').get(id) as ParticipantRow | undefined;
      return row === undefined ? undefined : participantFromRow(row);
    });
  }

  async listParticipants(): Promise<Participant[]> {
    return guarded(() => (this.stmt('SELECT * FROM participants ORDER BY id').all() as ParticipantRow[]).map(participantFromRow));
  }

  async addCertificate(c: CertificateInput): Promise<CertificateRecord> {
    const participantId = checkId(c.participantId, 'participantId');
    const usage = checkUsage(c.usage);
    if (!Buffer.isBuffer(c.der) || c.der.length === 0) throw misuse('der must be a non-empty Buffer');
    const notBefore = toMs(checkDate(c.notBefore, 'notBefore'));
    const notAfter = toMs(checkDate(c.notAfter, 'notAfter'));
    if (notAfter < notBefore) throw misuse('notAfter lies before notBefore');
    const fingerprint = sha256Hex(c.der);
    return this.written(() =>
      this.db
        .transaction(() => {
          if (this.stmt('SELECT 1 FROM participants WHERE id = ?').get(participantId) === undefined) {
            throw notFound('participant');
          }
          const existing = this.stmt('SELECT * FROM certificates WHERE fingerprint = ?').get(fingerprint) as CertificateRow | undefined;
          if (existing !== undefined) {
            if (existing.participant_id !== participantId || existing.usage !== usage) {
              throw misuse('certificate is already registered for another participant or usage');
            }
            return certificateFromRow(existing);
          }
          this.stmt(
            `INSERT INTO certificates (fingerprint, participant_id, usage, der, not_before, not_after, added)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          ).run(fingerprint, participantId, usage, c.der, notBefore, notAfter, Date.now());
          return certificateFromRow(this.stmt('SELECT * FROM certificates WHERE fingerprint = ?').get(fingerprint) as CertificateRow);
        })
        .immediate(),
    );
  }

  async findCertificate(fingerprintHex: string): Promise<CertificateRecord | undefined> {
    const fp = checkFingerprint(fingerprintHex);
    return guarded(() => {
      const row = this.stmt('SELECT * FROM certificates WHERE fingerprint = ?').get(fp) as CertificateRow | undefined;
      return row === undefined ? undefined : certificateFromRow(row);
    });
  }

  async certificatesOf(participantId: string, usage: CertificateUsage, at?: Date): Promise<CertificateRecord[]> {
    checkId(participantId, 'participantId');
    checkUsage(usage);
    const when = at === undefined ? undefined : toMs(checkDate(at, 'at'));
    return guarded(() => {
      const rows = (
        when === undefined
          ? this.stmt('SELECT * FROM certificates WHERE participant_id = ? AND usage = ? ORDER BY not_before DESC, rowid DESC').all(participantId, usage)
          : this.stmt(
                `SELECT * FROM certificates WHERE participant_id = ? AND usage = ? AND not_before <= ? AND not_after >= ?
                 AND (revoked IS NULL OR revoked > ?) ORDER BY not_before DESC, rowid DESC`,
              )
              .all(participantId, usage, when, when, when)
      ) as CertificateRow[];
      return rows.map(certificateFromRow);
    });
  }

  async revokeCertificate(fingerprintHex: string, at: Date): Promise<void> {
    const fp = checkFingerprint(fingerprintHex);
    const when = toMs(checkDate(at, 'at'));
    await this.written(() => {
      const r = this.stmt('UPDATE certificates SET revoked = MIN(COALESCE(revoked, ?), ?) WHERE fingerprint = ?').run(when, when, fp);
      if (r.changes === 0) throw notFound('certificate');
    });
  }

  // dialogs

  async createDialog(d: NewDialog): Promise<string> {
    const c = dialogColumns(d);
    return this.written(() => {
      const insert = this.stmt(
        `INSERT INTO dialogs (conversation_id, client_fingerprint, sequence_number, challenge, open, created, last_activity, pending_receptions, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_id) DO NOTHING`,
      );
      for (;;) {
        const id = newConversationId();
        const r = insert.run(id, c.clientFingerprint, c.sequenceNumber, c.challenge, c.open ? 1 : 0, c.created, c.lastActivity, c.pending, c.data);
        if (r.changes === 1) return id;
      }
    });
  }

  async getDialog(conversationId: string): Promise<DialogRecord | undefined> {
    if (!isConversationId(conversationId)) return undefined;
    return guarded(() => {
      const row = this.stmt('SELECT * FROM dialogs WHERE conversation_id = ?').get(conversationId) as DialogRow | undefined;
      return row === undefined ? undefined : dialogFromRow(row);
    });
  }

  async updateDialog<T>(conversationId: string, fn: (d: DialogRecord) => DialogUpdate<T>): Promise<T> {
    if (!isConversationId(conversationId)) throw new OsciError('ERR_DIALOG_UNKNOWN', 'unknown dialog');
    // fn's own error is rethrown unchanged; only the store's own failures become "store failure".
    let fnError: { err: unknown } | undefined;
    let result: T;
    try {
      result = this.db
        .transaction(() => {
          const row = this.stmt('SELECT * FROM dialogs WHERE conversation_id = ?').get(conversationId) as DialogRow | undefined;
          if (row === undefined) throw new OsciError('ERR_DIALOG_UNKNOWN', 'unknown dialog');
          let update: DialogUpdate<T>;
          try {
            update = fn(dialogFromRow(row));
            checkSameDialog(conversationId, update.next);
          } catch (err) {
            fnError = { err };
            throw err;
          }
          const c = dialogColumns(update.next);
          this.stmt(
            `UPDATE dialogs SET client_fingerprint = ?, sequence_number = ?, challenge = ?, open = ?, created = ?, last_activity = ?,
             pending_receptions = ?, data = ? WHERE conversation_id = ?`,
          ).run(c.clientFingerprint, c.sequenceNumber, c.challenge, c.open ? 1 : 0, c.created, c.lastActivity, c.pending, c.data, conversationId);
          if (update.acknowledge !== undefined) this.receptionNow(update.acknowledge.messageIds, update.acknowledge.at);
          if (update.forwarded !== undefined) this.forwardingNow(update.forwarded.messageId, update.forwarded.at);
          return update.result;
        })
        .immediate();
    } catch (err) {
      if (fnError !== undefined) throw fnError.err;
      throw storeFailure(err);
    }
    await this.durable();
    return result;
  }

  async pruneDialogs(before: Date): Promise<number> {
    const when = toMs(checkDate(before, 'before'));
    return this.written(() => this.stmt('DELETE FROM dialogs WHERE last_activity < ?').run(when).changes);
  }

  // MessageIds (getMessageId → storeDelivery)

  async issueMessageId(messageId: string, clientFingerprint: string, at: Date): Promise<void> {
    checkId(messageId, 'messageId');
    checkId(clientFingerprint, 'clientFingerprint');
    const when = toMs(checkDate(at, 'at'));
    await this.written(() => {
      const r = this.stmt('INSERT INTO issued_message_ids (message_id, client_fingerprint, issued) VALUES (?, ?, ?) ON CONFLICT (message_id) DO NOTHING')
        .run(messageId, clientFingerprint, when);
      if (r.changes === 0) throw messageIdTaken();
    });
  }

  async consumeMessageId(messageId: string, clientFingerprint?: string): Promise<boolean> {
    checkId(messageId, 'messageId');
    if (clientFingerprint !== undefined) checkId(clientFingerprint, 'clientFingerprint');
    return this.written(() => this.consumeNow(messageId, clientFingerprint));
  }

  private consumeNow(messageId: string, clientFingerprint: string | undefined): boolean {
    const r =
      clientFingerprint === undefined
        ? this.stmt('UPDATE issued_message_ids SET consumed = ? WHERE message_id = ? AND consumed IS NULL').run(Date.now(), messageId)
        : this.stmt('UPDATE issued_message_ids SET consumed = ? WHERE message_id = ? AND client_fingerprint = ? AND consumed IS NULL')
            .run(Date.now(), messageId, clientFingerprint);
    return r.changes === 1;
  }

  // messages

  async beginMessage(messageId: string, opts: BeginMessageOptions = {}): Promise<MessageWriter> {
    checkId(messageId, 'messageId');
    const issuedTo = opts.issuedTo === undefined ? undefined : checkId(opts.issuedTo, 'issuedTo');
    const key = this.claimKey(messageId);
    return guarded(() => {
      if (claims.has(key) || this.stmt('SELECT 1 FROM messages WHERE message_id = ?').get(messageId) !== undefined) {
        throw messageIdTaken();
      }
      const use = messageIdUse(issuedTo === undefined ? undefined : this.issueOf(messageId), issuedTo, opts.acceptForeign === true);
      claims.add(key);
      return new SqliteWriter(this, messageId, use, () => claims.delete(key));
    });
  }

  private issueOf(messageId: string): { clientFingerprint: string; consumed: boolean } | undefined {
    const row = this.stmt('SELECT client_fingerprint, consumed FROM issued_message_ids WHERE message_id = ?').get(messageId) as
      | { client_fingerprint: string; consumed: number | null }
      | undefined;
    return row === undefined ? undefined : { clientFingerprint: row.client_fingerprint, consumed: row.consumed !== null };
  }

  /** Inserts the message and part rows in one IMMEDIATE transaction: the visibility point. */
  commitRows(messageId: string, payloadDir: string, use: MessageIdUse, m: MessageInput, parts: PartRecord[]): void {
    this.db
      .transaction(() => {
        if (this.stmt('SELECT 1 FROM messages WHERE message_id = ?').get(messageId) !== undefined) throw messageIdTaken();
        if (use.kind === 'issued' && !this.consumeNow(messageId, use.to)) throw messageIdTaken();
        if (use.kind === 'foreign' && this.issueOf(messageId) !== undefined) throw messageIdTaken();
        this.stmt(
          `INSERT INTO messages (message_id, originator_id, addressee_id, subject, soap_xml, creation, recent_modification, inspections, payload_dir)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(messageId, m.originatorId, m.addresseeId, m.subject ?? null, m.soapXml, m.creation, m.creation, m.inspections, payloadDir);
        const insertPart = this.stmt(
          'INSERT INTO message_parts (message_id, part_index, content_id, content_type, size, sha256) VALUES (?, ?, ?, ?, ?, ?)',
        );
        for (const p of parts) insertPart.run(messageId, p.index, p.contentId, p.contentType, p.size, p.sha256Hex);
      })
      .immediate();
  }

  private partsOf(messageIds: string[]): Map<string, PartRecord[]> {
    if (messageIds.length === 0) return new Map();
    const rows: PartRow[] = [];
    const stmt = this.stmt('SELECT * FROM message_parts WHERE message_id = ? ORDER BY part_index');
    for (const id of messageIds) rows.push(...(stmt.all(id) as PartRow[]));
    return groupParts(rows);
  }

  async getMessage(messageId: string): Promise<StoredMessage | undefined> {
    checkId(messageId, 'messageId');
    return guarded(() => {
      const row = this.stmt(`SELECT ${SUMMARY_COLUMNS}, soap_xml FROM messages WHERE message_id = ?`).get(messageId) as MessageRow | undefined;
      return row === undefined ? undefined : messageFromRow(row, this.partsOf([messageId]).get(messageId) ?? []);
    });
  }

  async openPart(messageId: string, index: number): Promise<Readable> {
    checkId(messageId, 'messageId');
    if (!Number.isSafeInteger(index) || index < 0) throw notFound('part');
    return guarded(async () => {
      const row = this.stmt('SELECT m.payload_dir FROM messages m JOIN message_parts p ON p.message_id = m.message_id WHERE m.message_id = ? AND p.part_index = ?')
        .get(messageId, index) as { payload_dir: string } | undefined;
      if (row === undefined) throw notFound('part');
      return this.payloads.openRead(row.payload_dir, index);
    });
  }

  async listWaiting(addresseeId: string, opts: WaitingSelection = {}): Promise<StoredMessage[]> {
    const p = sqliteParams();
    const sel = waitingSelection(addresseeId, opts, p);
    return guarded(() => {
      const limit = sel.limit === undefined ? '' : ` LIMIT ${sel.limit}`;
      const rows = this.stmt(`SELECT ${SUMMARY_COLUMNS}, soap_xml FROM messages WHERE ${sel.where} ORDER BY ${sel.orderBy}${limit}`)
        .all(...p.values) as MessageRow[];
      const parts = this.partsOf(rows.map((r) => r.message_id));
      return rows.map((r) => messageFromRow(r, parts.get(r.message_id) ?? []));
    });
  }

  private receptionNow(messageIds: string[], at: Date): void {
    if (!Array.isArray(messageIds)) throw misuse('messageIds must be an array');
    const when = toMs(checkDate(at, 'at'));
    const stmt = this.stmt(
      'UPDATE messages SET reception = ?, recent_modification = MAX(recent_modification, ?) WHERE message_id = ? AND reception IS NULL',
    );
    for (const id of messageIds) stmt.run(when, when, checkId(id, 'messageId'));
  }

  async recordReception(messageIds: string[], at: Date): Promise<void> {
    await this.written(() => this.db.transaction(() => this.receptionNow(messageIds, at)).immediate());
  }

  async recordForwarding(messageId: string, at: Date): Promise<void> {
    await this.written(() => this.db.transaction(() => this.forwardingNow(messageId, at)).immediate());
  }

  /** Inside a transaction: Forwarding (first time wins) and RecentModification; unknown id → ERR_NOT_FOUND. */
  private forwardingNow(messageId: string, at: Date): void {
    const when = toMs(checkDate(at, 'at'));
    if (this.stmt('SELECT 1 FROM messages WHERE message_id = ?').get(checkId(messageId, 'messageId')) === undefined) throw notFound('message');
    this.stmt('UPDATE messages SET forwarding = ?, recent_modification = MAX(recent_modification, ?) WHERE message_id = ? AND forwarding IS NULL')
      .run(when, when, messageId);
  }

  async listProcessCards(participantId: string, sel: ProcessCardSelection): Promise<MessageSummary[]> {
    const p = sqliteParams();
    const s = processCardSelection(participantId, sel, p);
    return guarded(() => {
      const limit = s.limit === undefined ? '' : ` LIMIT ${s.limit}`;
      const rows = this.stmt(`SELECT ${SUMMARY_COLUMNS} FROM messages WHERE ${s.where} ORDER BY ${s.orderBy}${limit}`).all(...p.values) as SummaryRow[];
      const parts = this.partsOf(rows.map((r) => r.message_id));
      return rows.map((r) => summaryFromRow(r, parts.get(r.message_id) ?? []));
    });
  }
}

/** Parts go to fsynced tmp files; commit moves them into the message directory, then commits the rows. */
class SqliteWriter implements MessageWriter {
  private readonly tmpFiles: string[] = [];
  private readonly parts: PartRecord[] = [];
  private state: 'open' | 'busy' | 'failed' | 'done' = 'open';

  constructor(
    private readonly store: SqliteStore,
    readonly messageId: string,
    private readonly use: MessageIdUse,
    private readonly release: () => void,
  ) {}

  private enter(): void {
    if (this.state === 'busy') throw misuse('message writer is busy with another part');
    if (this.state === 'failed') throw misuse('message writer failed; abort it');
    if (this.state === 'done') throw misuse('message writer is finished');
    this.state = 'busy';
  }

  async addPart(meta: PartInput, data: ByteSource, file?: PartFile): Promise<PartRecord> {
    const m = checkPartInput(meta);
    this.enter();
    try {
      // A finished file of the caller is linked, not copied (a 200 MB attachment is written once, not twice).
      const linked = file ? await this.store.payloads.linkTmp(file.path, file.size, file.sha256Hex) : undefined;
      if (linked && data instanceof Readable) data.destroy();
      const written = linked ?? (await this.store.payloads.writeTmp(data));
      this.tmpFiles.push(written.path);
      const part: PartRecord = { index: this.parts.length, ...m, size: written.size, sha256Hex: written.sha256Hex };
      this.parts.push(part);
      this.state = 'open';
      return { ...part };
    } catch (err) {
      this.state = 'failed';
      throw storeFailure(err);
    }
  }

  async commit(meta: MessageMeta, card: ProcessCardInput): Promise<StoredMessage> {
    const m = checkMessageInput(meta, card);
    this.enter();
    const dirName = this.store.payloads.dirNameFor(this.messageId);
    // Without parts there is nothing to install: the (unique) name is recorded, no folder made or fsynced.
    const withFiles = this.tmpFiles.length > 0;
    try {
      if (withFiles) await this.store.payloads.install(dirName, this.tmpFiles);
      this.store.commitRows(this.messageId, dirName, this.use, m, this.parts);
    } catch (err) {
      this.state = 'failed';
      if (withFiles) await this.store.payloads.settle(dirName, true).catch(() => undefined);
      await this.abort().catch(() => undefined);
      throw storeFailure(err);
    }
    this.tmpFiles.length = 0;
    this.state = 'done';
    if (withFiles) await this.store.payloads.settle(dirName, false);
    this.release();
    // The rows are committed (never undone from here on); the caller's receipt waits until they are on disk.
    await this.store.durable();
    return committedMessage(this.messageId, m, this.parts);
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    try {
      for (const tmp of this.tmpFiles.splice(0)) await this.store.payloads.discardTmp(tmp);
    } finally {
      this.release();
    }
  }
}
