/**
 * Development PKI: a throw-away CA, separate signature and cipher certificates per identity
 * (osci-protocol.md §10) and a CRL, for local runs and tests. NEVER for production.
 * RSA keys come from node:crypto; certificates and CRLs are DER-encoded here and signed with
 * node:crypto (sha256WithRSAEncryption), so no third-party ASN.1 code is involved.
 */
import { createHash, createPublicKey, generateKeyPair, randomBytes, sign as cryptoSign, KeyObject, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CryptoError } from './errors.ts';
import { keyMatchesCertificate, loadCertificate, loadPrivateKey, rsaBits } from './keys.ts';
import { certificateInfo, parseCrl, type CertUsage, type KeyUsageName, KEY_USAGE_BITS, OID } from './x509.ts';

// ---------------------------------------------------------------------------------------------
// Minimal DER writer

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...parts: Buffer[]) => tlv(0x30, ...parts);
const set = (...parts: Buffer[]) => tlv(0x31, ...parts);
const octets = (b: Buffer) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const printable = (s: string) => tlv(0x13, Buffer.from(s, 'ascii'));
const explicit = (n: number, inner: Buffer) => tlv(0xa0 + n, inner);
const DER_NULL = Buffer.from([0x05, 0x00]);
const DER_TRUE = Buffer.from([0x01, 0x01, 0xff]);

function integer(v: bigint | Buffer): Buffer {
  if (typeof v === 'bigint' && v < 0n) throw new RangeError('negative INTEGER');
  const hex = typeof v === 'bigint' ? v.toString(16) : '';
  let b = typeof v === 'bigint' ? Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex') : Buffer.from(v);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

function objectId(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = arcs;
  const out: number[] = [];
  for (const arc of [a * 40 + b, ...rest]) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function derTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = d.getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

function bits(names: readonly KeyUsageName[]): Buffer {
  const idx = names.map((n) => KEY_USAGE_BITS.indexOf(n));
  const high = Math.max(...idx);
  const bytes = Buffer.alloc(Math.floor(high / 8) + 1);
  for (const i of idx) bytes[i >> 3] = (bytes[i >> 3] ?? 0) | (0x80 >> (i & 7));
  // DER named bit list: trailing zero bits are dropped (X.690 §11.2.2).
  return tlv(0x03, Buffer.from([bytes.length * 8 - (high + 1)]), bytes);
}

const SHA256_WITH_RSA = seq(objectId('1.2.840.113549.1.1.11'), DER_NULL);

export interface DevName {
  CN: string;
  O?: string;
  OU?: string;
  C?: string;
}

function encodeName(n: DevName): Buffer {
  const rdn = (type: string, value: Buffer) => set(seq(objectId(type), value));
  const parts: Buffer[] = [];
  if (n.C) parts.push(rdn('2.5.4.6', printable(n.C))); // countryName is PrintableString (RFC 5280 App. A)
  if (n.O) parts.push(rdn('2.5.4.10', utf8(n.O)));
  if (n.OU) parts.push(rdn('2.5.4.11', utf8(n.OU)));
  parts.push(rdn('2.5.4.3', utf8(n.CN)));
  return seq(...parts);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(objectId(id), ...(critical ? [DER_TRUE] : []), octets(value));
}

/** RFC 7093 §2 method 1: leftmost 160 bits of the SHA-256 of the subjectPublicKey bits. */
function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spkiBitString(spki)).digest().subarray(0, 20);
}

function spkiBitString(spki: Buffer): Buffer {
  // SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }: the BIT STRING is the last element.
  const hdr = (at: number) => {
    const first = spki[at + 1] ?? 0;
    const n = first & 0x80 ? first & 0x7f : 0;
    let len = first & 0x80 ? 0 : first;
    for (let i = 0; i < n; i++) len = len * 256 + (spki[at + 2 + i] ?? 0);
    return { content: at + 2 + n, end: at + 2 + n + len };
  };
  const outer = hdr(0);
  const alg = hdr(outer.content);
  const bitStr = hdr(alg.end);
  return spki.subarray(bitStr.content + 1, bitStr.end);
}

