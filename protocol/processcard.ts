/**
 * Process card (Laufzettel) and InspectionReport (osci-protocol.md §7, order.xsd ProcessCardBundleTemplate,
 * InspectionType, TimestampType) with DOM build/parse helpers.
 */
import { CryptoError } from '../crypto/errors.ts';
import type { Document, Element } from '../crypto/xml.ts';
import type { Presence } from './model.ts';
import { OSCI_NS } from './namespaces.ts';
import { Children, el, isEl, leafText, reqAttr } from './messages/dom.ts';
import { OsciError } from './errors.ts';
import { base64, dateTime, integerString, oneOf } from './messages/values.ts';

/** order.xsd TimestampType: Plain (xsd:dateTime) or Cryptographic (base64, @Algorithm). */
export type Timestamp =
  | { kind: 'plain'; time: string }
  /** Not supported yet: building or parsing one fails with ERR_ALG_UNSUPPORTED. */
  | { kind: 'cryptographic'; algorithm?: string; value: string };

export const CERT_TYPES = ['advanced', 'qualified', 'accredited', 'unknown'] as const;
export const MATH_RESULTS = ['ok', 'corrupted', 'indeterminate'] as const;
export const OFFLINE_RESULTS = ['valid', 'invalid', 'indeterminate'] as const;
export const ONLINE_RESULTS = ['ok', 'revoked'] as const;

export interface OnlineResult {
  result: (typeof ONLINE_RESULTS)[number];
  /** base64 OCSP response (element name OSCP, sic). */
  ocsp?: string;
  /** xsd:dateTime of the CRL used. */
  crl?: string;
  /** base64 LDAP result. */
  ldap?: string;
}

export interface Inspection {
  timestamp: Timestamp;
  x509SubjectName: string;
  x509IssuerName: string;
  /** xsd:integer as decimal string. */
  x509SerialNumber: string;
  certType: (typeof CERT_TYPES)[number];
  mathResult: (typeof MATH_RESULTS)[number];
  offlineResult: (typeof OFFLINE_RESULTS)[number];
  onlineResult?: OnlineResult;
}

export interface ProcessCard {
  /** xsd:dateTime */
  recentModification: string;
  creation?: Timestamp;
  forwarding?: Timestamp;
  reception?: Timestamp;
  subject?: string;
}

export interface ProcessCardBundle {
  /** base64 MessageId */
  messageId: string;
  processCard: ProcessCard;
  inspectionReport: Inspection[];
}

/** Which timestamps a message type's ProcessCardType restriction admits. */
export interface ProcessCardProfile {
  creation: Presence;
  forwarding: Presence;
  reception: Presence;
}

/** Per-XSD restrictions of ProcessCardTemplate (<Type>.xsd ProcessCardType). */
export const PROCESS_CARD_PROFILES = Object.freeze({
  /** AcceptDelivery.xsd, ProcessDelivery.xsd, ResponseToFetchDelivery.xsd, ResponseToMediateDelivery.xsd Reply */
  delivered: { creation: 'required', forwarding: 'required', reception: 'prohibited' },
  /** ResponseToStoreDelivery.xsd */
  stored: { creation: 'required', forwarding: 'prohibited', reception: 'prohibited' },
  /** ResponseToFetchProcessCard.xsd, ResponseToForwardDelivery.xsd */
  any: { creation: 'required', forwarding: 'optional', reception: 'optional' },
  /** ResponseToMediateDelivery.xsd RequestProcessCardType */
  received: { creation: 'required', forwarding: 'required', reception: 'required' },
} satisfies Record<string, ProcessCardProfile>);

const O = OSCI_NS;

function unsupportedCryptographic(): never {
  throw new CryptoError('ERR_ALG_UNSUPPORTED', 'cryptographic timestamps (osci:Cryptographic) are not supported');
}

export function buildTimestamp(doc: Document, name: string, ts: Timestamp): Element {
  if (ts.kind !== 'plain') unsupportedCryptographic();
  return el(doc, O, `osci:${name}`, {}, [el(doc, O, 'osci:Plain', {}, [dateTime(ts.time, `${name}/Plain`)])]);
}

export function parseTimestamp(e: Element): Timestamp {
  const c = new Children(e);
  if (isEl(c.peek(), O, 'Cryptographic')) unsupportedCryptographic();
  const plain = c.required(O, 'Plain');
  c.end();
  return { kind: 'plain', time: dateTime(leafText(plain), `${e.localName}/Plain`) };
}

export function buildInspection(doc: Document, i: Inspection): Element {
  const leaf = (name: string, v: string) => el(doc, O, `osci:${name}`, {}, [v]);
  let online: Element | undefined;
  if (i.onlineResult) {
    const r = i.onlineResult;
    online = el(doc, O, 'osci:OnlineResult', { Result: oneOf(r.result, ONLINE_RESULTS, 'OnlineResult@Result') }, [
      r.ocsp !== undefined && leaf('OSCP', base64(r.ocsp, 'OSCP')),
      r.crl !== undefined && leaf('CRL', dateTime(r.crl, 'CRL')),
      r.ldap !== undefined && leaf('LDAP', base64(r.ldap, 'LDAP')),
    ]);
  }
  return el(doc, O, 'osci:Inspection', {}, [
    buildTimestamp(doc, 'Timestamp', i.timestamp),
    leaf('X509SubjectName', i.x509SubjectName),
    leaf('X509IssuerName', i.x509IssuerName),
    leaf('X509SerialNumber', integerString(i.x509SerialNumber, 'X509SerialNumber')),
    el(doc, O, 'osci:CertType', { Type: oneOf(i.certType, CERT_TYPES, 'CertType@Type') }),
    el(doc, O, 'osci:MathResult', { Result: oneOf(i.mathResult, MATH_RESULTS, 'MathResult@Result') }),
    el(doc, O, 'osci:OfflineResult', { Result: oneOf(i.offlineResult, OFFLINE_RESULTS, 'OfflineResult@Result') }),
    online,
  ]);
}

