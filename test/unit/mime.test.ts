import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isOsciError } from '../../protocol/errors.ts';
import {
  binaryPartHeaders,
  isValidBoundary,
  multipartWritable,
  newBoundary,
  parseContentType,
  parseMultipart,
  parseMultipartBuffer,
  soapPartHeaders,
  writeMultipart,
  writeMultipartBuffer,
  type ParseMultipartOptions,
} from '../../protocol/mime.ts';
import { delimiterPrefixAtEnd } from '../../protocol/mime-headers.ts';

const B = 'MIME_boundary_ab+c/DEF0123456789ghijklmnopqrstuv';
const SOAP = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\r\n\r\n<soap:Envelope/>', 'latin1');

function msg(...lines: Array<string | Buffer>): Buffer {
  return Buffer.concat(lines.map((l) => (typeof l === 'string' ? Buffer.from(l, 'latin1') : l)));
}

/** A message as the reference library frames it: entity headers in the body, unquoted boundary. */
function refMessage(attachment: Buffer, extraAttHeaders = ''): Buffer {
  return msg(
    'MIME-Version: 1.0\r\n',
    `Content-Type: Multipart/Related; boundary=${B}; type=text/xml\r\n`,
    '\r\n',
    `--${B}\r\n`,
    'Content-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <osci@message>\r\n\r\n',
    SOAP,
    `\r\n--${B}\r\n`,
    'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8-bit\r\nContent-ID: <att.bin>\r\n',
    `Content-Length: ${attachment.length}\r\n${extraAttHeaders}\r\n`,
    attachment,
    `\r\n--${B}--\r\n`,
  );
}

async function rejects(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(isOsciError(e), String(e)).to.equal(true);
    return isOsciError(e) ? e.code : 'not an OsciError';
  }
  throw new Error('expected a rejection');
}

async function* from(bufs: Buffer[]): AsyncGenerator<Buffer> {
  yield* bufs;
}

