/**
 * protocol/soap-parse on the requests the Governikus Java library produced (osci-reference/messages):
 * types and values, ControlBlocks against capture-log.txt, signature coverage of everything the model is
 * read from, C14N-identical rebuild, and malformed variants of a real message → typed errors.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalize } from '../../crypto/c14n.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { indexIds, parseXml } from '../../crypto/xml.ts';
import type { Element } from '../../crypto/xml.ts';
import { certificateId } from '../../protocol/messages/certificates.ts';
import { OsciError } from '../../protocol/errors.ts';
import type { ControlBlock, OsciMessage, OsciMessageOf } from '../../protocol/model.ts';
import { DS_NS } from '../../protocol/namespaces.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { requireShared, shared } from '../helpers/env.ts';
import { firstMimePart } from '../helpers/xsd.ts';
import { CAPTURED_TYPES } from '../helpers/reference.ts';

const MESSAGES = shared('osci-reference', 'messages');
const soapPart = (name: string) => firstMimePart(readFileSync(`${MESSAGES}/${name}.mime`));
const cer = (name: string) => readFileSync(shared('osci-reference', 'certs', `${name}.cer`));

const PLAIN_TYPES: Record<string, OsciMessage['type']> = CAPTURED_TYPES;

function as<T extends OsciMessage['type']>(m: OsciMessage, type: T): OsciMessageOf<T> {
  expect(m.type).to.equal(type);
  return m as OsciMessageOf<T>;
}

/** ControlBlock per request from capture-log.txt ("null" / SequenceNumber=-1 = absent). */
function captureLog(): Map<string, ControlBlock> {
  const out = new Map<string, ControlBlock>();
  for (const line of readFileSync(`${MESSAGES}/capture-log.txt`, 'utf8').split('\n')) {
    const m = /^(\w+): captured .*ConversationId=(\S+) SequenceNumber=(\S+) Challenge=(\S+) Response=(\S+)/.exec(line);
    if (!m) continue;
    const cb: ControlBlock = {};
    if (m[2] !== 'null') cb.conversationId = m[2] as string;
    if (m[3] !== '-1') cb.sequenceNumber = Number(m[3]);
    if (m[5] !== 'null') cb.response = m[5] as string;
    if (m[4] !== 'null') cb.challenge = m[4] as string;
    out.set(m[1] as string, cb);
  }
  return out;
}

function signatureReferences(sig: Element): { uri: string; digest: string }[] {
  const refs = sig.getElementsByTagNameNS(DS_NS, 'Reference');
  const out: { uri: string; digest: string }[] = [];
  for (let i = 0; i < refs.length; i++) {
    const r = refs.item(i) as Element;
    const dv = r.getElementsByTagNameNS(DS_NS, 'DigestValue').item(0);
    out.push({ uri: r.getAttribute('URI') ?? '', digest: (dv?.textContent ?? '').trim() });
  }
  return out;
}

function expectTyped(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).to.not.equal(undefined);
  expect(err instanceof OsciError || err instanceof CryptoError, `typed error, got ${String(err)}`).to.equal(true);
  expect((err as OsciError).code, String(err)).to.equal(code);
}

