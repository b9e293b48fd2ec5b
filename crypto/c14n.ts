/**
 * Canonical XML over @xmldom/xmldom 0.9 nodes, written for speed (no XPath, one pass, no node-set):
 * - inclusive C14N 1.0 (https://www.w3.org/TR/2001/REC-xml-c14n-20010315), the OSCI profile's method;
 * - exclusive C14N 1.0 (https://www.w3.org/TR/2002/REC-xml-exc-c14n-20020718/) with InclusiveNamespaces PrefixList;
 * each with or without comments. The input is a document, or an element apex whose whole subtree is the
 * node-set (a "document subset" in C14N terms), optionally minus one excluded subtree (the enveloped signature).
 */
import type { Attr, CharacterData, Document, Element, Node, ProcessingInstruction } from '@xmldom/xmldom';
import { CryptoError } from './errors.ts';

export interface C14nOptions {
  exclusive: boolean;
  withComments: boolean;
  /** Exclusive C14N only: prefixes treated by inclusive rules (InclusiveNamespaces PrefixList; '#default' = default namespace). */
  inclusivePrefixes?: readonly string[];
  /** A subtree left out of the output (XML-DSig enveloped-signature transform). */
  excludeNode?: Node;
}

const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

const ELEMENT = 1;
const TEXT = 3;
const CDATA = 4;
const PI = 7;
const COMMENT = 8;
const DOCUMENT = 9;
const DOCTYPE = 10;

/** prefix ('' = default namespace) → namespace URI ('' = none). Shared between elements until one changes it. */
type NsMap = ReadonlyMap<string, string>;
const EMPTY: NsMap = new Map();

// C14N 1.0 §2.3: text nodes escape & < > and #xD; attribute values escape & < " #x9 #xA #xD.
const TEXT_SPECIAL = /[&<>\r]/;
const ATTR_SPECIAL = /[&<"\t\n\r]/;

export function escapeText(s: string): string {
  if (!TEXT_SPECIAL.test(s)) return s;
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#xD;');
}

export function escapeAttr(s: string): string {
  if (!ATTR_SPECIAL.test(s)) return s;
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/"/g, '&quot;')
    .replace(/\t/g, '&#x9;')
    .replace(/\n/g, '&#xA;')
    .replace(/\r/g, '&#xD;');
}

/** Ordering by UCS code point (C14N §2.2 "lexicographic"), not by locale. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface NsDecl { prefix: string; uri: string }

/** Namespace declarations an element makes itself: its xmlns attributes, plus bindings implied by its own and its
 * attributes' prefixes when a programmatically built DOM lacks the xmlns attribute (namespace fixup). */
function ownDeclarations(el: Element, inherited: NsMap): NsDecl[] | undefined {
  let decls: NsDecl[] | undefined;
  const attrs = el.attributes;
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attr;
    if (a.namespaceURI !== XMLNS_NS) continue;
    const prefix = a.prefix === 'xmlns' ? (a.localName ?? '') : '';
    (decls ??= []).push({ prefix, uri: a.value });
  }
  const elPrefix = el.prefix ?? '';
  const elUri = el.namespaceURI ?? '';
  if ((bound(decls, inherited, elPrefix) ?? '') !== elUri) (decls ??= []).push({ prefix: elPrefix, uri: elUri });
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attr;
    const p = a.prefix;
    if (!p || p === 'xmlns' || p === 'xml' || a.namespaceURI === XMLNS_NS) continue;
    if (bound(decls, inherited, p) !== (a.namespaceURI ?? '')) (decls ??= []).push({ prefix: p, uri: a.namespaceURI ?? '' });
  }
  return decls;
}

// Module-level helpers rather than closures in the per-element functions: tsx (esbuild keepNames) names every
// closure each time it is created, which cost ≈ 1.5 % of a request's main-thread time (BENCHMARKS.md).

/** The URI `prefix` is bound to: the element's own declarations so far (last wins), else the inherited scope. */
function bound(decls: NsDecl[] | undefined, inherited: NsMap, prefix: string): string | undefined {
  if (decls) for (let i = decls.length - 1; i >= 0; i--) if ((decls[i] as NsDecl).prefix === prefix) return (decls[i] as NsDecl).uri;
  return inherited.get(prefix);
}

/** Namespace nodes an opening tag renders, and the bindings its output children then see. */
interface Rendering {
  render: NsDecl[];
  above: NsMap;
  rendered: NsMap;
}

function mark(r: Rendering, prefix: string, uri: string): void {
  r.render.push({ prefix, uri });
  if (r.rendered === r.above) r.rendered = new Map(r.above);
  (r.rendered as Map<string, string>).set(prefix, uri);
}

