/**
 * Transport encryption, the outer envelope of the double envelope (osci-protocol.md §5, §11):
 * header-less SOAP envelope whose Body is one `xenc:EncryptedData MimeType="Multipart/Related"`
 * (xenc11#aes256-gcm, osci128:IvLength 12) with one xenc11#rsa-oaep EncryptedKey (MGF1-SHA256, SHA-256)
 * naming the recipient's X509Certificate, and `CipherReference URI="cid:osci_enc"` declaring the base64
 * transform the reference library writes although part `osci_enc` holds raw IV‖ciphertext‖tag.
 * The plaintext is the whole inner MIME entity, its own MIME-Version/Content-Type headers included.
 */
import type { X509Certificate } from 'node:crypto';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_POLICY, NS, type CryptoPolicy } from '../../crypto/algorithms.ts';
import { DECRYPT_FAILED, GCM_IV_BYTES, GCM_TAG_BYTES } from '../../crypto/aesgcm.ts';
import { parseCertificate, spkiOfCertificate, spkiOfKey } from '../../crypto/certcache.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { decryptCipherReferenceStream, encryptBinary } from '../../crypto/xenc.ts';
import { childElements, parseXml, serializeXml, strictText, type Element } from '../../crypto/xml.ts';
import { OsciError } from '../errors.ts';
import { binaryPartHeaders, soapPartHeaders, writeMultipart, type MultipartPartInput } from '../mime.ts';
import { soapEncryptedXml } from '../soap-build.ts';
import type { ParsedSoap } from '../soap-parse.ts';
import { encodedFrom, type EncodedMessage, type TransportKey } from './types.ts';

/** Content-ID of the encrypted payload part ([C] every .wire.mime). */
export const OSCI_ENC_CID = 'osci_enc';
/** EncryptedKeys accepted in one EncryptedData (one per reader, §5); bounds the RSA work a message can cause. */
export const MAX_ENCRYPTED_KEYS = 64;
/** Bytes AES-GCM adds to the payload: IV(12) + tag(16). */
export const GCM_OVERHEAD = GCM_IV_BYTES + GCM_TAG_BYTES;

/**
 * Wraps the inner MIME entity (`parts`, written with its top headers) into the encrypted outer message for
 * `recipient`. The inner stream is encrypted while it is written (bounded memory); nothing is buffered but a
 * message without attachments, which is built in memory anyway.
 */