function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x40; // positive, 16 octets, no leading zero (RFC 5280 §4.1.2.2)
  return b;
}

export interface CertificateSpec {
  subject: DevName;
  publicKey: KeyObject;
  /** The issuing CA; absent = self-signed with `signingKey`. */
  issuer?: { certificate: X509Certificate; key: KeyObject };
  /** Private key for a self-signed certificate. */
  signingKey?: KeyObject;
  serial?: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** Default `{ ca: false }`; null omits the extension. */
  basicConstraints?: { ca: boolean; pathLength?: number } | null;
  /** Omitted = no keyUsage extension. */
  keyUsage?: readonly KeyUsageName[];
  /** Further extensions as DER values (e.g. QCStatements in tests). */
  extraExtensions?: Array<{ oid: string; critical: boolean; value: Buffer }>;
}

/** Builds and signs an X.509 v3 certificate (sha256WithRSAEncryption, signed by node:crypto). */
export function createCertificate(spec: CertificateSpec): X509Certificate {
  const signer = spec.issuer?.key ?? spec.signingKey;
  if (!signer || signer.type !== 'private') throw new CryptoError('ERR_KEY_INVALID', 'createCertificate needs the issuer private key');
  rsaBits(signer);
  const subjectName = encodeName(spec.subject);
  const issuerName = spec.issuer ? certificateInfo(spec.issuer.certificate).subjectDer : subjectName;
  const ski = keyIdentifier(spec.publicKey);
  const aki = spec.issuer ? certificateInfo(spec.issuer.certificate).subjectKeyId : ski.toString('hex');
  const exts: Buffer[] = [];
  const bc = spec.basicConstraints === undefined ? { ca: false } : spec.basicConstraints;
  if (bc) {
    const body = [...(bc.ca ? [DER_TRUE] : []), ...(bc.pathLength !== undefined ? [integer(BigInt(bc.pathLength))] : [])];
    exts.push(extension(OID.basicConstraints, true, seq(...body)));
  }
  if (spec.keyUsage && spec.keyUsage.length > 0) exts.push(extension(OID.keyUsage, true, bits(spec.keyUsage)));
  exts.push(extension(OID.subjectKeyIdentifier, false, octets(ski)));
  if (aki) exts.push(extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, Buffer.from(aki, 'hex')))));
  for (const e of spec.extraExtensions ?? []) exts.push(extension(e.oid, e.critical, e.value));
  const tbs = seq(
    explicit(0, integer(2n)),
    integer(spec.serial ?? randomSerial()),
    SHA256_WITH_RSA,
    issuerName,
    seq(derTime(spec.notBefore), derTime(spec.notAfter)),
    subjectName,
    spec.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...exts)),
  );
  const signature = cryptoSign('sha256', tbs, signer);
  return new X509Certificate(seq(tbs, SHA256_WITH_RSA, tlv(0x03, Buffer.from([0]), signature)));
}

export interface CrlSpec {
  issuer: { certificate: X509Certificate; key: KeyObject };
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
  revoked: Array<{ serialHex: string; date: Date }>;
}

/** Builds and signs an X.509 v2 CRL (RFC 5280 §5), DER. */
export function createCrl(spec: CrlSpec): Buffer {
  const info = certificateInfo(spec.issuer.certificate);
  const entries = spec.revoked.map((r) => seq(integer(Buffer.from(r.serialHex.length % 2 ? `0${r.serialHex}` : r.serialHex, 'hex')), derTime(r.date)));
  const exts = [extension(OID.crlNumber, false, integer(spec.crlNumber))];
  if (info.subjectKeyId) exts.unshift(extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, Buffer.from(info.subjectKeyId, 'hex')))));
  const tbs = seq(
    integer(1n),
    SHA256_WITH_RSA,
    info.subjectDer,
    derTime(spec.thisUpdate),
    derTime(spec.nextUpdate),
    // revokedCertificates is absent, not empty, when nothing is revoked (RFC 5280 §5.1.2.6).
    ...(entries.length > 0 ? [seq(...entries)] : []),
    explicit(0, seq(...exts)),
  );
  const signature = cryptoSign('sha256', tbs, spec.issuer.key);
  return seq(tbs, SHA256_WITH_RSA, tlv(0x03, Buffer.from([0]), signature));
}

