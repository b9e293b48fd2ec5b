import { expect } from 'chai';
import { createPublicKey, generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { withPolicy } from '../../crypto/algorithms.ts';
import { createCertificate, createCrl, type CertificateSpec } from '../../crypto/devpki.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { loadCertificate, loadPkcs12 } from '../../crypto/keys.ts';
import { assertCertificate, certificateInfo, checkCertificate, parseCrl, verifyCrlSignature } from '../../crypto/x509.ts';
import { requireShared, shared } from '../helpers/env.ts';

const DAY = 86_400_000;
const T0 = new Date('2026-03-01T00:00:00Z');
const AT = new Date(T0.getTime() + 10 * DAY);
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const certs = (...p: string[]) => shared('osci-reference', 'certs', ...p);

interface Ca {
  certificate: X509Certificate;
  key: KeyObject;
}

function root(key: KeyObject, cn = 'Test Root', extra: Partial<CertificateSpec> = {}): Ca {
  const certificate = createCertificate({
    subject: { CN: cn, O: 'Test' },
    publicKey: createPublicKey(key),
    signingKey: key,
    notBefore: new Date(T0.getTime() - DAY),
    notAfter: new Date(T0.getTime() + 3650 * DAY),
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    ...extra,
  });
  return { certificate, key };
}

function issue(issuer: Ca, key: KeyObject, cn: string, extra: Partial<CertificateSpec> = {}): X509Certificate {
  return createCertificate({
    subject: { CN: cn, O: 'Test' },
    publicKey: createPublicKey(key),
    issuer,
    notBefore: new Date(T0.getTime() - DAY),
    notAfter: new Date(T0.getTime() + 365 * DAY),
    keyUsage: ['digitalSignature', 'nonRepudiation'],
    ...extra,
  });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CryptoError) return e.code;
    throw e;
  }
  return undefined;
}

// QCStatements ::= SEQUENCE { SEQUENCE { id-etsi-qcs-QcCompliance 0.4.0.1862.1.1 } }
const QC_COMPLIANCE = Buffer.from('300a3008060604008e460101', 'hex');

