/**
 * Attacks on the XML-Enc layer: tampering, wrong keys (one generic error, no oracle), truncation, refused
 * algorithms, a confused mgf1p, key-size mismatches, DOCTYPE/entities in decrypted fragments, dereferencing.
 */
import { expect } from 'chai';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ALIASES, NS, withPolicy } from '../../crypto/algorithms.ts';
import { DECRYPT_FAILED, gcmEncrypt } from '../../crypto/aesgcm.ts';
import { isCryptoError } from '../../crypto/errors.ts';
import { parseXml, serializeXml } from '../../crypto/xml.ts';
import type { Document, Element } from '../../crypto/xml.ts';
import { buildEncryptedKey, decryptCipherReferenceStream, decryptInPlace, encryptBinary, encryptElement, XENC_TYPE } from '../../crypto/xenc.ts';
import type { DecryptOptions } from '../../crypto/xenc.ts';
import { requireShared, shared } from '../helpers/env.ts';

async function rejected(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect(isCryptoError(e), String(e)).to.equal(true);
    expect((e as { code: string }).code, (e as Error).message).to.equal(code);
    return e as Error;
  }
  return expect.fail(`expected ${code}`);
}

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits });
const alice = rsa(2048);
const bob = rsa(2048);
const mallory = rsa(2048);

function encryptedSample(readers = [alice.publicKey]): string {
  const doc = parseXml('<m xmlns="urn:m"><secret Id="s">Kontostand 4711</secret></m>');
  encryptElement(doc, (doc.documentElement as Element).firstChild as Element, { recipients: readers.map((key) => ({ key })), type: 'element' });
  return serializeXml(doc);
}

function ed(doc: Document): Element {
  return doc.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element;
}

/** Data CipherValue is the last CipherValue in our output. */
function mutateDataCipherValue(xml: string, f: (b: Buffer) => Buffer): string {
  const doc = parseXml(xml);
  const cvs = ed(doc).getElementsByTagNameNS(NS.xenc, 'CipherValue');
  const cv = cvs.item(cvs.length - 1) as Element;
  const bytes = f(Buffer.from(cv.textContent ?? '', 'base64'));
  cv.textContent = bytes.toString('base64');
  return serializeXml(doc);
}

async function decryptXml(xml: string, opts: DecryptOptions): Promise<void> {
  const doc = parseXml(xml);
  await decryptInPlace(doc, ed(doc), opts);
}

/** An EncryptedData around raw `ct` with the given method/KeyInfo/CipherData (hand-written attacker input). */
function rawEncryptedData(parts: { cipher?: string; method?: string; keyInfo?: string; cipherData?: string; type?: string; ct?: Buffer }): string {
  const cipherData = parts.cipherData ?? `<xenc:CipherValue>${(parts.ct ?? Buffer.alloc(0)).toString('base64')}</xenc:CipherValue>`;
  return (
    `<m xmlns="urn:m"><xenc:EncryptedData xmlns:xenc="${NS.xenc}" xmlns:ds="${NS.ds}" Type="${parts.type ?? XENC_TYPE.content}">` +
    `<xenc:EncryptionMethod Algorithm="${parts.cipher ?? ALIASES['aes256-gcm']}">${parts.method ?? ''}</xenc:EncryptionMethod>` +
    (parts.keyInfo ? `<ds:KeyInfo>${parts.keyInfo}</ds:KeyInfo>` : '') +
    `<xenc:CipherData>${cipherData}</xenc:CipherData></xenc:EncryptedData></m>`
  );
}

