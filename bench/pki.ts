/**
 * The bench's dev PKI: 3072-bit keys (the product default, BSI TR-02102), generated once into bench/.pki and
 * reused by every run, so that key generation never lands in a measurement.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initDevPki } from '../crypto/devpki.ts';
import { loadCertificate, loadPrivateKey } from '../crypto/keys.ts';

export const BENCH_PKI_DIR = join(dirname(fileURLToPath(import.meta.url)), '.pki');
export const BENCH_RSA_BITS = 3072;

export interface KeyPair {
  key: KeyObject;
  cert: X509Certificate;
}

export interface BenchIdentity {
  id: string;
  signature: KeyPair;
  cipher: KeyPair;
}

/** Creates the PKI if missing (idempotent); returns its folder and the CA certificate path. */
export async function ensureBenchPki(dir = BENCH_PKI_DIR): Promise<{ dir: string; caCertPath: string; generatedKeys: number }> {
  const r = await initDevPki(dir, { bits: BENCH_RSA_BITS });
  return { dir, caCertPath: r.ca.certPath, generatedKeys: r.generatedKeys };
}

export function benchIdentity(id: string, dir = BENCH_PKI_DIR): BenchIdentity {
  const pair = (u: string): KeyPair => ({ key: loadPrivateKey(join(dir, id, `${u}.key.pem`)), cert: loadCertificate(join(dir, id, `${u}.cert.pem`)) });
  return { id, signature: pair('signature'), cipher: pair('cipher') };
}