// ---------------------------------------------------------------------------------------------
// PKCS#10 certification requests (RFC 2986): a key certified by a real CA (`amtsbote certs csr`)

/** One attribute of a distinguished name; `type` is a short name (CN, O, OU, C, ...) or a dotted OID. */
export interface NameAttribute {
  type: string;
  value: string;
}

const NAME_TYPES: Record<string, { oid: string; string: 'utf8' | 'printable' | 'ia5' }> = {
  CN: { oid: '2.5.4.3', string: 'utf8' },
  SN: { oid: '2.5.4.4', string: 'utf8' },
  SERIALNUMBER: { oid: '2.5.4.5', string: 'printable' }, // X.520: PrintableString
  C: { oid: '2.5.4.6', string: 'printable' }, // RFC 5280 App. A: PrintableString (SIZE (2))
  L: { oid: '2.5.4.7', string: 'utf8' },
  ST: { oid: '2.5.4.8', string: 'utf8' },
  STREET: { oid: '2.5.4.9', string: 'utf8' },
  O: { oid: '2.5.4.10', string: 'utf8' },
  OU: { oid: '2.5.4.11', string: 'utf8' },
  TITLE: { oid: '2.5.4.12', string: 'utf8' },
  GIVENNAME: { oid: '2.5.4.42', string: 'utf8' },
  ORGANIZATIONIDENTIFIER: { oid: '2.5.4.97', string: 'utf8' },
  DC: { oid: '0.9.2342.19200300.100.1.25', string: 'ia5' }, // RFC 4519: IA5String
  EMAILADDRESS: { oid: '1.2.840.113549.1.9.1', string: 'ia5' }, // PKCS#9: IA5String
};

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/; // X.680 §41.4 PrintableString

function nameValue(type: string, value: string): Buffer {
  const known = NAME_TYPES[type.toUpperCase()];
  if (!known && !/^\d+(\.\d+)+$/.test(type)) throw new CryptoError('ERR_KEY_INVALID', `unknown name attribute ${JSON.stringify(type)} (use CN, O, OU, C, L, ST, ... or a dotted OID)`);
  if (value.length === 0) throw new CryptoError('ERR_KEY_INVALID', `name attribute ${type} is empty`);
  const kind = known?.string ?? 'utf8';
  if (type.toUpperCase() === 'C' && !/^[A-Za-z]{2}$/.test(value)) throw new CryptoError('ERR_KEY_INVALID', `countryName must be two letters, got ${JSON.stringify(value)}`);
  if (kind === 'printable') {
    if (!PRINTABLE.test(value)) throw new CryptoError('ERR_KEY_INVALID', `${type} allows only PrintableString characters`);
    return printable(value);
  }
  if (kind === 'ia5') {
    if (!/^[\x00-\x7f]*$/.test(value)) throw new CryptoError('ERR_KEY_INVALID', `${type} allows only ASCII (IA5String)`);
    return tlv(0x16, Buffer.from(value, 'ascii'));
  }
  return utf8(value);
}

/** Name (RFC 5280 §4.1.2.4) from attributes in DER order (most general first), one attribute per RDN. */
function encodeNameAttributes(attrs: readonly NameAttribute[]): Buffer {
  return seq(...attrs.map((a) => set(seq(objectId(NAME_TYPES[a.type.toUpperCase()]?.oid ?? a.type), nameValue(a.type, a.value)))));
}

