/**
 * ClientSignature / SupplierSignature (osci-protocol.md §6): inclusive C14N, rsa-sha256 by default (RSASSA-PSS
 * verified too, §11), one Reference per signed header block and #body plus one `cid:` Reference per attachment
 * (digest over the raw part bytes), KeyInfo = RetrievalMethod to the signer's certificate element.
 *
 * Verification takes the key from the caller's trustSigner, never from KeyInfo; exactly one signature outside
 * the content containers; every element the parser read and every attachment must be referenced, and nothing
 * else may be; the model is then parsed again from a document made of the verified elements only.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { Readable } from 'node:stream';
import { NS, type CryptoPolicy } from '../../crypto/algorithms.ts';
import { findSignatures, signXml, verifyXml, type SignReference } from '../../crypto/dsig.ts';
import { parseCertificate } from '../../crypto/certcache.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { childElements, ELEMENT_NODE, serializeXml, type Element, type Node } from '../../crypto/xml.ts';
import { escapeAttr } from '../../crypto/c14n.ts';
import { OsciError } from '../errors.ts';
import { certificate } from '../messages/certificates.ts';
import type { Certificate, CertificateRole, MessageType, OsciMessage } from '../model.ts';
import { OSCI_NS, SOAP_NS } from '../namespaces.ts';
import type { BuiltSoap } from '../soap-build.ts';
import { parseSoap, type ParsedSoap } from '../soap-parse.ts';
import { TYPE_SPECS } from '../messages/spec.ts';
import type { EncodedAttachment, SignatureInfo, SignatureSide } from './types.ts';

/**
 * Who signs a message type and where the signer's certificate sits (§1, §4): the client of an order (originator;
 * the intermediary for acceptDelivery/processDelivery), the supplier of a response (intermediary; the addressee for
 * responseToAcceptDelivery, the reply's originator for responseToProcessDelivery). Undefined for Fault and the
 * transport wrapper (never signed).
 */
export function signerSlot(type: MessageType): { role: CertificateRole; side: SignatureSide } | undefined {
  if (type === 'fault' || type === 'soapMessageEncrypted') return undefined;
  const kind = TYPE_SPECS[type].kind;
  if (kind === 'request') return { role: type === 'acceptDelivery' || type === 'processDelivery' ? 'intermediary' : 'originator', side: 'client' };
  // The reply to processDelivery is authored by the recipient as its Originator ([J] PassiveRecipient: KeyInfo → #originator_signature_…).
  return { role: type === 'responseToAcceptDelivery' ? 'addressee' : type === 'responseToProcessDelivery' ? 'originator' : 'intermediary', side: 'supplier' };
}

/** The carried signature certificate of the signer's role, if the message has one. */
export function carriedSignerCertificate(msg: OsciMessage): { cert: Certificate; x509: X509Certificate | undefined } | undefined {
  const slot = signerSlot(msg.type);
  if (!slot || !('certificates' in msg)) return undefined;
  const c = msg.certificates.find((x) => x.role === slot.role && x.usage === 'signature');
  if (!c) return undefined;
  let x509: X509Certificate | undefined;
  try {
    x509 = parseCertificate(c.der);
  } catch {
    x509 = undefined; // unreadable: trustSigner sees no certificate
  }
  return { cert: c, x509 };
}

/**
 * `msg` with the signer's certificate in its certificate list under the signer's role (added when missing, so that
 * KeyInfo/RetrievalMethod can point at it); refuses a different certificate already in that slot.
 */
export function withSignerCertificate(msg: OsciMessage, signer: X509Certificate): { message: OsciMessage; certId: string } {
  const slot = signerSlot(msg.type);
  if (!slot || !('certificates' in msg)) throw new OsciError('ERR_USAGE', `${msg.type} is never signed`);
  const existing = msg.certificates.find((c) => c.role === slot.role && c.usage === 'signature');
  if (existing) {
    if (!Buffer.from(existing.der).equals(signer.raw)) {
      throw new OsciError('ERR_USAGE', `the message carries a different ${slot.role} signature certificate than the signer's`);
    }
    return { message: msg, certId: existing.id };
  }
  const added = certificate(slot.role, 'signature', signer.raw);
  return { message: { ...msg, certificates: [...msg.certificates, added] } as OsciMessage, certId: added.id };
}

