/** Throw-away RSA identities with a self-signed certificate, and stream collection, for protocol-level tests. */
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createCertificate } from '../../crypto/devpki.ts';

export interface Identity {
  key: KeyObject;
  cert: X509Certificate;
}

/** RSA-3072 key and a 30-day self-signed certificate usable for signing and encryption. */
export function selfSignedIdentity(cn: string, organization = 'Amtsbote test'): Identity {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const day = 86_400_000;
  const cert = createCertificate({
    subject: { CN: cn, O: organization },
    publicKey,
    signingKey: privateKey,
    notBefore: new Date(Date.now() - day),
    notAfter: new Date(Date.now() + 30 * day),
    keyUsage: ['digitalSignature', 'keyEncipherment', 'dataEncipherment'],
  });
  return { key: privateKey, cert };
}

export async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
