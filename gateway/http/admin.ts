/**
 * Admin API, mounted at /admin (used by `amtsbote mailbox`): list, show, add and disable mailboxes of a running
 * intermediary.
 *
 * - Off unless a token is configured (config `admin.tokenEnv` / `admin.tokenFile`): then every /admin route
 *   answers 404, as if it did not exist. Never open.
 * - Every request needs `Authorization: Bearer <token>`; the SHA-256 digests of the given and the configured
 *   token are compared in constant time. Missing or wrong: 401 with no further detail.
 * - Certificates given for a mailbox must chain to the server's trust anchors, be valid now, not revoked (CRLs)
 *   and carry the key usage of their role (crypto/x509.ts checkCertificate), else 400 with the error code.
 * - Disabling a mailbox revokes its cipher certificates in the store (the store has no "disabled" flag): the
 *   intermediary then refuses new deliveries to it (storeDelivery: 9707 via ERR_CERT_REVOKED), the directory no
 *   longer lists it, and its owner can still fetch waiting mail (owners authenticate by signature certificate).
 *   Registering a new cipher certificate makes it active again.
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import express, { type NextFunction, type Request, type Response } from 'express';
import { osciEndpointUrl } from '../../adapters/osci/post.ts';
import { certificateSha256Hex, loadCertificates } from '../../crypto/keys.ts';
import { certificateInfo, type CertificateCheck } from '../../crypto/x509.ts';
import { OsciError, toOsciError } from '../../protocol/errors.ts';
import { checkIdentityName } from '../certs-admin.ts';
import type { AdminConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import type { CertificateRecord, CertificateUsage, Participant, Store } from '../store/index.ts';

/** Shortest accepted admin token (e.g. `openssl rand -hex 32` gives 64 characters). */
export const MIN_TOKEN_LENGTH = 32;
/** Certificates per usage in one POST /admin/mailboxes. */
const MAX_CERTS_PER_USAGE = 16;
const MAX_NAME_LENGTH = 200;
const DAY_MS = 86_400_000;

export interface AdminDeps {
  store: Store;
  /** The admin token; undefined = admin API off (404). */
  token: string | undefined;
  /** Chain to the trust anchors, validity, CRLs and key usage (Trust.check). */
  checkCertificate: (cert: X509Certificate, usage: CertificateUsage) => CertificateCheck;
  log: Logger;
  now?: () => Date;
}

/**
 * The admin token of a configuration: from the environment variable or the file it names (trailing whitespace
 * removed). undefined when `admin` is not configured. A configured but missing, empty or short token is
 * ERR_USAGE: the server refuses to start rather than run with an API the operator thinks is protected.
 */
