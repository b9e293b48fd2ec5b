/**
 * Strict XML parsing for security processing (dependencies-and-security.md §2, step 1):
 * @xmldom/xmldom 0.9 with every parser warning and error fatal, DOCTYPE refused, Ids indexed once
 * with duplicates rejected (signature wrapping).
 */
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import type { Document, Element, Node } from '@xmldom/xmldom';
import { CryptoError } from './errors.ts';

export type { Document, Element, Node };

export const ELEMENT_NODE = 1;
export const TEXT_NODE = 3;
export const CDATA_SECTION_NODE = 4;
export const PROCESSING_INSTRUCTION_NODE = 7;
export const COMMENT_NODE = 8;
export const DOCUMENT_NODE = 9;
export const DOCUMENT_TYPE_NODE = 10;

/**
 * Shape bounds for untrusted XML, checked by a linear pre-scan before the DOM is built: xmldom spends tens of
 * microseconds per node and more on deep or attribute-heavy input, so a few MB of tiny elements would block the
 * event loop for minutes. OSCI envelopes nest about 15 levels and hold a few hundred tags.
 */
export const XML_LIMITS = Object.freeze({ maxDepth: 256, maxMarkup: 100_000, maxAttributes: 100_000, maxAttributesPerElement: 256 });

function tooComplex(what: string): CryptoError {
  return new CryptoError('ERR_XML_MALFORMED', `XML exceeds ${what}`);
}

/** Counts tags, comments, PIs and CDATA sections, nesting and attributes; stops where the markup breaks. */
function checkShape(text: string): void {
  let depth = 0;
  let markup = 0;
  let attributes = 0;
  let i = text.indexOf('<');
  while (i !== -1) {
    if (++markup > XML_LIMITS.maxMarkup) throw tooComplex(`${XML_LIMITS.maxMarkup} tags`);
    let end: number;
    if (text.startsWith('<!--', i)) end = text.indexOf('-->', i + 4);
    else if (text.startsWith('<![CDATA[', i)) end = text.indexOf(']]>', i + 9);
    else if (text.charCodeAt(i + 1) === 0x3f) end = text.indexOf('?>', i + 2);
    else if (text.charCodeAt(i + 1) === 0x2f) {
      depth--;
      end = text.indexOf('>', i + 2);
    } else {
      // A start tag ends at the first '>' outside quotes; every quoted value is one attribute.
      let attrs = 0;
      end = -1;
      for (let j = i + 1; j < text.length; j++) {
        const ch = text.charCodeAt(j);
        if (ch === 0x22 || ch === 0x27) {
          if (++attrs > XML_LIMITS.maxAttributesPerElement) throw tooComplex(`${XML_LIMITS.maxAttributesPerElement} attributes on one element`);
          if (++attributes > XML_LIMITS.maxAttributes) throw tooComplex(`${XML_LIMITS.maxAttributes} attributes`);
          j = text.indexOf(ch === 0x22 ? '"' : "'", j + 1);
          if (j === -1) break;
        } else if (ch === 0x3e) {
          end = j;
          break;
        }
      }
      if (end !== -1 && text.charCodeAt(end - 1) !== 0x2f && ++depth > XML_LIMITS.maxDepth) throw tooComplex(`nesting depth ${XML_LIMITS.maxDepth}`);
    }
    if (end === -1) return; // unterminated: the parser reports it
    i = text.indexOf('<', end + 1);
  }
}

/**
 * xmldom with every warning and error fatal (ERR_XML_MALFORMED). `locator` tracks line and column: it costs
 * ≈ 10 % of every parse, so only a document that failed is parsed again with it, for the position in the message.
 */
function domParse(text: string, locator: boolean): Document {
  let problem: string | undefined;
  try {
    const parser = new DOMParser({
      locator,
      onError: (level: string, msg: string) => {
        problem ??= `XML ${level}: ${msg}`;
        throw new Error(msg);
      },
    });
    return parser.parseFromString(text, 'text/xml');
  } catch (e) {
    const at = (e as { locator?: { lineNumber?: number; columnNumber?: number } }).locator;
    const where = at?.lineNumber ? ` (line ${at.lineNumber}, column ${at.columnNumber ?? 0})` : '';
    throw new CryptoError('ERR_XML_MALFORMED', `${problem ?? `XML not well-formed: ${(e as Error).message}`}${where}`, { cause: e });
  }
}

