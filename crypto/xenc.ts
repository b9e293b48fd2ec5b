/**
 * XML Encryption for the OSCI 1.2 profile (xmlenc-core / xmlenc-core1; osci-protocol.md §5, §9, §11):
 * AES-GCM data encryption with IV‖ct‖tag, one RSA-OAEP EncryptedKey per reader inside ds:KeyInfo,
 * CipherReference to `cid:` MIME parts (streamed), ds:MgmtData attachment keys, in-context fragment parsing.
 *
 * Algorithms come from the closed registry and the caller's policy, never from the message alone; keys come
 * from the caller (KeyInfo certificates only order the EncryptedKeys to try, they never establish trust).
 */
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import type { Transform } from 'node:stream';
import {
  ALIASES,
  DEFAULT_POLICY,
  MGFS,
  NS,
  resolveCipher,
  resolveKeyTransport,
  resolveOaepHash,
} from './algorithms.ts';
import type { BlockCipherAlg, CryptoPolicy, HashName } from './algorithms.ts';
import { cbcDecryptLegacy, createGcmDecryptStream, createGcmEncryptStream, DECRYPT_FAILED, gcmDecrypt, gcmEncrypt } from './aesgcm.ts';
import type { GcmIvLength } from './aesgcm.ts';
import { CryptoError } from './errors.ts';
import { parseCertificate, spkiOfCertificate, spkiOfKey } from './certcache.ts';
import { oaepUnwrap, oaepWrap, rsaModulusBits } from './oaep.ts';
import type { OaepParams } from './oaep.ts';
import { childElements, ELEMENT_NODE, parseXml, serializeXml, strictText, TEXT_NODE } from './xml.ts';
import type { Document, Element, Node } from './xml.ts';

/** osci128 namespace of `IvLength` (osci-reference/schema/order_zusatz.xsd). */
export const OSCI128_NS = 'http://xoev.de/transport/osci12/8';
export const XENC_TYPE = Object.freeze({
  element: 'http://www.w3.org/2001/04/xmlenc#Element',
  content: 'http://www.w3.org/2001/04/xmlenc#Content',
});
const X509DATA_TYPE = 'http://www.w3.org/2000/09/xmldsig#X509Data';
const BASE64_TRANSFORM = 'http://www.w3.org/2000/09/xmldsig#base64';
const SHA1_DIGEST = 'http://www.w3.org/2000/09/xmldsig#sha1';
const MGF1_SHA1 = 'http://www.w3.org/2009/xmlenc11#mgf1sha1';

export type Recipient = X509Certificate | KeyObject;

/** What the EncryptedKey's ds:KeyInfo names (identification only, never trust). */
export type KeyInfoSpec =
  | { x509Certificate: Buffer }
  | { retrievalMethod: { uri: string; type?: string } }
  | { keyName: string };

export interface EncryptedKeyOptions {
  recipient: Recipient;
  symKey: Buffer;
  /** Default xmlenc11#rsa-oaep. */
  keyTransport?: string;
  /** OAEP digest; default xmlenc#sha256. */
  digest?: string;
  /** xmlenc11 rsa-oaep only; default the MGF1 matching the digest (OSCI pairs them: osci-protocol.md §9). */
  mgf?: string;
  /** Default: the recipient certificate when `recipient` is an X509Certificate, else no KeyInfo. */
  keyInfo?: KeyInfoSpec;
  policy?: CryptoPolicy;
}

export interface ReaderSpec {
  key: Recipient;
  keyInfo?: KeyInfoSpec;
}

interface CommonEncryptOptions {
  /** Default xmlenc11#aes256-gcm. */
  cipher?: string;
  keyTransport?: string;
  digest?: string;
  mgf?: string;
  mimeType?: string;
  id?: string;
  /** Write `osci128:IvLength Value="12"` into the EncryptionMethod, as the OSCI library does. */
  ivLengthElement?: boolean;
  policy?: CryptoPolicy;
}

export interface EncryptElementOptions extends CommonEncryptOptions {
  /** One EncryptedKey per reader inside ds:KeyInfo (OSCI multi-reader form, osci-protocol.md §11). */
  recipients: ReaderSpec[];
  type: 'element' | 'content';
}

export interface EncryptBinaryOptions extends CommonEncryptOptions {
  /** Content-ID of the MIME part holding IV‖ct‖tag, without `cid:` and angle brackets. */
  cid: string;
  /** EncryptedKey(s) for these readers … */
  recipients?: ReaderSpec[];
  /** … or the raw key in ds:KeyInfo/ds:MgmtData (the reference library's attachment form; only inside encrypted content). */
  mgmtData?: boolean;
  /** Declare the `ds:Transform …#base64` the reference library writes although the part is raw (osci-protocol.md §5). */
  declareBase64Transform?: boolean;
}

export interface BinaryEncryption {
  encryptedData: Element;
  symKey: Buffer;
  /** Streaming encryption of the referenced part: IV, ciphertext, tag. */
  createEncryptStream(): Transform;
  /** Whole-buffer encryption of the referenced part. */
  encrypt(data: Buffer): Buffer;
}