async function collect(stream: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe('protocol/mime', function () {
  describe('Content-Type parameters', function () {
    it('accepts the unquoted boundary with "/" and "+" and the capitalised type (§11)', function () {
      const ct = parseContentType(`Multipart/Related; boundary=${B}; type=text/xml`);
      expect(ct.type).to.equal('multipart/related');
      expect(ct.params.get('boundary')).to.equal(B);
      expect(ct.params.get('type')).to.equal('text/xml');
    });
    it('unquotes quoted strings with escapes; parameter names are case-insensitive', function () {
      const ct = parseContentType('multipart/related;BOUNDARY="a \\"b\\" c";\tstart="<osci@message>";');
      expect(ct.params.get('boundary')).to.equal('a "b" c');
      expect(ct.params.get('start')).to.equal('<osci@message>');
    });
    it('refuses repeated parameters, missing values and broken media types', function () {
      for (const bad of ['multipart/related; boundary=a; boundary=b', 'multipart/related; boundary=', 'multipart', 'a/b; x="open']) {
        expect(() => parseContentType(bad), bad).to.throw().with.property('code', 'ERR_MIME_MALFORMED');
      }
    });
    it('validates boundaries per RFC 2046 (1-70 bchars, no trailing space)', function () {
      expect(isValidBoundary(B)).to.equal(true);
      expect(isValidBoundary('x'.repeat(70))).to.equal(true);
      expect(isValidBoundary('x'.repeat(71))).to.equal(false);
      expect(isValidBoundary('ab ')).to.equal(false);
      expect(isValidBoundary('a\r\nb')).to.equal(false);
      expect(isValidBoundary('')).to.equal(false);
    });
  });

  describe('parser', function () {
    it('reads entity headers from the body when HTTP says text/xml or nothing', async function () {
      const att = randomBytes(300);
      for (const contentType of [undefined, 'text/xml', 'text/xml; charset=utf-8']) {
        const m = await parseMultipartBuffer(refMessage(att), contentType === undefined ? {} : { contentType });
        expect(m.boundary).to.equal(B);
        expect(m.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', 'att.bin']);
        expect(m.parts[0]?.body?.equals(SOAP)).to.equal(true);
        expect(m.parts[1]?.body?.equals(att)).to.equal(true);
        expect(m.parts[1]?.transferEncoding).to.equal('8-bit');
        expect(m.parts[1]?.sha256.equals(createHash('sha256').update(att).digest())).to.equal(true);
      }
    });

    it('uses the HTTP multipart Content-Type when given, with start selecting the root', async function () {
      const body = msg(
        `--${B}\r\nContent-ID: <a>\r\n\r\nfirst\r\n`,
        `--${B}\r\nContent-ID: <osci@message>\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n--${B}--`,
      );
      const m = await parseMultipartBuffer(body, {
        contentType: `multipart/related; boundary="${B}"; type="text/xml"; start="<osci@message>"`,
      });
      expect(m.start).to.equal('osci@message');
      expect(m.root).to.equal(1);
      expect(m.parts[1]?.isRoot).to.equal(true);
      expect(m.parts[0]?.isRoot).to.equal(false);
      expect(m.parts[0]?.body?.toString()).to.equal('first');
    });

    it('unfolds folded headers', async function () {
      const body = msg(
        'MIME-Version: 1.0\r\nContent-Type: Multipart/Related;\r\n boundary=',
        B,
        ';\r\n\ttype=text/xml\r\n\r\n',
        `--${B}\r\nContent-Type: text/xml;\r\n charset=UTF-8\r\nContent-ID:\r\n <osci@message>\r\n\r\n<x/>\r\n--${B}--\r\n`,
      );
      const m = await parseMultipartBuffer(body);
      expect(m.parts[0]?.contentId).to.equal('osci@message');
      expect(m.parts[0]?.headers.get('content-type')).to.equal('text/xml; charset=UTF-8');
    });

    it('keeps binary bodies exact, including CRLF, "--" and partial delimiters', async function () {
      const tricky = msg(
        '\r\n',
        `--${B.slice(0, 20)}`,
        '\r\n--',
        '\r\n-',
        `\n--${B}`, // LF only: not a delimiter
        `--${B}`, // no CRLF before: not a delimiter
        randomBytes(1000),
        '\r\n\r\n',
      );
      const m = await parseMultipartBuffer(refMessage(tricky));
      expect(m.parts[1]?.body?.equals(tricky)).to.equal(true);
      expect(m.parts[1]?.size).to.equal(tricky.length);
    });

    it('finds the delimiter at every chunk split point', async function () {
      const att = Buffer.from('0123456789\r\n--\r\n-abc');
      const whole = refMessage(att);
      for (let cut = 1; cut < whole.length; cut++) {
        const m = await parseMultipart(from([whole.subarray(0, cut), whole.subarray(cut)]));
        expect(m.parts.length, `cut ${cut}`).to.equal(2);
        expect(m.parts[1]?.body?.equals(att), `cut ${cut}`).to.equal(true);
        expect(m.parts[0]?.body?.equals(SOAP), `cut ${cut}`).to.equal(true);
      }
    });

    it('accepts empty bodies, header-less parts, transport padding, preamble and epilogue', async function () {
      const body = msg(
        'This is the preamble.\r\n',
        `--${B}  \t\r\nContent-ID: <empty>\r\n\r\n`,
        `\r\n--${B}\r\n\r\nno headers\r\n--${B}-- trailing\r\nepilogue bytes`,
      );
      const m = await parseMultipartBuffer(body, { contentType: `multipart/related; boundary="${B}"` });
      expect(m.parts).to.have.length(2);
      expect(m.parts[0]?.size).to.equal(0);
      expect(m.parts[0]?.body).to.have.length(0);
      expect(m.parts[1]?.headers.size).to.equal(0);
      expect(m.parts[1]?.body?.toString()).to.equal('no headers');
    });

    it('cross-checks Content-Length: non-root mismatches fail, a root mismatch is only reported', async function () {
      const att = Buffer.from('exactly twenty bytes');
      expect((await parseMultipartBuffer(refMessage(att))).parts[1]?.lengthMismatch).to.equal(undefined);
      const short = msg(refMessage(att).toString('latin1').replace('Content-Length: 20', 'Content-Length: 19'));
      const long = msg(refMessage(att).toString('latin1').replace('Content-Length: 20', 'Content-Length: 21'));
      expect(await rejects(parseMultipartBuffer(short))).to.equal('ERR_MIME_MALFORMED');
      expect(await rejects(parseMultipartBuffer(long))).to.equal('ERR_MIME_MALFORMED');

      const rootWrong = msg(
        refMessage(att)
          .toString('latin1')
          .replace('Content-ID: <osci@message>\r\n', 'Content-ID: <osci@message>\r\nContent-Length: 5\r\n'),
      );
      const m = await parseMultipartBuffer(rootWrong);
      expect(m.parts[0]?.lengthMismatch).to.equal(true);
      expect(m.parts[0]?.contentLength).to.equal(5);
      expect(await rejects(parseMultipartBuffer(rootWrong, { contentLengthCheck: 'strict' }))).to.equal(
        'ERR_MIME_MALFORMED',
      );
      const notNumber = msg(refMessage(att).toString('latin1').replace('Content-Length: 20', 'Content-Length: 2e1'));
      expect(await rejects(parseMultipartBuffer(notNumber))).to.equal('ERR_MIME_MALFORMED');
    });

    it('refuses ambiguity: duplicate Content-IDs, repeated Content-* headers, unknown start', async function () {
      const dupCid = msg(refMessage(Buffer.from('x')).toString('latin1').replace('<att.bin>', '<osci@message>'));
      expect(await rejects(parseMultipartBuffer(dupCid))).to.equal('ERR_MIME_MALFORMED');
      const dupHeader = refMessage(Buffer.from('x'), 'Content-Type: text/plain\r\n');
      expect(await rejects(parseMultipartBuffer(dupHeader))).to.equal('ERR_MIME_MALFORMED');
      const noStart = msg(
        refMessage(Buffer.from('x'))
          .toString('latin1')
          .replace('type=text/xml', 'type=text/xml; start="<nowhere>"'),
      );
      expect(await rejects(parseMultipartBuffer(noStart))).to.equal('ERR_MIME_MALFORMED');
    });

    it('refuses a delimiter followed by anything but "--", padding or CRLF', async function () {
      const body = msg(`--${B}\r\n\r\nabc\r\n--${B}X\r\n\r\nz\r\n--${B}--`);
      expect(await rejects(parseMultipartBuffer(body, { contentType: `multipart/related; boundary="${B}"` }))).to.equal(
        'ERR_MIME_MALFORMED',
      );
    });

    it('refuses other multipart subtypes and a missing boundary', async function () {
      const mixed = msg(refMessage(Buffer.from('x')).toString('latin1').replace('Multipart/Related', 'multipart/mixed'));
      expect(await rejects(parseMultipartBuffer(mixed))).to.equal('ERR_MIME_MALFORMED');
      expect(await rejects(parseMultipartBuffer(Buffer.from('x'), { contentType: 'multipart/related' }))).to.equal(
        'ERR_MIME_MALFORMED',
      );
    });

    it('refuses text chunks (a stream with an encoding set)', async function () {
      const r = Readable.from([refMessage(Buffer.from('x'))]).setEncoding('latin1');
      expect(await rejects(parseMultipart(r))).to.equal('ERR_INTERNAL');
    });

    it('computes extra digests on request', async function () {
      const att = randomBytes(77);
      const m = await parseMultipartBuffer(refMessage(att), { extraDigests: ['sha512'] });
      expect(m.parts[1]?.digests.get('sha512')?.equals(createHash('sha512').update(att).digest())).to.equal(true);
    });

    it('honours sink backpressure: the source is not read far ahead of a slow sink', async function () {
      const CHUNK = 64 * 1024;
      const COUNT = 64;
      const boundary = newBoundary();
      let produced = 0;
      let processed = 0;
      let maxAhead = 0;
      async function* source(): AsyncGenerator<Buffer> {
        const head = Buffer.from(`--${boundary}\r\nContent-ID: <big>\r\n\r\n`);
        produced += head.length;
        yield head;
        const block = Buffer.alloc(CHUNK, 0x41);
        for (let i = 0; i < COUNT; i++) {
          maxAhead = Math.max(maxAhead, produced - processed);
          produced += CHUNK;
          yield block;
        }
        yield Buffer.from(`\r\n--${boundary}--\r\n`);
      }
      const m = await parseMultipart(source(), {
        contentType: `multipart/related; boundary=${boundary}`,
        sink: () =>
          new Writable({
            highWaterMark: 16 * 1024,
            write(chunk: Buffer, _enc, cb) {
              setImmediate(() => {
                processed += chunk.length;
                cb();
              });
            },
          }),
      });
      expect(m.parts[0]?.size).to.equal(CHUNK * COUNT);
      expect(m.parts[0]?.body).to.equal(undefined);
      // Everything read is either in the sink or in at most ~two chunks of parser/sink buffers.
      expect(maxAhead).to.be.at.most(3 * CHUNK);
    });

    it('reports a failing sink as ERR_INTERNAL and does not hang', async function () {
      const big = randomBytes(256 * 1024);
      const code = await rejects(
        parseMultipart(from([refMessage(big)]), {
          sink: (p) =>
            p.isRoot
              ? null
              : new Writable({
                  write(_c, _e, cb) {
                    cb(new Error('disk full'));
                  },
                }),
        }),
      );
      expect(code).to.equal('ERR_INTERNAL');
    });

    it('a sink target { writable, digest: false } gets the bytes without a SHA-256; any Writable (even one with a digest member) is digested', async function () {
      const big = randomBytes(100_000);
      const seen: Buffer[] = [];
      const collect = new Writable({
        write(c: Buffer, _e, cb) {
          seen.push(c);
          cb();
        },
      });
      const plain = await parseMultipart(from([refMessage(big)]), { sink: (p) => (p.isRoot ? null : { writable: collect, digest: false }) });
      expect(Buffer.concat(seen).equals(big)).to.equal(true);
      expect(plain.parts[1]?.sha256.length).to.equal(0);
      const h = createHash('sha256');
      const hashing = Object.assign(
        new Writable({
          write(c: Buffer, _e, cb) {
            h.update(c);
            cb();
          },
        }),
        { digest: false }, // a Writable with such a member is still a Writable
      );
      const hashed = await parseMultipart(from([refMessage(big)]), { sink: (p) => (p.isRoot ? null : hashing) });
      const expected = createHash('sha256').update(big).digest();
      expect(hashed.parts[1]?.sha256.equals(expected)).to.equal(true);
      expect(h.digest().equals(expected)).to.equal(true);
    });
  });

  describe('parser as a Writable (multipartWritable)', function () {
    it('parses what is written to it, chunk by chunk, and finishes only after the parse settled', async function () {
      const att = randomBytes(200_000);
      const whole = refMessage(att);
      const { writable, result } = multipartWritable();
      const pieces: Buffer[] = [];
      for (let i = 0; i < whole.length; i += 7000) pieces.push(whole.subarray(i, i + 7000));
      await pipeline(Readable.from(pieces), writable);
      const m = await result;
      expect(m.parts[1]?.body?.equals(att)).to.equal(true);
      expect(m.parts[1]?.sha256.equals(createHash('sha256').update(att).digest())).to.equal(true);
    });

    it('after a parse failure it drops the rest, so the producer still reaches its end; the failure is the parse\'s', async function () {
      const broken = Buffer.concat([refMessage(randomBytes(100_000)).subarray(0, 300), Buffer.from('\r\n--'), randomBytes(300_000)]);
      const m = refMessage(Buffer.from('x'));
      const bad = Buffer.concat([m.subarray(0, m.indexOf('Content-ID')), Buffer.from('Content-ID: <a>\r\nContent-ID: <b>\r\n\r\n'), randomBytes(300_000)]);
      for (const input of [broken, bad]) {
        const { writable, result } = multipartWritable();
        const pieces: Buffer[] = [];
        for (let i = 0; i < input.length; i += 65536) pieces.push(input.subarray(i, i + 65536));
        await pipeline(Readable.from(pieces), writable); // resolves: every byte was taken
        expect(await rejects(result)).to.equal('ERR_MIME_MALFORMED');
      }
    });

    it('destroying it (the producer failed) fails the parse', async function () {
      const { writable, result } = multipartWritable();
      writable.on('error', () => undefined); // pipeline() listens in real use
      writable.write(refMessage(randomBytes(1000)).subarray(0, 500));
      writable.destroy(new Error('decryption failed'));
      expect(await rejects(result)).to.equal('ERR_MIME_MALFORMED');
    });
  });

  describe('writer', function () {
    it('writes what the reference library writes', async function () {
      const out = await writeMultipartBuffer(
        [
          { headers: soapPartHeaders(), body: SOAP },
          { headers: binaryPartHeaders('attachment1.txt', 3), body: Buffer.from('abc') },
        ],
        { boundary: 'MIME_boundary_X', includeTopHeaders: true },
      );
      expect(out.body.toString('latin1')).to.equal(
        'MIME-Version: 1.0\r\n' +
          'Content-Type: Multipart/Related; boundary=MIME_boundary_X; type=text/xml\r\n' +
          '\r\n' +
          '--MIME_boundary_X\r\n' +
          'Content-Type: text/xml; charset=UTF-8\r\n' +
          'Content-Transfer-Encoding: 8bit\r\n' +
          'Content-ID: <osci@message>\r\n' +
          '\r\n' +
          SOAP.toString('latin1') +
          '\r\n--MIME_boundary_X\r\n' +
          'Content-Type: application/octet-stream\r\n' +
          'Content-Transfer-Encoding: binary\r\n' +
          'Content-ID: <attachment1.txt>\r\n' +
          'Content-Length: 3\r\n' +
          '\r\n' +
          'abc' +
          '\r\n--MIME_boundary_X--\r\n',
      );
      expect(out.headers).to.deep.equal({
        'MIME-Version': '1.0',
        'Content-Type': 'Multipart/Related; boundary=MIME_boundary_X; type=text/xml',
      });
    });

    it('quotes a boundary that needs it and a start parameter', function () {
      const w = writeMultipart([{ headers: {}, body: Buffer.from('x') }], {
        boundary: 'a/b',
        start: 'osci@message',
        includeTopHeaders: false,
      });
      expect(w.headers['Content-Type']).to.equal('Multipart/Related; boundary="a/b"; type=text/xml; start="<osci@message>"');
      w.stream.destroy();
    });

    it('generates token-only boundaries of the reference shape', function () {
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const b = newBoundary();
        expect(b).to.match(/^MIME_boundary_[A-Za-z0-9]{32}$/);
        seen.add(b);
      }
      expect(seen.size).to.equal(200);
    });

    it('computes the length when sizes are known, and only then', async function () {
      const a = randomBytes(1234);
      const known = writeMultipart(
        [
          { headers: soapPartHeaders(), body: SOAP },
          { headers: binaryPartHeaders('a', a.length), body: () => Readable.from([a.subarray(0, 100), a.subarray(100)]) },
        ],
        { includeTopHeaders: true },
      );
      expect(known.length).to.equal((await collect(known.stream)).length);
      const unknown = writeMultipart(
        [
          { headers: soapPartHeaders(), body: SOAP },
          { headers: binaryPartHeaders('a'), body: Readable.from([a]) },
        ],
        { includeTopHeaders: false },
      );
      expect(unknown.length).to.equal(undefined);
      const bytes = await collect(unknown.stream);
      expect(bytes.subarray(0, 2).toString()).to.equal('--');
      const m = await parseMultipartBuffer(bytes, { contentType: unknown.headers['Content-Type'] });
      expect(m.parts[1]?.body?.equals(a)).to.equal(true);
    });

    it('gives the whole entity as one Buffer when every body is one, the same bytes the stream yields', async function () {
      const a = randomBytes(1234);
      const parts = [
        { headers: soapPartHeaders(), body: SOAP },
        { headers: binaryPartHeaders('a', a.length), body: a },
      ];
      const w = writeMultipart(parts, { boundary: B, includeTopHeaders: true });
      expect(w.body?.equals(await collect(w.stream))).to.equal(true);
      expect(w.length).to.equal(w.body?.length);
      const m = await parseMultipartBuffer(w.body as Buffer, {});
      expect(m.parts.map((p) => p.body?.length)).to.deep.equal([SOAP.length, a.length]);
      expect(m.parts[1]?.body?.equals(a)).to.equal(true);
      // One streamed body and there is none: the entity is only ever streamed.
      expect(writeMultipart([parts[0] as (typeof parts)[0], { headers: binaryPartHeaders('a', a.length), body: () => Readable.from([a]) }], { includeTopHeaders: true }).body).to.equal(undefined);
    });

    it('fails the stream when a body does not match its declared Content-Length', async function () {
      for (const n of [10, 12]) {
        const w = writeMultipart(
          [{ headers: binaryPartHeaders('a', 11), body: () => Readable.from([Buffer.alloc(n)]) }],
          { includeTopHeaders: true },
        );
        expect(await rejects(collect(w.stream))).to.equal('ERR_INTERNAL');
      }
      expect(() =>
        writeMultipart([{ headers: binaryPartHeaders('a', 11), body: Buffer.alloc(10) }], { includeTopHeaders: true }),
      ).to.throw().with.property('code', 'ERR_MIME_MALFORMED');
    });

    it('refuses bodies containing the delimiter (buffered and streamed) and header injection', async function () {
      const boundary = 'MIME_boundary_fixed';
      const evil = Buffer.from(`data\r\n--${boundary}\r\nContent-ID: <smuggled>\r\n\r\n`);
      expect(() => writeMultipart([{ headers: {}, body: evil }], { boundary, includeTopHeaders: true }))
        .to.throw()
        .with.property('code', 'ERR_MIME_MALFORMED');
      const startsWith = Buffer.from(`--${boundary}--`);
      expect(() => writeMultipart([{ headers: {}, body: startsWith }], { boundary, includeTopHeaders: true }))
        .to.throw()
        .with.property('code', 'ERR_MIME_MALFORMED');
      const split = writeMultipart(
        [{ headers: {}, body: () => Readable.from([evil.subarray(0, 9), evil.subarray(9)]) }],
        { boundary, includeTopHeaders: true },
      );
      expect(await rejects(collect(split.stream))).to.equal('ERR_MIME_MALFORMED');
      expect(() =>
        writeMultipart([{ headers: { 'Content-ID': '<a>\r\nX-Evil: 1' }, body: Buffer.alloc(0) }], {
          includeTopHeaders: true,
        }),
      ).to.throw().with.property('code', 'ERR_MIME_MALFORMED');
      expect(() => binaryPartHeaders('a b')).to.throw().with.property('code', 'ERR_MIME_MALFORMED');
    });

    it('searches streamed bodies only for a boundary it did not draw itself (RFC 2046 §5.1.1)', async function () {
      const boundary = newBoundary();
      const body = () => Readable.from([Buffer.from(`x\r\n--${boundary}\r\ny`)]);
      const chosen = writeMultipart([{ headers: {}, body }], { boundary, includeTopHeaders: false });
      expect(await rejects(collect(chosen.stream))).to.equal('ERR_MIME_MALFORMED');
      // Declared random (drawn by newBoundary for this message): only chance could put it into a body.
      const drawn = writeMultipart([{ headers: {}, body }], { boundary, randomBoundary: true, includeTopHeaders: false });
      expect((await collect(drawn.stream)).includes(`--${boundary}\r\ny`)).to.equal(true);
      // A boundary the writer draws itself is one too; buffered bodies are always searched (they cost nothing).
      const own = writeMultipart([{ headers: {}, body: Buffer.from('abc') }], { includeTopHeaders: false });
      expect(own.boundary).to.match(/^MIME_boundary_[A-Za-z0-9]{32}$/);
      own.stream.destroy();
    });

    it('finds a streamed body\'s delimiter wherever two cuts split it into three chunks, and only a real one', async function () {
      const boundary = 'MIME_boundary_fixed';
      const evil = Buffer.from(`ab\r\n--${boundary}\r\nc`);
      const near = Buffer.from(`ab\r\n--${boundary.slice(0, -1)}\r\n--${boundary.slice(0, 5)}`); // partial delimiters only
      const stream = (b: Buffer, c1: number, c2: number) =>
        writeMultipart([{ headers: {}, body: () => Readable.from([b.subarray(0, c1), b.subarray(c1, c2), b.subarray(c2)]) }], { boundary, includeTopHeaders: false });
      for (let c1 = 0; c1 <= evil.length; c1++) {
        for (let c2 = c1; c2 <= evil.length; c2++) {
          expect(await rejects(collect(stream(evil, c1, c2).stream)), `cuts ${c1} ${c2}`).to.equal('ERR_MIME_MALFORMED');
        }
      }
      for (let c1 = 0; c1 <= near.length; c1 += 3) {
        for (let c2 = c1; c2 <= near.length; c2++) {
          // Written whole, and read back by the parser as exactly that body (the near-delimiters end nothing).
          const out = await collect(stream(near, c1, c2).stream);
          const m = await parseMultipartBuffer(out, { contentType: `multipart/related; boundary=${boundary}` });
          expect(m.parts.map((p) => p.body?.toString('latin1')), `cuts ${c1} ${c2}`).to.deep.equal([near.toString('latin1')]);
        }
      }
      expect(delimiterPrefixAtEnd(Buffer.from('xx\r\n-'), Buffer.from('\r\n--b'))).to.equal(3);
      expect(delimiterPrefixAtEnd(Buffer.from('x\r\r'), Buffer.from('\r\n--b'))).to.equal(1);
      expect(delimiterPrefixAtEnd(Buffer.from('\r\n--b'), Buffer.from('\r\n--b'))).to.equal(0); // a whole one is found, not held
    });

    it('round-trips random binary parts through writer and parser with any chunking', async function () {
      const bodies = [SOAP, randomBytes(70_000), Buffer.alloc(0), Buffer.from('\r\n--\r\n'), randomBytes(5)];
      const parts = bodies.map((b, i) => ({
        headers: i === 0 ? soapPartHeaders() : binaryPartHeaders(`p${i}`, b.length),
        body: i % 2 === 0 ? b : () => Readable.from([b]),
      }));
      const w = writeMultipart(parts, { includeTopHeaders: true });
      const bytes = await collect(w.stream);
      expect(bytes.length).to.equal(w.length);
      const opts: ParseMultipartOptions = { contentType: 'text/xml' };
      for (const size of [1, 3, 1000, 65536]) {
        if (size === 1) {
          // 1-byte chunks over the small parts only (keeps the run short)
          const small = await writeMultipartBuffer(
            [
              { headers: soapPartHeaders(), body: SOAP },
              { headers: binaryPartHeaders('x', 6), body: Buffer.from('\r\n--\r\n') },
            ],
            { includeTopHeaders: true },
          );
          const pieces: Buffer[] = [];
          for (let i = 0; i < small.body.length; i++) pieces.push(small.body.subarray(i, i + 1));
          const m = await parseMultipart(from(pieces), opts);
          expect(m.parts[1]?.body?.toString('latin1')).to.equal('\r\n--\r\n');
          continue;
        }
        const pieces: Buffer[] = [];
        for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
        const m = await parseMultipart(from(pieces), opts);
        expect(m.boundary).to.equal(w.boundary);
        expect(m.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', 'p1', 'p2', 'p3', 'p4']);
        m.parts.forEach((p, i) => expect(p.body?.equals(bodies[i] as Buffer), `part ${i} @${size}`).to.equal(true));
      }
    });
  });
});
