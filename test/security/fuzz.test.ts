/**
 * Property-based fuzzing (fast-check) of what an attacker feeds the intermediary: the MIME codec (round trip under
 * arbitrary bodies and chunkings; mutated and arbitrary input), the XML/SOAP parsing (arbitrary text, mutated
 * envelopes, generated trees), the ControlBlock state machine (random dialogs of honest and hostile requests
 * against a model of §2) and the whole decoder, then a sample of mutated orders over HTTP. Every input ends in a
 * result or a typed error (OsciError/CryptoError), never a crash, and the mocha timeouts bound every run (no hang).
 * A failure prints fast-check's seed and shrunk counterexample; rerun with FC_SEED=<seed> to reproduce.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { CryptoError } from '../../crypto/errors.ts';
import { parseXml, serializeXml } from '../../crypto/xml.ts';
import { acceptRequest, checkResponse, clientNext, respond, type ControlBlock, type DialogMessageType, type DialogState } from '../../protocol/dialog.ts';
import { decodeMessage } from '../../protocol/envelope/index.ts';
import { OsciError } from '../../protocol/errors.ts';
import { binaryPartHeaders, parseMultipart, parseMultipartBuffer, soapPartHeaders, writeMultipartBuffer } from '../../protocol/mime.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { cast, craft, expectStillServing, post, readAnswer, startAttackServer, storeDeliveryOrder, type AttackServer, type Cast, type Wire } from '../helpers/attack.ts';

const seed = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : undefined;
const params = (numRuns: number): fc.Parameters<unknown> => ({ numRuns, ...(seed !== undefined ? { seed } : {}) });

/** The error is one of ours: the decoder never lets a TypeError, RangeError or library error escape. */
function typed(e: unknown): boolean {
  return e instanceof OsciError || e instanceof CryptoError;
}

async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

const SAFE_CID = fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/);
/** Bodies an attacker likes: random bytes, boundary look-alikes, CRLF runs, header look-alikes. */
const NASTY_BODY = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
  fc.array(fc.constantFrom('\r\n', '--', '\r\n--', 'MIME_boundary_', 'Content-ID: <x>', '\r\n\r\n', '--\r\n', 'a', '\n', '\r'), { maxLength: 60 }).map((a) => Buffer.from(a.join(''), 'latin1')),
);

/** Byte-level mutations of a valid message. */
type Mutation = { kind: 'flip'; at: number; mask: number } | { kind: 'cut'; at: number } | { kind: 'insert'; at: number; text: string } | { kind: 'delete'; at: number; n: number } | { kind: 'repeat'; at: number; n: number };
const MUTATION: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom('\r\n', '--', '<', '>', '"', '&', '<!--', ']]>', '<x>', '</soap:Body>', '\u0000', '\r\n--MIME_boundary_x--\r\n', 'Content-Type: multipart/related; boundary=z\r\n') }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 200 }) }),
);

function mutate(buf: Buffer, ms: Mutation[]): Buffer {
  let b = buf;
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.kind) {
      case 'flip':
        b = Buffer.from(b);
        b[at] = (b[at] as number) ^ m.mask;
        break;
      case 'cut':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.text, 'latin1'), b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
        break;
      case 'repeat':
        b = Buffer.concat([b.subarray(0, at + m.n), b.subarray(at)]);
        break;
    }
  }
  return b;
}

/** `buf` as a stream cut at the given offsets. */
function chunked(buf: Buffer, cuts: number[]): Readable {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    if (c > prev) pieces.push(buf.subarray(prev, c));
    prev = c;
  }
  return Readable.from(pieces);
}

