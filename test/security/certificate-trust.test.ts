/**
 * Trust comes from configured anchors only: certificates from another CA, self-signed certificates,
 * certificates supplied alongside a message, end-entity certificates posing as issuers, tampered
 * certificates and forged CRLs must never yield a trusted result.
 */
import { expect } from 'chai';
import { createPublicKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { createCertificate, createCrl, type CertificateSpec } from '../../crypto/devpki.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { assertCertificate, certificateInfo, checkCertificate, type CheckCertificateOptions } from '../../crypto/x509.ts';

const DAY = 86_400_000;
const T0 = new Date('2026-03-01T00:00:00Z');
const AT = new Date(T0.getTime() + 10 * DAY);
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

interface Ca {
  certificate: X509Certificate;
  key: KeyObject;
}

const CA_EXT = { basicConstraints: { ca: true }, keyUsage: ['keyCertSign', 'cRLSign'] } as const;

function selfSigned(key: KeyObject, cn: string, extra: Partial<CertificateSpec> = {}): Ca {
  const certificate = createCertificate({
    subject: { CN: cn, O: 'Test' },
    publicKey: createPublicKey(key),
    signingKey: key,
    notBefore: new Date(T0.getTime() - DAY),
    notAfter: new Date(T0.getTime() + 3650 * DAY),
    ...CA_EXT,
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

function assertCode(cert: X509Certificate, opts: CheckCertificateOptions): string | undefined {
  try {
    assertCertificate(cert, opts);
  } catch (e) {
    if (e instanceof CryptoError) return e.code;
    throw e;
  }
  return undefined;
}

describe('security: certificate trust', function () {
  this.timeout(60_000);
  let trusted: Ca;
  let attackerKey: KeyObject;
  let leafKey: KeyObject;
  let midKey: KeyObject;
  let opts: CheckCertificateOptions;

  before(() => {
    trusted = selfSigned(rsa(), 'Trusted Root');
    attackerKey = rsa();
    leafKey = rsa();
    midKey = rsa();
    opts = { usage: 'signature', anchors: [trusted.certificate], at: AT };
  });

  const expectUntrusted = (r: ReturnType<typeof checkCertificate>) => {
    expect(r.chainOk).to.equal(false);
    expect(r.certType).to.equal('unknown');
    expect(r.inspection.offlineResult).not.to.equal('valid');
    expect(r.errors.map((e) => e.code)).to.include('ERR_CERT_UNTRUSTED');
  };

  it('control: a certificate of the trusted CA is trusted', () => {
    const r = checkCertificate(issue(trusted, leafKey, 'good'), opts);
    expect(r.errors).to.deep.equal([]);
    expect(r.chainOk && r.mathOk).to.equal(true);
  });

  it('a certificate from another CA fails the chain, even when that CA is supplied as intermediate', () => {
    const other = selfSigned(attackerKey, 'Other Root');
    const leaf = issue(other, leafKey, 'foreign');
    expectUntrusted(checkCertificate(leaf, opts));
    const withOther = checkCertificate(leaf, { ...opts, intermediates: [other.certificate] });
    expectUntrusted(withOther);
    expect(withOther.mathOk).to.equal(true); // its signature is fine: it is just not ours
    expect(withOther.inspection.offlineResult).to.equal('indeterminate');
    expect(assertCode(leaf, { ...opts, intermediates: [other.certificate] })).to.equal('ERR_CERT_UNTRUSTED');
  });

  it('a self-signed leaf that is not an anchor is untrusted (also when it comes as its own intermediate)', () => {
    const self = selfSigned(attackerKey, 'Self Made', { basicConstraints: { ca: false }, keyUsage: ['digitalSignature'] }).certificate;
    const r = checkCertificate(self, { ...opts, intermediates: [self] });
    expectUntrusted(r);
    expect(r.mathOk).to.equal(false);
    expect(r.inspection.mathResult).to.equal('indeterminate');
    expect(assertCode(self, opts)).to.equal('ERR_CERT_UNTRUSTED');
  });

  it('an attacker root with the same name as the trusted root does not confer trust', () => {
    const fake = selfSigned(attackerKey, 'Trusted Root');
    expect(certificateInfo(fake.certificate).subjectDer.equals(certificateInfo(trusted.certificate).subjectDer)).to.equal(true);
    const leaf = issue(fake, leafKey, 'impostor');
    const r = checkCertificate(leaf, { ...opts, intermediates: [fake.certificate] });
    expectUntrusted(r);
    expect(r.path.at(-1)?.raw.equals(trusted.certificate.raw)).to.equal(false);
  });

  describe('an end-entity certificate cannot act as issuer', () => {
    const cases: Array<[string, Partial<CertificateSpec>]> = [
      ['CA:false without keyUsage', { basicConstraints: { ca: false }, keyUsage: undefined }],
      ['CA:false with keyCertSign', { basicConstraints: { ca: false }, keyUsage: ['keyCertSign', 'digitalSignature'] }],
      ['no basicConstraints at all', { basicConstraints: null, keyUsage: undefined }],
    ];
    for (const [name, ext] of cases) {
      it(name, () => {
        // The pseudo-issuer is itself validly issued by the trusted CA.
        const pseudo = { certificate: issue(trusted, midKey, `pseudo-ca ${name}`, ext), key: midKey };
        expect(checkCertificate(pseudo.certificate, { ...opts, usage: 'cipher' }).chainOk).to.equal(true);
        const victim = issue(pseudo, leafKey, 'issued-by-leaf');
        const r = checkCertificate(victim, { ...opts, intermediates: [pseudo.certificate] });
        expectUntrusted(r);
        expect(r.mathOk).to.equal(true); // the signature itself verifies ...
        expect(r.inspection.offlineResult).to.equal('invalid'); // ... but the path is invalid
        expect(r.errors[0]?.message).to.match(/is not a CA/);
      });
    }

    it('a dev-style signature certificate (digitalSignature, nonRepudiation, CA:false)', () => {
      const pseudo = { certificate: issue(trusted, midKey, 'signer', { basicConstraints: { ca: false } }), key: midKey };
      const victim = issue(pseudo, leafKey, 'issued-by-signer');
      expectUntrusted(checkCertificate(victim, { ...opts, intermediates: [pseudo.certificate] }));
    });
  });

  it('a tampered signature value is not mathOk (corrupted) and not trusted', () => {
    const good = issue(trusted, leafKey, 'victim');
    const der = Buffer.from(good.raw);
    der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
    const bad = new X509Certificate(der);
    const r = checkCertificate(bad, opts);
    expect(r.mathOk).to.equal(false);
    expect(r.inspection.mathResult).to.equal('corrupted');
    expect(r.inspection.offlineResult).to.equal('invalid');
    expectUntrusted(r);
    expect(assertCode(bad, opts)).to.equal('ERR_CERT_UNTRUSTED');
  });

  it('a tampered TBSCertificate (subject changed) is not mathOk', () => {
    const good = issue(trusted, leafKey, 'victim-alice');
    const der = Buffer.from(good.raw);
    const at = der.indexOf('victim-alice');
    expect(at).to.be.greaterThan(0);
    der.write('victim-mallo', at, 'latin1');
    const bad = new X509Certificate(der);
    expect(bad.subject).to.include('victim-mallo');
    const r = checkCertificate(bad, opts);
    expect(r.mathOk).to.equal(false);
    expect(r.inspection.mathResult).to.equal('corrupted');
    expectUntrusted(r);
  });

  it('a tampered anchor-issued intermediate breaks the path', () => {
    const mid = { certificate: issue(trusted, midKey, 'Mid CA', { ...CA_EXT }), key: midKey };
    const leaf = issue(mid, leafKey, 'below-mid');
    const der = Buffer.from(mid.certificate.raw);
    der[der.length - 2] = (der[der.length - 2] ?? 0) ^ 0x80;
    const r = checkCertificate(leaf, { ...opts, intermediates: [new X509Certificate(der)] });
    expect(r.mathOk).to.equal(true);
    expectUntrusted(r);
    expect(r.inspection.offlineResult).to.equal('invalid');
    expect(checkCertificate(leaf, { ...opts, intermediates: [mid.certificate] }).chainOk).to.equal(true);
  });

  it('duplicated extensions (RFC 5280 §4.2) are refused for leaf and intermediate without crashing', () => {
    const dup = [{ oid: '2.5.29.15', critical: true, value: Buffer.from('03020780', 'hex') }]; // second keyUsage: digitalSignature
    const leaf = issue(trusted, leafKey, 'dup-leaf', { extraExtensions: dup });
    const r = checkCertificate(leaf, opts);
    expect(r.chainOk).to.equal(false);
    expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_KEY_INVALID']);
    expect(assertCode(leaf, opts)).to.equal('ERR_KEY_INVALID');
    // The leaf is issued by a well-formed twin (same name and key); only the duplicated version is offered.
    const twin = { certificate: issue(trusted, midKey, 'Dup Mid CA', { ...CA_EXT }), key: midKey };
    const dupMid = issue(trusted, midKey, 'Dup Mid CA', { ...CA_EXT, extraExtensions: [{ oid: '2.5.29.19', critical: true, value: Buffer.from('30030101ff', 'hex') }] });
    const below = issue(twin, leafKey, 'under-dup-mid');
    expect(checkCertificate(below, { ...opts, intermediates: [twin.certificate] }).chainOk).to.equal(true);
    expectUntrusted(checkCertificate(below, { ...opts, intermediates: [dupMid] }));
  });

  it('an expired intermediate fails validity', () => {
    const mid = { certificate: issue(trusted, midKey, 'Old Mid CA', { ...CA_EXT, notAfter: new Date(T0.getTime() + DAY) }), key: midKey };
    const r = checkCertificate(issue(mid, leafKey, 'under-old-mid'), { ...opts, intermediates: [mid.certificate] });
    expect(r.chainOk).to.equal(true);
    expect(r.validityOk).to.equal(false);
    expect(r.errors.map((e) => [e.code, /Old Mid CA/.test(e.message)])).to.deep.equal([['ERR_CERT_EXPIRED', true]]);
  });

  describe('CRLs', () => {
    const crl = (signer: Ca, issuerCert: X509Certificate, revoked: X509Certificate[], thisUpdate = T0) =>
      createCrl({
        issuer: { certificate: issuerCert, key: signer.key },
        thisUpdate,
        nextUpdate: new Date(T0.getTime() + 30 * DAY),
        crlNumber: 1n,
        revoked: revoked.map((c) => ({ serialHex: certificateInfo(c).serialHex, date: T0 })),
      });

    it('a forged CRL (issuer name right, key wrong) is ignored in both directions', () => {
      const good = issue(trusted, leafKey, 'crl-good');
      const fakeSigner = { certificate: trusted.certificate, key: attackerKey };
      // Forged "revoked" entry: no denial of service.
      const forgedRevoke = checkCertificate(good, { ...opts, crls: [crl(fakeSigner, trusted.certificate, [good])] });
      expect(forgedRevoke.revoked).to.equal(undefined);
      expect(forgedRevoke.notes.join(' ')).to.match(/signature does not verify/);
      expect(forgedRevoke.errors).to.deep.equal([]);
      // Forged fresh CRL without the entry does not hide a genuine revocation.
      const genuine = crl(trusted, trusted.certificate, [good]);
      const forgedClean = crl(fakeSigner, trusted.certificate, [], new Date(T0.getTime() + DAY));
      const r = checkCertificate(good, { ...opts, crls: [forgedClean, genuine] });
      expect(r.revoked).to.equal(true);
      expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_REVOKED']);
    });

    it('a CRL of another CA does not speak for our certificates', () => {
      const other = selfSigned(attackerKey, 'Other Root');
      const good = issue(trusted, leafKey, 'crl-other-ca');
      expect(checkCertificate(good, { ...opts, crls: [crl(other, other.certificate, [good])] }).revoked).to.equal(undefined);
    });

    it('a revoked intermediate invalidates the path', () => {
      const mid = { certificate: issue(trusted, midKey, 'Revoked Mid CA', { ...CA_EXT }), key: midKey };
      const leaf = issue(mid, leafKey, 'under-revoked-mid');
      const r = checkCertificate(leaf, { ...opts, intermediates: [mid.certificate], crls: [crl(trusted, trusted.certificate, [mid.certificate])] });
      expect(r.chainOk).to.equal(false);
      expect(r.revoked).to.equal(undefined); // the leaf's own issuer published no CRL
      expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_REVOKED']);
      expect(r.inspection.offlineResult).to.equal('invalid');
    });
  });

  it('path building terminates on issuer cycles and on many look-alike issuers', () => {
    const a = { key: midKey } as Ca;
    const b = { key: attackerKey } as Ca;
    const bSelf = selfSigned(attackerKey, 'Cycle B');
    a.certificate = issue(bSelf, midKey, 'Cycle A', { ...CA_EXT });
    b.certificate = issue(a, attackerKey, 'Cycle B', { ...CA_EXT });
    const leaf = issue(a, leafKey, 'in-cycle');
    expectUntrusted(checkCertificate(leaf, { ...opts, intermediates: [a.certificate, b.certificate, bSelf.certificate] }));

    const lookAlikes = Array.from({ length: 40 }, () => selfSigned(attackerKey, 'Look Alike').certificate);
    const victim = issue({ certificate: lookAlikes[0] as X509Certificate, key: attackerKey }, leafKey, 'crowded');
    expectUntrusted(checkCertificate(victim, { ...opts, intermediates: lookAlikes }));
  });
});