export interface DecryptOptions {
  /** Reader's RSA private key for EncryptedKey(s). */
  privateKey?: KeyObject;
  /** The data key itself (takes precedence over anything in KeyInfo). */
  symKey?: Buffer;
  /** Symmetric key for a ds:KeyName. */
  keyResolver?: (keyName: string) => Buffer | undefined;
  /**
   * Accept a raw key from ds:KeyInfo/ds:MgmtData. Only for EncryptedData found inside plaintext that was itself
   * decrypted with a trusted key (OSCI attachments); off by default because the key travels in the message.
   */
  acceptMgmtDataKey?: boolean;
  policy?: CryptoPolicy;
  /** Content of a `cid:` MIME part (raw bytes; the declared base64 transform is ignored, osci-protocol.md §5). */
  resolveCid?: (cid: string) => Promise<Buffer | AsyncIterable<Buffer> | undefined>;
}

export type EncryptedDataKind = 'element' | 'content' | 'other';

export interface DecryptResult {
  type: EncryptedDataKind;
  /** The Type attribute, null when absent. */
  typeUri: string | null;
  mimeType: string | null;
  /** Block cipher URI. */
  cipher: string;
  plaintext: Buffer;
}

// ---------------------------------------------------------------------------------------------------------------
// DOM helpers