export function encryptTransport(
  parts: readonly MultipartPartInput[],
  opts: { recipient: X509Certificate; boundary?: string; policy?: CryptoPolicy },
): EncodedMessage {
  const scratch = parseXml(`<scratch xmlns:xenc="${NS.xenc}" xmlns:ds="${NS.ds}"/>`);
  const enc = encryptBinary(scratch, {
    recipients: [{ key: opts.recipient, keyInfo: { x509Certificate: opts.recipient.raw } }],
    cid: OSCI_ENC_CID,
    mimeType: 'Multipart/Related',
    ivLengthElement: true,
    declareBase64Transform: true,
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  const soap = Buffer.from(soapEncryptedXml(serializeXml(enc.encryptedData)), 'utf8');

  // Same boundary outside and inside, as the reference library does (§11); the inner one is encrypted anyway.
  const inner = writeMultipart(parts, { ...(opts.boundary !== undefined ? { boundary: opts.boundary } : {}), includeTopHeaders: true });
  // A message built in memory (no attachments) is encrypted in one call; anything else streams through the cipher.
  let body: Buffer | (() => Readable);
  if (inner.body) {
    body = enc.encrypt(inner.body);
  } else {
    const encryptor = enc.createEncryptStream();
    body = () => {
      pipeline(inner.stream, encryptor).catch(() => {
        // pipeline() destroys `encryptor` with the error; the outer writer reports it to the consumer.
      });
      return encryptor;
    };
  }
  // The cipher context holds its own copy of the key; ours is wiped at once.
  enc.symKey.fill(0);
  const outer = writeMultipart(
    [
      { headers: { ...soapPartHeaders(), 'Content-Length': String(soap.length) }, body: soap },
      { headers: binaryPartHeaders(OSCI_ENC_CID, inner.length === undefined ? undefined : inner.length + GCM_OVERHEAD), body },
    ],
    // The payload is ciphertext under a fresh key: a boundary drawn for the inner entity cannot occur in it either.
    { boundary: inner.boundary, randomBoundary: opts.boundary === undefined, includeTopHeaders: true },
  );
  return encodedFrom(outer);
}

function isEl(e: Element, ns: string, local: string): boolean {
  return e.namespaceURI === ns && e.localName === local;
}

/** The transport EncryptedData and the Content-ID its CipherReference names. */
export function transportEncryptedData(soap: ParsedSoap): { encryptedData: Element; cid: string } {
  if (soap.type !== 'soapMessageEncrypted') throw new OsciError('ERR_SOAP_MALFORMED', 'not a transport-encrypted message');
  const ed = childElements(soap.body)[0];
  if (!ed || !isEl(ed, NS.xenc, 'EncryptedData')) throw new OsciError('ERR_SOAP_MALFORMED', 'soap:Body holds no xenc:EncryptedData');
  const cd = childElements(ed, NS.xenc, 'CipherData')[0];
  const ref = cd ? childElements(cd, NS.xenc, 'CipherReference')[0] : undefined;
  const uri = ref?.getAttribute('URI') ?? '';
  if (!uri.startsWith('cid:') || uri.length <= 4) {
    throw new CryptoError('ERR_ENC_STRUCTURE', 'the transport EncryptedData must reference its payload with CipherReference URI="cid:…"');
  }
  let cid: string;
  try {
    cid = decodeURIComponent(uri.slice(4));
  } catch {
    throw new CryptoError('ERR_ENC_STRUCTURE', `CipherReference URI ${uri} is not a valid cid: URL`);
  }
  return { encryptedData: ed, cid };
}

/** SPKIs of the certificates named in the KeyInfo of the EncryptedKeys (a hint for choosing our key, never trust). */
function namedKeys(ed: Element): Buffer[] {
  const out: Buffer[] = [];
  const ki = childElements(ed, NS.ds, 'KeyInfo')[0];
  if (!ki) return out;
  for (const ek of childElements(ki, NS.xenc, 'EncryptedKey')) {
    for (const eki of childElements(ek, NS.ds, 'KeyInfo')) {
      for (const data of childElements(eki, NS.ds, 'X509Data')) {
        for (const c of childElements(data, NS.ds, 'X509Certificate')) {
          try {
            out.push(spkiOfCertificateText(strictText(c, 'ERR_ENC_STRUCTURE').replace(/\s+/g, '')));
          } catch {
            // an unreadable hint names nothing we hold
          }
        }
      }
    }
  }
  return out;
}

function spkiOfCertificateText(b64: string): Buffer {
  return spkiOfCertificate(parseCertificate(Buffer.from(b64, 'base64')));
}

function spkiOf(k: TransportKey): Buffer {
  return k.cert ? spkiOfCertificate(k.cert) : spkiOfKey(k.key);
}

/**
 * Decrypts the transport payload into `out`. Keys whose certificate the EncryptedKey names are tried first.
 * Resolves only after the GCM tag verified: until then `out` holds unauthenticated bytes and must not be read
 * (write to a temporary file; on rejection discard it). Errors: ERR_TRANSPORT_KEY_UNKNOWN when the message names
 * only certificates we hold no key for, otherwise one generic ERR_DECRYPT whatever failed.
 */
export async function decryptTransportPayload(
  soap: ParsedSoap,
  openPart: (cid: string) => Readable | undefined,
  keys: readonly TransportKey[],
  out: Writable,
  policy: CryptoPolicy = DEFAULT_POLICY,
): Promise<{ recipient?: X509Certificate; cid: string }> {
  const { encryptedData, cid } = transportEncryptedData(soap);
  // One RSA operation per EncryptedKey and key: a message may not make us do thousands (the library writes one).
  const eks = childElements(encryptedData, NS.ds, 'KeyInfo').flatMap((ki) => childElements(ki, NS.xenc, 'EncryptedKey'));
  if (eks.length > MAX_ENCRYPTED_KEYS) throw new CryptoError('ERR_ENC_STRUCTURE', `more than ${MAX_ENCRYPTED_KEYS} EncryptedKeys`);
  const named = namedKeys(encryptedData);
  const matching = keys.filter((k) => named.some((n) => n.equals(spkiOf(k))));
  if (keys.length === 0 || (named.length > 0 && matching.length === 0)) {
    // 9200: the supplier does not hold the private key of the certificate the message was encrypted for.
    throw new OsciError('ERR_TRANSPORT_KEY_UNKNOWN', 'the message is encrypted for a cipher certificate whose private key is not configured');
  }
  const order = [...matching, ...keys.filter((k) => !matching.includes(k))];
  for (const k of order) {
    let plain: Readable;
    try {
      plain = await decryptCipherReferenceStream(soap.doc, encryptedData, {
        privateKey: k.key,
        policy,
        resolveCid: async (c) => openPart(c),
      });
    } catch (e) {
      if (e instanceof CryptoError && e.code === 'ERR_DECRYPT') continue; // not this key: try the next one
      throw e;
    }
    try {
      await pipeline(plain, out);
    } catch (e) {
      // The plaintext could not be kept (spill folder full or read-only): our failure (9000), not the sender's.
      if (e instanceof OsciError && e.code === 'ERR_INTERNAL') throw e;
      if (e instanceof CryptoError || e instanceof OsciError) throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
      throw new OsciError('ERR_INTERNAL', 'writing the decrypted transport payload failed', { cause: e });
    }
    return k.cert ? { recipient: k.cert, cid } : { cid };
  }
  throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
}

/**
 * A Writable for the encrypted payload part while it is still arriving: its bytes are decrypted on the way into
 * `out` (one pass instead of spilling the ciphertext and reading it back). `done` settles as
 * {@link decryptTransportPayload} does; the sink finishes only after `done` resolved, i.e. after the GCM tag
 * verified (§5), and fails with the same errors, so `out` may be read once the sink finished, never before.
 */
export function decryptingSink(
  soap: ParsedSoap,
  cid: string,
  keys: readonly TransportKey[],
  out: Writable,
  policy: CryptoPolicy = DEFAULT_POLICY,
): { sink: Writable; done: Promise<{ recipient?: X509Certificate; cid: string }> } {
  const feed = new PassThrough();
  feed.on('error', () => undefined); // reported by decryptTransportPayload, which reads it
  const done = decryptTransportPayload(soap, (c) => (c === cid ? feed : undefined), keys, out, policy);
  // Passes the chunks on with backpressure; once `feed` is closed (its reader gave up), further chunks are dropped.
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (feed.destroyed || feed.write(chunk)) return cb();
      const settle = () => {
        feed.off('drain', settle);
        feed.off('close', settle);
        cb();
      };
      feed.once('drain', settle);
      feed.once('close', settle);
    },
    final(cb) {
      feed.end();
      done.then(
        () => cb(),
        (e: unknown) => cb(e as Error),
      );
    },
    destroy(err, cb) {
      feed.destroy();
      cb(err);
    },
  });
  done.catch((e: unknown) => {
    sink.destroy(e as Error);
    out.destroy(); // also when no key opened the payload and `out` never received a byte
  });
  return { sink, done };
}
