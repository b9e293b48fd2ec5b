/**
 * The single error model of Amtsbote. Every failure that leaves a module is an `OsciError` with a stable
 * code; `ERROR_TABLE` maps each code (ours and every `CryptoErrorCode`) to the OSCI feedback code put on
 * the wire, the HTTP status for HTTP-level/REST answers, the CLI exit code and the SOAP fault kind.
 *
 * CLI exit codes: 0 ok · 1 verification or check failed · 2 unreadable input or usage error ·
 * 3 remote peer or network failure · 4 unauthorised · 5 internal error.
 *
 * The OSCI endpoint itself answers message-level errors (feedback 9000–9503) with a soap:Fault, which
 * SOAP 1.1 §6.2 sends as HTTP 500; the `http` column is for our other HTTP surfaces (XTA/REST/admin).
 */
import { CRYPTO_ERROR_CODES, CryptoError, type CryptoErrorCode } from '../crypto/errors.ts';
import { feedbackEntry, isFeedbackCode, type FeedbackCode, type FeedbackEntry, type FeedbackLang } from './feedback.ts';

export const OSCI_ERROR_CODES = [
  'ERR_MIME_MALFORMED', // not a well-formed multipart/related entity (§11)
  'ERR_MIME_LIMIT', // a MIME parser limit was hit (parts, header bytes, preamble, in-memory part)
  'ERR_TOO_LARGE', // message larger than the configured maximum (200 MB, osci-protocol.md §13)
  'ERR_SOAP_MALFORMED', // SOAP part is not a valid OSCI SOAP envelope
  'ERR_MESSAGE_TYPE_UNKNOWN', // body/header does not name a known or allowed message type
  'ERR_ORDER_INVALID', // decrypted order data violate the message schema (element order, cardinality)
  'ERR_TRANSPORT_KEY_UNKNOWN', // encrypted to a cipher certificate whose private key we do not hold
  'ERR_CONTROLBLOCK', // ControlBlock violates the rules for its message type or does not match (§2)
  'ERR_DIALOG_REQUIRED', // order type needs an explicit dialog (fetchDelivery, fetchProcessCard, ...)
  'ERR_DIALOG_UNKNOWN', // ConversationId unknown, closed, or belonging to another client
  'ERR_SEQUENCE', // SequenceNumber is not the previous one plus one
  'ERR_REPLAY', // an old SequenceNumber/Response arrived again
  'ERR_MESSAGE_ID_MISSING', // storeDelivery without MessageId
  'ERR_MESSAGE_ID', // MessageId not issued by this supplier or already used
  'ERR_NOT_FOUND', // no delivery matches the selection
  'ERR_PROCESS_CARD_NOT_FOUND', // no process card matches the selection
  'ERR_UNAUTHORISED', // authenticated client may not access this postbox/resource
  'ERR_SIGNATURE_MISSING', // order unsigned although a signature is required
  'ERR_SIGNATURE_INCOMPLETE', // not every required element is covered by the ClientSignature
  'ERR_CIPHER_CERT_MISSING', // request lacks the client's cipher certificate
  'ERR_RECIPIENT_REFUSED', // passive recipient did not accept the delivery
  'ERR_RECIPIENT_INTERNAL', // passive recipient reported an internal error
  'ERR_REMOTE', // a peer could not be reached or answered unusably
  'ERR_USAGE', // CLI/API misuse; never sent over OSCI
  'ERR_ORDER_INTERNAL', // internal error while executing an order
  'ERR_INTERNAL', // anything unexpected; details stay in the log
] as const;

export type OsciErrorCode = (typeof OSCI_ERROR_CODES)[number];
export type ErrorCode = OsciErrorCode | CryptoErrorCode;

export type FaultKind = 'Client' | 'Server';
export type ExitCode = 0 | 1 | 2 | 3 | 4 | 5;

export interface ErrorInfo {
  feedback: FeedbackCode;
  http: number;
  exit: ExitCode;
  fault: FaultKind;
}

const e = (feedback: FeedbackCode, http: number, exit: ExitCode, fault: FaultKind): ErrorInfo =>
  Object.freeze({ feedback, http, exit, fault });

