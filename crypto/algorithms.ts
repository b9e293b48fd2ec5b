/**
 * The closed algorithm registry of the OSCI 1.2 crypto profile (osci-protocol.md §9).
 * Anything not listed here is refused with ERR_ALG_NOT_ALLOWED; deprecated algorithms are listed
 * only so that the refusal can name them (SHA-1, CBC, 3DES, rsa-1_5).
 */
import { CryptoError } from './errors.ts';

export const NS = Object.freeze({
  ds: 'http://www.w3.org/2000/09/xmldsig#',
  dsMore: 'http://www.w3.org/2001/04/xmldsig-more#',
  xenc: 'http://www.w3.org/2001/04/xmlenc#',
  xenc11: 'http://www.w3.org/2009/xmlenc11#',
  xmlns: 'http://www.w3.org/2000/xmlns/',
  xml: 'http://www.w3.org/XML/1998/namespace',
});

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sha3-256' | 'sha3-512';

export interface DigestAlg { kind: 'digest'; uri: string; hash: HashName }
export interface SignatureAlg {
  kind: 'signature';
  uri: string;
  hash: HashName;
  padding: 'pkcs1' | 'pss';
  /** PSS salt length in bytes (RFC 6931: equal to the hash length). */
  saltLength?: number;
}
export interface C14nAlg { kind: 'c14n'; uri: string; exclusive: boolean; withComments: boolean }
export interface TransformAlg { kind: 'transform'; uri: string; name: 'enveloped-signature' | 'base64' }
export interface BlockCipherAlg {
  kind: 'cipher';
  uri: string;
  mode: 'gcm' | 'cbc';
  keyBytes: number;
  /** OpenSSL cipher name for node:crypto. */
  nodeName: string;
}
export interface KeyTransportAlg {
  kind: 'keytransport';
  uri: string;
  /** rsa-oaep-mgf1p fixes MGF1-SHA1; xmlenc11 rsa-oaep takes MGF from an xenc11:MGF child. */
  variant: 'oaep-mgf1p' | 'oaep11';
}
export interface MgfAlg { kind: 'mgf'; uri: string; hash: HashName }

export type Algorithm = DigestAlg | SignatureAlg | C14nAlg | TransformAlg | BlockCipherAlg | KeyTransportAlg | MgfAlg;

function freezeAll<T extends Algorithm>(list: T[]): ReadonlyMap<string, Readonly<T>> {
  return new Map(list.map((a) => [a.uri, Object.freeze(a)] as const));
}

export const DIGESTS = freezeAll<DigestAlg>([
  { kind: 'digest', uri: 'http://www.w3.org/2001/04/xmlenc#sha256', hash: 'sha256' },
  { kind: 'digest', uri: 'http://www.w3.org/2001/04/xmlenc#sha512', hash: 'sha512' },
  { kind: 'digest', uri: 'http://www.w3.org/2001/04/xmldsig-more#sha384', hash: 'sha384' },
  { kind: 'digest', uri: 'http://www.w3.org/2007/05/xmldsig-more#sha3-256', hash: 'sha3-256' },
  { kind: 'digest', uri: 'http://www.w3.org/2007/05/xmldsig-more#sha3-512', hash: 'sha3-512' },
  // Used only as OAEP digest / MGF parameter of legacy vectors; never for references (policy refuses it).
  { kind: 'digest', uri: 'http://www.w3.org/2000/09/xmldsig#sha1', hash: 'sha1' },
]);