export function parseXml(input: string | Buffer): Document {
  const text = typeof input === 'string' ? input : input.toString('utf8');
  // Refuse DTDs before the parser sees them: no entity expansion, no external fetches, no billion laughs.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
    throw new CryptoError('ERR_XML_DOCTYPE', 'DOCTYPE and entity declarations are not allowed');
  }
  checkShape(text);
  let doc: Document;
  try {
    doc = domParse(text, false);
  } catch (e) {
    domParse(text, true); // the same failure, with its position
    throw e;
  }
  if (!doc.documentElement) throw new CryptoError('ERR_XML_MALFORMED', 'XML has no document element');
  for (let n = doc.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === DOCUMENT_TYPE_NODE) throw new CryptoError('ERR_XML_DOCTYPE', 'DOCTYPE is not allowed');
  }
  return doc;
}

export function serializeXml(node: Node): string {
  return new XMLSerializer().serializeToString(node);
}

/** Child elements of `parent`, optionally filtered by namespace and local name. */
export function childElements(parent: Node, ns?: string | null, localName?: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType !== ELEMENT_NODE) continue;
    const el = n as Element;
    if (ns !== undefined && el.namespaceURI !== ns) continue;
    if (localName !== undefined && el.localName !== localName) continue;
    out.push(el);
  }
  return out;
}

/** Exactly one child element of this name, or a structural error with `code`. */
export function onlyChild(
  parent: Node,
  ns: string | null,
  localName: string,
  code: 'ERR_SIG_STRUCTURE' | 'ERR_ENC_STRUCTURE' | 'ERR_XML_MALFORMED' = 'ERR_XML_MALFORMED',
): Element {
  const found = childElements(parent, ns, localName);
  if (found.length !== 1) {
    throw new CryptoError(code, `expected exactly one ${localName}, found ${found.length}`);
  }
  return found[0] as Element;
}

export function optionalChild(parent: Node, ns: string | null, localName: string, code: 'ERR_SIG_STRUCTURE' | 'ERR_ENC_STRUCTURE' | 'ERR_XML_MALFORMED' = 'ERR_XML_MALFORMED'): Element | undefined {
  const found = childElements(parent, ns, localName);
  if (found.length > 1) throw new CryptoError(code, `expected at most one ${localName}, found ${found.length}`);
  return found[0];
}

/** Concatenated text of a node; comments and PIs are skipped (CVE-2025-29775: never read a comment as data). */
export function textContent(node: Node): string {
  let s = '';
  for (let n = node.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) s += (n as unknown as { data: string }).data;
    else if (n.nodeType === ELEMENT_NODE) s += textContent(n);
  }
  return s;
}

/** Text of an element that must hold only text: a comment or element inside is a structural error. */
export function strictText(el: Element, code: 'ERR_SIG_STRUCTURE' | 'ERR_ENC_STRUCTURE'): string {
  let s = '';
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) s += (n as unknown as { data: string }).data;
    else throw new CryptoError(code, `${el.localName} must contain text only`);
  }
  return s;
}

/**
 * Index all elements by their Id attributes (names given, unqualified, e.g. ["Id", "ID", "id"]).
 * Duplicate values anywhere in the document are rejected (XML-DSig best practices, signature wrapping).
 */
export function indexIds(doc: Document | Element, idAttrs: readonly string[] = ['Id', 'ID', 'id']): Map<string, Element> {
  const map = new Map<string, Element>();
  const root = (doc.nodeType === DOCUMENT_NODE ? (doc as Document).documentElement : doc) as Element;
  const stack: Element[] = [root];
  while (stack.length) {
    const el = stack.pop() as Element;
    for (const name of idAttrs) {
      const attr = el.getAttributeNode(name);
      if (!attr || attr.namespaceURI) continue;
      if (map.has(attr.value)) throw new CryptoError('ERR_XML_DUPLICATE_ID', `duplicate Id "${attr.value}"`);
      map.set(attr.value, el);
    }
    for (let n = el.lastChild; n; n = n.previousSibling) if (n.nodeType === ELEMENT_NODE) stack.push(n as Element);
  }
  return map;
}
