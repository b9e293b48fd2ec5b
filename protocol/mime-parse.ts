/**
 * Streaming, binary-safe parser for OSCI's MIME multipart/related messages (RFC 2046 §5.1, RFC 2387,
 * osci-protocol.md §4 and §11). Part bodies go to caller-supplied sinks or into memory; memory use is
 * bounded by the limits whatever the part sizes. The boundary is authoritative; a part's Content-Length
 * is only a cross-check.
 */
import { createHash, type Hash } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { OsciError, toOsciError } from './errors.ts';
import {
  delimiterPrefixAtEnd,
  headerMap,
  isValidBoundary,
  parseContentId,
  parseContentType,
  parseHeaderBlock,
  type HeaderField,
} from './mime-headers.ts';

export interface MimeLimits {
  /** Body parts per message (EGVP: 1000 files, plus the SOAP part and slack). */
  maxParts: number;
  /** Bytes of one header block (also the top-level headers and the preamble before the first boundary). */
  maxHeaderBytes: number;
  /** Bytes of the whole input, counted as it streams in. */
  maxTotalBytes: number;
  /** Bytes of one part kept in memory (a part whose sink returned null). */
  maxInMemoryBytes: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_MIME_LIMITS: Readonly<MimeLimits> = Object.freeze({
  maxParts: 1002,
  maxHeaderBytes: 16 * 1024,
  // 200 MB per message (osci-protocol.md §13) plus MIME/SOAP/encryption overhead.
  maxTotalBytes: 200 * MiB + 8 * MiB,
  maxInMemoryBytes: 64 * MiB,
});

export interface PartHeaders {
  index: number;
  /** Lower-cased header names. */
  headers: Map<string, string>;
  /** Headers as received, in order, names in original case. */
  rawHeaders: readonly HeaderField[];
  /** Content-ID without the angle brackets (what a `cid:` URL names). */
  contentId?: string;
  /** Media type, lower-cased, without parameters. */
  contentType?: string;
  /** Content-Transfer-Encoding, lower-cased. Bodies are returned raw, never decoded. */
  transferEncoding?: string;
  /** Declared Content-Length, if any. */
  contentLength?: number;
  /** The root part: named by the `start` parameter, else the first part (RFC 2387 §3.2). */
  isRoot: boolean;
}

export interface ParsedPart extends PartHeaders {
  /** The body when it was buffered (the sink returned null or there is no sink). */
  body?: Buffer;
  /** Raw body bytes as transmitted. */
  size: number;
  /**
   * SHA-256 of the raw body bytes (what a `cid:` reference digest covers, osci-protocol.md §6); empty for a part
   * whose sink declined it ({@link PartTarget}).
   */
  sha256: Buffer;
  /** Further digests requested with `extraDigests`, by hash name. */
  digests: Map<string, Buffer>;
  /** Set when an unchecked (root) part's Content-Length differs from the bytes found. */
  lengthMismatch?: boolean;
}

export interface ParsedMultipart {
  /** Lower-cased media type of the entity: always `multipart/related`. */
  type: string;
  /** The `type` parameter (media type of the root part), e.g. `text/xml`. */
  rootType?: string;
  /** The `start` parameter without angle brackets. */
  start?: string;
  boundary: string;
  /** Entity headers read from the start of the body (reference-library quirk), else from `contentType`. */
  headers: Map<string, string>;
  parts: ParsedPart[];
  /** Index of the root part in `parts`. */
  root: number;
  totalBytes: number;
}

/**
 * Where a part's body goes: a Writable, null (kept in memory), or a Writable with `digest: false` for a body
 * nobody will digest (e.g. the transport ciphertext, decrypted on the way): no SHA-256 is computed for it.
 */
export type PartTarget = Writable | null | { writable: Writable; digest: false };

/** `previous`: the parts already complete (a buffered root part with its body). */
export type PartSink = (part: PartHeaders, previous: readonly ParsedPart[]) => PartTarget | Promise<PartTarget>;

export interface ParseMultipartOptions {
  /**
   * The HTTP Content-Type. If it is multipart/related, its boundary is used; if it is missing or anything
   * else (the reference library sends `text/xml`), the entity headers are read from the body (§11).
   */
  contentType?: string;
  limits?: Partial<MimeLimits>;
  /** Where to stream a part's body; null keeps it in memory. Without a sink every part is buffered. */
  sink?: PartSink;
  /**
   * Which declared Content-Lengths must match: all parts, or all but the root part (default). The
   * reference library writes a wrong Content-Length on the SOAP part of every transport-encrypted
   * message (2202 for a 4047-byte part), so the root part's value is only reported (`lengthMismatch`).
   */
  contentLengthCheck?: 'strict' | 'except-root';
  /** Additional node:crypto hash names to compute over each raw body, e.g. ['sha512']. */
  extraDigests?: readonly string[];
}

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
const DASH = 0x2d;
const SP = 0x20;
const HT = 0x09;
const CR = 0x0d;
const LF = 0x0a;
/** Transport padding (LWSP) allowed after a delimiter before its CRLF. */
const MAX_PADDING = 256;

function malformed(message: string): OsciError {
  return new OsciError('ERR_MIME_MALFORMED', message);
}
function limit(message: string): OsciError {
  return new OsciError('ERR_MIME_LIMIT', message);
}

interface OpenPart {
  info: PartHeaders;
  sink: Writable | null;
  sinkError: unknown;
  chunks: Buffer[];
  size: number;
  hash: Hash | undefined;
  extra: Array<[string, Hash]>;
  checkLength: boolean;
}

type State = 'top' | 'preamble' | 'afterDelimiter' | 'headers' | 'body' | 'epilogue';

class MultipartParser {
  private state: State;
  private buf: Buffer = EMPTY;
  private scanFrom = 0;
  private delimiter: Buffer = EMPTY;
  private preambleBytes = 0;
  private total = 0;
  private current: OpenPart | undefined;
  private readonly contentIds = new Set<string>();
  readonly parts: ParsedPart[] = [];
  type = '';
  rootType: string | undefined;
  start: string | undefined;
  boundary = '';
  headers = new Map<string, string>();

