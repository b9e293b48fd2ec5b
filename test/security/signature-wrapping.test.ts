/**
 * Attacks on XML-DSig verification (dependencies-and-security.md §2): signature wrapping, unexpected references,
 * several signatures, key substitution through KeyInfo, comments in DigestValue, DTDs, whole-document and
 * XPointer references. Each must be refused with a stable code and must return nothing.
 */
import { expect } from 'chai';
import { X509Certificate, constants, createHash, createPrivateKey, sign as rsaSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignedXml } from 'xml-crypto';
import { ALIASES, NS } from '../../crypto/algorithms.ts';
import { canonicalize } from '../../crypto/c14n.ts';
import { findSignatures, signXml, signXmlString, verifyXml, verifyXmlString, type VerifyOptions } from '../../crypto/dsig.ts';
import { isCryptoError, type CryptoErrorCode } from '../../crypto/errors.ts';
import { indexIds, parseXml, serializeXml, type Document, type Element } from '../../crypto/xml.ts';
import { requireShared, shared } from '../helpers/env.ts';

const V = (f: string) => shared('vectors/local-interop', f);
const ourKey = () => createPrivateKey(readFileSync(V('key.pem')));
const ourCert = () => new X509Certificate(readFileSync(V('cert.pem')));
const strangerKey = () => createPrivateKey(readFileSync(V('stranger-key.pem')));
const strangerCert = () => new X509Certificate(readFileSync(V('stranger-cert.pem')));

const MESSAGE = '<Message xmlns="urn:example:osci" Id="msg1"><Header Id="hdr">to: court</Header><Body Id="body">pay 10 EUR</Body><Decoy Id="decoy">harmless</Decoy></Message>';

async function code(p: Promise<unknown>): Promise<CryptoErrorCode> {
  try {
    await p;
  } catch (e) {
    if (isCryptoError(e)) return e.code;
    throw e;
  }
  throw new Error('expected a rejection, but verification succeeded');
}

async function signedMessage(refs: string[] = ['hdr', 'body']): Promise<string> {
  return signXmlString(MESSAGE, { key: ourKey(), references: refs.map((id) => ({ id })) });
}

/**
 * TEST-ONLY forger: a correctly signed SignedInfo with arbitrary Reference URIs, made by hand with node:crypto so
 * that the refusal under test is the structural one, not a broken signature.
 */
function forge(doc: Document, refs: Array<{ uri: string; digestOf: string }>): Element {
  const ds = (n: string) => doc.createElementNS(NS.ds, `ds:${n}`);
  const sig = ds('Signature');
  sig.setAttributeNS(NS.xmlns, 'xmlns:ds', NS.ds);
  const si = sig.appendChild(ds('SignedInfo')) as Element;
  const cm = si.appendChild(ds('CanonicalizationMethod')) as Element;
  cm.setAttribute('Algorithm', ALIASES.inclusive);
  const sm = si.appendChild(ds('SignatureMethod')) as Element;
  sm.setAttribute('Algorithm', ALIASES['rsa-sha256']);
  for (const r of refs) {
    const ref = si.appendChild(ds('Reference')) as Element;
    ref.setAttribute('URI', r.uri);
    (ref.appendChild(ds('DigestMethod')) as Element).setAttribute('Algorithm', ALIASES.sha256);
    ref.appendChild(ds('DigestValue')).appendChild(doc.createTextNode(createHash('sha256').update(r.digestOf).digest('base64')));
  }
  (doc.documentElement as Element).appendChild(sig);
  const value = rsaSign('sha256', Buffer.from(canonicalize(si, { exclusive: false, withComments: false })), {
    key: ourKey(),
    padding: constants.RSA_PKCS1_PADDING,
  });
  sig.appendChild(ds('SignatureValue')).appendChild(doc.createTextNode(value.toString('base64')));
  return sig;
}