/** Exc-C14N §3: rendered unless the nearest output ancestor rendered the same binding. */
function markUnlessRendered(r: Rendering, prefix: string, uri: string): void {
  if ((r.rendered.get(prefix) ?? '') !== uri) mark(r, prefix, uri);
}

function extend(base: NsMap, decls: NsDecl[] | undefined): NsMap {
  if (!decls) return base;
  const m = new Map(base);
  for (const d of decls) m.set(d.prefix, d.uri);
  return m;
}

/** Namespaces in scope at `node` (declared on it and its ancestors; nearest wins). */
function inScopeAt(node: Node | null): NsMap {
  const chain: Element[] = [];
  for (let n = node; n && n.nodeType === ELEMENT; n = n.parentNode) chain.push(n as Element);
  let m: NsMap = EMPTY;
  for (let i = chain.length - 1; i >= 0; i--) m = extend(m, ownDeclarations(chain[i] as Element, m));
  return m;
}

/** xml:* attributes of the apex's ancestors that the apex lacks (C14N 1.0 §2.4: inherited into a document subset). */
function inheritedXmlAttrs(apex: Element): Attr[] {
  const out: Attr[] = [];
  const seen = new Set<string>();
  const own = apex.attributes;
  for (let i = 0; i < own.length; i++) {
    const a = own[i] as Attr;
    if (a.namespaceURI === XML_NS) seen.add(a.localName ?? '');
  }
  for (let n = apex.parentNode; n && n.nodeType === ELEMENT; n = n.parentNode) {
    const attrs = (n as Element).attributes;
    for (let i = 0; i < attrs.length; i++) {
      const a = attrs[i] as Attr;
      if (a.namespaceURI !== XML_NS || seen.has(a.localName ?? '')) continue;
      seen.add(a.localName ?? '');
      out.push(a);
    }
  }
  return out;
}

function attrSort(a: Attr, b: Attr): number {
  const na = a.namespaceURI ?? '';
  const nb = b.namespaceURI ?? '';
  if (na !== nb) return cmp(na, nb);
  return cmp(a.localName ?? a.name, b.localName ?? b.name);
}

function renderAttributes(el: Element, extra: Attr[] | undefined): string {
  const attrs = el.attributes;
  let list: Attr[] | undefined;
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attr;
    if (a.namespaceURI === XMLNS_NS) continue;
    (list ??= []).push(a);
  }
  if (extra?.length) list = [...(list ?? []), ...extra];
  if (!list) return '';
  if (list.length > 1) list.sort(attrSort);
  let s = '';
  for (const a of list) s += ' ' + a.name + '="' + escapeAttr(a.value) + '"';
  return s;
}

function byPrefix(a: NsDecl, b: NsDecl): number {
  return cmp(a.prefix, b.prefix);
}

function renderNs(decls: NsDecl[]): string {
  if (decls.length > 1) decls.sort(byPrefix);
  let s = '';
  for (const d of decls) s += d.prefix ? ' xmlns:' + d.prefix + '="' + escapeAttr(d.uri) + '"' : ' xmlns="' + escapeAttr(d.uri) + '"';
  return s;
}

interface Frame {
  el: Element;
  next: Node | null;
  /** Namespaces in scope at el. */
  scope: NsMap;
  /** Namespaces rendered by el and its output ancestors. */
  rendered: NsMap;
}

class Canonicalizer {
  private out = '';
  private readonly exclusive: boolean;
  private readonly withComments: boolean;
  private readonly prefixList: readonly string[];
  private readonly exclude: Node | undefined;
  /** Exclusive C14N without a PrefixList never looks at in-scope declarations. */
  private readonly trackScope: boolean;

  constructor(opts: C14nOptions) {
    this.exclusive = opts.exclusive;
    this.withComments = opts.withComments;
    this.prefixList = opts.exclusive ? (opts.inclusivePrefixes ?? []).map((p) => (p === '#default' ? '' : p)) : [];
    this.exclude = opts.excludeNode;
    this.trackScope = !opts.exclusive || this.prefixList.length > 0;
  }

  run(node: Node): string {
    if (node.nodeType === DOCUMENT) this.document(node as Document);
    else if (node.nodeType === ELEMENT) this.subtree(node as Element, true);
    else throw new CryptoError('ERR_XML_MALFORMED', `cannot canonicalize a node of type ${node.nodeType}`);
    return this.out;
  }

