/**
 * Certificate checks for the OSCI InspectionReport (osci-protocol.md §7, §10): mathematical
 * (signature by the issuer), offline (chain to a configured anchor, validity, basic constraints,
 * key usage) and online (CRL). Signatures are verified with node:crypto only; extensions and CRLs
 * are read with a minimal strict DER reader (definite lengths, low tag numbers).
 * Certificates in a message are never trusted by themselves: trust comes from `anchors` only.
 */
import { verify as cryptoVerify, constants, X509Certificate } from 'node:crypto';
import { DEFAULT_POLICY, type CryptoPolicy } from './algorithms.ts';
import { CryptoError, type CryptoErrorCode } from './errors.ts';
import { rsaBits } from './keys.ts';

// ---------------------------------------------------------------------------------------------
// Minimal DER reader

interface Tlv {
  tag: number;
  buf: Buffer;
  start: number;
  contentStart: number;
  end: number;
}

function derError(msg: string): CryptoError {
  return new CryptoError('ERR_KEY_INVALID', `DER: ${msg}`);
}

function readTlv(buf: Buffer, at: number, limit: number): Tlv {
  const tag = buf[at];
  const first = buf[at + 1];
  if (tag === undefined || first === undefined || at + 2 > limit) throw derError('truncated');
  if ((tag & 0x1f) === 0x1f) throw derError('high tag numbers are not supported');
  let len = first;
  let p = at + 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0) throw derError('indefinite length is not DER');
    if (n > 4 || p + n > limit) throw derError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p + i] ?? 0);
    p += n;
  }
  if (p + len > limit) throw derError('length exceeds the enclosing structure');
  return { tag, buf, start: at, contentStart: p, end: p + len };
}

function parseDer(buf: Buffer): Tlv {
  const t = readTlv(buf, 0, buf.length);
  if (t.end !== buf.length) throw derError('trailing bytes');
  return t;
}

function content(t: Tlv): Buffer {
  return t.buf.subarray(t.contentStart, t.end);
}

function whole(t: Tlv): Buffer {
  return t.buf.subarray(t.start, t.end);
}