/** Signs a built envelope (built with `signaturePlaceholder`) in place. */
export async function signEnvelope(
  built: BuiltSoap,
  o: { key: KeyObject; certId: string; signatureAlgorithm?: string; policy?: CryptoPolicy; attachments: readonly EncodedAttachment[] },
): Promise<Element> {
  const parent = built.signatureParent;
  if (!parent) throw new OsciError('ERR_INTERNAL', 'envelope built without a signature placeholder');
  const byCid = new Map(o.attachments.map((a) => [a.contentId, a]));
  const references: SignReference[] = built.signedIds.map((ref) => {
    if (!ref.startsWith('cid:')) return { id: ref };
    const att = byCid.get(ref.slice(4));
    if (!att) throw new OsciError('ERR_INTERNAL', `no attachment for ${ref}`);
    // §6: no Transforms, digest over the raw part bytes exactly as they are written.
    return { uri: encodeCid(att.contentId), data: () => att.open() as AsyncIterable<Buffer>, ...(att.sha256 ? { sha256: att.sha256 } : {}) };
  });
  return signXml(built.doc, parent, {
    key: o.key,
    ...(o.signatureAlgorithm !== undefined ? { signatureAlgorithm: o.signatureAlgorithm } : {}),
    ...(o.policy ? { policy: o.policy } : {}),
    references,
    keyInfo: { retrievalMethod: { uri: `#${o.certId}` } },
  });
}

/**
 * Content-IDs we write: characters that need no percent-encoding in a `cid:` URL (RFC 2392) and no quoting in a
 * MIME header, so `href`, CipherReference and Reference URIs all carry the Content-ID verbatim, as the reference
 * library writes them ([C] `cid:attachment1.txt`).
 */
const SAFE_CONTENT_ID = /^[A-Za-z0-9!$&'*+\-./=^_`{|}~@]{1,200}$/;

export function assertContentId(contentId: string): void {
  if (!SAFE_CONTENT_ID.test(contentId)) {
    throw new OsciError('ERR_USAGE', `Content-ID ${JSON.stringify(contentId)}: use 1-200 ASCII letters, digits and !$&'*+-./=^_\`{|}~@ (map file names first)`);
  }
}

/** `cid:` URL of a Content-ID that passed assertContentId. */
export function encodeCid(contentId: string): string {
  assertContentId(contentId);
  return `cid:${contentId}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

function hasAncestor(n: Node, ns: string, local: string): boolean {
  for (let p = n.parentNode; p; p = p.parentNode) {
    if (p.nodeType === ELEMENT_NODE && (p as Element).namespaceURI === ns && (p as Element).localName === local) return true;
  }
  return false;
}

/**
 * ds:Signatures of the envelope itself: every one except the author signatures of ContentContainers inside the
 * Body's ContentPackage (§5), which belong to the content level.
 */
export function envelopeSignatures(soap: ParsedSoap): Element[] {
  const inContent = (s: Element) => hasAncestor(s, OSCI_NS, 'ContentContainer') && hasAncestor(s, OSCI_NS, 'ContentPackage') && hasAncestor(s, SOAP_NS, 'Body');
  return findSignatures(soap.doc).filter((s) => !inContent(s));
}

export interface VerifyEnvelopeOptions {
  signature: 'required' | 'optional';
  trustSigner: (carried: X509Certificate | undefined, role: SignatureSide) => Promise<X509Certificate>;
  policy?: CryptoPolicy;
  /** Raw bytes of the attachment with this Content-ID. */
  openAttachment: (contentId: string) => Readable | undefined;
  /** SHA-256 of the attachment's raw bytes as the decoder computed it while receiving (spares a second read). */
  attachmentSha256?: (contentId: string) => Buffer | undefined;
  /** Content-IDs of every attachment of the message. */
  attachmentIds: readonly string[];
}

export interface VerifiedEnvelope {
  /** Parsed again from the verified elements only (or the original parse when unsigned and allowed). */
  soap: ParsedSoap;
  signature?: SignatureInfo;
}

function idOf(el: Element): string | undefined {
  const a = el.getAttributeNode('Id');
  return a && !a.namespaceURI ? a.value : undefined;
}

export async function verifyEnvelope(soap: ParsedSoap, opts: VerifyEnvelopeOptions): Promise<VerifiedEnvelope> {
  const sigs = envelopeSignatures(soap);
  if (sigs.length > 1) throw new CryptoError('ERR_SIG_STRUCTURE', `expected one envelope signature, found ${sigs.length}`);
  const slot = signerSlot(soap.type);
  const sig = sigs[0];
  if (!sig) {
    // 9600: the supplier demands a signature for this order type.
    if (opts.signature === 'required' && slot) throw new OsciError('ERR_SIGNATURE_MISSING', `${soap.type} is not signed`);
    if (opts.attachmentIds.length > 0 && opts.signature === 'required') {
      throw new OsciError('ERR_SIGNATURE_MISSING', 'attachments without a signature');
    }
    return { soap };
  }
  if (!slot || sig !== soap.signatureElement) {
    throw new CryptoError('ERR_SIG_STRUCTURE', 'a ds:Signature outside the Client/SupplierSignature header block');
  }

  // The signer's certificate as carried (data only); trust is the caller's decision.
  const carried = carriedSignerCertificate(soap.message);
  const keyInfo = childElements(sig, NS.ds, 'KeyInfo')[0];
  const rm = keyInfo ? childElements(keyInfo, NS.ds, 'RetrievalMethod')[0] : undefined;
  const rmUri = rm?.getAttribute('URI');
  if (rmUri !== undefined && rmUri !== null && carried && rmUri !== `#${carried.cert.id}`) {
    throw new CryptoError('ERR_SIG_STRUCTURE', `KeyInfo names ${rmUri}, not the ${slot.role} signature certificate`);
  }
  // Without a certificate in the signer's slot, a ds:X509Data in KeyInfo (oscisig.xsd allows it) is what is carried.
  const trusted = await opts.trustSigner(carried?.x509 ?? keyInfoCertificate(keyInfo), slot.side);
  if (!(trusted instanceof X509Certificate)) throw new OsciError('ERR_INTERNAL', 'trustSigner must return an X509Certificate');

  // Every element the model is read from must be signed (§6, 9602); signed foreign header blocks are tolerated.
  const required = soap.readElements.map((e) => ({ el: e, id: idOf(e) }));
  const extra = soap.extraHeaders.map(idOf).filter((x): x is string => x !== undefined);
  const ids = [...required.map((r) => r.id).filter((x): x is string => x !== undefined), ...extra];
  const result = await verifyXml(soap.doc, sig, {
    trust: trusted,
    ...(opts.policy ? { policy: opts.policy } : {}),
    ids: soap.ids,
    expectedReferences: { ids, cids: opts.attachmentIds, exact: false },
    resolveCid: async (cid) => opts.openAttachment(cid) as AsyncIterable<Buffer> | undefined,
    ...(opts.attachmentSha256 ? { cidSha256: opts.attachmentSha256 } : {}),
  });
  for (const r of required) {
    if (r.id === undefined || result.signedElements.get(r.id) !== r.el) {
      throw new OsciError('ERR_SIGNATURE_INCOMPLETE', `${r.el.localName}${r.id ? ` #${r.id}` : ''} is not covered by the signature`);
    }
  }
  const signedCids = new Set(result.references.filter((r) => r.kind === 'cid').map((r) => decodeURIComponent(r.uri.slice(4))));
  for (const cid of opts.attachmentIds) {
    if (!signedCids.has(cid)) throw new OsciError('ERR_SIGNATURE_INCOMPLETE', `attachment cid:${cid} is not covered by the signature`);
  }

  const verified = new Set<Element>(result.signedElements.values());
  const reparsed = reparseVerified(soap, verified);
  if (reparsed.type !== soap.type) throw new OsciError('ERR_SIGNATURE_INCOMPLETE', 'the signed elements do not form the same message');
  return {
    soap: reparsed,
    signature: {
      signer: trusted,
      algorithm: result.signatureAlgorithm,
      signedIds: [...result.signedElements.keys()],
      cids: [...signedCids],
    },
  };
}

function keyInfoCertificate(keyInfo: Element | undefined): X509Certificate | undefined {
  const x = keyInfo ? childElements(keyInfo, NS.ds, 'X509Data').flatMap((d) => childElements(d, NS.ds, 'X509Certificate'))[0] : undefined;
  if (!x) return undefined;
  try {
    return parseCertificate(Buffer.from(leafTextOf(x).replace(/\s+/g, ''), 'base64'));
  } catch {
    return undefined;
  }
}

function leafTextOf(e: Element): string {
  let t = '';
  for (let n = e.firstChild; n; n = n.nextSibling) if (n.nodeType === 3 || n.nodeType === 4) t += (n as unknown as { data: string }).data;
  return t;
}

function openTag(el: Element): string {
  let s = `<${el.nodeName}`;
  const attrs = el.attributes;
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs.item(i);
    if (a) s += ` ${a.name}="${escapeAttr(a.value)}"`;
  }
  return `${s}>`;
}

