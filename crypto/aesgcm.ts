/**
 * Binary-safe AES for XML Encryption on Buffers and streams (xmlenc-core1 §5.2.2, osci-protocol.md §5, §9).
 * Wire format of AES-GCM: IV(12, or 16 in old OSCI peers) ‖ ciphertext ‖ tag(16).
 * Every failure of an authenticated decryption is the same ERR_DECRYPT with the same message (no oracle).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { CipherGCM, CipherGCMTypes, DecipherGCM } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import type { BlockCipherAlg, CryptoPolicy } from './algorithms.ts';
import { CryptoError } from './errors.ts';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;
const AES_BLOCK = 16;

/** The one message for every failed decryption, whatever the cause. */
export const DECRYPT_FAILED = 'decryption failed';

export type GcmIvLength = 12 | 16;

/** No cause attached: callers and logs see the same error whatever failed. */
function decryptFailed(): CryptoError {
  return new CryptoError('ERR_DECRYPT', DECRYPT_FAILED);
}

/** OpenSSL name of AES-GCM for this key; only 128- and 256-bit keys are in the profile. */
function gcmNameForKey(key: Buffer): 'aes-128-gcm' | 'aes-256-gcm' {
  if (key.length === 32) return 'aes-256-gcm';
  if (key.length === 16) return 'aes-128-gcm';
  throw new CryptoError('ERR_KEY_INVALID', `AES-GCM key must be 16 or 32 bytes, got ${key.length}`);
}

function checkIvLength(ivLength: number): asserts ivLength is GcmIvLength {
  if (ivLength !== 12 && ivLength !== 16) {
    throw new CryptoError('ERR_ENC_STRUCTURE', `AES-GCM IV length must be 12 or 16 bytes, got ${ivLength}`);
  }
}

/** AES-GCM encrypt with a fresh random 96-bit IV (xmlenc-core1 §5.2.4). Returns IV‖ct‖tag. */
export function gcmEncrypt(key: Buffer, plaintext: Buffer): Buffer {
  const iv = randomBytes(GCM_IV_BYTES);
  const cipher = createCipheriv(gcmNameForKey(key), key, iv, { authTagLength: GCM_TAG_BYTES }) as CipherGCM;
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, ct, cipher.getAuthTag()]);
}

/**
 * Decrypt IV‖ct‖tag with the GCM cipher `alg`. The key must have exactly the cipher's size.
 * Returns plaintext only after the tag verified.
 */
export function gcmDecrypt(alg: Readonly<BlockCipherAlg>, key: Buffer, data: Buffer, opts: { ivLength?: GcmIvLength } = {}): Buffer {
  if (alg.mode !== 'gcm') throw new CryptoError('ERR_ALG_NOT_ALLOWED', `${alg.uri} is not an AES-GCM cipher`);
  if (key.length !== alg.keyBytes) throw decryptFailed();
  const ivLength = opts.ivLength ?? GCM_IV_BYTES;
  checkIvLength(ivLength);
  if (data.length < ivLength + GCM_TAG_BYTES) throw decryptFailed();
  try {
    const iv = data.subarray(0, ivLength);
    const tag = data.subarray(data.length - GCM_TAG_BYTES);
    const decipher = createDecipheriv(alg.nodeName as CipherGCMTypes, key, iv, { authTagLength: GCM_TAG_BYTES }) as DecipherGCM;
    decipher.setAuthTag(tag);
    const out = decipher.update(data.subarray(ivLength, data.length - GCM_TAG_BYTES));
    return Buffer.concat([out, decipher.final()]);
  } catch {
    throw decryptFailed();
  }
}

/**
 * Legacy AES-CBC decrypt of IV(16)‖ct, only with policy.allowLegacyCbc (decrypt-only, never encrypt).
 * Padding per xmlenc-core1 §5.2.1: the last octet N (1..16) counts the padding octets, whose other
 * values are arbitrary (xmlsec writes random ones), so only N and the lengths are checked.
 * CBC is unauthenticated; every failure is the same generic ERR_DECRYPT.
 */
