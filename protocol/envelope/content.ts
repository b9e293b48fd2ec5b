/**
 * Content level, the inner envelope of the double envelope (osci-protocol.md §5, §6), end to end between author
 * and readers, opaque to the intermediary. As the reference library writes it ([C] 03_storeDelivery):
 *   ContentPackage / xenc:EncryptedData MimeType="text/xml" (aes256-gcm, IvLength 12; one rsa-oaep MGF1-SHA256
 *   EncryptedKey per reader, KeyInfo = RetrievalMethod to the reader's cipher certificate element)
 *     → ContentContainer: ds:Signature (author; Base64Content references with the xmldsig#base64 transform,
 *       `cid:` references over the PLAINTEXT attachment), Content (Base64Content | href="cid:…"),
 *       xenc:EncryptedData per attachment with its AES key in ds:KeyInfo/ds:MgmtData, CipherReference to the
 *       separate MIME part holding IV‖ciphertext‖tag.
 * A ds:MgmtData key is accepted only inside a container that was itself decrypted with the reader's key.
 */
import { createHash, X509Certificate, type Hash, type KeyObject } from 'node:crypto';
import { tmpdir } from 'node:os';
import { Transform, type Readable } from 'node:stream';
import { ALIASES, DEFAULT_POLICY, NS, type CryptoPolicy } from '../../crypto/algorithms.ts';
import { signXml, verifyXml, type SignReference } from '../../crypto/dsig.ts';
import { parseCertificate } from '../../crypto/certcache.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { decryptCipherReferenceStream, decryptInPlace, encryptBinary, encryptElement } from '../../crypto/xenc.ts';
import {
  childElements,
  ELEMENT_NODE,
  indexIds,
  parseXml,
  serializeXml,
  strictText,
  TEXT_NODE,
  type Document,
  type Element,
  type Node,
} from '../../crypto/xml.ts';
import { OsciError, toOsciError } from '../errors.ts';
import { base64Lines, certificate } from '../messages/certificates.ts';
import { Children, el, elementChildren, leafText } from '../messages/dom.ts';
import type { Certificate, ContentPackage } from '../model.ts';
import { DS_NS, OSCI_NS, PREFIXES, XENC_NS } from '../namespaces.ts';
import { assertContentId, encodeCid } from './signatures.ts';
import { Spill, spillStream } from './spill.ts';
import { MAX_ENCRYPTED_KEYS } from './transport.ts';
import type { EncodedAttachment } from './types.ts';

const X509DATA_TYPE = 'http://www.w3.org/2000/09/xmldsig#X509Data';
const BASE64_TRANSFORM = 'http://www.w3.org/2000/09/xmldsig#base64';

export type ContentInput =
  | { base64Content: Buffer }
  | { attachment: { contentId: string; size: number; open(): Readable; contentType?: string } };

export interface SealContentOptions {
  author: { key: KeyObject; cert: X509Certificate };
  /** Cipher certificates of the readers: the first is the addressee, further ones other readers (§5). */
  readers: X509Certificate[];
  contents: ContentInput[];
  /** Default rsa-sha256. */
  signatureAlgorithm?: string;
  /** Role of the author's signature certificate: 'originator' (default, as in [C] 03) or 'otherAuthor'. */
  authorRole?: 'originator' | 'otherAuthor';
  /** Numbers the Ids (contentcontainerN, encdata_N, …) when a message carries several sealed containers. Default 0. */
  index?: number;
  /** Where the encrypted attachments are written (default os.tmpdir()); removed by dispose(). */
  tmpDir?: string;
  policy?: CryptoPolicy;
}

export interface SealedContent {
  contentPackage: ContentPackage;
  /** Encrypted attachment parts: IV‖ciphertext‖tag, size = plaintext size + 28. */
  attachments: EncodedAttachment[];
  /** The author's signature certificate and the readers' cipher certificates, with the Ids the content refers to. */
  certificates: Certificate[];
  /** Removes the encrypted attachment files. */
  dispose(): Promise<void>;
}

function contentDoc(): Document {
  const decls = (['ds', 'osci', 'soap', 'xenc', 'xsi'] as const).map((p) => ` xmlns:${p}="${PREFIXES[p]}"`).join('');
  return parseXml(`<osci:ContentPackage${decls}/>`);
}

