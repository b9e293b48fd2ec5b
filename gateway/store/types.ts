/**
 * The intermediary's durable store: participants (postboxes) and their certificates, explicit dialogs
 * (osci-protocol.md §2), issued MessageIds, stored deliveries with their payload parts, and the process
 * card data (§7) of each delivery. Two backends implement the same contract:
 *
 * - `sqlite` (embedded default): one database file plus payload files beside it. Single process only.
 * - `postgres` (replicas): everything, payloads included, in one schema, so several server processes can
 *   serve the same postboxes and dialogs alternately.
 *
 * Durability contract (the server sends a receipt only after `MessageWriter.commit` resolved):
 * - `commit` resolves only after the message row, its process card data and every payload byte are on
 *   stable storage; the commit of the message row is the single visibility point.
 * - A crash at any moment loses no committed message and leaves no half-stored one visible; leftovers of
 *   unfinished writers are removed by `recover()` (also run by `migrate()`).
 * - Payloads are streamed: memory stays bounded whatever the part size (200 MB parts, §13).
 *
 * Server flow (osci-protocol.md §1, §2):
 * - getMessageId: `issueMessageId(id, clientFp, now)`.
 * - storeDelivery: `w = beginMessage(id, { issuedTo: clientFp })`, `w.addPart(...)` per attachment,
 *   `w.commit(meta, card)`, and only then the receipt; on any failure `w.abort()`.
 * - each request in an explicit dialog: `updateDialog(cid, fn)` with the ControlBlock checks in `fn`,
 *   acknowledging `pendingReceptions` (§2); fetchDelivery adds the delivered MessageId to them.
 *
 * Errors: every rejection is an `OsciError` (protocol/errors.ts). Store-internal failures are
 * `ERR_INTERNAL` with the generic message "store failure"; the database error is kept in `cause` for the
 * log only and never reaches the wire.
 *
 * Times are stored with millisecond precision. "Newest first"/"oldest first" orders break ties by
 * insertion order.
 */
import type { Readable } from 'node:stream';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type StoreKind = 'sqlite' | 'postgres';

/** A postbox owner known to the intermediary. */
export interface Participant {
  id: string;
  name?: string;
  /** URL of a passive recipient (forwardDelivery/mediateDelivery target, `ContentReceiver@URI`). */
  endpointUrl?: string;
  created: Date;
}

export interface ParticipantInput {
  id: string;
  /** Omitted fields keep their stored value on update. */
  name?: string;
  endpointUrl?: string;
}

export type CertificateUsage = 'signature' | 'cipher';

/** A participant's certificate; several per usage may overlap (rotation windows, osci-protocol.md §13). */
export interface CertificateRecord {
  /** Lower-case hex SHA-256 of `der`; unique across the store. */
  fingerprint: string;
  participantId: string;
  usage: CertificateUsage;
  der: Buffer;
  notBefore: Date;
  notAfter: Date;
  added: Date;
  revoked?: Date;
}

export interface CertificateInput {
  participantId: string;
  usage: CertificateUsage;
  der: Buffer;
  notBefore: Date;
  notAfter: Date;
}

/**
 * State of one explicit dialog (osci-protocol.md §2). The store keeps it so that any server process can
 * answer the next request of the dialog; the server owns the rules (ControlBlock checks, 9400).
 */
export interface DialogRecord {
  /** ConversationId, `\d+`, allocated by `createDialog`. */
  conversationId: string;
  /** Hex SHA-256 of the certificate of the client that opened the dialog. */
  clientFingerprint: string;
  /** Last SequenceNumber used in the dialog (0 after initDialog). */
  sequenceNumber: number;
  /** The supplier's last Challenge, which the client's next Response must echo. */
  challenge: string;
  open: boolean;
  created: Date;
  lastActivity: Date;
  /**
   * MessageIds delivered in this dialog whose Reception is set when the next request arrives (§2
   * reception acknowledgement); see `DialogUpdate.acknowledge`.
   */
  pendingReceptions: string[];
  /** Further server state (e.g. DesiredLanguages); JSON-serialisable. */
  data: JsonValue;
}

export type NewDialog = Omit<DialogRecord, 'conversationId'>;

