/**
 * Every XML-Enc vector of ../shared/vectors/README.md with its expected result, the transport decryption of the
 * real OSCI wire messages (../shared/osci-reference/messages) and the storeDelivery content decryption.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NS, withPolicy } from '../../crypto/algorithms.ts';
import type { CryptoPolicy } from '../../crypto/algorithms.ts';
import { canonicalize } from '../../crypto/c14n.ts';
import { isCryptoError } from '../../crypto/errors.ts';
import { oaepUnwrap } from '../../crypto/oaep.ts';
import { childElements, parseXml, serializeXml, textContent } from '../../crypto/xml.ts';
import type { Document, Element } from '../../crypto/xml.ts';
import { decryptCipherReferenceStream, decryptEncryptedData, decryptInPlace, rankEncryptedKeys } from '../../crypto/xenc.ts';
import type { DecryptOptions } from '../../crypto/xenc.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';

const inc = { exclusive: false, withComments: false };
const LEGACY_CBC = withPolicy({ allowLegacyCbc: true });
/** libxml2 writes a decrypted document with this declaration and a final newline (xmlsec1 made the .data files). */
const LIBXML_DECL = '<?xml version="1.0"?>\n';

const vec = (...p: string[]) => shared('vectors', ...p);
const pem = (...p: string[]): KeyObject => createPrivateKey(readFileSync(vec(...p)));

function firstEncryptedData(doc: Document): Element {
  const ed = doc.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0);
  if (!ed) throw new Error('fixture without EncryptedData');
  return ed;
}

