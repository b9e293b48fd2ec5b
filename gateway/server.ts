/**
 * Starts the intermediary: configuration → dev PKI on first run → store → identities and mailboxes →
 * HTTP. `stop()` stops accepting, lets in-flight requests finish, then closes the store.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { initDevPki, DEFAULT_DEV_IDENTITIES } from '../crypto/devpki.ts';
import { loadCertificate } from '../crypto/keys.ts';
import { OsciError } from '../protocol/errors.ts';
import type { ServerConfig } from './config.ts';
import { startCertificateExpiryWatch } from './cert-expiry.ts';
import { resolveAdminToken } from './http/admin.ts';
import { createApp } from './http/app.ts';
import { liveIdentityDir, loadKeyRef, type Identity } from './identity.ts';
import { createLogger, type Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { Intermediary } from './osci/intermediary.ts';
import { openStore, type Store } from './store/index.ts';
import { Trust } from './trust.ts';

export interface RunningServer {
  url: string;
  store: Store;
  identity: Identity;
  log: Logger;
  /** Its /metrics registry (the mailbox agent beside it adds its poll metrics). */
  metrics: Metrics;
  stop(): Promise<void>;
}

async function register(store: Store, id: string, sig: X509Certificate[], cipher: X509Certificate[], extra: { name?: string; endpointUrl?: string } = {}) {
  await store.upsertParticipant({ id, ...extra });
  for (const [usage, list] of [['signature', sig], ['cipher', cipher]] as const) {
    for (const c of list) {
      await store.addCertificate({ participantId: id, usage, der: c.raw, notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) });
    }
  }
}

/**
 * What `prepareServer` did once for a cluster (gateway/cluster.ts): the dev PKI exists, the schema is migrated,
 * crash recovery ran and the mailboxes are registered. A worker started with it repeats none of that.
 */
export interface PreparedServer {
  /** The dev CA's certificate and CRL files when the dev PKI is enabled. */
  devCa?: { certPath: string; crlPath: string };
}

export interface StartOptions {
  log?: Logger;
  /** Set in cluster workers: skip dev PKI creation, migration (and thus SQLite crash recovery) and registration. */
  prepared?: PreparedServer;
}

async function initDev(cfg: ServerConfig, log: Logger): Promise<PreparedServer['devCa']> {
  if (!cfg.devPki.enabled) return undefined;
  const t0 = Date.now();
  const pki = await initDevPki(cfg.devPki.dir, { bits: cfg.devPki.bits });
  if (pki.generatedKeys > 0) log.info({ dir: pki.dir, keys: pki.generatedKeys, ms: Date.now() - t0 }, 'development PKI created (NOT FOR PRODUCTION)');
  return { certPath: pki.ca.certPath, crlPath: pki.ca.crlPath };
}

function loadIdentity(cfg: ServerConfig, log?: Logger): Identity {
  if (cfg.identity) return { signature: loadKeyRef(cfg.identity.signature), ciphers: [loadKeyRef(cfg.identity.cipher)] };
  // The folder is followed while running: `amtsbote certs rotate` takes effect without a restart (gateway/identity.ts).
  if (cfg.identityDir && existsSync(cfg.identityDir)) {
    const dir = cfg.identityDir;
    return liveIdentityDir(dir, {
      onReload: (id) => log?.info({ dir, ciphers: id.ciphers.length, cipher: id.ciphers[0]?.cert.serialNumber, signature: id.signature.cert.serialNumber }, 'identity folder re-read'),
      onError: (err) => log?.warn({ dir, err }, 'identity folder changed but could not be loaded; previous keys stay in use'),
    });
  }
  throw new OsciError('ERR_USAGE', `no intermediary identity: ${cfg.identityDir ?? '(none)'} does not exist; run "amtsbote certs init-dev" or configure identity`);
}

