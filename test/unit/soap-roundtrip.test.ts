/**
 * Every OSCI 1.2 message type: build → parse gives back the same model, the envelope has the reference
 * library's shape (header order, Ids, actors), and the SOAP XML validates against its soap<Type>.xsd.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalize } from '../../crypto/c14n.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { childElements, indexIds, parseXml, serializeXml } from '../../crypto/xml.ts';
import type { Element } from '../../crypto/xml.ts';
import { certificate, certificateId } from '../../protocol/messages/certificates.ts';
import { OsciError } from '../../protocol/errors.ts';
import type { Inspection, MessageType, OsciMessage, ProcessCardBundle } from '../../protocol/model.ts';
import { ACTOR_NEXT, ACTOR_NONE, DS_NS, OSCI2017_NS, OSCI_NS, SOAP_NS } from '../../protocol/namespaces.ts';
import { buildSoap, soapEncryptedXml } from '../../protocol/soap-build.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';
import { firstMimePart, validateXsd } from '../helpers/xsd.ts';

const cer = (name: string) => readFileSync(shared('osci-reference', 'certs', `${name}.cer`));
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const norm = (xml: string) => serializeXml(parseXml(xml).documentElement as Element);

interface Fixtures {
  samples: OsciMessage[];
  attachments: Partial<Record<MessageType, string[]>>;
}

function inspection(der: Buffer, online: boolean): Inspection {
  const x = new X509Certificate(der);
  const i: Inspection = {
    timestamp: { kind: 'plain', time: '2025-11-26T22:11:05.123+01:00' },
    x509SubjectName: x.subject.split('\n').reverse().join(','),
    x509IssuerName: x.issuer.split('\n').reverse().join(','),
    x509SerialNumber: BigInt(`0x${x.serialNumber}`).toString(10),
    certType: 'advanced',
    mathResult: 'ok',
    offlineResult: 'valid',
  };
  if (online) i.onlineResult = { result: 'ok', ocsp: Buffer.from('ocsp response bytes').toString('base64'), crl: '2025-11-26T00:00:00Z' };
  return i;
}

function fixtures(): Fixtures {
  const alice = { sig: cer('alice_signature_4096'), enc: cer('alice_cipher_4096') };
  const bob = { sig: cer('bob_signature_4096'), enc: cer('bob_cipher_4096') };
  const carol = { sig: cer('carol_signature_4096'), enc: cer('carol_cipher_4096') };
  const dave = { enc: cer('dave_cipher_4096') };
  const im = { sig: cer('osci_manager_signature_4096'), enc: cer('osci_manager_cipher_4096') };

  // Content: the real content-level EncryptedData of capture 03 and a plain ContentContainer with an attachment.
  const capture03 = parseSoap(firstMimePart(readFileSync(shared('osci-reference', 'messages', '03_storeDelivery.plain.mime'))));
  const encrypted = (capture03.message as Extract<OsciMessage, { type: 'storeDelivery' }>).contentPackage.encryptedData[0] as string;
  const container = norm(
    `<osci:ContentContainer xmlns:osci="${OSCI_NS}" Id="contentcontainer1"><osci:Content Id="content1">` +
      `<osci:Base64Content Id="base64content1">${b64('Hello Bob')}</osci:Base64Content></osci:Content>` +
      `<osci:Content Id="content2" href="cid:attachment1.txt"></osci:Content></osci:ContentContainer>`,
  );
  const wire = parseSoap(firstMimePart(readFileSync(shared('osci-reference', 'messages', '03_storeDelivery.wire.mime'))));
  const transport = (wire.message as Extract<OsciMessage, { type: 'soapMessageEncrypted' }>).encryptedData;

  const msgId = b64('osci-java-oracle-msgid-0001');
  const t = (time: string) => ({ kind: 'plain' as const, time });
  const bundle = (card: ProcessCardBundle['processCard']): ProcessCardBundle => ({
    messageId: msgId,
    processCard: card,
    inspectionReport: [inspection(alice.sig, true), inspection(bob.enc, false)],
  });
  const delivered = bundle({ recentModification: '2025-11-26T22:12:00Z', creation: t('2025-11-26T22:11:00Z'), forwarding: t('2025-11-26T22:11:30Z'), subject: 'Klageschrift' });
  const received = bundle({
    recentModification: '2025-11-26T22:13:00Z',
    creation: t('2025-11-26T22:11:00Z'),
    forwarding: t('2025-11-26T22:11:30Z'),
    reception: t('2025-11-26T22:12:59.5Z'),
  });
  const stored = bundle({ recentModification: '2025-11-26T22:11:00Z', creation: t('2025-11-26T22:11:00Z'), subject: 'Klageschrift' });
  const feedback = [
    { lang: 'de', code: '0801', text: 'Auftrag ausgeführt, Dialog weiterhin geöffnet.' },
    { lang: 'en', code: '0801', text: 'Request executed, dialog still open.' },
  ];
  const langs = ['de', 'en'];
  const fd = {
    features: [
      { key: 'GCMPaddingModus', version: '1.7.0' },
      { key: 'Support96Bit12ByteIV', version: '1.9.0' },
    ],
    maxChunkSize: 1048576,
  };
  const content = { encryptedData: [encrypted], contentContainers: [container] };
  const explicit = { conversationId: '4711', sequenceNumber: 1, response: 'SW50ZXJtZWRCMQ==', challenge: '119gIvSL3RBDPg==' };
  const implicit = { sequenceNumber: 0, challenge: '1slMaMEEzhu4zA==' };
  const origin = [certificate('originator', 'cipher', alice.enc), certificate('originator', 'signature', alice.sig)];
  const imSig = [certificate('intermediary', 'signature', im.sig)];

  const samples: OsciMessage[] = [
    { type: 'initDialog', controlBlock: { challenge: '24uYqIZFEIPpWA==' }, desiredLanguages: langs, certificates: origin, featureDescription: fd },
    { type: 'exitDialog', controlBlock: { ...explicit, sequenceNumber: 2 }, desiredLanguages: ['en'], certificates: [origin[1]!] },
    { type: 'getMessageId', controlBlock: implicit, desiredLanguages: langs, certificates: origin },
    {
      type: 'storeDelivery',
      controlBlock: implicit,
      desiredLanguages: langs,
      qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
      messageId: msgId,
      subject: 'osci-java-oracle storeDelivery <&> "äöü"',
      contentPackage: content,
      certificates: [
        certificate('originator', 'cipher', alice.enc),
        certificate('otherAuthor', 'cipher', carol.enc),
        certificate('addressee', 'cipher', bob.enc),
        certificate('otherReader', 'cipher', dave.enc, 1),
        certificate('otherReader', 'cipher', carol.enc, 2),
        certificate('originator', 'signature', alice.sig),
        certificate('otherAuthor', 'signature', carol.sig),
      ],
      featureDescription: fd,
    },
    {
      type: 'fetchDelivery',
      controlBlock: explicit,
      desiredLanguages: ['en'],
      selection: { by: 'receptionOfDelivery', dateTime: '2025-11-26T00:00:00+01:00' },
      certificates: [certificate('originator', 'signature', bob.sig)],
    },
    {
      type: 'fetchProcessCard',
      controlBlock: explicit,
      desiredLanguages: ['en'],
      selection: { by: 'recentModification', dateTime: '2025-11-01T00:00:00Z', noReception: true, role: 'Originator' },
      quantityLimit: 5,
      certificates: [origin[1]!],
    },
    {
      type: 'forwardDelivery',
      controlBlock: implicit,
      desiredLanguages: langs,
      qualityOfTimestamp: { creation: 'cryptographic', reception: 'plain' },
      contentReceiver: 'https://bob.example.org/osci/passive',
      messageId: msgId,
      contentPackage: content,
      certificates: [...origin.slice(0, 1), certificate('addressee', 'cipher', bob.enc), origin[1]!, certificate('addressee', 'signature', bob.sig)],
    },
    {
      type: 'mediateDelivery',
      controlBlock: explicit,
      desiredLanguages: langs,
      qualityOfTimestamp: { reception: 'plain' },
      contentReceiver: 'https://bob.example.org/osci/passive',
      messageId: msgId,
      subject: 'Anfrage',
      contentPackage: { encryptedData: [encrypted], contentContainers: [] },
      certificates: origin,
    },
    {
      type: 'acceptDelivery',
      controlBlock: { challenge: 'SW50ZXJtZWRDMQ==' },
      desiredLanguages: langs,
      processCardBundle: delivered,
      contentPackage: content,
      certificates: [certificate('intermediary', 'cipher', im.enc), imSig[0]!, origin[0]!, certificate('addressee', 'cipher', bob.enc), origin[1]!],
    },
    {
      type: 'processDelivery',
      controlBlock: { challenge: 'SW50ZXJtZWRDMg==' },
      desiredLanguages: langs,
      messageIdResponse: b64('response-id-0002'),
      processCardBundle: delivered,
      contentPackage: { encryptedData: [], contentContainers: [container] },
      certificates: imSig,
    },
    { type: 'responseToInitDialog', controlBlock: { conversationId: '4711', response: '7gBCKVMVe/BIMQ==', challenge: 'SW50ZXJtZWRCMQ==' }, feedback, certificates: imSig },
    {
      type: 'responseToExitDialog',
      controlBlock: { conversationId: '4711', sequenceNumber: 2, response: 'UYgVRSttgJyFXQ==' },
      feedback: [{ lang: 'de', code: '0800', text: 'Auftrag ausgeführt, Dialog beendet.' }],
      certificates: imSig,
    },
    {
      type: 'responseToGetMessageId',
      controlBlock: { conversationId: '4713', sequenceNumber: 0, response: 'zbW18tk/fjTaTg==', challenge: 'SW50ZXJtZWRBMA==' },
      feedback,
      messageId: msgId,
      certificates: [],
      featureDescription: fd,
    },
    {
      type: 'responseToStoreDelivery',
      controlBlock: { conversationId: '4714', sequenceNumber: 0, response: '1slMaMEEzhu4zA==' },
      feedback: [{ code: '0800', text: 'Auftrag ausgeführt, Dialog beendet.' }],
      processCardBundle: stored,
      certificates: imSig,
    },
    {
      type: 'responseToFetchDelivery',
      controlBlock: { ...explicit, response: '119gIvSL3RBDPg==', challenge: 'SW50ZXJtZWRCMg==' },
      feedback,
      selection: { by: 'messageId', messageId: msgId },
      processCardBundle: delivered,
      contentPackage: content,
      certificates: [imSig[0]!, origin[0]!, certificate('addressee', 'cipher', bob.enc), origin[1]!],
    },
    {
      type: 'responseToFetchProcessCard',
      controlBlock: { ...explicit, conversationId: '4712', response: '9LztiDjWHS4HyA==', challenge: 'SW50ZXJtZWRBMg==' },
      feedback,
      selection: { by: 'messageId', messageIds: [msgId] },
      processCardBundles: [stored, received],
      certificates: imSig,
    },
    {
      type: 'responseToForwardDelivery',
      controlBlock: { response: 'SW50ZXJtZWRDMQ==' },
      feedback,
      processCardBundle: received,
      certificates: imSig,
    },
    {
      type: 'responseToAcceptDelivery',
      controlBlock: { response: 'SW50ZXJtZWRDMQ==' },
      feedback: [{ lang: 'de', code: '0800', text: 'Auftrag ausgeführt, Dialog beendet.' }],
      certificates: [certificate('addressee', 'signature', bob.sig)],
    },
    {
      type: 'responseToMediateDelivery',
      controlBlock: { ...explicit, challenge: 'SW50ZXJtZWRCMw==' },
      feedback,
      requestProcessCardBundle: received,
      replyProcessCardBundle: delivered,
      contentPackage: content,
      certificates: [imSig[0]!, certificate('addressee', 'signature', bob.sig)],
    },
    {
      type: 'responseToProcessDelivery',
      controlBlock: { response: 'SW50ZXJtZWRDMg==' },
      qualityOfTimestamp: { creation: 'plain', reception: 'cryptographic' },
      feedback,
      messageId: b64('reply-msgid'),
      subject: 'Antwort',
      contentPackage: { encryptedData: [encrypted], contentContainers: [] },
      certificates: [certificate('addressee', 'signature', bob.sig)],
    },
    { type: 'fault', faultCode: 'Client', faultString: 'ConversationId or SequenceNumber or response value are not correct', oscicode: '9400' },
    { type: 'soapMessageEncrypted', encryptedData: transport },
  ];
  return { samples, attachments: { storeDelivery: ['attachment1.txt'], responseToFetchDelivery: ['cid:attachment1.txt'] } };
}

const ALL_TYPES: MessageType[] = [
  'initDialog', 'exitDialog', 'getMessageId', 'storeDelivery', 'fetchDelivery', 'fetchProcessCard', 'forwardDelivery',
  'acceptDelivery', 'mediateDelivery', 'processDelivery', 'responseToInitDialog', 'responseToExitDialog',
  'responseToGetMessageId', 'responseToStoreDelivery', 'responseToFetchDelivery', 'responseToFetchProcessCard',
  'responseToForwardDelivery', 'responseToAcceptDelivery', 'responseToMediateDelivery', 'responseToProcessDelivery',
  'fault', 'soapMessageEncrypted',
];

function sample<T extends MessageType>(f: Fixtures, type: T): Extract<OsciMessage, { type: T }> {
  const m = f.samples.find((s) => s.type === type);
  if (!m) throw new Error(`no sample for ${type}`);
  return clone(m) as Extract<OsciMessage, { type: T }>;
}

/** Deep copy that keeps Buffers as Buffers (structuredClone turns them into plain Uint8Arrays). */
function clone<T>(v: T): T {
  if (Buffer.isBuffer(v)) return Buffer.from(v) as T;
  if (Array.isArray(v)) return v.map(clone) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)])) as T;
  return v;
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(e instanceof OsciError || e instanceof CryptoError, `typed error, got ${String(e)}`).to.equal(true);
    expect((e as OsciError).code).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

