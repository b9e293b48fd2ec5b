/**
 * Tampering with OSCI messages (osci-protocol.md §5, §6): a changed byte in the transport ciphertext, IV, tag or
 * EncryptedKey, in any header block, the Body, an attachment or the SignatureValue is refused with a specific
 * code; nothing of the plaintext (no part, no parse error, no XML) is used before its GCM tag verified; unsigned or foreign references, several
 * signatures, Id wrapping and key substitution are refused; and a sweep of single-bit flips over whole messages
 * either fails with a typed error or decodes to exactly the original.
 */
import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DECRYPT_FAILED } from '../../crypto/aesgcm.ts';
import { signXml, type SignReference } from '../../crypto/dsig.ts';
import { encryptBinary } from '../../crypto/xenc.ts';
import { parseXml, serializeXml } from '../../crypto/xml.ts';
import {
  decodeMessage,
  encodeMessage,
  sealContent,
  withSignerCertificate,
  type DecodeOptions,
  type DecodedMessage,
  type SealedContent,
} from '../../protocol/envelope/index.ts';
import { OsciError } from '../../protocol/errors.ts';
import { binaryPartHeaders, parseMultipartBuffer, soapPartHeaders, writeMultipartBuffer, type MultipartPartInput } from '../../protocol/mime.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { OsciMessage } from '../../protocol/model.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import { CryptoError } from '../../crypto/errors.ts';
import { readAll, selfSignedIdentity, type Identity } from '../helpers/keys.ts';

const identity = (cn: string): Identity => selfSignedIdentity(cn, 'Amtsbote tampering test');
const bytes = readAll;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function code(p: Promise<DecodedMessage>): Promise<string> {
  try {
    const d = await p;
    await d.dispose();
  } catch (e) {
    expect(e, `typed error, got ${String(e)}`).to.be.instanceOf(OsciError);
    return (e as OsciError).code;
  }
  return 'ACCEPTED';
}

async function failure(p: Promise<DecodedMessage>): Promise<OsciError> {
  try {
    const d = await p;
    await d.dispose();
  } catch (e) {
    expect(e).to.be.instanceOf(OsciError);
    return e as OsciError;
  }
  expect.fail('tampered message accepted');
}

/** Certificates in a fixed order: the builder writes template order whatever the model's order. */
function normal(m: OsciMessage): OsciMessage {
  if (!('certificates' in m)) return m;
  return { ...m, certificates: [...m.certificates].sort((a, b) => a.id.localeCompare(b.id)) } as OsciMessage;
}

function flip(buf: Buffer, at: number, mask = 0x01): Buffer {
  const out = Buffer.from(buf);
  out[at] = (out[at] as number) ^ mask;
  return out;
}

/** Replace exactly one occurrence of `from` (latin1, so binary parts survive). */
function replaceOnce(buf: Buffer, from: string, to: string): Buffer {
  const s = buf.toString('latin1');
  const i = s.indexOf(from);
  expect(i, `fixture contains ${from.slice(0, 40)}`).to.be.greaterThan(-1);
  expect(s.indexOf(from, i + 1), `${from.slice(0, 40)} occurs once`).to.equal(-1);
  return Buffer.from(s.slice(0, i) + to + s.slice(i + from.length), 'latin1');
}

/** Offset and length of the body of the MIME part with this Content-ID. */
function partBody(wire: Buffer, cid: string): { start: number; end: number } {
  const h = wire.indexOf(`Content-ID: <${cid}>`);
  const start = wire.indexOf('\r\n\r\n', h) + 4;
  const boundary = /boundary=([^;\r\n]+)/.exec(wire.subarray(0, 200).toString('latin1'))?.[1] as string;
  const end = wire.indexOf(`\r\n--${boundary}`, start);
  return { start, end };
}