/** Passes exactly `size` bytes on (else ERR_USAGE), hashing them into `hash`. */
function exactSize(size: number, what: string, hash: Hash): Transform {
  let n = 0;
  return new Transform({
    transform(c: Buffer, _e, cb) {
      n += c.length;
      if (n > size) return cb(new OsciError('ERR_USAGE', `${what} is longer than its declared size ${size}`));
      hash.update(c);
      cb(null, c);
    },
    flush(cb) {
      cb(n === size ? null : new OsciError('ERR_USAGE', `${what} has ${n} bytes, not its declared size ${size}`));
    },
  });
}

/** Signs and encrypts one ContentContainer for every reader. */
export async function sealContent(opts: SealContentOptions): Promise<SealedContent> {
  if (opts.readers.length === 0 || opts.readers.length > MAX_ENCRYPTED_KEYS) throw new OsciError('ERR_USAGE', `sealContent needs 1 to ${MAX_ENCRYPTED_KEYS} readers`);
  if (opts.contents.length === 0) throw new OsciError('ERR_USAGE', 'sealContent needs at least one content');
  const policy = opts.policy ?? DEFAULT_POLICY;
  const index = opts.index ?? 0;
  const authorCert = certificate(opts.authorRole ?? 'originator', 'signature', opts.author.cert.raw);
  const readerCerts = opts.readers.map((r, i) => (i === 0 ? certificate('addressee', 'cipher', r.raw) : certificate('otherReader', 'cipher', r.raw, i)));

  const spill = await Spill.create(opts.tmpDir ?? tmpdir());
  try {
    const doc = contentDoc();
    const pkg = doc.documentElement as Element;
    const container = el(doc, OSCI_NS, 'osci:ContentContainer', { Id: `contentcontainer${index}` });
    pkg.appendChild(container);
    const references: SignReference[] = [];
    const encrypted: Element[] = [];
    const attachments: EncodedAttachment[] = [];
    const cids = new Set<string>();
    for (const [i, c] of opts.contents.entries()) {
      const id = index === 0 ? `content${i}` : `content${index}_${i}`;
      if ('base64Content' in c) {
        container.appendChild(el(doc, OSCI_NS, 'osci:Content', {}, [el(doc, OSCI_NS, 'osci:Base64Content', { Id: id }, [base64Lines(c.base64Content)])]));
        // §6: the digest covers the decoded octets.
        references.push({ id, transforms: [BASE64_TRANSFORM] });
        continue;
      }
      const a = c.attachment;
      assertContentId(a.contentId);
      if (cids.has(a.contentId)) throw new OsciError('ERR_USAGE', `attachment ${a.contentId} given twice`);
      cids.add(a.contentId);
      container.appendChild(el(doc, OSCI_NS, 'osci:Content', { Id: id, href: `cid:${a.contentId}` }));
      references.push({ id, transforms: [ALIASES.inclusive] });
      const enc = encryptBinary(doc, {
        mgmtData: true,
        cid: a.contentId,
        id: `Attachment${a.contentId}`,
        mimeType: 'text/xml', // sic: what the reference library writes for an attachment ([C] 03)
        ivLengthElement: true,
        declareBase64Transform: true,
        policy,
      });
      encrypted.push(enc.encryptedData);
      // Encrypted once into a file: every open() yields the same bytes (the ClientSignature digests them), and no
      // GCM nonce is ever used for a second encryption.
      const encryptor = enc.createEncryptStream();
      enc.symKey.fill(0);
      const plainSha = createHash('sha256');
      const f = await spillStream(spill, a.open(), 'sealed', [exactSize(a.size, `attachment ${a.contentId}`, plainSha), encryptor]);
      // §6: the container signature's cid: digest covers the plaintext attachment: the bytes just encrypted.
      references.push({ uri: encodeCid(a.contentId), data: () => a.open() as AsyncIterable<Buffer>, sha256: plainSha.digest() });
      attachments.push({
        contentId: a.contentId,
        size: f.size,
        sha256: f.sha256,
        open: () => spill.reader(f.path),
        ...(a.contentType !== undefined ? { contentType: a.contentType } : {}),
      });
    }
    for (const e of encrypted) container.appendChild(e);

    const signature = await signXml(doc, container, {
      key: opts.author.key,
      ...(opts.signatureAlgorithm !== undefined ? { signatureAlgorithm: opts.signatureAlgorithm } : {}),
      policy,
      references,
      keyInfo: { retrievalMethod: { uri: `#${authorCert.id}` } },
    });
    // ContentContainerType: ds:Signature*, Content*, xenc:EncryptedData* (order.xsd).
    container.insertBefore(signature, container.firstChild);

    const ed = encryptElement(doc, container, {
      recipients: opts.readers.map((r, i) => ({
        key: r,
        keyInfo: { retrievalMethod: { uri: `#${(readerCerts[i] as Certificate).id}`, type: X509DATA_TYPE } },
      })),
      type: 'element',
      mimeType: 'text/xml',
      id: `encdata_${index}`,
      ivLengthElement: true,
      policy,
    });
    // The reference library writes no Type; its readers treat MimeType text/xml as XML content ([C] 03).
    ed.removeAttribute('Type');
    return {
      contentPackage: { encryptedData: [serializeXml(ed)], contentContainers: [] },
      attachments,
      certificates: [authorCert, ...readerCerts],
      dispose: () => spill.dispose(),
    };
  } catch (e) {
    await spill.dispose();
    throw toOsciError(e);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Opening

export type OpenedContentItem =
  | { kind: 'base64'; data: Buffer }
  | { kind: 'attachment'; contentId: string; open(): Readable; size: number; sha256: Buffer }
  | { kind: 'xml'; xml: string };

export interface ContainerSignature {
  /** The certificate trustAuthor returned (the verification key). */
  signer?: X509Certificate;
  /** The certificate the message names for this signature (data only). */
  carried?: X509Certificate;
  valid: boolean;
  algorithm?: string;
  error?: { code: string; message: string };
}

export interface OpenedContainer {
  id?: string;
  /** The container came out of an xenc:EncryptedData opened with a reader key. */
  encrypted: boolean;
  /** Signer of the first valid signature. */
  signer?: X509Certificate;
  /** At least one signature, every signature valid, every content readable. */
  signatureValid: boolean;
  signatures: ContainerSignature[];
  contents: OpenedContentItem[];
  /** A content that could not be read (e.g. an attachment failing its GCM tag). */
  error?: { code: string; message: string };
}

export interface OpenContentOptions {
  /** Reader cipher key(s); each EncryptedData is tried with every key. */
  readerKey: KeyObject | KeyObject[];
  /** Raw MIME part bytes by Content-ID. */
  attachments: Map<string, () => Readable>;
  trustAuthor: (carried: X509Certificate | undefined) => Promise<X509Certificate>;
  /** Decrypted attachments spill here (default os.tmpdir()); removed by dispose(). */
  tmpDir?: string;
  policy?: CryptoPolicy;
  /** The message's certificates, to find the carried author certificate when `pkg` is a model, not a live element. */
  certificates?: Certificate[];
  /** Report EncryptedData no key opens in `undecryptable` instead of rejecting. */
  skipUndecryptable?: boolean;
}

export interface OpenedContent {
  containers: OpenedContainer[];
  /** EncryptedData of the package none of the reader keys opened (only with skipUndecryptable). */
  undecryptable: Array<{ id?: string; code: string; message: string }>;
  dispose(): Promise<void>;
}

function isEl(e: Element | undefined, ns: string, local: string): boolean {
  return !!e && e.namespaceURI === ns && e.localName === local;
}

/** Id → certificate of every {Cipher|Signature}Certificate* element in the document (data for trustAuthor only). */
function certificateIndex(doc: Document | undefined, extra: readonly Certificate[]): Map<string, X509Certificate> {
  const out = new Map<string, X509Certificate>();
  const add = (id: string, der: Buffer) => {
    try {
      out.set(id, parseCertificate(der));
    } catch {
      // unreadable certificate: names nothing
    }
  };
  for (const c of extra) add(c.id, Buffer.from(c.der));
  if (doc) {
    const all = doc.getElementsByTagNameNS(OSCI_NS, '*');
    for (let i = 0; i < all.length; i++) {
      const e = all.item(i);
      if (!e || !/^(Cipher|Signature)Certificate[A-Z]/.test(e.localName ?? '')) continue;
      const id = e.getAttribute('Id');
      const x = e.getElementsByTagNameNS(DS_NS, 'X509Certificate').item(0);
      if (id && x) add(id, Buffer.from(strictText(x, 'ERR_SIG_STRUCTURE').replace(/\s+/g, ''), 'base64'));
    }
  }
  return out;
}

/** The certificate a container signature's KeyInfo names: RetrievalMethod into the message, or X509Data. */
function carriedFor(sig: Element, certs: Map<string, X509Certificate>): X509Certificate | undefined {
  for (const ki of childElements(sig, NS.ds, 'KeyInfo')) {
    for (const c of childElements(ki)) {
      if (isEl(c, NS.ds, 'RetrievalMethod')) {
        const uri = c.getAttribute('URI') ?? '';
        if (uri.startsWith('#')) return certs.get(uri.slice(1));
      } else if (isEl(c, NS.ds, 'X509Data')) {
        const x = childElements(c, NS.ds, 'X509Certificate')[0];
        if (!x) continue;
        try {
          return new X509Certificate(Buffer.from(strictText(x, 'ERR_SIG_STRUCTURE').replace(/\s+/g, ''), 'base64'));
        } catch {
          return undefined;
        }
      }
    }
  }
  return undefined;
}

function decodeBase64Content(text: string): Buffer {
  const compact = text.replace(/[ \t\r\n]+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new OsciError('ERR_SOAP_MALFORMED', 'Base64Content is not valid base64');
  }
  return Buffer.from(compact, 'base64');
}

/** Content-ID named by a `cid:` URL (RFC 2392, percent-decoded). */
function cidOf(uri: string): string {
  try {
    return decodeURIComponent(uri.slice(4));
  } catch {
    throw new OsciError('ERR_SOAP_MALFORMED', `${uri} is not a valid cid: URL`);
  }
}

function errInfo(e: unknown): { code: string; message: string } {
  const o = toOsciError(e);
  return { code: o.code, message: o.message };
}

async function digestOf(open: () => Readable): Promise<{ size: number; sha256: Buffer }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of open() as AsyncIterable<Buffer>) {
    size += c.length;
    h.update(c);
  }
  return { size, sha256: h.digest() };
}

