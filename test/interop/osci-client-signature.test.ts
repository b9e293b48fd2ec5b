/**
 * The ClientSignatures of real OSCI 1.2 requests (Governikus OSCI-Bibliothek 2.4.1, shared/osci-reference) verify
 * with crypto/ alone: inclusive C14N, rsa-sha256, `cid:` digest over the raw MIME part (osci-protocol.md §6).
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { NS } from '../../crypto/algorithms.ts';
import { findSignatures, verifyXml, type VerifiedSignature } from '../../crypto/dsig.ts';
import { isCryptoError } from '../../crypto/errors.ts';
import { parseXml, type Element } from '../../crypto/xml.ts';
import { requireShared, shared } from '../helpers/env.ts';

/**
 * TEST-LOCAL minimal multipart splitter (the real codec is protocol/mime.ts): boundary from the top Content-Type
 * header, parts as raw bytes keyed by Content-ID. Enough for the reference messages, nothing more.
 */
function testLocalSplitMime(raw: Buffer): Map<string, Buffer> {
  const headerEnd = raw.indexOf('\r\n\r\n');
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(raw.subarray(0, headerEnd).toString('latin1'))?.[1];
  if (!boundary) throw new Error('test fixture: no boundary');
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const parts = new Map<string, Buffer>();
  let at = raw.indexOf(`--${boundary}`, headerEnd);
  for (;;) {
    const partStart = raw.indexOf('\r\n', at) + 2;
    const partEnd = raw.indexOf(delimiter, partStart);
    if (partEnd < 0) break;
    const part = raw.subarray(partStart, partEnd);
    const split = part.indexOf('\r\n\r\n');
    const cid = /^Content-ID:\s*<([^>]*)>/im.exec(part.subarray(0, split).toString('latin1'))?.[1];
    if (!cid) throw new Error('test fixture: part without Content-ID');
    parts.set(cid, part.subarray(split + 4));
    at = partEnd + 2;
    if (raw.subarray(partEnd + delimiter.length, partEnd + delimiter.length + 2).toString('latin1') === '--') break;
  }
  return parts;
}

const M = (f: string) => shared('osci-reference/messages', f);
const C = (f: string) => new X509Certificate(readFileSync(shared('osci-reference/certs', f)));

async function verifyMessage(
  file: string,
  signer: X509Certificate,
  tamper?: (parts: Map<string, Buffer>) => void,
): Promise<{ result: VerifiedSignature; signature: Element }> {
  const parts = testLocalSplitMime(readFileSync(M(file)));
  tamper?.(parts);
  const soap = parts.get('osci@message');
  if (!soap) throw new Error('test fixture: no SOAP part');
  const doc = parseXml(soap);
  const sigs = findSignatures(doc);
  expect(sigs, 'exactly one ds:Signature in the SOAP part').to.have.length(1);
  const signature = sigs[0] as Element;
  expect((signature.parentNode as Element).localName).to.equal('ClientSignature');
  const result = await verifyXml(doc, signature, {
    trust: signer,
    resolveCid: async (cid) => (cid === 'osci@message' ? undefined : parts.get(cid)),
  });
  return { result, signature };
}

