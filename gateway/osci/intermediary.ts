/**
 * The OSCI intermediary (supplier role): one request in, one signed and transport-encrypted response out.
 * Message-level errors (feedback 9000–9503) are answered with a soap:Fault; order-level errors with the
 * order's response carrying the Feedback code (osci-protocol.md §8). Dialog state lives in the store.
 */
import { randomBytes, type X509Certificate } from 'node:crypto';
import { finished, PassThrough, type Readable } from 'node:stream';
import { certificateSha256Hex } from '../../crypto/keys.ts';
import type { CertUsage } from '../../crypto/x509.ts';
import { acceptRequest, doneFeedback, respond, type ControlBlock, type DialogMessageType, type DialogState } from '../../protocol/dialog.ts';
import { decodeMessage, encodeMessage, type DecodedAttachment, type DecodedMessage, type EncodedAttachment, type EncodedMessage } from '../../protocol/envelope/index.ts';
import { OsciError, toOsciError } from '../../protocol/errors.ts';
import { feedbackEntry, feedbackLevel, pickLanguage, type FeedbackCode, type FeedbackLang } from '../../protocol/feedback.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { Certificate, ContentPackage, FeedbackEntry, OsciMessage, OsciMessageOf, QualityOfTimestamp, RequestType } from '../../protocol/model.ts';
import type { Inspection, ProcessCardBundle } from '../../protocol/processcard.ts';
import type { Logger } from '../log.ts';
import type { Identity } from '../identity.ts';
import type { CertificateRecord, DialogRecord, JsonValue, MessageSummary, Store } from '../store/index.ts';
import { derToCert, type Trust } from '../trust.ts';
import type { Metrics } from '../metrics.ts';
import { reachedRecipient, resolvePassiveRecipient, sendAcceptDelivery, sendProcessDelivery, type PassiveCallOptions } from './passive.ts';

export interface IntermediaryOptions {
  store: Store;
  identity: Identity;
  trust: Trust;
  tmpDir: string;
  limits: { maxMessageBytes: number; maxAttachments: number; maxInMemoryPartBytes: number };
  /** Accept storeDelivery MessageIds this intermediary did not issue (unique all the same). Needed for clients that bring their own. */
  acceptForeignMessageIds: boolean;
  metrics?: Metrics;
  /** Calls to passive recipients (forwardDelivery/mediateDelivery): deadline per exchange, default 60 s. */
  passive?: { timeoutMs?: number };
}

export interface OsciResponse extends EncodedMessage {
  status: number;
}

/** What is kept of a stored delivery besides its payload parts (the store treats it as opaque bytes). */
interface StoredOrder {
  v: 1;
  messageId: string;
  subject?: string;
  qualityOfTimestamp: QualityOfTimestamp;
  contentPackage: ContentPackage;
  certificates: Array<{ role: Certificate['role']; usage: Certificate['usage']; der: string; id: string }>;
  /** Signed foreign header blocks of the order (model ExtraHeaders), relayed to the recipient as received. */
  extraHeaders?: string[];
}

/** What an order produces: the response, attachments to stream with it, and what to remove once it is written. */
interface DispatchResult {
  message: OsciMessage;
  attachments?: EncodedAttachment[] | undefined;
  feedback: string;
  cleanup?: (() => Promise<void>) | undefined;
}

/** Context of one request after decoding and authentication. */
interface RequestContext {
  decoded: DecodedMessage;
  msg: Extract<OsciMessage, { type: RequestType }>;
  clientFp: string;
  /** Participant owning the signer certificate; undefined for anchored but unregistered senders. */
  participantId: string | undefined;
  clientCipher: X509Certificate | undefined;
  lang: FeedbackLang;
  now: Date;
  log: Logger;
}

/** Bytes of a received part file after which its write-back to disk is started. */
const SPILL_SYNC_BYTES = 16 * 1024 * 1024;

const EXPLICIT_ONLY = new Set<string>(['fetchDelivery', 'fetchProcessCard', 'exitDialog', 'mediateDelivery']);

export class Intermediary {
  constructor(private readonly o: IntermediaryOptions) {}

  /** IntermediaryCertificates of a response: ResponseTo*.xsd admit only SignatureCertificateIntermediary. */
  private intermediaryCertificates(): Certificate[] {
    return [certificate('intermediary', 'signature', this.o.identity.signature.cert.raw)];
  }

