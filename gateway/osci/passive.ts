/**
 * The intermediary as OSCI client of a passive recipient (osci-protocol.md §1, §2): acceptDelivery for a
 * forwardDelivery, processDelivery for a mediateDelivery. The recipient is called only at its registered endpoint
 * (never at a URL taken from a message), the request is signed with our signature key and transport-encrypted for
 * the recipient's registered cipher certificate, and the answer must be signed with a signature certificate
 * registered for that recipient and echo our Challenge. Every failure leaves as an order-level code for the
 * originator (§8): 9805 refused, 9807 answer not verifiable, 9808 recipient error, 9809 not reached.
 */
import { X509Certificate } from 'node:crypto';
import type { CryptoPolicy } from '../../crypto/algorithms.ts';
import { certificateSha256Hex } from '../../crypto/keys.ts';
import { DEFAULT_OSCI_TIMEOUT_MS, osciEndpointUrl, postOsci } from '../../adapters/osci/post.ts';
import { checkResponse, clientNext } from '../../protocol/dialog.ts';
import { decodeMessage, encodeMessage, type DecodedMessage, type DecodeLimits, type EncodedAttachment } from '../../protocol/envelope/index.ts';
import { OsciError, toOsciError } from '../../protocol/errors.ts';
import { isFeedbackCode, type FeedbackCode } from '../../protocol/feedback.ts';
import type { AcceptDelivery, Certificate, OsciMessageOf, ProcessDelivery } from '../../protocol/model.ts';
import type { Identity } from '../identity.ts';
import type { Store } from '../store/index.ts';
import { derToCert } from '../trust.ts';

/** A participant reached by push: its registered endpoint and the cipher certificate the request is encrypted for. */
export interface PassiveRecipient {
  participantId: string;
  /** The registered `endpointUrl`, normalised. */
  endpoint: string;
  cipher: X509Certificate;
}

export interface PassiveCallOptions {
  identity: Identity;
  /** Registered certificates: the answer's signer must be one of the recipient's. */
  store: Store;
  tmpDir: string;
  /** Bounds for decoding the answer (size, parts, in-memory part size). */
  limits: DecodeLimits;
  policy?: CryptoPolicy;
  /** Deadline for the whole exchange with the recipient; default 60 s. */
  timeoutMs?: number;
}

export interface PassiveAnswer<T> {
  response: T;
  /** The decoded answer (attachments in temporary files); the caller disposes it. */
  decoded: DecodedMessage;
  /** Warnings for the originator: the recipient's 3xxx codes, 3803 for an unencrypted answer. */
  warnings: FeedbackCode[];
  /** When the answer arrived (Reception, §2). */
  at: Date;
}

type PassiveFailure = '9805' | '9807' | '9808' | '9809' | '9810';

/** An order-level error for the originator (§8); `reached` tells whether the delivery got to the recipient. */
function fail(feedback: PassiveFailure, message: string, cause?: unknown): OsciError {
  const opts = cause === undefined ? {} : { cause };
  switch (feedback) {
    case '9805':
      return new OsciError('ERR_RECIPIENT_REFUSED', message, opts);
    case '9808':
      return new OsciError('ERR_RECIPIENT_INTERNAL', message, opts);
    case '9809':
      return new OsciError('ERR_REMOTE', message, opts);
    case '9807':
      return new OsciError('ERR_SIG_INVALID', message, { ...opts, feedback: '9807' });
    case '9810':
      return new OsciError('ERR_ORDER_INTERNAL', message, { ...opts, feedback: '9810' });
  }
}

/** True unless the error says the delivery never reached the recipient (9809). */
export function reachedRecipient(e: unknown): boolean {
  return !(e instanceof OsciError && e.feedback === '9809');
}

/** Codes a recipient uses for its own internal errors ([N] Text_de.properties "Interner Fehler …"). */
const INTERNAL_CODES = new Set(['9000', '9503', '9603', '9710', '9808', '9810', '9811']);

const VERIFY_CODES = new Set<string>([
  'ERR_SIGNATURE_MISSING', 'ERR_SIGNATURE_INCOMPLETE', 'ERR_TRANSPORT_KEY_UNKNOWN', 'ERR_SIG_STRUCTURE', 'ERR_SIG_DIGEST',
  'ERR_SIG_INVALID', 'ERR_DECRYPT', 'ERR_ENC_STRUCTURE', 'ERR_CERT_EXPIRED', 'ERR_CERT_NOT_YET_VALID', 'ERR_CERT_UNTRUSTED',
  'ERR_CERT_REVOKED', 'ERR_CERT_KEY_USAGE', 'ERR_ALG_NOT_ALLOWED', 'ERR_ALG_UNSUPPORTED', 'ERR_KEY_TOO_SMALL', 'ERR_KEY_INVALID',
  'ERR_XML_DUPLICATE_ID', 'ERR_XML_ID_NOT_FOUND', 'ERR_CID_NOT_FOUND',
]);

