/**
 * Passive recipients end to end over real HTTP (osci-protocol.md §1, §2): ag-lemgo sends forwardDelivery and
 * mediateDelivery through the intermediary to kreis-lippe, a passive recipient (test double on 127.0.0.1) that
 * receives acceptDelivery / processDelivery, opens and verifies the content and answers. Failure cases: refusal
 * (9805), recipient error (9808), unverifiable answer (9807), recipient down (9809), a ContentReceiver that is not
 * the registered endpoint (refused, no outbound call), redirects never followed, mediateDelivery outside a dialog (9802).
 */
import { expect } from 'chai';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { postOsci } from '../../adapters/osci/post.ts';
import { signXml } from '../../crypto/dsig.ts';
import { serializeXml } from '../../crypto/xml.ts';
import { resolvePassiveRecipient, sendAcceptDelivery } from '../../gateway/osci/passive.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { newChallenge } from '../../protocol/dialog.ts';
import { decodeMessage, openContent, sealContent, type SealedContent } from '../../protocol/envelope/index.ts';
import { OsciError } from '../../protocol/errors.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import { writeMultipartBuffer, soapPartHeaders } from '../../protocol/mime.ts';
import type { AcceptDelivery, Certificate, ProcessDelivery } from '../../protocol/model.ts';
import { OSCI_NS } from '../../protocol/namespaces.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import { clientFor, devConfig, testIdentity, testLogger, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { validateXsd } from '../helpers/xsd.ts';
import { startPassiveRecipient, type PassiveRecipientDouble, type RecipientAnswer, type ReceivedDelivery } from '../helpers/passive-recipient.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Schema errors of an envelope, except libxml2's own limit: its xs:integer holds at most 24 digits, so the decimal
 * X509SerialNumber of a 128-bit certificate serial (order.xsd InspectionType, valid xs:integer) is reported.
 */
function schemaErrors(xml: string, xsd: string): string[] {
  return validateXsd(xml, xsd).errors.filter((e) => !/X509SerialNumber': '\d{25,}' is not a valid value of the atomic type 'xs:integer'/.test(e));
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}


async function feedbackOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OsciError) return e.feedback;
    throw e;
  }
  return undefined;
}

/** What the recipient double saw in the content: opened with its own key, author verified against ag-lemgo. */
interface Seen {
  text?: string;
  attachmentSha?: string;
  signatureValid?: boolean;
  error?: string;
}

async function openAs(reader: TestIdentity, author: TestIdentity, d: { contentPackage: AcceptDelivery['contentPackage']; certificates: Certificate[]; attachments: Array<{ contentId: string; open(): Readable }> }, tmp: string): Promise<Seen> {
  const opened = await openContent(d.contentPackage, {
    readerKey: reader.cipher.key,
    attachments: new Map(d.attachments.map((a) => [a.contentId, () => a.open()])),
    certificates: d.certificates,
    trustAuthor: async (carried) => {
      if (!carried || !carried.raw.equals(author.signature.cert.raw)) throw new OsciError('ERR_CERT_UNTRUSTED', 'unexpected author');
      return author.signature.cert;
    },
    tmpDir: tmp,
  });
  try {
    const c = opened.containers[0];
    if (!c) return { error: 'no container' };
    const seen: Seen = { signatureValid: c.signatureValid && c.signer?.raw.equals(author.signature.cert.raw) === true };
    for (const item of c.contents) {
      if (item.kind === 'base64') seen.text = item.data.toString('utf8');
      if (item.kind === 'attachment') seen.attachmentSha = sha(await readAll(item.open()));
    }
    return seen;
  } finally {
    await opened.dispose();
  }
}