describe('interop: parsing the reference library\'s captured requests', () => {
  before(function () {
    requireShared(this);
  });

  it('every .plain SOAP part parses to its message type with the ControlBlock of capture-log.txt', () => {
    const log = captureLog();
    expect([...log.keys()]).to.have.members(Object.keys(PLAIN_TYPES));
    for (const [name, type] of Object.entries(PLAIN_TYPES)) {
      const p = parseSoap(soapPart(`${name}.plain`));
      expect(p.type, name).to.equal(type);
      expect((p.message as { controlBlock: ControlBlock }).controlBlock, name).to.deep.equal(log.get(name));
      expect(p.signatureElement?.localName, name).to.equal('Signature');
      expect((p.message as { desiredLanguages: string[] }).desiredLanguages).to.deep.equal(['en']);
    }
  });

  it('every .wire SOAP part is a soapMessageEncrypted with cid:osci_enc (06 is sent unencrypted)', () => {
    for (const name of Object.keys(PLAIN_TYPES)) {
      const p = parseSoap(soapPart(`${name}.wire`));
      if (name.startsWith('06')) {
        expect(p.type).to.equal('initDialog');
        continue;
      }
      const m = as(p.message, 'soapMessageEncrypted');
      expect(m.encryptedData).to.match(/^<xenc:EncryptedData[^>]* MimeType="Multipart\/Related"/);
      expect(p.cidReferences).to.deep.equal(['cid:osci_enc']);
      expect(p.headerBlocks.size).to.equal(0);
    }
  });

  it('03 storeDelivery: MessageId, Subject, QualityOfTimestamp, certificates, content, attachment', () => {
    const p = parseSoap(soapPart('03_storeDelivery.plain'));
    const m = as(p.message, 'storeDelivery');
    expect(m.messageId).to.equal('b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx');
    expect(Buffer.from(m.messageId, 'base64').toString()).to.equal('osci-java-oracle-msgid-0001');
    expect(m.subject).to.equal('osci-java-oracle storeDelivery');
    expect(m.qualityOfTimestamp).to.deep.equal({ creation: 'plain', reception: 'plain' });
    expect(m.controlBlock).to.deep.equal({ sequenceNumber: 0, challenge: '1slMaMEEzhu4zA==' });

    const addressee = m.certificates.find((c) => c.role === 'addressee' && c.usage === 'cipher');
    expect(addressee?.der.equals(cer('bob_cipher_4096'))).to.equal(true);
    expect(addressee?.id).to.equal(certificateId('addressee', 'cipher', cer('bob_cipher_4096')));
    expect(m.certificates.map((c) => `${c.usage}:${c.role}`)).to.deep.equal(['cipher:originator', 'cipher:addressee', 'signature:originator']);
    const sigCert = m.certificates.find((c) => c.usage === 'signature');
    expect(sigCert?.der.equals(cer('alice_signature_4096'))).to.equal(true);
    expect(sigCert?.id).to.equal('originator_signature_67505e4c534d4f26830493fa37b5fddde01fd8e6a36733f4ba0bbc7038f3dcc0');

    expect(m.contentPackage.contentContainers).to.deep.equal([]);
    expect(m.contentPackage.encryptedData).to.have.length(1);
    expect(m.contentPackage.encryptedData[0]).to.match(/^<xenc:EncryptedData [^>]*Id="encdata_0" MimeType="text\/xml"/);
    expect(p.contentPackage?.parentNode).to.equal(p.body);
    expect(p.cidReferences).to.deep.equal(['cid:attachment1.txt']);
    expect(m.featureDescription?.features.map((f) => f.key)).to.deep.equal([
      'DisableBase64', 'OAEPEncryption', 'SHA3HashAlgo', 'GCMPaddingModus', 'PartialMessageTransmission', 'Support96Bit12ByteIV',
    ]);
  });

  it('04 fetchDelivery: explicit dialog 4711/1, selection by MessageId in the header block, empty Body', () => {
    const p = parseSoap(soapPart('04_fetchDelivery.plain'));
    const m = as(p.message, 'fetchDelivery');
    expect(m.controlBlock).to.deep.equal({ conversationId: '4711', sequenceNumber: 1, response: 'SW50ZXJtZWRCMQ==', challenge: '119gIvSL3RBDPg==' });
    expect(m.selection).to.deep.equal({ by: 'messageId', messageId: 'b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx' });
    expect(p.headerBlocks.get('fetchDelivery')?.getAttribute('Id')).to.equal('fetchdelivery');
    expect(m.certificates.map((c) => c.id)).to.deep.equal([certificateId('originator', 'signature', cer('bob_signature_4096'))]);
  });

  it('05 fetchProcessCard: explicit dialog 4712/1, selection by MessageId in the Body', () => {
    const m = as(parseSoap(soapPart('05_fetchProcessCard.plain')).message, 'fetchProcessCard');
    expect(m.controlBlock).to.deep.equal({ conversationId: '4712', sequenceNumber: 1, response: 'SW50ZXJtZWRBMQ==', challenge: '9LztiDjWHS4HyA==' });
    expect(m.selection).to.deep.equal({ by: 'messageId', messageIds: ['b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx'] });
    expect(m.quantityLimit).to.equal(undefined);
  });

  it('the ClientSignature references exactly the elements the model was read from (plus the attachments)', () => {
    for (const name of Object.keys(PLAIN_TYPES)) {
      const p = parseSoap(soapPart(`${name}.plain`));
      const uris = signatureReferences(p.signatureElement as Element).map((r) => r.uri);
      const read = p.readElements.map((e) => `#${e.getAttribute('Id')}`);
      expect([...uris].sort(), name).to.deep.equal([...read, ...p.cidReferences].sort());
      for (const e of p.readElements) expect(p.ids.get(e.getAttribute('Id') as string)).to.equal(e);
    }
  });

  it('rebuilt from the model, every signed element is C14N-identical: the captured DigestValues match', () => {
    for (const name of Object.keys(PLAIN_TYPES)) {
      const p = parseSoap(soapPart(`${name}.plain`));
      const rebuilt = buildSoap(p.message, { attachments: p.cidReferences });
      const ids = indexIds(parseXml(rebuilt.xml()));
      const refs = signatureReferences(p.signatureElement as Element);
      expect([...rebuilt.signedIds].sort(), name).to.deep.equal(refs.map((r) => (r.uri.startsWith('#') ? r.uri.slice(1) : r.uri)).sort());
      for (const r of refs.filter((x) => x.uri.startsWith('#'))) {
        const el = ids.get(r.uri.slice(1));
        expect(el, `${name} ${r.uri}`).to.not.equal(undefined);
        const digest = createHash('sha256').update(canonicalize(el as Element, { exclusive: false, withComments: false })).digest('base64');
        expect(digest, `${name} ${r.uri}`).to.equal(r.digest);
      }
    }
  });
});

