/**
 * RSA-OAEP key transport (RFC 8017 §7.1) for xmlenc rsa-oaep-mgf1p and xmlenc11 rsa-oaep.
 * node:crypto's `oaepHash` sets the OAEP digest and the MGF1 hash together; when they differ
 * (W3C xmlenc11 interop: SHA-384/512 digest with MGF1-SHA1) EME-OAEP is done here over raw RSA.
 * Every unwrap failure is one generic ERR_DECRYPT (RFC 8017 §7.1.2 note: no distinguishable errors).
 */
import { constants, createHash, privateDecrypt, publicEncrypt, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { HashName } from './algorithms.ts';
import { CryptoError } from './errors.ts';
import { DECRYPT_FAILED } from './aesgcm.ts';

export interface OaepParams {
  /** OAEP digest (xenc DigestMethod). */
  hash: HashName;
  /** MGF1 hash (xenc11:MGF). */
  mgfHash: HashName;
  /** OAEP label L (xenc:OAEPparams); empty when absent. */
  label?: Buffer;
  /** Refuse keys below this modulus size with ERR_KEY_TOO_SMALL (policy.minRsaBits). */
  minRsaBits: number;
}

const HASH_BYTES: Readonly<Record<HashName, number>> = Object.freeze({
  sha1: 20,
  sha256: 32,
  sha384: 48,
  sha512: 64,
  'sha3-256': 32,
  'sha3-512': 64,
});

/** Modulus size of an RSA key; refuses non-RSA keys and keys below `minBits`. */
export function rsaModulusBits(key: KeyObject, minBits: number): number {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CryptoError('ERR_KEY_INVALID', `RSA-OAEP needs an RSA key, got ${key.asymmetricKeyType ?? key.type}`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new CryptoError('ERR_KEY_INVALID', 'RSA key without modulus length');
  if (bits < minBits) throw new CryptoError('ERR_KEY_TOO_SMALL', `RSA key has ${bits} bits, policy minimum is ${minBits}`);
  return bits;
}

/** MGF1 (RFC 8017 §B.2.1). */
function mgf1(hash: HashName, seed: Buffer, length: number): Buffer {
  const hLen = HASH_BYTES[hash];
  const out = Buffer.alloc(Math.ceil(length / hLen) * hLen);
  const counter = Buffer.alloc(4);
  for (let i = 0, off = 0; off < length; i++, off += hLen) {
    counter.writeUInt32BE(i, 0);
    createHash(hash).update(seed).update(counter).digest().copy(out, off);
  }
  return out.subarray(0, length);
}

function xorInto(target: Buffer, mask: Buffer): void {
  for (let i = 0; i < target.length; i++) target[i] = (target[i] as number) ^ (mask[i] as number);
}

/** EME-OAEP encoding (RFC 8017 §7.1.1 step 2) for k-byte modulus. */
function emeOaepEncode(message: Buffer, k: number, p: OaepParams): Buffer {
  const hLen = HASH_BYTES[p.hash];
  const label = p.label ?? Buffer.alloc(0);
  if (message.length > k - 2 * hLen - 2) throw new CryptoError('ERR_KEY_INVALID', 'message too long for RSA-OAEP with this key and digest');
  const lHash = createHash(p.hash).update(label).digest();
  const db = Buffer.concat([lHash, Buffer.alloc(k - message.length - 2 * hLen - 2), Buffer.from([1]), message]);
  const seed = randomBytes(hLen);
  xorInto(db, mgf1(p.mgfHash, seed, k - hLen - 1));
  xorInto(seed, mgf1(p.mgfHash, db, hLen));
  return Buffer.concat([Buffer.from([0]), seed, db]);
}

/**
 * EME-OAEP decoding (RFC 8017 §7.1.2 step 3) without data-dependent branches or early exits:
 * Y = 0, lHash' = lHash and the first non-zero octet after lHash' being 0x01 are folded into one flag.
 */
function emeOaepDecode(em: Buffer, k: number, p: OaepParams): Buffer {
  const hLen = HASH_BYTES[p.hash];
  const label = p.label ?? Buffer.alloc(0);
  const lHash = createHash(p.hash).update(label).digest();
  const y = em[0] as number;
  const seed = Buffer.from(em.subarray(1, 1 + hLen));
  const db = Buffer.from(em.subarray(1 + hLen));
  xorInto(seed, mgf1(p.mgfHash, db, hLen));
  xorInto(db, mgf1(p.mgfHash, seed, k - hLen - 1));
  let good = timingSafeEqual(db.subarray(0, hLen), lHash) ? 1 : 0;
  good &= ((y - 1) >>> 31) & 1; // 1 iff y == 0
  // Scan PS ‖ 0x01 ‖ M: remember the index of the first non-zero octet and whether it is 0x01.
  let looking = 1;
  let index = 0;
  let sepOk = 0;
  for (let i = hLen; i < db.length; i++) {
    const b = db[i] as number;
    const isZero = ((b - 1) >>> 31) & 1;
    const isOne = (((b ^ 1) - 1) >>> 31) & 1;
    const hit = looking & (isZero ^ 1);
    index = (index & -(hit ^ 1)) | (i & -hit);
    sepOk |= hit & isOne;
    looking &= isZero;
  }
  good &= sepOk & (looking ^ 1);
  if (good !== 1) throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
  return Buffer.from(db.subarray(index + 1));
}

/** Encrypt (wrap) a symmetric key for `publicKey` with RSA-OAEP. */
export function oaepWrap(publicKey: KeyObject, keyBytes: Buffer, p: OaepParams): Buffer {
  const bits = rsaModulusBits(publicKey, p.minRsaBits);
  if (p.hash === p.mgfHash) {
    return publicEncrypt(
      { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: p.hash, ...(p.label?.length ? { oaepLabel: p.label } : {}) },
      keyBytes,
    );
  }
  const k = Math.ceil(bits / 8);
  return publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, emeOaepEncode(keyBytes, k, p));
}

/** Decrypt (unwrap) an RSA-OAEP encrypted key. Any failure: ERR_DECRYPT with the generic message. */
export function oaepUnwrap(privateKey: KeyObject, wrapped: Buffer, p: OaepParams): Buffer {
  const bits = rsaModulusBits(privateKey, p.minRsaBits);
  const k = Math.ceil(bits / 8);
  const hLen = HASH_BYTES[p.hash];
  // RFC 8017 §7.1.2 step 1: length checks.
  if (wrapped.length !== k || k < 2 * hLen + 2) throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
  try {
    if (p.hash === p.mgfHash) {
      return privateDecrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: p.hash, ...(p.label?.length ? { oaepLabel: p.label } : {}) },
        wrapped,
      );
    }
    // RSADP (step 2) with OpenSSL's blinding; the integer-to-octets conversion keeps leading zeros (k bytes).
    const em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, wrapped);
    if (em.length !== k) throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
    return emeOaepDecode(em, k, p);
  } catch {
    // No cause attached: the caller sees one error whatever failed (RFC 8017 §7.1.2 note).
    throw new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
  }
}