describe('protocol/soap-build + soap-parse: round trip of every message type', () => {
  let f: Fixtures;
  before(function () {
    requireShared(this);
    f = fixtures();
  });

  it('has one sample per message type', () => {
    expect(f.samples.map((s) => s.type)).to.have.members(ALL_TYPES);
  });

  for (const type of ALL_TYPES) {
    describe(type, () => {
      it('parses back to a deep-equal model', () => {
        const msg = sample(f, type);
        const built = buildSoap(msg, { attachments: f.attachments[type] ?? [] });
        const parsed = parseSoap(built.xml());
        expect(parsed.type).to.equal(type);
        expect(parsed.message).to.deep.equal(msg);
        // and once more from bytes, as a Buffer
        expect(parseSoap(Buffer.from(built.xml(), 'utf8')).message).to.deep.equal(msg);
      });

      it(`validates against its XSD`, function () {
        requireTool(this, 'xmllint');
        const built = buildSoap(sample(f, type));
        const r = validateXsd(built.xml(), built.xsd);
        expect(r.errors, r.errors.join('\n')).to.deep.equal([]);
        expect(r.valid).to.equal(true);
      });
    });
  }

  it('responseToFetchProcessCard echo with Quantity / RecentModification round-trips ([J] writes it, the XSD does not admit it)', function () {
    const msg = sample(f, 'responseToFetchProcessCard');
    msg.selection = { by: 'recentModification', dateTime: '2025-11-01T00:00:00Z', role: 'Addressee' };
    msg.quantityLimit = 3;
    const built = buildSoap(msg);
    expect(parseSoap(built.xml()).message).to.deep.equal(msg);
    requireTool(this, 'xmllint');
    expect(validateXsd(built.xml(), built.xsd).valid).to.equal(false);
  });
});

