/** Small DOM helpers for building and strictly reading OSCI SOAP elements. */
import {
  CDATA_SECTION_NODE,
  COMMENT_NODE,
  ELEMENT_NODE,
  PROCESSING_INSTRUCTION_NODE,
  TEXT_NODE,
} from '../../crypto/xml.ts';
import type { Document, Element } from '../../crypto/xml.ts';
import { PREFIXES, XML_NS, XMLNS_NS } from '../namespaces.ts';
import { OsciError } from '../errors.ts';

// ---------------------------------------------------------------- building

export type Attrs = Record<string, string | undefined>;
export type Child = Element | string | undefined | false;

function attrNamespace(qname: string): string | null {
  const colon = qname.indexOf(':');
  if (colon < 0) return null;
  const prefix = qname.slice(0, colon);
  if (prefix === 'xmlns') return XMLNS_NS;
  if (prefix === 'xml') return XML_NS;
  const ns = (PREFIXES as Record<string, string>)[prefix];
  if (!ns) throw new OsciError('ERR_USAGE', `no namespace known for attribute prefix ${prefix}`);
  return ns;
}

/** Create an element; attributes keep the given order, undefined values are skipped, strings become text. */
export function el(doc: Document, ns: string | null, qname: string, attrs: Attrs = {}, children: Child[] = []): Element {
  const e = doc.createElementNS(ns, qname);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    const ans = attrNamespace(name);
    if (ans === null) e.setAttribute(name, value);
    else e.setAttributeNS(ans, name, value);
  }
  for (const c of children) {
    if (c === undefined || c === false) continue;
    e.appendChild(typeof c === 'string' ? doc.createTextNode(c) : c);
  }
  return e;
}

/** xmlns:* declarations for the given prefixes, as the reference library repeats them on every header block. */
export function nsDecls(prefixes: readonly (keyof typeof PREFIXES)[]): Attrs {
  const out: Attrs = {};
  for (const p of prefixes) out[`xmlns:${p}`] = PREFIXES[p];
  return out;
}

// ---------------------------------------------------------------- reading

export function qname(e: Element): string {
  return e.prefix ? `${e.prefix}:${e.localName}` : String(e.localName);
}

export function isEl(e: Element | undefined, ns: string | null, local: string): e is Element {
  return !!e && e.namespaceURI === ns && e.localName === local;
}

function fail(msg: string): never {
  throw new OsciError('ERR_SOAP_MALFORMED', msg);
}

/** Element children of `parent`; text between them must be whitespace, comments and PIs are skipped. */
export function elementChildren(parent: Element): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === ELEMENT_NODE) out.push(n as Element);
    else if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) {
      if (/\S/.test((n as unknown as { data: string }).data)) fail(`unexpected text inside ${qname(parent)}`);
    } else if (n.nodeType !== COMMENT_NODE && n.nodeType !== PROCESSING_INSTRUCTION_NODE) {
      fail(`unexpected node inside ${qname(parent)}`);
    }
  }
  return out;
}

/** Sequential reader over the element children of one parent, enforcing XSD order and cardinality. */
export class Children {
  private readonly items: Element[];
  private i = 0;
  constructor(readonly parent: Element) {
    this.items = elementChildren(parent);
  }
  peek(): Element | undefined {
    return this.items[this.i];
  }
  optional(ns: string | null, local: string): Element | undefined {
    const e = this.items[this.i];
    if (isEl(e, ns, local)) {
      this.i++;
      return e;
    }
    return undefined;
  }
  required(ns: string | null, local: string): Element {
    const e = this.optional(ns, local);
    if (!e) {
      const got = this.items[this.i];
      fail(`${qname(this.parent)}: expected ${local}${got ? `, found ${qname(got)}` : ', found nothing'}`);
    }
    return e;
  }
  many(ns: string | null, local: string, min = 0, max = Infinity): Element[] {
    const out: Element[] = [];
    for (let e = this.optional(ns, local); e; e = this.optional(ns, local)) out.push(e);
    if (out.length < min || out.length > max) {
      fail(`${qname(this.parent)}: ${local} occurs ${out.length} times, allowed ${min}..${max}`);
    }
    return out;
  }
  rest(): Element[] {
    const r = this.items.slice(this.i);
    this.i = this.items.length;
    return r;
  }
  end(): void {
    const e = this.items[this.i];
    if (e) fail(`${qname(this.parent)}: unexpected element ${qname(e)}`);
  }
}

/** Text of a leaf element: only text/CDATA allowed; a comment or element inside is refused (never read a comment as data). */
export function leafText(e: Element): string {
  let s = '';
  for (let n = e.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) s += (n as unknown as { data: string }).data;
    else fail(`${qname(e)} must contain text only`);
  }
  return s;
}

/** An element that must have no element children and no text. */
export function emptyElement(e: Element): void {
  if (elementChildren(e).length > 0) fail(`${qname(e)} must be empty`);
}

export function optAttr(e: Element, name: string, ns: string | null = null): string | undefined {
  const a = e.getAttributeNodeNS(ns, name);
  return a ? a.value : undefined;
}

export function reqAttr(e: Element, name: string, ns: string | null = null): string {
  const v = optAttr(e, name, ns);
  if (v === undefined) fail(`${qname(e)}: attribute ${name} is required`);
  return v;
}
