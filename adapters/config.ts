/**
 * Configuration of the mailbox agent (`amtsbote agent --config FILE`, JSON). Relative paths are relative to the
 * file's folder; secrets are never in the file, only the names of environment variables holding them. Unknown
 * keys are refused so that a typo never silently falls back to a default. See adapters/README.md for an example.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { OsciError } from '../protocol/errors.ts';
import { checkRetryPolicy, DEFAULT_RETRY, type RetryPolicy } from './outbox/backoff.ts';
import { Router, type RouteRule } from './routing.ts';
import { checkMailAddress, type SmtpSecurity } from './smtp/notify.ts';

export interface MailboxConfig {
  /** Postbox id (as routes name it). */
  id: string;
  /** Identity folder with {signature,cipher}.{key,cert}.pem or .p12 (absolute after loading). */
  identity: string;
  /** Environment variable with the PIN of PKCS#12 keys / encrypted PEM keys. */
  pinEnv?: string;
  /** File holding that PIN (first line), e.g. a container secret; absolute after loading. */
  pinFile?: string;
  /** Outgoing hot folder of this mailbox (absolute after loading). */
  outgoing?: string;
  /** Name of the intermediary (`intermediaries`) the mailbox lives on; default `server`. */
  intermediary?: string;
  /** Poll interval of this mailbox (default: the top-level pollIntervalSeconds). */
  pollIntervalSeconds?: number;
  /** Rules (by name) its messages may take, in the order of `routes` (default: every rule). */
  routes?: string[];
  /** Adapters for its messages no allowed rule matches (default: the top-level defaultRoute). */
  defaultRoute?: string[];
}

/**
 * Another OSCI 1.2 intermediary a mailbox lives on (osci-protocol.md §1): its OSCI endpoint and its certificates,
 * pinned here (requests are encrypted for the cipher certificate; answers must be signed with the signature
 * certificate). `directory` (optional) is an Amtsbote-style directory for recipient lookup.
 */
export interface IntermediaryConfig {
  endpoint: string;
  cipherCert: string;
  signatureCert: string;
  directory?: string;
}

/** A recipient whose cipher certificate is configured (no directory lookup); `intermediary`: where its mailbox lives, if not on the sender's. */
export interface RecipientConfig {
  cipherCert: string;
  intermediary?: string;
}

export type AdapterConfig =
  | { type: 'hotfolder'; dir: string; stagingDir?: string }
  | { type: 'http'; url: string; secretEnv: string; timeoutSeconds?: number }
  | {
      type: 'smtp';
      host: string;
      port: number;
      security?: SmtpSecurity;
      auth?: { user: string; passEnv: string };
      /** PEM files with additional trust anchors for the server certificate. */
      ca?: string[];
      from: string;
      to: string[];
      includeText?: boolean;
      timeoutSeconds?: number;
      clientName?: string;
    };

/** HTTP intake for outgoing mail (adapters/http/intake.ts); the bearer token from an environment variable or a file. */
export interface IntakeConfig {
  host: string;
  port: number;
  tokenEnv?: string;
  tokenFile?: string;
}

export interface AgentConfig {
  /** Agent data folder: SQLite job store, spool, temp files (absolute after loading). */
  dataDir: string;
  /** Job store: sqlite:DIR (default: dataDir) or postgres://…[?schema=NAME]. */
  db?: string;
  /** Amtsbote intermediary base URL (directory at /directory, OSCI at the announced endpoint): the default for mailboxes without `intermediary`. */
  server?: string;
  /** Other intermediaries, by name (remote mailboxes). */
  intermediaries: Record<string, IntermediaryConfig>;
  /** Recipients with configured cipher certificates, by postbox id (looked up before any directory). */
  recipients: Record<string, RecipientConfig>;
  /** Trust anchors (PEM) for the intermediary's and the authors' certificates; default the dev CA. */
  trustAnchors: string[];
  pollIntervalSeconds: number;
  /** Upper bound of the back-off between polls of a mailbox whose intermediary fails (default 900 s). */
  pollBackoffMaxSeconds: number;
  /** HTTP intake for outgoing mail of the mailboxes with an `outgoing` folder. */
  intake?: IntakeConfig;
  /** Sent messages: their process card is fetched every intervalSeconds until the reception is recorded, for at most maxDays. */
  receptionTracking: { intervalSeconds: number; maxDays: number };
  retry: RetryPolicy;
  mailboxes: MailboxConfig[];
  adapters: Record<string, AdapterConfig>;
  routes: RouteRule[];
  defaultRoute: string[];
}

