import { expect } from 'chai';
import { createCipheriv, createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import type { CipherGCM, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { ALIASES, NS, withPolicy } from '../../crypto/algorithms.ts';
import { canonicalize } from '../../crypto/c14n.ts';
import { isCryptoError } from '../../crypto/errors.ts';
import { oaepUnwrap, oaepWrap } from '../../crypto/oaep.ts';
import { childElements, parseXml, serializeXml, textContent } from '../../crypto/xml.ts';
import type { Document, Element } from '../../crypto/xml.ts';
import {
  buildEncryptedKey,
  decryptCipherReferenceStream,
  decryptEncryptedData,
  decryptInPlace,
  encryptBinary,
  encryptElement,
  OSCI128_NS,
  rankEncryptedKeys,
  XENC_TYPE,
} from '../../crypto/xenc.ts';
import { requireShared, shared } from '../helpers/env.ts';

/** Equality after decryption is C14N equality: the plaintext may repeat in-scope namespace declarations. */
const c14n = (d: Document) => canonicalize(d, { exclusive: false, withComments: true });

function expectCode(fn: () => unknown, code: string): Error {
  try {
    fn();
  } catch (e) {
    expect(isCryptoError(e), String(e)).to.equal(true);
    expect((e as { code: string }).code).to.equal(code);
    return e as Error;
  }
  return expect.fail(`expected ${code}`);
}

async function expectRejected(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect(isCryptoError(e), String(e)).to.equal(true);
    expect((e as { code: string }).code).to.equal(code);
    return e as Error;
  }
  return expect.fail(`expected ${code}`);
}

async function collect(r: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits });
const MGF1SHA512 = 'http://www.w3.org/2009/xmlenc11#mgf1sha512';
const MGF1SHA1 = 'http://www.w3.org/2009/xmlenc11#mgf1sha1';
const SHA384 = 'http://www.w3.org/2001/04/xmldsig-more#sha384';
const SHA1 = 'http://www.w3.org/2000/09/xmldsig#sha1';

const SAMPLE = `<osci:Root xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:default"><osci:ContentPackage Id="pkg"><osci:ContentContainer Id="cc" xsi:type="osci:Typ"><Inner a="1">Ümlaut &amp; Co</Inner></osci:ContentContainer><other/></osci:ContentPackage></osci:Root>`;

describe('crypto/oaep', () => {
  const a = rsa(2048);
  const b = rsa(2048);

  for (const [hash, mgfHash] of [['sha256', 'sha256'], ['sha512', 'sha512'], ['sha1', 'sha1'], ['sha384', 'sha1'], ['sha512', 'sha1'], ['sha256', 'sha512']] as const) {
    it(`wraps and unwraps with digest ${hash} / MGF1-${mgfHash}, with and without a label`, () => {
      const key = randomBytes(32);
      for (const label of [undefined, Buffer.from('dummy123')]) {
        const p = { hash, mgfHash, minRsaBits: 2048, ...(label ? { label } : {}) };
        const wrapped = oaepWrap(a.publicKey, key, p);
        expect(wrapped.length).to.equal(256);
        expect(oaepUnwrap(a.privateKey, wrapped, p).equals(key)).to.equal(true);
      }
    });
  }

  it('fails with one generic ERR_DECRYPT for a wrong key, wrong label, wrong hashes, wrong length', () => {
    const key = randomBytes(32);
    const p = { hash: 'sha384', mgfHash: 'sha1', minRsaBits: 2048 } as const;
    const w = oaepWrap(a.publicKey, key, p);
    const msgs = [
      expectCode(() => oaepUnwrap(b.privateKey, w, p), 'ERR_DECRYPT'),
      expectCode(() => oaepUnwrap(a.privateKey, w, { ...p, label: Buffer.from('x') }), 'ERR_DECRYPT'),
      expectCode(() => oaepUnwrap(a.privateKey, w, { ...p, mgfHash: 'sha256' }), 'ERR_DECRYPT'),
      expectCode(() => oaepUnwrap(a.privateKey, w, { ...p, hash: 'sha256', mgfHash: 'sha256' }), 'ERR_DECRYPT'),
      expectCode(() => oaepUnwrap(a.privateKey, w.subarray(1), p), 'ERR_DECRYPT'),
      expectCode(() => oaepUnwrap(a.privateKey, Buffer.alloc(256, 0xff), p), 'ERR_DECRYPT'),
    ].map((e) => e.message);
    expect(new Set(msgs).size).to.equal(1);
  });

  it('refuses small and non-RSA keys', () => {
    const small = rsa(1024);
    expectCode(() => oaepWrap(small.publicKey, randomBytes(32), { hash: 'sha256', mgfHash: 'sha256', minRsaBits: 2048 }), 'ERR_KEY_TOO_SMALL');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expectCode(() => oaepWrap(ec.publicKey, randomBytes(32), { hash: 'sha256', mgfHash: 'sha256', minRsaBits: 2048 }), 'ERR_KEY_INVALID');
  });
});