  constructor(
    private readonly limits: MimeLimits,
    private readonly opts: ParseMultipartOptions,
  ) {
    const ct = opts.contentType === undefined ? undefined : parseContentType(opts.contentType, 'HTTP Content-Type');
    if (ct !== undefined && ct.type.startsWith('multipart/')) {
      this.headers = new Map([['content-type', opts.contentType as string]]);
      this.setEntityType(ct.type, ct.params);
      this.state = 'preamble';
      this.buf = CRLF; // so that a delimiter at the very start is found as CRLF--boundary
    } else {
      this.state = 'top';
    }
  }

  get totalBytes(): number {
    return this.total;
  }

  private setEntityType(type: string, params: Map<string, string>): void {
    if (type !== 'multipart/related') throw malformed(`entity is ${type}, not multipart/related`);
    const boundary = params.get('boundary');
    if (boundary === undefined) throw malformed('multipart/related without boundary');
    if (!isValidBoundary(boundary)) throw malformed('boundary is not 1-70 valid characters (RFC 2046)');
    this.type = type;
    this.boundary = boundary;
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    this.rootType = params.get('type');
    const start = params.get('start');
    this.start = start === undefined ? undefined : parseContentId(start, 'start parameter');
  }

  async push(chunk: Buffer): Promise<void> {
    this.total += chunk.length;
    if (this.total > this.limits.maxTotalBytes) {
      // 9904 "Maximale Nachrichtengröße überschritten" (osci-protocol.md §13), not a malformed message.
      throw new OsciError('ERR_TOO_LARGE', `message exceeds ${this.limits.maxTotalBytes} bytes`);
    }
    if (this.state === 'epilogue') return; // after the close delimiter: ignored (RFC 2046 epilogue)
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (await this.step(false));
  }