/**
 * Parses an RFC 4514 string such as `CN=Stadt Lemgo,O=Stadt Lemgo,C=DE` (most specific first, as
 * `certs list` prints names) into attributes in DER order (most general first, RFC 4514 §2.1).
 * Escapes `\,` `\+` `\\` `\"` ... and `\XX` hex pairs (§3); multi-valued RDNs (`+`) are refused.
 */
export function parseDistinguishedName(dn: string): NameAttribute[] {
  const rdns: string[][] = [[]];
  let cur = '';
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length > 0) cur += Buffer.from(bytes).toString('utf8');
    bytes = [];
  };
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i] as string;
    if (ch === '\\') {
      const hex = dn.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
        continue;
      }
      const next = dn[i + 1];
      if (next === undefined) throw new CryptoError('ERR_KEY_INVALID', 'distinguished name ends with a lone backslash');
      flush();
      cur += `\u0000${next}`; // escaped: never a separator
      i++;
      continue;
    }
    flush();
    if (ch === '+') throw new CryptoError('ERR_KEY_INVALID', 'multi-valued RDNs (+) are not supported');
    if (ch === ',') {
      (rdns[rdns.length - 1] as string[]).push(cur);
      rdns.push([]);
      cur = '';
      continue;
    }
    cur += ch;
  }
  flush();
  (rdns[rdns.length - 1] as string[]).push(cur);
  const attrs = rdns.map(([raw = '']) => {
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new CryptoError('ERR_KEY_INVALID', `not TYPE=value: ${JSON.stringify(raw.replace(/\u0000/g, '\\'))}`);
    const type = raw.slice(0, eq).trim();
    const value = raw.slice(eq + 1).trim().replace(/\u0000(.)/gs, '$1');
    nameValue(type, value);
    return { type, value };
  });
  return attrs.reverse();
}

export interface CertificationRequestSpec {
  /** DER order (most general first); see {@link parseDistinguishedName}. */
  subject: readonly NameAttribute[];
  /** The RSA private key the request is for; it signs the request (proof of possession, RFC 2986 §3). */
  key: KeyObject;
  /** Requested keyUsage, as a PKCS#9 extensionRequest attribute (RFC 2985 §5.4.2). */
  keyUsage?: readonly KeyUsageName[];
}

/** A PKCS#10 CertificationRequest (RFC 2986 §4), DER, signed sha256WithRSAEncryption by node:crypto. */
export function createCertificationRequest(spec: CertificationRequestSpec): Buffer {
  if (spec.key.type !== 'private') throw new CryptoError('ERR_KEY_INVALID', 'a certification request needs the private key');
  rsaBits(spec.key);
  if (spec.subject.length === 0) throw new CryptoError('ERR_KEY_INVALID', 'a certification request needs a subject');
  const attributes: Buffer[] = [];
  if (spec.keyUsage && spec.keyUsage.length > 0) {
    // extensionRequest (1.2.840.113549.1.9.14): SET OF Extensions
    attributes.push(seq(objectId('1.2.840.113549.1.9.14'), set(seq(extension(OID.keyUsage, true, bits(spec.keyUsage))))));
  }
  const info = seq(
    integer(0n), // version v1 (RFC 2986 §4.1)
    encodeNameAttributes(spec.subject),
    publicOf(spec.key).export({ type: 'spki', format: 'der' }),
    tlv(0xa0, ...attributes), // attributes [0] IMPLICIT SET OF Attribute
  );
  const signature = cryptoSign('sha256', info, spec.key);
  return seq(info, SHA256_WITH_RSA, tlv(0x03, Buffer.from([0]), signature));
}

// ---------------------------------------------------------------------------------------------
// The development PKI on disk

export const DEV_ORGANIZATION = 'Amtsbote DEV PKI - NOT FOR PRODUCTION';
export const DEV_CA_NAME = 'Amtsbote DEV CA - NOT FOR PRODUCTION';
export const DEFAULT_DEV_IDENTITIES = Object.freeze(['intermediary', 'ag-lemgo', 'kanzlei-mustermann', 'stadt-lemgo', 'kreis-lippe']);

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const CA_YEARS = 5;
const LEAF_YEARS = 2;
const CRL_DAYS = 90;

