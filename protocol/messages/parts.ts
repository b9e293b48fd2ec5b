/**
 * Build/parse of the message parts shared by several types: ControlBlock, DesiredLanguages,
 * QualityOfTimestamp, Feedback, FeatureDescription, ContentPackage, SelectionRules (order.xsd, EFFI.xsd).
 */
import { parseXml, serializeXml } from '../../crypto/xml.ts';
import type { Document, Element } from '../../crypto/xml.ts';
import type {
  ContentPackage,
  ControlBlock,
  DeliverySelection,
  FeatureDescription,
  FeedbackEntry,
  Presence,
  ProcessCardSelection,
  TimestampQuality,
} from '../model.ts';
import { ACTOR_NEXT, OSCI2017_NS, OSCI_NS, SOAP_NS, XENC_NS, XML_NS } from '../namespaces.ts';
import { Children, el, emptyElement, leafText, nsDecls, optAttr, qname, reqAttr } from './dom.ts';
import { OsciError } from '../errors.ts';
import type { ControlBlockSpec } from './spec.ts';
import { FIXED_IDS } from './spec.ts';
import { anyUri, base64, boolean, dateTime, language, numberToken, numberValue, oneOf, positiveInteger } from './values.ts';

const O = OSCI_NS;
export const HEADER_NS_DECLS = nsDecls(['ds', 'osci', 'soap', 'xenc', 'xsi']);

// ---------------------------------------------------------------- header block attributes

/** Id + soap:actor(next) + soap:mustUnderstand="1", with the namespace redeclarations of the reference library. */
export function headerAttrs(id: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { ...HEADER_NS_DECLS, Id: id, ...extra, 'soap:actor': ACTOR_NEXT, 'soap:mustUnderstand': '1' };
}

/** Check the attributes every osci header block must carry (GeneralHeaderBlockTemplate / *Certificates actor). */
export function checkHeaderAttrs(e: Element, actor: string): void {
  reqAttr(e, 'Id');
  const mu = optAttr(e, 'mustUnderstand', SOAP_NS);
  if (mu !== '1' && mu !== '0') throw new OsciError('ERR_SOAP_MALFORMED', `${qname(e)}: soap:mustUnderstand must be 0 or 1`);
  if (optAttr(e, 'actor', SOAP_NS) !== actor) throw new OsciError('ERR_SOAP_MALFORMED', `${qname(e)}: soap:actor must be ${actor}`);
}

// ---------------------------------------------------------------- ControlBlock (§2)

function presence(name: string, has: boolean, rule: Presence, code: 'ERR_USAGE' | 'ERR_CONTROLBLOCK', typeName: string): void {
  if (rule === 'required' && !has) throw new OsciError(code, `${typeName}: ControlBlock ${name} is required`);
  if (rule === 'prohibited' && has) throw new OsciError(code, `${typeName}: ControlBlock ${name} is not allowed`);
}

function checkControlBlock(cb: ControlBlock, spec: ControlBlockSpec, code: 'ERR_USAGE' | 'ERR_CONTROLBLOCK', typeName: string): void {
  presence('ConversationId', cb.conversationId !== undefined, spec.conversationId, code, typeName);
  presence('SequenceNumber', cb.sequenceNumber !== undefined, spec.sequenceNumber, code, typeName);
  presence('Response', cb.response !== undefined, spec.response, code, typeName);
  presence('Challenge', cb.challenge !== undefined, spec.challenge, code, typeName);
}

export function buildControlBlock(doc: Document, cb: ControlBlock, spec: ControlBlockSpec, typeName: string): Element {
  checkControlBlock(cb, spec, 'ERR_USAGE', typeName);
  const seq = cb.sequenceNumber;
  if (seq !== undefined && (!Number.isSafeInteger(seq) || seq < 0)) {
    throw new OsciError('ERR_USAGE', `SequenceNumber must be a non-negative integer, got ${seq}`);
  }
  return el(
    doc,
    O,
    'osci:ControlBlock',
    {
      ...HEADER_NS_DECLS,
      ConversationId: cb.conversationId === undefined ? undefined : numberToken(cb.conversationId, 'ConversationId'),
      Id: FIXED_IDS.controlBlock,
      SequenceNumber: seq === undefined ? undefined : String(seq),
      'soap:actor': ACTOR_NEXT,
      'soap:mustUnderstand': '1',
    },
    [
      cb.response !== undefined && el(doc, O, 'osci:Response', {}, [cb.response]),
      cb.challenge !== undefined && el(doc, O, 'osci:Challenge', {}, [cb.challenge]),
    ],
  );
}

