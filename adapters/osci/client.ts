/**
 * OSCI client role (osci-protocol.md §1–2): sends signed, transport-encrypted orders to an intermediary and
 * checks its answers (SupplierSignature against the pinned intermediary certificate, ControlBlock echo).
 * Used by the CLI (send/fetch), the end-to-end tests and the remote-mailbox adapter.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { certificateSha256Hex } from '../../crypto/keys.ts';
import { checkResponse, clientNext, type ClientDialogState, type ControlBlock, type DialogMessageType } from '../../protocol/dialog.ts';
import { decodeMessage, encodeMessage, type DecodedMessage, type EncodeOptions } from '../../protocol/envelope/index.ts';
import { OsciError } from '../../protocol/errors.ts';
import { isFeedbackCode, type FeedbackCode } from '../../protocol/feedback.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import { SUPPORTED_FEATURES } from '../../protocol/messages/parts.ts';
import type { Certificate, ContentPackage, DeliverySelection, FeedbackEntry, OsciMessage, OsciMessageOf, ProcessCardSelection, QualityOfTimestamp } from '../../protocol/model.ts';
import { DEFAULT_OSCI_TIMEOUT_MS, postOsci } from './post.ts';

export interface KeyPair {
  key: KeyObject;
  cert: X509Certificate;
}

export interface OsciClientOptions {
  /** The intermediary's OSCI endpoint, e.g. http://127.0.0.1:8080/osci */
  endpoint: string;
  /** Intermediary cipher certificate (requests are encrypted for it) and signature certificate (responses must be signed with it). */
  intermediary: { cipher: X509Certificate; signature: X509Certificate };
  signer: KeyPair;
  cipher: KeyPair;
  tmpDir: string;
  /** Send unencrypted (reference: DialogHandler.setEncryption(false)); default false. */
  plaintext?: boolean;
  languages?: string[];
  /** Progress callback for uploads (bytes sent, total when known). */
  onUploadProgress?: (sent: number, total: number | undefined) => void;
  /** An exchange fails when nothing moves for this long (default 60 s; no fixed deadline, so large messages over slow links work). Largest answer accepted (default unbounded). */
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export type Attachment = NonNullable<EncodeOptions['attachments']>[number];

/** A response whose Feedback is an error code: the order was refused (order-level, §8). */
export class OrderRefused extends OsciError {
  constructor(readonly feedback0: FeedbackEntry) {
    super(codeFor(feedback0.code), `${feedback0.code} ${feedback0.text}`, isFeedbackCode(feedback0.code) ? { feedback: feedback0.code } : {});
  }
}

function codeFor(fb: string) {
  switch (fb) {
    case '9803':
      return 'ERR_NOT_FOUND' as const;
    case '9804':
      return 'ERR_PROCESS_CARD_NOT_FOUND' as const;
    case '9802':
      return 'ERR_DIALOG_REQUIRED' as const;
    case '9801':
    case '9800':
      return 'ERR_MESSAGE_ID' as const;
    case '9805':
      return 'ERR_RECIPIENT_REFUSED' as const;
    case '9808':
      return 'ERR_RECIPIENT_INTERNAL' as const;
    default:
      return 'ERR_REMOTE' as const;
  }
}

const isError = (code: string) => /^9/.test(code);

export class OsciClient {
  constructor(private readonly o: OsciClientOptions) {}

  /**
   * Our certificates for an order. Inside an explicit dialog the XSDs admit only SignatureCertificateOriginator; the
   * intermediary keeps the cipher certificate sent with initDialog (as the reference library does).
   */
  private ownCertificates(controlBlock: ControlBlock): Certificate[] {
    const sig = certificate('originator', 'signature', this.o.signer.cert.raw);
    return controlBlock.conversationId === undefined ? [certificate('originator', 'cipher', this.o.cipher.cert.raw), sig] : [sig];
  }

  private base(controlBlock: ControlBlock) {
    return { controlBlock, desiredLanguages: this.o.languages ?? ['de'], certificates: this.ownCertificates(controlBlock), featureDescription: SUPPORTED_FEATURES };
  }