const USAGE_KEY_USAGE: Record<CertUsage, readonly KeyUsageName[]> = {
  signature: ['digitalSignature', 'nonRepudiation'],
  cipher: ['keyEncipherment', 'dataEncipherment'],
};

const README = `Amtsbote development PKI - NOT FOR PRODUCTION
==============================================

Everything in this directory was generated by Amtsbote (crypto/devpki.ts) for local development
and tests. The private keys are unencrypted, the CA is self-made, and nobody outside this machine
trusts it. Never use these keys or certificates for real messages, never configure this CA as a
trust anchor in production, and do not commit the key files.

Layout:
  ca/ca.key.pem, ca/ca.cert.pem   development CA (RSA, self-signed)
  ca/crl.pem                      its CRL (rewritten by revokeDevCertificate)
  <identity>/signature.key.pem    signature key (keyUsage digitalSignature, nonRepudiation)
  <identity>/signature.cert.pem
  <identity>/cipher.key.pem       cipher key (keyUsage keyEncipherment, dataEncipherment)
  <identity>/cipher.cert.pem
`;

const generateKeyPairAsync = promisify(generateKeyPair);

async function newRsaKey(bitsWanted: number): Promise<KeyObject> {
  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: bitsWanted, publicExponent: 0x10001 });
  return privateKey;
}

function publicOf(key: KeyObject): KeyObject {
  return createPublicKey(key);
}

/** Writes `path` through a temporary file with `mode` (keys 0600, certificates 0644) and renames it into place. */
export function writeAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export function keyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function checkBits(b: number): number {
  if (!Number.isInteger(b) || b < 2048) throw new CryptoError('ERR_KEY_TOO_SMALL', `dev PKI keys need at least 2048 bits, got ${b}`);
  if (b > 8192) throw new RangeError(`dev PKI key size ${b} is unreasonably large`);
  return b;
}

function checkId(id: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(id) || id.includes('..') || id === 'ca') {
    throw new RangeError(`invalid dev PKI identity name ${JSON.stringify(id)} (letters, digits, '.', '_', '-'; not 'ca')`);
  }
  return id;
}

export interface DevCa {
  certificate: X509Certificate;
  key: KeyObject;
  dir: string;
  keyPath: string;
  certPath: string;
  crlPath: string;
}

/** Loads the dev CA from `caDir` (ca.key.pem, ca.cert.pem). */
export function loadDevCa(caDir: string): DevCa {
  const keyPath = join(caDir, 'ca.key.pem');
  const certPath = join(caDir, 'ca.cert.pem');
  const key = loadPrivateKey(keyPath);
  const certificate = loadCertificate(certPath);
  if (!keyMatchesCertificate(key, certificate)) throw new CryptoError('ERR_KEY_INVALID', `${certPath} does not match ${keyPath}`);
  return { certificate, key, dir: caDir, keyPath, certPath, crlPath: join(caDir, 'crl.pem') };
}