async function inPlace(file: string, opts: DecryptOptions): Promise<Document> {
  const doc = parseXml(readFileSync(vec(file)));
  await decryptInPlace(doc, firstEncryptedData(doc), opts);
  return doc;
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

/** Test-local MIME split (protocol/ has the real codec): Content-ID → raw body of each part. */
function mimeParts(mime: Buffer): Map<string, Buffer> {
  const head = mime.subarray(0, mime.indexOf('\r\n\r\n')).toString('latin1');
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(head)?.[1];
  if (!boundary) throw new Error('fixture without boundary');
  const delim = Buffer.from(`\r\n--${boundary}`);
  const parts = new Map<string, Buffer>();
  let at = mime.indexOf(`--${boundary}`);
  while (at >= 0) {
    const lineEnd = mime.indexOf('\r\n', at);
    if (mime.subarray(at, lineEnd).toString('latin1').endsWith('--')) break;
    const headerEnd = mime.indexOf('\r\n\r\n', lineEnd);
    const headers = mime.subarray(lineEnd + 2, headerEnd).toString('latin1');
    const next = mime.indexOf(delim, headerEnd + 4);
    const id = /^Content-ID:\s*<([^>]*)>/im.exec(headers)?.[1];
    if (id !== undefined) parts.set(id, mime.subarray(headerEnd + 4, next));
    at = next + 2;
  }
  return parts;
}

/** A body as an async iterable of small chunks, to exercise the streaming path. */
async function* chunked(b: Buffer, size = 1000): AsyncIterable<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function collect(r: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe('XML-Enc vectors (vectors/README.md)', function () {
  before(function () {
    requireShared(this);
  });

  describe('local-interop', () => {
    const key = () => pem('local-interop', 'key.pem');
    const docXml = () => readFileSync(vec('local-interop', 'doc.xml'), 'utf8');
    const bodyOfDocXml = () => canonicalize(childElements(parseXml(docXml()).documentElement as Element)[0] as Element, inc);

    it('enc.xml (xmlsec1, aes256-gcm, rsa-oaep-mgf1p/SHA-1) decrypts in place to doc.xml', async () => {
      const doc = await inPlace('local-interop/enc.xml', { privateKey: key() });
      expect(serializeXml(doc) + '\n').to.equal(docXml());
    });

    for (const f of ['xe-aes256_gcm_rsa_oaep_mgf1p_sha1_.xml', 'xe-aes256_gcm_xmlenc11_rsa_oaep_sha256_mgf1sha256.xml']) {
      it(`${f} (xml-encryption) decrypts to the Body element of doc.xml`, async () => {
        const doc = await inPlace(`local-interop/${f}`, { privateKey: key() });
        const body = doc.documentElement as Element;
        expect(body.namespaceURI).to.equal('urn:example:osci');
        expect(canonicalize(body, inc)).to.equal(bodyOfDocXml());
      });
    }

    it('santuario-enc-oaep11.xml: base64 with &#13;, plaintext without xmlns parsed in the parent context', async () => {
      const doc = parseXml(readFileSync(vec('local-interop', 'santuario-enc-oaep11.xml')));
      const ed = firstEncryptedData(doc);
      const r = await decryptEncryptedData(doc, ed, { privateKey: key() });
      expect(r.type).to.equal('element');
      expect(r.plaintext.toString('utf8')).to.match(/^<Body Id="body1">/); // relies on the parent's default namespace
      await decryptInPlace(doc, ed, { privateKey: key() });
      const body = childElements(doc.documentElement as Element)[0] as Element;
      expect(body.namespaceURI).to.equal('urn:example:osci');
      expect(canonicalize(doc, inc)).to.equal(canonicalize(parseXml(docXml()), inc));
    });
  });

  describe('xmlsec-tests/aleksey-xmlenc-01', () => {
    const rsa4096 = () => pem('xmlsec-tests', 'keys', 'rsa', 'rsa-4096-key.pem');
    const cbcFile = 'xmlsec-tests/aleksey-xmlenc-01/enc-aes256-kt-rsa_oaep_enc11_sha512_mgf1_sha512';
    const mgf1pFile = 'xmlsec-tests/aleksey-xmlenc-01/enc-aes256-kt-rsa_oaep_sha256_mgf1_sha256.xml';

    it('aes256-cbc data is refused by default', async () => {
      const e = await expectRejected(inPlace(`${cbcFile}.xml`, { privateKey: rsa4096() }), 'ERR_ALG_NOT_ALLOWED');
      expect(e.message).to.match(/aes256-cbc/);
    });

    it('aes256-cbc data (xmlenc11 rsa-oaep SHA-512/MGF1-SHA512) decrypts exactly to .data with the legacy-CBC flag', async () => {
      const doc = await inPlace(`${cbcFile}.xml`, { privateKey: rsa4096(), policy: LEGACY_CBC });
      expect(Buffer.from(serializeXml(doc) + '\n', 'utf8').equals(readFileSync(vec(`${cbcFile}.data`)))).to.equal(true);
    });

    it('rsa-oaep-mgf1p carrying an xenc11:MGF element is refused (by default already for its CBC data)', async () => {
      await expectRejected(inPlace(mgf1pFile, { privateKey: rsa4096() }), 'ERR_ALG_NOT_ALLOWED');
      // With CBC allowed, the structure check on the key transport refuses it before any RSA operation.
      const e = await expectRejected(inPlace(mgf1pFile, { privateKey: rsa4096(), policy: LEGACY_CBC }), 'ERR_ENC_STRUCTURE');
      expect(e.message).to.match(/mgf1p.*MGF/);
    });

    it('… and not by luck: honouring the MGF element would have unwrapped a 256-bit key', () => {
      const doc = parseXml(readFileSync(vec(mgf1pFile)));
      const cv = doc.getElementsByTagNameNS(NS.xenc, 'CipherValue').item(0) as Element;
      const key = oaepUnwrap(rsa4096(), Buffer.from(textContent(cv), 'base64'), { hash: 'sha256', mgfHash: 'sha256', minRsaBits: 2048 });
      expect(key.length).to.equal(32);
    });

    it('enc-aes256gcm-keyname.xml decrypts with the AES key test-aes256 from keys.xml', async () => {
      const keys = parseXml(readFileSync(vec('xmlsec-tests', 'keys', 'keys.xml')));
      const byName = new Map<string, Buffer>();
      for (const ki of Array.from(keys.getElementsByTagNameNS(NS.ds, 'KeyInfo'))) {
        const name = ki.getElementsByTagNameNS(NS.ds, 'KeyName').item(0);
        const aes = ki.getElementsByTagNameNS('http://www.aleksey.com/xmlsec/2002', 'AESKeyValue').item(0);
        if (name && aes) byName.set(textContent(name).trim(), Buffer.from(textContent(aes).trim(), 'base64'));
      }
      const doc = parseXml(readFileSync(vec('xmlsec-tests', 'aleksey-xmlenc-01', 'enc-aes256gcm-keyname.xml')));
      const r = await decryptEncryptedData(doc, doc.documentElement as Element, { keyResolver: (n) => byName.get(n) });
      expect(r.mimeType).to.equal('text/plain');
      expect(r.plaintext.equals(readFileSync(vec('xmlsec-tests', 'aleksey-xmlenc-01', 'enc-aes256gcm-keyname.data')))).to.equal(true);
    });
  });

  describe('xmlsec-tests/xmlenc11-interop-2012 (W3C)', () => {
    const dir = 'xmlsec-tests/xmlenc11-interop-2012';
    async function expectExact(name: string, keyBits: number, policy?: CryptoPolicy): Promise<void> {
      const doc = await inPlace(`${dir}/${name}.xml`, { privateKey: pem(dir, `RSA-${keyBits}-key.pem`), ...(policy ? { policy } : {}) });
      const data = readFileSync(vec(dir, `${name}.data`));
      // .data = the document after in-place decryption as libxml2 writes it.
      expect(Buffer.from(LIBXML_DECL + serializeXml(doc) + '\n', 'utf8').equals(data)).to.equal(true);
    }

    it('RSA-2048 aes128-gcm rsa-oaep-mgf1p decrypts exactly under a test 2048-bit policy', async () => {
      await expectExact('cipherText__RSA-2048__aes128-gcm__rsa-oaep-mgf1p', 2048, withPolicy({ minRsaBits: 2048 }));
    });

    it('RSA-2048 is refused with ERR_KEY_TOO_SMALL under a 3072-bit policy (BSI TR-02102)', async () => {
      await expectRejected(
        inPlace(`${dir}/cipherText__RSA-2048__aes128-gcm__rsa-oaep-mgf1p.xml`, { privateKey: pem(dir, 'RSA-2048-key.pem'), policy: withPolicy({ minRsaBits: 3072 }) }),
        'ERR_KEY_TOO_SMALL',
      );
    });

    it('RSA-3072 xmlenc11 rsa-oaep SHA-384 digest with MGF1-SHA1 decrypts exactly (hand-written EME-OAEP)', async () => {
      await expectExact('cipherText__RSA-3072__aes256-gcm__rsa-oaep__Sha384-MGF_Sha1', 3072);
    });

    it('RSA-4096 SHA-512 digest, MGF1-SHA1 and an OAEP label (PSource) decrypts exactly', async () => {
      await expectExact('cipherText__RSA-4096__aes256-gcm__rsa-oaep__Sha512-MGF_Sha1_PSource', 4096);
    });
  });
});

describe('OSCI reference messages (osci-reference/README.md)', function () {
  let tmp: string;
  const keys = new Map<string, KeyObject>();
  const ref = (...p: string[]) => shared('osci-reference', ...p);

  before(function () {
    requireShared(this);
    requireTool(this, 'openssl');
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-xenc-'));
    // The .p12 files need legacy PBE (RC2-40/3DES). crypto/keys.ts (node-forge) can load them; this test keeps to
    // openssl so that it does not depend on that module while it is being written. Keys stay in a temp dir.
    for (const name of ['osci_manager_cipher_4096', 'bob_cipher_4096']) {
      const out = join(tmp, `${name}.key`);
      execFileSync('openssl', ['pkcs12', '-legacy', '-in', ref('certs', `${name}.p12`), '-passin', 'pass:123456', '-nodes', '-nocerts', '-out', out]);
      keys.set(name, createPrivateKey(readFileSync(out)));
    }
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function transportEncryptedData(wire: Buffer): { doc: Document; ed: Element; parts: Map<string, Buffer> } {
    const parts = mimeParts(wire);
    const soap = parts.get('osci@message');
    if (!soap) throw new Error('no SOAP part');
    const doc = parseXml(soap);
    return { doc, ed: firstEncryptedData(doc), parts };
  }

  const wires = () =>
    readdirSync(ref('messages'))
      .filter((f) => f.endsWith('.wire.mime') && !f.startsWith('06_'))
      .sort();

  it('finds the eight transport-encrypted messages', () => {
    expect(wires()).to.have.length(8);
  });

  for (const f of [
    '01_initDialog', '02_getMessageId', '03_storeDelivery', '04a_initDialog_bob',
    '04_fetchDelivery', '04z_exitDialog_bob', '05_fetchProcessCard', '05z_exitDialog_alice',
  ]) {
    it(`${f}.wire.mime: streamed transport decryption yields exactly .plain.mime`, async () => {
      const { doc, ed, parts } = transportEncryptedData(readFileSync(ref('messages', `${f}.wire.mime`)));
      expect(ed.getAttribute('MimeType')).to.equal('Multipart/Related');
      const stream = await decryptCipherReferenceStream(doc, ed, {
        privateKey: keys.get('osci_manager_cipher_4096') as KeyObject,
        resolveCid: async (cid) => {
          const part = parts.get(cid);
          return part ? chunked(part) : undefined;
        },
      });
      const plain = await collect(stream);
      const expected = readFileSync(ref('messages', `${f}.plain.mime`));
      expect(createHash('sha256').update(plain).digest('hex')).to.equal(createHash('sha256').update(expected).digest('hex'));
      expect(plain.equals(expected)).to.equal(true);
    });
  }

  it('the HTTP capture of the official sample decrypts to an inner MIME entity', async () => {
    const { doc, ed, parts } = transportEncryptedData(readFileSync(ref('http-capture-127.0.0.1', 'http-01.body.mime')));
    const r = await decryptEncryptedData(doc, ed, {
      privateKey: keys.get('osci_manager_cipher_4096') as KeyObject,
      resolveCid: async (cid) => parts.get(cid),
    });
    expect(r.plaintext.subarray(0, 19).toString('latin1')).to.equal('MIME-Version: 1.0\r\n');
    expect(r.plaintext.includes('Content-ID: <osci@message>')).to.equal(true);
  });

  describe('03_storeDelivery content (Bob)', () => {
    const expectedText = () => readFileSync(ref('messages', '03_storeDelivery.content-decrypted.txt'));

    function contentEncryptedData(): { doc: Document; ed: Element; parts: Map<string, Buffer> } {
      const parts = mimeParts(readFileSync(ref('messages', '03_storeDelivery.plain.mime')));
      const doc = parseXml(parts.get('osci@message') as Buffer);
      const pkg = doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ContentPackage').item(0) as Element;
      return { doc, ed: childElements(pkg, NS.xenc, 'EncryptedData')[0] as Element, parts };
    }

    it('the EncryptedKey is named by a RetrievalMethod to CipherCertificateAddressee, which ranks it first for Bob', () => {
      const { doc, ed } = contentEncryptedData();
      const eks = Array.from(ed.getElementsByTagNameNS(NS.xenc, 'EncryptedKey'));
      expect(eks).to.have.length(1);
      // With a decoy EncryptedKey in front, Bob's (named via RetrievalMethod) still comes first.
      const decoy = doc.createElementNS(NS.xenc, 'xenc:EncryptedKey');
      eks[0]!.parentNode!.insertBefore(decoy, eks[0]!);
      const order = rankEncryptedKeys(doc, [decoy, eks[0]!], keys.get('bob_cipher_4096') as KeyObject);
      expect(order[0]).to.equal(eks[0]);
      const other = rankEncryptedKeys(doc, [decoy, eks[0]!], keys.get('osci_manager_cipher_4096') as KeyObject);
      expect(other[0]).to.equal(decoy);
    });

    it('decrypts to the signed ContentContainer, byte for byte as the reference log shows it', async () => {
      const { doc, ed } = contentEncryptedData();
      const r = await decryptEncryptedData(doc, ed, { privateKey: keys.get('bob_cipher_4096') as KeyObject });
      expect(r.mimeType).to.equal('text/xml');
      const log = expectedText();
      const start = log.indexOf('\n', log.indexOf('=== decrypted content')) + 1;
      const end = log.indexOf('\n=== attachment');
      expect(r.plaintext.length).to.equal(3231);
      expect(r.plaintext.equals(log.subarray(start, end))).to.equal(true);
    });

    it('in place: Base64Content reads the greeting; the MgmtData attachment decrypts to its payload', async () => {
      const { doc, ed, parts } = contentEncryptedData();
      const { nodes } = await decryptInPlace(doc, ed, { privateKey: keys.get('bob_cipher_4096') as KeyObject });
      expect(nodes).to.have.length(1);
      const container = nodes[0] as Element;
      expect(container.localName).to.equal('ContentContainer');
      const b64 = container.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'Base64Content').item(0) as Element;
      expect(Buffer.from(textContent(b64), 'base64').toString('utf8')).to.equal('Hello Bob, this is a Base64Content from Alice (osci-java-oracle).');

      const att = childElements(container, NS.xenc, 'EncryptedData')[0] as Element;
      expect(att.getAttribute('Id')).to.equal('Attachmentattachment1.txt');
      const resolveCid = async (cid: string) => parts.get(cid);
      // The raw key travels in the (decrypted) message: accepted only on request.
      await expectRejected(decryptEncryptedData(doc, att, { resolveCid }), 'ERR_KEY_INVALID');
      const r = await decryptEncryptedData(doc, att, { acceptMgmtDataKey: true, resolveCid });
      expect(r.plaintext.toString('utf8')).to.equal('Attachment payload from Alice to Bob.\n');
      const streamed = await collect(await decryptCipherReferenceStream(doc, att, { acceptMgmtDataKey: true, resolveCid: async (c) => chunked(parts.get(c) as Buffer, 5) }));
      expect(streamed.toString('utf8')).to.equal('Attachment payload from Alice to Bob.\n');
    });

    it('the intermediary cannot read the content (generic ERR_DECRYPT with its own key)', async () => {
      const { doc, ed } = contentEncryptedData();
      await expectRejected(decryptEncryptedData(doc, ed, { privateKey: keys.get('osci_manager_cipher_4096') as KeyObject }), 'ERR_DECRYPT');
    });
  });
});
