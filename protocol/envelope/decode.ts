/**
 * Decoding an OSCI message as received (osci-protocol.md §4–6, §11), server side (a client's order) and client
 * side (a supplier's response):
 *   1. outer MIME entity: SOAP part in memory, every other part kept in memory while the message's budget
 *      (spill.ts, 4 MiB) lasts and streamed to a temporary file beyond it, so small messages create no file;
 *   2. transport encryption (§5): `osci_enc` decrypted while it is received and the plaintext split into the
 *      inner entity's parts on the way (else decrypted after it was spilled, then split); nothing of it, not even
 *      a parse error, is used before the GCM tag verified, and no XML of it is parsed before;
 *   3. Client/SupplierSignature (§6) verified with the key trustSigner returns, coverage of every read element and
 *      every attachment enforced, the model parsed again from the verified elements only.
 * Every rejection is an OsciError carrying a code of protocol/errors.ts; temporary files are removed on failure.
 */
import { X509Certificate } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { DEFAULT_POLICY } from '../../crypto/algorithms.ts';
import { parseCertificate } from '../../crypto/certcache.ts';
import { OsciError, toOsciError, type ErrorCode } from '../errors.ts';
import type { MimeLimits, ParsedPart, PartHeaders } from '../mime.ts';
import type { OsciMessage } from '../model.ts';
import { parseSoap, type ParsedSoap } from '../soap-parse.ts';
import { parseSpilled, spillingWritable, type SpilledMultipart, type SpilledPart } from './multipart.ts';
import { verifyEnvelope } from './signatures.ts';
import { Spill } from './spill.ts';
import { decryptingSink, decryptTransportPayload, transportEncryptedData } from './transport.ts';
import type { DecodeLimits, DecodeOptions, DecodedAttachment, DecodedMessage } from './types.ts';

export type OpenOptions = Pick<DecodeOptions, 'contentType' | 'transportKeys' | 'requireTransportEncryption' | 'tmpDir' | 'syncSpillEvery' | 'limits' | 'policy'> & {
  /**
   * Inspection only: when no configured key opens the transport encryption, return the outer envelope with
   * `transport.locked` instead of rejecting.
   */
  keepLocked?: boolean;
};

/** A message after the transport layer, before any signature check: nothing in it is authenticated yet. */
export interface OpenedMessage {
  /** Unverified parse of the (inner) SOAP part; the outer envelope when `transport.locked`. */
  soap: ParsedSoap;
  transport: {
    encrypted: boolean;
    recipient?: X509Certificate;
    /** Set with keepLocked when the payload could not be decrypted. */
    locked?: { code: ErrorCode; message: string };
  };
  attachments: DecodedAttachment[];
  dispose(): Promise<void>;
}

function mimeLimits(l: DecodeLimits | undefined): Partial<MimeLimits> {
  const out: Partial<MimeLimits> = {};
  if (l?.maxTotalBytes !== undefined) out.maxTotalBytes = l.maxTotalBytes;
  if (l?.maxParts !== undefined) out.maxParts = l.maxParts;
  if (l?.maxInMemoryPartBytes !== undefined) out.maxInMemoryBytes = l.maxInMemoryPartBytes;
  return out;
}

function toAttachments(parts: readonly SpilledPart[]): DecodedAttachment[] {
  return parts.map((p) => ({
    contentId: p.contentId,
    size: p.size,
    sha256: p.sha256,
    ...(p.contentType !== undefined ? { contentType: p.contentType } : {}),
    ...(p.body.path !== undefined ? { file: p.body.path } : {}),
    open: () => p.body.open(),
  }));
}

type Settled<T> = { value: T } | { error: unknown };

/** A payload being decrypted while it is received (decryptingSink), its plaintext split as it comes. */
interface EarlyDecryption {
  inner: Promise<Settled<SpilledMultipart>>;
  done: Promise<{ recipient?: X509Certificate }>;
}

/**
 * The inner MIME entity split into parts (in memory within the message's budget, else temporary files) while it
 * is decrypted. The bytes are unauthenticated until the GCM tag verified (§5): the caller takes the result only
 * after that, and a parse failure is only settled here, never reported before the tag decided. A failed parse
 * stops reading; the remaining plaintext is dropped so that decryption still reaches the tag.
 */