  async end(): Promise<void> {
    while (await this.step(true));
    if (this.state !== 'epilogue') {
      throw malformed(this.state === 'top' && this.total === 0 ? 'empty message' : 'missing final boundary');
    }
  }

  /** Destroys an open sink after a failure so that file handles are released. */
  abort(err: unknown): void {
    const part = this.current;
    this.current = undefined;
    if (part?.sink && !part.sink.destroyed) part.sink.destroy(err instanceof Error ? err : undefined);
  }

  /** One state transition; returns false when more input is needed (or at the end). */
  private async step(final: boolean): Promise<boolean> {
    switch (this.state) {
      case 'top':
        return this.stepTop(final);
      case 'preamble':
        return this.stepPreamble(final);
      case 'afterDelimiter':
        return this.stepAfterDelimiter(final);
      case 'headers':
        return this.stepHeaders(final);
      case 'body':
        return this.stepBody(final);
      case 'epilogue':
        this.buf = EMPTY;
        return false;
    }
  }

  /** Finds the end of a header block; undefined when more input is needed. */
  private findHeaderEnd(final: boolean, what: string): number | undefined {
    const idx = this.buf.indexOf(CRLFCRLF, this.scanFrom);
    if (idx === -1) {
      if (this.buf.length > this.limits.maxHeaderBytes) throw limit(`${what} exceed ${this.limits.maxHeaderBytes} bytes`);
      if (final) throw malformed(this.buf.length === 0 ? 'empty message' : `${what} not terminated`);
      this.scanFrom = Math.max(0, this.buf.length - 3);
      return undefined;
    }
    if (idx > this.limits.maxHeaderBytes) throw limit(`${what} exceed ${this.limits.maxHeaderBytes} bytes`);
    this.scanFrom = 0;
    return idx;
  }