function sameEndpoint(registered: string, uri: string): boolean {
  try {
    return osciEndpointUrl(registered).href === osciEndpointUrl(uri).href;
  } catch {
    return false;
  }
}

/**
 * The passive recipient of a forwardDelivery/mediateDelivery: the participant owning the CipherCertificateAddressee.
 * Its ContentReceiver@URI must be that participant's registered endpoint (compared after URL normalisation): a
 * message never makes the intermediary call an address of its choosing. Refused with 9805 otherwise, before
 * anything is stored or sent.
 */
export async function resolvePassiveRecipient(store: Store, certificates: Certificate[], contentReceiver: string, at: Date): Promise<PassiveRecipient> {
  const addresseeCert = certificates.find((c) => c.role === 'addressee' && c.usage === 'cipher');
  if (!addresseeCert) throw new OsciError('ERR_ORDER_INVALID', 'no CipherCertificateAddressee');
  const rec = await store.findCertificate(certificateSha256Hex(derToCert(addresseeCert.der)));
  // Unknown addressees get "not accepted" without revealing which participants exist.
  if (!rec || rec.usage !== 'cipher') throw fail('9805', 'addressee is not a participant of this intermediary');
  if (rec.revoked && rec.revoked <= at) throw new OsciError('ERR_CERT_REVOKED', 'addressee cipher certificate is revoked', { feedback: '9707' });
  const participant = await store.getParticipant(rec.participantId);
  if (!participant?.endpointUrl) throw fail('9805', `addressee ${rec.participantId} is not a passive recipient (no registered endpoint)`);
  if (!sameEndpoint(participant.endpointUrl, contentReceiver)) {
    throw fail('9805', `ContentReceiver ${JSON.stringify(contentReceiver.slice(0, 200))} is not the registered endpoint of ${rec.participantId}`);
  }
  return { participantId: rec.participantId, endpoint: osciEndpointUrl(participant.endpointUrl).href, cipher: derToCert(rec.der) };
}

/** The answer's signer: a signature certificate registered for the recipient, valid now (taken from the store, not the message). */
async function recipientSigner(store: Store, participantId: string, carried: X509Certificate | undefined, at: Date): Promise<X509Certificate> {
  if (!carried) throw new OsciError('ERR_SIGNATURE_MISSING', 'the answer carries no signature certificate of the recipient');
  const rec = await store.findCertificate(certificateSha256Hex(carried));
  if (!rec || rec.participantId !== participantId || rec.usage !== 'signature') {
    throw new OsciError('ERR_CERT_UNTRUSTED', `the answer is not signed with a registered signature certificate of ${participantId}`);
  }
  if (rec.revoked && rec.revoked <= at) throw new OsciError('ERR_CERT_REVOKED', 'the recipient signature certificate is revoked');
  if (at < rec.notBefore || at > rec.notAfter) throw new OsciError('ERR_CERT_EXPIRED', 'the recipient signature certificate is not valid now');
  return new X509Certificate(rec.der);
}

/** Maps a failure while reading the answer to the originator's code. */
function answerFailure(e: unknown, status: number, endpoint: string): OsciError {
  const err = toOsciError(e);
  if (err.code === 'ERR_REMOTE') return fail('9809', err.message, err);
  if (VERIFY_CODES.has(err.code)) return fail('9807', `the answer of ${endpoint} cannot be verified: ${err.message}`, err);
  if (err.code === 'ERR_INTERNAL') return fail('9810', 'internal error reading the answer', err);
  // Not an OSCI answer at all: with an HTTP error status nothing OSCI-speaking received the delivery.
  if (status >= 400) return fail('9809', `${endpoint} answered HTTP ${status} without an OSCI message`, err);
  return fail('9808', `unusable answer from ${endpoint}: ${err.message}`, err);
}

type PassiveRequest = Omit<AcceptDelivery, 'controlBlock'> | Omit<ProcessDelivery, 'controlBlock'>;
type AnswerOf<T extends PassiveRequest['type']> = T extends 'acceptDelivery' ? OsciMessageOf<'responseToAcceptDelivery'> : OsciMessageOf<'responseToProcessDelivery'>;