describe('security: XML-DSig wrapping and substitution attacks', () => {
  before(function () {
    requireShared(this);
  });
  const trust = (): VerifyOptions => ({ trust: ourCert() });

  describe('duplicate Ids (signature wrapping)', () => {
    it('a forged Body with the signed Id, original moved into a wrapper → ERR_XML_DUPLICATE_ID', async () => {
      const xml = await signedMessage();
      const wrapped = xml.replace('<Body Id="body">pay 10 EUR</Body>', '<Body Id="body">pay 10000 EUR</Body><Wrapper><Body Id="body">pay 10 EUR</Body></Wrapper>');
      expect(wrapped).to.not.equal(xml);
      expect(await code(verifyXmlString(wrapped, trust()))).to.equal('ERR_XML_DUPLICATE_ID');
    });
    it('the same value in another Id attribute spelling (ID) also collides', async () => {
      const xml = await signedMessage();
      const wrapped = xml.replace('<Decoy Id="decoy">', '<Decoy ID="body">');
      expect(await code(verifyXmlString(wrapped, trust()))).to.equal('ERR_XML_DUPLICATE_ID');
    });
    it('the forged copy after the signed one: still refused, never a first-match or last-match pick', async () => {
      const xml = await signedMessage();
      const wrapped = xml.replace('</Message>', '<Body Id="body">pay 10000 EUR</Body></Message>');
      expect(await code(verifyXmlString(wrapped, trust()))).to.equal('ERR_XML_DUPLICATE_ID');
      expect(() => indexIds(parseXml(wrapped))).to.throw().that.satisfies((e: unknown) => isCryptoError(e) && e.code === 'ERR_XML_DUPLICATE_ID');
    });
  });

  describe('references the caller does not expect', () => {
    it('a valid signature over the decoy only is refused when the caller expects the Body', async () => {
      const xml = await signedMessage(['decoy']);
      expect((await verifyXmlString(xml, trust())).references).to.have.length(1); // sound in itself
      expect(await code(verifyXmlString(xml, { ...trust(), expectedReferences: { ids: ['hdr', 'body'], exact: true } }))).to.equal('ERR_SIG_STRUCTURE');
    });
    it('an extra reference beyond the expected set is refused', async () => {
      const xml = await signedMessage(['hdr', 'body', 'decoy']);
      expect(await code(verifyXmlString(xml, { ...trust(), expectedReferences: { ids: ['hdr', 'body'] } }))).to.equal('ERR_SIG_STRUCTURE');
    });
    it('an unexpected cid: reference is refused', async () => {
      const doc = parseXml(MESSAGE);
      await signXml(doc, doc.documentElement as Element, { key: ourKey(), references: [{ id: 'body' }, { uri: 'cid:evil', data: Buffer.from('x') }] });
      const opts: VerifyOptions = { ...trust(), resolveCid: async () => Buffer.from('x'), expectedReferences: { ids: ['body'] } };
      expect(await code(verifyXml(doc, findSignatures(doc)[0] as Element, opts))).to.equal('ERR_SIG_STRUCTURE');
    });
    it('signedElements holds exactly the digested elements, never a same-named look-alike', async () => {
      const r = await verifyXmlString(await signedMessage(['body']), trust());
      expect([...r.signedElements.entries()].map(([k, v]) => [k, v.textContent])).to.deep.equal([['body', 'pay 10 EUR']]);
    });
  });

  describe('several signatures', () => {
    it('two signatures in one document: findSignatures shows both, verifyXmlString refuses', async () => {
      const twice = await signXmlString(await signedMessage(['body']), { key: ourKey(), references: [{ id: 'hdr' }] });
      expect(findSignatures(parseXml(twice))).to.have.length(2);
      expect(await code(verifyXmlString(twice, trust()))).to.equal('ERR_SIG_STRUCTURE');
    });
  });

  describe('key substitution through KeyInfo', () => {
    it("a stranger's signature carrying the stranger's certificate is refused against our trust", async () => {
      const xml = await signXmlString(MESSAGE, { key: strangerKey(), references: [{ id: 'body' }], keyInfo: { x509Certificate: strangerCert().raw } });
      expect(await code(verifyXmlString(xml, trust()))).to.equal('ERR_SIG_INVALID');
    });
    it("a stranger's signature carrying OUR certificate in KeyInfo is refused too", async () => {
      const xml = await signXmlString(MESSAGE, { key: strangerKey(), references: [{ id: 'body' }], keyInfo: { x509Certificate: ourCert().raw } });
      expect(await code(verifyXmlString(xml, trust()))).to.equal('ERR_SIG_INVALID');
    });
    it('the shared stranger-signed.xml vector (xmlsec1, KeyInfo = stranger certificate) is refused', async () => {
      expect(await code(verifyXmlString(readFileSync(V('stranger-signed.xml')), trust()))).to.equal('ERR_SIG_INVALID');
    });
  });

  describe('comments and markup inside values', () => {
    it('a comment inside DigestValue → ERR_SIG_STRUCTURE, even one that a text-joining reader would ignore', async () => {
      const xml = await signedMessage(['body']);
      const split = xml.replace(/<ds:DigestValue>(.{8})/, '<ds:DigestValue>$1<!---->');
      expect(split).to.contain('<!---->');
      expect(await code(verifyXmlString(split, trust()))).to.equal('ERR_SIG_STRUCTURE');
      const swapped = xml.replace(/<ds:DigestValue>([^<]*)</, '<ds:DigestValue><!--$1-->AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=<');
      expect(await code(verifyXmlString(swapped, trust()))).to.equal('ERR_SIG_STRUCTURE');
    });
    it('a comment or an element inside SignatureValue → ERR_SIG_STRUCTURE', async () => {
      const xml = await signedMessage(['body']);
      expect(await code(verifyXmlString(xml.replace('<ds:SignatureValue>', '<ds:SignatureValue><!--x-->'), trust()))).to.equal('ERR_SIG_STRUCTURE');
      expect(await code(verifyXmlString(xml.replace('<ds:SignatureValue>', '<ds:SignatureValue><b/>'), trust()))).to.equal('ERR_SIG_STRUCTURE');
    });
  });

  describe('DOCTYPE', () => {
    it('a DTD with an internal entity in signed content is refused before anything else (ERR_XML_DOCTYPE)', async () => {
      const xml = await signedMessage(['body']);
      const withDtd = '<!DOCTYPE Message [<!ENTITY amount "10000">]>' + xml.replace('pay 10 EUR', 'pay &amount; EUR');
      expect(await code(verifyXmlString(withDtd, trust()))).to.equal('ERR_XML_DOCTYPE');
      expect(await code(verifyXmlString('<?xml version="1.0"?>\n<!DOCTYPE Message SYSTEM "http://example.org/x.dtd">' + xml, trust()))).to.equal(
        'ERR_XML_DOCTYPE',
      );
    });
  });

  describe('reference URIs outside the profile', () => {
    it('URI="" (whole document, enveloped), validly signed by xml-crypto, is refused with ERR_SIG_STRUCTURE', async () => {
      const sx = new SignedXml({
        privateKey: readFileSync(V('key.pem')),
        canonicalizationAlgorithm: ALIASES.exclusive,
        signatureAlgorithm: ALIASES['rsa-sha256'],
      });
      sx.addReference({
        xpath: '/*',
        isEmptyUri: true,
        digestAlgorithm: ALIASES.sha256,
        transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', ALIASES.exclusive],
      });
      sx.computeSignature(MESSAGE);
      const xml = sx.getSignedXml();
      expect(xml).to.contain('URI=""');
      // Valid for xml-crypto itself: the refusal is ours, by design.
      const check = new SignedXml({ publicCert: readFileSync(V('cert.pem')) });
      check.loadSignature(findSignatures(parseXml(xml))[0] as never);
      expect(check.checkSignature(xml)).to.equal(true);
      expect(await code(verifyXmlString(xml, trust()))).to.equal('ERR_SIG_STRUCTURE');
    });
    it('a Reference without URI is refused', async () => {
      const xml = (await signedMessage(['body'])).replace(' URI="#body"', '');
      expect(await code(verifyXmlString(xml, trust()))).to.equal('ERR_SIG_STRUCTURE');
    });
    for (const uri of ["#xpointer(id('body'))", '#xpointer(/)', 'http://example.org/evil.xml', 'file:///etc/passwd', 'body', '#a b']) {
      it(`Reference URI ${uri} (correctly signed) is refused with ERR_SIG_STRUCTURE`, async () => {
        const doc = parseXml(MESSAGE);
        const body = indexIds(doc).get('body') as Element;
        const sig = forge(doc, [{ uri, digestOf: canonicalize(body, { exclusive: false, withComments: true }) }]);
        expect(await code(verifyXml(doc, sig, trust()))).to.equal('ERR_SIG_STRUCTURE');
      });
    }
    it('the forger itself is sound: the same construction with #body verifies', async () => {
      const doc = parseXml(MESSAGE);
      const body = indexIds(doc).get('body') as Element;
      const sig = forge(doc, [{ uri: '#body', digestOf: canonicalize(body, { exclusive: false, withComments: false }) }]);
      const r = await verifyXml(doc, sig, trust());
      expect(r.signedElements.get('body')?.textContent).to.equal('pay 10 EUR');
      expect(serializeXml(sig)).to.contain('URI="#body"');
    });
    it('a reference to a missing Id → ERR_XML_ID_NOT_FOUND', async () => {
      const xml = (await signedMessage(['body'])).replace('<Body Id="body">', '<Body Id="other">');
      expect(await code(verifyXmlString(xml, trust()))).to.equal('ERR_XML_ID_NOT_FOUND');
    });
  });
});