  private stepTop(final: boolean): boolean {
    if (this.buf.length >= 2 && this.buf[0] === CR && this.buf[1] === LF) {
      throw malformed('message starts with a blank line: no MIME headers');
    }
    const idx = this.findHeaderEnd(final, 'MIME entity headers');
    if (idx === undefined) return false;
    const fields = parseHeaderBlock(this.buf.subarray(0, idx), 'MIME entity headers');
    const headers = headerMap(fields, 'MIME entity headers');
    const version = headers.get('mime-version');
    if (version !== undefined && !/^1\.0(\s|\(|$)/.test(version)) throw malformed(`MIME-Version ${version}`);
    const ct = headers.get('content-type');
    if (ct === undefined) throw malformed('MIME entity without Content-Type');
    const parsed = parseContentType(ct);
    this.headers = headers;
    this.setEntityType(parsed.type, parsed.params);
    this.buf = Buffer.concat([CRLF, this.buf.subarray(idx + 4)]);
    this.state = 'preamble';
    return true;
  }

  private stepPreamble(final: boolean): boolean {
    const idx = this.buf.indexOf(this.delimiter);
    if (idx === -1) {
      const keep = Math.min(this.buf.length, this.delimiter.length - 1);
      this.preambleBytes += this.buf.length - keep;
      this.buf = this.buf.subarray(this.buf.length - keep);
      if (this.preambleBytes > this.limits.maxHeaderBytes) {
        throw limit(`no boundary within the first ${this.limits.maxHeaderBytes} bytes`);
      }
      if (final) throw malformed('boundary not found');
      return false;
    }
    this.preambleBytes += idx;
    if (this.preambleBytes > this.limits.maxHeaderBytes) {
      throw limit(`no boundary within the first ${this.limits.maxHeaderBytes} bytes`);
    }
    this.buf = this.buf.subarray(idx + this.delimiter.length);
    this.state = 'afterDelimiter';
    return true;
  }

  private stepAfterDelimiter(final: boolean): boolean {
    const b = this.buf;
    if (b.length < 2) {
      if (final) throw malformed('message ends inside a boundary line');
      return false;
    }
    if (b[0] === DASH && b[1] === DASH) {
      if (this.parts.length === 0) throw malformed('multipart without body parts');
      this.finishMessage();
      this.state = 'epilogue';
      this.buf = EMPTY;
      return false;
    }
    let i = 0;
    while (i < b.length && (b[i] === SP || b[i] === HT)) i++;
    if (i > MAX_PADDING) throw malformed('boundary line too long');
    if (i + 2 > b.length) {
      if (final) throw malformed('message ends inside a boundary line');
      return false;
    }
    if (b[i] !== CR || b[i + 1] !== LF) throw malformed('boundary followed by unexpected bytes');
    if (this.parts.length + 1 > this.limits.maxParts) throw limit(`more than ${this.limits.maxParts} parts`);
    this.buf = b.subarray(i + 2);
    this.state = 'headers';
    this.scanFrom = 0;
    return true;
  }

  private async stepHeaders(final: boolean): Promise<boolean> {
    const what = `MIME part ${this.parts.length + 1}`;
    let fields: HeaderField[];
    let bodyStart: number;
    if (this.buf.length < 2) {
      if (final) throw malformed(`${what}: truncated`);
      return false;
    }
    if (this.buf[0] === CR && this.buf[1] === LF) {
      fields = []; // no headers (RFC 2046 allows it; defaults apply)
      bodyStart = 2;
    } else {
      const idx = this.findHeaderEnd(final, `${what} headers`);
      if (idx === undefined) return false;
      fields = parseHeaderBlock(this.buf.subarray(0, idx), what);
      bodyStart = idx + 4;
    }
    await this.openPart(fields, what);
    this.buf = this.buf.subarray(bodyStart);
    this.state = 'body';
    return true;
  }

  private async openPart(fields: HeaderField[], what: string): Promise<void> {
    const headers = headerMap(fields, what);
    const info: PartHeaders = { index: this.parts.length, headers, rawHeaders: fields, isRoot: false };
    const ct = headers.get('content-type');
    if (ct !== undefined) {
      info.contentType = parseContentType(ct, `${what} Content-Type`).type;
      if (info.contentType.startsWith('multipart/')) throw malformed(`${what}: nested multipart is not allowed`);
    }
    const cte = headers.get('content-transfer-encoding');
    if (cte !== undefined) info.transferEncoding = cte.toLowerCase();
    const cid = headers.get('content-id');
    if (cid !== undefined) {
      info.contentId = parseContentId(cid, what);
      if (this.contentIds.has(info.contentId)) throw malformed(`${what}: duplicate Content-ID`);
      this.contentIds.add(info.contentId);
    }
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw malformed(`${what}: invalid Content-Length`);
      info.contentLength = Number(cl);
      if (info.contentLength > this.limits.maxTotalBytes) throw new OsciError('ERR_TOO_LARGE', `${what}: declared length exceeds the message size limit`);
    }
    info.isRoot = this.start === undefined ? info.index === 0 : info.contentId === this.start;
    const checkLength =
      info.contentLength !== undefined && (this.opts.contentLengthCheck === 'strict' || !info.isRoot);

    let target: PartTarget = null;
    if (this.opts.sink) {
      try {
        target = await this.opts.sink(info, this.parts);
      } catch (err) {
        throw toOsciError(err);
      }
    }
    const undigested = target !== null && !(target instanceof Writable);
    const sink: Writable | null = target === null || target instanceof Writable ? target : target.writable;
    const part: OpenPart = {
      info,
      sink,
      sinkError: undefined,
      chunks: [],
      size: 0,
      hash: undigested ? undefined : createHash('sha256'),
      extra: (this.opts.extraDigests ?? []).map((h): [string, Hash] => [h, createHash(h)]),
      checkLength,
    };
    sink?.on('error', (err) => {
      part.sinkError ??= err;
    });
    this.current = part;
  }