describe('crypto/xenc', () => {
  const alice = rsa(2048);
  const bob = rsa(2048);
  const carol = rsa(2048);

  describe('buildEncryptedKey', () => {
    it('defaults to xmlenc11 rsa-oaep, SHA-256 and MGF1-SHA256; MGF follows the digest (SHA-512 → MGF1-SHA512)', () => {
      const doc = parseXml('<r/>');
      const ek = buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: randomBytes(32) });
      const m = childElements(ek, NS.xenc, 'EncryptionMethod')[0] as Element;
      expect(m.getAttribute('Algorithm')).to.equal(ALIASES['rsa-oaep']);
      expect(childElements(m, NS.ds, 'DigestMethod')[0]?.getAttribute('Algorithm')).to.equal(ALIASES.sha256);
      expect(childElements(m, NS.xenc11, 'MGF')[0]?.getAttribute('Algorithm')).to.equal(ALIASES.mgf1sha256);
      expect(childElements(ek, NS.ds, 'KeyInfo')).to.have.length(0);
      const ek512 = buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: randomBytes(32), digest: ALIASES.sha512 });
      expect(ek512.getElementsByTagNameNS(NS.xenc11, 'MGF').item(0)?.getAttribute('Algorithm')).to.equal(MGF1SHA512);
    });

    it('writes mgf1p without an MGF element and refuses to choose one for it', () => {
      const doc = parseXml('<r/>');
      const ek = buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: randomBytes(32), keyTransport: ALIASES['rsa-oaep-mgf1p'], digest: SHA1 });
      expect(ek.getElementsByTagNameNS(NS.xenc11, 'MGF').length).to.equal(0);
      expect(ek.getElementsByTagNameNS(NS.ds, 'DigestMethod').item(0)?.getAttribute('Algorithm')).to.equal(SHA1);
      expectCode(() => buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: randomBytes(32), keyTransport: ALIASES['rsa-oaep-mgf1p'], mgf: MGF1SHA1 }), 'ERR_ALG_NOT_ALLOWED');
    });

    it('writes the requested KeyInfo: certificate, RetrievalMethod or KeyName', () => {
      const doc = parseXml('<r/>');
      const sym = randomBytes(32);
      const rm = buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, keyInfo: { retrievalMethod: { uri: '#addressee_cipher_1', type: 'http://www.w3.org/2000/09/xmldsig#X509Data' } } });
      const r = rm.getElementsByTagNameNS(NS.ds, 'RetrievalMethod').item(0) as Element;
      expect(r.getAttribute('URI')).to.equal('#addressee_cipher_1');
      expect(r.getAttribute('Type')).to.equal('http://www.w3.org/2000/09/xmldsig#X509Data');
      const kn = buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, keyInfo: { keyName: 'Alice' } });
      expect(textContent(kn.getElementsByTagNameNS(NS.ds, 'KeyName').item(0) as Element)).to.equal('Alice');
      const c = buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, keyInfo: { x509Certificate: Buffer.from([1, 2, 3]) } });
      expect(textContent(c.getElementsByTagNameNS(NS.ds, 'X509Certificate').item(0) as Element)).to.equal('AQID');
    });

    it('refuses rsa-1_5, unknown digests and small recipient keys', () => {
      const doc = parseXml('<r/>');
      const sym = randomBytes(32);
      expectCode(() => buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, keyTransport: 'http://www.w3.org/2001/04/xmlenc#rsa-1_5' }), 'ERR_ALG_NOT_ALLOWED');
      expectCode(() => buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, digest: 'http://www.w3.org/2001/04/xmldsig-more#md5' }), 'ERR_ALG_NOT_ALLOWED');
      expectCode(() => buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, policy: withPolicy({ minRsaBits: 3072 }) }), 'ERR_KEY_TOO_SMALL');
    });
  });

  describe('encryptElement / decryptInPlace', () => {
    it('encrypts an element for several readers (one EncryptedKey each in ds:KeyInfo); each reader decrypts it', async () => {
      const original = parseXml(SAMPLE);
      for (const reader of [alice, bob, carol]) {
        const doc = parseXml(SAMPLE);
        const cc = doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ContentContainer').item(0) as Element;
        const ed = encryptElement(doc, cc, {
          recipients: [{ key: alice.publicKey }, { key: bob.publicKey }, { key: carol.publicKey }],
          type: 'element',
          mimeType: 'text/xml',
          id: 'encdata_0',
          ivLengthElement: true,
        });
        const ki = childElements(ed, NS.ds, 'KeyInfo')[0] as Element;
        expect(childElements(ki, NS.xenc, 'EncryptedKey')).to.have.length(3);
        expect(ed.getAttribute('Type')).to.equal(XENC_TYPE.element);
        expect(ed.getAttribute('Id')).to.equal('encdata_0');
        expect(ed.getAttribute('MimeType')).to.equal('text/xml');
        const iv = ed.getElementsByTagNameNS(OSCI128_NS, 'IvLength').item(0) as Element;
        expect(iv.getAttribute('Value')).to.equal('12');
        const wire = serializeXml(doc);
        expect(wire).not.to.contain('Ümlaut');
        // Decrypt from the serialized form, as a receiver would.
        const back = parseXml(wire);
        const ed2 = back.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element;
        const { result, nodes } = await decryptInPlace(back, ed2, { privateKey: reader.privateKey });
        expect(result.type).to.equal('element');
        expect(nodes).to.have.length(1);
        expect(c14n(back)).to.equal(c14n(original));
      }
    });

    it('the element plaintext declares every namespace in scope, so QName values (xsi:type="osci:Typ") survive alone', async () => {
      const doc = parseXml(SAMPLE);
      const cc = doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ContentContainer').item(0) as Element;
      const ed = encryptElement(doc, cc, { recipients: [{ key: bob.publicKey }], type: 'element' });
      const r = await decryptEncryptedData(doc, ed, { privateKey: bob.privateKey });
      const standalone = parseXml(r.plaintext).documentElement as Element;
      expect(standalone.lookupNamespaceURI('osci')).to.equal('http://www.osci.de/2002/04/osci');
      expect(standalone.lookupNamespaceURI('xsi')).to.equal('http://www.w3.org/2001/XMLSchema-instance');
      expect((childElements(standalone)[0] as Element).namespaceURI).to.equal('urn:default');
    });

    it('encrypts element content (Type Content) and restores mixed content in the parent namespace context', async () => {
      const doc = parseXml('<a:doc xmlns:a="urn:a" xmlns="urn:d"><a:box Id="b">text <x a:k="v">1</x> tail<!--c--></a:box></a:doc>');
      const before = c14n(doc);
      const box = doc.getElementsByTagNameNS('urn:a', 'box').item(0) as Element;
      const ed = encryptElement(doc, box, { recipients: [{ key: alice.publicKey }], type: 'content' });
      expect(ed.parentNode).to.equal(box);
      expect(childElements(box)).to.have.length(1);
      expect(box.getAttribute('Id')).to.equal('b');
      const back = parseXml(serializeXml(doc));
      const { result } = await decryptInPlace(back, back.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element, { privateKey: alice.privateKey });
      expect(result.type).to.equal('content');
      expect(c14n(back)).to.equal(before);
      const x = back.getElementsByTagNameNS('urn:d', 'x').item(0) as Element;
      expect(x.getAttributeNS('urn:a', 'k')).to.equal('v');
    });

    it('refuses to encrypt with CBC, 3DES or no recipient', () => {
      const doc = parseXml(SAMPLE);
      const t = doc.documentElement as Element;
      expectCode(() => encryptElement(doc, t, { recipients: [{ key: alice.publicKey }], type: 'content', cipher: 'http://www.w3.org/2001/04/xmlenc#aes256-cbc', policy: withPolicy({ allowLegacyCbc: true }) }), 'ERR_ALG_NOT_ALLOWED');
      expectCode(() => encryptElement(doc, t, { recipients: [{ key: alice.publicKey }], type: 'content', cipher: 'http://www.w3.org/2001/04/xmlenc#tripledes-cbc' }), 'ERR_ALG_NOT_ALLOWED');
      expectCode(() => encryptElement(doc, t, { recipients: [], type: 'content' }), 'ERR_KEY_INVALID');
    });

    it('mixed OAEP hashes (SHA-384 digest, MGF1-SHA1) round-trip through the document', async () => {
      const doc = parseXml(SAMPLE);
      const cc = doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ContentContainer').item(0) as Element;
      encryptElement(doc, cc, { recipients: [{ key: alice.publicKey }], type: 'element', digest: SHA384, mgf: MGF1SHA1 });
      const back = parseXml(serializeXml(doc));
      await decryptInPlace(back, back.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element, { privateKey: alice.privateKey });
      expect(c14n(back)).to.equal(c14n(parseXml(SAMPLE)));
    });

    it('honours osci128:IvLength Value="16" from older peers', async () => {
      const key = randomBytes(32);
      const iv = randomBytes(16);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([iv, c.update('<b/>'), c.final(), (c as CipherGCM).getAuthTag()]);
      const doc = parseXml(
        `<a><xenc:EncryptedData xmlns:xenc="${NS.xenc}" Type="${XENC_TYPE.element}"><xenc:EncryptionMethod Algorithm="${ALIASES['aes256-gcm']}"><o:IvLength xmlns:o="${OSCI128_NS}" Value="16"/></xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>${ct.toString('base64')}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></a>`,
      );
      await decryptInPlace(doc, doc.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element, { symKey: key });
      expect(serializeXml(doc)).to.equal('<a><b/></a>');
    });
  });

  describe('encryptBinary / CipherReference', () => {
    it('MgmtData form (reference attachments): streamed encryption, streamed and buffered decryption', async () => {
      const doc = parseXml('<c/>');
      const payload = randomBytes(100_000);
      const enc = encryptBinary(doc, { cid: 'attachment1.txt', mgmtData: true, mimeType: 'text/xml', id: 'Attachmentattachment1.txt', ivLengthElement: true, declareBase64Transform: true });
      (doc.documentElement as Element).appendChild(enc.encryptedData);
      const ed = enc.encryptedData;
      expect(ed.getElementsByTagNameNS(NS.ds, 'MgmtData').length).to.equal(1);
      const ref = ed.getElementsByTagNameNS(NS.xenc, 'CipherReference').item(0) as Element;
      expect(ref.getAttribute('URI')).to.equal('cid:attachment1.txt');
      expect(ref.getElementsByTagNameNS(NS.ds, 'Transform').item(0)?.getAttribute('Algorithm')).to.equal('http://www.w3.org/2000/09/xmldsig#base64');
      const part = await collect(Readable.from([payload.subarray(0, 33), payload.subarray(33)]).pipe(enc.createEncryptStream()));
      expect(part.length).to.equal(12 + payload.length + 16);
      const back = parseXml(serializeXml(doc));
      const ed2 = back.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element;
      const resolveCid = async (cid: string) => (cid === 'attachment1.txt' ? part : undefined);
      const r = await decryptEncryptedData(back, ed2, { acceptMgmtDataKey: true, resolveCid });
      expect(r.plaintext.equals(payload)).to.equal(true);
      const s = await collect(await decryptCipherReferenceStream(back, ed2, { acceptMgmtDataKey: true, resolveCid }));
      expect(s.equals(payload)).to.equal(true);
    });

    it('EncryptedKey form for the transport envelope (Multipart/Related, cid:osci_enc)', async () => {
      const doc = parseXml('<soap:Body xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"/>');
      const enc = encryptBinary(doc, { cid: 'osci_enc', recipients: [{ key: bob.publicKey }], mimeType: 'Multipart/Related', ivLengthElement: true });
      (doc.documentElement as Element).appendChild(enc.encryptedData);
      const inner = Buffer.from('MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=x\r\n\r\n--x--\r\n');
      const part = enc.encrypt(inner);
      const stream = await decryptCipherReferenceStream(doc, enc.encryptedData, { privateKey: bob.privateKey, resolveCid: async () => part });
      expect((await collect(stream)).equals(inner)).to.equal(true);
      await expectRejected(decryptCipherReferenceStream(doc, enc.encryptedData, { privateKey: bob.privateKey, resolveCid: async () => undefined }), 'ERR_CID_NOT_FOUND');
      await expectRejected(decryptEncryptedData(doc, enc.encryptedData, { privateKey: bob.privateKey }), 'ERR_CID_NOT_FOUND');
    });

    it('needs exactly one of recipients and mgmtData, and a usable Content-ID', () => {
      const doc = parseXml('<c/>');
      expectCode(() => encryptBinary(doc, { cid: 'a' }), 'ERR_KEY_INVALID');
      expectCode(() => encryptBinary(doc, { cid: 'a', mgmtData: true, recipients: [{ key: bob.publicKey }] }), 'ERR_KEY_INVALID');
      expectCode(() => encryptBinary(doc, { cid: 'a b', mgmtData: true }), 'ERR_ENC_STRUCTURE');
      expectCode(() => encryptBinary(doc, { cid: '<a>', mgmtData: true }), 'ERR_ENC_STRUCTURE');
    });
  });

  describe('with the local-interop certificate', function () {
    before(function () {
      requireShared(this);
    });

    it('puts the recipient certificate into KeyInfo by default and ranks that EncryptedKey first', async () => {
      const cert = new X509Certificate(readFileSync(shared('vectors', 'local-interop', 'cert.pem')));
      const key = createPrivateKey(readFileSync(shared('vectors', 'local-interop', 'key.pem')));
      const doc = parseXml(SAMPLE);
      const cc = doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ContentContainer').item(0) as Element;
      const ed = encryptElement(doc, cc, { recipients: [{ key: alice.publicKey }, { key: cert }], type: 'element' });
      const eks = Array.from(ed.getElementsByTagNameNS(NS.xenc, 'EncryptedKey'));
      const certText = textContent(eks[1]?.getElementsByTagNameNS(NS.ds, 'X509Certificate').item(0) as Element);
      expect(Buffer.from(certText, 'base64').equals(cert.raw)).to.equal(true);
      expect(rankEncryptedKeys(doc, eks, key)[0]).to.equal(eks[1]);
      await decryptInPlace(doc, ed, { privateKey: key });
      expect(c14n(doc)).to.equal(c14n(parseXml(SAMPLE)));
    });
  });

  it('a private key given as recipient is used by its public half', async () => {
    const doc = parseXml('<r><s>x</s></r>');
    const s = (doc.documentElement as Element).firstChild as Element;
    const ed = encryptElement(doc, s, { recipients: [{ key: alice.privateKey as KeyObject }], type: 'element' });
    await decryptInPlace(doc, ed, { privateKey: alice.privateKey });
    expect(serializeXml(doc)).to.equal('<r><s>x</s></r>');
  });
});
