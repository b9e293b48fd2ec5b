/**
 * MIME attacks against the running intermediary over HTTP (osci-protocol.md §4, §11, §13). The parser's own limits
 * are proven in mime-bombs.test.ts; here the whole server path: missing or repeated boundaries, nested multiparts,
 * thousands of tiny parts, oversized headers, a part that never ends (the body stops, runs past the size limit,
 * stalls, or the client goes away). Each is refused with its code in a soap:Fault the client can read (no connection
 * reset), nothing is stored, no temporary file is left, and a stalled connection is closed after idleTimeoutMs.
 */
import { expect } from 'chai';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { newBoundary } from '../../protocol/mime.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import {
  cast,
  craft,
  expectFault,
  expectNothingStored,
  expectStillServing,
  post,
  spillLeft,
  startAttackServer,
  storeDeliveryOrder,
  type AttackServer,
  type Cast,
} from '../helpers/attack.ts';

const MAX_MESSAGE = 4 * 1024 * 1024;
const MAX_ATTACHMENTS = 20;
const IDLE_MS = 1500;

describe('security: MIME attacks against the running intermediary', function () {
  this.timeout(120_000);
  let srv: AttackServer;
  let c: Cast;
  let soap: string;

  before(async () => {
    [srv, c] = await Promise.all([
      startAttackServer({
        config: { limits: { maxMessageBytes: MAX_MESSAGE, maxAttachments: MAX_ATTACHMENTS, maxInMemoryPartBytes: 1024 * 1024 }, passiveTimeoutMs: 500, idleTimeoutMs: IDLE_MS },
      }),
      cast(),
    ]);
    const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
    await o.sealed.dispose();
    soap = buildSoap(o.message).xml();
  });
  after(async () => {
    await srv?.stop();
  });

  /** A raw multipart body with the given boundary and parts (each `headers` + CRLF CRLF + body). */
  const entity = (b: string, parts: string[], close = true) => `--${b}\r\n${parts.join(`\r\n--${b}\r\n`)}\r\n--${b}${close ? '--' : ''}\r\n`;
  const soapPart = () => `Content-Type: text/xml; charset=UTF-8\r\nContent-ID: <osci@message>\r\n\r\n${soap}`;
  const ct = (b: string) => `Multipart/Related; boundary=${b}; type=text/xml`;

  async function refused(body: Buffer | string, contentType: string | undefined, code: '9100' | '9904') {
    await expectFault(srv, await post(srv.osci, Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1'), contentType), code);
    await expectNothingStored(srv);
  }

  describe('boundaries and structure', () => {
    it('no boundary parameter → 9100', async () => {
      await refused(entity(newBoundary(), [soapPart()]), 'Multipart/Related; type=text/xml', '9100');
    });

    it('the boundary parameter twice, with different values → 9100 (ambiguous, never a first- or last-wins pick)', async () => {
      const [a, b] = [newBoundary(), newBoundary()];
      await refused(entity(a, [soapPart()]), `Multipart/Related; boundary=${a}; boundary=${b}; type=text/xml`, '9100');
      await refused(entity(b, [soapPart()]), `Multipart/Related; boundary=${a}; boundary=${b}; type=text/xml`, '9100');
    });

    it('a body written with another boundary than the header names → 9100', async () => {
      await refused(entity(newBoundary(), [soapPart()]), ct(newBoundary()), '9100');
    });

    it('no Content-Type at all, and a text/xml body without the entity headers → 9100', async () => {
      await refused(entity(newBoundary(), [soapPart()]), undefined, '9100');
      await refused(soap, 'text/xml', '9100');
    });

    it('a nested multipart as an attachment → 9100', async () => {
      const inner = newBoundary();
      const nested = `Content-Type: multipart/mixed; boundary=${inner}\r\nContent-ID: <nested>\r\n\r\n${entity(inner, ['Content-ID: <x>\r\n\r\nx'])}`;
      const b = newBoundary();
      await refused(entity(b, [soapPart(), nested]), ct(b), '9100');
    });

    it(`thousands of tiny parts (5000, limit ${MAX_ATTACHMENTS + 2}) → 9100`, async () => {
      const b = newBoundary();
      await refused(entity(b, [soapPart(), ...Array.from({ length: 5000 }, (_, i) => `Content-ID: <p${i}>\r\n\r\nx`)]), ct(b), '9100');
    });

    it('oversized part headers (64 KB of one header), also when they never end → 9100', async () => {
      const b = newBoundary();
      await refused(entity(b, [soapPart(), `Content-ID: <a>\r\nX-Filler: ${'A'.repeat(64 * 1024)}\r\n\r\nx`]), ct(b), '9100');
      await refused(`--${b}\r\nContent-Type: text/xml\r\nX-Filler: ${'A'.repeat(64 * 1024)}`, ct(b), '9100');
    });

    it('an oversized HTTP header is refused by the HTTP layer (431) before any OSCI processing', async () => {
      const b = newBoundary();
      const ans = await post(srv.osci, Buffer.from(entity(b, [soapPart()])), ct(b), { 'x-filler': 'A'.repeat(64 * 1024) });
      expect(ans.status).to.equal(431);
      await expectNothingStored(srv);
    });
  });

  describe('a part that never ends', () => {
    it('the body stops inside an attachment (no closing boundary) → 9100', async () => {
      const b = newBoundary();
      await refused(`${entity(b, [soapPart()], false)}Content-ID: <a>\r\n\r\n${'x'.repeat(100_000)}`, ct(b), '9100');
    });

    it(`an attachment running past the message size limit (${MAX_MESSAGE / 1024 / 1024} MiB, 40 MiB sent) → 9904, and the client reads the fault (no reset)`, async () => {
      const b = newBoundary();
      const head = Buffer.from(`${entity(b, [soapPart()], false)}Content-ID: <a>\r\n\r\n`, 'latin1');
      await refused(Buffer.concat([head, Buffer.alloc(40 * 1024 * 1024, 0x41)]), ct(b), '9904');
    });

    it('a signed, transport-encrypted order whose attachment is larger than the limit → 9904', async () => {
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp, attachments: [{ contentId: 'big.pdf', data: Buffer.alloc(MAX_MESSAGE + 1024, 7) }] });
      await o.sealed.dispose();
      const wire = await craft(o.message, { signer: c.ag.signature, attachments: o.attachments, encryptFor: srv.server.identity.ciphers[0]?.cert });
      await expectFault(srv, await post(srv.osci, wire), '9904');
      await expectNothingStored(srv);
    });

    /** Opens a raw connection, sends the request head and part of an attachment; resolves with the socket. */
    function startUpload(declaredLength: number) {
      const b = newBoundary();
      const sock = connect(Number(new URL(srv.osci).port), '127.0.0.1');
      const closed = new Promise<string>((resolve) => {
        let got = '';
        sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
        sock.on('close', () => resolve(got));
        sock.on('error', () => undefined);
      });
      const head = `POST /osci HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${ct(b)}\r\nContent-Length: ${declaredLength}\r\n\r\n`;
      sock.write(head + `${entity(b, [soapPart()], false)}Content-ID: <a>\r\n\r\n${'x'.repeat(200_000)}`);
      return { sock, closed };
    }

    it(`a stalled upload (slowloris) is closed after ${IDLE_MS} ms of silence; nothing stored, no spill left`, async function () {
      this.timeout(20_000); // hang guard: without the idle timeout the connection stays open for ever
      const { closed } = startUpload(10_000_000);
      await closed;
      await waitNoSpill();
      await expectNothingStored(srv);
    });

    it('the client goes away in the middle of an attachment: nothing stored, no spill left', async () => {
      const { sock, closed } = startUpload(10_000_000);
      await sleep(200);
      sock.destroy();
      await closed;
      await waitNoSpill();
      await expectNothingStored(srv);
    });

    /** The server removes its spill files once it noticed the end of the connection. */
    async function waitNoSpill() {
      for (let i = 0; i < 100 && spillLeft(srv).length > 0; i++) await sleep(50);
    }
  });

  describe('afterwards', () => {
    it('the intermediary still serves honest orders', async () => {
      await expectStillServing(srv, c.ag);
    });
  });
});