function splitWhileDecrypting(spill: Spill, limits: Partial<MimeLimits>): { sink: Writable; inner: Promise<Settled<SpilledMultipart>> } {
  const { writable, result } = spillingWritable(spill, { limits });
  const inner = result.then(
    (value): Settled<SpilledMultipart> => ({ value }),
    (error: unknown): Settled<SpilledMultipart> => ({ error }),
  );
  return { sink: writable, inner };
}

/**
 * Step 2's failures: 9202 for a refused transport algorithm or key (CBC, rsa-1_5, short RSA: the order cannot be
 * decrypted, not 9601); with keepLocked an undecryptable payload is returned locked instead.
 */
function transportFailure(e: unknown, opts: OpenOptions): { code: ErrorCode; message: string } {
  const err = toOsciError(e);
  if (opts.keepLocked && (err.code === 'ERR_DECRYPT' || err.code === 'ERR_TRANSPORT_KEY_UNKNOWN')) return { code: err.code, message: err.message };
  if (err.code === 'ERR_ALG_NOT_ALLOWED' || err.code === 'ERR_ALG_UNSUPPORTED' || err.code === 'ERR_KEY_TOO_SMALL') {
    throw new OsciError(err.code, err.message, { cause: err, feedback: '9202' });
  }
  throw err;
}

/** Steps 1 and 2: MIME and transport decryption. */
export async function openMessage(body: Readable | Buffer, opts: OpenOptions): Promise<OpenedMessage> {
  const spill = Spill.lazy(opts.tmpDir, opts.syncSpillEvery === undefined ? {} : { syncEvery: opts.syncSpillEvery });
  const dispose = () => spill.dispose();
  const policy = opts.policy ?? DEFAULT_POLICY;
  let early: EarlyDecryption | undefined;
  let earlyError: { e: unknown } | undefined;
  let rootSoap: ParsedSoap | undefined; // the outer SOAP part, parsed once
  try {
    const limits = mimeLimits(opts.limits);
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    // §5: once the (buffered) SOAP part names the payload, the payload is decrypted as it arrives; anything
    // unexpected is left to the checks below (spilled as received). Not for inspection (keepLocked).
    const divert = (part: PartHeaders, previous: readonly ParsedPart[]): Writable | undefined => {
      const root = previous.find((p) => p.isRoot)?.body;
      if (opts.keepLocked || early || !root || part.index !== 1) return undefined;
      let soap: ParsedSoap;
      let cid: string;
      try {
        soap = rootSoap = parseSoap(root);
        if (soap.type !== 'soapMessageEncrypted') return undefined;
        ({ cid } = transportEncryptedData(soap));
      } catch {
        return undefined;
      }
      if (part.contentId !== cid) return undefined;
      const split = splitWhileDecrypting(spill, limits);
      const d = decryptingSink(soap, cid, opts.transportKeys, split.sink, policy);
      early = { inner: split.inner, done: d.done };
      d.done.catch((e: unknown) => (earlyError = { e }));
      return d.sink;
    };
    let outer: SpilledMultipart;
    try {
      outer = await parseSpilled(source, spill, { ...(opts.contentType !== undefined ? { contentType: opts.contentType } : {}), limits, divert });
    } catch (e) {
      await early?.inner; // unauthenticated parts: never read, removed with the spill
      // The decryption's own refusal (key, algorithm, tag) explains the failure; the premature end it suffers when
      // the outer parse stops first (ERR_INTERNAL "writing … failed") does not: then the outer error stands.
      if (earlyError && toOsciError(earlyError.e).code !== 'ERR_INTERNAL') transportFailure(earlyError.e, opts);
      throw e;
    }
    const outerSoap = rootSoap ?? parseSoap(outer.root);
    if (outerSoap.type !== 'soapMessageEncrypted') {
      if (opts.requireTransportEncryption) {
        throw new OsciError('ERR_SOAP_MALFORMED', 'transport encryption (soapMessageEncrypted) is required');
      }
      return { soap: outerSoap, transport: { encrypted: false }, attachments: toAttachments(outer.parts), dispose };
    }

    // §5: exactly the SOAP part and the encrypted payload it references.
    const { cid } = transportEncryptedData(outerSoap);
    const payload = outer.parts[0];
    const payloadId = early ? outer.diverted[0]?.contentId : payload?.contentId;
    if (outer.parts.length + outer.diverted.length !== 1 || payloadId !== cid) {
      await early?.inner;
      throw new OsciError('ERR_MIME_MALFORMED', `a transport-encrypted message holds exactly one further part, cid:${cid}`);
    }
    let recipient: X509Certificate | undefined;
    let innerEntity: () => Promise<SpilledMultipart>; // called only once the tag verified
    try {
      if (early) {
        const split = early.inner;
        try {
          ({ recipient } = await early.done);
        } catch (e) {
          await split; // unauthenticated parts: never read, removed with the spill
          throw e;
        }
        innerEntity = async () => {
          const s = await split;
          if ('error' in s) throw s.error;
          return s.value;
        };
      } else {
        const plain = spill.sink('plain', { sync: false });
        try {
          ({ recipient } = await decryptTransportPayload(outerSoap, (c) => (c === cid ? payload?.body.open() : undefined), opts.transportKeys, plain, policy));
        } catch (e) {
          await plain.drop(); // unauthenticated bytes: never read
          throw e;
        }
        await payload?.body.drop();
        innerEntity = async () => {
          const parsed = await parseSpilled(plain.open(), spill, { limits });
          await plain.drop();
          return parsed;
        };
      }
    } catch (e) {
      const locked = transportFailure(e, opts);
      return { soap: outerSoap, transport: { encrypted: true, locked }, attachments: [], dispose };
    }
    // The tag verified: the plaintext is the inner MIME entity with its own headers (§5, §11).
    const inner = await innerEntity();
    const soap = parseSoap(inner.root);
    if (soap.type === 'soapMessageEncrypted') throw new OsciError('ERR_SOAP_MALFORMED', 'nested transport encryption');
    return {
      soap,
      transport: recipient ? { encrypted: true, recipient } : { encrypted: true },
      attachments: toAttachments(inner.parts),
      dispose,
    };
  } catch (e) {
    await dispose();
    throw toOsciError(e);
  }
}

