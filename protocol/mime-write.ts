/**
 * Writes OSCI MIME multipart/related messages the way the reference library does (osci-protocol.md §4,
 * §11): optional entity headers at the start of the body, `--boundary CRLF headers CRLF CRLF body CRLF`
 * per part, `--boundary-- CRLF` at the end; bodies streamed, never re-encoded.
 */
import { randomInt } from 'node:crypto';
import { Readable } from 'node:stream';
import { OsciError } from './errors.ts';
import { assertWritableHeader, delimiterPrefixAtEnd, formatParam, isValidBoundary } from './mime-headers.ts';

export interface MultipartPartInput {
  /** Written in the given order. */
  headers: Record<string, string>;
  /** A Buffer, a stream, or a factory opened only when the part is reached. */
  body: Buffer | Readable | (() => Readable);
}

export interface WriteMultipartOptions {
  /** Default: `newBoundary()`. */
  boundary?: string;
  /**
   * `boundary` was drawn with {@link newBoundary} for this message (the default when `boundary` is omitted): with
   * ≈ 190 random bits no body contains it but by chance, so streamed bodies are not searched for it (RFC 2046
   * §5.1.1 requires only that it not occur). A boundary chosen otherwise is searched for in every body.
   */
  randomBoundary?: boolean;
  /** `type` parameter: media type of the root part. Default `text/xml`. */
  type?: string;
  /** `start` parameter: Content-ID of the root part (without brackets). The reference library omits it. */
  start?: string;
  /** Also write `MIME-Version` and `Content-Type` at the start of the body, as the reference library does. */
  includeTopHeaders: boolean;
}

