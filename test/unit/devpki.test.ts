import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_DEV_IDENTITIES,
  DEV_ORGANIZATION,
  initDevPki,
  issueDevCertificate,
  revokeDevCertificate,
  type DevPkiResult,
} from '../../crypto/devpki.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { keyMatchesCertificate, loadCertificate, loadPrivateKey, rsaBits } from '../../crypto/keys.ts';
import { certificateInfo, checkCertificate, parseCrl, verifyCrlSignature } from '../../crypto/x509.ts';
import { hasTool } from '../helpers/env.ts';

async function rejectsWith(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('crypto/devpki', function () {
  this.timeout(120_000);
  const temps: string[] = [];
  const temp = () => {
    const d = mkdtempSync(join(tmpdir(), 'amtsbote-devpki-'));
    temps.push(d);
    return d;
  };
  after(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });

  let dir: string;
  let pki: DevPkiResult;
  const crl = () => readFileSync(pki.ca.crlPath);

  before(async () => {
    dir = temp();
    pki = await initDevPki(dir, { bits: 2048 });
  });

  it('creates the CA, the CRL, a README and both key pairs for every default identity', () => {
    expect(pki.generatedKeys).to.equal(11);
    expect(pki.identities.map((i) => i.id)).to.deep.equal([...DEFAULT_DEV_IDENTITIES]);
    expect(readFileSync(join(dir, 'README.txt'), 'utf8')).to.match(/NOT FOR PRODUCTION/);
    for (const f of ['ca/ca.key.pem', 'ca/ca.cert.pem', 'ca/crl.pem']) expect(existsSync(join(dir, f)), f).to.equal(true);
    for (const id of DEFAULT_DEV_IDENTITIES) {
      for (const f of ['signature.key.pem', 'signature.cert.pem', 'cipher.key.pem', 'cipher.cert.pem']) {
        expect(existsSync(join(dir, id, f)), `${id}/${f}`).to.equal(true);
      }
    }
  });

  it('writes key files with mode 0600', () => {
    const keys = [pki.ca.keyPath, ...pki.identities.flatMap((i) => [i.signature.keyPath, i.cipher.keyPath])];
    for (const k of keys) expect(statSync(k).mode & 0o777, k).to.equal(0o600);
  });

  it('the CA is a self-signed CA:true certificate for keyCertSign and cRLSign', () => {
    const ca = loadCertificate(pki.ca.certPath);
    const info = certificateInfo(ca);
    expect(ca.checkIssued(ca) && ca.verify(ca.publicKey)).to.equal(true);
    expect(info.basicConstraints).to.deep.equal({ ca: true, pathLength: 0 });
    expect(info.keyUsage).to.deep.equal(['keyCertSign', 'cRLSign']);
    expect(info.subject).to.equal(`CN=Amtsbote DEV CA - NOT FOR PRODUCTION,O=${DEV_ORGANIZATION}`);
    expect(keyMatchesCertificate(loadPrivateKey(pki.ca.keyPath), ca)).to.equal(true);
  });

  it('every certificate chains to the dev CA, is not revoked, and carries the key usage of its kind', () => {
    for (const ident of pki.identities) {
      for (const usage of ['signature', 'cipher'] as const) {
        const files = ident[usage];
        const cert = loadCertificate(files.certPath);
        const info = certificateInfo(cert);
        const r = checkCertificate(cert, { usage, anchors: [pki.ca.certificate], crls: [crl()] });
        expect(r.errors, `${ident.id} ${usage}`).to.deep.equal([]);
        expect(r.inspection).to.deep.equal({ mathResult: 'ok', offlineResult: 'valid', onlineResult: 'ok' });
        expect(r.revoked).to.equal(false);
        expect(r.keyBits).to.equal(2048);
        expect(info.subject).to.equal(`CN=${ident.id},O=${DEV_ORGANIZATION}`);
        expect(info.basicConstraints).to.deep.equal({ ca: false });
        expect(info.keyUsage).to.deep.equal(usage === 'signature' ? ['digitalSignature', 'nonRepudiation'] : ['keyEncipherment', 'dataEncipherment']);
        expect(keyMatchesCertificate(loadPrivateKey(files.keyPath), cert)).to.equal(true);
        // The strict dev profile: a signature certificate is no cipher certificate and vice versa.
        const wrong = checkCertificate(cert, { usage: usage === 'signature' ? 'cipher' : 'signature', anchors: [pki.ca.certificate] });
        expect(wrong.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_KEY_USAGE']);
      }
      // Separate keys for signature and cipher (osci-protocol.md §10).
      expect(loadPrivateKey(ident.signature.keyPath).equals(loadPrivateKey(ident.cipher.keyPath))).to.equal(false);
      const validDays = (certificateInfo(ident.signature.certificate).notAfter.getTime() - Date.now()) / 86_400_000;
      expect(validDays).to.be.within(700, 740);
    }
  });

  it('the initial CRL is signed by the dev CA and lists nothing', () => {
    const info = parseCrl(crl());
    expect(verifyCrlSignature(info, pki.ca.certificate)).to.equal(true);
    expect(info.revoked).to.deep.equal([]);
    expect(info.crlNumber).to.equal(1n);
  });

  it('is idempotent: a second run keeps everything, a new identity adds only its two keys', async () => {
    const again = await initDevPki(dir, { bits: 2048 });
    expect(again.generatedKeys).to.equal(0);
    expect(again.ca.created).to.equal(false);
    expect(again.identities.every((i) => !i.created)).to.equal(true);
    expect(again.ca.certificate.raw.equals(pki.ca.certificate.raw)).to.equal(true);
    expect(readFileSync(join(dir, 'kreis-lippe', 'signature.cert.pem'), 'utf8')).to.equal(pki.identities[4]?.signature.certificate.toString());
    const more = await initDevPki(dir, { bits: 2048, identities: ['kreis-lippe', 'notariat-detmold'] });
    expect(more.generatedKeys).to.equal(2);
    expect(more.identities.map((i) => [i.id, i.created])).to.deep.equal([
      ['kreis-lippe', false],
      ['notariat-detmold', true],
    ]);
    expect(checkCertificate(more.identities[1]!.cipher.certificate, { usage: 'cipher', anchors: [pki.ca.certificate] }).chainOk).to.equal(true);
  });

  it('force regenerates the CA and re-issues every identity', async () => {
    const d = temp();
    const first = await initDevPki(d, { bits: 2048, identities: ['a'] });
    const second = await initDevPki(d, { bits: 2048, identities: ['a'], force: true });
    expect(second.generatedKeys).to.equal(3);
    expect(second.ca.certificate.raw.equals(first.ca.certificate.raw)).to.equal(false);
    const old = checkCertificate(first.identities[0]!.signature.certificate, { usage: 'signature', anchors: [second.ca.certificate] });
    expect(old.chainOk).to.equal(false);
    expect(checkCertificate(second.identities[0]!.signature.certificate, { usage: 'signature', anchors: [second.ca.certificate] }).chainOk).to.equal(true);
  });

  it('defaults to RSA-3072', async () => {
    const d = temp();
    const r = await initDevPki(d, { identities: [] });
    expect(rsaBits(r.ca.certificate)).to.equal(3072);
    const issued = await issueDevCertificate(join(d, 'ca'), { id: 'x', usage: 'cipher' });
    expect(rsaBits(issued.key)).to.equal(3072);
  });

  it('issueDevCertificate with a past validity yields an expired certificate that still chains', async () => {
    const issued = await issueDevCertificate(join(dir, 'ca'), {
      id: 'ag-lemgo',
      usage: 'signature',
      bits: 2048,
      notBefore: new Date(Date.now() - 400 * 86_400_000),
      notAfter: new Date(Date.now() - 30 * 86_400_000),
    });
    const r = checkCertificate(issued.certificate, { usage: 'signature', anchors: [pki.ca.certificate] });
    expect(r.chainOk).to.equal(true);
    expect(r.validityOk).to.equal(false);
    expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_EXPIRED']);
    expect(r.inspection.offlineResult).to.equal('invalid');
  });

  it('issueDevCertificate writes to outDir and can re-certify an existing key', async () => {
    const out = temp();
    const key = loadPrivateKey(pki.identities[0]!.cipher.keyPath);
    const issued = await issueDevCertificate(join(dir, 'ca'), { id: 'intermediary', usage: 'cipher', key, outDir: out });
    expect(issued.keyPath).to.equal(join(out, 'cipher.key.pem'));
    expect(statSync(issued.keyPath!).mode & 0o777).to.equal(0o600);
    expect(keyMatchesCertificate(key, loadCertificate(issued.certPath!))).to.equal(true);
    expect(issued.serialHex).to.not.equal(certificateInfo(pki.identities[0]!.cipher.certificate).serialHex);
  });

  it('revokeDevCertificate puts the serial on a re-signed CRL; the check then reports it revoked', async () => {
    const victim = await issueDevCertificate(join(dir, 'ca'), { id: 'stadt-lemgo', usage: 'signature', bits: 2048 });
    const before = parseCrl(crl()).crlNumber ?? 0n;
    const { crlPath } = revokeDevCertificate(join(dir, 'ca'), victim.certificate);
    expect(crlPath).to.equal(pki.ca.crlPath);
    const info = parseCrl(crl());
    expect(info.crlNumber).to.equal(before + 1n);
    expect(info.revoked.map((r) => r.serialHex)).to.include(victim.serialHex);
    expect(verifyCrlSignature(info, pki.ca.certificate)).to.equal(true);

    const r = checkCertificate(victim.certificate, { usage: 'signature', anchors: [pki.ca.certificate], crls: [crl()] });
    expect(r.revoked).to.equal(true);
    expect(r.inspection.onlineResult).to.equal('revoked');
    expect(r.errors.map((e) => e.code)).to.deep.equal(['ERR_CERT_REVOKED']);
    // Others stay good; revoking again (serial as colon hex) does not duplicate the entry.
    expect(checkCertificate(pki.identities[3]!.signature.certificate, { usage: 'signature', anchors: [pki.ca.certificate], crls: [crl()] }).revoked).to.equal(false);
    revokeDevCertificate(join(dir, 'ca'), victim.serialHex.toLowerCase().match(/../g)!.join(':'));
    expect(parseCrl(crl()).revoked.filter((x) => x.serialHex === victim.serialHex)).to.have.length(1);

    if (hasTool('openssl')) {
      const verify = (cert: string) => {
        try {
          return execFileSync('openssl', ['verify', '-crl_check', '-CAfile', pki.ca.certPath, '-CRLfile', pki.ca.crlPath, cert], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        } catch (e) {
          return String((e as { stdout?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
        }
      };
      const victimPath = join(temp(), 'victim.pem');
      writeFileSync(victimPath, victim.certificate.toString());
      expect(verify(pki.identities[3]!.signature.certPath)).to.match(/: OK/);
      expect(verify(victimPath)).to.match(/certificate revoked/);
    }
  });

  it('refuses keys below 2048 bits and unsafe identity names', async () => {
    const small = await rejectsWith(initDevPki(temp(), { bits: 1024, identities: [] }));
    expect(small).to.be.instanceOf(CryptoError);
    expect((small as CryptoError).code).to.equal('ERR_KEY_TOO_SMALL');
    for (const bad of ['../evil', 'a/b', 'ca', '', '.hidden']) {
      expect(await rejectsWith(initDevPki(temp(), { bits: 2048, identities: [bad] })), bad).to.be.instanceOf(RangeError);
    }
    expect(await rejectsWith(issueDevCertificate(join(dir, 'ca'), { id: '../x', usage: 'signature', bits: 2048 }))).to.be.instanceOf(RangeError);
  });
});
