/**
 * An OSCI MIME message (osci-protocol.md §4, §11) parsed with the SOAP root part in memory and every other
 * part into a {@link SpillSink}: in memory within the message's budget, else streamed to a temporary file, so
 * memory stays bounded whatever the attachment sizes.
 */
import type { Readable, Writable } from 'node:stream';
import { OsciError } from '../errors.ts';
import { multipartWritable, parseMultipart, type MimeLimits, type ParseMultipartOptions, type ParsedMultipart, type ParsedPart, type PartHeaders } from '../mime.ts';
import type { Spill, SpillSink } from './spill.ts';

export interface SpilledPart {
  /** Content-ID without angle brackets (what `cid:` names). */
  contentId: string;
  contentType?: string;
  /** Raw body bytes as transmitted (what a ClientSignature `cid:` digest covers, §6). */
  size: number;
  sha256: Buffer;
  /** The body, in memory or in a temporary file: `body.open()` reads it, `body.drop()` frees it. */
  body: SpillSink;
}

export interface SpilledMultipart {
  /** Raw bytes of the SOAP root part. */
  root: Buffer;
  /** Every other part, in message order (except diverted ones). */
  parts: SpilledPart[];
  /** Parts whose body went to the sink `divert` returned instead (not digested: `sha256` is empty). */
  diverted: ParsedPart[];
  multipart: ParsedMultipart;
}

export interface SpillParseOptions {
  /** HTTP Content-Type; for `text/xml` (reference library) the entity headers are read from the body (§11). */
  contentType?: string;
  limits?: Partial<MimeLimits>;
  /** A non-root part's own sink (e.g. decryption while receiving), or undefined to spill it. */
  divert?: (part: PartHeaders, previous: readonly ParsedPart[]) => Writable | undefined | Promise<Writable | undefined>;
}

export async function parseSpilled(source: Readable | AsyncIterable<Buffer>, spill: Spill, opts: SpillParseOptions): Promise<SpilledMultipart> {
  const sinks = new Map<number, SpillSink>();
  return collect(await parseMultipart(source, spillingOptions(spill, opts, sinks)), sinks, opts);
}

/** {@link parseSpilled} as a Writable for a producer that pushes its bytes (see multipartWritable). */
export function spillingWritable(spill: Spill, opts: SpillParseOptions): { writable: Writable; result: Promise<SpilledMultipart> } {
  const sinks = new Map<number, SpillSink>();
  const { writable, result } = multipartWritable(spillingOptions(spill, opts, sinks));
  return { writable, result: result.then((m) => collect(m, sinks, opts)) };
}

function spillingOptions(spill: Spill, opts: SpillParseOptions, sinks: Map<number, SpillSink>): ParseMultipartOptions {
  return {
    ...(opts.contentType !== undefined ? { contentType: opts.contentType } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    // The reference library writes a wrong Content-Length on the wire SOAP part (§11); other parts must match.
    contentLengthCheck: 'except-root',
    sink: async (part, previous) => {
      if (part.isRoot) return null;
      const own = opts.divert ? await opts.divert(part, previous) : undefined;
      if (own) return { writable: own, digest: false };
      const sink = spill.sink('part');
      sinks.set(part.index, sink);
      return sink;
    },
  };
}

function collect(multipart: ParsedMultipart, sinks: ReadonlyMap<number, SpillSink>, opts: SpillParseOptions): SpilledMultipart {
  const rootPart = multipart.parts[multipart.root];
  if (!rootPart || rootPart.body === undefined) throw new OsciError('ERR_MIME_MALFORMED', 'the message has no SOAP root part');
  if (rootPart.contentType !== undefined && rootPart.contentType !== 'text/xml' && rootPart.contentType !== 'application/xml') {
    throw new OsciError('ERR_MIME_MALFORMED', `the SOAP root part is ${rootPart.contentType}, not text/xml`);
  }
  const parts: SpilledPart[] = [];
  const diverted: ParsedPart[] = [];
  for (const p of multipart.parts) {
    if (p.isRoot) continue;
    const body = sinks.get(p.index);
    if (body === undefined && opts.divert) {
      diverted.push(p);
      continue;
    }
    if (body === undefined) throw new OsciError('ERR_INTERNAL', 'a MIME part was not spilled');
    // An attachment is reachable only through `cid:` (§4): a part without Content-ID cannot be referenced or signed.
    if (p.contentId === undefined) throw new OsciError('ERR_MIME_MALFORMED', `MIME part ${p.index + 1} has no Content-ID`);
    parts.push({
      contentId: p.contentId,
      ...(p.contentType !== undefined ? { contentType: p.contentType } : {}),
      size: p.size,
      sha256: p.sha256,
      body,
    });
  }
  return { root: rootPart.body, parts, diverted, multipart };
}