  /** C14N §2.1: the document: PIs and comments around the root, separated by #xA. */
  private document(doc: Document): void {
    let afterRoot = false;
    for (let n = doc.firstChild; n; n = n.nextSibling) {
      if (n === this.exclude) continue;
      switch (n.nodeType) {
        case ELEMENT:
          this.subtree(n as Element, false);
          afterRoot = true;
          break;
        case PI:
        case COMMENT: {
          // xmldom keeps the XML declaration as a PI named xml; it is not part of the data model (C14N §2.1).
          if (n.nodeType === PI && (n as ProcessingInstruction).target === 'xml') break;
          const text = this.leaf(n);
          if (text) this.out += afterRoot ? '\n' + text : text + '\n';
          break;
        }
        case DOCTYPE:
        case TEXT:
          break;
        default:
          throw new CryptoError('ERR_XML_MALFORMED', `unexpected node type ${n.nodeType} at document level`);
      }
    }
  }

  private leaf(n: Node): string {
    switch (n.nodeType) {
      case TEXT:
      case CDATA:
        return escapeText((n as CharacterData).data);
      case COMMENT:
        return this.withComments ? '<!--' + (n as CharacterData).data + '-->' : '';
      case PI: {
        const pi = n as ProcessingInstruction;
        return pi.data ? '<?' + pi.target + ' ' + pi.data + '?>' : '<?' + pi.target + '?>';
      }
      default:
        throw new CryptoError('ERR_XML_MALFORMED', `cannot canonicalize a node of type ${n.nodeType}`);
    }
  }

  /** Opening tag of `el`; returns the scope and rendered maps for its children. */
  private open(el: Element, scopeAbove: NsMap, renderedAbove: NsMap, apex: boolean, subset: boolean): [NsMap, NsMap] {
    const decls = this.trackScope ? ownDeclarations(el, scopeAbove) : undefined;
    const scope = extend(scopeAbove, decls);
    const r: Rendering = { render: [], above: renderedAbove, rendered: renderedAbove };
    if (!this.exclusive) {
      // C14N §2.3/§4.7: a namespace node is output unless the nearest output ancestor has the same one;
      // xmlns="" only when the parent in the output had a non-empty default. The xml prefix is never output.
      if (apex) {
        for (const [prefix, uri] of scope) if (prefix !== 'xml' && uri !== '') mark(r, prefix, uri);
      } else if (decls) {
        const seen = new Set<string>();
        for (let i = decls.length - 1; i >= 0; i--) {
          const d = decls[i] as NsDecl;
          if (seen.has(d.prefix) || d.prefix === 'xml') continue;
          seen.add(d.prefix);
          if ((renderedAbove.get(d.prefix) ?? '') !== d.uri && (d.uri !== '' || d.prefix === '')) mark(r, d.prefix, d.uri);
        }
      }
    } else {
      // Exc-C14N §3: render namespaces visibly utilized by el (its prefix, its attributes' prefixes) unless the
      // nearest output ancestor rendered the same binding; PrefixList prefixes follow the inclusive rule.
      markUnlessRendered(r, el.prefix ?? '', el.namespaceURI ?? '');
      const attrs = el.attributes;
      for (let i = 0; i < attrs.length; i++) {
        const a = attrs[i] as Attr;
        const p = a.prefix;
        if (!p || p === 'xml' || p === 'xmlns' || a.namespaceURI === XMLNS_NS) continue;
        markUnlessRendered(r, p, a.namespaceURI ?? '');
      }
      for (const p of this.prefixList) {
        const uri = scope.get(p);
        if (uri !== undefined && p !== 'xml') markUnlessRendered(r, p, uri);
      }
    }
    const extra = apex && subset && !this.exclusive ? inheritedXmlAttrs(el) : undefined;
    this.out += '<' + el.tagName + renderNs(r.render) + renderAttributes(el, extra) + '>';
    return [scope, r.rendered];
  }

  /** Depth-first over the apex's subtree without recursion (deep documents must not overflow the stack). */
  private subtree(apex: Element, subset: boolean): void {
    if (apex === this.exclude) return;
    const ancestorScope = subset && this.trackScope ? inScopeAt(apex.parentNode) : EMPTY;
    const [scope, rendered] = this.open(apex, ancestorScope, EMPTY, true, subset);
    const stack: Frame[] = [{ el: apex, next: apex.firstChild, scope, rendered }];
    while (stack.length) {
      const top = stack[stack.length - 1] as Frame;
      const n = top.next;
      if (!n) {
        this.out += '</' + top.el.tagName + '>';
        stack.pop();
        continue;
      }
      top.next = n.nextSibling;
      if (n === this.exclude) continue;
      if (n.nodeType === ELEMENT) {
        const el = n as Element;
        const [s, r] = this.open(el, top.scope, top.rendered, false, subset);
        stack.push({ el, next: el.firstChild, scope: s, rendered: r });
      } else {
        this.out += this.leaf(n);
      }
    }
  }
}

/** Canonical form of `node` (a Document, or an Element as apex of a document subset). */
export function canonicalize(node: Node, opts: C14nOptions): string {
  return new Canonicalizer(opts).run(node);
}