  async handle(body: Readable, contentType: string | undefined, log: Logger): Promise<OsciResponse> {
    const started = process.hrtime.bigint();
    let decoded: DecodedMessage;
    // The signer's registration as read when its signature was accepted (one store read per request, not two).
    let accepted: { cert: X509Certificate; record?: CertificateRecord } | undefined;
    try {
      decoded = await decodeMessage(body, {
        contentType,
        transportKeys: this.o.identity.ciphers,
        tmpDir: this.o.tmpDir,
        // A part file the store keeps is written back while it arrives, so its fsync before the receipt is short.
        ...(this.o.store.keepsPartFiles ? { syncSpillEvery: SPILL_SYNC_BYTES } : {}),
        limits: { maxTotalBytes: this.o.limits.maxMessageBytes, maxParts: this.o.limits.maxAttachments + 2, maxInMemoryPartBytes: this.o.limits.maxInMemoryPartBytes },
        policy: this.o.trust.policy,
        signature: 'required',
        trustSigner: async (carried, role) => {
          if (role !== 'client') throw new OsciError('ERR_SIGNATURE_MISSING', 'a request must carry a ClientSignature');
          accepted = await this.o.trust.acceptSigner(carried);
          return accepted.cert;
        },
      });
    } catch (e) {
      return this.fault(e, log, 'de');
    }
    const msg = decoded.message;
    try {
      if (!isRequest(msg)) throw new OsciError('ERR_MESSAGE_TYPE_UNKNOWN', `${msg.type} is not a request to an intermediary`);
      const signer = decoded.signature?.signer;
      if (!signer) throw new OsciError('ERR_SIGNATURE_MISSING', 'request is not signed');
      const clientFp = certificateSha256Hex(signer);
      const record = accepted?.cert === signer ? accepted.record : await this.o.trust.registered(signer);
      const cipherCert = msg.certificates.find((c) => c.role === 'originator' && c.usage === 'cipher');
      const ctx: RequestContext = {
        decoded,
        msg,
        clientFp,
        participantId: record?.usage === 'signature' ? record.participantId : undefined,
        clientCipher: cipherCert ? derToCert(cipherCert.der) : undefined,
        lang: pickLanguage(msg.desiredLanguages),
        now: new Date(),
        log: log.child({ type: msg.type, conversationId: msg.controlBlock.conversationId, client: clientFp.slice(0, 16) }),
      };
      const response = await this.dispatch(ctx);
      let encoded: EncodedMessage;
      try {
        encoded = await encodeMessage(response.message, {
          signer: this.o.identity.signature,
          encryptFor: decoded.transport.encrypted ? ctx.clientCipher : undefined,
          attachments: response.attachments,
        });
      } catch (e) {
        await response.cleanup?.();
        throw e;
      }
      // Attachments relayed from a passive recipient's answer live in temporary files until the response is written;
      // an answer built in memory (`body`: it has none) needs nothing more.
      const cleanup = response.cleanup;
      if (cleanup) {
        const run = () => void cleanup().catch((err: unknown) => ctx.log.warn({ err }, 'cleanup failed'));
        if (encoded.body) run();
        else finished(encoded.stream, run);
      }
      this.o.metrics?.requests.inc({ type: msg.type, outcome: 'ok' });
      ctx.log.info({ ms: Number(process.hrtime.bigint() - started) / 1e6, feedback: response.feedback }, 'osci request done');
      return { ...encoded, status: 200 };
    } catch (e) {
      this.o.metrics?.requests.inc({ type: msg.type, outcome: 'error' });
      return this.fault(e, log, pickLanguage((msg as { desiredLanguages?: string[] }).desiredLanguages));
    } finally {
      await decoded.dispose();
    }
  }

  /** soap:Fault for message-level errors; never signed or encrypted (we may not know whom to encrypt for). */
  private async fault(e: unknown, log: Logger, lang: FeedbackLang): Promise<OsciResponse> {
    const err = toOsciError(e);
    const entry = feedbackEntry(err.feedback, lang);
    if (err.code === 'ERR_INTERNAL') log.error({ err: err.cause }, 'internal error');
    else log.warn({ code: err.code, feedback: err.feedback, reason: err.message }, 'osci request refused');
    const encoded = await encodeMessage(
      { type: 'fault', faultCode: err.fault, faultString: entry.text, oscicode: err.feedback },
      {},
    );
    // SOAP 1.1 §6.2 says HTTP 500, but the reference library's HTTP transport then discards the body and reports only
    // "HTTP 500"; its own PassiveRecipient answers faults with 200, so we do too and the client sees the OSCI code.
    return { ...encoded, status: 200 };
  }

