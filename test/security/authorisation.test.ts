/**
 * Authorisation against the running intermediary: nobody fetches another mailbox or another party's process cards
 * (and cannot tell a foreign delivery from a missing one), a refused attempt leaves the victim's delivery untouched,
 * a certificate that chains to the trust anchor but owns no mailbox can send but reads nothing, the admin API
 * (gateway/http/admin.ts; its functions and basic 401s are in test/e2e/admin-api.test.ts) cannot be reached by
 * path, method or credential tricks, and the directory, /metrics, /healthz, /readyz and error pages disclose
 * nothing beyond what they are for (no signature certificates, no revoked or expired ones, no stack, no path).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { issueDevCertificate } from '../../crypto/devpki.ts';
import { testPki, type TestIdentity } from '../helpers/devpki.ts';
import { IN_CI } from '../helpers/env.ts';
import { cast, clientOf, expectNoLeak, storeDeliveryOrder, startAttackServer, type AttackServer, type Cast } from '../helpers/attack.ts';

function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
}

const TOKEN_ENV = 'AMTSBOTE_TEST_SECURITY_ADMIN_TOKEN';
const TOKEN = randomBytes(32).toString('hex');
const SUBJECT = 'Vertraulich 4 O 77/26';

describe('security: authorisation against the running intermediary', function () {
  this.timeout(120_000);
  let srv: AttackServer;
  /** The same, listening on every interface, so that a request can come from a non-loopback address. */
  let wide: AttackServer;
  let c: Cast;
  let stranger: TestIdentity;
  let messageId: string;

  before(async () => {
    process.env[TOKEN_ENV] = TOKEN;
    const pki = await testPki();
    const issue = (usage: 'signature' | 'cipher') => issueDevCertificate(join(pki.dir, 'ca'), { id: 'fremder', usage, bits: 2048 });
    const [s, ci] = await Promise.all([issue('signature'), issue('cipher')]);
    stranger = { id: 'fremder', signature: { key: s.key, cert: s.certificate }, cipher: { key: ci.key, cert: ci.certificate } };
    [srv, wide, c] = await Promise.all([startAttackServer({ config: { admin: { tokenEnv: TOKEN_ENV } } }), startAttackServer({ config: { admin: { tokenEnv: TOKEN_ENV }, host: '0.0.0.0' } }), cast()]);
    const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp, subject: SUBJECT });
    const receipt = await clientOf(srv, c.ag).storeDelivery({
      messageId: o.message.messageId,
      addresseeCipher: c.stadt.cipher.cert,
      subject: SUBJECT,
      contentPackage: o.message.contentPackage,
      certificates: o.sealed.certificates,
    });
    await o.sealed.dispose();
    messageId = receipt.messageId;
  });
  after(async () => {
    delete process.env[TOKEN_ENV];
    await Promise.all([srv?.stop(), wide?.stop()]);
  });

  /** The victim's delivery is still waiting, neither forwarded nor received. */
  async function untouched() {
    const m = await srv.server.store.getMessage(messageId);
    expect(m?.forwarding, 'Forwarding').to.equal(undefined);
    expect(m?.reception, 'Reception').to.equal(undefined);
    expect((await srv.server.store.listWaiting('stadt-lemgo')).map((x) => x.messageId)).to.deep.equal([messageId]);
  }

  describe('OSCI: other mailboxes and process cards', () => {
    const unknownId = randomBytes(24).toString('base64');

    for (const who of ['kanzlei', 'ag'] as const) {
      it(`${who === 'ag' ? 'the sender (ag-lemgo)' : 'another mailbox (kanzlei-mustermann)'} cannot fetch stadt-lemgo's delivery: by MessageId, as next, by date — the same answer as for a MessageId that does not exist`, async () => {
        const d = await clientOf(srv, c[who]).openDialog();
        expect(await d.fetchDelivery({ by: 'messageId', messageId })).to.equal(undefined);
        expect(await d.fetchDelivery({ by: 'messageId', messageId: unknownId })).to.equal(undefined);
        expect(await d.fetchDelivery()).to.equal(undefined);
        expect(await d.fetchDelivery({ by: 'receptionOfDelivery', dateTime: '1970-01-01T00:00:00Z' })).to.equal(undefined);
        await d.close();
        await untouched();
      });
    }

    it("another mailbox sees none of the process cards of ag-lemgo's and stadt-lemgo's delivery, under any selection", async () => {
      const d = await clientOf(srv, c.kanzlei).openDialog();
      expect(await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] })).to.deep.equal([]);
      expect(await d.fetchProcessCards({ by: 'messageId', messageIds: [unknownId] })).to.deep.equal([]);
      expect(await d.fetchProcessCards({ by: 'receptionOfDelivery', dateTime: '1970-01-01T00:00:00Z' })).to.deep.equal([]);
      expect(await d.fetchProcessCards({ by: 'recentModification', dateTime: '1970-01-01T00:00:00Z', role: 'Originator' })).to.deep.equal([]);
      expect(await d.fetchProcessCards({ by: 'recentModification', dateTime: '1970-01-01T00:00:00Z', role: 'Addressee' })).to.deep.equal([]);
      expect(await d.fetchProcessCards()).to.deep.equal([]);
      await d.close();
      await untouched();
    });

    it('sender and addressee each see the process card (control: the selections above do find it)', async () => {
      for (const who of [c.ag, c.stadt]) {
        const d = await clientOf(srv, who).openDialog();
        const cards = await d.fetchProcessCards({ by: 'recentModification', dateTime: '1970-01-01T00:00:00Z' });
        expect(cards.map((x) => x.messageId)).to.deep.equal([messageId]);
        expect(cards[0]?.processCard.subject).to.equal(SUBJECT);
        await d.close();
      }
      await untouched();
    });

    it('a certificate of the trusted CA that owns no mailbox may send and sees the process cards of what it sent, but fetches nothing and sees no other card', async () => {
      const client = clientOf(srv, stranger);
      const o = await storeDeliveryOrder(stranger, c.kreis, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const receipt = await client.storeDelivery({ addresseeCipher: c.kreis.cipher.cert, contentPackage: o.message.contentPackage, certificates: o.sealed.certificates });
      expect(receipt.feedback[0]?.code).to.equal('0800');
      expect((await srv.server.store.getMessage(receipt.messageId))?.originatorId).to.match(/^cert:[0-9a-f]{64}$/);
      const d = await client.openDialog();
      expect(await d.fetchDelivery({ by: 'messageId', messageId })).to.equal(undefined);
      expect(await d.fetchDelivery()).to.equal(undefined);
      // Its messages are recorded under its certificate: it sees their cards (a remote gateway tracking the reception), never stadt-lemgo's.
      const cards = await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId, receipt.messageId] });
      expect(cards.map((x) => x.messageId)).to.deep.equal([receipt.messageId]);
      expect((await d.fetchProcessCards({ by: 'recentModification', dateTime: '1970-01-01T00:00:00Z' })).map((x) => x.messageId)).to.deep.equal([receipt.messageId]);
      expect(await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] })).to.deep.equal([]);
      await d.close();
      // Another unregistered certificate of the same CA sees nothing of it.
      const pki = await testPki();
      const issue = (usage: 'signature' | 'cipher') => issueDevCertificate(join(pki.dir, 'ca'), { id: 'fremder-2', usage, bits: 2048 });
      const [s2, c2] = await Promise.all([issue('signature'), issue('cipher')]);
      const other = clientOf(srv, { id: 'fremder-2', signature: { key: s2.key, cert: s2.certificate }, cipher: { key: c2.key, cert: c2.certificate } });
      const d2 = await other.openDialog();
      expect(await d2.fetchProcessCards({ by: 'messageId', messageIds: [receipt.messageId] })).to.deep.equal([]);
      await d2.close();
      await untouched();
    });
  });

  describe('admin API', () => {
    const admin = (path: string, init: RequestInit = {}) => fetch(`${srv.server.url}${path}`, init);
    const UNAUTHORISED = { error: 'ERR_UNAUTHORISED', message: 'authentication required' };

    it('control: the configured token opens it', async () => {
      const r = await admin('/admin/mailboxes', { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(r.status).to.equal(200);
    });

    it('path spellings (case, double slash, dot segments, %-escapes, trailing slash) never get past the token', async () => {
      for (const path of ['/ADMIN/mailboxes', '/Admin/Mailboxes', '//admin/mailboxes', '/admin//mailboxes', '/admin/./mailboxes', '/osci/../admin/mailboxes', '/%61dmin/mailboxes', '/admin/%6dailboxes', '/admin/mailboxes/', '/admin/mailboxes/stadt-lemgo', '/admin/mailboxes/stadt-lemgo/disable']) {
        for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
          const r = await admin(path, { method });
          expect(r.status, `${method} ${path}`).to.be.oneOf([401, 404]);
          const body = await r.text();
          if (r.status === 401) expect(JSON.parse(body), `${method} ${path}`).to.deep.equal(UNAUTHORISED);
          expectNoLeak(body, `${method} ${path}`);
        }
      }
      await untouched();
      expect((await srv.server.store.certificatesOf('stadt-lemgo', 'cipher')).every((x) => x.revoked === undefined), 'nothing disabled').to.equal(true);
    });

    it('the token anywhere but the Authorization header, or with extra words, is no token', async () => {
      const attempts: Array<[string, RequestInit]> = [
        [`/admin/mailboxes?token=${TOKEN}`, {}],
        [`/admin/mailboxes?access_token=${TOKEN}`, {}],
        ['/admin/mailboxes', { headers: { 'x-api-key': TOKEN } }],
        ['/admin/mailboxes', { headers: { cookie: `token=${TOKEN}` } }],
        ['/admin/mailboxes', { headers: { authorization: `Bearer ${TOKEN} ${TOKEN}` } }],
        ['/admin/mailboxes', { headers: { authorization: `Token ${TOKEN}` } }],
        ['/admin/mailboxes', { headers: { authorization: TOKEN } }],
        ['/admin/mailboxes', { headers: { authorization: `Bearer ${Buffer.from(TOKEN).toString('base64')}` } }],
      ];
      for (const [path, init] of attempts) {
        const r = await admin(path, init);
        expect(r.status, `${path} ${JSON.stringify(init)}`).to.equal(401);
        expect(await r.json()).to.deep.equal(UNAUTHORISED);
      }
    });

    it('no other administrative or debugging route answers anywhere', async () => {
      for (const path of ['/api', '/api/admin', '/management', '/actuator/env', '/debug', '/console', '/server-status', '/.env', '/config', '/admin.json', '/participants', '/mailboxes', '/messages', '/store', '/dialogs', '/osci/admin']) {
        for (const method of ['GET', 'POST']) {
          const r = await admin(path, { method });
          expect(r.status, `${method} ${path}`).to.equal(404);
          expect(await r.json()).to.deep.equal({ error: 'ERR_NOT_FOUND', message: 'not found' });
        }
      }
    });
  });

  describe('directory and operational endpoints', () => {
    it('a postbox entry holds its current cipher certificates only: no signature, expired or revoked certificate, no dates of the mailbox', async () => {
      const store = srv.server.store;
      // An expired and a revoked cipher certificate of stadt-lemgo (old keys) must not be offered to senders.
      const pki = await testPki();
      const expired = await issueDevCertificate(join(pki.dir, 'ca'), { id: 'stadt-lemgo', usage: 'cipher', bits: 2048, notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
      const withdrawn = await issueDevCertificate(join(pki.dir, 'ca'), { id: 'stadt-lemgo', usage: 'cipher', bits: 2048 });
      for (const x of [expired, withdrawn]) {
        await store.addCertificate({ participantId: 'stadt-lemgo', usage: 'cipher', der: x.certificate.raw, notBefore: new Date(x.certificate.validFrom), notAfter: new Date(x.certificate.validTo) });
      }
      const rec = await store.findCertificate(withdrawn.certificate.fingerprint256.replace(/:/g, '').toLowerCase());
      await store.revokeCertificate(rec?.fingerprint as string, new Date(Date.now() - 1000));

      const r = await fetch(`${srv.server.url}/directory/stadt-lemgo`);
      expect(r.status).to.equal(200);
      const entry = (await r.json()) as Record<string, unknown> & { cipherCertificates: Array<{ fingerprint: string; pem: string }> };
      expect(Object.keys(entry).sort()).to.deep.equal(['cipherCertificates', 'endpoint', 'id', 'intermediary', 'name']);
      const hex = (x: { fingerprint256: string }) => x.fingerprint256.replace(/:/g, '').toLowerCase();
      expect(entry.cipherCertificates.map((x) => x.fingerprint)).to.deep.equal([hex(c.stadt.cipher.cert)]);
      const text = JSON.stringify(entry);
      expect(text).to.not.contain(c.stadt.signature.cert.raw.toString('base64').slice(0, 64));
      const pem = await (await fetch(`${srv.server.url}/directory/stadt-lemgo?format=pem`)).text();
      expect(pem.match(/BEGIN CERTIFICATE/g)).to.have.length(1);
    });

    it('an unknown postbox and odd ids get the same bare 404; there is no listing of postboxes', async () => {
      for (const id of ['no-such-box', '..%2Fadmin', "'%20OR%201=1--", '%2A', 'stadt-lemgo%00']) {
        const r = await fetch(`${srv.server.url}/directory/${id}`);
        expect(r.status, id).to.equal(404);
        const body = (await r.json()) as { error: string };
        expect(body.error).to.equal('ERR_NOT_FOUND');
      }
      const own = (await (await fetch(`${srv.server.url}/directory`)).json()) as Record<string, unknown>;
      expect(Object.keys(own).sort()).to.deep.equal(['cipherCertificates', 'endpoint', 'signatureCertificate']);
    });

    it('an undecodable %-escape in a path is a 400 without stack trace or server path (was: Express default page)', async () => {
      for (const path of ['/directory/%', '/directory/%E0%A4%A', '/admin/mailboxes/%']) {
        const r = await fetch(`${srv.server.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(r.status, path).to.be.oneOf([400, 404]);
        const body = await r.text();
        expectNoLeak(body, path);
        expect(body).to.not.match(/URIError|node_modules|<pre>/);
      }
    });

    const secrets = () => ['stadt-lemgo', 'ag-lemgo', 'kanzlei', messageId, SUBJECT, c.stadt.signature.cert.fingerprint256.replace(/:/g, '').toLowerCase(), 'BEGIN CERTIFICATE'];

    it('/healthz and /readyz name no mailbox, MessageId, subject or certificate', async () => {
      for (const path of ['/healthz', '/readyz']) {
        const r = await fetch(`${srv.server.url}${path}`);
        expect(r.status, path).to.equal(200);
        const body = await r.text();
        for (const secret of secrets()) expect(body, `${path} shows ${secret}`).to.not.contain(secret);
      }
    });

    it('/metrics (whose expiry gauges list every mailbox and certificate) answers a remote peer only with the admin token', async function () {
      const local = await (await fetch(`${srv.server.url}/metrics`)).text();
      expect(local, 'control: a local scraper sees the gauges').to.contain('participant="stadt-lemgo"');
      const remote = externalAddress();
      if (!remote) {
        if (IN_CI) throw new Error('no non-loopback IPv4 address to test a remote peer from');
        console.warn('      skipped: no non-loopback IPv4 address on this machine');
        this.skip();
      }
      const url = `http://${remote}:${new URL(wide.server.url).port}/metrics`;
      const anonymous = await fetch(url);
      expect(anonymous.status).to.equal(404);
      const body = await anonymous.text();
      for (const secret of secrets()) expect(body, `/metrics shows ${secret}`).to.not.contain(secret);
      expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).to.equal(404);
      const withToken = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(withToken.status).to.equal(200);
      expect(await withToken.text()).to.contain('amtsbote_certificate_days_to_expiry');
    });
  });
});