/**
 * Business data only from what the signature covers: a new document of the Envelope and Header start tags, the
 * signature block and the verified header blocks, and the verified Body, parsed again from scratch.
 */
function reparseVerified(soap: ParsedSoap, verified: ReadonlySet<Element>): ParsedSoap {
  const env = soap.doc.documentElement as Element;
  // Every header block and Body verified (or the signature block): the new document would hold exactly what
  // `soap` was read from, so the parse at hand is reused instead of a third parse of the same XML.
  const covered = childElements(env).every((child) =>
    child.namespaceURI === SOAP_NS && child.localName === 'Header'
      ? childElements(child).every((block) => block === soap.signatureBlock || verified.has(block))
      : verified.has(child),
  );
  if (covered) return soap;
  let xml = openTag(env);
  for (const child of childElements(env)) {
    if (child.namespaceURI === SOAP_NS && child.localName === 'Header') {
      xml += openTag(child);
      for (const block of childElements(child)) {
        if (block === soap.signatureBlock || verified.has(block)) xml += serializeXml(block);
      }
      xml += `</${child.nodeName}>`;
    } else if (verified.has(child)) {
      xml += serializeXml(child);
    } else {
      throw new OsciError('ERR_SIGNATURE_INCOMPLETE', `${child.localName} is not covered by the signature`);
    }
  }
  xml += `</${env.nodeName}>`;
  return parseSoap(xml);
}