export const ERROR_TABLE: Readonly<Record<ErrorCode, ErrorInfo>> = Object.freeze({
  // message level
  ERR_MIME_MALFORMED: e('9100', 400, 2, 'Client'),
  ERR_MIME_LIMIT: e('9100', 413, 2, 'Client'),
  ERR_TOO_LARGE: e('9904', 413, 2, 'Client'),
  ERR_SOAP_MALFORMED: e('9100', 400, 2, 'Client'),
  ERR_MESSAGE_TYPE_UNKNOWN: e('9100', 400, 2, 'Client'),
  ERR_ORDER_INVALID: e('9300', 400, 2, 'Client'),
  ERR_TRANSPORT_KEY_UNKNOWN: e('9200', 400, 2, 'Client'),
  ERR_CONTROLBLOCK: e('9400', 400, 1, 'Client'),
  ERR_DIALOG_UNKNOWN: e('9400', 400, 1, 'Client'),
  ERR_SEQUENCE: e('9400', 400, 1, 'Client'),
  ERR_REPLAY: e('9400', 400, 1, 'Client'),
  ERR_CIPHER_CERT_MISSING: e('9500', 400, 2, 'Client'),
  ERR_INTERNAL: e('9000', 500, 5, 'Server'),
  // order level
  ERR_DIALOG_REQUIRED: e('9802', 400, 1, 'Client'),
  ERR_MESSAGE_ID_MISSING: e('9800', 400, 2, 'Client'),
  ERR_MESSAGE_ID: e('9801', 409, 1, 'Client'),
  ERR_NOT_FOUND: e('9803', 404, 1, 'Client'),
  ERR_PROCESS_CARD_NOT_FOUND: e('9804', 404, 1, 'Client'),
  // OSCI has no "forbidden": answer as "nothing found" so that foreign postboxes are not disclosed.
  ERR_UNAUTHORISED: e('9803', 403, 4, 'Client'),
  ERR_SIGNATURE_MISSING: e('9600', 400, 1, 'Client'),
  ERR_SIGNATURE_INCOMPLETE: e('9602', 400, 1, 'Client'),
  ERR_RECIPIENT_REFUSED: e('9805', 502, 3, 'Server'),
  ERR_RECIPIENT_INTERNAL: e('9808', 502, 3, 'Server'),
  ERR_REMOTE: e('9809', 502, 3, 'Server'),
  ERR_USAGE: e('9000', 400, 2, 'Client'),
  ERR_ORDER_INTERNAL: e('9811', 500, 5, 'Server'),
  // crypto layer (crypto/errors.ts)
  ERR_XML_MALFORMED: e('9100', 400, 2, 'Client'),
  ERR_XML_DOCTYPE: e('9100', 400, 2, 'Client'),
  ERR_XML_DUPLICATE_ID: e('9100', 400, 1, 'Client'),
  ERR_XML_ID_NOT_FOUND: e('9601', 400, 1, 'Client'),
  ERR_ALG_NOT_ALLOWED: e('9601', 400, 1, 'Client'),
  ERR_ALG_UNSUPPORTED: e('9601', 400, 1, 'Client'),
  ERR_KEY_TOO_SMALL: e('9601', 400, 1, 'Client'),
  ERR_KEY_INVALID: e('9300', 400, 2, 'Client'),
  ERR_SIG_STRUCTURE: e('9601', 400, 1, 'Client'),
  ERR_SIG_DIGEST: e('9601', 400, 1, 'Client'),
  ERR_SIG_INVALID: e('9601', 400, 1, 'Client'),
  ERR_DECRYPT: e('9202', 400, 1, 'Client'),
  ERR_ENC_STRUCTURE: e('9202', 400, 2, 'Client'),
  ERR_CERT_EXPIRED: e('3700', 400, 1, 'Client'),
  ERR_CERT_NOT_YET_VALID: e('3700', 400, 1, 'Client'),
  ERR_CERT_UNTRUSTED: e('9700', 400, 1, 'Client'),
  ERR_CERT_REVOKED: e('9701', 400, 1, 'Client'),
  ERR_CERT_KEY_USAGE: e('9700', 400, 1, 'Client'),
  ERR_CID_NOT_FOUND: e('9100', 400, 2, 'Client'),
});

const ALL_CODES: ReadonlySet<string> = new Set<string>([...OSCI_ERROR_CODES, ...CRYPTO_ERROR_CODES]);

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && ALL_CODES.has(code);
}

/** Table row of a code; a code missing from the table (e.g. a crypto code added later) counts as internal. */
export function errorInfo(code: ErrorCode): ErrorInfo {
  return (ERROR_TABLE as Partial<Record<ErrorCode, ErrorInfo>>)[code] ?? ERROR_TABLE.ERR_INTERNAL;
}

export class OsciError extends Error {
  override readonly name = 'OsciError';
  /** Overrides the table's feedback code where context decides (e.g. ERR_DECRYPT of a content part). */
  readonly feedbackOverride: FeedbackCode | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; feedback?: FeedbackCode },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.feedback !== undefined && !isFeedbackCode(options.feedback)) {
      throw new RangeError(`unknown OSCI feedback code ${String(options.feedback)}`);
    }
    this.feedbackOverride = options?.feedback;
  }

  get info(): ErrorInfo {
    return errorInfo(this.code);
  }
  get feedback(): FeedbackCode {
    return this.feedbackOverride ?? this.info.feedback;
  }
  get http(): number {
    return this.info.http;
  }
  get exit(): ExitCode {
    return this.info.exit;
  }
  get fault(): FaultKind {
    return this.info.fault;
  }
  /** The Feedback entry for the wire: the standard OSCI text, never our internal message. */
  feedbackEntry(lang: FeedbackLang = 'de'): FeedbackEntry {
    return feedbackEntry(this.feedback, lang);
  }
}

export function isOsciError(err: unknown): err is OsciError {
  return err instanceof OsciError;
}

/**
 * Normalises anything thrown into an OsciError: OsciError as is, CryptoError with its own code and
 * message, everything else ERR_INTERNAL with a generic message (the original stays in `cause` for
 * logging only; it must not reach the wire).
 */
export function toOsciError(err: unknown): OsciError {
  if (err instanceof OsciError) return err;
  if (err instanceof CryptoError) {
    const code: ErrorCode = isErrorCode(err.code) ? err.code : 'ERR_INTERNAL';
    return new OsciError(code, err.message, { cause: err });
  }
  return new OsciError('ERR_INTERNAL', 'internal error', { cause: err });
}