  private async stepBody(final: boolean): Promise<boolean> {
    const idx = this.buf.indexOf(this.delimiter);
    if (idx === -1) {
      // Only a possible beginning of the delimiter is held back, so the next chunk is rarely copied onto it.
      const keep = delimiterPrefixAtEnd(this.buf, this.delimiter);
      if (this.buf.length > keep) {
        const emit = this.buf.subarray(0, this.buf.length - keep);
        this.buf = this.buf.subarray(this.buf.length - keep);
        await this.emit(emit);
      }
      if (final) throw malformed('missing final boundary');
      return false;
    }
    const emit = this.buf.subarray(0, idx);
    this.buf = this.buf.subarray(idx + this.delimiter.length);
    await this.emit(emit);
    await this.closePart();
    this.state = 'afterDelimiter';
    return true;
  }

  private async emit(data: Buffer): Promise<void> {
    const part = this.current;
    if (part === undefined || data.length === 0) return;
    part.size += data.length;
    const info = part.info;
    if (part.checkLength && part.size > (info.contentLength as number)) {
      throw malformed(`MIME part ${info.index + 1}: longer than its Content-Length ${info.contentLength}`);
    }
    part.hash?.update(data);
    for (const [, h] of part.extra) h.update(data);
    if (part.sink) {
      if (part.sinkError !== undefined) throw toOsciError(part.sinkError);
      if (part.sink.destroyed) throw new OsciError('ERR_INTERNAL', 'part sink was closed early');
      if (!part.sink.write(data)) await waitDrain(part.sink);
    } else {
      if (part.size > this.limits.maxInMemoryBytes) {
        throw limit(`MIME part ${info.index + 1}: more than ${this.limits.maxInMemoryBytes} bytes to keep in memory`);
      }
      part.chunks.push(data);
    }
  }

  private async closePart(): Promise<void> {
    const part = this.current;
    if (part === undefined) return;
    const info = part.info;
    let lengthMismatch: boolean | undefined;
    if (info.contentLength !== undefined && info.contentLength !== part.size) {
      if (part.checkLength) {
        throw malformed(`MIME part ${info.index + 1}: ${part.size} bytes, Content-Length says ${info.contentLength}`);
      }
      lengthMismatch = true;
    }
    if (part.sink) {
      part.sink.end();
      try {
        await finished(part.sink);
      } catch (err) {
        throw toOsciError(err);
      }
    }
    this.current = undefined;
    const parsed: ParsedPart = {
      ...info,
      size: part.size,
      sha256: part.hash?.digest() ?? EMPTY,
      digests: new Map(part.extra.map(([name, h]) => [name, h.digest()])),
    };
    if (!part.sink) parsed.body = Buffer.concat(part.chunks, part.size);
    if (lengthMismatch) parsed.lengthMismatch = true;
    this.parts.push(parsed);
  }

  private finishMessage(): void {
    if (this.start !== undefined && !this.parts.some((p) => p.isRoot)) {
      throw malformed('no part has the Content-ID named by the start parameter');
    }
  }

  get rootIndex(): number {
    const i = this.parts.findIndex((p) => p.isRoot);
    return i === -1 ? 0 : i;
  }
}

/** Backpressure: waits for 'drain', failing if the sink errors or closes first. */
function waitDrain(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      w.off('drain', onDrain);
      w.off('error', onError);
      w.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: unknown): void => {
      cleanup();
      reject(toOsciError(err));
    };
    const onClose = (): void => {
      cleanup();
      reject(new OsciError('ERR_INTERNAL', 'part sink was closed early'));
    };
    w.on('drain', onDrain);
    w.on('error', onError);
    w.on('close', onClose);
  });
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new OsciError('ERR_INTERNAL', 'MIME input must be bytes, not text (do not set an encoding on the stream)');
}

