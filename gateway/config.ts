/**
 * Server configuration: embedded defaults (SQLite under ./data, dev PKI in certs-dev/), overridden by an
 * optional JSON file (--config) and then by command-line options. Unknown keys are refused so that a typo
 * never silently falls back to a default.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { OsciError } from '../protocol/errors.ts';

/** A key pair on disk: PEM key + certificate, or a PKCS#12 file whose PIN is in an environment variable. */
export type KeyRef = { key: string; cert: string; pinEnv?: string } | { p12: string; pinEnv: string };

export interface ParticipantConfig {
  id: string;
  name?: string;
  /** Passive recipients (acceptDelivery/processDelivery) are reached at this URL. */
  endpointUrl?: string;
  signatureCerts: string[];
  cipherCerts: string[];
}

export interface ServerConfig {
  host: string;
  port: number;
  /** Base URL announced in the directory and the start-up hint. */
  publicUrl?: string;
  dataDir: string;
  /** sqlite:DIR (database file and payloads in DIR; default: the data folder) or postgres://...[?schema=NAME] */
  db?: string;
  /** The intermediary's own keys: either a folder with {signature,cipher}.{key,cert}.pem, or explicit key refs. */
  identityDir?: string;
  identity?: { signature: KeyRef; cipher: KeyRef };
  /** Development PKI: created on first run when the identity folder is missing. */
  devPki: { enabled: boolean; dir: string; bits: number };
  /** Trust anchors (PEM/DER files) for certificates in messages; the dev CA is added when devPki is enabled. */
  trustAnchors: string[];
  crls: string[];
  /** Accept certificates that do not chain to an anchor but are registered for a participant (e.g. the Governikus test PKI). */
  trustRegisteredCertificates: boolean;
  participants: ParticipantConfig[];
  /** Register every identity of the dev PKI as a mailbox on start-up. */
  registerDevIdentities: boolean;
  limits: { maxMessageBytes: number; maxAttachments: number; maxInMemoryPartBytes: number };
  /** Mailbox agent configuration file (adapters/README.md): routes fetched mail to DMS adapters, run by `serve` beside the intermediary. */
  agent?: string;
  /** Deadline of one exchange with a passive recipient (acceptDelivery/processDelivery). */
  passiveTimeoutMs: number;
  /**
   * A connection on which no byte moves in either direction for this long is closed (a stalled upload, slowloris).
   * Large uploads are not bounded in total time, only in silence. Must exceed passiveTimeoutMs (a mediateDelivery
   * waits that long for the passive recipient with its client's connection silent).
   */
  idleTimeoutMs: number;
  /** Minimum RSA key size accepted in messages (BSI TR-02102: 3000; the reference test keys are 4096). */
  minRsaBits: number;
  logLevel: string;
  /**
   * Admin API (/admin, `amtsbote mailbox`): bearer token from an environment variable or a file. Without
   * this key the admin API is off (every /admin route answers 404).
   */
  admin?: AdminConfig;
  /** Certificates (own and registered) that expire within this many days are logged as warnings (gateway/cert-expiry.ts). */
  certificateWarnDays: number;
}

/** Exactly one of tokenEnv / tokenFile; the token must have at least 32 characters. */
export interface AdminConfig {
  tokenEnv?: string;
  tokenFile?: string;
}

export const DEFAULT_CONFIG: Readonly<ServerConfig> = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  dataDir: 'data',
  identityDir: 'certs-dev/intermediary',
  devPki: { enabled: true, dir: 'certs-dev', bits: 3072 },
  trustAnchors: [],
  crls: [],
  trustRegisteredCertificates: true,
  participants: [],
  registerDevIdentities: true,
  limits: { maxMessageBytes: 200 * 1024 * 1024, maxAttachments: 1000, maxInMemoryPartBytes: 16 * 1024 * 1024 },
  passiveTimeoutMs: 60_000,
  idleTimeoutMs: 120_000,
  minRsaBits: 2048,
  logLevel: 'info',
  certificateWarnDays: 30,
});

// Optional keys have no default, so they are listed explicitly.
const KEYS = new Set(Object.keys(DEFAULT_CONFIG).concat(['agent', 'publicUrl', 'identity', 'db', 'admin']));

function bad(msg: string): never {
  throw new OsciError('ERR_USAGE', `configuration: ${msg}`);
}