/** What the function passed to `updateDialog` returns. */
export interface DialogUpdate<T> {
  /** The dialog's new state; `conversationId` must stay the same. */
  next: DialogRecord;
  result: T;
  /** Sets Reception of these messages in the same transaction as the dialog update (§2). */
  acknowledge?: { messageIds: string[]; at: Date };
  /** Sets Forwarding of this message in the same transaction, as {@link Store.recordForwarding} does. */
  forwarded?: { messageId: string; at: Date };
}

/** One payload part of a stored message (a MIME attachment of the content package). */
export interface PartRecord {
  /** 0-based, in the order the parts were added. */
  index: number;
  contentId: string;
  contentType: string;
  size: number;
  /** Lower-case hex SHA-256 of the stored bytes. */
  sha256Hex: string;
}

export interface PartInput {
  contentId: string;
  contentType: string;
}

/** Addressing and the stored order/content package XML; given at commit. */
export interface MessageMeta {
  originatorId: string;
  addresseeId: string;
  /** The stored order / content package XML exactly as the server hands it over. */
  soapXml: Buffer;
}

/** Initial process card data (osci-protocol.md §7); Forwarding and Reception are recorded later. */
export interface ProcessCardInput {
  /** Creation: the time the intermediary received the delivery. */
  creation: Date;
  subject?: string;
  /** InspectionReport data from the server, JSON-serialisable. */
  inspections: JsonValue;
}

/** A committed delivery's addressing, parts and process card data (ProcessCardBundle, §7). */
export interface MessageSummary {
  messageId: string;
  originatorId: string;
  addresseeId: string;
  subject?: string;
  creation: Date;
  forwarding?: Date;
  reception?: Date;
  recentModification: Date;
  inspections: JsonValue;
  parts: PartRecord[];
}

/** A committed delivery including its stored order/content package XML. */
export interface StoredMessage extends MessageSummary {
  soapXml: Buffer;
}

/**
 * Streams one message into storage. Parts are added one after another; nothing is visible until
 * `commit` resolves. Every writer must end in `commit` or `abort` (it holds the MessageId, and in
 * PostgreSQL a connection with an open transaction). After a failed `addPart` only `abort` is allowed;
 * a failed `commit` has already released everything.
 */
/** A finished file and what its writer measured of it (see MessageWriter.addPart). */
export interface PartFile {
  path: string;
  size: number;
  sha256Hex: string;
}

export interface MessageWriter {
  readonly messageId: string;
  /**
   * Streams the payload to storage (bounded memory) and returns its size and SHA-256. With `file`, a complete
   * file the caller wrote and hashed itself holding exactly those bytes, a store may take the bytes from there
   * (the SQLite store hard-links it) and leaves `data` unread (destroyed if it is a stream).
   */
  addPart(meta: PartInput, data: Readable | AsyncIterable<Uint8Array>, file?: PartFile): Promise<PartRecord>;
  /** Makes the message visible atomically; resolves once durable. ERR_MESSAGE_ID if the id got stored or consumed meanwhile. */
  commit(meta: MessageMeta, card: ProcessCardInput): Promise<StoredMessage>;
  /** Removes everything written so far; idempotent. */
  abort(): Promise<void>;
}

export interface BeginMessageOptions {
  /**
   * The fingerprint of the client that sends the storeDelivery. When given, `beginMessage` requires the
   * MessageId to have been issued to that client (getMessageId) and not yet consumed, and `commit`
   * consumes it in the same transaction as the message row: a crash before commit leaves the
   * MessageId usable for the client's retry. ERR_MESSAGE_ID otherwise.
   */
  issuedTo?: string;
  /**
   * With `issuedTo`: a MessageId this intermediary never issued is accepted as the client's own (the reference
   * library can bring one), still unique among stored messages. One issued to another client, or consumed, is not:
   * the commit re-checks inside its transaction that nobody was issued it meanwhile.
   */
  acceptForeign?: boolean;
}

export interface WaitingSelection {
  messageId?: string;
  /** Only deliveries that arrived at the intermediary (Creation) strictly after this time (SelectionRule/ReceptionOfDelivery). */
  receivedAfter?: Date;
  limit?: number;
}

