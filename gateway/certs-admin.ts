/**
 * Certificate lifecycle for administrators, behind `amtsbote certs list|check|rotate|csr|install|import|revoke`
 * (gateway/cli/certs.ts). It works on two places:
 *
 * - identity folders under a root (`certs-dev`): `<root>/<id>/{signature,cipher}.{key,cert}.pem`, the dev CA in
 *   `<root>/ca/`. `intermediary` is the server's own identity. A rotation keeps the previous pair as
 *   `<usage>-<serial>.{key,cert}.pem` and records the end of its overlap in `overlap.json` (gateway/identity.ts),
 *   so the intermediary keeps decrypting with the old cipher key while senders still use the old certificate.
 * - the store's mailbox certificates (osci-protocol.md §13: several per usage may overlap): a rotated
 *   certificate is registered at once (GET /directory/{id} lists it first), the previous one is retired at the
 *   end of the overlap (stored as its revocation time, so `certificatesOf(id, usage, now)` drops it then).
 *
 * Nothing here trusts a certificate by itself: chains are checked against the dev CA and configured anchors,
 * revocation against the dev CA CRL and configured CRLs (crypto/x509.ts checkCertificate).
 */
import { generateKeyPair, type KeyObject, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createCertificationRequest, issueDevCertificate, keyPem, parseDistinguishedName, revokeDevCertificate, writeAtomic, type NameAttribute } from '../crypto/devpki.ts';
import { CryptoError } from '../crypto/errors.ts';
import { certificateSha256Hex, keyMatchesCertificate, loadCertificate, loadPkcs12, loadPrivateKey } from '../crypto/keys.ts';
import { certificateInfo, checkCertificate, type CertificateCheck, type CertUsage, type KeyUsageName } from '../crypto/x509.ts';
import { OsciError } from '../protocol/errors.ts';
import { OVERLAP_FILE, readRetirements, type Retirement } from './identity.ts';
import { openStore, type CertificateRecord, type Store } from './store/index.ts';

export type Usage = CertUsage;
export const USAGES: readonly Usage[] = Object.freeze(['signature', 'cipher']);

const DAY = 24 * 3600_000;
/** Default overlap of a rotation: long enough for senders to pick up the new certificate from the directory. */
export const DEFAULT_OVERLAP_DAYS = 30;
export const DEFAULT_WARN_DAYS = 30;

/** keyUsage a new certificate of each usage must have (osci-protocol.md §10; same rule as crypto/x509.ts). */
const REQUESTED_KEY_USAGE: Record<Usage, readonly KeyUsageName[]> = {
  signature: ['digitalSignature', 'nonRepudiation'],
  cipher: ['keyEncipherment', 'dataEncipherment'],
};

export interface AdminContext {
  /** Root of the identity folders (`certs-dev`): one folder per identity; `ca/` holds the dev CA. */
  dir: string;
  /** Identity folders outside the root, by identity, e.g. `{ intermediary: cfg.identityDir }`. */
  extraIdentityDirs?: Record<string, string>;
  /** The store with the mailboxes, when reachable. */
  store?: Store;
  /** Configured trust anchors; the dev CA (`<dir>/ca/ca.cert.pem`) is added when present. */
  anchors?: X509Certificate[];
  /** Configured CRL files; the dev CA CRL (`<dir>/ca/crl.pem`) is added when present. */
  crlFiles?: string[];
  now?: Date;
}

function usage(msg: string): never {
  throw new OsciError('ERR_USAGE', msg);
}

function nowOf(ctx: AdminContext): Date {
  return ctx.now ?? new Date();
}

export function checkIdentityName(id: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(id) || id.includes('..') || id === 'ca') {
    usage(`invalid identity ${JSON.stringify(id)} (letters, digits, '.', '_', '-'; not 'ca')`);
  }
  return id;
}

export function checkUsage(u: string): Usage {
  if (u !== 'signature' && u !== 'cipher') usage(`--usage must be signature or cipher, got ${JSON.stringify(u)}`);
  return u;
}

function caDir(ctx: AdminContext): string {
  return join(ctx.dir, 'ca');
}

function hasDevCa(ctx: AdminContext): boolean {
  return existsSync(join(caDir(ctx), 'ca.key.pem')) && existsSync(join(caDir(ctx), 'ca.cert.pem'));
}