/** Reads a JSON configuration file; relative paths in it are relative to the file's folder. */
export function loadConfigFile(file: string): Partial<ServerConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    bad(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad(`${file} must hold a JSON object`);
  for (const k of Object.keys(raw)) if (!KEYS.has(k)) bad(`unknown key "${k}" in ${file}`);
  const base = resolve(file, '..');
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const c = raw as Partial<ServerConfig>;
  const out: Partial<ServerConfig> = { ...c };
  if (c.dataDir) out.dataDir = rel(c.dataDir);
  if (c.db?.startsWith('sqlite:')) out.db = `sqlite:${rel(c.db.slice(7))}`;
  if (c.identityDir) out.identityDir = rel(c.identityDir);
  if (c.agent) out.agent = rel(c.agent);
  if (c.trustAnchors) out.trustAnchors = c.trustAnchors.map(rel);
  if (c.crls) out.crls = c.crls.map(rel);
  if (c.admin !== undefined) {
    const a = c.admin as unknown;
    if (typeof a !== 'object' || a === null || Array.isArray(a)) bad('admin must be an object { "tokenEnv": "VAR" } or { "tokenFile": "FILE" }');
    for (const k of Object.keys(a)) if (k !== 'tokenEnv' && k !== 'tokenFile') bad(`unknown key "admin.${k}" in ${file}`);
    if (c.admin.tokenFile !== undefined) out.admin = { ...c.admin, tokenFile: rel(String(c.admin.tokenFile)) };
  }
  if (c.devPki) out.devPki = { ...DEFAULT_CONFIG.devPki, ...c.devPki, dir: rel(c.devPki.dir ?? DEFAULT_CONFIG.devPki.dir) };
  const relKey = (k: KeyRef): KeyRef => ('p12' in k ? { ...k, p12: rel(k.p12) } : { ...k, key: rel(k.key), cert: rel(k.cert) });
  if (c.identity) out.identity = { signature: relKey(c.identity.signature), cipher: relKey(c.identity.cipher) };
  if (c.participants) {
    out.participants = c.participants.map((p) => {
      if (!p.id || !Array.isArray(p.signatureCerts) || !Array.isArray(p.cipherCerts)) bad(`participant entries need id, signatureCerts[], cipherCerts[]`);
      return { ...p, signatureCerts: p.signatureCerts.map(rel), cipherCerts: p.cipherCerts.map(rel) };
    });
  }
  return out;
}

export function resolveConfig(...layers: Array<Partial<ServerConfig> | undefined>): ServerConfig {
  const c: ServerConfig = structuredClone({ ...DEFAULT_CONFIG }) as ServerConfig;
  for (const l of layers) {
    if (!l) continue;
    for (const [k, v] of Object.entries(l)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  }
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535) bad(`port ${c.port} is not a TCP port`);
  c.dataDir = resolve(c.dataDir);
  c.db ??= `sqlite:${c.dataDir}`;
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(c.db)) bad(`db must be sqlite:DIR or postgres://..., got ${c.db}`);
  if (c.db.startsWith('sqlite:')) c.db = `sqlite:${resolve(c.db.slice(7))}`;
  c.devPki = { ...c.devPki, dir: resolve(c.devPki.dir) };
  if (c.identityDir) c.identityDir = resolve(c.identityDir);
  if (c.admin) {
    const { tokenEnv, tokenFile } = c.admin;
    if ((tokenEnv === undefined) === (tokenFile === undefined)) bad('admin needs exactly one of tokenEnv, tokenFile');
    if (tokenEnv !== undefined && (typeof tokenEnv !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(tokenEnv))) bad(`admin.tokenEnv must name an environment variable, got ${JSON.stringify(tokenEnv)}`);
    if (tokenFile !== undefined) c.admin = { tokenFile: resolve(String(tokenFile)) };
  }
  if (!Number.isInteger(c.idleTimeoutMs) || c.idleTimeoutMs <= c.passiveTimeoutMs) bad(`idleTimeoutMs must be an integer above passiveTimeoutMs (${c.passiveTimeoutMs}), got ${String(c.idleTimeoutMs)}`);
  if (typeof c.certificateWarnDays !== 'number' || !Number.isFinite(c.certificateWarnDays) || c.certificateWarnDays < 0) bad(`certificateWarnDays must be a number of days ≥ 0, got ${String(c.certificateWarnDays)}`);
  return c;
}
