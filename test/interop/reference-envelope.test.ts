/**
 * protocol/envelope against the requests of the Governikus OSCI-Bibliothek 2.4.1 (osci-reference/messages):
 * transport decryption to the exact .plain.mime bytes, every ClientSignature with the sender's certificate, the
 * storeDelivery content opened with Bob's cipher key, and our own encoding in the reference shape (XSD).
 */
import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { loadPkcs12, type Pkcs12Contents } from '../../crypto/keys.ts';
import { DECRYPT_FAILED } from '../../crypto/aesgcm.ts';
import {
  decodeMessage,
  decryptTransportPayload,
  encodeMessage,
  openContent,
  openMessage,
  sealContent,
  type DecodeOptions,
} from '../../protocol/envelope/index.ts';
import { parseMultipartBuffer } from '../../protocol/mime.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { OsciMessage } from '../../protocol/model.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';
import { validateXsd } from '../helpers/xsd.ts';
import { CAPTURED_SENDERS } from '../helpers/reference.ts';

const MSG = (f: string) => shared('osci-reference', 'messages', f);
const CER = (f: string) => new X509Certificate(readFileSync(shared('osci-reference', 'certs', f)));
const P12 = (f: string) => loadPkcs12(shared('osci-reference', 'certs', f), '123456');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Sender (signature certificate) of each captured request (osci-reference/README.md). */
const SENDER = CAPTURED_SENDERS;

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function sink(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
}

function expectCode(e: unknown, code: string): void {
  expect(e, 'an error').to.be.instanceOf(Error);
  expect((e as { code?: string }).code, (e as Error).message).to.equal(code);
}