describe('security: property-based fuzzing', function () {
  this.timeout(120_000);
  let c: Cast;
  let soapXml: string;

  before(async () => {
    c = await cast();
    const o = await storeDeliveryOrder(c.ag, c.stadt);
    await o.sealed.dispose();
    soapXml = buildSoap(o.message).xml();
  });

  describe('MIME codec', () => {
    it('round trip: any bodies (boundary look-alikes included), any chunking of the stream → the same parts, byte for byte', async () => {
      await fc.assert(
        fc.asyncProperty(fc.uniqueArray(SAFE_CID, { minLength: 0, maxLength: 4 }), fc.array(NASTY_BODY, { minLength: 4, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 12 }), async (cids, bodies, cuts) => {
          const parts = [{ headers: soapPartHeaders(), body: Buffer.from(soapXml) }, ...cids.map((cid, i) => ({ headers: binaryPartHeaders(cid, (bodies[i] as Buffer).length), body: bodies[i] as Buffer }))];
          const w = await writeMultipartBuffer(parts, { includeTopHeaders: true });
          const parsed = await parseMultipart(chunked(w.body, cuts), { contentType: w.headers['Content-Type'] as string });
          expect(parsed.parts.map((p) => p.contentId)).to.deep.equal(['osci@message', ...cids]);
          expect(parsed.parts.map((p) => p.body?.toString('latin1'))).to.deep.equal(parts.map((p) => p.body.toString('latin1')));
        }),
        params(150),
      );
    });

    it('mutated messages (flips, cuts, inserts, deletes, repeats), fed in random chunks → a result or an OsciError', async () => {
      const base = await writeMultipartBuffer(
        [
          { headers: soapPartHeaders(), body: Buffer.from(soapXml) },
          { headers: binaryPartHeaders('a.pdf', 500), body: Buffer.alloc(500, 0x41) },
        ],
        { includeTopHeaders: true },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(MUTATION, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), async (ms, cuts, withHeader) => {
          const r = await settle(parseMultipart(chunked(mutate(base.body, ms), cuts), { ...(withHeader ? { contentType: base.headers['Content-Type'] as string } : {}), limits: { maxParts: 10 } }));
          if (!r.ok) expect(r.error, String(r.error)).to.be.instanceOf(OsciError);
        }),
        params(400),
      );
    });

    it('arbitrary bytes under arbitrary Content-Type headers → a result or an OsciError', async () => {
      const ct = fc.oneof(fc.string({ maxLength: 120 }), fc.constantFrom('multipart/related', 'multipart/related; boundary=', 'multipart/related; boundary=""', 'Multipart/Related; boundary=a; boundary=b', 'text/xml', 'multipart/related; boundary="a\\"b"'));
      await fc.assert(
        fc.asyncProperty(fc.option(ct), NASTY_BODY, async (contentType, body) => {
          const r = await settle(parseMultipartBuffer(body, contentType === null ? {} : { contentType }));
          if (!r.ok) expect(r.error, String(r.error)).to.be.instanceOf(OsciError);
        }),
        params(400),
      );
    });
  });

  describe('XML and SOAP parsing', () => {
    it('arbitrary text → a parse or a typed error', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'grapheme', maxLength: 200 }), fc.constantFrom('<a/>', '<', '<a', '<a>', '<?xml?>', '<!---->', '<![CDATA[', '<a b="', "<a b='>'/>", '\uFEFF<a/>')), (text) => {
          for (const f of [() => parseXml(text), () => parseSoap(text)]) {
            try {
              f();
            } catch (e) {
              expect(typed(e), String(e)).to.equal(true);
            }
          }
        }),
        params(1000),
      );
    });

    it('mutated OSCI envelopes → the same message, another message or a typed error', () => {
      const base = Buffer.from(soapXml, 'utf8');
      fc.assert(
        fc.property(fc.array(MUTATION, { minLength: 1, maxLength: 5 }), (ms) => {
          try {
            parseSoap(mutate(base, ms));
          } catch (e) {
            expect(typed(e), String(e)).to.equal(true);
          }
        }),
        params(1000),
      );
    });

    it('generated element trees serialise and parse back to the same tree', () => {
      const name = fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/);
      const text = fc.string({ maxLength: 20 }).map((s) => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff\ud800-\udfff]/g, ''));
      const tree = fc.letrec<{ node: string }>((tie) => ({
        node: fc.oneof(
          { depthSize: 'small', withCrossShrink: true },
          text.map((t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')),
          fc.tuple(name, fc.uniqueArray(name, { maxLength: 3 }), text, fc.array(tie('node'), { maxLength: 4 })).map(
            ([n, attrs, v, kids]) => `<${n}${attrs.map((a) => ` ${a}="${v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;')}"`).join('')}>${kids.join('')}</${n}>`,
          ),
        ),
      })).node;
      fc.assert(
        fc.property(tree, (body) => {
          const xml = `<root>${body}</root>`;
          const once = serializeXml(parseXml(xml));
          expect(serializeXml(parseXml(once))).to.equal(once);
        }),
        params(300),
      );
    });
  });

  describe('ControlBlock state machine (§2)', () => {
    type Step =
      | { kind: 'honest'; type: 'fetchDelivery' | 'fetchProcessCard' | 'exitDialog' }
      | { kind: 'oldSequence'; back: number }
      | { kind: 'skipSequence'; ahead: number }
      | { kind: 'staleResponse' }
      | { kind: 'guessResponse'; value: string }
      | { kind: 'noResponse' }
      | { kind: 'foreignClient' }
      | { kind: 'otherDialog' }
      | { kind: 'implicit'; type: 'storeDelivery' | 'getMessageId' | 'fetchDelivery' };
    // Honest steps weigh three times as much as each attack, so that every run of 500 dialogs accepts well over 200
    // (≈ 245 with equal weights, once 195).
    const STEP: fc.Arbitrary<Step> = fc.oneof(
      {
        arbitrary: fc.record({ kind: fc.constant('honest' as const), type: fc.constantFrom('fetchDelivery' as const, 'fetchProcessCard' as const, 'exitDialog' as const) }),
        weight: 3,
      },
      fc.record({ kind: fc.constant('oldSequence' as const), back: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('skipSequence' as const), ahead: fc.integer({ min: 2, max: 5 }) }),
      fc.constant({ kind: 'staleResponse' as const }),
      fc.record({ kind: fc.constant('guessResponse' as const), value: fc.base64String({ minLength: 4, maxLength: 16 }) }),
      fc.constant({ kind: 'noResponse' as const }),
      fc.constant({ kind: 'foreignClient' as const }),
      fc.constant({ kind: 'otherDialog' as const }),
      fc.record({ kind: fc.constant('implicit' as const), type: fc.constantFrom('storeDelivery' as const, 'getMessageId' as const, 'fetchDelivery' as const) }),
    );

    it('random dialogs of honest and hostile requests: only the honest next request is accepted, each Challenge at most once, refusals change nothing', () => {
      let accepted = 0;
      let refused = 0;
      fc.assert(
        fc.property(fc.array(STEP, { maxLength: 30 }), (steps) => {
          const init = acceptRequest(undefined, 'initDialog', { challenge: 'c0' }, 'alice');
          if (!init.ok) throw init.error;
          let server: DialogState = respond(init.next, 'initDialog', { challenge: 'c0' }).next;
          const used = new Set<string>();
          let seq = server.sequenceNumber;
          for (const s of steps) {
            const honest = server.open ? clientNext({ conversationId: server.conversationId as string, sequenceNumber: seq, lastChallenge: server.lastChallenge as string, open: true }, s.kind === 'honest' ? s.type : 'fetchDelivery') : undefined;
            let type: DialogMessageType = s.kind === 'honest' ? s.type : 'fetchDelivery';
            let cb: ControlBlock = honest ?? { conversationId: server.conversationId as string, sequenceNumber: seq + 1, response: 'x', challenge: 'y' };
            let client = 'alice';
            switch (s.kind) {
              case 'oldSequence':
                cb = { ...cb, sequenceNumber: seq + 1 - s.back }; // negative right after initDialog: refused as malformed
                break;
              case 'skipSequence':
                cb = { ...cb, sequenceNumber: seq + s.ahead };
                break;
              case 'staleResponse':
                cb = { ...cb, response: [...used].at(-1) ?? 'c0' };
                break;
              case 'guessResponse':
                cb = { ...cb, response: s.value };
                break;
              case 'noResponse':
                cb = { ...cb };
                delete cb.response;
                break;
              case 'foreignClient':
                client = 'mallory';
                break;
              case 'otherDialog':
                cb = { ...cb, conversationId: '999999999999999' };
                break;
              case 'implicit':
                type = s.type;
                cb = { sequenceNumber: 0, challenge: 'z' };
                break;
            }
            const before = structuredClone(server);
            const r = acceptRequest(server.conversationId === cb.conversationId ? server : undefined, type, cb, client);
            const isHonest = s.kind === 'honest' && server.open;
            if (s.kind === 'implicit') {
              // Outside the dialog: getMessageId/storeDelivery are implicit (no dialog state), fetchDelivery needs a dialog (9802).
              expect(r.ok ? 'ok' : r.code).to.equal(s.type === 'fetchDelivery' ? '9802' : 'ok');
              continue;
            }
            if (!isHonest) {
              expect(r.ok, `${s.kind} must be refused`).to.equal(false);
              if (!r.ok) expect(r.code).to.be.oneOf(['9400', '9802']);
              expect(server).to.deep.equal(before);
              refused++;
              continue;
            }
            expect(r.ok, `honest ${type} refused: ${r.ok ? '' : r.error.message}`).to.equal(true);
            if (!r.ok) return;
            expect(used.has(cb.response as string), 'a Challenge accepted twice').to.equal(false);
            used.add(cb.response as string);
            accepted++;
            expect(r.next.sequenceNumber).to.equal(seq + 1);
            seq = r.next.sequenceNumber;
            const resp = respond(r.next, type, cb);
            server = resp.next;
            const check = checkResponse(cb, resp.controlBlock, type);
            expect(check.ok, 'the honest client accepts the answer').to.equal(true);
            if (type === 'exitDialog') expect(server.open).to.equal(false);
          }
        }),
        params(500),
      );
      // The generator exercises both sides of the rule, not only refusals.
      expect(accepted, 'honest requests accepted').to.be.greaterThan(200);
      expect(refused, 'hostile requests refused').to.be.greaterThan(1000);
    });

    it('arbitrary ControlBlocks for every request type and any stored state → a result or a typed refusal, never an exception', () => {
      const token = fc.oneof(fc.string({ maxLength: 30 }), fc.constant(''), fc.string({ minLength: 1025, maxLength: 1100 }));
      const cbArb = fc.record(
        {
          conversationId: fc.oneof(fc.stringMatching(/^\d{1,20}$/), fc.string({ maxLength: 40 })),
          sequenceNumber: fc.oneof(fc.integer({ min: -5, max: 1e6 }), fc.constantFrom(Number.NaN, Infinity, -0, 2 ** 60, 1.5)),
          response: token,
          challenge: token,
        },
        { requiredKeys: [] },
      );
      const types: DialogMessageType[] = ['initDialog', 'exitDialog', 'getMessageId', 'storeDelivery', 'fetchDelivery', 'fetchProcessCard', 'forwardDelivery', 'acceptDelivery', 'mediateDelivery', 'processDelivery'];
      const stateArb = fc.option(
        fc.record({
          conversationId: fc.stringMatching(/^\d{1,20}$/),
          sequenceNumber: fc.integer({ min: -1, max: 100 }),
          lastChallenge: fc.option(token, { nil: undefined }),
          clientId: fc.constantFrom('alice', 'mallory'),
          open: fc.boolean(),
          explicit: fc.boolean(),
          pendingReceptions: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
        }),
        { nil: undefined },
      );
      fc.assert(
        fc.property(fc.constantFrom(...types), cbArb, stateArb, fc.constantFrom('alice', 'mallory'), (type, cb, state, client) => {
          const r = acceptRequest(state as DialogState | undefined, type, cb, client);
          if (!r.ok) {
            expect(r.error).to.be.instanceOf(OsciError);
            expect(r.code).to.be.oneOf(['9400', '9802']);
            return;
          }
          // Whatever was accepted answers with a well-formed ControlBlock the client role accepts.
          if (cb.challenge === undefined) return;
          const resp = respond(r.next, type, cb);
          const check = checkResponse(cb, resp.controlBlock, type);
          expect(check.ok, check.ok ? '' : check.error.message).to.equal(true);
        }),
        params(3000),
      );
    });
  });

  describe('the whole decoder and the running intermediary', () => {
    let srv: AttackServer;
    let wire: Wire;
    before(async () => {
      srv = await startAttackServer();
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp, attachments: [{ contentId: 'a.pdf', data: Buffer.alloc(400, 0x61) }] });
      await o.sealed.dispose();
      wire = await craft(o.message, { signer: c.ag.signature, attachments: o.attachments });
    });
    after(async () => {
      await srv?.stop();
    });

    it('mutated signed orders → decoded unchanged or a typed error (never a TypeError, never a wrong message)', async () => {
      const pinned = c.ag.signature.cert;
      const original = await decodeMessage(wire.body, { contentType: wire.contentType, transportKeys: [], tmpDir: srv.tmp, signature: 'required', trustSigner: async () => pinned });
      const want = JSON.stringify(original.message);
      await original.dispose();
      await fc.assert(
        fc.asyncProperty(fc.array(MUTATION, { minLength: 1, maxLength: 3 }), async (ms) => {
          const r = await settle(decodeMessage(mutate(wire.body, ms), { contentType: wire.contentType, transportKeys: [], tmpDir: srv.tmp, signature: 'required', trustSigner: async () => pinned }));
          if (!r.ok) {
            expect(r.error, String(r.error)).to.be.instanceOf(OsciError);
            return;
          }
          await r.value.dispose();
          // What verifies is exactly what was signed (a mutation in an unsigned spot, e.g. the MIME preamble).
          expect(JSON.stringify(r.value.message)).to.equal(want);
        }),
        params(150),
      );
    });

    it('mutated orders over HTTP → always HTTP 200 with a readable soap:Fault or response, and the server keeps serving', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(MUTATION, { minLength: 1, maxLength: 3 }), async (ms) => {
          const ans = await post(srv.osci, mutate(wire.body, ms), wire.contentType);
          expect(ans.status).to.equal(200);
          const m = await readAnswer(srv, ans, c.ag);
          expect(m.type).to.be.oneOf(['fault', 'responseToStoreDelivery']);
        }),
        params(40),
      );
      await expectStillServing(srv, c.ag);
    });
  });
});