describe('protocol/soap-build: envelope shape of the reference library', () => {
  let f: Fixtures;
  before(function () {
    requireShared(this);
    f = fixtures();
  });

  it('soapEncryptedXml frames a serialized EncryptedData exactly as buildSoap writes soapMessageEncrypted', () => {
    const msg = sample(f, 'soapMessageEncrypted') as Extract<OsciMessage, { type: 'soapMessageEncrypted' }>;
    const ed = serializeXml(parseXml(msg.encryptedData).documentElement as Element);
    expect(soapEncryptedXml(ed)).to.equal(buildSoap({ type: 'soapMessageEncrypted', encryptedData: ed }).xml());
  });

  it('storeDelivery: header order, fixed Ids, actors, mustUnderstand, namespace redeclaration', () => {
    const built = buildSoap(sample(f, 'storeDelivery'));
    const env = built.doc.documentElement as Element;
    expect(built.xml().startsWith('<?xml version="1.0" encoding="UTF-8"?>\r\n\r\n<soap:Envelope ')).to.equal(true);
    expect(env.getAttribute('xsi:schemaLocation')).to.equal(
      'http://schemas.xmlsoap.org/soap/envelope/ soapStoreDelivery.xsd http://www.w3.org/2000/09/xmldsig# oscisig.xsd http://www.w3.org/2001/04/xmlenc# oscienc.xsd',
    );
    const [header, body] = childElements(env);
    const blocks = childElements(header!);
    expect(blocks.map((b) => `${b.localName}#${b.getAttribute('Id')}`)).to.deep.equal([
      'ControlBlock#controlblock',
      'DesiredLanguages#desiredlanguages',
      'QualityOfTimestamp#qualityoftimestamp_creation',
      'QualityOfTimestamp#qualityoftimestamp_reception',
      'storeDelivery#storedelivery',
      'NonIntermediaryCertificates#nonintermediarycertificates',
      'FeatureDescription#featuredescription',
    ]);
    for (const b of blocks) {
      const actor = b.getAttributeNS(SOAP_NS, 'actor');
      if (b.localName === 'FeatureDescription') expect(b.hasAttributeNS(SOAP_NS, 'actor')).to.equal(false);
      else if (b.localName === 'NonIntermediaryCertificates') expect(actor).to.equal(ACTOR_NONE);
      else expect(actor).to.equal(ACTOR_NEXT);
      if (b.localName !== 'FeatureDescription') expect(b.getAttributeNS(SOAP_NS, 'mustUnderstand')).to.equal('1');
      for (const p of ['ds', 'osci', 'soap', 'xenc', 'xsi']) expect(b.hasAttribute(`xmlns:${p}`), `${b.localName} xmlns:${p}`).to.equal(true);
    }
    expect(body!.getAttribute('Id')).to.equal('body');
    const certs = childElements(blocks[5]!).map((c) => `${c.localName}#${c.getAttribute('Id')?.replace(/_[0-9a-f]{64}$/, '')}`);
    expect(certs).to.deep.equal([
      'CipherCertificateOriginator#originator_cipher',
      'CipherCertificateOtherAuthor#author1_cipher',
      'CipherCertificateAddressee#addressee_cipher',
      'CipherCertificateOtherReader#reader1_cipher',
      'CipherCertificateOtherReader#reader2_cipher',
      'SignatureCertificateOriginator#originator_signature',
      'SignatureCertificateOtherAuthor#author1_signature',
    ]);
  });

  it('signedIds: every header block but the signature, the Body, then the cid: attachments; all resolvable', () => {
    const built = buildSoap(sample(f, 'storeDelivery'), { attachments: ['attachment1.txt'], signaturePlaceholder: true });
    expect(built.signedIds).to.deep.equal([
      'controlblock',
      'desiredlanguages',
      'qualityoftimestamp_creation',
      'qualityoftimestamp_reception',
      'storedelivery',
      'nonintermediarycertificates',
      'featuredescription',
      'body',
      'cid:attachment1.txt',
    ]);
    const ids = indexIds(built.doc);
    for (const id of built.signedIds.filter((i) => !i.startsWith('cid:'))) expect(ids.has(id), id).to.equal(true);
  });

  it('signature placeholder: ClientSignature / SupplierSignature right after the ControlBlock, not among signedIds', () => {
    const req = buildSoap(sample(f, 'fetchDelivery'), { signaturePlaceholder: true });
    const rsp = buildSoap(sample(f, 'responseToFetchDelivery'), { signaturePlaceholder: true });
    for (const [b, name, id] of [[req, 'ClientSignature', 'clientsignature'], [rsp, 'SupplierSignature', 'suppliersignature']] as const) {
      const header = childElements(b.doc.documentElement as Element)[0]!;
      const second = childElements(header)[1]!;
      expect(second.localName).to.equal(name);
      expect(second.getAttribute('Id')).to.equal(id);
      expect(b.signatureParent).to.equal(second);
      expect(b.signedIds).to.not.include(id);
    }
    expect(buildSoap(sample(f, 'fetchDelivery')).signatureParent).to.equal(undefined);
  });

  it('parse result keeps header block elements, readElements and cid references for the verifier', () => {
    const parsed = parseSoap(buildSoap(sample(f, 'storeDelivery')).xml());
    expect([...parsed.headerBlocks.keys()]).to.deep.equal([
      'ControlBlock',
      'DesiredLanguages',
      'QualityOfTimestamp:creation',
      'QualityOfTimestamp:reception',
      'storeDelivery',
      'NonIntermediaryCertificates',
      'FeatureDescription',
    ]);
    expect(parsed.readElements).to.have.length(8);
    expect(parsed.readElements.at(-1)).to.equal(parsed.body);
    expect(parsed.readElements.map((e) => e.getAttribute('Id'))).to.deep.equal([
      'controlblock', 'desiredlanguages', 'qualityoftimestamp_creation', 'qualityoftimestamp_reception',
      'storedelivery', 'nonintermediarycertificates', 'featuredescription', 'body',
    ]);
    expect(parsed.ids.get('storedelivery')).to.equal(parsed.headerBlocks.get('storeDelivery'));
    expect(parsed.contentPackage?.localName).to.equal('ContentPackage');
    expect(parsed.cidReferences).to.deep.equal(['cid:attachment1.txt']);
    expect(parsed.signatureElement).to.equal(undefined);
  });

  it('certificate Ids follow <role>_<usage>_<hex SHA-256 of DER>', () => {
    expect(certificateId('originator', 'signature', cer('alice_signature_4096'))).to.equal(
      'originator_signature_67505e4c534d4f26830493fa37b5fddde01fd8e6a36733f4ba0bbc7038f3dcc0',
    );
    expect(certificateId('addressee', 'cipher', cer('bob_cipher_4096'))).to.match(/^addressee_cipher_ac571123d355570f/);
    expect(certificateId('intermediary', 'signature', cer('osci_manager_signature_4096'))).to.match(/^intermed_signature_[0-9a-f]{64}$/);
  });

  it('Fault as [J] writes it: no Header, faultcode soap:Client, detail/osci:Code', () => {
    const xml = buildSoap(sample(f, 'fault')).xml();
    expect(xml).to.contain('<soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>');
    expect(xml).to.contain('<detail><osci:Code>9400</osci:Code></detail></soap:Fault></soap:Body></soap:Envelope>');
    expect(xml).to.not.contain('schemaLocation');
  });
});