function bad(msg: string): never {
  throw new OsciError('ERR_USAGE', `agent configuration: ${msg}`);
}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string, keys: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${what} must be an object`);
  for (const k of Object.keys(v)) if (!keys.includes(k)) bad(`${what}: unknown key "${k}" (known: ${keys.join(', ')})`);
  return v as Obj;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') bad(`${what} must be a non-empty string`);
  return v;
}

function optStr(v: unknown, what: string): string | undefined {
  return v === undefined ? undefined : str(v, what);
}

function num(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) bad(`${what} must be a number from ${min} to ${max}`);
  return v;
}

function strList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) bad(`${what} must be a list of strings`);
  return v as string[];
}

const envName = (v: unknown, what: string) => {
  const s = str(v, what);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) bad(`${what} must name an environment variable`);
  return s;
};

function adapter(name: string, v: unknown, path: (p: string) => string): AdapterConfig {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) bad(`adapter name "${name}" must be 1–64 letters, digits, ".", "_" or "-"`);
  const type = (v as Obj | null)?.type;
  const w = `adapters.${name}`;
  switch (type) {
    case 'hotfolder': {
      const o = obj(v, w, ['type', 'dir', 'stagingDir']);
      const stagingDir = optStr(o.stagingDir, `${w}.stagingDir`);
      return { type, dir: path(str(o.dir, `${w}.dir`)), ...(stagingDir ? { stagingDir: path(stagingDir) } : {}) };
    }
    case 'http': {
      const o = obj(v, w, ['type', 'url', 'secretEnv', 'timeoutSeconds']);
      const url = str(o.url, `${w}.url`);
      if (!/^https?:\/\//.test(url)) bad(`${w}.url must be an http(s) URL`);
      return { type, url, secretEnv: envName(o.secretEnv, `${w}.secretEnv`), ...(o.timeoutSeconds !== undefined ? { timeoutSeconds: num(o.timeoutSeconds, `${w}.timeoutSeconds`, 0.001, 3600) } : {}) };
    }
    case 'smtp': {
      const o = obj(v, w, ['type', 'host', 'port', 'security', 'auth', 'ca', 'from', 'to', 'includeText', 'timeoutSeconds', 'clientName']);
      const security = o.security ?? 'starttls';
      if (security !== 'starttls' && security !== 'tls' && security !== 'none') bad(`${w}.security must be starttls, tls or none`);
      let auth: { user: string; passEnv: string } | undefined;
      if (o.auth !== undefined) {
        const a = obj(o.auth, `${w}.auth`, ['user', 'passEnv']);
        auth = { user: str(a.user, `${w}.auth.user`), passEnv: envName(a.passEnv, `${w}.auth.passEnv`) };
      }
      if (o.includeText !== undefined && typeof o.includeText !== 'boolean') bad(`${w}.includeText must be true or false`);
      const to = strList(o.to, `${w}.to`);
      if (to.length === 0) bad(`${w}.to must list at least one address`);
      to.forEach((a) => checkMailAddress(a, `${w}.to`));
      const clientName = optStr(o.clientName, `${w}.clientName`);
      return {
        type,
        host: str(o.host, `${w}.host`),
        port: num(o.port, `${w}.port`, 1, 65535),
        security,
        ...(auth ? { auth } : {}),
        ...(o.ca !== undefined ? { ca: strList(o.ca, `${w}.ca`).map(path) } : {}),
        from: checkMailAddress(str(o.from, `${w}.from`), `${w}.from`),
        to,
        includeText: o.includeText === true,
        ...(o.timeoutSeconds !== undefined ? { timeoutSeconds: num(o.timeoutSeconds, `${w}.timeoutSeconds`, 0.001, 3600) } : {}),
        ...(clientName ? { clientName } : {}),
      };
    }
    default:
      bad(`${w}.type must be hotfolder, http or smtp`);
  }
}

const TOP = ['dataDir', 'db', 'server', 'intermediaries', 'recipients', 'trustAnchors', 'pollIntervalSeconds', 'pollBackoffMaxSeconds', 'receptionTracking', 'intake', 'retry', 'mailboxes', 'adapters', 'routes', 'defaultRoute'];

const httpUrl = (v: unknown, what: string) => {
  const u = str(v, what);
  if (!/^https?:\/\//.test(u)) bad(`${what} must be an http(s) URL`);
  return u.replace(/\/+$/, '');
};

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Validates a parsed configuration; relative paths are resolved against `baseDir`. */
export function parseAgentConfig(raw: unknown, baseDir: string): AgentConfig {
  const o = obj(raw, 'the configuration', TOP);
  const path = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const r = o.retry === undefined ? {} : obj(o.retry, 'retry', ['maxAttempts', 'baseDelaySeconds', 'maxDelaySeconds', 'leaseSeconds']);
  const sec = (v: unknown, what: string, dflt: number) => (v === undefined ? dflt : num(v, what, 0, 30 * 86400) * 1000);
  const retry = checkRetryPolicy({
    maxAttempts: r.maxAttempts === undefined ? DEFAULT_RETRY.maxAttempts : num(r.maxAttempts, 'retry.maxAttempts', 1, 1000),
    baseDelayMs: sec(r.baseDelaySeconds, 'retry.baseDelaySeconds', DEFAULT_RETRY.baseDelayMs),
    maxDelayMs: sec(r.maxDelaySeconds, 'retry.maxDelaySeconds', DEFAULT_RETRY.maxDelayMs),
    leaseMs: sec(r.leaseSeconds, 'retry.leaseSeconds', DEFAULT_RETRY.leaseMs),
  });
  const intermediaries: Record<string, IntermediaryConfig> = {};
  for (const [name, v] of Object.entries(obj(o.intermediaries ?? {}, 'intermediaries', Object.keys((o.intermediaries as Obj | undefined) ?? {})))) {
    const w = `intermediaries.${name}`;
    if (!ID.test(name)) bad(`intermediary name "${name}" must be 1–128 letters, digits, ".", "_" or "-"`);
    const x = obj(v, w, ['endpoint', 'cipherCert', 'signatureCert', 'directory']);
    const directory = x.directory === undefined ? undefined : httpUrl(x.directory, `${w}.directory`);
    intermediaries[name] = {
      endpoint: httpUrl(x.endpoint, `${w}.endpoint`),
      cipherCert: path(str(x.cipherCert, `${w}.cipherCert`)),
      signatureCert: path(str(x.signatureCert, `${w}.signatureCert`)),
      ...(directory ? { directory } : {}),
    };
  }
  const recipients: Record<string, RecipientConfig> = {};
  for (const [id, v] of Object.entries(obj(o.recipients ?? {}, 'recipients', Object.keys((o.recipients as Obj | undefined) ?? {})))) {
    if (!ID.test(id)) bad(`recipient "${id}" is not a postbox id`);
    const x = obj(v, `recipients.${id}`, ['cipherCert', 'intermediary']);
    const via = optStr(x.intermediary, `recipients.${id}.intermediary`);
    if (via !== undefined && !intermediaries[via]) bad(`recipients.${id}.intermediary names "${via}", which intermediaries does not define`);
    recipients[id] = { cipherCert: path(str(x.cipherCert, `recipients.${id}.cipherCert`)), ...(via ? { intermediary: via } : {}) };
  }
  const server = o.server === undefined ? undefined : httpUrl(o.server, 'server');
  const adaptersRaw = obj(o.adapters, 'adapters', Object.keys((o.adapters as Obj | undefined) ?? {}));
  const adapters: Record<string, AdapterConfig> = {};
  for (const [name, v] of Object.entries(adaptersRaw)) adapters[name] = adapter(name, v, path);
  if (Object.keys(adapters).length === 0) bad('adapters must define at least one adapter');
  const routes = (o.routes ?? []) as RouteRule[];
  const defaultRoute = o.defaultRoute as string[];
  // Validates rules, regular expressions and adapter names now, not at the first message.
  new Router({ rules: routes, default: defaultRoute }, new Set(Object.keys(adapters)));
  const ruleNames = new Set(routes.map((r, i) => r.name ?? `#${i + 1}`));
  if (!Array.isArray(o.mailboxes) || o.mailboxes.length === 0) bad('mailboxes must list at least one mailbox');
  const ids = new Set<string>();
  const mailboxes = o.mailboxes.map((m, i): MailboxConfig => {
    const w = `mailboxes[${i}]`;
    const x = obj(m, w, ['id', 'identity', 'pinEnv', 'pinFile', 'outgoing', 'intermediary', 'pollIntervalSeconds', 'routes', 'defaultRoute']);
    const id = str(x.id, `${w}.id`);
    if (ids.has(id)) bad(`mailbox ${id} is listed twice`);
    ids.add(id);
    if (x.pinEnv !== undefined && x.pinFile !== undefined) bad(`${w}: pinEnv and pinFile exclude each other`);
    const out = optStr(x.outgoing, `${w}.outgoing`);
    const via = optStr(x.intermediary, `${w}.intermediary`);
    if (via !== undefined && !intermediaries[via]) bad(`${w}.intermediary names "${via}", which intermediaries does not define`);
    if (via === undefined && server === undefined) bad(`${w} needs "intermediary" (or set the top-level "server")`);
    const allowed = x.routes === undefined ? undefined : strList(x.routes, `${w}.routes`);
    for (const r of allowed ?? []) if (!ruleNames.has(r)) bad(`${w}.routes names the unknown rule "${r}"`);
    const dflt = x.defaultRoute === undefined ? undefined : strList(x.defaultRoute, `${w}.defaultRoute`);
    if (dflt) new Router({ rules: [], default: dflt }, new Set(Object.keys(adapters)));
    const pinFile = optStr(x.pinFile, `${w}.pinFile`);
    return {
      id,
      identity: path(str(x.identity, `${w}.identity`)),
      ...(x.pinEnv !== undefined ? { pinEnv: envName(x.pinEnv, `${w}.pinEnv`) } : {}),
      ...(pinFile ? { pinFile: path(pinFile) } : {}),
      ...(out ? { outgoing: path(out) } : {}),
      ...(via ? { intermediary: via } : {}),
      ...(x.pollIntervalSeconds !== undefined ? { pollIntervalSeconds: num(x.pollIntervalSeconds, `${w}.pollIntervalSeconds`, 0.01, 86400) } : {}),
      ...(allowed ? { routes: allowed } : {}),
      ...(dflt ? { defaultRoute: dflt } : {}),
    };
  });
  let intake: IntakeConfig | undefined;
  if (o.intake !== undefined) {
    const x = obj(o.intake, 'intake', ['host', 'port', 'tokenEnv', 'tokenFile']);
    if ((x.tokenEnv === undefined) === (x.tokenFile === undefined)) bad('intake needs exactly one of tokenEnv, tokenFile');
    if (!mailboxes.some((m) => m.outgoing)) bad('intake needs a mailbox with an "outgoing" folder');
    intake = {
      host: x.host === undefined ? '127.0.0.1' : str(x.host, 'intake.host'),
      port: num(x.port, 'intake.port', 0, 65535),
      ...(x.tokenEnv !== undefined ? { tokenEnv: envName(x.tokenEnv, 'intake.tokenEnv') } : { tokenFile: path(str(x.tokenFile, 'intake.tokenFile')) }),
    };
  }
  const db = optStr(o.db, 'db');
  const rt = obj(o.receptionTracking ?? {}, 'receptionTracking', ['intervalSeconds', 'maxDays']);
  return {
    dataDir: path(o.dataDir === undefined ? 'agent-data' : str(o.dataDir, 'dataDir')),
    ...(db ? { db } : {}),
    ...(server ? { server } : {}),
    intermediaries,
    recipients,
    trustAnchors: o.trustAnchors === undefined ? [] : strList(o.trustAnchors, 'trustAnchors').map(path),
    pollIntervalSeconds: o.pollIntervalSeconds === undefined ? 60 : num(o.pollIntervalSeconds, 'pollIntervalSeconds', 0.01, 86400),
    pollBackoffMaxSeconds: o.pollBackoffMaxSeconds === undefined ? 900 : num(o.pollBackoffMaxSeconds, 'pollBackoffMaxSeconds', 0.01, 86400),
    ...(intake ? { intake } : {}),
    receptionTracking: {
      intervalSeconds: rt.intervalSeconds === undefined ? 300 : num(rt.intervalSeconds, 'receptionTracking.intervalSeconds', 0.01, 86400),
      maxDays: rt.maxDays === undefined ? 14 : num(rt.maxDays, 'receptionTracking.maxDays', 0, 365),
    },
    retry,
    mailboxes,
    adapters,
    routes,
    defaultRoute,
  };
}

export function loadAgentConfig(file: string): AgentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    bad(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseAgentConfig(raw, dirname(resolve(file)));
}

/** The job store URL: `db`, else SQLite in the data folder. */
export function jobStoreUrl(cfg: Pick<AgentConfig, 'db' | 'dataDir'>): string {
  return cfg.db ?? `sqlite:${cfg.dataDir}`;
}
