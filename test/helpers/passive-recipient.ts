/**
 * A passive recipient for tests (osci-protocol.md §1): an HTTP server on 127.0.0.1 that takes acceptDelivery /
 * processDelivery from the intermediary, checks the ClientSignature against the pinned intermediary signature
 * certificate and the ControlBlock, lets the test decide the answer, and answers responseToAcceptDelivery /
 * responseToProcessDelivery signed with the recipient's key and transport-encrypted for the request's
 * CipherCertificateIntermediary. Like the reference library's PassiveRecipient servlet it sends no HTTP
 * Content-Type (the MIME headers are in the body) and answers faults with HTTP 200.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { serializeXml } from '../../crypto/xml.ts';
import { acceptRequest, respond } from '../../protocol/dialog.ts';
import { decodeMessage, encodeMessage, type DecodedMessage, type EncodedAttachment, type EncodedMessage } from '../../protocol/envelope/index.ts';
import { OsciError, toOsciError } from '../../protocol/errors.ts';
import { feedbackEntry, type FeedbackCode } from '../../protocol/feedback.ts';
import type { AcceptDelivery, Certificate, ContentPackage, OsciMessage, ProcessDelivery } from '../../protocol/model.ts';

export interface KeyPair {
  key: KeyObject;
  cert: X509Certificate;
}

export interface ReceivedDelivery {
  message: AcceptDelivery | ProcessDelivery;
  /** Valid while `answer` runs (attachments in temporary files). */
  decoded: DecodedMessage;
}

export interface RecipientReply {
  contentPackage?: ContentPackage;
  certificates?: Certificate[];
  attachments?: EncodedAttachment[];
  messageId?: string;
  subject?: string;
  /** Called once the answer is written (e.g. SealedContent.dispose). */
  dispose?: () => Promise<void>;
}

export type RecipientAnswer =
  /** A regular answer with this Feedback (and, for processDelivery, this reply). */
  | { feedback: FeedbackCode; reply?: RecipientReply; signWith?: KeyPair; unencrypted?: boolean }
  | { fault: { faultCode: 'Client' | 'Server'; oscicode: FeedbackCode } }
  /** Something that is not OSCI, e.g. a redirect. */
  | { http: { status: number; headers?: Record<string, string>; body?: string } }
  /** Never answer (until close). */
  | { hang: true };

export interface PassiveRecipientOptions {
  identity: { signature: KeyPair; cipher: KeyPair };
  /** The intermediary's signature certificate: requests must be signed with it. */
  intermediarySignature: X509Certificate;
  tmpDir: string;
  answer(d: ReceivedDelivery): Promise<RecipientAnswer>;
}

export interface PassiveRecipientDouble {
  /** Endpoint to register as the participant's endpointUrl. */
  url: string;
  /** HTTP requests that arrived, whatever they held. */
  readonly calls: number;
  /** Requests that decoded and verified. */
  received: Array<AcceptDelivery | ProcessDelivery>;
  /** Their SOAP envelopes as received (after transport decryption), for schema checks. */
  soap: string[];
  /** Requests refused before `answer` (decode, signature, ControlBlock). */
  refused: OsciError[];
  close(): Promise<void>;
}

export async function startPassiveRecipient(o: PassiveRecipientOptions): Promise<PassiveRecipientDouble> {
  const received: Array<AcceptDelivery | ProcessDelivery> = [];
  const soap: string[] = [];
  const refused: OsciError[] = [];
  const sockets = new Set<Socket>();
  let calls = 0;

  async function write(res: ServerResponse, enc: EncodedMessage, status = 200): Promise<void> {
    // No Content-Type, as the reference PassiveRecipient servlet answers.
    res.writeHead(status, enc.length !== undefined ? { 'content-length': String(enc.length) } : {});
    await pipeline(enc.stream, res);
  }

  async function fault(res: ServerResponse, faultCode: 'Client' | 'Server', code: FeedbackCode): Promise<void> {
    await write(res, await encodeMessage({ type: 'fault', faultCode, faultString: feedbackEntry(code).text, oscicode: code }, {}));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    calls++;
    let decoded: DecodedMessage;
    try {
      decoded = await decodeMessage(req, {
        contentType: req.headers['content-type'],
        transportKeys: [o.identity.cipher],
        requireTransportEncryption: true,
        tmpDir: o.tmpDir,
        signature: 'required',
        trustSigner: async (carried, side) => {
          if (side !== 'client' || !carried || !carried.raw.equals(o.intermediarySignature.raw)) {
            throw new OsciError('ERR_CERT_UNTRUSTED', 'not signed by the pinned intermediary');
          }
          return o.intermediarySignature;
        },
      });
    } catch (e) {
      const err = toOsciError(e);
      refused.push(err);
      await fault(res, err.fault, err.feedback);
      return;
    }
    try {
      const m = decoded.message;
      if (m.type !== 'acceptDelivery' && m.type !== 'processDelivery') {
        refused.push(new OsciError('ERR_MESSAGE_TYPE_UNKNOWN', m.type));
        return await fault(res, 'Client', '9100');
      }
      const accepted = acceptRequest(undefined, m.type, m.controlBlock, 'intermediary');
      if (!accepted.ok) {
        refused.push(accepted.error);
        return await fault(res, 'Client', '9400');
      }
      const { controlBlock } = respond(accepted.next, m.type, m.controlBlock);
      received.push(m);
      soap.push(serializeXml(decoded.soap.doc));
      const a = await o.answer({ message: m, decoded });
      if ('hang' in a) return await new Promise<void>((resolve) => res.on('close', () => resolve()));
      if ('http' in a) {
        res.writeHead(a.http.status, a.http.headers ?? {});
        res.end(a.http.body ?? '');
        return;
      }
      if ('fault' in a) return await fault(res, a.fault.faultCode, a.fault.oscicode);
      const intermediaryCipher = m.certificates.find((c) => c.role === 'intermediary' && c.usage === 'cipher');
      if (!intermediaryCipher) throw new OsciError('ERR_CIPHER_CERT_MISSING', 'no CipherCertificateIntermediary to encrypt the answer for');
      const feedback = [feedbackEntry(a.feedback)];
      const r = a.reply ?? {};
      const answer: OsciMessage =
        m.type === 'acceptDelivery'
          ? { type: 'responseToAcceptDelivery', controlBlock, feedback, certificates: [] }
          : {
              type: 'responseToProcessDelivery',
              controlBlock,
              qualityOfTimestamp: r.messageId !== undefined ? { creation: 'plain', reception: 'plain' } : {},
              feedback,
              messageId: r.messageId,
              subject: r.messageId !== undefined ? r.subject : undefined,
              contentPackage: r.contentPackage,
              certificates: r.certificates ?? [],
            };
      try {
        const enc = await encodeMessage(answer, {
          signer: a.signWith ?? o.identity.signature,
          encryptFor: a.unencrypted ? undefined : new X509Certificate(intermediaryCipher.der),
          attachments: r.attachments ?? [],
        });
        await write(res, enc);
      } finally {
        await r.dispose?.();
      }
    } finally {
      await decoded.dispose();
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      refused.push(toOsciError(e));
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/osci`,
    get calls() {
      return calls;
    },
    received,
    soap,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