function create(doc: Document, ns: string, qname: string, attrs: Record<string, string> = {}): Element {
  const el = doc.createElementNS(ns, qname);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function declare(el: Element, prefix: string, uri: string): void {
  el.setAttributeNS(NS.xmlns, `xmlns:${prefix}`, uri);
}

function structure(message: string): CryptoError {
  return new CryptoError('ERR_ENC_STRUCTURE', message);
}

/** Namespace bindings in scope at `el` (prefix '' = default namespace), nearest declaration first. */
function inScopeNamespaces(el: Element): Map<string, string> {
  const map = new Map<string, string>();
  for (let n: Node | null = el; n && n.nodeType === ELEMENT_NODE; n = n.parentNode) {
    const e = n as Element;
    const attrs = e.attributes;
    for (let i = 0; i < attrs.length; i++) {
      const a = attrs.item(i);
      if (!a || a.namespaceURI !== NS.xmlns) continue;
      const prefix = a.prefix === 'xmlns' ? a.localName : '';
      if (prefix !== null && !map.has(prefix)) map.set(prefix, a.value);
    }
    // Programmatically built elements may carry a binding without a declaring attribute.
    const own = e.prefix ?? '';
    if (!map.has(own)) map.set(own, e.namespaceURI ?? '');
  }
  return map;
}

/**
 * Serialize an element for encryption with every namespace binding in scope declared on it, so the plaintext
 * also parses on its own (QName values like xsi:type). Adding in-scope declarations leaves C14N unchanged.
 */
function serializeWithContext(el: Element): string {
  const clone = el.cloneNode(true) as Element;
  const parent = el.parentNode;
  if (parent && parent.nodeType === ELEMENT_NODE) {
    for (const [prefix, uri] of inScopeNamespaces(parent as Element)) {
      if (prefix === '') {
        if (!clone.hasAttribute('xmlns') && clone.namespaceURI === uri && uri !== '') clone.setAttributeNS(NS.xmlns, 'xmlns', uri);
      } else if (prefix !== 'xml' && !clone.hasAttribute(`xmlns:${prefix}`) && uri !== '') {
        declare(clone, prefix, uri);
      }
    }
  }
  return serializeXml(clone);
}

function serializeContent(el: Element): string {
  let s = '';
  for (let n = el.firstChild; n; n = n.nextSibling) s += n.nodeType === ELEMENT_NODE ? serializeWithContext(n as Element) : serializeXml(n);
  return s;
}

/** Base64 per xmlenc (whitespace, including CR from `&#13;`, allowed); anything else is a structural error. */
function decodeBase64(text: string, what: string): Buffer {
  const compact = text.replace(/[\t\n\r ]+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw structure(`${what} is not valid base64`);
  return Buffer.from(compact, 'base64');
}

function toPublicKey(r: Recipient): KeyObject {
  if (r instanceof X509Certificate) return r.publicKey;
  return r.type === 'private' ? createPublicKey(r) : r;
}

// ---------------------------------------------------------------------------------------------------------------
// Building

function mgfUriForHash(hash: HashName): string {
  for (const m of MGFS.values()) if (m.hash === hash) return m.uri;
  throw new CryptoError('ERR_ALG_NOT_ALLOWED', `no MGF1 variant for ${hash}`);
}

function buildKeyInfo(doc: Document, spec: KeyInfoSpec): Element {
  const ki = create(doc, NS.ds, 'ds:KeyInfo');
  if ('x509Certificate' in spec) {
    const data = ki.appendChild(create(doc, NS.ds, 'ds:X509Data'));
    data.appendChild(create(doc, NS.ds, 'ds:X509Certificate')).appendChild(doc.createTextNode(spec.x509Certificate.toString('base64')));
  } else if ('retrievalMethod' in spec) {
    const rm = create(doc, NS.ds, 'ds:RetrievalMethod');
    if (spec.retrievalMethod.type !== undefined) rm.setAttribute('Type', spec.retrievalMethod.type);
    rm.setAttribute('URI', spec.retrievalMethod.uri);
    ki.appendChild(rm);
  } else {
    ki.appendChild(create(doc, NS.ds, 'ds:KeyName')).appendChild(doc.createTextNode(spec.keyName));
  }
  return ki;
}

function encryptedKeyElement(doc: Document, opts: EncryptedKeyOptions, declareNs: boolean): Element {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const kt = resolveKeyTransport(policy, opts.keyTransport ?? ALIASES['rsa-oaep']);
  const digestUri = opts.digest ?? ALIASES.sha256;
  const hash = resolveOaepHash(policy, digestUri, 'digest');
  let mgfUri: string | undefined;
  let mgfHash: HashName;
  if (kt.variant === 'oaep-mgf1p') {
    // xmlenc-core §5.4.2: rsa-oaep-mgf1p always uses MGF1 with SHA-1.
    if (opts.mgf !== undefined) throw new CryptoError('ERR_ALG_NOT_ALLOWED', 'rsa-oaep-mgf1p fixes MGF1-SHA1; no MGF can be chosen');
    mgfHash = resolveOaepHash(policy, MGF1_SHA1, 'mgf');
  } else {
    mgfUri = opts.mgf ?? mgfUriForHash(hash);
    mgfHash = resolveOaepHash(policy, mgfUri, 'mgf');
  }
  const publicKey = toPublicKey(opts.recipient);
  const wrapped = oaepWrap(publicKey, opts.symKey, { hash, mgfHash, minRsaBits: policy.minRsaBits });

  const ek = create(doc, NS.xenc, 'xenc:EncryptedKey');
  if (declareNs) {
    declare(ek, 'xenc', NS.xenc);
    declare(ek, 'ds', NS.ds);
  }
  const method = ek.appendChild(create(doc, NS.xenc, 'xenc:EncryptionMethod', { Algorithm: kt.uri }));
  method.appendChild(create(doc, NS.ds, 'ds:DigestMethod', { Algorithm: digestUri }));
  if (mgfUri !== undefined) {
    const mgf = create(doc, NS.xenc11, 'xenc11:MGF', { Algorithm: mgfUri });
    declare(mgf, 'xenc11', NS.xenc11);
    method.appendChild(mgf);
  }
  const keyInfo = opts.keyInfo ?? (opts.recipient instanceof X509Certificate ? { x509Certificate: opts.recipient.raw } : undefined);
  if (keyInfo) ek.appendChild(buildKeyInfo(doc, keyInfo));
  const cd = ek.appendChild(create(doc, NS.xenc, 'xenc:CipherData'));
  cd.appendChild(create(doc, NS.xenc, 'xenc:CipherValue')).appendChild(doc.createTextNode(wrapped.toString('base64')));
  return ek;
}

/** An xenc:EncryptedKey transporting `symKey` to one recipient with RSA-OAEP (xmlenc-core §3.5.1, §5.4). */
export function buildEncryptedKey(doc: Document, opts: EncryptedKeyOptions): Element {
  return encryptedKeyElement(doc, opts, true);
}

interface DataSkeleton {
  typeUri?: string;
  mimeType?: string;
  id?: string;
  cipherUri: string;
  ivLengthElement?: boolean;
  keyInfoChildren: Element[];
}

function encryptedDataElement(doc: Document, s: DataSkeleton, cipherData: Element): Element {
  const ed = create(doc, NS.xenc, 'xenc:EncryptedData');
  declare(ed, 'xenc', NS.xenc);
  declare(ed, 'ds', NS.ds);
  if (s.id !== undefined) ed.setAttribute('Id', s.id);
  if (s.typeUri !== undefined) ed.setAttribute('Type', s.typeUri);
  if (s.mimeType !== undefined) ed.setAttribute('MimeType', s.mimeType);
  const method = ed.appendChild(create(doc, NS.xenc, 'xenc:EncryptionMethod', { Algorithm: s.cipherUri }));
  if (s.ivLengthElement) {
    const iv = create(doc, OSCI128_NS, 'osci128:IvLength', { Value: '12' });
    declare(iv, 'osci128', OSCI128_NS);
    method.appendChild(iv);
  }
  if (s.keyInfoChildren.length) {
    const ki = ed.appendChild(create(doc, NS.ds, 'ds:KeyInfo'));
    for (const c of s.keyInfoChildren) ki.appendChild(c);
  }
  ed.appendChild(cipherData);
  return ed;
}

function readerKeys(doc: Document, readers: ReaderSpec[], symKey: Buffer, o: CommonEncryptOptions): Element[] {
  return readers.map((r) =>
    encryptedKeyElement(
      doc,
      {
        recipient: r.key,
        symKey,
        ...(o.keyTransport !== undefined ? { keyTransport: o.keyTransport } : {}),
        ...(o.digest !== undefined ? { digest: o.digest } : {}),
        ...(o.mgf !== undefined ? { mgf: o.mgf } : {}),
        ...(r.keyInfo !== undefined ? { keyInfo: r.keyInfo } : {}),
        ...(o.policy !== undefined ? { policy: o.policy } : {}),
      },
      false,
    ),
  );
}

function gcmCipherForEncrypt(o: CommonEncryptOptions): Readonly<BlockCipherAlg> {
  return resolveCipher(o.policy ?? DEFAULT_POLICY, o.cipher ?? ALIASES['aes256-gcm'], 'encrypt');
}

/**
 * Encrypt `target` (Type Element) or its content (Type Content) in place for every reader: a fresh AES key,
 * CipherValue = base64(IV‖ct‖tag), one EncryptedKey per reader. Returns the new xenc:EncryptedData.
 */
export function encryptElement(doc: Document, target: Element, opts: EncryptElementOptions): Element {
  if (!opts.recipients.length) throw new CryptoError('ERR_KEY_INVALID', 'encryptElement needs at least one recipient');
  const cipher = gcmCipherForEncrypt(opts);
  const parent = target.parentNode;
  if (opts.type === 'element' && !parent) throw structure('the element to encrypt has no parent');
  const symKey = randomBytes(cipher.keyBytes);
  const text = opts.type === 'element' ? serializeWithContext(target) : serializeContent(target);
  const ct = gcmEncrypt(symKey, Buffer.from(text, 'utf8'));
  const cd = create(doc, NS.xenc, 'xenc:CipherData');
  cd.appendChild(create(doc, NS.xenc, 'xenc:CipherValue')).appendChild(doc.createTextNode(ct.toString('base64')));
  const ed = encryptedDataElement(
    doc,
    {
      typeUri: opts.type === 'element' ? XENC_TYPE.element : XENC_TYPE.content,
      ...(opts.mimeType !== undefined ? { mimeType: opts.mimeType } : {}),
      ...(opts.id !== undefined ? { id: opts.id } : {}),
      cipherUri: cipher.uri,
      ivLengthElement: opts.ivLengthElement ?? false,
      keyInfoChildren: readerKeys(doc, opts.recipients, symKey, opts),
    },
    cd,
  );
  symKey.fill(0);
  if (opts.type === 'element') {
    (parent as Node).replaceChild(ed, target);
  } else {
    while (target.firstChild) target.removeChild(target.firstChild);
    target.appendChild(ed);
  }
  return ed;
}

/**
 * An xenc:EncryptedData whose CipherReference points at a MIME part (`cid:`), keyed by EncryptedKey(s) or by
 * ds:MgmtData. The caller encrypts the part with `createEncryptStream()` (or `encrypt()`) and attaches it.
 */
export function encryptBinary(doc: Document, opts: EncryptBinaryOptions): BinaryEncryption {
  const readers = opts.recipients ?? [];
  if ((readers.length > 0) === Boolean(opts.mgmtData)) {
    throw new CryptoError('ERR_KEY_INVALID', 'encryptBinary needs either recipients or mgmtData, not both');
  }
  // RFC 2392 content-id: printable, no angle brackets, quotes, spaces or '%' (we never percent-encode).
  if (!/^[\x21-\x7e]+$/.test(opts.cid) || /[<>"%]/.test(opts.cid)) throw structure(`unusable Content-ID "${opts.cid}"`);
  const cipher = gcmCipherForEncrypt(opts);
  const symKey = randomBytes(cipher.keyBytes);
  const keyInfoChildren = opts.mgmtData
    ? [(() => {
        const m = create(doc, NS.ds, 'ds:MgmtData');
        m.appendChild(doc.createTextNode(symKey.toString('base64')));
        return m;
      })()]
    : readerKeys(doc, readers, symKey, opts);
  const cd = create(doc, NS.xenc, 'xenc:CipherData');
  const ref = cd.appendChild(create(doc, NS.xenc, 'xenc:CipherReference', { URI: `cid:${opts.cid}` }));
  if (opts.declareBase64Transform) {
    ref.appendChild(create(doc, NS.xenc, 'xenc:Transforms')).appendChild(create(doc, NS.ds, 'ds:Transform', { Algorithm: BASE64_TRANSFORM }));
  }
  const ed = encryptedDataElement(
    doc,
    {
      ...(opts.mimeType !== undefined ? { mimeType: opts.mimeType } : {}),
      ...(opts.id !== undefined ? { id: opts.id } : {}),
      cipherUri: cipher.uri,
      ivLengthElement: opts.ivLengthElement ?? false,
      keyInfoChildren,
    },
    cd,
  );
  return {
    encryptedData: ed,
    symKey,
    createEncryptStream: () => createGcmEncryptStream(symKey),
    encrypt: (data: Buffer) => gcmEncrypt(symKey, data),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing

interface ParsedEncryptedKey {
  el: Element;
  params: Omit<OaepParams, 'minRsaBits'>;
  wrapped: Buffer;
  keyInfo: Element | undefined;
}

type CipherSource = { value: Buffer } | { cid: string };

interface ParsedEncryptedData {
  cipher: Readonly<BlockCipherAlg>;
  ivLength: GcmIvLength;
  typeUri: string | null;
  mimeType: string | null;
  encryptedKeys: ParsedEncryptedKey[];
  keyName: string | undefined;
  mgmtData: Buffer | undefined;
  source: CipherSource;
}

function isEl(el: Element, ns: string, local: string): boolean {
  return el.namespaceURI === ns && el.localName === local;
}

/** Element children in schema order: each entry [ns, local, max]; anything else or out of order is refused. */
function inOrder(parent: Element, spec: ReadonlyArray<readonly [string, string, number]>): Map<string, Element[]> {
  const found = new Map<string, Element[]>();
  let pos = 0;
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === TEXT_NODE) {
      if (((n as unknown as { data: string }).data).trim() !== '') throw structure(`${parent.localName} contains text`);
      continue;
    }
    if (n.nodeType !== ELEMENT_NODE) continue;
    const el = n as Element;
    while (pos < spec.length && !isEl(el, spec[pos]![0], spec[pos]![1])) pos++;
    const s = spec[pos];
    if (!s) throw structure(`unexpected ${el.nodeName} in ${parent.localName}`);
    const list = found.get(s[1]) ?? [];
    list.push(el);
    if (list.length > s[2]) throw structure(`too many ${s[1]} in ${parent.localName}`);
    found.set(s[1], list);
  }
  return found;
}

function parseCipherData(cd: Element, allowReference: boolean): CipherSource {
  const kids = childElements(cd);
  const only = kids[0];
  if (kids.length !== 1 || !only) throw structure('CipherData must hold exactly one CipherValue or CipherReference');
  if (isEl(only, NS.xenc, 'CipherValue')) return { value: decodeBase64(strictText(only, 'ERR_ENC_STRUCTURE'), 'CipherValue') };
  if (!allowReference || !isEl(only, NS.xenc, 'CipherReference')) throw structure(`unexpected ${only.nodeName} in CipherData`);
  const uri = only.getAttribute('URI') ?? '';
  // Only MIME parts of the same message: no same-document or external dereferencing (no SSRF, no wrapping).
  if (!uri.startsWith('cid:') || uri.length === 4) throw structure(`CipherReference URI "${uri}" is not a cid: reference`);
  const t = inOrder(only, [[NS.xenc, 'Transforms', 1]]).get('Transforms')?.[0];
  if (t) {
    const transforms = childElements(t);
    for (const tr of transforms) {
      if (!isEl(tr, NS.ds, 'Transform') || tr.getAttribute('Algorithm') !== BASE64_TRANSFORM) {
        throw new CryptoError('ERR_ALG_NOT_ALLOWED', `CipherReference transform ${tr.getAttribute('Algorithm') ?? tr.nodeName} is not supported`);
      }
    }
    if (transforms.length > 1) throw structure('CipherReference declares more than one transform');
    // The declared base64 transform is ignored: OSCI parts are raw IV‖ct‖tag (osci-protocol.md §5, §11).
  }
  return { cid: uri.slice(4) };
}

function parseEncryptedKey(ek: Element, policy: CryptoPolicy): ParsedEncryptedKey {
  const parts = inOrder(ek, [
    [NS.xenc, 'EncryptionMethod', 1],
    [NS.ds, 'KeyInfo', 1],
    [NS.xenc, 'CipherData', 1],
    [NS.xenc, 'ReferenceList', 1],
    [NS.xenc, 'CarriedKeyName', 1],
  ]);
  const method = parts.get('EncryptionMethod')?.[0];
  const cd = parts.get('CipherData')?.[0];
  if (!method || !cd) throw structure('EncryptedKey needs EncryptionMethod and CipherData');
  const kt = resolveKeyTransport(policy, method.getAttribute('Algorithm'));
  let digest: string | undefined;
  let mgf: string | undefined;
  let label: Buffer | undefined;
  const seen = new Set<string>();
  for (const c of childElements(method)) {
    const key = `${c.namespaceURI} ${c.localName}`;
    if (seen.has(key)) throw structure(`duplicate ${c.localName} in key transport EncryptionMethod`);
    seen.add(key);
    if (isEl(c, NS.ds, 'DigestMethod')) digest = c.getAttribute('Algorithm') ?? '';
    else if (isEl(c, NS.xenc11, 'MGF')) {
      // xmlenc-core §5.4.2 / xmlenc-core1 §5.5.2: mgf1p fixes MGF1-SHA1; an MGF element means a confused or forged sender.
      if (kt.variant === 'oaep-mgf1p') throw structure('rsa-oaep-mgf1p must not carry an xenc11:MGF element (its MGF is always MGF1-SHA1)');
      mgf = c.getAttribute('Algorithm') ?? '';
    } else if (isEl(c, NS.xenc, 'OAEPparams')) label = decodeBase64(strictText(c, 'ERR_ENC_STRUCTURE'), 'OAEPparams');
    else throw structure(`unexpected ${c.nodeName} in key transport EncryptionMethod`);
  }
  // xmlenc-core1 §5.5.2: DigestMethod defaults to SHA-1; for xmlenc11 rsa-oaep the MGF defaults to MGF1-SHA1.
  const hash = resolveOaepHash(policy, digest ?? SHA1_DIGEST, 'digest');
  const mgfHash = resolveOaepHash(policy, kt.variant === 'oaep-mgf1p' ? MGF1_SHA1 : (mgf ?? MGF1_SHA1), 'mgf');
  const source = parseCipherData(cd, false);
  if (!('value' in source)) throw structure('EncryptedKey must carry a CipherValue');
  return { el: ek, params: { hash, mgfHash, ...(label ? { label } : {}) }, wrapped: source.value, keyInfo: parts.get('KeyInfo')?.[0] };
}

function parseEncryptedData(encData: Element, policy: CryptoPolicy): ParsedEncryptedData {
  if (!isEl(encData, NS.xenc, 'EncryptedData')) throw structure(`expected xenc:EncryptedData, got ${encData.nodeName}`);
  const parts = inOrder(encData, [
    [NS.xenc, 'EncryptionMethod', 1],
    [NS.ds, 'KeyInfo', 1],
    [NS.xenc, 'CipherData', 1],
    [NS.xenc, 'EncryptionProperties', 1],
  ]);
  const method = parts.get('EncryptionMethod')?.[0];
  const cd = parts.get('CipherData')?.[0];
  if (!method) throw structure('EncryptedData without EncryptionMethod (the algorithm is never implied)');
  if (!cd) throw structure('EncryptedData without CipherData');
  const cipher = resolveCipher(policy, method.getAttribute('Algorithm'), 'decrypt');
  let ivLength: GcmIvLength = 12;
  const seen = new Set<string>();
  for (const c of childElements(method)) {
    if (seen.has(c.localName ?? '')) throw structure(`duplicate ${c.localName} in EncryptionMethod`);
    seen.add(c.localName ?? '');
    if (isEl(c, NS.xenc, 'KeySize')) {
      if (strictText(c, 'ERR_ENC_STRUCTURE').trim() !== String(cipher.keyBytes * 8)) throw structure('KeySize does not match the cipher');
    } else if (isEl(c, OSCI128_NS, 'IvLength') && cipher.mode === 'gcm') {
      // order_zusatz.xsd; osci-protocol.md §9: 12 bytes, 16 accepted from older peers.
      const v = c.getAttribute('Value');
      if (v !== '12' && v !== '16') throw structure(`osci128:IvLength Value="${v}" is not 12 or 16`);
      ivLength = v === '12' ? 12 : 16;
    } else throw structure(`unexpected ${c.nodeName} in EncryptionMethod`);
  }
  const encryptedKeys: ParsedEncryptedKey[] = [];
  let keyName: string | undefined;
  let mgmtData: Buffer | undefined;
  const ki = parts.get('KeyInfo')?.[0];
  if (ki) {
    for (const c of childElements(ki)) {
      if (isEl(c, NS.xenc, 'EncryptedKey')) encryptedKeys.push(parseEncryptedKey(c, policy));
      else if (isEl(c, NS.ds, 'KeyName') && keyName === undefined) keyName = strictText(c, 'ERR_ENC_STRUCTURE').trim();
      else if (isEl(c, NS.ds, 'MgmtData') && mgmtData === undefined) mgmtData = decodeBase64(strictText(c, 'ERR_ENC_STRUCTURE'), 'MgmtData');
      else throw structure(`unsupported ${c.nodeName} in EncryptedData KeyInfo`);
    }
  }
  return {
    cipher,
    ivLength,
    typeUri: encData.getAttribute('Type') || null,
    mimeType: encData.getAttribute('MimeType') || null,
    encryptedKeys,
    keyName,
    mgmtData,
    source: parseCipherData(cd, true),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Key resolution

function findById(doc: Document, id: string): Element | undefined {
  let hit: Element | undefined;
  let count = 0;
  const stack: Node[] = doc.documentElement ? [doc.documentElement] : [];
  while (stack.length) {
    const el = stack.pop() as Element;
    for (const name of ['Id', 'ID', 'id']) {
      if (el.getAttribute(name) === id && !el.getAttributeNode(name)?.namespaceURI) {
        hit = el;
        count++;
      }
    }
    for (let n = el.firstChild; n; n = n.nextSibling) if (n.nodeType === ELEMENT_NODE) stack.push(n);
  }
  return count === 1 ? hit : undefined;
}

function certificatesIn(el: Element): Buffer[] {
  const out: Buffer[] = [];
  const list = el.getElementsByTagNameNS(NS.ds, 'X509Certificate');
  if (isEl(el, NS.ds, 'X509Certificate')) out.push(Buffer.from(strictTextOrEmpty(el).replace(/\s+/g, ''), 'base64'));
  for (let i = 0; i < list.length; i++) {
    const c = list.item(i);
    if (c) out.push(Buffer.from(strictTextOrEmpty(c).replace(/\s+/g, ''), 'base64'));
  }
  return out;
}

function strictTextOrEmpty(el: Element): string {
  try {
    return strictText(el, 'ERR_ENC_STRUCTURE');
  } catch {
    return '';
  }
}

/** Does this EncryptedKey's KeyInfo (certificate or RetrievalMethod to one) name the key `ownSpki`? */
function keyInfoNames(doc: Document, keyInfo: Element | undefined, ownSpki: Buffer): boolean {
  if (!keyInfo) return false;
  const certs: Buffer[] = [];
  for (const c of childElements(keyInfo)) {
    if (isEl(c, NS.ds, 'X509Data')) certs.push(...certificatesIn(c));
    else if (isEl(c, NS.ds, 'RetrievalMethod')) {
      const uri = c.getAttribute('URI') ?? '';
      const type = c.getAttribute('Type');
      if (!uri.startsWith('#') || (type && type !== X509DATA_TYPE)) continue;
      const target = findById(doc, uri.slice(1));
      if (target) certs.push(...certificatesIn(target));
    }
  }
  return certs.some((der) => {
    try {
      return spkiOfCertificate(parseCertificate(der)).equals(ownSpki);
    } catch {
      return false;
    }
  });
}

/**
 * EncryptedKeys in the order to try with `privateKey`: those whose KeyInfo names its public key first, then the
 * rest (a KeyInfo is a hint, never trust).
 */
export function rankEncryptedKeys(doc: Document, encryptedKeys: readonly Element[], privateKey: KeyObject): Element[] {
  const own = spkiOfKey(privateKey);
  const first: Element[] = [];
  const rest: Element[] = [];
  for (const ek of encryptedKeys) {
    const ki = childElements(ek, NS.ds, 'KeyInfo')[0];
    (keyInfoNames(doc, ki, own) ? first : rest).push(ek);
  }
  return [...first, ...rest];
}

function resolveDataKey(doc: Document, p: ParsedEncryptedData, opts: DecryptOptions, policy: CryptoPolicy): Buffer {
  if (opts.symKey) {
    if (opts.symKey.length !== p.cipher.keyBytes) throw new CryptoError('ERR_KEY_INVALID', `the given key has ${opts.symKey.length} bytes, ${p.cipher.uri} needs ${p.cipher.keyBytes}`);
    return opts.symKey;
  }
  if (p.encryptedKeys.length) {
    if (!opts.privateKey) throw new CryptoError('ERR_KEY_INVALID', 'EncryptedKey present but no private key given');
    rsaModulusBits(opts.privateKey, policy.minRsaBits);
    const order = rankEncryptedKeys(doc, p.encryptedKeys.map((k) => k.el), opts.privateKey);
    for (const el of order) {
      const ek = p.encryptedKeys.find((k) => k.el === el) as ParsedEncryptedKey;
      try {
        const key = oaepUnwrap(opts.privateKey, ek.wrapped, { ...ek.params, minRsaBits: policy.minRsaBits });
        // The transported key must fit the data cipher (xmlenc-core1 §5.5); a mismatch counts as a failed unwrap.
        if (key.length === p.cipher.keyBytes) return key;
      } catch (e) {
        if (!(e instanceof CryptoError) || e.code !== 'ERR_DECRYPT') throw e;
      }
    }
    throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
  }
  if (p.keyName !== undefined) {
    const key = opts.keyResolver?.(p.keyName);
    if (!key) throw new CryptoError('ERR_KEY_INVALID', `no key for KeyName "${p.keyName}"`);
    if (key.length !== p.cipher.keyBytes) throw new CryptoError('ERR_KEY_INVALID', `key "${p.keyName}" does not fit ${p.cipher.uri}`);
    return key;
  }
  if (p.mgmtData) {
    if (!opts.acceptMgmtDataKey) throw new CryptoError('ERR_KEY_INVALID', 'a key carried in ds:MgmtData is accepted only with acceptMgmtDataKey');
    if (p.mgmtData.length !== p.cipher.keyBytes) throw structure(`ds:MgmtData key does not fit ${p.cipher.uri}`);
    return p.mgmtData;
  }
  throw new CryptoError('ERR_KEY_INVALID', 'EncryptedData names no key and none was given');
}

async function cidSource(opts: DecryptOptions, cid: string): Promise<Buffer | AsyncIterable<Buffer>> {
  if (!opts.resolveCid) throw new CryptoError('ERR_CID_NOT_FOUND', `no resolver for cid:${cid}`);
  const src = await opts.resolveCid(cid);
  if (!src) throw new CryptoError('ERR_CID_NOT_FOUND', `MIME part cid:${cid} not found`);
  return src;
}

function kindOf(typeUri: string | null): EncryptedDataKind {
  if (typeUri === XENC_TYPE.element) return 'element';
  if (typeUri === XENC_TYPE.content) return 'content';
  return 'other';
}

// ---------------------------------------------------------------------------------------------------------------
// Decryption

/** Decrypt an xenc:EncryptedData to its plaintext octets (binary safe; CipherValue or cid: CipherReference). */
export async function decryptEncryptedData(doc: Document, encData: Element, opts: DecryptOptions): Promise<DecryptResult> {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const p = parseEncryptedData(encData, policy);
  const key = resolveDataKey(doc, p, opts, policy);
  let data: Buffer;
  if ('value' in p.source) data = p.source.value;
  else {
    const src = await cidSource(opts, p.source.cid);
    if (Buffer.isBuffer(src)) data = src;
    else {
      const chunks: Buffer[] = [];
      for await (const c of src) chunks.push(c);
      data = Buffer.concat(chunks);
    }
  }
  const plaintext = p.cipher.mode === 'gcm' ? gcmDecrypt(p.cipher, key, data, { ivLength: p.ivLength }) : cbcDecryptLegacy(p.cipher, key, data, policy);
  return { type: kindOf(p.typeUri), typeUri: p.typeUri, mimeType: p.mimeType, cipher: p.cipher.uri, plaintext };
}

/**
 * Decrypt a `cid:` CipherReference as a stream of plaintext (AES-GCM only); the part never sits in memory.
 * The stream errors with ERR_DECRYPT at its end if the tag fails: treat its output as unauthenticated until it
 * ended without error (see createGcmDecryptStream).
 */
export async function decryptCipherReferenceStream(doc: Document, encData: Element, opts: DecryptOptions): Promise<Readable> {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const p = parseEncryptedData(encData, policy);
  if (!('cid' in p.source)) throw structure('EncryptedData has no cid: CipherReference');
  if (p.cipher.mode !== 'gcm') throw new CryptoError('ERR_ALG_NOT_ALLOWED', 'streamed decryption is AES-GCM only');
  const key = resolveDataKey(doc, p, opts, policy);
  const src = await cidSource(opts, p.source.cid);
  const decipher = createGcmDecryptStream(key, { ivLength: p.ivLength });
  // A stream is piped as it is (wrapping it would add an async-iterator hop per chunk).
  const input = Buffer.isBuffer(src) ? Readable.from([src]) : src instanceof Readable ? src : Readable.from(src);
  // pipeline() forwards a source error into `decipher` and destroys both on failure.
  pipeline(input, decipher, () => {});
  return decipher;
}

export interface InPlaceResult {
  result: DecryptResult;
  /** The nodes that replaced the EncryptedData. */
  nodes: Node[];
}

function escapeAttr(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
}

/**
 * Parse decrypted Element/Content plaintext as a fragment in the namespace context of `parent`
 * (xmlenc-core §4.2 step 3.2: the fragment inherits the context; Santuario/xmlsec omit inherited xmlns).
 * Strict parsing rules apply: no DOCTYPE, well-formed, UTF-8.
 */
function parseFragment(plaintext: Buffer, parent: Node): Node[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw new CryptoError('ERR_XML_MALFORMED', 'decrypted XML is not UTF-8');
  }
  let decls = '';
  if (parent.nodeType === ELEMENT_NODE) {
    for (const [prefix, uri] of inScopeNamespaces(parent as Element)) {
      if (prefix === 'xml' || prefix === 'xmlns') continue;
      if (prefix === '') decls += ` xmlns="${escapeAttr(uri)}"`;
      else if (uri !== '') decls += ` xmlns:${prefix}="${escapeAttr(uri)}"`;
    }
  }
  const wrapper = parseXml(`<fragment${decls}>${text}</fragment>`).documentElement as Element;
  const out: Node[] = [];
  for (let n = wrapper.firstChild; n; n = n.nextSibling) out.push(n);
  return out;
}

/**
 * Decrypt and replace the EncryptedData by its plaintext nodes. Type Element must yield exactly one element,
 * Type Content any fragment; an untyped EncryptedData with MimeType text/xml (the OSCI library's content
 * encryption, osci-protocol.md §5) is treated as Content.
 */
export async function decryptInPlace(doc: Document, encData: Element, opts: DecryptOptions): Promise<InPlaceResult> {
  const parent = encData.parentNode;
  if (!parent) throw structure('EncryptedData has no parent');
  const result = await decryptEncryptedData(doc, encData, opts);
  const xmlLike = result.type !== 'other' || (result.typeUri === null && /^text\/xml\b/i.test(result.mimeType ?? ''));
  if (!xmlLike) throw structure(`EncryptedData of Type ${result.typeUri ?? '(none)'} is not XML; use decryptEncryptedData`);
  const nodes = parseFragment(result.plaintext, parent);
  const elements = nodes.filter((n) => n.nodeType === ELEMENT_NODE);
  const onlyElement = nodes.every((n) => n.nodeType === ELEMENT_NODE || (n.nodeType === TEXT_NODE && ((n as unknown as { data: string }).data).trim() === ''));
  if (result.type === 'element' && (elements.length !== 1 || !onlyElement)) throw structure('Type Element plaintext must be exactly one element');
  const atRoot = parent.nodeType !== ELEMENT_NODE;
  if (atRoot && (elements.length !== 1 || !onlyElement)) throw structure('a decrypted document element must be exactly one element');
  const inserted: Node[] = [];
  const next = encData.nextSibling;
  parent.removeChild(encData); // first: a Document accepts only one element child
  for (const n of atRoot ? elements : nodes) {
    const imported = doc.importNode(n, true);
    parent.insertBefore(imported, next);
    inserted.push(imported);
  }
  return { result, nodes: inserted };
}