describe('protocol/soap-build: refuses models the message type does not admit', () => {
  let f: Fixtures;
  before(function () {
    requireShared(this);
    f = fixtures();
  });

  it('ControlBlock fields prohibited / required by <Type>.xsd', () => {
    const init = sample(f, 'initDialog');
    init.controlBlock.conversationId = '1';
    expectCode(() => buildSoap(init), 'ERR_USAGE');
    const fetch = sample(f, 'fetchDelivery');
    delete fetch.controlBlock.response;
    expectCode(() => buildSoap(fetch), 'ERR_USAGE');
    const exit = sample(f, 'exitDialog');
    exit.controlBlock.conversationId = '47x1';
    expectCode(() => buildSoap(exit), 'ERR_USAGE');
  });

  it('certificates outside the type\'s slots, missing required ones', () => {
    const store = sample(f, 'storeDelivery');
    store.certificates.push(certificate('addressee', 'signature', cer('bob_signature_4096')));
    expectCode(() => buildSoap(store), 'ERR_USAGE');
    const noAddressee = sample(f, 'storeDelivery');
    noAddressee.certificates = noAddressee.certificates.filter((c) => c.role !== 'addressee');
    expectCode(() => buildSoap(noAddressee), 'ERR_USAGE');
    const reader = sample(f, 'forwardDelivery');
    reader.certificates.push(certificate('otherReader', 'signature', cer('dave_signature_4096')));
    expectCode(() => buildSoap(reader), 'ERR_USAGE');
  });

  it('cryptographic timestamps are not supported yet (ERR_ALG_UNSUPPORTED)', () => {
    const rsp = sample(f, 'responseToStoreDelivery');
    rsp.processCardBundle!.processCard.creation = { kind: 'cryptographic', algorithm: 'urn:x', value: 'AAAA' };
    expectCode(() => buildSoap(rsp), 'ERR_ALG_UNSUPPORTED');
  });

  it('ProcessCard timestamps the profile forbids, bad values, wrong fragments', () => {
    const rsp = sample(f, 'responseToStoreDelivery');
    rsp.processCardBundle!.processCard.reception = { kind: 'plain', time: '2025-11-26T22:11:00Z' };
    expectCode(() => buildSoap(rsp), 'ERR_USAGE');
    const bad = sample(f, 'storeDelivery');
    bad.messageId = 'not base64!';
    expectCode(() => buildSoap(bad), 'ERR_USAGE');
    const frag = sample(f, 'storeDelivery');
    frag.contentPackage.encryptedData = ['<foo/>'];
    expectCode(() => buildSoap(frag), 'ERR_USAGE');
    const dtd = sample(f, 'storeDelivery');
    dtd.contentPackage.contentContainers = ['<!DOCTYPE x [<!ENTITY a "b">]><x/>'];
    expectCode(() => buildSoap(dtd), 'ERR_XML_DOCTYPE');
  });
});