/** Element-child indices from the document element down to `e`. */
function pathOf(e: Element): number[] {
  const path: number[] = [];
  for (let n: Element = e; n.parentNode && n.parentNode.nodeType === ELEMENT_NODE; n = n.parentNode as Element) {
    path.unshift(childElements(n.parentNode).indexOf(n));
  }
  return path;
}

/**
 * The work document and the package in it: a re-parsed copy of the whole message, so decryption never changes the
 * caller's document and every in-scope namespace (inclusive C14N of plaintext containers) and every certificate
 * element stays as it was. A model (strings) gets the namespace context the Body has in OSCI messages.
 */
function workDocument(pkg: ContentPackage | Element): { doc: Document; root: Element } {
  let doc: Document;
  let root: Element | undefined;
  if ('encryptedData' in pkg && 'contentContainers' in pkg) {
    const decls = (['ds', 'osci', 'soap', 'xenc', 'xsi'] as const).map((p) => ` xmlns:${p}="${PREFIXES[p]}"`).join('');
    doc = parseXml(`<osci:ContentPackage${decls}>${[...pkg.encryptedData, ...pkg.contentContainers].join('')}</osci:ContentPackage>`);
    root = doc.documentElement as Element;
  } else {
    const e = pkg as Element;
    const owner = e.ownerDocument;
    doc = parseXml(serializeXml(owner ?? e));
    root = doc.documentElement as Element;
    if (owner) for (const i of pathOf(e)) root = root ? childElements(root)[i] : undefined;
  }
  if (!root || !isEl(root, OSCI_NS, 'ContentPackage')) throw new OsciError('ERR_SOAP_MALFORMED', 'not an osci:ContentPackage');
  return { doc, root };
}

