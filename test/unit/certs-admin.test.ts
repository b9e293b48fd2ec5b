/**
 * gateway/certs-admin.ts on a temporary dev PKI (2048-bit) and a real SQLite store: listing, checking,
 * rotation with overlap (folder and store), PKCS#12 installation, CSR + install, import, revocation; and
 * gateway/identity.ts following a rotated folder.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { constants, createPublicKey, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificate, initDevPki, issueDevCertificate, parseDistinguishedName } from '../../crypto/devpki.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { certificateSha256Hex, loadCertificate, loadPrivateKey, writePkcs12 } from '../../crypto/keys.ts';
import { certificateInfo, parseCrl } from '../../crypto/x509.ts';
import {
  checkCertificates,
  createCsr,
  importCertificate,
  installCertificate,
  listCertificates,
  openAdminStore,
  revokeCertificate,
  rotateCertificate,
  type AdminContext,
} from '../../gateway/certs-admin.ts';
import { liveIdentityDir, loadIdentityDir } from '../../gateway/identity.ts';
import { openStore, type Store } from '../../gateway/store/index.ts';
import { Trust } from '../../gateway/trust.ts';
import { OsciError } from '../../protocol/errors.ts';
import { requireTool } from '../helpers/env.ts';

const DAY = 24 * 3600_000;
const IDS = ['intermediary', 'stadt-lemgo', 'ag-lemgo'];

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

function roundTrip(cert: X509Certificate, key: KeyObject): boolean {
  const secret = randomBytes(32);
  const wrapped = publicEncrypt({ key: cert.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
  return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped).equals(secret);
}

/** A fresh dev PKI plus a migrated SQLite store with the mailboxes registered as the server does. */
async function setup(temps: string[]): Promise<{ dir: string; store: Store; ctx: AdminContext }> {
  const root = mkdtempSync(join(tmpdir(), 'amtsbote-certs-admin-'));
  temps.push(root);
  const dir = join(root, 'certs-dev');
  await initDevPki(dir, { bits: 2048, identities: IDS });
  const store = await openStore(`sqlite:${join(root, 'data')}`);
  await store.migrate();
  for (const id of IDS.filter((i) => i !== 'intermediary')) {
    await store.upsertParticipant({ id });
    for (const u of ['signature', 'cipher'] as const) {
      const c = loadCertificate(join(dir, id, `${u}.cert.pem`));
      await store.addCertificate({ participantId: id, usage: u, der: c.raw, notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) });
    }
  }
  return { dir, store, ctx: { dir, store } };
}