export interface WrittenMultipart {
  /** Entity headers: `MIME-Version` and `Content-Type`. */
  headers: Record<string, string>;
  boundary: string;
  stream: Readable;
  /** Total bytes of `stream`, when every body size is known (Buffer, or a declared Content-Length). */
  length?: number;
  /** The whole entity, when every body is a Buffer: what `stream` yields, without a stream (small messages). */
  body?: Buffer;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * `MIME_boundary_` + 32 random [A-Za-z0-9] (≈190 bits), the reference library's shape without its
 * `+` and `/`, so the boundary is an RFC 2045 token and never needs quoting.
 */
export function newBoundary(): string {
  let s = 'MIME_boundary_';
  for (let i = 0; i < 32; i++) s += ALNUM[randomInt(ALNUM.length)];
  return s;
}

/** Headers of the SOAP part as the reference library writes them. */
export function soapPartHeaders(contentId = 'osci@message'): Record<string, string> {
  return {
    'Content-Type': 'text/xml; charset=UTF-8',
    'Content-Transfer-Encoding': '8bit',
    'Content-ID': formatContentId(contentId),
  };
}

/**
 * Headers of a raw binary part (attachment, or the transport-encrypted `osci_enc` part). We write the
 * standard token `binary` where the reference library writes `8-bit` for attachments.
 */
export function binaryPartHeaders(
  contentId: string,
  size?: number,
  contentType = 'application/octet-stream',
): Record<string, string> {
  const h: Record<string, string> = {
    'Content-Type': contentType,
    'Content-Transfer-Encoding': 'binary',
    'Content-ID': formatContentId(contentId),
  };
  if (size !== undefined) h['Content-Length'] = String(size);
  return h;
}

/** `id` → `<id>`; refuses ids that could break the header or the `cid:` reference. */
export function formatContentId(id: string): string {
  if (id.length === 0 || /[<>\s\x00-\x1f\x7f]/.test(id)) {
    throw new OsciError('ERR_MIME_MALFORMED', `Content-ID ${JSON.stringify(id)} is not usable`);
  }
  return `<${id}>`;
}

/** `Multipart/Related; boundary=…; type=…` with RFC 2045 quoting where a value needs it. */
export function multipartContentType(boundary: string, type = 'text/xml', start?: string): string {
  // `type=text/xml` stays unquoted like the reference library's; its parser accepts either form.
  const typeValue = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(type) ? type : formatParam(type);
  let v = `Multipart/Related; boundary=${formatParam(boundary)}; type=${typeValue}`;
  if (start !== undefined) v += `; start=${formatParam(formatContentId(start))}`;
  return v;
}

function headerValue(headers: Record<string, string>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Incremental search for a delimiter across chunk edges; carries only a possible beginning of it. */
class DelimiterScan {
  private carry: Buffer;
  constructor(
    private readonly delimiter: Buffer,
    initial: Buffer,
  ) {
    this.carry = initial;
  }
  push(chunk: Buffer): boolean {
    // The carry is empty unless the previous chunk ended in a possible beginning of the delimiter (rare).
    const joined = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    if (joined.indexOf(this.delimiter) !== -1) return true;
    const keep = delimiterPrefixAtEnd(joined, this.delimiter);
    this.carry = Buffer.from(joined.subarray(joined.length - keep));
    return false;
  }
}

const CRLF = Buffer.from('\r\n');

/** Serialises parts into a MIME multipart/related stream. Throws OsciError on unusable input. */
export function writeMultipart(parts: readonly MultipartPartInput[], opts: WriteMultipartOptions): WrittenMultipart {
  const boundary = opts.boundary ?? newBoundary();
  const searchBodies = opts.boundary !== undefined && opts.randomBoundary !== true;
  if (!isValidBoundary(boundary)) throw new OsciError('ERR_MIME_MALFORMED', 'boundary is not 1-70 valid characters');
  if (parts.length === 0) throw new OsciError('ERR_MIME_MALFORMED', 'a multipart needs at least one part');
  const contentType = multipartContentType(boundary, opts.type, opts.start);
  const headers: Record<string, string> = { 'MIME-Version': '1.0', 'Content-Type': contentType };
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');

  const top = opts.includeTopHeaders
    ? Buffer.from(`MIME-Version: 1.0\r\nContent-Type: ${contentType}\r\n\r\n`, 'latin1')
    : Buffer.alloc(0);
  const heads: Buffer[] = [];
  const sizes: Array<number | undefined> = [];
  for (const [i, part] of parts.entries()) {
    let text = `--${boundary}\r\n`;
    for (const [name, value] of Object.entries(part.headers)) {
      assertWritableHeader(name, value);
      text += `${name}: ${value}\r\n`;
    }
    heads.push(Buffer.from(`${text}\r\n`, 'latin1'));
    const declared = headerValue(part.headers, 'Content-Length');
    if (declared !== undefined && !/^\d{1,15}$/.test(declared)) {
      throw new OsciError('ERR_MIME_MALFORMED', `part ${i + 1}: invalid Content-Length`);
    }
    if (Buffer.isBuffer(part.body)) {
      if (declared !== undefined && Number(declared) !== part.body.length) {
        throw new OsciError('ERR_MIME_MALFORMED', `part ${i + 1}: Content-Length differs from the body`);
      }
      if (new DelimiterScan(delimiter, CRLF).push(part.body)) {
        throw new OsciError('ERR_MIME_MALFORMED', `part ${i + 1}: body contains the boundary`);
      }
      sizes.push(part.body.length);
    } else {
      sizes.push(declared === undefined ? undefined : Number(declared));
    }
  }
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  const between = CRLF; // body CRLF --boundary: the CRLF belongs to the next delimiter

  let length: number | undefined = top.length + tail.length;
  for (const [i, head] of heads.entries()) {
    const size = sizes[i];
    if (length === undefined || size === undefined) {
      length = undefined;
      continue;
    }
    length += head.length + size + (i > 0 ? between.length : 0);
  }

  // The entity in order: its bytes, and each streamed body with the index of its part.
  const pieces: Array<Buffer | { index: number; body: Readable | (() => Readable) }> = [top];
  for (const [i, part] of parts.entries()) {
    if (i > 0) pieces.push(between);
    pieces.push(heads[i] as Buffer, Buffer.isBuffer(part.body) ? part.body : { index: i, body: part.body });
  }
  pieces.push(tail);

  async function* generate(): AsyncGenerator<Buffer> {
    for (const piece of pieces) {
      if (Buffer.isBuffer(piece)) {
        if (piece.length > 0) yield piece;
        continue;
      }
      const { index: i, body } = piece;
      const stream = typeof body === 'function' ? body() : body;
      const scan = searchBodies ? new DelimiterScan(delimiter, CRLF) : undefined;
      const expected = sizes[i];
      let n = 0;
      for await (const chunk of stream as AsyncIterable<unknown>) {
        if (!(chunk instanceof Uint8Array)) {
          throw new OsciError('ERR_INTERNAL', `part ${i + 1}: body stream yields text, not bytes`);
        }
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        n += buf.length;
        if (expected !== undefined && n > expected) {
          throw new OsciError('ERR_INTERNAL', `part ${i + 1}: body longer than its Content-Length`);
        }
        if (scan?.push(buf)) throw new OsciError('ERR_MIME_MALFORMED', `part ${i + 1}: body contains the boundary`);
        if (buf.length > 0) yield buf;
      }
      if (expected !== undefined && n !== expected) {
        throw new OsciError('ERR_INTERNAL', `part ${i + 1}: body shorter than its Content-Length`);
      }
    }
  }

  if (pieces.every((p) => Buffer.isBuffer(p))) {
    const body = Buffer.concat(pieces as Buffer[]);
    return { headers, boundary, body, length: body.length, stream: Readable.from([body], { objectMode: false }) };
  }
  const result: WrittenMultipart = {
    headers,
    boundary,
    stream: Readable.from(generate(), { objectMode: false }),
  };
  if (length !== undefined) result.length = length;
  return result;
}

/** Convenience: the whole message in memory (tests, small responses). */
export async function writeMultipartBuffer(
  parts: readonly MultipartPartInput[],
  opts: WriteMultipartOptions,
): Promise<{ headers: Record<string, string>; boundary: string; body: Buffer }> {
  const w = writeMultipart(parts, opts);
  if (w.body) return { headers: w.headers, boundary: w.boundary, body: w.body };
  const chunks: Buffer[] = [];
  for await (const c of w.stream) chunks.push(c as Buffer);
  return { headers: w.headers, boundary: w.boundary, body: Buffer.concat(chunks) };
}
