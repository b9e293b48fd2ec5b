/**
 * HTTP surface of the intermediary: POST /osci (every OSCI request type), GET /directory/:id (cipher
 * certificates and endpoint of a postbox, SAFE/DVDV style), /healthz, /readyz, /metrics (loopback or admin token),
 * /admin (gateway/http/admin.ts).
 */
import { createHash, randomUUID, timingSafeEqual, type X509Certificate } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { Intermediary } from '../osci/intermediary.ts';
import type { Store } from '../store/index.ts';
import { createAdminRouter, mailboxState, type AdminDeps } from './admin.ts';

export interface AppDeps {
  intermediary: Intermediary;
  store: Store;
  metrics: Metrics;
  log: Logger;
  /** Base URL announced in the directory. */
  publicUrl: () => string;
  isShuttingDown: () => boolean;
  /** The intermediary's own certificates (newest cipher certificate first). */
  ownCertificates: () => { cipher: X509Certificate[]; signature: X509Certificate };
  /** Admin API at /admin (gateway/http/admin.ts); absent or without token: every /admin route answers 404. */
  admin?: AdminDeps;
}

const pem = (der: Buffer) => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(/.{1,64}/g)?.join('\n')}\n-----END CERTIFICATE-----\n`;
const certJson = (c: X509Certificate) => ({ fingerprint: createHash('sha256').update(c.raw).digest('hex'), notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString(), pem: pem(c.raw) });

function requestId(req: Request): string {
  const given = req.get('x-request-id');
  return given && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function mayReadMetrics(req: Request, token: string | undefined): boolean {
  if (LOOPBACK.has(req.socket.remoteAddress ?? '')) return true;
  const m = /^Bearer +([^\s]+) *$/.exec(req.get('authorization') ?? '');
  if (!token || !m) return false;
  const digest = (t: string) => createHash('sha256').update(t, 'utf8').digest();
  return timingSafeEqual(digest(m[1] as string), digest(token));
}

/** After an early answer, what the client still uploads is read and dropped for this long at most. */
const DISCARD_MS = 10_000;

/** Drops the rest of a request the decoder did not read, so the connection ends cleanly; bounded in time. */
function discardRest(req: Request, body: PassThrough): void {
  if (req.complete || req.destroyed) return;
  req.unpipe(body);
  body.destroy();
  const stop = setTimeout(() => req.destroy(), DISCARD_MS);
  stop.unref();
  req.once('close', () => clearTimeout(stop));
  req.resume();
}

export function createApp(d: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    const end = d.metrics.httpDuration.startTimer();
    res.on('finish', () => end({ route: req.route?.path ?? 'other', status: String(res.statusCode) }));
    next();
  });

  app.post('/osci', async (req: Request, res: Response) => {
    const rid = requestId(req);
    const log = d.log.child({ rid });
    res.setHeader('x-request-id', rid);
    // The decoder reads through a PassThrough: when it gives up early (a limit, 9904/9100) the connection stays up
    // and the client reads the fault instead of a reset; a client going away still ends the decoder's input.
    const body = new PassThrough();
    req.pipe(body);
    req.once('close', () => {
      if (!req.complete) body.destroy(new Error('the client closed the connection before the end of its request'));
    });
    try {
      // The body is streamed into the decoder: a 200 MB message never sits in memory (limits apply there).
      const out = await d.intermediary.handle(body, req.get('content-type'), log);
      res.status(out.status);
      for (const [k, v] of Object.entries(out.headers)) res.setHeader(k, v);
      res.setHeader('content-type', out.contentType);
      if (out.length !== undefined) res.setHeader('content-length', String(out.length));
      if (out.body) res.end(out.body);
      else await pipeline(out.stream, res);
    } catch (e) {
      log.error({ err: e }, 'response failed');
      if (!res.headersSent) res.status(500).end();
      else res.destroy();
    } finally {
      discardRest(req, body);
    }
  });

  // The intermediary itself: where to send, whom to encrypt for, which signature to expect on responses.
  app.get('/directory', (_req, res) => {
    const own = d.ownCertificates();
    res.json({ endpoint: `${d.publicUrl()}/osci`, cipherCertificates: own.cipher.map(certJson), signatureCertificate: certJson(own.signature) });
  });

  app.get('/directory/:id', async (req: Request, res: Response) => {
    const id = String(req.params.id);
    const p = await d.store.getParticipant(id);
    if (!p) {
      res.status(404).json({ error: 'ERR_NOT_FOUND', message: `no postbox ${id}` });
      return;
    }
    const now = new Date();
    const ciphers = await d.store.certificatesOf(id, 'cipher', now);
    // A disabled mailbox (admin API: every cipher certificate revoked) is not listed, as if unknown.
    if (ciphers.length === 0 && (await mailboxState(d.store, id, now)) === 'disabled') {
      res.status(404).json({ error: 'ERR_NOT_FOUND', message: `no postbox ${id}` });
      return;
    }
    if (req.query.format === 'pem' || (req.accepts(['application/json', 'application/x-pem-file']) === 'application/x-pem-file')) {
      res.type('application/x-pem-file').send(ciphers.map((c) => pem(c.der)).join(''));
      return;
    }
    res.json({
      id: p.id,
      name: p.name,
      endpoint: p.endpointUrl ?? `${d.publicUrl()}/osci`,
      intermediary: `${d.publicUrl()}/osci`,
      cipherCertificates: ciphers.map((c) => ({ fingerprint: c.fingerprint, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), pem: pem(c.der) })),
    });
  });

  app.use('/admin', createAdminRouter(d.admin));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    if (d.isShuttingDown()) {
      res.status(503).json({ status: 'shutting-down' });
      return;
    }
    try {
      await d.store.getParticipant('__readiness__');
      res.json({ status: 'ready', store: d.store.kind });
    } catch {
      res.status(503).json({ status: 'store-unavailable' });
    }
  });
  // The expiry gauges name every mailbox and certificate fingerprint (an enumeration the directory does not offer):
  // only a local scraper or a holder of the admin token reads them; everyone else gets the bare 404.
  app.get('/metrics', async (req, res, next) => {
    if (!mayReadMetrics(req, d.admin?.token)) return next();
    res.type(d.metrics.registry.contentType).send(await d.metrics.exposition());
  });

  // Everything else is a bare 404, and no error shows a stack or a path: Express's default handler prints both
  // (e.g. for an undecodable %-escape in /directory/:id).
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'ERR_NOT_FOUND', message: 'not found' });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const given = (err as { status?: unknown } | null)?.status;
    const status = typeof given === 'number' && given >= 400 && given < 500 ? given : 500;
    if (status === 500) d.log.error({ err }, 'HTTP request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(status).json(status === 500 ? { error: 'ERR_INTERNAL', message: 'internal error' } : { error: 'ERR_USAGE', message: 'bad request' });
  });
  return app;
}
