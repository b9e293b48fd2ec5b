/** Public shapes of the OSCI envelope codec (protocol/envelope/index.ts). */
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { CryptoPolicy } from '../../crypto/algorithms.ts';
import type { OsciMessage } from '../model.ts';
import type { WrittenMultipart } from '../mime-write.ts';
import type { ParsedSoap } from '../soap-parse.ts';

/** One of our cipher keys; `cert` picks it by the EncryptedKey's X509Certificate (else every key is tried). */
export interface TransportKey {
  key: KeyObject;
  cert?: X509Certificate;
}

/** 'client' = ClientSignature (orders), 'supplier' = SupplierSignature (responses). */
export type SignatureSide = 'client' | 'supplier';

export interface DecodeLimits {
  maxTotalBytes?: number;
  maxParts?: number;
  maxInMemoryPartBytes?: number;
}

export interface DecodeOptions {
  /** HTTP Content-Type (text/xml quirk: the MIME headers are inside the body, osci-protocol.md §11). */
  contentType?: string;
  /** Our cipher key(s), several during rotation. */
  transportKeys: TransportKey[];
  /** Default false (the reference library can switch transport encryption off, [C] 06). */
  requireTransportEncryption?: boolean;
  /** Attachments and the decrypted transport payload spill here (bounded memory). */
  tmpDir: string;
  /**
   * Flush a part's temporary file to disk after every this many bytes while it is written (fdatasync in the
   * background), for a receiver that keeps the file (hard link) and fsyncs it before its receipt: the final
   * fsync then waits only for the rest. Default: never.
   */
  syncSpillEvery?: number;
  limits?: DecodeLimits;
  policy?: CryptoPolicy;
  signature: 'required' | 'optional';
  /**
   * Decide trust for the signer certificate carried in the message (SignatureCertificateOriginator for a
   * ClientSignature, SignatureCertificateIntermediary for a SupplierSignature; the intermediary's one for
   * acceptDelivery/processDelivery, the addressee's for their responses). Throw OsciError/CryptoError to refuse;
   * return the certificate to verify with.
   */
  trustSigner: (carried: X509Certificate | undefined, role: SignatureSide) => Promise<X509Certificate>;
}

export interface DecodedAttachment {
  contentId: string;
  /** Raw MIME part bytes (as signed). */
  size: number;
  sha256: Buffer;
  contentType?: string;
  /**
   * The temporary file holding exactly these bytes, when the part outgrew memory; read-only, removed by
   * dispose(). A store may hard-link it instead of copying the bytes.
   */
  file?: string;
  open(): Readable;
}

export interface SignatureInfo {
  /** The certificate trustSigner returned (the verification key), never KeyInfo. */
  signer: X509Certificate;
  /** SignatureMethod URI. */
  algorithm: string;
  /** Ids of the signed elements. */
  signedIds: string[];
  /** Content-IDs of the signed attachments. */
  cids: string[];
}

export interface DecodedMessage {
  /** Typed model, parsed from the verified elements only. */
  message: OsciMessage;
  soap: ParsedSoap;
  /** `recipient`: which of our certificates the message was encrypted for. */
  transport: { encrypted: boolean; recipient?: X509Certificate };
  signature?: SignatureInfo;
  attachments: DecodedAttachment[];
  /** Removes the temporary files. */
  dispose(): Promise<void>;
}

/** An attachment to send: raw bytes of one MIME part. `open()` must yield the same bytes every time. */
export interface EncodedAttachment {
  contentId: string;
  size: number;
  open(): Readable;
  /**
   * SHA-256 of exactly the bytes `open()` yields, when the caller computed it while writing them (our own value,
   * never one taken from a message): the signature's `cid:` digest uses it instead of reading the part once more.
   */
  sha256?: Buffer;
  contentType?: string;
}

export interface EncodeOptions {
  /** ClientSignature for orders, SupplierSignature for responses (by message type). */
  signer?: { key: KeyObject; cert: X509Certificate };
  /** Default rsa-sha256. */
  signatureAlgorithm?: string;
  /** Transport encryption (soapMessageEncrypted) for this cipher certificate; omitted = unencrypted. */
  encryptFor?: X509Certificate;
  attachments?: EncodedAttachment[];
  policy?: CryptoPolicy;
}

export interface EncodedMessage {
  /** `Multipart/Related; boundary=…; type=text/xml` — the body also starts with these headers, as the reference library writes it. */
  contentType: string;
  /** Entity headers: MIME-Version and Content-Type. */
  headers: Record<string, string>;
  /** Exact body length when every part size is known. */
  length?: number;
  stream: Readable;
  /** The whole body, when it was built in memory (no attachments): write it at once instead of reading `stream`. */
  body?: Buffer;
}

/** The message as `writeMultipart` wrote it. */
export function encodedFrom(w: WrittenMultipart): EncodedMessage {
  const out: EncodedMessage = { contentType: w.headers['Content-Type'] as string, headers: w.headers, stream: w.stream };
  if (w.length !== undefined) out.length = w.length;
  if (w.body !== undefined) out.body = w.body;
  return out;
}