  /** One request/response exchange; the caller disposes the decoded response. */
  async exchange(msg: OsciMessage, attachments: Attachment[] = []): Promise<DecodedMessage> {
    const enc = await encodeMessage(msg, {
      signer: this.o.signer,
      encryptFor: this.o.plaintext ? undefined : this.o.intermediary.cipher,
      attachments,
    });
    const res = await postOsci(this.o.endpoint, enc, {
      idleTimeoutMs: this.o.timeoutMs ?? DEFAULT_OSCI_TIMEOUT_MS,
      ...(this.o.maxResponseBytes !== undefined ? { maxResponseBytes: this.o.maxResponseBytes } : {}),
      ...(this.o.onUploadProgress ? { onUploadProgress: this.o.onUploadProgress } : {}),
    });
    const pinned = this.o.intermediary.signature;
    const decoded = await decodeMessage(res.body, {
      contentType: res.contentType,
      transportKeys: [this.o.cipher],
      tmpDir: this.o.tmpDir,
      signature: 'optional',
      trustSigner: async (carried) => {
        // The supplier's certificate must be the one we pinned, whatever the response carries.
        if (!carried || certificateSha256Hex(carried) !== certificateSha256Hex(pinned)) {
          throw new OsciError('ERR_CERT_UNTRUSTED', 'response is not signed with the pinned intermediary certificate');
        }
        return pinned;
      },
    });
    const m = decoded.message;
    if (m.type === 'fault') {
      await decoded.dispose();
      const code = m.oscicode && isFeedbackCode(m.oscicode) ? m.oscicode : undefined;
      throw new OsciError(code === '9400' ? 'ERR_CONTROLBLOCK' : 'ERR_REMOTE', `intermediary answered soap:Fault ${m.oscicode ?? ''} ${m.faultString}`.trim(), code ? { feedback: code as FeedbackCode } : {});
    }
    if (!decoded.signature) {
      await decoded.dispose();
      throw new OsciError('ERR_SIGNATURE_MISSING', 'response carries no SupplierSignature');
    }
    return decoded;
  }

  /** Sends an order and checks the ControlBlock echo; refuses error Feedback. */
  private async order<T extends OsciMessage['type']>(msg: OsciMessage & { controlBlock: ControlBlock }, type: DialogMessageType, expect: T, attachments?: Attachment[]) {
    const decoded = await this.exchange(msg, attachments);
    const r = decoded.message;
    if (r.type !== expect) {
      await decoded.dispose();
      throw new OsciError('ERR_REMOTE', `expected ${expect}, got ${r.type}`);
    }
    const resp = r as OsciMessageOf<T> & { controlBlock: ControlBlock; feedback?: FeedbackEntry[] };
    const check = checkResponse(msg.controlBlock, resp.controlBlock, type);
    if (!check.ok) {
      await decoded.dispose();
      throw check.error;
    }
    const fb = resp.feedback?.[0];
    // Order-level refusal (§8): the dialog still advanced (our Response was answered, a new Challenge issued).
    const refused = fb && isError(fb.code) ? new OrderRefused(fb) : undefined;
    if (refused) await decoded.dispose();
    return { decoded, response: resp, next: check.next, refused };
  }

  private async orderOk<T extends OsciMessage['type']>(msg: OsciMessage & { controlBlock: ControlBlock }, type: DialogMessageType, expect: T, attachments?: Attachment[]) {
    const r = await this.order(msg, type, expect, attachments);
    if (r.refused) throw r.refused;
    return r;
  }

  async getMessageId(): Promise<string> {
    const cb = clientNext(undefined, 'getMessageId');
    const { decoded, response } = await this.orderOk({ type: 'getMessageId', ...this.base(cb) }, 'getMessageId', 'responseToGetMessageId');
    await decoded.dispose();
    if (!response.messageId) throw new OsciError('ERR_REMOTE', 'responseToGetMessageId without MessageId');
    return response.messageId;
  }

