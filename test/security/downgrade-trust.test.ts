/**
 * Crypto downgrade and trust against the running intermediary (osci-protocol.md §9, §10): SHA-1 signatures and
 * digests, AES-CBC and RSA PKCS#1 v1.5 transport encryption, RSA keys under 2048 bits (anchored and registered
 * signers), expired, not yet valid, revoked (store and CRL) and untrusted signer certificates are refused with their
 * codes and store nothing. Certificates of the content (other authors, readers) are not the sender's: they do not
 * stop a delivery but are recorded in its InspectionReport (§7) with their offline and online results; a revoked
 * addressee cipher certificate is 9707 and a revoked client cipher certificate 9502. The codec-level cases are in
 * encryption-attacks.test.ts and certificate-trust.test.ts.
 */
import { expect } from 'chai';
import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { ALIASES, DEFAULT_POLICY, withPolicy } from '../../crypto/algorithms.ts';
import { createCertificate, DEV_ORGANIZATION, loadDevCa, revokeDevCertificate, type DevCa } from '../../crypto/devpki.ts';
import { certificateSha256Hex } from '../../crypto/keys.ts';
import type { FeedbackCode } from '../../protocol/feedback.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { OsciMessageOf } from '../../protocol/model.ts';
import { testPki, type TestIdentity } from '../helpers/devpki.ts';
import {
  cast,
  craft,
  expectFault,
  expectNothingStored,
  expectOrderFeedback,
  post,
  readAnswer,
  startAttackServer,
  storeDeliveryOrder,
  type AttackServer,
  type Cast,
  type CraftOptions,
} from '../helpers/attack.ts';

const DAY = 86_400_000;
const RSA_SHA1 = 'http://www.w3.org/2000/09/xmldsig#rsa-sha1';
const SHA1 = 'http://www.w3.org/2000/09/xmldsig#sha1';

interface Pair {
  key: KeyObject;
  cert: X509Certificate;
}