describe('crypto/x509', () => {
  describe('Governikus test certificates (osci-reference)', function () {
    let rootCa: X509Certificate;
    let ca8: X509Certificate;
    let alice: X509Certificate;

    before(function () {
      requireShared(this);
      this.timeout(30_000);
      const p12 = loadPkcs12(certs('alice_signature_4096.p12'), '123456');
      [ca8, rootCa] = p12.chain as [X509Certificate, X509Certificate];
      alice = p12.certificate;
    });

    it('every 4096-bit certificate chains to the Governikus root and passes as signature and as cipher certificate', () => {
      const files = readdirSync(certs()).filter((f) => f.endsWith('_4096.cer'));
      expect(files).to.have.length(15);
      for (const f of files) {
        const cert = loadCertificate(certs(f));
        for (const usage of ['signature', 'cipher'] as const) {
          const r = checkCertificate(cert, { usage, anchors: [rootCa], intermediates: [ca8], at: AT });
          expect(r.errors, `${f} ${usage}`).to.deep.equal([]);
          expect(r.mathOk && r.chainOk && r.validityOk && r.keyUsageOk, f).to.equal(true);
          expect(r.inspection).to.deep.equal({ mathResult: 'ok', offlineResult: 'valid' });
          expect(r.revoked).to.equal(undefined);
          expect(r.keyBits).to.equal(4096);
          expect(r.certType).to.equal('advanced');
          expect(r.path.map((c) => c.raw.toString('base64'))).to.deep.equal([cert, ca8, rootCa].map((c) => c.raw.toString('base64')));
          expect(r.serialNumber).to.equal(BigInt(`0x${cert.serialNumber}`).toString(10));
        }
      }
    });

    it('reports subject and issuer as RFC 4514 strings', () => {
      const r = checkCertificate(alice, { usage: 'signature', anchors: [rootCa], intermediates: [ca8], at: AT });
      expect(r.subject).to.equal('C=de,O=Governikus KG,OU=Testcertificate Governikus,CN=Alice Signature 4096');
      expect(r.issuer).to.equal('C=DE,L=Bremen,O=Governikus KG,OU=Governikus CA,CN=Governikus CA 8:PN');
      const info = certificateInfo(alice);
      expect(info.keyUsage).to.deep.equal(['digitalSignature', 'keyEncipherment', 'dataEncipherment']);
      expect(info.basicConstraints).to.deep.equal({ ca: false });
      expect(certificateInfo(ca8).basicConstraints?.ca).to.equal(true);
      expect(info.authorityKeyId).to.equal(certificateInfo(ca8).subjectKeyId);
    });

    it('validity is checked at the given time', () => {
      const late = checkCertificate(alice, { usage: 'signature', anchors: [rootCa], intermediates: [ca8], at: new Date('2037-01-01T00:00:00Z') });
      expect(late.validityOk).to.equal(false);
      expect(late.chainOk).to.equal(true);
      expect(late.errors.map((e) => e.code)).to.include('ERR_CERT_EXPIRED');
      expect(late.inspection.offlineResult).to.equal('invalid');
      const early = checkCertificate(alice, { usage: 'signature', anchors: [rootCa], intermediates: [ca8], at: new Date('2020-01-01T00:00:00Z') });
      expect(early.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_NOT_YET_VALID']);
    });

    it('without the anchor: untrusted; math ok when the issuer is known, indeterminate when not', () => {
      const noAnchor = checkCertificate(alice, { usage: 'signature', anchors: [], intermediates: [ca8], at: AT });
      expect(noAnchor.chainOk).to.equal(false);
      expect(noAnchor.mathOk).to.equal(true);
      expect(noAnchor.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_UNTRUSTED']);
      expect(noAnchor.inspection).to.deep.equal({ mathResult: 'ok', offlineResult: 'indeterminate' });
      expect(noAnchor.certType).to.equal('unknown');
      const nothing = checkCertificate(alice, { usage: 'signature', anchors: [], at: AT });
      expect(nothing.inspection).to.deep.equal({ mathResult: 'indeterminate', offlineResult: 'indeterminate' });
      expect(codeOf(() => assertCertificate(alice, { usage: 'signature', anchors: [], at: AT }))).to.equal('ERR_CERT_UNTRUSTED');
    });

    it('an intermediate CA configured as anchor ends the path there', () => {
      const r = checkCertificate(alice, { usage: 'signature', anchors: [ca8], at: AT });
      expect(r.chainOk).to.equal(true);
      expect(r.path).to.have.length(2);
    });

    it('the 1024-bit alt/ certificate is too small, expired and untrusted', () => {
      const r = checkCertificate(loadCertificate(certs('alt', 'Originator01.cer')), { usage: 'signature', anchors: [rootCa] });
      expect(r.keyBits).to.equal(1024);
      expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_UNTRUSTED', 'ERR_CERT_EXPIRED', 'ERR_KEY_TOO_SMALL']);
    });

    it('the key-size policy applies to the leaf', () => {
      const r = checkCertificate(alice, { usage: 'signature', anchors: [rootCa], intermediates: [ca8], at: AT, policy: withPolicy({ minRsaBits: 8192 }) });
      expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_KEY_TOO_SMALL']);
      expect(r.inspection.offlineResult).to.equal('invalid');
    });
  });

  describe('generated certificates', () => {
    let rootKey: KeyObject;
    let leafKey: KeyObject;
    let subKey: KeyObject;
    let ca: Ca;

    before(function () {
      this.timeout(30_000);
      rootKey = rsa();
      leafKey = rsa();
      subKey = rsa();
      ca = root(rootKey);
    });

    const check = (cert: X509Certificate, usage: 'signature' | 'cipher', extra: object = {}) =>
      checkCertificate(cert, { usage, anchors: [ca.certificate], at: AT, ...extra });

    it('key usage: signature needs digitalSignature or nonRepudiation', () => {
      expect(check(issue(ca, leafKey, 's1', { keyUsage: ['digitalSignature'] }), 'signature').keyUsageOk).to.equal(true);
      expect(check(issue(ca, leafKey, 's2', { keyUsage: ['nonRepudiation'] }), 'signature').keyUsageOk).to.equal(true);
      const bad = check(issue(ca, leafKey, 's3', { keyUsage: ['keyEncipherment', 'dataEncipherment'] }), 'signature');
      expect(bad.keyUsageOk).to.equal(false);
      expect(bad.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_KEY_USAGE']);
      expect(bad.inspection.offlineResult).to.equal('invalid');
    });

    it('key usage: cipher needs keyEncipherment', () => {
      expect(check(issue(ca, leafKey, 'c1', { keyUsage: ['keyEncipherment'] }), 'cipher').keyUsageOk).to.equal(true);
      expect(check(issue(ca, leafKey, 'c2', { keyUsage: ['digitalSignature', 'nonRepudiation'] }), 'cipher').keyUsageOk).to.equal(false);
      expect(check(issue(ca, leafKey, 'c3', { keyUsage: ['dataEncipherment'] }), 'cipher').keyUsageOk).to.equal(false);
      expect(codeOf(() => assertCertificate(issue(ca, leafKey, 'c4', { keyUsage: ['digitalSignature'] }), { usage: 'cipher', anchors: [ca.certificate], at: AT }))).to.equal(
        'ERR_CERT_KEY_USAGE',
      );
    });

    it('a certificate without keyUsage is accepted for both usages, with a note', () => {
      const cert = issue(ca, leafKey, 'nk', { keyUsage: undefined });
      for (const usage of ['signature', 'cipher'] as const) {
        const r = check(cert, usage);
        expect(r.keyUsageOk).to.equal(true);
        expect(r.notes.join(' ')).to.match(/no keyUsage extension/);
      }
    });

    it('certificateInfo decodes key usage, basic constraints and key identifiers', () => {
      const cert = issue(ca, leafKey, 'info', { keyUsage: ['keyEncipherment', 'dataEncipherment', 'decipherOnly'] });
      const info = certificateInfo(cert);
      expect(info.keyUsage).to.deep.equal(['keyEncipherment', 'dataEncipherment', 'decipherOnly']);
      expect(info.basicConstraints).to.deep.equal({ ca: false });
      expect(info.authorityKeyId).to.equal(certificateInfo(ca.certificate).subjectKeyId);
      expect(info.subject).to.equal('CN=info,O=Test');
      expect(certificateInfo(ca.certificate).basicConstraints).to.deep.equal({ ca: true });
    });

    it('CertType: qualified with QcCompliance on a trusted path, advanced otherwise, unknown when untrusted', () => {
      const qc = issue(ca, leafKey, 'qc', { extraExtensions: [{ oid: '1.3.6.1.5.5.7.1.3', critical: false, value: QC_COMPLIANCE }] });
      expect(certificateInfo(qc).qcStatements).to.deep.equal(['0.4.0.1862.1.1']);
      expect(check(qc, 'signature').certType).to.equal('qualified');
      expect(check(issue(ca, leafKey, 'plain'), 'signature').certType).to.equal('advanced');
      expect(checkCertificate(qc, { usage: 'signature', anchors: [], at: AT }).certType).to.equal('unknown');
    });

    it('an intermediate CA chains; pathLenConstraint is enforced, also on the anchor', () => {
      const caUsage = { basicConstraints: { ca: true }, keyUsage: ['keyCertSign', 'cRLSign'] } as const;
      const sub = { certificate: issue(ca, subKey, 'Sub CA', caUsage), key: subKey };
      const ok = checkCertificate(issue(sub, leafKey, 'via-sub'), { usage: 'signature', anchors: [ca.certificate], intermediates: [sub.certificate], at: AT });
      expect(ok.chainOk).to.equal(true);
      expect(ok.path).to.have.length(3);

      const strict = root(rootKey, 'Strict Root', { basicConstraints: { ca: true, pathLength: 0 } });
      const strictSub = { certificate: issue(strict, subKey, 'Sub CA 2', caUsage), key: subKey };
      const deep = checkCertificate(issue(strictSub, leafKey, 'too-deep'), { usage: 'signature', anchors: [strict.certificate], intermediates: [strictSub.certificate], at: AT });
      expect(deep.chainOk).to.equal(false);
      expect(deep.errors.map((e) => e.message).join(' ')).to.match(/pathLenConstraint 0/);
      expect(checkCertificate(issue(strict, leafKey, 'direct'), { usage: 'signature', anchors: [strict.certificate], at: AT }).chainOk).to.equal(true);

      const sub3 = { certificate: issue(ca, subKey, 'Sub CA 3', { ...caUsage, basicConstraints: { ca: true, pathLength: 0 } }), key: subKey };
      const sub4 = { certificate: issue(sub3, rootKey, 'Sub CA 4', caUsage), key: rootKey };
      const r = checkCertificate(issue(sub4, leafKey, 'below-sub4'), { usage: 'signature', anchors: [ca.certificate], intermediates: [sub3.certificate, sub4.certificate], at: AT });
      expect(r.chainOk).to.equal(false);
      expect(r.inspection.offlineResult).to.equal('invalid');
      expect(r.errors.map((e) => e.message).join(' ')).to.match(/Sub CA 3.*pathLenConstraint 0/);
    });

    it('an unknown critical extension makes the certificate untrusted; a non-critical one does not', () => {
      const value = Buffer.from('0500', 'hex');
      const crit = issue(ca, leafKey, 'crit', { extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value }] });
      const r = check(crit, 'signature');
      expect(r.chainOk).to.equal(false);
      expect(r.errors[0]?.message).to.match(/unsupported critical extensions 1\.3\.6\.1\.4\.1\.99999\.1/);
      const nonCrit = issue(ca, leafKey, 'noncrit', { extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: false, value }] });
      expect(check(nonCrit, 'signature').chainOk).to.equal(true);
    });

    it('assertCertificate returns the check when everything holds', () => {
      const r = assertCertificate(issue(ca, leafKey, 'fine'), { usage: 'signature', anchors: [ca.certificate], at: AT });
      expect(r.errors).to.deep.equal([]);
      expect(r.keyBits).to.equal(2048);
    });

    describe('CRLs', () => {
      let leaf: X509Certificate;
      let other: X509Certificate;
      const crlWith = (revoked: Array<{ serialHex: string; date: Date }>, thisUpdate = T0, nextUpdate = new Date(T0.getTime() + 30 * DAY)) =>
        createCrl({ issuer: ca, thisUpdate, nextUpdate, crlNumber: 7n, revoked });

      before(() => {
        leaf = issue(ca, leafKey, 'crl-leaf');
        other = issue(ca, leafKey, 'crl-other');
      });

      it('parses DER and PEM and verifies the signature with the issuer key only', () => {
        const der = crlWith([{ serialHex: certificateInfo(leaf).serialHex, date: T0 }]);
        const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
        for (const input of [der, pem, Buffer.from(pem)]) {
          const crl = parseCrl(input);
          expect(crl.issuer).to.equal('CN=Test Root,O=Test');
          expect(crl.crlNumber).to.equal(7n);
          expect(crl.revoked).to.deep.equal([{ serialHex: certificateInfo(leaf).serialHex, date: T0 }]);
          expect(crl.thisUpdate.toISOString()).to.equal(T0.toISOString());
          expect(verifyCrlSignature(crl, ca.certificate)).to.equal(true);
          expect(verifyCrlSignature(crl, leaf)).to.equal(false);
        }
      });

      it('a listed serial is revoked, others are not', () => {
        const crl = crlWith([{ serialHex: certificateInfo(leaf).serialHex, date: T0 }]);
        const r = check(leaf, 'signature', { crls: [crl] });
        expect(r.revoked).to.equal(true);
        expect(r.inspection.onlineResult).to.equal('revoked');
        expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_REVOKED']);
        expect(codeOf(() => assertCertificate(leaf, { usage: 'signature', anchors: [ca.certificate], at: AT, crls: [crl] }))).to.equal('ERR_CERT_REVOKED');
        const o = check(other, 'signature', { crls: [crl] });
        expect(o.revoked).to.equal(false);
        expect(o.inspection.onlineResult).to.equal('ok');
        expect(o.errors).to.deep.equal([]);
      });

      it('no CRL of the issuer: revoked is undefined and there is no OnlineResult', () => {
        const r = check(leaf, 'signature');
        expect(r.revoked).to.equal(undefined);
        expect(r.inspection).not.to.have.property('onlineResult');
      });

      it('a revocation dated after the time of the check does not apply', () => {
        const crl = crlWith([{ serialHex: certificateInfo(leaf).serialHex, date: new Date(AT.getTime() + DAY) }], T0, new Date(AT.getTime() + 30 * DAY));
        expect(check(leaf, 'signature', { crls: [crl], at: AT }).revoked).to.equal(false);
        expect(check(leaf, 'signature', { crls: [crl], at: new Date(AT.getTime() + 2 * DAY) }).revoked).to.equal(true);
      });

      it('an outdated CRL gives no status (but still reports listed serials), a future CRL is ignored', () => {
        const stale = crlWith([], new Date(T0.getTime() - 60 * DAY), new Date(T0.getTime() - 30 * DAY));
        const r = check(other, 'signature', { crls: [stale] });
        expect(r.revoked).to.equal(undefined);
        expect(r.notes.join(' ')).to.match(/outdated/);
        const staleListed = crlWith([{ serialHex: certificateInfo(leaf).serialHex, date: T0 }], new Date(T0.getTime() - 60 * DAY), new Date(T0.getTime() + 5 * DAY));
        expect(check(leaf, 'signature', { crls: [staleListed] }).revoked).to.equal(true);
        const future = crlWith([], new Date(AT.getTime() + DAY), new Date(AT.getTime() + 30 * DAY));
        const f = check(other, 'signature', { crls: [future] });
        expect(f.revoked).to.equal(undefined);
        expect(f.notes.join(' ')).to.match(/issued after/);
      });

      it('unreadable CRLs are ERR_KEY_INVALID for parseCrl and a note for checkCertificate', () => {
        const der = crlWith([]);
        expect(codeOf(() => parseCrl(Buffer.from('nonsense')))).to.equal('ERR_KEY_INVALID');
        expect(codeOf(() => parseCrl(der.subarray(0, der.length - 5)))).to.equal('ERR_KEY_INVALID');
        expect(codeOf(() => parseCrl(Buffer.concat([der, Buffer.from([0])])))).to.equal('ERR_KEY_INVALID');
        expect(codeOf(() => parseCrl('-----BEGIN X509 CRL-----\n-----END X509 CRL-----'))).to.equal('ERR_KEY_INVALID');
        const r = check(other, 'signature', { crls: [Buffer.from([0x30, 0x80, 0x00, 0x00])] });
        expect(r.revoked).to.equal(undefined);
        expect(r.notes.join(' ')).to.match(/CRL/);
      });
    });
  });
});
