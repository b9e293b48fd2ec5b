/**
 * Strict parse of an OSCI 1.2 SOAP envelope into the typed model (osci-protocol.md §4): DOCTYPE refused,
 * duplicate Ids refused (signature wrapping), message type detected from Header/Body, element order,
 * cardinality and required attributes checked per soap<Type>.xsd. The Document and the element behind
 * every header block are kept so a verifier can check that all elements the model was read from are signed.
 * Every failure is a typed error, never a TypeError: OsciError ERR_SOAP_MALFORMED (structure, values),
 * ERR_MESSAGE_TYPE_UNKNOWN, ERR_CONTROLBLOCK (ControlBlock against its type's rules, §2), or the CryptoError
 * of the XML layer (ERR_XML_MALFORMED, ERR_XML_DOCTYPE, ERR_XML_DUPLICATE_ID) / ERR_ALG_UNSUPPORTED.
 */
import { CryptoError } from '../crypto/errors.ts';
import { indexIds, parseXml, serializeXml } from '../crypto/xml.ts';
import type { Document, Element } from '../crypto/xml.ts';
import type {
  Certificate,
  ContentPackage,
  ControlBlock,
  FeatureDescription,
  MessageType,
  OsciMessage,
  QualityOfTimestamp,
  RequestType,
  ResponseType,
  SoapFault,
} from './model.ts';
import { FAULT_CODES } from './model.ts';
import { ACTOR_NEXT, ACTOR_NONE, DS_NS, OSCI128_NS, OSCI2017_NS, OSCI_NS, SOAP_NS, XENC11_NS, XENC_NS, XSI_NS } from './namespaces.ts';
import { parseProcessCardBundle } from './processcard.ts';
import { parseCertificatesBlock } from './messages/certificates.ts';
import { Children, elementChildren, emptyElement, isEl, leafText, optAttr, qname, reqAttr } from './messages/dom.ts';
import { OsciError, isOsciError } from './errors.ts';
import {
  checkHeaderAttrs,
  parseContentPackage,
  parseContentReceiver,
  parseControlBlock,
  parseDeliverySelection,
  parseDesiredLanguages,
  parseFeatureDescription,
  parseFeedback,
  parseMessageId,
  parseProcessCardSelection,
  parseQualityOfTimestamp,
  parseQuantity,
} from './messages/parts.ts';
import type { TypeSpec } from './messages/spec.ts';
import { CARD_PROFILE, TYPE_SPECS } from './messages/spec.ts';
import { numberToken } from './messages/values.ts';

export interface ParsedSoap {
  type: MessageType;
  message: OsciMessage;
  doc: Document;
  /** All Id attributes of the document (indexIds: duplicates were refused). */
  ids: Map<string, Element>;
  /**
   * Header blocks by name: ControlBlock, ClientSignature|SupplierSignature, DesiredLanguages,
   * QualityOfTimestamp:creation, QualityOfTimestamp:reception, the type block (e.g. storeDelivery),
   * IntermediaryCertificates, NonIntermediaryCertificates, FeatureDescription.
   */
  headerBlocks: Map<string, Element>;
  body: Element;
  /** osci:ClientSignature / osci:SupplierSignature, if present. */
  signatureBlock?: Element;
  /** The ds:Signature inside the signature block. */
  signatureElement?: Element;
  /**
   * Every element the model was read from (all header blocks except the signature block, and the Body).
   * A verifier must check that each is covered by a signature reference before the message is trusted.
   */
  readElements: Element[];
  /** Live osci:ContentPackage element (decryption, content signatures need the in-scope namespaces). */
  contentPackage?: Element;
  /** Header blocks of other namespaces this parser does not interpret (none has mustUnderstand="1"). */
  extraHeaders: Element[];
  /** "cid:" URIs seen in signature references and in the Body (CipherReference@URI, Content@href). */
  cidReferences: string[];
  schemaLocation?: string;
}