describe('gateway/certs-admin', function () {
  this.timeout(120_000);
  const temps: string[] = [];
  const stores: Store[] = [];
  after(async () => {
    for (const s of stores) await s.close();
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });
  const fresh = async () => {
    const s = await setup(temps);
    stores.push(s.store);
    return s;
  };

  describe('list and check on a fresh PKI', () => {
    let env: Awaited<ReturnType<typeof setup>>;
    before(async () => {
      env = await fresh();
    });

    it('lists every certificate once, merged across folder and store, all current and chained', async () => {
      const l = await listCertificates(env.ctx);
      expect(l.store).to.equal(true);
      expect(l.entries.map((e) => `${e.identity}/${e.usage}`)).to.deep.equal([
        'ag-lemgo/cipher', 'ag-lemgo/signature', 'intermediary/cipher', 'intermediary/signature', 'stadt-lemgo/cipher', 'stadt-lemgo/signature',
      ]);
      for (const e of l.entries) {
        expect(e.state, `${e.identity}/${e.usage}`).to.equal('current');
        expect(e.chainOk).to.equal(true);
        expect(e.keyUsageOk).to.equal(true);
        expect(e.fingerprint).to.equal(certificateSha256Hex(e.certificate));
        expect(e.inStore).to.equal(e.identity !== 'intermediary');
        expect(e.file).to.match(/\.cert\.pem$/);
      }
    });

    it('check passes, and fails with expires-soon when the warning window exceeds the remaining validity', async () => {
      const ok = await checkCertificates(env.ctx, { warnDays: 30 });
      expect(ok.ok, JSON.stringify(ok.findings)).to.equal(true);
      expect(ok.checked).to.have.length(6);
      const soon = await checkCertificates(env.ctx, { warnDays: 800 });
      expect(soon.ok).to.equal(false);
      expect(soon.findings).to.have.length(6);
      expect(new Set(soon.findings.map((f) => f.kind))).to.deep.equal(new Set(['expires-soon']));
    });

    it('check reports expired certificates (time moved past notAfter)', async () => {
      const later = await checkCertificates({ ...env.ctx, now: new Date(Date.now() + 3 * 365 * DAY) }, { warnDays: 0 });
      expect(later.ok).to.equal(false);
      // The CA (5 years) still stands; every leaf (2 years) is expired.
      expect(later.findings.filter((f) => f.kind === 'expired')).to.have.length(6);
    });

    it('check reports a certificate that does not chain to an anchor (dev CA removed as anchor by pointing --dir elsewhere)', async () => {
      const other = mkdtempSync(join(tmpdir(), 'amtsbote-certs-other-'));
      temps.push(other);
      await initDevPki(other, { bits: 2048, identities: ['intermediary'] });
      // Stadt-lemgo's store certificates were issued by the first CA, not by the one in `other`.
      const r = await checkCertificates({ dir: other, store: env.store });
      const untrusted = r.findings.filter((f) => f.kind === 'untrusted');
      expect(untrusted.map((f) => f.identity)).to.include.members(['stadt-lemgo', 'ag-lemgo']);
      expect(untrusted.some((f) => f.identity === 'intermediary')).to.equal(false);
    });

    it('opens no store that is not there: a note by default, ERR_USAGE when named', async () => {
      const nowhere = join(mkdtempSync(join(tmpdir(), 'amtsbote-nostore-')), 'data');
      temps.push(nowhere);
      const quiet = await openAdminStore(`sqlite:${nowhere}`, false);
      expect(quiet.store).to.equal(undefined);
      expect(quiet.note).to.match(/no store/);
      expect(existsSync(nowhere), 'nothing created').to.equal(false);
      const e = await rejection(openAdminStore(`sqlite:${nowhere}`, true));
      expect(e).to.be.instanceOf(OsciError);
      expect(e.code).to.equal('ERR_USAGE');
    });
  });

  describe('rotation', () => {
    let env: Awaited<ReturnType<typeof setup>>;
    before(async () => {
      env = await fresh();
    });

    it('rotates a mailbox cipher key: old pair kept, both decrypt, store announces both (new first) until the overlap ends', async () => {
      const folder = join(env.dir, 'stadt-lemgo');
      const oldCert = loadCertificate(join(folder, 'cipher.cert.pem'));
      const oldKey = loadPrivateKey(join(folder, 'cipher.key.pem'));
      const r = await rotateCertificate(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', overlapDays: 7, bits: 2048 });
      expect(r.store).to.equal('registered');
      expect(r.previous?.serial).to.equal(certificateInfo(oldCert).serialHex);
      expect(r.current.fingerprint).to.not.equal(certificateSha256Hex(oldCert));
      const archived = `cipher-${certificateInfo(oldCert).serialHex}`;
      expect(readFileSync(join(folder, `${archived}.cert.pem`), 'utf8')).to.equal(oldCert.toString());
      expect(loadPrivateKey(join(folder, `${archived}.key.pem`)).export({ format: 'jwk' })).to.deep.equal(oldKey.export({ format: 'jwk' }));

      const newCert = loadCertificate(join(folder, 'cipher.cert.pem'));
      expect(certificateSha256Hex(newCert)).to.equal(r.current.fingerprint);
      const id = loadIdentityDir(folder);
      expect(id.ciphers.map((c) => certificateSha256Hex(c.cert))).to.deep.equal([r.current.fingerprint, certificateSha256Hex(oldCert)]);
      for (const c of id.ciphers) expect(roundTrip(c.cert, c.key)).to.equal(true);

      const now = new Date();
      const announced = await env.store.certificatesOf('stadt-lemgo', 'cipher', now);
      expect(announced.map((c) => c.fingerprint)).to.deep.equal([r.current.fingerprint, certificateSha256Hex(oldCert)]);
      const after = await env.store.certificatesOf('stadt-lemgo', 'cipher', new Date(now.getTime() + 8 * DAY));
      expect(after.map((c) => c.fingerprint)).to.deep.equal([r.current.fingerprint]);

      const l = await listCertificates(env.ctx);
      const rows = l.entries.filter((e) => e.identity === 'stadt-lemgo' && e.usage === 'cipher');
      expect(rows.map((e) => [e.role, e.state, e.inStore])).to.deep.equal([
        ['current', 'current', true],
        ['previous', 'overlap', true],
      ]);
      expect(rows[1]?.retireAt?.getTime()).to.be.closeTo(now.getTime() + 7 * DAY, 60_000);
      const later = await listCertificates({ ...env.ctx, now: new Date(now.getTime() + 8 * DAY) });
      expect(later.entries.filter((e) => e.identity === 'stadt-lemgo' && e.usage === 'cipher').map((e) => e.state)).to.deep.equal(['current', 'retired']);
      // A retired cipher key is no longer loaded.
      expect(loadIdentityDir(folder, new Date(now.getTime() + 8 * DAY)).ciphers).to.have.length(1);
      // Overlap certificates count as in use, but do not warn about their own expiry; a retired one is not checked.
      const check = await checkCertificates(env.ctx);
      expect(check.ok, JSON.stringify(check.findings)).to.equal(true);
      expect(check.checked.filter((e) => e.identity === 'stadt-lemgo' && e.usage === 'cipher')).to.have.length(2);
    });

    it('a running identity follows the folder: rotated keys are taken at once, a half-written pair is not', async () => {
      const folder = join(env.dir, 'intermediary');
      const errors: unknown[] = [];
      let reloads = 0;
      const live = liveIdentityDir(folder, { onError: (e) => errors.push(e), onReload: () => reloads++, checkIntervalMs: 0 });
      const before = certificateSha256Hex(live.ciphers[0]!.cert);
      const r = await rotateCertificate(env.ctx, { identity: 'intermediary', usage: 'cipher', overlapDays: 1, bits: 2048 });
      expect(r.store).to.equal('not-a-mailbox');
      expect(live.ciphers.map((c) => certificateSha256Hex(c.cert))).to.deep.equal([r.current.fingerprint, before]);
      expect(reloads).to.equal(1);
      for (const c of live.ciphers) expect(roundTrip(c.cert, c.key)).to.equal(true);

      // Key replaced, certificate not yet: the previous keys stay in use and the error is reported.
      const certFile = join(folder, 'cipher.cert.pem');
      const saved = readFileSync(certFile);
      copyFileSync(join(env.dir, 'ag-lemgo', 'cipher.cert.pem'), certFile);
      expect(certificateSha256Hex(live.ciphers[0]!.cert)).to.equal(r.current.fingerprint);
      expect(errors).to.have.length(1);
      writeFileSync(certFile, saved);
      expect(certificateSha256Hex(live.ciphers[0]!.cert)).to.equal(r.current.fingerprint);
      expect(live.ciphers).to.have.length(2);
    });

    it('installs a CA-issued key and certificate from PKCS#12 (--p12), refusing one with the wrong key usage', async () => {
      const folder = join(env.dir, 'ag-lemgo');
      const issued = await issueDevCertificate(join(env.dir, 'ca'), { id: 'ag-lemgo', usage: 'signature', bits: 2048 });
      const p12 = join(env.dir, 'new-signature.p12');
      writeFileSync(p12, writePkcs12(issued.key, issued.certificate, [], 'geheim', { iterations: 1000 }));

      // A signature certificate is no cipher certificate.
      const wrong = await rejection(rotateCertificate(env.ctx, { identity: 'ag-lemgo', usage: 'cipher', p12: { file: p12, pin: 'geheim' } }));
      expect(wrong).to.be.instanceOf(CryptoError);
      expect(wrong.code).to.equal('ERR_CERT_KEY_USAGE');
      const badPin = await rejection(rotateCertificate(env.ctx, { identity: 'ag-lemgo', usage: 'signature', p12: { file: p12, pin: 'falsch' } }));
      expect(badPin.code).to.equal('ERR_KEY_INVALID');

      const r = await rotateCertificate(env.ctx, { identity: 'ag-lemgo', usage: 'signature', overlapDays: 0, p12: { file: p12, pin: 'geheim' } });
      expect(r.current.serial).to.equal(issued.serialHex);
      expect(readFileSync(join(folder, 'signature.cert.pem'), 'utf8')).to.equal(issued.certificate.toString());
      // Overlap 0: the previous signature certificate is retired at once, in the store too.
      const valid = await env.store.certificatesOf('ag-lemgo', 'signature', new Date(Date.now() + 1000));
      expect(valid.map((c) => c.fingerprint)).to.deep.equal([r.current.fingerprint]);
      const again = await rejection(rotateCertificate(env.ctx, { identity: 'ag-lemgo', usage: 'signature', p12: { file: p12, pin: 'geheim' } }));
      expect(again.code).to.equal('ERR_USAGE');
    });

    it('without a store the folder rotates, and check reports the mailbox certificate as not registered', async () => {
      await rotateCertificate({ dir: env.dir }, { identity: 'stadt-lemgo', usage: 'signature', bits: 2048 });
      const r = await checkCertificates(env.ctx);
      expect(r.findings.map((f) => `${f.kind}:${f.identity}/${f.usage}`)).to.deep.equal(['not-registered:stadt-lemgo/signature']);
    });

    it('refuses a bad identity name, usage or overlap with ERR_USAGE', async () => {
      for (const p of [
        rotateCertificate(env.ctx, { identity: '../etc', usage: 'cipher' }),
        rotateCertificate(env.ctx, { identity: 'ca', usage: 'cipher' }),
        rotateCertificate(env.ctx, { identity: 'stadt-lemgo', usage: 'encryption' as 'cipher' }),
        rotateCertificate(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', overlapDays: -1, bits: 2048 }),
      ]) {
        const e = await rejection(p);
        expect(e.code, e.message).to.equal('ERR_USAGE');
      }
    });
  });

  describe('CSR and install', () => {
    let env: Awaited<ReturnType<typeof setup>>;
    before(async () => {
      env = await fresh();
    });

    it('parses RFC 4514 names into DER order, with escapes', () => {
      expect(parseDistinguishedName('CN=Stadt Lemgo\\, Verschlüsselung,O=Stadt Lemgo,C=DE')).to.deep.equal([
        { type: 'C', value: 'DE' },
        { type: 'O', value: 'Stadt Lemgo' },
        { type: 'CN', value: 'Stadt Lemgo, Verschlüsselung' },
      ]);
      expect(parseDistinguishedName('CN=\\C3\\A4x\\2B')).to.deep.equal([{ type: 'CN', value: 'äx+' }]);
      for (const bad of ['CN', 'CN=a+O=b', 'XYZ=a', 'C=Deutschland', 'CN=']) expect(() => parseDistinguishedName(bad), bad).to.throw(CryptoError);
    });

    it('writes a pending key and a PKCS#10 request that OpenSSL verifies, with subject and keyUsage', async function () {
      requireTool(this, 'openssl');
      const r = await createCsr(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', subject: 'CN=Stadt Lemgo,O=Stadt Lemgo,C=DE', bits: 2048 });
      const v = spawnSync('openssl', ['req', '-verify', '-noout', '-text', '-in', r.csrFile], { encoding: 'utf8' });
      expect(v.status, v.stderr).to.equal(0);
      expect(`${v.stdout}${v.stderr}`).to.match(/verify OK|self-signature ok/i);
      expect(v.stdout).to.match(/Subject: C ?= ?DE, O ?= ?Stadt Lemgo, CN ?= ?Stadt Lemgo/);
      expect(v.stdout).to.match(/Key Encipherment, Data Encipherment/);
      const again = await rejection(createCsr(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', subject: 'CN=x', bits: 2048 }));
      expect(again.code).to.equal('ERR_USAGE');
    });

    it('installs the certificate a CA issued for the request; a non-matching one and one with the wrong key usage are refused', async function () {
      requireTool(this, 'openssl');
      const folder = join(env.dir, 'stadt-lemgo');
      const csrFile = join(folder, 'cipher.csr.pem');
      const issuedFile = join(env.dir, 'issued.pem');
      const s = spawnSync('openssl', ['x509', '-req', '-in', csrFile, '-CA', join(env.dir, 'ca', 'ca.cert.pem'), '-CAkey', join(env.dir, 'ca', 'ca.key.pem'), '-set_serial', '0x1234ABCD', '-days', '90', '-copy_extensions', 'copy', '-out', issuedFile], { encoding: 'utf8' });
      expect(s.status, s.stderr).to.equal(0);
      const issued = loadCertificate(issuedFile);

      const other = loadCertificate(join(env.dir, 'ag-lemgo', 'cipher.cert.pem'));
      const mismatch = await rejection(installCertificate(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', certificates: [other] }));
      expect(mismatch).to.be.instanceOf(CryptoError);
      expect(mismatch.code).to.equal('ERR_KEY_INVALID');

      // Same key, but certified for signatures only.
      const pending = loadPrivateKey(join(folder, 'cipher.pending.key.pem'));
      const ca = { certificate: loadCertificate(join(env.dir, 'ca', 'ca.cert.pem')), key: loadPrivateKey(join(env.dir, 'ca', 'ca.key.pem')) };
      const sigOnly = createCertificate({ subject: { CN: 'x' }, publicKey: issued.publicKey, issuer: ca, notBefore: new Date(Date.now() - 1000), notAfter: new Date(Date.now() + DAY), keyUsage: ['digitalSignature'] });
      const ku = await rejection(installCertificate(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', certificates: [sigOnly] }));
      expect(ku.code).to.equal('ERR_CERT_KEY_USAGE');
      expect(existsSync(join(folder, 'cipher.pending.key.pem')), 'pending key kept after a refusal').to.equal(true);

      const r = await installCertificate(env.ctx, { identity: 'stadt-lemgo', usage: 'cipher', certificates: [ca.certificate, issued], overlapDays: 3 });
      expect(r.current.serial).to.equal('1234ABCD');
      expect(r.store).to.equal('registered');
      expect(r.warnings).to.deep.equal([]);
      expect(existsSync(join(folder, 'cipher.pending.key.pem'))).to.equal(false);
      expect(existsSync(csrFile)).to.equal(false);
      const id = loadIdentityDir(folder);
      expect(id.ciphers[0]?.cert.serialNumber).to.equal('1234ABCD');
      expect(id.ciphers[0]?.key.export({ format: 'jwk' })).to.deep.equal(pending.export({ format: 'jwk' }));
      for (const c of id.ciphers) expect(roundTrip(c.cert, c.key)).to.equal(true);
      const announced = await env.store.certificatesOf('stadt-lemgo', 'cipher', new Date());
      expect(announced[0]?.fingerprint).to.equal(certificateSha256Hex(issued));
      expect(announced).to.have.length(2);
    });
  });

  describe('import and revoke', () => {
    let env: Awaited<ReturnType<typeof setup>>;
    let foreignCa: X509Certificate;
    let courtCipher: X509Certificate;
    before(async () => {
      env = await fresh();
      const caKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const leafKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const now = Date.now();
      foreignCa = createCertificate({ subject: { CN: 'Justiz Test CA', O: 'Land NRW' }, publicKey: createPublicKey(caKey), signingKey: caKey, notBefore: new Date(now - DAY), notAfter: new Date(now + 900 * DAY), basicConstraints: { ca: true }, keyUsage: ['keyCertSign', 'cRLSign'] });
      courtCipher = createCertificate({ subject: { CN: 'AG Detmold Verschluesselung', O: 'Land NRW' }, publicKey: createPublicKey(leafKey), issuer: { certificate: foreignCa, key: caKey }, notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY), keyUsage: ['keyEncipherment', 'dataEncipherment'] });
    });

    it('imports a court cipher certificate, creating the mailbox; it is untrusted until its CA is an anchor', async () => {
      const r = await importCertificate(env.ctx, { identity: 'ag-detmold', usage: 'cipher', certificate: courtCipher, name: 'AG Detmold' });
      expect(r.createdMailbox).to.equal(true);
      expect(r.chainOk).to.equal(false);
      expect(r.warnings[0]).to.match(/trust anchor/);
      expect((await env.store.getParticipant('ag-detmold'))?.name).to.equal('AG Detmold');
      expect((await env.store.certificatesOf('ag-detmold', 'cipher', new Date())).map((c) => c.fingerprint)).to.deep.equal([certificateSha256Hex(courtCipher)]);
      const check = await checkCertificates(env.ctx);
      expect(check.findings.map((f) => `${f.kind}:${f.identity}`)).to.deep.equal(['untrusted:ag-detmold']);
      const anchored = await checkCertificates({ ...env.ctx, anchors: [foreignCa] });
      expect(anchored.ok, JSON.stringify(anchored.findings)).to.equal(true);
      const wrongUsage = await rejection(importCertificate(env.ctx, { identity: 'ag-detmold', usage: 'signature', certificate: courtCipher }));
      expect(wrongUsage.code).to.equal('ERR_CERT_KEY_USAGE');
      const noStore = await rejection(importCertificate({ dir: env.dir }, { identity: 'ag-detmold', usage: 'cipher', certificate: courtCipher }));
      expect(noStore.code).to.equal('ERR_USAGE');
    });

    it('revokes a dev certificate: CRL entry, store record, InspectionReport onlineResult revoked, check fails', async () => {
      const cert = loadCertificate(join(env.dir, 'stadt-lemgo', 'signature.cert.pem'));
      const trust = new Trust(env.store, { anchors: [loadCertificate(join(env.dir, 'ca', 'ca.cert.pem'))], crlFiles: [join(env.dir, 'ca', 'crl.pem')], trustRegistered: true, minRsaBits: 2048 });
      expect(trust.inspect(cert, 'signature').onlineResult?.result).to.equal('ok');

      const r = await revokeCertificate(env.ctx, { certificate: cert });
      expect(r.serial).to.equal(certificateInfo(cert).serialHex);
      expect(r.crlFile).to.equal(join(env.dir, 'ca', 'crl.pem'));
      expect(parseCrl(readFileSync(join(env.dir, 'ca', 'crl.pem'))).revoked.map((x) => x.serialHex)).to.include(r.serial);
      expect(r.store).to.deep.equal([{ identity: 'stadt-lemgo', usage: 'signature', fingerprint: certificateSha256Hex(cert) }]);
      expect(r.inFolders.map((f) => f.file)).to.deep.equal([join(env.dir, 'stadt-lemgo', 'signature.cert.pem')]);
      expect((await env.store.findCertificate(certificateSha256Hex(cert)))?.revoked).to.be.instanceOf(Date);

      const insp = trust.inspect(cert, 'signature', new Date(Date.now() + 1000));
      expect(insp.onlineResult?.result).to.equal('revoked');
      const check = await checkCertificates(env.ctx, {});
      expect(check.findings.filter((f) => f.kind === 'revoked').map((f) => `${f.identity}/${f.usage}`)).to.deep.equal(['stadt-lemgo/signature']);
      const l = await listCertificates(env.ctx);
      expect(l.entries.find((e) => e.fingerprint === certificateSha256Hex(cert))?.state).to.equal('revoked');
    });

    it('revokes by serial (colons, any case) only what the dev CA issued; a foreign certificate only in the store', async () => {
      const cert = loadCertificate(join(env.dir, 'ag-lemgo', 'cipher.cert.pem'));
      const hex = certificateInfo(cert).serialHex.toLowerCase().replace(/(..)(?=.)/g, '$1:');
      const r = await revokeCertificate(env.ctx, { serial: hex });
      expect(r.serial).to.equal(certificateInfo(cert).serialHex);
      expect(r.store.map((s) => `${s.identity}/${s.usage}`)).to.deep.equal(['ag-lemgo/cipher']);
      // The directory stops announcing it.
      expect(await env.store.certificatesOf('ag-lemgo', 'cipher', new Date(Date.now() + 1000))).to.deep.equal([]);

      const crlBefore = readFileSync(join(env.dir, 'ca', 'crl.pem'));
      const f = await revokeCertificate(env.ctx, { certificate: courtCipher });
      expect(f.crlFile).to.equal(undefined);
      expect(f.warnings[0]).to.match(/store only/);
      expect(f.store.map((s) => s.identity)).to.deep.equal(['ag-detmold']);
      expect(readFileSync(join(env.dir, 'ca', 'crl.pem')).equals(crlBefore), 'dev CRL untouched').to.equal(true);

      const bad = await rejection(revokeCertificate(env.ctx, { serial: 'xyz' }));
      expect(bad.code).to.equal('ERR_USAGE');
      const both = await rejection(revokeCertificate(env.ctx, {}));
      expect(both.code).to.equal('ERR_USAGE');
    });
  });
});
