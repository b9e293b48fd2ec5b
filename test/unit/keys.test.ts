import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withPolicy } from '../../crypto/algorithms.ts';
import { CryptoError } from '../../crypto/errors.ts';
import {
  assertKeySize,
  certificateSha256Hex,
  keyMatchesCertificate,
  loadCertificate,
  loadCertificates,
  loadPkcs12,
  loadPrivateKey,
  rsaBits,
  writePkcs12,
} from '../../crypto/keys.ts';
import { hasTool, requireShared, shared } from '../helpers/env.ts';

const PIN = '123456';
const certs = (...p: string[]) => shared('osci-reference', 'certs', ...p);
const interop = (f: string) => shared('vectors', 'local-interop', f);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CryptoError) return e.code;
    throw e;
  }
  return undefined;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

describe('crypto/keys', () => {
  describe('reference PKCS#12 files of the OSCI library (RC2-40 + 3DES)', function () {
    before(function () {
      requireShared(this);
    });

    const names = () => readdirSync(certs()).filter((f) => f.endsWith('_4096.p12')).sort();

    it('finds all 15 RSA-4096 containers (alice, bob, carol, dave, osci_manager, backend_*, cvs)', () => {
      const list = names();
      expect(list).to.have.length(15);
      for (const who of ['alice', 'bob', 'carol', 'dave', 'osci_manager', 'backend_enabler', 'backend_recipient_2', 'cvs']) {
        expect(list.some((f) => f.startsWith(who)), who).to.equal(true);
      }
    });

    it('loads every 4096-bit container with PIN 123456; key matches the .cer and the chain is the Governikus CA', function () {
      this.timeout(120_000);
      for (const f of names()) {
        const p12 = loadPkcs12(certs(f), PIN);
        const cer = loadCertificate(certs(f.replace(/\.p12$/, '.cer')));
        expect(p12.certificate.raw.equals(cer.raw), `${f}: certificate bytes`).to.equal(true);
        expect(keyMatchesCertificate(p12.key, cer), `${f}: key matches .cer`).to.equal(true);
        expect(p12.key.type).to.equal('private');
        expect(rsaBits(p12.key), f).to.equal(4096);
        expect(assertKeySize(p12.key)).to.equal(4096);
        expect(p12.chain.map((c) => c.subject.match(/CN=(.*)/)?.[1])).to.deep.equal(['Governikus CA 8:PN', 'Governikus Root CA 3:PN']);
        expect(p12.certificate.checkIssued(p12.chain[0] as X509Certificate)).to.equal(true);
      }
    });

    it('loadPrivateKey reads a .p12 by content and needs the PIN', () => {
      const key = loadPrivateKey(certs('bob_cipher_4096.p12'), { pin: PIN });
      expect(keyMatchesCertificate(key, loadCertificate(certs('bob_cipher_4096.cer')))).to.equal(true);
      expect(codeOf(() => loadPrivateKey(certs('bob_cipher_4096.p12')))).to.equal('ERR_KEY_INVALID');
      // Also from a Buffer.
      const again = loadPrivateKey(readFileSync(certs('bob_cipher_4096.p12')), { pin: PIN });
      expect(keyMatchesCertificate(again, loadCertificate(certs('bob_cipher_4096.cer')))).to.equal(true);
    });

    it('a wrong PIN gives ERR_KEY_INVALID and the message does not echo the PIN', () => {
      const wrong = 'falsch-987';
      expect(codeOf(() => loadPkcs12(certs('alice_cipher_4096.p12'), wrong))).to.equal('ERR_KEY_INVALID');
      const msg = messageOf(() => loadPkcs12(certs('alice_cipher_4096.p12'), wrong));
      expect(msg).to.match(/wrong PIN/);
      expect(msg).not.to.include(wrong);
      expect(codeOf(() => loadPrivateKey(certs('alice_cipher_4096.p12'), { pin: '' }))).to.equal('ERR_KEY_INVALID');
    });

    it('OSCI certificate Ids use the lower-case hex SHA-256 of the DER certificate', () => {
      const plain = readFileSync(shared('osci-reference', 'messages', '01_initDialog.plain.mime')).toString('latin1');
      const id = plain.match(/Id="originator_signature_([0-9a-f]{64})"/)?.[1];
      expect(id).to.be.a('string');
      expect(certificateSha256Hex(loadCertificate(certs('alice_signature_4096.cer')))).to.equal(id);
    });

    it('alt/ 1024-bit keys are refused with ERR_KEY_TOO_SMALL under the default policy', () => {
      const reader = loadPkcs12(certs('alt', 'Reader01.p12'), PIN);
      expect(rsaBits(reader.key)).to.equal(1024);
      expect(codeOf(() => assertKeySize(reader.key))).to.equal('ERR_KEY_TOO_SMALL');
      expect(codeOf(() => assertKeySize(reader.certificate))).to.equal('ERR_KEY_TOO_SMALL');
      expect(codeOf(() => assertKeySize(loadCertificate(certs('alt', 'Originator01.cer'))))).to.equal('ERR_KEY_TOO_SMALL');
    });

    it('alt/ and BOS/ 2048-bit keys pass the default policy but not a 3072-bit policy', () => {
      for (const f of [certs('alt', 'backend_cipher1.p12'), certs('alt', 'test_osci-manager_cypher.p12'), certs('BOS', 'optional', 'test_recipient-1_cypher.p12')]) {
        const { key } = loadPkcs12(f, PIN);
        expect(assertKeySize(key), f).to.equal(2048);
        expect(codeOf(() => assertKeySize(key, withPolicy({ minRsaBits: 3072 }))), f).to.equal('ERR_KEY_TOO_SMALL');
      }
    });

    it('ECDSA containers load, and RSA-only operations refuse them with ERR_KEY_INVALID', () => {
      for (const curve of ['prime192v3', 'prime239v1', 'prime256v1']) {
        const p12 = loadPkcs12(certs(`ECDSA_${curve}_eec.p12`), PIN);
        expect(p12.key.asymmetricKeyType).to.equal('ec');
        expect(p12.key.asymmetricKeyDetails?.namedCurve).to.equal(curve);
        expect(p12.certificate.subject).to.include(`ECDSA ${curve}`);
        expect(codeOf(() => rsaBits(p12.key))).to.equal('ERR_KEY_INVALID');
        expect(codeOf(() => assertKeySize(p12.certificate))).to.equal('ERR_KEY_INVALID');
        expect(codeOf(() => writePkcs12(p12.key, p12.certificate, [], 'x'))).to.equal('ERR_KEY_INVALID');
      }
    });
  });

  describe('PEM and DER from vectors/local-interop', function () {
    before(function () {
      requireShared(this);
    });

    it('key.pem (PKCS#8) and key.p8.der are the same RSA-3072 key and match cert.pem', () => {
      const pem = loadPrivateKey(interop('key.pem'));
      const der = loadPrivateKey(interop('key.p8.der'));
      const cert = loadCertificate(interop('cert.pem'));
      expect(rsaBits(pem)).to.equal(3072);
      expect(keyMatchesCertificate(pem, cert)).to.equal(true);
      expect(keyMatchesCertificate(der, cert)).to.equal(true);
      expect(cert.subject).to.include('CN=eGVP Interop Test');
    });

    it('accepts PEM text and Buffers as well as paths', () => {
      const text = readFileSync(interop('key.pem'), 'utf8');
      expect(rsaBits(loadPrivateKey(text))).to.equal(3072);
      expect(loadCertificate(readFileSync(interop('cert.pem'))).raw.equals(loadCertificate(interop('cert.pem')).raw)).to.equal(true);
    });

    it('the stranger key does not match the trusted certificate', () => {
      expect(keyMatchesCertificate(loadPrivateKey(interop('stranger-key.pem')), loadCertificate(interop('cert.pem')))).to.equal(false);
    });

    it('bundles: loadCertificates returns all, loadCertificate refuses more than one', () => {
      const bundle = Buffer.concat([readFileSync(interop('cert.pem')), readFileSync(interop('stranger-cert.pem'))]);
      expect(loadCertificates(bundle)).to.have.length(2);
      expect(codeOf(() => loadCertificate(bundle))).to.equal('ERR_KEY_INVALID');
    });
  });

  describe('key formats and errors', () => {
    let key: KeyObject;
    before(() => {
      key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    });

    it('reads PKCS#1 PEM and DER, PKCS#8 DER', () => {
      for (const src of [
        key.export({ type: 'pkcs1', format: 'pem' }),
        key.export({ type: 'pkcs1', format: 'der' }),
        key.export({ type: 'pkcs8', format: 'der' }),
      ]) {
        const k = loadPrivateKey(Buffer.from(src));
        expect(k.equals(key)).to.equal(true);
      }
    });

    it('reads encrypted PKCS#8 (PEM and DER) with the PIN; a wrong or missing PIN is ERR_KEY_INVALID', () => {
      const enc = { type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pin-42' } as const;
      const pem = key.export({ ...enc, format: 'pem' });
      const der = key.export({ ...enc, format: 'der' });
      expect(loadPrivateKey(Buffer.from(pem), { pin: 'pin-42' }).equals(key)).to.equal(true);
      expect(loadPrivateKey(der, { pin: 'pin-42' }).equals(key)).to.equal(true);
      expect(codeOf(() => loadPrivateKey(Buffer.from(pem), { pin: 'Xq9-not-it' }))).to.equal('ERR_KEY_INVALID');
      expect(messageOf(() => loadPrivateKey(Buffer.from(pem), { pin: 'Xq9-not-it' }))).not.to.include('Xq9-not-it');
      expect(codeOf(() => loadPrivateKey(der, { pin: 'wrong' }))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => loadPrivateKey(Buffer.from(pem)))).to.equal('ERR_KEY_INVALID');
    });

    it('garbage, certificates-as-keys and missing files are ERR_KEY_INVALID', () => {
      expect(codeOf(() => loadPrivateKey(Buffer.from('not a key')))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => loadPrivateKey(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => loadPrivateKey('/nonexistent/key.pem'))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => loadCertificate(Buffer.from('garbage')))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => loadCertificates(Buffer.from('-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n')))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => loadPkcs12(Buffer.from(key.export({ type: 'pkcs8', format: 'der' })), 'x'))).to.equal('ERR_KEY_INVALID');
    });

    it('assertKeySize follows the policy minimum', () => {
      expect(assertKeySize(key)).to.equal(2048);
      expect(codeOf(() => assertKeySize(key, withPolicy({ minRsaBits: 3072 })))).to.equal('ERR_KEY_TOO_SMALL');
    });
  });

  describe('writePkcs12', function () {
    before(function () {
      requireShared(this);
    });

    it('round-trips key, certificate and chain with AES-256/PBKDF2-SHA256, and OpenSSL 3 reads it without -legacy', function () {
      this.timeout(60_000);
      const src = loadPkcs12(certs('alice_cipher_4096.p12'), PIN);
      const out = writePkcs12(src.key, src.certificate, src.chain, 'neu-pin', { iterations: 2048 });
      const back = loadPkcs12(out, 'neu-pin');
      expect(back.certificate.raw.equals(src.certificate.raw)).to.equal(true);
      expect(back.key.equals(src.key)).to.equal(true);
      expect(back.chain.map((c) => c.raw.toString('base64'))).to.deep.equal(src.chain.map((c) => c.raw.toString('base64')));
      expect(codeOf(() => loadPkcs12(out, PIN))).to.equal('ERR_KEY_INVALID');
      if (!hasTool('openssl')) return;
      const dir = mkdtempSync(join(tmpdir(), 'amtsbote-p12-'));
      try {
        writeFileSync(join(dir, 'x.p12'), out);
        const info = execFileSync('openssl', ['pkcs12', '-in', join(dir, 'x.p12'), '-passin', 'pass:neu-pin', '-info', '-noout'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        expect(info).to.be.a('string');
        const err = execFileSync('sh', ['-c', `openssl pkcs12 -in '${join(dir, 'x.p12')}' -passin pass:neu-pin -info -noout 2>&1`], { encoding: 'utf8' });
        expect(err).to.match(/AES-256-CBC/);
        expect(err).to.match(/hmacWithSHA256/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('refuses a certificate that does not belong to the key, and an empty PIN', () => {
      const src = loadPkcs12(certs('alice_cipher_4096.p12'), PIN);
      const other = loadCertificate(certs('bob_cipher_4096.cer'));
      expect(codeOf(() => writePkcs12(src.key, other, [], 'x'))).to.equal('ERR_KEY_INVALID');
      expect(codeOf(() => writePkcs12(src.key, src.certificate, [], ''))).to.equal('ERR_KEY_INVALID');
    });
  });
});