describe('security: tampering with OSCI envelopes', function () {
  this.timeout(300_000);
  let tmp: string;
  let client: Identity;
  let clientCipher: Identity;
  let im: Identity;
  let attacker: Identity;
  let bob: Identity;
  let sealed: SealedContent;
  let msg: OsciMessage;
  let signedMsg: OsciMessage;
  let wire: Buffer; // signed, transport-encrypted
  let plain: Buffer; // the same order signed, unencrypted
  const attachment = Buffer.from('Anlage K1 — '.repeat(200));

  const opts = (extra: Partial<DecodeOptions> = {}): DecodeOptions => ({
    transportKeys: [{ key: im.key, cert: im.cert }],
    tmpDir: tmp,
    signature: 'required',
    // Pinned: the client's certificate is the verification key whatever the message carries.
    trustSigner: async () => client.cert,
    ...extra,
  });

  /** Test-local transport wrapper (the codec's is encryptTransport): encrypts arbitrary inner bytes for `to`. */
  async function wrap(inner: Buffer, to: X509Certificate = im.cert): Promise<Buffer> {
    const scratch = parseXml('<s xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>');
    const enc = encryptBinary(scratch, {
      recipients: [{ key: to, keyInfo: { x509Certificate: to.raw } }],
      cid: 'osci_enc',
      mimeType: 'Multipart/Related',
      ivLengthElement: true,
      declareBase64Transform: true,
    });
    const soap = buildSoap({ type: 'soapMessageEncrypted', encryptedData: serializeXml(enc.encryptedData) }).xml();
    const out = await writeMultipartBuffer(
      [
        { headers: soapPartHeaders(), body: Buffer.from(soap) },
        { headers: binaryPartHeaders('osci_enc'), body: enc.encrypt(inner) },
      ],
      { includeTopHeaders: true },
    );
    return out.body;
  }

  /** Re-serialise an inner message after editing its SOAP text and/or its parts. */
  async function rebuild(inner: Buffer, edit: { soap?: (s: string) => string; parts?: (p: MultipartPartInput[]) => MultipartPartInput[] }): Promise<Buffer> {
    const mp = await parseMultipartBuffer(inner);
    let parts: MultipartPartInput[] = mp.parts.map((p) => ({ headers: Object.fromEntries(p.rawHeaders), body: p.body as Buffer }));
    if (edit.soap) {
      const root = parts[0] as MultipartPartInput;
      parts[0] = { headers: root.headers, body: Buffer.from(edit.soap((root.body as Buffer).toString('utf8')), 'utf8') };
    }
    if (edit.parts) parts = edit.parts(parts);
    return (await writeMultipartBuffer(parts, { boundary: mp.boundary, includeTopHeaders: true })).body;
  }

  /** Sign `m` ourselves with chosen references (the codec always signs everything). */
  async function customSigned(m: OsciMessage, refs: (ids: string[]) => SignReference[], signer: Identity = client): Promise<Buffer> {
    const { message, certId } = withSignerCertificate(m, signer.cert);
    const built = buildSoap(message, { attachments: ['anlage.txt'], signaturePlaceholder: true });
    await signXml(built.doc, built.signatureParent as never, { key: signer.key, references: refs(built.signedIds), keyInfo: { retrievalMethod: { uri: `#${certId}` } } });
    return (
      await writeMultipartBuffer(
        [
          { headers: soapPartHeaders(), body: Buffer.from(built.xml()) },
          { headers: binaryPartHeaders('anlage.txt', attachment.length), body: attachment },
        ],
        { includeTopHeaders: true },
      )
    ).body;
  }
  const refsOf = (ids: string[]): SignReference[] =>
    ids.map((id) => (id.startsWith('cid:') ? { uri: id, data: attachment } : { id }));

  before(async function () {
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-tamper-'));
    client = identity('Kanzlei Signatur');
    clientCipher = identity('Kanzlei Chiffrierung');
    im = identity('Intermediär Chiffrierung');
    attacker = identity('Angreifer');
    bob = identity('Stadt Chiffrierung');
    sealed = await sealContent({ author: client, readers: [bob.cert], contents: [{ base64Content: Buffer.from('Klageschrift') }], tmpDir: tmp });
    msg = {
      type: 'storeDelivery',
      controlBlock: { sequenceNumber: 0, challenge: 'MTIzNDU2Nzg5MA==' },
      desiredLanguages: ['de'],
      qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
      messageId: Buffer.from('msg-0001').toString('base64'),
      subject: 'Klage 12 C 1000/26',
      contentPackage: sealed.contentPackage,
      certificates: [certificate('originator', 'cipher', clientCipher.cert.raw), ...sealed.certificates],
    };
    signedMsg = normal(withSignerCertificate(msg, client.cert).message);
    const attachments = [{ contentId: 'anlage.txt', size: attachment.length, open: () => Readable.from([attachment]) }];
    wire = await bytes((await encodeMessage(msg, { signer: client, encryptFor: im.cert, attachments })).stream);
    plain = await bytes((await encodeMessage(msg, { signer: client, attachments })).stream);
  });
  after(async () => {
    await sealed?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('the untampered fixtures decode', async () => {
    for (const w of [wire, plain, await wrap(plain)]) {
      const d = await decodeMessage(w, opts());
      expect(normal(d.message)).to.deep.equal(signedMsg);
      await d.dispose();
    }
  });

  describe('transport layer', () => {
    it('a byte of the ciphertext, the IV or the tag → ERR_DECRYPT, one generic message', async () => {
      const { start, end } = partBody(wire, 'osci_enc');
      for (const at of [start + 5 /* IV */, start + 12 + 1000 /* ciphertext */, end - 20 /* ciphertext end */, end - 1 /* tag */]) {
        const e = await failure(decodeMessage(flip(wire, at), opts()));
        expect(e.code, `offset ${at - start}`).to.equal('ERR_DECRYPT');
        expect(e.message).to.equal(DECRYPT_FAILED);
      }
    });

    it('a character of the EncryptedKey → ERR_DECRYPT', async () => {
      const text = wire.toString('latin1');
      const cv = text.indexOf('<xenc:CipherValue>') + '<xenc:CipherValue>'.length + 40;
      const swapped = Buffer.from(wire);
      swapped[cv] = swapped[cv] === 0x41 ? 0x42 : 0x41;
      expect((await failure(decodeMessage(swapped, opts()))).code).to.equal('ERR_DECRYPT');
    });

    it('nothing of the plaintext is used before the GCM tag verified: garbage with a bad tag is ERR_DECRYPT, not a MIME error', async () => {
      const garbage = await wrap(Buffer.from('this is not MIME at all\r\n\r\n'));
      expect(await code(decodeMessage(garbage, opts()))).to.equal('ERR_MIME_MALFORMED');
      const { end } = partBody(garbage, 'osci_enc');
      expect(await code(decodeMessage(flip(garbage, end - 3), opts()))).to.equal('ERR_DECRYPT');
    });

    it('a large inner entity is split into files while it is decrypted: with a bad tag the split parts are dropped, ERR_DECRYPT, no file left', async () => {
      const big = Buffer.alloc(6 * 1024 * 1024, 0x41); // beyond the 4 MiB in-memory budget: the part goes to a file
      const inner = await rebuild(plain, { parts: (ps) => [...ps, { headers: binaryPartHeaders('gross.bin', big.length), body: big }] });
      const w = await wrap(inner);
      const dir = mkdtempSync(join(tmp, 'split-'));
      // Valid tag: the split is taken (the unsigned extra part is then the signature layer's refusal).
      expect(await code(decodeMessage(w, opts({ tmpDir: dir })))).to.equal('ERR_SIGNATURE_INCOMPLETE');
      const { end } = partBody(w, 'osci_enc');
      for (const at of [end - 1, end - 1000]) {
        const e = await failure(decodeMessage(flip(w, at), opts({ tmpDir: dir })));
        expect(e.code, `offset ${at}`).to.equal('ERR_DECRYPT');
        expect(e.message).to.equal(DECRYPT_FAILED);
      }
      // A broken inner entity (here: its final boundary gone) is only reported once the tag verified.
      const cut = await wrap(inner.subarray(0, inner.length - 40));
      expect(await code(decodeMessage(cut, opts({ tmpDir: dir })))).to.equal('ERR_MIME_MALFORMED');
      expect(await code(decodeMessage(flip(cut, partBody(cut, 'osci_enc').end - 2), opts({ tmpDir: dir })))).to.equal('ERR_DECRYPT');
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('a truncated payload: ERR_MIME_MALFORMED against its Content-Length, ERR_DECRYPT without one', async () => {
      const { end } = partBody(wire, 'osci_enc');
      const cut = Buffer.concat([wire.subarray(0, end - 7), wire.subarray(end)]);
      expect(await code(decodeMessage(cut, opts()))).to.equal('ERR_MIME_MALFORMED');
      const w = await wrap(plain);
      const e2 = partBody(w, 'osci_enc');
      expect(await code(decodeMessage(Buffer.concat([w.subarray(0, e2.end - 7), w.subarray(e2.end)]), opts()))).to.equal('ERR_DECRYPT');
    });

    it('keys: the named certificate is not ours → ERR_TRANSPORT_KEY_UNKNOWN; nothing named and no key fits → ERR_DECRYPT (same message as a bad tag)', async () => {
      expect(await code(decodeMessage(wire, opts({ transportKeys: [{ key: attacker.key, cert: attacker.cert }] })))).to.equal('ERR_TRANSPORT_KEY_UNKNOWN');
      expect(await code(decodeMessage(wire, opts({ transportKeys: [] })))).to.equal('ERR_TRANSPORT_KEY_UNKNOWN');
      const text = wire.toString('latin1');
      const ek = text.indexOf('<xenc:EncryptedKey');
      const kiStart = text.indexOf('<ds:KeyInfo>', ek);
      const kiEnd = text.indexOf('</ds:KeyInfo>', kiStart) + '</ds:KeyInfo>'.length;
      const anonymous = Buffer.from(text.slice(0, kiStart) + text.slice(kiEnd), 'latin1');
      const e = await failure(decodeMessage(anonymous, opts({ transportKeys: [{ key: attacker.key, cert: attacker.cert }] })));
      expect([e.code, e.message]).to.deep.equal(['ERR_DECRYPT', DECRYPT_FAILED]);
      // With the right key the anonymous message still opens (the certificate is a hint only).
      const ok = await decodeMessage(anonymous, opts());
      await ok.dispose();
    });

    it('65 EncryptedKeys (RSA work amplification) → ERR_ENC_STRUCTURE', async () => {
      const text = wire.toString('latin1');
      const a = text.indexOf('<xenc:EncryptedKey');
      const b = text.indexOf('</xenc:EncryptedKey>', a) + '</xenc:EncryptedKey>'.length;
      const many = Buffer.from(text.slice(0, a) + text.slice(a, b).repeat(65) + text.slice(b), 'latin1');
      expect(await code(decodeMessage(many, opts()))).to.equal('ERR_ENC_STRUCTURE');
    });

    it('a further part next to osci_enc → ERR_MIME_MALFORMED; nested transport encryption → ERR_SOAP_MALFORMED', async () => {
      const extra = replaceOnce(wire, '--\r\n', `\r\nContent-ID: <smuggled>\r\n\r\nx\r\n--${/boundary=([^;\r\n]+)/.exec(wire.toString('latin1'))?.[1]}--\r\n`);
      expect(await code(decodeMessage(extra, opts()))).to.equal('ERR_MIME_MALFORMED');
      expect(await code(decodeMessage(await wrap(wire), opts()))).to.equal('ERR_SOAP_MALFORMED');
    });
  });

  describe('signature layer (behind valid transport encryption)', () => {
    const edited = async (edit: Parameters<typeof rebuild>[1]) => wrap(await rebuild(plain, edit));

    it('a header block (ControlBlock Challenge) → ERR_SIG_DIGEST', async () => {
      expect(await code(decodeMessage(await edited({ soap: (s) => s.replace('MTIzNDU2Nzg5MA==', 'MTIzNDU2Nzg5MQ==') }), opts()))).to.equal('ERR_SIG_DIGEST');
    });

    it('the type block (Subject) → ERR_SIG_DIGEST', async () => {
      expect(await code(decodeMessage(await edited({ soap: (s) => s.replace('Klage 12 C 1000/26', 'Klage 12 C 1001/26') }), opts()))).to.equal('ERR_SIG_DIGEST');
    });

    it('the Body (content CipherValue) → ERR_SIG_DIGEST', async () => {
      const soap = (s: string) => {
        const i = s.indexOf('<xenc:CipherValue>', s.indexOf('<soap:Body')) + 30;
        return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      };
      expect(await code(decodeMessage(await edited({ soap }), opts()))).to.equal('ERR_SIG_DIGEST');
    });

    it('an attachment byte → ERR_SIG_DIGEST', async () => {
      const parts = (p: MultipartPartInput[]) => [p[0] as MultipartPartInput, { headers: (p[1] as MultipartPartInput).headers, body: flip(attachment, 77) }];
      expect(await code(decodeMessage(await edited({ parts }), opts()))).to.equal('ERR_SIG_DIGEST');
    });

    it('the SignatureValue → ERR_SIG_INVALID', async () => {
      const soap = (s: string) => {
        const i = s.indexOf('<ds:SignatureValue>') + 40;
        return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      };
      expect(await code(decodeMessage(await edited({ soap }), opts()))).to.equal('ERR_SIG_INVALID');
    });

    it('an unsigned attachment added → ERR_SIGNATURE_INCOMPLETE', async () => {
      const parts = (p: MultipartPartInput[]) => [...p, { headers: binaryPartHeaders('smuggled.pdf', 3), body: Buffer.from('abc') }];
      expect(await code(decodeMessage(await edited({ parts }), opts()))).to.equal('ERR_SIGNATURE_INCOMPLETE');
    });

    it('the ClientSignature removed → ERR_SIGNATURE_MISSING', async () => {
      const soap = (s: string) => s.replace(/<osci:ClientSignature[\s\S]*<\/osci:ClientSignature>/, '');
      expect(await code(decodeMessage(await edited({ soap }), opts()))).to.equal('ERR_SIGNATURE_MISSING');
    });
  });

  describe('what the signature covers', () => {
    it('a header block the parser reads but the signature omits → ERR_SIGNATURE_INCOMPLETE', async () => {
      const w = await customSigned(msg, (ids) => refsOf(ids.filter((i) => i !== 'desiredlanguages')));
      expect(await code(decodeMessage(w, opts()))).to.equal('ERR_SIGNATURE_INCOMPLETE');
    });

    it('an attachment the signature omits → ERR_SIGNATURE_INCOMPLETE', async () => {
      const w = await customSigned(msg, (ids) => refsOf(ids.filter((i) => !i.startsWith('cid:'))));
      expect(await code(decodeMessage(w, opts()))).to.equal('ERR_SIGNATURE_INCOMPLETE');
    });

    it('a reference to anything else (an element inside the Body) → ERR_SIG_STRUCTURE', async () => {
      const w = await customSigned(msg, (ids) => [...refsOf(ids), { id: 'encdata_0' }]);
      expect(await code(decodeMessage(w, opts()))).to.equal('ERR_SIG_STRUCTURE');
    });

    it('the customised signer still verifies when it covers everything (control)', async () => {
      const d = await decodeMessage(await customSigned(msg, refsOf), opts());
      expect(normal(d.message)).to.deep.equal(signedMsg);
      await d.dispose();
    });

    it('a second ds:Signature in the header → ERR_SIG_STRUCTURE', async () => {
      const soap = (s: string) => {
        const sig = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(s)?.[0] as string;
        return s.replace('</soap:Header>', `<x:Extra xmlns:x="urn:x" Id="extra">${sig}</x:Extra></soap:Header>`);
      };
      expect(await code(decodeMessage(await rebuild(plain, { soap }), opts()))).to.equal('ERR_SIG_STRUCTURE');
    });

    it('a second ds:Signature dressed as a content signature outside the Body → ERR_SIG_STRUCTURE', async () => {
      const soap = (s: string) => {
        const sig = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(s)?.[0] as string;
        return s.replace('</soap:Header>', `<x:Extra xmlns:x="urn:x"><osci:ContentContainer Id="cc9">${sig}</osci:ContentContainer></x:Extra></soap:Header>`);
      };
      expect(await code(decodeMessage(await rebuild(plain, { soap }), opts()))).to.equal('ERR_SIG_STRUCTURE');
    });

    it('Id wrapping: a forged block with a signed Id → ERR_XML_DUPLICATE_ID', async () => {
      const soap = (s: string) => s.replace('</soap:Header>', '<x:Extra xmlns:x="urn:x" Id="storedelivery"><x:Subject>Anders</x:Subject></x:Extra></soap:Header>');
      expect(await code(decodeMessage(await rebuild(plain, { soap }), opts()))).to.equal('ERR_XML_DUPLICATE_ID');
    });

    it('KeyInfo pointing at another certificate element → ERR_SIG_STRUCTURE', async () => {
      const soap = (s: string) => s.replace(/<ds:RetrievalMethod URI="#originator_signature_/, '<ds:RetrievalMethod URI="#addressee_cipher_');
      expect(await code(decodeMessage(await rebuild(plain, { soap }), opts()))).to.equal('ERR_SIG_STRUCTURE');
    });

    it('key substitution: re-signed by an attacker who carries his own certificate → the pinned key says ERR_SIG_INVALID', async () => {
      const forged = { ...msg, certificates: [certificate('originator', 'cipher', clientCipher.cert.raw), certificate('addressee', 'cipher', bob.cert.raw)] } as OsciMessage;
      const w = await customSigned(forged, refsOf, attacker);
      expect(await code(decodeMessage(w, opts()))).to.equal('ERR_SIG_INVALID');
      // A trustSigner that checks the carried certificate refuses with its own code.
      const refuse: DecodeOptions['trustSigner'] = async (carried) => {
        if (!carried?.raw.equals(client.cert.raw)) throw new CryptoError('ERR_CERT_UNTRUSTED', 'unknown signer');
        return client.cert;
      };
      expect(await code(decodeMessage(w, opts({ trustSigner: refuse })))).to.equal('ERR_CERT_UNTRUSTED');
    });

    it('an unsigned foreign header block is not part of the decoded message', async () => {
      const soap = (s: string) => s.replace('</soap:Header>', '<x:Note xmlns:x="urn:x" Id="note">unsigned</x:Note></soap:Header>');
      const d = await decodeMessage(await rebuild(plain, { soap }), opts());
      expect(d.soap.extraHeaders).to.deep.equal([]);
      expect(normal(d.message)).to.deep.equal(signedMsg);
      await d.dispose();
    });
  });

  describe('single-bit flips across whole messages', () => {
    const allowed = new Set([
      'ERR_MIME_MALFORMED', 'ERR_MIME_LIMIT', 'ERR_SOAP_MALFORMED', 'ERR_MESSAGE_TYPE_UNKNOWN', 'ERR_CONTROLBLOCK', 'ERR_XML_MALFORMED',
      'ERR_XML_DUPLICATE_ID', 'ERR_XML_ID_NOT_FOUND', 'ERR_SIG_STRUCTURE', 'ERR_SIG_DIGEST', 'ERR_SIG_INVALID', 'ERR_ALG_NOT_ALLOWED',
      'ERR_DECRYPT', 'ERR_ENC_STRUCTURE', 'ERR_TRANSPORT_KEY_UNKNOWN', 'ERR_SIGNATURE_INCOMPLETE', 'ERR_SIGNATURE_MISSING',
      'ERR_CID_NOT_FOUND', 'ERR_KEY_INVALID', 'ERR_CIPHER_CERT_MISSING',
    ]);

    async function sweep(message: Buffer, step: number, dir: string): Promise<{ rejected: number; identical: number }> {
      let rejected = 0;
      let identical = 0;
      const refAtt = sha(attachment);
      for (let at = 0; at < message.length; at += step) {
        let d: DecodedMessage;
        try {
          d = await decodeMessage(flip(message, at, 0x04), opts({ tmpDir: dir }));
        } catch (e) {
          expect(e, `offset ${at}: typed error`).to.be.instanceOf(OsciError);
          expect(allowed.has((e as OsciError).code), `offset ${at}: ${(e as OsciError).code} ${(e as Error).message} ${String((e as Error).cause)} ${JSON.stringify(message.subarray(at - 30, at + 30).toString('latin1'))}`).to.equal(true);
          rejected++;
          continue;
        }
        // Accepted only if nothing that matters changed (e.g. a header parameter the codec does not read).
        try {
          expect(normal(d.message), `offset ${at}: accepted with a different model`).to.deep.equal(signedMsg);
          expect(d.attachments.map((a) => a.sha256.toString('hex')), `offset ${at}`).to.deep.equal([refAtt]);
          identical++;
        } finally {
          await d.dispose();
        }
      }
      return { rejected, identical };
    }

    it('the transport-encrypted wire message', async () => {
      const dir = mkdtempSync(join(tmp, 'sweep-'));
      const r = await sweep(wire, 37, dir);
      expect(r.rejected).to.be.greaterThan(r.identical * 5);
      // Every rejected or disposed decode left no temporary file behind.
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('the signed plaintext behind valid transport encryption', async () => {
      const base = await wrap(plain);
      // Flip inside the plaintext, then encrypt it validly: only the signature layer can notice.
      let rejected = 0;
      for (let at = 0; at < plain.length; at += 41) {
        const w = await wrap(flip(plain, at, 0x04));
        const c = await code(decodeMessage(w, opts()));
        if (c !== 'ACCEPTED') {
          expect(allowed.has(c), `offset ${at}: ${c}`).to.equal(true);
          rejected++;
        } else {
          const d = await decodeMessage(w, opts());
          expect(normal(d.message), `offset ${at}`).to.deep.equal(signedMsg);
          expect(d.attachments[0]?.sha256.toString('hex')).to.equal(sha(attachment));
          await d.dispose();
        }
      }
      expect(rejected).to.be.greaterThan(0);
      expect(base.length).to.be.greaterThan(plain.length);
    });
  });
});
