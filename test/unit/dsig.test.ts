import { expect } from 'chai';
import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ALIASES, NS, withPolicy } from '../../crypto/algorithms.ts';
import { Base64Decoder, digestSource } from '../../crypto/digest.ts';
import { findSignatures, signXml, signXmlString, verifyXml, verifyXmlString, type VerifyOptions } from '../../crypto/dsig.ts';
import { isCryptoError, type CryptoErrorCode } from '../../crypto/errors.ts';
import { parseXml, serializeXml, type Document, type Element } from '../../crypto/xml.ts';
import { requireShared, shared } from '../helpers/env.ts';

const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
const BASE64 = 'http://www.w3.org/2000/09/xmldsig#base64';
const INCLUSIVE = ALIASES.inclusive;
const EXCLUSIVE = ALIASES.exclusive;

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });

async function rejection(p: Promise<unknown>): Promise<CryptoError> {
  try {
    await p;
  } catch (e) {
    if (isCryptoError(e)) return e;
    throw e;
  }
  throw new Error('expected a rejection, got success');
}
type CryptoError = Error & { code: CryptoErrorCode };

/** An OSCI-shaped document: namespaces declared on the envelope and redeclared per header block (osci-protocol.md §4). */
const OSCI_LIKE = `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soap:Header><osci:ControlBlock xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" Id="controlblock" soap:mustUnderstand="1"><osci:Challenge>abc=</osci:Challenge></osci:ControlBlock><osci:ClientSignature Id="clientsignature"></osci:ClientSignature><osci:DesiredLanguages Id="desiredlanguages" LanguagesList="de"/></soap:Header><soap:Body Id="body"><osci:ContentPackage><osci:Content Id="content1"><osci:Base64Content>SGFsbG8g
V2VsdCDDnG1sYXV0</osci:Base64Content></osci:Content><osci:Content href="cid:att1"/></osci:ContentPackage>
  <!-- a comment inside the body -->
</soap:Body></soap:Envelope>`;

function osciDoc(): { doc: Document; holder: Element } {
  const doc = parseXml(OSCI_LIKE);
  const holder = doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ClientSignature')[0] as Element;
  return { doc, holder };
}

const ATTACHMENT = Buffer.from([0, 1, 2, 255, 254, 13, 10, 0x2d, 0x2d]);

async function* chunks(buf: Buffer, size: number): AsyncIterable<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

