/**
 * HTTP intake for outgoing mail (the HTTP counterpart of the outgoing hot folder): a DMS posts a message for a
 * mailbox and later reads its result, including the intermediary's process card with the reception.
 *
 *   POST /outgoing/{mailbox}        multipart/form-data: field `order` = {"to","subject","text"?} (JSON), files as
 *                                   file parts (court-safe names); header `Idempotency-Key` names the message.
 *                                   202 queued; 200 when that key was accepted before (nothing is sent twice).
 *   GET  /outgoing/{mailbox}/{key}  the result: {"status":"queued"} or the result file (sent / received / failed).
 *
 * Every request needs `Authorization: Bearer <token>`. The upload is streamed into a staging folder inside the
 * mailbox's outgoing folder, fsynced, checked with the same rules as a dropped folder (readSendOrder), and renamed
 * into place: from then on it is exactly a dropped folder (hotfolder/import.ts), sent once and tracked.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import type { Logger } from 'pino';
import { OsciError, toOsciError } from '../../protocol/errors.ts';
import { courtSafeNameProblem, fsyncPath, fsyncPathAsync, SEND_LIMITS, writeDurable } from '../files.ts';
import { readSendOrder, resultPath, SEND_FILE } from '../hotfolder/import.ts';

export interface IntakeOptions {
  host: string;
  port: number;
  /** Bearer token (≥ 32 characters). */
  token: string;
  /** Mailbox id → its outgoing folder. */
  mailboxes: ReadonlyMap<string, string>;
  log: Logger;
}

export interface RunningIntake {
  url: string;
  close(): Promise<void>;
}

const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ORDER_FIELD = 'order';
const MAX_ORDER_BYTES = 64 * 1024;
/** Unread request bytes read after a refusal before the connection is cut. */
const DRAIN_LIMIT = 1024 * 1024;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Status of an accepted message: the result file once the agent wrote one, else queued. */
function statusOf(dir: string, key: string): unknown {
  const folder = join(dir, key);
  const result = resultPath(folder);
  if (existsSync(result)) return JSON.parse(readFileSync(result, 'utf8')) as unknown;
  return existsSync(folder) ? { status: 'queued' } : undefined;
}