describe('protocol/soap-parse: malformed built messages give typed errors', () => {
  let f: Fixtures;
  before(function () {
    requireShared(this);
    f = fixtures();
  });

  const mutate = (xml: string, from: string | RegExp, to: string) => {
    const out = xml.replace(from, to);
    expect(out, `mutation ${String(from)} applied`).to.not.equal(xml);
    return out;
  };

  it('cryptographic Timestamp inside a process card → ERR_ALG_UNSUPPORTED', () => {
    const xml = buildSoap(sample(f, 'responseToStoreDelivery')).xml();
    const bad = mutate(xml, /<osci:Creation><osci:Plain>[^<]*<\/osci:Plain><\/osci:Creation>/, '<osci:Creation><osci:Cryptographic Algorithm="urn:x">AAAA</osci:Cryptographic></osci:Creation>');
    expectCode(() => parseSoap(bad), 'ERR_ALG_UNSUPPORTED');
  });

  it('wrong actor on NonIntermediaryCertificates, missing mustUnderstand, missing Body Id', () => {
    const xml = buildSoap(sample(f, 'getMessageId')).xml();
    expectCode(() => parseSoap(mutate(xml, `soap:actor="${ACTOR_NONE}"`, `soap:actor="${ACTOR_NEXT}"`)), 'ERR_SOAP_MALFORMED');
    expectCode(() => parseSoap(mutate(xml, /(<osci:DesiredLanguages[^>]*) soap:mustUnderstand="1"/, '$1')), 'ERR_SOAP_MALFORMED');
    expectCode(() => parseSoap(mutate(xml, / Id="body"/, '')), 'ERR_SOAP_MALFORMED');
  });

  it('a second osci block after the sequence, unknown mustUnderstand header, two type blocks', () => {
    const xml = buildSoap(sample(f, 'fetchDelivery')).xml();
    const cb = /<osci:ControlBlock[\s\S]*?<\/osci:ControlBlock>/.exec(xml)![0];
    expectCode(() => parseSoap(mutate(xml, '</soap:Header>', `${cb.replace('controlblock', 'cb2')}</soap:Header>`)), 'ERR_SOAP_MALFORMED');
    expectCode(
      () => parseSoap(mutate(xml, '</soap:Header>', `<x:Ext xmlns:x="urn:x" soap:mustUnderstand="1"/></soap:Header>`)),
      'ERR_SOAP_MALFORMED',
    );
    const lax = parseSoap(mutate(xml, '</soap:Header>', `<x:Ext xmlns:x="urn:x" soap:mustUnderstand="0"/></soap:Header>`));
    expect(lax.extraHeaders.map((e) => e.localName)).to.deep.equal(['Ext']);
    expectCode(() => parseSoap(mutate(xml, /<soap:Body([^>]*)\/>/, '<soap:Body$1><osci:getMessageId/></soap:Body>')), 'ERR_SOAP_MALFORMED');
  });

  it('comment inside a value, text where elements belong, bad enumerations and numbers', () => {
    const xml = buildSoap(sample(f, 'storeDelivery')).xml();
    expectCode(() => parseSoap(mutate(xml, '<osci:MessageId>', '<osci:MessageId><!--x-->')), 'ERR_SOAP_MALFORMED');
    expectCode(() => parseSoap(mutate(xml, '<osci:storeDelivery ', 'oops<osci:storeDelivery ')), 'ERR_SOAP_MALFORMED');
    expectCode(() => parseSoap(mutate(xml, 'Quality="plain" Service="creation"', 'Quality="fast" Service="creation"')), 'ERR_SOAP_MALFORMED');
    expectCode(() => parseSoap(mutate(xml, 'SequenceNumber="0"', 'SequenceNumber="-1"')), 'ERR_CONTROLBLOCK');
    expectCode(() => parseSoap(mutate(xml, 'Service="reception"', 'Service="creation"')), 'ERR_SOAP_MALFORMED');
  });

  it('Fault without osci namespace in faultcode and an encrypted envelope with a Header are refused', () => {
    const fault = buildSoap(sample(f, 'fault')).xml();
    expectCode(() => parseSoap(mutate(fault, 'soap:Client', 'x:Client')), 'ERR_SOAP_MALFORMED');
    const enc = buildSoap(sample(f, 'soapMessageEncrypted')).xml();
    expectCode(() => parseSoap(mutate(enc, '<soap:Body>', '<soap:Header/><soap:Body>')), 'ERR_SOAP_MALFORMED');
  });

  it('never throws an untyped error on truncated input', () => {
    const xml = buildSoap(sample(f, 'responseToMediateDelivery')).xml();
    for (let n = 0; n < xml.length; n += Math.ceil(xml.length / 97)) {
      try {
        parseSoap(xml.slice(0, n));
        expect.fail(`truncation at ${n} parsed`);
      } catch (e) {
        expect(e instanceof OsciError || e instanceof CryptoError, `typed error at ${n}: ${String(e)}`).to.equal(true);
      }
    }
  });
});

