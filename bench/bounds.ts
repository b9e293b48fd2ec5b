/** The hardware bound, measured in the same run as every scenario (issue 7): RSA private ops/s, AES-GCM and SHA-256 MB/s. */
import { createCipheriv, createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

export interface Bounds {
  rsa_bits: number;
  rsa_private_ops_per_s: number;
  aes_gcm_mb_per_s: number;
  sha256_mb_per_s: number;
}

function rate(seconds: number, fn: () => void): number {
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let n = 0;
  while (performance.now() < end) {
    fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

export function measureBounds(opts: { quick: boolean; rsaKey?: KeyObject; rsaBits?: number }): Bounds {
  const bits = opts.rsaBits ?? 3072;
  const key = opts.rsaKey ?? generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
  const secs = opts.quick ? 1 : 3;
  const msg = randomBytes(32);
  const rsa = rate(secs, () => sign('sha256', msg, key));
  const chunk = randomBytes(64 * 1024);
  const aesKey = randomBytes(32);
  const aesChunks = rate(secs, () => {
    const c = createCipheriv('aes-256-gcm', aesKey, randomBytes(12));
    for (let i = 0; i < 16; i++) c.update(chunk);
    c.final();
  });
  const shaChunks = rate(secs, () => {
    const h = createHash('sha256');
    for (let i = 0; i < 16; i++) h.update(chunk);
    h.digest();
  });
  const mb = (16 * chunk.length) / 1e6;
  return {
    rsa_bits: key.asymmetricKeyDetails?.modulusLength ?? bits,
    rsa_private_ops_per_s: Math.round(rsa),
    aes_gcm_mb_per_s: Math.round(aesChunks * mb),
    sha256_mb_per_s: Math.round(shaChunks * mb),
  };
}
