/**
 * The routing fields of an XJustiz record (`xjustiz_nachricht.xml`, osci-protocol.md §12): message type code
 * (the seven digits ending the root element's name, e.g. nachricht.gds.uebermittlungSchriftgutobjekte.0005005),
 * the recipient court code (nachrichtenkopf/auswahl_empfaenger/empfaenger.gericht/code, the element courts route
 * by) and the file numbers (Aktenzeichen) of the header and the procedure data. Parsed with the strict parser
 * (no DOCTYPE, no entities); only read, never trusted for anything but routing.
 */
import { CryptoError } from '../crypto/errors.ts';
import { childElements, ELEMENT_NODE, parseXml, textContent, type Element } from '../crypto/xml.ts';

export const XJUSTIZ_NS = 'http://www.xjustiz.de';
/** The record's file name in EGVP messages (`attachments/xjustiz_nachricht.xml`). */
export const XJUSTIZ_FILE = 'xjustiz_nachricht.xml';
/** Larger records are not parsed for routing (a 0005005 header is a few KB; the whole record stays in the folder). */
export const MAX_XJUSTIZ_BYTES = 16 * 1024 * 1024;

export interface XJustizFields {
  /** Root element's local name, e.g. nachricht.gds.uebermittlungSchriftgutobjekte.0005005 */
  messageName: string;
  /** Seven-digit message type code, e.g. 0005005 (eEB return: 2200007). */
  messageType?: string;
  /** XJustiz version from nachrichtenkopf/@xjustizVersion. */
  version?: string;
  /** Code of the recipient court (GDS.Gerichte), e.g. F1234. */
  recipientCourt?: string;
  /** Code of the sending court, when a court sent it. */
  senderCourt?: string;
  /** File numbers (Aktenzeichen) found in the header and the procedure data, in document order, without duplicates. */
  fileNumbers: string[];
  /** nachrichtenkopf/eigeneNachrichtenID */
  senderMessageId?: string;
}

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

function child(parent: Element | undefined, local: string): Element | undefined {
  if (!parent) return undefined;
  return childElements(parent).find((e) => e.localName === local && (e.namespaceURI === XJUSTIZ_NS || e.namespaceURI === null || e.namespaceURI === ''));
}

/** A code-list value: `<x><code>F1234</code></x>` (XJustiz ≥ 2.x) or plain text (older records). */
function codeOf(e: Element | undefined): string | undefined {
  if (!e) return undefined;
  const code = child(e, 'code');
  const v = norm(textContent(code ?? e));
  return v || undefined;
}

const FILE_NUMBER_ELEMENTS = new Set(['aktenzeichen.empfaenger', 'aktenzeichen.absender', 'aktenzeichen.freitext', 'aktenzeichen']);

function fileNumbers(root: Element): string[] {
  const out: string[] = [];
  const stack: Element[] = [root];
  while (stack.length) {
    const e = stack.pop() as Element;
    const kids = childElements(e);
    if (FILE_NUMBER_ELEMENTS.has(e.localName ?? '') && kids.length === 0) {
      const v = norm(textContent(e));
      if (v && !out.includes(v)) out.push(v);
    }
    for (let i = kids.length - 1; i >= 0; i--) {
      const k = kids[i];
      if (k && k.nodeType === ELEMENT_NODE) stack.push(k);
    }
  }
  return out;
}

/** Reads the routing fields; ERR_XML_* for a record that is not well-formed or not XJustiz. */
export function readXJustiz(xml: Buffer | string): XJustizFields {
  const size = typeof xml === 'string' ? Buffer.byteLength(xml) : xml.length;
  if (size > MAX_XJUSTIZ_BYTES) throw new CryptoError('ERR_XML_MALFORMED', `XJustiz record larger than ${MAX_XJUSTIZ_BYTES} bytes is not read`);
  const root = parseXml(xml).documentElement as Element;
  if (root.namespaceURI !== XJUSTIZ_NS) throw new CryptoError('ERR_XML_MALFORMED', `not an XJustiz record (root namespace ${root.namespaceURI ?? 'none'})`);
  const messageName = root.localName ?? '';
  const head = child(root, 'nachrichtenkopf');
  const fields: XJustizFields = { messageName, fileNumbers: fileNumbers(root) };
  const type = /\.(\d{7})$/.exec(messageName)?.[1];
  if (type) fields.messageType = type;
  const version = head?.getAttribute('xjustizVersion');
  if (version) fields.version = version;
  const recipient = codeOf(child(child(head, 'auswahl_empfaenger'), 'empfaenger.gericht'));
  if (recipient) fields.recipientCourt = recipient;
  const sender = codeOf(child(child(head, 'auswahl_absender'), 'absender.gericht'));
  if (sender) fields.senderCourt = sender;
  const own = child(head, 'eigeneNachrichtenID');
  if (own && norm(textContent(own))) fields.senderMessageId = norm(textContent(own));
  return fields;
}

/** True when the bytes look like an XJustiz record (root element in the XJustiz namespace). */
export function isXJustiz(xml: Buffer): boolean {
  if (xml.length > MAX_XJUSTIZ_BYTES) return false;
  try {
    return parseXml(xml).documentElement?.namespaceURI === XJUSTIZ_NS;
  } catch {
    return false;
  }
}