describe('interop: OSCI envelope codec on the reference library’s messages', function () {
  let tmp: string;
  let manager: Pkcs12Contents;
  let bobCipher: Pkcs12Contents;
  let aliceCipher: Pkcs12Contents;
  let signers: Record<'alice' | 'bob', X509Certificate>;
  const names = Object.keys(SENDER);

  before(function () {
    requireShared(this);
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-ref-envelope-'));
    manager = P12('osci_manager_cipher_4096.p12');
    bobCipher = P12('bob_cipher_4096.p12');
    aliceCipher = P12('alice_cipher_4096.p12');
    signers = { alice: CER('alice_signature_4096.cer'), bob: CER('bob_signature_4096.cer') };
  });
  after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

  /** Trust = the pinned certificate file of the known sender, and only if the message carries that very certificate. */
  const pinned = (who: 'alice' | 'bob'): DecodeOptions['trustSigner'] => async (carried, role) => {
    expect(role).to.equal('client');
    if (!carried || !carried.raw.equals(signers[who].raw)) throw new Error(`message does not carry ${who}'s certificate`);
    return signers[who];
  };
  const opts = (who: 'alice' | 'bob'): DecodeOptions => ({
    transportKeys: [{ key: manager.key, cert: manager.certificate }],
    tmpDir: tmp,
    signature: 'required',
    trustSigner: pinned(who),
  });

  describe('transport layer: every .wire.mime decrypts to exactly its .plain.mime', () => {
    for (const name of names.filter((n) => !n.startsWith('06'))) {
      it(name, async () => {
        const wire = await parseMultipartBuffer(readFileSync(MSG(`${name}.wire.mime`)), { contentLengthCheck: 'except-root' });
        const soap = parseSoap(wire.parts[wire.root]?.body as Buffer);
        expect(soap.type).to.equal('soapMessageEncrypted');
        const enc = wire.parts.find((p) => p.contentId === 'osci_enc');
        const out = sink();
        const r = await decryptTransportPayload(soap, (cid) => (cid === 'osci_enc' ? Readable.from([enc?.body as Buffer]) : undefined), [{ key: manager.key, cert: manager.certificate }], out.stream);
        expect(r.cid).to.equal('osci_enc');
        expect(r.recipient?.raw.equals(manager.certificate.raw)).to.equal(true);
        expect(out.bytes().equals(readFileSync(MSG(`${name}.plain.mime`))), 'byte-identical plaintext').to.equal(true);
      });
    }

    it('06 is not transport-encrypted: the wire bytes are the plain message', async () => {
      const opened = await openMessage(readFileSync(MSG('06_initDialog_noTransportEncryption.wire.mime')), { transportKeys: [], tmpDir: tmp });
      expect(opened.transport.encrypted).to.equal(false);
      expect(opened.soap.type).to.equal('initDialog');
      await opened.dispose();
      try {
        await openMessage(readFileSync(MSG('06_initDialog_noTransportEncryption.wire.mime')), { transportKeys: [], tmpDir: tmp, requireTransportEncryption: true });
        expect.fail('accepted an unencrypted message');
      } catch (e) {
        expectCode(e, 'ERR_SOAP_MALFORMED');
      }
    });

    it('the HTTP capture of the official sample (Content-Type text/xml, MIME headers in the body) decrypts', async () => {
      const headers = readFileSync(shared('osci-reference', 'http-capture-127.0.0.1', 'http-01.headers.txt'), 'utf8');
      const contentType = /^Content-Type:\s*(.+)$/im.exec(headers)?.[1]?.trim();
      expect(contentType).to.equal('text/xml');
      const opened = await openMessage(readFileSync(shared('osci-reference', 'http-capture-127.0.0.1', 'http-01.body.mime')), {
        contentType: contentType as string,
        transportKeys: [{ key: manager.key, cert: manager.certificate }],
        tmpDir: tmp,
      });
      expect(opened.transport).to.include({ encrypted: true });
      expect(opened.soap.type).to.equal('getMessageId');
      // §11: the official samples give Alice Carol's cipher certificate; responses go to the one the order carries.
      const cipher = opened.soap.message.type === 'getMessageId' ? opened.soap.message.certificates.find((c) => c.usage === 'cipher') : undefined;
      expect(cipher && new X509Certificate(cipher.der).subject).to.contain('Carol');
      await opened.dispose();
    });

    it('key rotation: several keys, the one the EncryptedKey names is used; a key without certificate is matched by its public key', async () => {
      const wire = readFileSync(MSG('02_getMessageId.wire.mime'));
      const a = await openMessage(wire, { transportKeys: [{ key: bobCipher.key, cert: bobCipher.certificate }, { key: manager.key, cert: manager.certificate }], tmpDir: tmp });
      expect(a.transport.recipient?.raw.equals(manager.certificate.raw)).to.equal(true);
      await a.dispose();
      const b = await openMessage(wire, { transportKeys: [{ key: manager.key }], tmpDir: tmp });
      expect(b.transport.encrypted).to.equal(true);
      expect(b.soap.type).to.equal('getMessageId');
      await b.dispose();
    });

    it('a message for a certificate whose key we do not hold → ERR_TRANSPORT_KEY_UNKNOWN; temp files are removed', async () => {
      try {
        await decodeMessage(readFileSync(MSG('02_getMessageId.wire.mime')), { ...opts('alice'), transportKeys: [{ key: bobCipher.key, cert: bobCipher.certificate }] });
        expect.fail('decrypted with the wrong key');
      } catch (e) {
        expectCode(e, 'ERR_TRANSPORT_KEY_UNKNOWN');
      }
      expect(readdirSync(tmp)).to.deep.equal([]);
    });
  });

  describe('every ClientSignature verifies with the sender’s certificate (decodeMessage)', () => {
    for (const name of names) {
      it(`${name} (${SENDER[name]})`, async () => {
        const who = SENDER[name] as 'alice' | 'bob';
        const d = await decodeMessage(readFileSync(MSG(`${name}.wire.mime`)), opts(who));
        try {
          const plain = parseSoap((await parseMultipartBuffer(readFileSync(MSG(`${name}.plain.mime`)))).parts[0]?.body as Buffer);
          expect(d.message.type).to.equal(plain.type);
          // The model read from the verified elements only equals the full parse of the captured plaintext.
          expect(d.message).to.deep.equal(plain.message);
          expect(d.transport.encrypted).to.equal(!name.startsWith('06'));
          expect(d.signature?.signer.raw.equals(signers[who].raw)).to.equal(true);
          expect(d.signature?.algorithm).to.equal('http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
          expect(d.signature?.signedIds).to.include.members(['controlblock', 'desiredlanguages', 'body']);
          if (name === '03_storeDelivery') {
            expect(d.signature?.cids).to.deep.equal(['attachment1.txt']);
            expect(d.attachments.map((a) => [a.contentId, a.size])).to.deep.equal([['attachment1.txt', 66]]);
            const raw = await collect(d.attachments[0]?.open() as Readable);
            expect(sha(raw)).to.equal((d.attachments[0]?.sha256 as Buffer).toString('hex'));
          }
        } finally {
          await d.dispose();
        }
      });
    }

    it('the other sender’s certificate as trust → ERR_SIG_INVALID', async () => {
      try {
        await decodeMessage(readFileSync(MSG('04_fetchDelivery.wire.mime')), { ...opts('bob'), trustSigner: async () => signers.alice });
        expect.fail('verified with the wrong certificate');
      } catch (e) {
        expectCode(e, 'ERR_SIG_INVALID');
      }
    });
  });

  describe('03_storeDelivery content with Bob’s cipher key (openContent)', () => {
    const expected = () => {
      const txt = readFileSync(MSG('03_storeDelivery.content-decrypted.txt'), 'utf8');
      const b64 = /<osci:Base64Content Id="content0">([^<]*)<\/osci:Base64Content>/.exec(txt)?.[1] ?? '';
      const att = /decrypted with ds:MgmtData key: ([^\n]*\n)/.exec(txt)?.[1] ?? '';
      return { base64: Buffer.from(b64.replace(/\s+/g, ''), 'base64'), attachment: Buffer.from(att, 'utf8') };
    };

    it('Base64Content and attachment decrypt to the known plaintexts; Alice’s container signature verifies', async () => {
      const d = await decodeMessage(readFileSync(MSG('03_storeDelivery.wire.mime')), opts('alice'));
      let carried: X509Certificate | undefined;
      const o = await openContent(d.soap.contentPackage as NonNullable<typeof d.soap.contentPackage>, {
        readerKey: bobCipher.key,
        attachments: new Map(d.attachments.map((a) => [a.contentId, () => a.open()])),
        trustAuthor: async (c) => {
          carried = c;
          return signers.alice;
        },
        tmpDir: tmp,
      });
      try {
        const want = expected();
        expect(want.base64.toString()).to.match(/^Hello Bob/);
        expect(carried?.raw.equals(signers.alice.raw), 'author certificate found through RetrievalMethod').to.equal(true);
        expect(o.containers).to.have.length(1);
        const c = o.containers[0]!;
        expect(c).to.include({ id: 'contentcontainer0', encrypted: true, signatureValid: true });
        expect(c.signer?.raw.equals(signers.alice.raw)).to.equal(true);
        expect(c.signatures[0]?.algorithm).to.equal('http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
        expect(c.contents).to.have.length(2);
        const [b, a] = c.contents;
        expect(b?.kind === 'base64' && b.data.equals(want.base64)).to.equal(true);
        if (a?.kind !== 'attachment') throw new Error('no attachment');
        expect(a.contentId).to.equal('attachment1.txt');
        const plain = await collect(a.open());
        expect(plain.equals(want.attachment)).to.equal(true);
        expect(a.size).to.equal(38);
        expect(a.sha256.toString('hex')).to.equal(sha(want.attachment));
      } finally {
        await o.dispose();
        await d.dispose();
      }
    });

    it('the same from the model plus the message’s certificates; with the wrong author certificate the container is INVALID', async () => {
      const d = await decodeMessage(readFileSync(MSG('03_storeDelivery.wire.mime')), opts('alice'));
      const m = d.message as Extract<OsciMessage, { type: 'storeDelivery' }>;
      const parts = new Map(d.attachments.map((a) => [a.contentId, () => a.open()]));
      const ok = await openContent(m.contentPackage, { readerKey: bobCipher.key, attachments: parts, certificates: m.certificates, trustAuthor: async (c) => c as X509Certificate, tmpDir: tmp });
      expect(ok.containers[0]?.signatureValid).to.equal(true);
      await ok.dispose();
      const bad = await openContent(m.contentPackage, { readerKey: bobCipher.key, attachments: parts, trustAuthor: async () => signers.bob, tmpDir: tmp });
      expect(bad.containers[0]?.signatureValid).to.equal(false);
      expect(bad.containers[0]?.signatures[0]?.error?.code).to.equal('ERR_SIG_INVALID');
      await bad.dispose();
      await d.dispose();
    });

    it('Alice’s cipher key does not open Bob’s content: ERR_DECRYPT with the generic message, or reported with skipUndecryptable', async () => {
      const d = await decodeMessage(readFileSync(MSG('03_storeDelivery.wire.mime')), opts('alice'));
      const o = { readerKey: aliceCipher.key, attachments: new Map(d.attachments.map((a) => [a.contentId, () => a.open()])), trustAuthor: async () => signers.alice, tmpDir: tmp };
      try {
        await openContent(d.soap.contentPackage as NonNullable<typeof d.soap.contentPackage>, o);
        expect.fail('opened with the wrong key');
      } catch (e) {
        expectCode(e, 'ERR_DECRYPT');
        expect((e as Error).message).to.equal(DECRYPT_FAILED);
      }
      const skipped = await openContent(d.soap.contentPackage as NonNullable<typeof d.soap.contentPackage>, { ...o, skipUndecryptable: true });
      expect(skipped.containers).to.deep.equal([]);
      expect(skipped.undecryptable).to.deep.equal([{ id: 'encdata_0', code: 'ERR_DECRYPT', message: DECRYPT_FAILED }]);
      await skipped.dispose();
      await d.dispose();
    });
  });

  describe('our encoding has the reference shape', () => {
    it('a signed, sealed, transport-encrypted storeDelivery: outer envelope valid against soapMessageEncrypted.xsd, inner against soapStoreDelivery.xsd', async function () {
      requireTool(this, 'xmllint');
      const alice = P12('alice_signature_4096.p12');
      const sealed = await sealContent({
        author: { key: alice.key, cert: alice.certificate },
        readers: [bobCipher.certificate],
        contents: [{ base64Content: Buffer.from('Hallo Bob') }, { attachment: { contentId: 'a.txt', size: 3, open: () => Readable.from([Buffer.from('abc')]) } }],
        tmpDir: tmp,
      });
      const msg: OsciMessage = {
        type: 'storeDelivery',
        controlBlock: { sequenceNumber: 0, challenge: 'MTIzNDU2Nzg5MA==' },
        desiredLanguages: ['de'],
        qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
        messageId: Buffer.from('msg-1').toString('base64'),
        subject: 'Test',
        contentPackage: sealed.contentPackage,
        certificates: [certificate('originator', 'cipher', aliceCipher.certificate.raw), ...sealed.certificates],
      };
      const enc = await encodeMessage(msg, { signer: { key: alice.key, cert: alice.certificate }, encryptFor: manager.certificate, attachments: sealed.attachments });
      const wire = await collect(enc.stream);
      expect(wire.length).to.equal(enc.length);
      const outer = await parseMultipartBuffer(wire);
      const outerSoap = outer.parts[0]?.body as Buffer;
      const v1 = validateXsd(outerSoap, 'soapMessageEncrypted.xsd');
      expect(v1.valid, v1.errors.join('\n')).to.equal(true);
      const out = sink();
      await decryptTransportPayload(parseSoap(outerSoap), () => Readable.from([outer.parts[1]?.body as Buffer]), [{ key: manager.key }], out.stream);
      const inner = await parseMultipartBuffer(out.bytes());
      const v2 = validateXsd(inner.parts[0]?.body as Buffer, 'soapStoreDelivery.xsd');
      expect(v2.valid, v2.errors.join('\n')).to.equal(true);
      expect(inner.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', 'a.txt']);
      expect(inner.parts[1]?.size).to.equal(3 + 28);
      await sealed.dispose();
    });
  });
});