  private async dispatch(ctx: RequestContext): Promise<DispatchResult> {
    const { msg } = ctx;
    const cb = msg.controlBlock;
    // Dialog rules first (§2): 9400/9802 are decided before any order is executed.
    const dialog = await this.enterDialog(ctx, msg.type, cb);
    // Responses are encrypted for the client's cipher certificate (osci-protocol.md §5); without it we cannot answer (9500).
    // Checked before any order is executed, so nothing is stored for a client we could not answer.
    if (ctx.decoded.transport.encrypted && !ctx.clientCipher) throw new OsciError('ERR_CIPHER_CERT_MISSING', 'CipherCertificateOriginator is missing');
    // 9502: no answer is encrypted for a cipher certificate its CA revoked (a compromised key); CRLs as configured.
    if (ctx.clientCipher && this.o.trust.check(ctx.clientCipher, 'cipher', ctx.now).revoked === true) {
      throw new OsciError('ERR_CERT_REVOKED', 'CipherCertificateOriginator is revoked', { feedback: '9502' });
    }
    try {
      switch (msg.type) {
        case 'initDialog':
        case 'exitDialog':
          return this.reply({ type: msg.type === 'initDialog' ? 'responseToInitDialog' : 'responseToExitDialog', controlBlock: dialog.controlBlock, certificates: this.intermediaryCertificates(), feedback: [this.entry(ctx, doneFeedback(dialog.state))] });
        case 'getMessageId':
          return this.reply(await this.getMessageId(ctx, dialog.controlBlock));
        case 'storeDelivery':
          return this.reply(await this.storeDelivery(ctx, msg, dialog.controlBlock));
        case 'fetchDelivery':
          return await this.fetchDelivery(ctx, msg, dialog);
        case 'fetchProcessCard':
          return this.reply(await this.fetchProcessCard(ctx, msg, dialog));
        case 'forwardDelivery':
          return this.reply(await this.forwardDelivery(ctx, msg, dialog));
        case 'mediateDelivery':
          return await this.mediateDelivery(ctx, msg, dialog);
        default:
          throw new OsciError('ERR_MESSAGE_TYPE_UNKNOWN', `${msg.type} is not offered by this intermediary`);
      }
    } catch (e) {
      const err = toOsciError(e);
      if (feedbackLevel(err.feedback) === 'message') throw err;
      // Order-level error: the order's own response with the Feedback code (§8).
      if (err.code === 'ERR_INTERNAL' || err.code === 'ERR_ORDER_INTERNAL') ctx.log.error({ err: err.cause ?? err }, 'order failed');
      else ctx.log.warn({ code: err.code, feedback: err.feedback, reason: err.message }, 'order refused');
      return this.reply(this.orderError(ctx, msg.type, dialog.controlBlock, err.feedback));
    }
  }

  private reply(message: OsciMessage, attachments?: EncodedAttachment[], cleanup?: () => Promise<void>): DispatchResult {
    const feedback = 'feedback' in message && Array.isArray(message.feedback) ? (message.feedback[0]?.code ?? '') : '';
    return { message, attachments, feedback, cleanup };
  }

  private entry(ctx: RequestContext, code: FeedbackCode): FeedbackEntry {
    const e = feedbackEntry(code, ctx.lang);
    return { lang: e.lang, code: e.code, text: e.text };
  }

