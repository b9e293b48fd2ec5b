/**
 * The intermediary against the requests of the Governikus OSCI-Bibliothek 2.4.1 (osci-reference/messages), over
 * real HTTP: configured with the reference intermediary identity (osci_manager_*_4096.p12) and Alice and Bob as
 * participants, it accepts 01/02/03 posted byte-for-byte as the library sent them (HTTP Content-Type text/xml), Bob
 * fetches Alice's delivery and opens it with his key, a replay of 03 is refused with 9801, and every captured
 * response validates against its XSD (outer soapMessageEncrypted.xsd, inner soapResponseTo<Type>.xsd).
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { OsciClient } from '../../adapters/osci/client.ts';
import { loadPkcs12, type Pkcs12Contents } from '../../crypto/keys.ts';
import { resolveConfig } from '../../gateway/config.ts';
import { createLogger, silentLogger } from '../../gateway/log.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { decodeMessage, decryptTransportPayload, openContent, type DecodedMessage } from '../../protocol/envelope/index.ts';
import { parseMultipartBuffer } from '../../protocol/mime.ts';
import type { OsciMessage, OsciMessageOf } from '../../protocol/model.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';
import { dropPgSchema, pgAvailable, pgSchemaUrl } from '../helpers/pg.ts';
import { firstMimePart, validateXsd } from '../helpers/xsd.ts';

const CERTS = (f: string) => shared('osci-reference', 'certs', f);
const MSG = (f: string) => shared('osci-reference', 'messages', f);
const CER = (f: string) => new X509Certificate(readFileSync(CERTS(f)));
const PIN_ENV = 'AMTSBOTE_TEST_REFERENCE_PIN';
/** osci-java-oracle-msgid-0001, base64 as the library writes it (osci-reference/README.md). */
const REF_MESSAGE_ID = 'b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx';

/** One HTTP exchange as it went over the wire. */
interface Captured {
  contentType: string;
  raw: Buffer;
}

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The request's Challenge (our response must echo it as Response, osci-protocol.md §2), from the captured plaintext. */
function challengeOf(name: string): string | undefined {
  const m = parseSoap(firstMimePart(readFileSync(MSG(`${name}.plain.mime`)))).message as { controlBlock?: { challenge?: string } };
  return m.controlBlock?.challenge;
}