describe('interop: OSCI reference ClientSignatures', () => {
  before(function () {
    requireShared(this);
  });
  const alice = () => C('alice_signature_4096.cer');
  const bob = () => C('bob_signature_4096.cer');

  it('03_storeDelivery: 9 references incl. cid:attachment1.txt verify with Alice’s signature certificate', async () => {
    const { result, signature } = await verifyMessage('03_storeDelivery.plain.mime', alice());
    expect(result.signatureAlgorithm).to.equal('http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
    expect(result.c14nAlgorithm).to.equal('http://www.w3.org/TR/2001/REC-xml-c14n-20010315');
    expect(result.references).to.have.length(9);
    expect(result.references.map((r) => r.uri).sort()).to.deep.equal(
      [
        '#body',
        '#controlblock',
        '#desiredlanguages',
        '#featuredescription',
        '#nonintermediarycertificates',
        '#qualityoftimestamp_creation',
        '#qualityoftimestamp_reception',
        '#storedelivery',
        'cid:attachment1.txt',
      ].sort(),
    );
    const cid = result.references.find((r) => r.kind === 'cid');
    expect(cid?.transforms).to.deep.equal([]);
    expect(result.signedElements.get('body')?.localName).to.equal('Body');
    expect(result.signer?.subject).to.equal(alice().subject);
    // KeyInfo only points into the message (RetrievalMethod); trust came from the caller's certificate.
    const rm = signature.getElementsByTagNameNS(NS.ds, 'RetrievalMethod')[0];
    expect(rm?.getAttribute('URI')).to.match(/^#originator_signature_/);
  });

  it('03_storeDelivery with the caller’s reference expectations (exact)', async () => {
    const parts = testLocalSplitMime(readFileSync(M('03_storeDelivery.plain.mime')));
    const doc = parseXml(parts.get('osci@message') as Buffer);
    const ids = ['controlblock', 'desiredlanguages', 'qualityoftimestamp_creation', 'qualityoftimestamp_reception', 'storedelivery'];
    const more = ['nonintermediarycertificates', 'featuredescription', 'body'];
    const opts = { trust: alice(), resolveCid: async (cid: string) => parts.get(cid) };
    await verifyXml(doc, findSignatures(doc)[0] as Element, { ...opts, expectedReferences: { ids: [...ids, ...more], cids: ['attachment1.txt'], exact: true } });
    try {
      await verifyXml(doc, findSignatures(doc)[0] as Element, { ...opts, expectedReferences: { ids, cids: ['attachment1.txt'] } });
      expect.fail('an unexpected reference was accepted');
    } catch (e) {
      expect(isCryptoError(e) && e.code).to.equal('ERR_SIG_STRUCTURE');
    }
  });

  it('01_initDialog verifies with Alice’s certificate', async () => {
    const { result } = await verifyMessage('01_initDialog.plain.mime', alice());
    expect(result.references.map((r) => r.uri)).to.include.members(['#controlblock', '#body', '#desiredlanguages']);
    expect(result.references.every((r) => r.kind === 'id')).to.equal(true);
  });

  it('04_fetchDelivery verifies with Bob’s certificate, not with Alice’s', async () => {
    const { result } = await verifyMessage('04_fetchDelivery.plain.mime', bob());
    expect(result.signedElements.has('fetchdelivery')).to.equal(true);
    try {
      await verifyMessage('04_fetchDelivery.plain.mime', alice());
      expect.fail('verified with the wrong certificate');
    } catch (e) {
      expect(isCryptoError(e) && e.code).to.equal('ERR_SIG_INVALID');
    }
  });

  it('one changed byte of the attachment → ERR_SIG_DIGEST naming cid:attachment1.txt', async () => {
    try {
      await verifyMessage('03_storeDelivery.plain.mime', alice(), (parts) => {
        const att = Buffer.from(parts.get('attachment1.txt') as Buffer);
        expect(att.length).to.equal(66);
        att[30] = (att[30] as number) ^ 0x01;
        parts.set('attachment1.txt', att);
      });
      expect.fail('tampered attachment verified');
    } catch (e) {
      expect(isCryptoError(e) && e.code).to.equal('ERR_SIG_DIGEST');
      expect((e as Error).message).to.contain('cid:attachment1.txt');
    }
  });

  it('a changed Body → ERR_SIG_DIGEST naming #body', async () => {
    try {
      await verifyMessage('03_storeDelivery.plain.mime', alice(), (parts) => {
        const soap = parts.get('osci@message') as Buffer;
        const text = soap.toString('utf8');
        const at = text.indexOf('<xenc:CipherValue>', text.indexOf('<soap:Body'));
        expect(at).to.be.greaterThan(0);
        const i = at + '<xenc:CipherValue>'.length + 10;
        const flipped = text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1);
        parts.set('osci@message', Buffer.from(flipped, 'utf8'));
      });
      expect.fail('tampered body verified');
    } catch (e) {
      expect(isCryptoError(e) && e.code).to.equal('ERR_SIG_DIGEST');
      expect((e as Error).message).to.contain('#body');
    }
  });
});
