/** Typed errors of the crypto layer. Codes are stable: the protocol layer maps them to OSCI feedback codes. */
export const CRYPTO_ERROR_CODES = [
  'ERR_XML_MALFORMED', // not well-formed XML, or more than one root
  'ERR_XML_DOCTYPE', // DOCTYPE / entity declarations are refused outright
  'ERR_XML_DUPLICATE_ID', // two elements share an Id (signature wrapping)
  'ERR_XML_ID_NOT_FOUND', // a reference points nowhere
  'ERR_ALG_NOT_ALLOWED', // outside the closed registry or outside the call's policy (SHA-1, CBC, rsa-1_5, XPath, ...)
  'ERR_ALG_UNSUPPORTED', // a known algorithm we do not implement (e.g. cryptographic timestamps)
  'ERR_KEY_TOO_SMALL', // RSA key below the policy's minimum size
  'ERR_KEY_INVALID', // unreadable key/certificate, wrong PIN, wrong key type
  'ERR_SIG_STRUCTURE', // missing/duplicate SignedInfo, several signatures, comment in DigestValue, unexpected reference
  'ERR_SIG_DIGEST', // a reference digest does not match
  'ERR_SIG_INVALID', // SignatureValue does not verify with the trusted key
  'ERR_DECRYPT', // decryption failed (wrong key, tampered ciphertext or tag)
  'ERR_ENC_STRUCTURE', // EncryptedData/EncryptedKey malformed
  'ERR_CERT_EXPIRED',
  'ERR_CERT_NOT_YET_VALID',
  'ERR_CERT_UNTRUSTED', // does not chain to a configured anchor
  'ERR_CERT_REVOKED',
  'ERR_CERT_KEY_USAGE',
  'ERR_CID_NOT_FOUND', // cid: reference to a MIME part that is not there
] as const;

export type CryptoErrorCode = (typeof CRYPTO_ERROR_CODES)[number];

export class CryptoError extends Error {
  override readonly name = 'CryptoError';
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isCryptoError(e: unknown): e is CryptoError {
  return e instanceof CryptoError;
}
