/**
 * Hostile MIME input: every case must end in a typed OsciError with the right code, after reading no
 * more input than the limit requires, and never in an uncaught exception.
 */
import { expect } from 'chai';
import { Writable } from 'node:stream';
import { isOsciError } from '../../protocol/errors.ts';
import { parseMultipart, parseMultipartBuffer, type ParseMultipartOptions } from '../../protocol/mime.ts';

const B = 'MIME_boundary_bomb';
const HEAD = `MIME-Version: 1.0\r\nContent-Type: Multipart/Related; boundary=${B}; type=text/xml\r\n\r\n`;
const SOAP_PART = `--${B}\r\nContent-Type: text/xml; charset=UTF-8\r\nContent-ID: <osci@message>\r\n\r\n<x/>`;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!isOsciError(e)) throw new Error(`not an OsciError: ${String(e)}`);
    return e.code;
  }
  return 'resolved';
}

/** An endless source that records how much was pulled and whether it was closed. */
function endless(prefix: string, fill: number, chunk = 64 * 1024): {
  source: AsyncGenerator<Buffer>;
  pulled: () => number;
  closed: () => boolean;
} {
  let pulled = 0;
  let closed = false;
  async function* gen(): AsyncGenerator<Buffer> {
    try {
      const p = Buffer.from(prefix, 'latin1');
      pulled += p.length;
      yield p;
      const block = Buffer.alloc(chunk, fill);
      for (;;) {
        pulled += block.length;
        yield block;
      }
    } finally {
      closed = true;
    }
  }
  return { source: gen(), pulled: () => pulled, closed: () => closed };
}

const discard = (): Writable =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