/** Known plaintexts of 03 (osci-reference/messages/03_storeDelivery.content-decrypted.txt). */
function expectedContent(): { base64: Buffer; attachment: Buffer } {
  const txt = readFileSync(MSG('03_storeDelivery.content-decrypted.txt'), 'utf8');
  const b64 = /<osci:Base64Content Id="content0">([^<]*)<\/osci:Base64Content>/.exec(txt)?.[1] ?? '';
  const att = /decrypted with ds:MgmtData key: ([^\n]*\n)/.exec(txt)?.[1] ?? '';
  return { base64: Buffer.from(b64.replace(/\s+/g, ''), 'base64'), attachment: Buffer.from(att, 'utf8') };
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`interop: the intermediary answers the reference library’s requests (${backend})`, function () {
    this.timeout(180_000);
    let server: RunningServer;
    let tmp: string;
    let pgUrl: string | undefined;
    let aliceCipher: Pkcs12Contents;
    let bobSig: Pkcs12Contents;
    let bobCipher: Pkcs12Contents;
    let managerSig: X509Certificate;
    let managerCipher: X509Certificate;
    let aliceSigCert: X509Certificate;
    const pinBefore = process.env[PIN_ENV];

    before(async function () {
      requireShared(this);
      requireTool(this, 'xmllint');
      if (backend === 'postgres' && !(await pgAvailable(this))) return;
      process.env[PIN_ENV] = '123456';
      tmp = mkdtempSync(join(tmpdir(), `amtsbote-refinterop-${backend}-`));
      pgUrl = backend === 'postgres' ? pgSchemaUrl() : undefined;
      aliceCipher = loadPkcs12(CERTS('alice_cipher_4096.p12'), '123456');
      bobSig = loadPkcs12(CERTS('bob_signature_4096.p12'), '123456');
      bobCipher = loadPkcs12(CERTS('bob_cipher_4096.p12'), '123456');
      managerSig = CER('osci_manager_signature_4096.cer');
      managerCipher = CER('osci_manager_cipher_4096.cer');
      aliceSigCert = CER('alice_signature_4096.cer');
      const cfg = resolveConfig({
        port: 0,
        dataDir: join(tmp, 'data'),
        db: pgUrl,
        identity: {
          signature: { p12: CERTS('osci_manager_signature_4096.p12'), pinEnv: PIN_ENV },
          cipher: { p12: CERTS('osci_manager_cipher_4096.p12'), pinEnv: PIN_ENV },
        },
        devPki: { enabled: false, dir: join(tmp, 'no-dev-pki'), bits: 2048 },
        registerDevIdentities: false,
        // The Governikus test PKI is not anchored: its certificates are trusted as registered for these participants.
        trustRegisteredCertificates: true,
        participants: [
          { id: 'alice', signatureCerts: [CERTS('alice_signature_4096.cer')], cipherCerts: [CERTS('alice_cipher_4096.cer')] },
          { id: 'bob', signatureCerts: [CERTS('bob_signature_4096.cer')], cipherCerts: [CERTS('bob_cipher_4096.cer')] },
        ],
        logLevel: 'silent',
      });
      server = await startServer(cfg, { log: process.env.AMTSBOTE_TEST_LOG ? createLogger({ level: process.env.AMTSBOTE_TEST_LOG }) : silentLogger });
    });

    after(async () => {
      await server?.stop();
      if (pgUrl) await dropPgSchema(pgUrl);
      if (tmp) rmSync(tmp, { recursive: true, force: true });
      if (pinBefore === undefined) delete process.env[PIN_ENV];
      else process.env[PIN_ENV] = pinBefore;
    });

    /** POSTs a captured .wire.mime exactly as the library did (headers from http-capture-127.0.0.1/http-01.headers.txt). */
    async function postReference(name: string): Promise<Captured> {
      const body = readFileSync(MSG(`${name}.wire.mime`));
      const res = await fetch(`${server.url}/osci`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/xml', charset: 'utf-8', 'Cache-Control': 'no-cache', Pragma: 'no-cache', 'Content-Length': String(body.length) },
        body,
      });
      expect(res.status, `HTTP status for ${name}`).to.equal(200);
      return { contentType: res.headers.get('content-type') ?? '', raw: Buffer.from(await res.arrayBuffer()) };
    }

    /**
     * Checks one response as bytes: the outer SOAP part against soapMessageEncrypted.xsd, the transport payload
     * decrypted with `cipher` (the client's key) and its SOAP part against `xsd`; returns it decoded with the
     * SupplierSignature verified against the pinned osci_manager signature certificate.
     */
    async function checkResponse(c: Captured, cipher: Pkcs12Contents, xsd: string): Promise<DecodedMessage> {
      const outer = await parseMultipartBuffer(c.raw, { contentType: c.contentType });
      const outerSoap = outer.parts[outer.root]?.body as Buffer;
      const v1 = validateXsd(outerSoap, 'soapMessageEncrypted.xsd');
      expect(v1.valid, `outer envelope: ${v1.errors.join('\n')}`).to.equal(true);
      const enc = outer.parts.find((p) => p.contentId === 'osci_enc');
      expect(enc, 'osci_enc part').to.not.equal(undefined);
      const chunks: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _e, cb) {
          chunks.push(chunk);
          cb();
        },
      });
      const r = await decryptTransportPayload(parseSoap(outerSoap), (cid) => (cid === 'osci_enc' ? Readable.from([enc?.body as Buffer]) : undefined), [{ key: cipher.key, cert: cipher.certificate }], sink);
      expect(r.recipient?.raw.equals(cipher.certificate.raw), 'encrypted for the client’s cipher certificate').to.equal(true);
      const inner = await parseMultipartBuffer(Buffer.concat(chunks));
      const v2 = validateXsd(inner.parts[inner.root]?.body as Buffer, xsd);
      expect(v2.valid, `${xsd}: ${v2.errors.join('\n')}`).to.equal(true);
      return decodeMessage(c.raw, {
        contentType: c.contentType,
        transportKeys: [{ key: cipher.key, cert: cipher.certificate }],
        tmpDir: tmp,
        signature: 'required',
        trustSigner: async (carried, role) => {
          expect(role).to.equal('supplier');
          if (!carried || !carried.raw.equals(managerSig.raw)) throw new Error('response not signed with the osci_manager signature certificate');
          return managerSig;
        },
      });
    }

    function bobClient(endpoint = `${server.url}/osci`): OsciClient {
      return new OsciClient({
        endpoint,
        intermediary: { cipher: managerCipher, signature: managerSig },
        signer: { key: bobSig.key, cert: bobSig.certificate },
        cipher: { key: bobCipher.key, cert: bobCipher.certificate },
        tmpDir: tmp,
      });
    }

    /** Runs `fn` against a recording proxy in front of the intermediary: every answer, as it crossed the wire. */
    async function capturing<T>(fn: (endpoint: string) => Promise<T>): Promise<{ result: T; responses: Captured[] }> {
      const responses: Captured[] = [];
      const target = new URL(`${server.url}/osci`);
      const proxy = createServer((req, res) => {
        const up = httpRequest(target, { method: req.method, headers: req.headers }, (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (c: Buffer) => chunks.push(c));
          answer.on('end', () => {
            const raw = Buffer.concat(chunks);
            responses.push({ contentType: String(answer.headers['content-type'] ?? ''), raw });
            res.writeHead(answer.statusCode ?? 502, answer.headers).end(raw);
          });
        });
        up.on('error', () => res.destroy());
        req.on('error', () => up.destroy());
        req.pipe(up);
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      try {
        return { result: await fn(`http://127.0.0.1:${(proxy.address() as { port: number }).port}/osci`), responses };
      } finally {
        proxy.closeAllConnections();
        await new Promise<void>((r) => proxy.close(() => r()));
      }
    }

    it('03_storeDelivery posted as-is is stored: responseToStoreDelivery 0800 with a process card showing creation', async () => {
      const before = Date.now();
      const d = await checkResponse(await postReference('03_storeDelivery'), aliceCipher, 'soapResponseToStoreDelivery.xsd');
      try {
        const m = d.message as OsciMessageOf<'responseToStoreDelivery'>;
        expect(m.type).to.equal('responseToStoreDelivery');
        expect(m.feedback[0]?.code).to.equal('0800');
        expect(m.controlBlock.response, 'Challenge echoed').to.equal(challengeOf('03_storeDelivery'));
        expect(m.processCardBundle?.messageId).to.equal(REF_MESSAGE_ID);
        const creation = m.processCardBundle?.processCard.creation;
        expect(creation?.kind).to.equal('plain');
        expect(Date.parse((creation as { time: string }).time)).to.be.within(before - 1000, Date.now() + 1000);
        expect(m.processCardBundle?.processCard.subject).to.equal('osci-java-oracle storeDelivery');
        expect(m.processCardBundle?.inspectionReport.length).to.be.greaterThan(0);
      } finally {
        await d.dispose();
      }
      const waiting = await server.store.listWaiting('bob', {});
      expect(waiting.map((w) => w.messageId)).to.deep.equal([REF_MESSAGE_ID]);
      expect(waiting[0]?.parts.map((p) => [p.contentId, p.size])).to.deep.equal([['attachment1.txt', 66]]);
    });

    it('03 posted a second time is refused with 9801 and nothing is stored twice', async () => {
      const d = await checkResponse(await postReference('03_storeDelivery'), aliceCipher, 'soapResponseToStoreDelivery.xsd');
      try {
        const m = d.message as OsciMessageOf<'responseToStoreDelivery'>;
        expect(m.type).to.equal('responseToStoreDelivery');
        expect(m.feedback[0]?.code).to.equal('9801');
        expect(m.processCardBundle).to.equal(undefined);
      } finally {
        await d.dispose();
      }
      expect((await server.store.listWaiting('bob', {})).map((w) => w.messageId)).to.deep.equal([REF_MESSAGE_ID]);
      expect((await server.store.listProcessCards('alice', {})).map((w) => w.messageId)).to.deep.equal([REF_MESSAGE_ID]);
    });

    it('01_initDialog posted as-is opens a dialog (responseToInitDialog, numeric ConversationId)', async () => {
      const d = await checkResponse(await postReference('01_initDialog'), aliceCipher, 'soapResponseToInitDialog.xsd');
      try {
        const m = d.message as OsciMessageOf<'responseToInitDialog'>;
        expect(m.type).to.equal('responseToInitDialog');
        expect(m.feedback[0]?.code).to.match(/^0/);
        expect(m.controlBlock.conversationId).to.match(/^\d+$/);
        expect(m.controlBlock.response).to.equal(challengeOf('01_initDialog'));
        expect(m.controlBlock.challenge, 'a new Challenge').to.be.a('string').and.not.equal('');
      } finally {
        await d.dispose();
      }
    });

    it('02_getMessageId posted as-is gets a fresh MessageId', async () => {
      const d = await checkResponse(await postReference('02_getMessageId'), aliceCipher, 'soapResponseToGetMessageId.xsd');
      try {
        const m = d.message as OsciMessageOf<'responseToGetMessageId'>;
        expect(m.type).to.equal('responseToGetMessageId');
        expect(m.feedback[0]?.code).to.equal('0800');
        expect(m.controlBlock.response).to.equal(challengeOf('02_getMessageId'));
        expect(m.messageId).to.be.a('string').and.not.equal(REF_MESSAGE_ID);
        expect(Buffer.from(m.messageId as string, 'base64').toString('base64')).to.equal(m.messageId);
      } finally {
        await d.dispose();
      }
    });

    it('the official sample’s real HTTP request (http-capture-127.0.0.1) is answered, encrypted for the Carol cipher certificate it carries', async () => {
      const dir = shared('osci-reference', 'http-capture-127.0.0.1');
      const headers = readFileSync(join(dir, 'http-01.headers.txt'), 'utf8');
      const contentType = /^Content-Type:\s*(.+)$/im.exec(headers)?.[1]?.trim() as string;
      const body = readFileSync(join(dir, 'http-01.body.mime'));
      const res = await fetch(`${server.url}/osci`, { method: 'POST', headers: { 'Content-Type': contentType, charset: 'utf-8' }, body });
      expect(res.status).to.equal(200);
      const carol = loadPkcs12(CERTS('carol_cipher_4096.p12'), '123456');
      const d = await checkResponse({ contentType: res.headers.get('content-type') ?? '', raw: Buffer.from(await res.arrayBuffer()) }, carol, 'soapResponseToGetMessageId.xsd');
      try {
        expect(d.message.type).to.equal('responseToGetMessageId');
        expect((d.message as OsciMessageOf<'responseToGetMessageId'>).feedback[0]?.code).to.equal('0800');
      } finally {
        await d.dispose();
      }
    });

    it('Bob opens a dialog, fetches the delivery by MessageId, opens Alice’s content with his key and closes; every response is XSD-valid', async () => {
      const want = expectedContent();
      expect(want.base64.toString()).to.match(/^Hello Bob/);
      const { result, responses } = await capturing(async (endpoint) => {
        const dialog = await bobClient(endpoint).openDialog();
        const got = await dialog.fetchDelivery({ by: 'messageId', messageId: REF_MESSAGE_ID });
        expect(got, 'the delivery is handed out').to.not.equal(undefined);
        if (!got) throw new Error('no delivery');
        const { response, decoded } = got;
        try {
          expect(response.feedback[0]?.code).to.equal('0801');
          expect(response.processCardBundle?.messageId).to.equal(REF_MESSAGE_ID);
          expect(response.processCardBundle?.processCard.forwarding?.kind).to.equal('plain');
          let carried: X509Certificate | undefined;
          const opened = await openContent(response.contentPackage ?? { encryptedData: [], contentContainers: [] }, {
            readerKey: bobCipher.key,
            attachments: new Map(decoded.attachments.map((a) => [a.contentId, () => a.open()])),
            certificates: response.certificates,
            trustAuthor: async (c) => {
              carried = c;
              return aliceSigCert;
            },
            tmpDir: tmp,
          });
          try {
            expect(carried?.raw.equals(aliceSigCert.raw), 'Alice’s certificate travels with the delivery').to.equal(true);
            expect(opened.containers).to.have.length(1);
            const c = opened.containers[0]!;
            expect(c.signatureValid, JSON.stringify(c.signatures.map((s) => s.error))).to.equal(true);
            expect(c.signer?.raw.equals(aliceSigCert.raw)).to.equal(true);
            const [b, a] = c.contents;
            expect(b?.kind === 'base64' && b.data.equals(want.base64), 'Base64Content').to.equal(true);
            if (a?.kind !== 'attachment') throw new Error('no attachment in the container');
            expect(a.contentId).to.equal('attachment1.txt');
            expect((await collect(a.open())).equals(want.attachment), 'attachment plaintext').to.equal(true);
          } finally {
            await opened.dispose();
          }
        } finally {
          await decoded.dispose();
        }
        await dialog.close();
        return dialog.conversationId;
      });
      expect(result).to.match(/^\d+$/);
      expect(responses).to.have.length(3);
      const xsds = ['soapResponseToInitDialog.xsd', 'soapResponseToFetchDelivery.xsd', 'soapResponseToExitDialog.xsd'];
      const types: Array<OsciMessage['type']> = ['responseToInitDialog', 'responseToFetchDelivery', 'responseToExitDialog'];
      for (const [i, c] of responses.entries()) {
        const d = await checkResponse(c, bobCipher, xsds[i] as string);
        expect(d.message.type).to.equal(types[i]);
        await d.dispose();
      }
      // Closing the dialog acknowledged the reception (§2): nothing waits, and the card shows it.
      expect(await server.store.listWaiting('bob', {})).to.deep.equal([]);
      const cards = await server.store.listProcessCards('alice', { messageIds: [REF_MESSAGE_ID] });
      expect(cards).to.have.length(1);
      expect(cards[0]?.reception, 'reception recorded').to.be.instanceOf(Date);
    });
  });
}