describe('security: XML-Enc attacks', () => {
  describe('integrity and oracles', () => {
    it('a flipped bit anywhere in IV, ciphertext or tag gives the generic ERR_DECRYPT', async () => {
      const xml = encryptedSample();
      const len = Buffer.from((parseXml(xml).getElementsByTagNameNS(NS.xenc, 'CipherValue').item(1) as Element).textContent ?? '', 'base64').length;
      for (const pos of [0, 11, 12, 20, len - 17, len - 16, len - 1]) {
        const bad = mutateDataCipherValue(xml, (b) => {
          b[pos] = (b[pos] as number) ^ 0x01;
          return b;
        });
        const e = await rejected(decryptXml(bad, { privateKey: alice.privateKey }), 'ERR_DECRYPT');
        expect(e.message).to.equal(DECRYPT_FAILED);
      }
    });

    it('wrong key, tampered EncryptedKey, tampered tag: one code, one message', async () => {
      const xml = encryptedSample([alice.publicKey, bob.publicKey]);
      const messages: string[] = [];
      messages.push((await rejected(decryptXml(xml, { privateKey: mallory.privateKey }), 'ERR_DECRYPT')).message);
      const doc = parseXml(xml);
      for (const cv of Array.from(doc.getElementsByTagNameNS(NS.xenc, 'EncryptedKey')).map((k) => k.getElementsByTagNameNS(NS.xenc, 'CipherValue').item(0) as Element)) {
        const b = Buffer.from(cv.textContent ?? '', 'base64');
        b[100] = (b[100] as number) ^ 0x80;
        cv.textContent = b.toString('base64');
      }
      messages.push((await rejected(decryptXml(serializeXml(doc), { privateKey: alice.privateKey }), 'ERR_DECRYPT')).message);
      const badTag = mutateDataCipherValue(xml, (b) => Buffer.concat([b.subarray(0, b.length - 16), randomBytes(16)]));
      messages.push((await rejected(decryptXml(badTag, { privateKey: bob.privateKey }), 'ERR_DECRYPT')).message);
      expect(new Set(messages)).to.deep.equal(new Set([DECRYPT_FAILED]));
    });

    it('truncated data: short of IV+tag, one byte missing, empty', async () => {
      const xml = encryptedSample();
      for (const cut of [(b: Buffer) => b.subarray(0, 27), (b: Buffer) => b.subarray(0, b.length - 1), () => Buffer.alloc(0), (b: Buffer) => b.subarray(12)]) {
        const e = await rejected(decryptXml(mutateDataCipherValue(xml, cut), { privateKey: alice.privateKey }), 'ERR_DECRYPT');
        expect(e.message).to.equal(DECRYPT_FAILED);
      }
    });

    it('a tampered streamed part fails the stream at its end with ERR_DECRYPT', async () => {
      const doc = parseXml('<c/>');
      const enc = encryptBinary(doc, { cid: 'osci_enc', recipients: [{ key: bob.publicKey }] });
      const part = enc.encrypt(randomBytes(50_000));
      part[30_000] = (part[30_000] as number) ^ 1;
      const stream = await decryptCipherReferenceStream(doc, enc.encryptedData, { privateKey: bob.privateKey, resolveCid: async () => part });
      const err = await new Promise<unknown>((resolve) => {
        stream.on('data', () => {});
        stream.on('error', resolve);
        stream.on('end', () => resolve(undefined));
      });
      expect(isCryptoError(err) && err.code).to.equal('ERR_DECRYPT');
    });

    it('the unwrapped key must fit the cipher: a 128-bit key for aes256-gcm and a 256-bit key for aes128-gcm fail generically', async () => {
      for (const [cipher, keyBytes] of [[ALIASES['aes256-gcm'], 16], [ALIASES['aes128-gcm'], 32]] as const) {
        const sym = randomBytes(keyBytes);
        const doc = parseXml('<x/>');
        const ek = serializeXml(buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym }));
        const xml = rawEncryptedData({ cipher, keyInfo: ek, ct: gcmEncrypt(sym, Buffer.from('<a/>')) });
        const e = await rejected(decryptXml(xml, { privateKey: alice.privateKey }), 'ERR_DECRYPT');
        expect(e.message).to.equal(DECRYPT_FAILED);
      }
    });

    it('KeyInfo is a hint, not trust: an EncryptedKey naming another certificate still only opens with the caller key', async () => {
      const doc = parseXml('<x/>');
      const sym = randomBytes(32);
      // Names a certificate the attacker chose; wrapped for alice.
      const ek = serializeXml(buildEncryptedKey(doc, { recipient: alice.publicKey, symKey: sym, keyInfo: { keyName: 'bob' } }));
      const xml = rawEncryptedData({ keyInfo: ek, ct: gcmEncrypt(sym, Buffer.from('<a/>')) });
      await rejected(decryptXml(xml, { privateKey: bob.privateKey }), 'ERR_DECRYPT');
      await decryptXml(xml, { privateKey: alice.privateKey });
    });
  });

  describe('refused algorithms and structures', () => {
    const sym = randomBytes(32);

    it('CBC data is refused by default (ERR_ALG_NOT_ALLOWED); aes192-cbc and 3DES even with the legacy flag', async () => {
      await rejected(decryptXml(rawEncryptedData({ cipher: 'http://www.w3.org/2001/04/xmlenc#aes256-cbc', ct: randomBytes(32) }), { symKey: sym }), 'ERR_ALG_NOT_ALLOWED');
      await rejected(decryptXml(rawEncryptedData({ cipher: 'http://www.w3.org/2001/04/xmlenc#aes128-cbc', ct: randomBytes(32) }), { symKey: sym.subarray(0, 16) }), 'ERR_ALG_NOT_ALLOWED');
      const legacy = withPolicy({ allowLegacyCbc: true });
      await rejected(decryptXml(rawEncryptedData({ cipher: 'http://www.w3.org/2001/04/xmlenc#aes192-cbc', ct: randomBytes(32) }), { symKey: sym, policy: legacy }), 'ERR_ALG_NOT_ALLOWED');
      await rejected(decryptXml(rawEncryptedData({ cipher: 'http://www.w3.org/2001/04/xmlenc#tripledes-cbc', ct: randomBytes(32) }), { symKey: sym, policy: legacy }), 'ERR_ALG_NOT_ALLOWED');
    });

    it('rsa-1_5 key transport is refused before any RSA operation', async () => {
      const ek = `<xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"/><xenc:CipherData><xenc:CipherValue>${randomBytes(256).toString('base64')}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>`;
      const e = await rejected(decryptXml(rawEncryptedData({ keyInfo: ek, ct: randomBytes(40) }), { privateKey: alice.privateKey }), 'ERR_ALG_NOT_ALLOWED');
      expect(e.message).to.match(/rsa-1_5/);
    });

    it('rsa-oaep-mgf1p with an xenc11:MGF element is refused by the structure check (no key needed to see it)', async () => {
      const doc = parseXml(encryptedSample());
      const method = doc.getElementsByTagNameNS(NS.xenc, 'EncryptedKey').item(0)?.getElementsByTagNameNS(NS.xenc, 'EncryptionMethod').item(0) as Element;
      expect(method.getElementsByTagNameNS(NS.xenc11, 'MGF').length).to.equal(1);
      method.setAttribute('Algorithm', ALIASES['rsa-oaep-mgf1p']);
      for (const opts of [{ privateKey: alice.privateKey }, {}]) {
        const e = await rejected(decryptXml(serializeXml(doc), opts), 'ERR_ENC_STRUCTURE');
        expect(e.message).to.match(/MGF/);
      }
    });

    it('refuses RSA keys below the policy minimum with ERR_KEY_TOO_SMALL', async () => {
      const small = rsa(1024);
      const doc = parseXml('<x/>');
      const ek = serializeXml(buildEncryptedKey(doc, { recipient: small.publicKey, symKey: sym, policy: withPolicy({ minRsaBits: 1024 }) }));
      await rejected(decryptXml(rawEncryptedData({ keyInfo: ek, ct: gcmEncrypt(sym, Buffer.from('<a/>')) }), { privateKey: small.privateKey }), 'ERR_KEY_TOO_SMALL');
    });

    it('CipherReference only to cid: parts (no same-document, file or network dereferencing) and only the base64 transform', async () => {
      for (const uri of ['http://attacker.example/x', '#s', 'file:///etc/passwd', '', 'cid:']) {
        await rejected(decryptXml(rawEncryptedData({ cipherData: `<xenc:CipherReference URI="${uri}"/>` }), { symKey: sym, resolveCid: async () => Buffer.alloc(0) }), 'ERR_ENC_STRUCTURE');
      }
      const xpath = `<xenc:CipherReference URI="cid:a"><xenc:Transforms><ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/></xenc:Transforms></xenc:CipherReference>`;
      await rejected(decryptXml(rawEncryptedData({ cipherData: xpath }), { symKey: sym, resolveCid: async () => Buffer.alloc(0) }), 'ERR_ALG_NOT_ALLOWED');
    });

    it('a key carried in ds:MgmtData is refused unless the caller asks for it', async () => {
      const xml = rawEncryptedData({ keyInfo: `<ds:MgmtData>${sym.toString('base64')}</ds:MgmtData>`, ct: gcmEncrypt(sym, Buffer.from('<a/>')) });
      await rejected(decryptXml(xml, {}), 'ERR_KEY_INVALID');
      await decryptXml(xml, { acceptMgmtDataKey: true });
    });

    it('malformed structures: comment in CipherValue, bad base64, unknown children, duplicate methods, odd IvLength', async () => {
      const ct = gcmEncrypt(sym, Buffer.from('<a/>')).toString('base64');
      const bad = [
        rawEncryptedData({ cipherData: `<xenc:CipherValue>${ct}<!--x--></xenc:CipherValue>` }),
        rawEncryptedData({ cipherData: `<xenc:CipherValue>${ct}!</xenc:CipherValue>` }),
        rawEncryptedData({ cipherData: `<xenc:CipherValue>${ct}</xenc:CipherValue><xenc:CipherValue>${ct}</xenc:CipherValue>` }),
        rawEncryptedData({ method: '<evil xmlns="urn:x"/>', ct: Buffer.from(ct, 'base64') }),
        rawEncryptedData({ method: '<o:IvLength xmlns:o="http://xoev.de/transport/osci12/8" Value="8"/>', ct: Buffer.from(ct, 'base64') }),
        rawEncryptedData({ keyInfo: '<ds:X509Data/>', ct: Buffer.from(ct, 'base64') }),
        rawEncryptedData({ ct: Buffer.from(ct, 'base64') }).replace('<xenc:CipherData>', `<xenc:EncryptionMethod Algorithm="${ALIASES['aes256-gcm']}"/><xenc:CipherData>`),
      ];
      for (const xml of bad) await rejected(decryptXml(xml, { symKey: sym }), 'ERR_ENC_STRUCTURE');
    });

    it('a tampered OAEP label (PSource) on the W3C vector fails generically', async function () {
      requireShared(this);
      const dir = shared('vectors', 'xmlsec-tests', 'xmlenc11-interop-2012');
      const xml = readFileSync(`${dir}/cipherText__RSA-4096__aes256-gcm__rsa-oaep__Sha512-MGF_Sha1_PSource.xml`, 'utf8').replace('ZHVtbXkxMjM=', 'ZHVtbXkxMjQ=');
      const e = await rejected(decryptXml(xml, { privateKey: createPrivateKey(readFileSync(`${dir}/RSA-4096-key.pem`)) }), 'ERR_DECRYPT');
      expect(e.message).to.equal(DECRYPT_FAILED);
    });
  });

  describe('decrypted fragments', () => {
    const sym = randomBytes(32);
    const withPlaintext = (plain: string | Buffer, type: string = XENC_TYPE.content) => rawEncryptedData({ type, ct: gcmEncrypt(sym, Buffer.from(plain)) });

    it('DOCTYPE and entity declarations in the plaintext are refused (no XXE, no billion laughs)', async () => {
      const payloads = [
        '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><a>&lol2;</a>',
        '<a/><!DOCTYPE a>',
      ];
      for (const p of payloads) await rejected(decryptXml(withPlaintext(p), { symKey: sym }), 'ERR_XML_DOCTYPE');
    });

    it('undeclared entities, broken markup and a wrapper breakout are malformed', async () => {
      for (const p of ['<a>&x;</a>', '<a>', '</fragment><fragment>', '<?xml version="1.0"?><a/>']) {
        await rejected(decryptXml(withPlaintext(p), { symKey: sym }), 'ERR_XML_MALFORMED');
      }
    });

    it('plaintext that is not UTF-8 is refused', async () => {
      await rejected(decryptXml(withPlaintext(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e])), { symKey: sym }), 'ERR_XML_MALFORMED');
    });

    it('Type Element must be exactly one element', async () => {
      for (const p of ['<a/><b/>', 'text<a/>', '', 'text']) {
        await rejected(decryptXml(withPlaintext(p, XENC_TYPE.element), { symKey: sym }), 'ERR_ENC_STRUCTURE');
      }
    });

    it('non-XML types are not parsed in place', async () => {
      await rejected(decryptXml(withPlaintext('<a/>', 'http://www.w3.org/2001/04/xmlenc#Other'), { symKey: sym }), 'ERR_ENC_STRUCTURE');
    });
  });
});