/** The whole decode: transport, signature, model from the verified elements. */
export async function decodeMessage(body: Readable | Buffer, opts: DecodeOptions): Promise<DecodedMessage> {
  const opened = await openMessage(body, opts);
  try {
    const byCid = new Map(opened.attachments.map((a) => [a.contentId, a]));
    const v = await verifyEnvelope(opened.soap, {
      signature: opts.signature,
      trustSigner: opts.trustSigner,
      ...(opts.policy ? { policy: opts.policy } : {}),
      openAttachment: (cid) => byCid.get(cid)?.open(),
      attachmentSha256: (cid) => byCid.get(cid)?.sha256,
      attachmentIds: opened.attachments.map((a) => a.contentId),
    });
    const out: DecodedMessage = {
      message: v.soap.message,
      soap: v.soap,
      transport: opened.transport,
      attachments: opened.attachments,
      dispose: opened.dispose,
    };
    if (v.signature) out.signature = v.signature;
    return out;
  } catch (e) {
    await opened.dispose();
    throw toOsciError(e);
  }
}

/**
 * The certificate a response to `message` must be transport-encrypted for: the order's CipherCertificateOriginator
 * (§5; the reference samples carry Carol's there, §11). ERR_CIPHER_CERT_MISSING (9500) when the order has none.
 */
export function responseCipherCertificate(message: OsciMessage): X509Certificate {
  const c = 'certificates' in message ? message.certificates.find((x) => x.role === 'originator' && x.usage === 'cipher') : undefined;
  if (!c) throw new OsciError('ERR_CIPHER_CERT_MISSING', `${message.type} carries no CipherCertificateOriginator`);
  try {
    return parseCertificate(c.der);
  } catch (e) {
    throw new OsciError('ERR_CIPHER_CERT_MISSING', 'the CipherCertificateOriginator is unreadable', { cause: e });
  }
}
