/**
 * Foreign SOAP header blocks (XTA/OSCI-2 MessageMetaData, as the reference sample SendMessageWithMessageMetaData
 * sends it) through the running intermediary: a signed block of a storeDelivery reaches the addressee in
 * responseToFetchDelivery, one of a forwardDelivery reaches the passive recipient in acceptDelivery, each time
 * unchanged and covered by the intermediary's own signature; a block the ClientSignature does not cover is not relayed.
 */
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalize } from '../../crypto/c14n.ts';
import { signXml } from '../../crypto/dsig.ts';
import { parseXml, serializeXml, type Element } from '../../crypto/xml.ts';
import { clientNext } from '../../protocol/dialog.ts';
import { decodeMessage, sealContent, withSignerCertificate } from '../../protocol/envelope/index.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import { soapPartHeaders, writeMultipartBuffer } from '../../protocol/mime.ts';
import type { AcceptDelivery, OsciMessage, OsciMessageOf } from '../../protocol/model.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { clientFor, devConfig, testIdentity, testLogger, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { startPassiveRecipient, type PassiveRecipientDouble } from '../helpers/passive-recipient.ts';
import { requireTool } from '../helpers/env.ts';
import { validateXsd } from '../helpers/xsd.ts';

const META_NS = 'http://www.osci.eu/ws/2014/10/transport';
const meta = (msgId: string) =>
  serializeXml(
    parseXml(
      `<ns2:MessageMetaData xmlns:ns2="${META_NS}" Id="MetaData"><ns2:DeliveryAttributes><ns2:Origin>2026-11-26T22:11:00Z</ns2:Origin>` +
        `</ns2:DeliveryAttributes><ns2:Originators><ns2:Author><ns2:Identifier type="xoev" category="Gericht">ag-lemgo</ns2:Identifier>` +
        `</ns2:Author></ns2:Originators><ns2:MsgIdentification><wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
        `urn:de:xta:messageid:${msgId}</wsa:MessageID></ns2:MsgIdentification></ns2:MessageMetaData>`,
    ).documentElement as Element,
  );
const exc = (e: Element) => canonicalize(e, { exclusive: true, withComments: false });

describe('foreign SOAP header blocks relayed by the intermediary (MessageMetaData)', function () {
  this.timeout(120_000);
  let server: RunningServer;
  let tmp: string;
  let ag: TestIdentity;
  let stadt: TestIdentity;
  let kreis: TestIdentity;
  let recipient: PassiveRecipientDouble;
  let received: { message: AcceptDelivery; signedIds: string[] } | undefined;

  const client = (who: TestIdentity, plaintext = false) => clientFor(server, who, tmp, { plaintext });

  before(async () => {
    const pki = await testPki();
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-extra-headers-'));
    server = await startServer(devConfig(pki.dir, join(tmp, 'data')), { log: testLogger() });
    [ag, stadt, kreis] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('kreis-lippe')]);
    recipient = await startPassiveRecipient({
      identity: kreis,
      intermediarySignature: server.identity.signature.cert,
      tmpDir: tmp,
      answer: async ({ message, decoded }) => {
        received = { message: message as AcceptDelivery, signedIds: decoded.signature?.signedIds ?? [] };
        return { feedback: '0800' };
      },
    });
    await server.store.upsertParticipant({ id: 'kreis-lippe', endpointUrl: recipient.url });
  });
  after(async () => {
    await recipient?.close();
    await server?.stop();
  });

  async function order(reader: TestIdentity, text: string) {
    const sealed = await sealContent({ author: ag.signature, readers: [reader.cipher.cert], contents: [{ base64Content: Buffer.from(text) }], tmpDir: tmp });
    const certificates = [
      certificate('originator', 'cipher', ag.cipher.cert.raw),
      certificate('originator', 'signature', ag.signature.cert.raw),
      certificate('addressee', 'cipher', reader.cipher.cert.raw),
      ...sealed.certificates.filter((c) => !(c.role === 'originator' && c.usage === 'signature')),
    ];
    const seen = new Set<string>();
    return { contentPackage: sealed.contentPackage, certificates: certificates.filter((c) => (seen.has(c.id) ? false : (seen.add(c.id), true))), dispose: () => sealed.dispose() };
  }

  async function storeDelivery(extraHeaders: string[], text: string): Promise<string> {
    const c = client(ag);
    const messageId = await c.getMessageId();
    const o = await order(stadt, text);
    const msg: OsciMessage = {
      type: 'storeDelivery',
      controlBlock: clientNext(undefined, 'storeDelivery'),
      desiredLanguages: ['de'],
      certificates: o.certificates,
      qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
      messageId,
      contentPackage: o.contentPackage,
      extraHeaders,
    };
    const d = await c.exchange(msg);
    try {
      expect(d.message.type).to.equal('responseToStoreDelivery');
      expect((d.message as OsciMessageOf<'responseToStoreDelivery'>).feedback[0]?.code).to.equal('0800');
    } finally {
      await d.dispose();
      await o.dispose();
    }
    return messageId;
  }

  async function fetch(messageId: string) {
    const dialog = await client(stadt).openDialog();
    const got = await dialog.fetchDelivery({ by: 'messageId', messageId });
    expect(got, 'the delivery is waiting').to.not.equal(undefined);
    const r = { response: got!.response, signedIds: got!.decoded.signature?.signedIds ?? [], blocks: got!.decoded.soap.extraHeaders.map(exc) };
    await got!.decoded.dispose();
    await dialog.close();
    return r;
  }

  it('storeDelivery with a signed MessageMetaData block → the addressee’s responseToFetchDelivery carries it, signed by the intermediary', async () => {
    const block = meta('store-1');
    const messageId = await storeDelivery([block], 'mit Metadaten');
    const { response, signedIds, blocks } = await fetch(messageId);
    expect(response.extraHeaders).to.deep.equal([block]);
    // C14N-equal to what the sender signed, and one of the SupplierSignature's references (decoded.soap holds verified elements only).
    expect(blocks).to.deep.equal([exc(parseXml(block).documentElement as Element)]);
    expect(signedIds).to.include('MetaData');
  });

  it('a storeDelivery without such a block yields a responseToFetchDelivery without one', async () => {
    const messageId = await storeDelivery([], 'ohne Metadaten');
    const { response, signedIds } = await fetch(messageId);
    expect(response).to.not.have.property('extraHeaders');
    expect(signedIds).to.not.include('MetaData');
  });

  it('a foreign block the ClientSignature does not cover is not relayed (verification keeps signed elements only)', async () => {
    const c = client(ag, true);
    const messageId = await c.getMessageId();
    const o = await order(stadt, 'Block nicht signiert');
    const { message, certId } = withSignerCertificate(
      {
        type: 'storeDelivery',
        controlBlock: clientNext(undefined, 'storeDelivery'),
        desiredLanguages: ['de'],
        certificates: o.certificates,
        qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
        messageId,
        contentPackage: o.contentPackage,
        extraHeaders: [meta('unsigned')],
      },
      ag.signature.cert,
    );
    const built = buildSoap(message, { signaturePlaceholder: true });
    expect(built.signedIds).to.include('MetaData');
    await signXml(built.doc, built.signatureParent as Element, {
      key: ag.signature.key,
      references: built.signedIds.filter((id) => id !== 'MetaData').map((id) => ({ id })),
      keyInfo: { retrievalMethod: { uri: `#${certId}` } },
    });
    const mp = await writeMultipartBuffer([{ headers: soapPartHeaders(), body: Buffer.from(built.xml()) }], { includeTopHeaders: false });
    const res = await globalThis.fetch(`${server.url}/osci`, { method: 'POST', headers: mp.headers, body: mp.body });
    const answer = await decodeMessage(Buffer.from(await res.arrayBuffer()), {
      contentType: res.headers.get('content-type') ?? undefined,
      transportKeys: [ag.cipher],
      tmpDir: tmp,
      signature: 'required',
      trustSigner: async () => server.identity.signature.cert,
    });
    try {
      expect(answer.message.type).to.equal('responseToStoreDelivery');
      expect((answer.message as OsciMessageOf<'responseToStoreDelivery'>).feedback[0]?.code).to.equal('0800');
    } finally {
      await answer.dispose();
      await o.dispose();
    }
    const { response, signedIds } = await fetch(messageId);
    expect(response).to.not.have.property('extraHeaders');
    expect(signedIds).to.not.include('MetaData');
  });

  it('forwardDelivery with a signed MessageMetaData block → acceptDelivery carries it, signed by the intermediary, valid against soapAcceptDelivery.xsd', async function () {
    const block = meta('forward-1');
    const c = client(ag);
    const messageId = await c.getMessageId();
    const o = await order(kreis, 'weitergeleitet');
    received = undefined;
    const d = await c.exchange({
      type: 'forwardDelivery',
      controlBlock: clientNext(undefined, 'forwardDelivery'),
      desiredLanguages: ['de'],
      certificates: o.certificates,
      qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
      contentReceiver: recipient.url,
      messageId,
      contentPackage: o.contentPackage,
      extraHeaders: [block],
    });
    try {
      expect((d.message as OsciMessageOf<'responseToForwardDelivery'>).feedback[0]?.code).to.equal('0800');
    } finally {
      await d.dispose();
      await o.dispose();
    }
    const got = received as { message: AcceptDelivery; signedIds: string[] } | undefined;
    expect(got?.message.type).to.equal('acceptDelivery');
    expect(got?.message.extraHeaders).to.deep.equal([block]);
    expect(got?.signedIds).to.include('MetaData');
    const soap = recipient.soap[recipient.soap.length - 1] as string;
    expect(soap).to.include('Id="MetaData"');
    requireTool(this, 'xmllint');
    // libxml2 cannot hold the dev PKI's 128-bit serial numbers in xs:integer (as in passive-recipient.test.ts).
    const errors = validateXsd(soap, 'soapAcceptDelivery.xsd').errors.filter((e) => !/X509SerialNumber': '\d{25,}' is not a valid value/.test(e));
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });
});