describe('protocol/soap-build + soap-parse: foreign header blocks (extraHeaders, e.g. XTA MessageMetaData)', () => {
  let f: Fixtures;
  before(function () {
    requireShared(this);
    f = fixtures();
  });

  const META_NS = 'http://www.osci.eu/ws/2014/10/transport';
  // Shaped like the reference sample's signed block (OSCI_MessageMetaData_V2.02.xsd), prefix ns2 as JAXB writes it.
  const meta = (id = 'MetaData', inner = '') =>
    norm(
      `<ns2:MessageMetaData xmlns:ns2="${META_NS}" Id="${id}"><ns2:DeliveryAttributes><ns2:Origin>2025-11-26T22:11:00Z</ns2:Origin>` +
        `</ns2:DeliveryAttributes><ns2:MsgIdentification><wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">` +
        `urn:de:xta:messageid:1</wsa:MessageID></ns2:MsgIdentification>${inner}</ns2:MessageMetaData>`,
    );
  const note = norm('<x:Note xmlns:x="urn:x" Id="note1" soap:mustUnderstand="0" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">n</x:Note>');
  const RELAYING = [
    'storeDelivery', 'forwardDelivery', 'mediateDelivery', 'acceptDelivery', 'processDelivery',
    'responseToFetchDelivery', 'responseToMediateDelivery', 'responseToProcessDelivery',
  ] as const;

  for (const type of RELAYING) {
    it(`${type}: written last in the Header, signed, parsed back equal; still valid against its XSD`, function () {
      const msg = sample(f, type);
      msg.extraHeaders = [meta(), note];
      const built = buildSoap(msg, { attachments: f.attachments[type] ?? [], signaturePlaceholder: true });
      const header = childElements(built.doc.documentElement as Element, SOAP_NS, 'Header')[0] as Element;
      const blocks = childElements(header);
      expect(blocks.slice(-2).map((b) => b.getAttribute('Id'))).to.deep.equal(['MetaData', 'note1']);
      // Referenced by the signature in document order, before the Body.
      const at = built.signedIds.indexOf('body');
      expect(built.signedIds.slice(at - 2, at)).to.deep.equal(['MetaData', 'note1']);
      const parsed = parseSoap(buildSoap(msg, { attachments: f.attachments[type] ?? [] }).xml());
      expect(parsed.message).to.deep.equal(msg);
      expect(parsed.extraHeaders.map((e) => e.localName)).to.deep.equal(['MessageMetaData', 'Note']);
      requireTool(this, 'xmllint');
      const r = validateXsd(buildSoap(msg).xml(), built.xsd);
      expect(r.errors, r.errors.join('\n')).to.deep.equal([]);
    });
  }

  it('the parsed string is namespace-complete: it parses alone, and exclusive C14N equals the block in the envelope', () => {
    // The ns2 prefix declared on the Envelope only, as a JAXB/SAAJ writer may do.
    const msg = sample(f, 'storeDelivery');
    msg.extraHeaders = [meta()];
    const xml = buildSoap(msg)
      .xml()
      .replace('<soap:Envelope ', `<soap:Envelope xmlns:ns2="${META_NS}" `)
      .replace(`<ns2:MessageMetaData xmlns:ns2="${META_NS}" `, '<ns2:MessageMetaData ');
    const parsed = parseSoap(xml);
    const got = (parsed.message as Extract<OsciMessage, { type: 'storeDelivery' }>).extraHeaders ?? [];
    expect(got).to.have.length(1);
    const alone = parseXml(got[0] as string).documentElement as Element;
    const exc = { exclusive: true, withComments: false };
    expect(canonicalize(alone, exc)).to.equal(canonicalize(parsed.extraHeaders[0] as Element, exc));
    expect(alone.namespaceURI).to.equal(META_NS);
  });

  it('protocol-namespace and Id-less foreign blocks are not relayed (the parser still lists them for the verifier)', () => {
    const xml = buildSoap(sample(f, 'storeDelivery')).xml();
    const withBlocks = xml.replace(
      '</soap:Header>',
      `<ds:Object xmlns:ds="${DS_NS}" Id="dsobj"/><y:NoId xmlns:y="urn:y"/><o7:Other xmlns:o7="${OSCI2017_NS}" Id="o7"/></soap:Header>`,
    );
    const parsed = parseSoap(withBlocks);
    expect(parsed.extraHeaders.map((e) => e.localName)).to.deep.equal(['Object', 'NoId', 'Other']);
    expect(parsed.message).to.not.have.property('extraHeaders');
  });

  it('refuses blocks it cannot write safely (ERR_USAGE), DOCTYPE keeps ERR_XML_DOCTYPE', () => {
    const bad = (extra: string[], code = 'ERR_USAGE') => {
      const msg = sample(f, 'storeDelivery');
      msg.extraHeaders = extra;
      expectCode(() => buildSoap(msg, { signaturePlaceholder: true }), code);
    };
    for (const id of ['body', 'controlblock', 'clientsignature', 'storedelivery', 'featuredescription', 'nonintermediarycertificates']) bad([meta(id)]);
    bad([meta('MetaData'), meta('MetaData')]); // two blocks, one Id
    bad([meta('MetaData', `<ns2:Inner Id="contentcontainer1"/>`)]); // clashes with an Id in the Body
    bad([meta('MetaData', `<ns2:Inner Id="MetaData"/>`)]); // duplicate inside the block
    const cert = sample(f, 'storeDelivery').certificates[0]!.id;
    bad([meta(cert)]);
    bad([`<osci:Extra xmlns:osci="${OSCI_NS}" Id="x"/>`]);
    bad([`<ds:Extra xmlns:ds="${DS_NS}" Id="x"/>`]);
    bad(['<Extra Id="x"/>']);
    bad(['<x:Extra xmlns:x="urn:x"/>']);
    bad([`<x:Extra xmlns:x="urn:x" xmlns:soap="${SOAP_NS}" soap:mustUnderstand="1" Id="x"/>`]);
    bad(['<x:Extra xmlns:x="urn:x" Id="x">'], 'ERR_XML_MALFORMED');
    bad(['<!DOCTYPE x [<!ENTITY a "b">]><x:E xmlns:x="urn:x" Id="x"/>'], 'ERR_XML_DOCTYPE');
  });
});
