/** One development PKI per test process (2048-bit keys for speed; the product default is 3072). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initDevPki, type DevPkiResult } from '../../crypto/devpki.ts';
import { loadCertificate, loadPrivateKey } from '../../crypto/keys.ts';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { resolveConfig, type ServerConfig } from '../../gateway/config.ts';
import { createLogger, silentLogger, type Logger } from '../../gateway/log.ts';
import type { RunningServer } from '../../gateway/server.ts';
import { OsciClient, type OsciClientOptions } from '../../adapters/osci/client.ts';

let pki: Promise<DevPkiResult> | undefined;

export function testPki(): Promise<DevPkiResult> {
  pki ??= initDevPki(mkdtempSync(join(tmpdir(), 'amtsbote-pki-')), { bits: 2048 });
  return pki;
}

export interface TestIdentity {
  id: string;
  signature: { key: KeyObject; cert: X509Certificate };
  cipher: { key: KeyObject; cert: X509Certificate };
}

export async function testIdentity(id: string): Promise<TestIdentity> {
  const r = await testPki();
  const dir = join(r.dir, id);
  const pair = (u: string) => ({ key: loadPrivateKey(join(dir, `${u}.key.pem`)), cert: loadCertificate(join(dir, `${u}.cert.pem`)) });
  return { id, signature: pair('signature'), cipher: pair('cipher') };
}

/** An in-process server configuration on the test PKI: any free port, its own data folder, silent logs. */
export function devConfig(pkiDir: string, dataDir: string, extra: Partial<ServerConfig> = {}): ServerConfig {
  return resolveConfig({ port: 0, dataDir, identityDir: join(pkiDir, 'intermediary'), devPki: { enabled: true, dir: pkiDir, bits: 2048 }, logLevel: 'silent', ...extra });
}

/** Silent, unless AMTSBOTE_TEST_LOG names a level (debugging a failing e2e test). */
export function testLogger(): Logger {
  return process.env.AMTSBOTE_TEST_LOG ? createLogger({ level: process.env.AMTSBOTE_TEST_LOG }) : silentLogger;
}

/** An OSCI client of `who` for an in-process server, pinned to its current keys (`extra`: e.g. plaintext, another endpoint). */
export function clientFor(server: RunningServer, who: TestIdentity, tmp: string, extra: Partial<OsciClientOptions> = {}): OsciClient {
  const cipher = server.identity.ciphers[0];
  if (!cipher) throw new Error('server without cipher key');
  return new OsciClient({
    endpoint: `${server.url}/osci`,
    intermediary: { cipher: cipher.cert, signature: server.identity.signature.cert },
    signer: who.signature,
    cipher: who.cipher,
    tmpDir: tmp,
    ...extra,
  });
}
