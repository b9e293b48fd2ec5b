/**
 * The MIME codec against every message the Governikus reference library produced
 * (../shared/osci-reference/messages, http-capture-127.0.0.1): part counts, Content-IDs, raw bytes,
 * the quirks of osci-protocol.md §11, and byte-identical re-serialisation.
 */
import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { isOsciError } from '../../protocol/errors.ts';
import {
  parseMultipart,
  parseMultipartBuffer,
  writeMultipartBuffer,
  type ParsedMultipart,
} from '../../protocol/mime.ts';
import { requireShared, shared } from '../helpers/env.ts';

const MSG_DIR = shared('osci-reference', 'messages');
const CAPTURE = shared('osci-reference', 'http-capture-127.0.0.1');
const REF_BOUNDARY = /^MIME_boundary_[A-Za-z0-9+/]{32}$/;

function messageFiles(): string[] {
  return readdirSync(MSG_DIR)
    .filter((f) => f.endsWith('.mime'))
    .sort();
}

/** Deterministic chunking (xorshift) so that failures are reproducible. */
function* chunks(buf: Buffer, seed: number, max: number): Generator<Buffer> {
  let x = seed || 1;
  let i = 0;
  while (i < buf.length) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const n = 1 + ((x >>> 0) % max);
    yield buf.subarray(i, i + n);
    i += n;
  }
}
async function* asAsync(it: Iterable<Buffer>): AsyncGenerator<Buffer> {
  yield* it;
}

function summary(m: ParsedMultipart): unknown {
  return m.parts.map((p) => ({ cid: p.contentId, size: p.size, sha256: p.sha256.toString('hex'), cte: p.transferEncoding }));
}

