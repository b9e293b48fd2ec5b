/** One OSCI HTTP exchange (adapters/osci/post.ts): a fixed deadline, or an idle timeout that lets slow large transfers finish. */
import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { postOsci } from '../../adapters/osci/post.ts';
import { OsciError } from '../../protocol/errors.ts';

const message = (body = 'x') => ({ contentType: 'text/plain', headers: {}, length: body.length, stream: Readable.from([Buffer.from(body)]) });

async function read(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}

describe('OSCI HTTP exchange timeouts (adapters/osci/post.ts)', () => {
  let server: Server;
  let url = '';

  before(async () => {
    // /trickle: 8 chunks 100 ms apart (0.8 s in all); /stall: one chunk, then silence.
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
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
});
