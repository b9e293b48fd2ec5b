/**
 * XSD validation of OSCI SOAP envelopes against osci-reference/schema with xmllint, offline.
 * The shipped schemas import W3C schemas by remote URL; we generate an OASIS catalog (in a temp dir) that maps
 * every remote schemaLocation found in the .xsd files to the local file that schema/catalog.xml names for its
 * namespace (osci-reference/README.md "XSD validation notes"). libxml2 does not run the strict particle
 * restriction check that oscisig.xsd fails under Xerces, so no further relaxation is needed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { shared } from './env.ts';

export const SCHEMA_DIR = shared('osci-reference', 'schema');

export interface XsdResult {
  valid: boolean;
  /** xmllint's validity/parser error lines. */
  errors: string[];
}

function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([\w:]+)\s*=\s*(["'])(.*?)\2/g)) out[m[1] as string] = m[3] as string;
  return out;
}

/** Namespace → local file, from schema/catalog.xml (`<uri name="ns" uri="extern/…"/>`). */
function namespaceMap(): Map<string, string> {
  const text = readFileSync(join(SCHEMA_DIR, 'catalog.xml'), 'utf8');
  const map = new Map<string, string>();
  for (const m of text.matchAll(/<uri\b[^>]*>/g)) {
    const a = attrs(m[0]);
    if (a.name && a.uri) map.set(a.name, join(SCHEMA_DIR, a.uri));
  }
  return map;
}

/** OASIS XML catalog text mapping remote schemaLocations (and DTD ids of the W3C schemas) to local files. */
export function generateCatalog(): string {
  const byNs = namespaceMap();
  const entries = new Map<string, string>(); // remote location → local path
  const xsds = [
    ...readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.xsd')).map((f) => join(SCHEMA_DIR, f)),
    ...readdirSync(join(SCHEMA_DIR, 'extern')).filter((f) => f.endsWith('.xsd')).map((f) => join(SCHEMA_DIR, 'extern', f)),
  ];
  const dtds = new Map<string, string>(); // public or system id → local DTD
  for (const file of xsds) {
    const text = readFileSync(file, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
    const target = /targetNamespace\s*=\s*["']([^"']+)["']/.exec(text)?.[1];
    for (const m of text.matchAll(/<(?:\w+:)?(import|redefine|include)\b[^>]*>/g)) {
      const a = attrs(m[0]);
      const loc = a.schemaLocation;
      if (!loc || !/^https?:/.test(loc)) continue;
      const ns = m[1] === 'import' ? a.namespace : target;
      const local = ns ? byNs.get(ns) : undefined;
      if (!local) throw new Error(`no local schema for ${loc} (namespace ${ns ?? '?'}) in ${basename(file)}`);
      entries.set(loc, local);
    }
    const doctype = /<!DOCTYPE\s+\w+\s+PUBLIC\s+"([^"]+)"\s+"([^"]+)"/.exec(text);
    if (doctype) {
      const local = join(SCHEMA_DIR, 'extern', basename(doctype[2] as string));
      if (existsSync(local)) {
        dtds.set(`public:${doctype[1]}`, local);
        dtds.set(`system:${doctype[2]}`, local);
      }
    }
  }
  const url = (p: string) => pathToFileURL(p).href;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const lines = ['<?xml version="1.0"?>', '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">'];
  for (const [loc, local] of entries) {
    lines.push(`  <system systemId="${esc(loc)}" uri="${esc(url(local))}"/>`, `  <uri name="${esc(loc)}" uri="${esc(url(local))}"/>`);
  }
  for (const [ns, local] of byNs) lines.push(`  <uri name="${esc(ns)}" uri="${esc(url(local))}"/>`);
  for (const [id, local] of dtds) {
    const [kind, value] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
    lines.push(
      kind === 'public'
        ? `  <public publicId="${esc(value)}" uri="${esc(url(local))}"/>`
        : `  <system systemId="${esc(value)}" uri="${esc(url(local))}"/>`,
    );
  }
  lines.push('</catalog>', '');
  return lines.join('\n');
}

let catalogPath: string | undefined;

function catalog(): string {
  if (!catalogPath) {
    const dir = mkdtempSync(join(tmpdir(), 'amtsbote-xsd-'));
    catalogPath = join(dir, 'catalog.xml');
    writeFileSync(catalogPath, generateCatalog());
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return catalogPath;
}

/**
 * Validate `xml` against `osci-reference/schema/<xsd>` with `xmllint --noout --nonet --catalogs`.
 * An invalid document yields `valid: false`; a schema that cannot be compiled throws (broken test setup).
 */
export function validateXsd(xml: string | Buffer, xsd: string): XsdResult {
  const schema = join(SCHEMA_DIR, xsd);
  if (!existsSync(schema)) throw new Error(`no schema ${xsd} in ${SCHEMA_DIR}`);
  const r = spawnSync('xmllint', ['--noout', '--nonet', '--catalogs', '--schema', schema, '-'], {
    input: xml,
    env: { ...process.env, XML_CATALOG_FILES: catalog() },
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  const errors = r.stderr.split('\n').filter((l) => /error/i.test(l) && !/warning/i.test(l));
  // xmllint exit codes: 0 valid, 1/2 input not well-formed, 3 invalid, 4/5 schema could not be compiled.
  if (r.status === 4 || r.status === 5) throw new Error(`xmllint could not compile ${xsd}:\n${r.stderr}`);
  if (r.status !== 0 && errors.length === 0) errors.push(r.stderr.trim() || `xmllint exit status ${r.status}`);
  return { valid: r.status === 0, errors };
}

/**
 * SOAP part of a captured reference message (osci-reference/messages/*.mime): the first MIME part's body,
 * after its headers and blank line, up to the CRLF before the next boundary. Deliberately tiny and
 * independent of protocol/mime.ts so the reference checks do not depend on the codec under test.
 */
export function firstMimePart(mime: Buffer): Buffer {
  const boundary = /boundary=([^;\r\n]+)/i.exec(mime.subarray(0, 2048).toString('latin1'))?.[1]?.replace(/^"|"$/g, '');
  if (!boundary) throw new Error('no MIME boundary');
  const delim = Buffer.from(`\r\n--${boundary}`, 'latin1');
  const start = mime.indexOf(delim);
  if (start < 0) throw new Error('no first MIME part');
  const headersEnd = mime.indexOf('\r\n\r\n', start + delim.length);
  const end = mime.indexOf(delim, headersEnd);
  if (headersEnd < 0 || end < 0) throw new Error('truncated first MIME part');
  return mime.subarray(headersEnd + 4, end);
}