function emptyWithAttr(e: Element, attr: string): string {
  new Children(e).end();
  return reqAttr(e, attr);
}

export function parseInspection(e: Element): Inspection {
  const c = new Children(e);
  const out: Inspection = {
    timestamp: parseTimestamp(c.required(O, 'Timestamp')),
    x509SubjectName: leafText(c.required(O, 'X509SubjectName')),
    x509IssuerName: leafText(c.required(O, 'X509IssuerName')),
    x509SerialNumber: integerString(leafText(c.required(O, 'X509SerialNumber')), 'X509SerialNumber'),
    certType: oneOf(emptyWithAttr(c.required(O, 'CertType'), 'Type'), CERT_TYPES, 'CertType@Type'),
    mathResult: oneOf(emptyWithAttr(c.required(O, 'MathResult'), 'Result'), MATH_RESULTS, 'MathResult@Result'),
    offlineResult: oneOf(emptyWithAttr(c.required(O, 'OfflineResult'), 'Result'), OFFLINE_RESULTS, 'OfflineResult@Result'),
  };
  const online = c.optional(O, 'OnlineResult');
  c.end();
  if (online) {
    const oc = new Children(online);
    const r: OnlineResult = { result: oneOf(reqAttr(online, 'Result'), ONLINE_RESULTS, 'OnlineResult@Result') };
    const ocsp = oc.optional(O, 'OSCP');
    const crl = oc.optional(O, 'CRL');
    const ldap = oc.optional(O, 'LDAP');
    oc.end();
    if (ocsp) r.ocsp = base64(leafText(ocsp), 'OSCP');
    if (crl) r.crl = dateTime(leafText(crl), 'CRL');
    if (ldap) r.ldap = base64(leafText(ldap), 'LDAP');
    out.onlineResult = r;
  }
  return out;
}

function checkProfile(card: ProcessCard, profile: ProcessCardProfile, code: 'ERR_USAGE' | 'ERR_SOAP_MALFORMED'): void {
  for (const k of ['creation', 'forwarding', 'reception'] as const) {
    const has = card[k] !== undefined;
    if (profile[k] === 'required' && !has) throw new OsciError(code, `ProcessCard: ${k} timestamp is required here`);
    if (profile[k] === 'prohibited' && has) throw new OsciError(code, `ProcessCard: ${k} timestamp is not allowed here`);
  }
}

/** ProcessCardBundle (or Request/ReplyProcessCardBundle via `name`). */
export function buildProcessCardBundle(
  doc: Document,
  bundle: ProcessCardBundle,
  profile: ProcessCardProfile,
  name = 'ProcessCardBundle',
): Element {
  const card = bundle.processCard;
  checkProfile(card, profile, 'ERR_USAGE');
  return el(doc, O, `osci:${name}`, {}, [
    el(doc, O, 'osci:MessageId', {}, [base64(bundle.messageId, 'MessageId', true)]),
    el(doc, O, 'osci:ProcessCard', { RecentModification: dateTime(card.recentModification, 'RecentModification') }, [
      card.creation && buildTimestamp(doc, 'Creation', card.creation),
      card.forwarding && buildTimestamp(doc, 'Forwarding', card.forwarding),
      card.reception && buildTimestamp(doc, 'Reception', card.reception),
      card.subject !== undefined && el(doc, O, 'osci:Subject', {}, [card.subject]),
    ]),
    el(doc, O, 'osci:InspectionReport', {}, bundle.inspectionReport.map((i) => buildInspection(doc, i))),
  ]);
}

export function parseProcessCardBundle(e: Element, profile: ProcessCardProfile): ProcessCardBundle {
  const c = new Children(e);
  const messageId = base64(leafText(c.required(O, 'MessageId')), 'MessageId', true);
  const pc = c.required(O, 'ProcessCard');
  const report = c.required(O, 'InspectionReport');
  c.end();

  const card: ProcessCard = { recentModification: dateTime(reqAttr(pc, 'RecentModification'), 'RecentModification') };
  const pcc = new Children(pc);
  const creation = pcc.optional(O, 'Creation');
  const forwarding = pcc.optional(O, 'Forwarding');
  const reception = pcc.optional(O, 'Reception');
  const subject = pcc.optional(O, 'Subject');
  pcc.end();
  if (creation) card.creation = parseTimestamp(creation);
  if (forwarding) card.forwarding = parseTimestamp(forwarding);
  if (reception) card.reception = parseTimestamp(reception);
  if (subject) card.subject = leafText(subject);
  checkProfile(card, profile, 'ERR_SOAP_MALFORMED');

  const rc = new Children(report);
  const inspectionReport = rc.many(O, 'Inspection').map(parseInspection);
  rc.end();
  return { messageId, processCard: card, inspectionReport };
}