  /** What storeDelivery and forwardDelivery carry alike: our and the addressee's certificates, the timestamps asked for, the content. */
  private delivery(
    cb: ControlBlock,
    d: { addresseeCipher: X509Certificate; subject?: string | undefined; contentPackage: ContentPackage; certificates?: Certificate[] | undefined; qualityOfTimestamp?: QualityOfTimestamp | undefined },
    messageId: string,
  ) {
    const base = this.base(cb);
    return {
      ...base,
      certificates: dedupe([...base.certificates, certificate('addressee', 'cipher', d.addresseeCipher.raw), ...(d.certificates ?? [])]),
      qualityOfTimestamp: d.qualityOfTimestamp ?? { creation: 'plain' as const, reception: 'plain' as const },
      messageId,
      subject: d.subject,
      contentPackage: d.contentPackage,
    };
  }

  /** storeDelivery in an implicit dialog; resolves with the receipt (process card of the stored delivery). */
  async storeDelivery(d: {
    messageId?: string;
    addresseeCipher: X509Certificate;
    subject?: string;
    contentPackage: ContentPackage;
    /** Certificates the content brings along (author/reader), besides ours and the addressee's. */
    certificates?: Certificate[];
    attachments?: Attachment[];
    qualityOfTimestamp?: QualityOfTimestamp;
  }) {
    const messageId = d.messageId ?? (await this.getMessageId());
    const { decoded, response } = await this.orderOk(
      { type: 'storeDelivery', ...this.delivery(clientNext(undefined, 'storeDelivery'), d, messageId) },
      'storeDelivery',
      'responseToStoreDelivery',
      d.attachments,
    );
    await decoded.dispose();
    return { messageId, feedback: response.feedback, processCardBundle: response.processCardBundle };
  }

  /**
   * forwardDelivery (§1) in an implicit dialog: the intermediary pushes the delivery to the passive recipient at
   * `contentReceiver` (acceptDelivery) and answers once the recipient accepted; resolves with the process card
   * (creation, forwarding, reception). A refusal is an OrderRefused (9805 refused, 9808 recipient error, 9809 not reached).
   */
  async forwardDelivery(d: PassiveDelivery & { messageId?: string; qualityOfTimestamp?: QualityOfTimestamp }) {
    const messageId = d.messageId ?? (await this.getMessageId());
    const { decoded, response } = await this.orderOk(
      { type: 'forwardDelivery', ...this.delivery(clientNext(undefined, 'forwardDelivery'), d, messageId), contentReceiver: d.contentReceiver },
      'forwardDelivery',
      'responseToForwardDelivery',
      d.attachments,
    );
    await decoded.dispose();
    return { messageId, feedback: response.feedback, processCardBundle: response.processCardBundle };
  }

  /** @internal used by OsciDialog: our cipher certificate for a reply the recipient encrypts for us (mediateDelivery). */
  cipherCertificate(): Certificate {
    return certificate('originator', 'cipher', this.o.cipher.cert.raw);
  }

  async openDialog(): Promise<OsciDialog> {
    const cb = clientNext(undefined, 'initDialog');
    const { decoded, next } = await this.orderOk({ type: 'initDialog', ...this.base(cb) }, 'initDialog', 'responseToInitDialog');
    await decoded.dispose();
    if (!next) throw new OsciError('ERR_REMOTE', 'initDialog answered without a dialog');
    return new OsciDialog(this, next);
  }

  /** @internal used by OsciDialog */
  async dialogOrder<T extends OsciMessage['type']>(
    state: ClientDialogState,
    msg: (cb: ControlBlock, base: ReturnType<OsciClient['base']>) => OsciMessage & { controlBlock: ControlBlock },
    type: DialogMessageType,
    expect: T,
    attachments?: Attachment[],
  ) {
    const cb = clientNext(state, type);
    return this.order(msg(cb, this.base(cb)), type, expect, attachments);
  }
}

/** A delivery to a passive recipient (forwardDelivery, mediateDelivery). */
export interface PassiveDelivery {
  /** The addressee's cipher certificate: the intermediary finds the recipient by it. */
  addresseeCipher: X509Certificate;
  /** ContentReceiver@URI: the recipient's endpoint as registered at the intermediary. */
  contentReceiver: string;
  subject?: string;
  contentPackage: ContentPackage;
  /** Certificates the content brings along (author/reader), besides ours and the addressee's. */
  certificates?: Certificate[];
  attachments?: Attachment[];
}

