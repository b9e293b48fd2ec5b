/**
 * One OSCI HTTP exchange, transport only (osci-protocol.md §11): POSTs an encoded message and hands back the
 * answer's body as a stream, bounded in time and size. Used by the client role (adapters/osci/client.ts) and by
 * the intermediary when it is the client of a passive recipient (gateway/osci/passive.ts).
 * Redirects are never followed: an OSCI peer is called only at the address the caller chose.
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Transform, type Readable } from 'node:stream';
import type { EncodedMessage } from '../../protocol/envelope/index.ts';
import { OsciError } from '../../protocol/errors.ts';

export const DEFAULT_OSCI_TIMEOUT_MS = 60_000;

export interface PostOsciOptions {
  /** Deadline for the whole exchange, sending and reading the answer included. Default 60 s. */
  timeoutMs?: number;
  /**
   * Instead of a deadline: the exchange fails only when no byte moves (sent, or received) for this long. For
   * clients over slow links: a 200 MB message must not fail for taking longer than any fixed deadline.
   */
  idleTimeoutMs?: number;
  /** Largest answer accepted (bytes); a longer one fails with ERR_TOO_LARGE. Default: unbounded. */
  maxResponseBytes?: number;
  /** Upload progress (bytes sent, total when known). */
  onUploadProgress?: (sent: number, total: number | undefined) => void;
}

export interface OsciHttpAnswer {
  status: number;
  /** HTTP Content-Type, if any: the reference library's PassiveRecipient sends none (its MIME headers are in the body). */
  contentType: string | undefined;
  /** The answer's body; fails with ERR_REMOTE when the peer or the deadline breaks it off. */
  body: Readable;
}

/** Only http(s) URLs are OSCI endpoints. */
export function osciEndpointUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (e) {
    throw new OsciError('ERR_USAGE', `not a URL: ${endpoint}`, { cause: e });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OsciError('ERR_USAGE', `not an http(s) URL: ${url.protocol}`);
  if (url.username || url.password) throw new OsciError('ERR_USAGE', 'an OSCI endpoint URL must not carry credentials');
  return url;
}

function remote(endpoint: string, what: string, cause: unknown, timeout: string): OsciError {
  const name = (cause as { name?: string } | undefined)?.name;
  const reason = name === 'TimeoutError' || name === 'AbortError' ? timeout : (cause as Error | undefined)?.message ?? String(cause);
  return new OsciError('ERR_REMOTE', `${what} ${endpoint}: ${reason}`, { cause });
}

/** Counts the answer's bytes, refuses more than `max` and turns stream failures into ERR_REMOTE. */
function bounded(src: Readable, max: number | undefined, onError: (e: unknown) => OsciError, touch: () => void): Readable {
  let n = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      touch();
      n += chunk.length;
      if (max !== undefined && n > max) return cb(new OsciError('ERR_TOO_LARGE', `the answer exceeds ${max} bytes`));
      cb(null, chunk);
    },
  });
  src.on('error', (e) => out.destroy(e instanceof OsciError ? e : onError(e)));
  // Whoever stops reading early releases the connection.
  out.on('close', () => {
    if (!src.destroyed) src.destroy();
  });
  return src.pipe(out);
}

/**
 * Connections are reused, but an idle one is closed after 4 s, before the 5 s keep-alive timeout common on servers
 * (Node's own): a POST must not be sent on a connection the server is closing at that moment.
 */
const AGENTS = {
  'http:': new HttpAgent({ keepAlive: true, timeout: 4000 }),
  'https:': new HttpsAgent({ keepAlive: true, timeout: 4000 }),
};

/** Answers that carry no body by definition (RFC 9110 §15.3.5, §15.3.6, §15.4.5). */
const BODYLESS = new Set([204, 205, 304]);

export async function postOsci(endpoint: string, message: EncodedMessage, opts: PostOsciOptions = {}): Promise<OsciHttpAnswer> {
  const url = osciEndpointUrl(endpoint);
  const idle = opts.idleTimeoutMs !== undefined;
  const limitMs = opts.idleTimeoutMs ?? opts.timeoutMs ?? DEFAULT_OSCI_TIMEOUT_MS;
  const timeout = idle ? `nothing moved for ${limitMs} ms` : `no complete answer within ${limitMs} ms`;
  const body: Readable = message.stream;
  const headers: Record<string, string> = { 'content-type': message.contentType };
  if (message.length !== undefined) headers['content-length'] = String(message.length);
  return new Promise<OsciHttpAnswer>((resolve, reject) => {
    let req: ClientRequest | undefined;
    let answer: Readable | undefined;
    /** Before the answer's headers: the exchange fails as a whole. */
    const fail = (e: unknown) => {
      clearTimeout(timer);
      req?.destroy();
      body.destroy();
      reject(e instanceof OsciError ? e : remote(url.href, 'cannot reach', e, timeout));
    };
    const timer = setTimeout(() => {
      const e = new DOMException(timeout, 'TimeoutError');
      if (answer) answer.destroy(remote(url.href, 'answer broken off by', e, timeout));
      else fail(e);
    }, limitMs);
    const touch = idle ? () => void timer.refresh() : () => undefined;
    try {
      // node:http rather than fetch(): no web-stream adapters per chunk on a 200 MB upload or answer (BENCHMARKS.md).
      req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'POST', headers, agent: AGENTS[url.protocol as 'http:' | 'https:'] });
    } catch (e) {
      return fail(e);
    }
    const sending = req;
    sending.on('error', (e) => {
      if (answer) body.destroy(); // the answer stream reports a broken connection itself
      else fail(e);
    });
    body.on('error', (e) => (answer ? undefined : fail(e)));
    sending.on('response', (res) => {
      touch();
      const status = res.statusCode ?? 0;
      // Redirects are never followed (see the module comment).
      if (status >= 300 && status < 400 && status !== 304) return (res.resume(), fail(new OsciError('ERR_REMOTE', `${url.href} answered with a redirect (HTTP ${status}); not followed`)));
      if (BODYLESS.has(status)) return (res.resume(), fail(new OsciError('ERR_REMOTE', `empty HTTP ${status} answer from ${url.href}`)));
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (opts.maxResponseBytes !== undefined && Number.isFinite(declared) && declared > opts.maxResponseBytes) {
        res.destroy();
        return fail(new OsciError('ERR_TOO_LARGE', `the answer of ${url.href} announces ${declared} bytes, more than ${opts.maxResponseBytes}`));
      }
      answer = bounded(res, opts.maxResponseBytes, (e) => remote(url.href, 'answer broken off by', e, timeout), touch);
      answer.once('close', () => {
        clearTimeout(timer);
        // An answer that came (or was dropped) before the whole request was sent ends the exchange: stop sending.
        if (!sending.writableFinished) {
          sending.destroy();
          body.destroy();
        }
      });
      resolve({ status, contentType: res.headers['content-type'], body: answer });
    });
    const progress = opts.onUploadProgress;
    if (message.body) {
      // Built in memory (no attachments): one write, no stream.
      progress?.(message.body.length, message.length);
      sending.end(message.body);
      return;
    }
    let sent = 0;
    if (progress || idle) {
      body.on('data', (c: Buffer) => {
        touch();
        sent += c.length;
        progress?.(sent, message.length);
      });
    }
    body.pipe(sending);
  });
}