export function parseControlBlock(e: Element, spec: ControlBlockSpec, typeName: string): ControlBlock {
  checkHeaderAttrs(e, ACTOR_NEXT);
  const out: ControlBlock = {};
  const conv = optAttr(e, 'ConversationId');
  const seq = optAttr(e, 'SequenceNumber');
  // A ControlBlock that breaks its type's rules is answered with 9400 (§2).
  if (conv !== undefined) out.conversationId = numberToken(conv, 'ConversationId', 'ERR_CONTROLBLOCK');
  if (seq !== undefined) out.sequenceNumber = numberValue(seq, 'SequenceNumber', 'ERR_CONTROLBLOCK');
  const c = new Children(e);
  const response = c.optional(O, 'Response');
  const challenge = c.optional(O, 'Challenge');
  c.end();
  if (response) out.response = leafText(response);
  if (challenge) out.challenge = leafText(challenge);
  // An order that needs an explicit dialog but comes without one is an order-level 9802, not a ControlBlock 9400 (§2).
  if (spec.conversationId === 'required' && out.conversationId === undefined && out.response === undefined) {
    throw new OsciError('ERR_DIALOG_REQUIRED', `${typeName} needs an explicit dialog`);
  }
  checkControlBlock(out, spec, 'ERR_CONTROLBLOCK', typeName);
  return out;
}

// ---------------------------------------------------------------- DesiredLanguages

export function buildDesiredLanguages(doc: Document, langs: readonly string[]): Element {
  if (langs.length === 0) throw new OsciError('ERR_USAGE', 'DesiredLanguages needs at least one language');
  const list = langs.map((l) => language(l, 'LanguagesList')).join(' ');
  return el(doc, O, 'osci:DesiredLanguages', headerAttrs(FIXED_IDS.desiredLanguages, { LanguagesList: list }));
}

export function parseDesiredLanguages(e: Element): string[] {
  checkHeaderAttrs(e, ACTOR_NEXT);
  emptyElement(e);
  const list = reqAttr(e, 'LanguagesList').trim().split(/\s+/).filter(Boolean);
  if (list.length === 0) throw new OsciError('ERR_SOAP_MALFORMED', 'LanguagesList is empty');
  return list.map((l) => language(l, 'LanguagesList'));
}

// ---------------------------------------------------------------- QualityOfTimestamp

const QUALITIES = ['plain', 'cryptographic'] as const;
const SERVICES = ['creation', 'reception'] as const;

export function buildQualityOfTimestamp(doc: Document, service: 'creation' | 'reception', quality: TimestampQuality): Element {
  const id = service === 'creation' ? FIXED_IDS.qualityOfTimestampCreation : FIXED_IDS.qualityOfTimestampReception;
  return el(
    doc,
    O,
    'osci:QualityOfTimestamp',
    headerAttrs(id, { Quality: oneOf(quality, QUALITIES, 'Quality'), Service: oneOf(service, SERVICES, 'Service') }),
  );
}

export function parseQualityOfTimestamp(e: Element): { service: 'creation' | 'reception'; quality: TimestampQuality } {
  checkHeaderAttrs(e, ACTOR_NEXT);
  emptyElement(e);
  return {
    service: oneOf(reqAttr(e, 'Service'), SERVICES, 'QualityOfTimestamp@Service'),
    quality: oneOf(reqAttr(e, 'Quality'), QUALITIES, 'QualityOfTimestamp@Quality'),
  };
}

// ---------------------------------------------------------------- Feedback (§8)

export function buildFeedback(doc: Document, entries: readonly FeedbackEntry[]): Element {
  if (entries.length === 0) throw new OsciError('ERR_USAGE', 'Feedback needs at least one Entry');
  return el(
    doc,
    O,
    'osci:Feedback',
    {},
    entries.map((f) =>
      el(doc, O, 'osci:Entry', { 'xml:lang': f.lang === undefined ? undefined : language(f.lang, 'Entry@xml:lang') }, [
        el(doc, O, 'osci:Code', {}, [numberToken(f.code, 'Feedback Code')]),
        el(doc, O, 'osci:Text', {}, [f.text]),
      ]),
    ),
  );
}