describe('MIME bombs', function () {
  it('too many parts → ERR_MIME_LIMIT (default 1002, and a configured limit)', async function () {
    const many = (n: number): Buffer =>
      Buffer.from(HEAD + SOAP_PART + Array.from({ length: n - 1 }, (_, i) => `\r\n--${B}\r\nContent-ID: <p${i}>\r\n\r\nx`).join('') + `\r\n--${B}--\r\n`);
    expect((await parseMultipartBuffer(many(1002))).parts).to.have.length(1002);
    expect(await codeOf(parseMultipartBuffer(many(1003)))).to.equal('ERR_MIME_LIMIT');
    expect(await codeOf(parseMultipartBuffer(many(4), { limits: { maxParts: 3 } }))).to.equal('ERR_MIME_LIMIT');
  });

  it('huge part headers → ERR_MIME_LIMIT, also when they never end', async function () {
    const big = Buffer.from(`${HEAD}--${B}\r\nX-Filler: ${'a'.repeat(17 * 1024)}\r\n\r\nbody\r\n--${B}--\r\n`);
    expect(await codeOf(parseMultipartBuffer(big))).to.equal('ERR_MIME_LIMIT');
    const many = Buffer.from(`${HEAD}--${B}\r\n${'X-A: b\r\n'.repeat(3000)}\r\nbody\r\n--${B}--\r\n`);
    expect(await codeOf(parseMultipartBuffer(many))).to.equal('ERR_MIME_LIMIT');
    const src = endless(`${HEAD}--${B}\r\nX-Filler: `, 0x61, 1024);
    expect(await codeOf(parseMultipart(src.source))).to.equal('ERR_MIME_LIMIT');
    expect(src.pulled()).to.be.below(16 * 1024 + 2 * 1024 + HEAD.length + 100);
    expect(src.closed()).to.equal(true);
  });

  it('huge or endless entity headers at the start of the body → ERR_MIME_LIMIT', async function () {
    const src = endless('MIME-Version: 1.0\r\nX: ', 0x62, 4096);
    expect(await codeOf(parseMultipart(src.source, { contentType: 'text/xml' }))).to.equal('ERR_MIME_LIMIT');
    expect(src.pulled()).to.be.below(16 * 1024 + 8192);
    expect(src.closed()).to.equal(true);
  });

  it('boundary never found within the limit → ERR_MIME_LIMIT without reading on', async function () {
    const src = endless(HEAD, 0x2d); // endless '-' preamble: looks boundary-ish, never is
    expect(await codeOf(parseMultipart(src.source))).to.equal('ERR_MIME_LIMIT');
    expect(src.pulled()).to.be.below(HEAD.length + 16 * 1024 + 64 * 1024 + 1);
    expect(src.closed()).to.equal(true);
    // and at EOF without any boundary
    expect(await codeOf(parseMultipartBuffer(Buffer.from(`${HEAD}no boundary here`)))).to.equal('ERR_MIME_MALFORMED');
  });

  it('total bytes over the limit are refused while streaming, not after buffering (ERR_TOO_LARGE, 9904)', async function () {
    const limit = 4 * 1024 * 1024;
    const src = endless(`${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-ID: <big>\r\n\r\n`, 0x00);
    const opts: ParseMultipartOptions = { limits: { maxTotalBytes: limit }, sink: (p) => (p.isRoot ? null : discard()) };
    expect(await codeOf(parseMultipart(src.source, opts))).to.equal('ERR_TOO_LARGE');
    expect(src.pulled()).to.be.at.most(limit + 64 * 1024);
    expect(src.closed()).to.equal(true);
  });

  it('an in-memory part over its limit → ERR_MIME_LIMIT before the total limit', async function () {
    const src = endless(`${HEAD}${SOAP_PART}`, 0x20);
    const code = await codeOf(parseMultipart(src.source, { limits: { maxInMemoryBytes: 1024 * 1024 } }));
    expect(code).to.equal('ERR_MIME_LIMIT');
    expect(src.pulled()).to.be.at.most(1024 * 1024 + 2 * 64 * 1024);
  });

  it('a declared Content-Length is enforced as soon as the part outgrows it', async function () {
    const src = endless(`${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-ID: <a>\r\nContent-Length: 10\r\n\r\n`, 0x41);
    expect(await codeOf(parseMultipart(src.source, { sink: (p) => (p.isRoot ? null : discard()) }))).to.equal(
      'ERR_MIME_MALFORMED',
    );
    expect(src.pulled()).to.be.below(3 * 64 * 1024);
    const absurd = Buffer.from(`${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-ID: <a>\r\nContent-Length: 999999999999\r\n\r\nx\r\n--${B}--`);
    expect(await codeOf(parseMultipartBuffer(absurd))).to.equal('ERR_TOO_LARGE');
  });

  it('Content-Length mismatch on an attachment → ERR_MIME_MALFORMED', async function () {
    const m = Buffer.from(`${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-ID: <a>\r\nContent-Length: 5\r\n\r\n1234\r\n--${B}--\r\n`);
    expect(await codeOf(parseMultipartBuffer(m))).to.equal('ERR_MIME_MALFORMED');
  });

  it('missing final boundary or truncation anywhere → ERR_MIME_MALFORMED', async function () {
    const full = `${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-ID: <a>\r\n\r\npayload\r\n--${B}--\r\n`;
    expect((await parseMultipartBuffer(Buffer.from(full))).parts).to.have.length(2);
    const end = full.indexOf(`\r\n--${B}--`);
    for (let cut = 1; cut < end + 4 + B.length; cut += 7) {
      expect(await codeOf(parseMultipartBuffer(Buffer.from(full.slice(0, cut)))), `cut at ${cut}`).to.equal(
        'ERR_MIME_MALFORMED',
      );
    }
  });

  it('nested multipart → ERR_MIME_MALFORMED', async function () {
    const inner = 'MIME_boundary_inner';
    const m = Buffer.from(
      `${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-Type: multipart/related; boundary=${inner}\r\nContent-ID: <n>\r\n\r\n` +
        `--${inner}\r\n\r\nx\r\n--${inner}--\r\n--${B}--\r\n`,
    );
    expect(await codeOf(parseMultipartBuffer(m))).to.equal('ERR_MIME_MALFORMED');
  });

  it('empty or part-less bodies → ERR_MIME_MALFORMED', async function () {
    for (const body of ['', '\r\n', '\r\n\r\n', HEAD, `${HEAD}--${B}--\r\n`, 'not mime at all']) {
      expect(await codeOf(parseMultipartBuffer(Buffer.from(body))), JSON.stringify(body)).to.equal('ERR_MIME_MALFORMED');
    }
    const none = (async function* () {})();
    expect(await codeOf(parseMultipart(none))).to.equal('ERR_MIME_MALFORMED');
  });

  it('control characters, bare LF and nameless lines in headers → ERR_MIME_MALFORMED', async function () {
    for (const h of ['X-A: a\u0000b\r\n', 'X-A: a\nX-B: b\r\n', ': novalue\r\n', 'no colon\r\n', ' folded-first\r\n']) {
      const m = Buffer.from(`${HEAD}--${B}\r\n${h}\r\nx\r\n--${B}--\r\n`, 'latin1');
      expect(await codeOf(parseMultipartBuffer(m)), JSON.stringify(h)).to.equal('ERR_MIME_MALFORMED');
    }
  });

  it('a throwing sink factory or a failing source end in OsciErrors', async function () {
    const ok = Buffer.from(`${HEAD}${SOAP_PART}\r\n--${B}--\r\n`);
    expect(
      await codeOf(
        parseMultipartBuffer(ok, {
          sink: () => {
            throw new Error('no temp dir');
          },
        }),
      ),
    ).to.equal('ERR_INTERNAL');
    async function* broken(): AsyncGenerator<Buffer> {
      yield Buffer.from(HEAD);
      throw new Error('connection reset');
    }
    expect(await codeOf(parseMultipart(broken()))).to.equal('ERR_MIME_MALFORMED');
  });

  it('fuzz: mutated and truncated messages never escape as anything but OsciError', async function () {
    const base = Buffer.from(
      `${HEAD}${SOAP_PART}\r\n--${B}\r\nContent-Type: application/octet-stream\r\nContent-ID: <a>\r\nContent-Length: 8\r\n\r\n12345678\r\n--${B}--\r\n`,
    );
    let x = 0x9e3779b9;
    const rnd = (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const interesting = [0x0d, 0x0a, 0x2d, 0x3a, 0x20, 0x3b, 0x3d, 0x22, 0x00, 0xff];
    let ok = 0;
    for (let i = 0; i < 400; i++) {
      const m = Buffer.from(base);
      for (let k = 1 + rnd(4); k > 0; k--) m[rnd(m.length)] = interesting[rnd(interesting.length)] as number;
      const cut = rnd(4) === 0 ? m.subarray(0, rnd(m.length)) : m;
      const code = await codeOf(parseMultipartBuffer(cut, { limits: { maxHeaderBytes: 512 } }));
      if (code === 'resolved') ok++;
      else expect(['ERR_MIME_MALFORMED', 'ERR_MIME_LIMIT']).to.include(code);
    }
    expect(ok).to.be.below(400); // the mutations do break things
  });
});