describe('reference MIME messages (Governikus OSCI-Bibliothek 2.4.1)', function () {
  before(function () {
    requireShared(this);
  });

  it('has captured files to test', function () {
    expect(messageFiles()).to.have.length(18);
  });

  describe('every captured .mime parses with the reference quirks', function () {
    for (const f of [
      '01_initDialog', '02_getMessageId', '03_storeDelivery', '04a_initDialog_bob', '04_fetchDelivery',
      '04z_exitDialog_bob', '05_fetchProcessCard', '05z_exitDialog_alice', '06_initDialog_noTransportEncryption',
    ]) {
      for (const kind of ['plain', 'wire'] as const) {
        it(`${f}.${kind}.mime`, async function () {
          const buf = readFileSync(`${MSG_DIR}/${f}.${kind}.mime`);
          // HTTP said text/xml: the multipart headers come from the body (§11).
          const m = await parseMultipartBuffer(buf, { contentType: 'text/xml' });
          expect(m.type).to.equal('multipart/related');
          expect(m.rootType).to.equal('text/xml');
          expect(m.boundary).to.match(REF_BOUNDARY);
          expect(m.headers.get('mime-version')).to.equal('1.0');
          expect(m.root).to.equal(0);
          expect(m.totalBytes).to.equal(buf.length);
          const soap = m.parts[0];
          expect(soap?.contentId).to.equal('osci@message');
          expect(soap?.contentType).to.equal('text/xml');
          expect(soap?.transferEncoding).to.equal('8bit');
          expect(soap?.body?.subarray(0, 38).toString('latin1')).to.equal('<?xml version="1.0" encoding="UTF-8"?>');
          expect(soap?.body?.subarray(-16).toString('latin1')).to.match(/Envelope>(\r\n)?$/);

          const encrypted = kind === 'wire' && !f.startsWith('06');
          if (encrypted) {
            expect(m.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', 'osci_enc']);
            const enc = m.parts[1];
            expect(enc?.transferEncoding).to.equal('binary');
            expect(enc?.contentType).to.equal('application/octet-stream');
            // osci_enc = IV(12) ‖ AES-GCM ciphertext of the whole .plain.mime ‖ tag(16) (§5)
            expect(enc?.size).to.equal(readFileSync(`${MSG_DIR}/${f}.plain.mime`).length + 28);
            // The reference library declares a wrong Content-Length on the wire SOAP part.
            expect(soap?.contentLength).to.equal(2202);
            expect(soap?.size).to.equal(4047);
            expect(soap?.lengthMismatch).to.equal(true);
          } else if (f.startsWith('03')) {
            expect(m.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', 'attachment1.txt']);
          } else {
            expect(m.parts).to.have.length(1);
            expect(soap?.lengthMismatch).to.equal(undefined);
          }
        });
      }
    }
  });

  it('03 storeDelivery: the 66-byte attachment, its "8-bit" encoding, and the ClientSignature cid: digest', async function () {
    const buf = readFileSync(`${MSG_DIR}/03_storeDelivery.plain.mime`);
    const m = await parseMultipartBuffer(buf);
    const att = m.parts[1];
    expect(att?.size).to.equal(66);
    expect(att?.body).to.have.length(66);
    expect(att?.contentLength).to.equal(66);
    expect(att?.transferEncoding).to.equal('8-bit');
    expect(att?.contentType).to.equal('application/octet-stream');
    expect(att?.lengthMismatch).to.equal(undefined);
    // The ClientSignature's reference digest is SHA-256 over the raw part bytes (§6).
    const xml = m.parts[0]?.body?.toString('utf8') ?? '';
    const ref = /<ds:Reference URI="cid:attachment1\.txt">[\s\S]*?<ds:DigestValue>([^<]+)<\/ds:DigestValue>/.exec(xml);
    expect(ref, 'cid reference in the ClientSignature').to.not.equal(null);
    expect(att?.sha256.toString('base64')).to.equal(ref?.[1]);
  });

  it('the HTTP capture: Content-Type text/xml from the real request headers, body parsed from its own headers', async function () {
    const head = readFileSync(`${CAPTURE}/http-01.headers.txt`, 'latin1');
    const contentType = /^Content-Type:\s*(.+?)\r?$/im.exec(head)?.[1];
    expect(contentType).to.equal('text/xml');
    const declared = Number(/^Content-Length:\s*(\d+)/im.exec(head)?.[1]);
    const buf = readFileSync(`${CAPTURE}/http-01.body.mime`);
    expect(buf.length).to.equal(declared);
    const m = await parseMultipartBuffer(buf, { contentType });
    expect(m.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', 'osci_enc']);
    expect(m.boundary).to.match(REF_BOUNDARY).and.to.include('/');
  });

  it('the wire SOAP part Content-Length is refused under contentLengthCheck "strict"', async function () {
    const buf = readFileSync(`${MSG_DIR}/01_initDialog.wire.mime`);
    const err = await parseMultipartBuffer(buf, { contentLengthCheck: 'strict' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isOsciError(err) && err.code).to.equal('ERR_MIME_MALFORMED');
  });

  it('gives the same result for any chunking of the input (1-byte and random chunks)', async function () {
    for (const f of messageFiles()) {
      const buf = readFileSync(`${MSG_DIR}/${f}`);
      const whole = summary(await parseMultipartBuffer(buf));
      for (const [seed, max] of [[7, 1], [11, 97], [13, 4096]] as const) {
        if (max === 1 && !f.startsWith('03_storeDelivery.plain')) continue; // 1-byte pass once, on the richest file
        const m = await parseMultipart(asAsync(chunks(buf, seed, max)));
        expect(summary(m), `${f} chunked ${seed}/${max}`).to.deep.equal(whole);
      }
    }
  });

  it('streams bodies to sinks; the SOAP part stays in memory', async function () {
    const buf = readFileSync(`${MSG_DIR}/03_storeDelivery.wire.mime`);
    const sunk = new Map<string, Buffer[]>();
    const m = await parseMultipart(asAsync(chunks(buf, 5, 1000)), {
      sink: (p) => {
        if (p.isRoot) return null;
        const got: Buffer[] = [];
        sunk.set(p.contentId ?? '', got);
        return new Writable({
          highWaterMark: 64,
          write(chunk: Buffer, _enc, cb) {
            got.push(chunk);
            setImmediate(cb); // slow sink: exercises backpressure
          },
        });
      },
    });
    const whole = await parseMultipartBuffer(buf);
    expect(m.parts[0]?.body?.equals(whole.parts[0]?.body ?? Buffer.alloc(1))).to.equal(true);
    expect(m.parts[1]?.body).to.equal(undefined);
    const enc = Buffer.concat(sunk.get('osci_enc') ?? []);
    expect(enc.equals(whole.parts[1]?.body ?? Buffer.alloc(1))).to.equal(true);
    expect(m.parts[1]?.sha256.equals(whole.parts[1]?.sha256 ?? Buffer.alloc(1))).to.equal(true);
  });

  it('re-serialises every plain message byte for byte (boundaries with "/" come back RFC-quoted)', async function () {
    for (const f of messageFiles().filter((x) => x.includes('.plain.'))) {
      const buf = readFileSync(`${MSG_DIR}/${f}`);
      const m = await parseMultipartBuffer(buf);
      const out = await writeMultipartBuffer(
        m.parts.map((p) => ({ headers: Object.fromEntries(p.rawHeaders), body: p.body ?? Buffer.alloc(0) })),
        { boundary: m.boundary, includeTopHeaders: true },
      );
      const expected = m.boundary.includes('/')
        ? Buffer.from(buf.toString('latin1').replace(`boundary=${m.boundary};`, `boundary="${m.boundary}";`), 'latin1')
        : buf;
      expect(out.body.equals(expected), f).to.equal(true);
    }
  });
});
