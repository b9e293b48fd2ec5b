/**
 * Build the unsigned SOAP envelope of any OSCI 1.2 message (osci-protocol.md §4): header order, fixed
 * lower-case Ids, soap:actor / mustUnderstand, namespace redeclaration per header block and
 * xsi:schemaLocation exactly as the reference library writes them ([C] messages, [J] OSCIEnvelopeBuilder).
 * Signing is done afterwards by the caller: `signedIds` lists what a Client/SupplierSignature must reference.
 */
import { indexIds, parseXml, serializeXml } from '../crypto/xml.ts';
import type { Document, Element } from '../crypto/xml.ts';
import type { Certificate, MessageType, OsciMessage, QualityOfTimestamp, RequestType, ResponseType, SoapFault, SoapMessageEncrypted } from './model.ts';
import { FAULT_CODES } from './model.ts';
import { DS_NS, OSCI128_NS, OSCI2017_NS, OSCI_NS, PREFIXES, SOAP_NS, XENC11_NS, XENC_NS } from './namespaces.ts';
import { buildProcessCardBundle } from './processcard.ts';
import { buildCertificatesBlock, isIntermediary } from './messages/certificates.ts';
import { el } from './messages/dom.ts';
import { CryptoError } from '../crypto/errors.ts';
import { OsciError, isOsciError } from './errors.ts';
import {
  HEADER_NS_DECLS,
  buildContentPackage,
  buildContentReceiver,
  buildControlBlock,
  buildDeliverySelection,
  buildDesiredLanguages,
  buildFeatureDescription,
  buildFeedback,
  buildProcessCardSelection,
  buildQualityOfTimestamp,
  buildQuantity,
  headerAttrs,
  messageIdElement,
} from './messages/parts.ts';
import type { TypeSpec } from './messages/spec.ts';
import { CARD_PROFILE, ENCRYPTED_XSD, FAULT_XSD, FIXED_IDS, TYPE_SPECS, schemaLocation } from './messages/spec.ts';
import { numberToken } from './messages/values.ts';

export interface BuildOptions {
  /** Content-IDs of the MIME attachment parts travelling with the message (with or without "cid:"). */
  attachments?: readonly string[];
  /** Insert an empty osci:ClientSignature / osci:SupplierSignature at its place (second header block) for the signer. */
  signaturePlaceholder?: boolean;
}

export interface BuiltSoap {
  type: MessageType;
  /** The soap<Type>.xsd this envelope conforms to. */
  xsd: string;
  doc: Document;
  /**
   * What a Client/SupplierSignature must reference: every header block Id except the signature block's,
   * the Body Id (document order), then one "cid:<id>" per attachment. Empty for Fault and soapMessageEncrypted.
   */
  signedIds: string[];
  /** The empty Client/SupplierSignature element when `signaturePlaceholder` was set. */
  signatureParent?: Element;
  /** Serialization as the reference library frames it: XML declaration, empty line, envelope. */
  xml(): string;
}

const XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\r\n\r\n';

function newEnvelope(prefixes: readonly (keyof typeof PREFIXES)[], xsd: string | undefined): Document {
  const decls = prefixes.map((p) => ` xmlns:${p}="${PREFIXES[p]}"`).join('');
  const loc = xsd === undefined ? '' : ` xsi:schemaLocation="${schemaLocation(xsd)}"`;
  return parseXml(`<soap:Envelope${decls}${loc}/>`);
}

function result(type: MessageType, xsd: string, doc: Document, signedIds: string[], signatureParent?: Element): BuiltSoap {
  const out: BuiltSoap = { type, xsd, doc, signedIds, xml: () => XML_DECL + serializeXml(doc.documentElement as Element) };
  if (signatureParent) out.signatureParent = signatureParent;
  return out;
}

function cidRefs(attachments: readonly string[] | undefined): string[] {
  return (attachments ?? []).map((a) => {
    const id = a.startsWith('cid:') ? a.slice(4) : a;
    if (!id || /[\s<>]/.test(id)) throw new OsciError('ERR_USAGE', `invalid attachment Content-ID "${a}"`);
    return `cid:${id}`;
  });
}

/**
 * Build the envelope of `msg`. A model the message type does not admit (wrong ControlBlock fields, certificate
 * slots, values outside their XSD type) is refused with ERR_USAGE; fragments with a DOCTYPE and cryptographic
 * timestamps keep their crypto codes (ERR_XML_DOCTYPE, ERR_ALG_UNSUPPORTED).
 */