export function resolveAdminToken(cfg: AdminConfig | undefined, env: NodeJS.ProcessEnv = process.env, log?: Logger, what = 'admin'): string | undefined {
  if (!cfg) return undefined;
  let token: string | undefined;
  if (cfg.tokenEnv !== undefined) {
    token = env[cfg.tokenEnv]?.trim();
    if (!token) throw new OsciError('ERR_USAGE', `${what}.tokenEnv: environment variable ${cfg.tokenEnv} is not set`);
  } else if (cfg.tokenFile !== undefined) {
    try {
      token = readFileSync(cfg.tokenFile, 'utf8').trim();
      if ((statSync(cfg.tokenFile).mode & 0o077) !== 0) log?.warn({ file: cfg.tokenFile }, `${what} token file is readable by group or others; chmod 600 it`);
    } catch (e) {
      throw new OsciError('ERR_USAGE', `${what}.tokenFile: cannot read ${cfg.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e });
    }
  }
  if (!token || token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new OsciError('ERR_USAGE', `the ${what} token must have at least ${MIN_TOKEN_LENGTH} characters and no whitespace (e.g. openssl rand -hex 32)`);
  }
  return token;
}

export type MailboxState = 'active' | 'disabled' | 'unreachable';
export type CertificateState = 'valid' | 'expired' | 'not-yet-valid' | 'revoked';

const isRevoked = (c: CertificateRecord, now: Date) => c.revoked !== undefined && c.revoked <= now;

function stateOfCertificates(ciphers: CertificateRecord[], now: Date): MailboxState {
  if (ciphers.length > 0 && ciphers.every((c) => isRevoked(c, now))) return 'disabled';
  return ciphers.some((c) => !isRevoked(c, now) && c.notBefore <= now && now <= c.notAfter) ? 'active' : 'unreachable';
}

/**
 * 'disabled': it has cipher certificates and every one is revoked (POST /admin/mailboxes/:id/disable);
 * 'active': a cipher certificate is valid now; 'unreachable': neither (none registered, or all expired).
 */
export async function mailboxState(store: Store, id: string, now = new Date()): Promise<MailboxState> {
  return stateOfCertificates(await store.certificatesOf(id, 'cipher'), now);
}

export interface CertificateView {
  usage: CertificateUsage;
  fingerprint: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  added: string;
  revoked?: string;
  state: CertificateState;
  daysToExpiry: number;
}

export interface MailboxSummary {
  id: string;
  name?: string;
  endpointUrl?: string;
  created: string;
  state: MailboxState;
  /** Certificates valid now, per usage. */
  validCertificates: { signature: number; cipher: number };
}

export interface MailboxView extends Omit<MailboxSummary, 'validCertificates'> {
  certificates: CertificateView[];
}

function certificateState(c: CertificateRecord, now: Date): CertificateState {
  if (isRevoked(c, now)) return 'revoked';
  if (now < c.notBefore) return 'not-yet-valid';
  return now > c.notAfter ? 'expired' : 'valid';
}

function certificateView(c: CertificateRecord, now: Date): CertificateView {
  let subject = '';
  let issuer = '';
  let serialNumber = '';
  try {
    const info = certificateInfo(new X509Certificate(c.der));
    subject = info.subject;
    issuer = info.issuer;
    serialNumber = info.serialHex;
  } catch {
    // A stored certificate that no longer parses is still listed by fingerprint.
  }
  return {
    usage: c.usage,
    fingerprint: c.fingerprint,
    subject,
    issuer,
    serialNumber,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    added: c.added.toISOString(),
    ...(c.revoked ? { revoked: c.revoked.toISOString() } : {}),
    state: certificateState(c, now),
    daysToExpiry: Math.floor((c.notAfter.getTime() - now.getTime()) / DAY_MS),
  };
}

async function certificatesOf(store: Store, id: string) {
  return { signature: await store.certificatesOf(id, 'signature'), cipher: await store.certificatesOf(id, 'cipher') };
}

function base(p: Participant): Pick<MailboxSummary, 'id' | 'name' | 'endpointUrl' | 'created'> {
  return { id: p.id, ...(p.name !== undefined ? { name: p.name } : {}), ...(p.endpointUrl !== undefined ? { endpointUrl: p.endpointUrl } : {}), created: p.created.toISOString() };
}

async function mailboxView(store: Store, p: Participant, now: Date): Promise<MailboxView> {
  const certs = await certificatesOf(store, p.id);
  return { ...base(p), state: stateOfCertificates(certs.cipher, now), certificates: [...certs.signature, ...certs.cipher].map((c) => certificateView(c, now)) };
}

async function mailboxSummary(store: Store, p: Participant, now: Date): Promise<MailboxSummary> {
  const certs = await certificatesOf(store, p.id);
  const valid = (list: CertificateRecord[]) => list.filter((c) => certificateState(c, now) === 'valid').length;
  return { ...base(p), state: stateOfCertificates(certs.cipher, now), validCertificates: { signature: valid(certs.signature), cipher: valid(certs.cipher) } };
}

// ---------------------------------------------------------------------------------------------------------
// Input of POST /admin/mailboxes

export interface MailboxInput {
  id: string;
  name?: string;
  endpointUrl?: string;
  signatureCerts: X509Certificate[];
  cipherCerts: X509Certificate[];
}

const bad = (msg: string): never => {
  throw new OsciError('ERR_USAGE', msg);
};

function certificatesFrom(v: unknown, field: string): X509Certificate[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) bad(`${field} must be an array of PEM certificates`);
  const list = v as unknown[];
  if (list.length > MAX_CERTS_PER_USAGE) bad(`${field}: at most ${MAX_CERTS_PER_USAGE} certificates`);
  return list.map((pem, i) => {
    // Only PEM text: a string is never taken as a file name on the server.
    if (typeof pem !== 'string' || !pem.trimStart().startsWith('-----BEGIN CERTIFICATE-----')) bad(`${field}[${i}] must be a PEM certificate`);
    const certs = loadCertificates(Buffer.from(pem as string, 'utf8'));
    if (certs.length !== 1) bad(`${field}[${i}] must hold exactly one certificate, found ${certs.length}`);
    return certs[0] as X509Certificate;
  });
}

/** Validates the JSON body of POST /admin/mailboxes (unknown keys refused). */
export function parseMailboxInput(body: unknown): MailboxInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('expected a JSON object (content-type: application/json)');
  const b = body as Record<string, unknown>;
  const known = new Set(['id', 'name', 'endpointUrl', 'signatureCerts', 'cipherCerts']);
  for (const k of Object.keys(b)) if (!known.has(k)) bad(`unknown field "${k}"`);
  if (typeof b.id !== 'string') bad('id is required (a string)');
  const id = checkIdentityName(b.id as string);
  const out: MailboxInput = { id, signatureCerts: certificatesFrom(b.signatureCerts, 'signatureCerts'), cipherCerts: certificatesFrom(b.cipherCerts, 'cipherCerts') };
  if (b.name !== undefined) {
    if (typeof b.name !== 'string' || b.name.length === 0 || b.name.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(b.name)) {
      bad(`name must be 1–${MAX_NAME_LENGTH} characters without control characters`);
    }
    out.name = b.name as string;
  }
  if (b.endpointUrl !== undefined) {
    if (typeof b.endpointUrl !== 'string') bad('endpointUrl must be a string');
    out.endpointUrl = osciEndpointUrl(b.endpointUrl as string).href;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

function sendError(res: Response, log: Logger, err: unknown): void {
  const e = toOsciError(err);
  if (e.code === 'ERR_INTERNAL') log.error({ err }, 'admin API request failed');
  res.status(e.http).json({ error: e.code, message: e.code === 'ERR_INTERNAL' ? 'internal error' : e.message });
}

/** The /admin router; with `deps` undefined or without a token every request gets 404. */
export function createAdminRouter(deps: AdminDeps | undefined): express.Router {
  const router = express.Router();
  if (!deps?.token) {
    router.use((_req, res) => {
      res.status(404).json({ error: 'ERR_NOT_FOUND', message: 'not found' });
    });
    return router;
  }
  const d = deps;
  const expected = createHash('sha256').update(deps.token, 'utf8').digest();
  const now = () => d.now?.() ?? new Date();

  // Authentication before anything else, the body parser included.
  router.use((req: Request, res: Response, next: NextFunction) => {
    const m = /^Bearer +([^\s]+) *$/.exec(req.get('authorization') ?? '');
    const given = createHash('sha256').update(m?.[1] ?? '', 'utf8').digest();
    if (!m || !timingSafeEqual(given, expected)) {
      d.log.warn({ method: req.method, path: req.path, ip: req.ip }, 'admin API: authentication failed');
      res.status(401).set('www-authenticate', 'Bearer realm="amtsbote-admin"').json({ error: 'ERR_UNAUTHORISED', message: 'authentication required' });
      return;
    }
    res.set('cache-control', 'no-store');
    next();
  });
  router.use(express.json({ limit: '1mb' }));

  router.get('/mailboxes', async (_req, res) => {
    const at = now();
    const list = await d.store.listParticipants();
    const mailboxes: MailboxSummary[] = [];
    for (const p of list) mailboxes.push(await mailboxSummary(d.store, p, at));
    res.json({ mailboxes });
  });

  router.get('/mailboxes/:id', async (req, res) => {
    const p = await d.store.getParticipant(String(req.params.id));
    if (!p) throw new OsciError('ERR_NOT_FOUND', `no mailbox ${String(req.params.id)}`);
    res.json(await mailboxView(d.store, p, now()));
  });

  router.post('/mailboxes', async (req, res) => {
    const input = parseMailboxInput(req.body);
    const existing = await d.store.getParticipant(input.id);
    if (!existing && (input.signatureCerts.length === 0 || input.cipherCerts.length === 0)) bad('a new mailbox needs at least one of signatureCerts and cipherCerts each');
    // Everything is checked before anything is written.
    const seen = new Set<string>();
    const warnings: string[] = [];
    const certs: Array<{ usage: CertificateUsage; cert: X509Certificate; fingerprint: string }> = [];
    for (const [usage, list] of [['signature', input.signatureCerts], ['cipher', input.cipherCerts]] as const) {
      for (const [i, cert] of list.entries()) {
        const fingerprint = certificateSha256Hex(cert);
        if (seen.has(fingerprint)) bad(`${usage}Certs[${i}]: the same certificate is given twice`);
        seen.add(fingerprint);
        const first = d.checkCertificate(cert, usage).errors[0];
        if (first) throw new OsciError(first.code, `${usage}Certs[${i}]: ${first.message}`);
        const known = await d.store.findCertificate(fingerprint);
        if (known && (known.participantId !== input.id || known.usage !== usage)) bad(`${usage}Certs[${i}] is already registered as ${known.usage} certificate of ${known.participantId}`);
        if (known?.revoked) warnings.push(`${usage}Certs[${i}] (${fingerprint.slice(0, 16)}…) was revoked on ${known.revoked.toISOString()} and stays revoked`);
        certs.push({ usage, cert, fingerprint });
      }
    }
    await d.store.upsertParticipant({ id: input.id, ...(input.name !== undefined ? { name: input.name } : {}), ...(input.endpointUrl !== undefined ? { endpointUrl: input.endpointUrl } : {}) });
    for (const c of certs) {
      const info = certificateInfo(c.cert);
      await d.store.addCertificate({ participantId: input.id, usage: c.usage, der: c.cert.raw, notBefore: info.notBefore, notAfter: info.notAfter });
    }
    const p = await d.store.getParticipant(input.id);
    if (!p) throw new OsciError('ERR_INTERNAL', 'mailbox vanished after upsert');
    d.log.info({ mailbox: input.id, created: !existing, certificates: certs.map((c) => `${c.usage}:${c.fingerprint.slice(0, 16)}`) }, 'admin API: mailbox registered');
    res.status(existing ? 200 : 201).json({ ...(await mailboxView(d.store, p, now())), newMailbox: !existing, warnings });
  });

  router.post('/mailboxes/:id/disable', async (req, res) => {
    const id = String(req.params.id);
    if (!(await d.store.getParticipant(id))) throw new OsciError('ERR_NOT_FOUND', `no mailbox ${id}`);
    const at = now();
    const revoked: string[] = [];
    for (const c of await d.store.certificatesOf(id, 'cipher')) {
      if (isRevoked(c, at)) continue;
      await d.store.revokeCertificate(c.fingerprint, at);
      revoked.push(c.fingerprint);
    }
    d.log.info({ mailbox: id, revoked: revoked.length }, 'admin API: mailbox disabled (cipher certificates revoked)');
    res.json({ id, state: await mailboxState(d.store, id, at), revokedCipherCertificates: revoked });
  });

  router.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'ERR_NOT_FOUND', message: 'no such admin route' });
  });
  // Express 5 passes rejected async handlers here; body-parser errors carry `type`.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const type = (err as { type?: unknown } | null)?.type;
    if (type === 'entity.parse.failed') return sendError(res, d.log, new OsciError('ERR_USAGE', 'the body is not valid JSON'));
    if (type === 'entity.too.large') return sendError(res, d.log, new OsciError('ERR_TOO_LARGE', 'the body is larger than 1 MB'));
    if (typeof type === 'string') return sendError(res, d.log, new OsciError('ERR_USAGE', 'unreadable request body'));
    // Router errors with a client status (e.g. an undecodable %-escape in :id) are the client's, not internal.
    const status = (err as { status?: unknown } | null)?.status;
    if (!(err instanceof OsciError) && typeof status === 'number' && status >= 400 && status < 500) return sendError(res, d.log, new OsciError('ERR_USAGE', 'bad request'));
    sendError(res, d.log, err);
  });
  return router;
}