function resultOf(parser: MultipartParser): ParsedMultipart {
  return {
    type: parser.type,
    ...(parser.rootType === undefined ? {} : { rootType: parser.rootType }),
    ...(parser.start === undefined ? {} : { start: parser.start }),
    boundary: parser.boundary,
    headers: parser.headers,
    parts: parser.parts,
    root: parser.rootIndex,
    totalBytes: parser.totalBytes,
  };
}

/** Parses a multipart/related message from a byte stream. Rejects only with OsciError. */
export async function parseMultipart(
  source: Readable | AsyncIterable<Buffer | Uint8Array>,
  opts: ParseMultipartOptions = {},
): Promise<ParsedMultipart> {
  const limits: MimeLimits = { ...DEFAULT_MIME_LIMITS, ...opts.limits };
  let parser: MultipartParser | undefined;
  const it = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let done = false;
  try {
    parser = new MultipartParser(limits, opts);
    for (;;) {
      let r: IteratorResult<unknown>;
      try {
        r = await it.next();
      } catch (err) {
        throw new OsciError('ERR_MIME_MALFORMED', 'message stream failed before its end', { cause: err });
      }
      if (r.done) break;
      await parser.push(toBuffer(r.value));
    }
    done = true;
    await parser.end();
    return resultOf(parser);
  } catch (err) {
    const e = toOsciError(err);
    parser?.abort(e);
    throw e;
  } finally {
    if (!done) {
      try {
        await it.return?.();
      } catch {
        // the source is being abandoned after an error; its own failure adds nothing
      }
    }
  }
}

/**
 * The parser as a Writable, for a producer that pushes its bytes (a decipher): each chunk is parsed as it is
 * written, with no stream in between. `result` settles with the parse (only with OsciError). After a failure the
 * Writable accepts and drops the rest, so that the producer still reaches its end (e.g. an authentication tag);
 * destroying it fails the parse. It finishes only once the parse has settled.
 */
export function multipartWritable(opts: ParseMultipartOptions = {}): { writable: Writable; result: Promise<ParsedMultipart> } {
  let settle!: { resolve: (m: ParsedMultipart) => void; reject: (e: OsciError) => void };
  const result = new Promise<ParsedMultipart>((resolve, reject) => (settle = { resolve, reject }));
  let settled = false;
  let parser: MultipartParser | undefined;
  const fail = (err: unknown): void => {
    if (settled) return;
    settled = true;
    const e = toOsciError(err);
    parser?.abort(e);
    settle.reject(e);
  };
  try {
    parser = new MultipartParser({ ...DEFAULT_MIME_LIMITS, ...opts.limits }, opts);
  } catch (err) {
    fail(err);
  }
  const writable = new Writable({
    write(chunk: unknown, _enc, cb) {
      if (settled || parser === undefined) return cb();
      let buf: Buffer;
      try {
        buf = toBuffer(chunk);
      } catch (err) {
        fail(err);
        return cb();
      }
      parser.push(buf).then(
        () => cb(),
        (err: unknown) => (fail(err), cb()),
      );
    },
    final(cb) {
      if (settled || parser === undefined) return cb();
      const p = parser;
      p.end().then(
        () => {
          settled = true;
          settle.resolve(resultOf(p));
          cb();
        },
        (err: unknown) => (fail(err), cb()),
      );
    },
    destroy(err, cb) {
      // Also called after a normal finish (autoDestroy): then the parse has settled and there is nothing to fail.
      if (!settled) fail(new OsciError('ERR_MIME_MALFORMED', 'message stream failed before its end', err ? { cause: err } : undefined));
      cb(err);
    },
  });
  return { writable, result };
}

/** Convenience: parse a message held in memory. */
export function parseMultipartBuffer(buf: Buffer, opts: ParseMultipartOptions = {}): Promise<ParsedMultipart> {
  return parseMultipart(
    (async function* () {
      yield buf;
    })(),
    opts,
  );
}