/** Decrypts what the reader key(s) open, verifies the author signatures, returns the contents. */
export async function openContent(pkg: ContentPackage | Element, opts: OpenContentOptions): Promise<OpenedContent> {
  const policy = opts.policy ?? DEFAULT_POLICY;
  const keys = Array.isArray(opts.readerKey) ? opts.readerKey : [opts.readerKey];
  const spill = await Spill.create(opts.tmpDir ?? tmpdir());
  try {
    const { doc, root } = workDocument(pkg);
    const certs = certificateIndex(doc, opts.certificates ?? []);
    const undecryptable: OpenedContent['undecryptable'] = [];
    const found: Array<{ container: Element; encrypted: boolean }> = [];
    for (const child of elementChildren(root)) {
      if (isEl(child, OSCI_NS, 'ContentContainer')) {
        found.push({ container: child, encrypted: false });
        continue;
      }
      if (!isEl(child, XENC_NS, 'EncryptedData')) throw new OsciError('ERR_SOAP_MALFORMED', `unexpected ${child.nodeName} in ContentPackage`);
      const id = child.getAttribute('Id') ?? undefined;
      const eks = childElements(child, NS.ds, 'KeyInfo').flatMap((ki) => childElements(ki, XENC_NS, 'EncryptedKey'));
      if (eks.length > MAX_ENCRYPTED_KEYS) throw new CryptoError('ERR_ENC_STRUCTURE', `more than ${MAX_ENCRYPTED_KEYS} EncryptedKeys (readers)`);
      let last: unknown = new CryptoError('ERR_KEY_INVALID', 'no reader key given');
      let nodes: Node[] | undefined;
      for (const k of keys) {
        try {
          // No acceptMgmtDataKey here: a key travelling in clear next to the data protects nothing.
          nodes = (await decryptInPlace(doc, child, { privateKey: k, policy })).nodes;
          break;
        } catch (e) {
          last = e;
          if (!(e instanceof CryptoError && e.code === 'ERR_DECRYPT')) break;
        }
      }
      if (!nodes) {
        if (!opts.skipUndecryptable) throw last;
        undecryptable.push({ ...(id ? { id } : {}), ...errInfo(last) });
        continue;
      }
      const elements = nodes.filter((n) => n.nodeType === ELEMENT_NODE) as Element[];
      const stray = nodes.some((n) => n.nodeType !== ELEMENT_NODE && !(n.nodeType === TEXT_NODE && !/\S/.test((n as unknown as { data: string }).data)));
      const only = elements[0];
      if (!only || elements.length !== 1 || stray || !isEl(only, OSCI_NS, 'ContentContainer')) {
        throw new CryptoError('ERR_ENC_STRUCTURE', 'decrypted content is not exactly one osci:ContentContainer');
      }
      found.push({ container: only, encrypted: true });
    }
    // Decrypted containers joined the document: Ids must still be unique (signature wrapping across containers).
    indexIds(doc);

    const containers: OpenedContainer[] = [];
    for (const f of found) containers.push(await openContainer(doc, f.container, f.encrypted, { ...opts, policy, keys, certs, spill }));
    return { containers, undecryptable, dispose: () => spill.dispose() };
  } catch (e) {
    await spill.dispose();
    throw toOsciError(e);
  }
}

