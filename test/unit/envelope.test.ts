/**
 * protocol/envelope: every OSCI message type through encodeMessage → decodeMessage with signing and transport
 * encryption (osci-protocol.md §4–6), signer certificate roles, RSA-PSS, the unencrypted path, limits and temp
 * files, and sealContent → openContent (§5) with several readers.
 */
import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ALIASES } from '../../crypto/algorithms.ts';
import { decryptEncryptedData } from '../../crypto/xenc.ts';
import { parseXml } from '../../crypto/xml.ts';
import {
  decodeMessage,
  encodeMessage,
  openContent,
  responseCipherCertificate,
  sealContent,
  signerSlot,
  withSignerCertificate,
  type DecodeOptions,
  type EncodedAttachment,
  type SealedContent,
} from '../../protocol/envelope/index.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import { signXml } from '../../crypto/dsig.ts';
import { soapPartHeaders, writeMultipartBuffer } from '../../protocol/mime.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import type { Certificate, Inspection, MessageType, OsciMessage, ProcessCardBundle } from '../../protocol/model.ts';
import { OSCI_NS } from '../../protocol/namespaces.ts';
import { readAll, selfSignedIdentity, type Identity } from '../helpers/keys.ts';

const identity = (cn: string): Identity => selfSignedIdentity(cn, 'Amtsbote envelope test');
const bytes = readAll;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

async function rejects(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect((e as { code?: string }).code, (e as Error).message).to.equal(code);
    return e as Error;
  }
  expect.fail(`expected ${code}`);
}

/** Certificates in a fixed order: the builder writes template order whatever the model's order. */
function normal(m: OsciMessage): OsciMessage {
  if (!('certificates' in m)) return m;
  return { ...m, certificates: [...m.certificates].sort((a, b) => a.id.localeCompare(b.id)) } as OsciMessage;
}