/** Migrates the store (which runs crash recovery) and registers the dev identities and configured participants. */
async function migrateAndRegister(store: Store, cfg: ServerConfig): Promise<void> {
  await store.migrate();
  if (cfg.devPki.enabled && cfg.registerDevIdentities) {
    for (const id of DEFAULT_DEV_IDENTITIES) {
      if (id === 'intermediary') continue;
      const dir = join(cfg.devPki.dir, id);
      if (!existsSync(join(dir, 'signature.cert.pem'))) continue;
      await register(store, id, [loadCertificate(join(dir, 'signature.cert.pem'))], [loadCertificate(join(dir, 'cipher.cert.pem'))], { name: `${id} (dev)` });
    }
  }
  for (const p of cfg.participants) {
    await register(store, p.id, p.signatureCerts.flatMap((f) => [loadCertificate(readFileSync(f))]), p.cipherCerts.map((f) => loadCertificate(readFileSync(f))), { name: p.name, endpointUrl: p.endpointUrl });
  }
}

/** Everything before listening that must run exactly once per start, in the cluster primary; returns the mailboxes. */
export async function prepareServer(cfg: ServerConfig, opts: { log?: Logger } = {}): Promise<{ prepared: PreparedServer; mailboxes: string[] }> {
  const log = opts.log ?? createLogger({ level: cfg.logLevel });
  // A configured but unusable admin token stops the start before any worker is forked.
  resolveAdminToken(cfg.admin, process.env, log);
  mkdirSync(join(cfg.dataDir, 'tmp'), { recursive: true });
  const devCa = await initDev(cfg, log);
  loadIdentity(cfg);
  const store = await openStore(cfg.db ?? `sqlite:${cfg.dataDir}`);
  try {
    await migrateAndRegister(store, cfg);
    return { prepared: devCa ? { devCa } : {}, mailboxes: (await store.listParticipants()).map((p) => p.id) };
  } finally {
    await store.close();
  }
}

export async function startServer(cfg: ServerConfig, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger({ level: cfg.logLevel });
  mkdirSync(cfg.dataDir, { recursive: true });
  const tmpDir = join(cfg.dataDir, 'tmp');
  mkdirSync(tmpDir, { recursive: true });

  const anchors: X509Certificate[] = Trust.anchorsFrom(cfg.trustAnchors);
  const crlFiles = [...cfg.crls];
  const devCa = opts.prepared ? opts.prepared.devCa : await initDev(cfg, log);
  if (devCa) {
    anchors.push(loadCertificate(devCa.certPath));
    crlFiles.push(devCa.crlPath);
  }
  const identity = loadIdentity(cfg, log);
  const adminToken = resolveAdminToken(cfg.admin, process.env, log);

  const store = await openStore(cfg.db ?? `sqlite:${cfg.dataDir}`);
  if (!opts.prepared) await migrateAndRegister(store, cfg);

  const metrics = createMetrics();
  const trust = new Trust(store, { anchors, crlFiles, trustRegistered: cfg.trustRegisteredCertificates, minRsaBits: cfg.minRsaBits });
  // Days-to-expiry gauge and start-up warnings for the own and every registered certificate, refreshed every 6 h.
  const expiry = await startCertificateExpiryWatch({ store, identity, metrics, log, warnDays: cfg.certificateWarnDays });
  const intermediary = new Intermediary({ store, identity, trust, tmpDir, limits: cfg.limits, acceptForeignMessageIds: true, metrics, passive: { timeoutMs: cfg.passiveTimeoutMs } });
  let shuttingDown = false;
  let url = '';
  const app = createApp({
    intermediary, store, metrics, log, publicUrl: () => cfg.publicUrl ?? url, isShuttingDown: () => shuttingDown,
    ownCertificates: () => ({ cipher: identity.ciphers.map((c) => c.cert), signature: identity.signature.cert }),
    admin: { store, token: adminToken, checkCertificate: (cert, usage) => trust.check(cert, usage), log },
  });
  const server: Server = createServer({ requestTimeout: 0 }, app);
  // No total deadline (200 MB over a slow line is fine), but a silent connection is closed (config idleTimeoutMs).
  server.setTimeout(cfg.idleTimeoutMs);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  url = `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info({ url, store: store.kind, admin: adminToken !== undefined }, 'intermediary listening');

  return {
    url,
    store,
    identity,
    log,
    metrics,
    async stop() {
      if (shuttingDown) return;
      shuttingDown = true;
      expiry.stop();
      // Stop accepting; in-flight requests finish (server.close waits for them), idle keep-alives are closed.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
      await store.close();
      log.info('intermediary stopped');
    },
  };
}