interface ContainerContext extends OpenContentOptions {
  policy: CryptoPolicy;
  keys: KeyObject[];
  certs: Map<string, X509Certificate>;
  spill: Spill;
}

async function openContainer(doc: Document, container: Element, encrypted: boolean, ctx: ContainerContext): Promise<OpenedContainer> {
  const c = new Children(container);
  const sigs = c.many(DS_NS, 'Signature');
  const contentEls = c.many(OSCI_NS, 'Content');
  const encEls = c.many(XENC_NS, 'EncryptedData');
  c.end();
  const out: OpenedContainer = { encrypted, signatureValid: false, signatures: [], contents: [] };
  const cid = container.getAttribute('Id');
  if (cid) out.id = cid;

  const encByCid = new Map<string, Element>();
  for (const e of encEls) {
    const ref = childElements(e, XENC_NS, 'CipherData').flatMap((cd) => childElements(cd, XENC_NS, 'CipherReference'))[0];
    const uri = ref?.getAttribute('URI') ?? '';
    if (uri.startsWith('cid:')) encByCid.set(cidOf(uri), e);
  }

  // What the signatures must cover: every Content we return (Base64Content Id, else the Content's Id) and every attachment.
  const refIds: string[] = [];
  const readEls = new Map<string, Element>();
  const plainSource = new Map<string, () => Readable>();
  let missingId = false;
  for (const content of contentEls) {
    const kids = elementChildren(content);
    const href = content.getAttribute('href');
    const b64 = kids[0];
    if (b64 && kids.length === 1 && isEl(b64, OSCI_NS, 'Base64Content')) {
      const id = b64.getAttribute('Id');
      if (id) {
        refIds.push(id);
        readEls.set(id, b64);
      } else missingId = true;
      out.contents.push({ kind: 'base64', data: decodeBase64Content(leafText(b64)) });
      continue;
    }
    const id = content.getAttribute('Id');
    if (id) {
      refIds.push(id);
      readEls.set(id, content);
    } else missingId = true;
    if (href !== null && href !== '' && kids.length === 0) {
      if (!href.startsWith('cid:')) throw new OsciError('ERR_SOAP_MALFORMED', `Content href ${href} is not a cid: reference`);
      const contentId = cidOf(href);
      try {
        const item = await readAttachment(doc, contentId, encByCid.get(contentId), encrypted, ctx);
        plainSource.set(contentId, item.open);
        out.contents.push(item);
      } catch (e) {
        out.error ??= errInfo(e);
      }
      continue;
    }
    out.contents.push({ kind: 'xml', xml: kids.map((k) => serializeXml(k)).join('') });
  }

  for (const sig of sigs) {
    const carried = carriedFor(sig, ctx.certs);
    const s: ContainerSignature = { valid: false, ...(carried ? { carried } : {}) };
    try {
      if (missingId) throw new OsciError('ERR_SIGNATURE_INCOMPLETE', 'a Content without Id cannot be covered by the signature');
      const trusted = await ctx.trustAuthor(carried);
      s.signer = trusted;
      const r = await verifyXml(doc, sig, {
        trust: trusted,
        policy: ctx.policy,
        expectedReferences: { ids: refIds, cids: [...plainSource.keys()], exact: true },
        resolveCid: async (x) => plainSource.get(x)?.() as AsyncIterable<Buffer> | undefined,
      });
      // Read only what was verified: the elements we returned are the very elements the digests covered.
      for (const [id, e] of readEls) {
        if (r.signedElements.get(id) !== e) throw new OsciError('ERR_SIGNATURE_INCOMPLETE', `content #${id} is not covered by the signature`);
      }
      s.valid = true;
      s.algorithm = r.signatureAlgorithm;
    } catch (e) {
      s.error = errInfo(e);
    }
    out.signatures.push(s);
  }
  const firstValid = out.signatures.find((s) => s.valid);
  if (firstValid?.signer) out.signer = firstValid.signer;
  out.signatureValid = out.signatures.length > 0 && out.signatures.every((s) => s.valid) && out.error === undefined;
  return out;
}