/** Streams the multipart body into `staging`; returns the order fields and the file names in upload order. */
async function receive(req: IncomingMessage, staging: string): Promise<{ order: Record<string, unknown>; files: string[] }> {
  const ct = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data;/i.test(ct)) throw new HttpProblem(415, 'expected multipart/form-data');
  const bb = busboy({ headers: req.headers, limits: { files: SEND_LIMITS.maxFiles, fileSize: SEND_LIMITS.maxTotalBytes, fields: 1, fieldSize: MAX_ORDER_BYTES, parts: SEND_LIMITS.maxFiles + 1 } });
  let order: string | undefined;
  const files: string[] = [];
  const writes: Promise<void>[] = [];
  const open: Readable[] = [];
  let total = 0;
  let problem: HttpProblem | undefined;
  let stop: ((p: HttpProblem) => void) | undefined;
  // A refused name or field: the rest is drained (bounded by the limits); too much data: stop reading at once.
  const fail = (p: HttpProblem) => {
    problem ??= p;
    if (p.status === 413) stop?.(p);
  };
  bb.on('field', (name, value, info) => {
    if (name !== ORDER_FIELD || order !== undefined) return fail(new HttpProblem(400, `unexpected field "${name}" (only one "${ORDER_FIELD}")`));
    if (info.valueTruncated) return fail(new HttpProblem(413, `"${ORDER_FIELD}" exceeds ${MAX_ORDER_BYTES} bytes`));
    order = value;
  });
  bb.on('file', (_name, stream, info) => {
    const name = info.filename;
    const bad = name === SEND_FILE ? 'reserved name' : courtSafeNameProblem(name);
    if (problem || bad || files.some((f) => f.toLowerCase() === name.toLowerCase())) {
      stream.resume();
      if (!problem) fail(new HttpProblem(400, bad ? `file name "${name}" would be refused by courts: ${bad}` : `file "${name}" is sent twice`));
      return;
    }
    files.push(name);
    open.push(stream);
    stream.on('data', (c: Buffer) => {
      total += c.length;
      if (total > SEND_LIMITS.maxTotalBytes) fail(new HttpProblem(413, `files exceed ${SEND_LIMITS.maxTotalBytes} bytes`));
    });
    stream.on('limit', () => fail(new HttpProblem(413, `file "${name}" exceeds ${SEND_LIMITS.maxTotalBytes} bytes`)));
    const path = join(staging, name);
    writes.push(pipeline(stream, createWriteStream(path, { flags: 'wx' })).then(() => fsyncPathAsync(path)));
  });
  // busboy drops what exceeds a limit silently: each limit refuses the whole message.
  bb.on('filesLimit', () => fail(new HttpProblem(413, `more than ${SEND_LIMITS.maxFiles} files`)));
  bb.on('partsLimit', () => fail(new HttpProblem(413, `more than ${SEND_LIMITS.maxFiles} files`)));
  bb.on('fieldsLimit', () => fail(new HttpProblem(400, `only one field "${ORDER_FIELD}"`)));
  await new Promise<void>((resolve, reject) => {
    stop = (p) => {
      req.unpipe(bb);
      for (const f of open) f.destroy(p);
      reject(p);
    };
    bb.once('close', resolve);
    bb.once('error', (e: Error) => reject(new HttpProblem(400, `malformed multipart body: ${e.message}`)));
    req.once('aborted', () => reject(new HttpProblem(400, 'upload aborted')));
    req.pipe(bb);
  }).catch(async (e: unknown) => {
    await Promise.allSettled(writes);
    throw e;
  });
  await Promise.all(writes);
  if (problem) throw problem;
  if (order === undefined) throw new HttpProblem(400, `missing field "${ORDER_FIELD}"`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(order);
  } catch {
    throw new HttpProblem(400, `"${ORDER_FIELD}" is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpProblem(400, `"${ORDER_FIELD}" must be a JSON object`);
  return { order: parsed as Record<string, unknown>, files };
}

async function accept(req: IncomingMessage, res: ServerResponse, dir: string, mailbox: string, log: Logger): Promise<void> {
  const key = String(req.headers['idempotency-key'] ?? '');
  if (!KEY.test(key)) throw new HttpProblem(400, 'Idempotency-Key header needed: 1–100 letters, digits, ".", "_" or "-"');
  const known = statusOf(dir, key);
  if (known) {
    req.resume();
    return send(res, 200, { mailbox, id: key, ...(known as object) });
  }
  mkdirSync(dir, { recursive: true });
  const staging = join(dir, `.intake-${key}-${randomBytes(6).toString('hex')}`);
  mkdirSync(staging);
  try {
    const { order, files } = await receive(req, staging);
    // send.json last, with the files listed in upload order; then the same checks as a dropped folder.
    writeDurable(join(staging, SEND_FILE), JSON.stringify({ ...order, files }));
    try {
      readSendOrder(staging);
    } catch (e) {
      throw new HttpProblem(422, toOsciError(e).message);
    }
    fsyncPath(staging);
    if (existsSync(join(dir, key))) throw new HttpProblem(409, `a message with Idempotency-Key ${key} is being accepted concurrently`);
    renameSync(staging, join(dir, key));
    fsyncPath(dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  log.info({ mailbox, id: key }, 'outgoing message accepted over HTTP');
  send(res, 202, { mailbox, id: key, status: 'queued', result: `/outgoing/${encodeURIComponent(mailbox)}/${encodeURIComponent(key)}` });
}

export function startIntake(o: IntakeOptions): Promise<RunningIntake> {
  if (o.token.length < 32) throw new OsciError('ERR_USAGE', 'the intake token needs at least 32 characters');
  const want = digest(o.token);
  // Staging folders of uploads a crash interrupted: never renamed into place, never answered with 202.
  for (const dir of o.mailboxes.values()) {
    if (!existsSync(dir)) continue;
    for (const n of readdirSync(dir)) if (n.startsWith('.intake-')) rmSync(join(dir, n), { recursive: true, force: true });
  }
  const server: Server = createServer((req, res) => {
    void (async () => {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      // Compared as digests: constant time whatever the length.
      if (!auth || !timingSafeEqual(digest(auth), want)) throw new HttpProblem(401, 'missing or wrong bearer token');
      const m = /^\/outgoing\/([^/?]+)(?:\/([^/?]+))?$/.exec(req.url ?? '');
      const mailbox = m?.[1] ? decodeURIComponent(m[1]) : undefined;
      const dir = mailbox ? o.mailboxes.get(mailbox) : undefined;
      if (!m || !mailbox || !dir) throw new HttpProblem(404, 'no such outgoing mailbox');
      if (req.method === 'POST' && m[2] === undefined) return accept(req, res, dir, mailbox, o.log);
      if (req.method === 'GET' && m[2] !== undefined) {
        const key = decodeURIComponent(m[2]);
        const s = KEY.test(key) ? statusOf(dir, key) : undefined;
        if (!s) throw new HttpProblem(404, 'no such message');
        return send(res, 200, { mailbox, id: key, ...(s as object) });
      }
      throw new HttpProblem(405, 'POST /outgoing/{mailbox} or GET /outgoing/{mailbox}/{id}');
    })().catch((e: unknown) => {
      const p = e instanceof HttpProblem ? e : new HttpProblem(500, 'internal error');
      if (!(e instanceof HttpProblem)) o.log.error({ err: toOsciError(e).message }, 'intake request failed');
      if (res.headersSent) return void res.destroy();
      if (req.complete || req.readableEnded) return send(res, p.status, { error: p.message });
      // The client is still sending: a small rest is read so that it sees the answer; a large one is cut off.
      res.setHeader('connection', 'close');
      let rest = 0;
      req.on('data', (c: Buffer) => {
        rest += c.length;
        if (rest > DRAIN_LIMIT) req.destroy();
      });
      req.once('end', () => send(res, p.status, { error: p.message }));
      req.resume();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      const a = server.address() as { port: number };
      const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${a.port}`;
      o.log.info({ url }, 'outgoing intake listening');
      resolve({
        url,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
