/**
 * Loading keys and certificates (PEM, DER, PKCS#12) into node:crypto objects, key-size policy, and
 * PKCS#12 export. node-forge is used only to open/write PKCS#12 containers, whose legacy PBE
 * (RC2-40 cert bags, 3DES key bags in the OSCI test files) OpenSSL 3 no longer reads
 * (dependencies-and-security.md §1); everything that uses a key afterwards runs on node:crypto.
 */
import { createHash, createPrivateKey, createPublicKey, KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import forge from 'node-forge';
import { DEFAULT_POLICY, type CryptoPolicy } from './algorithms.ts';
import { CryptoError } from './errors.ts';

/** Bytes, PEM text (a string starting with `-----BEGIN`), or a file path. */
export type KeySource = Buffer | string;

export interface Pkcs12Contents {
  key: KeyObject;
  /** The certificate whose public key matches `key`. */
  certificate: X509Certificate;
  /** The other certificates of the container, issuer order first (issuer of `certificate`, its issuer, ...). */
  chain: X509Certificate[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n?-----END \1-----/g;

function readSource(source: KeySource, what: string): Buffer {
  if (Buffer.isBuffer(source)) return source;
  if (source.trimStart().startsWith('-----BEGIN')) return Buffer.from(source, 'utf8');
  try {
    return readFileSync(source);
  } catch (e) {
    throw new CryptoError('ERR_KEY_INVALID', `cannot read ${what} file ${source}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e });
  }
}

function isPem(buf: Buffer): boolean {
  return buf.subarray(0, 4096).toString('latin1').includes('-----BEGIN ');
}

function pemBlocks(buf: Buffer): Array<{ label: string; text: string }> {
  const text = buf.toString('utf8');
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1] ?? '', text: m[0] }));
}

/** Reads a DER tag + length header; returns the offset of the content, or undefined if malformed. */
function derHeader(buf: Buffer, at: number): { tag: number; content: number; length: number } | undefined {
  const tag = buf[at];
  const first = buf[at + 1];
  if (tag === undefined || first === undefined) return undefined;
  if (first < 0x80) return { tag, content: at + 2, length: first };
  const n = first & 0x7f;
  if (n === 0 || n > 4 || at + 2 + n > buf.length) return undefined;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + (buf[at + 2 + i] ?? 0);
  return { tag, content: at + 2 + n, length };
}

/** PFX ::= SEQUENCE { version INTEGER (3), ... } (RFC 7292 §4); PKCS#8/PKCS#1 start with INTEGER 0 or a SEQUENCE. */
function isPkcs12Der(buf: Buffer): boolean {
  const outer = derHeader(buf, 0);
  if (!outer || outer.tag !== 0x30) return false;
  const version = derHeader(buf, outer.content);
  return version?.tag === 0x02 && version.length === 1 && buf[version.content] === 3;
}

function fromForgeBytes(bytes: string): Buffer {
  return Buffer.from(bytes, 'binary');
}

interface DecodedPkcs12 {
  keys: KeyObject[];
  certs: X509Certificate[];
}

function decodePkcs12(der: Buffer, pin: string): DecodedPkcs12 {
  let pfx: forge.pkcs12.Pkcs12Pfx;
  try {
    // strict=false: real containers are often BER (indefinite lengths).
    const asn = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')), false);
    pfx = forge.pkcs12.pkcs12FromAsn1(asn, false, pin);
  } catch (e) {
    const msg = (e as Error).message ?? '';
    // forge's MAC/decrypt failures name the password; never include the PIN itself.
    if (/password|MAC could not be verified|decrypt/i.test(msg)) {
      throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12: wrong PIN (integrity check or decryption failed)', { cause: e });
    }
    throw new CryptoError('ERR_KEY_INVALID', `PKCS#12: cannot parse container: ${msg}`, { cause: e });
  }
  const keys: KeyObject[] = [];
  const certs: X509Certificate[] = [];
  for (const safe of pfx.safeContents) {
    for (const bag of safe.safeBags) {
      try {
        if (bag.type === forge.pki.oids.certBag) {
          // forge keeps an unparseable (non-RSA) certificate as raw ASN.1.
          const asn = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1;
          certs.push(new X509Certificate(fromForgeBytes(forge.asn1.toDer(asn).getBytes())));
        } else if (bag.type === forge.pki.oids.keyBag || bag.type === forge.pki.oids.pkcs8ShroudedKeyBag) {
          // PrivateKeyInfo (RFC 5208); forge parses RSA only and keeps other key types as raw ASN.1.
          const asn = bag.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key)) : bag.asn1;
          keys.push(createPrivateKey({ key: fromForgeBytes(forge.asn1.toDer(asn).getBytes()), format: 'der', type: 'pkcs8' }));
        }
      } catch (e) {
        throw new CryptoError('ERR_KEY_INVALID', `PKCS#12: unreadable ${bag.type === forge.pki.oids.certBag ? 'certificate' : 'key'} bag: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  return { keys, certs };
}

function onlyKey(decoded: DecodedPkcs12): KeyObject {
  const [key, ...more] = decoded.keys;
  if (!key) throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12: the container holds no private key');
  if (more.length > 0) throw new CryptoError('ERR_KEY_INVALID', `PKCS#12: the container holds ${decoded.keys.length} private keys; expected one`);
  return key;
}

function spki(key: KeyObject | X509Certificate): Buffer {
  const pub = key instanceof X509Certificate ? key.publicKey : key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** True when the private (or public) key and the certificate share the public key. */
export function keyMatchesCertificate(key: KeyObject, cert: X509Certificate): boolean {
  return spki(key).equals(spki(cert));
}

/** Leaf first, then issuers in order as far as they are present, then the rest. */
function orderChain(leaf: X509Certificate, others: X509Certificate[]): X509Certificate[] {
  const rest = [...others];
  const chain: X509Certificate[] = [];
  let current = leaf;
  for (;;) {
    const i = rest.findIndex((c) => !c.raw.equals(current.raw) && current.checkIssued(c));
    if (i < 0) break;
    const [next] = rest.splice(i, 1);
    if (!next) break;
    chain.push(next);
    current = next;
  }
  return [...chain, ...rest];
}

/** Opens a PKCS#12 container: the one private key, its certificate and the remaining certificates. */
export function loadPkcs12(source: KeySource, pin: string): Pkcs12Contents {
  const der = readSource(source, 'PKCS#12');
  if (!isPkcs12Der(der)) throw new CryptoError('ERR_KEY_INVALID', 'not a PKCS#12 container (expected DER PFX, version 3)');
  const decoded = decodePkcs12(der, pin);
  const key = onlyKey(decoded);
  const own = decoded.certs.find((c) => keyMatchesCertificate(key, c));
  if (!own) throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12: no certificate matches the private key');
  const others = decoded.certs.filter((c) => c !== own && !c.raw.equals(own.raw));
  return { key, certificate: own, chain: orderChain(own, others) };
}

function wrapKeyError(e: unknown, what: string): CryptoError {
  if (e instanceof CryptoError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (/BAD_DECRYPT|INTERRUPTED_OR_CANCELLED|bad decrypt|passphrase/i.test(`${code} ${(e as Error).message}`)) {
    return new CryptoError('ERR_KEY_INVALID', `${what}: wrong PIN or passphrase`, { cause: e });
  }
  return new CryptoError('ERR_KEY_INVALID', `${what}: unreadable private key (${code || (e as Error).message})`, { cause: e });
}

/**
 * A private key from PEM (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8 with `pin`), DER (PKCS#8, encrypted
 * PKCS#8, PKCS#1) or PKCS#12 (`pin` required). The format is recognised by content, not file name.
 */
export function loadPrivateKey(source: KeySource, opts: { pin?: string } = {}): KeyObject {
  const buf = readSource(source, 'key');
  const pin = opts.pin;
  if (isPem(buf)) {
    const blocks = pemBlocks(buf).filter((b) => /PRIVATE KEY$/.test(b.label));
    const [block, ...more] = blocks;
    if (!block) throw new CryptoError('ERR_KEY_INVALID', 'PEM: no PRIVATE KEY block found');
    if (more.length > 0) throw new CryptoError('ERR_KEY_INVALID', `PEM: ${blocks.length} private keys found; expected one`);
    const encrypted = block.label === 'ENCRYPTED PRIVATE KEY' || block.text.includes('Proc-Type: 4,ENCRYPTED');
    if (encrypted && pin === undefined) throw new CryptoError('ERR_KEY_INVALID', 'PEM: the private key is encrypted; a PIN is required');
    try {
      return createPrivateKey(encrypted ? { key: block.text, format: 'pem', passphrase: pin } : { key: block.text, format: 'pem' });
    } catch (e) {
      throw wrapKeyError(e, 'PEM');
    }
  }
  if (isPkcs12Der(buf)) {
    if (pin === undefined) throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12: a PIN is required');
    return onlyKey(decodePkcs12(buf, pin));
  }
  // DER: EncryptedPrivateKeyInfo starts with a SEQUENCE, PrivateKeyInfo/RSAPrivateKey with INTEGER 0.
  const outer = derHeader(buf, 0);
  const first = outer && outer.tag === 0x30 ? derHeader(buf, outer.content) : undefined;
  if (!first) throw new CryptoError('ERR_KEY_INVALID', 'unrecognised key format (neither PEM, DER nor PKCS#12)');
  try {
    if (first.tag === 0x30) {
      if (pin === undefined) throw new CryptoError('ERR_KEY_INVALID', 'DER: the private key is encrypted; a PIN is required');
      return createPrivateKey({ key: buf, format: 'der', type: 'pkcs8', passphrase: pin });
    }
    const second = derHeader(buf, first.content + first.length);
    return createPrivateKey({ key: buf, format: 'der', type: second?.tag === 0x30 ? 'pkcs8' : 'pkcs1' });
  } catch (e) {
    throw wrapKeyError(e, 'DER');
  }
}

/** All certificates of a PEM bundle, or the one certificate of a DER file. */
export function loadCertificates(source: KeySource): X509Certificate[] {
  const buf = readSource(source, 'certificate');
  try {
    if (!isPem(buf)) return [new X509Certificate(buf)];
    const certs = pemBlocks(buf)
      .filter((b) => b.label === 'CERTIFICATE')
      .map((b) => new X509Certificate(b.text));
    if (certs.length === 0) throw new CryptoError('ERR_KEY_INVALID', 'PEM: no CERTIFICATE block found');
    return certs;
  } catch (e) {
    if (e instanceof CryptoError) throw e;
    throw new CryptoError('ERR_KEY_INVALID', `unreadable certificate: ${(e as Error).message}`, { cause: e });
  }
}

/** Exactly one certificate (PEM or DER). */
export function loadCertificate(source: KeySource): X509Certificate {
  const certs = loadCertificates(source);
  const [cert] = certs;
  if (!cert || certs.length !== 1) {
    throw new CryptoError('ERR_KEY_INVALID', `expected one certificate, found ${certs.length} (use loadCertificates for bundles)`);
  }
  return cert;
}

function publicKeyOf(key: KeyObject | X509Certificate): KeyObject {
  return key instanceof X509Certificate ? key.publicKey : key;
}

/** RSA modulus length in bits; ERR_KEY_INVALID for non-RSA keys. */
export function rsaBits(key: KeyObject | X509Certificate): number {
  const k = publicKeyOf(key);
  const bits = k.asymmetricKeyDetails?.modulusLength;
  if ((k.asymmetricKeyType !== 'rsa' && k.asymmetricKeyType !== 'rsa-pss') || bits === undefined) {
    throw new CryptoError('ERR_KEY_INVALID', `expected an RSA key, got ${k.asymmetricKeyType ?? k.type}`);
  }
  return bits;
}

/** Refuses RSA keys below `policy.minRsaBits` (osci-protocol.md §9: RSA < 2048 is weak; BSI TR-02102 ≥ 3000). */
export function assertKeySize(key: KeyObject | X509Certificate, policy: CryptoPolicy = DEFAULT_POLICY): number {
  const bits = rsaBits(key);
  if (bits < policy.minRsaBits) {
    throw new CryptoError('ERR_KEY_TOO_SMALL', `RSA key of ${bits} bits is below the policy minimum of ${policy.minRsaBits} bits`);
  }
  return bits;
}

/** Lower-case hex SHA-256 of the DER certificate; OSCI certificate Ids are `<role>_<usage>_<hex>` (osci-protocol.md §4). */
export function certificateSha256Hex(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex');
}

/**
 * A PKCS#12 container for export: AES-256-CBC key encryption with PBKDF2-HMAC-SHA256 (PBES2), the
 * certificates in clear (as OpenSSL does by default), HMAC-SHA1 integrity (the only MAC forge writes;
 * OpenSSL 3 and Java read it). RSA keys only.
 */
export function writePkcs12(key: KeyObject, cert: X509Certificate, chain: X509Certificate[], pin: string, opts: { iterations?: number; friendlyName?: string } = {}): Buffer {
  if (key.type !== 'private') throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12 export needs a private key');
  rsaBits(key);
  if (!keyMatchesCertificate(key, cert)) throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12 export: the certificate does not match the key');
  if (pin.length === 0) throw new CryptoError('ERR_KEY_INVALID', 'PKCS#12 export: an empty PIN is not allowed');
  let forgeKey: forge.pki.rsa.PrivateKey;
  let forgeCerts: forge.pki.Certificate[];
  try {
    forgeKey = forge.pki.privateKeyFromPem(key.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
    forgeCerts = [cert, ...chain].map((c) => forge.pki.certificateFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(c.raw.toString('binary')))));
  } catch (e) {
    throw new CryptoError('ERR_KEY_INVALID', `PKCS#12 export: ${(e as Error).message}`, { cause: e });
  }
  const options: Record<string, unknown> = {
    algorithm: 'aes256',
    prfAlgorithm: 'sha256',
    count: opts.iterations ?? 50_000,
    saltSize: 16,
    generateLocalKeyId: true,
  };
  if (opts.friendlyName !== undefined) options.friendlyName = opts.friendlyName;
  const asn = forge.pkcs12.toPkcs12Asn1(forgeKey, forgeCerts, pin, options as Parameters<typeof forge.pkcs12.toPkcs12Asn1>[3]);
  return fromForgeBytes(forge.asn1.toDer(asn).getBytes());
}