/** Plaintext of one attachment: decrypted (streaming, into a temporary file, tag verified) or the raw part. */
async function readAttachment(
  doc: Document,
  contentId: string,
  encData: Element | undefined,
  insideDecrypted: boolean,
  ctx: ContainerContext,
): Promise<Extract<OpenedContentItem, { kind: 'attachment' }>> {
  const raw = ctx.attachments.get(contentId);
  if (!raw) throw new CryptoError('ERR_CID_NOT_FOUND', `no MIME part cid:${contentId}`);
  if (!encData) {
    const d = await digestOf(raw);
    return { kind: 'attachment', contentId, open: raw, size: d.size, sha256: d.sha256 };
  }
  let last: unknown;
  const keys: Array<KeyObject | undefined> = ctx.keys.length ? ctx.keys : [undefined];
  for (const k of keys) {
    let plain: Readable;
    try {
      plain = await decryptCipherReferenceStream(doc, encData, {
        ...(k ? { privateKey: k } : {}),
        acceptMgmtDataKey: insideDecrypted,
        policy: ctx.policy,
        resolveCid: async (x) => (x === contentId ? raw() : undefined),
      });
    } catch (e) {
      last = e;
      if (e instanceof CryptoError && e.code === 'ERR_DECRYPT') continue;
      throw e;
    }
    try {
      const f = await spillStream(ctx.spill, plain, 'content');
      return { kind: 'attachment', contentId, open: () => ctx.spill.reader(f.path), size: f.size, sha256: f.sha256 };
    } catch (e) {
      if (e instanceof CryptoError) throw e;
      throw new CryptoError('ERR_DECRYPT', 'decryption failed');
    }
  }
  throw last ?? new CryptoError('ERR_DECRYPT', 'decryption failed');
}

/** The live osci:ContentPackage element of a parsed message, if any (convenience for openContent). */
export function contentPackageElement(doc: Document): Element | undefined {
  const list = doc.getElementsByTagNameNS(OSCI_NS, 'ContentPackage');
  const e = list.item(0);
  return e ?? undefined;
}

