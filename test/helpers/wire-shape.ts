/**
 * The wire form of an OSCI message as the reference library writes it, reduced to what an intermediary relies on:
 * the SOAP header blocks in order with their Ids, the body element with its Id, the references of the signature
 * in order, and the algorithms used. Deliberately built on xmldom alone, independent of the codec under test.
 */
import { DOMParser, type Element } from '@xmldom/xmldom';

export interface WireShape {
  /** soap:Header children: "osci:ControlBlock#controlblock", … */
  header: string[];
  /** soap:Body children: "osci:fetchDelivery#fetchdelivery" */
  body: string[];
  /** ds:Reference URIs of the first ds:Signature, in order. */
  references: string[];
  /** Every Algorithm attribute value, sorted, once each. */
  algorithms: string[];
}

const NS: Record<string, string> = {
  'http://schemas.xmlsoap.org/soap/envelope/': 'soap',
  'http://www.osci.de/2002/04/osci': 'osci',
  'http://www.w3.org/2000/09/xmldsig#': 'ds',
  'http://www.w3.org/2001/04/xmlenc#': 'xenc',
};

const name = (e: Element) => `${NS[e.namespaceURI ?? ''] ?? e.namespaceURI}:${e.localName}`;
const children = (e: Element | null | undefined): Element[] => (e ? (Array.from(e.childNodes) as unknown as Element[]).filter((n) => n.nodeType === 1) : []);

export function wireShape(xml: Buffer | string): WireShape {
  const doc = new DOMParser().parseFromString(xml.toString(), 'text/xml');
  const env = doc.documentElement as unknown as Element;
  const part = (local: string) => children(env).find((c) => c.localName === local);
  const withId = (e: Element) => `${name(e)}#${e.getAttribute('Id') ?? ''}`;
  const sig = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'SignedInfo')[0] as unknown as Element | undefined;
  const refs = sig ? Array.from(sig.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Reference')).map((r) => (r as unknown as Element).getAttribute('URI') ?? '') : [];
  const algorithms = new Set<string>();
  const walk = (e: Element) => {
    const a = e.getAttribute('Algorithm');
    if (a) algorithms.add(a);
    children(e).forEach(walk);
  };
  walk(env);
  return { header: children(part('Header')).map(withId), body: children(part('Body')).map(withId), references: refs, algorithms: [...algorithms].sort() };
}