describe('interop: malformed variants of captured requests → typed errors', () => {
  let fetch: string;
  let init: string;
  before(function () {
    requireShared(this);
    fetch = soapPart('04_fetchDelivery.plain').toString('utf8');
    init = soapPart('01_initDialog.plain').toString('utf8');
  });

  const cut = (xml: string, re: RegExp) => {
    const m = re.exec(xml);
    expect(m, String(re)).to.not.equal(null);
    return { xml: xml.replace(re, ''), part: (m as RegExpExecArray)[0] };
  };
  const controlBlock = /<osci:ControlBlock[\s\S]*?<\/osci:ControlBlock>/;
  const desiredLanguages = /<osci:DesiredLanguages[^>]*><\/osci:DesiredLanguages>/;

  it('the unmodified message parses (baseline)', () => {
    expect(parseSoap(fetch).type).to.equal('fetchDelivery');
  });

  it('missing ControlBlock', () => {
    expectTyped(() => parseSoap(cut(fetch, controlBlock).xml), 'ERR_SOAP_MALFORMED');
  });

  it('wrong header order: DesiredLanguages after the type block / ControlBlock after the signature', () => {
    const { xml, part } = cut(fetch, desiredLanguages);
    expectTyped(() => parseSoap(xml.replace('</osci:fetchDelivery>', `</osci:fetchDelivery>${part}`)), 'ERR_SOAP_MALFORMED');
    const cb = cut(fetch, controlBlock);
    expectTyped(() => parseSoap(cb.xml.replace('</osci:ClientSignature>', `</osci:ClientSignature>${cb.part}`)), 'ERR_SOAP_MALFORMED');
  });

  it('unknown body element: in an empty-Body type, and as the only type indicator', () => {
    const body = /(<soap:Body[^>]*>)<\/soap:Body>/;
    expect(body.test(fetch)).to.equal(true);
    expectTyped(() => parseSoap(fetch.replace(body, '$1<osci:deleteDelivery></osci:deleteDelivery></soap:Body>')), 'ERR_SOAP_MALFORMED');
    const unknown = init.replace('<osci:initDialog></osci:initDialog>', '<osci:deleteDelivery></osci:deleteDelivery>');
    expect(unknown).to.not.equal(init);
    expectTyped(() => parseSoap(unknown), 'ERR_MESSAGE_TYPE_UNKNOWN');
  });

  it('duplicate Id (signature wrapping)', () => {
    expectTyped(() => parseSoap(fetch.replace('Id="desiredlanguages"', 'Id="controlblock"')), 'ERR_XML_DUPLICATE_ID');
    const wrapped = fetch.replace('</soap:Header>', `<x:W xmlns:x="urn:x">${controlBlock.exec(fetch)![0]}</x:W></soap:Header>`);
    expectTyped(() => parseSoap(wrapped), 'ERR_XML_DUPLICATE_ID');
  });

  it('DOCTYPE / entity declarations', () => {
    const dtd = fetch.replace('<soap:Envelope', '<!DOCTYPE soap:Envelope [<!ENTITY x "4711">]><soap:Envelope');
    expectTyped(() => parseSoap(dtd), 'ERR_XML_DOCTYPE');
  });

  it('non-numeric ConversationId, negative SequenceNumber', () => {
    expectTyped(() => parseSoap(fetch.replace('ConversationId="4711"', 'ConversationId="47a1"')), 'ERR_CONTROLBLOCK');
    expectTyped(() => parseSoap(fetch.replace('SequenceNumber="1"', 'SequenceNumber="-1"')), 'ERR_CONTROLBLOCK');
  });

  it('ControlBlock rules of the type: fetchDelivery without Response, initDialog with ConversationId', () => {
    expectTyped(() => parseSoap(fetch.replace(/<osci:Response>[^<]*<\/osci:Response>/, '')), 'ERR_CONTROLBLOCK');
    expectTyped(() => parseSoap(init.replace('Id="controlblock"', 'ConversationId="1" Id="controlblock"')), 'ERR_CONTROLBLOCK');
  });

  it('not well-formed, wrong root, SOAP 1.2 envelope, second Body', () => {
    expectTyped(() => parseSoap(fetch.slice(0, fetch.length - 40)), 'ERR_XML_MALFORMED');
    expectTyped(() => parseSoap('<osci:ControlBlock xmlns:osci="http://www.osci.de/2002/04/osci"/>'), 'ERR_SOAP_MALFORMED');
    expectTyped(
      () => parseSoap(fetch.replaceAll('http://schemas.xmlsoap.org/soap/envelope/', 'http://www.w3.org/2003/05/soap-envelope')),
      'ERR_SOAP_MALFORMED',
    );
    expectTyped(() => parseSoap(fetch.replace('</soap:Envelope>', '<soap:Body Id="b2"></soap:Body></soap:Envelope>')), 'ERR_SOAP_MALFORMED');
  });

  it('ClientSignature without ds:Signature, certificate in a slot the type forbids', () => {
    expectTyped(() => parseSoap(fetch.replace(/<ds:Signature>[\s\S]*<\/ds:Signature>/, '')), 'ERR_SOAP_MALFORMED');
    const store = soapPart('03_storeDelivery.plain').toString('utf8');
    const forbidden = store.replace(
      '</osci:NonIntermediaryCertificates>',
      `<osci:SignatureCertificateAddressee Id="addressee_signature_x"><ds:X509Data><ds:X509Certificate>${cer('bob_signature_4096').toString('base64')}</ds:X509Certificate></ds:X509Data></osci:SignatureCertificateAddressee></osci:NonIntermediaryCertificates>`,
    );
    expectTyped(() => parseSoap(forbidden), 'ERR_SOAP_MALFORMED');
  });
});