export function buildSoap(msg: OsciMessage, opts: BuildOptions = {}): BuiltSoap {
  try {
    return buildUnchecked(msg, opts);
  } catch (e) {
    if (e instanceof CryptoError || (isOsciError(e) && e.code === 'ERR_USAGE')) throw e;
    throw new OsciError('ERR_USAGE', `cannot build ${String(msg?.type)}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

function buildUnchecked(msg: OsciMessage, opts: BuildOptions): BuiltSoap {
  if (msg.type === 'fault') return buildFault(msg);
  if (msg.type === 'soapMessageEncrypted') return buildEncrypted(msg);
  const spec: TypeSpec | undefined = TYPE_SPECS[msg.type];
  if (!spec) throw new OsciError('ERR_USAGE', `unknown message type ${String((msg as { type: unknown }).type)}`);
  const type: RequestType | ResponseType = msg.type;

  const doc = newEnvelope(['ds', 'osci', 'soap', 'xenc', 'xsi'], spec.xsd);
  const envelope = doc.documentElement as Element;
  const header = el(doc, SOAP_NS, 'soap:Header');
  envelope.appendChild(header);
  const blocks: Element[] = [];

  blocks.push(buildControlBlock(doc, msg.controlBlock, spec.controlBlock, type));
  let signatureParent: Element | undefined;
  if (opts.signaturePlaceholder) {
    const request = spec.kind === 'request';
    signatureParent = el(doc, OSCI_NS, request ? 'osci:ClientSignature' : 'osci:SupplierSignature', {
      Id: request ? FIXED_IDS.clientSignature : FIXED_IDS.supplierSignature,
      'soap:actor': 'http://schemas.xmlsoap.org/soap/actor/next',
      'soap:mustUnderstand': '1',
    });
  }
  if ('desiredLanguages' in msg) blocks.push(buildDesiredLanguages(doc, msg.desiredLanguages));
  else if (spec.kind === 'request') throw new OsciError('ERR_USAGE', `${type} needs desiredLanguages`);

  blocks.push(...buildQoT(doc, msg, spec));
  const { headerBlock, bodyChild } = typeBlocks(doc, msg);
  if (headerBlock) blocks.push(headerBlock);

  const certs: readonly Certificate[] = msg.certificates;
  const ic = buildCertificatesBlock(doc, 'IntermediaryCertificates', FIXED_IDS.intermediaryCertificates, certs.filter(isIntermediary), spec.intermediaryCertificates, type);
  const nic = buildCertificatesBlock(
    doc,
    'NonIntermediaryCertificates',
    FIXED_IDS.nonIntermediaryCertificates,
    certs.filter((c) => !isIntermediary(c)),
    spec.nonIntermediaryCertificates,
    type,
  );
  if (ic) blocks.push(ic);
  if (nic) blocks.push(nic);
  if (msg.featureDescription) blocks.push(buildFeatureDescription(doc, msg.featureDescription));
  // soap<Type>.xsd: the Header ends with xsd:any namespace="##other"; relayed blocks go last and are signed with the rest.
  if ('extraHeaders' in msg && msg.extraHeaders?.length) blocks.push(...importExtraHeaders(doc, msg.extraHeaders, bodyChild ? [...blocks, bodyChild] : blocks));

  blocks.forEach((b, i) => {
    header.appendChild(b);
    if (i === 0 && signatureParent) header.appendChild(signatureParent);
  });

  const body = el(doc, SOAP_NS, 'soap:Body', { ...HEADER_NS_DECLS, Id: FIXED_IDS.body }, [bodyChild]);
  envelope.appendChild(body);

  const signedIds = [...blocks.map((b) => b.getAttribute('Id') as string), FIXED_IDS.body, ...cidRefs(opts.attachments)];
  return result(type, spec.xsd, doc, signedIds, signatureParent);
}

/** Namespaces of the protocol itself: never written as a relayed extra header block. */
const PROTOCOL_NS: ReadonlySet<string> = new Set([OSCI_NS, OSCI2017_NS, OSCI128_NS, SOAP_NS, DS_NS, XENC_NS, XENC11_NS]);

/** Ids this builder writes or may write (fixed Ids and the lower-cased type block names, spec.ts). */
const RESERVED_IDS: ReadonlySet<string> = new Set([
  ...Object.values(FIXED_IDS),
  ...Object.values(TYPE_SPECS).flatMap((s) => (s.headerBlock ? [s.headerBlock.toLowerCase()] : [])),
]);

function localIds(e: Element, what: string): string[] {
  try {
    return [...indexIds(e).keys()];
  } catch (err) {
    throw new OsciError('ERR_USAGE', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * model ExtraHeaders → imported header blocks: each string parsed strictly (DOCTYPE refused), a foreign-namespace
 * element with an unqualified Id and without mustUnderstand="1" (SOAP 1.1 §4.2.3); no Id inside may clash with ours,
 * the other blocks' and the Body's, or another extra block's (a signature reference must name exactly one element).
 */
function importExtraHeaders(doc: Document, extra: readonly string[], built: readonly Element[]): Element[] {
  const taken = new Set<string>([...RESERVED_IDS, ...built.flatMap((b) => localIds(b, 'header block'))]);
  return extra.map((xml, i) => {
    const frag = parseXml(xml).documentElement as Element;
    const what = `extraHeaders[${i}] ${frag.nodeName}`;
    const ns = frag.namespaceURI;
    if (!ns || PROTOCOL_NS.has(ns)) throw new OsciError('ERR_USAGE', `${what}: an extra header block needs a foreign namespace, not ${ns ?? 'none'}`);
    if (frag.getAttributeNS(SOAP_NS, 'mustUnderstand') === '1') throw new OsciError('ERR_USAGE', `${what}: mustUnderstand="1" is not relayed`);
    const id = frag.getAttributeNode('Id');
    if (!id || id.namespaceURI) throw new OsciError('ERR_USAGE', `${what}: needs an Id attribute to be signed`);
    for (const x of localIds(frag, what)) {
      if (taken.has(x)) throw new OsciError('ERR_USAGE', `${what}: Id "${x}" is already used in the envelope`);
      taken.add(x);
    }
    return doc.importNode(frag, true) as Element;
  });
}

function buildQoT(doc: Document, msg: OsciMessage, spec: TypeSpec): Element[] {
  const q: Partial<QualityOfTimestamp> | undefined = 'qualityOfTimestamp' in msg ? msg.qualityOfTimestamp : undefined;
  if (spec.qualityOfTimestamp === 'none') {
    if (q) throw new OsciError('ERR_USAGE', `${msg.type} carries no QualityOfTimestamp`);
    return [];
  }
  if (!q || (spec.qualityOfTimestamp === 'both' && (!q.creation || !q.reception))) {
    throw new OsciError('ERR_USAGE', `${msg.type} needs QualityOfTimestamp for creation and reception`);
  }
  const out: Element[] = [];
  if (q.creation) out.push(buildQualityOfTimestamp(doc, 'creation', q.creation));
  if (q.reception) out.push(buildQualityOfTimestamp(doc, 'reception', q.reception));
  return out;
}

/** Type header block (Id = lower-cased element name) and Body child of each message type. */
function typeBlocks(doc: Document, msg: OsciMessage): { headerBlock?: Element; bodyChild?: Element } {
  const O = OSCI_NS;
  const hb = (name: string, children: (Element | false | undefined)[]) =>
    el(doc, O, `osci:${name}`, headerAttrs(name.toLowerCase()), children);
  const bb = (name: string, children: (Element | false | undefined)[] = []) => el(doc, O, `osci:${name}`, {}, children);
  const subjectEl = (s: string | undefined) => s !== undefined && el(doc, O, 'osci:Subject', {}, [s]);

  switch (msg.type) {
    case 'initDialog':
    case 'exitDialog':
    case 'getMessageId':
      return { bodyChild: bb(msg.type) };
    case 'storeDelivery':
      return {
        headerBlock: hb('storeDelivery', [messageIdElement(doc, 'MessageId', msg.messageId), subjectEl(msg.subject)]),
        bodyChild: buildContentPackage(doc, msg.contentPackage),
      };
    case 'fetchDelivery':
      return { headerBlock: hb('fetchDelivery', [msg.selection && buildDeliverySelection(doc, msg.selection)]) };
    case 'fetchProcessCard':
      return {
        bodyChild: bb('fetchProcessCard', [
          msg.selection && buildProcessCardSelection(doc, msg.selection),
          msg.quantityLimit !== undefined && buildQuantity(doc, msg.quantityLimit),
        ]),
      };
    case 'forwardDelivery':
      return {
        headerBlock: hb('forwardDelivery', [
          buildContentReceiver(doc, msg.contentReceiver),
          messageIdElement(doc, 'MessageId', msg.messageId),
          subjectEl(msg.subject),
        ]),
        bodyChild: buildContentPackage(doc, msg.contentPackage),
      };
    case 'mediateDelivery':
      if (msg.subject !== undefined && msg.messageId === undefined) {
        throw new OsciError('ERR_USAGE', 'mediateDelivery: Subject only together with MessageId');
      }
      return {
        headerBlock: hb('mediateDelivery', [
          buildContentReceiver(doc, msg.contentReceiver),
          msg.messageId !== undefined && messageIdElement(doc, 'MessageId', msg.messageId),
          subjectEl(msg.subject),
        ]),
        bodyChild: buildContentPackage(doc, msg.contentPackage),
      };
    case 'acceptDelivery':
      return {
        headerBlock: hb('acceptDelivery', [buildProcessCardBundle(doc, msg.processCardBundle, CARD_PROFILE.acceptDelivery)]),
        bodyChild: buildContentPackage(doc, msg.contentPackage),
      };
    case 'processDelivery':
      return {
        headerBlock: hb('processDelivery', [
          msg.messageIdResponse !== undefined && messageIdElement(doc, 'MessageIdResponse', msg.messageIdResponse),
          msg.processCardBundle && buildProcessCardBundle(doc, msg.processCardBundle, CARD_PROFILE.processDelivery),
        ]),
        bodyChild: buildContentPackage(doc, msg.contentPackage),
      };
    case 'responseToInitDialog':
    case 'responseToExitDialog':
      return { bodyChild: bb(msg.type, [buildFeedback(doc, msg.feedback)]) };
    case 'responseToGetMessageId':
      return {
        bodyChild: bb('responseToGetMessageId', [
          buildFeedback(doc, msg.feedback),
          msg.messageId !== undefined && messageIdElement(doc, 'MessageId', msg.messageId),
        ]),
      };
    case 'responseToStoreDelivery':
    case 'responseToForwardDelivery':
      return {
        headerBlock: hb(msg.type, [
          buildFeedback(doc, msg.feedback),
          msg.processCardBundle && buildProcessCardBundle(doc, msg.processCardBundle, CARD_PROFILE[msg.type]),
        ]),
      };
    case 'responseToFetchDelivery': {
      // [J] ResponseToFetchDelivery.compose: the request's SelectionRule is echoed in an inner osci:fetchDelivery.
      const echo = bb('fetchDelivery', [msg.selection && buildDeliverySelection(doc, msg.selection)]);
      const out: { headerBlock: Element; bodyChild?: Element } = {
        headerBlock: hb('responseToFetchDelivery', [
          buildFeedback(doc, msg.feedback),
          echo,
          msg.processCardBundle && buildProcessCardBundle(doc, msg.processCardBundle, CARD_PROFILE.responseToFetchDelivery),
        ]),
      };
      if (msg.contentPackage) out.bodyChild = buildContentPackage(doc, msg.contentPackage);
      return out;
    }
    case 'responseToFetchProcessCard': {
      // [J] ResponseToFetchProcessCard.compose: SelectionRule and Quantity echoed in an inner osci:fetchProcessCard.
      const echo = bb('fetchProcessCard', [
        msg.selection && buildProcessCardSelection(doc, msg.selection),
        msg.quantityLimit !== undefined && buildQuantity(doc, msg.quantityLimit),
      ]);
      return {
        bodyChild: bb('responseToFetchProcessCard', [
          buildFeedback(doc, msg.feedback),
          echo,
          ...msg.processCardBundles.map((b) => buildProcessCardBundle(doc, b, CARD_PROFILE.responseToFetchProcessCard)),
        ]),
      };
    }
    case 'responseToAcceptDelivery':
      return { headerBlock: hb('responseToAcceptDelivery', [buildFeedback(doc, msg.feedback)]) };
    case 'responseToMediateDelivery': {
      if (msg.replyProcessCardBundle && !msg.requestProcessCardBundle) {
        throw new OsciError('ERR_USAGE', 'responseToMediateDelivery: ReplyProcessCardBundle only with RequestProcessCardBundle');
      }
      const out: { headerBlock: Element; bodyChild?: Element } = {
        headerBlock: hb('responseToMediateDelivery', [
          buildFeedback(doc, msg.feedback),
          msg.requestProcessCardBundle &&
            buildProcessCardBundle(doc, msg.requestProcessCardBundle, CARD_PROFILE.responseToMediateDeliveryRequest, 'RequestProcessCardBundle'),
          msg.replyProcessCardBundle &&
            buildProcessCardBundle(doc, msg.replyProcessCardBundle, CARD_PROFILE.responseToMediateDeliveryReply, 'ReplyProcessCardBundle'),
        ]),
      };
      if (msg.contentPackage) out.bodyChild = buildContentPackage(doc, msg.contentPackage);
      return out;
    }
    case 'responseToProcessDelivery': {
      if (msg.subject !== undefined && msg.messageId === undefined) {
        throw new OsciError('ERR_USAGE', 'responseToProcessDelivery: Subject only together with MessageId');
      }
      const out: { headerBlock: Element; bodyChild?: Element } = {
        headerBlock: hb('responseToProcessDelivery', [
          buildFeedback(doc, msg.feedback),
          msg.messageId !== undefined && messageIdElement(doc, 'MessageId', msg.messageId),
          subjectEl(msg.subject),
        ]),
      };
      if (msg.contentPackage) out.bodyChild = buildContentPackage(doc, msg.contentPackage);
      return out;
    }
    default:
      throw new OsciError('ERR_USAGE', `no builder for ${msg.type}`);
  }
}

/** soap:Fault as [J] SOAPFault writes it: faultcode soap:Client|Server, faultstring, detail/osci:Code. */
function buildFault(msg: SoapFault): BuiltSoap {
  if (!(FAULT_CODES as readonly string[]).includes(msg.faultCode)) {
    throw new OsciError('ERR_USAGE', `unknown SOAP faultcode ${msg.faultCode}`);
  }
  const doc = newEnvelope(['soap', 'osci'], undefined);
  const fault = el(doc, SOAP_NS, 'soap:Fault', {}, [
    el(doc, null, 'faultcode', {}, [`soap:${msg.faultCode}`]),
    el(doc, null, 'faultstring', {}, [msg.faultString]),
    msg.faultActor !== undefined && el(doc, null, 'faultactor', {}, [msg.faultActor]),
    msg.oscicode !== undefined &&
      el(doc, null, 'detail', {}, [el(doc, OSCI_NS, 'osci:Code', {}, [numberToken(msg.oscicode, 'osci:Code')])]),
  ]);
  (doc.documentElement as Element).appendChild(el(doc, SOAP_NS, 'soap:Body', {}, [fault]));
  return result('fault', FAULT_XSD, doc, []);
}

/** Transport wrapper: header-less envelope, Body = one xenc:EncryptedData (§5). */
let encryptedFrame: { head: string; tail: string } | undefined;

/**
 * The serialized soapMessageEncrypted around `encryptedData`, an xenc:EncryptedData this process serialized itself:
 * byte for byte what buildSoap(...).xml() writes, without parsing and re-serializing the EncryptedData per message.
 */
export function soapEncryptedXml(encryptedData: string): string {
  if (!encryptedFrame) {
    const marker = `<xenc:EncryptedData xmlns:xenc="${XENC_NS}"/>`;
    const [head, tail] = buildEncrypted({ type: 'soapMessageEncrypted', encryptedData: marker }).xml().split(marker);
    if (head === undefined || tail === undefined) throw new OsciError('ERR_INTERNAL', 'soapMessageEncrypted frame');
    encryptedFrame = { head, tail };
  }
  return encryptedFrame.head + encryptedData + encryptedFrame.tail;
}

function buildEncrypted(msg: SoapMessageEncrypted): BuiltSoap {
  const doc = newEnvelope(['ds', 'soap', 'xenc', 'xsi'], ENCRYPTED_XSD);
  const frag = parseXml(msg.encryptedData).documentElement;
  if (!frag || frag.namespaceURI !== XENC_NS || frag.localName !== 'EncryptedData') {
    throw new OsciError('ERR_USAGE', 'soapMessageEncrypted needs one xenc:EncryptedData');
  }
  (doc.documentElement as Element).appendChild(el(doc, SOAP_NS, 'soap:Body', {}, [doc.importNode(frag, true) as Element]));
  return result('soapMessageEncrypted', ENCRYPTED_XSD, doc, []);
}