export function parseFeedback(e: Element): FeedbackEntry[] {
  const c = new Children(e);
  const entries = c.many(O, 'Entry', 1);
  c.end();
  return entries.map((entry) => {
    const ec = new Children(entry);
    const code = numberToken(leafText(ec.required(O, 'Code')), 'Feedback Code');
    const text = leafText(ec.required(O, 'Text'));
    ec.end();
    const lang = optAttr(entry, 'lang', XML_NS);
    return lang === undefined ? { code, text } : { lang: language(lang, 'Entry@xml:lang'), code, text };
  });
}

// ---------------------------------------------------------------- FeatureDescription (EFFI.xsd)

const FD_ATTRS = [
  ['maxChunkSize', 'MaxChunkSize'],
  ['maxMessageSize', 'MaxMessageSize'],
  ['minChunkSize', 'MinChunkSize'],
  ['chunkMessageTimeOut', 'ChunkMessageTimeOut'],
] as const;

/**
 * What this implementation supports, announced in every request as the reference library does (osci-protocol.md
 * "[C] FeatureDescription"): binary attachments, RSA-OAEP, SHA-3 digests, AES-GCM, 12-byte GCM IVs. Not
 * PartialMessageTransmission: chunking is not implemented.
 */
export const SUPPORTED_FEATURES: Readonly<FeatureDescription> = Object.freeze({
  features: Object.freeze([
    { key: 'DisableBase64', version: '1.2.0' },
    { key: 'OAEPEncryption', version: '1.6.0' },
    { key: 'SHA3HashAlgo', version: '1.6.3' },
    { key: 'GCMPaddingModus', version: '1.7.0' },
    { key: 'Support96Bit12ByteIV', version: '1.9.0' },
  ]) as FeatureDescription['features'],
});

/** [J] writes it with Id but without soap:actor / mustUnderstand. */
export function buildFeatureDescription(doc: Document, fd: FeatureDescription): Element {
  if (fd.features.length === 0) throw new OsciError('ERR_USAGE', 'FeatureDescription needs at least one Feature');
  const attrs: Record<string, string | undefined> = { ...nsDecls(['ds', 'osci', 'osci2017', 'soap', 'xenc', 'xsi']), Id: FIXED_IDS.featureDescription };
  for (const [k, a] of FD_ATTRS) {
    const v = fd[k];
    if (v !== undefined) attrs[a] = String(positiveInteger(String(v), a));
  }
  return el(doc, OSCI2017_NS, 'osci2017:FeatureDescription', attrs, [
    el(
      doc,
      OSCI2017_NS,
      'osci2017:SupportedFeatures',
      {},
      fd.features.map((f) => el(doc, OSCI2017_NS, 'osci2017:Feature', { Key: f.key, Version: f.version })),
    ),
  ]);
}

export function parseFeatureDescription(e: Element): FeatureDescription {
  reqAttr(e, 'Id');
  const c = new Children(e);
  const sf = c.required(OSCI2017_NS, 'SupportedFeatures');
  c.end();
  const sc = new Children(sf);
  const features = sc.many(OSCI2017_NS, 'Feature', 1).map((f) => {
    emptyElement(f);
    return { key: reqAttr(f, 'Key'), version: reqAttr(f, 'Version') };
  });
  sc.end();
  const out: FeatureDescription = { features };
  for (const [k, a] of FD_ATTRS) {
    const v = optAttr(e, a);
    if (v !== undefined) out[k] = positiveInteger(v, `FeatureDescription@${a}`);
  }
  return out;
}

// ---------------------------------------------------------------- ContentPackage (§5)

function importFragment(doc: Document, xml: string, ns: string, local: string): Element {
  const frag = parseXml(xml).documentElement;
  if (!frag || frag.namespaceURI !== ns || frag.localName !== local) {
    throw new OsciError('ERR_USAGE', `ContentPackage entry must be a ${local} element`);
  }
  return doc.importNode(frag, true) as Element;
}

export function buildContentPackage(doc: Document, cp: ContentPackage): Element {
  return el(doc, O, 'osci:ContentPackage', {}, [
    ...cp.encryptedData.map((x) => importFragment(doc, x, XENC_NS, 'EncryptedData')),
    ...cp.contentContainers.map((x) => importFragment(doc, x, O, 'ContentContainer')),
  ]);
}

export function parseContentPackage(e: Element): ContentPackage {
  const c = new Children(e);
  const enc = c.many(XENC_NS, 'EncryptedData');
  const cc = c.many(O, 'ContentContainer');
  c.end();
  for (const x of cc) reqAttr(x, 'Id');
  return { encryptedData: enc.map((x) => serializeXml(x)), contentContainers: cc.map((x) => serializeXml(x)) };
}

