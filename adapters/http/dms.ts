/**
 * HTTP DMS adapter: one multipart/form-data POST per message with the folder's content (message.json, the
 * XJustiz record, the process card, the inspection report, text and attachments).
 *
 * Headers: `Idempotency-Key: <MessageId>` (the DMS imports a key once; a re-delivery after a lost 2xx is
 * answered without a second import) and `X-Amtsbote-Signature: sha256=<hex>`, HMAC-SHA256 with the shared
 * secret over the exact body bytes. The body is streamed twice from the spool: once for the HMAC and the
 * length, once on the wire, so memory does not grow with the message.
 *
 * Answers: 2xx accepted; 408, 429, 5xx, timeouts and network errors are retried; any other status (4xx, and 3xx:
 * redirects are not followed) parks the job with the response.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { OsciError } from '../../protocol/errors.ts';
import { DeliveryFailure, type DeliveryAdapter, type SpooledMessage } from '../delivery.ts';

export interface HttpDmsOptions {
  name: string;
  url: string;
  /** HMAC-SHA256 key shared with the DMS. */
  secret: Buffer;
  /** Deadline for the whole exchange (default 30 s). */
  timeoutMs?: number;
}

export const SIGNATURE_HEADER = 'x-amtsbote-signature';
export const IDEMPOTENCY_HEADER = 'idempotency-key';
const EXCERPT = 2000;

interface Part {
  field: string;
  filename: string;
  type: string;
  path: string;
  size: number;
}

function checkUrl(raw: string, name: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch (e) {
    throw new OsciError('ERR_USAGE', `HTTP DMS ${name}: not a URL: ${raw}`, { cause: e });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OsciError('ERR_USAGE', `HTTP DMS ${name}: only http(s) URLs`);
  if (u.username || u.password) throw new OsciError('ERR_USAGE', `HTTP DMS ${name}: the URL must not carry credentials`);
  return u;
}

/** The form parts of a spooled message; names are the folder's safe names (ASCII, no quotes). */
export function formParts(msg: SpooledMessage): Part[] {
  const part = (field: string, filename: string, type: string): Part | undefined => {
    const path = join(msg.dir, filename);
    try {
      return { field, filename, type, path, size: statSync(path).size };
    } catch {
      return undefined;
    }
  };
  const m = msg.meta;
  return [
    part('message', 'message.json', 'application/json'),
    m.xjustiz ? part('xjustiz', m.xjustiz.file, 'application/xml') : undefined,
    part('processCard', 'process-card.xml', 'application/xml'),
    part('inspectionReport', 'inspection-report.json', 'application/json'),
    m.textFile ? part('text', m.textFile, 'text/plain; charset=utf-8') : undefined,
    ...m.attachments.filter((a) => a.name !== m.xjustiz?.file).map((a) => part('attachment', a.name, 'application/octet-stream')),
  ].filter((p): p is Part => p !== undefined);
}

async function* multipart(parts: Part[], boundary: string): AsyncGenerator<Buffer> {
  for (const p of parts) {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.field}"; filename="${p.filename}"\r\nContent-Type: ${p.type}\r\n\r\n`);
    let n = 0;
    for await (const c of createReadStream(p.path)) {
      n += (c as Buffer).length;
      yield c as Buffer;
    }
    // The spool is immutable after commit; a changed file would break the signature, so refuse it here.
    if (n !== p.size) throw new OsciError('ERR_INTERNAL', `${p.filename} changed while it was being sent`);
    yield Buffer.from('\r\n');
  }
  yield Buffer.from(`--${boundary}--\r\n`);
}

async function excerpt(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let n = 0;
  const reader = res.body.getReader();
  try {
    while (n < EXCERPT) {
      const r = await reader.read();
      if (r.done) break;
      chunks.push(Buffer.from(r.value));
      n += r.value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, EXCERPT).toString('utf8').replace(/\s+/g, ' ').trim();
}

export class HttpDmsAdapter implements DeliveryAdapter {
  readonly type = 'http';
  readonly name: string;
  private readonly url: URL;

  constructor(private readonly o: HttpDmsOptions) {
    this.name = o.name;
    this.url = checkUrl(o.url, o.name);
    if (o.secret.length < 16) throw new OsciError('ERR_USAGE', `HTTP DMS ${o.name}: the HMAC secret must have at least 16 bytes`);
  }

  location(msg: SpooledMessage): string {
    return `${this.url.origin}${this.url.pathname} (MessageId ${msg.meta.messageId})`;
  }

  async deliver(msg: SpooledMessage): Promise<string> {
    const parts = formParts(msg);
    const boundary = `amtsbote-${randomBytes(12).toString('hex')}`;
    const hmac = createHmac('sha256', this.o.secret);
    let length = 0;
    for await (const c of multipart(parts, boundary)) {
      hmac.update(c);
      length += c.length;
    }
    const timeoutMs = this.o.timeoutMs ?? 30_000;
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(length),
          [IDEMPOTENCY_HEADER]: msg.meta.messageId,
          [SIGNATURE_HEADER]: `sha256=${hmac.digest('hex')}`,
          'user-agent': 'amtsbote-agent',
        },
        body: Readable.toWeb(Readable.from(multipart(parts, boundary))) as unknown as RequestInit['body'],
        duplex: 'half',
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      } as RequestInit);
    } catch (e) {
      const name = (e as { name?: string }).name;
      const why = name === 'TimeoutError' || name === 'AbortError' ? `no answer within ${timeoutMs} ms` : ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
      throw new DeliveryFailure('retry', `POST ${this.url.href}: ${why}`, { cause: e });
    }
    let text: string;
    try {
      text = await excerpt(res);
    } catch (e) {
      throw new DeliveryFailure('retry', `POST ${this.url.href}: answer broken off (HTTP ${res.status})`, { cause: e });
    }
    const summary = `HTTP ${res.status}${text ? `: ${text}` : ''}`;
    if (res.status >= 200 && res.status < 300) return `accepted by ${this.url.href} (${summary})`;
    if (res.status >= 500 || res.status === 408 || res.status === 429) throw new DeliveryFailure('retry', `POST ${this.url.href}: ${summary}`);
    throw new DeliveryFailure('park', `POST ${this.url.href}: ${summary}`);
  }
}