function kids(t: Tlv): Tlv[] {
  if (!(t.tag & 0x20)) throw derError(`tag 0x${t.tag.toString(16)} is not constructed`);
  const out: Tlv[] = [];
  for (let p = t.contentStart; p < t.end; ) {
    const c = readTlv(t.buf, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw derError(`expected ${what}`);
  return t;
}

function oid(t: Tlv): string {
  const b = content(expect(t, 0x06, 'OBJECT IDENTIFIER'));
  const parts: number[] = [];
  let v = 0;
  for (const byte of b) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

function unsignedHex(t: Tlv): string {
  const b = content(expect(t, 0x02, 'INTEGER'));
  const hex = b.toString('hex').replace(/^(00)+(?=.)/, '');
  return hex.toUpperCase() || '0';
}

function smallInt(t: Tlv): number {
  const b = content(expect(t, 0x02, 'INTEGER'));
  if (b.length > 4 || (b[0] ?? 0) & 0x80) throw derError('integer out of range');
  return b.reduce((a, x) => a * 256 + x, 0);
}

function time(t: Tlv): Date {
  const s = content(t).toString('latin1');
  let m: RegExpMatchArray | null;
  if (t.tag === 0x17 && (m = s.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/))) {
    const yy = Number(m[1]);
    // RFC 5280 §4.1.2.5.1: YY >= 50 means 19YY.
    return new Date(Date.UTC(yy >= 50 ? 1900 + yy : 2000 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  if (t.tag === 0x18 && (m = s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/))) {
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  throw derError('bad Time');
}

function bitString(t: Tlv): { unused: number; bytes: Buffer } {
  const b = content(expect(t, 0x03, 'BIT STRING'));
  if (b.length === 0 || (b[0] ?? 8) > 7) throw derError('bad BIT STRING');
  return { unused: b[0] ?? 0, bytes: b.subarray(1) };
}

const NAME_ATTRS: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'title',
  '2.5.4.42': 'GN',
  '2.5.4.97': 'organizationIdentifier',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
};

function directoryString(t: Tlv): string | undefined {
  const b = content(t);
  switch (t.tag) {
    case 0x0c: // UTF8String
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x12: // NumericString
    case 0x1a: // VisibleString
      return b.toString('utf8');
    case 0x14: // TeletexString (treated as Latin-1)
      return b.toString('latin1');
    case 0x1e: // BMPString (UTF-16BE)
      return Buffer.from(b).swap16().toString('utf16le');
    default:
      return undefined;
  }
}

function escapeRdnValue(v: string): string {
  return v
    .replace(/[\\,+"<>;=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}

/** RFC 4514 string (most significant RDN last, e.g. `CN=Alice,O=Governikus KG,C=de`). */
function nameString(name: Tlv): string {
  return kids(expect(name, 0x30, 'Name'))
    .map((rdn) =>
      kids(expect(rdn, 0x31, 'RelativeDistinguishedName'))
        .map((atv) => {
          const [type, value] = kids(expect(atv, 0x30, 'AttributeTypeAndValue'));
          const o = oid(expect(type, 0x06, 'attribute type'));
          if (!value) throw derError('attribute without value');
          const text = directoryString(value);
          return `${NAME_ATTRS[o] ?? o}=${text === undefined ? `#${whole(value).toString('hex')}` : escapeRdnValue(text)}`;
        })
        .join('+'),
    )
    .reverse()
    .join(',');
}

// ---------------------------------------------------------------------------------------------
// Certificate fields

export const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

export const OID = Object.freeze({
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  certificatePolicies: '2.5.29.32',
  crlDistributionPoints: '2.5.29.31',
  crlNumber: '2.5.29.20',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  qcStatements: '1.3.6.1.5.5.7.1.3',
  /** ETSI EN 319 412-5: the certificate is an EU qualified certificate. */
  qcCompliance: '0.4.0.1862.1.1',
});

/** Extensions whose criticality we can honour (RFC 5280 §4.2: reject unrecognised critical extensions). */
const UNDERSTOOD_CERT_EXTENSIONS = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.subjectAltName,
  OID.issuerAltName,
  OID.certificatePolicies,
  OID.crlDistributionPoints,
  OID.authorityInfoAccess,
  OID.qcStatements,
]);
const UNDERSTOOD_CRL_EXTENSIONS = new Set<string>([OID.authorityKeyIdentifier, OID.crlNumber, OID.issuerAltName]);

export interface CertificateInfo {
  /** RFC 4514 strings, e.g. `CN=Alice Signature 4096,OU=Testcertificate Governikus,O=Governikus KG,C=de`. */
  subject: string;
  issuer: string;
  subjectDer: Buffer;
  issuerDer: Buffer;
  serialHex: string;
  /** Decimal, as OSCI's X509SerialNumber (xsd:integer) and ds:X509SerialNumber need it. */
  serialDecimal: string;
  notBefore: Date;
  notAfter: Date;
  signatureAlgorithm: string;
  /** Undefined when the certificate has no keyUsage extension (RFC 5280: no restriction). */
  keyUsage?: KeyUsageName[];
  /** Undefined when the certificate has no basicConstraints extension. */
  basicConstraints?: { ca: boolean; pathLength?: number };
  subjectKeyId?: string;
  authorityKeyId?: string;
  qcStatements: string[];
  extensions: Array<{ oid: string; critical: boolean }>;
}

const infoCache = new WeakMap<X509Certificate, CertificateInfo>();

function parseExtension(info: CertificateInfo, id: string, value: Tlv): void {
  switch (id) {
    case OID.keyUsage: {
      const { bytes } = bitString(value);
      info.keyUsage = KEY_USAGE_BITS.filter((_, i) => ((bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1);
      break;
    }
    case OID.basicConstraints: {
      const parts = kids(expect(value, 0x30, 'BasicConstraints'));
      let ca = false;
      let pathLength: number | undefined;
      for (const p of parts) {
        if (p.tag === 0x01) ca = (content(p)[0] ?? 0) !== 0;
        else if (p.tag === 0x02) pathLength = smallInt(p);
      }
      info.basicConstraints = pathLength === undefined ? { ca } : { ca, pathLength };
      break;
    }
    case OID.subjectKeyIdentifier:
      info.subjectKeyId = content(expect(value, 0x04, 'SubjectKeyIdentifier')).toString('hex');
      break;
    case OID.authorityKeyIdentifier: {
      const keyId = kids(expect(value, 0x30, 'AuthorityKeyIdentifier')).find((k) => k.tag === 0x80);
      if (keyId) info.authorityKeyId = content(keyId).toString('hex');
      break;
    }
    case OID.qcStatements:
      info.qcStatements = kids(expect(value, 0x30, 'QCStatements')).map((s) => oid(expect(kids(expect(s, 0x30, 'QCStatement'))[0], 0x06, 'statementId')));
      break;
    default:
  }
}

function parseExtensions(list: Tlv, onExtension: (id: string, critical: boolean, value: Tlv) => void): void {
  const seen = new Set<string>();
  for (const ext of kids(expect(list, 0x30, 'Extensions'))) {
    const parts = kids(expect(ext, 0x30, 'Extension'));
    const id = oid(expect(parts[0], 0x06, 'extnID'));
    if (seen.has(id)) throw derError(`extension ${id} appears twice (RFC 5280 §4.2)`);
    seen.add(id);
    const critical = parts[1]?.tag === 0x01 ? (content(parts[1])[0] ?? 0) !== 0 : false;
    const octets = expect(parts[parts.length - 1], 0x04, 'extnValue');
    onExtension(id, critical, parseDer(Buffer.from(content(octets))));
  }
}

/** The fields of a certificate that node:crypto does not expose (cached per object). */
export function certificateInfo(cert: X509Certificate): CertificateInfo {
  const cached = infoCache.get(cert);
  if (cached) return cached;
  const [tbs, sigAlg] = kids(expect(parseDer(cert.raw), 0x30, 'Certificate'));
  const fields = kids(expect(tbs, 0x30, 'TBSCertificate'));
  let i = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = expect(fields[i++], 0x02, 'serialNumber');
  const innerAlg = expect(fields[i++], 0x30, 'signature');
  const issuer = expect(fields[i++], 0x30, 'issuer');
  const [notBefore, notAfter] = kids(expect(fields[i++], 0x30, 'Validity'));
  const subject = expect(fields[i++], 0x30, 'subject');
  expect(fields[i++], 0x30, 'subjectPublicKeyInfo');
  const outerAlg = expect(sigAlg, 0x30, 'signatureAlgorithm');
  // RFC 5280 §4.1.1.2: both AlgorithmIdentifiers must be identical.
  if (!whole(outerAlg).equals(whole(innerAlg))) throw derError('signatureAlgorithm differs from TBSCertificate.signature');
  if (!notBefore || !notAfter) throw derError('bad Validity');
  const serialHex = unsignedHex(serial);
  const info: CertificateInfo = {
    subject: nameString(subject),
    issuer: nameString(issuer),
    subjectDer: Buffer.from(whole(subject)),
    issuerDer: Buffer.from(whole(issuer)),
    serialHex,
    serialDecimal: BigInt(`0x${serialHex}`).toString(10),
    notBefore: time(notBefore),
    notAfter: time(notAfter),
    signatureAlgorithm: oid(expect(kids(outerAlg)[0], 0x06, 'algorithm')),
    qcStatements: [],
    extensions: [],
  };
  const extList = fields.slice(i).find((f) => f.tag === 0xa3);
  if (extList) {
    const [seq] = kids(extList);
    parseExtensions(expect(seq, 0x30, 'Extensions'), (id, critical, value) => {
      info.extensions.push({ oid: id, critical });
      parseExtension(info, id, value);
    });
  }
  infoCache.set(cert, info);
  return info;
}

// ---------------------------------------------------------------------------------------------
// Signature algorithms (for CRLs; certificates are verified by X509Certificate.verify)

/** Refused for certificate and CRL signatures below an anchor (osci-protocol.md §9: SHA-1 expired 2008). */
const WEAK_SIGNATURES = new Map<string, string>([
  ['1.2.840.113549.1.1.4', 'md5WithRSAEncryption'],
  ['1.2.840.113549.1.1.5', 'sha1WithRSAEncryption'],
  ['1.2.840.10045.4.1', 'ecdsa-with-SHA1'],
  ['1.2.840.10040.4.3', 'dsa-with-sha1'],
  ['1.3.36.3.3.1.2', 'rsaSignatureWithripemd160'],
]);

const HASH_OIDS: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.2.8': 'sha3-256',
  '2.16.840.1.101.3.4.2.10': 'sha3-512',
};

type SigParams = { hash: string; pss?: { saltLength: number }; ecdsa?: true };

const SIMPLE_SIGNATURES: Record<string, SigParams> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256' },
  '1.2.840.113549.1.1.12': { hash: 'sha384' },
  '1.2.840.113549.1.1.13': { hash: 'sha512' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', ecdsa: true },
  '1.2.840.10045.4.3.3': { hash: 'sha384', ecdsa: true },
  '1.2.840.10045.4.3.4': { hash: 'sha512', ecdsa: true },
};

/** RSASSA-PSS-params (RFC 4055 §3.1); only MGF1 with the message hash, as node:crypto applies. */
function pssParams(params: Tlv | undefined): SigParams {
  let hash = 'sha1';
  let mgfHash = 'sha1';
  let saltLength = 20;
  for (const p of params ? kids(expect(params, 0x30, 'RSASSA-PSS-params')) : []) {
    const [inner] = kids(p);
    if (!inner) continue;
    if (p.tag === 0xa0) hash = HASH_OIDS[oid(kids(inner)[0] as Tlv)] ?? 'unsupported';
    else if (p.tag === 0xa1) {
      const [mgf, mgfParams] = kids(inner);
      if (oid(mgf as Tlv) !== '1.2.840.113549.1.1.8') mgfHash = 'unsupported';
      else mgfHash = HASH_OIDS[oid(kids(expect(mgfParams, 0x30, 'MGF1 hash'))[0] as Tlv)] ?? 'unsupported';
    } else if (p.tag === 0xa2) saltLength = smallInt(inner);
  }
  if (hash === 'sha1' || hash === 'unsupported' || mgfHash !== hash) {
    throw new CryptoError('ERR_ALG_NOT_ALLOWED', `RSASSA-PSS with ${hash}/MGF1-${mgfHash} is not supported`);
  }
  return { hash, pss: { saltLength } };
}

function signatureParams(algId: Tlv): SigParams {
  const [algOid, params] = kids(expect(algId, 0x30, 'AlgorithmIdentifier'));
  const id = oid(expect(algOid, 0x06, 'algorithm'));
  const weak = WEAK_SIGNATURES.get(id);
  if (weak) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `${weak} signatures are refused`);
  if (id === '1.2.840.113549.1.1.10') return pssParams(params);
  const simple = SIMPLE_SIGNATURES[id];
  if (!simple) throw new CryptoError('ERR_ALG_NOT_ALLOWED', `signature algorithm ${id} is not supported`);
  return simple;
}

function verifyWith(params: SigParams, data: Buffer, signature: Buffer, issuer: X509Certificate): boolean {
  const key = issuer.publicKey;
  if (params.ecdsa) return cryptoVerify(params.hash, data, { key, dsaEncoding: 'der' }, signature);
  if (params.pss) return cryptoVerify(params.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: params.pss.saltLength }, signature);
  return cryptoVerify(params.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
}

// ---------------------------------------------------------------------------------------------
// CRLs (RFC 5280 §5)

export interface CrlInfo {
  raw: Buffer;
  issuer: string;
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  crlNumber?: bigint;
  signatureAlgorithm: string;
  revoked: Array<{ serialHex: string; date: Date }>;
  /** Critical CRL or entry extensions we do not process (delta CRL, IDP, indirect CRL): the CRL is not used. */
  unsupportedCritical: string[];
  /** The signed TBSCertList, its AlgorithmIdentifier and the signature bits. */
  tbs: Buffer;
  signatureAlgorithmDer: Buffer;
  signature: Buffer;
}

function crlDer(input: Buffer | string): Buffer {
  const text = typeof input === 'string' ? input : input.subarray(0, 64).toString('latin1').includes('-----BEGIN') ? input.toString('latin1') : undefined;
  if (text === undefined) return input as Buffer;
  const m = text.match(/-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/);
  if (!m?.[1]) throw new CryptoError('ERR_KEY_INVALID', 'PEM: no X509 CRL block found');
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
}

/** Parses a CRL (DER, or PEM `X509 CRL`). ERR_KEY_INVALID when unreadable. */
export function parseCrl(input: Buffer | string): CrlInfo {
  try {
    const raw = crlDer(input);
    const [tbs, algId, sig] = kids(expect(parseDer(raw), 0x30, 'CertificateList'));
    const f = kids(expect(tbs, 0x30, 'TBSCertList'));
    let i = f[0]?.tag === 0x02 ? 1 : 0;
    const innerAlg = expect(f[i++], 0x30, 'signature');
    if (!whole(innerAlg).equals(whole(expect(algId, 0x30, 'signatureAlgorithm')))) throw derError('signatureAlgorithm differs from TBSCertList.signature');
    const issuer = expect(f[i++], 0x30, 'issuer');
    const thisUpdateTlv = f[i++];
    if (!thisUpdateTlv) throw derError('missing thisUpdate');
    const info: CrlInfo = {
      raw: Buffer.from(raw),
      issuer: nameString(issuer),
      issuerDer: Buffer.from(whole(issuer)),
      thisUpdate: time(thisUpdateTlv),
      signatureAlgorithm: oid(expect(kids(algId as Tlv)[0], 0x06, 'algorithm')),
      revoked: [],
      unsupportedCritical: [],
      tbs: Buffer.from(whole(tbs as Tlv)),
      signatureAlgorithmDer: Buffer.from(whole(algId as Tlv)),
      signature: Buffer.from(bitString(expect(sig, 0x03, 'signatureValue')).bytes),
    };
    const next = f[i];
    if (next && (next.tag === 0x17 || next.tag === 0x18)) {
      info.nextUpdate = time(next);
      i++;
    }
    if (f[i]?.tag === 0x30) {
      for (const entry of kids(f[i++] as Tlv)) {
        const [serial, date, exts] = kids(expect(entry, 0x30, 'revoked certificate'));
        if (!date) throw derError('revoked entry without date');
        info.revoked.push({ serialHex: unsignedHex(serial as Tlv), date: time(date) });
        if (exts) parseExtensions(exts, (id, critical) => critical && info.unsupportedCritical.push(id));
      }
    }
    if (f[i]?.tag === 0xa0) {
      parseExtensions(expect(kids(f[i] as Tlv)[0], 0x30, 'crlExtensions'), (id, critical, value) => {
        if (id === OID.crlNumber) info.crlNumber = BigInt(`0x${unsignedHex(value)}`);
        else if (critical && !UNDERSTOOD_CRL_EXTENSIONS.has(id)) info.unsupportedCritical.push(id);
      });
    }
    return info;
  } catch (e) {
    if (e instanceof CryptoError) throw new CryptoError('ERR_KEY_INVALID', `CRL: ${e.message}`, { cause: e });
    throw new CryptoError('ERR_KEY_INVALID', `CRL: unreadable (${(e as Error).message})`, { cause: e });
  }
}

/** Verifies the CRL signature with the issuer certificate's key (node:crypto). */
export function verifyCrlSignature(crl: CrlInfo, issuer: X509Certificate): boolean {
  try {
    return verifyWith(signatureParams(parseDer(crl.signatureAlgorithmDer)), crl.tbs, crl.signature, issuer);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Certificate checks

export type CertUsage = 'signature' | 'cipher';
/** OSCI order.xsd CertType. 'accredited' cannot be derived from the certificate alone. */
export type CertType = 'qualified' | 'advanced' | 'accredited' | 'unknown';
export type MathResult = 'ok' | 'corrupted' | 'indeterminate';
export type OfflineResult = 'valid' | 'invalid' | 'indeterminate';
export type OnlineResult = 'ok' | 'revoked';

export interface CheckCertificateOptions {
  usage: CertUsage;
  /** Configured trust anchors. Only these confer trust; certificates from messages go in `intermediates`. */
  anchors: X509Certificate[];
  /** Untrusted helpers for path building (e.g. from the message or the PKCS#12 container). */
  intermediates?: X509Certificate[];
  /** Time of the check (default: now). */
  at?: Date;
  /** CRLs, DER or PEM. */
  crls?: Array<Buffer | string>;
  policy?: CryptoPolicy;
  /** Maximum number of intermediate CA certificates between leaf and anchor (default 6). */
  maxIntermediates?: number;
}

export interface CertificateCheckError {
  code: CryptoErrorCode;
  message: string;
}

export interface CertificateCheck {
  /** The certificate's signature verifies with the key of an issuer found among anchors/intermediates. */
  mathOk: boolean;
  /** A path leads to a configured anchor; every link verified, CA flags, key usage and path length respected. */
  chainOk: boolean;
  /** Every certificate of the path is within its validity period at `at`. */
  validityOk: boolean;
  keyUsageOk: boolean;
  /** undefined: no usable CRL of the issuer was given. */
  revoked: boolean | undefined;
  keyBits: number;
  subject: string;
  issuer: string;
  /** Decimal serial (OSCI X509SerialNumber is xsd:integer). */
  serialNumber: string;
  serialNumberHex: string;
  certType: CertType;
  /** The path found, leaf first; ends with the anchor when `chainOk`. */
  path: X509Certificate[];
  /** Values for the OSCI InspectionReport (osci-protocol.md §7). */
  inspection: { mathResult: MathResult; offlineResult: OfflineResult; onlineResult?: OnlineResult };
  /** Observations that are not errors (e.g. no keyUsage extension, CRL outdated). */
  notes: string[];
  /** In order: chain, validity, key usage, revocation, key size. */
  errors: CertificateCheckError[];
}

interface Attempt {
  path: X509Certificate[];
  /** complete: ends at an anchor; no-issuer: the last certificate's issuer is unknown; broken: a link failed. */
  outcome: 'complete' | 'no-issuer' | 'broken';
  errors: CertificateCheckError[];
}

function untrusted(message: string): CertificateCheckError {
  return { code: 'ERR_CERT_UNTRUSTED', message };
}

function isSelfIssued(c: X509Certificate): boolean {
  return c.checkIssued(c);
}

function unsupportedCritical(info: CertificateInfo): string[] {
  return info.extensions.filter((e) => e.critical && !UNDERSTOOD_CERT_EXTENSIONS.has(e.oid)).map((e) => e.oid);
}

function shortName(c: X509Certificate): string {
  try {
    return certificateInfo(c).subject;
  } catch {
    return c.subject.replace(/\n/g, ',');
  }
}

class PathBuilder {
  private budget = 200;
  constructor(
    private readonly anchors: X509Certificate[],
    private readonly pool: X509Certificate[],
    private readonly maxIntermediates: number,
  ) {}

  isAnchor(c: X509Certificate): boolean {
    return this.anchors.some((a) => a.raw.equals(c.raw));
  }

  issuersOf(c: X509Certificate, path: X509Certificate[]): X509Certificate[] {
    return this.pool.filter((p) => !path.some((q) => q.raw.equals(p.raw)) && c.checkIssued(p));
  }

  /** RFC 5280 §6.1.3/6.1.4 checks of one link; an empty list means the link holds. */
  linkErrors(child: X509Certificate, parent: X509Certificate, path: X509Certificate[]): CertificateCheckError[] {
    const errs: CertificateCheckError[] = [];
    const childName = shortName(child);
    const parentName = shortName(parent);
    if (!child.verify(parent.publicKey)) {
      return [untrusted(`the signature of ${childName} does not verify with the key of ${parentName}`)];
    }
    let childInfo: CertificateInfo;
    let parentInfo: CertificateInfo;
    try {
      childInfo = certificateInfo(child);
      parentInfo = certificateInfo(parent);
    } catch (e) {
      return [untrusted((e as Error).message)];
    }
    const weak = WEAK_SIGNATURES.get(childInfo.signatureAlgorithm);
    if (weak) errs.push(untrusted(`${childName} is signed with ${weak}, which is refused`));
    // pathLenConstraint is honoured on every CA including the anchor (stricter than RFC 5280 §6.1.4(m), like OpenSSL).
    const below = path.length - 1; // intermediate CA certificates between the leaf and `parent`
    const limit = parentInfo.basicConstraints?.pathLength;
    if (limit !== undefined && below > limit) {
      errs.push(untrusted(`path length ${below} below ${parentName} exceeds its pathLenConstraint ${limit} (RFC 5280 §6.1.4(m))`));
    }
    // A configured self-signed anchor is trusted as configured (RFC 5280 §6.1.1(d)); every other issuer must be a CA.
    if (this.isAnchor(parent) && isSelfIssued(parent)) return errs;
    if (parentInfo.basicConstraints?.ca !== true) {
      errs.push(untrusted(`${parentName} is not a CA (basicConstraints cA is false or absent) and cannot issue ${childName} (RFC 5280 §6.1.4(k))`));
    }
    if (parentInfo.keyUsage && !parentInfo.keyUsage.includes('keyCertSign')) {
      errs.push(untrusted(`${parentName} lacks keyUsage keyCertSign (RFC 5280 §6.1.4(n))`));
    }
    const crit = unsupportedCritical(parentInfo);
    if (crit.length > 0) errs.push(untrusted(`${parentName} has unsupported critical extensions ${crit.join(', ')}`));
    return errs;
  }

  extend(path: X509Certificate[]): Attempt {
    const current = path[path.length - 1] as X509Certificate;
    if (this.isAnchor(current)) return { path, outcome: 'complete', errors: [] };
    if (path.length - 1 > this.maxIntermediates) {
      return { path, outcome: 'broken', errors: [untrusted(`no anchor within ${this.maxIntermediates} intermediate certificates`)] };
    }
    const candidates = this.issuersOf(current, path);
    if (candidates.length === 0) {
      return { path, outcome: 'no-issuer', errors: [untrusted(`no configured anchor or known intermediate issued ${shortName(current)}`)] };
    }
    let best: Attempt | undefined;
    for (const parent of candidates) {
      if (--this.budget < 0) break;
      const errs = this.linkErrors(current, parent, path);
      const attempt: Attempt = errs.length > 0 ? { path: [...path, parent], outcome: 'broken', errors: errs } : this.extend([...path, parent]);
      if (attempt.outcome === 'complete') return attempt;
      if (!best || attempt.path.length > best.path.length) best = attempt;
    }
    return best ?? { path, outcome: 'broken', errors: [untrusted('path building aborted (too many candidates)')] };
  }
}

interface RevocationStatus {
  revoked: boolean | undefined;
  notes: string[];
}

function revocationStatus(cert: X509Certificate, issuer: X509Certificate, crls: CrlInfo[], at: Date): RevocationStatus {
  let info: CertificateInfo;
  let issuerInfo: CertificateInfo;
  try {
    info = certificateInfo(cert);
    issuerInfo = certificateInfo(issuer);
  } catch (e) {
    return { revoked: undefined, notes: [`no revocation check: ${(e as Error).message}`] };
  }
  const notes: string[] = [];
  let revoked: boolean | undefined;
  for (const crl of crls) {
    if (!crl.issuerDer.equals(info.issuerDer)) continue;
    if (issuerInfo.keyUsage && !issuerInfo.keyUsage.includes('cRLSign')) {
      notes.push(`CRL of ${crl.issuer} ignored: the issuer certificate lacks keyUsage cRLSign`);
      continue;
    }
    if (!verifyCrlSignature(crl, issuer)) {
      notes.push(`CRL of ${crl.issuer} ignored: its signature does not verify with the issuer key`);
      continue;
    }
    if (crl.unsupportedCritical.length > 0) {
      notes.push(`CRL of ${crl.issuer} ignored: unsupported critical extensions ${crl.unsupportedCritical.join(', ')}`);
      continue;
    }
    if (crl.thisUpdate.getTime() > at.getTime()) {
      notes.push(`CRL of ${crl.issuer} ignored: issued after the time of the check`);
      continue;
    }
    const entry = crl.revoked.find((r) => r.serialHex === info.serialHex);
    // Revocation applies from its date on: what was signed before it stays attributable.
    if (entry && entry.date.getTime() <= at.getTime()) {
      return { revoked: true, notes: [...notes, `revoked on ${entry.date.toISOString()} (CRL of ${crl.issuer})`] };
    }
    if (crl.nextUpdate && crl.nextUpdate.getTime() < at.getTime()) {
      notes.push(`CRL of ${crl.issuer} is outdated (nextUpdate ${crl.nextUpdate.toISOString()}): no revocation status from it`);
      continue;
    }
    revoked = false;
  }
  return { revoked, notes };
}

function keyUsageAllows(usage: CertUsage, ku: KeyUsageName[]): boolean {
  // [J] IncomingMSGParser: signature certificates need digitalSignature or nonRepudiation (osci-protocol.md §10).
  if (usage === 'signature') return ku.includes('digitalSignature') || ku.includes('nonRepudiation');
  return ku.includes('keyEncipherment');
}

/**
 * Checks a certificate and records the outcome instead of throwing (for the InspectionReport).
 * Use {@link assertCertificate} where a failure must stop processing.
 */
export function checkCertificate(cert: X509Certificate, opts: CheckCertificateOptions): CertificateCheck {
  const at = opts.at ?? new Date();
  const policy = opts.policy ?? DEFAULT_POLICY;
  const notes: string[] = [];
  const chainErrors: CertificateCheckError[] = [];
  const validityErrors: CertificateCheckError[] = [];
  const usageErrors: CertificateCheckError[] = [];
  const revocationErrors: CertificateCheckError[] = [];
  const keyErrors: CertificateCheckError[] = [];

  let info: CertificateInfo;
  try {
    info = certificateInfo(cert);
  } catch (e) {
    const message = `unreadable certificate: ${(e as Error).message}`;
    return {
      mathOk: false, chainOk: false, validityOk: false, keyUsageOk: false, revoked: undefined, keyBits: 0,
      subject: cert.subject.replace(/\n/g, ','), issuer: cert.issuer.replace(/\n/g, ','), serialNumber: '', serialNumberHex: cert.serialNumber,
      certType: 'unknown', path: [cert], inspection: { mathResult: 'indeterminate', offlineResult: 'invalid' }, notes,
      errors: [{ code: 'ERR_KEY_INVALID', message }],
    };
  }

  const pool: X509Certificate[] = [];
  for (const c of [...opts.anchors, ...(opts.intermediates ?? [])]) {
    if (!c.raw.equals(cert.raw) && !pool.some((p) => p.raw.equals(c.raw))) pool.push(c);
  }
  const builder = new PathBuilder(opts.anchors, pool, opts.maxIntermediates ?? 6);
  const leafIsAnchor = builder.isAnchor(cert);
  const selfIssued = isSelfIssued(cert);

  // Mathematical check: the leaf's own signature.
  let mathOk: boolean;
  let mathResult: MathResult;
  const issuerCandidates = builder.issuersOf(cert, [cert]);
  if (leafIsAnchor) {
    mathOk = selfIssued ? cert.verify(cert.publicKey) : true;
    if (!selfIssued) notes.push('trusted directly as a configured anchor');
  } else {
    mathOk = issuerCandidates.some((c) => cert.verify(c.publicKey));
  }
  if (mathOk) mathResult = 'ok';
  else if (issuerCandidates.length > 0 || (selfIssued && !cert.verify(cert.publicKey)) || leafIsAnchor) mathResult = 'corrupted';
  else mathResult = 'indeterminate';

  // Offline: path to an anchor.
  const attempt: Attempt = leafIsAnchor
    ? mathOk
      ? { path: [cert], outcome: 'complete', errors: [] }
      : { path: [cert], outcome: 'broken', errors: [untrusted(`the self-signature of anchor ${info.subject} does not verify`)] }
    : builder.extend([cert]);
  chainErrors.push(...attempt.errors);
  const leafCrit = unsupportedCritical(info);
  if (leafCrit.length > 0) chainErrors.push(untrusted(`unsupported critical extensions ${leafCrit.join(', ')} (RFC 5280 §4.2)`));

  for (const c of attempt.path) {
    let ci: CertificateInfo;
    try {
      ci = certificateInfo(c);
    } catch (e) {
      validityErrors.push({ code: 'ERR_CERT_UNTRUSTED', message: `unreadable certificate in the path: ${(e as Error).message}` });
      continue;
    }
    if (at.getTime() < ci.notBefore.getTime()) {
      validityErrors.push({ code: 'ERR_CERT_NOT_YET_VALID', message: `${ci.subject} is valid only from ${ci.notBefore.toISOString()}` });
    } else if (at.getTime() > ci.notAfter.getTime()) {
      validityErrors.push({ code: 'ERR_CERT_EXPIRED', message: `${ci.subject} expired on ${ci.notAfter.toISOString()}` });
    }
  }

  let keyUsageOk = true;
  if (info.keyUsage === undefined) {
    notes.push('no keyUsage extension: no usage restriction (RFC 5280 §4.2.1.3)');
  } else if (!keyUsageAllows(opts.usage, info.keyUsage)) {
    keyUsageOk = false;
    const need = opts.usage === 'signature' ? 'digitalSignature or nonRepudiation' : 'keyEncipherment';
    usageErrors.push({ code: 'ERR_CERT_KEY_USAGE', message: `a ${opts.usage} certificate needs keyUsage ${need}; it has ${info.keyUsage.join(', ') || 'none'}` });
  }

  // Online: CRLs of the leaf's issuer, and of each intermediate's issuer.
  const crls: CrlInfo[] = [];
  for (const c of opts.crls ?? []) {
    try {
      crls.push(parseCrl(c));
    } catch (e) {
      notes.push((e as Error).message);
    }
  }
  let revoked: boolean | undefined;
  // Only a CRL of the key that really signed the leaf can speak for it.
  const pathIssuer = attempt.path[1];
  const leafIssuer = leafIsAnchor && selfIssued ? cert : pathIssuer && cert.verify(pathIssuer.publicKey) ? pathIssuer : undefined;
  if (leafIssuer && mathOk) {
    const st = revocationStatus(cert, leafIssuer, crls, at);
    revoked = st.revoked;
    notes.push(...st.notes);
    if (revoked) revocationErrors.push({ code: 'ERR_CERT_REVOKED', message: `${info.subject} (serial ${info.serialHex}) is revoked` });
  }
  let intermediateRevoked = false;
  for (let k = 1; k + 1 < attempt.path.length; k++) {
    const c = attempt.path[k] as X509Certificate;
    const parent = attempt.path[k + 1] as X509Certificate;
    if (!c.verify(parent.publicKey)) continue; // a broken link is already an error
    const st = revocationStatus(c, parent, crls, at);
    if (st.revoked) {
      intermediateRevoked = true;
      revocationErrors.push({ code: 'ERR_CERT_REVOKED', message: `intermediate ${shortName(c)} is revoked` });
    }
  }

  let keyBits = 0;
  try {
    keyBits = rsaBits(cert);
    if (keyBits < policy.minRsaBits) {
      keyErrors.push({ code: 'ERR_KEY_TOO_SMALL', message: `RSA key of ${keyBits} bits is below the policy minimum of ${policy.minRsaBits}` });
    }
  } catch (e) {
    keyErrors.push({ code: 'ERR_KEY_INVALID', message: (e as Error).message });
  }

  const chainOk = attempt.outcome === 'complete' && chainErrors.length === 0 && !intermediateRevoked;
  const validityOk = validityErrors.length === 0;
  const errors = [...chainErrors, ...validityErrors, ...usageErrors, ...revocationErrors, ...keyErrors];

  let offlineResult: OfflineResult;
  if (chainOk && validityOk && keyUsageOk && keyErrors.length === 0) offlineResult = 'valid';
  // Unknown issuer with nothing else wrong: the intermediary cannot judge (osci-protocol.md §10).
  else if (attempt.outcome === 'no-issuer' && chainErrors.length === 1 && mathResult !== 'corrupted' && validityOk && keyUsageOk && keyErrors.length === 0) offlineResult = 'indeterminate';
  else offlineResult = 'invalid';

  // QcCompliance is only believed on a trusted path (ETSI EN 319 412-5); otherwise a self-made certificate could claim it.
  const certType: CertType = chainOk ? (info.qcStatements.includes(OID.qcCompliance) ? 'qualified' : 'advanced') : 'unknown';

  const inspection: CertificateCheck['inspection'] = { mathResult, offlineResult };
  if (revoked !== undefined) inspection.onlineResult = revoked ? 'revoked' : 'ok';

  return {
    mathOk, chainOk, validityOk, keyUsageOk, revoked, keyBits,
    subject: info.subject, issuer: info.issuer, serialNumber: info.serialDecimal, serialNumberHex: info.serialHex,
    certType, path: attempt.path, inspection, notes, errors,
  };
}

/** Like {@link checkCertificate}, but throws the first error as a CryptoError. */
export function assertCertificate(cert: X509Certificate, opts: CheckCertificateOptions): CertificateCheck {
  const check = checkCertificate(cert, opts);
  const [first] = check.errors;
  if (first) throw new CryptoError(first.code, `certificate ${check.subject}: ${first.message}`);
  return check;
}