describe('security: crypto downgrade and trust against the running intermediary', function () {
  this.timeout(120_000);
  let srv: AttackServer;
  let c: Cast;
  let ca: DevCa;
  let caDir: string;

  /** A certificate of the dev CA (or of `issuer`) for a fresh key. */
  function leaf(cn: string, usage: 'signature' | 'cipher', o: { bits?: number; notBefore?: Date; notAfter?: Date; issuer?: { certificate: X509Certificate; key: KeyObject } } = {}): Pair {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: o.bits ?? 2048 });
    const cert = createCertificate({
      subject: { CN: cn, O: DEV_ORGANIZATION },
      publicKey,
      issuer: o.issuer ?? ca,
      notBefore: o.notBefore ?? new Date(Date.now() - DAY),
      notAfter: o.notAfter ?? new Date(Date.now() + 30 * DAY),
      keyUsage: usage === 'signature' ? ['digitalSignature', 'nonRepudiation'] : ['keyEncipherment', 'dataEncipherment'],
    });
    return { key: privateKey, cert };
  }

  /** A mailbox owner whose signature certificate is `sig` (registered in the store when `register`). */
  async function sender(id: string, sig: Pair, register: boolean): Promise<TestIdentity> {
    const cipher = leaf(`${id} cipher`, 'cipher');
    if (register) {
      const store = srv.server.store;
      await store.upsertParticipant({ id });
      for (const [usage, p] of [['signature', sig], ['cipher', cipher]] as const) {
        await store.addCertificate({ participantId: id, usage, der: p.cert.raw, notBefore: new Date(p.cert.validFrom), notAfter: new Date(p.cert.validTo) });
      }
    }
    return { id, signature: sig, cipher };
  }

  before(async () => {
    const pki = await testPki();
    caDir = join(pki.dir, 'ca');
    ca = loadDevCa(caDir);
    [srv, c] = await Promise.all([startAttackServer(), cast()]);
  });
  after(async () => {
    await srv?.stop();
  });

  /** A storeDelivery from `from` to stadt-lemgo, crafted with `extra`, transport-encrypted unless told otherwise. */
  async function attempt(from: TestIdentity, extra: Partial<CraftOptions> = {}) {
    // The sender's own tools may be as weak as it likes: sealing and signing allow 1024-bit keys here.
    const weak = withPolicy({ minRsaBits: 1024 });
    const o = await storeDeliveryOrder(from, c.stadt, { tmpDir: srv.tmp, policy: weak });
    await o.sealed.dispose();
    return craft(o.message, { signer: from.signature, encryptFor: srv.server.identity.ciphers[0]?.cert, policy: weak, ...extra });
  }

  async function refused(wire: Awaited<ReturnType<typeof attempt>>, code: FeedbackCode) {
    await expectFault(srv, await post(srv.osci, wire), code);
    await expectNothingStored(srv);
  }

  describe('algorithms', () => {
    const legacy = withPolicy({ signatures: [...DEFAULT_POLICY.signatures, RSA_SHA1], digests: [...DEFAULT_POLICY.digests, SHA1], minRsaBits: 1024 });

    it('control: the same order with the profile algorithms is accepted', async () => {
      // kanzlei-mustermann → kreis-lippe: the attacked mailboxes (ag-lemgo → stadt-lemgo) stay empty.
      const o = await storeDeliveryOrder(c.kanzlei, c.kreis, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const wire = await craft(o.message, { signer: c.kanzlei.signature, encryptFor: srv.server.identity.ciphers[0]?.cert, signatureAlgorithm: ALIASES['rsa-pss-sha256'] });
      await expectOrderFeedback(srv, await post(srv.osci, wire), c.kanzlei, '0800');
    });

    it('an rsa-sha1 ClientSignature → 9601', async () => {
      await refused(await attempt(c.ag, { signatureAlgorithm: RSA_SHA1, policy: legacy }), '9601');
    });

    it('SHA-1 reference digests under rsa-sha256 → 9601', async () => {
      await refused(await attempt(c.ag, { digestAlgorithm: SHA1, policy: legacy }), '9601');
    });

    for (const [name, from, to] of [
      ['AES-256-CBC transport encryption', ALIASES['aes256-gcm'], 'http://www.w3.org/2001/04/xmlenc#aes256-cbc'],
      ['3DES transport encryption', ALIASES['aes256-gcm'], 'http://www.w3.org/2001/04/xmlenc#tripledes-cbc'],
      ['RSA PKCS#1 v1.5 key transport', ALIASES['rsa-oaep'], 'http://www.w3.org/2001/04/xmlenc#rsa-1_5'],
    ] as const) {
      it(`${name} (the algorithm named in the outer envelope) → 9202 before any decryption`, async () => {
        const wire = await attempt(c.ag);
        const text = wire.body.toString('latin1');
        expect(text, 'fixture names the profile algorithm').to.contain(`Algorithm="${from}"`);
        await refused({ contentType: wire.contentType, body: Buffer.from(text.replace(`Algorithm="${from}"`, `Algorithm="${to}"`), 'latin1') }, '9202');
      });
    }
  });

  describe('the sender’s signature certificate', () => {
    it('RSA 1024 bits, issued by the trusted CA → 9601', async () => {
      await refused(await attempt(await sender('schwach-anker', leaf('schwach-anker', 'signature', { bits: 1024 }), false)), '9601');
    });

    it('RSA 1024 bits, registered for a mailbox (trusted without chain check) → 9601, the key size is the signature policy’s', async () => {
      await refused(await attempt(await sender('schwach-registriert', leaf('schwach-registriert', 'signature', { bits: 1024 }), true)), '9601');
    });

    for (const register of [false, true]) {
      const how = register ? 'registered' : 'anchored';
      it(`expired (${how}) → 3700`, async () => {
        const sig = leaf(`abgelaufen-${how}`, 'signature', { notBefore: new Date(Date.now() - 60 * DAY), notAfter: new Date(Date.now() - DAY) });
        await refused(await attempt(await sender(`abgelaufen-${how}`, sig, register)), '3700');
      });

      it(`not yet valid (${how}) → 3700`, async () => {
        const sig = leaf(`kuenftig-${how}`, 'signature', { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 60 * DAY) });
        await refused(await attempt(await sender(`kuenftig-${how}`, sig, register)), '3700');
      });
    }

    it('revoked in the store (registered) → 9701', async () => {
      const who = await sender('widerrufen-store', leaf('widerrufen-store', 'signature'), true);
      await srv.server.store.revokeCertificate(certificateSha256Hex(who.signature.cert), new Date(Date.now() - 1000));
      await refused(await attempt(who), '9701');
    });

    it('revoked on the CA’s CRL (anchored, read per check without restart) → 9701', async () => {
      const who = await sender('widerrufen-crl', leaf('widerrufen-crl', 'signature'), false);
      revokeDevCertificate(caDir, who.signature.cert, { at: new Date(Date.now() - 1000) });
      await refused(await attempt(who), '9701');
    });

    it('issued by a CA that is not a trust anchor (same names as the dev CA) → 9700', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const rogue = createCertificate({
        subject: { CN: ca.certificate.subject.match(/CN=([^\n]+)/)?.[1] ?? 'x', O: DEV_ORGANIZATION },
        publicKey,
        signingKey: privateKey,
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + 365 * DAY),
        basicConstraints: { ca: true },
        keyUsage: ['keyCertSign', 'cRLSign'],
      });
      const sig = leaf('ag-lemgo', 'signature', { issuer: { certificate: rogue, key: privateKey } });
      await refused(await attempt(await sender('fremd-ca', sig, false)), '9700');
    });
  });

  describe('certificates of the content and of the parties', () => {
    it('expired, revoked and untrusted author and reader certificates do not stop the delivery: the InspectionReport records them', async () => {
      const expired = leaf('autor-abgelaufen', 'signature', { notBefore: new Date(Date.now() - 60 * DAY), notAfter: new Date(Date.now() - DAY) });
      const revoked = leaf('leser-widerrufen', 'cipher');
      revokeDevCertificate(caDir, revoked.cert, { at: new Date(Date.now() - 1000) });
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const selfMade = createCertificate({ subject: { CN: 'autor-selbstgemacht', O: 'x' }, publicKey, signingKey: privateKey, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY), keyUsage: ['digitalSignature'] });
      const o = await storeDeliveryOrder(c.kanzlei, c.kreis, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const msg: OsciMessageOf<'storeDelivery'> = {
        ...o.message,
        certificates: [...o.message.certificates, certificate('otherAuthor', 'signature', expired.cert.raw, 1), certificate('otherAuthor', 'signature', selfMade.raw, 2), certificate('otherReader', 'cipher', revoked.cert.raw, 1)],
      };
      const ans = await post(srv.osci, await craft(msg, { signer: c.kanzlei.signature, encryptFor: srv.server.identity.ciphers[0]?.cert }));
      const m = (await expectOrderFeedback(srv, ans, c.kanzlei, '0800')) as OsciMessageOf<'responseToStoreDelivery'>;
      const report = m.processCardBundle?.inspectionReport ?? [];
      const bySubject = (cn: string) => report.find((i) => i.x509SubjectName.includes(cn));
      expect(bySubject('autor-abgelaufen')?.offlineResult, 'expired author').to.equal('invalid');
      expect(bySubject('autor-abgelaufen')?.mathResult).to.equal('ok');
      expect(bySubject('leser-widerrufen')?.onlineResult?.result, 'revoked reader').to.equal('revoked');
      expect(bySubject('autor-selbstgemacht')?.offlineResult, 'untrusted author').to.not.equal('valid');
      expect(bySubject('kanzlei-mustermann')?.offlineResult, 'the valid sender').to.equal('valid');
      expect(bySubject('kanzlei-mustermann')?.onlineResult?.result).to.equal('ok');
    });

    it("a revoked addressee cipher certificate → 9707 (order level), nothing stored", async () => {
      const addressee = await sender('empfaenger-widerrufen', leaf('empfaenger-widerrufen', 'signature'), true);
      await srv.server.store.revokeCertificate(certificateSha256Hex(addressee.cipher.cert), new Date(Date.now() - 1000));
      const o = await storeDeliveryOrder(c.ag, addressee, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const ans = await post(srv.osci, await craft(o.message, { signer: c.ag.signature, encryptFor: srv.server.identity.ciphers[0]?.cert }));
      await expectOrderFeedback(srv, ans, c.ag, '9707');
      expect(await srv.server.store.listWaiting('empfaenger-widerrufen')).to.deep.equal([]);
      await expectNothingStored(srv);
    });

    it('a revoked client cipher certificate (CipherCertificateOriginator, the key the answer would be encrypted for) → 9502, nothing stored', async () => {
      const revokedCipher = leaf('ag-lemgo cipher alt', 'cipher');
      revokeDevCertificate(caDir, revokedCipher.cert, { at: new Date(Date.now() - 1000) });
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const msg: OsciMessageOf<'storeDelivery'> = {
        ...o.message,
        certificates: [certificate('originator', 'cipher', revokedCipher.cert.raw), ...o.message.certificates.filter((x) => !(x.role === 'originator' && x.usage === 'cipher'))],
      };
      const ans = await post(srv.osci, await craft(msg, { signer: c.ag.signature, encryptFor: srv.server.identity.ciphers[0]?.cert }));
      const m = await readAnswer(srv, ans, { ...c.ag, cipher: revokedCipher });
      expect(m.type === 'fault' ? m.oscicode : (m as { feedback?: Array<{ code: string }> }).feedback?.[0]?.code).to.equal('9502');
      await expectNothingStored(srv);
    });
  });
});
