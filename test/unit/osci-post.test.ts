/** One OSCI HTTP exchange (adapters/osci/post.ts): a fixed deadline, or an idle timeout that lets slow large transfers finish. */
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { createServer as createNetServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { postOsci } from '../../adapters/osci/post.ts';
import { OsciError } from '../../protocol/errors.ts';
import { selfSignedIdentity } from '../helpers/keys.ts';

const message = (body = 'x') => ({ contentType: 'text/plain', headers: {}, length: body.length, stream: Readable.from([Buffer.from(body)]) });

async function read(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}

describe('OSCI HTTP exchange (adapters/osci/post.ts): timeouts, redirects, limits', () => {
  let server: Server;
  let url = '';

  before(async () => {
    // /trickle: 8 chunks 100 ms apart (0.8 s in all); /stall: one chunk, then silence.
    server = createServer((req, res) => {
      let received = 0;
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => {
        if (req.url === '/redirect') return void res.writeHead(307, { location: `${url}/trickle` }).end();
        if (req.url === '/empty') return void res.writeHead(204).end();
        if (req.url === '/big') return void res.writeHead(200, { 'content-length': '1000' }).end(Buffer.alloc(1000));
        if (req.url === '/count') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(String(received));
        res.writeHead(200, { 'content-type': 'text/plain' });
        void (async () => {
          if (req.url === '/stall') return void res.write('a');
          for (let i = 0; i < 8; i++) {
            res.write(String(i));
            await sleep(100);
          }
          res.end();
        })();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('an idle timeout lets an answer that keeps moving take longer than the timeout', async () => {
    const r = await postOsci(`${url}/trickle`, message(), { idleTimeoutMs: 400 });
    expect(await read(r.body)).to.equal('01234567');
  });

  it('a deadline breaks the same answer off', async () => {
    const r = await postOsci(`${url}/trickle`, message(), { timeoutMs: 400 });
    const e = await read(r.body).then(() => undefined, (x: unknown) => x);
    expect(e).to.be.instanceOf(OsciError);
    expect((e as OsciError).message).to.match(/no complete answer within 400 ms/);
  });

  it('an idle timeout breaks a stalled answer off', async () => {
    const r = await postOsci(`${url}/stall`, message(), { idleTimeoutMs: 300 });
    const e = await read(r.body).then(() => undefined, (x: unknown) => x);
    expect((e as OsciError).code).to.equal('ERR_REMOTE');
    expect((e as OsciError).message).to.match(/nothing moved for 300 ms/);
  });

  it('does not follow a redirect: ERR_REMOTE', async () => {
    const e = await postOsci(`${url}/redirect`, message()).then(() => undefined, (x: unknown) => x);
    expect((e as OsciError).code).to.equal('ERR_REMOTE');
    expect((e as OsciError).message).to.match(/redirect \(HTTP 307\); not followed/);
  });

  it('refuses an answer that announces more than maxResponseBytes (ERR_TOO_LARGE), and an unreachable peer is ERR_REMOTE', async () => {
    const big = await postOsci(`${url}/big`, message(), { maxResponseBytes: 10 }).then(() => undefined, (x: unknown) => x);
    expect((big as OsciError).code).to.equal('ERR_TOO_LARGE');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const e = await postOsci(`http://127.0.0.1:${port}/`, message()).then(() => undefined, (x: unknown) => x);
    expect((e as OsciError).code).to.equal('ERR_REMOTE');
    expect((e as OsciError).message).to.match(/^cannot reach/);
  });

  it('streams a large upload and reports its progress up to the last byte', async () => {
    const chunk = Buffer.alloc(256 * 1024, 7);
    const n = 12;
    const progress: number[] = [];
    const r = await postOsci(
      `${url}/count`,
      { contentType: 'application/octet-stream', headers: {}, length: n * chunk.length, stream: Readable.from(Array.from({ length: n }, () => chunk)) },
      { onUploadProgress: (sent) => progress.push(sent) },
    );
    expect(r.status).to.equal(200);
    expect(await read(r.body)).to.equal(String(n * chunk.length));
    expect(progress.at(-1)).to.equal(n * chunk.length);
  });

  it('sends a message built in memory (`body`) in one write without reading its stream', async () => {
    const body = Buffer.alloc(30_000, 5);
    const progress: number[] = [];
    const unread = new Readable({ read: () => expect.fail('the stream of a message with a body was read') });
    const r = await postOsci(`${url}/count`, { contentType: 'text/plain', headers: {}, length: body.length, body, stream: unread }, { onUploadProgress: (sent) => progress.push(sent), idleTimeoutMs: 5000 });
    expect(r.status).to.equal(200);
    expect(await read(r.body)).to.equal(String(body.length));
    expect(progress).to.deep.equal([body.length]);
  });

  it('verifies the peer\'s TLS certificate: an untrusted one is refused (ERR_REMOTE) before anything is sent', async () => {
    const id = selfSignedIdentity('127.0.0.1');
    let called = false;
    const tls = createTlsServer({ key: id.key.export({ type: 'pkcs8', format: 'pem' }), cert: id.cert.toString() }, (_req, res) => {
      called = true;
      res.end();
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const port = (tls.address() as { port: number }).port;
      const e = await postOsci(`https://127.0.0.1:${port}/`, message()).then(() => undefined, (x: unknown) => x);
      expect((e as OsciError).code).to.equal('ERR_REMOTE');
      expect((e as OsciError).message).to.match(/^cannot reach .*certificate/);
      expect(called).to.equal(false);
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((r) => tls.close(() => r()));
    }
  });

  it('an empty 204 answer is ERR_REMOTE, not an OSCI message', async () => {
    const e = await postOsci(`${url}/empty`, message()).then(() => undefined, (x: unknown) => x);
    expect((e as OsciError).code).to.equal('ERR_REMOTE');
    expect((e as OsciError).message).to.match(/empty HTTP 204 answer/);
  });

  it('an answer that came before the whole request was sent ends the upload (the body is released)', async () => {
    // A peer that answers as soon as it has the request head, then reads nothing more and keeps the connection.
    const held: Socket[] = [];
    const peer = createNetServer((sock) => {
      held.push(sock);
      sock.once('data', () => {
        sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');
        sock.pause();
      });
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    try {
      let n = 0;
      const body = new Readable({ read() { this.push(++n > 3200 ? null : Buffer.alloc(64 * 1024, 1)); } }); // 200 MiB
      const r = await postOsci(`http://127.0.0.1:${(peer.address() as { port: number }).port}/`, { contentType: 'text/plain', headers: {}, stream: body }, { timeoutMs: 10_000 });
      expect(await read(r.body)).to.equal('ok');
      for (let i = 0; i < 50 && !body.destroyed; i++) await sleep(20);
      expect(body.destroyed, 'the rest of the upload is abandoned').to.equal(true);
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise<void>((r) => peer.close(() => r()));
    }
  });
});
