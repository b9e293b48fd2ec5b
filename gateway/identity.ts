/**
 * The intermediary's own keys: one signature key (SupplierSignature) and one or more cipher keys (transport
 * decryption; several while a rotation overlaps). Loaded from an identity folder
 * (`signature.{key,cert}.pem`, `cipher.{key,cert}.pem`, older cipher keys as `cipher-*.{key,cert}.pem`)
 * or from explicit key references (PEM or PKCS#12 with the PIN in an environment variable).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { keyMatchesCertificate, loadCertificate, loadPkcs12, loadPrivateKey } from '../crypto/keys.ts';
import { OsciError } from '../protocol/errors.ts';
import type { KeyRef } from './config.ts';

export interface KeyPair {
  key: KeyObject;
  cert: X509Certificate;
}

export interface Identity {
  signature: KeyPair;
  /** Newest first: the first is announced in the directory, all of them decrypt. */
  ciphers: KeyPair[];
}

function pinOf(env: string | undefined): string | undefined {
  if (!env) return undefined;
  const pin = process.env[env];
  if (pin === undefined) throw new OsciError('ERR_USAGE', `environment variable ${env} (PIN) is not set`);
  return pin;
}

export function loadKeyRef(ref: KeyRef): KeyPair {
  if ('p12' in ref) {
    const p = loadPkcs12(ref.p12, pinOf(ref.pinEnv) ?? '');
    return { key: p.key, cert: p.certificate };
  }
  const pair = { key: loadPrivateKey(ref.key, { pin: pinOf(ref.pinEnv) }), cert: loadCertificate(ref.cert) };
  if (!keyMatchesCertificate(pair.key, pair.cert)) throw new OsciError('ERR_KEY_INVALID', `${ref.key} does not match ${ref.cert}`);
  return pair;
}

export function loadIdentityDir(dir: string): Identity {
  const pair = (name: string): KeyPair => loadKeyRef({ key: join(dir, `${name}.key.pem`), cert: join(dir, `${name}.cert.pem`) });
  if (!existsSync(join(dir, 'signature.key.pem'))) throw new OsciError('ERR_USAGE', `identity folder ${dir} has no signature.key.pem`);
  const older = readdirSync(dir)
    .filter((f) => /^cipher-.+\.key\.pem$/.test(f))
    .map((f) => f.slice(0, -'.key.pem'.length));
  const ciphers = [pair('cipher'), ...older.map(pair)].sort((a, b) => Date.parse(b.cert.validFrom) - Date.parse(a.cert.validFrom));
  return { signature: pair('signature'), ciphers };
}
