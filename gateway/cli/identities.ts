/** Client-side identities (`--as ID`) and the intermediary's directory, shared by send / fetch / process-card. */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { OsciClient, type KeyPair } from '../../adapters/osci/client.ts';
import { loadCertificate, loadCertificates, loadPkcs12, loadPrivateKey } from '../../crypto/keys.ts';
import { checkCertificate } from '../../crypto/x509.ts';
import { OsciError } from '../../protocol/errors.ts';
import { fail, pinFromEnv } from './run.ts';

export interface ClientGlobals {
  server?: string;
  as: string;
  identityRoot?: string;
  pinEnv?: string;
  /** File holding the PIN (first line); excludes pinEnv. */
  pinFile?: string;
  trustAnchor?: string[];
  /** Any OSCI 1.2 intermediary without a directory: its endpoint and pinned certificates (PEM files). */
  endpoint?: string;
  intermediaryCipher?: string;
  intermediarySignature?: string;
}

/** The PIN from --pin-env / --pin-file (mailbox configuration pinEnv / pinFile); never from a configuration value. */
function pinOf(o: Pick<ClientGlobals, 'pinEnv' | 'pinFile'>): string | undefined {
  if (o.pinEnv && o.pinFile) fail('give the PIN either by environment variable or by file, not both');
  if (!o.pinFile) return pinFromEnv(o.pinEnv);
  let text: string;
  try {
    text = readFileSync(o.pinFile, 'utf8');
  } catch (e) {
    fail(`cannot read the PIN file ${o.pinFile}: ${(e as Error).message}`);
  }
  return text.split(/\r?\n/)[0] ?? '';
}

export function serverUrl(o: { server?: string }): string {
  const s = o.server ?? process.env.AMTSBOTE_SERVER;
  if (!s) fail('--server URL is required (or set AMTSBOTE_SERVER), e.g. --server http://127.0.0.1:8080');
  return s.replace(/\/+$/, '');
}

/**
 * `--as ID`: a folder holding signature and cipher keys, as PEM pairs or PKCS#12 files (PIN from --pin-env).
 * Older cipher keys kept by a rotation (`cipher-*.key.pem`) still open content sealed before it.
 */
export function loadClientIdentity(o: ClientGlobals): { signer: KeyPair; cipher: KeyPair; olderCipherKeys: KeyObject[]; dir: string } {
  const root = resolve(o.identityRoot ?? process.env.AMTSBOTE_IDENTITIES ?? 'certs-dev');
  const dir = join(root, o.as);
  if (!existsSync(dir)) fail(`no identity folder ${dir} for --as ${o.as} (set --identity-root or AMTSBOTE_IDENTITIES)`);
  const pair = (usage: 'signature' | 'cipher'): KeyPair => {
    const p12 = join(dir, `${usage}.p12`);
    if (existsSync(p12)) {
      const c = loadPkcs12(p12, pinOf(o) ?? fail(`${p12} needs --pin-env VAR or --pin-file FILE`));
      return { key: c.key, cert: c.certificate };
    }
    return { key: loadPrivateKey(join(dir, `${usage}.key.pem`), { pin: pinOf(o) }), cert: loadCertificate(join(dir, `${usage}.cert.pem`)) };
  };
  const olderCipherKeys = readdirSync(dir)
    .filter((f) => /^cipher-.+\.key\.pem$/.test(f))
    .map((f) => loadPrivateKey(join(dir, f), { pin: pinOf(o) }));
  return { signer: pair('signature'), cipher: pair('cipher'), olderCipherKeys, dir };
}

/** Trust anchors of the client: --trust-anchor files, else the dev CA next to the identities. */
export function clientAnchors(o: ClientGlobals): X509Certificate[] {
  if (o.trustAnchor?.length) return o.trustAnchor.flatMap((f) => loadCertificates(f));
  const dev = join(resolve(o.identityRoot ?? process.env.AMTSBOTE_IDENTITIES ?? 'certs-dev'), 'ca', 'ca.cert.pem');
  return existsSync(dev) ? [loadCertificate(dev)] : [];
}