describe('protocol/envelope: encode → decode', function () {
  let tmp: string;
  let client: { sig: Identity; cipher: Identity };
  let im: { sig: Identity; cipher: Identity };
  let bob: { sig: Identity; cipher: Identity };
  let sealed: SealedContent;
  const payload = Buffer.from('%PDF-1.7 Schriftsatz\n'.repeat(500));
  const xjustiz = Buffer.from('<nachricht.gds.uebermittlungSchriftgutobjekte.0005005/>');

  before(async function () {
    this.timeout(120_000);
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-envelope-unit-'));
    client = { sig: identity('Kanzlei Signatur'), cipher: identity('Kanzlei Chiffrierung') };
    im = { sig: identity('Intermediär Signatur'), cipher: identity('Intermediär Chiffrierung') };
    bob = { sig: identity('Stadt Signatur'), cipher: identity('Stadt Chiffrierung') };
    sealed = await sealContent({
      author: client.sig,
      readers: [bob.cipher.cert],
      contents: [{ base64Content: xjustiz }, { attachment: { contentId: 'schriftsatz.pdf', size: payload.length, open: () => Readable.from([payload]) } }],
      tmpDir: tmp,
    });
  });
  after(async () => {
    await sealed?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  interface Case {
    msg: OsciMessage;
    signer?: Identity;
    recipient: Identity;
    attachments?: EncodedAttachment[];
  }

  function inspection(c: X509Certificate): Inspection {
    return {
      timestamp: { kind: 'plain', time: '2026-01-15T10:00:00Z' },
      x509SubjectName: c.subject.replace(/\n/g, ','),
      x509IssuerName: c.issuer.replace(/\n/g, ','),
      x509SerialNumber: BigInt(`0x${c.serialNumber}`).toString(10),
      certType: 'advanced',
      mathResult: 'ok',
      offlineResult: 'valid',
    };
  }

  function cases(): Case[] {
    const msgId = b64('amtsbote-msgid-0001');
    const origin: Certificate[] = [certificate('originator', 'cipher', client.cipher.cert.raw)];
    const content = sealed.contentPackage;
    const withContent = [...origin, ...sealed.certificates];
    const explicit = { conversationId: '4711', sequenceNumber: 1, response: 'SW50ZXJtZWRCMQ==', challenge: 'MTIzNDU2Nzg5MA==' };
    const implicit = { sequenceNumber: 0, challenge: 'MTIzNDU2Nzg5MA==' };
    const feedback = [{ lang: 'de', code: '0801', text: 'Auftrag ausgeführt, Dialog weiterhin geöffnet.' }];
    const card = (c: ProcessCardBundle['processCard']): ProcessCardBundle => ({ messageId: msgId, processCard: c, inspectionReport: [inspection(client.sig.cert)] });
    const t = (time: string) => ({ kind: 'plain' as const, time });
    const delivered = card({ recentModification: '2026-01-15T10:02:00Z', creation: t('2026-01-15T10:00:00Z'), forwarding: t('2026-01-15T10:01:00Z'), subject: 'Klage' });
    const received = card({ recentModification: '2026-01-15T10:03:00Z', creation: t('2026-01-15T10:00:00Z'), forwarding: t('2026-01-15T10:01:00Z'), reception: t('2026-01-15T10:03:00Z') });
    const stored = card({ recentModification: '2026-01-15T10:00:00Z', creation: t('2026-01-15T10:00:00Z'), subject: 'Klage' });
    const langs = ['de', 'en'];
    const qot = { creation: 'plain' as const, reception: 'plain' as const };
    const req = (msg: OsciMessage, extra: Partial<Case> = {}): Case => ({ msg, signer: client.sig, recipient: im.cipher, ...extra });
    const res = (msg: OsciMessage, extra: Partial<Case> = {}): Case => ({ msg, signer: im.sig, recipient: client.cipher, ...extra });
    const att = sealed.attachments;
    return [
      req({ type: 'initDialog', controlBlock: { challenge: 'MTIzNDU2Nzg5MA==' }, desiredLanguages: langs, certificates: origin, featureDescription: { features: [{ key: 'GCMPaddingModus', version: '1.7.0' }] } }),
      req({ type: 'exitDialog', controlBlock: { ...explicit, sequenceNumber: 2 }, desiredLanguages: langs, certificates: [] }),
      req({ type: 'getMessageId', controlBlock: implicit, desiredLanguages: langs, certificates: origin }),
      req(
        { type: 'storeDelivery', controlBlock: implicit, desiredLanguages: langs, qualityOfTimestamp: qot, messageId: msgId, subject: 'Klage <&> "äöü"', contentPackage: content, certificates: withContent },
        { attachments: att },
      ),
      req({ type: 'fetchDelivery', controlBlock: explicit, desiredLanguages: langs, selection: { by: 'messageId', messageId: msgId }, certificates: [] }),
      req({
        type: 'fetchProcessCard',
        controlBlock: explicit,
        desiredLanguages: langs,
        selection: { by: 'recentModification', dateTime: '2026-01-01T00:00:00Z', noReception: true, role: 'Originator' },
        quantityLimit: 5,
        certificates: [],
      }),
      req(
        { type: 'forwardDelivery', controlBlock: implicit, desiredLanguages: langs, qualityOfTimestamp: qot, contentReceiver: 'https://stadt.example.org/osci', messageId: msgId, contentPackage: content, certificates: withContent },
        { attachments: att },
      ),
      req(
        { type: 'mediateDelivery', controlBlock: explicit, desiredLanguages: langs, qualityOfTimestamp: { reception: 'plain' }, contentReceiver: 'https://stadt.example.org/osci', messageId: msgId, subject: 'Anfrage', contentPackage: content, certificates: withContent },
        { attachments: att },
      ),
      {
        msg: { type: 'acceptDelivery', controlBlock: { challenge: 'MTIzNDU2Nzg5MA==' }, desiredLanguages: langs, processCardBundle: delivered, contentPackage: content, certificates: [certificate('intermediary', 'cipher', im.cipher.cert.raw), ...withContent] },
        signer: im.sig,
        recipient: bob.cipher,
        attachments: att,
      },
      {
        msg: { type: 'processDelivery', controlBlock: { challenge: 'MTIzNDU2Nzg5MA==' }, desiredLanguages: langs, messageIdResponse: b64('reply-1'), processCardBundle: delivered, contentPackage: content, certificates: withContent },
        signer: im.sig,
        recipient: bob.cipher,
        attachments: att,
      },
      res({ type: 'responseToInitDialog', controlBlock: { conversationId: '4711', response: 'MTIzNDU2Nzg5MA==', challenge: 'SW50ZXJtZWRCMQ==' }, feedback, certificates: [] }),
      res({ type: 'responseToExitDialog', controlBlock: { conversationId: '4711', sequenceNumber: 2, response: 'MTIzNDU2Nzg5MA==' }, feedback, certificates: [] }),
      res({ type: 'responseToGetMessageId', controlBlock: { conversationId: '4713', sequenceNumber: 0, response: 'MTIzNDU2Nzg5MA==' }, feedback, messageId: msgId, certificates: [] }),
      res({ type: 'responseToStoreDelivery', controlBlock: { conversationId: '4714', sequenceNumber: 0, response: 'MTIzNDU2Nzg5MA==' }, feedback, processCardBundle: stored, certificates: [] }),
      res(
        { type: 'responseToFetchDelivery', controlBlock: explicit, feedback, selection: { by: 'messageId', messageId: msgId }, processCardBundle: delivered, contentPackage: content, certificates: withContent },
        { recipient: bob.cipher, attachments: att },
      ),
      res({ type: 'responseToFetchProcessCard', controlBlock: explicit, feedback, selection: { by: 'messageId', messageIds: [msgId] }, processCardBundles: [stored, received], certificates: [] }),
      res({ type: 'responseToForwardDelivery', controlBlock: { response: 'MTIzNDU2Nzg5MA==' }, feedback, processCardBundle: received, certificates: [] }),
      { msg: { type: 'responseToAcceptDelivery', controlBlock: { response: 'MTIzNDU2Nzg5MA==' }, feedback, certificates: [] }, signer: bob.sig, recipient: im.cipher },
      res(
        { type: 'responseToMediateDelivery', controlBlock: explicit, feedback, requestProcessCardBundle: received, replyProcessCardBundle: delivered, contentPackage: content, certificates: withContent },
        { attachments: att },
      ),
      {
        // The reply's author signs as its originator (signerSlot); the client's certificates are not part of it.
        msg: { type: 'responseToProcessDelivery', controlBlock: { response: 'MTIzNDU2Nzg5MA==' }, qualityOfTimestamp: qot, feedback, messageId: b64('reply-1'), subject: 'Antwort', contentPackage: content, certificates: [certificate('addressee', 'cipher', client.cipher.cert.raw)] },
        signer: bob.sig,
        recipient: im.cipher,
        attachments: att,
      },
      { msg: { type: 'fault', faultCode: 'Client', faultString: 'ConversationId or SequenceNumber or response value are not correct', oscicode: '9400' }, recipient: client.cipher },
    ];
  }

  const ALL: MessageType[] = [
    'initDialog', 'exitDialog', 'getMessageId', 'storeDelivery', 'fetchDelivery', 'fetchProcessCard', 'forwardDelivery',
    'acceptDelivery', 'mediateDelivery', 'processDelivery', 'responseToInitDialog', 'responseToExitDialog',
    'responseToGetMessageId', 'responseToStoreDelivery', 'responseToFetchDelivery', 'responseToFetchProcessCard',
    'responseToForwardDelivery', 'responseToAcceptDelivery', 'responseToMediateDelivery', 'responseToProcessDelivery', 'fault',
  ];

  it('has a case for every message type (the transport wrapper is encryptFor, not a message to encode)', () => {
    expect(cases().map((c) => c.msg.type)).to.have.members(ALL);
  });

  function decodeOpts(c: Case, extra: Partial<DecodeOptions> = {}): DecodeOptions {
    return {
      transportKeys: [{ key: c.recipient.key, cert: c.recipient.cert }],
      tmpDir: tmp,
      signature: c.signer ? 'required' : 'optional',
      trustSigner: async (carried, side) => {
        expect(side).to.equal(signerSlot(c.msg.type)?.side);
        // Pinned trust: the verification key is the expected signer's, whatever the message carries.
        if (!c.signer || !carried?.raw.equals(c.signer.cert.raw)) throw new Error('unexpected signer certificate');
        return c.signer.cert;
      },
      ...extra,
    };
  }

  for (const type of ALL) {
    it(`${type}: signed, transport-encrypted, decoded back to the same model`, async function () {
      const c = cases().find((x) => x.msg.type === type) as Case;
      const enc = await encodeMessage(c.msg, {
        ...(c.signer ? { signer: c.signer } : {}),
        encryptFor: c.recipient.cert,
        ...(c.attachments ? { attachments: c.attachments } : {}),
      });
      const wire = await bytes(enc.stream);
      expect(wire.length).to.equal(enc.length);
      // Without attachments the whole message is built in memory, and `body` holds the bytes `stream` yields.
      if (c.attachments?.length) expect(enc.body).to.equal(undefined);
      else expect(enc.body?.equals(wire)).to.equal(true);
      expect(enc.contentType).to.match(/^Multipart\/Related; boundary=MIME_boundary_[A-Za-z0-9]{32}; type=text\/xml$/);
      // The reference library's framing: entity headers at the start of the body (§11).
      expect(wire.subarray(0, 60).toString('latin1')).to.match(/^MIME-Version: 1\.0\r\nContent-Type: Multipart\/Related/);
      // The intermediary receives it as the library sends it: HTTP Content-Type text/xml.
      const d = await decodeMessage(wire, decodeOpts(c, { contentType: 'text/xml' }));
      try {
        expect(d.transport.encrypted).to.equal(true);
        expect(d.transport.recipient?.raw.equals(c.recipient.cert.raw)).to.equal(true);
        const expected = c.signer ? withSignerCertificate(c.msg, c.signer.cert).message : c.msg;
        expect(normal(d.message)).to.deep.equal(normal(expected));
        if (c.signer) {
          expect(d.signature?.signer.raw.equals(c.signer.cert.raw)).to.equal(true);
          expect(d.signature?.algorithm).to.equal(ALIASES['rsa-sha256']);
          expect(d.signature?.signedIds).to.include('body');
          expect(d.signature?.cids).to.deep.equal((c.attachments ?? []).map((a) => a.contentId));
        } else expect(d.signature).to.equal(undefined);
        expect(d.attachments.map((a) => a.contentId)).to.deep.equal((c.attachments ?? []).map((a) => a.contentId));
        for (const [i, a] of (c.attachments ?? []).entries()) {
          const sent = await bytes(a.open());
          const got = d.attachments[i];
          expect(got?.size).to.equal(sent.length);
          expect(got?.sha256.toString('hex')).to.equal(sha(sent));
          expect(sha(await bytes(got?.open() as Readable))).to.equal(sha(sent));
        }
      } finally {
        await d.dispose();
      }
    });
  }

  it('dispose() removes every temporary file; so does a failed decode', async () => {
    const c = cases().find((x) => x.msg.type === 'storeDelivery') as Case;
    const enc = await encodeMessage(c.msg, { signer: client.sig, encryptFor: im.cipher.cert, attachments: sealed.attachments });
    const wire = await bytes(enc.stream);
    const dir = mkdtempSync(join(tmp, 'spill-'));
    const d = await decodeMessage(wire, { ...decodeOpts(c), tmpDir: dir });
    // A small message stays in memory (spill.ts budget): no temporary folder at all.
    expect(readdirSync(dir)).to.deep.equal([]);
    await d.dispose();
    expect(readdirSync(dir)).to.deep.equal([]);
    await rejects(decodeMessage(wire, { ...decodeOpts(c), tmpDir: dir, trustSigner: async () => bob.sig.cert }), 'ERR_SIG_INVALID');
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('unencrypted: decodes with the HTTP multipart Content-Type; refused when transport encryption is required', async () => {
    const c = cases().find((x) => x.msg.type === 'getMessageId') as Case;
    const enc = await encodeMessage(c.msg, { signer: client.sig });
    const wire = await bytes(enc.stream);
    const d = await decodeMessage(wire, decodeOpts(c, { contentType: enc.contentType, transportKeys: [] }));
    expect(d.transport).to.deep.equal({ encrypted: false });
    expect(d.message.type).to.equal('getMessageId');
    await d.dispose();
    await rejects(decodeMessage(wire, decodeOpts(c, { requireTransportEncryption: true })), 'ERR_SOAP_MALFORMED');
  });

  it('RSASSA-PSS (sha256-rsa-MGF1, §11) signs and verifies', async () => {
    const c = cases().find((x) => x.msg.type === 'fetchDelivery') as Case;
    const enc = await encodeMessage(c.msg, { signer: client.sig, signatureAlgorithm: ALIASES['rsa-pss-sha256'], encryptFor: im.cipher.cert });
    const d = await decodeMessage(await bytes(enc.stream), decodeOpts(c));
    expect(d.signature?.algorithm).to.equal(ALIASES['rsa-pss-sha256']);
    await d.dispose();
  });

  it('the signer certificate goes into the signer’s role: originator (orders, replies to processDelivery), intermediary (responses, accept/processDelivery), addressee (responseToAcceptDelivery)', () => {
    const byType = new Map(cases().map((c) => [c.msg.type, c]));
    const role = (t: MessageType, who: Identity) => {
      const m = withSignerCertificate((byType.get(t) as Case).msg, who.cert).message as Extract<OsciMessage, { certificates: Certificate[] }>;
      const c = m.certificates.find((x) => x.usage === 'signature' && Buffer.from(x.der).equals(who.cert.raw));
      return c?.role;
    };
    expect(role('initDialog', client.sig)).to.equal('originator');
    expect(role('acceptDelivery', im.sig)).to.equal('intermediary');
    expect(role('responseToInitDialog', im.sig)).to.equal('intermediary');
    expect(role('responseToAcceptDelivery', bob.sig)).to.equal('addressee');
    expect(role('responseToProcessDelivery', bob.sig)).to.equal('originator');
    // storeDelivery already carries the author = originator certificate: reused, not duplicated.
    const sd = withSignerCertificate((byType.get('storeDelivery') as Case).msg, client.sig.cert);
    expect(sd.message).to.equal((byType.get('storeDelivery') as Case).msg);
    expect(sd.certId).to.match(/^originator_signature_[0-9a-f]{64}$/);
    expect(() => withSignerCertificate((byType.get('storeDelivery') as Case).msg, bob.sig.cert)).to.throw().with.property('code', 'ERR_USAGE');
  });

  it('signature required but absent → ERR_SIGNATURE_MISSING; optional → decoded without signature', async () => {
    const c = cases().find((x) => x.msg.type === 'exitDialog') as Case;
    const wire = await bytes((await encodeMessage(c.msg, { encryptFor: im.cipher.cert })).stream);
    await rejects(decodeMessage(wire, decodeOpts(c)), 'ERR_SIGNATURE_MISSING');
    const d = await decodeMessage(wire, decodeOpts(c, { signature: 'optional' }));
    expect(d.signature).to.equal(undefined);
    await d.dispose();
  });

  it('Content-IDs are written verbatim, so they must be URL- and header-safe: others are refused before anything is sent', async () => {
    const c = cases().find((x) => x.msg.type === 'getMessageId') as Case;
    const bad = { contentId: 'Schriftsatz vom 1.1.pdf', size: 1, open: () => Readable.from([Buffer.from('x')]) };
    await rejects(encodeMessage(c.msg, { signer: client.sig, attachments: [bad] }), 'ERR_USAGE');
    await rejects(sealContent({ author: client.sig, readers: [bob.cipher.cert], contents: [{ attachment: { ...bad, contentId: 'Anlage_ä.pdf' } }], tmpDir: tmp }), 'ERR_USAGE');
    await rejects(encodeMessage(c.msg, { attachments: [{ ...bad, contentId: 'osci_enc' }] }), 'ERR_USAGE');
  });

  it('a signer certificate only in KeyInfo/X509Data (no certificate block entry) is what trustSigner sees as carried', async () => {
    const c = cases().find((x) => x.msg.type === 'fetchDelivery') as Case;
    const built = buildSoap(c.msg, { signaturePlaceholder: true });
    await signXml(built.doc, built.signatureParent as never, { key: client.sig.key, references: built.signedIds.map((id) => ({ id })), keyInfo: { x509Certificate: client.sig.cert.raw } });
    const wire = (await writeMultipartBuffer([{ headers: soapPartHeaders(), body: Buffer.from(built.xml()) }], { includeTopHeaders: true })).body;
    let seen: X509Certificate | undefined;
    const d = await decodeMessage(wire, decodeOpts(c, { trustSigner: async (carried) => ((seen = carried), client.sig.cert) }));
    expect(seen?.raw.equals(client.sig.cert.raw)).to.equal(true);
    expect(d.signature?.signer.raw.equals(client.sig.cert.raw)).to.equal(true);
    await d.dispose();
  });

  it('limits: total size and part count', async () => {
    const c = cases().find((x) => x.msg.type === 'storeDelivery') as Case;
    const enc = await encodeMessage(c.msg, { signer: client.sig, attachments: sealed.attachments });
    const wire = await bytes(enc.stream);
    await rejects(decodeMessage(wire, decodeOpts(c, { limits: { maxTotalBytes: wire.length - 1 } })), 'ERR_TOO_LARGE');
    await rejects(decodeMessage(wire, decodeOpts(c, { limits: { maxParts: 1 } })), 'ERR_MIME_LIMIT');
    await rejects(decodeMessage(wire, decodeOpts(c, { limits: { maxInMemoryPartBytes: 100 } })), 'ERR_MIME_LIMIT');
  });

  it('responseCipherCertificate: the order’s CipherCertificateOriginator, else ERR_CIPHER_CERT_MISSING', () => {
    const all = cases();
    const init = (all.find((x) => x.msg.type === 'initDialog') as Case).msg;
    expect(responseCipherCertificate(init).raw.equals(client.cipher.cert.raw)).to.equal(true);
    expect(() => responseCipherCertificate((all.find((x) => x.msg.type === 'exitDialog') as Case).msg)).to.throw().with.property('code', 'ERR_CIPHER_CERT_MISSING');
  });

  describe('content level: sealContent → openContent', () => {
    it('the addressee opens the storeDelivery content from the decoded message; author found through RetrievalMethod', async () => {
      const c = cases().find((x) => x.msg.type === 'storeDelivery') as Case;
      const wire = await bytes((await encodeMessage(c.msg, { signer: client.sig, encryptFor: im.cipher.cert, attachments: sealed.attachments })).stream);
      const d = await decodeMessage(wire, decodeOpts(c));
      const o = await openContent(d.soap.contentPackage as NonNullable<typeof d.soap.contentPackage>, {
        readerKey: bob.cipher.key,
        attachments: new Map(d.attachments.map((a) => [a.contentId, () => a.open()])),
        trustAuthor: async (carried) => {
          if (!carried?.raw.equals(client.sig.cert.raw)) throw new Error('unexpected author');
          return client.sig.cert;
        },
        tmpDir: tmp,
      });
      try {
        const cont = o.containers[0];
        expect(o.containers).to.have.length(1);
        expect(cont).to.include({ id: 'contentcontainer0', encrypted: true, signatureValid: true });
        expect(cont?.contents[0]).to.deep.equal({ kind: 'base64', data: xjustiz });
        const a = cont?.contents[1];
        if (a?.kind !== 'attachment') throw new Error('no attachment');
        expect([a.contentId, a.size, a.sha256.toString('hex')]).to.deep.equal(['schriftsatz.pdf', payload.length, sha(payload)]);
        expect((await bytes(a.open())).equals(payload)).to.equal(true);
      } finally {
        await o.dispose();
        await d.dispose();
      }
    });

    it('several readers each open it (one EncryptedKey per reader); anyone else gets ERR_DECRYPT; PSS container signature', async () => {
      const carol = identity('Dritte');
      const s = await sealContent({
        author: client.sig,
        readers: [bob.cipher.cert, carol.cert],
        contents: [{ base64Content: Buffer.from('für zwei') }],
        signatureAlgorithm: ALIASES['rsa-pss-sha256'],
        tmpDir: tmp,
      });
      expect(s.certificates.map((x) => `${x.role}:${x.usage}`)).to.deep.equal(['originator:signature', 'addressee:cipher', 'otherReader:cipher']);
      const ed = parseXml(s.contentPackage.encryptedData[0] as string).documentElement;
      expect(ed?.getElementsByTagNameNS('http://www.w3.org/2001/04/xmlenc#', 'EncryptedKey').length).to.equal(2);
      expect(ed?.hasAttribute('Type')).to.equal(false);
      for (const reader of [bob.cipher, carol]) {
        const o = await openContent(s.contentPackage, { readerKey: reader.key, attachments: new Map(), certificates: s.certificates, trustAuthor: async () => client.sig.cert, tmpDir: tmp });
        expect(o.containers[0]?.signatureValid).to.equal(true);
        expect(o.containers[0]?.signatures[0]?.algorithm).to.equal(ALIASES['rsa-pss-sha256']);
        expect(o.containers[0]?.contents).to.deep.equal([{ kind: 'base64', data: Buffer.from('für zwei') }]);
        await o.dispose();
      }
      await rejects(openContent(s.contentPackage, { readerKey: im.cipher.key, attachments: new Map(), trustAuthor: async () => client.sig.cert }), 'ERR_DECRYPT');
      await s.dispose();
    });

    it('encrypted attachments: size + 28, every open() the same bytes; a declared size that lies is refused', async () => {
      const a = sealed.attachments[0] as EncodedAttachment;
      expect(a.size).to.equal(payload.length + 28);
      const one = await bytes(a.open());
      expect(one.length).to.equal(a.size);
      expect((await bytes(a.open())).equals(one)).to.equal(true);
      await rejects(
        sealContent({ author: client.sig, readers: [bob.cipher.cert], contents: [{ attachment: { contentId: 'x', size: 5, open: () => Readable.from([Buffer.from('1234')]) } }], tmpDir: tmp }),
        'ERR_USAGE',
      );
    });

    it('a ds:MgmtData attachment key is refused in a container that was not itself decrypted', async () => {
      // The decrypted container, put into the package in clear: its attachment key now travels unprotected.
      const doc = parseXml(sealed.contentPackage.encryptedData[0] as string);
      const plain = await decryptEncryptedData(doc, doc.documentElement as never, { privateKey: bob.cipher.key });
      const o = await openContent(
        { encryptedData: [], contentContainers: [plain.plaintext.toString('utf8')] },
        { readerKey: bob.cipher.key, attachments: new Map(sealed.attachments.map((x) => [x.contentId, () => x.open()])), certificates: sealed.certificates, trustAuthor: async () => client.sig.cert, tmpDir: tmp },
      );
      const cont = o.containers[0];
      expect(cont?.encrypted).to.equal(false);
      expect(cont?.error?.code).to.equal('ERR_KEY_INVALID');
      expect(cont?.signatureValid).to.equal(false);
      expect(cont?.contents.map((x) => x.kind)).to.deep.equal(['base64']);
      await o.dispose();
    });

    it('a tampered content attachment fails its GCM tag: the container reports ERR_DECRYPT and is not valid', async () => {
      const raw = Buffer.from(await bytes((sealed.attachments[0] as EncodedAttachment).open()));
      raw[100] = (raw[100] as number) ^ 1;
      const o = await openContent(sealed.contentPackage, {
        readerKey: bob.cipher.key,
        attachments: new Map([['schriftsatz.pdf', () => Readable.from([raw])]]),
        certificates: sealed.certificates,
        trustAuthor: async () => client.sig.cert,
        tmpDir: tmp,
      });
      expect(o.containers[0]?.error?.code).to.equal('ERR_DECRYPT');
      expect(o.containers[0]?.signatureValid).to.equal(false);
      expect(o.containers[0]?.contents.some((x) => x.kind === 'attachment')).to.equal(false);
      await o.dispose();
    });

    it('the plaintext container lists Signature, Content, EncryptedData in schema order', async () => {
      const doc = parseXml(sealed.contentPackage.encryptedData[0] as string);
      const plain = await decryptEncryptedData(doc, doc.documentElement as never, { privateKey: bob.cipher.key });
      const cc = parseXml(plain.plaintext).documentElement;
      expect(cc?.namespaceURI).to.equal(OSCI_NS);
      const kids: string[] = [];
      for (let n = cc?.firstChild; n; n = n.nextSibling) if (n.nodeType === 1) kids.push((n as unknown as { localName: string }).localName);
      expect(kids).to.deep.equal(['Signature', 'Content', 'Content', 'EncryptedData']);
    });
  });
});