function crlPem(der: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END X509 CRL-----\n`;
}

function writeCrl(ca: DevCa, revoked: Array<{ serialHex: string; date: Date }>, crlNumber: bigint, now: Date): Buffer {
  const der = createCrl({ issuer: ca, thisUpdate: new Date(now.getTime() - HOUR), nextUpdate: new Date(now.getTime() + CRL_DAYS * DAY), crlNumber, revoked });
  writeAtomic(ca.crlPath, crlPem(der), 0o644);
  return der;
}

export interface IssueOptions {
  id: string;
  usage: CertUsage;
  /** RSA bits for a new key (default 3072); ignored when `key` is given. */
  bits?: number;
  /** Reuse a key (re-certification) instead of generating one. */
  key?: KeyObject;
  notBefore?: Date;
  notAfter?: Date;
  now?: Date;
  /** Write `<usage>.key.pem` (0600) and `<usage>.cert.pem` here. */
  outDir?: string;
}

export interface IssuedCertificate {
  id: string;
  usage: CertUsage;
  key: KeyObject;
  certificate: X509Certificate;
  serialHex: string;
  keyPath?: string;
  certPath?: string;
}

function issueWith(ca: DevCa, key: KeyObject, opts: IssueOptions): IssuedCertificate {
  const now = opts.now ?? new Date();
  const notBefore = opts.notBefore ?? new Date(now.getTime() - HOUR);
  const notAfter = opts.notAfter ?? new Date(now.getTime() + LEAF_YEARS * 365 * DAY);
  const certificate = createCertificate({
    subject: { CN: checkId(opts.id), O: DEV_ORGANIZATION },
    publicKey: publicOf(key),
    issuer: ca,
    notBefore,
    notAfter,
    basicConstraints: { ca: false },
    keyUsage: USAGE_KEY_USAGE[opts.usage],
  });
  const issued: IssuedCertificate = { id: opts.id, usage: opts.usage, key, certificate, serialHex: certificateInfo(certificate).serialHex };
  if (opts.outDir) {
    mkdirSync(opts.outDir, { recursive: true, mode: 0o700 });
    issued.keyPath = join(opts.outDir, `${opts.usage}.key.pem`);
    issued.certPath = join(opts.outDir, `${opts.usage}.cert.pem`);
    writeAtomic(issued.keyPath, keyPem(key), 0o600);
    writeAtomic(issued.certPath, certificate.toString(), 0o644);
  }
  return issued;
}

/** Issues a signature or cipher certificate from the dev CA in `caDir` (e.g. for rotation). */
export async function issueDevCertificate(caDir: string, opts: IssueOptions): Promise<IssuedCertificate> {
  checkId(opts.id);
  const ca = loadDevCa(caDir);
  const key = opts.key ?? (await newRsaKey(checkBits(opts.bits ?? 3072)));
  return issueWith(ca, key, opts);
}

/** Adds a serial (hex, any case, colons allowed) or certificate to the dev CA's CRL and re-signs it. */
export function revokeDevCertificate(caDir: string, serial: string | X509Certificate, opts: { at?: Date; now?: Date } = {}): { crlPath: string; crl: Buffer } {
  const ca = loadDevCa(caDir);
  const now = opts.now ?? new Date();
  const hex = (typeof serial === 'string' ? serial : certificateInfo(serial).serialHex).replace(/[:\s]/g, '').toUpperCase().replace(/^0+(?=.)/, '');
  if (!/^[0-9A-F]+$/.test(hex)) throw new RangeError(`not a hexadecimal serial number: ${JSON.stringify(serial)}`);
  const old = existsSync(ca.crlPath) ? parseCrl(readFileSync(ca.crlPath)) : undefined;
  const revoked = old ? [...old.revoked] : [];
  if (!revoked.some((r) => r.serialHex === hex)) revoked.push({ serialHex: hex, date: opts.at ?? now });
  const crl = writeCrl(ca, revoked, (old?.crlNumber ?? 0n) + 1n, now);
  return { crlPath: ca.crlPath, crl };
}

export interface DevIdentityFiles {
  keyPath: string;
  certPath: string;
  certificate: X509Certificate;
}

export interface DevPkiResult {
  dir: string;
  ca: { created: boolean; keyPath: string; certPath: string; crlPath: string; certificate: X509Certificate };
  identities: Array<{ id: string; created: boolean; signature: DevIdentityFiles; cipher: DevIdentityFiles }>;
  /** RSA keys generated by this call. */
  generatedKeys: number;
}

export interface InitDevPkiOptions {
  /** RSA bits of every new key (default 3072, BSI TR-02102; minimum 2048). */
  bits?: number;
  identities?: readonly string[];
  /** Regenerate the CA and every identity. */
  force?: boolean;
  now?: Date;
}

/**
 * Creates (or completes) a dev PKI under `dir`. Idempotent: an existing CA and existing identities
 * are kept unless `force`; a new CA re-issues every identity. Keys are generated in parallel.
 */
export async function initDevPki(dir: string, opts: InitDevPkiOptions = {}): Promise<DevPkiResult> {
  const keyBits = checkBits(opts.bits ?? 3072);
  const ids = [...new Set((opts.identities ?? DEFAULT_DEV_IDENTITIES).map(checkId))];
  const now = opts.now ?? new Date();
  const caDir = join(dir, 'ca');
  mkdirSync(caDir, { recursive: true, mode: 0o700 });
  writeAtomic(join(dir, 'README.txt'), README, 0o644);

  const caExists = existsSync(join(caDir, 'ca.key.pem')) && existsSync(join(caDir, 'ca.cert.pem'));
  const createCa = opts.force === true || !caExists;
  const usages: CertUsage[] = ['signature', 'cipher'];
  const identityComplete = (id: string) => usages.every((u) => existsSync(join(dir, id, `${u}.key.pem`)) && existsSync(join(dir, id, `${u}.cert.pem`)));
  const toIssue = ids.filter((id) => createCa || !identityComplete(id));

  // All keys at once: generateKeyPair runs on the libuv thread pool.
  const [caKey, ...leafKeys] = await Promise.all([
    createCa ? newRsaKey(keyBits) : Promise.resolve(undefined),
    ...toIssue.flatMap(() => usages.map(() => newRsaKey(keyBits))),
  ]);

  let ca: DevCa;
  if (caKey) {
    const certificate = createCertificate({
      subject: { CN: DEV_CA_NAME, O: DEV_ORGANIZATION },
      publicKey: publicOf(caKey),
      signingKey: caKey,
      notBefore: new Date(now.getTime() - HOUR),
      notAfter: new Date(now.getTime() + CA_YEARS * 365 * DAY),
      basicConstraints: { ca: true, pathLength: 0 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    });
    ca = { certificate, key: caKey, dir: caDir, keyPath: join(caDir, 'ca.key.pem'), certPath: join(caDir, 'ca.cert.pem'), crlPath: join(caDir, 'crl.pem') };
    writeAtomic(ca.keyPath, keyPem(caKey), 0o600);
    writeAtomic(ca.certPath, certificate.toString(), 0o644);
    writeCrl(ca, [], 1n, now);
  } else {
    ca = loadDevCa(caDir);
    const old = existsSync(ca.crlPath) ? parseCrl(readFileSync(ca.crlPath)) : undefined;
    // Keep the CRL current: re-sign it (same entries) when missing or past nextUpdate.
    if (!old || (old.nextUpdate && old.nextUpdate.getTime() < now.getTime())) writeCrl(ca, old?.revoked ?? [], (old?.crlNumber ?? 0n) + 1n, now);
  }

  const identities: DevPkiResult['identities'] = [];
  let k = 0;
  for (const id of ids) {
    const outDir = join(dir, id);
    const files = {} as Record<CertUsage, DevIdentityFiles>;
    const created = toIssue.includes(id);
    for (const usage of usages) {
      if (created) {
        const key = leafKeys[k++] as KeyObject;
        const issued = issueWith(ca, key, { id, usage, key, now, outDir });
        files[usage] = { keyPath: issued.keyPath as string, certPath: issued.certPath as string, certificate: issued.certificate };
      } else {
        const certPath = join(outDir, `${usage}.cert.pem`);
        files[usage] = { keyPath: join(outDir, `${usage}.key.pem`), certPath, certificate: loadCertificate(certPath) };
      }
    }
    identities.push({ id, created, signature: files.signature, cipher: files.cipher });
  }
  return {
    dir,
    ca: { created: createCa, keyPath: ca.keyPath, certPath: ca.certPath, crlPath: ca.crlPath, certificate: ca.certificate },
    identities,
    generatedKeys: (caKey ? 1 : 0) + toIssue.length * usages.length,
  };
}