// ---------------------------------------------------------------- SelectionRules

export function buildDeliverySelection(doc: Document, s: DeliverySelection): Element {
  return el(doc, O, 'osci:SelectionRule', {}, [
    s.by === 'messageId'
      ? el(doc, O, 'osci:MessageId', {}, [base64(s.messageId, 'MessageId', true)])
      : el(doc, O, 'osci:ReceptionOfDelivery', {}, [dateTime(s.dateTime, 'ReceptionOfDelivery')]),
  ]);
}

export function parseDeliverySelection(e: Element): DeliverySelection {
  const c = new Children(e);
  const id = c.optional(O, 'MessageId');
  const rec = id ? undefined : c.required(O, 'ReceptionOfDelivery');
  c.end();
  if (id) return { by: 'messageId', messageId: base64(leafText(id), 'MessageId', true) };
  return { by: 'receptionOfDelivery', dateTime: dateTime(leafText(rec as Element), 'ReceptionOfDelivery') };
}

const ROLES = ['Addressee', 'Originator'] as const;

export function buildProcessCardSelection(doc: Document, s: ProcessCardSelection): Element {
  if (s.by === 'messageId') {
    if (s.messageIds.length === 0) throw new OsciError('ERR_USAGE', 'SelectionRule needs at least one MessageId');
    return el(
      doc,
      O,
      'osci:SelectionRule',
      {},
      s.messageIds.map((m) => el(doc, O, 'osci:MessageId', {}, [base64(m, 'MessageId', true)])),
    );
  }
  const name = s.by === 'receptionOfDelivery' ? 'osci:ReceptionOfDelivery' : 'osci:RecentModification';
  return el(doc, O, 'osci:SelectionRule', {}, [
    el(
      doc,
      O,
      name,
      {
        NoReception: s.noReception === undefined ? undefined : String(s.noReception),
        Role: s.role === undefined ? undefined : oneOf(s.role, ROLES, 'Role'),
      },
      [dateTime(s.dateTime, name)],
    ),
  ]);
}

export function parseProcessCardSelection(e: Element): ProcessCardSelection {
  const c = new Children(e);
  const ids = c.many(O, 'MessageId');
  if (ids.length > 0) {
    c.end();
    return { by: 'messageId', messageIds: ids.map((m) => base64(leafText(m), 'MessageId', true)) };
  }
  const first = c.peek();
  const by =
    first?.namespaceURI === O && first.localName === 'ReceptionOfDelivery'
      ? 'receptionOfDelivery'
      : first?.namespaceURI === O && first.localName === 'RecentModification'
        ? 'recentModification'
        : undefined;
  if (!by) throw new OsciError('ERR_SOAP_MALFORMED', 'SelectionRule: expected MessageId, ReceptionOfDelivery or RecentModification');
  const d = c.required(O, by === 'receptionOfDelivery' ? 'ReceptionOfDelivery' : 'RecentModification');
  c.end();
  const out: ProcessCardSelection = { by, dateTime: dateTime(leafText(d), d.localName ?? 'SelectionRule') };
  const nr = optAttr(d, 'NoReception');
  const role = optAttr(d, 'Role');
  if (nr !== undefined) out.noReception = boolean(nr, 'NoReception');
  if (role !== undefined) out.role = oneOf(role, ROLES, 'Role');
  return out;
}

export function buildQuantity(doc: Document, limit: number): Element {
  return el(doc, O, 'osci:Quantity', { Limit: String(positiveInteger(String(limit), 'Quantity@Limit')) });
}

export function parseQuantity(e: Element): number {
  emptyElement(e);
  return positiveInteger(reqAttr(e, 'Limit'), 'Quantity@Limit');
}

/** ContentReceiver@URI (Forward/MediateDelivery.xsd); required here although the XSD leaves it optional. */
export function buildContentReceiver(doc: Document, uri: string): Element {
  return el(doc, O, 'osci:ContentReceiver', { URI: anyUri(uri, 'ContentReceiver@URI') });
}

export function parseContentReceiver(e: Element): string {
  emptyElement(e);
  return anyUri(reqAttr(e, 'URI'), 'ContentReceiver@URI');
}

export function messageIdElement(doc: Document, name: string, id: string): Element {
  return el(doc, O, `osci:${name}`, {}, [base64(id, name, true)]);
}

export function parseMessageId(e: Element): string {
  return base64(leafText(e), e.localName ?? 'MessageId', true);
}