/** fetchProcessCard SelectionRule (FetchProcessCard.xsd): MessageId+, ReceptionOfDelivery or RecentModification, Quantity. */
export interface ProcessCardSelection {
  messageIds?: string[];
  /** Creation (arrival at the intermediary) at or after this time. */
  receivedFrom?: Date;
  /** Creation strictly before this time. */
  receivedTo?: Date;
  /** RecentModification strictly after this time; orders the result by RecentModification. */
  modifiedSince?: Date;
  /** SelectionDateType@NoReception: only deliveries not yet received by the addressee. */
  noReception?: boolean;
  /** SelectionDateType@Role: the participant's role; both when omitted. */
  role?: 'originator' | 'addressee';
  /** Quantity@Limit. */
  quantity?: number;
}

export interface Store {
  readonly kind: StoreKind;
  /** A part file handed to {@link MessageWriter.addPart} becomes the stored payload itself (hard link, fsynced). */
  readonly keepsPartFiles: boolean;
  /** Creates the schema if needed (idempotent, safe against concurrent callers) and runs `recover()`. */
  migrate(): Promise<void>;
  /** Removes leftovers of writers that never committed (crash, kill). Call before accepting writes. */
  recover(): Promise<void>;
  close(): Promise<void>;

  upsertParticipant(p: ParticipantInput): Promise<void>;
  getParticipant(id: string): Promise<Participant | undefined>;
  /** Ordered by id. */
  listParticipants(): Promise<Participant[]>;

  /** Idempotent for the same DER, participant and usage; another participant or usage → ERR_USAGE; unknown participant → ERR_NOT_FOUND. */
  addCertificate(c: CertificateInput): Promise<CertificateRecord>;
  findCertificate(fingerprintHex: string): Promise<CertificateRecord | undefined>;
  /**
   * With `at`: the certificates valid at that time (notBefore ≤ at ≤ notAfter, not revoked at or before
   * `at`). Without: all of them, expired and revoked included. Newest (latest notBefore) first.
   */
  certificatesOf(participantId: string, usage: CertificateUsage, at?: Date): Promise<CertificateRecord[]>;
  /** Keeps the earliest revocation time; unknown fingerprint → ERR_NOT_FOUND. */
  revokeCertificate(fingerprintHex: string, at: Date): Promise<void>;

  /** Allocates a fresh, unpredictable numeric ConversationId. */
  createDialog(d: NewDialog): Promise<string>;
  getDialog(conversationId: string): Promise<DialogRecord | undefined>;
  /**
   * Atomic read-modify-write of one dialog, serialised against every other update of it in any process
   * (SQLite: IMMEDIATE transaction; PostgreSQL: SELECT … FOR UPDATE). `fn` runs synchronously inside the
   * transaction and may throw to abort (its error is rethrown unchanged). Unknown id → ERR_DIALOG_UNKNOWN.
   */
  updateDialog<T>(conversationId: string, fn: (d: DialogRecord) => DialogUpdate<T>): Promise<T>;
  /** Deletes dialogs whose last activity lies before `before`; returns how many. */
  pruneDialogs(before: Date): Promise<number>;

  /** Records a MessageId handed out by getMessageId; an id issued before → ERR_MESSAGE_ID. */
  issueMessageId(messageId: string, clientFingerprint: string, at: Date): Promise<void>;
  /** Marks an issued MessageId used; false if unknown, already used, or issued to another client. */
  consumeMessageId(messageId: string, clientFingerprint?: string): Promise<boolean>;

  /** ERR_MESSAGE_ID if the MessageId is stored or another writer holds it (no double store). */
  beginMessage(messageId: string, opts?: BeginMessageOptions): Promise<MessageWriter>;
  getMessage(messageId: string): Promise<StoredMessage | undefined>;
  /** Streams one stored part; unknown message or index → ERR_NOT_FOUND. */
  openPart(messageId: string, index: number): Promise<Readable>;
  /** Messages the addressee has not received yet, oldest first. */
  listWaiting(addresseeId: string, opts?: WaitingSelection): Promise<StoredMessage[]>;
  /** Sets Reception (first time wins, idempotent) and RecentModification; unknown ids are ignored. */
  recordReception(messageIds: string[], at: Date): Promise<void>;
  /** Sets Forwarding (first time wins) and RecentModification; unknown id → ERR_NOT_FOUND. */
  recordForwarding(messageId: string, at: Date): Promise<void>;
  /**
   * Process cards of deliveries the participant sent or receives (without the SOAP XML), oldest first,
   * or by RecentModification when `modifiedSince` is given.
   */
  listProcessCards(participantId: string, sel: ProcessCardSelection): Promise<MessageSummary[]>;
}