const O = OSCI_NS;

function structure(msg: string): never {
  throw new OsciError('ERR_SOAP_MALFORMED', msg);
}

export function parseSoap(xml: Buffer | string): ParsedSoap {
  try {
    return parseStrict(xml);
  } catch (e) {
    if (isOsciError(e) || e instanceof CryptoError) throw e;
    throw new OsciError('ERR_SOAP_MALFORMED', `malformed OSCI message: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

/** Type element name → message type, for header and body placement. */
const HEADER_TYPES = new Map<string, RequestType | ResponseType>();
const BODY_TYPES = new Map<string, RequestType | ResponseType>();
for (const [t, s] of Object.entries(TYPE_SPECS) as [RequestType | ResponseType, TypeSpec][]) {
  if (s.headerBlock) HEADER_TYPES.set(s.headerBlock, t);
  if (s.bodyBlock) BODY_TYPES.set(s.bodyBlock, t);
}

function parseStrict(xml: Buffer | string): ParsedSoap {
  const doc = parseXml(xml);
  const ids = indexIds(doc);
  const env = doc.documentElement as Element;
  if (!isEl(env, SOAP_NS, 'Envelope')) structure(`root element must be soap:Envelope, found ${qname(env)}`);
  const ec = new Children(env);
  const header = ec.optional(SOAP_NS, 'Header');
  const body = ec.required(SOAP_NS, 'Body');
  ec.end();
  const schemaLocation = optAttr(env, 'schemaLocation', XSI_NS);
  const bodyChildren = elementChildren(body);
  const first = bodyChildren[0];

  const base = { doc, ids, body, extraHeaders: [] as Element[] };
  const withLoc = <T extends object>(o: T): T => (schemaLocation === undefined ? o : { ...o, schemaLocation });

  if (isEl(first, SOAP_NS, 'Fault') || isEl(first, XENC_NS, 'EncryptedData')) {
    // soapMessageFault.xsd / soapMessageEncrypted.xsd: Envelope = Body only, Body = exactly this one element.
    if (header) structure(`${qname(first)} envelope must not have a soap:Header`);
    if (bodyChildren.length !== 1) structure(`soap:Body must contain only ${qname(first)}`);
    const message: OsciMessage = isEl(first, SOAP_NS, 'Fault')
      ? parseFault(first)
      : { type: 'soapMessageEncrypted', encryptedData: serializeXml(first) };
    return withLoc({
      ...base,
      type: message.type,
      message,
      headerBlocks: new Map(),
      readElements: [body],
      cidReferences: cidRefs(undefined, body),
    });
  }

  if (!header) structure('OSCI order/response envelope needs a soap:Header');
  const type = detectType(header, first);
  const spec = TYPE_SPECS[type];
  const h = parseHeader(header, spec, type);

  reqAttr(body, 'Id');
  const bc = new Children(body);
  let bodyBlock: Element | undefined;
  let contentPackage: Element | undefined;
  if (spec.bodyBlock) bodyBlock = bc.required(O, spec.bodyBlock);
  else if (spec.content === 'required') contentPackage = bc.required(O, 'ContentPackage');
  else if (spec.content === 'optional') contentPackage = bc.optional(O, 'ContentPackage');
  bc.end();

  const message = assemble(type, h, bodyBlock, contentPackage);
  const readElements = [...h.blocks.entries()].filter(([k]) => !k.endsWith('Signature')).map(([, e]) => e);
  readElements.push(body);
  const out: ParsedSoap = withLoc({
    ...base,
    type,
    message,
    headerBlocks: h.blocks,
    readElements,
    extraHeaders: h.extra,
    cidReferences: cidRefs(h.signatureElement, body),
  });
  if (h.signatureBlock) out.signatureBlock = h.signatureBlock;
  if (h.signatureElement) out.signatureElement = h.signatureElement;
  if (contentPackage) out.contentPackage = contentPackage;
  return out;
}

function detectType(header: Element, bodyFirst: Element | undefined): RequestType | ResponseType {
  const found = new Set<RequestType | ResponseType>();
  if (bodyFirst?.namespaceURI === O) {
    const t = BODY_TYPES.get(String(bodyFirst.localName));
    if (t) found.add(t);
  }
  for (const e of elementChildren(header)) {
    if (e.namespaceURI !== O) continue;
    const t = HEADER_TYPES.get(String(e.localName));
    if (t) found.add(t);
  }
  if (found.size === 0) {
    throw new OsciError('ERR_MESSAGE_TYPE_UNKNOWN', `no OSCI message type found${bodyFirst ? ` (Body holds ${qname(bodyFirst)})` : ''}`);
  }
  if (found.size > 1) structure(`ambiguous message: ${[...found].join(', ')}`);
  return [...found][0] as RequestType | ResponseType;
}

interface HeaderParts {
  blocks: Map<string, Element>;
  extra: Element[];
  controlBlock: ControlBlock;
  desiredLanguages?: string[];
  qualityOfTimestamp?: Partial<QualityOfTimestamp>;
  typeBlock?: Element;
  certificates: Certificate[];
  featureDescription?: FeatureDescription;
  signatureBlock?: Element;
  signatureElement?: Element;
}

function parseHeader(header: Element, spec: TypeSpec, type: RequestType | ResponseType): HeaderParts {
  const blocks = new Map<string, Element>();
  const c = new Children(header);
  const cbEl = c.required(O, 'ControlBlock');
  blocks.set('ControlBlock', cbEl);
  const out: HeaderParts = { blocks, extra: [], controlBlock: parseControlBlock(cbEl, spec.controlBlock, type), certificates: [] };

  const sigName = spec.kind === 'request' ? 'ClientSignature' : 'SupplierSignature';
  const sig = c.optional(O, sigName);
  if (sig) {
    checkHeaderAttrs(sig, ACTOR_NEXT);
    const sc = new Children(sig);
    const dsSig = sc.required(DS_NS, 'Signature');
    sc.end();
    blocks.set(sigName, sig);
    out.signatureBlock = sig;
    out.signatureElement = dsSig;
  }

  if (spec.kind === 'request') {
    const dl = c.required(O, 'DesiredLanguages');
    blocks.set('DesiredLanguages', dl);
    out.desiredLanguages = parseDesiredLanguages(dl);
  }

  const [min, max] = spec.qualityOfTimestamp === 'both' ? [2, 2] : spec.qualityOfTimestamp === 'upToTwo' ? [0, 2] : [0, 0];
  const qots = c.many(O, 'QualityOfTimestamp', min, max);
  if (spec.qualityOfTimestamp !== 'none') {
    const q: Partial<QualityOfTimestamp> = {};
    for (const e of qots) {
      const { service, quality } = parseQualityOfTimestamp(e);
      if (q[service]) structure(`QualityOfTimestamp for ${service} given twice`);
      q[service] = quality;
      blocks.set(`QualityOfTimestamp:${service}`, e);
    }
    out.qualityOfTimestamp = q;
  }

  if (spec.headerBlock) {
    const tb = c.required(O, spec.headerBlock);
    checkHeaderAttrs(tb, ACTOR_NEXT);
    blocks.set(spec.headerBlock, tb);
    out.typeBlock = tb;
  }

  for (const which of ['IntermediaryCertificates', 'NonIntermediaryCertificates'] as const) {
    const bs = which === 'IntermediaryCertificates' ? spec.intermediaryCertificates : spec.nonIntermediaryCertificates;
    if (!bs) continue;
    const e = bs.block === 'required' ? c.required(O, which) : c.optional(O, which);
    if (!e) continue;
    checkHeaderAttrs(e, ACTOR_NONE);
    blocks.set(which, e);
    out.certificates.push(...parseCertificatesBlock(e, which, bs, type));
  }

  // xsd:any namespace="##other": FeatureDescription and foreign blocks; never a second osci/soap element.
  for (const e of c.rest()) {
    const ns = e.namespaceURI;
    if (isEl(e, OSCI2017_NS, 'FeatureDescription')) {
      if (blocks.has('FeatureDescription')) structure('FeatureDescription given twice');
      blocks.set('FeatureDescription', e);
      out.featureDescription = parseFeatureDescription(e);
    } else if (!ns || ns === O || ns === SOAP_NS) {
      structure(`unexpected header element ${qname(e)} in ${type}`);
    } else if (optAttr(e, 'mustUnderstand', SOAP_NS) === '1') {
      structure(`header block ${qname(e)} has mustUnderstand="1" but is not understood`); // SOAP 1.1 §4.2.3
    } else {
      out.extra.push(e);
    }
  }
  return out;
}

/** Namespaces of the protocol itself: their blocks are hop-by-hop or refused, never relayed as extraHeaders. */
const PROTOCOL_NS: ReadonlySet<string> = new Set([OSCI_NS, OSCI2017_NS, OSCI128_NS, SOAP_NS, DS_NS, XENC_NS, XENC11_NS]);

/**
 * model ExtraHeaders: the foreign blocks (soap<Type>.xsd Header `xsd:any namespace="##other"`) that carry an Id, so
 * a signature can reference them. After verifyEnvelope these are the signed ones only (it re-parses the verified elements).
 * Serialized as ContentPackage entries are: the serializer declares every prefix of an element or attribute name.
 */
function extraHeadersOf(h: HeaderParts): { extraHeaders?: string[] } {
  const out = h.extra.filter((e) => !PROTOCOL_NS.has(String(e.namespaceURI)) && hasId(e)).map((e) => serializeXml(e));
  return out.length ? { extraHeaders: out } : {};
}

function hasId(e: Element): boolean {
  const a = e.getAttributeNode('Id');
  return !!a && !a.namespaceURI;
}

function contentOf(e: Element | undefined): { contentPackage?: ContentPackage } {
  return e ? { contentPackage: parseContentPackage(e) } : {};
}

/** Children of a type element, then the typed message. */
function assemble(type: RequestType | ResponseType, h: HeaderParts, bodyBlock: Element | undefined, cp: Element | undefined): OsciMessage {
  const common = {
    controlBlock: h.controlBlock,
    certificates: h.certificates,
    ...(h.featureDescription ? { featureDescription: h.featureDescription } : {}),
  };
  const req = { ...common, desiredLanguages: h.desiredLanguages ?? [] };
  const tb = h.typeBlock;
  const c = new Children((tb ?? bodyBlock) as Element);
  const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]?: V }));
  const subject = () => {
    const s = c.optional(O, 'Subject');
    return s ? leafText(s) : undefined;
  };
  const qot = h.qualityOfTimestamp ?? {};
  const both = () => qot as QualityOfTimestamp;
  const content = () => parseContentPackage(cp as Element);

  let m: OsciMessage;
  switch (type) {
    case 'initDialog':
    case 'exitDialog':
    case 'getMessageId':
      emptyElement(bodyBlock as Element);
      return { type, ...req };
    case 'storeDelivery': {
      const messageId = parseMessageId(c.required(O, 'MessageId'));
      m = { type, ...req, qualityOfTimestamp: both(), messageId, ...opt('subject', subject()), contentPackage: content(), ...extraHeadersOf(h) };
      break;
    }
    case 'fetchDelivery': {
      const sel = c.optional(O, 'SelectionRule');
      m = { type, ...req, ...opt('selection', sel && parseDeliverySelection(sel)) };
      break;
    }
    case 'fetchProcessCard': {
      const sel = c.optional(O, 'SelectionRule');
      const q = c.optional(O, 'Quantity');
      m = { type, ...req, ...opt('selection', sel && parseProcessCardSelection(sel)), ...opt('quantityLimit', q && parseQuantity(q)) };
      break;
    }
    case 'forwardDelivery': {
      const contentReceiver = parseContentReceiver(c.required(O, 'ContentReceiver'));
      const messageId = parseMessageId(c.required(O, 'MessageId'));
      m = { type, ...req, qualityOfTimestamp: both(), contentReceiver, messageId, ...opt('subject', subject()), contentPackage: content(), ...extraHeadersOf(h) };
      break;
    }
    case 'mediateDelivery': {
      const contentReceiver = parseContentReceiver(c.required(O, 'ContentReceiver'));
      const id = c.optional(O, 'MessageId');
      const subj = id ? subject() : undefined;
      m = {
        type,
        ...req,
        qualityOfTimestamp: qot,
        contentReceiver,
        ...opt('messageId', id && parseMessageId(id)),
        ...opt('subject', subj),
        contentPackage: content(),
        ...extraHeadersOf(h),
      };
      break;
    }
    case 'acceptDelivery': {
      const pcb = parseProcessCardBundle(c.required(O, 'ProcessCardBundle'), CARD_PROFILE.acceptDelivery);
      m = { type, ...req, processCardBundle: pcb, contentPackage: content(), ...extraHeadersOf(h) };
      break;
    }
    case 'processDelivery': {
      const mir = c.optional(O, 'MessageIdResponse');
      const pcb = c.optional(O, 'ProcessCardBundle');
      m = {
        type,
        ...req,
        ...opt('messageIdResponse', mir && parseMessageId(mir)),
        ...opt('processCardBundle', pcb && parseProcessCardBundle(pcb, CARD_PROFILE.processDelivery)),
        contentPackage: content(),
        ...extraHeadersOf(h),
      };
      break;
    }
    case 'responseToInitDialog':
    case 'responseToExitDialog':
    case 'responseToAcceptDelivery':
      m = { type, ...common, feedback: parseFeedback(c.required(O, 'Feedback')) };
      break;
    case 'responseToGetMessageId': {
      const feedback = parseFeedback(c.required(O, 'Feedback'));
      const id = c.optional(O, 'MessageId');
      m = { type, ...common, feedback, ...opt('messageId', id && parseMessageId(id)) };
      break;
    }
    case 'responseToStoreDelivery':
    case 'responseToForwardDelivery': {
      const feedback = parseFeedback(c.required(O, 'Feedback'));
      const pcb = c.optional(O, 'ProcessCardBundle');
      m = { type, ...common, feedback, ...opt('processCardBundle', pcb && parseProcessCardBundle(pcb, CARD_PROFILE[type])) };
      break;
    }
    case 'responseToFetchDelivery': {
      const feedback = parseFeedback(c.required(O, 'Feedback'));
      const echo = new Children(c.required(O, 'fetchDelivery'));
      const sel = echo.optional(O, 'SelectionRule');
      echo.end();
      const pcb = c.optional(O, 'ProcessCardBundle');
      m = {
        type,
        ...common,
        feedback,
        ...opt('selection', sel && parseDeliverySelection(sel)),
        ...opt('processCardBundle', pcb && parseProcessCardBundle(pcb, CARD_PROFILE.responseToFetchDelivery)),
        ...(cp ? contentOf(cp) : {}),
        ...extraHeadersOf(h),
      };
      break;
    }
    case 'responseToFetchProcessCard': {
      const feedback = parseFeedback(c.required(O, 'Feedback'));
      const echo = new Children(c.required(O, 'fetchProcessCard'));
      const sel = echo.optional(O, 'SelectionRule');
      const q = echo.optional(O, 'Quantity');
      echo.end();
      const bundles = c.many(O, 'ProcessCardBundle').map((b) => parseProcessCardBundle(b, CARD_PROFILE.responseToFetchProcessCard));
      m = {
        type,
        ...common,
        feedback,
        ...opt('selection', sel && parseProcessCardSelection(sel)),
        ...opt('quantityLimit', q && parseQuantity(q)),
        processCardBundles: bundles,
      };
      break;
    }
    case 'responseToMediateDelivery': {
      const feedback = parseFeedback(c.required(O, 'Feedback'));
      const rq = c.optional(O, 'RequestProcessCardBundle');
      const rp = rq ? c.optional(O, 'ReplyProcessCardBundle') : undefined;
      m = {
        type,
        ...common,
        feedback,
        ...opt('requestProcessCardBundle', rq && parseProcessCardBundle(rq, CARD_PROFILE.responseToMediateDeliveryRequest)),
        ...opt('replyProcessCardBundle', rp && parseProcessCardBundle(rp, CARD_PROFILE.responseToMediateDeliveryReply)),
        ...(cp ? contentOf(cp) : {}),
        ...extraHeadersOf(h),
      };
      break;
    }
    case 'responseToProcessDelivery': {
      const feedback = parseFeedback(c.required(O, 'Feedback'));
      const id = c.optional(O, 'MessageId');
      const subj = id ? subject() : undefined;
      m = {
        type,
        ...common,
        qualityOfTimestamp: qot,
        feedback,
        ...opt('messageId', id && parseMessageId(id)),
        ...opt('subject', subj),
        ...(cp ? contentOf(cp) : {}),
        ...extraHeadersOf(h),
      };
      break;
    }
    default:
      throw new OsciError('ERR_MESSAGE_TYPE_UNKNOWN', `no parser for ${String(type)}`);
  }
  c.end();
  return m;
}

/** soap:Fault: faultcode (QName in the SOAP namespace), faultstring, faultactor?, detail/osci:Code?. */
function parseFault(fault: Element): SoapFault {
  const c = new Children(fault);
  const codeEl = c.required(null, 'faultcode');
  const stringEl = c.required(null, 'faultstring');
  const actorEl = c.optional(null, 'faultactor');
  const detail = c.optional(null, 'detail');
  c.end();
  const qn = leafText(codeEl).trim();
  const colon = qn.indexOf(':');
  const ns = codeEl.lookupNamespaceURI(colon < 0 ? null : qn.slice(0, colon));
  const local = qn.slice(colon + 1);
  if (ns !== SOAP_NS || !(FAULT_CODES as readonly string[]).includes(local)) {
    throw new OsciError('ERR_SOAP_MALFORMED', `faultcode: invalid value "${qn}"`);
  }
  const out: SoapFault = { type: 'fault', faultCode: local as SoapFault['faultCode'], faultString: leafText(stringEl) };
  if (actorEl) out.faultActor = leafText(actorEl);
  if (detail) {
    const codes = elementChildren(detail).filter((e) => isEl(e, O, 'Code'));
    if (codes.length > 1) structure('Fault detail holds more than one osci:Code');
    if (codes[0]) out.oscicode = numberToken(leafText(codes[0]), 'osci:Code');
  }
  return out;
}

function cidRefs(signature: Element | undefined, body: Element): string[] {
  const out = new Set<string>();
  const walk = (e: Element, attrs: readonly string[], only?: [string, string]) => {
    const stack: Element[] = [e];
    while (stack.length) {
      const x = stack.pop() as Element;
      if (!only || isEl(x, only[0], only[1])) {
        for (const a of attrs) {
          const v = optAttr(x, a);
          if (v?.startsWith('cid:')) out.add(v);
        }
      }
      stack.push(...elementChildrenLoose(x).reverse());
    }
  };
  if (signature) walk(signature, ['URI'], [DS_NS, 'Reference']);
  walk(body, ['URI', 'href']);
  return [...out];
}

/** Element children without the whitespace check (descendant scan of already validated or opaque content). */
function elementChildrenLoose(e: Element): Element[] {
  const out: Element[] = [];
  for (let n = e.firstChild; n; n = n.nextSibling) if (n.nodeType === 1) out.push(n as Element);
  return out;
}
