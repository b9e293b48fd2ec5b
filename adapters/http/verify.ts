/**
 * The receiving side of the HTTP DMS adapter's signature, for DMS integrators (and the tests): the
 * `X-Amtsbote-Signature: sha256=<hex>` header is HMAC-SHA256 with the shared secret over the exact body bytes.
 * Compare in constant time; a DMS should import each `Idempotency-Key` (the OSCI MessageId) once and answer a
 * repeated key with 2xx without importing again.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function verifyDmsSignature(body: Buffer, header: string | undefined, secret: Buffer): boolean {
  const m = /^sha256=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m?.[1]) return false;
  const want = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(want, Buffer.from(m[1], 'hex'));
}
