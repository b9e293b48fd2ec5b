import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import {
  acceptRequest,
  checkResponse,
  clientNext,
  doneFeedback,
  newChallenge,
  newConversationId,
  parseSequenceNumber,
  AFTER_INIT,
  recordFetched,
  REQUEST_RULES,
  RESPONSE_RULES,
  respond,
  type ClientDialogState,
  type ControlBlock,
  type DialogMessageType,
  type DialogRandom,
  type DialogState,
} from '../../protocol/dialog.ts';
import { requireShared, shared } from '../helpers/env.ts';

const ALICE = 'sha256:alice-signature-cert';
const BOB = 'sha256:bob-signature-cert';

/** Deterministic supplier randomness: the values of osci-reference/README.md "Simulated dialog values". */
function scripted(conversationIds: string[], challenges: string[]): DialogRandom {
  return {
    newConversationId: () => conversationIds.shift() ?? 'exhausted',
    newChallenge: () => challenges.shift() ?? 'exhausted',
  };
}

function ok<T extends { ok: boolean }>(r: T): Extract<T, { ok: true }> {
  if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r as Extract<T, { ok: true }>;
}
function notOk<T extends { ok: boolean }>(r: T): Extract<T, { ok: false }> {
  if (r.ok) throw new Error('expected a refusal');
  return r as Extract<T, { ok: false }>;
}

/** ControlBlock of a captured request, read from the signed plaintext. */
function capturedControlBlock(name: string): ControlBlock {
  const text = readFileSync(shared('osci-reference', 'messages', `${name}.plain.mime`), 'latin1');
  const m = /<osci:ControlBlock([^>]*)>([\s\S]*?)<\/osci:ControlBlock>/.exec(text);
  if (!m) throw new Error(`no ControlBlock in ${name}`);
  const attrs = m[1] ?? '';
  const body = m[2] ?? '';
  const cb: ControlBlock = {};
  const conv = /\sConversationId="([^"]*)"/.exec(attrs)?.[1];
  const seq = /\sSequenceNumber="([^"]*)"/.exec(attrs)?.[1];
  const resp = /<osci:Response>([^<]*)</.exec(body)?.[1];
  const chal = /<osci:Challenge>([^<]*)</.exec(body)?.[1];
  if (conv !== undefined) cb.conversationId = conv;
  if (seq !== undefined) cb.sequenceNumber = parseSequenceNumber(seq);
  if (resp !== undefined) cb.response = resp;
  if (chal !== undefined) cb.challenge = chal;
  return cb;
}

