/**
 * Certificates and public keys parsed once per process: a client sends the same certificates with every message,
 * and matching a key by its SPKI needs a DER export each time. Caches hold only parsed public data (bounded by
 * count; cleared when full) and never a trust decision.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

const CERT_CACHE_MAX = 1000;
const certs = new Map<string, X509Certificate>();
const certSpki = new WeakMap<X509Certificate, Buffer>();
const keySpki = new WeakMap<KeyObject, Buffer>();

/** `new X509Certificate(der)`, the same DER parsed once (throws as the constructor does). */
export function parseCertificate(der: Uint8Array): X509Certificate {
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  const hit = certs.get(key);
  if (hit) return hit;
  const cert = new X509Certificate(der);
  if (certs.size >= CERT_CACHE_MAX) certs.clear();
  certs.set(key, cert);
  return cert;
}

/** DER SubjectPublicKeyInfo of a certificate's key. */
export function spkiOfCertificate(cert: X509Certificate): Buffer {
  let spki = certSpki.get(cert);
  if (!spki) {
    spki = cert.publicKey.export({ type: 'spki', format: 'der' });
    certSpki.set(cert, spki);
  }
  return spki;
}

/** DER SubjectPublicKeyInfo of a key (the public half of a private key). */
export function spkiOfKey(key: KeyObject): Buffer {
  let spki = keySpki.get(key);
  if (!spki) {
    spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
    keySpki.set(key, spki);
  }
  return spki;
}