export function cbcDecryptLegacy(alg: Readonly<BlockCipherAlg>, key: Buffer, data: Buffer, policy: CryptoPolicy): Buffer {
  if (alg.mode !== 'cbc') throw new CryptoError('ERR_ALG_NOT_ALLOWED', `${alg.uri} is not an AES-CBC cipher`);
  if (!policy.allowLegacyCbc) {
    throw new CryptoError('ERR_ALG_NOT_ALLOWED', `block cipher ${alg.uri} refused: AES-CBC needs the legacy-CBC flag`);
  }
  if (key.length !== alg.keyBytes) throw decryptFailed();
  if (data.length < 2 * AES_BLOCK || data.length % AES_BLOCK !== 0) throw decryptFailed();
  let padded: Buffer;
  try {
    const decipher = createDecipheriv(alg.nodeName, key, data.subarray(0, AES_BLOCK));
    decipher.setAutoPadding(false);
    padded = Buffer.concat([decipher.update(data.subarray(AES_BLOCK)), decipher.final()]);
  } catch {
    throw decryptFailed();
  }
  const n = padded[padded.length - 1] ?? 0;
  if (n < 1 || n > AES_BLOCK) throw decryptFailed();
  return padded.subarray(0, padded.length - n);
}

/**
 * Streaming AES-GCM encryption: emits a fresh random 12-byte IV, then the ciphertext chunk by chunk,
 * then the 16-byte tag. Memory stays bounded by the chunk size.
 */
export function createGcmEncryptStream(key: Buffer): Transform {
  const iv = randomBytes(GCM_IV_BYTES);
  const cipher = createCipheriv(gcmNameForKey(key), key, iv, { authTagLength: GCM_TAG_BYTES }) as CipherGCM;
  let ivSent = false;
  const sendIv = (t: Transform) => {
    if (!ivSent) {
      ivSent = true;
      t.push(iv);
    }
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      sendIv(this);
      const out = cipher.update(chunk);
      if (out.length) this.push(out);
      cb();
    },
    flush(cb: TransformCallback) {
      sendIv(this);
      const out = cipher.final();
      if (out.length) this.push(out);
      this.push(cipher.getAuthTag());
      cb();
    },
  });
}

/**
 * Streaming AES-GCM decryption of IV‖ct‖tag. The last 16 bytes seen are held back as the tag candidate;
 * the stream's final callback fails with ERR_DECRYPT when the tag does not verify (or the data is too short).
 *
 * SECURITY: plaintext chunks are emitted BEFORE the tag is checked. Callers must treat everything read from
 * this stream as unauthenticated until the stream has ended without error ('end'/'finish' after the last
 * chunk, or a resolved pipeline()); on 'error' discard all of it (write to a temporary file, commit on success).
 */
export function createGcmDecryptStream(key: Buffer, opts: { ivLength?: GcmIvLength } = {}): Transform {
  const name = gcmNameForKey(key);
  const ivLength = opts.ivLength ?? GCM_IV_BYTES;
  checkIvLength(ivLength);
  let ivParts: Buffer[] = [];
  let ivHave = 0;
  let decipher: DecipherGCM | undefined;
  /**
   * The most recent bytes, not yet given to the decipher: the last chunk (at least the tag candidate's 16 bytes).
   * Holding a whole chunk instead of its last 16 bytes gives one decipher call and one output chunk per input chunk.
   */
  let pending: Buffer = Buffer.alloc(0);

  const feed = (t: Transform, data: Buffer) => {
    if (!decipher || data.length === 0) return;
    const out = decipher.update(data);
    if (out.length) t.push(out);
  };

  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      try {
        let rest = chunk;
        if (!decipher) {
          const need = ivLength - ivHave;
          const take = rest.subarray(0, need);
          ivParts.push(Buffer.from(take));
          ivHave += take.length;
          rest = rest.subarray(take.length);
          if (ivHave < ivLength) return cb();
          decipher = createDecipheriv(name, key, Buffer.concat(ivParts), { authTagLength: GCM_TAG_BYTES }) as DecipherGCM;
          ivParts = [];
        }
        if (rest.length >= GCM_TAG_BYTES) {
          // At least a tag's length follows: everything held back is ciphertext.
          feed(this, pending);
          pending = rest;
        } else if (rest.length > 0) {
          const joined = Buffer.concat([pending, rest]);
          const excess = joined.length - GCM_TAG_BYTES;
          if (excess > 0) feed(this, joined.subarray(0, excess));
          pending = excess > 0 ? joined.subarray(excess) : joined;
        }
        cb();
      } catch {
        cb(decryptFailed());
      }
    },
    flush(cb: TransformCallback) {
      if (!decipher || pending.length < GCM_TAG_BYTES) return cb(decryptFailed());
      try {
        feed(this, pending.subarray(0, pending.length - GCM_TAG_BYTES));
        decipher.setAuthTag(pending.subarray(pending.length - GCM_TAG_BYTES));
        const out = decipher.final();
        if (out.length) this.push(out);
        cb();
      } catch {
        cb(decryptFailed());
      }
    },
  });
}
