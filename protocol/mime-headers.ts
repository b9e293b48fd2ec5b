/**
 * MIME header syntax shared by the multipart parser and writer: header blocks (RFC 5322 §2.2 with
 * folding), Content-Type parameters (RFC 2045 §5.1, leniently), boundaries (RFC 2046 §5.1.1), Content-ID.
 */
import { OsciError } from './errors.ts';

export type HeaderField = readonly [name: string, value: string];

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 2046 bchars: DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" / "." / "/" / ":" / "=" / "?" / " " */
const BCHARS = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
// Control characters other than HT are not allowed in header values (header injection, RFC 5322 §2.2).
const BAD_VALUE_CHARS = /[\x00-\x08\x0a-\x1f\x7f]/;

function malformed(message: string): OsciError {
  return new OsciError('ERR_MIME_MALFORMED', message);
}

export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

/** RFC 2046 §5.1.1: 1–70 bchars, not ending in a space. */
export function isValidBoundary(b: string): boolean {
  return BCHARS.test(b);
}

/**
 * Parses a header block (the bytes between the start of the headers and the blank line, CRLF-separated).
 * Folded lines (starting with SP/HT) are unfolded by removing the CRLF. Returns fields in order.
 */
export function parseHeaderBlock(block: Buffer, what: string): HeaderField[] {
  const text = block.toString('latin1');
  const fields: Array<[string, string]> = [];
  if (text.length === 0) return fields;
  for (const line of text.split('\r\n')) {
    if (line.includes('\r') || line.includes('\n')) throw malformed(`${what}: bare CR or LF in header`);
    if (line.length === 0) throw malformed(`${what}: empty header line`);
    if (line[0] === ' ' || line[0] === '\t') {
      const last = fields[fields.length - 1];
      if (last === undefined) throw malformed(`${what}: continuation line without a header`);
      last[1] = `${last[1]}${line}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed(`${what}: header line without a name`);
    const name = line.slice(0, colon);
    if (!isToken(name)) throw malformed(`${what}: invalid header name`);
    fields.push([name, line.slice(colon + 1)]);
  }
  return fields.map(([n, v]) => {
    const value = v.trim();
    if (BAD_VALUE_CHARS.test(value)) throw malformed(`${what}: control character in header ${n}`);
    return [n, value] as const;
  });
}

/** Headers that must not repeat: a second value would make the part ambiguous. */
const SINGLE = new Set(['content-type', 'content-id', 'content-length', 'content-transfer-encoding', 'mime-version']);

/** Lower-cased name → value. Repeated Content-* headers are refused; others are joined with ", ". */
export function headerMap(fields: readonly HeaderField[], what: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, value] of fields) {
    const key = name.toLowerCase();
    const prev = map.get(key);
    if (prev === undefined) map.set(key, value);
    else if (SINGLE.has(key)) throw malformed(`${what}: header ${name} appears twice`);
    else map.set(key, `${prev}, ${value}`);
  }
  return map;
}

export interface ContentType {
  /** type/subtype, lower-cased. */
  type: string;
  /** Parameter names lower-cased; values unquoted, case preserved. */
  params: Map<string, string>;
}

/**
 * Content-Type with parameters. Lenient where the reference library is non-conforming: an unquoted value
 * runs to the next `;` or whitespace, so `boundary=MIME_boundary_ab/c+d` is accepted (osci-protocol.md §11).
 */
export function parseContentType(value: string, what = 'Content-Type'): ContentType {
  let i = 0;
  const n = value.length;
  const skipWs = (): void => {
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  skipWs();
  const typeStart = i;
  while (i < n && value[i] !== ';' && value[i] !== ' ' && value[i] !== '\t') i++;
  const type = value.slice(typeStart, i).toLowerCase();
  const slash = type.indexOf('/');
  if (slash <= 0 || !isToken(type.slice(0, slash)) || !isToken(type.slice(slash + 1))) {
    throw malformed(`${what}: invalid media type`);
  }
  const params = new Map<string, string>();
  for (;;) {
    skipWs();
    if (i >= n) break;
    if (value[i] !== ';') throw malformed(`${what}: expected ';'`);
    i++;
    skipWs();
    if (i >= n) break; // tolerate a trailing ';'
    const nameStart = i;
    while (i < n && value[i] !== '=' && value[i] !== ';' && value[i] !== ' ' && value[i] !== '\t') i++;
    const name = value.slice(nameStart, i).toLowerCase();
    if (!isToken(name)) throw malformed(`${what}: invalid parameter name`);
    skipWs();
    if (value[i] !== '=') throw malformed(`${what}: parameter ${name} without value`);
    i++;
    skipWs();
    let v = '';
    if (value[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = value[i] as string;
        if (c === '\\' && i + 1 < n) {
          v += value[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          v += c;
          i++;
        }
      }
      if (!closed) throw malformed(`${what}: unterminated quoted string`);
    } else {
      const vStart = i;
      while (i < n && value[i] !== ';' && value[i] !== ' ' && value[i] !== '\t' && value[i] !== '"') i++;
      v = value.slice(vStart, i);
      if (v.length === 0) throw malformed(`${what}: parameter ${name} without value`);
    }
    if (params.has(name)) throw malformed(`${what}: parameter ${name} appears twice`);
    params.set(name, v);
  }
  return { type, params };
}

/** A parameter value as token, or as quoted-string when it contains tspecials (RFC 2045 §5.1). */
export function formatParam(value: string): string {
  if (isToken(value)) return value;
  return `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

/** `<id>` → `id`; a bare id is taken as is (the reference library strips the brackets the same way). */
export function parseContentId(value: string, what: string): string {
  let v = value.trim();
  if (v.startsWith('<')) {
    if (!v.endsWith('>')) throw malformed(`${what}: unbalanced Content-ID`);
    v = v.slice(1, -1).trim();
  }
  if (v.length === 0) throw malformed(`${what}: empty Content-ID`);
  return v;
}

/** Header name/value check for writing: no injection of further headers or parts. */
export function assertWritableHeader(name: string, value: string): void {
  if (!isToken(name)) throw malformed(`invalid header name ${JSON.stringify(name)}`);
  if (BAD_VALUE_CHARS.test(value)) throw malformed(`header ${name} contains a control character`);
}

/**
 * Length of the longest end of `buf` that is a proper beginning of `delimiter` (0 if none): the only bytes a
 * streaming search must hold back, since a delimiter can only continue into the next chunk from there.
 */
export function delimiterPrefixAtEnd(buf: Buffer, delimiter: Buffer): number {
  const first = delimiter[0] as number;
  let p = buf.indexOf(first, Math.max(0, buf.length - delimiter.length + 1));
  while (p !== -1) {
    const n = buf.length - p;
    if (buf.compare(delimiter, 0, n, p) === 0) return n;
    p = buf.indexOf(first, p + 1);
  }
  return 0;
}