async function getJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new OsciError('ERR_REMOTE', `cannot reach ${url}: ${(e as Error).message}`, { cause: e });
  }
  if (res.status === 404) throw new OsciError('ERR_NOT_FOUND', `${url}: not found`);
  if (!res.ok) throw new OsciError('ERR_REMOTE', `${url}: HTTP ${res.status}`);
  return res.json();
}

interface CertJson {
  pem: string;
}

/** The intermediary's certificates from its directory, accepted only if they chain to our anchors. */
export async function intermediaryFromDirectory(server: string, anchors: X509Certificate[]) {
  const d = (await getJson(`${server}/directory`)) as { endpoint: string; cipherCertificates: CertJson[]; signatureCertificate: CertJson };
  const cipherPem = d.cipherCertificates[0]?.pem;
  if (!cipherPem) throw new OsciError('ERR_REMOTE', 'the intermediary announces no cipher certificate');
  const cipher = new X509Certificate(cipherPem);
  const signature = new X509Certificate(d.signatureCertificate.pem);
  for (const [c, usage] of [[cipher, 'cipher'], [signature, 'signature']] as const) {
    const check = checkCertificate(c, { usage, anchors });
    const first = check.errors[0];
    if (first) throw new OsciError(first.code, `intermediary ${usage} certificate: ${first.message}`);
  }
  return { endpoint: d.endpoint, cipher, signature };
}

/**
 * A certificate pinned by configuration: it is its own trust anchor, so only its validity period, key usage and
 * key strength are checked (the operator vouches for it, as for a directory entry).
 */
export function pinnedCertificate(file: string, usage: 'cipher' | 'signature', what: string): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = loadCertificate(file);
  } catch (e) {
    throw new OsciError('ERR_USAGE', `${what}: cannot read ${file}: ${(e as Error).message}`);
  }
  const first = checkCertificate(cert, { usage, anchors: [cert] }).errors[0];
  if (first) throw new OsciError(first.code, `${what} (${file}): ${first.message}`);
  return cert;
}

/** An intermediary without directory: endpoint and pinned certificates. */
export function pinnedIntermediary(endpoint: string, cipherCert: string, signatureCert: string) {
  return { endpoint, cipher: pinnedCertificate(cipherCert, 'cipher', 'intermediary cipher certificate'), signature: pinnedCertificate(signatureCert, 'signature', 'intermediary signature certificate') };
}

/** A postbox's current cipher certificate from the directory (SAFE/DVDV style lookup). */
export async function recipientCipher(server: string, id: string, anchors: X509Certificate[]): Promise<X509Certificate> {
  const d = (await getJson(`${server}/directory/${encodeURIComponent(id)}`)) as { cipherCertificates: CertJson[] };
  const pem = d.cipherCertificates[0]?.pem;
  if (!pem) throw new OsciError('ERR_NOT_FOUND', `postbox ${id} has no valid cipher certificate`);
  const cert = new X509Certificate(pem);
  const check = checkCertificate(cert, { usage: 'cipher', anchors });
  const first = check.errors[0];
  if (first) throw new OsciError(first.code, `cipher certificate of ${id}: ${first.message}`);
  return cert;
}

export async function connect(o: ClientGlobals, extra: { onUploadProgress?: (sent: number, total?: number) => void } = {}) {
  const pinned = [o.endpoint, o.intermediaryCipher, o.intermediarySignature];
  if (pinned.some((v) => v !== undefined) && pinned.some((v) => v === undefined)) fail('--endpoint, --intermediary-cipher and --intermediary-signature go together');
  const server = o.endpoint ? undefined : serverUrl(o);
  const me = loadClientIdentity(o);
  const anchors = clientAnchors(o);
  const im = o.endpoint && o.intermediaryCipher && o.intermediarySignature ? pinnedIntermediary(o.endpoint, o.intermediaryCipher, o.intermediarySignature) : await intermediaryFromDirectory(server as string, anchors);
  const tmp = mkdtempSync(join(tmpdir(), 'amtsbote-client-'));
  const client = new OsciClient({ endpoint: im.endpoint, intermediary: im, signer: me.signer, cipher: me.cipher, tmpDir: tmp, ...extra });
  return { server, me, anchors, client, tmp };
}