describe('passive recipients: forwardDelivery → acceptDelivery, mediateDelivery → processDelivery', function () {
  this.timeout(120_000);
  let server: RunningServer;
  let tmp: string;
  let ag: TestIdentity;
  let kreis: TestIdentity;
  let stadt: TestIdentity;
  let kanzlei: TestIdentity;
  let recipient: PassiveRecipientDouble;
  let elsewhere: PassiveRecipientDouble;
  let answer: (d: ReceivedDelivery) => Promise<RecipientAnswer>;
  let deadUrl: string;

  const xml = Buffer.from('<nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns="http://www.xjustiz.de"/>');
  const pdf = randomBytes(40_000);

  before(async () => {
    const pki = await testPki();
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-passive-'));
    server = await startServer(devConfig(pki.dir, join(tmp, 'data')), { log: testLogger() });
    [ag, kreis, stadt, kanzlei] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('kreis-lippe'), testIdentity('stadt-lemgo'), testIdentity('kanzlei-mustermann')]);
    const opts = { intermediarySignature: server.identity.signature.cert, tmpDir: tmp };
    recipient = await startPassiveRecipient({ ...opts, identity: kreis, answer: (d) => answer(d) });
    // Another listener: a ContentReceiver pointing here must never be called.
    elsewhere = await startPassiveRecipient({ ...opts, identity: kreis, answer: async () => ({ feedback: '0800' }) });
    // A port nobody listens on: stadt-lemgo's registered endpoint is down.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    deadUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/osci`;
    await new Promise<void>((r) => probe.close(() => r()));
    await server.store.upsertParticipant({ id: 'kreis-lippe', endpointUrl: recipient.url });
    await server.store.upsertParticipant({ id: 'stadt-lemgo', endpointUrl: deadUrl });
  });
  after(async () => {
    await recipient?.close();
    await elsewhere?.close();
    await server?.stop();
  });

  async function sealFor(reader: TestIdentity, text: string): Promise<SealedContent> {
    return sealContent({
      author: ag.signature,
      readers: [reader.cipher.cert],
      contents: [{ base64Content: Buffer.from(text) }, { attachment: { contentId: 'anlage.pdf', size: pdf.length, open: () => Readable.from([pdf]) } }],
      tmpDir: tmp,
    });
  }

  async function forward(to: TestIdentity, contentReceiver: string, text = xml.toString()) {
    const sealed = await sealFor(to, text);
    try {
      return await clientFor(server, ag, tmp).forwardDelivery({
        addresseeCipher: to.cipher.cert,
        contentReceiver,
        subject: 'Weiterleitung',
        contentPackage: sealed.contentPackage,
        certificates: sealed.certificates,
        attachments: sealed.attachments,
      });
    } finally {
      await sealed.dispose();
    }
  }

  async function processCard(messageId: string) {
    const d = await clientFor(server, ag, tmp).openDialog();
    const cards = await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] });
    await d.close();
    return cards[0]?.processCard;
  }

  it('forwardDelivery: the recipient gets acceptDelivery, opens and verifies ag-lemgo’s content; the client gets 0800 with reception', async () => {
    let seen: Seen | undefined;
    let got: AcceptDelivery | undefined;
    answer = async ({ message, decoded }) => {
      got = message as AcceptDelivery;
      seen = await openAs(kreis, ag, { contentPackage: message.contentPackage, certificates: message.certificates, attachments: decoded.attachments }, tmp);
      return { feedback: '0800' };
    };
    const before = recipient.calls;
    const receipt = await forward(kreis, recipient.url);
    expect(recipient.calls).to.equal(before + 1);
    expect(receipt.feedback[0]?.code).to.equal('0800');
    const pc = receipt.processCardBundle?.processCard;
    expect(receipt.processCardBundle?.messageId).to.equal(receipt.messageId);
    expect(pc?.creation?.kind).to.equal('plain');
    expect(pc?.forwarding?.kind).to.equal('plain');
    expect(pc?.reception?.kind).to.equal('plain');
    expect(receipt.processCardBundle?.inspectionReport.length).to.be.greaterThan(0);

    // What the recipient received: the 'delivered' card, our certificates, the content as sent.
    expect(got?.type).to.equal('acceptDelivery');
    expect(got?.processCardBundle.messageId).to.equal(receipt.messageId);
    expect(got?.processCardBundle.processCard.forwarding).to.not.equal(undefined);
    expect(got?.processCardBundle.processCard.reception).to.equal(undefined);
    const roles = (got?.certificates ?? []).map((c) => `${c.usage}:${c.role}`);
    expect(roles).to.include.members(['cipher:intermediary', 'signature:intermediary', 'signature:originator', 'cipher:addressee']);
    expect(seen).to.deep.equal({ text: xml.toString(), attachmentSha: sha(pdf), signatureValid: true });
    expect(schemaErrors(recipient.soap[recipient.soap.length - 1] as string, 'soapAcceptDelivery.xsd'), 'acceptDelivery conforms to soapAcceptDelivery.xsd').to.deep.equal([]);

    const card = await processCard(receipt.messageId);
    expect(card?.reception?.kind).to.equal('plain');
    expect(Date.parse((card?.reception as { time: string }).time)).to.be.at.least(Date.parse((card?.forwarding as { time: string }).time));
  });

  it('mediateDelivery: processDelivery to the recipient, its reply content back to the client, both process cards', async () => {
    let seen: Seen | undefined;
    let got: ProcessDelivery | undefined;
    const replyPdf = randomBytes(20_000);
    answer = async ({ message, decoded }) => {
      const m = message as ProcessDelivery;
      got = m;
      seen = await openAs(kreis, ag, { contentPackage: m.contentPackage, certificates: m.certificates, attachments: decoded.attachments }, tmp);
      // The reply is sealed for the originator's cipher certificate the processDelivery carries.
      const originatorCipher = m.certificates.find((c) => c.role === 'originator' && c.usage === 'cipher');
      if (!originatorCipher) throw new Error('processDelivery without CipherCertificateOriginator');
      const sealed = await sealContent({
        author: kreis.signature,
        readers: [new X509Certificate(originatorCipher.der)],
        contents: [{ base64Content: Buffer.from(`Antwort auf: ${seen.text ?? ''}`) }, { attachment: { contentId: 'bescheid.pdf', size: replyPdf.length, open: () => Readable.from([replyPdf]) } }],
        tmpDir: tmp,
      });
      return {
        feedback: '0800',
        reply: { contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments, messageId: m.messageIdResponse, subject: 'Bescheid', dispose: () => sealed.dispose() },
      };
    };
    const client = clientFor(server, ag, tmp);
    const messageId = await client.getMessageId();
    const sealed = await sealFor(kreis, 'Anfrage 42');
    const d = await client.openDialog();
    let replyId: string | undefined;
    try {
      const { response, decoded } = await d.mediateDelivery({
        messageId,
        addresseeCipher: kreis.cipher.cert,
        contentReceiver: recipient.url,
        subject: 'Anfrage',
        contentPackage: sealed.contentPackage,
        certificates: sealed.certificates,
        attachments: sealed.attachments,
      });
      try {
        expect(response.feedback[0]?.code).to.equal('0801');
        const req = response.requestProcessCardBundle;
        expect(req?.messageId).to.equal(messageId);
        expect([req?.processCard.creation?.kind, req?.processCard.forwarding?.kind, req?.processCard.reception?.kind]).to.deep.equal(['plain', 'plain', 'plain']);
        replyId = response.replyProcessCardBundle?.messageId;
        expect(replyId).to.be.a('string');
        expect(replyId).to.equal(got?.messageIdResponse);
        expect(response.replyProcessCardBundle?.processCard.forwarding?.kind).to.equal('plain');
        expect(response.replyProcessCardBundle?.processCard.subject).to.equal('Bescheid');
        // The client decrypts the reply with its own key and verifies kreis-lippe as its author.
        const reply = await openAs(ag, kreis, { contentPackage: response.contentPackage ?? { encryptedData: [], contentContainers: [] }, certificates: response.certificates, attachments: decoded.attachments }, tmp);
        expect(reply).to.deep.equal({ text: 'Antwort auf: Anfrage 42', attachmentSha: sha(replyPdf), signatureValid: true });
        expect(response.certificates.some((c) => c.role === 'addressee' && c.usage === 'signature')).to.equal(false);
        expect(schemaErrors(serializeXml(decoded.soap.doc), 'soapResponseToMediateDelivery.xsd'), 'responseToMediateDelivery conforms to its XSD').to.deep.equal([]);
      } finally {
        await decoded.dispose();
      }
    } finally {
      await sealed.dispose();
      await d.close();
    }
    expect(got?.processCardBundle?.messageId).to.equal(messageId);
    expect(schemaErrors(recipient.soap[recipient.soap.length - 1] as string, 'soapProcessDelivery.xsd'), 'processDelivery conforms to soapProcessDelivery.xsd').to.deep.equal([]);
    expect(seen).to.deep.equal({ text: 'Anfrage 42', attachmentSha: sha(pdf), signatureValid: true });
    // The next request of the dialog (exitDialog) acknowledged the reply's reception (§2).
    const replyCard = await processCard(replyId as string);
    expect(replyCard?.reception?.kind).to.equal('plain');
  });

  it('mediateDelivery without MessageId: the reply flows back, nothing is recorded', async () => {
    answer = async () => ({ feedback: '0800', reply: { contentPackage: { encryptedData: [], contentContainers: [] } } });
    const sealed = await sealFor(kreis, 'ohne Protokoll');
    const d = await clientFor(server, ag, tmp).openDialog();
    try {
      const { response, decoded } = await d.mediateDelivery({ addresseeCipher: kreis.cipher.cert, contentReceiver: recipient.url, contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments });
      await decoded.dispose();
      expect(response.feedback[0]?.code).to.equal('0801');
      expect(response.requestProcessCardBundle).to.equal(undefined);
      expect(response.replyProcessCardBundle).to.equal(undefined);
      const last = recipient.received[recipient.received.length - 1] as ProcessDelivery;
      expect(last.messageIdResponse).to.equal(undefined);
      expect(last.processCardBundle).to.equal(undefined);
    } finally {
      await sealed.dispose();
      await d.close();
    }
  });

  it('the recipient refuses: 9805 to the client; forwarding recorded, no reception', async () => {
    answer = async () => ({ feedback: '9300' });
    const client = clientFor(server, ag, tmp);
    const messageId = await client.getMessageId();
    const sealed = await sealFor(kreis, 'abgelehnt');
    const before = recipient.calls;
    const fb = await feedbackOf(client.forwardDelivery({ messageId, addresseeCipher: kreis.cipher.cert, contentReceiver: recipient.url, contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments }));
    await sealed.dispose();
    expect(fb).to.equal('9805');
    expect(recipient.calls).to.equal(before + 1);
    const card = await processCard(messageId);
    expect(card?.forwarding).to.not.equal(undefined);
    expect(card?.reception).to.equal(undefined);
  });

  it('the recipient answers a soap:Fault Server: 9808', async () => {
    answer = async () => ({ fault: { faultCode: 'Server', oscicode: '9000' } });
    expect(await feedbackOf(forward(kreis, recipient.url))).to.equal('9808');
  });

  it('an answer signed by anyone but the registered recipient is not taken: 9807', async () => {
    answer = async () => ({ feedback: '0800', signWith: stadt.signature });
    expect(await feedbackOf(forward(kreis, recipient.url))).to.equal('9807');
  });

  it('the recipient is down: 9809, and no Forwarding is recorded', async () => {
    const client = clientFor(server, ag, tmp);
    const messageId = await client.getMessageId();
    const sealed = await sealFor(stadt, 'niemand da');
    const fb = await feedbackOf(client.forwardDelivery({ messageId, addresseeCipher: stadt.cipher.cert, contentReceiver: deadUrl, contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments }));
    await sealed.dispose();
    expect(fb).to.equal('9809');
    const card = await processCard(messageId);
    expect(card?.creation).to.not.equal(undefined);
    expect(card?.forwarding).to.equal(undefined);
  });

  it('a ContentReceiver that is not the registered endpoint is refused and nothing is called (no SSRF)', async () => {
    answer = async () => ({ feedback: '0800' });
    const [r0, e0] = [recipient.calls, elsewhere.calls];
    expect(await feedbackOf(forward(kreis, elsewhere.url))).to.equal('9805');
    expect(await feedbackOf(forward(kreis, `${recipient.url}/../admin`))).to.equal('9805');
    expect(await feedbackOf(forward(kreis, 'file:///etc/passwd'))).to.equal('9805');
    // An addressee without a registered endpoint is no passive recipient.
    expect(await feedbackOf(forward(kanzlei, elsewhere.url))).to.equal('9805');
    expect([recipient.calls, elsewhere.calls]).to.deep.equal([r0, e0]);
  });

  it('a redirect from the recipient is not followed: 9809, the redirect target is never called', async () => {
    answer = async () => ({ http: { status: 307, headers: { location: elsewhere.url } } });
    const e0 = elsewhere.calls;
    expect(await feedbackOf(forward(kreis, recipient.url))).to.equal('9809');
    expect(elsewhere.calls).to.equal(e0);
  });

  it('mediateDelivery outside an explicit dialog: 9802, nothing is sent to the recipient', async () => {
    // Our encoder refuses to build it (MediateDelivery.xsd requires the dialog), so it is built inside a dialog and
    // the ConversationId, SequenceNumber and Response are removed before signing: what a foreign client could send.
    const before = recipient.calls;
    const sig = certificate('originator', 'signature', ag.signature.cert.raw);
    const built = buildSoap(
      {
        type: 'mediateDelivery',
        controlBlock: { conversationId: '1', sequenceNumber: 0, response: newChallenge(), challenge: newChallenge() },
        desiredLanguages: ['de'],
        qualityOfTimestamp: {},
        contentReceiver: recipient.url,
        contentPackage: { encryptedData: [], contentContainers: [] },
        certificates: [certificate('originator', 'cipher', ag.cipher.cert.raw), certificate('addressee', 'cipher', kreis.cipher.cert.raw), sig],
      },
      { signaturePlaceholder: true },
    );
    const cb = built.doc.getElementsByTagNameNS(OSCI_NS, 'ControlBlock')[0];
    if (!cb) throw new Error('no ControlBlock');
    cb.removeAttribute('ConversationId');
    cb.removeAttribute('SequenceNumber');
    const response = cb.getElementsByTagNameNS(OSCI_NS, 'Response')[0];
    if (response) cb.removeChild(response);
    await signXml(built.doc, built.signatureParent as never, { key: ag.signature.key, references: built.signedIds.map((id) => ({ id })), keyInfo: { retrievalMethod: { uri: `#${sig.id}` } } });
    const wire = await writeMultipartBuffer([{ headers: soapPartHeaders(), body: Buffer.from(built.xml()) }], { includeTopHeaders: true });
    const answer = await postOsci(`${server.url}/osci`, { contentType: wire.headers['Content-Type'] as string, headers: wire.headers, length: wire.body.length, stream: Readable.from([wire.body]) });
    const decoded = await decodeMessage(answer.body, { contentType: answer.contentType, transportKeys: [ag.cipher], tmpDir: tmp, signature: 'optional', trustSigner: async () => server.identity.signature.cert });
    await decoded.dispose();
    const m = decoded.message;
    const code = m.type === 'fault' ? m.oscicode : 'feedback' in m ? m.feedback[0]?.code : undefined;
    expect(code).to.equal('9802');
    expect(recipient.calls).to.equal(before);
  });

  it('a recipient that never answers runs into the deadline: 9809', async () => {
    answer = async () => ({ hang: true });
    const cipher = server.identity.ciphers[0];
    if (!cipher) throw new Error('server without cipher key');
    const to = await resolvePassiveRecipient(server.store, [certificate('addressee', 'cipher', kreis.cipher.cert.raw)], recipient.url, new Date());
    const sealed = await sealFor(kreis, 'wartet');
    const fb = await feedbackOf(
      sendAcceptDelivery(
        {
          type: 'acceptDelivery',
          desiredLanguages: ['de'],
          processCardBundle: { messageId: Buffer.from('timeout-test').toString('base64'), processCard: { recentModification: new Date().toISOString(), creation: { kind: 'plain', time: new Date().toISOString() }, forwarding: { kind: 'plain', time: new Date().toISOString() } }, inspectionReport: [] },
          contentPackage: sealed.contentPackage,
          certificates: [certificate('intermediary', 'cipher', cipher.cert.raw), ...sealed.certificates],
        },
        sealed.attachments,
        to,
        { identity: server.identity, store: server.store, tmpDir: tmp, limits: {}, timeoutMs: 500 },
      ),
    );
    await sealed.dispose();
    expect(fb).to.equal('9809');
  });
});