async function exchange<R extends PassiveRequest>(request: R, attachments: EncodedAttachment[], to: PassiveRecipient, o: PassiveCallOptions): Promise<PassiveAnswer<AnswerOf<R['type']>>> {
  const type = request.type;
  const expect = type === 'acceptDelivery' ? 'responseToAcceptDelivery' : 'responseToProcessDelivery';
  // acceptDelivery/processDelivery: Challenge only, no dialog (AcceptDelivery.xsd, ProcessDelivery.xsd).
  const controlBlock = clientNext(undefined, type);
  let encoded;
  try {
    encoded = await encodeMessage({ ...request, controlBlock } as OsciMessageOf<R['type']>, {
      signer: o.identity.signature,
      encryptFor: to.cipher,
      attachments,
      ...(o.policy ? { policy: o.policy } : {}),
    });
  } catch (e) {
    throw fail('9809', `cannot build ${type}`, e);
  }
  let answer;
  try {
    answer = await postOsci(to.endpoint, encoded, {
      timeoutMs: o.timeoutMs ?? DEFAULT_OSCI_TIMEOUT_MS,
      ...(o.limits.maxTotalBytes !== undefined ? { maxResponseBytes: o.limits.maxTotalBytes } : {}),
    });
  } catch (e) {
    throw fail('9809', toOsciError(e).message, e);
  }
  let decoded: DecodedMessage;
  try {
    decoded = await decodeMessage(answer.body, {
      contentType: answer.contentType,
      transportKeys: o.identity.ciphers,
      tmpDir: o.tmpDir,
      limits: o.limits,
      ...(o.policy ? { policy: o.policy } : {}),
      // Faults are unsigned (soapMessageFault.xsd); every other answer must be signed, checked below.
      signature: 'optional',
      trustSigner: async (carried, side) => {
        if (side !== 'supplier') throw new OsciError('ERR_SIG_STRUCTURE', 'the answer carries a ClientSignature');
        return recipientSigner(o.store, to.participantId, carried, new Date());
      },
    });
  } catch (e) {
    answer.body.destroy();
    throw answerFailure(e, answer.status, to.endpoint);
  }
  const at = new Date();
  try {
    const m = decoded.message;
    if (m.type === 'fault') {
      const internal = m.faultCode === 'Server' || (m.oscicode !== undefined && INTERNAL_CODES.has(m.oscicode));
      throw fail(internal ? '9808' : '9805', `${to.endpoint} answered soap:Fault ${m.oscicode ?? ''} ${m.faultString}`.trim());
    }
    if (m.type !== expect) throw fail('9808', `${to.endpoint} answered ${m.type}, not ${expect}`);
    // 3802 would be a warning in [N]; we sign our request, so an unsigned answer is not taken as the recipient's.
    if (!decoded.signature) throw fail('9807', `the ${m.type} of ${to.endpoint} is not signed`);
    const r = m as AnswerOf<R['type']>;
    const check = checkResponse(controlBlock, r.controlBlock, type);
    if (!check.ok) throw fail('9807', `the ${m.type} of ${to.endpoint} does not answer our ControlBlock: ${check.error.message}`);
    const codes = r.feedback.map((f) => f.code);
    const errors = codes.filter((c) => c.startsWith('9'));
    if (errors.length > 0) {
      throw fail(errors.some((c) => INTERNAL_CODES.has(c)) ? '9808' : '9805', `${to.endpoint} answered Feedback ${errors.join(' ')}`);
    }
    if (!codes.some((c) => c.startsWith('0'))) throw fail('9808', `${to.endpoint} answered without a positive Feedback`);
    const warnings = codes.filter((c): c is FeedbackCode => c.startsWith('3') && isFeedbackCode(c));
    if (!decoded.transport.encrypted) warnings.push('3803');
    return { response: r, decoded, warnings, at };
  } catch (e) {
    await decoded.dispose();
    throw e;
  }
}

/** acceptDelivery → responseToAcceptDelivery (one-way push of a forwardDelivery). */
export function sendAcceptDelivery(request: Omit<AcceptDelivery, 'controlBlock'>, attachments: EncodedAttachment[], to: PassiveRecipient, o: PassiveCallOptions) {
  return exchange(request, attachments, to, o);
}

/** processDelivery → responseToProcessDelivery (synchronous request/response of a mediateDelivery). */
export function sendProcessDelivery(request: Omit<ProcessDelivery, 'controlBlock'>, attachments: EncodedAttachment[], to: PassiveRecipient, o: PassiveCallOptions) {
  return exchange(request, attachments, to, o);
}