describe('crypto/dsig', () => {
  describe('sign → verify round trips', () => {
    const algs = [ALIASES['rsa-sha256'], ALIASES['rsa-sha512'], ALIASES['rsa-pss-sha256'], ALIASES['rsa-pss-sha512']];
    for (const signatureAlgorithm of algs) {
      for (const c14nAlgorithm of [INCLUSIVE, EXCLUSIVE]) {
        it(`${signatureAlgorithm.split('#')[1]} with ${c14nAlgorithm === INCLUSIVE ? 'inclusive' : 'exclusive'} C14N, through serialize and re-parse`, async () => {
          const { doc, holder } = osciDoc();
          await signXml(doc, holder, {
            key: privateKey,
            signatureAlgorithm,
            c14nAlgorithm,
            references: [{ id: 'controlblock' }, { id: 'desiredlanguages' }, { id: 'body' }, { uri: 'cid:att1', data: ATTACHMENT }],
          });
          const again = parseXml(serializeXml(doc));
          const sig = findSignatures(again)[0] as Element;
          const r = await verifyXml(again, sig, {
            trust: publicKey,
            resolveCid: async (cid) => (cid === 'att1' ? ATTACHMENT : undefined),
            expectedReferences: { ids: ['controlblock', 'desiredlanguages', 'body'], cids: ['att1'], exact: true },
          });
          expect(r.signatureAlgorithm).to.equal(signatureAlgorithm);
          expect(r.c14nAlgorithm).to.equal(c14nAlgorithm);
          expect(r.references.map((x) => [x.uri, x.kind])).to.deep.equal([
            ['#controlblock', 'id'],
            ['#desiredlanguages', 'id'],
            ['#body', 'id'],
            ['cid:att1', 'cid'],
          ]);
          // OSCI §6: Id references carry the c14n as their one Transform, cid: references none.
          expect(r.references.map((x) => x.transforms)).to.deep.equal([[c14nAlgorithm], [c14nAlgorithm], [c14nAlgorithm], []]);
          expect([...r.signedElements.keys()]).to.deep.equal(['controlblock', 'desiredlanguages', 'body']);
          expect(r.signedElements.get('body')?.getAttribute('Id')).to.equal('body');
          expect(r.references[2]?.element).to.equal(r.signedElements.get('body'));
        });
      }
    }

    it('writes the OSCI layout: ds prefix, inclusive C14N, rsa-sha256, xmlenc#sha256, RetrievalMethod KeyInfo', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, {
        key: privateKey,
        references: [{ id: 'controlblock' }],
        keyInfo: { retrievalMethod: { uri: '#originator_signature_abc', type: 'http://www.w3.org/2000/09/xmldsig#X509Data' } },
      });
      const xml = serializeXml(sig);
      expect(xml).to.match(/^<ds:Signature xmlns:ds="http:\/\/www.w3.org\/2000\/09\/xmldsig#"><ds:SignedInfo>/);
      expect(xml).to.contain('<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>');
      expect(xml).to.contain('<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>');
      expect(xml).to.contain(
        '<ds:Reference URI="#controlblock"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>',
      );
      expect(xml).to.contain('<ds:KeyInfo><ds:RetrievalMethod URI="#originator_signature_abc" Type="http://www.w3.org/2000/09/xmldsig#X509Data"/></ds:KeyInfo>');
      expect(sig.parentNode).to.equal(holder);
    });

    it('c14nTransformPerReference: false leaves Id references without Transforms (implicit inclusive C14N)', async () => {
      const { doc, holder } = osciDoc();
      await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }], c14nTransformPerReference: false, c14nAlgorithm: EXCLUSIVE });
      expect(serializeXml(doc)).to.not.contain('Transforms');
      const r = await verifyXml(doc, findSignatures(doc)[0] as Element, { trust: publicKey });
      expect(r.references[0]?.transforms).to.deep.equal([]);
    });

    it('a prefix-less signature (default namespace) verifies', async () => {
      const { doc, holder } = osciDoc();
      await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }], prefix: '' });
      const xml = serializeXml(doc);
      expect(xml).to.contain('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>');
      const r = await verifyXmlString(xml, { trust: publicKey });
      expect(r.references).to.have.length(1);
    });

    it('X509Certificate KeyInfo is written but never used for trust', async function () {
      requireShared(this);
      const key = createPrivateKey(readFileSync(shared('vectors/local-interop/key.pem')));
      const certPem = readFileSync(shared('vectors/local-interop/cert.pem'));
      const cert = new X509Certificate(certPem);
      const { doc, holder } = osciDoc();
      await signXml(doc, holder, { key, references: [{ id: 'body' }], keyInfo: { x509Certificate: cert.raw } });
      expect(serializeXml(doc)).to.contain(`<ds:X509Certificate>${cert.raw.toString('base64')}</ds:X509Certificate>`);
      const r = await verifyXml(doc, findSignatures(doc)[0] as Element, { trust: cert });
      expect(r.signer?.fingerprint256).to.equal(cert.fingerprint256);
      expect((await rejection(verifyXml(doc, findSignatures(doc)[0] as Element, { trust: other.publicKey }))).code).to.equal('ERR_SIG_INVALID');
    });

    it('a trust resolver receives the signature element and may pick the key', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }] });
      let seen: Element | undefined;
      const r = await verifyXml(doc, sig, {
        trust: async (s) => {
          seen = s;
          return publicKey;
        },
      });
      expect(seen).to.equal(sig);
      expect(r.publicKey.equals(publicKey)).to.equal(true);
    });

    it('a private KeyObject given as trust is reduced to its public key', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }] });
      const r = await verifyXml(doc, sig, { trust: privateKey });
      expect(r.publicKey.type).to.equal('public');
    });
  });

  describe('references', () => {
    it('cid: digests cover the raw bytes, streamed from an async iterable or a factory; resolveCid may stream too', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, {
        key: privateKey,
        references: [
          { uri: 'cid:att1', data: chunks(ATTACHMENT, 2) },
          { uri: 'cid:att%202', data: () => chunks(Buffer.from('second'), 3) },
        ],
      });
      const digests = Array.from(sig.getElementsByTagNameNS(NS.ds, 'DigestValue')).map((d) => d.textContent);
      expect(digests[0]).to.equal(createHash('sha256').update(ATTACHMENT).digest('base64'));
      const seen: string[] = [];
      const r = await verifyXml(doc, sig, {
        trust: publicKey,
        resolveCid: async (cid) => {
          seen.push(cid);
          return cid === 'att1' ? chunks(ATTACHMENT, 4) : cid === 'att 2' ? Buffer.from('second') : undefined;
        },
      });
      expect(seen).to.deep.equal(['att1', 'att 2']);
      expect(r.references.every((x) => x.kind === 'cid' && x.element === undefined)).to.equal(true);
      expect(r.signedElements.size).to.equal(0);
    });

    it('a missing MIME part is ERR_CID_NOT_FOUND; a changed one ERR_SIG_DIGEST naming it', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }, { uri: 'cid:att1', data: ATTACHMENT }] });
      expect((await rejection(verifyXml(doc, sig, { trust: publicKey }))).code).to.equal('ERR_CID_NOT_FOUND');
      const changed = Buffer.from(ATTACHMENT);
      changed[0] = 9;
      const e = await rejection(verifyXml(doc, sig, { trust: publicKey, resolveCid: async () => changed }));
      expect(e.code).to.equal('ERR_SIG_DIGEST');
      expect(e.message).to.contain('cid:att1');
    });

    it("a cid: SHA-256 the caller computed (cidSha256) replaces reading the part; a wrong one is ERR_SIG_DIGEST", async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }, { uri: 'cid:att1', data: ATTACHMENT }] });
      const sha = createHash('sha256').update(ATTACHMENT).digest();
      const unread = async (): Promise<Buffer> => {
        throw new Error('the part must not be read');
      };
      await verifyXml(doc, sig, { trust: publicKey, resolveCid: unread, cidSha256: (cid) => (cid === 'att1' ? sha : undefined) });
      const wrong = Buffer.from(sha);
      wrong[0] = (wrong[0] as number) ^ 1;
      expect((await rejection(verifyXml(doc, sig, { trust: publicKey, resolveCid: unread, cidSha256: () => wrong }))).code).to.equal('ERR_SIG_DIGEST');
      // Without a known value the part is read as before.
      await verifyXml(doc, sig, { trust: publicKey, resolveCid: async () => ATTACHMENT, cidSha256: () => undefined });
    });

    it('signing: a cid: SHA-256 the caller wrote down (sha256) is the DigestValue, the part is not read; with SHA-512 it is', async () => {
      const { doc, holder } = osciDoc();
      const sha = createHash('sha256').update(ATTACHMENT).digest();
      const unread = (): AsyncIterable<Buffer> => {
        throw new Error('the part must not be read');
      };
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }, { uri: 'cid:att1', data: unread, sha256: sha }] });
      expect(sig.getElementsByTagNameNS(NS.ds, 'DigestValue')[1]?.textContent).to.equal(sha.toString('base64'));
      await verifyXml(doc, sig, { trust: publicKey, resolveCid: async () => ATTACHMENT });
      // The value is used as given: one that does not match the bytes makes a signature the receiver refuses.
      const other = osciDoc();
      const bad = await signXml(other.doc, other.holder, { key: privateKey, references: [{ uri: 'cid:att1', data: unread, sha256: Buffer.alloc(32) }] });
      expect((await rejection(verifyXml(other.doc, bad, { trust: publicKey, resolveCid: async () => ATTACHMENT }))).code).to.equal('ERR_SIG_DIGEST');
      // Only a 32-byte value counts as a SHA-256: anything else is ignored and the part is read.
      const fourth = osciDoc();
      const empty = await signXml(fourth.doc, fourth.holder, { key: privateKey, references: [{ uri: 'cid:att1', data: ATTACHMENT, sha256: Buffer.alloc(0) }] });
      await verifyXml(fourth.doc, empty, { trust: publicKey, resolveCid: async () => ATTACHMENT, cidSha256: () => Buffer.alloc(3) });
      const third = osciDoc();
      const s512 = await signXml(third.doc, third.holder, { key: privateKey, digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha512', references: [{ uri: 'cid:att1', data: ATTACHMENT, sha256: Buffer.alloc(32) }] });
      await verifyXml(third.doc, s512, { trust: publicKey, resolveCid: async () => ATTACHMENT });
    });

    it('Base64Content references with the base64 transform digest the decoded octets (osci-protocol.md §6)', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'content1', transforms: [BASE64] }] });
      const digest = sig.getElementsByTagNameNS(NS.ds, 'DigestValue')[0]?.textContent;
      expect(digest).to.equal(createHash('sha256').update('Hallo Welt Ümlaut').digest('base64'));
      const r = await verifyXml(doc, sig, { trust: publicKey });
      expect(r.references[0]?.transforms).to.deep.equal([BASE64]);
    });

    it('a base64 transform on a cid: reference decodes the part (streamed, split across chunks)', async () => {
      const text = Buffer.from(Buffer.from('payload bytes \u00ff').toString('base64').replace(/(.{5})/g, '$1\r\n'));
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ uri: 'cid:b64', data: chunks(text, 3), transforms: [BASE64] }] });
      expect(sig.getElementsByTagNameNS(NS.ds, 'DigestValue')[0]?.textContent).to.equal(
        createHash('sha256').update(Buffer.from('payload bytes \u00ff')).digest('base64'),
      );
      await verifyXml(doc, sig, { trust: publicKey, resolveCid: async () => chunks(text, 7) });
    });

    it('enveloped: the signed element may contain the signature only with the enveloped-signature transform', async () => {
      const doc = parseXml('<r Id="root"><a>x</a></r>');
      const root = doc.documentElement as Element;
      const e = await rejection(signXml(doc, root, { key: privateKey, references: [{ id: 'root' }] }));
      expect(e.code).to.equal('ERR_SIG_STRUCTURE');
      expect(findSignatures(doc)).to.have.length(0);
      await signXml(doc, root, { key: privateKey, references: [{ id: 'root' }], enveloped: true });
      const r = await verifyXmlString(serializeXml(doc), { trust: publicKey });
      expect(r.references[0]?.transforms).to.deep.equal([ENVELOPED, INCLUSIVE]);
      expect(r.signedElements.get('root')?.localName).to.equal('r');
    });

    it('#id dereferencing drops comments, so a comment may change without breaking the digest, text may not', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }], c14nAlgorithm: ALIASES.inclusive });
      const xml = serializeXml(doc);
      await verifyXmlString(xml.replace('a comment inside the body', 'another comment'), { trust: publicKey });
      const e = await rejection(verifyXmlString(xml.replace('SGFsbG8g', 'SGFsbG9g'), { trust: publicKey }));
      expect(e.code).to.equal('ERR_SIG_DIGEST');
      expect(e.message).to.contain('#body');
      expect(sig).to.not.equal(undefined);
    });

    it('signing refuses an unknown Id, a non-cid external URI, and no references', async () => {
      const { doc, holder } = osciDoc();
      expect((await rejection(signXml(doc, holder, { key: privateKey, references: [{ id: 'nope' }] }))).code).to.equal('ERR_XML_ID_NOT_FOUND');
      expect((await rejection(signXml(doc, holder, { key: privateKey, references: [{ uri: 'http://x/', data: ATTACHMENT }] }))).code).to.equal(
        'ERR_SIG_STRUCTURE',
      );
      expect((await rejection(signXml(doc, holder, { key: privateKey, references: [] }))).code).to.equal('ERR_SIG_STRUCTURE');
      expect(findSignatures(doc)).to.have.length(0);
    });

    it('expectedReferences: an unexpected reference or (with exact) a missing one is ERR_SIG_STRUCTURE', async () => {
      const { doc, holder } = osciDoc();
      const sig = await signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }, { id: 'controlblock' }] });
      const base: VerifyOptions = { trust: publicKey };
      expect((await rejection(verifyXml(doc, sig, { ...base, expectedReferences: { ids: ['body'] } }))).code).to.equal('ERR_SIG_STRUCTURE');
      await verifyXml(doc, sig, { ...base, expectedReferences: { ids: ['body', 'controlblock', 'desiredlanguages'] } });
      const e = await rejection(verifyXml(doc, sig, { ...base, expectedReferences: { ids: ['body', 'controlblock', 'desiredlanguages'], exact: true } }));
      expect(e.code).to.equal('ERR_SIG_STRUCTURE');
      expect(e.message).to.contain('desiredlanguages');
    });
  });

  describe('tampering and keys', () => {
    async function signedXml(): Promise<string> {
      const { doc, holder } = osciDoc();
      await signXml(doc, holder, { key: privateKey, references: [{ id: 'controlblock' }, { id: 'body' }] });
      return serializeXml(doc);
    }
    it('changed signed content → ERR_SIG_DIGEST naming the reference', async () => {
      const e = await rejection(verifyXmlString((await signedXml()).replace('abc=', 'abd='), { trust: publicKey }));
      expect(e.code).to.equal('ERR_SIG_DIGEST');
      expect(e.message).to.contain('#controlblock');
    });
    it('changed SignedInfo → ERR_SIG_INVALID (the SignatureValue is checked before any digest)', async () => {
      const xml = (await signedXml()).replace(/(<ds:DigestValue>)(.)/, (_m, a: string, c: string) => a + (c === 'A' ? 'B' : 'A'));
      expect((await rejection(verifyXmlString(xml, { trust: publicKey }))).code).to.equal('ERR_SIG_INVALID');
    });
    it('another key → ERR_SIG_INVALID', async () => {
      expect((await rejection(verifyXmlString(await signedXml(), { trust: other.publicKey }))).code).to.equal('ERR_SIG_INVALID');
    });
    it('keys below policy.minRsaBits → ERR_KEY_TOO_SMALL, when signing and when verifying', async () => {
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const { doc, holder } = osciDoc();
      expect((await rejection(signXml(doc, holder, { key: small.privateKey, references: [{ id: 'body' }] }))).code).to.equal('ERR_KEY_TOO_SMALL');
      const lax = withPolicy({ minRsaBits: 1024 });
      await signXml(doc, holder, { key: small.privateKey, references: [{ id: 'body' }], policy: lax });
      const xml = serializeXml(doc);
      await verifyXmlString(xml, { trust: small.publicKey, policy: lax });
      expect((await rejection(verifyXmlString(xml, { trust: small.publicKey }))).code).to.equal('ERR_KEY_TOO_SMALL');
      expect((await rejection(verifyXmlString(await signedXml(), { trust: publicKey, policy: withPolicy({ minRsaBits: 3072 }) }))).code).to.equal(
        'ERR_KEY_TOO_SMALL',
      );
    });
    it('a non-RSA key → ERR_KEY_INVALID', async () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      expect((await rejection(verifyXmlString(await signedXml(), { trust: ec.publicKey as KeyObject }))).code).to.equal('ERR_KEY_INVALID');
      const { doc, holder } = osciDoc();
      expect((await rejection(signXml(doc, holder, { key: ec.privateKey, references: [{ id: 'body' }] }))).code).to.equal('ERR_KEY_INVALID');
    });
    it('algorithms outside the policy → ERR_ALG_NOT_ALLOWED, when signing and when verifying', async () => {
      const onlyPss = withPolicy({ signatures: [ALIASES['rsa-pss-sha256']] });
      const { doc, holder } = osciDoc();
      expect((await rejection(signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }], policy: onlyPss }))).code).to.equal(
        'ERR_ALG_NOT_ALLOWED',
      );
      expect((await rejection(verifyXmlString(await signedXml(), { trust: publicKey, policy: onlyPss }))).code).to.equal('ERR_ALG_NOT_ALLOWED');
      const noSha1 = await rejection(
        signXml(doc, holder, { key: privateKey, references: [{ id: 'body' }], digestAlgorithm: 'http://www.w3.org/2000/09/xmldsig#sha1' }),
      );
      expect(noSha1.code).to.equal('ERR_ALG_NOT_ALLOWED');
    });
  });

  describe('helpers', () => {
    it('signXmlString signs into the element with parentId and verifyXmlString insists on one signature', async () => {
      const signed = await signXmlString(OSCI_LIKE, { key: privateKey, parentId: 'clientsignature', references: [{ id: 'body' }] });
      const r = await verifyXmlString(signed, { trust: publicKey });
      expect((r.doc.getElementsByTagNameNS(NS.ds, 'Signature')[0]?.parentNode as Element).getAttribute('Id')).to.equal('clientsignature');
      const twice = await signXmlString(signed, { key: privateKey, references: [{ id: 'controlblock' }] });
      const e = await rejection(verifyXmlString(twice, { trust: publicKey }));
      expect(e.code).to.equal('ERR_SIG_STRUCTURE');
      expect(findSignatures(parseXml(twice))).to.have.length(2);
    });
    it('Base64Decoder accepts whitespace and any chunking, and refuses junk or data after padding', () => {
      const data = Buffer.from('any carnal pleasure.');
      const b64 = data.toString('base64');
      for (let size = 1; size <= 7; size++) {
        const d = new Base64Decoder();
        const parts: Buffer[] = [];
        for (let i = 0; i < b64.length; i += size) parts.push(d.push(b64.slice(i, i + size) + (i % 2 ? '\n' : '')));
        d.end();
        expect(Buffer.concat(parts).equals(data), `chunk size ${size}`).to.equal(true);
      }
      expect(() => new Base64Decoder().push('ab$d')).to.throw().that.satisfies(isCryptoError);
      expect(() => new Base64Decoder().push('YQ==YQ==')).to.throw().that.satisfies(isCryptoError);
      const unfinished = new Base64Decoder();
      unfinished.push('YWJ');
      expect(() => unfinished.end()).to.throw().that.satisfies(isCryptoError);
    });
    it('digestSource hashes buffers, iterables and factories alike', async () => {
      const want = createHash('sha512').update(ATTACHMENT).digest('hex');
      expect((await digestSource('sha512', ATTACHMENT)).toString('hex')).to.equal(want);
      expect((await digestSource('sha512', chunks(ATTACHMENT, 2))).toString('hex')).to.equal(want);
      expect((await digestSource('sha512', () => chunks(ATTACHMENT, 5))).toString('hex')).to.equal(want);
    });
  });
});