export const SIGNATURES = freezeAll<SignatureAlg>([
  { kind: 'signature', uri: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', hash: 'sha256', padding: 'pkcs1' },
  { kind: 'signature', uri: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512', hash: 'sha512', padding: 'pkcs1' },
  { kind: 'signature', uri: 'http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1', hash: 'sha256', padding: 'pss', saltLength: 32 },
  { kind: 'signature', uri: 'http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1', hash: 'sha512', padding: 'pss', saltLength: 64 },
  // Expired (osci-protocol.md §9): never in DEFAULT_POLICY; only a test policy may list it to exercise structural defences.
  { kind: 'signature', uri: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1', hash: 'sha1', padding: 'pkcs1' },
]);

export const C14NS = freezeAll<C14nAlg>([
  { kind: 'c14n', uri: 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315', exclusive: false, withComments: false },
  { kind: 'c14n', uri: 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments', exclusive: false, withComments: true },
  { kind: 'c14n', uri: 'http://www.w3.org/2001/10/xml-exc-c14n#', exclusive: true, withComments: false },
  { kind: 'c14n', uri: 'http://www.w3.org/2001/10/xml-exc-c14n#WithComments', exclusive: true, withComments: true },
]);

export const TRANSFORMS = freezeAll<TransformAlg>([
  { kind: 'transform', uri: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature', name: 'enveloped-signature' },
  { kind: 'transform', uri: 'http://www.w3.org/2000/09/xmldsig#base64', name: 'base64' },
]);

export const CIPHERS = freezeAll<BlockCipherAlg>([
  { kind: 'cipher', uri: 'http://www.w3.org/2009/xmlenc11#aes256-gcm', mode: 'gcm', keyBytes: 32, nodeName: 'aes-256-gcm' },
  { kind: 'cipher', uri: 'http://www.w3.org/2009/xmlenc11#aes128-gcm', mode: 'gcm', keyBytes: 16, nodeName: 'aes-128-gcm' },
  // Legacy: decrypt-only, and only with policy.allowLegacyCbc.
  { kind: 'cipher', uri: 'http://www.w3.org/2001/04/xmlenc#aes256-cbc', mode: 'cbc', keyBytes: 32, nodeName: 'aes-256-cbc' },
  { kind: 'cipher', uri: 'http://www.w3.org/2001/04/xmlenc#aes128-cbc', mode: 'cbc', keyBytes: 16, nodeName: 'aes-128-cbc' },
]);

export const KEY_TRANSPORTS = freezeAll<KeyTransportAlg>([
  { kind: 'keytransport', uri: 'http://www.w3.org/2009/xmlenc11#rsa-oaep', variant: 'oaep11' },
  { kind: 'keytransport', uri: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p', variant: 'oaep-mgf1p' },
]);

export const MGFS = freezeAll<MgfAlg>([
  { kind: 'mgf', uri: 'http://www.w3.org/2009/xmlenc11#mgf1sha1', hash: 'sha1' },
  { kind: 'mgf', uri: 'http://www.w3.org/2009/xmlenc11#mgf1sha256', hash: 'sha256' },
  { kind: 'mgf', uri: 'http://www.w3.org/2009/xmlenc11#mgf1sha384', hash: 'sha384' },
  { kind: 'mgf', uri: 'http://www.w3.org/2009/xmlenc11#mgf1sha512', hash: 'sha512' },
]);

/** Deprecated URIs refused with a named reason (osci-protocol.md §9: expired since 2008/2011). */
export const REFUSED: ReadonlyMap<string, string> = new Map([
  ['http://www.w3.org/2000/09/xmldsig#rsa-sha1', 'SHA-1 signatures are expired (OSCI crypto profile)'],
  ['http://www.w3.org/2000/09/xmldsig#dsa-sha1', 'DSA/SHA-1 is not part of the OSCI profile'],
  ['http://www.w3.org/2001/04/xmlenc#tripledes-cbc', '3DES is expired'],
  ['http://www.w3.org/2001/04/xmlenc#rsa-1_5', 'RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher)'],
  ['http://www.w3.org/2001/04/xmlenc#aes192-cbc', 'AES-CBC is refused'],
  ['http://www.w3.org/TR/1999/REC-xpath-19991116', 'XPath transforms are not supported'],
  ['http://www.w3.org/2002/06/xmldsig-filter2', 'XPath filter transforms are not supported'],
]);

/** Short names used by the CLI and configuration. */
export const ALIASES = Object.freeze({
  'rsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'rsa-sha512': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
  'rsa-pss-sha256': 'http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1',
  'rsa-pss-sha512': 'http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1',
  sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
  sha512: 'http://www.w3.org/2001/04/xmlenc#sha512',
  inclusive: 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315',
  exclusive: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  'aes256-gcm': 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
  'aes128-gcm': 'http://www.w3.org/2009/xmlenc11#aes128-gcm',
  'rsa-oaep': 'http://www.w3.org/2009/xmlenc11#rsa-oaep',
  'rsa-oaep-mgf1p': 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  mgf1sha256: 'http://www.w3.org/2009/xmlenc11#mgf1sha256',
  mgf1sha512: 'http://www.w3.org/2009/xmlenc11#mgf1sha512',
} as const);

/** Per-call policy: which URIs are acceptable and the minimum RSA modulus. Frozen defaults = the OSCI profile. */
export interface CryptoPolicy {
  readonly signatures: readonly string[];
  readonly digests: readonly string[];
  readonly c14n: readonly string[];
  readonly transforms: readonly string[];
  readonly ciphers: readonly string[];
  readonly keyTransports: readonly string[];
  /** Hashes allowed as OAEP digest and MGF1 function. */
  readonly oaepHashes: readonly HashName[];
  readonly minRsaBits: number;
  /** Decrypt (never encrypt) legacy AES-CBC. Off by default. */
  readonly allowLegacyCbc: boolean;
}

export const DEFAULT_POLICY: CryptoPolicy = Object.freeze({
  signatures: Object.freeze([...SIGNATURES.values()].filter((a) => a.hash !== 'sha1').map((a) => a.uri)),
  digests: Object.freeze([...DIGESTS.values()].filter((d) => d.hash !== 'sha1').map((d) => d.uri)),
  c14n: Object.freeze([...C14NS.keys()]),
  transforms: Object.freeze([...TRANSFORMS.keys()]),
  ciphers: Object.freeze([...CIPHERS.values()].filter((c) => c.mode === 'gcm').map((c) => c.uri)),
  keyTransports: Object.freeze([...KEY_TRANSPORTS.keys()]),
  oaepHashes: Object.freeze(['sha1', 'sha256', 'sha384', 'sha512'] as HashName[]),
  minRsaBits: 2048,
  allowLegacyCbc: false,
});

export function withPolicy(overrides: Partial<CryptoPolicy>): CryptoPolicy {
  return Object.freeze({ ...DEFAULT_POLICY, ...overrides });
}

function lookup<T extends Algorithm>(
  table: ReadonlyMap<string, Readonly<T>>,
  allowed: readonly string[],
  uri: string | null | undefined,
  what: string,
): Readonly<T> {
  if (!uri) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `missing ${what} Algorithm attribute`);
  const alg = table.get(uri);
  // A policy that explicitly lists a registered URI (tests only, for expired ones) wins over the refusal list.
  if (alg && allowed.includes(uri)) return alg;
  const refused = REFUSED.get(uri);
  if (refused) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `${what} ${uri} refused: ${refused}`);
  if (!alg) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `${what} ${uri} is not in the algorithm registry`);
  throw new CryptoError('ERR_ALG_NOT_ALLOWED', `${what} ${uri} is not allowed by the policy`);
}

export const resolveSignature = (p: CryptoPolicy, uri: string | null | undefined) => lookup(SIGNATURES, p.signatures, uri, 'signature method');
export const resolveDigest = (p: CryptoPolicy, uri: string | null | undefined) => lookup(DIGESTS, p.digests, uri, 'digest method');
export const resolveC14n = (p: CryptoPolicy, uri: string | null | undefined) => lookup(C14NS, p.c14n, uri, 'canonicalization method');
export const resolveTransform = (p: CryptoPolicy, uri: string | null | undefined) => lookup(TRANSFORMS, p.transforms, uri, 'transform');
export const resolveKeyTransport = (p: CryptoPolicy, uri: string | null | undefined) => lookup(KEY_TRANSPORTS, p.keyTransports, uri, 'key transport');

export function resolveCipher(p: CryptoPolicy, uri: string | null | undefined, purpose: 'encrypt' | 'decrypt'): Readonly<BlockCipherAlg> {
  const alg = CIPHERS.get(uri ?? '');
  if (alg?.mode === 'cbc') {
    if (purpose === 'decrypt' && p.allowLegacyCbc) return alg;
    throw new CryptoError('ERR_ALG_NOT_ALLOWED', `block cipher ${uri} refused: AES-CBC is accepted only for decryption with the legacy-CBC flag`);
  }
  return lookup(CIPHERS, p.ciphers, uri, 'block cipher');
}

/** Digest/MGF hash for OAEP parameters; SHA-1 is acceptable here (RFC 8017 MGF1), not for signatures. */
export function resolveOaepHash(p: CryptoPolicy, uri: string | null | undefined, table: 'digest' | 'mgf'): HashName {
  const hash = table === 'digest' ? DIGESTS.get(uri ?? '')?.hash : MGFS.get(uri ?? '')?.hash;
  if (!hash) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `OAEP ${table} ${uri} is not in the algorithm registry`);
  if (!p.oaepHashes.includes(hash)) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `OAEP ${table} ${hash} is not allowed by the policy`);
  return hash;
}