function devCaCert(ctx: AdminContext): X509Certificate | undefined {
  const f = join(caDir(ctx), 'ca.cert.pem');
  return existsSync(f) ? loadCertificate(f) : undefined;
}

export function identityDir(ctx: AdminContext, id: string): string {
  return ctx.extraIdentityDirs?.[id] ?? join(ctx.dir, checkIdentityName(id));
}

function anchorsOf(ctx: AdminContext): X509Certificate[] {
  const ca = devCaCert(ctx);
  return [...(ca ? [ca] : []), ...(ctx.anchors ?? [])];
}

function crlsOf(ctx: AdminContext): Buffer[] {
  const out: Buffer[] = [];
  for (const f of [join(caDir(ctx), 'crl.pem'), ...(ctx.crlFiles ?? [])]) {
    try {
      out.push(readFileSync(f));
    } catch {
      // A missing CRL gives no revocation status; it does not block.
    }
  }
  return out;
}

function checkOf(ctx: AdminContext, cert: X509Certificate, u: Usage, intermediates: X509Certificate[] = []): CertificateCheck {
  return checkCertificate(cert, { usage: u, anchors: anchorsOf(ctx), intermediates, crls: crlsOf(ctx), at: nowOf(ctx) });
}

// ---------------------------------------------------------------------------------------------------------
// Files