/** Certificates once each (role, usage, Id). */
export function dedupe(certs: Certificate[]): Certificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => {
    const k = `${c.role}:${c.usage}:${c.id}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** An explicit dialog (§2): fetchDelivery / fetchProcessCard need one; reception is acknowledged by the next request. */
export class OsciDialog {
  constructor(
    private readonly client: OsciClient,
    private state: ClientDialogState,
  ) {}

  get conversationId(): string {
    return this.state.conversationId;
  }

  /** Continue this dialog through another client (e.g. another intermediary process behind the same store). */
  via(client: OsciClient): OsciDialog {
    return new OsciDialog(client, this.state);
  }

  private advance(next: ClientDialogState | undefined): void {
    if (next) this.state = next;
    else this.state = { ...this.state, open: false };
  }

  /** Fetches at most one waiting delivery; undefined when none matches (9803). The caller disposes `decoded`. */
  async fetchDelivery(selection?: DeliverySelection): Promise<{ response: OsciMessageOf<'responseToFetchDelivery'>; decoded: DecodedMessage } | undefined> {
    const r = await this.client.dialogOrder(this.state, (cb, base) => ({ type: 'fetchDelivery', ...base, controlBlock: cb, selection }), 'fetchDelivery', 'responseToFetchDelivery');
    this.advance(r.next);
    if (r.refused?.feedback0.code === '9803') return undefined;
    if (r.refused) throw r.refused;
    return { response: r.response, decoded: r.decoded };
  }

  async fetchProcessCards(selection?: ProcessCardSelection, quantityLimit?: number) {
    const r = await this.client.dialogOrder(
      this.state,
      (cb, base) => ({ type: 'fetchProcessCard', ...base, controlBlock: cb, selection, quantityLimit }),
      'fetchProcessCard',
      'responseToFetchProcessCard',
    );
    this.advance(r.next);
    if (r.refused?.feedback0.code === '9804') return [];
    if (r.refused) throw r.refused;
    await r.decoded.dispose();
    return r.response.processCardBundles;
  }

  /**
   * mediateDelivery (§1): the intermediary hands the request to the passive recipient (processDelivery) and returns
   * its reply: the content for us, the request's process card (creation, forwarding, reception) and, when the reply
   * carries a MessageId, its process card. Without `messageId` nothing is recorded. The caller disposes `decoded`.
   */
  async mediateDelivery(d: PassiveDelivery & { messageId?: string; qualityOfTimestamp?: Partial<QualityOfTimestamp> }): Promise<{ response: OsciMessageOf<'responseToMediateDelivery'>; decoded: DecodedMessage }> {
    const r = await this.client.dialogOrder(
      this.state,
      (cb, base) => ({
        type: 'mediateDelivery',
        ...base,
        controlBlock: cb,
        // The recipient encrypts its reply for our cipher certificate.
        certificates: dedupe([this.client.cipherCertificate(), ...base.certificates, certificate('addressee', 'cipher', d.addresseeCipher.raw), ...(d.certificates ?? [])]),
        qualityOfTimestamp: d.qualityOfTimestamp ?? (d.messageId !== undefined ? { creation: 'plain', reception: 'plain' } : {}),
        contentReceiver: d.contentReceiver,
        messageId: d.messageId,
        subject: d.messageId !== undefined ? d.subject : undefined,
        contentPackage: d.contentPackage,
      }),
      'mediateDelivery',
      'responseToMediateDelivery',
      d.attachments,
    );
    this.advance(r.next);
    if (r.refused) throw r.refused;
    return { response: r.response, decoded: r.decoded };
  }

  async close(): Promise<void> {
    if (!this.state.open) return;
    const r = await this.client.dialogOrder(this.state, (cb, base) => ({ type: 'exitDialog', ...base, controlBlock: cb }), 'exitDialog', 'responseToExitDialog');
    this.advance(undefined);
    if (r.refused) throw r.refused;
    await r.decoded.dispose();
  }
}