describe('protocol/dialog', function () {
  describe('supplier side against the captured reference requests', function () {
    before(function () {
      requireShared(this);
    });

    it("Bob: initDialog → fetchDelivery (4711/1) → exitDialog (4711/2) with the README's intermediary challenges", function () {
      const rnd = scripted(['4711'], ['SW50ZXJtZWRCMQ==', 'SW50ZXJtZWRCMg==']);
      const init = capturedControlBlock('04a_initDialog_bob');
      expect(init).to.deep.equal({ challenge: '7gBCKVMVe/BIMQ==' });
      const a = ok(acceptRequest(undefined, 'initDialog', init, BOB, rnd));
      const r0 = respond(a.next, 'initDialog', init, rnd);
      expect(r0.controlBlock).to.deep.equal({
        conversationId: '4711',
        response: '7gBCKVMVe/BIMQ==',
        challenge: 'SW50ZXJtZWRCMQ==',
      });
      expect(doneFeedback(r0.next)).to.equal('0801');
      // The reference library's first request after initDialog carries SequenceNumber 0 (observed live); the
      // captured files were produced with a hand-set client state of 0 (README), so their first request carries 1.
      expect(r0.next.sequenceNumber).to.equal(AFTER_INIT);
      const asCaptured = { ...r0.next, sequenceNumber: 0 };

      const fetch = capturedControlBlock('04_fetchDelivery');
      const b = ok(acceptRequest(asCaptured, 'fetchDelivery', fetch, BOB, rnd));
      expect(b.acknowledged).to.deep.equal([]);
      const afterFetch = recordFetched(b.next, 'b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx');
      const r1 = respond(afterFetch, 'fetchDelivery', fetch, rnd);
      expect(r1.controlBlock).to.deep.equal({
        conversationId: '4711',
        sequenceNumber: 1,
        response: '119gIvSL3RBDPg==',
        challenge: 'SW50ZXJtZWRCMg==',
      });

      const exit = capturedControlBlock('04z_exitDialog_bob');
      const c = ok(acceptRequest(r1.next, 'exitDialog', exit, BOB, rnd));
      // the further request acknowledges the reception of the fetched delivery (§2)
      expect(c.acknowledged).to.deep.equal(['b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx']);
      expect(c.next.open).to.equal(false);
      const r2 = respond(c.next, 'exitDialog', exit, rnd);
      expect(r2.controlBlock).to.deep.equal({ conversationId: '4711', sequenceNumber: 2, response: 'UYgVRSttgJyFXQ==' });
      expect(doneFeedback(r2.next)).to.equal('0800');

      // nothing continues a closed dialog, not even a correct-looking request
      const again = notOk(
        acceptRequest(r2.next, 'fetchDelivery', { conversationId: '4711', sequenceNumber: 3, response: 'x', challenge: 'y' }, BOB),
      );
      expect(again.code).to.equal('9400');
    });

    it('Alice: implicit getMessageId and storeDelivery (SequenceNumber 0, Challenge only)', function () {
      for (const [name, type] of [['02_getMessageId', 'getMessageId'], ['03_storeDelivery', 'storeDelivery']] as const) {
        const cb = capturedControlBlock(name);
        expect(cb.sequenceNumber).to.equal(0);
        expect(cb.conversationId).to.equal(undefined);
        const a = ok(acceptRequest(undefined, type, cb, ALICE, scripted(['815'], [])));
        expect(a.next.explicit).to.equal(false);
        const r = respond(a.next, type, cb);
        // ResponseTo{GetMessageId,StoreDelivery}.xsd require ConversationId and SequenceNumber
        expect(r.controlBlock).to.deep.equal({ conversationId: '815', sequenceNumber: 0, response: cb.challenge });
        expect(doneFeedback(r.next)).to.equal('0800');
      }
    });

    it('Alice: fetchProcessCard (4712/1) after initDialog; a replay of it is refused', function () {
      const rnd = scripted(['4712'], ['SW50ZXJtZWRBMQ==', 'SW50ZXJtZWRBMg==']);
      const init = capturedControlBlock('01_initDialog');
      // The capture harness set the client state to 0 after initDialog (README), so its first request carries 1.
      const s0 = { ...respond(ok(acceptRequest(undefined, 'initDialog', init, ALICE, rnd)).next, 'initDialog', init, rnd).next, sequenceNumber: 0 };
      const fpc = capturedControlBlock('05_fetchProcessCard');
      const s1 = respond(ok(acceptRequest(s0, 'fetchProcessCard', fpc, ALICE, rnd)).next, 'fetchProcessCard', fpc, rnd).next;
      const replay = notOk(acceptRequest(s1, 'fetchProcessCard', fpc, ALICE, rnd));
      expect(replay.code).to.equal('9400');
      expect(replay.error.code).to.equal('ERR_REPLAY');
      const exit = capturedControlBlock('05z_exitDialog_alice');
      expect(ok(acceptRequest(s1, 'exitDialog', exit, ALICE)).next.open).to.equal(false);
    });

    it("Bob cannot use Alice's dialog", function () {
      const rnd = scripted(['4712'], ['SW50ZXJtZWRBMQ==']);
      const init = capturedControlBlock('01_initDialog');
      const s0 = respond(ok(acceptRequest(undefined, 'initDialog', init, ALICE, rnd)).next, 'initDialog', init, rnd).next;
      const r = notOk(acceptRequest(s0, 'fetchProcessCard', capturedControlBlock('05_fetchProcessCard'), BOB));
      expect(r.code).to.equal('9400');
      expect(r.error.code).to.equal('ERR_DIALOG_UNKNOWN');
    });
  });

  describe('supplier rules', function () {
    /** A dialog whose last request carried SequenceNumber 0 (as the captured files' hand-set state): the next carries 1. */
    function opened(): DialogState {
      const init = { challenge: 'c0' };
      const a = ok(acceptRequest(undefined, 'initDialog', init, ALICE, { newConversationId: () => '42' }));
      return { ...respond(a.next, 'initDialog', init, { newChallenge: () => 'S1' }).next, sequenceNumber: 0 };
    }

    it('the first request after initDialog carries SequenceNumber 0, as the reference library sends it', function () {
      const init = { challenge: 'c0' };
      const a = ok(acceptRequest(undefined, 'initDialog', init, ALICE, { newConversationId: () => '42' }));
      const s = respond(a.next, 'initDialog', init, { newChallenge: () => 'S1' }).next;
      expect(notOk(acceptRequest(s, 'fetchDelivery', good({ sequenceNumber: 1 }), ALICE)).error.code).to.equal('ERR_SEQUENCE');
      expect(ok(acceptRequest(s, 'fetchDelivery', good({ sequenceNumber: 0 }), ALICE)).next.sequenceNumber).to.equal(0);
      expect(clientNext({ conversationId: '42', sequenceNumber: AFTER_INIT, lastChallenge: 'S1', open: true }, 'fetchDelivery').sequenceNumber).to.equal(0);
    });
    const good = (over: Partial<ControlBlock> = {}): ControlBlock => ({
      conversationId: '42',
      sequenceNumber: 1,
      response: 'S1',
      challenge: 'c1',
      ...over,
    });

    it('initDialog carries only a Challenge', function () {
      for (const extra of [{ conversationId: '1' }, { sequenceNumber: 0 }, { response: 'r' }]) {
        expect(notOk(acceptRequest(undefined, 'initDialog', { challenge: 'c', ...extra }, ALICE)).code).to.equal('9400');
      }
      expect(notOk(acceptRequest(undefined, 'initDialog', {}, ALICE)).code).to.equal('9400');
    });

    it('fetches, mediateDelivery and exitDialog outside an explicit dialog → 9802', function () {
      for (const type of ['fetchDelivery', 'fetchProcessCard', 'mediateDelivery', 'exitDialog'] as const) {
        const r = notOk(acceptRequest(undefined, type, { sequenceNumber: 0, challenge: 'c' }, ALICE));
        expect(r.code, type).to.equal('9802');
        expect(r.error.code).to.equal('ERR_DIALOG_REQUIRED');
      }
    });

    it('explicit dialog: Response must equal the last supplier Challenge', function () {
      const r = notOk(acceptRequest(opened(), 'fetchDelivery', good({ response: 'S0' }), ALICE));
      expect([r.code, r.error.code]).to.deep.equal(['9400', 'ERR_CONTROLBLOCK']);
      expect(notOk(acceptRequest(opened(), 'fetchDelivery', good({ response: undefined }), ALICE)).code).to.equal('9400');
    });

    it('explicit dialog: SequenceNumber must increase by exactly one', function () {
      expect(notOk(acceptRequest(opened(), 'fetchDelivery', good({ sequenceNumber: 2 }), ALICE)).error.code).to.equal('ERR_SEQUENCE');
      expect(notOk(acceptRequest(opened(), 'fetchDelivery', good({ sequenceNumber: 0 }), ALICE)).error.code).to.equal('ERR_REPLAY');
      expect(ok(acceptRequest(opened(), 'fetchDelivery', good(), ALICE)).next.sequenceNumber).to.equal(1);
    });

    it('unknown or mismatched ConversationId → 9400', function () {
      expect(notOk(acceptRequest(undefined, 'fetchDelivery', good(), ALICE)).error.code).to.equal('ERR_DIALOG_UNKNOWN');
      expect(notOk(acceptRequest(opened(), 'fetchDelivery', good({ conversationId: '43' }), ALICE)).code).to.equal('9400');
    });

    it('ConversationId must be numeric; tokens must be sane', function () {
      for (const bad of [{ conversationId: '4a' }, { conversationId: '' }, { sequenceNumber: -1 }, { sequenceNumber: 1.5 }, { challenge: '' }, { response: 'x'.repeat(2000) }]) {
        expect(notOk(acceptRequest(opened(), 'fetchDelivery', good(bad), ALICE)).code, JSON.stringify(bad)).to.equal('9400');
      }
      expect(() => parseSequenceNumber('-1')).to.throw().with.property('code', 'ERR_CONTROLBLOCK');
      expect(() => parseSequenceNumber('1e3')).to.throw().with.property('code', 'ERR_CONTROLBLOCK');
      expect(parseSequenceNumber('17')).to.equal(17);
    });

    it('a supplier Challenge is consumed: the same Response cannot be used twice', function () {
      const s = opened();
      const a = ok(acceptRequest(s, 'storeDelivery', good(), ALICE));
      // the request was accepted but never answered (e.g. a Fault): the dialog cannot go on
      const again = notOk(acceptRequest(a.next, 'storeDelivery', good({ sequenceNumber: 2 }), ALICE));
      expect(again.code).to.equal('9400');
    });

    it('storeDelivery and getMessageId also work inside an explicit dialog, which stays open', function () {
      const s = opened();
      const a = ok(acceptRequest(s, 'getMessageId', good(), ALICE));
      const r = respond(a.next, 'getMessageId', good(), { newChallenge: () => 'S2' });
      expect(r.controlBlock).to.deep.equal({ conversationId: '42', sequenceNumber: 1, response: 'c1', challenge: 'S2' });
      expect(doneFeedback(r.next)).to.equal('0801');
      const b = ok(acceptRequest(r.next, 'storeDelivery', good({ sequenceNumber: 2, response: 'S2', challenge: 'c2' }), ALICE));
      expect(b.next.sequenceNumber).to.equal(2);
    });

    it('implicit dialog: SequenceNumber 0, no Response', function () {
      expect(notOk(acceptRequest(undefined, 'storeDelivery', { sequenceNumber: 1, challenge: 'c' }, ALICE)).error.code).to.equal('ERR_SEQUENCE');
      expect(notOk(acceptRequest(undefined, 'storeDelivery', { sequenceNumber: 0, response: 'r', challenge: 'c' }, ALICE)).code).to.equal('9400');
      expect(notOk(acceptRequest(undefined, 'storeDelivery', { challenge: 'c' }, ALICE)).code).to.equal('9400');
      const fwd = ok(acceptRequest(undefined, 'forwardDelivery', { sequenceNumber: 0, challenge: 'c' }, ALICE));
      // ResponseToForwardDelivery: ConversationId optional [KORR7]; none is invented
      expect(respond(fwd.next, 'forwardDelivery', { sequenceNumber: 0, challenge: 'c' }).controlBlock).to.deep.equal({
        sequenceNumber: 0,
        response: 'c',
      });
    });

    it('acceptDelivery/processDelivery: Challenge only, answered by Response only', function () {
      for (const type of ['acceptDelivery', 'processDelivery'] as const) {
        const a = ok(acceptRequest(undefined, type, { challenge: 'c' }, 'intermediary'));
        expect(respond(a.next, type, { challenge: 'c' }).controlBlock).to.deep.equal({ response: 'c' });
        expect(notOk(acceptRequest(undefined, type, { challenge: 'c', sequenceNumber: 0 }, 'x')).code).to.equal('9400');
      }
    });

    it('several fetched deliveries are all acknowledged by the next request', function () {
      const s = opened();
      const a = ok(acceptRequest(s, 'fetchDelivery', good(), ALICE));
      const withTwo = recordFetched(recordFetched(a.next, 'm1'), 'm2');
      const r = respond(withTwo, 'fetchDelivery', good(), { newChallenge: () => 'S2' });
      const b = ok(acceptRequest(r.next, 'fetchProcessCard', good({ sequenceNumber: 2, response: 'S2' }), ALICE));
      expect(b.acknowledged).to.deep.equal(['m1', 'm2']);
      expect(b.next.pendingReceptions).to.deep.equal([]);
      // a refused request acknowledges nothing
      const r2 = respond(recordFetched(b.next, 'm3'), 'fetchProcessCard', good(), { newChallenge: () => 'S3' });
      expect(notOk(acceptRequest(r2.next, 'fetchDelivery', good({ sequenceNumber: 3, response: 'WRONG' }), ALICE)).code).to.equal('9400');
      expect(r2.next.pendingReceptions).to.deep.equal(['m3']);
    });

    it('random values have the reference shapes', function () {
      expect(Buffer.from(newChallenge(), 'base64')).to.have.length(10);
      expect(newChallenge()).to.not.equal(newChallenge());
      expect(newConversationId()).to.match(/^[1-9]\d{14}$/);
    });

    it('every response the supplier builds satisfies the ResponseTo*.xsd presence rules', function () {
      const types = Object.keys(REQUEST_RULES) as DialogMessageType[];
      for (const type of types) {
        const rules = RESPONSE_RULES[type];
        const state: DialogState = {
          conversationId: '7',
          sequenceNumber: 3,
          clientId: ALICE,
          open: type !== 'exitDialog',
          explicit: REQUEST_RULES[type].conversationId !== 'prohibited',
          pendingReceptions: [],
        };
        const { controlBlock } = respond(state, type, { challenge: 'q' });
        for (const key of ['response', 'challenge', 'conversationId', 'sequenceNumber'] as const) {
          if (rules[key] === 'required') expect(controlBlock[key], `${type}.${key}`).to.not.equal(undefined);
          if (rules[key] === 'prohibited') expect(controlBlock[key], `${type}.${key}`).to.equal(undefined);
        }
      }
    });
  });

  describe('client side', function () {
    it('runs a whole explicit dialog against the supplier state machine', function () {
      let client: ClientDialogState | undefined;
      let supplier: DialogState | undefined;
      const steps: DialogMessageType[] = ['initDialog', 'fetchDelivery', 'storeDelivery', 'fetchProcessCard', 'exitDialog'];
      for (const type of steps) {
        const sent = clientNext(client, type);
        const accepted = ok(acceptRequest(supplier, type, sent, BOB));
        const { controlBlock, next } = respond(accepted.next, type, sent);
        supplier = next;
        client = ok(checkResponse(sent, controlBlock, type)).next;
      }
      expect(client).to.equal(undefined);
      expect(supplier?.open).to.equal(false);
      // initDialog, then fetchDelivery 0, storeDelivery 1, fetchProcessCard 2, exitDialog 3.
      expect(supplier?.sequenceNumber).to.equal(3);
    });

    it('builds the captured request shapes', function () {
      expect(Object.keys(clientNext(undefined, 'initDialog'))).to.deep.equal(['challenge']);
      const implicit = clientNext(undefined, 'storeDelivery');
      expect(implicit.sequenceNumber).to.equal(0);
      expect(implicit.conversationId).to.equal(undefined);
      const state: ClientDialogState = { conversationId: '4711', sequenceNumber: 0, lastChallenge: 'SW50ZXJtZWRCMQ==', open: true };
      const cb = clientNext(state, 'fetchDelivery', { newChallenge: () => '119gIvSL3RBDPg==' });
      expect(cb).to.deep.equal({ conversationId: '4711', sequenceNumber: 1, response: 'SW50ZXJtZWRCMQ==', challenge: '119gIvSL3RBDPg==' });
      expect(() => clientNext(undefined, 'fetchDelivery')).to.throw().with.property('code', 'ERR_DIALOG_REQUIRED');
    });

    it('a response that does not echo the Challenge, or changes the dialog, → 9400', function () {
      const sent: ControlBlock = { conversationId: '9', sequenceNumber: 4, response: 'S', challenge: 'mine' };
      const good: ControlBlock = { conversationId: '9', sequenceNumber: 4, response: 'mine', challenge: 'S5' };
      expect(ok(checkResponse(sent, good, 'fetchDelivery')).next).to.deep.equal({
        conversationId: '9',
        sequenceNumber: 4,
        lastChallenge: 'S5',
        open: true,
      });
      for (const bad of [{ response: 'old' }, { conversationId: '10' }, { sequenceNumber: 3 }, { challenge: undefined }]) {
        const r = notOk(checkResponse(sent, { ...good, ...bad }, 'fetchDelivery'));
        expect(r.code, JSON.stringify(bad)).to.equal('9400');
      }
      const init = notOk(checkResponse({ challenge: 'c' }, { response: 'c', challenge: 'x' }, 'initDialog'));
      expect(init.code).to.equal('9400'); // ConversationId required in responseToInitDialog
    });
  });
});