function pemOf(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

function writeRetirements(dir: string, list: Retirement[]): void {
  writeAtomic(join(dir, OVERLAP_FILE), `${JSON.stringify({ retire: list }, null, 2)}\n`, 0o644);
}

/** Identity folders: every folder under the root (not `ca`) holding a certificate, plus the extra ones. */
function identityFolders(ctx: AdminContext): Array<{ id: string; dir: string }> {
  const out = new Map<string, string>();
  if (existsSync(ctx.dir)) {
    for (const name of readdirSync(ctx.dir).sort()) {
      if (name === 'ca' || !/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(name)) continue;
      const d = join(ctx.dir, name);
      try {
        if (!statSync(d).isDirectory()) continue;
      } catch {
        continue;
      }
      out.set(name, d);
    }
  }
  for (const [id, d] of Object.entries(ctx.extraIdentityDirs ?? {})) out.set(id, d);
  return [...out.entries()].map(([id, dir]) => ({ id, dir })).filter((f) => existsSync(f.dir));
}

const CERT_FILE = /^(signature|cipher)(?:-([0-9A-Fa-f]+))?\.cert\.pem$/;

// ---------------------------------------------------------------------------------------------------------
// Listing

/**
 * - `current`: in use now (the folder's `<usage>.cert.pem`, or the newest valid one the directory announces)
 * - `overlap`: a previous certificate still valid and in use until its overlap ends
 * - `future`: not valid yet; `retired`: its overlap ended; `expired`; `revoked` (CRL or store)
 */
export type CertState = 'current' | 'overlap' | 'future' | 'retired' | 'expired' | 'revoked';

export interface CertEntry {
  identity: string;
  usage: Usage;
  /** `current` for the pair in use, `previous` for one kept for the overlap or left in the store. */
  role: 'current' | 'previous';
  state: CertState;
  subject: string;
  issuer: string;
  serial: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** End of the overlap of a rotated-out certificate. */
  retireAt?: Date;
  revokedAt?: Date;
  /** Chains to the dev CA or a configured anchor. */
  chainOk: boolean;
  keyUsageOk: boolean;
  /** Problems found by the certificate check (chain, key usage, key size). */
  problems: string[];
  /** The certificate file in the identity folder, if there is one. */
  file?: string;
  /** Registered for the mailbox in the store. */
  inStore: boolean;
  certificate: X509Certificate;
}

export interface CertList {
  entries: CertEntry[];
  /** Whether the store was consulted. */
  store: boolean;
  /** Things that are not certificates in use but worth knowing (pending CSR keys, unreadable files, PKCS#12). */
  notes: string[];
}

function stateOf(e: Omit<CertEntry, 'state'>, revokedByCrl: boolean, now: Date): CertState {
  const t = now.getTime();
  const retirement = e.retireAt !== undefined && e.revokedAt !== undefined && e.revokedAt.getTime() === e.retireAt.getTime();
  if (revokedByCrl || (e.revokedAt && e.revokedAt.getTime() <= t && !retirement)) return 'revoked';
  if (t > e.notAfter.getTime()) return 'expired';
  if (e.retireAt && e.retireAt.getTime() <= t) return 'retired';
  if (t < e.notBefore.getTime()) return 'future';
  return e.role === 'current' ? 'current' : 'overlap';
}

function validAt(r: CertificateRecord, t: number): boolean {
  return r.notBefore.getTime() <= t && t <= r.notAfter.getTime() && !(r.revoked && r.revoked.getTime() <= t);
}

/** Every certificate of the identity folders and the store, with its state. */
export async function listCertificates(ctx: AdminContext): Promise<CertList> {
  const now = nowOf(ctx);
  const notes: string[] = [];
  type Draft = Omit<CertEntry, 'state' | 'chainOk' | 'keyUsageOk' | 'problems' | 'subject' | 'issuer' | 'serial' | 'notBefore' | 'notAfter'>;
  const drafts = new Map<string, Draft>(); // identity/usage/fingerprint
  const ledgers = new Map<string, Retirement[]>();
  const folders = identityFolders(ctx);

  for (const { id, dir } of folders) {
    const retirements = readRetirements(dir);
    ledgers.set(id, retirements);
    for (const f of readdirSync(dir).sort()) {
      if (/^(signature|cipher)\.p12$/.test(f)) notes.push(`${join(dir, f)}: PKCS#12 file not inspected (certs list reads PEM pairs)`);
      if (/^(signature|cipher)\.pending\.key\.pem$/.test(f)) notes.push(`${join(dir, f)}: key awaiting its certificate (certs install)`);
      const m = CERT_FILE.exec(f);
      if (!m) continue;
      const u = m[1] as Usage;
      let cert: X509Certificate;
      try {
        cert = loadCertificate(join(dir, f));
      } catch (e) {
        notes.push(`${join(dir, f)}: unreadable (${(e as Error).message})`);
        continue;
      }
      const fingerprint = certificateSha256Hex(cert);
      const r = retirements.find((x) => x.fingerprint === fingerprint && x.usage === u);
      const d: Draft = { identity: id, usage: u, role: m[2] ? 'previous' : 'current', fingerprint, file: join(dir, f), inStore: false, certificate: cert };
      if (r) d.retireAt = new Date(r.until);
      drafts.set(`${id}/${u}/${fingerprint}`, d);
    }
  }

  if (ctx.store) {
    for (const p of await ctx.store.listParticipants()) {
      const retirements = ledgers.get(p.id) ?? [];
      for (const u of USAGES) {
        const records = await ctx.store.certificatesOf(p.id, u);
        const t = now.getTime();
        // The directory's choice: newest valid first; with none valid, the newest counts as current (and fails check).
        const current = records.find((r) => validAt(r, t)) ?? records[0];
        for (const r of records) {
          const key = `${p.id}/${u}/${r.fingerprint}`;
          let d = drafts.get(key);
          if (!d) {
            let cert: X509Certificate;
            try {
              cert = new X509Certificate(r.der);
            } catch {
              notes.push(`store: unreadable ${u} certificate ${r.fingerprint} of ${p.id}`);
              continue;
            }
            d = { identity: p.id, usage: u, role: r === current ? 'current' : 'previous', fingerprint: r.fingerprint, inStore: true, certificate: cert };
            const ret = retirements.find((x) => x.fingerprint === r.fingerprint && x.usage === u);
            if (ret) d.retireAt = new Date(ret.until);
            drafts.set(key, d);
          }
          d.inStore = true;
          if (r === current) d.role = 'current';
          if (r.revoked) d.revokedAt = r.revoked;
        }
      }
    }
  }

  const entries: CertEntry[] = [];
  for (const d of drafts.values()) {
    const info = certificateInfo(d.certificate);
    const c = checkOf(ctx, d.certificate, d.usage);
    const problems = c.errors.filter((x) => x.code !== 'ERR_CERT_REVOKED' && x.code !== 'ERR_CERT_EXPIRED' && x.code !== 'ERR_CERT_NOT_YET_VALID').map((x) => x.message);
    const base = { ...d, subject: info.subject, issuer: info.issuer, serial: info.serialHex, notBefore: info.notBefore, notAfter: info.notAfter, chainOk: c.chainOk, keyUsageOk: c.keyUsageOk, problems };
    entries.push({ ...base, state: stateOf(base, c.revoked === true, now) });
  }
  const order = (e: CertEntry) => `${e.identity}\u0000${e.usage}\u0000${e.role === 'current' ? 0 : 1}\u0000${String(9e15 - e.notBefore.getTime()).padStart(16, '0')}`;
  entries.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  return { entries, store: ctx.store !== undefined, notes };
}

export function entryJson(e: CertEntry): Record<string, unknown> {
  return {
    identity: e.identity,
    usage: e.usage,
    role: e.role,
    state: e.state,
    subject: e.subject,
    issuer: e.issuer,
    serial: e.serial,
    fingerprint: e.fingerprint,
    notBefore: e.notBefore.toISOString(),
    notAfter: e.notAfter.toISOString(),
    ...(e.retireAt ? { retireAt: e.retireAt.toISOString() } : {}),
    ...(e.revokedAt ? { revokedAt: e.revokedAt.toISOString() } : {}),
    chainOk: e.chainOk,
    keyUsageOk: e.keyUsageOk,
    problems: e.problems,
    ...(e.file ? { file: e.file } : {}),
    inStore: e.inStore,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Checking

export type FindingKind = 'expires-soon' | 'expired' | 'not-yet-valid' | 'revoked' | 'untrusted' | 'key-usage' | 'not-registered';

export interface Finding {
  kind: FindingKind;
  identity: string;
  usage: Usage;
  serial: string;
  fingerprint: string;
  message: string;
}

export interface CheckReport {
  ok: boolean;
  warnDays: number;
  findings: Finding[];
  /** The certificates in use that were checked. */
  checked: CertEntry[];
  notes: string[];
}

/**
 * Checks every certificate in use (current ones and those within their overlap): a finding for each that
 * expires within `warnDays` (current ones: previous ones are on their way out), is expired, not yet valid,
 * revoked, does not chain to a trust anchor or lacks the key usage; and for a mailbox whose folder's current
 * certificate is not registered in the store (senders would still encrypt to the old one).
 */
export async function checkCertificates(ctx: AdminContext, opts: { warnDays?: number } = {}): Promise<CheckReport> {
  const warnDays = opts.warnDays ?? DEFAULT_WARN_DAYS;
  if (!Number.isFinite(warnDays) || warnDays < 0) usage('--warn-days must be a number of days ≥ 0');
  const now = nowOf(ctx);
  const list = await listCertificates(ctx);
  const participants = ctx.store ? new Set((await ctx.store.listParticipants()).map((p) => p.id)) : new Set<string>();
  const findings: Finding[] = [];
  const checked = list.entries.filter((e) => e.role === 'current' || e.state === 'overlap');
  for (const e of checked) {
    const add = (kind: FindingKind, message: string) =>
      findings.push({ kind, identity: e.identity, usage: e.usage, serial: e.serial, fingerprint: e.fingerprint, message: `${e.identity} ${e.usage} (serial ${e.serial}): ${message}` });
    if (e.state === 'revoked') add('revoked', `revoked${e.revokedAt ? ` on ${e.revokedAt.toISOString()}` : ''}`);
    if (e.state === 'expired') add('expired', `expired on ${e.notAfter.toISOString()}`);
    if (e.state === 'future') add('not-yet-valid', `valid only from ${e.notBefore.toISOString()}`);
    if (!e.chainOk) add('untrusted', `does not chain to a trust anchor (${e.problems[0] ?? 'no path'})`);
    else if (!e.keyUsageOk) add('key-usage', e.problems[0] ?? 'key usage does not allow this usage');
    const left = e.notAfter.getTime() - now.getTime();
    if (e.role === 'current' && e.state !== 'expired' && left < warnDays * DAY) {
      add('expires-soon', `expires on ${e.notAfter.toISOString()} (in ${Math.floor(left / DAY)} days, warning at ${warnDays})`);
    }
    if (e.role === 'current' && e.file && !e.inStore && participants.has(e.identity)) {
      add('not-registered', `the folder's current certificate is not registered for mailbox ${e.identity} in the store (certs import or certs rotate with --db)`);
    }
  }
  const notes = [...list.notes];
  for (const e of list.entries) {
    if (e.role === 'previous' && e.file && (e.state === 'retired' || e.state === 'expired')) notes.push(`${e.file}: ${e.state}, can be deleted`);
  }
  return { ok: findings.length === 0, warnDays, findings, checked, notes };
}

// ---------------------------------------------------------------------------------------------------------
// Installing a new pair (rotation, PKCS#12, CSR + install)

export interface CertSummary {
  subject: string;
  serial: string;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
}

export function summarize(cert: X509Certificate): CertSummary {
  const i = certificateInfo(cert);
  return { subject: i.subject, serial: i.serialHex, fingerprint: certificateSha256Hex(cert), notBefore: i.notBefore.toISOString(), notAfter: i.notAfter.toISOString() };
}

export interface RotationResult {
  identity: string;
  usage: Usage;
  dir: string;
  current: CertSummary & { keyFile: string; certFile: string };
  /** The pair that was replaced, kept for the overlap. */
  previous?: CertSummary & { keyFile?: string; certFile: string; retireAt: string };
  /** registered: the new certificate is in the store; not-a-mailbox: the identity is no mailbox there; no-store: none reachable. */
  store: 'registered' | 'not-a-mailbox' | 'no-store';
  warnings: string[];
}

export interface InstallOptions {
  /** Days the previous certificate stays in use (default 30; 0 retires it at once). */
  overlapDays?: number;
}

function overlapMs(opts: InstallOptions): number {
  const days = opts.overlapDays ?? DEFAULT_OVERLAP_DAYS;
  if (!Number.isFinite(days) || days < 0) usage('--overlap-days must be a number of days ≥ 0');
  return days * DAY;
}

/** Refuses a certificate that cannot serve `u` now: wrong key usage, outside its validity, key too small. */
function assertUsable(ctx: AdminContext, cert: X509Certificate, u: Usage, intermediates: X509Certificate[]): CertificateCheck {
  const c = checkOf(ctx, cert, u, intermediates);
  const fatal = c.errors.find((e) => ['ERR_CERT_KEY_USAGE', 'ERR_CERT_EXPIRED', 'ERR_CERT_NOT_YET_VALID', 'ERR_CERT_REVOKED', 'ERR_KEY_TOO_SMALL', 'ERR_KEY_INVALID'].includes(e.code));
  if (fatal) throw new CryptoError(fatal.code, `certificate ${c.subject}: ${fatal.message}`);
  return c;
}

/**
 * Makes `key`/`cert` the identity's current `usage` pair. Order on disk, each step an atomic rename: archive
 * the previous pair as `<usage>-<serial>.*`, record its overlap end, write the new key, then the new
 * certificate. A server following the folder (gateway/identity.ts liveIdentityDir) never loads a key and a
 * certificate that do not match: in between it keeps the previous keys. Then the store: the new certificate is
 * registered for the mailbox and the previous one retired at the end of the overlap.
 */
async function installPair(ctx: AdminContext, id: string, u: Usage, key: KeyObject, cert: X509Certificate, intermediates: X509Certificate[], opts: InstallOptions): Promise<RotationResult> {
  const now = nowOf(ctx);
  const until = new Date(now.getTime() + overlapMs(opts));
  if (!keyMatchesCertificate(key, cert)) throw new CryptoError('ERR_KEY_INVALID', 'the certificate does not match the key');
  const check = assertUsable(ctx, cert, u, intermediates);
  const warnings: string[] = [];
  if (!check.chainOk) warnings.push(`the new certificate does not chain to a trust anchor (${check.errors[0]?.message ?? 'no path'}); peers must trust its CA`);

  const dir = identityDir(ctx, id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(join(dir, `${u}.p12`))) usage(`${join(dir, `${u}.p12`)} exists: rotation manages PEM pairs; move the PKCS#12 file away first`);
  const keyFile = join(dir, `${u}.key.pem`);
  const certFile = join(dir, `${u}.cert.pem`);
  const fingerprint = certificateSha256Hex(cert);

  let previous: RotationResult['previous'];
  let oldCert: X509Certificate | undefined;
  if (existsSync(certFile)) {
    oldCert = loadCertificate(certFile);
    if (certificateSha256Hex(oldCert) === fingerprint) usage(`${certFile} already is this certificate`);
    const old = summarize(oldCert);
    const base = `${u}-${old.serial}`;
    const archivedCert = join(dir, `${base}.cert.pem`);
    let archivedKey: string | undefined;
    if (existsSync(keyFile)) {
      archivedKey = join(dir, `${base}.key.pem`);
      writeAtomic(archivedKey, readFileSync(keyFile), 0o600);
    }
    writeAtomic(archivedCert, readFileSync(certFile), 0o644);
    const ledger = readRetirements(dir).filter((r) => r.fingerprint !== old.fingerprint);
    ledger.push({ usage: u, fingerprint: old.fingerprint, serial: old.serial, file: base, until: until.toISOString() });
    writeRetirements(dir, ledger);
    previous = { ...old, ...(archivedKey ? { keyFile: archivedKey } : {}), certFile: archivedCert, retireAt: until.toISOString() };
  }
  writeAtomic(keyFile, keyPem(key), 0o600);
  writeAtomic(certFile, cert.toString(), 0o644);

  let store: RotationResult['store'] = 'no-store';
  if (ctx.store) {
    if (!(await ctx.store.getParticipant(id))) store = 'not-a-mailbox';
    else {
      const info = certificateInfo(cert);
      await ctx.store.addCertificate({ participantId: id, usage: u, der: cert.raw, notBefore: info.notBefore, notAfter: info.notAfter });
      store = 'registered';
      if (oldCert) {
        const rec = await ctx.store.findCertificate(certificateSha256Hex(oldCert));
        // Retirement at the end of the overlap: the directory stops announcing it then (store keeps the earliest time).
        if (rec && rec.participantId === id && rec.usage === u) await ctx.store.revokeCertificate(rec.fingerprint, until);
      }
    }
  } else if (id !== 'intermediary') {
    warnings.push('no store reachable: the mailbox directory still announces the previous certificate (run certs import, or the server registers dev identities at its next start)');
  }
  return { identity: id, usage: u, dir, current: { ...summarize(cert), keyFile, certFile }, ...(previous ? { previous } : {}), store, warnings };
}

const generateKeyPairAsync = promisify(generateKeyPair);

async function newRsaKey(bits: number): Promise<KeyObject> {
  if (!Number.isInteger(bits) || bits < 2048 || bits > 8192) usage('--bits must be an integer between 2048 and 8192');
  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  return privateKey;
}

export interface RotateOptions extends InstallOptions {
  identity: string;
  usage: Usage;
  /** RSA bits of the new dev key (default 3072). */
  bits?: number;
  /** Install this CA-issued key and certificate instead of issuing one from the dev CA. */
  p12?: { file: string; pin: string };
}

/** `certs rotate`: a new key and certificate from the dev CA (or from a PKCS#12 file), the previous pair kept for the overlap. */
export async function rotateCertificate(ctx: AdminContext, opts: RotateOptions): Promise<RotationResult> {
  const id = opts.identity;
  const u = checkUsage(opts.usage);
  identityDir(ctx, id);
  overlapMs(opts); // refuse a bad overlap before any key is made
  if (opts.p12) {
    const p = loadPkcs12(opts.p12.file, opts.p12.pin);
    return installPair(ctx, id, u, p.key, p.certificate, p.chain, opts);
  }
  if (!hasDevCa(ctx)) usage(`no dev CA in ${caDir(ctx)}: use --p12 FILE, or certs csr + certs install for a CA-issued certificate`);
  checkIdentityName(id); // the dev CA names the subject after the identity
  const key = await newRsaKey(opts.bits ?? 3072);
  const issued = await issueDevCertificate(caDir(ctx), { id, usage: u, key, now: nowOf(ctx) });
  return installPair(ctx, id, u, issued.key, issued.certificate, [], opts);
}

export interface CsrOptions {
  identity: string;
  usage: Usage;
  /** RFC 4514, most specific first: `CN=Stadt Lemgo,O=Stadt Lemgo,C=DE`. */
  subject: string;
  bits?: number;
  /** Replace a pending key (the CSR sent before becomes useless). */
  force?: boolean;
}

export interface CsrResult {
  identity: string;
  usage: Usage;
  keyFile: string;
  csrFile: string;
  csrPem: string;
  subject: NameAttribute[];
}

export function pendingKeyFile(ctx: AdminContext, id: string, u: Usage): string {
  return join(identityDir(ctx, id), `${u}.pending.key.pem`);
}

/** `certs csr`: a new key (kept as `<usage>.pending.key.pem`) and a PKCS#10 request for it (`<usage>.csr.pem`). */
export async function createCsr(ctx: AdminContext, opts: CsrOptions): Promise<CsrResult> {
  const u = checkUsage(opts.usage);
  const dir = identityDir(ctx, opts.identity);
  let subject: NameAttribute[];
  try {
    subject = parseDistinguishedName(opts.subject);
  } catch (e) {
    usage(`--subject: ${(e as Error).message}`);
  }
  const keyFile = pendingKeyFile(ctx, opts.identity, u);
  if (existsSync(keyFile) && !opts.force) usage(`${keyFile} exists (a request is pending); install its certificate or use --force to start over`);
  const key = await newRsaKey(opts.bits ?? 3072);
  const der = createCertificationRequest({ subject, key, keyUsage: REQUESTED_KEY_USAGE[u] });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const csrFile = join(dir, `${u}.csr.pem`);
  const csrPem = pemOf('CERTIFICATE REQUEST', der);
  writeAtomic(keyFile, keyPem(key), 0o600);
  writeAtomic(csrFile, csrPem, 0o644);
  return { identity: opts.identity, usage: u, keyFile, csrFile, csrPem, subject };
}

export interface InstallCertOptions extends InstallOptions {
  identity: string;
  usage: Usage;
  /** The CA's answer: the certificate for the pending key, optionally with its issuers. */
  certificates: X509Certificate[];
}

/** `certs install`: the CA-issued certificate for the pending key becomes the current pair. */
export async function installCertificate(ctx: AdminContext, opts: InstallCertOptions): Promise<RotationResult> {
  const u = checkUsage(opts.usage);
  const keyFile = pendingKeyFile(ctx, opts.identity, u);
  if (!existsSync(keyFile)) usage(`no pending key ${keyFile}: run certs csr first`);
  const key = loadPrivateKey(keyFile);
  const cert = opts.certificates.find((c) => keyMatchesCertificate(key, c));
  if (!cert) throw new CryptoError('ERR_KEY_INVALID', `no certificate given matches the pending key ${keyFile}`);
  const result = await installPair(ctx, opts.identity, u, key, cert, opts.certificates.filter((c) => c !== cert), opts);
  rmSync(keyFile, { force: true });
  rmSync(join(identityDir(ctx, opts.identity), `${u}.csr.pem`), { force: true });
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Foreign mailbox certificates and revocation

export interface ImportResult {
  identity: string;
  usage: Usage;
  certificate: CertSummary;
  createdMailbox: boolean;
  chainOk: boolean;
  warnings: string[];
}

/** `certs import`: registers a mailbox certificate (e.g. a court's cipher certificate) in the store. */
export async function importCertificate(ctx: AdminContext, opts: { identity: string; usage: Usage; certificate: X509Certificate; name?: string }): Promise<ImportResult> {
  const id = checkIdentityName(opts.identity);
  const u = checkUsage(opts.usage);
  if (!ctx.store) usage('certs import needs the store (--data DIR or --db URL)');
  const check = assertUsable(ctx, opts.certificate, u, []);
  const warnings: string[] = [];
  if (!check.chainOk) warnings.push(`does not chain to a trust anchor (${check.errors[0]?.message ?? 'no path'}): accepted as signer only with trustRegisteredCertificates`);
  const known = await ctx.store.findCertificate(certificateSha256Hex(opts.certificate));
  if (known && (known.participantId !== id || known.usage !== u)) usage(`this certificate is already registered as ${known.usage} certificate of ${known.participantId}`);
  const createdMailbox = !(await ctx.store.getParticipant(id));
  await ctx.store.upsertParticipant({ id, ...(opts.name ? { name: opts.name } : {}) });
  const info = certificateInfo(opts.certificate);
  await ctx.store.addCertificate({ participantId: id, usage: u, der: opts.certificate.raw, notBefore: info.notBefore, notAfter: info.notAfter });
  return { identity: id, usage: u, certificate: summarize(opts.certificate), createdMailbox, chainOk: check.chainOk, warnings };
}

export interface RevokeResult {
  serial: string;
  /** The dev CA CRL now listing the serial (absent when the certificate is not from the dev CA). */
  crlFile?: string;
  /** Store records marked revoked. */
  store: Array<{ identity: string; usage: Usage; fingerprint: string }>;
  /** Identity-folder certificates with this serial: they need a rotation. */
  inFolders: Array<{ identity: string; usage: Usage; file: string }>;
  warnings: string[];
}

function normalSerial(s: string): string {
  const hex = s.replace(/[:\s]/g, '').toUpperCase().replace(/^0+(?=.)/, '');
  if (!/^[0-9A-F]+$/.test(hex)) usage(`not a hexadecimal serial number: ${JSON.stringify(s)}`);
  return hex;
}

function issuedBy(cert: X509Certificate, ca: X509Certificate | undefined): boolean {
  return ca !== undefined && cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/**
 * `certs revoke`: adds the serial to the dev CA CRL (re-signed; the server re-reads it on every check, so
 * the InspectionReport shows OnlineResult revoked at once) and marks matching store certificates revoked.
 * A certificate from another CA can only be marked in the store: its CA must revoke it.
 */
export async function revokeCertificate(ctx: AdminContext, opts: { serial?: string; certificate?: X509Certificate }): Promise<RevokeResult> {
  if ((opts.serial === undefined) === (opts.certificate === undefined)) usage('give exactly one of --serial HEX or --cert FILE');
  const now = nowOf(ctx);
  const ca = devCaCert(ctx);
  const warnings: string[] = [];
  const serial = opts.certificate ? certificateInfo(opts.certificate).serialHex : normalSerial(opts.serial as string);
  const fromDevCa = opts.certificate ? issuedBy(opts.certificate, ca) : true;
  // Serial alone: a dev CA serial; certificates with it count only when the dev CA really issued them.
  const matches = (c: X509Certificate) => (opts.certificate ? c.raw.equals(opts.certificate.raw) : certificateInfo(c).serialHex === serial && issuedBy(c, ca));

  let crlFile: string | undefined;
  if (fromDevCa) {
    if (!hasDevCa(ctx)) usage(`no dev CA in ${caDir(ctx)}${opts.serial ? '' : ' (give --cert FILE of another CA to mark it revoked in the store only)'}`);
    crlFile = revokeDevCertificate(caDir(ctx), opts.certificate ?? serial, { now }).crlPath;
  } else {
    warnings.push('not issued by the dev CA: marked revoked in the store only; its CA must revoke it');
  }

  const store: RevokeResult['store'] = [];
  if (ctx.store) {
    for (const p of await ctx.store.listParticipants()) {
      for (const u of USAGES) {
        for (const r of await ctx.store.certificatesOf(p.id, u)) {
          let c: X509Certificate;
          try {
            c = new X509Certificate(r.der);
          } catch {
            continue;
          }
          if (!matches(c)) continue;
          await ctx.store.revokeCertificate(r.fingerprint, now);
          store.push({ identity: p.id, usage: u, fingerprint: r.fingerprint });
        }
      }
    }
  } else warnings.push('no store reachable: mailbox certificates in the store were not marked');

  const inFolders: RevokeResult['inFolders'] = [];
  for (const { id, dir } of identityFolders(ctx)) {
    for (const f of readdirSync(dir)) {
      const m = CERT_FILE.exec(f);
      if (!m) continue;
      try {
        if (matches(loadCertificate(join(dir, f)))) inFolders.push({ identity: id, usage: m[1] as Usage, file: join(dir, f) });
      } catch {
        // unreadable files are reported by certs list
      }
    }
  }
  if (!fromDevCa && store.length === 0) warnings.push('the certificate is not registered in the store: nothing was revoked');
  if (fromDevCa && store.length === 0 && inFolders.length === 0) warnings.push(`no certificate in use has serial ${serial}; it is on the CRL now`);
  return { serial, ...(crlFile ? { crlFile } : {}), store, inFolders, warnings };
}

// ---------------------------------------------------------------------------------------------------------
// The store, as the server would open it

/**
 * Opens the store at `url` for administration (never migrates: that would run crash recovery under a running
 * server). `explicit` says the caller named the store: then an absent or unreachable one is an error
 * (ERR_USAGE / ERR_REMOTE); otherwise it is skipped with a note.
 */
export async function openAdminStore(url: string, explicit: boolean): Promise<{ store?: Store; note?: string }> {
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    const file = join(resolve(decodeURIComponent(path)), 'amtsbote.sqlite');
    if (!existsSync(file)) {
      if (explicit) usage(`no store at ${file} (start the server once, or give --db)`);
      return { note: `no store at ${file}: mailbox certificates not consulted` };
    }
  }
  let store: Store | undefined;
  try {
    store = await openStore(url);
    await store.listParticipants(); // reachable and migrated
    return { store };
  } catch (e) {
    await store?.close().catch(() => undefined);
    if (explicit) throw new OsciError(url.startsWith('sqlite:') ? 'ERR_USAGE' : 'ERR_REMOTE', `store ${redact(url)} is not usable: ${(e as Error).message}`, { cause: e });
    return { note: `store ${redact(url)} not reachable: mailbox certificates not consulted` };
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