  private orderError(ctx: RequestContext, type: RequestType, controlBlock: ControlBlock, code: FeedbackCode): OsciMessage {
    const base = { controlBlock, certificates: this.intermediaryCertificates(), feedback: [this.entry(ctx, code)] };
    switch (type) {
      case 'getMessageId':
        return { type: 'responseToGetMessageId', ...base };
      case 'storeDelivery':
        return { type: 'responseToStoreDelivery', ...base };
      case 'fetchDelivery':
        return { type: 'responseToFetchDelivery', ...base };
      case 'fetchProcessCard':
        return { type: 'responseToFetchProcessCard', ...base, processCardBundles: [] };
      case 'forwardDelivery':
        return { type: 'responseToForwardDelivery', ...base };
      case 'mediateDelivery':
        return { type: 'responseToMediateDelivery', ...base };
      case 'initDialog':
        return { type: 'responseToInitDialog', ...base };
      case 'exitDialog':
        return { type: 'responseToExitDialog', ...base };
      default:
        throw new OsciError('ERR_MESSAGE_TYPE_UNKNOWN', `${type} is not offered by this intermediary`);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Dialogs (§2): explicit dialogs are read-modify-written in the store so any process can serve the next request.

  private async enterDialog(ctx: RequestContext, type: DialogMessageType, cb: ControlBlock): Promise<{ controlBlock: ControlBlock; state: DialogState }> {
    if (cb.conversationId === undefined && EXPLICIT_ONLY.has(type)) {
      // 9802 is an order-level code, but the response ControlBlock still has to echo the Challenge.
      const r = acceptRequest(undefined, type, cb, ctx.clientFp);
      if (!r.ok) throw r.error;
    }
    if (cb.conversationId === undefined) {
      const r = acceptRequest(undefined, type, cb, ctx.clientFp);
      if (!r.ok) throw r.error;
      const resp = respond(r.next, type, cb);
      if (type !== 'initDialog') return { controlBlock: resp.controlBlock, state: resp.next };
      const conversationId = await this.o.store.createDialog({
        clientFingerprint: ctx.clientFp,
        sequenceNumber: resp.next.sequenceNumber,
        challenge: resp.next.lastChallenge ?? '',
        open: true,
        created: ctx.now,
        lastActivity: ctx.now,
        pendingReceptions: [],
        // The reference library sends CipherCertificateOriginator only with initDialog; later responses of the dialog are encrypted for it.
        data: ctx.clientCipher ? { clientCipher: ctx.clientCipher.raw.toString('base64') } : null,
      });
      const state = { ...resp.next, conversationId };
      return { controlBlock: { ...resp.controlBlock, conversationId }, state };
    }
    return this.o.store.updateDialog(cb.conversationId, (rec) => {
      const r = acceptRequest(toState(rec), type, cb, ctx.clientFp);
      if (!r.ok) throw r.error;
      const resp = respond(r.next, type, cb);
      const kept = (rec.data as { clientCipher?: string } | null)?.clientCipher;
      if (!ctx.clientCipher && kept) ctx.clientCipher = derToCert(Buffer.from(kept, 'base64'));
      return {
        next: toRecord(resp.next, rec, ctx.now),
        result: { controlBlock: resp.controlBlock, state: resp.next },
        // A further request in the dialog acknowledges the reception of what was fetched before (§2).
        acknowledge: r.acknowledged.length ? { messageIds: r.acknowledged, at: ctx.now } : undefined,
      };
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Orders

  private async getMessageId(ctx: RequestContext, controlBlock: ControlBlock): Promise<OsciMessage> {
    // MessageIds are base64 of an opaque string (osci-protocol.md §11).
    const messageId = newMessageId();
    await this.o.store.issueMessageId(messageId, ctx.clientFp, ctx.now);
    return { type: 'responseToGetMessageId', controlBlock, certificates: this.intermediaryCertificates(), feedback: [this.entry(ctx, '0800')], messageId };
  }

  /** One Inspection per distinct certificate of the message (the same certificate may appear in several roles). */
  private inspections(certs: Certificate[], at: Date): Inspection[] {
    const seen = new Set<string>();
    const out: Inspection[] = [];
    for (const c of certs) {
      const key = `${c.usage}:${c.der.toString('base64')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(this.o.trust.inspect(derToCert(c.der), c.usage as CertUsage, at));
    }
    return out;
  }

  private async storeDelivery(ctx: RequestContext, msg: OsciMessageOf<'storeDelivery'>, controlBlock: ControlBlock): Promise<OsciMessage> {
    if (!msg.messageId) throw new OsciError('ERR_MESSAGE_ID_MISSING', 'storeDelivery without MessageId');
    const addresseeCert = msg.certificates.find((c) => c.role === 'addressee' && c.usage === 'cipher');
    if (!addresseeCert) throw new OsciError('ERR_ORDER_INVALID', 'storeDelivery without CipherCertificateAddressee');
    const addressee = await this.o.store.findCertificate(certificateSha256Hex(derToCert(addresseeCert.der)));
    // An unknown addressee gets "no delivery possible" without revealing which postboxes exist.
    if (!addressee || addressee.usage !== 'cipher') throw new OsciError('ERR_RECIPIENT_REFUSED', 'addressee is not a postbox of this intermediary');
    if (addressee.revoked && addressee.revoked <= ctx.now) throw new OsciError('ERR_CERT_REVOKED', 'addressee cipher certificate is revoked', { feedback: '9707' });

    // The receipt below is built only after persist resolved: message, parts and process card are durable.
    const stored = await this.persist(ctx, { ...msg, messageId: msg.messageId }, addressee.participantId);
    return {
      type: 'responseToStoreDelivery',
      controlBlock,
      certificates: this.intermediaryCertificates(),
      feedback: [this.entry(ctx, '0800')],
      processCardBundle: bundleOf(stored, 'stored'),
    };
  }

  /**
   * Stores an order's content durably before anything is confirmed or forwarded: message, attachments as received,
   * process card with Creation = arrival and the InspectionReport of the order's certificates (§7).
   */
  private async persist(
    ctx: RequestContext,
    o: { messageId: string; subject?: string | undefined; qualityOfTimestamp: Partial<QualityOfTimestamp>; contentPackage: ContentPackage; certificates: Certificate[]; extraHeaders?: string[] | undefined },
    addresseeId: string,
  ): Promise<MessageSummary> {
    const writer = await this.beginStore(o.messageId, ctx.clientFp);
    const stored = await this.writeDelivery(writer, {
      order: storedOrder(o),
      originatorId: ctx.participantId ?? `cert:${ctx.clientFp}`,
      addresseeId,
      attachments: ctx.decoded.attachments,
      creation: ctx.now,
      subject: o.subject,
      inspections: this.inspections(o.certificates, ctx.now),
    });
    ctx.log.info({ messageId: o.messageId, parts: stored.parts.length }, 'delivery stored');
    return stored;
  }

  private async writeDelivery(
    writer: Awaited<ReturnType<Store['beginMessage']>>,
    d: { order: StoredOrder; originatorId: string; addresseeId: string; attachments: DecodedAttachment[]; creation: Date; subject?: string | undefined; inspections: Inspection[] },
  ): Promise<MessageSummary> {
    let stored: MessageSummary;
    try {
      for (const a of d.attachments) {
        const file = a.file !== undefined ? { path: a.file, size: a.size, sha256Hex: a.sha256.toString('hex') } : undefined;
        // Opened only if the store copies (a linked file is not read).
        const bytes: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => (a.open() as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]() };
        await writer.addPart({ contentId: a.contentId, contentType: a.contentType ?? 'application/octet-stream' }, bytes, file);
      }
      stored = await writer.commit(
        { originatorId: d.originatorId, addresseeId: d.addresseeId, soapXml: Buffer.from(JSON.stringify(d.order)) },
        { creation: d.creation, subject: d.subject, inspections: d.inspections as unknown as JsonValue },
      );
    } catch (e) {
      await writer.abort();
      throw e;
    }
    this.o.metrics?.stored.inc();
    return stored;
  }

  /**
   * A MessageId we issued to this client is consumed with the commit (9801 on reuse). Clients that bring their
   * own MessageId (the reference library can) are accepted when configured, unless we issued it to someone
   * else; uniqueness still holds.
   */
  private beginStore(messageId: string, clientFp: string) {
    return this.o.store.beginMessage(messageId, { issuedTo: clientFp, acceptForeign: this.o.acceptForeignMessageIds });
  }

  private requireParticipant(ctx: RequestContext): string {
    if (!ctx.participantId) throw new OsciError('ERR_UNAUTHORISED', 'signer is not the registered owner of a postbox');
    return ctx.participantId;
  }

  private async fetchDelivery(ctx: RequestContext, msg: OsciMessageOf<'fetchDelivery'>, dialog: { controlBlock: ControlBlock; state: DialogState }) {
    const owner = this.requireParticipant(ctx);
    const sel = msg.selection;
    const waiting = await this.o.store.listWaiting(owner, {
      messageId: sel?.by === 'messageId' ? sel.messageId : undefined,
      receivedAfter: sel?.by === 'receptionOfDelivery' ? new Date(sel.dateTime) : undefined,
      limit: 2,
    });
    const found = waiting[0];
    if (!found) throw new OsciError('ERR_NOT_FOUND', 'no delivery matches the selection');
    const order = JSON.parse(found.soapXml.toString('utf8')) as StoredOrder;
    // Forwarding now, in one transaction with the dialog; Reception when the dialog's next request arrives (§2).
    await this.o.store.updateDialog(dialog.state.conversationId ?? '', (rec) => ({
      next: { ...rec, pendingReceptions: [...rec.pendingReceptions, found.messageId] },
      result: undefined,
      forwarded: { messageId: found.messageId, at: ctx.now },
    }));
    const card = { ...found, forwarding: found.forwarding ?? ctx.now, recentModification: found.forwarding ? found.recentModification : ctx.now };
    const message: OsciMessage = {
      type: 'responseToFetchDelivery',
      controlBlock: dialog.controlBlock,
      certificates: [...this.intermediaryCertificates(), ...order.certificates.map((c) => ({ role: c.role, usage: c.usage, der: Buffer.from(c.der, 'base64'), id: c.id }))],
      // The order's own code comes first and the 3800 warning after it, as for forwardDelivery/mediateDelivery:
      // clients (the reference samples) test Feedback/Entry[1]/Code for "0..." to see that the order succeeded.
      feedback: [this.entry(ctx, '0801'), ...(waiting.length > 1 ? [this.entry(ctx, '3800')] : [])],
      selection: sel,
      processCardBundle: bundleOf(card, 'delivered'),
      contentPackage: order.contentPackage,
      // soapResponseToFetchDelivery.xsd admits ##other header blocks: the order's signed ones reach the addressee.
      ...(order.extraHeaders?.length ? { extraHeaders: order.extraHeaders } : {}),
    };
    const store = this.o.store;
    const attachments = found.parts.map((p) => ({
      contentId: p.contentId,
      contentType: p.contentType,
      size: p.size,
      // The digest recorded when the part was received: bytes changed on disk since then fail the addressee's check.
      sha256: Buffer.from(p.sha256Hex, 'hex'),
      open: () => lazyPart(() => store.openPart(found.messageId, p.index)),
    }));
    ctx.log.info({ messageId: found.messageId }, 'delivery fetched');
    return this.reply(message, attachments);
  }

  private async fetchProcessCard(ctx: RequestContext, msg: OsciMessageOf<'fetchProcessCard'>, dialog: { controlBlock: ControlBlock }): Promise<OsciMessage> {
    // A sender without a postbox here (trusted, not registered) sees the cards of what it sent (§4): its messages are
    // recorded under its verified signature certificate (see persist), so it finds no one else's.
    const who = ctx.participantId ?? `cert:${ctx.clientFp}`;
    const sel = msg.selection;
    const quantity = msg.quantityLimit;
    const cards = await this.o.store.listProcessCards(who, {
      messageIds: sel?.by === 'messageId' ? sel.messageIds : undefined,
      receivedFrom: sel?.by === 'receptionOfDelivery' ? new Date(sel.dateTime) : undefined,
      modifiedSince: sel?.by === 'recentModification' ? new Date(sel.dateTime) : undefined,
      noReception: sel && sel.by !== 'messageId' ? sel.noReception : undefined,
      role: sel && sel.by !== 'messageId' && sel.role ? (sel.role === 'Addressee' ? 'addressee' : 'originator') : undefined,
      quantity: quantity === undefined ? undefined : quantity + 1,
    });
    if (cards.length === 0) throw new OsciError('ERR_PROCESS_CARD_NOT_FOUND', 'no process card matches the selection');
    const more = quantity !== undefined && cards.length > quantity;
    const list = more ? cards.slice(0, quantity) : cards;
    return {
      type: 'responseToFetchProcessCard',
      controlBlock: dialog.controlBlock,
      certificates: this.intermediaryCertificates(),
      feedback: [this.entry(ctx, '0801'), ...(more ? [this.entry(ctx, '3801')] : [])],
      selection: sel,
      quantityLimit: quantity,
      processCardBundles: list.map((c) => bundleOf(c, 'any')),
    };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Passive recipients (§1): forwardDelivery → acceptDelivery, mediateDelivery → processDelivery

  private passiveOptions(): PassiveCallOptions {
    const l = this.o.limits;
    return {
      identity: this.o.identity,
      store: this.o.store,
      tmpDir: this.o.tmpDir,
      limits: { maxTotalBytes: l.maxMessageBytes, maxParts: l.maxAttachments + 2, maxInMemoryPartBytes: l.maxInMemoryPartBytes },
      policy: this.o.trust.policy,
      ...(this.o.passive?.timeoutMs !== undefined ? { timeoutMs: this.o.passive.timeoutMs } : {}),
    };
  }

  /**
   * Certificates of an acceptDelivery/processDelivery: ours in IntermediaryCertificates (the cipher certificate too,
   * the recipient encrypts its answer for it), the originator's and the content's in NonIntermediaryCertificates
   * (SignatureCertificateAddressee is not admitted there, [J] AcceptDeliveryBuilder). The originator's cipher
   * certificate kept with the dialog is added when the order itself does not carry it.
   */
  private passiveCertificates(ctx: RequestContext, carried: Certificate[]): Certificate[] {
    const own = [certificate('intermediary', 'cipher', this.primaryCipher().raw), certificate('intermediary', 'signature', this.o.identity.signature.cert.raw)];
    const theirs = carried.filter((c) => c.role !== 'intermediary' && !(c.role === 'addressee' && c.usage === 'signature'));
    if (ctx.clientCipher && !theirs.some((c) => c.role === 'originator' && c.usage === 'cipher')) theirs.unshift(certificate('originator', 'cipher', ctx.clientCipher.raw));
    const seen = new Set<string>();
    return [...own, ...theirs].filter((c) => (seen.has(c.id) ? false : (seen.add(c.id), true)));
  }

  private primaryCipher(): X509Certificate {
    const c = this.o.identity.ciphers[0];
    if (!c) throw new OsciError('ERR_INTERNAL', 'the intermediary has no cipher key');
    return c.cert;
  }

  /** The order's attachments, relayed as received (the ClientSignature of our request covers them again). */
  private relayed(attachments: DecodedAttachment[]): EncodedAttachment[] {
    return attachments.map((a) => ({ contentId: a.contentId, size: a.size, sha256: a.sha256, open: () => a.open(), ...(a.contentType !== undefined ? { contentType: a.contentType } : {}) }));
  }

  /** Forwarding is recorded once the recipient answered anything (the delivery reached it). */
  private async forwardingFailed(ctx: RequestContext, messageId: string | undefined, at: Date, e: unknown): Promise<never> {
    if (messageId !== undefined && reachedRecipient(e)) {
      await this.o.store.recordForwarding(messageId, at).catch((err: unknown) => ctx.log.error({ err, messageId }, 'recording Forwarding failed'));
    }
    throw e;
  }

  private async forwardDelivery(ctx: RequestContext, msg: OsciMessageOf<'forwardDelivery'>, dialog: { controlBlock: ControlBlock; state: DialogState }): Promise<OsciMessage> {
    if (!msg.messageId) throw new OsciError('ERR_MESSAGE_ID_MISSING', 'forwardDelivery without MessageId');
    // Decided before anything is stored or sent: the recipient and its registered endpoint (never the message's URL).
    const recipient = await resolvePassiveRecipient(this.o.store, msg.certificates, msg.contentReceiver, ctx.now);
    const stored = await this.persist(ctx, msg, recipient.participantId);
    const forwardedAt = new Date();
    const answer = await sendAcceptDelivery(
      {
        type: 'acceptDelivery',
        desiredLanguages: msg.desiredLanguages,
        processCardBundle: bundleOf({ ...stored, forwarding: forwardedAt, recentModification: forwardedAt }, 'delivered'),
        contentPackage: msg.contentPackage,
        certificates: this.passiveCertificates(ctx, msg.certificates),
        extraHeaders: msg.extraHeaders,
      },
      this.relayed(ctx.decoded.attachments),
      recipient,
      this.passiveOptions(),
    ).catch((e: unknown) => this.forwardingFailed(ctx, msg.messageId, forwardedAt, e));
    await answer.decoded.dispose();
    // §2: for accept deliveries Reception is the arrival of the recipient's positive Feedback.
    const card = await this.recordDelivered(msg.messageId, forwardedAt, answer.at);
    ctx.log.info({ messageId: msg.messageId, recipient: recipient.participantId }, 'delivery forwarded and accepted');
    return {
      type: 'responseToForwardDelivery',
      controlBlock: dialog.controlBlock,
      certificates: this.intermediaryCertificates(),
      feedback: [this.entry(ctx, doneFeedback(dialog.state)), ...answer.warnings.map((w) => this.entry(ctx, w))],
      processCardBundle: bundleOf(card, 'any'),
    };
  }

  /** Forwarding and Reception of a delivery the recipient accepted; 9810 if that cannot be recorded. */
  private async recordDelivered(messageId: string, forwardedAt: Date, receivedAt: Date): Promise<MessageSummary> {
    try {
      await this.o.store.recordForwarding(messageId, forwardedAt);
      await this.o.store.recordReception([messageId], receivedAt);
      const card = await this.o.store.getMessage(messageId);
      if (!card) throw new OsciError('ERR_INTERNAL', `stored delivery ${messageId} vanished`);
      return card;
    } catch (e) {
      throw new OsciError('ERR_ORDER_INTERNAL', 'the recipient accepted, but its reception could not be recorded', { cause: e, feedback: '9810' });
    }
  }

  private async mediateDelivery(ctx: RequestContext, msg: OsciMessageOf<'mediateDelivery'>, dialog: { controlBlock: ControlBlock; state: DialogState }): Promise<DispatchResult> {
    const recipient = await resolvePassiveRecipient(this.o.store, msg.certificates, msg.contentReceiver, ctx.now);
    // Without a MessageId nothing is recorded ([J] RequestResponse sample); with one the request is stored first.
    const stored = msg.messageId ? await this.persist(ctx, { ...msg, messageId: msg.messageId }, recipient.participantId) : undefined;
    const replyId = stored ? newMessageId() : undefined;
    const forwardedAt = new Date();
    const answer = await sendProcessDelivery(
      {
        type: 'processDelivery',
        desiredLanguages: msg.desiredLanguages,
        messageIdResponse: replyId,
        processCardBundle: stored ? bundleOf({ ...stored, forwarding: forwardedAt, recentModification: forwardedAt }, 'delivered') : undefined,
        contentPackage: msg.contentPackage,
        certificates: this.passiveCertificates(ctx, msg.certificates),
        extraHeaders: msg.extraHeaders,
      },
      this.relayed(ctx.decoded.attachments),
      recipient,
      this.passiveOptions(),
    ).catch((e: unknown) => this.forwardingFailed(ctx, stored?.messageId, forwardedAt, e));
    const cleanup = () => answer.decoded.dispose();
    try {
      const reply = answer.response;
      let requestProcessCardBundle: ProcessCardBundle | undefined;
      let replyProcessCardBundle: ProcessCardBundle | undefined;
      // The reply's author and readers; SignatureCertificateAddressee is not admitted ([J] ResponseToMediateDeliveryBuilder).
      const replyCerts = reply.certificates.filter((c) => c.role !== 'intermediary' && !(c.role === 'addressee' && c.usage === 'signature'));
      if (stored) {
        requestProcessCardBundle = bundleOf(await this.recordDelivered(stored.messageId, forwardedAt, answer.at), 'any');
        if (reply.messageId !== undefined) {
          if (reply.messageId !== replyId) throw new OsciError('ERR_RECIPIENT_INTERNAL', 'the reply carries a MessageId we did not issue for it');
          replyProcessCardBundle = await this.recordReply(ctx, reply, replyCerts, answer.decoded.attachments, recipient.participantId, answer.at, dialog.state);
        }
      }
      if (!reply.contentPackage) throw new OsciError('ERR_RECIPIENT_INTERNAL', 'the recipient accepted but its reply holds no content', { feedback: '9806' });
      ctx.log.info({ messageId: stored?.messageId, reply: replyProcessCardBundle?.messageId, recipient: recipient.participantId }, 'delivery mediated');
      const message: OsciMessage = {
        type: 'responseToMediateDelivery',
        controlBlock: dialog.controlBlock,
        certificates: [...this.intermediaryCertificates(), ...replyCerts],
        feedback: [this.entry(ctx, doneFeedback(dialog.state)), ...answer.warnings.map((w) => this.entry(ctx, w))],
        requestProcessCardBundle,
        replyProcessCardBundle,
        contentPackage: reply.contentPackage,
        extraHeaders: reply.extraHeaders,
      };
      return this.reply(message, this.relayed(answer.decoded.attachments), cleanup);
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  /**
   * Stores a recipient's reply that carries a MessageId, so that it has a process card (Creation = its arrival,
   * Forwarding = now); its Reception is the next request of this dialog, as for fetchDelivery (§2).
   */
  private async recordReply(
    ctx: RequestContext,
    reply: OsciMessageOf<'responseToProcessDelivery'>,
    certificates: Certificate[],
    attachments: DecodedAttachment[],
    recipientId: string,
    arrived: Date,
    state: DialogState,
  ): Promise<ProcessCardBundle> {
    const replyId = reply.messageId as string;
    try {
      const writer = await this.o.store.beginMessage(replyId);
      const stored = await this.writeDelivery(writer, {
        order: storedOrder({ messageId: replyId, subject: reply.subject, qualityOfTimestamp: reply.qualityOfTimestamp, contentPackage: reply.contentPackage ?? { encryptedData: [], contentContainers: [] }, certificates, extraHeaders: reply.extraHeaders }),
        originatorId: recipientId,
        addresseeId: ctx.participantId ?? `cert:${ctx.clientFp}`,
        attachments,
        creation: arrived,
        subject: reply.subject,
        inspections: this.inspections(certificates, arrived),
      });
      const forwardedAt = new Date();
      await this.o.store.updateDialog(state.conversationId ?? '', (rec) => ({
        next: { ...rec, pendingReceptions: [...rec.pendingReceptions, replyId] },
        result: undefined,
        forwarded: { messageId: replyId, at: forwardedAt },
      }));
      return bundleOf({ ...stored, forwarding: forwardedAt, recentModification: forwardedAt }, 'delivered');
    } catch (e) {
      throw new OsciError('ERR_ORDER_INTERNAL', 'the reply could not be recorded', { cause: e, feedback: '9810' });
    }
  }
}

/** MessageIds are base64 of an opaque string (osci-protocol.md §11). */
function newMessageId(): string {
  return Buffer.from(`amtsbote-${randomBytes(18).toString('base64url')}`).toString('base64');
}

function storedOrder(o: { messageId: string; subject?: string | undefined; qualityOfTimestamp: Partial<QualityOfTimestamp>; contentPackage: ContentPackage; certificates: Certificate[]; extraHeaders?: string[] | undefined }): StoredOrder {
  return {
    v: 1,
    messageId: o.messageId,
    subject: o.subject,
    qualityOfTimestamp: { creation: o.qualityOfTimestamp.creation ?? 'plain', reception: o.qualityOfTimestamp.reception ?? 'plain' },
    contentPackage: o.contentPackage,
    certificates: o.certificates.map((c) => ({ role: c.role, usage: c.usage, der: c.der.toString('base64'), id: c.id })),
    ...(o.extraHeaders?.length ? { extraHeaders: o.extraHeaders } : {}),
  };
}

function isRequest(m: OsciMessage): m is Extract<OsciMessage, { type: RequestType }> {
  return ['initDialog', 'exitDialog', 'getMessageId', 'storeDelivery', 'fetchDelivery', 'fetchProcessCard', 'forwardDelivery', 'acceptDelivery', 'mediateDelivery', 'processDelivery'].includes(m.type);
}

function toState(rec: DialogRecord): DialogState {
  return {
    conversationId: rec.conversationId,
    sequenceNumber: rec.sequenceNumber,
    lastChallenge: rec.challenge || undefined,
    clientId: rec.clientFingerprint,
    open: rec.open,
    explicit: true,
    pendingReceptions: rec.pendingReceptions,
  };
}

function toRecord(s: DialogState, rec: DialogRecord, now: Date): DialogRecord {
  return { ...rec, sequenceNumber: s.sequenceNumber, challenge: s.lastChallenge ?? '', open: s.open, pendingReceptions: s.pendingReceptions, lastActivity: now };
}

/** ProcessCardBundle of a stored delivery; `profile` follows the message type's ProcessCardType restriction. */
export function bundleOf(m: MessageSummary, profile: 'stored' | 'delivered' | 'any'): ProcessCardBundle {
  const plain = (d: Date) => ({ kind: 'plain' as const, time: d.toISOString() });
  const card: ProcessCardBundle['processCard'] = { recentModification: m.recentModification.toISOString(), creation: plain(m.creation) };
  if (profile !== 'stored' && m.forwarding) card.forwarding = plain(m.forwarding);
  if (profile === 'any' && m.reception) card.reception = plain(m.reception);
  if (m.subject !== undefined) card.subject = m.subject;
  return { messageId: m.messageId, processCard: card, inspectionReport: (m.inspections ?? []) as unknown as Inspection[] };
}

/** A Readable that opens the stored part only when the response writer starts reading it. */
function lazyPart(open: () => Promise<Readable>): Readable {
  const out = new PassThrough();
  open().then(
    (src) => {
      src.on('error', (e) => out.destroy(e));
      src.pipe(out);
    },
    (e: unknown) => out.destroy(e as Error),
  );
  return out;
}
